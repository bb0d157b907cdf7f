"""Lion-K solves a constrained problem, and a Lyapunov function predicts it.

Paper [193]: Chen, Liu, Liang, Liu, "Lion Secretly Solves Constrained Optimization: As Lyapunov Predicts",
ICLR 2024, arXiv:2310.05898.

Setup. Ridge-regularised logistic regression on seeded synthetic data (n x d), whose unconstrained minimiser lies
outside the box ||x||_inf <= 1/lambda (1/lambda = `radius_fraction` * its largest coordinate). Three trajectories of
`jaxlib_methods.optim.lion_k` run side by side in one jitted scan, the full-batch gradient computed with the data
sharded over the mesh's `data` axis:
  A. from outside the box (x0 = `init_scale`/lambda * random signs), step eta, linear decay over the last
     `decay_fraction` of the horizon: phase 1 (entering the box) and the final distance to the constrained optimum;
  B. from x0 = 0 with constant step eta: the box is invariant and H is (numerically) non-increasing;
  C. as B with step eta / `step_ratio` (and `step_ratio` x as many steps over the same horizon): how the small
     increases of H in B scale with the step (discretisation error of a continuous-time Lyapunov function).

The Lyapunov function (continuous-time, the paper's H with its epsilon -> 0), in this file's sign convention (m the
EMA of gradients; the paper's momentum is M = -m), for the ODE that discrete Lion-K follows with
alpha = gamma = (1 - b2)/eta:
    H(x, m) = f(x) + (1/lambda) K*(lambda x) + (eta / (1 - b2)) * (K*(lambda x) + K(m) + lambda m.x)
The bracket is >= 0 by Fenchel-Young; dH/dt = -(gamma + lambda) <grad K(M) - lambda x, M - grad K*(lambda x)> <= 0.
For K = l1 (Lion), K* is the indicator of the box, so H = f(x) + eta/(1-b2) (||m||_1 + lambda m.x) inside it.

Independent reference: the constrained minimiser of f(x) + (1/lambda) K*(lambda x) by projected (proximal)
gradient descent in float64 NumPy, which shares no code with the optimizer.

Claims (paper -> measurable here):
  1. Phase 1 (Thm: the iterate reaches dom K* exponentially fast): ||x_t||_inf - 1/lambda contracts by at least
     (1 - eta_t lambda) every step (max excess over the bound ~ 0), and the fitted decay rate is >= lambda.
  2. Box invariance: once ||x||_inf <= 1/lambda, Lion stays inside (max violation along B <= 0).
  3. Lyapunov: H is non-increasing along the small-step trajectory: the sum of its per-step increases is a tiny
     fraction of its total decrease, and the largest increase shrinks faster than the step (order >= 1.5 in eta).
  4. Phase 2 solves the constrained problem: ||x_T - x*||_inf small, x* from the float64 reference.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods.optim import lion_k, make_k_function
from jaxlib_methods.runner import Claim, MeshConfig, Paper, make_mesh, place_state, save_figure, shard_batch, train
from jaxlib_methods.runner.constraints import Check, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=193, title="Lion Secretly Solves Constrained Optimization: As Lyapunov Predicts",
              year=2023, arxiv="2310.05898")
DEMO = True
# A short horizon still shows phase 1 (entering the box at rate lambda) and box invariance; without the decoupled
# weight decay (the term that creates the constraint) the iterate never contracts toward the box: claims 1-3 fail.
TINY = ("horizon=2.0", "log_every=250", "checkpoint_every=1000")
MUTATIONS = {"no_weight_decay": ("weight_decay_scale=0",), "weak_weight_decay": ("weight_decay_scale=0.5",)}


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  n: PositiveInt = 512              # data points (a multiple of mesh.data)
  d: PositiveInt = 10               # dimension
  ridge: PositiveFloat = 1e-2       # f(x) = mean logistic loss + ridge/2 ||x||^2
  radius_fraction: Annotated[float, Range(gt=0, lt=1)] = 0.5   # 1/lambda = radius_fraction * ||x_unconstrained||_inf
  grad_K: Literal["l1", "huber"] = "l1"
  huber_e: PositiveFloat = 0.1
  learning_rate: PositiveFloat = 1e-3       # eta
  b1: Annotated[float, Range(ge=0, le=1)] = 0.9
  b2: Annotated[float, Range(ge=0, lt=1)] = 0.99
  horizon: PositiveFloat = 30.0             # continuous time; steps = horizon / eta
  decay_fraction: Annotated[float, Range(gt=0, lt=1)] = 0.2   # run A: linear decay of eta to 0 over the last fraction
  init_scale: Annotated[float, Range(gt=1)] = 2.0   # run A starts at init_scale / lambda * random signs (outside)
  step_ratio: Annotated[int, Range(ge=2)] = 4       # run C uses eta / step_ratio
  log_every: PositiveInt = 500
  checkpoint_every: PositiveInt = 10000
  dtype: Literal["float64", "float32"] = "float64"
  weight_decay_scale: Annotated[float, Range(ge=0)] = 1.0   # the optimizer's weight decay is this x lambda; 1 is Lion-K
                                                            # (a mutation sets another value: the box 1/lambda is fixed)
  mesh: MeshConfig = MeshConfig()

  CHECKS = (Check("round(horizon / learning_rate) >= log_every", "the run (horizon / learning_rate steps) covers at "
                  "least one log interval"),
            Check("checkpoint_every % log_every == 0", "checkpoints are saved at the end of a logged chunk"),
            Check("mesh.data == 0 or n % mesh.data == 0", "the n data points are split evenly over mesh.data devices"))

PRESETS = {
    "cpu": Config(),
    "gpu": Config(n=65536, d=256, learning_rate=2.5e-4, log_every=2000, checkpoint_every=40000),
    "tpu": Config(n=65536, d=256, learning_rate=2.5e-4, log_every=2000, checkpoint_every=40000),
}


# ----------------------------------------------------------------------------------------------------------------------
# Problem and the independent float64 reference.
# ----------------------------------------------------------------------------------------------------------------------

def make_problem(config: Config):
  """Seeded data (A [n, d], y [n] in {-1, +1}), the unconstrained minimiser and lambda, all float64 NumPy."""
  rng = np.random.default_rng(config.seed)
  a = rng.normal(size=(config.n, config.d))
  w_true = 3.0 * rng.normal(size=config.d)
  y = np.sign(a @ w_true + 0.5 * rng.normal(size=config.n))
  y[y == 0] = 1.0
  x_unc = _minimise_np(a, y, config.ridge, prox=lambda v, s: v)
  lam = 1.0 / (config.radius_fraction * np.max(np.abs(x_unc)))
  return a, y, x_unc, lam


def _grad_np(a, y, ridge, x):
  z = y * (a @ x)
  return a.T @ (-y * 0.5 * (1.0 - np.tanh(0.5 * z))) / len(y) + ridge * x


def _f_np(a, y, ridge, x):
  return float(np.mean(np.logaddexp(0.0, -y * (a @ x))) + 0.5 * ridge * x @ x)


def _minimise_np(a, y, ridge, prox, iters=200000, tol=1e-15):
  """Proximal gradient descent (float64) with step 1/L, L the smoothness constant."""
  lipschitz = np.linalg.eigvalsh(a.T @ a / len(y)).max() / 4.0 + ridge
  s = 1.0 / lipschitz
  x = np.zeros(a.shape[1])
  for _ in range(iters):
    x_new = prox(x - s * _grad_np(a, y, ridge, x), s)
    if np.max(np.abs(x_new - x)) < tol:
      return x_new
    x = x_new
  return x


def constrained_reference(a, y, ridge, lam, config: Config) -> np.ndarray:
  """argmin f(x) + (1/lambda) K*(lambda x) in float64: K=l1 -> box projection; K=huber -> shrink then box."""
  radius = 1.0 / lam
  if config.grad_K == "l1":
    prox = lambda v, s: np.clip(v, -radius, radius)
  else:  # (1/lambda) K*(lambda x) = (e lambda / 2)||x||^2 + box indicator
    prox = lambda v, s: np.clip(v / (1.0 + s * config.huber_e * lam), -radius, radius)
  return _minimise_np(a, y, ridge, prox)


# ----------------------------------------------------------------------------------------------------------------------
# The run.
# ----------------------------------------------------------------------------------------------------------------------

def run(config: Config, workdir: pathlib.Path) -> dict:
  with jax.enable_x64(config.dtype == "float64"):
    return _run(config, pathlib.Path(workdir))


def _run(config: Config, workdir: pathlib.Path) -> dict:
  dtype = jnp.float64 if config.dtype == "float64" else jnp.float32
  mesh = make_mesh(config.mesh)
  a_np, y_np, x_unc, lam = make_problem(config)
  x_star = constrained_reference(a_np, y_np, config.ridge, lam, config)
  radius = 1.0 / lam
  eta, r = config.learning_rate, config.step_ratio
  num_steps = int(round(config.horizon / eta))
  k_name = config.grad_K
  kfun = make_k_function(k_name, e=config.huber_e)

  data = shard_batch({"a": a_np.astype(dtype), "y": y_np.astype(dtype)}, mesh)

  def f(x, batch):
    z = batch["y"] * (batch["a"] @ x)
    return jnp.mean(jnp.logaddexp(0.0, -z)) + 0.5 * config.ridge * jnp.sum(x * x)

  grad_f = jax.grad(f)
  decay_steps = max(1, int(round(config.decay_fraction * num_steps)))
  schedule_a = optax.join_schedules(
      [optax.constant_schedule(eta), optax.linear_schedule(eta, 0.0, decay_steps)], [num_steps - decay_steps])
  grad_k = kfun.grad if k_name == "l1" else make_k_function("huber", e=config.huber_e).grad
  wd = config.weight_decay_scale * lam
  tx_a = lion_k(schedule_a, b1=config.b1, b2=config.b2, weight_decay=wd, grad_K=grad_k)
  tx_b = lion_k(eta, b1=config.b1, b2=config.b2, weight_decay=wd, grad_K=grad_k)
  tx_c = lion_k(eta / r, b1=config.b1, b2=config.b2, weight_decay=wd, grad_K=grad_k)

  def lyapunov(x, mu, step_size):
    # H(x, m) = f(x) + (1/lambda) K*(lambda x) + step/(1-b2) (K*(lambda x) + K(m) + lambda m.x)
    conj = kfun.conjugate(lam * x)
    return (f(x, data) + conj / lam
            + step_size / (1.0 - config.b2) * (conj + kfun.value(mu) + lam * jnp.dot(mu, x)))

  rng = np.random.default_rng(config.seed + 1)
  x0_a = (config.init_scale * radius * np.sign(rng.normal(size=config.d))).astype(dtype)
  x0 = jnp.zeros(config.d, dtype)

  def new_stats(x):
    return {"h_prev": jnp.asarray(jnp.inf, dtype), "h_first": jnp.asarray(jnp.nan, dtype),
            "max_inc": jnp.zeros((), dtype), "sum_inc": jnp.zeros((), dtype),
            "max_violation": jnp.asarray(-jnp.inf, dtype)}

  state = {
      "A": {"x": jnp.asarray(x0_a), "opt": tx_a.init(jnp.asarray(x0_a)),
            "max_excess": jnp.asarray(-jnp.inf, dtype)},
      "B": {"x": x0, "opt": tx_b.init(x0), "stats": new_stats(x0)},
      "C": {"x": x0, "opt": tx_c.init(x0), "stats": new_stats(x0)},
  }
  state = place_state(state, mesh)

  def lion_step(tx, x, opt):
    updates, opt = tx.update(grad_f(x, data), opt, x)
    return x + updates, opt

  def track(stats, x, opt, step_size):
    h = lyapunov(x, opt[0].mu, step_size)
    inc = jnp.where(jnp.isfinite(stats["h_prev"]), h - stats["h_prev"], 0.0)
    return {"h_prev": h,
            "h_first": jnp.where(jnp.isnan(stats["h_first"]), h, stats["h_first"]),
            "max_inc": jnp.maximum(stats["max_inc"], inc),
            "sum_inc": stats["sum_inc"] + jnp.maximum(inc, 0.0),
            "max_violation": jnp.maximum(stats["max_violation"], jnp.max(jnp.abs(x)) * lam - 1.0)}

  def one_step(s, step):
    # Run A: one step; the phase-1 bound ||x'||_inf - R <= (1 - eta_t lambda)(||x||_inf - R).
    xa, opt_a = s["A"]["x"], s["A"]["opt"]
    eta_t = schedule_a(step)
    xa_new, opt_a = lion_step(tx_a, xa, opt_a)
    excess = (jnp.max(jnp.abs(xa_new)) - radius) - (1.0 - eta_t * lam) * (jnp.max(jnp.abs(xa)) - radius)
    a_new = {"x": xa_new, "opt": opt_a, "max_excess": jnp.maximum(s["A"]["max_excess"], excess)}
    # Run B: one step of eta.
    xb, opt_b = lion_step(tx_b, s["B"]["x"], s["B"]["opt"])
    b_new = {"x": xb, "opt": opt_b, "stats": track(s["B"]["stats"], xb, opt_b, eta)}
    # Run C: r steps of eta / r (the same continuous time).
    def c_sub(c, _):
      xc, opt_c = lion_step(tx_c, c["x"], c["opt"])
      return {"x": xc, "opt": opt_c, "stats": track(c["stats"], xc, opt_c, eta / r)}, None
    c_new, _ = jax.lax.scan(c_sub, s["C"], None, length=r)
    return {"A": a_new, "B": b_new, "C": c_new}, None

  @jax.jit
  def advance_n(s, start, steps_arr):
    s, _ = jax.lax.scan(one_step, s, start + steps_arr)
    return s

  def advance(s, start, n):
    return advance_n(s, jnp.asarray(start, jnp.int32), jnp.arange(n, dtype=jnp.int32))

  @jax.jit
  def measure_state(s):   # one compiled program (op by op, each of its ~25 operations would compile on its own)
    return {
        "f_A": f(s["A"]["x"], data),
        "violation_A": jnp.max(jnp.abs(s["A"]["x"])) * lam - 1.0,
        "dist_A": jnp.max(jnp.abs(s["A"]["x"] - x_star)),
        # H is +inf outside dom K* (only a wrong variant gets there): logged capped so the run can report it.
        "H_B": jnp.minimum(lyapunov(s["B"]["x"], s["B"]["opt"][0].mu, eta), float(jnp.finfo(dtype).max)),
        "H_C": jnp.minimum(lyapunov(s["C"]["x"], s["C"]["opt"][0].mu, eta / r), float(jnp.finfo(dtype).max)),
        "dist_B": jnp.max(jnp.abs(s["B"]["x"] - x_star)),
    }

  def measure(s, step):
    values = measure_state(s)   # (a jitted dict comes back in sorted key order: the logged order is kept here)
    return {"t": step * eta, **{k: values[k] for k in ("f_A", "violation_A", "dist_A", "H_B", "H_C", "dist_B")}}

  result = train(workdir=workdir, state=state, advance=advance, measure=measure, num_steps=num_steps,
                 log_every=config.log_every, checkpoint_every=config.checkpoint_every, desc="lion_k")
  s = jax.device_get(result.state)
  rows = result.rows

  # Phase-1 decay rate: slope of log(violation) over time where it is clearly positive (above 1e-9 relative).
  ts = np.array([row["t"] for row in rows])
  v = np.array([row["violation_A"] for row in rows])
  keep = (v > 1e-9) & (ts <= (1.0 - config.decay_fraction) * config.horizon)
  rate = float(-np.polyfit(ts[keep], np.log(v[keep]), 1)[0]) if keep.sum() >= 3 else float("nan")

  def total_decrease(stats):
    return float(stats["h_first"] - stats["h_prev"])

  sb, sc = s["B"]["stats"], s["C"]["stats"]
  inc_b, inc_c = float(sb["max_inc"]), float(sc["max_inc"])
  order = math.log(inc_b / inc_c) / math.log(r) if inc_b > 0 and inc_c > 0 else float("inf")
  f_star = _f_np(a_np, y_np, config.ridge, x_star)
  _figure(rows, lam, f_star, workdir, config)
  return {
      "lambda": lam,
      "radius": radius,
      "num_steps": num_steps,
      "unconstrained_inf_norm": float(np.max(np.abs(x_unc))),
      "x_star": x_star.tolist(),
      "x_final_A": np.asarray(s["A"]["x"]).tolist(),
      "phase1_max_excess": float(s["A"]["max_excess"]),
      "phase1_rate_over_lambda": rate / lam,
      "final_violation_A": float(np.max(np.abs(s["A"]["x"])) * lam - 1.0),
      "box_max_violation_B": float(sb["max_violation"]),
      "lyapunov_max_increase_B": inc_b,
      "lyapunov_max_increase_C": inc_c,
      "lyapunov_increase_fraction_B": float(sb["sum_inc"]) / total_decrease(sb),
      "lyapunov_total_decrease_B": total_decrease(sb),
      "lyapunov_increase_order": order,
      "dist_to_constrained_opt_A": float(np.max(np.abs(s["A"]["x"] - x_star))),
      "f_final_A": float(_f_np(a_np, y_np, config.ridge, np.asarray(s["A"]["x"], np.float64))),
      "f_star": f_star,
      "resumed_from": result.resumed_from,
      "mesh_devices": int(mesh.size),
  }


def claims(results: dict) -> list[Claim]:
  radius = results["radius"]
  return [
      Claim.at_most("Phase 1: ||x||_inf - 1/lambda contracts by >= (1 - eta*lambda) each step (max excess)",
                    results["phase1_max_excess"], 1e-12 * radius, paper="<= 0: exponential entry into dom K*",
                    kind="paper", where="Sec. 3, Thm. 3.1 (Phase 1); Sec. 4 (discrete time)"),
      Claim.at_least("Phase 1: fitted decay rate of the box violation / lambda",
                     results["phase1_rate_over_lambda"], 0.99, paper=">= 1 (rate lambda: e^{-lambda t})",
                     kind="paper", where="Sec. 3, Thm. 3.1 (Phase 1)"),
      Claim.at_most("Box ||x||_inf <= 1/lambda is invariant once inside (max lambda*||x||_inf - 1)",
                    results["box_max_violation_B"], 1e-12, paper="<= 0 (stays in dom K*)", kind="paper",
                    where="Sec. 3, Thm. 3.1 (Phase 1)"),
      Claim.at_most("Lyapunov H non-increasing: sum of increases / total decrease",
                    results["lyapunov_increase_fraction_B"], 1e-2, paper="0 (monotone in continuous time)",
                    kind="paper", where="Sec. 3, Thm. 3.1 (Phase 2)"),
      Claim.at_least("Lyapunov: largest increase vanishes with the step, order p in eta^p",
                     results["lyapunov_increase_order"], 1.5, paper="increase -> 0 (continuous-time limit)",
                     kind="sanity"),
      Claim.at_most("Converges to the box-constrained minimiser: ||x_T - x*||_inf (x* by float64 PGD)",
                    results["dist_to_constrained_opt_A"], 1e-4, paper="0: solves min f s.t. ||x||_inf <= 1/lambda",
                    kind="paper", where="Sec. 3 (Phase 2: stationary points of f + K*); Fig. 1"),
  ]


def _figure(rows, lam, f_star, workdir, config):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  t = np.array([r["t"] for r in rows])
  v = np.maximum(np.array([r["violation_A"] for r in rows]), 1e-18)
  hb = np.array([r["H_B"] for r in rows], dtype=float)
  hc = np.array([r["H_C"] for r in rows], dtype=float)
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
  ax = axes[0]
  ax.semilogy(t, v, label=r"$\lambda\|x_t\|_\infty - 1$ (run A)")
  ax.semilogy(t, v[0] * np.exp(-lam * t), "--", label=r"$e^{-\lambda t}$ bound")
  ax.set_xlabel("time t = step x eta")
  ax.set_title("Phase 1: entering the box")
  ax.legend()
  ax = axes[1]
  ax.semilogy(t, np.abs(hb - f_star), label=r"$|H(x_t, m_t) - f(x^*)|$, step $\eta$ (run B)")
  ax.semilogy(t, np.abs(hc - f_star), label=rf"step $\eta/{config.step_ratio}$ (run C)", alpha=0.8)
  ax.set_xlabel("time t")
  ax.set_title(f"Phase 2: Lyapunov function (K = {config.grad_K})")
  ax.legend()
  fig.suptitle("Lion-K: Lion Secretly Solves Constrained Optimization (Chen et al. 2023)")
  save_figure(fig, workdir / "figure.png")
