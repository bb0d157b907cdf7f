"""Naive Bayes approaches its asymptotic error with ~log n samples, logistic regression with ~n (n = dimension).

Paper [43]: Chenyu Zheng, Guoqiang Wu, Fan Bao, Yue Cao, Chongxuan Li, Jun Zhu, "Revisiting Discriminative vs.
Generative Classifiers: Theory and Implications", ICML 2023, arXiv:2302.02334. Abstract: "multiclass naive Bayes
requires O(log n) samples to approach its asymptotic error while the corresponding multiclass logistic regression
requires O(n) samples, where n is the feature dimension"; "simulation results on a mixture of Gaussian validate our
theoretical findings".

Setup: the paper's simulation ("easy" mode of its data generator): two classes with means -1 and +1 in every
coordinate and the diagonal covariance diag(n, ..., n, 1, ..., 1) (half the coordinates of variance n), balanced
labels; for each dimension n, `repeats` training sets, fits on their first m samples for m on a geometric grid up to
`max_samples_factor` * n (one padded shape and a `where` mask: one compilation per n). Naive Bayes =
`analysis.gaussian_naive_bayes` (shared diagonal variance, the paper's), logistic regression =
`analysis.logistic_regression` (C = 1 as in the paper's `LogisticRegression(C=1)`, L-BFGS). Both are linear, so the
test error is exact: err = (Phi((v.mu_0 + c)/s) + Phi(-(v.mu_1 + c)/s)) / 2 with s^2 = v^T Sigma v. The asymptotic
error of both is the Bayes error (the NB model is correct here); "samples needed" m(n) = the smallest grid m whose
mean error over the repeats is <= Bayes error + eps (eps = 0.01, the paper's stopping rule). The constants below
were chosen on seed 0 (dims 8..128, then the cpu grid 32..256 with 20 sizes up to 4n, cut to 16 sizes up to 3n for
run time); the claims are judged on the preset's seed 1.
Claims (tolerances fixed before the judged run):
  1. [paper] NB needs O(log n): max over n of m_NB(n) / ln(n) <= 5;
  2. [paper] LR needs ~n: the least-squares slope of log m_LR(n) against log n is >= 0.5 (O(n): slope <= 1; a
     logarithmic growth would give ~0.1 here);
  3. [paper] NB approaches its asymptotic error faster: m_LR(n) >= 2 m_NB(n) at every n;
  sanity: every m(n) is reached within the grid (no censored point).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import norm

from jaxlib_methods import analysis
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, sweep
from jaxlib_methods.runner.constraints import Check, Length, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=43, title="Revisiting Discriminative vs. Generative Classifiers: Theory and Implications",
              year=2023, arxiv="2302.02334")
DEMO = False


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 1
  dims: Annotated[tuple[int, ...], Range(ge=2), Length(min=2)] = (32, 64, 128, 256)
  repeats: Annotated[int, Range(ge=2)] = 5
  grid_points: Annotated[int, Range(ge=4)] = 16
  max_samples_factor: Annotated[float, Range(ge=1)] = 3.0     # largest training set = factor * n
  eps: Annotated[float, Range(gt=0, lt=0.5)] = 0.01
  C: PositiveFloat = 1.0
  lbfgs_iters: PositiveInt = 50
  mesh: MeshConfig = MeshConfig()   # devices the repeats (data draws) are split over

  CHECKS = (Check("list(dims) == sorted(set(dims))", "dims must be strictly increasing"),)


PRESETS = {"cpu": Config(), "gpu": Config(dims=(100, 200, 400, 1000), repeats=10),
           "tpu": Config(dims=(100, 200, 400, 1000), repeats=10)}
TINY = ("dims=(16,32)", "repeats=2", "grid_points=10", "lbfgs_iters=20")
MUTATION_TEST_SLOW = True   # TINY still compiles two vmapped L-BFGS fits: ~10 s of CPU, so the mutation test is slow
MUTATIONS = {"lr_as_strong_prior": ("C=1e-4",)}   # a crushed logistic model: at TINY it never reaches Bayes + eps


def linear_error(v, c, mu0, mu1, std) -> float:
  """Exact test error of the rule 'class 1 iff x.v + c > 0' for balanced classes N(mu_k, diag(std^2))."""
  s = math.sqrt(float(np.sum(v ** 2 * std ** 2)))
  if not np.isfinite(s) or s == 0:
    return 0.5
  return float(0.5 * norm.cdf((v @ mu0 + c) / s) + 0.5 * norm.cdf(-(v @ mu1 + c) / s))


def _problem(n: int):
  std = np.sqrt(np.array([n] * (n // 2) + [1] * (n - n // 2), np.float64))
  return -np.ones(n), np.ones(n), std


def one_dim(config: Config, n: int) -> dict:
  mu0, mu1, std = _problem(n)
  mmax = int(round(config.max_samples_factor * n))
  grid = np.unique(np.round(np.geomspace(4, mmax, config.grid_points)).astype(int))
  key = jax.random.fold_in(jax.random.key(config.seed), n)
  with jax.enable_x64(True):
    y = jnp.arange(mmax) % 2
    x = jax.random.normal(key, (config.repeats, mmax, n), jnp.float64) * std + jnp.where(y[:, None] == 0, -1.0, 1.0)
    masks = jnp.arange(mmax)[None] < jnp.asarray(grid)[:, None]
    x = shard_leading(x, make_mesh(config.mesh), what="repeat")   # each device fits its repeats' training sets
    per = lambda f: jax.jit(jax.vmap(jax.vmap(f, (None, 0)), (0, None)))(x, masks)
    nb = per(lambda xr, w: analysis.gaussian_naive_bayes(xr, y, num_classes=2, where=w))
    lr = per(lambda xr, w: analysis.logistic_regression(xr, y, num_classes=2, where=w, C=config.C,
                                                        iters=config.lbfgs_iters))
    nb = jax.tree.map(np.asarray, nb)
    lr = jax.tree.map(np.asarray, lr)
  err_nb = np.zeros((config.repeats, grid.size))
  err_lr = np.zeros_like(err_nb)
  for r in range(config.repeats):
    for i in range(grid.size):
      m, var, lp = nb.means[r, i], nb.variances[r, i], nb.log_prior[r, i]
      err_nb[r, i] = linear_error((m[1] - m[0]) / var, lp[1] - lp[0] - np.sum((m[1] ** 2 - m[0] ** 2) / (2 * var)),
                                  mu0, mu1, std)
      w, b = lr.weights[r, i], lr.bias[r, i]
      err_lr[r, i] = linear_error(w[:, 1] - w[:, 0], b[1] - b[0], mu0, mu1, std)
  bayes = float(norm.cdf(-math.sqrt(float(np.sum((2 / std) ** 2))) / 2))
  return {"n": n, "grid": grid.tolist(), "bayes": bayes, "nb": err_nb.tolist(), "lr": err_lr.tolist()}


def samples_needed(res: dict, method: str, eps: float) -> float:
  """Smallest grid m with mean error <= Bayes + eps (inf when the grid never gets there)."""
  mean = np.mean(np.asarray(res[method], np.float64), 0)
  hit = np.flatnonzero(mean <= res["bayes"] + eps)
  return float(res["grid"][hit[0]]) if hit.size else float("inf")


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  out = {"dims": list(config.dims), "eps": config.eps, "runs": []}
  for i, n in enumerate(config.dims):
    res = sweep.memoized(workdir, {"n": n}, lambda n=n: one_dim(config, n))
    out["runs"].append(res)
    log.log(i, n=n, m_nb=samples_needed(res, "nb", config.eps), m_lr=samples_needed(res, "lr", config.eps))
  _figure(out, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  eps = results["eps"]
  ns = np.array(results["dims"], np.float64)
  m_nb = np.array([samples_needed(r, "nb", eps) for r in results["runs"]])
  m_lr = np.array([samples_needed(r, "lr", eps) for r in results["runs"]])
  where = "Abstract; Sec. 4 (Theorems: NB O(log n), LR O(n)); Sec. 6.1 (simulation) [43]"
  out = [Claim.at_most("naive Bayes: max over n of m_NB(n) / ln n (samples to reach Bayes error + eps)",
                       float(np.max(m_nb / np.log(ns))), 5.0, paper="O(log n)", kind="paper", where=where)]
  slope = float(np.polyfit(np.log(ns), np.log(m_lr), 1)[0]) if np.all(np.isfinite(m_lr)) else float("nan")
  out.append(Claim.at_least("logistic regression: fitted slope of log m_LR(n) against log n", slope, 0.5,
                            paper="O(n) (slope up to 1)", kind="paper", where=where))
  ratio = float(np.min(m_lr / m_nb))
  out.append(Claim.at_least("min over n of m_LR(n) / m_NB(n)", ratio, 2.0,
                            paper="naive Bayes converges faster", kind="paper",
                            where="Abstract; Sec. 6.1 (simulation) [43]"))
  out.append(Claim.holds("every m(n) is reached inside the sample grid", bool(np.all(np.isfinite(m_nb))
                         and np.all(np.isfinite(m_lr))), detail="no censored point", kind="sanity"))
  return out


def _figure(out: dict, workdir: pathlib.Path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
  colors = plt.cm.viridis(np.linspace(0, 0.9, len(out["runs"])))
  for r, c in zip(out["runs"], colors):
    g = np.asarray(r["grid"])
    for method, ls in (("nb", "-"), ("lr", "--")):
      axes[0].semilogx(g, np.mean(np.asarray(r[method], np.float64), 0), ls, color=c, label=f"n = {r['n']}, {method}")
  axes[0].axhline(out["eps"], color="k", lw=0.8, ls=":", label="Bayes + eps (Bayes ~ 0)")
  axes[0].set_xlabel("training samples m")
  axes[0].set_ylabel("test error (exact)")
  axes[0].set_title("naive Bayes (solid) vs logistic regression (dashed)", fontsize=9)
  axes[0].legend(fontsize=6, ncol=2)
  ns = np.asarray(out["dims"], np.float64)
  for method, marker, name in (("nb", "o-", "naive Bayes"), ("lr", "s--", "logistic regression")):
    m = [samples_needed(r, method, out["eps"]) for r in out["runs"]]
    axes[1].loglog(ns, m, marker, label=name)
  axes[1].loglog(ns, 5 * np.log(ns), "k:", lw=0.8, label="5 ln n")
  axes[1].set_xlabel("dimension n")
  axes[1].set_ylabel("samples to reach Bayes error + eps")
  axes[1].set_title("~log n (NB) vs ~n (LR)", fontsize=9)
  axes[1].legend(fontsize=8)
  fig.suptitle("Discriminative vs generative classifiers (Zheng et al. 2023, arXiv:2302.02334)")
  save_figure(fig, workdir / "figure.png")
