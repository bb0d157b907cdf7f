"""Optimistic OMD in the stochastically extended adversarial (SEA) model: regret grows as the paper's bounds say.

Paper [209]: Sijia Chen, Yu-Jie Zhang, Wei-Wei Tu, Peng Zhao, Lijun Zhang, "Optimistic Online Mirror Descent for
Bridging Stochastic and Adversarial Online Convex Optimization", ICML 2023 / JMLR 2024, arXiv:2302.04552.

The SEA harness. Round t, the learner plays x_t in the ball X = {||x|| <= R} of R^d, then sees the loss

    f_t(x) = (lam/2) ||x||^2 + <c_t, x>,      c_t = mu_t + sigma * eps_t,   eps_t ~ N(0, I/d)

(lam = 0: linear, convex and 0-smooth; lam > 0: the quadratic (lam/2)||x - b_t||^2 up to a constant, c_t = -lam b_t,
lam-strongly convex and lam-smooth). The adversary picks the expected losses F_t through mu_t; nature adds the noise.
In the paper's notation the cumulative stochastic variance is sigma^2_{1:T} = sum_t E||grad f_t - grad F_t||^2 =
T sigma^2 and the cumulative adversarial variation Sigma^2_{1:T} = sum_t sup_x ||grad F_t - grad F_{t-1}||^2 =
sum_t ||mu_t - mu_{t-1}||^2. Three sequences per curvature:
  stochastic    sigma > 0, mu_t = mu fixed                       (sigma^2_{1:T} = T sigma^2, Sigma^2_{1:T} = 0)
  adversarial   sigma = 0, mu_t = mu + a (-1)^t u (alternating)    (sigma^2_{1:T} = 0, Sigma^2_{1:T} = 4 a^2 T)
  benign        sigma = 0, mu_t = mu                              (both 0)
The learner is `jaxlib_methods.optim.optimistic_omd` (hint M_t = g_{t-1}) with the step sizes of the paper's two
regimes: convex, the self-confident eta_t = min{cap, D / sqrt(1 + sum_{s<t} ||g_s - M_s||^2)} (D = 2R); strongly
convex, eta_t = 1 / (lam t + 4 L) (a 1/(lam t) schedule capped at 1/(4L), L = lam; the paper's exact constants were
not checked). The static regret at every horizon T against the best fixed point in hindsight is exact: the
minimiser of (lam T / 2)||x||^2 + <C_T, x> (C_T = sum c_t) over the ball is x* = -C_T / max(lam T, ||C_T|| / R).
All (sequence, seed) runs are batched in one state and advanced by the shared training loop (`runner.train`).

Claims (tolerances fixed before the run; regret averaged over seeds, exponents fitted on log R_T vs log T for
T >= `fit_from`):
  1. convex, stochastic: R_T = O(sqrt(sigma^2_{1:T})) = O(sqrt T): fitted exponent in [0.35, 0.65];
  2. convex, adversarial: R_T = O(sqrt(Sigma^2_{1:T})) = O(sqrt T): exponent <= 0.65 (an upper bound);
  3. convex, sigma = Sigma = 0: O(1) regret: exponent <= 0.15;
  4. strongly convex, stochastic and adversarial: R_T = O(log(sigma^2_{1:T} + Sigma^2_{1:T})) = O(log T): power-law
     exponent <= 0.25 for both, while the regret still grows (slope in log T > 0 for the stochastic sequence);
  5. sanity: the realised sigma^2_{1:T} / (T sigma^2) is 1 within 5%, Sigma^2_{1:T} as designed.
MUTATIONS: a constant step size (`step_rule=constant`) has linear regret on the stochastic sequences.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods.optim import optimistic_omd
from jaxlib_methods.runner import Claim, MeshConfig, Paper, make_mesh, save_figure, shard_leading, train
from jaxlib_methods.runner.constraints import Check, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=209, title="Optimistic Online Mirror Descent for Bridging Stochastic and Adversarial Online "
              "Convex Optimization", year=2023, arxiv="2302.04552")
DEMO = False
SEQUENCES = ("stochastic", "adversarial", "benign")


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  dim: PositiveInt = 10
  radius: PositiveFloat = 1.0                 # R of the ball X
  horizon: Annotated[int, Range(ge=64)] = 16384   # T
  seeds: Annotated[int, Range(ge=2)] = 8
  sigma: PositiveFloat = 1.0                  # stochastic noise level of the stochastic sequences
  variation: PositiveFloat = 1.0              # a: the alternating part of the adversarial sequences
  lam: PositiveFloat = 1.0                    # strong convexity of the quadratic losses
  mean_norm: PositiveFloat = 0.5              # ||mu|| (strongly convex: the centre -mu/lam lies inside the ball)
  convex_cap: PositiveFloat = 10.0            # cap on the self-confident step (L = 0 for linear losses)
  step_rule: Literal["paper", "constant"] = "paper"
  constant_step: PositiveFloat = 0.05         # the step of step_rule=constant (a mutation)
  log_every: PositiveInt = 256
  fit_from: PositiveInt = 512                 # exponents are fitted for T >= fit_from
  mesh: MeshConfig = MeshConfig()   # devices the (sequence, seed) runs are split over

  CHECKS = (Check("horizon % log_every == 0", "the loop runs whole chunks of log_every rounds"),
            Check("fit_from < horizon // 4", "the exponent is fitted over at least two octaves of T"),
            Check("mean_norm < lam * radius", "the strongly convex centre -mu/lam lies inside the ball"))

PRESETS = {"cpu": Config(), "gpu": Config(horizon=262144, seeds=32, dim=100, log_every=4096, fit_from=8192),
           "tpu": Config(horizon=262144, seeds=32, dim=100, log_every=4096, fit_from=8192)}
TINY = ("horizon=4096", "seeds=4", "log_every=128", "fit_from=256")
MUTATIONS = {"constant_step": ("step_rule=constant",)}


# ----------------------------------------------------------------------------------------------------------------------
# The SEA sequences and the exact regret.
# ----------------------------------------------------------------------------------------------------------------------

def _directions(config: Config):
  rng = np.random.default_rng(config.seed)
  mu = rng.normal(size=config.dim)
  mu *= config.mean_norm / np.linalg.norm(mu)
  u = rng.normal(size=config.dim)
  u -= (u @ mu) / (mu @ mu) * mu
  u /= np.linalg.norm(u)
  return jnp.asarray(mu, jnp.float32), jnp.asarray(u, jnp.float32)


def sea_vector(config: Config, sigma: jax.Array, a: jax.Array, key: jax.Array, t: jax.Array, mu, u):
  """c_t = mu + a (-1)^t u + sigma eps_t for one round (t 0-based; eps_t a pure function of key and t). Returns
  (c_t, sigma eps_t) (the noise, for the realised sigma^2_1:T)."""
  eps = jax.random.normal(jax.random.fold_in(key, t), (config.dim,)) / math.sqrt(config.dim)
  sign = jnp.where(t % 2 == 0, 1.0, -1.0)
  noise = sigma * eps
  return mu + a * sign * u + noise, noise


def sequence_parameters(config: Config, sequence: str) -> tuple[float, float]:
  """(sigma, a) of a sequence: stochastic (sigma, 0), adversarial (0, variation), benign (0, 0)."""
  return {"stochastic": (config.sigma, 0.0), "adversarial": (0.0, config.variation), "benign": (0.0, 0.0)}[sequence]


def comparator_loss(lam: float, radius: float, horizon, c_sum: jax.Array) -> jax.Array:
  """min over ||x|| <= R of (lam T / 2)||x||^2 + <C_T, x>: x* = -C_T / max(lam T, ||C_T|| / R)."""
  norm = jnp.linalg.norm(c_sum)
  scale = jnp.maximum(lam * horizon, norm / radius)
  x = -c_sum / jnp.maximum(scale, 1e-30)
  return 0.5 * lam * horizon * jnp.sum(x * x) + jnp.dot(c_sum, x)


def _learner(config: Config, lam: float):
  if config.step_rule == "constant":
    return optimistic_omd(config.constant_step, radius=config.radius)
  if lam == 0.0:
    return optimistic_omd(config.convex_cap, radius=config.radius, diameter=2.0 * config.radius)
  return optimistic_omd(lambda count: 1.0 / (lam * (count + 1.0) + 4.0 * lam), radius=config.radius)


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  mu, u = _directions(config)
  curvatures = {"convex": 0.0, "strongly_convex": config.lam}
  n = len(SEQUENCES) * config.seeds
  keys = jnp.tile(jax.random.split(jax.random.key(config.seed), config.seeds), (len(SEQUENCES),))  # same noise
  params = np.array([sequence_parameters(config, q) for q in SEQUENCES for _ in range(config.seeds)], np.float32)
  sig, amp = jnp.asarray(params[:, 0]), jnp.asarray(params[:, 1])
  txs = {c: _learner(config, lam) for c, lam in curvatures.items()}
  x0 = jnp.zeros((n, config.dim), jnp.float32)
  state = {c: {"x": x0, "opt": jax.vmap(txs[c].init)(x0), "loss": jnp.zeros(n, jnp.float32),
               "c_sum": jnp.zeros((n, config.dim), jnp.float32), "noise_sq": jnp.zeros(n, jnp.float32)}
           for c in curvatures}
  # The (sequence, seed) runs play on their own devices: iterates, learner states, keys and sequence parameters split.
  state, keys, sig, amp = shard_leading((state, keys, sig, amp), make_mesh(config.mesh), what="(sequence, seed) run")

  def one_round(curv, st, t):
    lam, tx = curvatures[curv], txs[curv]

    def per_run(x, opt, key, sigma, a):
      c, noise = sea_vector(config, sigma, a, key, t, mu, u)
      loss = 0.5 * lam * jnp.sum(x * x) + jnp.dot(c, x)
      upd, opt = tx.update(lam * x + c, opt, x)   # the gradient of f_t at x_t
      return x + upd, opt, loss, c, jnp.sum(noise * noise)

    x, opt, loss, c, nsq = jax.vmap(per_run)(st["x"], st["opt"], keys, sig, amp)
    return {"x": x, "opt": opt, "loss": st["loss"] + loss, "c_sum": st["c_sum"] + c, "noise_sq": st["noise_sq"] + nsq}

  @jax.jit
  def advance_n(st, ts):
    def body(s, t):
      return {curv: one_round(curv, s[curv], t) for curv in s}, None
    st, _ = jax.lax.scan(body, st, ts)
    return st

  def advance(st, start, num):
    return advance_n(st, jnp.arange(start, start + num, dtype=jnp.int32))

  @jax.jit
  def regrets(st, horizon):
    out = {}
    for curv, s in st.items():
      lam = curvatures[curv]
      comp = jax.vmap(lambda cs: comparator_loss(lam, config.radius, horizon, cs))(s["c_sum"])
      per_seq = jnp.mean(jnp.reshape(s["loss"] - comp, (len(SEQUENCES), config.seeds)), axis=1)
      for i, q in enumerate(SEQUENCES):
        out[f"regret/{curv}/{q}"] = per_seq[i]
    return out

  def measure(st, step):
    return regrets(st, jnp.asarray(max(step, 1), jnp.float32))

  result = train(workdir=workdir, state=state, advance=advance, measure=measure, num_steps=config.horizon,
                 log_every=config.log_every, checkpoint_every=None, desc="sea")
  rows = result.rows
  final = jax.device_get(result.state)
  ts = np.array([r["step"] for r in rows if r["step"] > 0], float)
  names = [f"{c}/{q}" for c in curvatures for q in SEQUENCES]
  curves = {name: np.array([r[f"regret/{name}"] for r in rows if r["step"] > 0], float) for name in names}
  keep = ts >= config.fit_from
  fits = {}
  for name, reg in curves.items():
    y = np.maximum(reg[keep], 1e-12)
    slope = float(np.polyfit(np.log(ts[keep]), np.log(y), 1)[0]) if np.all(reg[keep] > 0) else float("nan")
    log_slope = float(np.polyfit(np.log(ts[keep]), reg[keep], 1)[0])
    fits[name] = {"exponent": slope, "slope_in_log_T": log_slope, "final_regret": float(reg[-1])}
  t_final = config.horizon
  sigma_ratio = float(np.mean(final["convex"]["noise_sq"][:config.seeds]) / (t_final * config.sigma ** 2))
  results = {
      "horizons": ts.tolist(),
      "curves": {k: v.tolist() for k, v in curves.items()},
      "fits": fits,
      "sigma_sq_ratio": sigma_ratio,
      "adversarial_variation_per_round": 4.0 * config.variation ** 2,
      "step_rule": config.step_rule,
      "resumed_from": result.resumed_from,
  }
  _figure(results, config, workdir)
  return results


def claims(results: dict) -> list[Claim]:
  f = results["fits"]
  where_c = "Abstract; Sec. 3, convex and smooth: O(sqrt(sigma^2_1:T) + sqrt(Sigma^2_1:T))"
  where_s = "Abstract; Sec. 3, strongly convex and smooth: O(log(sigma^2_1:T + Sigma^2_1:T))"
  e = lambda name: f[name]["exponent"]
  return [
      Claim.close("convex, stochastic (sigma > 0, Sigma = 0): exponent of R_T in T", e("convex/stochastic"), 0.5,
                  atol=0.15, paper="1/2 (sqrt(sigma^2_1:T), sigma^2_1:T = T sigma^2)", kind="paper", where=where_c),
      Claim.at_most("convex, adversarial (sigma = 0, Sigma^2_1:T ~ T): exponent of R_T in T",
                    e("convex/adversarial"), 0.65, paper="<= 1/2 (sqrt(Sigma^2_1:T))", kind="paper", where=where_c),
      Claim.at_most("convex, sigma = Sigma = 0: exponent of R_T in T (constant regret)", e("convex/benign"), 0.15,
                    paper="0 (O(1))", kind="paper", where=where_c),
      Claim.at_most("strongly convex, stochastic: power-law exponent of R_T (logarithmic growth)",
                    e("strongly_convex/stochastic"), 0.25, paper="0 (log T)", kind="paper", where=where_s),
      Claim.at_most("strongly convex, adversarial: power-law exponent of R_T (logarithmic growth)",
                    e("strongly_convex/adversarial"), 0.25, paper="0 (log T)", kind="paper", where=where_s),
      Claim.at_least("strongly convex, stochastic: R_T still grows (slope of R_T in log T)",
                     f["strongly_convex/stochastic"]["slope_in_log_T"], 0.0, paper="> 0 (sigma^2_max log T)",
                     kind="sanity"),
      Claim.close("realised sigma^2_1:T / (T sigma^2)", results["sigma_sq_ratio"], 1.0, atol=0.05, kind="sanity"),
  ]


def _figure(results, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  ts = np.asarray(results["horizons"])
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  for ax, curv in zip(axes, ("convex", "strongly_convex")):
    for seq in SEQUENCES:
      name = f"{curv}/{seq}"
      reg = np.maximum(np.asarray(results["curves"][name]), 1e-6)
      ax.loglog(ts, reg, label=f"{seq} (exp. {results['fits'][name]['exponent']:.2f})")
    ref = np.sqrt(ts / ts[0]) * np.asarray(results["curves"][f"{curv}/stochastic"])[0]
    ax.loglog(ts, np.maximum(ref, 1e-6), "k:", label=r"$\sqrt{T}$")
    ax.set_xlabel("T (rounds)")
    ax.set_ylabel("static regret (mean over seeds)")
    ax.set_title(f"{curv.replace('_', ' ')} losses ({config.step_rule} steps)")
    ax.legend(fontsize=8)
  fig.suptitle("Optimistic OMD in the SEA model (Chen et al. 2023)")
  save_figure(fig, workdir / "figure.png")
