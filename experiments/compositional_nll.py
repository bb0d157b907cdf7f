"""MECO (compositional NLL) converges where NCE's landscape is flat: 1-D Gaussian mean estimation.

Paper [201]: Wei Jiang, Jiayu Qin, Lingyu Wu, Changyou Chen, Tianbao Yang, Lijun Zhang, "Learning Unnormalized
Statistical Models via Compositional Optimization", ICML 2023, arXiv:2306.07485. The paper's point (2): for
one-dimensional Gaussian mean estimation its objective (the NLL, log Z written as a compositional function of noise
samples) has a much more favourable loss landscape than NCE and its method converges faster.

Setup. Data x ~ N(mu*, 1) with mu* = `data_mean`; noise q = N(0, `noise_std`^2), far from the data. The model is the
unnormalised energy E_mu(x) = (x - mu)^2 / 2 (the algorithm does not know that Z does not depend on mu).
  - MECO: `jaxlib_methods.losses.compositional_nll_loss` (moving average u of g = E_q[exp(-E)/q], weight `gamma`);
  - NCE: `jaxlib_methods.losses.nce_loss` with log p = -E_mu - c, c a learnt log-normaliser (Gutmann & Hyvarinen).
Both start at mu = 0 (the noise mean), c = 0, and take plain SGD steps on `batch` data and `num_noise` noise samples
per step (SGD, not Adam: Adam would rescale away the flatness the paper is about). Each method gets its best
learning rate from the grid `learning_rates` (the paper compares tuned methods), `num_seeds` seeds each, all vmapped.
Independent references: the population landscapes by float64 NumPy quadrature (no library code).

Claims (tolerances fixed before the run):
  1. (sanity; the paper's landscape statement) at the midpoint mu = mu*/2, |d NLL/d mu| / |d NCE/d mu| >= 5
     (population objectives by float64 quadrature; NCE's c at its optimum for that mu). The paper: NCE is flat, the
     NLL quadratic. A fixed function of the chosen mu* and noise (no library code, no training): it checks the setup
     and cannot fail for the method, so since the claims audit of 2026-12-03 it does not count, and [201] rests on
     claim 2 alone (not `reproduced`). Claim 2 is a first-passage time; MECO ends further from mu* than NCE (below).
  2. (paper) faster convergence: steps until |mu - mu*| < 0.1 first (median over seeds, best learning rate of
     each): NCE needs at least 2x MECO's (NCE not reaching it within `steps` counts as `steps`: a lower bound).
  3. (sanity) MECO's final |mu - mu*| (median over seeds) stays below 0.5: it does not wander off.
  4. (paper; added 2026-12-03, pre-registered before its judged run) the accuracy MECO reaches is set by the noise
     through the variance of its estimator: the method arm rerun with q = N(0, `wide_noise_std`^2) = N(0, 1.5^2)
     (relative IS variance factor ~16 against ~8e3 for N(0, 1) at mu* = 3), the same seeds, learning-rate grid and
     rule for the best rate; per seed, the mean |mu - mu*| over the last 10% of the steps at the best rate; the
     upper end of the paired 95% t-interval of log10(wide / default) over seeds < -0.3 (at least a 2x smaller
     error) (abstract point (1): "quantifying its dependence on the noise distribution through the variance of
     stochastic estimators"). Measured while designing it (5 other seeds, cpu preset sizes): medians over seeds
     0.07-0.13 at N(0, 1) against 0.005-0.006 at N(0, 1.5^2) (0.006-0.011 at 1.25, 0.002-0.004 at 2).
     Judged run (the recorded cpu preset, 8 s wall): log10 ratio -1.46 [-2.30, -0.62] (95% CI, 5 seeds): passes,
     4/4 claims. [201] now has two paper claims (2, 4); `nce_in_place_of_meco` breaks claim 2.
Both methods use SGD with a cosine decay of the step over `steps`.
Mutation `nce_in_place_of_meco` (`method=nce`): the "method" arm runs NCE; claim 2 must fail.

What limits the setting (measured while designing it, seeds 0-2, 3000 steps): NCE's flatness needs noise far from
the data, and MECO's log Z estimate is an importance-sampling average of exp(-E)/q over the same noise, whose
relative variance at mu near mu* grows like exp(mu*^2 / (2 s^2 - 1)) for q = N(0, s^2). With q = N(0, 1): mu* = 4
gives a landscape ratio of 24 but an IS variance factor of 9e6, and MECO stalls 0.3-0.8 away from mu* (the few noise
samples nearest mu* dominate the weights and bias d log Z / d mu); mu* = 3 (ratio 8.7, factor 8e3, 4096 noise
samples per step) is where both statements hold: MECO first reaches 0.1 about 8x sooner than NCE (9 vs 72 steps at
the cpu preset), but ends further away (final median 0.09, seeds 0.03-0.23, vs NCE's 0.006). A wider noise (s = 2) tames the variance but removes the flatness
(ratio 1.8-2.3); a uniform noise over [-W, W] is never flat (ratio <= 4). The catalog's "mu-error < 1e-2" target
is therefore not a claim here: at this noise MECO's accuracy is bounded by the estimator's variance (the paper's
point (1): its rate depends on the noise through that variance).
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import _seed_stats
from jaxlib_methods.losses import compositional_init, compositional_nll_loss, nce_loss
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, sweep
from jaxlib_methods.runner.constraints import Check, Length, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=201, title="Learning Unnormalized Statistical Models via Compositional Optimization",
              year=2023, arxiv="2306.07485")
DEMO = False

THRESHOLD = 0.1      # |mu - mu*| that counts as reached


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  num_seeds: Annotated[int, Range(ge=1, le=32)] = 5
  data_mean: Annotated[float, Range(gt=0, le=8)] = 3.0     # mu*
  noise_std: Annotated[float, Range(gt=0.75, le=10)] = 1.0   # q = N(0, noise_std^2); > 1/sqrt(2) for a finite variance
  wide_noise_std: Annotated[float, Range(gt=0.75, le=10)] = 1.5   # claim 4's lower-variance noise
  batch: PositiveInt = 256
  num_noise: PositiveInt = 4096
  steps: PositiveInt = 1000
  learning_rates: Annotated[tuple[float, ...], Range(gt=0), Length(min=1)] = (0.03, 0.1, 0.3)
  gamma: Annotated[float, Range(gt=0, le=1)] = 0.1        # MECO's moving-average weight
  method: Literal["meco", "nce"] = "meco"                  # "nce": the mutation (the baseline in the method's arm)
  log_every: PositiveInt = 100
  mesh: MeshConfig = MeshConfig()   # devices the independent runs (seeds) are split over

  CHECKS = (Check("steps % log_every == 0", "training runs whole chunks of log_every steps"),)

PRESETS = {
    "cpu": Config(),
    "gpu": Config(num_seeds=20, num_noise=65536, steps=5000, learning_rates=(0.01, 0.03, 0.1, 0.3)),
    "tpu": Config(num_seeds=20, num_noise=65536, steps=5000, learning_rates=(0.01, 0.03, 0.1, 0.3)),
}

MUTATION_TEST_SLOW = True  # TINY + the mutated run took 10.6 s in the default suite (2 cores, 2026-12-01): under -m slow
TINY = ("num_seeds=3", "steps=200", "num_noise=2048", "learning_rates=0.1,0.3")
MUTATIONS = {"nce_in_place_of_meco": ("method=nce",)}


def _energy(mu, x):
  return 0.5 * (x - mu) ** 2


def _log_q(x, s):
  return -0.5 * (x / s) ** 2 - jnp.log(s) - 0.5 * jnp.log(2 * jnp.pi)


def population_gradients(mu: float, data_mean: float, noise_std: float, num_points: int = 200001) -> tuple:
  """float64 NumPy quadrature of d/dmu of the population NLL E_p*[E_mu(x)] + log Z (= mu - mu*) and of the
  population NCE loss at its best log-normaliser c for this mu. Returns (|dNLL/dmu|, |dNCE/dmu|)."""
  x = np.linspace(-12 * noise_std, data_mean + 12, num_points)
  dx = x[1] - x[0]
  p_star = np.exp(-0.5 * (x - data_mean) ** 2) / np.sqrt(2 * np.pi)
  log_q = -0.5 * (x / noise_std) ** 2 - np.log(noise_std) - 0.5 * np.log(2 * np.pi)
  q = np.exp(log_q)

  def nce(m, c):
    g = -0.5 * (x - m) ** 2 - c - log_q
    return float(np.sum(p_star * np.logaddexp(0.0, -g) + q * np.logaddexp(0.0, g)) * dx)

  def best_c(m):
    lo, hi = -30.0, 30.0                     # golden-section search: the NCE loss is convex in c
    phi = (np.sqrt(5) - 1) / 2
    for _ in range(80):
      a, b = hi - phi * (hi - lo), lo + phi * (hi - lo)
      if nce(m, a) < nce(m, b):
        hi = b
      else:
        lo = a
    return (lo + hi) / 2

  h = 1e-4
  c = best_c(mu)                              # envelope theorem: d/dmu min_c J = dJ/dmu at c*(mu)
  d_nce = (nce(mu + h, c) - nce(mu - h, c)) / (2 * h)
  return abs(mu - data_mean), abs(d_nce)


def _static(config: Config) -> Config:
  return dataclasses.replace(config, seed=0, method="meco", data_mean=1.0, noise_std=1.0,
                             learning_rates=(1.0,) * len(config.learning_rates))


@functools.partial(jax.jit, static_argnums=0)
def _train(static: Config, keys, lrs, data_mean, noise_std, use_meco):
  """Every (learning rate, seed) run of one method for `steps` steps. keys [seed]; lrs [lr]; use_meco (traced bool)
  picks the loss. Returns |mu - mu*| at every step [steps, lr, seed] and the final mu."""

  def one(lr, key):
    params = {"mu": jnp.zeros(()), "c": jnp.zeros(())}
    tx = optax.sgd(optax.cosine_decay_schedule(lr, static.steps))

    def step(carry, t):
      prm, opt, st = carry
      k1, k2 = jax.random.split(jax.random.fold_in(key, t))
      xd = data_mean + jax.random.normal(k1, (static.batch,))
      xn = noise_std * jax.random.normal(k2, (static.num_noise,))
      lq_d, lq_n = _log_q(xd, noise_std), _log_q(xn, noise_std)

      def meco(p):
        loss, new_st = compositional_nll_loss(_energy(p["mu"], xd), _energy(p["mu"], xn), lq_n, st,
                                              gamma=static.gamma)
        return jnp.mean(loss), new_st

      def nce(p):
        nu = static.num_noise / static.batch
        return nce_loss(-_energy(p["mu"], xd) - p["c"], -_energy(p["mu"], xn) - p["c"], lq_d, lq_n, nu=nu), st

      (_, new_st_m), g_m = jax.value_and_grad(meco, has_aux=True)(prm)
      (_, _), g_n = jax.value_and_grad(nce, has_aux=True)(prm)
      g = jax.tree.map(lambda a, b: jnp.where(use_meco, a, b), g_m, g_n)
      st = jax.tree.map(lambda a, b: jnp.where(use_meco, a, b), new_st_m, st)
      upd, opt = tx.update(g, opt, prm)
      prm = optax.apply_updates(prm, upd)
      return (prm, opt, st), jnp.abs(prm["mu"] - data_mean)

    (prm, _, _), err = jax.lax.scan(step, (params, tx.init(params), compositional_init()),
                                    jnp.arange(static.steps))
    return err, prm["mu"]

  err, mu = jax.vmap(lambda lr: jax.vmap(lambda k: one(lr, k))(keys))(lrs)
  return jnp.moveaxis(err, 2, 0), mu


def steps_to_threshold(err: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
  """First step at which |mu - mu*| < `threshold` ([steps, ...] -> [...]; inf if never)."""
  hit = np.asarray(err) < threshold
  return np.where(hit.any(0), np.argmax(hit, axis=0).astype(float), np.inf)


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  static = _static(config)
  keys = jnp.stack([jax.random.key(int(v)) for v in
                    np.random.default_rng(config.seed).integers(0, 2**31 - 1, size=config.num_seeds)])
  keys = shard_leading(keys, make_mesh(config.mesh))  # the seeds' models train on their own devices
  lrs = jnp.asarray(config.learning_rates, jnp.float32)
  arms = {"method_arm": config.method == "meco", "nce": False, "method_arm_wide_noise": config.method == "meco"}
  noise = {"method_arm": config.noise_std, "nce": config.noise_std, "method_arm_wide_noise": config.wide_noise_std}
  res = {}
  log = MetricsLog(workdir)
  log.reset()
  for arm, use_meco in arms.items():
    # One arm is a unit of resume: a rerun after an interruption reads its stored error curves back (runner.sweep).
    err = sweep.memoized(workdir, {"arm": arm, "use_meco": use_meco, "noise_std": noise[arm]},
                         lambda use_meco=use_meco, arm=arm: np.asarray(_train(
                             static, keys, lrs, jnp.float32(config.data_mean), jnp.float32(noise[arm]),
                             jnp.asarray(use_meco))[0]))
    err = np.asarray(err, np.float32)                             # [steps, lr, seed] (float32 as trained)
    conv = steps_to_threshold(err)                                # [lr, seed]
    med = np.median(conv, axis=1)
    best = int(np.argmin(med)) if np.isfinite(med).any() else int(np.argmin(np.median(err[-1], axis=1)))
    res[arm] = {"steps_to_threshold": conv.tolist(), "median_steps": med.tolist(), "best_lr": config.learning_rates[best],
                "best_median_steps": float(med[best]), "best_all_seeds_converged": bool(np.all(np.isfinite(conv[best]))),
                "final_error_best_lr": err[-1, best].tolist(),
                "final_median_error_best_lr": float(np.median(err[-1, best])),
                "tail_error_best_lr": err[-max(config.steps // 10, 1):, best].mean(0).tolist(),   # [seed]
                "error_curve_best_lr": np.median(err[:, best], axis=1)[::config.log_every].tolist()}
  for i, t in enumerate(range(0, config.steps, config.log_every)):
    log.log(t, **{f"{arm}/median_error": res[arm]["error_curve_best_lr"][i] for arm in arms})
  res["wide_noise_log10_ratio"] = _seed_stats.paired_ci(
      np.log10(np.maximum(res["method_arm_wide_noise"]["tail_error_best_lr"], 1e-12)),
      np.log10(np.maximum(res["method_arm"]["tail_error_best_lr"], 1e-12)))
  d_nll, d_nce = population_gradients(config.data_mean / 2, config.data_mean, config.noise_std)
  res.update({"method": config.method, "grad_nll_midpoint": d_nll, "grad_nce_midpoint": d_nce,
              "landscape_ratio": d_nll / max(d_nce, 1e-300), "threshold": THRESHOLD,
              # NCE not reaching the threshold within the budget is censored at `steps` (a lower bound on the
              # ratio); the method arm not reaching it gives 0.
              "speedup": min(res["nce"]["best_median_steps"], config.steps)
                         / max(res["method_arm"]["best_median_steps"], 1.0)})
  grid = np.linspace(0, config.data_mean, 17)
  grads = np.asarray([population_gradients(m, config.data_mean, config.noise_std, 20001) for m in grid])
  res["landscape"] = {"mu": grid.tolist(), "grad_nll": grads[:, 0].tolist(), "grad_nce": grads[:, 1].tolist()}
  _figure(res, config, workdir)
  return res


def claims(results: dict) -> list[Claim]:
  return [
      Claim.at_least("landscape: |dNLL/dmu| / |dNCE/dmu| at mu = mu*/2 (population, float64 quadrature)",
                     results["landscape_ratio"], 5.0, paper="NCE flat, NLL quadratic", kind="sanity",
                     where="Sec. 5, Gaussian mean estimation (loss landscape)"),
      Claim.at_least("steps to |mu - mu*| < 0.1: NCE / MECO (medians over seeds, best learning rate of each)",
                     results["speedup"], 2.0, paper="MECO converges much faster than NCE", kind="paper",
                     where="Sec. 5, Gaussian mean estimation (convergence)"),
      Claim.at_most("MECO's final |mu - mu*| (median over seeds, best learning rate) < 0.5 (half the data std): it "
                    "stays near mu*", results["method_arm"]["final_median_error_best_lr"], 0.5,
                    paper="converges (to a neighbourhood set by the estimator's variance)", kind="sanity"),
      Claim.at_most("MECO's late |mu - mu*| (mean over the last 10% of steps, best learning rate): log10 of the "
                    "N(0, 1.5^2)-noise run / the N(0, 1)-noise run, upper end of the paired 95% t-interval over "
                    f"seeds (mean {results['wide_noise_log10_ratio']['mean']:.2f})",
                    results["wide_noise_log10_ratio"]["hi"], -0.3,
                    paper="accuracy set by the noise through the estimator's variance", kind="paper",
                    where="Abstract, point (1) (rate depends on the noise through the estimator's variance)"),
  ]


def _figure(results, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(1, 2, figsize=(10.5, 3.8))
  ls = results["landscape"]
  ax[0].semilogy(ls["mu"], np.maximum(ls["grad_nll"], 1e-12), "o-", label="|dNLL/dmu| (MECO's objective)")
  ax[0].semilogy(ls["mu"], np.maximum(ls["grad_nce"], 1e-12), "s-", label="|dNCE/dmu| (c optimal)")
  ax[0].axvline(config.data_mean, color="k", ls=":", label="mu*")
  ax[0].set_xlabel("mu (noise mean 0 -> data mean mu*)")
  ax[0].set_ylabel("population gradient magnitude")
  ax[0].set_title("paper: NCE's landscape is flat, the NLL's is not", fontsize=9)
  ax[0].legend(fontsize=8)
  t = np.arange(0, config.steps, config.log_every)
  for arm in ("method_arm", "nce", "method_arm_wide_noise"):
    r = results[arm]
    name = {"method_arm": results["method"].upper(), "nce": "NCE",
            "method_arm_wide_noise": f"{results['method'].upper()}, q = N(0, {config.wide_noise_std:g}^2)"}[arm]
    ax[1].semilogy(t, np.maximum(r["error_curve_best_lr"], 1e-6), label=f"{name}, lr {r['best_lr']:g}")
  ax[1].axhline(THRESHOLD, color="tab:red", ls="--", label=f"|mu - mu*| = {THRESHOLD:g}")
  ax[1].set_xlabel("SGD step")
  ax[1].set_ylabel("|mu - mu*| (median over seeds)")
  ax[1].legend(fontsize=8)
  fig.suptitle("Learning unnormalized models via compositional optimization (Jiang et al. 2023)")
  save_figure(fig, workdir / "figure.png")
