"""More is better: with a tuned ridge, random-feature regression improves monotonically with features and samples.

Paper [208]: James B. Simon, Dhruva Karkada, Nikhil Ghosh, Mikhail Belkin, "More is Better in Modern Machine
Learning: when Infinite Overparameterization is Optimal and Overfitting is Obligatory", ICLR 2024,
arXiv:2311.14646.

Setup: a power-law Gaussian task (`jaxlib_methods.data.power_law_task`: x ~ N(0, diag(lambda)), lambda_i = i^-alpha,
target power lambda_i v_i^2 ∝ i^-beta, label noise sigma) and linear random features phi(x) = F x / sqrt(p),
F_ij ~ N(0, 1), fitted by ridge regression a = (Phi^T Phi + delta I)^-1 Phi^T y. The test MSE is exact, not sampled:
with w = F^T a / sqrt(p), E (w.x - v.x)^2 + sigma^2 = (w - v)^T diag(lambda) (w - v) + sigma^2. Common random
numbers (nested samples and features) and an average over `num_seeds` draws; the ridge is tuned over a log grid for
each (n, p). p = inf is ridge regression on x itself (the random-feature kernel's limit).

Claims:
  1. With the ridge tuned, the test MSE is non-increasing in the number of features p (every n), up to a 1 %
     Monte-Carlo slack.
  2. ... and non-increasing in the number of samples n (every p), same slack.
  3. The eigenlearning estimate (`jaxlib_methods.analysis.eigenlearning_risk`, the p -> inf theory) matches the
     measured p = inf test MSE within 10 % at every (n, ridge) on the grid (max relative error).
  4. Overfitting is obligatory: at the optimal ridge (p = inf, largest n) the train MSE is below half the test MSE.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods.analysis import eigenlearning_risk
from jaxlib_methods.data import power_law_task
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, sweep
from jaxlib_methods.runner.constraints import Check, Length, NonNegativeFloat, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=208, title="More is Better in Modern Machine Learning: when Infinite Overparameterization "
              "is Optimal and Overfitting is Obligatory", year=2023, arxiv="2311.14646")
DEMO = True
# At the TINY size the tuned ridge still gives monotone curves; with the ridge fixed near 0 (no tuning: the paper's
# point is that the *optimally regularised* risk is monotone) the p = n interpolation peak appears and claim 1 fails.
TINY = ("num_dims=400", "ns=(16,32,64)", "ps=(8,16,32,64,128)", "num_ridges=9", "num_seeds=2")
MUTATIONS = {"untuned_ridge": ("ridge_min=1e-5", "ridge_max=1e-5", "num_ridges=1")}
MUTATION_TEST_SLOW = True   # its first mutation takes 10-14 s of CPU at TINY (CI log of 2026-11-30): kept for -m slow


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  num_dims: PositiveInt = 2000
  alpha: PositiveFloat = 1.5
  beta: PositiveFloat = 1.5
  noise_std: NonNegativeFloat = 0.1
  ns: Annotated[tuple[int, ...], Range(ge=1), Length(min=2)] = (32, 64, 128, 256)
  ps: Annotated[tuple[int, ...], Range(ge=1), Length(min=2)] = (16, 32, 64, 128, 256, 512, 1024)
  ridge_min: PositiveFloat = 1e-5
  ridge_max: PositiveFloat = 1e1
  num_ridges: PositiveInt = 19
  num_seeds: PositiveInt = 4
  mesh: MeshConfig = MeshConfig()   # devices the seeds' ridge fits are split over (num_seeds: a multiple)

  CHECKS = (Check("list(ns) == sorted(set(ns))", "ns increase strictly (monotonicity in n is read along them)"),
            Check("list(ps) == sorted(set(ps))", "ps increase strictly (monotonicity in p is read along them)"),
            Check("ridge_min <= ridge_max", "the ridge grid runs from ridge_min to ridge_max"))

PRESETS = {"cpu": Config(), "gpu": Config(num_dims=20000, ns=(64, 128, 256, 512, 1024, 2048),
                                          ps=(64, 128, 256, 512, 1024, 2048, 4096, 8192), num_seeds=8),
           "tpu": Config(num_dims=20000, ns=(64, 128, 256, 512, 1024, 2048),
                         ps=(64, 128, 256, 512, 1024, 2048, 4096, 8192), num_seeds=8)}


def _ridge_fit(phi: jax.Array, y: jax.Array, ridges: jax.Array) -> jax.Array:
  """Ridge solutions a(delta) for every delta, via the eigendecomposition of the n x n Gram matrix.
  phi [n, p], y [n] -> [num_ridges, p] (a = Phi^T (Phi Phi^T + delta I)^-1 y)."""
  evals, evecs = jnp.linalg.eigh(phi @ phi.T)
  evals = jnp.maximum(evals, 0.0)
  proj = evecs.T @ y
  coef = proj[None, :] / (evals[None, :] + ridges[:, None])        # [R, n]
  return (coef @ evecs.T) @ phi                                    # [R, p]


# Not under jax.jit: at the cpu preset's sizes, XLA:CPU's compiled float64 program of vmapped solves deadlocks on
# this 2-core machine (every thread waiting on a futex, no CPU time; TINY sizes run). Eagerly, each vmapped op is one
# batched op: the seed axis is still split over the mesh.
def _risks(x_all, y_all, f_all, p_masks, ps, lam, v, ridges, s2, *, n: int):
  """Test and train MSE of the ridge fits on the first n samples, for every seed (vmapped: x_all [S, n_max, M],
  y_all [S, n_max], f_all [S, p_max, M]), every p in `ps` (vmapped: the first p rows of f_all, the rest masked to 0
  by `p_masks` [P, p_max], which leaves Phi Phi^T and the fit unchanged) and p = inf (ridge on x itself), every
  ridge: -> (test, train), each [S, P + 1, R], float64."""
  def risks(w, pred, y):
    d = w - v[None]
    return jnp.sum(d * d * lam[None], axis=1) + s2, jnp.mean((pred - y[None]) ** 2, axis=1)

  def one_seed(x_all, y_all, f_all):
    x, y = x_all[:n], y_all[:n]

    def one_p(mask, p):
      f = f_all * mask[:, None]
      phi = x @ f.T / jnp.sqrt(p)
      a = _ridge_fit(phi, y, ridges)                               # [R, p_max]
      return risks(a @ f / jnp.sqrt(p), a @ phi.T, y)

    test, train = jax.vmap(one_p)(p_masks, ps)                     # [P, R]
    w = _ridge_fit(x, y, ridges)                                   # [R, M]
    test_inf, train_inf = risks(w, w @ x.T, y)
    return jnp.concatenate([test, test_inf[None]]), jnp.concatenate([train, train_inf[None]])

  return jax.vmap(one_seed)(x_all, y_all, f_all)


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  log = MetricsLog(workdir)
  log.reset()
  task = power_law_task(config.num_dims, alpha=config.alpha, beta=config.beta, noise_std=config.noise_std)
  lam = np.asarray(task.eigenvalues, np.float64)
  v = np.asarray(task.coefficients, np.float64)
  s2 = config.noise_std ** 2
  ridges = np.geomspace(config.ridge_min, config.ridge_max, config.num_ridges)
  n_max, p_max = max(config.ns), max(config.ps)
  ps_all = list(config.ps) + [None]                                  # None = p = inf (ridge on x)
  data = []
  for seed in range(config.num_seeds):
    rng = np.random.default_rng([config.seed, seed])
    x_all = rng.normal(size=(n_max, config.num_dims)) * np.sqrt(lam)
    y_all = x_all @ v + config.noise_std * rng.normal(size=n_max)
    data.append((x_all, y_all, rng.normal(size=(p_max, config.num_dims))))
  p_masks = (np.arange(p_max)[None] < np.asarray(config.ps)[:, None]).astype(np.float64)
  test = np.zeros((config.num_seeds, len(config.ns), len(ps_all), len(ridges)))
  train = np.zeros_like(test)
  with jax.enable_x64(True):
    # the seeds' fits are one vmapped float64 program per n, its seed axis split over the mesh
    seeds = shard_leading(tuple(np.stack(a) for a in zip(*data)), make_mesh(config.mesh), what="seed")
    consts = tuple(jnp.asarray(a, jnp.float64) for a in (p_masks, config.ps, lam, v, ridges, s2))
    for i, n in enumerate(config.ns):
      res = sweep.memoized(workdir, {"n": n}, lambda n=n: [np.asarray(a).tolist()
                                                           for a in _risks(*seeds, *consts, n=n)])
      test[:, i], train[:, i] = np.asarray(res[0], np.float64), np.asarray(res[1], np.float64)
  test_m, train_m = test.mean(0), train.mean(0)
  best = test_m.min(axis=-1)                                         # [n, p]
  best_idx = test_m.argmin(axis=-1)
  theory = np.array([[eigenlearning_risk(lam, lam * v ** 2, n, r, s2)["test_mse"] for r in ridges]
                     for n in config.ns])                            # [n, R]
  rel_err = np.abs(theory - test_m[:, -1, :]) / test_m[:, -1, :]
  for i, n in enumerate(config.ns):
    log.log(int(n), **{f"p{p if p else 'inf'}/best_test_mse": float(best[i, j]) for j, p in enumerate(ps_all)})
  i_last = len(config.ns) - 1
  k = best_idx[i_last, -1]
  out = {
      "ns": list(config.ns), "ps": list(config.ps), "ridges": ridges.tolist(),
      "best_test_mse": best.tolist(), "best_ridge": ridges[best_idx].tolist(),
      "theory_test_mse": theory.tolist(), "measured_inf_test_mse": test_m[:, -1, :].tolist(),
      "theory_max_rel_error": float(rel_err.max()),
      "train_over_test_at_opt": float(train_m[i_last, -1, k] / test_m[i_last, -1, k]),
      "max_increase_in_p": float(np.max(best[:, 1:] / best[:, :-1])),
      "max_increase_in_n": float(np.max(best[1:, :] / best[:-1, :])),
  }
  _figure(out, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  return [
      Claim.at_most("tuned ridge: test MSE non-increasing in #features p (max ratio between consecutive p)",
                    results["max_increase_in_p"], 1.01, paper="monotone: more features never hurt",
                    kind="paper", where="Sec. 4 (more data and features are better in RF regression)"),
      Claim.at_most("tuned ridge: test MSE non-increasing in #samples n (max ratio between consecutive n)",
                    results["max_increase_in_n"], 1.01, paper="monotone: more data never hurts",
                    kind="paper", where="Sec. 4 (more data and features are better in RF regression)"),
      Claim.at_most("eigenlearning prediction vs measured test MSE at p = inf (max relative error over n, ridge)",
                    results["theory_max_rel_error"], 0.10, paper="theory matches experiment",
                    kind="paper", where="Sec. 3-4 (omniscient risk estimate of KRR = the p -> inf limit)"),
      Claim.at_most("overfitting is obligatory: train MSE / test MSE at the optimal ridge (largest n, p = inf)",
                    results["train_over_test_at_opt"], 0.5, paper="optimal ridge fits the noise: train << test",
                    kind="paper", where="Sec. 5 (overfitting is obligatory for powerlaw tasks)"),
  ]


def _figure(results, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
  best = np.asarray(results["best_test_mse"])
  ps = results["ps"]
  for i, n in enumerate(results["ns"]):
    c = plt.cm.viridis(i / max(1, len(results["ns"]) - 1))
    ax[0].loglog(ps, best[i, :-1], "o-", color=c, label=f"n={n}")
    ax[0].axhline(best[i, -1], color=c, ls=":")
    ax[1].loglog(results["ridges"], results["measured_inf_test_mse"][i], "o", color=c, label=f"n={n} measured")
    ax[1].loglog(results["ridges"], results["theory_test_mse"][i], "-", color=c)
  ax[0].set_xlabel("features p (dotted: p = inf)")
  ax[0].set_title("test MSE at the tuned ridge")
  ax[1].set_xlabel("ridge")
  ax[1].set_title("p = inf: measured (dots) vs eigenlearning (lines)")
  ax[0].legend(fontsize=8)
  fig.suptitle("More is Better (Simon et al. 2023): power-law task, linear random features")
  save_figure(fig, workdir / "figure.png")
