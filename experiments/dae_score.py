"""What regularized auto-encoders learn: (r(x) - x) / sigma^2 estimates the score d/dx log p(x).

Paper [178]: Guillaume Alain, Yoshua Bengio, "What Regularized Auto-Encoders Learn from the Data Generating
Distribution", JMLR 2014, arXiv:1211.4246 (Sec. 3, Theorem 1: the optimal denoising reconstruction with Gaussian
corruption of variance sigma^2 is r*(x) = x + sigma^2 d/dx log p(x) + o(sigma^2)).

Setup: a 1-D mixture of three Gaussians (`jaxlib_methods.data.make_gaussian_mixture`, true score in closed form).
For each sigma of a grid, a denoising auto-encoder r(x) = x + MLP(x) is trained (Adam, fresh samples every step) on
E ||r(x + sigma eps) - x||^2. Two estimates per sigma, compared with the true score on a grid covering the bulk of
p (errors weighted by p), by *relative L2 error* ||est - score|| / ||score|| (a cosine would be blind to a wrong
scale: dividing by sigma instead of sigma^2 keeps every cosine and multiplies the estimate by sigma):
  * the exact minimiser of the denoising loss, r*(x) = E[x | x + sigma eps = x] = x + sigma^2 d/dx log p_sigma(x)
    (Tweedie; p_sigma = p * N(0, sigma^2) is again a mixture), which isolates the sigma -> 0 limit of the theorem;
  * the trained DAE's (r(x) - x) / sigma^2.
`score_estimator=sigma` (a mutation) divides by sigma instead of sigma^2 in both.

Claims (tolerances fixed before the runs; claim 1 pre-registered on 2026-12-03 before its judged run):
  1. [paper, Thm. 1] The trained DAE's score error falls to 0 as sigma -> 0: log-log slope of the relative error of
     (r(x)-x)/sigma^2 fitted over the `sigmas` grid >= 1.0 (the theorem's asymptotic rate is 2; the grid reaches
     sigma = 0.8, comparable to the mixture's component stds, far from the asymptote: the exact DAE's slope over the
     cpu grid 0.8 .. 0.1 is 1.35; we ask for at least half the asymptotic rate).
  2. [paper, Thm. 1] The trained DAE estimates the score: relative error of (r(x)-x)/sigma^2 against the true score
     at the smallest sigma <= 0.15.
  3. [paper, Thm. 1 / Fig. 2] ... and that error falls as sigma falls (non-increasing over the grid).
  4. [sanity] the exact DAE's score error falls like sigma^2: fitted log-log slope over `exact_sigmas` in [1.6, 2.4]
     (a closed form of the Tweedie-smoothed mixture, no trained model: it checks the setup, it cannot test [178]).
  5. [sanity] training reaches the optimal DAE of each sigma: relative error of the trained estimate against the
     exact d/dx log p_sigma <= 0.1 at every sigma.
  6. [sanity] the catalog's target: cosine with the true score at the smallest sigma >= 0.95.
Observed before 2026-12-03 at the CPU size (seed 0): exact errors 0.178, 0.051, 0.013, 0.0033 at sigma 0.2 .. 0.025
(slope 1.9); trained errors 0.83, 0.48, 0.18, 0.065 at sigma 0.8 .. 0.1; with /sigma the error at sigma 0.1 is ~0.9.

Claims audit (2026-12-03), acted on the same day: the old paper claim 1 (the exact DAE's slope) was a closed form
with no trained model, and at TINY the mutation `divide_by_sigma` was caught through it. It is now sanity row 4; the
paper's rate statement is claim 1, fitted on the trained DAEs, with its tolerance (slope >= 1.0) written here before
the judged run `python -m experiments run dae_score --preset cpu --workdir /tmp/rec_s24/dae_score --fresh`.
Judged run (2026-12-03, cpu preset, seed 0, 71 s wall on the shared 2-core machine): trained errors 0.826, 0.481,
0.183, 0.0649 at sigma 0.8 .. 0.1, fitted slope 1.24 >= 1.0 (claim 1 passes; the exact DAE's slope over that grid is
1.35); claim 2 0.065 <= 0.15; claim 3 holds; sanity rows: exact slope 1.92, max error vs r* 0.040, cosine 0.999; 6/6
pass. Mutation test (TINY, 2026-12-03): `divide_by_sigma` fails claim 3, the only paper claim passing at TINY
(the trained slope, 0.74, and the sigma = 0.1 error, 0.19, need the full size).
Caveat: the judged run repeats seed 0 and the settings whose trained errors were recorded above before the slope
tolerance was written (a slope of ~1.2 could be read off them), so claim 1 is a pre-registered fit of a known curve.
Hence a confirmation on a seed never run before (the lead, 2026-12-03, `python -m experiments run dae_score --set
seed=100 --fresh`, 73 s): trained errors 0.823, 0.481, 0.184, 0.073, slope 1.19 >= 1.0; claims 2-3 pass (0.073);
exact slope 1.92, error vs r* 0.044, cosine 0.999: 6/6 pass there too.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods.data import (
    gaussian_mixture_log_density,
    gaussian_mixture_score,
    make_gaussian_mixture,
    sample_gaussian_mixture,
)
from jaxlib_methods.runner import (Claim, MeshConfig, Paper, make_mesh, save_figure, scan_steps, shard_leading,
                                   train)
from jaxlib_methods.runner.constraints import Check, Length, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=178, title="What Regularized Auto-Encoders Learn from the Data Generating Distribution",
              year=2012, arxiv="1211.4246")
DEMO = True
# At TINY the trained DAEs' error still falls over the grid (claim 3; 0.82, 0.49, 0.23, 0.19 on 2026-12-03) while
# claims 1-2 need the full size; dividing by sigma instead of sigma^2 leaves every cosine unchanged but makes that
# error rise again as sigma -> 0 (0.86, 0.79, 0.84, 0.91), failing claim 3 (and 1-2, 5 at the full size).
TINY = ("num_steps=600", "batch_size=512", "hidden=64")
# ~15-60 CPU-seconds for the TINY and mutated runs together: the mutation test runs under -m slow (the default-run
# budget); tests/experiments/test_issue8_experiments.py keeps a fast run of this experiment in the default suite.
MUTATION_TEST_SLOW = True
MUTATIONS = {"divide_by_sigma": ("score_estimator=sigma",)}


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  sigmas: Annotated[tuple[float, ...], Range(gt=0), Length(min=2)] = (0.8, 0.4, 0.2, 0.1)
  exact_sigmas: Annotated[tuple[float, ...], Range(gt=0), Length(min=2)] = (0.2, 0.1, 0.05, 0.025)  # probe sigma -> 0
  hidden: PositiveInt = 128
  batch_size: PositiveInt = 2048
  num_steps: PositiveInt = 3000
  learning_rate: PositiveFloat = 3e-3
  grid_size: Annotated[int, Range(ge=2)] = 201
  score_estimator: Literal["sigma2", "sigma"] = "sigma2"   # (r(x) - x) / sigma^2 (Thm. 1) or / sigma (a mutation)
  mesh: MeshConfig = MeshConfig()   # devices the sigmas' auto-encoders (one per sigma) are split over

  CHECKS = (Check("list(sigmas) == sorted(set(sigmas), reverse=True)", "sigmas decrease strictly (the claims read "
                  "the trend as sigma -> 0)"),
            Check("len(set(exact_sigmas)) == len(exact_sigmas)", "the error slope is fitted over distinct sigmas"))

PRESETS = {"cpu": Config(), "gpu": Config(sigmas=(0.8, 0.4, 0.2, 0.1, 0.05, 0.025), batch_size=65536,
                                          num_steps=20000, hidden=256),
           "tpu": Config(sigmas=(0.8, 0.4, 0.2, 0.1, 0.05, 0.025), batch_size=65536, num_steps=20000, hidden=256)}

LOG_EVERY = 500   # steps per jitted chunk and metrics row
MIXTURE = dict(weights=[0.3, 0.5, 0.2], means=[[-2.0], [0.5], [2.5]], stds=[0.5, 0.7, 0.4])


def dae_loss(r_fn, x: jax.Array, noise: jax.Array, sigma: float) -> jax.Array:
  """Denoising reconstruction error ||r(x + sigma eps) - x||^2 per example (Alain & Bengio 2014, Sec. 3). x [N, D]."""
  return jnp.sum((r_fn(x + sigma * noise) - x) ** 2, axis=-1)


def _init(key, hidden):
  k1, k2, k3 = jax.random.split(key, 3)
  w1 = 2.0 * jax.random.normal(k1, (1, hidden))
  centres = jax.random.uniform(k3, (hidden,), minval=-3.5, maxval=3.8)   # tanh units spread over the data range
  return {"w1": w1, "b1": -w1[0] * centres, "w2": jax.random.normal(k2, (hidden, 1)) / np.sqrt(hidden) * 0.1}


def _r(p, x):
  return x + jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"]


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  mix = make_gaussian_mixture(**MIXTURE)
  grid = jnp.linspace(-3.5, 3.8, config.grid_size)[:, None]
  dens = np.exp(np.asarray(gaussian_mixture_log_density(mix, grid)))
  wts = dens / dens.sum()
  true = np.asarray(gaussian_mixture_score(mix, grid))[:, 0]

  def err(est):
    return float(np.sqrt(np.sum(wts * (est - true) ** 2)) / np.sqrt(np.sum(wts * true ** 2)))

  def cos(est):
    return float(np.sum(wts * est * true) / np.sqrt(np.sum(wts * est ** 2) * np.sum(wts * true ** 2)))

  # Separate streams: in JAX, split(k, n)[i] == fold_in(k, i), so mixing the two on one key correlates draws.
  kinit, ktrain = jax.random.split(jax.random.key(config.seed))
  p0 = _init(kinit, config.hidden)
  params = jax.tree.map(lambda a: jnp.broadcast_to(a, (len(config.sigmas),) + a.shape), p0)
  tx = optax.adam(optax.cosine_decay_schedule(config.learning_rate, config.num_steps))
  opt = jax.vmap(tx.init)(params)
  # One auto-encoder per sigma (vmapped), split over the mesh's devices; every sigma sees the same batches.
  state = shard_leading({"params": params, "opt": opt, "sigma": jnp.asarray(config.sigmas, jnp.float32),
                         "loss": jnp.zeros(len(config.sigmas), jnp.float32)}, make_mesh(config.mesh), what="sigma")

  def one_step(st, t):
    kx, kn = jax.random.split(jax.random.fold_in(ktrain, t))
    x, _ = sample_gaussian_mixture(kx, mix, config.batch_size)
    noise = jax.random.normal(kn, x.shape)

    def one(p, o, s):
      l, g = jax.value_and_grad(lambda q: jnp.mean(dae_loss(lambda z: _r(q, z), x, noise, s)))(p)
      u, o = tx.update(g, o, p)
      return optax.apply_updates(p, u), o, l
    params, opt, loss = jax.vmap(one)(st["params"], st["opt"], st["sigma"])
    return {"params": params, "opt": opt, "sigma": st["sigma"], "loss": loss}, None

  def measure(st, step):   # the training loss of each sigma's last step
    return {f"sigma{s:g}/loss": float(v) for s, v in zip(config.sigmas, np.asarray(st["loss"]))} if step else {}

  # runner.train: chunks of LOG_EVERY steps, an orbax checkpoint at the end and on a stop request (resume).
  result = train(workdir=workdir, state=state, advance=scan_steps(one_step), measure=measure,
                 num_steps=config.num_steps, log_every=LOG_EVERY, desc="dae")
  params = jax.device_get(result.state["params"])

  def exact_score(s):
    # (r*(x) - x) / sigma^2 = d/dx log p_sigma(x), p_sigma the mixture with stds sqrt(s_k^2 + sigma^2) (Tweedie).
    smoothed = make_gaussian_mixture(MIXTURE["weights"], MIXTURE["means"],
                                     np.sqrt(np.asarray(MIXTURE["stds"]) ** 2 + s ** 2))
    return np.asarray(gaussian_mixture_score(smoothed, grid))[:, 0]

  def power(s):  # the estimator divides r(x) - x by sigma^power
    return 2 if config.score_estimator == "sigma2" else 1

  def exact_estimate(s):  # (r*(x) - x) / sigma^power, r*(x) - x = sigma^2 d/dx log p_sigma(x)
    return exact_score(s) * s ** 2 / s ** power(s)

  def rel(est, ref):
    return float(np.sqrt(np.sum(wts * (est - ref) ** 2)) / np.sqrt(np.sum(wts * ref ** 2)))

  exact_err = [err(exact_estimate(s)) for s in config.exact_sigmas]
  trained_err, trained_cos, vs_exact_cos, vs_exact_err, curves = [], [], [], [], {}
  for i, s in enumerate(config.sigmas):
    est = np.asarray((_r(jax.tree.map(lambda a: a[i], params), grid) - grid) / s ** power(s))[:, 0]
    ex = exact_score(s)
    trained_err.append(err(est))
    trained_cos.append(cos(est))
    vs_exact_cos.append(float(np.sum(wts * est * ex) / np.sqrt(np.sum(wts * est ** 2) * np.sum(wts * ex ** 2))))
    vs_exact_err.append(rel(est, ex))
    curves[f"{s:g}"] = est.tolist()
  slope = float(np.polyfit(np.log(config.exact_sigmas), np.log(exact_err), 1)[0])
  trained_slope = float(np.polyfit(np.log(config.sigmas), np.log(trained_err), 1)[0])
  out = {"sigmas": list(config.sigmas), "exact_sigmas": list(config.exact_sigmas),
         "exact_dae_rel_error": exact_err, "trained_rel_error": trained_err, "trained_cosine": trained_cos,
         "trained_vs_exact_cosine": vs_exact_cos, "trained_vs_exact_rel_error": vs_exact_err,
         "exact_error_slope": slope, "trained_error_slope": trained_slope,
         "score_estimator": config.score_estimator,
         "grid": np.asarray(grid)[:, 0].tolist(), "true_score": true.tolist(), "trained_scores": curves}
  _figure(out, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  tc, te = results["trained_cosine"], results["trained_rel_error"]
  sig = results["sigmas"]
  return [
      Claim.at_least("trained DAE: relative error of (r(x)-x)/sigma^2 vs the score ~ sigma^p over the sigma grid, "
                     "fitted p (errors " + ", ".join(f"{e:.3g}" for e in te) + ")",
                     results["trained_error_slope"], 1.0, paper="error -> 0 as sigma -> 0 (rate 2 asymptotically)",
                     kind="paper", where="Sec. 3, Thm. 1"),
      Claim.at_most(f"trained DAE at sigma={sig[-1]:g}: relative L2 error of (r(x)-x)/sigma^2 vs the true score",
                    te[-1], 0.15, paper="(r(x)-x)/sigma^2 -> d/dx log p(x)", kind="paper", where="Sec. 3, Thm. 1"),
      Claim.holds("trained DAE: that error falls as sigma falls (" + ", ".join(f"{e:.3g}" for e in te) + ")",
                  all(b <= a for a, b in zip(te, te[1:])), paper="better estimate as sigma -> 0",
                  detail="non-increasing over the sigma grid", kind="paper", where="Sec. 3, Thm. 1; Fig. 2"),
      Claim.close("exact DAE (closed form, no training): relative error of (r*(x)-x)/sigma^2 vs the score ~ "
                  "sigma^p as sigma -> 0, fitted p", results["exact_error_slope"], 2.0, atol=0.4,
                  paper="(setup check: o(sigma^2) remainder, rate 2)", kind="sanity"),
      Claim.at_most("training reaches the optimal DAE: max over sigma of the relative error vs d/dx log p_sigma",
                    max(results["trained_vs_exact_rel_error"]), 0.1, paper="(setup check: r -> r*)",
                    kind="sanity"),
      Claim.at_least("trained DAE at the smallest sigma: cos((r(x)-x)/sigma^2, true score) (the catalog's target)",
                     tc[-1], 0.95, paper="-> 1 as sigma -> 0", kind="sanity"),
  ]


def _noted(claim: Claim, note: str) -> Claim:
  """The claim with measured details appended to its tolerance text (its name stays fixed: the mutation test and
  the records match claims by name)."""
  return dataclasses.replace(claim, tolerance=f"{claim.tolerance} [{note}]")


def _figure(results, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
  ax[0].plot(results["grid"], results["true_score"], "k", lw=2, label="true score")
  for s in results["sigmas"]:
    ax[0].plot(results["grid"], results["trained_scores"][f"{s:g}"], label=f"(r(x)-x)/sigma^2, sigma={s:g}")
  ax[0].legend(fontsize=7)
  ax[0].set_xlabel("x")
  ax[1].loglog(results["exact_sigmas"], results["exact_dae_rel_error"], "o-", label="exact DAE (Tweedie)")
  ax[1].loglog(results["sigmas"], results["trained_rel_error"], "s-", label="trained DAE")
  ax[1].set_xlabel("sigma")
  ax[1].loglog(results["exact_sigmas"], np.asarray(results["exact_sigmas"]) ** 2 * results["exact_dae_rel_error"][0]
               / results["exact_sigmas"][0] ** 2, "k:", label="slope 2 (Thm. 1 remainder)")
  ax[1].set_ylabel("||est - score|| / ||score||")
  ax[0].set_ylabel("score d/dx log p(x)")
  ax[1].set_title("relative score error (p-weighted)")
  ax[1].legend()
  fig.suptitle("What regularized auto-encoders learn (Alain & Bengio 2014): DAE -> score")
  save_figure(fig, workdir / "figure.png")
