"""iSogCLR learns larger temperatures for frequent semantics and smaller ones for rare semantics.

Paper [183]: Zi-Hao Qiu, Quanqi Hu, Zhuoning Yuan, Denny Zhou, Lijun Zhang, Tianbao Yang, "Not All Semantics are
Created Equal: Contrastive Self-supervised Learning with Automatic Temperature Individualization", ICML 2023,
arXiv:2305.11965.

Setup. An imbalanced mixture of Gaussian clusters in R^D (a few frequent classes, many rare ones; the labels are never
used in training). Two augmented views per point (additive noise + random feature masking). A 2-layer MLP encoder is
trained with `jaxlib_methods.losses.isogclr_loss` (individual temperatures, moving-average state carried by the
loop) and, as the baseline, the same loss with `eta = 0` (temperatures frozen at `tau_init`: SogCLR with a fixed
temperature). The learnt temperatures are read from the state; representations are evaluated by a ridge-regression
linear probe on held-out data.

What we measured (cpu preset, seed 0): the claim-1 direction does NOT reproduce here. Mean learnt tau is 0.375 for
frequent-class anchors vs 0.427 for rare ones (eta = 0.01, 1500 steps; 0.093 vs 0.298 with eta = 0.05), while the
linear probe is as good or better than the fixed temperature (1.000 vs 0.993). Mechanism (tested in
tests/losses/test_contrastive.py): dL_i/dtau_i = rho - KL(p_i || uniform) with p_i the softmax of the anchor's negative
similarities, so tau_i rises while the anchor's negatives are more concentrated than the KL radius rho allows. In
these well-separated synthetic clusters a rare anchor has a few very similar negatives (its class-mates), i.e. a
highly concentrated p_i, and its temperature rises most; the paper's real image data differ in that respect.

Claims:
  1. (The paper's analysis of learnt temperatures: "frequent semantics get larger temperatures") mean learnt tau
     of frequent-class anchors exceeds that of rare-class anchors.
  2. (The paper's benchmark tables: iSogCLR >= SogCLR downstream) linear-probe accuracy of iSogCLR minus that of
     the fixed temperature is >= -0.02 (a small synthetic task, so we check "not worse" rather than the paper's
     gains).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods.losses import isogclr_init, isogclr_loss
from jaxlib_methods.runner import Claim, MetricsLog, Paper, save_figure
from jaxlib_methods.runner.constraints import Check, NonNegativeFloat, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=183, title="Not All Semantics are Created Equal: Contrastive Self-supervised Learning with "
              "Automatic Temperature Individualization", year=2023, arxiv="2305.11965")
DEMO = False


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  dim: PositiveInt = 32          # input dimension D
  n_frequent: PositiveInt = 2    # frequent classes
  per_frequent: PositiveInt = 600
  n_rare: PositiveInt = 8        # rare classes
  per_rare: PositiveInt = 40
  cluster_scale: NonNegativeFloat = 2.0     # distance scale of class means
  noise: NonNegativeFloat = 1.0             # within-class spread
  aug_noise: NonNegativeFloat = 0.3
  aug_mask: Annotated[float, Range(ge=0, lt=1)] = 0.2     # probability of zeroing each feature in a view
  hidden: PositiveInt = 64
  embed: PositiveInt = 16
  batch_size: Annotated[int, Range(ge=2)] = 128           # in-batch negatives need >= 2
  steps: PositiveInt = 1500
  learning_rate: PositiveFloat = 1e-3
  tau_init: Annotated[float, Range(ge=0.05, le=0.7)] = 0.1   # inside iSogCLR's clip range [tau_min, tau_max]
  rho: NonNegativeFloat = 0.3
  eta: NonNegativeFloat = 0.01
  gamma: Annotated[float, Range(gt=0, le=1)] = 0.9
  log_every: PositiveInt = 100
  test_fraction: Annotated[float, Range(gt=0, lt=1)] = 0.3

  CHECKS = (Check("steps % log_every == 0", "training runs whole chunks of log_every steps"),
            Check("2 <= batch_size <= (n_frequent * per_frequent + n_rare * per_rare)"
                  " - int(test_fraction * (n_frequent * per_frequent + n_rare * per_rare))",
                  "batches are drawn without replacement from the training split"),
            Check("int(test_fraction * (n_frequent * per_frequent + n_rare * per_rare)) >= 1",
                  "the linear probe needs a non-empty test split"))

PRESETS = {
    "cpu": Config(),
    "gpu": Config(per_frequent=6000, per_rare=400, n_rare=30, steps=20000, batch_size=512, hidden=256, embed=64),
    "tpu": Config(per_frequent=6000, per_rare=400, n_rare=30, steps=20000, batch_size=512, hidden=256, embed=64),
}


def make_data(config: Config):
  rng = np.random.default_rng(config.seed)
  n_cls = config.n_frequent + config.n_rare
  means = config.cluster_scale * rng.normal(size=(n_cls, config.dim))
  sizes = [config.per_frequent] * config.n_frequent + [config.per_rare] * config.n_rare
  labels = np.concatenate([np.full(s, c) for c, s in enumerate(sizes)])
  x = means[labels] + config.noise * rng.normal(size=(len(labels), config.dim))
  perm = rng.permutation(len(labels))
  x, labels = x[perm], labels[perm]
  n_test = int(config.test_fraction * len(labels))
  return (x[n_test:].astype(np.float32), labels[n_test:], x[:n_test].astype(np.float32), labels[:n_test])


def _init_mlp(key, config):
  k1, k2 = jax.random.split(key)
  return {"w1": jax.random.normal(k1, (config.dim, config.hidden)) * np.sqrt(2 / config.dim),
          "b1": jnp.zeros(config.hidden),
          "w2": jax.random.normal(k2, (config.hidden, config.embed)) * np.sqrt(1 / config.hidden),
          "b2": jnp.zeros(config.embed)}


def _encode(p, x):
  return jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]


def _augment(key, x, config):
  k1, k2 = jax.random.split(key)
  keep = jax.random.bernoulli(k1, 1 - config.aug_mask, x.shape)
  return jnp.where(keep, x, 0.0) + config.aug_noise * jax.random.normal(k2, x.shape)


def train_one(config: Config, x_train: np.ndarray, eta: float):
  """Train the encoder with isogclr_loss (eta = 0: fixed temperature). Returns (params, state, loss curve)."""
  n = x_train.shape[0]
  x = jnp.asarray(x_train)
  key = jax.random.key(config.seed)
  params = _init_mlp(jax.random.fold_in(key, 1), config)
  opt = optax.adam(config.learning_rate)
  state = isogclr_init(n, tau_init=config.tau_init)
  kw = dict(gamma=config.gamma, rho=config.rho, eta=eta)

  def step(carry, k):
    prm, ost, st = carry
    k_idx, k1, k2 = jax.random.split(k, 3)
    idx = jax.random.choice(k_idx, n, (config.batch_size,), replace=False)
    xb = x[idx]

    def loss_fn(pp):
      z1 = _encode(pp, _augment(k1, xb, config))
      z2 = _encode(pp, _augment(k2, xb, config))
      loss, new_st = isogclr_loss(z1, z2, idx, st, **kw)
      return jnp.mean(loss), new_st

    (loss, new_st), g = jax.value_and_grad(loss_fn, has_aux=True)(prm)
    upd, ost = opt.update(g, ost, prm)
    return (optax.apply_updates(prm, upd), ost, new_st), loss

  @jax.jit
  def chunk(carry, k):
    return jax.lax.scan(step, carry, jax.random.split(k, config.log_every))

  carry = (params, opt.init(params), state)
  curve = []
  for i in range(config.steps // config.log_every):
    carry, losses = chunk(carry, jax.random.fold_in(key, 100 + i))
    curve.append(float(jnp.mean(losses)))
  return carry[0], carry[2], curve


def linear_probe_accuracy(f_train, y_train, f_test, y_test, ridge: float = 1e-2) -> float:
  """Ridge regression onto one-hot labels (float64 NumPy), accuracy of the argmax on the test set."""
  f_train = np.concatenate([f_train, np.ones((len(f_train), 1))], 1).astype(np.float64)
  f_test = np.concatenate([f_test, np.ones((len(f_test), 1))], 1).astype(np.float64)
  y1 = np.eye(int(max(y_train.max(), y_test.max())) + 1)[y_train]
  w = np.linalg.solve(f_train.T @ f_train + ridge * np.eye(f_train.shape[1]), f_train.T @ y1)
  return float(np.mean(np.argmax(f_test @ w, 1) == y_test))


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  x_tr, y_tr, x_te, y_te = make_data(config)
  frequent = y_tr < config.n_frequent
  results = {"curves": {}, "probe_acc": {}}
  log = MetricsLog(workdir)
  log.reset()
  for name, eta in (("isogclr", config.eta), ("fixed_tau", 0.0)):
    params, state, curve = train_one(config, x_tr, eta)
    results["curves"][name] = curve
    for i, v in enumerate(curve):
      log.log((i + 1) * config.log_every, **{f"loss/{name}": v})
    f_tr = np.asarray(_encode(params, jnp.asarray(x_tr)))
    f_te = np.asarray(_encode(params, jnp.asarray(x_te)))
    results["probe_acc"][name] = linear_probe_accuracy(f_tr, y_tr, f_te, y_te)
    if name == "fixed_tau":
      results["tau_fixed_max_abs_change"] = float(np.max(np.abs(np.asarray(state.tau) - config.tau_init)))
    if name == "isogclr":
      tau = np.asarray(state.tau)
      results["tau_frequent_mean"] = float(tau[frequent].mean())
      results["tau_rare_mean"] = float(tau[~frequent].mean())
      results["tau_by_class"] = [float(tau[y_tr == c].mean()) for c in range(config.n_frequent + config.n_rare)]
  _figure(results, config, workdir)
  return results


def claims(results: dict) -> list[Claim]:
  return [
      Claim.at_least("mean tau(frequent anchors) - mean tau(rare anchors)",
                     results["tau_frequent_mean"] - results["tau_rare_mean"], 0.0,
                     paper="> 0 (frequent semantics get larger tau)"),
      Claim.at_least("linear-probe accuracy: iSogCLR - fixed temperature",
                     results["probe_acc"]["isogclr"] - results["probe_acc"]["fixed_tau"], -0.02,
                     paper="iSogCLR >= SogCLR (benchmark tables)"),
  ]


def _figure(results, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
  n_cls = config.n_frequent + config.n_rare
  colors = ["tab:red"] * config.n_frequent + ["tab:blue"] * config.n_rare
  axes[0].bar(np.arange(n_cls), results["tau_by_class"], color=colors)
  axes[0].set_xlabel("class (red: frequent, blue: rare)")
  axes[0].set_ylabel("mean learnt tau")
  steps = np.arange(1, len(results["curves"]["isogclr"]) + 1) * config.log_every
  for name, c in results["curves"].items():
    axes[1].plot(steps, c, label=f"{name} (probe acc {results['probe_acc'][name]:.3f})")
  axes[1].set_xlabel("step")
  axes[1].set_ylabel("surrogate loss")
  axes[1].legend()
  fig.suptitle("iSogCLR individual temperatures on imbalanced clusters (Qiu et al. 2023)")
  save_figure(fig, workdir / "figure.png")
