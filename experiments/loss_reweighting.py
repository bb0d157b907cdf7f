"""Dynamic loss-based sample reweighting (LinUpper) vs uniform weights: faster learning when the data hold many
redundant, quickly learnt samples.

Paper [78]: Daouda Sow, Herbert Woisetschlaeger, Saikiran Bulusu, Shiqiang Wang, Hans-Arno Jacobsen, Yingbin Liang,
"Dynamic Loss-Based Sample Reweighting for Improved Large Language Model Pretraining", ICLR 2025, arXiv:2502.06733.

The paper's point: in pretraining data, many samples are redundant or already learnt (low loss) and spend the
gradient budget; re-weighting each batch by its normalised losses, down-weighting the lowest-loss samples (the
LinUpper strategy: w ~ softmax(min(l~ + delta, delta) / r), `jaxlib_methods.losses.loss_reweighting`), reaches a
given validation loss in fewer steps and ends lower than uniform weighting (its pretraining curves), and its theory
says loss-based reweighting speeds up convergence when low-loss samples are uninformative.

Setup (a regression stand-in for that data mix). Linear regression y = x^T w* + noise in d dimensions. The training
set mixes `redundant_fraction` of "easy" samples, whose inputs lie in a 2-D subspace (learnt within a few steps and
then carrying no new information), with informative samples from N(0, I_d). Minibatch SGD (batch 64, plain SGD, the
same batches and initialisation for every run) on the mean weighted squared loss, the weights from each batch's own
losses (no gradient through them: `reweighted_mean`). Runs per seed: uniform and LinUpper (delta = 1, r =
`temperature`). Measured every `log_every` steps: the test loss on fresh informative inputs (the excess error
||w - w*||^2).

Claims (paired over `seeds` seeds, 95% t-intervals, tolerances fixed before the run):
  1. LinUpper reaches the target test loss (`target_fraction` x the uniform run's loss at half the budget, a level
     the uniform run reaches) in fewer steps: the interval of steps(LinUpper) / steps(uniform) lies below 1.
  2. ... and ends lower (the paper's curves end below uniform): the upper end of the interval of final
     loss(LinUpper) - final loss(uniform) is <= 0.

What we measured (cpu preset, 6 seeds, 2026-11-30): steps to the target, LinUpper / uniform = 0.286 [0.265, 0.308]
(claim 1 passes); final test loss difference +0.00003 [-0.00016, +0.00021] on a uniform final loss of 0.00065: both
runs sit at the noise floor of well-specified least squares, whose minimiser does not depend on the sample weights,
so claim 2 does NOT reproduce here. A non-inferiority margin of 10% of the uniform loss was tried in an earlier
revision (chosen after the zero-margin run failed, i.e. a loosened tolerance) and failed as well (6.5e-05 < 2.1e-04);
it was removed. Not tried: a misspecified or noisy-label model where down-weighting could change the optimum.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np

from experiments import _seed_stats as st
from jaxlib_methods.losses import reweighting as rw
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, sweep
from jaxlib_methods.runner.constraints import (Check, NonNegativeFloat, PositiveFloat, PositiveInt, Probability, Range,
                                                Seed)

PAPER = Paper(catalog_id=78, title="Dynamic Loss-Based Sample Reweighting for Improved Large Language Model "
              "Pretraining", year=2025, arxiv="2502.06733")
DEMO = False


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=2)] = 6
  dim: PositiveInt = 32
  n_train: PositiveInt = 8192
  redundant_fraction: Probability = 0.9
  noise: NonNegativeFloat = 0.1
  steps: PositiveInt = 1200
  batch_size: PositiveInt = 64
  learning_rate: PositiveFloat = 0.02
  temperature: PositiveFloat = 0.5          # r of the weights' softmax
  delta: PositiveFloat = 1.0
  strategy: Literal["linupper", "quadratic", "extremes", "uniform"] = "linupper"   # the reweighted run ("uniform":
                                                                                  # a mutation)
  target_fraction: Annotated[float, Range(gt=0, lt=1)] = 0.5
  log_every: PositiveInt = 20
  mesh: MeshConfig = MeshConfig()   # devices the independent runs (seeds) are split over

  CHECKS = (Check("steps % log_every == 0", "the curves are logged every log_every steps"),
            Check("batch_size <= n_train", "a batch is drawn from the training set"))

PRESETS = {"cpu": Config(), "gpu": Config(dim=256, n_train=262144, steps=10000, seeds=8),
           "tpu": Config(dim=256, n_train=262144, steps=10000, seeds=8)}
TINY = ("seeds=4", "steps=600", "n_train=2048", "dim=16")
MUTATIONS = {"uniform_in_place_of_linupper": ("strategy=uniform",)}
MUTATION_TEST_SLOW = True  # a paper claim of this experiment fails at its preset (not reproduced): the mutation test
                           # runs under -m slow only, keeping the default run for reproduced claims (test budget)


def make_data(config: Config, rep: int):
  rng = np.random.default_rng([config.seed, rep])
  w_star = rng.normal(size=config.dim) / np.sqrt(config.dim)
  n_red = int(round(config.redundant_fraction * config.n_train))
  basis = np.linalg.qr(rng.normal(size=(config.dim, 2)))[0]           # a 2-D subspace
  x_red = rng.normal(size=(n_red, 2)) @ basis.T * np.sqrt(config.dim / 2)  # same norm scale as the others
  x_inf = rng.normal(size=(config.n_train - n_red, config.dim))
  x = np.concatenate([x_red, x_inf]).astype(np.float32)
  y = (x @ w_star + config.noise * rng.normal(size=config.n_train)).astype(np.float32)
  return x, y, w_star.astype(np.float32)


def train_all(config: Config, data) -> dict:
  """Uniform and reweighted SGD for every seed (vmap); the excess error ||w - w*||^2 every log_every steps."""
  m = 2 * config.seeds
  x = jnp.stack([jnp.asarray(data[r // 2][0]) for r in range(m)])
  y = jnp.stack([jnp.asarray(data[r // 2][1]) for r in range(m)])
  w_star = jnp.stack([jnp.asarray(data[r // 2][2]) for r in range(m)])
  reweight = jnp.asarray([r % 2 == 1 for r in range(m)])
  keys = jnp.stack([jax.random.fold_in(jax.random.key(config.seed), r // 2) for r in range(m)])

  def one(x, y, ws, rew, key):
    def step(w, k):
      idx = jax.random.choice(k, config.n_train, (config.batch_size,), replace=False)
      xb, yb = x[idx], y[idx]
      per = (xb @ w - yb) ** 2
      weights = jnp.where(rew, rw.loss_reweighting(per, config.strategy, delta=config.delta, r=config.temperature),
                          jnp.ones_like(per))
      g = jax.grad(lambda w: rw.reweighted_mean((xb @ w - yb) ** 2, weights))(w)
      return w - config.learning_rate * g, None

    def chunk(w, k):
      w, _ = jax.lax.scan(step, w, jax.random.split(k, config.log_every))
      return w, jnp.sum((w - ws) ** 2)

    w0 = jnp.zeros(config.dim)
    _, curve = jax.lax.scan(chunk, w0, jax.random.split(key, config.steps // config.log_every))
    return jnp.concatenate([jnp.sum(ws ** 2)[None], curve])

  x, y, w_star, reweight, keys = shard_leading((x, y, w_star, reweight, keys), make_mesh(config.mesh), what="run")
  curves = np.asarray(jax.jit(jax.vmap(one))(x, y, w_star, reweight, keys))
  return {"uniform": curves[0::2].tolist(), "reweighted": curves[1::2].tolist()}


def steps_to(curve: np.ndarray, level: float, log_every: int) -> float:
  hit = np.nonzero(curve <= level)[0]
  return float(hit[0] * log_every) if len(hit) else float("inf")


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  data = [make_data(config, r) for r in range(config.seeds)]
  out = sweep.memoized(workdir, {"runs": "uniform_and_reweighted"}, lambda: train_all(config, data))
  uni, rew = np.asarray(out["uniform"]), np.asarray(out["reweighted"])
  half = uni.shape[1] // 2
  targets = config.target_fraction * uni[:, half]
  s_uni = [steps_to(uni[i], targets[i], config.log_every) for i in range(config.seeds)]
  s_rew = [steps_to(rew[i], targets[i], config.log_every) for i in range(config.seeds)]
  ratio = [a / b if np.isfinite(a) and b > 0 else float("inf") for a, b in zip(s_rew, s_uni)]
  log = MetricsLog(workdir)
  log.reset()
  for j in range(uni.shape[1]):
    log.log(j * config.log_every, test_loss_uniform=float(uni[:, j].mean()), test_loss_reweighted=float(rew[:, j].mean()))
  res = {"curves": {"uniform": uni.mean(0).tolist(), "reweighted": rew.mean(0).tolist()},
         "steps_uniform": s_uni, "steps_reweighted": s_rew, "steps_ratio": st.mean_ci(ratio),
         "final_diff": st.paired_ci(rew[:, -1], uni[:, -1]), "final_uniform": uni[:, -1].tolist(),
         "final_reweighted": rew[:, -1].tolist(), "strategy": config.strategy}
  _figure(res, config, workdir)
  return res


def claims(results: dict) -> list[Claim]:
  r, d = results["steps_ratio"], results["final_diff"]
  where = "Sec. 5, the pretraining curves (validation loss vs steps); Sec. 4, the convergence analysis"
  return [
      Claim("steps to the target test loss, LinUpper / uniform: upper end of the 95% CI", "fewer steps with "
            "LinUpper", r["hi"], f"< 1 (ratio {st.fmt_ci(r)})", bool(np.isfinite(r["hi"]) and r["hi"] < 1), "paper",
            where),
      Claim("final test loss, LinUpper minus uniform: upper end of the 95% CI", "ends lower", d["hi"],
            f"<= 0 (difference {st.fmt_ci(d, 5)})", bool(np.isfinite(d["hi"]) and d["hi"] <= 0), "paper", where),
  ]


def _figure(res, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6.5, 4))
  t = np.arange(len(res["curves"]["uniform"])) * config.log_every
  ax.semilogy(t, res["curves"]["uniform"], label="uniform weights")
  ax.semilogy(t, res["curves"]["reweighted"], label=f"{config.strategy} (r = {config.temperature:g})")
  ax.set_xlabel("SGD step")
  ax.set_ylabel("test loss ||w - w*||^2 (mean over seeds)")
  ax.set_title(f"paper: LinUpper reaches a loss in fewer steps; ours: step ratio {res['steps_ratio']['mean']:.2f}",
               fontsize=9)
  ax.legend()
  fig.suptitle(f"Loss-based reweighting with {config.redundant_fraction:.0%} redundant samples (Sow et al. 2025)",
               fontsize=10)
  save_figure(fig, workdir / "figure.png")
