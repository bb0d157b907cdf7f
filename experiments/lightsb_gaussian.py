"""Light Schrodinger Bridge on Gaussian -> Gaussian entropic OT, where the bridge is known in closed form: K = 1 with
a full S recovers the conditional mean and covariance of the optimal plan.

Paper [133]: Alexander Korotin, Nikita Gushchin, Evgeny Burnaev, "Light Schrodinger Bridge", ICLR 2024,
arXiv:2310.01174 (Sec. 3: the Gaussian-mixture potential, its conditional plan and the objective; Sec. 5: the
Gaussian / EOT-benchmark evaluation against closed-form plans; "LightSB ... trains in minutes on CPU").

Ground truth (float64 NumPy, independent of the library): for p0 = N(mu0, Sigma0), p1 = N(mu1, Sigma1) and the
entropic OT with cost ||x - y||^2 / 2 and regulariser eps, the optimal conditional plan is pi*(y | x) = N(r* + S* x,
eps S*): it has the form exp(<x, y>/eps) v*(y) with v* Gaussian (the Schrodinger system), and the marginal condition
Sigma1 = S Sigma0 S + eps S, mu1 = r + S mu0 gives
    M = (Sigma0^(1/2) Sigma1 Sigma0^(1/2) + eps^2/4 I)^(1/2) - eps/2 I,  S* = Sigma0^(-1/2) M Sigma0^(-1/2),
    r* = mu1 - S* mu0,
whose cross-covariance Sigma0 S* is the closed form of Janati et al. 2020 ("Entropic optimal transport between
unbalanced Gaussian measures has a closed form", NeurIPS 2020) (checked in tests/experiments/test_lightsb_gaussian.py).
LightSB (K = 1, full S = L L^T) is fitted by Adam, full batch, on `samples` draws from each marginal.
Claims (tolerances from the catalog, fixed before the run):
  1. conditional covariance: ||eps S_theta - eps S*||_F / ||eps S*||_F <= 1e-2;
  2. conditional mean: E_x ||m_theta(x) - m*(x)|| / E_x ||m*(x)|| <= 1e-2 over held-out x ~ p0;
Sanity: samples of the fitted plan from x ~ p0 have the target marginal (mean and covariance within 3e-2) and the fit
takes < 180 s on CPU. Mutation `loss_epsilon_scale=2`: the model is trained with 2 eps in the objective (a wrong
bridge): claim 1 fails.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.linalg

from flax import nnx

from jaxlib_methods.nn import LightSB, lightsb_conditional, lightsb_loss, lightsb_sample
from jaxlib_methods.runner import (Claim, MeshConfig, MetricsLog, Paper, make_mesh, minimize, save_figure,
                                   shard_leading, sweep)
from jaxlib_methods.runner.constraints import PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=133, title="Light Schrodinger Bridge", year=2024, arxiv="2310.01174")
DEMO = True


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  dim: Annotated[int, Range(ge=1, le=16)] = 2
  epsilon: PositiveFloat = 0.5
  samples: PositiveInt = 131072        # draws from each marginal (the objective's Monte-Carlo sample)
  steps: PositiveInt = 2000
  learning_rate: PositiveFloat = 0.02
  loss_epsilon_scale: PositiveFloat = 1.0   # eps used in the objective / eps of the problem (1 = right; mutation: 2)
  mesh: MeshConfig = MeshConfig()   # devices the Monte-Carlo samples are split over (samples: a multiple)

  CHECKS = ()


PRESETS = {"cpu": Config(), "gpu": Config(dim=8, samples=2 ** 20, steps=10000),
           "tpu": Config(dim=8, samples=2 ** 20, steps=10000)}
TINY = ("samples=32768", "steps=1000")
MUTATIONS = {"wrong_epsilon": ("loss_epsilon_scale=2.0",)}
MUTATION_TEST_SLOW = True   # the TINY fit (32768 samples x 1000 full-batch Adam steps) takes ~10 s of CPU


def gaussian_problem(config: Config):
  """(mu0, Sigma0, mu1, Sigma1), float64, seeded: random means and well-conditioned random covariances."""
  rng = np.random.default_rng(config.seed)
  d = config.dim

  def cov():
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return q @ np.diag(rng.uniform(0.3, 2.0, d)) @ q.T

  return rng.normal(size=d), cov(), rng.normal(size=d) + 2.0, cov()


def eot_conditional(mu0, s0, mu1, s1, eps):
  """(r*, S*) of the optimal conditional plan N(r* + S* x, eps S*) (see the module docstring), float64."""
  a = np.real(scipy.linalg.sqrtm(s0))
  a_inv = np.linalg.inv(a)
  m = np.real(scipy.linalg.sqrtm(a @ s1 @ a + eps ** 2 / 4 * np.eye(len(mu0)))) - eps / 2 * np.eye(len(mu0))
  s = a_inv @ m @ a_inv
  s = (s + s.T) / 2
  return mu1 - s @ mu0, s


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  t0 = time.time()
  mu0, s0, mu1, s1 = gaussian_problem(config)
  eps = config.epsilon
  r_star, s_star = eot_conditional(mu0, s0, mu1, s1, eps)
  rng = np.random.default_rng(config.seed + 1)
  x0 = jnp.asarray(rng.multivariate_normal(mu0, s0, config.samples), jnp.float32)
  x1 = jnp.asarray(rng.multivariate_normal(mu1, s1, config.samples), jnp.float32)
  model = LightSB(config.dim, 1, eps * config.loss_epsilon_scale, rngs=nnx.Rngs(config.seed))
  params = model.params()
  tx = optax.adam(config.learning_rate)
  eps_loss = eps * config.loss_epsilon_scale

  @jax.jit
  def fit(params, x0, x1):
    return minimize(lambda p: jnp.mean(lightsb_loss(p, x0, x1, eps_loss)), params, tx, length=config.steps)

  def fitted():
    # one model, full batch: the split is the Monte-Carlo samples (the objective is a mean of per-sample terms; jit
    # all-reduces the gradient)
    p, values = fit(params, *shard_leading((x0, x1), make_mesh(config.mesh), what="sample"))
    return {"params": [np.asarray(a).tolist() for a in p], "values": np.asarray(values).tolist(),
            "fit_seconds": time.time() - t0}

  stored = sweep.memoized(workdir, {"fit": "lightsb"}, fitted)   # a rerun reads the fitted model back
  params = type(params)(*(jnp.asarray(a, p.dtype) for a, p in zip(stored["params"], params)))
  values = np.asarray(stored["values"], np.float32)
  for i in range(0, config.steps, max(1, config.steps // 50)):
    log.log(i, loss=float(values[i]))
  fit_seconds = stored["fit_seconds"]
  # The fitted plan's conditional mean and covariance against the truth.
  xt = rng.multivariate_normal(mu0, s0, 16384)
  _, means, covs = lightsb_conditional(params, jnp.asarray(xt, jnp.float32), eps)
  cov_theta = np.asarray(covs[0], np.float64)
  cov_err = float(np.linalg.norm(cov_theta - eps * s_star) / np.linalg.norm(eps * s_star))
  m_star = r_star[None] + xt @ s_star.T
  mean_err = float(np.mean(np.linalg.norm(np.asarray(means[:, 0], np.float64) - m_star, axis=1))
                   / np.mean(np.linalg.norm(m_star, axis=1)))
  y = np.asarray(lightsb_sample(params, jax.random.PRNGKey(config.seed), jnp.asarray(xt, jnp.float32), eps))
  marg_mean_err = float(np.linalg.norm(y.mean(0) - mu1) / np.linalg.norm(mu1))
  marg_cov_err = float(np.linalg.norm(np.cov(y.T).reshape(config.dim, config.dim) - s1) / np.linalg.norm(s1))
  results = {"cov_rel_error": cov_err, "mean_rel_error": mean_err, "marginal_mean_rel_error": marg_mean_err,
             "marginal_cov_rel_error": marg_cov_err, "fit_seconds": fit_seconds, "loss": values.tolist()[::10],
             "S_star": s_star.tolist(), "S_theta": (cov_theta / eps).tolist()}
  _figure(results, xt, y, np.asarray(means[:, 0]), m_star, config, workdir)
  return results


def claims(results: dict) -> list[Claim]:
  where = "Sec. 3 (conditional plan N(r + S x, eps S)); Sec. 5 (Gaussian EOT with closed-form plans)"
  return [
      Claim.at_most("K = 1 full-S LightSB: conditional covariance relative error vs the closed-form EOT plan",
                    results["cov_rel_error"], 1e-2, paper="recovers the EOT plan (rel. error < 1e-2)", kind="paper",
                    where=where),
      Claim.at_most("K = 1 full-S LightSB: conditional mean relative error vs the closed-form EOT plan",
                    results["mean_rel_error"], 1e-2, paper="recovers the EOT plan (rel. error < 1e-2)", kind="paper",
                    where=where),
      Claim.at_most("samples of the fitted plan have the target marginal (max of mean and covariance rel. error)",
                    max(results["marginal_mean_rel_error"], results["marginal_cov_rel_error"]), 3e-2, paper="-",
                    kind="sanity"),
      Claim.at_most("fit time on CPU (seconds)", results["fit_seconds"], 180.0, paper="minutes on CPU",
                    kind="sanity"),
  ]


def _figure(results, xt, y, m_theta, m_star, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  axes[0].plot(np.arange(len(results["loss"])) * 10, results["loss"])
  axes[0].set_xlabel("Adam step")
  axes[0].set_ylabel("LightSB objective E log c - E log v")
  axes[1].scatter(xt[:400, 0], xt[:400, -1], s=4, label="x ~ p0")
  axes[1].scatter(y[:400, 0], y[:400, -1], s=4, label="y ~ pi_theta(.|x)")
  axes[1].scatter(m_star[:200, 0], m_star[:200, -1], s=6, marker="x", label="closed-form E[y|x]")
  axes[1].scatter(m_theta[:200, 0], m_theta[:200, -1], s=6, marker="+", label="LightSB E[y|x]")
  axes[1].set_xlabel("coordinate 0")
  axes[1].set_ylabel(f"coordinate {config.dim - 1}")
  axes[1].legend(fontsize=7)
  fig.suptitle("LightSB (Korotin et al. 2024) on Gaussian -> Gaussian EOT: K = 1 recovers the closed-form plan")
  save_figure(fig, workdir / "figure.png")
