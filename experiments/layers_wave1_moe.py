"""Layers wave 1, P2 toy claims of the MoE / routing / KV-compression layers (issue 18): WideNet's individual
LayerNorms, MC-SMoE's aligned frequency-weighted expert merging, p-MoD's progressive ratio decay and TanhNorm, and
MatryoshkaKV's trained orthogonal KV projections.

Papers:
  [127] Fuzhao Xue et al., "Go Wider Instead of Deeper", AAAI 2022, arXiv:2107.11817.
  [154] Pingzhi Li et al., "Merge, Then Compress: Demystify Efficient SMoE with Hints from Its Routing Policy",
        ICLR 2024, arXiv:2310.01334.
  [190] Jun Zhang et al., "p-MoD: Building Mixture-of-Depths MLLMs via Progressive Ratio Decay", 2024,
        arXiv:2412.04449.
  [82]  Bokai Lin et al., "MatryoshkaKV: Adaptive KV Compression via Trainable Orthogonal Projection", ICLR 2025,
        arXiv:2410.14731.

WideNet (catalog row: per-layer LayerNorms beat one shared LayerNorm at about equal parameters): a teacher made of
`wn_layers` independent (unshared, dropless) attention + MoE layers maps x [seq, d] ~ N(0, I) to a target
teacher(x) - x (a fixed training set of `wn_train` sequences, computed once); two `WideNet` students with the same
shared attention + MoE (top-2, capacity factor 1.2) learn it, one with a pair of LayerNorms per layer, one with a
single shared pair (4 d (L - 1) parameters fewer: 1-5% at this width); adam, minibatches of the training set,
`seeds` seeds (vmapped; the same init and data per seed for both). Relative test MSE.
`wn_student=shared` (mutation) makes the "individual" arm share its LayerNorms too.

MC-SMoE (catalog row: frequency-weighted merging after permutation alignment loses less accuracy than uniform
averaging or no alignment): an embed -> SMoE layer (no residual; E = `mc_experts`, top-2, the library's
`smoe_layer`) -> head classifier trained on a teacher-labelled Gaussian task; then, on calibration data,
activation frequencies and router logits give `mc_groups` groups (`group_experts`), merged three ways: MC-SMoE
(`permute_align` + frequency weights), uniform weights (aligned) and frequency weights without alignment.
Test-accuracy drop from the unmerged model, paired over seeds. Then the merged experts are compressed
(`lowrank_sparse_compress`, rank `mc_rank`, residual sparsity `mc_sparsity`): the stored-parameter fraction and the
accuracy drop are reported. `mc_weighting=uniform` (mutation) gives the MC-SMoE arm uniform weights,
`mc_align=false` (mutation) skips its permutation alignment.

p-MoD (catalog row: PRD's token counts make the FLOP / KV fractions computable, paper: 53.8% KV cache; MoD with
TanhNorm trains stably where raw router weights do not): (a) the released schedule (L = 32, R_avg = `pm_average`,
R_max 0.85, R_min 0.15) applied to N = 2880 vision tokens (LLaVA-NeXT's 5 x 576), the mean kept fraction = the KV
fraction; (b) a toy causal LM on a random Markov language: embed -> `pm_layers` `MoDBlock`s with the PRD ratios for
that depth (every token a MoD target) -> head, trained with adam at a large learning rate `pm_lr`, once with
TanhNorm and once with raw router weights (w~ = r + 1), paired over seeds; held-out next-token cross-entropy.
`pm_average=0.6` (mutation) shifts the schedule.

MatryoshkaKV (catalog row: r = d reproduces attention; trained projections give lower output error than PCA at
every r <= d/2): a causal attention layer (d = `mkv_dim`, `mkv_heads` heads of width H, no RoPE, random weights) on
inputs with a decaying spectrum; PCA bases of the keys and values on calibration inputs; Matryoshka training of the
Cayley parameters (r ~ uniform on {1..H} per step, the same r for keys and values, loss = relative output error to
the full attention), `mkv_steps` adam steps. Relative output error on fresh inputs at every r, PCA init vs trained.
`mkv_train=false` (mutation) skips the training.

Claims (tolerances fixed before the first run):
  1. [127] shared-LN minus individual-LN relative test MSE, paired over seeds: mean > 2 standard errors (paper:
     individual LayerNorms are better at about equal parameters, abstract and ablation);
  (the parameter counts of both students are reported; the exact count is a unit test. A claim "individual /
  shared <= 1.01" was dropped after the first TINY run: at d = 16 the 4 d (L - 1) LayerNorm parameters are 1-5% of
  the ~5.5k, a property of the toy's width, not of the paper's claim);
  3. [154] uniform-merge minus MC-SMoE accuracy drop, paired: mean > 2 standard errors (paper: frequency-weighted
     merging beats averaging, Sec. 3.2);
  4. [154] unaligned minus MC-SMoE accuracy drop, paired: mean > 2 standard errors (paper: permutation alignment
     matters, Sec. 3.1);
  5. [190] PRD mean vision-token retention at the released schedule = 53.8% (paper: "53.8% KV cache storage"),
     absolute tolerance 0.1 percentage point;
  6. [190] raw-router minus TanhNorm held-out cross-entropy, paired over seeds: mean > 2 standard errors (paper:
     TanhNorm is needed for stable training, Sec. 3.2);
  7. [82] max over seeds and r in 1..H/2 of trained / PCA relative output error < 1 (paper: trained projections beat
     PCA initialisation at high compression, Sec. 4);
  Observed with the cpu preset (4 seeds; 1145 s wall on a 2-core machine shared by ~25 busy processes; 223-252 s
  alone on the quiet machine, 2026-12-02, the same 7/10, over the 3-minute budget. Where the time went, measured
  alone with `jax_log_compiles`: XLA compiling, not training: widenet 80 s with 2 steps vs 101 s with 300 (teacher
  data 25 s, each student 20 s of XLA compilation), pmod 92 s with 2 steps or 300 (38 s per arm). So the training
  programs are now compiled with `jit_fast_compile` (XLA:CPU backend optimisation level 1): 158 s alone with an
  empty compilation cache (152 s of run time vs 246 s), every number in summary.json bitwise the same as before,
  so the verdicts below stand without re-judging. A rerun loads the programs from the persistent compilation
  cache, see README): claim 1
  FAILS narrowly (1.93 standard errors: individual LN lower MSE on 3 of 4 seeds, by ~0.5%); claim 3 FAILS (1.33:
  frequency weights beat uniform on 3 of 4 seeds, accuracy drops 3-7% for both); claim 4 passes (8.1: alignment
  cuts the drop from 6-10% to 4-7%); 5 passes (53.74%); 6 passes (3.2: raw router weights end 0.005-0.026 nats
  higher in held-out CE, a small but consistent gap); claim 7 FAILS
  by a hair: trained beats PCA by 10-25% at 15 of the 16 (seed, r <= H/2) points, and ties at one (0.2501 vs
  0.2500, seed 0, r = 3). No tuning was done after these runs; the failures stay failing;
  sanity: r = H relative error <= 1e-5 (exact attention) for PCA and trained; both WideNet students and the MoE
  classifier learn (relative MSE < 0.9, accuracy >= 0.6 with 4 classes); MC-SMoE compression keeps accuracy within
  0.1 of the merged model.
On another CPU (2-core AMD EPYC, 2026-12-02; docs/measurements/epyc-2026-12-02) the same code gives 6/10: claim 6
(raw router vs TanhNorm) fails there at 1.00 SE because seed 0's raw-router run diverges (held-out CE 155.9 vs
1.87-1.89 for every other run), the instability the claim is about, whose one outlier swamps the paired statistic.
Claims audit (2026-12-03; no tolerance or setting changed): [190]'s mean-retention row (53.8%) is a sanity row now:
`prd_token_counts` evaluates the paper's closed-form shifted-cosine schedule, so only a bug or a truncation
convention can move it. `a_prd_shift` (pm_average=0.6) broke only that row and is no longer declared, so this
experiment declares no mutation (the other wrong variants in this docstring were not declared before either).
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
from flax import nnx

from experiments._seed_stats import paired_mean_se
from jaxlib_methods.data.synthetic_language import random_markov_language, sample_markov_sequences
from jaxlib_methods.nn.attention import MultiHeadAttention
from jaxlib_methods.nn.matryoshka_kv import cayley_orthogonal, matryoshka_attention, pca_basis
from jaxlib_methods.nn.mc_smoe import (expert_frequency, group_experts, lowrank_sparse_compress, merge_experts,
                                       merged_num_params)
from jaxlib_methods.nn.momentum_smoe import MomentumSMoE, smoe_layer, top_k_routing
from jaxlib_methods.nn.pmod import MoDBlock, prd_ratio, prd_token_counts
from jaxlib_methods.nn.widenet import WideNet, widenet_num_params
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading
from jaxlib_methods.runner import jit_fast_compile, minimize, sweep
from jaxlib_methods.runner.constraints import NonNegativeFloat, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=127, title="Go Wider Instead of Deeper", year=2022, arxiv="2107.11817")
ALSO_REPRODUCES = (Paper(catalog_id=154, title="Merge, Then Compress: Demystify Efficient SMoE with Hints from Its "
                         "Routing Policy", year=2024, arxiv="2310.01334"),
                   Paper(catalog_id=190, title="p-MoD: Building Mixture-of-Depths MLLMs via Progressive Ratio Decay",
                         year=2024, arxiv="2412.04449"),
                   Paper(catalog_id=82, title="MatryoshkaKV: Adaptive KV Compression via Trainable Orthogonal "
                         "Projection", year=2025, arxiv="2410.14731"))
DEMO = False


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=3)] = 4
  # WideNet
  wn_dim: PositiveInt = 16
  wn_heads: PositiveInt = 2
  wn_hidden: PositiveInt = 32
  wn_experts: Annotated[int, Range(ge=2)] = 4
  wn_layers: Annotated[int, Range(ge=2)] = 4
  wn_seq: PositiveInt = 8
  wn_steps: PositiveInt = 300
  wn_batch: PositiveInt = 32
  wn_train: PositiveInt = 2048
  wn_lr: PositiveFloat = 3e-3
  wn_student: Literal["individual", "shared"] = "individual"
  # MC-SMoE
  mc_dim: PositiveInt = 16
  mc_hidden: PositiveInt = 32
  mc_experts: Annotated[int, Range(ge=2)] = 8
  mc_groups: PositiveInt = 4
  mc_steps: PositiveInt = 400
  mc_batch: PositiveInt = 256
  mc_lr: PositiveFloat = 3e-3
  mc_rank: PositiveInt = 8
  mc_sparsity: Annotated[float, Range(ge=0, le=1)] = 0.8
  mc_weighting: Literal["frequency", "uniform"] = "frequency"
  mc_align: bool = True
  # p-MoD
  pm_average: Annotated[float, Range(ge=0, le=1)] = 0.5
  pm_vocab: Annotated[int, Range(ge=2)] = 16
  pm_seq: Annotated[int, Range(ge=4)] = 32
  pm_dim: PositiveInt = 32
  pm_layers: Annotated[int, Range(ge=2)] = 4
  pm_steps: PositiveInt = 300
  pm_batch: PositiveInt = 32
  pm_lr: PositiveFloat = 3e-2
  # MatryoshkaKV
  mkv_dim: PositiveInt = 32
  mkv_heads: PositiveInt = 4
  mkv_seq: PositiveInt = 16
  mkv_steps: PositiveInt = 300
  mkv_batch: PositiveInt = 16
  mkv_lr: PositiveFloat = 1e-2
  mkv_decay: NonNegativeFloat = 3.0
  mkv_train: bool = True
  mesh: MeshConfig = MeshConfig()   # devices the vmapped seeds of the four toys are split over


PRESETS = {"cpu": Config(), "gpu": Config(seeds=8, wn_steps=1000, mc_steps=1000, pm_steps=1000, mkv_steps=1000),
           "tpu": Config(seeds=8, wn_steps=1000, mc_steps=1000, pm_steps=1000, mkv_steps=1000)}
TINY = ("wn_steps=40", "wn_layers=2", "mc_steps=60", "mc_batch=64", "pm_steps=30", "pm_seq=8", "pm_dim=16",
        "mkv_steps=40", "mkv_seq=8", "mkv_dim=16", "mkv_heads=2")
MUTATION_TEST_SLOW = True  # the TINY run trains four toys (WideNet x2, MoE, MoD x2, MatryoshkaKV): >> 2 s of CPU
# Only mutations whose claim passes at the TINY size can be tested (test_mutations.py): at TINY the WideNet (1.99
# standard errors), uniform-merge (1.16), unaligned-merge (1.54) and MatryoshkaKV claims fail for the method itself,
# so their wrong variants (wn_student=shared, mc_weighting=uniform, mc_align=false, mkv_train=false; each makes its
# claim's difference exactly 0) are documented in the module docstring but not listed here.
# (no MUTATIONS: `a_prd_shift` (pm_average=0.6) broke only a row the claims audit made a sanity row)

IN_DIM, CLASSES = 8, 4


_paired = paired_mean_se   # (mean, standard error) of the paired difference a - b over seeds


def _keys(config: Config, salt: int):
  keys = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), salt), config.seeds)
  return shard_leading(keys, make_mesh(config.mesh), what="seed")


# ---- WideNet ---------------------------------------------------------------------------------------------------------
def widenet_runs(config: Config) -> dict:
  d, L = config.wn_dim, config.wn_layers
  tx = optax.adam(config.wn_lr)

  def make_data(key):
    kt, kx, ke = jax.random.split(key, 3)
    teacher = [WideNet(d, config.wn_heads, config.wn_hidden, config.wn_experts, 1, capacity_factor=None,
                       rngs=nnx.Rngs(params=k)) for k in jax.random.split(kt, L)]

    def target(x):
      h = x
      for t in teacher:
        h = t(h)[0]
      return h - x
    x = jax.random.normal(kx, (config.wn_train, config.wn_seq, d))
    xt = jax.random.normal(ke, (512, config.wn_seq, d))
    return x, target(x), xt, target(xt)

  def train_eval(key, data, shared: bool):
    ks, kd = jax.random.split(key)
    x_all, y_all, xt, yt = data
    student = WideNet(d, config.wn_heads, config.wn_hidden, config.wn_experts, L, shared_norms=shared,
                      rngs=nnx.Rngs(params=ks))
    graphdef, params = nnx.split(student)

    def loss(p, k):
      i = jax.random.randint(k, (config.wn_batch,), 0, config.wn_train)
      x, y = x_all[i], y_all[i]
      pred, aux = nnx.merge(graphdef, p)(x)
      return jnp.mean((pred - x - y) ** 2) + 0.01 * aux

    params, losses = minimize(loss, params, tx, jax.random.split(kd, config.wn_steps))
    pred = nnx.merge(graphdef, params)(xt)[0] - xt
    return {"rel_mse": jnp.mean((pred - yt) ** 2) / jnp.mean(yt ** 2), "train_loss": losses}

  keys = _keys(config, 1)
  data = jit_fast_compile(jax.vmap(make_data))(_keys(config, 11))     # the teacher's data, once per seed
  out = {}
  for name, shared in (("individual", config.wn_student == "shared"), ("shared", True)):
    r = jax.device_get(jit_fast_compile(jax.vmap(functools.partial(train_eval, shared=shared)))(keys, data))
    out[name] = {"rel_mse": np.asarray(r["rel_mse"]).tolist(),
                 "train_loss": np.asarray(r["train_loss"]).mean(0)[:: max(1, config.wn_steps // 100)].tolist()}
  args = (d, config.wn_heads, config.wn_hidden, config.wn_experts, L)
  out["params_individual"] = widenet_num_params(*args)
  out["params_shared"] = widenet_num_params(*args, shared_norms=True)
  out["diff_mean"], out["diff_sem"] = _paired(out["shared"]["rel_mse"], out["individual"]["rel_mse"])
  return out


# ---- MC-SMoE ---------------------------------------------------------------------------------------------------------
def _teacher_labels(key, x):
  ka, kb = jax.random.split(key)
  return jnp.argmax(jnp.tanh(x @ jax.random.normal(ka, (IN_DIM, 32))) @ jax.random.normal(kb, (32, CLASSES)), -1)


def _mc_forward(p, x):
  h = x @ p["embed"]
  y, aux = smoe_layer(h, p["moe"], top_k=2)
  return y @ p["head"], aux


def mc_smoe_runs(config: Config) -> dict:
  d, E = config.mc_dim, config.mc_experts
  tx = optax.adam(config.mc_lr)

  def train(key):
    ki, kt, kd, k2, k3 = jax.random.split(key, 5)
    stack = MomentumSMoE(d, config.mc_hidden, E, 1, 2, rngs=nnx.Rngs(params=ki)).layer_params()
    p = {"moe": {k: v[0] for k, v in stack.items() if not k.startswith("ln")},
         "embed": jax.random.normal(k2, (IN_DIM, d)) / np.sqrt(IN_DIM),
         "head": jax.random.normal(k3, (d, CLASSES)) / np.sqrt(d)}

    def loss(p, k):
      x = jax.random.normal(k, (config.mc_batch, IN_DIM))
      y = _teacher_labels(kt, x)
      logits, aux = _mc_forward(p, x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean() + 0.01 * aux

    return minimize(loss, p, tx, jax.random.split(kd, config.mc_steps))

  keys = _keys(config, 2)
  params, losses = jax.device_get(jit_fast_compile(jax.vmap(train))(keys))
  acc_fn = jit_fast_compile(lambda p, x, y: jnp.mean(jnp.argmax(_mc_forward(p, x)[0], -1) == y))
  res = {k: [] for k in ("acc_full", "acc_mc", "acc_uniform", "acc_unaligned", "acc_compressed")}
  for s in range(config.seeds):
    p = jax.tree.map(lambda a: a[s], params)
    kt = jax.random.split(jax.device_get(keys)[s], 5)[1]
    kc, ke = jax.random.split(jax.random.fold_in(jax.random.key(config.seed + 17), s))
    xc = jax.random.normal(kc, (2048, IN_DIM))
    xt = jax.random.normal(ke, (4096, IN_DIM))
    yt = _teacher_labels(kt, xt)
    h = xc @ p["embed"]
    logits = h @ p["moe"]["router_w"] + p["moe"]["router_b"]
    freq = expert_frequency(top_k_routing(logits, 2)[0], E)
    groups = group_experts(logits, freq, config.mc_groups)
    arms = {"mc": dict(align=config.mc_align, weighting=config.mc_weighting),
            "uniform": dict(align=True, weighting="uniform"),
            "unaligned": dict(align=False, weighting="frequency")}
    res["acc_full"].append(float(acc_fn(p, xt, yt)))
    merged = {}
    for name, kw in arms.items():
      merged[name] = merge_experts(p["moe"], freq, groups, **kw)
      res[f"acc_{name}"].append(float(acc_fn({**p, "moe": merged[name]}, xt, yt)))
    comp = dict(merged["mc"])
    for k in ("w1", "w2"):
      mats = []
      for e in range(E):
        U, V, S = lowrank_sparse_compress(comp[k][e], config.mc_rank, config.mc_sparsity)
        mats.append(U @ V + S)
      comp[k] = jnp.stack(mats)
    res["acc_compressed"].append(float(acc_fn({**p, "moe": comp}, xt, yt)))
  out = {k: v for k, v in res.items()}
  out["train_loss"] = np.asarray(losses).mean(0)[:: max(1, config.mc_steps // 100)].tolist()
  drop = {k: np.asarray(out["acc_full"]) - np.asarray(out[f"acc_{k}"]) for k in ("mc", "uniform", "unaligned")}
  out["uniform_vs_mc"] = _paired(drop["uniform"], drop["mc"])
  out["unaligned_vs_mc"] = _paired(drop["unaligned"], drop["mc"])
  moe0 = jax.tree.map(lambda a: a[0], params)["moe"]
  full = merged_num_params(moe0, np.arange(E))
  out["param_fraction_merged"] = merged_num_params(moe0, groups) / full
  out["param_fraction_compressed"] = merged_num_params(moe0, groups, rank=config.mc_rank,
                                                       sparsity=config.mc_sparsity) / full
  return out


# ---- p-MoD -----------------------------------------------------------------------------------------------------------
def pmod_runs(config: Config) -> dict:
  counts = prd_token_counts(2880, 32, average=config.pm_average)
  out = {"kv_fraction": sum(counts) / (32 * 2880), "counts": counts}
  L, d, V = config.pm_layers, config.pm_dim, config.pm_vocab
  ratios = [prd_ratio(l, L, average=0.5) for l in range(L)]
  lang = random_markov_language(jax.random.key(config.seed + 5), V, concentration=0.3)
  tx = optax.adam(config.pm_lr)

  def train_eval(key, weight_norm: str):
    ki, kd, ke = jax.random.split(key, 3)
    rngs = nnx.Rngs(params=ki)

    class LM(nnx.Module):
      def __init__(self):
        self.embed = nnx.Param(jax.random.normal(rngs.params(), (V, d)))
        self.blocks = nnx.List([MoDBlock(d, 2, 2 * d, r, weight_norm=weight_norm, rngs=rngs) for r in ratios])
        self.head = nnx.Param(jax.random.normal(rngs.params(), (d, V)) / np.sqrt(d))

      def __call__(self, tok):
        h = self.embed[...][tok]
        for b in self.blocks:
          h = b(h)
        return h @ self.head[...]
    graphdef, params = nnx.split(LM())

    def loss(p, tok):
      logits = nnx.merge(graphdef, p)(tok[:, :-1])
      return optax.softmax_cross_entropy_with_integer_labels(logits, tok[:, 1:]).mean()

    params, losses = minimize(lambda p, k: loss(p, sample_markov_sequences(k, lang, config.pm_batch, config.pm_seq)),
                              params, tx, jax.random.split(kd, config.pm_steps))
    return {"test_ce": loss(params, sample_markov_sequences(ke, lang, 256, config.pm_seq)), "train_loss": losses}

  keys = _keys(config, 3)
  for name in ("tanh", "none"):
    r = jax.device_get(jit_fast_compile(jax.vmap(functools.partial(train_eval, weight_norm=name)))(keys))
    out[name] = {"test_ce": np.asarray(r["test_ce"]).tolist(),
                 "train_loss": np.asarray(r["train_loss"]).mean(0)[:: max(1, config.pm_steps // 100)].tolist()}
  out["ratios"] = [1.0 if r is None else r for r in ratios]
  out["raw_vs_tanh"] = _paired(out["none"]["test_ce"], out["tanh"]["test_ce"])
  return out


# ---- MatryoshkaKV ----------------------------------------------------------------------------------------------------
def matryoshka_runs(config: Config) -> dict:
  d, N = config.mkv_dim, config.mkv_heads
  if d % N:
    raise ValueError(f"mkv_dim must be divisible by mkv_heads, got {d=}, {N=}")
  H = d // N
  spectrum = jnp.exp(-config.mkv_decay * jnp.arange(d) / d)

  def inputs(key, a, n):
    return (jax.random.normal(key, (n, config.mkv_seq, d)) * spectrum) @ a

  setups = []
  for s in range(config.seeds):        # PCA bases eagerly (eigh), one seed at a time
    kb, ka, kc = jax.random.split(jax.random.fold_in(jax.random.key(config.seed + 29), s), 3)
    base = MultiHeadAttention(d, N, use_rope=False, implementation="xla", rngs=nnx.Rngs(params=kb))
    a = jnp.linalg.qr(jax.random.normal(ka, (d, d)))[0]
    w = {"wq": base.q_weight_dnh[...], "wk": base.k_weight_dkh[...], "wv": base.v_weight_dkh[...],
         "wo": base.o_weight_nhd[...], "a": a}
    xc = inputs(kc, a, 64).reshape(-1, d)
    w["u0k"] = pca_basis(jnp.einsum("td,dnh->tnh", xc, w["wk"]))
    w["u0v"] = pca_basis(jnp.einsum("td,dnh->tnh", xc, w["wv"]))
    setups.append(w)
  setups = jax.tree.map(lambda *a: jnp.stack(a), *setups)
  tx = optax.adam(config.mkv_lr)

  def out_fn(w, sk, sv, x, r):
    q, k, v = (jnp.einsum("btd,dnh->btnh", x, w[n]) for n in ("wq", "wk", "wv"))
    uk, uv = w["u0k"] @ cayley_orthogonal(sk), w["u0v"] @ cayley_orthogonal(sv)
    return jnp.einsum("btnh,nhd->btd", matryoshka_attention(q, k, v, uk, uv, r, r), w["wo"])

  def rel_err(w, sk, sv, x, r):
    full = out_fn(w, jnp.zeros_like(sk), jnp.zeros_like(sv), x, H)
    return jnp.sum((out_fn(w, sk, sv, x, r) - full) ** 2) / jnp.sum(full ** 2)

  def train_eval(w, key):
    kd, ke = jax.random.split(key)
    s0 = (jnp.zeros((N, H, H)), jnp.zeros((N, H, H)))

    def loss(s, k):
      kx, kr = jax.random.split(k)
      r = jax.random.randint(kr, (), 1, H + 1)
      return rel_err(w, s[0], s[1], inputs(kx, w["a"], config.mkv_batch), r)

    s = s0
    losses = jnp.zeros((config.mkv_steps,))
    if config.mkv_train:
      s, losses = minimize(loss, s0, tx, jax.random.split(kd, config.mkv_steps))
    xt = inputs(ke, w["a"], 64)
    ranks = jnp.arange(1, H + 1)
    pca = jax.vmap(lambda r: rel_err(w, s0[0], s0[1], xt, r))(ranks)
    trained = jax.vmap(lambda r: rel_err(w, s[0], s[1], xt, r))(ranks)
    return {"pca": pca, "trained": trained, "train_loss": losses}

  keys = _keys(config, 4)
  setups = shard_leading(setups, make_mesh(config.mesh), what="seed")
  r = jax.device_get(jit_fast_compile(jax.vmap(train_eval))(setups, keys))
  out = {"ranks": list(range(1, H + 1)), "head_dim": H, "pca": np.asarray(r["pca"]).tolist(),
         "trained": np.asarray(r["trained"]).tolist(),
         "train_loss": np.asarray(r["train_loss"]).mean(0)[:: max(1, config.mkv_steps // 100)].tolist()}
  half = H // 2
  out["max_ratio_le_half"] = float(np.max(np.asarray(r["trained"])[:, :half] / np.asarray(r["pca"])[:, :half]))
  out["full_rank_err"] = float(max(np.max(np.asarray(r["pca"])[:, -1]), np.max(np.asarray(r["trained"])[:, -1])))
  return out


# ---- run / claims ----------------------------------------------------------------------------------------------------
def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  part = lambda name, fn: sweep.memoized(workdir, {"part": name}, fn)   # a rerun reads finished parts back
  wn = part("widenet", lambda: widenet_runs(config))
  log.log(0, wn_diff_mean=wn["diff_mean"], wn_diff_sem=wn["diff_sem"])
  mc = part("mc_smoe", lambda: mc_smoe_runs(config))
  log.log(1, mc_uniform_vs_mc=mc["uniform_vs_mc"][0], mc_unaligned_vs_mc=mc["unaligned_vs_mc"][0])
  pm = part("pmod", lambda: pmod_runs(config))
  log.log(2, pm_kv_fraction=pm["kv_fraction"], pm_raw_vs_tanh=pm["raw_vs_tanh"][0])
  mkv = part("matryoshka", lambda: matryoshka_runs(config))
  log.log(3, mkv_max_ratio=mkv["max_ratio_le_half"])
  out = {"widenet": wn, "mc_smoe": mc, "pmod": pm, "matryoshka": mkv}
  _figure(out, config, workdir)
  return out


def _se(pair):
  mean, sem = pair
  return mean / max(sem, 1e-12)


def claims(results: dict) -> list[Claim]:
  wn, mc, pm, mkv = results["widenet"], results["mc_smoe"], results["pmod"], results["matryoshka"]
  return [
      Claim.at_least("shared-LN minus individual-LN WideNet relative test MSE, paired over seeds, in standard errors",
                     wn["diff_mean"] / max(wn["diff_sem"], 1e-12), 2.0,
                     paper="individual LayerNorms beat shared ones at ~equal parameters",
                     kind="paper", where="Abstract and the individual-LayerNorm ablation [127]"),
      Claim.at_least("uniform-merge minus MC-SMoE test-accuracy drop, paired over seeds, in standard errors",
                     _se(mc["uniform_vs_mc"]), 2.0, paper="frequency-weighted merging beats uniform averaging",
                     kind="paper", where="Sec. 3.2 and the merging ablations [154]"),
      Claim.at_least("unaligned minus MC-SMoE test-accuracy drop, paired over seeds, in standard errors",
                     _se(mc["unaligned_vs_mc"]), 2.0, paper="permutation alignment before merging helps",
                     kind="paper", where="Sec. 3.1 and the alignment ablation [154]"),
      Claim.close("PRD (shifted cosine, L=32, 0.85/0.15) mean vision-token retention = KV-cache fraction",
                  pm["kv_fraction"], 0.538, atol=0.001, paper="53.8% KV cache storage", kind="sanity",
                  where="Abstract [190]"),
      Claim.at_least("raw-router minus TanhNorm MoD LM held-out cross-entropy, paired over seeds, in standard errors",
                     _se(pm["raw_vs_tanh"]), 2.0, paper="TanhNorm makes MoD training stable", kind="paper",
                     where="Sec. 3.2 and the TanhNorm ablation [190]"),
      Claim.at_most("MatryoshkaKV trained / PCA relative output error, max over seeds and r <= H/2",
                    mkv["max_ratio_le_half"], 0.999, paper="trained orthogonal projections beat PCA at high "
                    "compression", kind="paper", where="Sec. 4, PCA init vs trained projections [82]"),
      Claim.at_most("MatryoshkaKV relative output error at r = H (PCA and trained)", mkv["full_rank_err"], 1e-5,
                    kind="sanity"),
      Claim.at_most("WideNet students learn: relative test MSE, max over seeds and students",
                    max(max(wn["individual"]["rel_mse"]), max(wn["shared"]["rel_mse"])), 0.9, kind="sanity"),
      Claim.at_least("MoE classifier learns: unmerged test accuracy, min over seeds (chance 0.25)",
                     min(mc["acc_full"]), 0.6, kind="sanity"),
      Claim.at_most("MC-SMoE compression: accuracy lost from the merged model, max over seeds",
                    max(a - b for a, b in zip(mc["acc_mc"], mc["acc_compressed"])), 0.1, kind="sanity"),
  ]


def _figure(out, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
  wn = out["widenet"]
  for j, name in enumerate(("individual", "shared")):
    axes[0].scatter(np.full(len(wn[name]["rel_mse"]), j), wn[name]["rel_mse"], label=name)
  axes[0].set_xticks([0, 1], [f"individual LN ({wn['params_individual']})", f"shared LN ({wn['params_shared']})"])
  axes[0].set_ylabel("relative test MSE")
  axes[0].set_title("[127] WideNet students per seed", fontsize=9)
  mc = out["mc_smoe"]
  names = ("full", "mc", "uniform", "unaligned", "compressed")
  for s in range(len(mc["acc_full"])):
    axes[1].plot(range(5), [mc[f"acc_{n}"][s] for n in names], "o-", alpha=0.7)
  axes[1].set_xticks(range(5), ["unmerged", "MC-SMoE", "uniform", "unaligned", "MC + compress"], fontsize=7)
  axes[1].set_ylabel("test accuracy (per seed)")
  axes[1].set_title(f"[154] {config.mc_experts} -> {config.mc_groups} experts", fontsize=9)
  pm = out["pmod"]
  for name in ("tanh", "none"):
    axes[2].plot(pm[name]["train_loss"], label=f"{name} router weights")
  axes[2].set_xlabel(f"step / {max(1, config.pm_steps // 100)}")
  axes[2].set_ylabel("train cross-entropy (mean over seeds)")
  axes[2].set_title(f"[190] MoD LM, PRD ratios {['%.2f' % r for r in pm['ratios']]}", fontsize=9)
  axes[2].legend(fontsize=7)
  mkv = out["matryoshka"]
  axes[3].semilogy(mkv["ranks"], np.mean(mkv["pca"], 0), "o-", label="PCA init")
  axes[3].semilogy(mkv["ranks"], np.mean(mkv["trained"], 0), "s-", label="Matryoshka-trained")
  axes[3].set_xlabel("kept rank r (of H)")
  axes[3].set_ylabel("relative attention-output error")
  axes[3].set_title("[82] MatryoshkaKV", fontsize=9)
  axes[3].legend(fontsize=7)
  fig.suptitle("Layers wave 1 (MoE / routing / KV): WideNet, MC-SMoE, p-MoD, MatryoshkaKV")
  save_figure(fig, workdir / "figure.png")
