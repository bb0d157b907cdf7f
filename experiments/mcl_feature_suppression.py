"""MCL: a second contrastive stage whose negatives come only from the anchor's stage-1 cluster learns the feature that
stage 1 suppressed.

Paper [54]: Jihai Zhang, Xiang Lan, Xiaoye Qu, Yu Cheng, Mengling Feng, Bryan Hooi, "Learning the Unlearned:
Mitigating Feature Suppression in Contrastive Learning", ECCV 2024, arXiv:2402.11816.

The method (`jaxlib_methods.losses.mcl_info_nce`): stage 1 is plain contrastive learning (NT-Xent); its embeddings
are clustered (k-means); stage t trains a new encoder with NT-Xent whose negatives are restricted to the anchor's
cluster of stage t-1, so the features that define the clusters no longer separate an anchor from its negatives and
the encoder must use others; the representation is the concatenation of the stages' features.

Setup (toy "easy and hard feature"). Each point has an easy attribute e (`num_easy` values, a strong direction of
norm ~ `easy_scale` sqrt(dim)) and an independent hard attribute h (`num_hard` values, a weak direction of norm ~
`hard_scale` sqrt(dim)), plus noise; a positive pair is two noisy views of one point. A small ReLU MLP encoder with
an `out`-dimensional normalised embedding (the bottleneck where features compete). Per seed:
  stage 1   NT-Xent over the batch (all negatives);
  MCL       stage 2: a fresh encoder, negatives only from the anchor's stage-1 k-means cluster (`clusters`);
  control   stage 2 with all negatives (a second independent stage-1 model: same initial weights and batches as MCL).
Measured on held-out points: ridge linear probes of h and of e on the embeddings, for stage 1 alone, for
[stage 1, MCL] and for [stage 1, control] (both concatenations have the same dimension).

Claims (paired over `seeds` seeds, 95% Student-t intervals; tolerances fixed before the run):
  1. (paper) the suppressed (hard) feature is learned: probe accuracy on h of [stage 1, MCL] minus [stage 1,
     control] > 0 (lower end of the interval).
  2. (paper) the features learned before are kept: probe accuracy on e of [stage 1, MCL] is at least stage 1's
     minus 0.01 (lower end of the interval of the difference >= -0.01).
  (sanity) feature suppression happens in stage 1: its probe accuracy on h is below its probe accuracy on e.
Mutation `clusters=1`: one cluster, MCL's stage 2 is the control (identical runs): claim 1 fails.

Result (cpu preset, 6 paired seeds, 600 steps per stage; ~75 s): hard-feature probe 0.53 (stage 1), 0.81
([stage 1, plain stage 2]), 0.98 ([stage 1, MCL]); MCL minus plain +0.162 [+0.109, +0.214]; easy-feature probe
MCL minus stage 1 +0.009 [-0.007, +0.025]. The paper's benchmarks are image data sets with deep encoders; this toy
keeps only the mechanism (a strong attribute that alone makes instances discriminable, a weak independent one, a
low-dimensional embedding).
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
from experiments._ssl_toys import kmeans, ridge_probe_accuracy
from jaxlib_methods.losses import contrastive
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, train
from jaxlib_methods.runner.constraints import Check, NonNegativeFloat, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=54, title="Learning the Unlearned: Mitigating Feature Suppression in Contrastive Learning",
              year=2024, arxiv="2402.11816")
DEMO = False


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=2)] = 6
  dim: PositiveInt = 32
  num_easy: Annotated[int, Range(ge=2)] = 8
  num_hard: Annotated[int, Range(ge=2)] = 4
  easy_scale: PositiveFloat = 1.0
  hard_scale: PositiveFloat = 0.4
  point_noise: NonNegativeFloat = 0.3
  view_noise: NonNegativeFloat = 0.2
  hidden: PositiveInt = 64
  out: PositiveInt = 4
  n_train: PositiveInt = 4096
  n_test: PositiveInt = 2000
  steps: PositiveInt = 600          # per stage
  batch_size: PositiveInt = 128
  temperature: PositiveFloat = 0.5
  learning_rate: PositiveFloat = 1e-3
  clusters: PositiveInt = 8         # k-means clusters of the stage-1 embeddings
  mesh: MeshConfig = MeshConfig()   # devices the runs (seeds, then 2 x seeds) are split over

  CHECKS = (Check("batch_size <= n_train", "a batch is drawn from the training set"),)

PRESETS = {"cpu": Config(), "gpu": Config(seeds=8, dim=128, hidden=512, out=16, num_easy=32, n_train=65536,
                                          steps=5000, batch_size=512, clusters=32),
           "tpu": Config(seeds=8, dim=128, hidden=512, out=16, num_easy=32, n_train=65536, steps=5000,
                         batch_size=512, clusters=32)}
TINY = ("seeds=4", "steps=200", "n_train=1024", "n_test=1000")
MUTATIONS = {"one_cluster": ("clusters=1",)}
MUTATION_TEST_SLOW = True   # ~15-20 s of CPU (two stages, two arms, checkpoints): the default run has no room for it


def make_data(config: Config, rep: int):
  """Seed `rep`'s train and test points with their easy and hard attributes (float32 / int32 NumPy)."""
  rng = np.random.default_rng([config.seed, rep])
  u = config.easy_scale * rng.normal(size=(config.num_easy, config.dim))
  w = config.hard_scale * rng.normal(size=(config.num_hard, config.dim))

  def draw(n):
    e = rng.integers(0, config.num_easy, n)
    h = rng.integers(0, config.num_hard, n)
    x = u[e] + w[h] + config.point_noise * rng.normal(size=(n, config.dim))
    return x.astype(np.float32), e.astype(np.int32), h.astype(np.int32)

  return draw(config.n_train), draw(config.n_test)


def init_params(key: jax.Array, config: Config) -> dict:
  k1, k2 = jax.random.split(key)
  return {"w1": jax.random.normal(k1, (config.dim, config.hidden)) * np.sqrt(2.0 / config.dim),
          "b1": jnp.zeros(config.hidden),
          "w2": jax.random.normal(k2, (config.hidden, config.out)) * np.sqrt(1.0 / config.hidden),
          "b2": jnp.zeros(config.out)}


def embed(p: dict, x: jax.Array) -> jax.Array:
  z = jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
  return z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)


def train_stage(config: Config, x: np.ndarray, cluster_ids: np.ndarray, keys: jax.Array, xt: np.ndarray,
                workdir: pathlib.Path, desc: str):
  """One contrastive stage for each run (leading axis, vmapped and split over the mesh): the trained encoders'
  embeddings of the training and the test points. cluster_ids [R, n_train] (all 0 = plain NT-Xent).

  The stage trains through `runner.train` in `workdir`: the state is the runs' vmapped (params, Adam state, last
  chunk's mean loss), checkpointed every quarter of the steps, so a killed run resumes mid-stage."""
  tx = optax.adam(config.learning_rate)

  def init(key):
    k_init, k_run = jax.random.split(key)
    p = init_params(k_init, config)
    return (p, tx.init(p), jnp.zeros((), jnp.float32)), jax.random.split(k_run, config.steps)

  def chunk(carry, x, cid, step_keys, start, n):
    def step(carry, k):
      p, s = carry
      k_idx, k1, k2 = jax.random.split(k, 3)
      idx = jax.random.choice(k_idx, config.n_train, (config.batch_size,), replace=False)
      xb = x[idx]
      v1 = xb + config.view_noise * jax.random.normal(k1, xb.shape)
      v2 = xb + config.view_noise * jax.random.normal(k2, xb.shape)
      loss, g = jax.value_and_grad(lambda p: jnp.mean(contrastive.mcl_info_nce(
          embed(p, v1), embed(p, v2), cid[idx], temperature=config.temperature)))(p)
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), loss

    p, s, _ = carry
    (p, s), losses = jax.lax.scan(step, (p, s), jax.lax.dynamic_slice_in_dim(step_keys, start, n))
    return p, s, jnp.mean(losses)

  x, cluster_ids, keys, xt = shard_leading((x, cluster_ids, keys, xt), make_mesh(config.mesh), what="run")
  state, step_keys = jax.jit(jax.vmap(init))(keys)
  jchunk = jax.jit(jax.vmap(chunk, in_axes=(0, 0, 0, 0, None, None)), static_argnums=5)

  def advance(state, start, n):
    return jchunk(state, x, cluster_ids, step_keys, jnp.int32(start), n)

  def measure(state, step):
    return {"loss": jnp.mean(state[2])} if step else {}

  log_every = max(1, config.steps // 8)
  chunks = -(-config.steps // log_every)
  state = train(workdir=workdir, state=state, advance=advance, measure=measure, num_steps=config.steps,
                log_every=log_every, checkpoint_every=max(1, chunks // 4) * log_every, desc=desc).state
  z, zt = jax.jit(jax.vmap(lambda p, x, xt: (embed(p, x), embed(p, xt))))(state[0], x, xt)
  return np.asarray(z), np.asarray(zt)


def train_all(config: Config, data, workdir: pathlib.Path) -> dict:
  s = config.seeds
  x = np.stack([d[0][0] for d in data])
  xt = np.stack([d[1][0] for d in data])
  base = jax.random.key(config.seed)
  keys1 = jnp.stack([jax.random.fold_in(jax.random.fold_in(base, r), 1) for r in range(s)])
  z1, zt1 = train_stage(config, x, np.zeros((s, config.n_train), np.int32), keys1, xt,
                        workdir / "stage1", "stage 1")
  cids = np.stack([kmeans(z1[r], config.clusters, seed=r) for r in range(s)]).astype(np.int32)
  # Stage 2: MCL (cluster-restricted negatives) and the control (all negatives), same weights and batches per seed.
  keys2 = jnp.stack([jax.random.fold_in(jax.random.fold_in(base, r // 2), 2) for r in range(2 * s)])
  cid2 = np.stack([cids[r // 2] if r % 2 == 0 else np.zeros(config.n_train, np.int32) for r in range(2 * s)])
  _, zt2 = train_stage(config, np.repeat(x, 2, 0), cid2, keys2, np.repeat(xt, 2, 0), workdir / "stage2",
                       "stage 2 (MCL and plain)")
  out = {"stage1": {"easy": [], "hard": []}, "mcl": {"easy": [], "hard": []}, "control": {"easy": [], "hard": []}}
  n_fit = config.n_test // 2
  for r in range(s):
    (_, e, h), (_, et, ht) = data[r]
    feats = {"stage1": zt1[r], "mcl": np.concatenate([zt1[r], zt2[2 * r]], 1),
             "control": np.concatenate([zt1[r], zt2[2 * r + 1]], 1)}
    for name, f in feats.items():   # the probe is fitted on half of the test points, scored on the other half
      out[name]["easy"].append(ridge_probe_accuracy(f[:n_fit], et[:n_fit], f[n_fit:], et[n_fit:]))
      out[name]["hard"].append(ridge_probe_accuracy(f[:n_fit], ht[:n_fit], f[n_fit:], ht[n_fit:]))
  return out


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  data = [make_data(config, r) for r in range(config.seeds)]
  out = train_all(config, data, workdir)
  res = {"probe": out, "clusters": config.clusters,
         "hard_mcl_minus_control": st.paired_ci(out["mcl"]["hard"], out["control"]["hard"]),
         "easy_mcl_minus_stage1": st.paired_ci(out["mcl"]["easy"], out["stage1"]["easy"]),
         "stage1_hard_minus_easy": st.paired_ci(out["stage1"]["hard"], out["stage1"]["easy"])}
  log = MetricsLog(workdir)
  log.reset()
  log.log(2 * config.steps, **{f"probe_{k}_{name}": float(np.mean(v[k])) for name, v in out.items()
                               for k in ("easy", "hard")})
  _figure(res, config, workdir)
  return res


def claims(results: dict) -> list[Claim]:
  a, b, c = (results["hard_mcl_minus_control"], results["easy_mcl_minus_stage1"], results["stage1_hard_minus_easy"])
  return [
      Claim("probe accuracy on the hard feature, [stage 1, MCL stage 2] minus [stage 1, plain stage 2]: lower end of "
            "the 95% CI", "MCL learns the suppressed feature", a["lo"], f"> 0 (difference {st.fmt_ci(a, 4)})",
            bool(np.isfinite(a["lo"]) and a["lo"] > 0), "paper",
            "Sec. 4, the feature-suppression benchmarks (MCL vs the single-stage model)"),
      Claim("probe accuracy on the easy feature, [stage 1, MCL stage 2] minus stage 1: lower end of the 95% CI",
            "previously learned features are kept", b["lo"], f">= -0.01 (difference {st.fmt_ci(b, 4)})",
            bool(np.isfinite(b["lo"]) and b["lo"] >= -0.01), "paper",
            "Sec. 3, multistage contrastive learning (the stages' features are concatenated)"),
      Claim.at_most("stage 1's probe accuracy on the hard feature minus on the easy one (suppression happens)",
                    c["hi"], 0.0, paper="< 0", kind="sanity"),
  ]


def _figure(res, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 3.8))
  names = ("stage1", "control", "mcl")
  labels = ("stage 1", "[stage 1, plain stage 2]", "[stage 1, MCL stage 2]")
  for j, (feat, color) in enumerate((("easy", "tab:blue"), ("hard", "tab:red"))):
    means = [np.mean(res["probe"][n][feat]) for n in names]
    ax.bar(np.arange(3) + 0.38 * j, means, width=0.36, color=color, label=f"{feat} feature")
    for i, n in enumerate(names):
      ax.plot(np.full(len(res["probe"][n][feat]), i + 0.38 * j), res["probe"][n][feat], "k.", ms=3)
  ax.axhline(1 / config.num_hard, color="tab:red", ls=":", lw=1, label="chance (hard)")
  ax.set_xticks(np.arange(3) + 0.19)
  ax.set_xticklabels(labels, fontsize=8)
  ax.set_ylabel("linear-probe accuracy (held-out)")
  ax.set_title(f"hard: MCL - plain = {st.fmt_ci(res['hard_mcl_minus_control'], 3)}\n"
               "paper: MCL recovers the suppressed feature", fontsize=7)
  ax.legend(fontsize=7)
  fig.suptitle("Multistage contrastive learning (Zhang et al. 2024)", fontsize=9)
  fig.tight_layout()
  save_figure(fig, workdir / "figure.png")
