"""Contrastive, generative and augmentation losses wave 2, P2 toy claims (issue 19, ls19d): PamC's meta-node
contrastive loss for graphs, ADC-GAN's auxiliary discriminative classifier, SMMix's max-min attention region mixing,
AdaWAC's per-sample supervised / consistency weights, CVIB's VIB self-pruning + contrastive learning.

Papers:
  [89]  Gayan K. Kulatilleke, Marius Portmann, Shekhar S. Chandra, "Efficient block contrastive learning via
        parameter-free meta-node approximation", 2022, arXiv:2209.14067 (`losses.pamc_loss`,
        `losses.graph_ncontrast_loss`).
  [173] Liang Hou, Qi Cao, Huawei Shen, Siyuan Pan, Xiaoshuang Li, Xueqi Cheng, "Conditional GANs with Auxiliary
        Discriminative Classifier", ICML 2022, arXiv:2107.10060 (`losses.adc_discriminator_loss`,
        `losses.adc_generator_loss`).
  [34]  Mengzhao Chen, Mingbao Lin, Zhihang Lin, Yuxin Zhang, Fei Chao, Rongrong Ji, "SMMix: Self-Motivated Image
        Mixing for Vision Transformers", ICCV 2023, arXiv:2212.12977 (`data.smmix`, `losses.smmix_fine_grained_loss`,
        `losses.smmix_consistency_loss`).
  [51]  Yijun Dong, Yuege Xie, Rachel Ward, "Adaptively Weighted Data Augmentation Consistency Regularization for
        Robust Optimization under Concept Shift", ICML 2023, arXiv:2210.01891 (the brief's 2210.09563 is another
        paper) (`losses.adawac_objective`, `losses.adawac_weight_update`).
  [11]  Mingshan Chang, Min Yang, Qingshan Jiang, Ruifeng Xu, "Reducing Spurious Correlations for Aspect-Based
        Sentiment Analysis with Variational Information Bottleneck and Contrastive Learning" (later "Contrastive
        Variational Information Bottleneck for Aspect-Based Sentiment Analysis"), 2023, arXiv:2303.02846 (the brief's
        2306.06985 is another paper) (`losses.self_pruning_contrastive_loss`, `nn.VIBMask`, `nn.vib_mask_kl`).

PamC (catalog row: cost O(nk + k^2) vs O(n^2) on an SBM graph; paper: up to 3x training time, 1.8x inference time,
> 5x GPU memory). Graph: a stochastic block model with `pamc_k` blocks of equal size, mean degree `pamc_degree`
(90% of the edges inside a block), self-loops added, N in {n0, 2 n0, 4 n0}; node embeddings [N, `pamc_dim`], meta-node
assignments the one-hot blocks (as the official code's argmax of q). For each N we compile (nothing run) the value and
gradient with respect to the embeddings of PamC (edge list + meta-nodes) and of the node-level loss it approximates
(Graph-MLP's, dense [N, N] adjacency, every node pair a negative) and read XLA's `memory_analysis()` (arguments +
temporaries), then time both (best of `pamc_repeats` calls). `pamc_arm="node"` (the mutation) gives PamC N meta-nodes,
one per node (C = I): then it is the node-level loss (tested equal) and its memory grows quadratically too.

ADC-GAN (catalog row: 2-D overlapping class-conditional Gaussians: AC-GAN shrinks intra-class variance, ADC-GAN
matches the per-class std). Data: two classes with means (-+`gan_sep`, 0) and identity covariance (they overlap
around x = 0). Conditional generator MLP (noise in R^2 + one-hot class) and discriminator MLP (a shared trunk, one
adversarial logit and the classifier's logits), width `gan_width`, non-saturating GAN loss, adam (b1 = 0.5), one D
and one G step per iteration, `gan_steps` steps, lambda = `gan_lambda` (1). Arms from the same seeds: ADC-GAN
(2K-way classifier on real and generated data, Eqs. (8)-(9)) and AC-GAN (K-way classifier on real data, generator
cross-entropy on its samples, as the official 'acgan'); `gan_classifier=ac` makes the method arm
AC-GAN too. Measured per class on `gan_eval` generated samples: the std of each coordinate and the fraction beyond
the class boundary.

SMMix (catalog row: +1% ImageNet for DeiT/PVT, not small; the check: the mixed image holds A's max-attention window
at B's min-attention window, and the mixed label weights are the area fractions, summing to 1). `sm_images` random
images of `sm_side` x `sm_side` patches of `sm_patch` pixels, a peaked random attention map per image (Dirichlet
0.3), the official pairing (the reversed batch) and every official window size w in [S/4, 3S/4]: `data.smmix` against
a NumPy brute force (loops over every window's attention mass). `sm_attention=inverted` (the mutation) feeds
max(attn) - attn, which swaps the two windows. No ViT is trained here (the paper's gain is on ImageNet).

AdaWAC (catalog row: the max player's exponentiated gradient drives beta_i toward the larger of the two losses:
label-dense samples -> supervised, label-sparse -> consistency, checked on synthetic losses; the row's second claim,
a toy regression with a label-sparse subset where AdaWAC >= ERM + fixed-weight consistency, is NOT run). `aw_samples`
samples, half label-dense (supervised loss U(0.5, 1.5) > consistency U(0.15, 0.4)), half label-sparse (supervised
U(0, 0.1)), fresh N(0, `aw_noise`^2) noise on every loss at every step; `aw_steps` weight steps from 1/2 with eta =
`aw_eta`, each also computed as the official float64 step. `aw_player=descent` (the mutation) runs the min
player's step instead.

CVIB (catalog row: synthetic toy, a spurious feature agrees with the label 90% in training and 50% at test: CVIB's
OOD accuracy > the CE baseline; ABSA text models out of scope). Inputs: 2 core dims y' `cv_core` + N(0, 1) (y' =
+-1), 1 spurious dim (+-y' + N(0, 0.01)), `cv_noise_dims` N(0, 1) dims; `cv_train` training and `cv_test` test
samples. Three ReLU MLPs (width `cv_width`) from the same init and batches: the CE baseline, and CVIB's original and
self-pruned networks trained together as in the official trainer (original: CE + `cv_scl` * SCL(pruned.detach,
original); self-pruned: `nn.VIBMask` on the inputs, CE + `cv_kl` * KL + `cv_scl` * SCL(pruned, original.detach);
SCL = `self_pruning_contrastive_loss`, temperature `cv_temperature` = the official 0.1; adam). The self-pruned
network is evaluated with the official pruned mask.

Claims (tolerances fixed before the first run):
  1. [89] memory(node-level) / memory(PamC) at N = 4 n0 >= 5 (paper: over 5x GPU memory reduction, abstract and
     Sec. 5);
  2. [89] PamC's memory grows linearly: log-log slope over N <= 1.2, while the node-level loss's is >= 1.8 (paper:
     linear vs quadratic complexity, Sec. 3);
  3. [89] time(node-level) / time(PamC) of one value-and-gradient at N = 4 n0 >= 1.5 (paper: up to 3x training time;
     1.5 leaves room for the shared CPU's timing noise).
  4. [173] ADC-GAN's per-class std of the generated x coordinate, mean over classes and seeds, within 0.1 of the true
     1 (paper: ADC-GAN learns the joint distribution, Sec. 5.1, Fig. 2);
  5. [173] ADC-GAN minus AC-GAN per-class std of x, paired over the `gan_seeds` seeds: lower end of the 95%
     t-interval > 0 (until 2026-12-03: mean >= 2 standard errors over 3 seeds) (paper: AC-GAN's generator-agnostic
     classifier lowers intra-class diversity, Sec. 3.1);
  6. [34] every mixed image equals the brute force (fraction 1.0);
  7. [34] max |label weight - area fraction| and |sum of weights - 1| <= 1e-6 (float32).
  8. [51] >= 99% of the label-dense samples end with beta > 0.9 and >= 99% of the label-sparse ones with beta < 0.1;
  9. [51] the float32 iterates follow the official step: max |difference| <= 1e-5.
  10. [11] CVIB's self-pruned network minus CE, test accuracy paired over seeds: mean >= 2 standard errors.
  sanity: the two PamC losses agree at k = N on the largest graph (relative difference <= 1e-5, float32); AC-GAN's
  class-0 samples cross the class boundary less often than the data do (fraction minus the true 0.227 <= 0).

What we measured ([89], cpu preset, 14 s wall on the shared, loaded 2-core machine): all pass. Memory (MiB) at
N = 512 / 1024 / 2048: PamC 1.9 / 3.9 / 7.8, node-level 3.1 / 12.2 / 48.3 (ratio 6.2 at 2048; slopes 1.03 vs 1.99);
time ratio at 2048: 34x (2.3 ms vs 77 ms; timings of a loaded machine); k = N vs node-level: 1.7e-7.

[173] (cpu preset, same run; 164 s wall for the whole module on the overloaded machine, load average 16): ADC-GAN's
per-class std of x 1.07 / 0.99 / 1.05 per seed (|mean - 1| = 0.036: passes); AC-GAN's 0.63 / 0.96 / 0.73, and
AC-GAN's class-0 samples beyond x = 0: 0.0 / 0.0 / 0.0 vs 0.227 in the data (they avoid the overlap, as the paper
says); the paired difference is 2.11 standard errors (passes, narrowly: seed 1's AC-GAN kept its spread).

[34] and [51] (cpu preset, measured alone): SMMix exact fraction 1.0 (all 8 window sizes x 32 images), label error
2.8e-8; AdaWAC 100% / 100% of the samples on the larger loss's side, max deviation from the official step 8.8e-7
(under the descent mutation 0% / 0%).

[11] (cpu preset): FAILS and stays failing. Test accuracy CE 0.712 / 0.703 / 0.696, CVIB self-pruned 0.720 / 0.693 /
0.703, CVIB original 0.721 / 0.692 / 0.708 (paired difference 0.29 standard errors); the learnt evaluation mask
keeps the spurious dim (|mu| 0.67-0.75) as much as the core dims (0.69-0.72): the VIB bound prunes uninformative
features, and the spurious feature is informative in training (90%). Tried (measured alone, same seeds; the preset
keeps cv_kl = 0.01, fixed before the first run): cv_kl = 0.1 shrinks every mask mean to ~0.06 alike (pruned 0.714 /
0.695 / 0.698, original 0.727 / 0.711 / 0.703); cv_kl = 1 prunes every feature (pruned at chance, 0.50-0.52). The
paper's gain is on ABSA text models with BERT/RGAT encoders, not reproduced here.

Whole module, cpu preset: 14/15 claims pass (the [11] claim fails), 220 s wall on the shared 2-core machine at load
average ~17 (the parts measured alone: PamC ~14 s, GAN ~126 s, SMMix ~17 s, AdaWAC ~1 s, CVIB ~42 s, all at that
load).

`pytest -m slow tests/runner/test_seed_parallel.py -k losses_wave2_p4` at TINY (2 simulated devices) passes; earlier:
the GAN numbers bitwise equal, CVIB's within 1e-7, SMMix / AdaWAC identical; PamC's wall times differ run to run (they
are named *_seconds, so the seed-parallel test skips them). At an earlier TINY size (pamc_n0 = 64) the timing claim's
verdict flipped between runs (ratios 0.5x / 1.2x: noise at N <= 256), and with one timing per program at pamc_n0 = 256
it flipped once in the seed-parallel test (tests/runner/test_seed_parallel.py, under a load average of ~20); TINY now
uses pamc_n0 = 256 and the best of 5.

Sharding: `mesh` splits the vmapped seeds of the GAN arms and of the CVIB networks (`shard_leading`); the [89]
part compiles and times one graph per N on the default device; the [34] and [51] checks run once.
Claims audit (2026-12-03, before the rerun that recorded it; no tolerance or setting changed): rows that hold by
construction of our code are sanity rows, not paper claims. [89] compiled memory ratio and slope: `memory_analysis`
is a function of the array shapes (the dense N x N adjacency against O(E + N k)), so the ratio is set by the N we
chose (1.6, 3.1, 6.2 at N = 512, 1024, 2048) and the slope is our code's complexity; [89] keeps the wall-time claim
(a real timing, but of the loss alone, 34x against 1.5: weak). [34] both rows compare our SMMix with our own NumPy
brute force and the closed form lam = 1 - w^2 / s^2: unit tests, not the paper's claims (its abstract's claims need
a trained model). [51] the beta split follows from the sign of the synthetic loss gap fixed by the config, and the
iterates vs the official step is a unit test. So [89] has one paper claim and [34], [51] none; the two mutations
that broke only [34]'s and [51]'s rows are no longer declared. [173] keeps its two (the per-class std within 0.1 of
1 is sound; the ADC - AC difference in standard errors at 3 seeds is below a 95% bound: weak) but has no mutation.
[173] PRE-REGISTERED 2026-12-03, before any run at the preset settings on these seeds: the GAN part gets seeds of its
own, `gan_seeds` = 8 from a fresh key stream (split(fold_in(key(seed), 1730), 8); the old stream's seeds 0-2 gave
the numbers above), and claim 5 becomes a 95% interval: ADC-GAN minus AC-GAN per-class std of x (mean over the two
classes), paired over the 8 seeds, lower end of the Student-t interval > 0. Claim 4 unchanged (|mean std - 1| <= 0.1
over classes and the 8 seeds). Everything else as the cpu preset. Mutation `b_adc_is_ac` (gan_classifier=ac: the
method arm trained as AC-GAN) must fail them. Judged by ONE run of the cpu preset, recorded whatever it shows; a
development run on the old stream (8 seeds, preset settings, made while sizing the part: 47 s) gave ADC 0.95-1.09
and AC 0.47-0.85 per seed.
JUDGED RUN (2026-12-03, `python -m experiments run losses_wave2_p4`, 64 s wall for the module on the 2-core machine,
14/15 claims, the failing one [11]'s as before): both [173] claims pass. ADC-GAN per-class std of x per seed 0.88 /
0.98 / 0.94 / 0.99 / 0.99 / 0.97 / 1.09 / 0.98 (|mean - 1| = 0.024), AC-GAN 0.86 / 0.53 / 0.44 / 0.62 / 0.70 / 0.59 /
0.73 / 0.65; ADC - AC 0.336 [0.214, 0.457]. Mass beyond the class boundary (the data: 0.227): ADC 0.18-0.26, AC
0.000-0.006 on every seed (AC-GAN's samples avoid the overlap, the paper's Fig. 2).
Timing (2026-12-03): in a fresh-clone CI run the [89] mutation test failed once: under `pamc_arm=node` (two near-equal
programs, ratio 0.8-0.9 measured alone) the wall-time ratio reached the 1.5 threshold while the other test worker
loaded the machine. The two programs are now timed interleaved within each repeat (`_best_times`), TINY takes the
best of 9; the preset rerun and recorded with it: the same 14/15, PamC 21x faster (measured beside another job; 34x
alone before), the GAN numbers unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import time
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import _seed_stats as st_seed
from experiments._ssl_toys import mlp_apply, mlp_init
from flax import nnx

from jaxlib_methods import data, losses, nn
from jaxlib_methods.runner import (Claim, MeshConfig, MetricsLog, Paper, make_mesh, minimize, save_figure,
                                   shard_leading, sweep)
from jaxlib_methods.runner.constraints import NonNegativeFloat, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=89, title="Efficient block contrastive learning via parameter-free meta-node approximation",
              year=2022, arxiv="2209.14067")
ALSO_REPRODUCES = (Paper(catalog_id=173, title="Conditional GANs with Auxiliary Discriminative Classifier",
                         year=2022, arxiv="2107.10060"),
                   Paper(catalog_id=34, title="SMMix: Self-Motivated Image Mixing for Vision Transformers", year=2023,
                         arxiv="2212.12977"),
                   Paper(catalog_id=51, title="Adaptively Weighted Data Augmentation Consistency Regularization for "
                         "Robust Optimization under Concept Shift", year=2023, arxiv="2210.01891"),
                   Paper(catalog_id=11, title="Reducing Spurious Correlations for Aspect-Based Sentiment Analysis "
                         "with Variational Information Bottleneck and Contrastive Learning", year=2023,
                         arxiv="2303.02846"))
DEMO = False


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=2)] = 3
  # [89] PamC: compiled memory and time vs N on an SBM graph
  pamc_n0: Annotated[int, Range(ge=16)] = 512
  pamc_k: Annotated[int, Range(ge=2)] = 8
  pamc_dim: PositiveInt = 32
  pamc_degree: Annotated[int, Range(ge=2)] = 8
  pamc_repeats: PositiveInt = 5
  pamc_arm: Literal["meta", "node"] = "meta"
  # [173] ADC-GAN vs AC-GAN on 2-D overlapping class-conditional Gaussians
  gan_sep: PositiveFloat = 0.75
  gan_width: PositiveInt = 64
  gan_steps: PositiveInt = 3000
  gan_batch: Annotated[int, Range(ge=8)] = 256
  gan_lr: PositiveFloat = 1e-3
  gan_lambda: NonNegativeFloat = 1.0
  gan_eval: Annotated[int, Range(ge=100)] = 4000
  gan_classifier: Literal["adc", "ac"] = "adc"
  gan_seeds: Annotated[int, Range(ge=2, le=64)] = 8                # the GAN part's own seeds (key stream 1730)
  # [34] SMMix region mixing and labels, checked against a NumPy brute force
  sm_images: Annotated[int, Range(ge=2)] = 32
  sm_side: Annotated[int, Range(ge=4)] = 14
  sm_patch: PositiveInt = 4
  sm_attention: Literal["model", "inverted"] = "model"
  # [51] AdaWAC's weight player on noisy synthetic per-sample losses
  aw_samples: Annotated[int, Range(ge=4)] = 1000
  aw_steps: PositiveInt = 300
  aw_eta: PositiveFloat = 0.5
  aw_noise: NonNegativeFloat = 0.3
  aw_player: Literal["ascent", "descent"] = "ascent"
  # [11] CVIB vs CE on a spurious-feature toy
  cv_train: Annotated[int, Range(ge=16)] = 2000
  cv_test: Annotated[int, Range(ge=16)] = 2000
  cv_core: PositiveFloat = 0.7
  cv_agree_train: Annotated[float, Range(ge=0.5, le=1)] = 0.9
  cv_noise_dims: PositiveInt = 5
  cv_width: PositiveInt = 32
  cv_steps: PositiveInt = 1500
  cv_batch: Annotated[int, Range(ge=8)] = 128
  cv_lr: PositiveFloat = 3e-3
  cv_kl: NonNegativeFloat = 0.01
  cv_scl: NonNegativeFloat = 0.5
  cv_temperature: PositiveFloat = 0.1
  mesh: MeshConfig = MeshConfig()   # devices the vmapped seeds of the training parts are split over


PRESETS = {"cpu": Config(), "gpu": Config(pamc_n0=4096), "tpu": Config(pamc_n0=4096)}
TINY = ("cv_steps=50", "cv_train=256", "cv_test=256", "cv_width=8", "aw_samples=100", "aw_steps=100",
        "sm_images=8", "sm_side=6", "pamc_n0=256", "pamc_repeats=9", "seeds=2", "gan_seeds=4", "gan_steps=2000",
        "gan_batch=128", "gan_eval=500")
MUTATION_TEST_SLOW = True  # the TINY run compiles ~20 programs (PamC's 12, two GANs, CVIB, SMMix): >> 2 s of CPU
MUTATIONS = {"a_node_level_negatives": ("pamc_arm=node",), "b_adc_is_ac": ("gan_classifier=ac",)}
MUTATION_PAPERS = {"a_node_level_negatives": 89, "b_adc_is_ac": 173}
# (`sm_attention=inverted` [34] and `aw_player=descent` [51] break only rows that the claims audit made sanity rows:
# no longer declared mutations, still runnable as --set overrides)
# (`b_adc_is_ac` trains the method arm as AC-GAN: [173]'s claims 4-5 must fail. TINY trains the GAN for 2000 steps at
# width 64, batch 128 on 4 seeds (a multiple of 2 for the 2-device seed-parallel test) since 2026-12-03 (at 100 steps
# it did not converge and no [173] claim passed there): unmutated |std - 1| 0.033, ADC - AC 0.441 [0.256, 0.625];
# mutated 0.407 and [0, 0]; ~15 s per GAN run)
# (no mutation for [11]: its claim fails for the method itself, see the module docstring)


# ---------------------------------------------------------------------------------------------------------------
# [89] PamC
# ---------------------------------------------------------------------------------------------------------------

def sbm_graph(rng: np.random.Generator, n: int, k: int, degree: int, p_in: float = 0.9):
  """Edges [E, 2] (both directions, plus self-loops) of an SBM with k equal blocks and mean degree `degree`."""
  labels = np.arange(n) % k
  m = n * degree // 2
  src = rng.integers(0, n, size=m)
  inside = rng.random(m) < p_in
  same = labels[src] + k * rng.integers(0, n // k, size=m)              # a node of the same block
  other = rng.integers(0, n, size=m)
  dst = np.where(inside, np.minimum(same, n - 1), other)
  e = np.concatenate([np.stack([src, dst], 1), np.stack([dst, src], 1), np.stack([np.arange(n)] * 2, 1)])
  return np.unique(e, axis=0).astype(np.int32), labels


def _memory(compiled) -> int:
  m = compiled.memory_analysis()
  return int(m.temp_size_in_bytes + m.argument_size_in_bytes)


def _best_times(calls, repeats: int) -> list:
  """Best wall time (s) of each (compiled fn, args) in `calls`, the calls interleaved within every repeat, so that
  load from other processes on a shared machine falls on all of them alike (timed one after the other, a burst of
  load during one program's repeats once made two near-equal programs look 1.5x apart)."""
  for fn, args in calls:
    jax.block_until_ready(fn(*args))
  best = [float("inf")] * len(calls)
  for _ in range(repeats):
    for i, (fn, args) in enumerate(calls):
      t0 = time.perf_counter()
      jax.block_until_ready(fn(*args))
      best[i] = min(best[i], time.perf_counter() - t0)
  return best


def pamc_costs(config: Config) -> dict:
  """Compiled memory (bytes) and best wall time (s) of value_and_grad of PamC and of the node-level loss vs N."""
  rng = np.random.default_rng(config.seed)
  out = {"N": [], "pamc_mem": [], "node_mem": [], "pamc_seconds": [], "node_seconds": [], "max_rel_diff": 0.0}
  for n in (config.pamc_n0, 2 * config.pamc_n0, 4 * config.pamc_n0):
    edges, labels = sbm_graph(rng, n, config.pamc_k, config.pamc_degree)
    z = jnp.asarray(rng.normal(size=(n, config.pamc_dim)), jnp.float32)
    c = np.eye(n, dtype=np.float32) if config.pamc_arm == "node" else np.eye(config.pamc_k, dtype=np.float32)[labels]
    adj = np.zeros((n, n), np.float32)
    adj[edges[:, 0], edges[:, 1]] = 1.0
    pamc = jax.jit(jax.value_and_grad(lambda z_, e_, c_: losses.pamc_loss(z_, e_, c_)))
    node = jax.jit(jax.value_and_grad(lambda z_, a_: losses.graph_ncontrast_loss(z_, a_).mean()))
    pamc_args, node_args = (z, jnp.asarray(edges), jnp.asarray(c)), (z, jnp.asarray(adj))
    pamc_c, node_c = pamc.lower(*pamc_args).compile(), node.lower(*node_args).compile()   # compiled once, timed
    out["N"].append(n)
    out["pamc_mem"].append(_memory(pamc_c))
    out["node_mem"].append(_memory(node_c))
    t_pamc, t_node = _best_times([(pamc_c, pamc_args), (node_c, node_args)], config.pamc_repeats)
    out["pamc_seconds"].append(t_pamc)
    out["node_seconds"].append(t_node)
  # the exact special case on the largest graph: k = N meta-nodes (C = I) is the node-level loss
  same = float(jax.jit(losses.pamc_loss)(z, jnp.asarray(edges), jnp.eye(n, dtype=jnp.float32)))
  ref = float(node_c(*node_args)[0])
  out["max_rel_diff"] = abs(same - ref) / abs(ref)
  return out


def _slope(x, y) -> float:
  return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


# ---------------------------------------------------------------------------------------------------------------
# [173] ADC-GAN vs AC-GAN
# ---------------------------------------------------------------------------------------------------------------

GAN_CLASSES = 2


def _gan_real(config: Config, key, n):
  """Class y in {0, 1} with mean (-+sep, 0) and identity covariance: the classes overlap around x = 0."""
  ky, kx = jax.random.split(key)
  y = jax.random.randint(ky, (n,), 0, GAN_CLASSES)
  mean = jnp.stack([(2.0 * y - 1.0) * config.gan_sep, jnp.zeros(n)], axis=1)
  return mean + jax.random.normal(kx, (n, 2)), y


def _gan_generate(g, key, y):
  z = jax.random.normal(key, (y.shape[0], 2))
  return mlp_apply(g, jnp.concatenate([z, jax.nn.one_hot(y, GAN_CLASSES)], axis=1))


def _gan_disc(d, x):
  """Shared trunk; head 0 the adversarial logit, the rest the classifier (2K for ADC, K for AC)."""
  out = mlp_apply(d, x)
  return out[:, 0], out[:, 1:]


def _gan_train(config: Config, key, classifier: str):
  """One seed: a non-saturating conditional GAN + lambda * the arm's classifier losses; per-class std (x and y
  coordinates) and the fraction of class-0 samples beyond the class boundary x > 0, generated vs true."""
  kg, kd, kt, ke = jax.random.split(key, 4)
  n_cls = 2 * GAN_CLASSES if classifier == "adc" else GAN_CLASSES
  w = config.gan_width
  params = {"g": mlp_init(kg, [2 + GAN_CLASSES, w, w, 2]), "d": mlp_init(kd, [2, w, w, 1 + n_cls])}
  opt = optax.adam(config.gan_lr, b1=0.5)
  lam = config.gan_lambda

  def d_loss(d, g, k):
    kr, ky, kz = jax.random.split(k, 3)
    x, y = _gan_real(config, kr, config.gan_batch)
    yg = jax.random.randint(ky, (config.gan_batch,), 0, GAN_CLASSES)
    xf = jax.lax.stop_gradient(_gan_generate(g, kz, yg))
    adv_r, cls_r = _gan_disc(d, x)
    adv_f, cls_f = _gan_disc(d, xf)
    adv = jax.nn.softplus(-adv_r).mean() + jax.nn.softplus(adv_f).mean()
    if classifier == "adc":
      aux = (losses.adc_discriminator_loss(cls_r, y, real=True).mean()
             + losses.adc_discriminator_loss(cls_f, yg, real=False).mean())
    else:   # AC-GAN (official 'acgan'): the classifier learns the real data's labels only
      aux = losses.softmax_cross_entropy_with_integer_labels(cls_r, y).mean()
    return adv + lam * aux

  def g_loss(g, d, k):
    ky, kz = jax.random.split(k)
    yg = jax.random.randint(ky, (config.gan_batch,), 0, GAN_CLASSES)
    adv_f, cls_f = _gan_disc(d, _gan_generate(g, kz, yg))
    if classifier == "adc":
      aux = losses.adc_generator_loss(cls_f, yg).mean()
    else:
      aux = losses.softmax_cross_entropy_with_integer_labels(cls_f, yg).mean()
    return jax.nn.softplus(-adv_f).mean() + lam * aux

  def step(carry, k):
    p, sd, sg = carry
    k1, k2 = jax.random.split(k)
    gd = jax.grad(d_loss)(p["d"], p["g"], k1)
    ud, sd = opt.update(gd, sd, p["d"])
    d = optax.apply_updates(p["d"], ud)
    gg = jax.grad(g_loss)(p["g"], d, k2)
    ug, sg = opt.update(gg, sg, p["g"])
    return ({"g": optax.apply_updates(p["g"], ug), "d": d}, sd, sg), None

  carry = (params, opt.init(params["d"]), opt.init(params["g"]))
  (params, _, _), _ = jax.lax.scan(step, carry, jax.random.split(kt, config.gan_steps))
  stats = []
  for c in range(GAN_CLASSES):
    xg = _gan_generate(params["g"], jax.random.fold_in(ke, c), jnp.full((config.gan_eval,), c))
    beyond = jnp.mean((xg[:, 0] > 0) if c == 0 else (xg[:, 0] < 0))
    stats.append(jnp.concatenate([jnp.std(xg, axis=0), beyond[None]]))
  return jnp.stack(stats)          # [classes, 3]: std x, std y, fraction beyond the boundary


def gan_runs(config: Config, keys) -> dict:
  """Both arms from the same seeds: the method arm (`gan_classifier`, ADC unless mutated) and AC-GAN."""
  out = {}
  for arm, classifier in (("method", config.gan_classifier), ("acgan", "ac")):
    r = np.asarray(jax.device_get(jax.jit(jax.vmap(lambda k: _gan_train(config, k, classifier)))(keys)))
    out[arm] = {"classifier": classifier, "std_x": r[:, :, 0].tolist(), "std_y": r[:, :, 1].tolist(),
                "beyond": r[:, :, 2].tolist()}
  from scipy.stats import norm
  out["true_beyond"] = float(norm.cdf(-config.gan_sep))
  return out


# ---------------------------------------------------------------------------------------------------------------
# [34] SMMix
# ---------------------------------------------------------------------------------------------------------------

def _np_window_argext(a: np.ndarray, w: int):
  """First (row-major) argmin and argmax over every w x w window's sum, by loops."""
  s = a.shape[0]
  sums = np.array([[a[r:r + w, c:c + w].sum() for c in range(s - w + 1)] for r in range(s - w + 1)])
  return divmod(int(np.argmin(sums)), s - w + 1), divmod(int(np.argmax(sums)), s - w + 1)


def smmix_checks(config: Config) -> dict:
  """`data.smmix` on random images with a peaked attention map, every official window size w in [S/4, 3S/4],
  checked against a NumPy brute force: the fraction of mixed images holding exactly the partner's max-attention
  window at their own min-attention window (the rest untouched), and the largest |label weight - area fraction|."""
  rng = np.random.default_rng(config.seed + 34)
  b, s, p = config.sm_images, config.sm_side, config.sm_patch
  x = rng.normal(size=(b, s * p, s * p, 3)).astype(np.float32)
  attn = rng.dirichlet(np.full(s * s, 0.3), size=b).reshape(b, s, s).astype(np.float32)
  seen = attn.max(axis=(1, 2), keepdims=True) - attn if config.sm_attention == "inverted" else attn
  y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, size=b)]
  partner = np.arange(b)[::-1].copy()
  exact, label_err, windows = [], 0.0, list(range(max(1, int(s * 0.25)), int(s * 0.75) + 1))
  for w in windows:
    xm, ym, mask = (np.asarray(a) for a in data.smmix(x, y, seen, partner=partner, window=w))
    for i in range(b):
      (rt, ct), _ = _np_window_argext(attn[i], w)
      _, (rs, cs) = _np_window_argext(attn[partner[i]], w)
      ref = x[i].copy()
      ref[rt * p:(rt + w) * p, ct * p:(ct + w) * p] = x[partner[i], rs * p:(rs + w) * p, cs * p:(cs + w) * p]
      exact.append(bool(np.array_equal(xm[i], ref)))
    frac = mask.reshape(b, -1).mean(1)
    label_err = max(label_err, float(np.max(np.abs(ym - ((1 - frac)[:, None] * y + frac[:, None] * y[partner])))),
                    float(np.max(np.abs(ym.sum(1) - 1))))
  return {"exact_fraction": float(np.mean(exact)), "label_error": label_err, "windows": windows}


# ---------------------------------------------------------------------------------------------------------------
# [51] AdaWAC
# ---------------------------------------------------------------------------------------------------------------

def adawac_checks(config: Config) -> dict:
  """The weight player alone on synthetic per-sample losses: half the samples label-dense (supervised loss ~ U(0.5,
  1.5) > consistency ~ U(0.15, 0.4)), half label-sparse (supervised ~ U(0, 0.1)); each step adds N(0, noise^2) to
  every loss (minibatch noise). From beta = 1/2, `aw_steps` `adawac_weight_update` steps (eta negated for the
  'descent' mutation), each compared with the official float64 step (L1-normalised exponentiated weights)."""
  rng = np.random.default_rng(config.seed + 51)
  n = config.aw_samples
  dense = np.arange(n) < n // 2
  sup = np.where(dense, rng.uniform(0.5, 1.5, n), rng.uniform(0.0, 0.1, n))
  cons = rng.uniform(0.15, 0.4, n)
  eta = config.aw_eta if config.aw_player == "ascent" else -config.aw_eta
  noise = rng.normal(size=(config.aw_steps, 2, n)) * config.aw_noise
  step = jax.jit(lambda b, s, c: losses.adawac_weight_update(b, s, c, learning_rate=abs(eta)))
  beta = np.full(n, 0.5, np.float32)
  ref = np.full(n, 0.5)
  max_dev, lo, hi = 0.0, 1.0, 0.0
  for t in range(config.aw_steps):
    s_t, c_t = (sup + noise[t, 0]).astype(np.float32), (cons + noise[t, 1]).astype(np.float32)
    sign = 1.0 if eta >= 0 else -1.0          # descent: the min player's step (swap the losses' roles)
    beta = np.asarray(step(beta, sign * s_t, sign * c_t))
    w = np.stack([ref, 1 - ref], 1)
    w[:, 0] *= np.exp(eta * (s_t.astype(np.float64) - c_t))
    ref = (w / w.sum(1, keepdims=True))[:, 0]
    max_dev = max(max_dev, float(np.max(np.abs(beta - ref))))
    lo, hi = min(lo, float(beta.min())), max(hi, float(beta.max()))
  return {"dense_to_supervised": float(np.mean(beta[dense] > 0.9)),
          "sparse_to_consistency": float(np.mean(beta[~dense] < 0.1)),
          "max_dev_official": max_dev, "beta_range": [lo, hi],
          "beta_dense_mean": float(beta[dense].mean()), "beta_sparse_mean": float(beta[~dense].mean())}


# ---------------------------------------------------------------------------------------------------------------
# [11] CVIB
# ---------------------------------------------------------------------------------------------------------------

def _cv_data(config: Config, key, n, agree):
  """Label y; 2 core dims y' mu_c + N(0, 1) (y' = 2y - 1); 1 spurious dim that equals y' with probability `agree`
  (else -y'), + N(0, 0.1^2); `cv_noise_dims` N(0, 1) dims."""
  ky, kc, ka, ks, kn = jax.random.split(key, 5)
  y = jax.random.randint(ky, (n,), 0, 2)
  s = 2.0 * y - 1.0
  core = s[:, None] * config.cv_core + jax.random.normal(kc, (n, 2))
  spur = jnp.where(jax.random.uniform(ka, (n,)) < agree, s, -s)[:, None] + 0.1 * jax.random.normal(ks, (n, 1))
  return jnp.concatenate([core, spur, jax.random.normal(kn, (n, config.cv_noise_dims))], 1), y


def _cv_net(p, x):
  """MLP features (2 ReLU layers) and linear logits."""
  h = jax.nn.relu(x @ p[0]["w"] + p[0]["b"])
  f = jax.nn.relu(h @ p[1]["w"] + p[1]["b"])
  return f, f @ p[2]["w"] + p[2]["b"]


def _cv_train(config: Config, key):
  """One seed: the CE baseline, and CVIB's original + self-pruned networks trained together as the official
  trainer does (original: CE + scl * SCL(pruned.detach, original); pruned: VIBMask on the input features, CE +
  kl * KL + scl * SCL(pruned, original.detach)). Same init, batches and data for both arms."""
  kd, ki, kt, km = jax.random.split(key, 4)
  d = 3 + config.cv_noise_dims
  x_tr, y_tr = _cv_data(config, jax.random.fold_in(kd, 0), config.cv_train, config.cv_agree_train)
  x_te, y_te = _cv_data(config, jax.random.fold_in(kd, 1), config.cv_test, 0.5)
  sizes = [d, config.cv_width, config.cv_width, 2]
  init = mlp_init(ki, sizes)
  # CVIB's init; only the mask's Params (mu, log_sigma2) are trained: its boolean `keep` buffer stays a constant
  mgraph, mstate, mrest = nnx.split(nn.VIBMask(d, init_std=0.01, threshold=0.0, rngs=nnx.Rngs(km)), nnx.Param, ...)
  params = {"ce": init, "main": init, "sub": init, "mask": mstate}
  opt = optax.adam(config.cv_lr)
  ce = losses.softmax_cross_entropy_with_integer_labels

  def loss_fn(p, k):
    kb, kz = jax.random.split(k)
    idx = jax.random.randint(kb, (config.cv_batch,), 0, config.cv_train)
    x, y = x_tr[idx], y_tr[idx]
    base = ce(_cv_net(p["ce"], x)[1], y).mean()
    f_main, z_main = _cv_net(p["main"], x)
    mask = nnx.merge(mgraph, p["mask"], mrest)
    f_sub, z_sub = _cv_net(p["sub"], mask(x, key=kz, per_example=True))
    scl = functools.partial(losses.self_pruning_contrastive_loss, temperature=config.cv_temperature)
    main = ce(z_main, y).mean() + config.cv_scl * scl(jax.lax.stop_gradient(f_sub), f_main).mean()
    sub = (ce(z_sub, y).mean() + config.cv_kl * nn.vib_mask_kl(mask.mu[...], mask.log_sigma2[...])
           + config.cv_scl * scl(f_sub, jax.lax.stop_gradient(f_main)).mean())
    return base + main + sub

  params, _ = minimize(loss_fn, params, opt, jax.random.split(kt, config.cv_steps))
  mask = nnx.merge(mgraph, params["mask"], mrest)
  acc = lambda z, y: jnp.mean(jnp.argmax(z, -1) == y)
  return jnp.stack([acc(_cv_net(params["ce"], x_te)[1], y_te), acc(_cv_net(params["main"], x_te)[1], y_te),
                    acc(_cv_net(params["sub"], mask(x_te))[1], y_te),
                    acc(_cv_net(params["ce"], x_tr)[1], y_tr), jnp.abs(mask.mask()[2]),
                    jnp.mean(jnp.abs(mask.mask()[:2]))])


def cvib_runs(config: Config, keys) -> dict:
  r = np.asarray(jax.device_get(jax.jit(jax.vmap(lambda k: _cv_train(config, k)))(keys)))
  names = ("ce_test", "main_test", "pruned_test", "ce_train", "mask_spurious", "mask_core")
  return {n: r[:, i].tolist() for i, n in enumerate(names)}


# ---------------------------------------------------------------------------------------------------------------
# run / claims / figure
# ---------------------------------------------------------------------------------------------------------------

def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  pamc = sweep.memoized(workdir, {"part": "pamc"}, lambda: pamc_costs(config))
  mesh = make_mesh(config.mesh)
  keys = shard_leading(jax.random.split(jax.random.key(config.seed), config.seeds), mesh, what="seed")
  # [173] its own seeds (pre-registered 2026-12-03: a fresh key stream, none of them seen before the judged run)
  gan_keys = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), 1730), config.gan_seeds)
  gan_keys = shard_leading(gan_keys, mesh, what="seed")
  gan = sweep.memoized(workdir, {"part": "gan"}, lambda: gan_runs(config, gan_keys))
  sm = sweep.memoized(workdir, {"part": "smmix"}, lambda: smmix_checks(config))
  aw = sweep.memoized(workdir, {"part": "adawac"}, lambda: adawac_checks(config))
  cv = sweep.memoized(workdir, {"part": "cvib"}, lambda: cvib_runs(config, keys))
  for i, n in enumerate(pamc["N"]):
    log.log(i, N=n, pamc_mem=pamc["pamc_mem"][i], node_mem=pamc["node_mem"][i], pamc_time=pamc["pamc_seconds"][i],
            node_time=pamc["node_seconds"][i])
  for s in range(config.gan_seeds):
    log.log(s, adc_std_x=float(np.mean(gan["method"]["std_x"][s])),
            acgan_std_x=float(np.mean(gan["acgan"]["std_x"][s])))
  out = {"pamc": pamc, "gan": gan, "smmix": sm, "adawac": aw, "cvib": cv}
  _figure(out, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  pc, gan = results["pamc"], results["gan"]
  m_std = np.mean(gan["method"]["std_x"], axis=1)          # per seed, mean over classes (the true std is 1)
  ac_std = np.mean(gan["acgan"]["std_x"], axis=1)
  gap = st_seed.paired_ci(m_std, ac_std)                    # claim 5: paired 95% t-interval over gan_seeds
  return [
      Claim.at_least("PamC: compiled memory (arguments + temporaries) of the node-level loss / PamC's, value and "
                     "gradient at the largest N", pc["node_mem"][-1] / pc["pamc_mem"][-1], 5.0,
                     paper="over 5x GPU memory reduction", kind="sanity"),
      Claim.at_most("PamC: log-log slope of its compiled memory over N (linear)", _slope(pc["N"], pc["pamc_mem"]), 1.2,
                    paper="linear in N (O(nk + k^2))", kind="sanity"),
      Claim.at_least("PamC: log-log slope of the node-level loss's compiled memory over N (quadratic)",
                     _slope(pc["N"], pc["node_mem"]), 1.8, paper="quadratic in N", kind="sanity"),
      Claim.at_least("PamC: wall time of one value-and-gradient, node-level / PamC, at the largest N (best of "
                     "repeats)", pc["node_seconds"][-1] / pc["pamc_seconds"][-1], 1.5,
                     paper="up to 3x faster training", kind="paper", where="Abstract, Sec. 5 [89]"),
      Claim.at_most("PamC with k = N meta-nodes vs the node-level loss, relative difference (float32)",
                    pc["max_rel_diff"], 1e-5, kind="sanity"),
      Claim.at_most("ADC-GAN (the method arm): |per-class std of the generated x coordinate - the true 1|, mean over "
                    "classes and seeds", abs(float(m_std.mean()) - 1.0), 0.1,
                    paper="ADC-GAN learns the joint distribution (intra-class diversity kept)", kind="paper",
                    where="Sec. 5.1, Fig. 2 (overlapping 1-D mixtures) [173]"),
      Claim.at_least("ADC-GAN minus AC-GAN per-class std of the generated x coordinate (mean over classes), paired "
                     f"over seeds: lower end of the 95% t-interval ({st_seed.fmt_ci(gap)})", gap["lo"], 1e-9,
                     paper="AC-GAN lowers intra-class diversity (samples avoid the classes' overlap)", kind="paper",
                     where="Sec. 3.1 and Sec. 5.1, Fig. 2 [173]"),
      Claim.at_least("SMMix: fraction of mixed images holding exactly the partner's max-attention window at their own "
                     "min-attention window (NumPy brute force, every window size)",
                     results["smmix"]["exact_fraction"], 1.0, paper="max-min attention region mixing", kind="sanity"),
      Claim.at_most("SMMix: largest |mixed label weight - mixed area fraction| (and |sum of weights - 1|)",
                    results["smmix"]["label_error"], 1e-6, paper="the mixed label is the area ratio", kind="sanity"),
      Claim.at_least("AdaWAC: fraction of samples sent to the larger of their two losses by the weight player "
                     "(label-dense: beta > 0.9; label-sparse: beta < 0.1), the smaller of the two fractions",
                     min(results["adawac"]["dense_to_supervised"], results["adawac"]["sparse_to_consistency"]), 0.99,
                     paper="at the saddle point label-dense samples go to the supervised loss, label-sparse ones to "
                     "the consistency regulariser", kind="sanity"),
      Claim.at_most("AdaWAC: weight iterates vs the official L1-normalised exponentiated-gradient step (float64), max "
                    "|difference| over samples and steps", results["adawac"]["max_dev_official"], 1e-5,
                    paper="online mirror descent on the simplex", kind="sanity"),
      Claim.at_least("CVIB's self-pruned network minus the CE baseline: test accuracy where the spurious feature "
                     "agrees with the label half the time (90% in training), mean over seeds in standard errors of the "
                     "paired difference", st_seed.paired_z(results["cvib"]["pruned_test"], results["cvib"]["ce_test"]),
                     2.0, paper="CVIB reduces spurious correlations: better robustness and generalization than CE",
                     kind="paper", where="Sec. 4, Tables 2-5 (robustness, generalization) [11]"),
      Claim.at_least("CVIB: the CE baseline fits its training set (accuracy, min over seeds)",
                     min(results["cvib"]["ce_train"]), 0.9, kind="sanity"),
      Claim.holds("AdaWAC: weights stay in [0, 1] (on the simplex)",
                  bool(0 <= results["adawac"]["beta_range"][0] and results["adawac"]["beta_range"][1] <= 1),
                  kind="sanity"),
      Claim.at_most("AC-GAN: fraction of class-0 samples beyond the class boundary (x > 0) minus the true "
                    "fraction, mean over seeds", float(np.mean(np.asarray(gan["acgan"]["beyond"])[:, 0]))
                    - gan["true_beyond"], 0.0, kind="sanity"),
  ]


def _figure(out, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
  pc = out["pamc"]
  axes[0].loglog(pc["N"], np.asarray(pc["pamc_mem"]) / 2**20, "o-", label="PamC (meta-nodes)")
  axes[0].loglog(pc["N"], np.asarray(pc["node_mem"]) / 2**20, "s-", label="node-level (all pairs)")
  axes[0].set_xlabel("nodes N")
  axes[0].set_ylabel("compiled memory of value+grad (MiB)")
  axes[0].set_title("[89] PamC memory")
  axes[0].legend()
  axes[1].loglog(pc["N"], pc["pamc_seconds"], "o-", label="PamC")
  axes[1].loglog(pc["N"], pc["node_seconds"], "s-", label="node-level")
  axes[1].set_xlabel("nodes N")
  axes[1].set_ylabel("best wall time (s)")
  axes[1].set_title("[89] PamC time")
  axes[1].legend()
  gan = out["gan"]
  s = np.arange(len(gan["acgan"]["std_x"]))
  axes[2].bar(s - 0.2, np.mean(gan["method"]["std_x"], axis=1), 0.4, label=f"{gan['method']['classifier']} arm")
  axes[2].bar(s + 0.2, np.mean(gan["acgan"]["std_x"], axis=1), 0.4, label="AC-GAN")
  axes[2].axhline(1.0, color="k", ls="--", label="true std")
  axes[2].set_xlabel("seed")
  axes[2].set_ylabel("per-class std of generated x (mean over classes)")
  axes[2].set_title("[173] intra-class diversity")
  axes[2].legend()
  cv = out["cvib"]
  s = np.arange(len(cv["ce_test"]))
  axes[3].bar(s - 0.25, cv["ce_test"], 0.25, label="CE")
  axes[3].bar(s, cv["main_test"], 0.25, label="CVIB original net")
  axes[3].bar(s + 0.25, cv["pruned_test"], 0.25, label="CVIB self-pruned net")
  axes[3].set_xlabel("seed")
  axes[3].set_ylabel("test accuracy (spurious feature at chance)")
  axes[3].set_ylim(0.5, 1.0)
  axes[3].set_title("[11] CVIB vs CE")
  axes[3].legend()
  fig.tight_layout()
  save_figure(fig, workdir / "figure.png")
