"""Learning from aggregate responses: the bag-level loss is unbiased with high variance, the instance-level loss is
biased with low variance, and their interpolation beats both.

Paper [194]: Adel Javanmard, Lin Chen, Vahab Mirrokni, Ashwinkumar Badanidiyuru, Gang Fu, "Learning from Aggregate
Responses: Instance Level versus Bag Level Loss Functions", ICLR 2024, arXiv:2401.11081.

Setup (the paper's linear-regression model). y = x^T theta + noise, x ~ N(0, I_d), ||theta|| = 1, noise N(0, sigma^2);
the n training examples are split at random into bags of size k and only each bag's mean response is observed. The
estimators minimise the library's losses (`jaxlib_methods.losses.aggregate_responses`), which are quadratic in
theta for a linear model, so each minimiser is one Newton step from 0 with the exact Hessian (float64):
  bag level        sum_b (ybar_b - mean_{i in b} x_i^T theta)^2                           (rho = 1)
  instance level   sum_i (ybar_{b(i)} - x_i^T theta)^2                                    (rho = 0)
  interpolating    rho * bag + (1 - rho) * instance, rho on a grid in [0, 1] (this module's convention).
Over `reps` independent draws of the data, noise and bags at one fixed theta we measure each estimator's bias ||E theta_hat - theta||, its
variance tr Cov(theta_hat), and its risk E||theta_hat - theta||^2 (the excess test error for isotropic x).

Claims (tolerances fixed before the run):
  1. The bag-level estimator is unbiased (Sec. 3): relative bias ||E theta_hat_bag - theta|| / ||theta|| <= 0.1, the
     squared bias estimated as ||mean error||^2 - tr Cov / reps (free of the Monte-Carlo error of the mean).
  2. The instance-level estimator is biased (Sec. 3; here towards theta / k): its relative bias >= 0.5.
  3. ... with lower variance (Sec. 3): tr Cov(instance) < tr Cov(bag).
  4. The interpolating estimator at a rho* chosen on half of the draws beats both ends on the other half (Sec. 4):
     the 95% CI of risk(rho*) - min(risk(bag), risk(instance)), paired by draw, lies below 0, and 0 < rho* < 1.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np

from experiments import _seed_stats as st
from jaxlib_methods.losses import aggregate_responses as ag
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, sweep
from jaxlib_methods.runner.constraints import Check, Length, NonNegativeFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=194, title="Learning from Aggregate responses: Instance Level versus Bag Level Loss "
              "Functions", year=2024, arxiv="2401.11081")
DEMO = True


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  reps: Annotated[int, Range(ge=4)] = 200          # independent draws of data and bags
  dim: PositiveInt = 20
  n: PositiveInt = 400
  bag_size: Annotated[int, Range(ge=2)] = 8
  noise: NonNegativeFloat = 1.0
  rhos: Annotated[tuple[float, ...], Range(ge=0, le=1), Length(min=3)] = tuple(i / 20 for i in range(21))
  bag_estimator: Literal["bag", "instance"] = "bag"   # what the "bag-level" slot minimises ("instance": a mutation)
  mesh: MeshConfig = MeshConfig()   # devices the independent draws are split over

  CHECKS = (Check("n % bag_size == 0", "the examples split into whole bags"),
            Check("n // bag_size > dim", "the bag-level least squares needs more bags than dimensions"),
            Check("min(rhos) == 0 and max(rhos) == 1", "the grid includes both ends (instance and bag level)"))

PRESETS = {"cpu": Config(), "gpu": Config(reps=2000, dim=100, n=2000), "tpu": Config(reps=2000, dim=100, n=2000)}
TINY = ("reps=40",)
MUTATIONS = {"instance_in_place_of_bag": ("bag_estimator=instance",)}
MUTATION_TEST_SLOW = True  # TINY + mutation take ~45-110 s on 2 busy cores: under -m slow (test budget)


def true_theta(config: Config):
  """The fixed parameter (||theta|| = 1), drawn once from the seed: the bias is over data draws at fixed theta."""
  theta = jax.random.normal(jax.random.fold_in(jax.random.key(config.seed), 10 ** 6), (config.dim,))
  return theta / jnp.linalg.norm(theta)


def draw(config: Config, key):
  """One draw: features x [n, d], bag ids [n] (random bags of size k), bag mean responses [n / k], and theta."""
  _, k2, k3, k4 = jax.random.split(key, 4)
  theta = true_theta(config)
  x = jax.random.normal(k2, (config.n, config.dim))
  y = x @ theta + config.noise * jax.random.normal(k3, (config.n,))
  num_bags = config.n // config.bag_size
  bags = jax.random.permutation(k4, jnp.repeat(jnp.arange(num_bags), config.bag_size))
  ybar = jax.ops.segment_sum(y, bags, num_segments=num_bags) / config.bag_size
  return x, bags, ybar, theta


def estimate(config: Config, x, bags, ybar, rho):
  """argmin_theta of the mean interpolating loss (quadratic): theta = -H^{-1} grad(0), H the exact Hessian."""
  num_bags = config.n // config.bag_size

  def objective(theta):
    return jnp.mean(ag.interpolating_loss(x @ theta, bags, ybar, num_bags=num_bags, rho=rho))

  zero = jnp.zeros(config.dim, x.dtype)
  g = jax.grad(objective)(zero)
  h = jax.hessian(objective)(zero)
  return -jnp.linalg.solve(h, g)


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  rhos = np.asarray(config.rhos, np.float64)
  mesh = make_mesh(config.mesh)
  n_dev = mesh.shape["data"] * mesh.shape["fsdp"]
  with jax.enable_x64(True):
    keys = jax.random.split(jax.random.key(config.seed), config.reps)
    shard_leading(keys, mesh, what="draw")   # a reps count the mesh does not divide fails here, naming the mesh

    def one(key):
      x, bags, ybar, theta = draw(config, key)
      est = jax.vmap(lambda r: estimate(config, x, bags, ybar, r))(jnp.asarray(rhos))   # [R, d]
      return est, theta

    @jax.jit
    def block(ks):   # [devices, m] keys: each device maps over its own m draws, one at a time (memory of one draw)
      return jax.vmap(lambda k: jax.lax.map(one, k))(ks)

    def draws(lo, hi):   # draws lo..hi-1, split over the mesh; a unit of resume (runner.sweep.memoized)
      est, theta = block(shard_leading(keys[lo:hi].reshape(n_dev, -1), mesh, what="device block"))
      return {"est": np.asarray(est).reshape(hi - lo, len(rhos), -1), "theta": np.asarray(theta).reshape(hi - lo, -1)}

    chunk = n_dev * max(1, 50 // n_dev)   # draws per stored unit (the draws are fixed by keys[i], not by the chunks)
    parts = [sweep.memoized(workdir, {"draws": [lo, min(lo + chunk, config.reps)]},
                            lambda lo=lo: draws(lo, min(lo + chunk, config.reps)))
             for lo in range(0, config.reps, chunk)]
    est = np.concatenate([np.asarray(p["est"], np.float64) for p in parts])     # [reps, R, d]
    theta = np.concatenate([np.asarray(p["theta"], np.float64) for p in parts])  # [reps, d]
  err = est - theta[:, None, :]                                  # [reps, R, d]
  risk = np.sum(err ** 2, -1)                                     # [reps, R]
  i_inst, i_bag = int(np.argmin(rhos)), int(np.argmax(rhos))
  slot = {"bag": i_bag, "instance": i_inst}
  i_bag_slot = slot[config.bag_estimator]

  def bias_var(j):
    # ||bias||^2 estimated without the Monte-Carlo error of the mean: ||mean e||^2 - tr Cov / reps (unbiased)
    e = err[:, j, :]
    var = float(np.sum(e.var(0, ddof=1)))
    return float(np.sqrt(max(np.sum(e.mean(0) ** 2) - var / len(e), 0.0))), var

  half = config.reps // 2
  mean_risk_first = risk[:half].mean(0)
  j_star = int(np.argmin(mean_risk_first))
  ends = np.minimum(risk[half:, i_bag_slot], risk[half:, i_inst])
  results = {
      "rhos": rhos.tolist(),
      "mean_risk": risk.mean(0).tolist(),
      "bias_var": {f"{r:g}": bias_var(j) for j, r in enumerate(rhos)},
      "bag": dict(zip(("bias", "variance"), bias_var(i_bag_slot))),
      "instance": dict(zip(("bias", "variance"), bias_var(i_inst))),
      "rho_star": float(rhos[j_star]),
      "star_minus_best_end": st.mean_ci(risk[half:, j_star] - ends),
      "risk_bag": float(risk[:, i_bag_slot].mean()),
      "risk_instance": float(risk[:, i_inst].mean()),
      "risk_star_heldout": float(risk[half:, j_star].mean()),
      "bag_estimator": config.bag_estimator,
  }
  log = MetricsLog(workdir)
  log.reset()
  for j, r in enumerate(rhos):
    log.log(j, rho=float(r), risk=float(risk[:, j].mean()), bias=results["bias_var"][f"{r:g}"][0],
            variance=results["bias_var"][f"{r:g}"][1])
  _figure(results, config, workdir)
  return results


def claims(results: dict) -> list[Claim]:
  d = results["star_minus_best_end"]
  interior = 0.0 < results["rho_star"] < 1.0
  return [
      Claim.at_most("bag-level estimator: relative bias ||E theta_hat - theta|| / ||theta||", results["bag"]["bias"],
                    0.1, paper="0 (unbiased)", kind="paper", where="Sec. 3 (bias-variance of the two losses)"),
      Claim.at_least("instance-level estimator: relative bias", results["instance"]["bias"], 0.5,
                     paper="biased (towards theta / k here)", kind="paper", where="Sec. 3"),
      Claim.at_most("variance ratio tr Cov(instance) / tr Cov(bag)",
                    results["instance"]["variance"] / results["bag"]["variance"], 1.0,
                    paper="< 1 (instance level: lower variance)", kind="paper", where="Sec. 3"),
      Claim("interpolating loss at rho* (picked on half the draws) beats both ends on the other half: upper end of "
            "the 95% CI of risk(rho*) - min(risk(bag), risk(instance)), rho* interior",
            "the optimal interpolation outperforms both", float(d["hi"]),
            f"< 0 and 0 < rho* < 1; rho* = {results['rho_star']:g}, difference {st.fmt_ci(d, 4)}",
            bool(np.isfinite(d["hi"]) and d["hi"] < 0 and interior), "paper",
            "Sec. 4 (the interpolating estimator)"),
  ]


def _figure(results, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  rhos = np.asarray(results["rhos"])
  bv = np.asarray([results["bias_var"][f"{r:g}"] for r in rhos])
  fig, ax = plt.subplots(figsize=(6.5, 4))
  ax.plot(rhos, results["mean_risk"], "k-o", ms=3, label="risk E||theta_hat - theta||^2")
  ax.plot(rhos, bv[:, 0] ** 2, "--", label="bias^2")
  ax.plot(rhos, bv[:, 1], ":", label="variance")
  ax.axvline(results["rho_star"], color="r", lw=0.8, label=f"rho* = {results['rho_star']:g} (paper: interior optimum)")
  ax.set_xlabel("rho (0: instance-level loss, 1: bag-level loss)")
  ax.set_ylabel("estimation error")
  ax.set_yscale("log")
  ax.legend(fontsize=7)
  ax.set_title(f"Aggregate responses, linear regression: d = {config.dim}, n = {config.n}, k = {config.bag_size}, "
               f"{config.reps} draws", fontsize=9)
  save_figure(fig, workdir / "figure.png")
