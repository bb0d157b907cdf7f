"""Layers wave 2 (issue 20), learned gates in trained models: OptFS feature-value gates on a toy CTR task, FTWT dynamic
channel masks in a small CNN, and ULSAM in a small CNN.

Papers:
  [160] Fuyuan Lyu, Xing Tang, Dugang Liu, Liang Chen, Xiuqiang He, Xue Liu, "Optimizing Feature Set for
        Click-Through Rate Prediction", WWW 2023, arXiv:2301.10909.

[160] Toy CTR task with planted useless feature values: `ofs_fields` categorical fields of `ofs_vocab` values each
(uniform ids); in the first `ofs_useful_fields` fields a random half of the values is useful, every value of the other
fields is useless. Clicks ~ Bernoulli(sigmoid(-0.5 + sum_f a[v_f] + sum_{i<j} <t[v_i], t[v_j]>)) with a[v] = +-U(0.5,
1.5) and t[v] ~ N(0, 0.5^2 I_2) on useful values, a = t = 0 on useless ones. Model: a DeepFM-lite (embeddings d =
`ofs_dim`, a linear head on the concatenated embeddings + the FM pairwise term + bias). OptFS (the authors' code,
github.com/fuyuanlyu/OptFS): a search stage of `ofs_search_epochs` epochs with gates sigmoid(beta m) / sigmoid(0.5),
beta from 1 to `ofs_final_beta` geometrically per epoch, loss = BCE + `ofs_lambda` x sum_v sigmoid(beta m_v), model and
gate logits trained by adam; the model weights are checkpointed after `ofs_rewind_epoch` epoch(s); then the re-training
stage with the hard mask m > 0, the weights rewound to that checkpoint, `ofs_retrain_epochs` epochs. The full-feature
model trains from the same initialisation for ofs_rewind_epoch + ofs_retrain_epochs epochs (the weight epochs of the
OptFS model). Seeds vmapped and sharded over the mesh. Mutation: `ofs_lambda=0` (no sparsity pressure).

Claims (tolerances fixed before the first run):
  1. [160] fraction of useless feature values dropped (m <= 0), min over seeds >= 0.8;
  2. [160] fraction of useful feature values kept (m > 0), min over seeds >= 0.9;
  3. [160] test AUC, OptFS (re-trained) minus the full-feature model, mean over seeds >= -0.005;
  sanity: the soft gates at the final beta are binary (fraction in (0.05, 0.95) <= 0.05, max over seeds); the full
  model learns (AUC >= 0.7, min over seeds).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from scipy import stats

from experiments import _seed_stats as st
from jaxlib_methods.nn.optfs import OptFSGate, optfs_beta, optfs_gamma
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, sweep
from jaxlib_methods.runner.constraints import NonNegativeFloat, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=160, title="Optimizing Feature Set for Click-Through Rate Prediction", year=2023,
              arxiv="2301.10909")
ALSO_REPRODUCES = ()
DEMO = False


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=3)] = 3
  # [160] OptFS on a toy CTR task
  ofs_fields: Annotated[int, Range(ge=2)] = 6
  ofs_useful_fields: Annotated[int, Range(ge=1)] = 4
  ofs_vocab: Annotated[int, Range(ge=2)] = 20
  ofs_dim: PositiveInt = 4
  ofs_train: PositiveInt = 8192
  ofs_test: PositiveInt = 8192
  ofs_batch: PositiveInt = 512
  ofs_lr: PositiveFloat = 0.01
  ofs_lambda: NonNegativeFloat = 1e-3
  ofs_final_beta: Annotated[float, Range(ge=1)] = 200.0
  ofs_search_epochs: Annotated[int, Range(ge=2)] = 10
  ofs_rewind_epoch: Annotated[int, Range(ge=0)] = 1
  ofs_retrain_epochs: PositiveInt = 10
  mesh: MeshConfig = MeshConfig()   # devices the vmapped seeds are split over


PRESETS = {"cpu": Config(), "gpu": Config(seeds=8, ofs_train=65536, ofs_test=32768, ofs_vocab=200),
           "tpu": Config(seeds=8, ofs_train=65536, ofs_test=32768, ofs_vocab=200)}
TINY = ("ofs_train=4096", "ofs_batch=128", "ofs_test=2048", "ofs_search_epochs=8", "ofs_retrain_epochs=3")
MUTATIONS = {"a_no_sparsity_pressure": ("ofs_lambda=0",)}
MUTATION_TEST_SLOW = True  # the TINY run trains three small models per seed: several seconds on CPU


# ---- [160] OptFS on a toy CTR task -----------------------------------------------------------------------------------
class _CTRModel(nnx.Module):
  """DeepFM-lite: bias + linear head on the concatenated (gated) embeddings + FM pairwise term."""

  def __init__(self, num_values: int, fields: int, dim: int, rngs: nnx.Rngs):
    self.embed = nnx.Embed(num_values, dim, embedding_init=nnx.initializers.xavier_uniform(), rngs=rngs)
    self.head = nnx.Linear(fields * dim, 1, rngs=rngs)
    self.gate = OptFSGate(num_values)

  def __call__(self, ids, beta, mode: str):
    e = self.embed(ids)                                                   # [B, F, d]
    if mode != "full":
      e = self.gate(ids, e, beta, hard=(mode == "hard"))
    s = e.sum(axis=1)
    fm = 0.5 * jnp.sum(s * s - jnp.sum(e * e, axis=1), axis=-1)           # sum_{i<j} <e_i, e_j>
    return self.head(e.reshape(e.shape[0], -1))[:, 0] + fm


def _ctr_task(key, config: Config):
  """Planted effects a [V], t [V, 2], useful [V] bool; ids of value v of field f are f * vocab + v."""
  F, Vf = config.ofs_fields, config.ofs_vocab
  V = F * Vf
  k1, k2, k3, k4 = jax.random.split(key, 4)
  useful = jax.vmap(lambda k: jax.random.permutation(k, jnp.arange(Vf) < Vf // 2))(jax.random.split(k1, F))
  useful = (useful & (jnp.arange(F) < config.ofs_useful_fields)[:, None]).reshape(V)
  mag = jax.random.uniform(k2, (V,), minval=0.5, maxval=1.5) * jnp.where(jax.random.bernoulli(k3, 0.5, (V,)), 1, -1)
  a = jnp.where(useful, mag, 0.0)
  t = jnp.where(useful[:, None], 0.5 * jax.random.normal(k4, (V, 2)), 0.0)
  return a, t, useful


def _ctr_sample(key, config: Config, a, t, n):
  F, Vf = config.ofs_fields, config.ofs_vocab
  k1, k2 = jax.random.split(key)
  ids = jax.random.randint(k1, (n, F), 0, Vf) + Vf * jnp.arange(F)
  tt = t[ids]
  s = tt.sum(1)
  inter = 0.5 * jnp.sum(s * s - jnp.sum(tt * tt, axis=1), axis=-1)
  logit = -0.5 + a[ids].sum(1) + inter
  return ids, jax.random.bernoulli(k2, jax.nn.sigmoid(logit)).astype(jnp.float32), logit


def optfs_ctr(config: Config) -> dict:
  V = config.ofs_fields * config.ofs_vocab
  graphdef, _ = nnx.split(_CTRModel(V, config.ofs_fields, config.ofs_dim, nnx.Rngs(0)))
  steps_per_epoch = max(1, config.ofs_train // config.ofs_batch)
  gamma = optfs_gamma(config.ofs_final_beta, config.ofs_search_epochs)
  tx = optax.adam(config.ofs_lr)
  is_gate = lambda path, _: any(getattr(p, "key", None) == "gate" for p in path)

  def one_seed(key):
    kt, kd, ke, ki, kb = jax.random.split(key, 5)
    a, t, useful = _ctr_task(kt, config)
    ids, y, _ = _ctr_sample(kd, config, a, t, config.ofs_train)
    ids_te, y_te, logit_te = _ctr_sample(ke, config, a, t, config.ofs_test)
    _, p0 = nnx.split(_CTRModel(V, config.ofs_fields, config.ofs_dim, nnx.Rngs(ki)))
    bce = lambda p, i, yy, beta, mode: optax.sigmoid_binary_cross_entropy(nnx.merge(graphdef, p)(i, beta, mode),
                                                                            yy).mean()

    def epochs(p, n_epochs, mode, lam, beta_of_epoch, freeze_gate, key):
      def epoch(carry, e):
        p, opt = carry
        beta = beta_of_epoch(e)
        perm = jax.random.permutation(jax.random.fold_in(key, e), config.ofs_train)

        def step(carry, j):
          p, opt = carry
          b = jax.lax.dynamic_slice_in_dim(perm, j * config.ofs_batch, config.ofs_batch)

          def loss(p):
            l = bce(p, ids[b], y[b], beta, mode)
            return l + lam * nnx.merge(graphdef, p).gate.l1_penalty(beta), l
          (_, l), g = jax.value_and_grad(loss, has_aux=True)(p)
          if freeze_gate:
            g = jax.tree.map_with_path(lambda path, x: jnp.zeros_like(x) if is_gate(path, x) else x, g)
          u, opt = tx.update(g, opt, p)
          return (optax.apply_updates(p, u), opt), l
        (p, opt), ls = jax.lax.scan(step, (p, opt), jnp.arange(steps_per_epoch))
        return (p, opt), ls.mean()
      (p, _), losses = jax.lax.scan(epoch, (p, tx.init(p)), jnp.arange(n_epochs))
      return p, losses

    beta_search = lambda e: optfs_beta(e, gamma=gamma)
    # search: the weights are checkpointed after ofs_rewind_epoch epochs (the paper's customised re-training init)
    p_rw, l_a = epochs(p0, config.ofs_rewind_epoch, "soft", config.ofs_lambda, beta_search, False, kb) \
        if config.ofs_rewind_epoch > 0 else (p0, jnp.zeros((0,)))
    p_search, l_b = epochs(p_rw, config.ofs_search_epochs - config.ofs_rewind_epoch, "soft", config.ofs_lambda,
                           lambda e: beta_search(e + config.ofs_rewind_epoch), False, jax.random.fold_in(kb, 1))
    final_beta = beta_search(config.ofs_search_epochs - 1)
    m = p_search["gate"]["logits"][...]
    # re-train: hard mask from the search, other weights rewound
    p_re = jax.tree.map_with_path(lambda path, x, y_: x if is_gate(path, x) else y_, p_search, p_rw)
    p_re, l_re = epochs(p_re, config.ofs_retrain_epochs, "hard", 0.0, lambda e: 1.0, True, jax.random.fold_in(kb, 2))
    # the full-feature model: same init, the weight epochs of the OptFS model
    p_full, l_full = epochs(p0, config.ofs_rewind_epoch + config.ofs_retrain_epochs, "full", 0.0, lambda e: 1.0, True,
                            jax.random.fold_in(kb, 3))
    score = lambda p, mode: nnx.merge(graphdef, p)(ids_te, 1.0, mode)
    soft = jax.nn.sigmoid(final_beta * m)
    return {"keep": m > 0, "useful": useful, "soft_nonbinary": jnp.mean((soft > 0.05) & (soft < 0.95)),
            "score_optfs": score(p_re, "hard"), "score_full": score(p_full, "full"), "y_test": y_te,
            "logit_test": logit_te, "search_loss": jnp.concatenate([l_a, l_b]), "retrain_loss": l_re,
            "full_loss": l_full}

  keys = jax.random.split(jax.random.key(config.seed), config.seeds)
  keys = shard_leading(keys, make_mesh(config.mesh), what="seed")
  r = jax.tree.map(np.asarray, jax.jit(jax.vmap(one_seed))(keys))
  auc = lambda s, y: float(_auc(s, y))
  out = {"drop_useless": [], "keep_useful": [], "auc_optfs": [], "auc_full": [], "auc_oracle": [],
         "soft_nonbinary": r["soft_nonbinary"].tolist(), "kept_fraction": r["keep"].mean(1).tolist(),
         "useful_fraction": r["useful"].mean(1).tolist(),
         "search_loss": r["search_loss"].mean(0).tolist(), "retrain_loss": r["retrain_loss"].mean(0).tolist(),
         "full_loss": r["full_loss"].mean(0).tolist()}
  for s in range(config.seeds):
    keep, useful = r["keep"][s], r["useful"][s]
    out["drop_useless"].append(float(np.mean(~keep[~useful])))
    out["keep_useful"].append(float(np.mean(keep[useful])))
    out["auc_optfs"].append(auc(r["score_optfs"][s], r["y_test"][s]))
    out["auc_full"].append(auc(r["score_full"][s], r["y_test"][s]))
    out["auc_oracle"].append(auc(r["logit_test"][s], r["y_test"][s]))
  return out


def _auc(score, y) -> float:
  """ROC AUC by the Mann-Whitney rank statistic (average ranks for ties)."""
  y = np.asarray(y) > 0.5
  ranks = stats.rankdata(np.asarray(score, np.float64))
  n1, n0 = int(y.sum()), int((~y).sum())
  if n1 == 0 or n0 == 0:
    return float("nan")
  return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


# ---- run / claims ---------------------------------------------------------------------------------------------------
def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  part = lambda name, fn: sweep.memoized(workdir, {"part": name}, fn)
  ofs = part("optfs", lambda: optfs_ctr(config))
  log.log(0, ofs_drop_useless=ofs["drop_useless"], ofs_keep_useful=ofs["keep_useful"], ofs_auc_optfs=ofs["auc_optfs"],
          ofs_auc_full=ofs["auc_full"])
  out = {"optfs": ofs}
  _figure(out, config, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  ofs = results["optfs"]
  d_auc = st.paired_ci(ofs["auc_optfs"], ofs["auc_full"])
  return [
      Claim.at_least("OptFS: fraction of the planted useless feature values dropped (m <= 0), min over seeds",
                     min(ofs["drop_useless"]), 0.8, paper="the optimal feature set excludes useless features",
                     kind="paper", where="Sec. 3 and Table 3 (feature-level selection, fewer features kept) [160]"),
      Claim.at_least("OptFS: fraction of the planted useful feature values kept (m > 0), min over seeds",
                     min(ofs["keep_useful"]), 0.9, paper="features that improve the prediction stay in the set",
                     kind="paper", where="Sec. 3 and Table 3 [160]"),
      Claim.at_least(f"test AUC, OptFS re-trained minus the full-feature model, mean over seeds "
                     f"({st.fmt_ci(d_auc, 4)})", d_auc["mean"], -0.005,
                     paper="AUC at least the full-feature model's with fewer features", kind="paper",
                     where="Table 2 (AUC of OptFS vs the backbone on all features) [160]"),
      Claim.at_most("OptFS soft gates at the final beta strictly inside (0.05, 0.95), max over seeds",
                    max(ofs["soft_nonbinary"]), 0.05, kind="sanity"),
      Claim.at_least("full-feature model test AUC, min over seeds (the task is learnable)", min(ofs["auc_full"]), 0.7,
                     kind="sanity"),
  ]


def _figure(out, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  ofs = out["optfs"]
  n_a = len(ofs["search_loss"])
  axes[0].plot(np.arange(n_a), ofs["search_loss"], label="OptFS search (soft gates)")
  axes[0].plot(config.ofs_rewind_epoch + np.arange(len(ofs["retrain_loss"])), ofs["retrain_loss"],
               label="OptFS re-train (hard mask, rewound)")
  axes[0].plot(np.arange(len(ofs["full_loss"])), ofs["full_loss"], label="full feature set")
  axes[0].set_xlabel("epoch")
  axes[0].set_ylabel("train BCE (mean over seeds)")
  axes[0].legend(fontsize=7)
  axes[0].set_title("[160] OptFS on a toy CTR task", fontsize=9)
  xs = np.arange(config.seeds)
  axes[1].bar(xs - 0.3, ofs["drop_useless"], 0.2, label="useless values dropped")
  axes[1].bar(xs - 0.1, ofs["keep_useful"], 0.2, label="useful values kept")
  axes[1].bar(xs + 0.1, ofs["auc_optfs"], 0.2, label="AUC OptFS")
  axes[1].bar(xs + 0.3, ofs["auc_full"], 0.2, label="AUC full")
  axes[1].set_xlabel("seed")
  axes[1].set_ylabel("fraction / AUC")
  axes[1].set_ylim(0, 1.05)
  axes[1].legend(fontsize=7)
  fig.suptitle("Layers wave 2: learned gates")
  save_figure(fig, workdir / "figure.png")
