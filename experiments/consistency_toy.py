"""Improved consistency training (iCT) on a 2-D mixture: pseudo-Huber vs squared L2, curriculum vs fixed grid.

Paper [2]: Yang Song, Prafulla Dhariwal, "Improved Techniques for Training Consistency Models", ICLR 2024,
arXiv:2310.14189.

Setup. Data: a mixture of `n_modes` Gaussians on a circle in R^2. Model: an MLP F with the consistency
parameterisation f(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, log(sigma) / 4) (sigma_data = 0.5,
sigma_min = 0.002, sigma_max = 80). Training: `jaxlib_methods.losses.consistency_loss` with teacher = stopgrad(student)
(no EMA), lognormal noise sampler (P_mean = -1.1, P_std = 2.0), lambda = 1 / (sigma_{i+1} - sigma_i), Adam. Three runs
with the same seed and steps:
  A. iCT: pseudo-Huber metric (c = 0.00054 sqrt(d)), doubling curriculum N(k) (s0 = 10, s1 = 1280);
  B. as A with the squared L2 metric;
  C. as A with a fixed grid N = `fixed_num_scales`.
Evaluation: one-step samples f(sigma_max z, sigma_max) against fresh data, sliced Wasserstein-2 distance (Monte-Carlo
over random directions, the same directions and samples for every run).

Claims (the paper's directions; its numbers are image FIDs, e.g. 2.51 one-step on CIFAR-10, not comparable here):
  1. pseudo-Huber gives lower one-step SW2 than squared L2 (Sec. 3.3);
  2. the doubling curriculum gives lower one-step SW2 than a fixed discretisation (Sec. 3.4).

What we measured (cpu preset, seed 0): SW2 0.093 (iCT, pseudo-Huber + curriculum), 0.130 (squared L2), 0.081 (fixed
N = 1281), against a data-vs-data floor of 0.061 at n_eval = 2000: claim 1 holds, claim 2 does not on this toy (a
single seed; the 0.012 gap is below the sampling floor).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods.losses import consistency as cm
from jaxlib_methods.runner import Claim, MetricsLog, Paper, save_figure
from jaxlib_methods.runner.constraints import Check, NonNegativeFloat, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=2, title="Improved Techniques for Training Consistency Models", year=2023, arxiv="2310.14189")
DEMO = False


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  n_modes: PositiveInt = 8
  radius: PositiveFloat = 1.0
  mode_std: NonNegativeFloat = 0.08
  hidden: PositiveInt = 128
  steps: PositiveInt = 4000
  batch_size: PositiveInt = 256
  learning_rate: PositiveFloat = 1e-3
  s0: PositiveInt = 10
  s1: PositiveInt = 1280
  fixed_num_scales: Annotated[int, Range(ge=2)] = 1281
  log_every: PositiveInt = 250
  n_eval: PositiveInt = 2000
  n_projections: PositiveInt = 128

  CHECKS = (Check("steps % log_every == 0", "training runs whole chunks of log_every steps"),
            Check("s0 <= s1", "the curriculum doubles the intervals from s0 up to s1"))

PRESETS = {
    "cpu": Config(),
    "gpu": Config(steps=40000, hidden=512, batch_size=1024, n_eval=20000, log_every=2500),
    "tpu": Config(steps=40000, hidden=512, batch_size=1024, n_eval=20000, log_every=2500),
}

RUNS = {"ict_pseudo_huber": ("pseudo_huber", True), "squared_l2": ("l2", True), "fixed_grid": ("pseudo_huber", False)}


def sample_data(key, n, config: Config):
  k1, k2 = jax.random.split(key)
  mode = jax.random.randint(k1, (n,), 0, config.n_modes)
  ang = 2 * jnp.pi * mode / config.n_modes
  centers = config.radius * jnp.stack([jnp.cos(ang), jnp.sin(ang)], -1)
  return centers + config.mode_std * jax.random.normal(k2, (n, 2))


def init_mlp(key, config: Config):
  sizes = [3, config.hidden, config.hidden, config.hidden, 2]
  keys = jax.random.split(key, len(sizes) - 1)
  return [{"w": jax.random.normal(k, (a, b)) * np.sqrt(2.0 / a), "b": jnp.zeros(b)}
          for k, a, b in zip(keys, sizes[:-1], sizes[1:])]


def consistency_fn(params, x, sigma):
  """f(x, sigma) = c_skip x + c_out F(c_in x, log(sigma)/4): x [B, 2], sigma [B]."""
  c_skip, c_out = cm.consistency_skip_out(sigma)
  c_in = 1.0 / jnp.sqrt(sigma ** 2 + cm.SIGMA_DATA ** 2)
  h = jnp.concatenate([c_in[:, None] * x, (jnp.log(sigma) / 4)[:, None]], axis=-1)
  for layer in params[:-1]:
    h = jax.nn.silu(h @ layer["w"] + layer["b"])
  out = h @ params[-1]["w"] + params[-1]["b"]
  return c_skip[:, None] * x + c_out[:, None] * out


def _squared_l2(a, b):
  return jnp.sum(jnp.square(a - b), axis=-1)


def _grid(num_scales: int, pad_to: int):
  """Karras grid and its lognormal interval probabilities, padded to fixed shapes (no recompile per stage)."""
  sig = np.asarray(cm.karras_sigmas(num_scales), np.float32)
  p = np.asarray(cm.lognormal_sigma_probs(jnp.asarray(sig)), np.float32)
  sig_pad = np.concatenate([sig, np.full(pad_to - num_scales, sig[-1], np.float32)])
  p_pad = np.concatenate([p, np.zeros(pad_to - num_scales, np.float32)])
  return jnp.asarray(sig_pad), jnp.asarray(p_pad)


def train_one(config: Config, metric: str, curriculum: bool):
  key = jax.random.key(config.seed)
  params = init_mlp(jax.random.fold_in(key, 1), config)
  opt = optax.adam(config.learning_rate)
  distance = cm.pseudo_huber_loss if metric == "pseudo_huber" else _squared_l2
  pad_to = max(config.s1, config.fixed_num_scales) + 1

  def step(carry, k, sig, probs):
    prm, ost = carry
    kx, kz, ki = jax.random.split(k, 3)
    x = sample_data(kx, config.batch_size, config)
    z = jax.random.normal(kz, x.shape)
    i = jax.random.choice(ki, pad_to - 1, (config.batch_size,), p=probs)
    loss_fn = lambda pp: jnp.mean(cm.consistency_loss(consistency_fn, pp, x, z, sig[i], sig[i + 1],
                                                      distance=distance))
    loss, g = jax.value_and_grad(loss_fn)(prm)
    upd, ost = opt.update(g, ost, prm)
    return (optax.apply_updates(prm, upd), ost), loss

  @jax.jit
  def chunk(carry, k, sig, probs):
    return jax.lax.scan(lambda c, kk: step(c, kk, sig, probs), carry, jax.random.split(k, config.log_every))

  carry = (params, opt.init(params))
  curve = []
  for c in range(config.steps // config.log_every):
    start = c * config.log_every
    n_scales = (cm.ict_num_scales(start, config.steps, config.s0, config.s1) if curriculum
                else config.fixed_num_scales)
    sig, probs = _grid(n_scales, pad_to)
    carry, losses = chunk(carry, jax.random.fold_in(key, 1000 + c), sig, probs)
    curve.append(float(jnp.mean(losses)))
  return carry[0], curve


def sliced_w2(a: np.ndarray, b: np.ndarray, directions: np.ndarray) -> float:
  """Sliced Wasserstein-2 between equal-size point clouds a, b [n, 2] over unit `directions` [m, 2] (float64)."""
  pa = np.sort(a @ directions.T, axis=0)
  pb = np.sort(b @ directions.T, axis=0)
  return float(np.sqrt(np.mean((pa - pb) ** 2)))


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  key = jax.random.key(config.seed + 12345)
  k_data, k_z, k_dir = jax.random.split(key, 3)
  data = np.asarray(sample_data(k_data, config.n_eval, config), np.float64)
  z = jax.random.normal(k_z, (config.n_eval, 2)) * cm.SIGMA_MAX
  dirs = np.asarray(jax.random.normal(k_dir, (config.n_projections, 2)), np.float64)
  dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
  log = MetricsLog(workdir)
  log.reset()
  results = {"sw2": {}, "curves": {}, "samples": {}}
  for name, (metric, curriculum) in RUNS.items():
    params, curve = train_one(config, metric, curriculum)
    samples = np.asarray(consistency_fn(params, z, jnp.full((config.n_eval,), cm.SIGMA_MAX)), np.float64)
    results["sw2"][name] = sliced_w2(samples, data, dirs) if np.all(np.isfinite(samples)) else float("nan")
    results["curves"][name] = curve
    results["samples"][name] = samples[:500].tolist()
    for i, v in enumerate(curve):
      log.log((i + 1) * config.log_every, **{f"loss/{name}": v})
  # Reference floor: two independent data samples of the same size.
  other = np.asarray(sample_data(jax.random.fold_in(k_data, 1), config.n_eval, config), np.float64)
  results["sw2_data_vs_data"] = sliced_w2(other, data, dirs)
  _figure(results, data, workdir)
  return results


def claims(results: dict) -> list[Claim]:
  sw = results["sw2"]
  return [
      Claim.at_most("one-step SW2: pseudo-Huber minus squared L2", sw["ict_pseudo_huber"] - sw["squared_l2"], 0.0,
                    paper="pseudo-Huber better (Sec. 3.3 ablation)"),
      Claim.at_most("one-step SW2: doubling curriculum minus fixed grid", sw["ict_pseudo_huber"] - sw["fixed_grid"],
                    0.0, paper="curriculum better (Sec. 3.4)"),
  ]


def _figure(results, data, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  names = list(results["samples"])
  fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 4), sharex=True, sharey=True)
  for ax, name in zip(axes, names):
    s = np.asarray(results["samples"][name])
    ax.scatter(data[:500, 0], data[:500, 1], s=3, c="lightgray", label="data")
    ax.scatter(s[:, 0], s[:, 1], s=3, c="tab:red", label="one-step samples")
    ax.set_title(f"{name}: SW2 {results['sw2'][name]:.3f}")
    ax.set_xlim(-2, 2)
    ax.set_ylim(-2, 2)
  axes[0].legend(loc="lower left")
  fig.suptitle("iCT on a 2-D mixture (Song & Dhariwal 2024)")
  save_figure(fig, workdir / "figure.png")
