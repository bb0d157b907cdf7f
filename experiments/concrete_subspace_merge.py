"""Concrete subspace learning: a shared mask on the task vectors reduces interference in task-arithmetic merging.

Paper [104]: Tang, Shen, Luo, Ding, Hu, Du, Tao, "Concrete Subspace Learning based Interference Elimination for
Multi-task Model Fusion", 2023, arXiv:2312.06173.

The paper's statements: task arithmetic (theta_0 + lambda sum_i tau_i) suffers from interference between the task
vectors; learning one shared mask m over the parameters (a binary Concrete relaxation, trained by gradient descent on
the merged model's loss over the tasks; masked task arithmetic theta_0 + lambda sum_i (m / mean m) tau_i, lambda
kept at 0.3) finds a common low-dimensional subspace and improves the merged model over task arithmetic (up to +8.3%
average accuracy merging eight ViT-B/32 models; Table 1 and its text).

Setup (a small stand-in). Two linear-regression tasks y = x^T theta*_i + noise on x ~ N(0, I_d), theta*_i = theta_0 +
tau*_i with the true task vectors supported on `support` coordinates each (disjoint); the "fine-tuned" models carry
fine-tuning drift on every coordinate, tau_i = tau*_i + nu_i, nu_i ~ N(0, drift^2 / d) (what interferes when the task
vectors are summed). A task's test loss of a merged theta is its expected MSE, ||theta - theta*_i||^2 + noise^2. The
mask logits (one per coordinate, init `init_logit`) are learned by Adam on the mean over the two tasks of the MSE of
the masked merge on `n_val` labelled validation points per task, a fresh `concrete_mask` sample (temperature
`temperature`) per step; the merged model then uses the hard mask 1[logit > 0]. Baseline: plain task arithmetic with
lambda chosen on the same validation points from a grid (a stronger baseline than the usual fixed 0.3).

Claims (paired over `num_seeds` seeds, 95% Student-t intervals; tolerances fixed before the run):
  1. [paper] the learned mask beats task arithmetic: mean test loss over the tasks, concrete - TA(best lambda), upper
     end of the interval < 0.
  2. [paper] the mask finds the shared low-dimensional subspace: the hard mask keeps >= 90% of the task-relevant
     coordinates and <= 50% of the others (mean over seeds).
  3. [sanity] the hard mask is neither empty nor full on any seed.
The mutation `no_mask_learning` (mask_steps=0: the mask stays at its all-keep init, i.e. task arithmetic at lambda =
0.3) must make claims 1 and 2 fail.

What we measured (cpu preset, 6 seeds, 2026-11-30): mean test MSE concrete - TA(best lambda, 0.4-0.5 chosen)
-0.228 [-0.279, -0.178] (claim 1 passes); the hard mask keeps 0.865 of the relevant and 0.483 of the other
coordinates: the interfering drift is removed where it is large, but coordinates whose drift is small stay (keeping
them costs nothing), and relevant coordinates with a small true value are dropped; claim 2 (its thresholds set before
the run) does NOT reproduce. An earlier setting (n_val = 64, 300 mask steps) failed both claims (validation loss
too noisy for the mask's gradient); the preset uses 256 validation points and 500 steps.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import _seed_stats as st
from jaxlib_methods.optim.concrete_subspace import concrete_mask, masked_task_arithmetic, task_vectors
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, train
from jaxlib_methods.runner.constraints import (Check, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt,
                                               Range, Seed)

PAPER = Paper(catalog_id=104, title="Concrete Subspace Learning based Interference Elimination for Multi-task Model "
              "Fusion", year=2023, arxiv="2312.06173")
DEMO = False
LAMBDA_GRID = tuple(np.round(np.arange(0.1, 1.51, 0.1), 2).tolist())


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  num_seeds: Annotated[int, Range(ge=2)] = 6
  dim: PositiveInt = 64
  support: PositiveInt = 8
  drift: NonNegativeFloat = 1.0            # ||nu_i|| scale of the fine-tuning drift
  noise: NonNegativeFloat = 0.1
  n_val: PositiveInt = 256
  scaling: PositiveFloat = 0.3             # lambda of the masked merge (the paper keeps 0.3)
  temperature: PositiveFloat = 0.5
  init_logit: Annotated[float, Range(ge=-20, le=20)] = 3.0
  mask_lr: PositiveFloat = 0.1
  mask_steps: NonNegativeInt = 500
  mesh: MeshConfig = MeshConfig()          # devices the seeds are split over

  CHECKS = (Check("2 * support <= dim", "the two task vectors' supports are disjoint"),)


PRESETS = {
    "cpu": Config(),
    "gpu": Config(dim=4096, support=256, n_val=1024, mask_steps=2000, num_seeds=8),
    "tpu": Config(dim=4096, support=256, n_val=1024, mask_steps=2000, num_seeds=8),
}
TINY = ("mask_steps=150", "num_seeds=4", "dim=32", "support=4", "n_val=128")
MUTATIONS = {"no_mask_learning": ("mask_steps=0",)}
MUTATION_TEST_SLOW = True  # a paper claim of this experiment fails at its preset (not reproduced): the mutation test
                           # runs under -m slow only, keeping the default run for reproduced claims (test budget)


def make_models(config: Config, seed: int):
  """theta_0 [d], the true parameters theta*_i [2, d], the fine-tuned models [2, d], validation sets ([2, n, d],
  [2, n]) and the relevant-coordinate indicator [d]."""
  rng = np.random.default_rng([config.seed, seed, 104])
  d, k = config.dim, config.support
  theta0 = rng.normal(size=d)
  coords = rng.permutation(d)
  star = np.zeros((2, d))
  relevant = np.zeros(d)
  for i in range(2):
    idx = coords[i * k:(i + 1) * k]
    star[i, idx] = rng.normal(size=k)
    relevant[idx] = 1.0
  finetuned = theta0 + star + config.drift * rng.normal(size=(2, d)) / np.sqrt(d)
  x = rng.normal(size=(2, config.n_val, d))
  y = np.einsum("tnd,td->tn", x, theta0 + star) + config.noise * rng.normal(size=(2, config.n_val))
  f = np.float32
  return theta0.astype(f), (theta0 + star).astype(f), finetuned.astype(f), x.astype(f), y.astype(f), relevant.astype(f)


def _test_loss(theta, star, noise):
  """Mean over the tasks of the expected MSE ||theta - theta*_i||^2 + noise^2 (x ~ N(0, I))."""
  return jnp.mean(jnp.sum((theta[None] - star) ** 2, -1)) + noise ** 2


def train_all(config: Config, workdir: pathlib.Path) -> dict:
  models = [make_models(config, s) for s in range(config.num_seeds)]
  arrays = tuple(jnp.stack([jnp.asarray(m[i]) for m in models]) for i in range(6))
  keys = jnp.stack([jax.random.fold_in(jax.random.key(config.seed), s) for s in range(config.num_seeds)])
  tx = optax.adam(config.mask_lr)
  args = shard_leading((*arrays, keys), make_mesh(config.mesh), what="seed")

  def val_loss(theta, x, y):
    return jnp.mean((jnp.einsum("tnd,d->tn", x, theta) - y) ** 2)

  def chunk(carry, theta0, star, finetuned, x, y, relevant, key, start, n):
    """n Adam steps on the mask logits of one seed, steps start .. start + n - 1 (the step folds the key)."""
    taus = task_vectors(theta0, [finetuned[0], finetuned[1]])

    def upper(logits, k):
      m = concrete_mask(logits, k, config.temperature)
      return val_loss(masked_task_arithmetic(theta0, taus, m, config.scaling), x, y)

    def step(carry, t):
      logits, o = carry
      g = jax.grad(upper)(logits, jax.random.fold_in(key, t))
      u, o = tx.update(g, o, logits)
      return (optax.apply_updates(logits, u), o), None

    return jax.lax.scan(step, carry, start + jnp.arange(n))[0]

  def evaluate(carry, theta0, star, finetuned, x, y, relevant, key):
    logits, _ = carry
    taus = task_vectors(theta0, [finetuned[0], finetuned[1]])
    hard = (logits > 0).astype(jnp.float32)
    merged = masked_task_arithmetic(theta0, taus, hard, config.scaling)
    ta_val = jnp.stack([val_loss(masked_task_arithmetic(theta0, taus, None, lam), x, y) for lam in LAMBDA_GRID])
    best = jnp.argmin(ta_val)
    ta_test = jnp.stack([_test_loss(masked_task_arithmetic(theta0, taus, None, lam), star, config.noise)
                         for lam in LAMBDA_GRID])
    kept_rel = jnp.sum(hard * relevant) / jnp.sum(relevant)
    kept_other = jnp.sum(hard * (1 - relevant)) / jnp.sum(1 - relevant)
    return (_test_loss(merged, star, config.noise), ta_test[best], jnp.asarray(LAMBDA_GRID)[best], kept_rel,
            kept_other, jnp.mean(hard), ta_test)

  # The state is the vmapped (logits, Adam state) of all seeds: runner.train checkpoints it every quarter of the
  # mask steps (and on Ctrl-C), and a rerun of the same workdir continues from there, bitwise.
  logits = jnp.full((config.num_seeds, config.dim), config.init_logit, jnp.float32)
  state = shard_leading((logits, jax.vmap(tx.init)(logits)), make_mesh(config.mesh), what="seed")
  jchunk = jax.jit(jax.vmap(chunk, in_axes=(0,) * 8 + (None, None)), static_argnums=9)
  jeval = jax.jit(jax.vmap(evaluate))

  def advance(state, start, n):
    return jchunk(state, *args, jnp.int32(start), n)

  def measure(state, step):
    hard = (state[0] > 0).astype(jnp.float32)
    return {"mask_density": jnp.mean(hard), "kept_relevant": jnp.sum(hard * args[5]) / jnp.sum(args[5])}

  if config.mask_steps:
    log_every = max(1, config.mask_steps // 10)
    chunks = -(-config.mask_steps // log_every)
    state = train(workdir=workdir, state=state, advance=advance, measure=measure, num_steps=config.mask_steps,
                  log_every=log_every, checkpoint_every=max(1, chunks // 4) * log_every, desc="concrete mask").state
  else:   # nothing to train (the no_mask_learning mutation): the all-keep initial mask
    log = MetricsLog(workdir)
    log.reset()
    log.log(0, **{k: float(v) for k, v in measure(state, 0).items()})
  out = jeval(state, *args)
  names = ("concrete", "ta_best", "ta_lambda", "kept_relevant", "kept_other", "density", "ta_curve")
  return {n: np.asarray(v).tolist() for n, v in zip(names, out)}


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  out = train_all(config, workdir)
  res = {**{k: out[k] for k in ("concrete", "ta_best", "ta_lambda", "kept_relevant", "kept_other", "density")},
         "diff": st.paired_ci(out["concrete"], out["ta_best"]),
         "kept_relevant_mean": float(np.mean(out["kept_relevant"])),
         "kept_other_mean": float(np.mean(out["kept_other"])),
         "ta_curve": np.mean(out["ta_curve"], 0).tolist()}
  _figure(res, config, workdir)
  return res


def claims(results: dict) -> list[Claim]:
  d = results["diff"]
  dens = results["density"]
  return [
      Claim("the learned shared mask beats task arithmetic (lambda tuned on validation): mean test loss concrete - "
            "TA, upper end of the 95% CI", "up to +8.3% avg. accuracy over task arithmetic (8 ViT-B/32 tasks)",
            d["hi"], f"< 0 (difference {st.fmt_ci(d, 4)})", bool(np.isfinite(d["hi"]) and d["hi"] < 0), "paper",
            "Abstract; Table 1 (Concrete TA vs task arithmetic) [104]"),
      Claim("the mask selects the shared low-dimensional subspace: kept relevant coordinates (>= 0.9) and kept "
            "other coordinates (<= 0.5), means over seeds", "a common low-dimensional subspace",
            f"{results['kept_relevant_mean']:.3f} / {results['kept_other_mean']:.3f}", ">= 0.9 / <= 0.5",
            results["kept_relevant_mean"] >= 0.9 and results["kept_other_mean"] <= 0.5, "paper",
            "Abstract; Sec. 3 (Concrete subspace) [104]"),
      Claim.holds("the hard mask is neither empty nor full on every seed (0 < density < 1)",
                  all(0 < x < 1 for x in dens), kind="sanity"),
  ]


def _figure(res, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6.5, 4))
  ax.plot(LAMBDA_GRID, res["ta_curve"], marker="o", label="task arithmetic (test loss vs lambda)")
  ax.axhline(np.mean(res["concrete"]), color="C1", label=f"Concrete mask, lambda = {config.scaling:g}")
  ax.axhline(np.mean(res["ta_best"]), color="C0", ls=":", label="task arithmetic, lambda chosen on validation")
  ax.set_xlabel("task-arithmetic coefficient lambda")
  ax.set_ylabel("mean test MSE over the two tasks (mean over seeds)")
  ax.set_title("paper: a learned shared mask reduces interference vs task arithmetic", fontsize=9)
  ax.legend(fontsize=8)
  save_figure(fig, workdir / "figure.png")
