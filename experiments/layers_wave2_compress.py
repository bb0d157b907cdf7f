"""Layers wave 2 (issue 20), compression and robustness toy claims: a probabilistic circuit as a lossless coder,
an RBF/prototype head's certified radius under PGD, the deep conjugate direction method on 2-D Poisson, ULSAM's
parameter count, and unified (multiplexed) embeddings on a synthetic CTR task.

Papers:
  [205] Anji Liu, Stephan Mandt, Guy Van den Broeck, "Lossless Compression with Probabilistic Circuits", ICLR 2022,
        arXiv:2111.11632.
  [191] Sascha Saralajew, Ashish Rana, Thomas Villmann, Ammar Shaker, "A Robust Prototype-Based Network with
        Interpretable RBF Classifier Foundations", 2024, arXiv:2412.15499.
  [176] Ayano Kaneda et al., "A Deep Conjugate Direction Method for Iteratively Solving Linear Systems", ICML 2023,
        arXiv:2205.10763.
  [156] Rajat Saini et al., "ULSAM: Ultra-Lightweight Subspace Attention Module for Compact Convolutional Neural
        Networks", WACV 2020, arXiv:2006.15102.
  [6]   Benjamin Coleman et al., "Unified Embedding: Battle-Tested Feature Representations for Web-Scale ML Systems",
        NeurIPS 2023, arXiv:2305.12102.

[205] (catalog row: binarised toy data, D = 16-64, coded length ~ -log2 p(x) with < 0.1 bit overhead). Data: per
seed, a mixture of `pc_templates` random binary templates of D = `pc_vars` bits, each bit flipped with probability
`pc_flip`. A `ProbabilisticCircuit` (K = `pc_units`) is trained by maximum likelihood (adam, full batch) on
`pc_train` samples, the seeds vmapped and sharded over the mesh. Test messages are coded with an exact arithmetic
coder (`arithmetic_encode`: the Shannon-Fano-Elias interval code on big integers, P(1) quantised to
`coder_precision` bits) driven by the PC's conditionals p(x_t | x_<t) = p(x_<=t) / p(x_<t) (two marginal passes
each: the naive O(D |p|) scheme, not the paper's O(log D |p|) algorithm, whose cost claim is not checked). The code
lengths are REAL coded bits compared with the model's -log2 p(x); `pc_decode` messages of seed 0 are decoded (the
decoder recomputes each conditional from the bits it has decoded). Mutation: `coder_precision=1` (every
conditional coded as 1/2).

[191] (catalog row: no PGD attack within the certified l2 radius flips a prediction; the margin loss raises certified
accuracy). Three overlapping 2-D Gaussian classes; an `RBFClassifier` (K = `rbf_components`, exp kernel) trained
with cross-entropy on the normalised class probabilities, with ("margin" arm, + `rbf_margin_weight` x
`rbf_margin_loss`) or without ("ce" arm) the margin hinge, seeds vmapped. `certified_radius` (our interval bound,
see nn/rbf_classifier.py) per test point, then l2 PGD (`pgd_steps`, gradients from
`jaxlib_methods.attacks.input_gradient`) inside 0.999 x the radius, and at 3 x the radius (the attack's teeth).
Mutation: `cert_scale=3` (an over-claimed certificate).

[176] (catalog row: DCDM reaches 1e-4 in far fewer iterations than CG; its iteration count stays ~flat as the grid
grows). `DCDMNet` trained with `scale_invariant_residual_loss` on unit residuals drawn in the Poisson sine basis with
coefficients N(0, 1) / lambda (low modes dominate, like the paper's Ritz-vector data), `dcdm_steps` adam steps at
n = `dcdm_grid`, then `dcdm_solve` (k_orth = `dcdm_k_orth`) vs CG (identity directions, k_orth = 1: exactly CG, the
test proves it) on fresh right-hand sides at n and 2n. Mutation: `dcdm_net=identity`.

[156] (catalog row: exact parameter count ~O(C) << SE/CBAM; the toy-CNN accuracy comparison is NOT run). ULSAM's
counted trainable parameters at C = `ulsam_channels`, g = `ulsam_groups` vs squeeze-and-excitation at r = 16.

[6] (catalog row: at equal parameter budget a shared, multiplexed table has <= log-loss of per-feature tables; the
decomposability analysis is NOT run). Four categorical fields with Zipf(1.1) ids and vocabularies `ue_vocab`; clicks
~ Bernoulli(sigmoid(sum_f effect_f[id] - 1)) with N(0, 1) effects; a linear CTR model on the concatenated embeddings
(d = `ue_dim`), trained with adam on fresh batches, either on a `UnifiedEmbedding` of `ue_rows` rows or on
per-feature `HashEmbed` tables with the same total rows (equal split capped at each vocabulary, the rest to the
largest field), seeds vmapped. Mutation: `ue_form=per_feature` (both arms per-feature).

Claims (tolerances fixed before the first run):
  1. [205] (coded bits - (-log2 p(x))) / D, mean over test messages, max over seeds <= 0.1 bit per dimension;
  2. [191] PGD flips inside 0.999 x the certified radius, summed over test points, seeds and arms == 0;
  3. [191] certified accuracy at rho = `rbf_rho`: margin arm - CE arm > 0 on every seed;
  4. [176] DCDM / CG mean iterations to 1e-4 at n <= 0.8;
  5. [176] DCDM's iteration growth n -> 2n / CG's <= 0.8;
  6. [156] ULSAM parameters / SE parameters <= 0.5;
  7. [6] unified minus per-feature test log-loss, mean over seeds < 0;
  8. [6] the same at every budget of a sweep, paired 95% intervals over 8 seeds of their own (below);
  sanity: lossless decoding; the PC beats independent Bernoullis by >= 0.05 bit/dim; PC conditionals = brute-force
  enumeration (D = 8); PGD at 3 x the radius flips >= 20%; clean accuracy >= 0.7; identity DCDM == jax cg; ULSAM count
  == 5 C + 3 g; the two CTR arms have equal parameter counts.

Outcome of the cpu preset (513 s wall on the shared 2-core machine under a load average of ~18; rerun alone on the
quiet machine with the current code, 2026-12-02: 78 s, the same 12/15): 12/15 claims pass, 5 of the 7 paper claims.
The first run predates two changes (the DCDM seeds run by lax.map, was vmap; the decoding check encodes each message
with the decoder's [1, D] program); the 2026-12-02 rerun includes both.
  1. [205] passes: excess 0.065 / 0.070 / 0.059 bit/dim (model 0.67-0.77 bit/dim, independent Bernoullis +0.13 or
     more); decoding lossless; conditionals = enumeration to 3e-7.
  2. [191] passes: 0 flips inside the certified radius over 3 seeds x 2 arms x 512 points (median radius ~1.1; PGD at
     3 x the radius flips 97-99%, so the certificate is not vacuous).
  3. [191] FAILS: the margin arm's certified accuracy at rho = 0.25 is equal or lower (0.912/0.924/0.881 vs
     0.912/0.924/0.883); no other margin, weight or rho was tried (the tolerances were fixed before the run).
  4.-5. [176] FAIL: the small CPU-trained ConvNet's directions stall (DCDM hits the 4 n iteration cap, 128 at n = 32
     and 256 at n = 64, CG needs 67-71 and 131-142); the scale-invariant loss only fell from 1.0 to ~0.57 in 100
     steps. Tried: the paper form (no skip) at 300 steps and max 8 n iterations (256/512, cap hit), and a residual
     form d = r + net(r) at 150 steps (`DCDMNet(residual=True)`, cap hit). The paper trains a much deeper
     multi-resolution network for far longer; the identity arm reproduces CG exactly, so the solver loop is right.
     No mutation (a mutation can only break a claim that passes).
  6. [156] passes: 492 parameters (= 5 C + 3 g) vs SE's 1254 at C = 96, ratio 0.39.
  7. [6] passes: unified minus per-feature log-loss -0.059 / -0.047 / -0.076 (0.455-0.481 vs 0.514-0.557).
Mesh: a check at TINY with seeds=4 (1 vs 2 simulated devices, after the changes above) gave 11/15 claims on both and a
largest relative difference of 0.16 in the PC coder's excess bits (a few messages coded one bit longer or shorter);
`pytest -m slow tests/runner/test_seed_parallel.py -k layers_wave2_compress` (TINY as it is, 2026-12-01) passes: every
result within 1e-4 relative.
Claims audit (2026-12-03; no tolerance or setting changed): rows that hold by construction are sanity rows now:
[156] ULSAM / SE parameters (arithmetic from C, g and r), [205] coded bits vs -log2 p(x) (our Shannon-Fano-Elias
coder guarantees n <= -log2 q(x) + 2 whatever the PC), [191] no PGD flip inside the certified radius (our own proven
interval bound: PGD can only expose a bug in it). `a_overclaimed_radius` and `b_coarse_coder` broke only those rows
and are no longer declared. MUTATION_PAPERS: `c_per_feature_arm` -> [6]. Noted, not changed: [6]'s row is judged
on the seed mean (all three seeds are negative, -0.047 to -0.076).
[6] claim 8, PRE-REGISTERED 2026-12-03 before any run that computes it (the abstract: "multiplexed representations
lead to Pareto-optimal parameter-accuracy tradeoffs"): the same two arms at every budget of `ue_sweep_rows` = 128,
512, 2048 rows (2.3%, 9% and 37% of the 5560 ids; at 2048 the per-feature arm holds the two smallest fields without
any collision), each on `ue_sweep_seeds` = 8 seeds of a fresh key stream (fold_in(key(seed + 6), 600); fresh model
inits, seed + 600 + s); everything else as the cpu preset. Passes when at EVERY budget the upper end of the paired
95% t-interval of unified - per-feature test log-loss over the 8 seeds is < 0 (the largest upper end < 0). Judged by
ONE run of the cpu preset, recorded whatever it shows; the budgets, seeds and tolerance do not change after it.
`c_per_feature_arm` makes both arms the same per-feature model (difference exactly 0), so it fails claim 8 too.
JUDGED RUN (2026-12-03, `python -m experiments run layers_wave2_compress`, 91 s wall, 13/16 claims; the failures are
[176]'s two and [191]'s, as before): claim 8 passes at every budget. Test log-loss (mean over the 8 seeds), unified /
per-feature: 128 rows 0.474 / 0.533, 512 rows 0.452 / 0.516, 2048 rows 0.441 / 0.499; unified - per-feature -0.058
[-0.073, -0.044], -0.064 [-0.082, -0.045], -0.058 [-0.077, -0.039]. The gap does not close at 2048 rows: the
per-feature split gives the 5000-id field 1488 rows (3.4 ids a row), the shared table spreads all 5560 ids over 2048
(2.7 a row), and the small fields' ids, which take few rows of their own, cost the shared table little.
"""

from __future__ import annotations

import dataclasses
import itertools
import pathlib
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from experiments import _seed_stats as st_seed
from jaxlib_methods.nn.probabilistic_circuit import (ProbabilisticCircuit, arithmetic_decode, arithmetic_encode,
                                                     pc_conditional_marginals, quantize_probability)
from jaxlib_methods import attacks
from jaxlib_methods.nn.dcdm import DCDMNet, dcdm_solve, poisson_2d_matvec, scale_invariant_residual_loss
from jaxlib_methods.nn.ulsam import ULSAM, ulsam_num_params
from jaxlib_methods.nn.unified_embedding import UnifiedEmbedding, per_feature_hash_embeddings
from jaxlib_methods.nn.rbf_classifier import RBFClassifier, certified_radius, rbf_margin_loss
from jaxlib_methods.runner import (Claim, MeshConfig, MetricsLog, Paper, make_mesh, minimize, save_figure,
                                   shard_leading, sweep)
from typing import Literal

from jaxlib_methods.runner.constraints import Length, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=205, title="Lossless Compression with Probabilistic Circuits", year=2022,
              arxiv="2111.11632")
ALSO_REPRODUCES = (Paper(catalog_id=191, title="A Robust Prototype-Based Network with Interpretable RBF Classifier "
                         "Foundations", year=2024, arxiv="2412.15499"),
                   Paper(catalog_id=176, title="A Deep Conjugate Direction Method for Iteratively Solving Linear "
                         "Systems", year=2023, arxiv="2205.10763"),
                   Paper(catalog_id=156, title="ULSAM: Ultra-Lightweight Subspace Attention Module for Compact "
                         "Convolutional Neural Networks", year=2020, arxiv="2006.15102"),
                   Paper(catalog_id=6, title="Unified Embedding: Battle-Tested Feature Representations for Web-Scale "
                         "ML Systems", year=2023, arxiv="2305.12102"))
DEMO = False


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=3)] = 3
  # [205] probabilistic circuit coder
  pc_vars: Annotated[int, Range(ge=4, le=64)] = 16
  pc_units: PositiveInt = 4
  pc_templates: PositiveInt = 6
  pc_flip: Annotated[float, Range(ge=0, lt=0.5)] = 0.05
  pc_train: PositiveInt = 1024
  pc_test: PositiveInt = 256
  pc_steps: PositiveInt = 300
  pc_lr: PositiveFloat = 0.05
  pc_decode: PositiveInt = 32
  coder_precision: Annotated[int, Range(ge=1, le=30)] = 16
  # [191] RBF head, certified radius, PGD
  rbf_components: PositiveInt = 6
  rbf_sigma: PositiveFloat = 1.0
  rbf_steps: PositiveInt = 400
  rbf_lr: PositiveFloat = 0.05
  rbf_train: PositiveInt = 1024
  rbf_test: PositiveInt = 512
  rbf_margin: Annotated[float, Range(ge=0, le=1)] = 0.3
  rbf_margin_weight: PositiveFloat = 1.0
  rbf_rho: PositiveFloat = 0.25
  pgd_steps: PositiveInt = 50
  cert_scale: PositiveFloat = 1.0
  # [176] DCDM on 2-D Poisson
  dcdm_grid: Annotated[int, Range(ge=8)] = 32
  dcdm_features: PositiveInt = 8
  dcdm_depth: PositiveInt = 2
  dcdm_steps: PositiveInt = 100
  dcdm_batch: PositiveInt = 16
  dcdm_lr: PositiveFloat = 3e-3
  dcdm_k_orth: PositiveInt = 2
  dcdm_tol: PositiveFloat = 1e-4
  dcdm_systems: PositiveInt = 2
  dcdm_net: Literal["convnet", "identity"] = "convnet"
  dcdm_residual: bool = False
  # [156] ULSAM counts
  ulsam_channels: PositiveInt = 96
  ulsam_groups: PositiveInt = 4
  se_reduction: PositiveInt = 16
  # [6] unified embedding on a synthetic multi-field CTR task
  ue_vocab: Annotated[tuple[int, ...], Range(ge=2, lt=2 ** 31), Length(min=2)] = (5000, 500, 50, 10)
  ue_rows: PositiveInt = 512
  ue_dim: PositiveInt = 4
  ue_steps: PositiveInt = 300
  ue_batch: PositiveInt = 512
  ue_lr: PositiveFloat = 0.05
  ue_test: PositiveInt = 8192
  ue_form: Literal["unified", "per_feature"] = "unified"
  ue_sweep_rows: Annotated[tuple[int, ...], Range(ge=1), Length(min=2)] = (128, 512, 2048)   # claim 8's budgets
  ue_sweep_seeds: Annotated[int, Range(ge=2, le=64)] = 8          # claim 8's seeds (their own key stream, 600)
  mesh: MeshConfig = MeshConfig()   # devices the vmapped seeds are split over


PRESETS = {"cpu": Config(), "gpu": Config(seeds=8, pc_vars=64, pc_units=16, pc_steps=1000),
           "tpu": Config(seeds=8, pc_vars=64, pc_units=16, pc_steps=1000)}
TINY = ("pc_vars=32", "pc_units=4", "pc_train=256", "pc_test=32", "pc_steps=100", "pc_decode=2", "rbf_steps=60",
        "rbf_train=256", "rbf_test=64", "pgd_steps=10", "dcdm_grid=8", "dcdm_steps=20", "dcdm_batch=4",
        "dcdm_systems=2", "dcdm_features=4", "ue_steps=40", "ue_test=1024", "ue_rows=64",
        "ue_sweep_rows=32,128", "ue_sweep_seeds=3")
# (no mutation for [176]: its claims fail for the method itself, see the docstring; dcdm_net=identity is its CG arm)
MUTATIONS = {"c_per_feature_arm": ("ue_form=per_feature",)}
MUTATION_PAPERS = {"c_per_feature_arm": 6}
MUTATION_TEST_SLOW = True  # the TINY run trains PCs and RBF heads and codes messages in Python: well over 2 s


# ---- [205] probabilistic circuit as a lossless coder -----------------------------------------------------------------
def _mixture_data(rng, config: Config, n: int, templates: np.ndarray) -> np.ndarray:
  z = rng.integers(0, len(templates), n)
  flips = rng.random((n, config.pc_vars)) < config.pc_flip
  return (templates[z] ^ flips).astype(np.int32)


def pc_compression(config: Config) -> dict:
  D = config.pc_vars
  datasets, params0 = [], []
  for s in range(config.seeds):
    rng = np.random.default_rng(config.seed + 1000 * s)
    templates = rng.integers(0, 2, (config.pc_templates, D)).astype(bool)
    datasets.append((_mixture_data(rng, config, config.pc_train, templates),
                     _mixture_data(rng, config, config.pc_test, templates)))
    graphdef, p = nnx.split(ProbabilisticCircuit(D, config.pc_units, rngs=nnx.Rngs(config.seed + s)))
    params0.append(p)
  stack = lambda xs: jax.tree.map(lambda *a: jnp.stack(a), *xs)
  params = stack(params0)
  train = jnp.asarray(np.stack([d[0] for d in datasets]))
  test = jnp.asarray(np.stack([d[1] for d in datasets]))
  mesh = make_mesh(config.mesh)
  params, train, test = (shard_leading(t, mesh, what="seed") for t in (params, train, test))
  tx = optax.adam(config.pc_lr)

  def nll(p, x):
    return -jnp.mean(nnx.merge(graphdef, p).log_prob(x))

  def fit(p, x):
    return minimize(lambda p: nll(p, x), p, tx, length=config.pc_steps)

  params, losses = jax.jit(jax.vmap(fit))(params, train)
  test_lp = jax.jit(jax.vmap(lambda p, x: nnx.merge(graphdef, p).log_prob(x)))(params, test)
  order = np.arange(D)

  @jax.jit
  def cond_one(p, x, mask, var):
    """P(x_var = 1 | x[mask]) for a batch x [B, D] (the same program for the encoder and the decoder)."""
    pc = nnx.merge(graphdef, p)
    x1 = x.at[:, var].set(1)
    m1 = mask.at[var].set(True)
    return jnp.exp(jnp.minimum(pc.log_prob(x1, m1) - pc.log_prob(x, mask), 0.0))

  out = {"excess_bits_per_dim": [], "model_bits_per_dim": [], "coded_bits_per_dim": [], "indep_bits_per_dim": [],
         "train_loss": np.asarray(losses).mean(0)[:: max(1, config.pc_steps // 100)].tolist()}
  P = config.coder_precision
  for s in range(config.seeds):
    p = jax.tree.map(lambda a: a[s], params)
    x = np.asarray(test[s])
    q = np.zeros(x.shape, np.int64)
    for t in range(D):
      mask = jnp.asarray(np.arange(D) < t)
      q[:, t] = quantize_probability(np.asarray(cond_one(p, jnp.asarray(x), mask, t), np.float64), P)
    codes = [arithmetic_encode(xi[order], qi, P) for xi, qi in zip(x, q)]
    coded = np.array([n for _, n in codes], np.float64)
    model_bits = -np.asarray(test_lp[s], np.float64) / np.log(2)
    out["excess_bits_per_dim"].append(float(np.mean(coded - model_bits) / D))
    out["model_bits_per_dim"].append(float(model_bits.mean() / D))
    out["coded_bits_per_dim"].append(float(coded.mean() / D))
    tr = np.asarray(train[s])
    f = np.clip(tr.mean(0), 1e-6, 1 - 1e-6)
    out["indep_bits_per_dim"].append(float(-np.mean(x * np.log2(f) + (1 - x) * np.log2(1 - f)) * 1.0))
    if s == 0:   # encode the first messages one by one and decode them from the code and the decoded prefix alone
      ok = []

      def q_fn(t, prefix):   # the SAME [1, D] program for encoder and decoder: bitwise equal conditionals (a
        xp = np.zeros((1, D), np.int32)   # batch of another size may round differently and flip a quantised q)
        xp[0, :t] = prefix
        return quantize_probability(np.asarray(cond_one(p, jnp.asarray(xp), jnp.asarray(np.arange(D) < t), t),
                                               np.float64), P)[0]
      for i in range(min(config.pc_decode, len(x))):
        qi = np.array([q_fn(t, x[i, :t].tolist()) for t in range(D)])
        code, nbits = arithmetic_encode(x[i], qi, P)
        ok.append(arithmetic_decode(code, nbits, D, q_fn, P) == x[i].tolist())
      out["decoded_ok"] = float(np.mean(ok))
      # exact check on a D = 8 slice: conditionals from marginals vs brute-force enumeration of the joint table
      pc8 = ProbabilisticCircuit(8, config.pc_units, rngs=nnx.Rngs(config.seed))
      allx = np.array(list(itertools.product((0, 1), repeat=8)), np.int32)
      joint = np.exp(np.asarray(jax.jit(lambda x: pc8.log_prob(x))(allx), np.float64))
      perm = np.random.default_rng(config.seed).permutation(8)
      cond = np.asarray(jax.jit(lambda x: pc_conditional_marginals(pc8, x, perm))(allx[:8]), np.float64)
      err = 0.0
      for xv, c in zip(allx[:8], cond):
        for t in range(8):
          match = np.all(allx[:, perm[:t]] == xv[perm[:t]], axis=1)
          ref = joint[match & (allx[:, perm[t]] == 1)].sum() / joint[match].sum()
          err = max(err, abs(c[t] - ref))
      out["brute_force_err"] = float(err)
      out["joint_sum"] = float(joint.sum())
  out["num_params"] = ProbabilisticCircuit(D, config.pc_units, rngs=nnx.Rngs(0)).num_params()
  return out


# ---- [191] RBF head: certified radius vs PGD ------------------------------------------------------------------------------
RBF_CLASSES = 3


def _blobs(key, n):
  """Three Gaussian blobs (std 0.7) at angles 0, 120, 240 degrees on the circle of radius 1.6: overlapping classes."""
  ky, kx = jax.random.split(key)
  y = jax.random.randint(ky, (n,), 0, RBF_CLASSES)
  ang = 2 * jnp.pi * y / RBF_CLASSES
  mu = 1.6 * jnp.stack([jnp.cos(ang), jnp.sin(ang)], -1)
  return mu + 0.7 * jax.random.normal(kx, (n, 2)), y


def pgd_l2(model_fn, x, y, radius, *, steps: int, key):
  """l2 PGD inside per-example balls ||delta|| <= radius [B], maximising the cross-entropy of the normalised class
  probabilities (the gradient from `jaxlib_methods.attacks.input_gradient`), random start, normalised steps of
  2.5 radius / steps; returns the perturbed inputs."""
  logits_fn = lambda z: jnp.log(model_fn(z) + 1e-12)
  r = radius[:, None]
  u = jax.random.normal(key, x.shape)
  delta = 0.5 * r * u / jnp.linalg.norm(u, axis=-1, keepdims=True)

  def body(_, delta):
    g = attacks.input_gradient(logits_fn, x + delta, y)
    g = g / jnp.maximum(jnp.linalg.norm(g, axis=-1, keepdims=True), 1e-12)
    delta = delta + 2.5 * r / steps * g
    n = jnp.linalg.norm(delta, axis=-1, keepdims=True)
    return delta * jnp.minimum(1.0, r / jnp.maximum(n, 1e-12))
  return x + jax.lax.fori_loop(0, steps, body, delta)


def rbf_robustness(config: Config) -> dict:
  models = [RBFClassifier(2, config.rbf_components, RBF_CLASSES, sigma=config.rbf_sigma, rngs=nnx.Rngs(config.seed + s))
            for s in range(config.seeds)]
  graphdef, _ = nnx.split(models[0])
  params = jax.tree.map(lambda *a: jnp.stack(a), *[nnx.split(m)[1] for m in models])
  keys = jax.random.split(jax.random.key(config.seed + 77), config.seeds)
  mesh = make_mesh(config.mesh)
  params, keys = shard_leading(params, mesh, what="seed"), shard_leading(keys, mesh, what="seed")
  tx = optax.adam(config.rbf_lr)

  def train_eval(p, key, margin_weight):
    ktr, kte, katt, katt2 = jax.random.split(key, 4)
    x, y = _blobs(ktr, config.rbf_train)

    def loss(p):
      probs = nnx.merge(graphdef, p)(x)
      ce = optax.softmax_cross_entropy_with_integer_labels(jnp.log(probs + 1e-12), y).mean()
      return ce + margin_weight * rbf_margin_loss(probs, y, margin=config.rbf_margin).mean()

    p, losses = minimize(loss, p, tx, length=config.rbf_steps)
    m = nnx.merge(graphdef, p)
    xt, yt = _blobs(kte, config.rbf_test)
    pred = jnp.argmax(m(xt), -1)
    radius = config.cert_scale * certified_radius(m, xt)                      # w.r.t. the model's own prediction
    inside = pgd_l2(m, xt, pred, 0.999 * radius, steps=config.pgd_steps, key=katt)
    flipped_inside = (jnp.argmax(m(inside), -1) != pred) & (radius > 0)
    outside = pgd_l2(m, xt, pred, 3.0 * radius + 1e-3, steps=config.pgd_steps, key=katt2)
    flipped_outside = (jnp.argmax(m(outside), -1) != pred) & (radius > 0)
    cert_correct = certified_radius(m, xt, yt)
    return {"acc": jnp.mean(pred == yt), "certified_acc": jnp.mean(cert_correct > config.rbf_rho),
            "flips_inside": jnp.sum(flipped_inside), "certified_points": jnp.sum(radius > 0),
            "flip_rate_3r": jnp.sum(flipped_outside) / jnp.maximum(jnp.sum(radius > 0), 1),
            "median_radius": jnp.median(radius), "train_loss": losses}

  run_all = jax.jit(jax.vmap(train_eval, in_axes=(0, 0, None)))
  out = {}
  for arm, w in (("ce", 0.0), ("margin", config.rbf_margin_weight)):
    r = jax.device_get(run_all(params, keys, w))
    out[arm] = {k: np.asarray(v).tolist() for k, v in r.items() if k != "train_loss"}
    out[arm]["train_loss"] = np.asarray(r["train_loss"]).mean(0)[:: max(1, config.rbf_steps // 100)].tolist()
  return out


# ---- [176] DCDM on 2-D Poisson ------------------------------------------------------------------------------------------
def smooth_residuals(key, n: int, batch: int) -> jax.Array:
  """Random right-hand sides sum_ij c_ij v_ij in the Poisson sine eigenbasis with c_ij ~ N(0, 1) / lambda_ij (the
  low end of the spectrum dominates, as in the paper's Ritz-vector training data), unit norm: [batch, n, n]."""
  i = jnp.arange(1, n + 1)
  lam = (4 - 2 * jnp.cos(jnp.pi * i / (n + 1)))[:, None] - 2 * jnp.cos(jnp.pi * i / (n + 1))[None, :]
  s = jnp.sin(jnp.pi * jnp.outer(i, i) / (n + 1)) * jnp.sqrt(2.0 / (n + 1))        # orthonormal sine matrix
  c = jax.random.normal(key, (batch, n, n)) / lam
  r = jnp.einsum("ia,bij,jc->bac", s, c, s)
  return r / jnp.linalg.norm(r.reshape(batch, -1), axis=-1)[:, None, None]


def dcdm_poisson(config: Config) -> dict:
  n = config.dcdm_grid
  nets = [DCDMNet(config.dcdm_features, config.dcdm_depth, residual=config.dcdm_residual, rngs=nnx.Rngs(config.seed + s)) for s in range(config.seeds)]
  graphdef, _ = nnx.split(nets[0])
  params = jax.tree.map(lambda *a: jnp.stack(a), *[nnx.split(m)[1] for m in nets])
  keys = jax.random.split(jax.random.key(config.seed + 176), config.seeds)
  # the seeds run one after another (lax.map), replicated: a vmapped (batched-kernel) convolution whose seed axis is
  # sharded over devices fails to partition on XLA:CPU (grouped-conv feature count), so this part is not split
  tx = optax.adam(config.dcdm_lr)

  def train(p, key):
    def loss(p, k):
      r = smooth_residuals(k, n, config.dcdm_batch)
      return jnp.mean(scale_invariant_residual_loss(r, poisson_2d_matvec(nnx.merge(graphdef, p)(r))))
    return minimize(loss, p, tx, jax.random.split(key, config.dcdm_steps))

  params, losses = jax.jit(lambda P, K: jax.lax.map(lambda pk: train(*pk), (P, K)))(params, keys)

  def iterations(p, key, size, identity):
    bs = smooth_residuals(key, size, config.dcdm_systems)
    f = (lambda r: r) if identity else nnx.merge(graphdef, p)
    k_orth = 1 if identity else config.dcdm_k_orth
    solve = lambda b: dcdm_solve(poisson_2d_matvec, b, f, k_orth=k_orth, tol=config.dcdm_tol,
                                 max_iters=4 * size)[1]["iters"]
    return jax.vmap(solve)(bs)

  out = {"train_loss": np.asarray(losses).mean(0)[:: max(1, config.dcdm_steps // 100)].tolist(), "grids": [n, 2 * n]}
  ident = config.dcdm_net == "identity"
  for size in (n, 2 * n):
    tkeys = jax.random.split(jax.random.key(config.seed + 999 + size), config.seeds)
    dc = jax.jit(lambda P, K: jax.lax.map(lambda pk: iterations(*pk, size, ident), (P, K)))(params, tkeys)
    cg = jax.jit(lambda P, K: jax.lax.map(lambda pk: iterations(*pk, size, True), (P, K)))(params, tkeys)
    out[f"dcdm_iters_{size}"] = np.asarray(dc).tolist()
    out[f"cg_iters_{size}"] = np.asarray(cg).tolist()
  # identity directions with k_orth = 1 vs jax.scipy.sparse.linalg.cg after the same number of iterations (float32)
  b = smooth_residuals(jax.random.key(config.seed), n, 1)[0]
  x_id, _ = dcdm_solve(poisson_2d_matvec, b, lambda r: r, k_orth=1, tol=1e-30, max_iters=10)
  x_cg, _ = jax.scipy.sparse.linalg.cg(poisson_2d_matvec, b, tol=0.0, maxiter=10)
  out["identity_vs_cg"] = float(jnp.linalg.norm(x_id - x_cg) / jnp.linalg.norm(x_cg))
  return out


# ---- [156] ULSAM parameter count --------------------------------------------------------------------------------------
def ulsam_counts(config: Config) -> dict:
  m = ULSAM(config.ulsam_channels, config.ulsam_groups, rngs=nnx.Rngs(config.seed))
  counted = int(sum(p.size for p in jax.tree.leaves(nnx.state(m, nnx.Param))))
  C, r = config.ulsam_channels, config.se_reduction
  se = 2 * C * (C // r) + C // r + C                       # SE: FC C -> C/r -> C with biases
  return {"ulsam_params": counted, "formula": ulsam_num_params(C, config.ulsam_groups), "se_params": se}


# ---- [6] unified embedding vs per-feature tables --------------------------------------------------------------------
class _CTRModel(nnx.Module):
  def __init__(self, config: Config, form: str, rngs: nnx.Rngs):
    v, F, d = config.ue_vocab, len(config.ue_vocab), config.ue_dim
    if form == "unified":
      self.embed = UnifiedEmbedding(v, config.ue_rows, d, hash_seed=0,
                                    rngs=rngs)
    else:   # equal split of the same rows, capped at each vocabulary, the rest to the largest feature
      rows = [min(config.ue_rows // F, n) for n in v]
      rows[int(np.argmax(v))] += config.ue_rows - sum(rows)
      self.tables = per_feature_hash_embeddings(v, rows, d, rngs=rngs)
    self.form = form
    self.head = nnx.Linear(F * d, 1, rngs=rngs)

  def __call__(self, ids):
    if self.form == "unified":
      e = self.embed(ids)
    else:
      e = jnp.stack([t(ids[..., f]) for f, t in enumerate(self.tables)], -2)
    return self.head(e.reshape(e.shape[:-2] + (-1,)))[..., 0]


def _ctr_sample(key, config: Config, effects, n):
  """Zipf(1.1)-distributed ids per field; click ~ Bernoulli(sigmoid(sum_f effect_f[id_f] - 1))."""
  ks = jax.random.split(key, len(config.ue_vocab) + 1)
  ids = []
  for f, v in enumerate(config.ue_vocab):          # inverse-CDF sampling of p(i) ~ (i + 1)^-1.1
    cdf = np.cumsum(np.arange(1, v + 1) ** -1.1)
    cdf = jnp.asarray(cdf / cdf[-1], jnp.float32)
    ids.append(jnp.minimum(jnp.searchsorted(cdf, jax.random.uniform(ks[f], (n,))), v - 1))
  ids = jnp.stack(ids, -1)
  logit = sum(e[ids[:, f]] for f, e in enumerate(effects)) - 1.0
  return ids, jax.random.bernoulli(ks[-1], jax.nn.sigmoid(logit)).astype(jnp.float32)


def unified_embedding_ctr(config: Config, keys=None) -> dict:
  """Both arms trained and scored per seed at `config.ue_rows` rows (keys: one per seed, default the preset's)."""
  out = {}
  if keys is None:
    keys = jax.random.split(jax.random.key(config.seed + 6), config.seeds)
  n_seeds = len(keys)
  mesh = make_mesh(config.mesh)
  keys = shard_leading(keys, mesh, what="seed")
  tx = optax.adam(config.ue_lr)
  for arm in ("unified", "per_feature"):
    form = config.ue_form if arm == "unified" else "per_feature"
    models = [_CTRModel(config, form, nnx.Rngs(config.seed + s)) for s in range(n_seeds)]
    graphdef, _ = nnx.split(models[0])
    params = shard_leading(jax.tree.map(lambda *a: jnp.stack(a), *[nnx.split(m)[1] for m in models]), mesh,
                           what="seed")

    def train_eval(p, key):
      kef, kdata, ktest = jax.random.split(key, 3)
      effects = [jax.random.normal(k, (v,)) for k, v in zip(jax.random.split(kef, len(config.ue_vocab)),
                                                             config.ue_vocab)]

      def loss(p, k):
        ids, y = _ctr_sample(k, config, effects, config.ue_batch)
        return optax.sigmoid_binary_cross_entropy(nnx.merge(graphdef, p)(ids), y).mean()
      p, losses = minimize(loss, p, tx, jax.random.split(kdata, config.ue_steps))
      ids, y = _ctr_sample(ktest, config, effects, config.ue_test)
      return optax.sigmoid_binary_cross_entropy(nnx.merge(graphdef, p)(ids), y).mean(), losses

    ll, losses = jax.jit(jax.vmap(train_eval))(params, keys)
    out[f"{arm}_logloss"] = np.asarray(ll).tolist()
    out[f"{arm}_train_loss"] = np.asarray(losses).mean(0)[:: max(1, config.ue_steps // 100)].tolist()
    out[f"{arm}_params"] = int(sum(np.size(x) for x in jax.tree.leaves(nnx.state(models[0], nnx.Param))))
  return out


def unified_embedding_sweep(config: Config) -> dict:
  """Claim 8: both arms at every budget of `ue_sweep_rows`, on `ue_sweep_seeds` seeds of a fresh key stream."""
  keys = jax.random.split(jax.random.fold_in(jax.random.key(config.seed + 6), 600), config.ue_sweep_seeds)
  out = {"rows": list(config.ue_sweep_rows)}
  for rows in config.ue_sweep_rows:
    r = unified_embedding_ctr(dataclasses.replace(config, ue_rows=rows, seed=config.seed + 600), keys)
    out[str(rows)] = {k: r[k] for k in ("unified_logloss", "per_feature_logloss", "unified_params",
                                        "per_feature_params")}
  return out


# ---- run / claims ---------------------------------------------------------------------------------------------------
def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  part = lambda name, fn: sweep.memoized(workdir, {"part": name}, fn)
  pc = part("pc", lambda: pc_compression(config))
  log.log(0, pc_excess_bits_per_dim=max(pc["excess_bits_per_dim"]), pc_model_bits_per_dim=pc["model_bits_per_dim"])
  rbf = part("rbf", lambda: rbf_robustness(config))
  log.log(1, rbf_flips_inside=sum(rbf["ce"]["flips_inside"]) + sum(rbf["margin"]["flips_inside"]),
          rbf_certified_acc_ce=rbf["ce"]["certified_acc"], rbf_certified_acc_margin=rbf["margin"]["certified_acc"])
  dc = part("dcdm", lambda: dcdm_poisson(config))
  log.log(2, **{k: float(np.mean(v)) for k, v in dc.items() if k.endswith(tuple(f"_{g}" for g in dc["grids"]))})
  ul = part("ulsam", lambda: ulsam_counts(config))
  ue = part("unified_embedding", lambda: unified_embedding_ctr(config))
  ue["sweep"] = part("unified_embedding_sweep", lambda: unified_embedding_sweep(config))
  log.log(3, ue_unified_logloss=ue["unified_logloss"], ue_per_feature_logloss=ue["per_feature_logloss"])
  out = {"pc": pc, "rbf": rbf, "dcdm": dc, "ulsam": ul, "ue": ue}
  _figure(out, config, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  pc, rbf, dc, ul, ue = results["pc"], results["rbf"], results["dcdm"], results["ulsam"], results["ue"]
  n, n2 = dc["grids"]
  it = lambda k: float(np.mean(dc[k]))
  ue_diff = np.subtract(ue["unified_logloss"], ue["per_feature_logloss"])
  ue_sweep = [st_seed.paired_ci(ue["sweep"][str(r)]["unified_logloss"], ue["sweep"][str(r)]["per_feature_logloss"])
              for r in ue["sweep"]["rows"]]
  return [
      Claim.at_most("ULSAM trainable parameters / squeeze-and-excitation's (same C, r = 16)",
                    ul["ulsam_params"] / ul["se_params"], 0.5,
                    paper="O(C) parameters, far fewer than SE/CBAM", kind="sanity",
                    where="Sec. 3 and Table 1 (parameters and FLOPs of attention modules) [156]"),
      Claim.at_most("ULSAM counted parameters - 5 C + 3 g (exact)", abs(ul["ulsam_params"] - ul["formula"]), 0,
                    kind="sanity"),
      Claim.at_most("unified (shared table) minus per-feature tables test log-loss at equal rows, mean over seeds",
                    float(ue_diff.mean()), -1e-6,
                    paper="multiplexed embeddings are Pareto-optimal: better accuracy at the same parameters",
                    kind="paper", where="Sec. 4, Fig. 3 (feature multiplexing vs per-feature tables) [6]"),
      Claim.at_most("unified minus per-feature test log-loss at equal rows, every budget of the sweep: largest upper "
                    "end of the paired 95% t-intervals over seeds (" + "; ".join(
                        f"{r} rows: {st_seed.fmt_ci(c)}" for r, c in zip(ue["sweep"]["rows"], ue_sweep)) + ")",
                    max(c["hi"] for c in ue_sweep), -1e-9,
                    paper="multiplexed embeddings give Pareto-optimal parameter-accuracy trade-offs", kind="paper",
                    where="Abstract (Pareto-optimal parameter-accuracy tradeoffs) [6]"),
      Claim.at_most("unified and per-feature arms: parameter counts differ by at most the per-feature arm's table "
                    "rounding (equal budget)", abs(ue["unified_params"] - ue["per_feature_params"]), 0,
                    kind="sanity"),
      Claim.at_most(f"DCDM / CG mean iterations to relative residual 1e-4 on the {n}x{n} Poisson grid",
                    it(f"dcdm_iters_{n}") / it(f"cg_iters_{n}"), 0.8,
                    paper="far fewer iterations than CG", kind="paper", where="Sec. 4, Fig. 3-4 [176]"),
      Claim.at_most(f"DCDM iteration growth {n}->{n2} (same network) / CG's growth",
                    (it(f"dcdm_iters_{n2}") / it(f"dcdm_iters_{n}")) / (it(f"cg_iters_{n2}") / it(f"cg_iters_{n}")),
                    0.8, paper="iteration count ~independent of the grid size", kind="paper",
                    where="Abstract and Sec. 4 (iterations flat in problem size) [176]"),
      Claim.at_most("identity directions, k_orth = 1, vs jax.scipy.sparse.linalg.cg after 10 iterations: relative "
                    "difference of x (float32)", dc["identity_vs_cg"], 1e-4, kind="sanity"),
      Claim.at_most("PC + arithmetic coder: (coded bits - (-log2 p(x))) / D, mean over test messages, max over seeds",
                    max(pc["excess_bits_per_dim"]), 0.1,
                    paper="coded length ~ -log2 p(x), overhead < 0.1 bit", kind="sanity",
                    where="Sec. 3 (PC conditionals drive a streaming code) and Table 2 [205]"),
      Claim.at_most("PGD (l2, inside 0.999 x the certified radius) prediction flips, summed over test points, seeds "
                    "and both training arms", sum(rbf["ce"]["flips_inside"]) + sum(rbf["margin"]["flips_inside"]), 0,
                    paper="the certified radius is a guarantee: no attack inside it changes the prediction",
                    kind="sanity", where="Sec. 4 (robustness guarantee of the shallow robust CBC) [191]"),
      Claim.at_least("certified accuracy at rho: margin-loss arm minus CE arm, min over seeds (paired)",
                     min(np.subtract(rbf["margin"]["certified_acc"], rbf["ce"]["certified_acc"])), 1e-9,
                     paper="the robustness loss raises certified robust accuracy", kind="paper",
                     where="Sec. 4-5 (loss that optimises robustness; certified accuracy) [191]"),
      Claim.at_least("PGD at 3x the certified radius flips >= 20% of the certified points (min over seeds and arms: "
                     "the attack has teeth)", min(rbf["ce"]["flip_rate_3r"] + rbf["margin"]["flip_rate_3r"]), 0.2,
                     kind="sanity"),
      Claim.at_least("clean test accuracy, min over seeds and arms (3 overlapping classes, chance 1/3)",
                     min(rbf["ce"]["acc"] + rbf["margin"]["acc"]), 0.7, kind="sanity"),
      Claim.at_least("decoded messages equal to the originals (fraction)", pc["decoded_ok"], 1.0, kind="sanity"),
      Claim.at_least("independent-Bernoulli bits/dim - PC bits/dim, min over seeds",
                     min(np.subtract(pc["indep_bits_per_dim"], pc["model_bits_per_dim"])), 0.05, kind="sanity"),
      Claim.at_most("max |conditional from marginals - brute-force enumeration| (D = 8 PC); |sum of joint - 1|",
                    max(pc["brute_force_err"], abs(pc["joint_sum"] - 1)), 1e-4, kind="sanity"),
  ]


def _figure(out, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
  pc = out["pc"]
  axes[0].plot(pc["train_loss"])
  axes[0].set_xlabel(f"step / {max(1, config.pc_steps // 100)}")
  axes[0].set_ylabel("train NLL (nats, mean over seeds)")
  axes[0].set_title(f"[205] PC, D={config.pc_vars}, K={config.pc_units}, {pc['num_params']} params", fontsize=9)
  xs = np.arange(config.seeds)
  axes[1].bar(xs - 0.25, pc["model_bits_per_dim"], 0.25, label="-log2 p(x) / D (model)")
  axes[1].bar(xs, pc["coded_bits_per_dim"], 0.25, label=f"coded bits / D (P={config.coder_precision})")
  axes[1].bar(xs + 0.25, pc["indep_bits_per_dim"], 0.25, label="independent Bernoulli")
  axes[1].set_xlabel("seed")
  axes[1].set_ylabel("bits per dimension (test)")
  axes[1].legend(fontsize=7)
  rbf = out["rbf"]
  for j, arm in enumerate(("ce", "margin")):
    axes[2].scatter(np.full(config.seeds, j), rbf[arm]["certified_acc"], label=f"certified acc at rho={config.rbf_rho}")
    axes[2].scatter(np.full(config.seeds, j + 0.1), rbf[arm]["acc"], marker="x", label="clean acc")
  axes[2].set_xticks([0, 1], ["CE", f"CE + margin ({config.rbf_margin})"])
  axes[2].set_ylabel("test accuracy (per seed)")
  axes[2].set_title(f"[191] RBF head; PGD flips inside radius: "
                    f"{sum(rbf['ce']['flips_inside']) + sum(rbf['margin']['flips_inside'])}", fontsize=9)
  dc = out["dcdm"]
  for j, g in enumerate(dc["grids"]):
    axes[3].scatter(np.full(np.size(dc[f"cg_iters_{g}"]), g), np.ravel(dc[f"cg_iters_{g}"]), marker="o",
                    label="CG" if j == 0 else None, color="C0")
    axes[3].scatter(np.full(np.size(dc[f"dcdm_iters_{g}"]), g), np.ravel(dc[f"dcdm_iters_{g}"]), marker="x",
                    label=f"DCDM ({config.dcdm_net})" if j == 0 else None, color="C1")
  axes[3].set_xlabel("grid side n (n x n Poisson)")
  axes[3].set_ylabel(f"iterations to residual {config.dcdm_tol:g}")
  axes[3].legend(fontsize=7)
  axes[3].set_title("[176] DCDM vs CG", fontsize=9)
  fig.suptitle("Layers wave 2: compression and robustness")
  save_figure(fig, workdir / "figure.png")
