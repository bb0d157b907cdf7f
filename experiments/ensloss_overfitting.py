"""EnsLoss: training with a fresh random calibrated loss derivative every step overfits less than a fixed loss.

Paper [75]: Ben Dai, "EnsLoss: Stochastic Calibrated Loss Ensembles for Preventing Overfitting in Classification",
2024, arXiv:2409.00908. Official code: github.com/statmlben/ensLoss (`losses.py`, class `ensLoss`).

The paper's point: a convex, classification-calibrated loss phi enters SGD only through phi'(margin); EnsLoss draws
a random calibrated derivative (non-decreasing, phi'(0) < 0) at every step ("doubly stochastic gradients"), an
ensemble of losses in the spirit of dropout/bagging, which prevents overfitting: higher test accuracy and a smaller
train-test gap than fixed losses (logistic, hinge, ...) for over-parameterised networks (its CIFAR2, PCam and 45
OpenML binary tasks).

Setup (binary classification, over-parameterised). Two overlapping Gaussian classes in `dim` dimensions, `label_noise`
of the training labels flipped, n_train examples; a one-hidden-layer ReLU MLP much wider than n_train / dim,
trained full batch with SGD (momentum 0.9) for `steps` steps, the same data and initial weights for each loss:
  logistic   mean log(1 + exp(-s)) of the margins s = y f(x);
  hinge      mean max(0, 1 - s);
  ensloss    `jaxlib_methods.losses.ensloss` with a new key each step (the official sampler: inverse Box-Cox of
             normals, lambda = 0, ranked to the margins, clipped at -1, divided by s beyond s = 1).
Measured after training: clean test accuracy and the train (noisy labels) minus test accuracy gap.

Claims (paired over `seeds` seeds, 95% t-intervals, tolerances fixed before the run):
  1. EnsLoss beats the logistic loss in test accuracy (the interval of the difference lies above 0).
  2. EnsLoss beats the hinge loss in test accuracy (above 0).
  3. EnsLoss overfits less than the logistic loss: the interval of gap(ensloss) - gap(logistic) lies below 0.

What we measured (cpu preset, 5 seeds): every loss interpolates the noisy training set (train accuracy 1.0), so the
gap difference mirrors the test difference; test accuracy EnsLoss 0.574, logistic 0.559, hinge 0.552 (Bayes 0.69):
EnsLoss - logistic = +0.015 [+0.003, +0.028], EnsLoss - hinge = +0.022 [+0.010, +0.034]. The effect is real but
small at this size, as the paper's (1-3 points on its benchmarks).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import _seed_stats as st
from jaxlib_methods.losses import calibrated_ensemble as ens
from jaxlib_methods.runner import (Claim, MeshConfig, MetricsLog, Paper, make_mesh, minimize, save_figure,
                                   shard_leading, sweep)
from jaxlib_methods.runner.constraints import NonNegativeFloat, PositiveFloat, PositiveInt, Probability, Range, Seed

PAPER = Paper(catalog_id=75, title="EnsLoss: Stochastic Calibrated Loss Ensembles for Preventing Overfitting in "
              "Classification", year=2024, arxiv="2409.00908")
DEMO = False

LOSSES = ("logistic", "hinge", "ensloss")


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=2)] = 5
  dim: PositiveInt = 20
  separation: NonNegativeFloat = 1.0      # distance between the class means (in units of the noise std)
  label_noise: Probability = 0.2
  n_train: PositiveInt = 400
  n_test: PositiveInt = 4000
  hidden: PositiveInt = 512
  steps: PositiveInt = 3000
  learning_rate: PositiveFloat = 0.05
  ens_slot: Literal["ensloss", "logistic"] = "ensloss"   # what trains in the EnsLoss slot ("logistic": a mutation)
  mesh: MeshConfig = MeshConfig()   # devices the independent runs (seeds) are split over

  CHECKS = ()

PRESETS = {"cpu": Config(), "gpu": Config(n_train=5000, n_test=20000, hidden=4096, steps=20000),
           "tpu": Config(n_train=5000, n_test=20000, hidden=4096, steps=20000)}
TINY = ("seeds=4", "steps=1000", "hidden=256", "n_test=2000")
MUTATIONS = {"logistic_in_place_of_ensloss": ("ens_slot=logistic",)}
MUTATION_TEST_SLOW = True   # its first mutation takes 10-14 s of CPU at TINY (CI log of 2026-11-30): kept for -m slow


def make_data(config: Config, rep: int):
  rng = np.random.default_rng([config.seed, rep])
  mu = rng.normal(size=config.dim)
  mu *= config.separation / (2 * np.linalg.norm(mu))

  def draw(n):
    y = rng.integers(0, 2, n)
    x = (2 * y[:, None] - 1) * mu + rng.normal(size=(n, config.dim))
    return x.astype(np.float32), y.astype(np.int32)

  x, y = draw(config.n_train)
  xt, yt = draw(config.n_test)
  flip = rng.random(config.n_train) < config.label_noise
  return x, np.where(flip, 1 - y, y).astype(np.int32), xt, yt


def mlp(p, x):
  return (jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"])[:, 0]


def train_all(config: Config, data) -> dict:
  losses = [lo if lo != "ensloss" else config.ens_slot for lo in LOSSES]
  idx = [(r, j) for r in range(config.seeds) for j in range(len(LOSSES))]
  x = jnp.stack([jnp.asarray(data[r][0]) for r, _ in idx])
  y = jnp.stack([jnp.asarray(data[r][1]) for r, _ in idx])
  kind = jnp.asarray([{"logistic": 0, "hinge": 1, "ensloss": 2}[losses[j]] for _, j in idx])
  keys = jnp.stack([jax.random.fold_in(jax.random.key(config.seed), r) for r, _ in idx])
  tx = optax.sgd(config.learning_rate, momentum=0.9)

  def one(x, y, kind, key):
    k1, k2, k3 = jax.random.split(key, 3)
    p = {"w1": jax.random.normal(k1, (config.dim, config.hidden)) * np.sqrt(2.0 / config.dim),
         "b1": jnp.zeros(config.hidden),
         "w2": jax.random.normal(k2, (config.hidden, 1)) * np.sqrt(1.0 / config.hidden)}

    def objective(p, t):
      margins = ens.ensloss_margins(mlp(p, x), y)
      logistic = jnp.mean(jax.nn.softplus(-margins))
      hinge = jnp.mean(jnp.maximum(0.0, 1.0 - margins))
      ensl = jnp.mean(ens.ensloss(margins, jax.random.fold_in(k3, t)))
      return jnp.select([kind == 0, kind == 1], [logistic, hinge], ensl)

    p, _ = minimize(objective, p, tx, jnp.arange(config.steps))
    return p

  x, y, kind, keys = shard_leading((x, y, kind, keys), make_mesh(config.mesh), what="run")
  params = jax.jit(jax.vmap(one))(x, y, kind, keys)
  out = {name: {"test_acc": [], "train_acc": []} for name in LOSSES}
  for i, (r, j) in enumerate(idx):
    p = jax.tree.map(lambda a: a[i], params)
    xr, yr, xt, yt = data[r]
    out[LOSSES[j]]["train_acc"].append(float(np.mean((np.asarray(mlp(p, jnp.asarray(xr))) > 0) == yr)))
    out[LOSSES[j]]["test_acc"].append(float(np.mean((np.asarray(mlp(p, jnp.asarray(xt))) > 0) == yt)))
  return out


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  data = [make_data(config, r) for r in range(config.seeds)]
  out = sweep.memoized(workdir, {"runs": "logistic_hinge_ensloss"}, lambda: train_all(config, data))
  gap = {k: (np.asarray(v["train_acc"]) - np.asarray(v["test_acc"])).tolist() for k, v in out.items()}
  res = {"per_loss": out, "gap": gap,
         "diff": {"test_vs_logistic": st.paired_ci(out["ensloss"]["test_acc"], out["logistic"]["test_acc"]),
                  "test_vs_hinge": st.paired_ci(out["ensloss"]["test_acc"], out["hinge"]["test_acc"]),
                  "gap_vs_logistic": st.paired_ci(gap["ensloss"], gap["logistic"])},
         "ens_slot": config.ens_slot}
  log = MetricsLog(workdir)
  log.reset()
  log.log(config.steps, **{f"test_acc/{k}": float(np.mean(v["test_acc"])) for k, v in out.items()},
          **{f"gap/{k}": float(np.mean(v)) for k, v in gap.items()})
  _figure(res, config, workdir)
  return res


def claims(results: dict) -> list[Claim]:
  d = results["diff"]
  where = "Sec. 5, test accuracy tables (CIFAR2, PCam, OpenML): EnsLoss vs fixed losses"

  def above(text, ci, paper):
    return Claim(text, paper, ci["lo"], f"> 0 (difference {st.fmt_ci(ci, 4)})",
                 bool(np.isfinite(ci["lo"]) and ci["lo"] > 0), "paper", where)

  return [
      above("test accuracy, EnsLoss minus logistic: lower end of the 95% CI", d["test_vs_logistic"],
            "EnsLoss better than the logistic loss"),
      above("test accuracy, EnsLoss minus hinge: lower end of the 95% CI", d["test_vs_hinge"],
            "EnsLoss better than the hinge loss"),
      Claim("train - test accuracy gap, EnsLoss minus logistic: upper end of the 95% CI", "EnsLoss overfits less",
            d["gap_vs_logistic"]["hi"], f"< 0 (difference {st.fmt_ci(d['gap_vs_logistic'], 4)})",
            bool(np.isfinite(d["gap_vs_logistic"]["hi"]) and d["gap_vs_logistic"]["hi"] < 0), "paper",
            "Sec. 5 (overfitting: the train-test gap)"),
  ]


def _figure(res, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  for ax, key, label in ((axes[0], "test_acc", "clean test accuracy"), (axes[1], "gap", "train - test accuracy")):
    for j, name in enumerate(LOSSES):
      v = res["per_loss"][name]["test_acc"] if key == "test_acc" else res["gap"][name]
      ax.scatter([j] * len(v), v, s=14)
      ax.errorbar([j], [np.mean(v)], yerr=[np.std(v)], fmt="k_", capsize=5)
    ax.set_xticks(range(len(LOSSES)))
    ax.set_xticklabels(LOSSES)
    ax.set_ylabel(label)
  axes[0].set_title("paper: EnsLoss highest", fontsize=9)
  axes[1].set_title("paper: EnsLoss overfits least", fontsize=9)
  fig.suptitle(f"EnsLoss vs fixed losses, over-parameterised MLP ({config.hidden} units, n = {config.n_train}, "
               f"{config.label_noise:.0%} label noise), {config.seeds} seeds", fontsize=10)
  save_figure(fig, workdir / "figure.png")
