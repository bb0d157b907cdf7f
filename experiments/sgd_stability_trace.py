"""Dynamical stability of SGD bounds the Hessian TRACE by 2/eta; GD's only bounds lambda_max; larger eta, flatter and
smaller-norm minima that generalise better (diagonal linear networks on sparse regression).

Paper [198]: Lei Wu, Weijie J. Su, "The Implicit Regularization of Dynamical Stability in Stochastic Gradient Descent",
ICML 2023, arXiv:2305.17490. Abstract: "if a global minimum is linearly stable for SGD, then the trace of Hessian must
be less than or equal to 2/eta ... for gradient descent (GD), the stability imposes a similar constraint but only on
the largest eigenvalue of Hessian"; for diagonal linear networks the sharpness is equivalent to a parameter norm, and
"as the LR increases, the regularization effect becomes more pronounced, elucidating why SGD with a larger LR
consistently demonstrates superior generalization".

Setup (float32, everything vmapped over the eta grid x seeds, one compile per arm):
  - data: `jaxlib_methods.data.teacher_student` (x ~ N(0, I_d), noiseless y = <beta*, x>) with a `sparsity`-sparse
    teacher of +-1 entries (normalised), n_train < d (over-parameterised: a continuum of global minima);
  - model: the diagonal linear network f(x) = <u * v, x>, loss L = (1/2n) sum_i (f(x_i) - y_i)^2, initialised at
    u = alpha 1, v = 0 (so the teacher is not yet fitted and large alpha means a sharp, large-norm path);
  - SGD with batch size `sgd_batch` (1, the paper's case; samples drawn with replacement) and full-batch GD at the same
    learning rates eta, linear warm-up over `warmup` steps, `steps` steps in all;
  - at the end: tr(H) by `jaxlib_methods.analysis.hessian_trace` (Hutch++ with 3P HVPs: exact, checked against the
    interpolation closed form tr H = (1/n) sum_i sum_j (u_j^2 + v_j^2) x_ij^2 as a sanity claim), lambda_max by
    `jaxlib_methods.analysis.hessian_top_eigenvalue` (Lanczos), the parameter norm ||u||^2 + ||v||^2 and the test MSE.
Claims (tolerances fixed before the run):
  1. [paper] SGD (B = 1): max over (eta, seed) of eta tr(H) / 2 <= 1 (every converged SGD minimum has tr H <= 2/eta);
  2. [paper] GD: max over (eta, seed) of eta lambda_max(H) / 2 <= 1, and min over (eta, seed) of eta tr(H) / 2 >= 1
     (GD's minima obey only the lambda_max bound; their trace exceeds 2/eta at every eta of the grid);
  3. [paper] larger eta, smaller norm: SGD's mean ||theta||^2 decreases strictly along the eta grid, and the paired
     drop from the smallest to the largest eta is >= 3 standard errors over seeds;
  4. [paper] larger eta, lower test error: SGD's paired test-MSE drop from the smallest to the largest eta is >= 3
     standard errors, and at the largest eta SGD's test MSE is below GD's by >= 3 standard errors (paired);
  sanity: every run reached train loss <= 1e-6; Hutch++ trace vs the closed form (rel. error <= 1e-3); Lanczos
  lambda_max vs eigvalsh of J^T J / n (rel. error <= 1e-3).
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import analysis
from jaxlib_methods.data import teacher_student
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading
from jaxlib_methods.runner import sweep
from jaxlib_methods.runner.constraints import Check, Length, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=198, title="The Implicit Regularization of Dynamical Stability in Stochastic Gradient Descent",
              year=2023, arxiv="2305.17490")
DEMO = False

CONVERGED_LOSS = 1e-6


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 1                                                   # seed 0 was the scan that chose alpha and etas
  seeds: Annotated[int, Range(ge=3)] = 10                         # data sets (and SGD sample orders)
  dim: Annotated[int, Range(ge=2)] = 40
  n_train: PositiveInt = 20
  n_test: PositiveInt = 2000
  sparsity: PositiveInt = 3                                        # nonzeros of the teacher
  alpha: PositiveFloat = 0.7                                       # init u = alpha 1, v = 0
  etas: Annotated[tuple[float, ...], Range(gt=0), Length(min=2)] = (0.10, 0.14, 0.18, 0.22)
  steps: PositiveInt = 40000
  warmup: Annotated[int, Range(ge=0)] = 5000                       # linear learning-rate warm-up
  sgd_batch: PositiveInt = 1                                       # the paper's B = 1; n_train makes "SGD" = GD
  lanczos_iters: PositiveInt = 80
  mesh: MeshConfig = MeshConfig()   # devices the seeds are split over

  CHECKS = (Check("sparsity <= dim", "the teacher has at most dim nonzeros"),
            Check("n_train < dim", "over-parameterised: fewer samples than input dimensions"),
            Check("sgd_batch <= n_train", "a batch cannot exceed the training set"),
            Check("warmup < steps", "the warm-up must end before training does"),
            Check("list(etas) == sorted(set(etas))", "etas must be strictly increasing"))


PRESETS = {"cpu": Config(), "gpu": Config(seeds=10, dim=100, n_train=50), "tpu": Config(seeds=10, dim=100, n_train=50)}
MUTATION_TEST_SLOW = True  # TINY + the mutated run took 9.0 s in the default suite (2 cores, 2026-12-01): under -m slow
TINY = ("steps=3000", "warmup=500", "seeds=3", "etas=(0.1,0.22)", "lanczos_iters=20")
MUTATIONS = {"full_batch_sgd": ("sgd_batch=20",)}


def make_data(config: Config, s: int):
  """Seed s's train/test sets: x ~ N(0, I), y = <beta*, x> with a sparse +-1 teacher (normalised)."""
  key = jax.random.fold_in(jax.random.key(config.seed), s)
  k_beta, k_train, k_test = jax.random.split(key, 3)
  support = jax.random.permutation(k_beta, config.dim)[:config.sparsity]
  signs = jax.random.rademacher(jax.random.fold_in(k_beta, 1), (config.sparsity,), jnp.float32)
  beta = jnp.zeros(config.dim).at[support].set(signs)
  train = teacher_student(k_train, config.n_train, config.dim, beta=beta)
  test = teacher_student(k_test, config.n_test, config.dim, beta=beta)
  return train.x, train.y, test.x, test.y


def loss_fn(theta, x, y):
  u, v = theta
  return 0.5 * jnp.mean((x @ (u * v) - y) ** 2)


@functools.partial(jax.jit, static_argnames=("batch", "steps", "warmup"))
def train_arm(xs, ys, etas, keys, alpha, *, batch: int, steps: int, warmup: int):
  """Final (u, v) for every (eta, seed): xs [S, n, d], ys [S, n], etas [E], keys [S] -> u, v [E, S, d].

  Jitted once per (batch, steps, warmup): the SGD arm of a full-batch mutation shares the GD arm's compilation."""
  n, d = xs.shape[1], xs.shape[2]

  def one(x, y, eta, key):
    theta = (jnp.full((d,), alpha, jnp.float32), jnp.zeros((d,), jnp.float32))

    def step(theta, t):
      lr = eta * jnp.minimum(1.0, (t + 1.0) / max(warmup, 1))
      if batch == n:
        xb, yb = x, y
      else:
        idx = jax.random.randint(jax.random.fold_in(key, t), (batch,), 0, n)
        xb, yb = x[idx], y[idx]
      g = jax.grad(loss_fn)(theta, xb, yb)
      return jax.tree.map(lambda p, gp: p - lr * gp, theta, g), None

    return jax.lax.scan(step, theta, jnp.arange(steps))[0]

  per_seed = jax.vmap(one, in_axes=(0, 0, None, 0))
  return jax.vmap(per_seed, in_axes=(None, None, 0, None))(xs, ys, etas, keys)


@functools.partial(jax.jit, static_argnames=("lanczos_iters",))
def measure(u, v, xs, ys, xts, yts, *, lanczos_iters: int) -> dict:
  """Per (eta, seed): train loss, tr H (Hutch++ and closed form), lambda_max (Lanczos and eigvalsh), norm, test MSE."""
  p = 2 * xs.shape[2]

  def one(u, v, x, y, xt, yt):
    f = lambda th: loss_fn(th, x, y)
    tr = analysis.hessian_trace(f, (u, v), key=jax.random.key(0), num_probes=3 * p, method="hutch++")
    lam, _ = analysis.hessian_top_eigenvalue(f, (u, v), key=jax.random.key(1), num_iters=lanczos_iters,
                                             method="lanczos")
    jac = jnp.concatenate([x * v, x * u], axis=1)                      # [n, 2d]: d f(x_i) / d (u, v)
    return {"train_loss": f((u, v)), "trace": tr,
            "trace_closed": jnp.mean(jnp.sum((u ** 2 + v ** 2) * x ** 2, axis=1)),
            "lambda_max": lam, "lambda_max_closed": jnp.linalg.eigvalsh(jac.T @ jac / x.shape[0])[-1],
            "norm": jnp.sum(u ** 2 + v ** 2), "l1": jnp.sum(jnp.abs(u * v)),
            "test_mse": jnp.mean((xt @ (u * v) - yt) ** 2)}

  return jax.vmap(jax.vmap(one), in_axes=(0, 0, None, None, None, None))(u, v, xs, ys, xts, yts)


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  data = [make_data(config, s) for s in range(config.seeds)]
  xs, ys, xts, yts = (jnp.stack(a) for a in zip(*data))
  etas = jnp.asarray(config.etas, jnp.float32)
  keys = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), 10 ** 6), config.seeds)
  # the seeds (data sets and SGD sample orders) are split over the mesh; every eta of a seed runs on its device
  xs, ys, xts, yts, keys = shard_leading((xs, ys, xts, yts, keys), make_mesh(config.mesh), what="seed")
  out = {"etas": list(config.etas)}
  log = MetricsLog(workdir)
  log.reset()
  for i, (arm, batch) in enumerate((("sgd", config.sgd_batch), ("gd", config.n_train))):
    def sub_run(batch=batch):
      u, v = train_arm(xs, ys, etas, keys, config.alpha, batch=batch, steps=config.steps, warmup=config.warmup)
      out = measure(u, v, xs, ys, xts, yts, lanczos_iters=config.lanczos_iters)
      return {k: np.asarray(val, np.float64).tolist() for k, val in out.items()}
    out[arm] = sweep.memoized(workdir, {"arm": arm, "batch": batch}, sub_run)
    log.log(i, arm=arm, mean_trace=float(np.nanmean(_arr(out[arm]["trace"]))),
            mean_norm=float(np.nanmean(_arr(out[arm]["norm"]))))
  _figure(out, workdir)
  return out


def _arr(x) -> np.ndarray:
  """A stored result (JSON: NaN / inf come back as strings) as a float64 array."""
  return np.vectorize(float, otypes=[np.float64])(np.asarray(x, dtype=object))


def _paired_t(a, b) -> float:
  """Mean of a - b over seeds in units of its standard error (NaN-safe: NaN if any entry is NaN)."""
  diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
  if not np.all(np.isfinite(diff)):
    return float("nan")
  se = diff.std(ddof=1) / np.sqrt(diff.size)
  if se > 0:
    return float(diff.mean() / se)
  return 0.0 if diff.mean() == 0 else float(np.copysign(np.inf, diff.mean()))


def claims(results: dict) -> list[Claim]:
  etas = np.asarray(results["etas"])[:, None]
  sgd = {k: _arr(v) for k, v in results["sgd"].items()}
  gd = {k: _arr(v) for k, v in results["gd"].items()}
  where = "Abstract; Sec. 3, linear stability of SGD vs GD [198]"
  out = [
      Claim.at_most("SGD (B = 1): max over (eta, seed) of eta * tr(H) / 2 at the minimum reached",
                    float(np.max(etas * sgd["trace"] / 2)), 1.0, paper="tr(H) <= 2/eta", kind="paper", where=where),
      Claim.at_most("GD: max over (eta, seed) of eta * lambda_max(H) / 2 at the minimum reached",
                    float(np.max(etas * gd["lambda_max"] / 2)), 1.0, paper="lambda_max(H) <= 2/eta", kind="paper",
                    where=where),
      Claim.at_least("GD: min over (eta, seed) of eta * tr(H) / 2 (its trace is not bounded by 2/eta)",
                     float(np.min(etas * gd["trace"] / 2)), 1.0, paper="tr(H) can exceed 2/eta for GD", kind="paper",
                     where=where),
  ]
  mean_norm = sgd["norm"].mean(axis=1)
  out.append(Claim.holds("SGD: mean ||theta||^2 over seeds decreases strictly along the eta grid",
                         bool(np.all(np.diff(mean_norm) < 0)), paper="larger eta => smaller parameter norm",
                         detail=f"means {np.round(mean_norm, 3).tolist()}", kind="paper",
                         where="Sec. 4 (sharpness = parameter norm for diagonal linear networks) [198]"))
  out.append(Claim.at_least("SGD: paired drop of ||theta||^2 from the smallest to the largest eta, in standard errors",
                            _paired_t(sgd["norm"][0], sgd["norm"][-1]), 3.0,
                            paper="larger eta => smaller parameter norm", kind="paper",
                            where="Sec. 4 (sharpness = parameter norm for diagonal linear networks) [198]"))
  out.append(Claim.at_least("SGD: paired drop of test MSE from the smallest to the largest eta, in standard errors",
                            _paired_t(sgd["test_mse"][0], sgd["test_mse"][-1]), 3.0,
                            paper="larger LR => better generalization", kind="paper", where="Abstract; Sec. 5 [198]"))
  out.append(Claim.at_least("largest eta: paired test-MSE gap GD - SGD, in standard errors",
                            _paired_t(gd["test_mse"][-1], sgd["test_mse"][-1]), 3.0,
                            paper="SGD generalizes better than GD", kind="paper", where="Abstract [198]"))
  worst_loss = float(max(np.max(sgd["train_loss"]), np.max(gd["train_loss"])))
  out.append(Claim.at_most("every run converged: max final train loss", worst_loss, CONVERGED_LOSS,
                           paper="global minima", kind="sanity"))
  rel_tr = float(max(np.max(np.abs(a["trace"] / a["trace_closed"] - 1)) for a in (sgd, gd)))
  out.append(Claim.at_most("Hutch++ tr(H) vs the interpolation closed form (max rel. error)", rel_tr, 1e-3,
                           paper="exact at 3P probes", kind="sanity"))
  rel_lam = float(max(np.max(np.abs(a["lambda_max"] / a["lambda_max_closed"] - 1)) for a in (sgd, gd)))
  out.append(Claim.at_most("Lanczos lambda_max vs eigvalsh(J^T J / n) (max rel. error)", rel_lam, 1e-3,
                           paper="exact", kind="sanity"))
  return out


def _figure(out: dict, workdir: pathlib.Path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  etas = np.asarray(out["etas"])
  grid = np.linspace(etas.min() * 0.8, etas.max() * 1.1, 100)
  fig, axes = plt.subplots(1, 3, figsize=(14, 4))
  styles = {"sgd": ("o", "tab:blue", "SGD (B = 1)"), "gd": ("s", "tab:orange", "GD")}
  for arm, (marker, color, label) in styles.items():
    a = {k: _arr(v) for k, v in out[arm].items()}
    for j in range(a["trace"].shape[1]):
      kw = {"label": label} if j == 0 else {}
      axes[0].plot(etas, a["trace"][:, j], marker, color=color, alpha=0.6, **kw)
      axes[1].plot(etas, a["lambda_max"][:, j], marker, color=color, alpha=0.6, **kw)
    axes[2].errorbar(etas, a["test_mse"].mean(1), a["test_mse"].std(1, ddof=1) / np.sqrt(a["test_mse"].shape[1]),
                     marker=marker, color=color, label=f"{label}: test MSE")
    axes[2].plot(etas, a["norm"].mean(1) / 40, marker, ls="--", color=color, alpha=0.5,
                 label=f"{label}: ||theta||^2 / 40")
  for ax, name in zip(axes[:2], ("tr(H)", "lambda_max(H)")):
    ax.plot(grid, 2 / grid, "k--", label="2 / eta")
    ax.set_xlabel("learning rate eta")
    ax.set_ylabel(f"{name} at the minimum reached")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
  axes[0].set_title("SGD: tr(H) <= 2/eta; GD's trace is not bounded", fontsize=9)
  axes[1].set_title("GD: only lambda_max <= 2/eta", fontsize=9)
  axes[2].set_xlabel("learning rate eta")
  axes[2].set_ylabel("test MSE (mean +- s.e.) / scaled norm")
  axes[2].set_title("larger eta: smaller norm, lower test error (SGD)", fontsize=9)
  axes[2].legend(fontsize=7)
  fig.suptitle("Dynamical stability of SGD on a diagonal linear network (Wu & Su 2023, arXiv:2305.17490)")
  save_figure(fig, workdir / "figure.png")
