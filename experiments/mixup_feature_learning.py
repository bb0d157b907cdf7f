"""Mixup learns the rare feature that standard training misses (feature-noise data, two-layer CNN); decoupled input
and label factors (lam_x != lam_y) do as well as standard Mixup; early-stopped Mixup keeps Mixup's gain.

Paper [41]: Difan Zou, Yuan Cao, Yuanzhi Li, Quanquan Gu, "The Benefits of Mixup for Feature Learning", ICML 2023,
arXiv:2303.08433.

The paper's statements tested here (abstract and Secs. 2-5): (i) on feature-noise data whose label is carried by a
common feature (a 1 - rho fraction of the data) or a rare one (rho), standard training (ERM) of a two-layer CNN
learns the common feature only and fits the rare-feature examples by memorising their noise, so its accuracy on
rare-feature data stays near chance, while Mixup training learns the rare feature too; (ii) Mixup with different
factors for inputs and labels performs about as well as standard Mixup (its Sec. 2 experiment), so the linearity
explanation does not account for Mixup's benefit; (iii) Mixup's feature-learning gain is made early in training,
hence the proposed early-stopped Mixup (Mixup for the first part of training, standard training after) performs at
least as well as Mixup throughout.

Setup. `jaxlib_methods.data.feature_noise_data` (P = `num_patches` patches in d = `dim` dimensions: the feature
patch, a label-independent feature-noise patch alpha v_s and Gaussian noise patches) and
`jaxlib_methods.nn.PatchCNN` (F_j = (1/m) sum_r sum_p max(0, <w_{j,r}, x^(p)>)^q, q = `power`, f = F_+1 - F_-1),
full-batch gradient descent on the logistic loss (`optax.losses.sigmoid_binary_cross_entropy` on {0, 1} labels,
whose value on a mixed label equals the paper's lam l(y_1 f) + (1 - lam) l(y_2 f)). Four arms per seed, the same
data and initialisation: ERM; Mixup (`jaxlib_methods.data.mixup` with each example mixed with a partner of a fresh
random permutation every step, lam_x = lam_y ~ U[`lam_low`, 1], the paper's lam in [0.5, 1]); decoupled Mixup (lam_x
and lam_y drawn independently from the same law, so lam_x != lam_y almost surely); early-stopped Mixup (Mixup for the
first `early_fraction` of the steps, ERM after). The four arms of a seed are vmapped into one program and split over
`mesh`; each seed is a memoised sub-run (a rerun resumes after the finished seeds). Test sets: `n_test` rare-feature
examples and `n_test` examples from the training distribution.

Claims (`seeds` seeds, paired 95% t-intervals, tolerances fixed before the run):
  1. paper: Mixup's rare-feature test accuracy exceeds ERM's by >= 0.3 (lower CI end);
  2. paper: ERM's rare-feature accuracy stays near chance: upper CI end <= 0.65 (while ERM fits its training set:
     a sanity row);
  3. paper: decoupled Mixup matches standard Mixup: the CI of the test-accuracy difference (training distribution)
     lies within [-0.02, 0.02];
  4. paper: early-stopped Mixup >= Mixup: lower CI end of the test-accuracy difference >= -0.01 (non-inferiority).

What we measured (cpu preset, 4 seeds, 2026-11-30): claims 1-3 pass (rare-feature accuracy ERM 0.49, Mixup 0.985,
decoupled 0.996; decoupled minus Mixup +0.001 on the training distribution). Claim 4 does NOT reproduce: after the
switch to ERM the rare-feature accuracy of early-stopped Mixup falls back (0.913 at the switch, 0.888 at the end)
while Mixup keeps improving, so early-stopped minus Mixup is -0.0078 [-0.0135, -0.0020]. Tried: switching at 30% of
3000 steps with learning rate 2 (-0.032 [-0.036, -0.029]) and at 50% with learning rate 4 (the preset). In this toy
the continued ERM phase keeps growing the common-feature filters, so the label-independent feature noise alpha v_s
outweighs the partly learnt rare feature again; the rare feature is not yet fully learnt when Mixup stops. Not
tried: later switches or a smaller alpha (either chosen after seeing this failure would be tuning to the claim).

Fidelity review (issue 17, 2026-11-30). Sources reachable here: the paper's abstract (arXiv:2303.08433; ICML 2023,
PMLR v202 zou23a) and the first ~2000 characters of its introduction (a raw-TeX copy of v1 in Google's SPIQA
dataset, whose stored excerpt stops there); nothing of Secs. 2-6, and no code of the authors is public (Papers with
Code lists none; no repository in the code index names the paper). So the point-by-point comparison asked for could
not be made against the paper's theorems or figures. Checked and matching: Mixup mixes a pair's inputs and labels
with lam in [0.5, 1] chosen at random (introduction; ours: lam ~ U[0.5, 1]). What the abstract fixes: (a) the
early-stopping statement is that "the benefits of Mixup for feature learning are mostly gained in the
early training phase", from which the authors propose early-stopped Mixup and report experiments showing its
effectiveness (which data and model the abstract does not say; claim 4 applies it to this toy, which is our
extrapolation, not a stated result of the paper on this model). Measured at the cpu preset (rerun 2026-11-30 on this
branch, 48 CPU s; the claim values above recur exactly, and the 0.913 above is the accuracy at step 1300, two log
points before the switch): by the switch (step 1500 of 3000) Mixup has reached 88% of its final
rare-feature gain over ERM (rare-feature accuracy 0.930 vs ERM 0.493; final 0.988), so the abstract's "mostly
gained early" holds here; what fails is the proposal's premise that the gain survives the switch: early-stopped
Mixup's rare-feature accuracy falls at once after it (0.930 -> 0.914 at the next log point -> 0.886 at the end),
and its test accuracy ends 0.9916 vs Mixup's 0.9994. (b) Settings of ours NOT checked against the paper (its
theorem conditions are not readable here): the activation power q = 2 (this line of work often assumes q > 2), the
feature-noise law alpha v_s with s uniform, alpha = 0.2, sigma_p = 0.5, n = d = 200, the step size 4, lam ~ U[0.5, 1]
per example with a random partner per step (the theory's Mixup loss may average over all pairs with a fixed lam),
and the switch at 50%. A diagnostic with q = 3 alone (not adopted; `--set power=3.0`) learned nothing in 3000 steps
from init_std 0.01 (every arm ~0.50 accuracy), so these settings co-depend and none can be changed one at a time
without the paper's values. Nothing was changed; claim 4 stays failing (-0.0078 [-0.0135, -0.0020], tolerance -0.01
fixed before the first run). Next step for a session with the paper's text: copy Sec. 3's data/model conditions
and the early-stopping experiment's setting, then rerun.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from experiments import _seed_stats as st
from jaxlib_methods.data.feature_noise import feature_noise_data
from jaxlib_methods.data.mixup import mixup
from jaxlib_methods.nn.patch_cnn import PatchCNN
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, sweep
from jaxlib_methods.runner.constraints import (Check, NonNegativeFloat, PositiveFloat, PositiveInt, Probability, Range,
                                                Seed)

PAPER = Paper(catalog_id=41, title="The Benefits of Mixup for Feature Learning", year=2023, arxiv="2303.08433")
DEMO = False
ARMS = ("erm", "mixup", "decoupled", "early_stopped")


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=3)] = 4
  n_train: Annotated[int, Range(ge=2)] = 200
  dim: Annotated[int, Range(ge=5)] = 200
  num_patches: Annotated[int, Range(ge=2)] = 3
  rare_prob: Probability = 0.1                 # rho
  noise_std: NonNegativeFloat = 0.5            # sigma_p
  feature_noise: NonNegativeFloat = 0.2        # alpha
  width: PositiveInt = 10                      # m filters per class
  power: Annotated[float, Range(ge=1.0)] = 2.0  # q of sigma(z) = max(0, z)^q
  init_std: NonNegativeFloat = 0.01            # sigma_0
  learning_rate: PositiveFloat = 4.0
  steps: PositiveInt = 3000
  lam_low: Annotated[float, Range(ge=0.5, le=1.0)] = 0.5   # lam ~ U[lam_low, 1]; 1: no mixing (a mutation)
  early_fraction: Annotated[float, Range(gt=0.0, lt=1.0)] = 0.5
  n_test: PositiveInt = 2000
  log_every: PositiveInt = 100
  mesh: MeshConfig = MeshConfig()              # devices the 4 arms of a seed are split over (1, 2 or 4)

  CHECKS = (Check("steps % log_every == 0", "the curves are logged every log_every steps"),
            Check("mesh.data == 0 or 4 % mesh.data == 0", "the 4 arms of a seed are split evenly over mesh.data "
                  "devices (1, 2 or 4)"))

PRESETS = {"cpu": Config(), "gpu": Config(seeds=8, n_train=1000, dim=1000, steps=6000),
           "tpu": Config(seeds=8, n_train=1000, dim=1000, steps=6000)}
TINY = ("seeds=3", "steps=2000", "n_test=500")
MUTATIONS = {"no_mixing": ("lam_low=1.0",)}
MUTATION_TEST_SLOW = True   # the TINY run compiles a vmapped 4-arm training scan: ~10 s of CPU


def _data(config: Config, key):
  kw = dict(dim=config.dim, num_patches=config.num_patches, rare_prob=config.rare_prob, noise_std=config.noise_std,
            feature_noise=config.feature_noise)
  train = feature_noise_data(jax.random.fold_in(key, 0), config.n_train, **kw)
  rare = feature_noise_data(jax.random.fold_in(key, 1), config.n_test, **kw, rare=True)
  test = feature_noise_data(jax.random.fold_in(key, 2), config.n_test, **kw)
  return train, rare, test


@functools.partial(jax.jit, static_argnames=("config",))
def _train_arms(config: Config, arms: jax.Array, keys: jax.Array):
  """One seed's arms (vmapped): test accuracy curves (rare-feature and training-distribution test sets) and the
  final training accuracy."""
  graphdef, _ = nnx.split(PatchCNN(config.dim, config.width, power=config.power, init_std=config.init_std,
                                   rngs=nnx.Rngs(0)))
  n, t_early = config.n_train, int(round(config.early_fraction * config.steps))

  def one(arm, key):
    train, rare, test = _data(config, key)
    _, state = nnx.split(PatchCNN(config.dim, config.width, power=config.power, init_std=config.init_std,
                                  rngs=nnx.Rngs(jax.random.fold_in(key, 3))))
    y01 = (train.y > 0).astype(jnp.float32)

    def acc(state, d):
      return jnp.mean(jnp.where(nnx.merge(graphdef, state)(d.x) > 0, 1, -1) == d.y)

    def loss(state, x, y):
      return optax.losses.sigmoid_binary_cross_entropy(nnx.merge(graphdef, state)(x), y).mean()

    def step(state, inp):
      t, k = inp
      k1, k2, k3 = jax.random.split(k, 3)
      lam_x = jax.random.uniform(k2, (n,), minval=config.lam_low, maxval=1.0)
      lam_y = jnp.where(arm == 2, jax.random.uniform(k3, (n,), minval=config.lam_low, maxval=1.0), lam_x)
      mixing = (arm == 1) | (arm == 2) | ((arm == 3) & (t < t_early))
      lam_x, lam_y = jnp.where(mixing, lam_x, 1.0), jnp.where(mixing, lam_y, 1.0)
      x, y = mixup(train.x, y01, lam_x, lam_y, partner=jax.random.permutation(k1, n))
      g = jax.grad(loss)(state, x, y)
      return jax.tree.map(lambda p, q: p - config.learning_rate * q, state, g), None

    def chunk(state, inp):
      state, _ = jax.lax.scan(step, state, inp)
      return state, (acc(state, rare), acc(state, test))

    ts = jnp.arange(config.steps).reshape(-1, config.log_every)
    ks = jax.random.split(jax.random.fold_in(key, 4), config.steps).reshape(ts.shape)
    state, (curve_rare, curve_test) = jax.lax.scan(chunk, state, (ts, ks))
    return curve_rare, curve_test, acc(state, train)

  return jax.vmap(one)(arms, keys)


def train_seed(config: Config, s: int) -> dict:
  arms = jnp.arange(len(ARMS))
  keys = jnp.stack([jax.random.fold_in(jax.random.key(config.seed), s)] * len(ARMS))   # same data and init per arm
  arms, keys = shard_leading((arms, keys), make_mesh(config.mesh), what="arm")
  rare, test, train = (np.asarray(a) for a in _train_arms(config, arms, keys))
  return {a: {"rare": rare[i].tolist(), "test": test[i].tolist(), "train": float(train[i])} for i, a in enumerate(ARMS)}


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  per_seed = [sweep.memoized(workdir, {"seed": s}, lambda s=s: train_seed(config, s)) for s in range(config.seeds)]
  final = {a: {k: [r[a][k][-1] if k != "train" else r[a][k] for r in per_seed] for k in ("rare", "test", "train")}
           for a in ARMS}
  curves = {a: {k: np.mean([r[a][k] for r in per_seed], 0).tolist() for k in ("rare", "test")} for a in ARMS}
  log = MetricsLog(workdir)
  log.reset()
  for j in range(len(curves["erm"]["rare"])):
    log.log((j + 1) * config.log_every, **{f"rare_acc_{a}": curves[a]["rare"][j] for a in ARMS})
  res = {"final": final, "curves": curves,
         "rare_gain": st.paired_ci(final["mixup"]["rare"], final["erm"]["rare"]),
         "erm_rare": st.mean_ci(final["erm"]["rare"]),
         "decoupled_minus_mixup": st.paired_ci(final["decoupled"]["test"], final["mixup"]["test"]),
         "early_minus_mixup": st.paired_ci(final["early_stopped"]["test"], final["mixup"]["test"]),
         "erm_train_acc": float(np.min(final["erm"]["train"]))}
  _figure(res, config, workdir)
  return res


def claims(results: dict) -> list[Claim]:
  g, e, d, es = (results[k] for k in ("rare_gain", "erm_rare", "decoupled_minus_mixup", "early_minus_mixup"))
  return [
      Claim("rare-feature test accuracy, Mixup minus ERM: lower end of the 95% CI", "Mixup learns the rare feature, "
            "ERM does not", g["lo"], f">= 0.3 (difference {st.fmt_ci(g)})", bool(g["lo"] >= 0.3), "paper",
            "Abstract; Sec. 4, the main theorems (standard training vs Mixup on the feature-noise model)"),
      Claim("ERM's rare-feature test accuracy: upper end of the 95% CI", "near chance (ERM memorises the rare-feature "
            "examples' noise)", e["hi"], f"<= 0.65 (accuracy {st.fmt_ci(e)})", bool(e["hi"] <= 0.65), "paper",
            "Sec. 4, the theorem on standard training"),
      Claim("test accuracy, decoupled Mixup (lam_x != lam_y) minus Mixup: 95% CI", "similar performance",
            f"[{d['lo']:.4f}, {d['hi']:.4f}]", "CI within [-0.02, 0.02]", bool(d["lo"] >= -0.02 and d["hi"] <= 0.02),
            "paper", "Abstract; Sec. 2, Mixup with different factors for features and labels"),
      Claim("test accuracy, early-stopped Mixup minus Mixup: lower end of the 95% CI", "early-stopped Mixup >= Mixup",
            es["lo"], f">= -0.01 (difference {st.fmt_ci(es, 4)})", bool(es["lo"] >= -0.01), "paper",
            "Abstract; Sec. 5, early-stopped Mixup"),
      Claim.at_least("ERM fits its training set (min over seeds of the training accuracy)", results["erm_train_acc"],
                     1.0, paper="fits the data", kind="sanity"),
  ]


def _figure(res, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  t = (np.arange(len(res["curves"]["erm"]["rare"])) + 1) * config.log_every
  for a in ARMS:
    axes[0].plot(t, res["curves"][a]["rare"], label=a)
    axes[1].plot(t, res["curves"][a]["test"], label=a)
  for ax in axes:
    ax.axvline(config.early_fraction * config.steps, color="gray", ls=":", lw=1)
    ax.set_xlabel("gradient-descent step")
    ax.legend()
  axes[0].set_ylabel("rare-feature test accuracy (mean over seeds)")
  axes[1].set_ylabel("test accuracy, training distribution")
  axes[0].set_title(f"paper: Mixup learns the rare feature, ERM does not; ours: gain "
                    f"{res['rare_gain']['mean']:.2f}", fontsize=9)
  axes[1].set_title("dotted: where early-stopped Mixup switches to ERM", fontsize=9)
  fig.suptitle(f"Mixup on feature-noise data (rho = {config.rare_prob}, Zou et al. 2023)", fontsize=10)
  save_figure(fig, workdir / "figure.png")
