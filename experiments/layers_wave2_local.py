"""Continual, test-time and local learning layers (issue 20, ly20e): the toy claims of the catalog rows, one part per
paper, each paper with its own claim rows.

Papers:
  [128] Zhengbo Wang, Jian Liang, Lijun Sheng, Ran He, Zilei Wang, Tieniu Tan, "A Hard-to-Beat Baseline for
        Training-free CLIP-based Adaptation", ICLR 2024, arXiv:2402.04087.
  [167] Junhao Su, Changpeng Cai, Feiyu Zhu, Chenghao He, Xiaojie Xu, Dongzhi Guan, Chenyang Si, "Momentum
        Auxiliary Network for Supervised Local Learning", ECCV 2024, arXiv:2407.05623.
  [169] Chenxiang Ma, Jibin Wu, Chenyang Si, Kay Chen Tan, "Scaling Supervised Local Learning with Augmented
        Auxiliary Networks", ICLR 2024, arXiv:2402.17318.

[128] (catalog row: Gaussian classes with a shared covariance: the training-free GDA head's accuracy tends to the
Bayes accuracy as n grows, with zero training steps): `gda_classes` classes in R^`gda_dim`, means
`gda_sep` * N(0, I), one random anisotropic shared covariance (eigenvalues log-uniform in [0.1, 10], random
rotation). For n = `gda_shots` examples per class, `gda_fit` (Eq. 4 precision) on the n K examples, accuracy on
`gda_test` fresh points next to the Bayes rule's accuracy (true means and covariance) on the same points. The
ensemble: "zero-shot" text prototypes are the true means plus N(0, (`gda_text_noise` `gda_sep`)^2) noise, cosine
logits times 100 as in CLIP; alpha picked from a fixed grid on `gda_val` extra labelled points per class (the paper picks alpha on
validation data too), judged at the fewest shots. Mutation `gda_cov=identity` drops the covariance (nearest class
mean): the large-n gap to Bayes must then stay open.

[167] and [169] share one toy (catalog rows: toy CNN/MLP; we use an MLP): inputs x ~ N(0, I_`ll_in`), labels the
argmax of a random 3-layer tanh teacher with `ll_classes` outputs; the student is an 8-layer ReLU MLP of width
`ll_width` plus a linear head, trained with adam (`ll_lr`) for `ll_steps` steps of `ll_batch` on `ll_train` fixed
examples, test accuracy on 4096 fresh ones. Arms: BP (end to end); [169] every layer its own local module:
"local-linear" (each hidden layer's auxiliary net a linear classifier) and AugLocal (each hidden layer's auxiliary
net = fresh copies of the uniformly selected later layers, `auglocal_layer_indices`, with pyramidal depths
`auglocal_depths(8, ll_aux_depth)`, then a linear classifier); [167] the 8 layers as 4 blocks of 2: "local-4"
(auxiliary net a linear classifier) and MAN (auxiliary net = EMA copy of the next block, momentum `man_momentum`,
+ learnable bias + linear classifier; `man_aux=plain` (mutation) trains the plain local-4 arm in its place).
Activation memory: XLA's temp bytes (`memory_analysis`) of one BP step and of the largest single local module's step
are recorded (not asserted: one jitted step over all blocks keeps every activation, so the paper's ~40-45% saving
needs per-block execution).

All parts vmap the seeds and shard them over the mesh's devices (`shard_leading`); each part is a memoised sub-run.
Mesh (`pytest -m slow tests/runner/test_seed_parallel.py -k layers_wave2_local`, TINY,
1 vs 3 simulated devices, 2026-12-01): the same verdicts; largest relative difference 0.066 in the MAN arm's train
accuracy under pytest's XLA flags, 0.016 in EcoTTA's entropy-only accuracy without them (the losses agree to 2e-7;
each mesh is deterministic: two runs agree bitwise on 1 and on 3 devices). Listed in the test's AMPLIFIED.

Claims (tolerances fixed before the first run):
  1. [128] GDA accuracy at the most shots >= Bayes accuracy - 0.01 (mean over seeds);
  2. [128] Bayes - GDA gap at the most shots <= 1/4 of the gap at the fewest shots (mean over seeds);
  3. [128] ensemble accuracy - GDA accuracy at the fewest shots, paired over seeds: mean > 2 standard errors, > 0;
  4. [169] AugLocal accuracy >= BP accuracy - 0.02 (mean over seeds);
  5. [169] AugLocal - local-linear accuracy, paired over seeds: mean > 2 standard errors, > 0;
  6. [167] MAN - local-4 accuracy, paired over seeds: mean > 2 standard errors, > 0;
  7. [167] MAN closes part of the local-vs-BP gap: (MAN - local-4) / (BP - local-4) >= 0.25 (means over seeds);
  8. [169] XLA temp bytes (memory_analysis) of one step of the first AugLocal module (layer 0 + its deepest
     auxiliary net) <= 0.8 x those of a BP step (the paper: ~40% less memory);
  9. [167] the same for the first MAN module (block 0 + its EMA auxiliary net) <= 1 x BP's;
  10. [81] EcoTTA - entropy-only online accuracy over the last 20% of the stream, paired: > 2 standard errors, > 0;
  11. [81] EcoTTA - source-only accuracy over the last 20% of the stream >= 0 (mean over seeds);
  12. [134] LAE ensemble - online expert final accuracy on all tasks, paired: > 2 standard errors, > 0;
  13. [134] LAE ensemble - offline expert final accuracy >= -0.005 (mean over seeds);
  14. [125] HyperTab - single MLP test accuracy >= 0 (mean over seeds);
  14b. [125] the advantage shrinks with the data: (HyperTab - MLP at `ht_train` rows) - (HyperTab - MLP at
     `ht_train_large` rows), paired over `ht_confirm_seeds` = 8 seeds of their own (the key stream of seed + 1000):
     > 2 standard errors, > 0 (paper, abstract: HyperTab "consistently outranks other methods on small data ... and
     scores comparable to them on larger datasets");
  14c. [125] comparable on larger data: HyperTab - MLP at `ht_train_large` rows >= -0.02 (mean over the same seeds;
     same sentence of the abstract);
  15. [125] HyperTab (all views) - HyperTab (one view), paired: > 2 standard errors, > 0;
  16. [90] per-task accuracy non-decreasing in the decoder width (every step >= -0.01, means over seeds);
  17. [90] narrowest-encoder accuracy with CIKD - without, paired: > 2 standard errors, > 0;
  sanity: BP test accuracy >= 0.8; zero-shot accuracy < GDA accuracy at the most shots.

Observed (cpu preset, 4 seeds; 14/19 claims, 12/17 paper claims pass; 134 s process wall alone on the quiet 2-core
machine with an empty compilation cache, 2026-12-02: 179 s after the sampler change below, 134 s once the parts but
HyperTab were compiled with `jit_fast_compile`, every number bitwise the same).
Minibatch sampling of the five local-learning arms, changed 2026-12-02 for speed, before reading the new claims:
they drew every step's batch with `jax.random.choice(..., replace=False)`, a permutation of all 8192 training
indices per step (two XLA:CPU sorts of 2.6 ms each per step and seed: ~31 s of each arm's ~48 s, 348-364 s for the
whole run, over budget). Now `data.epoch_minibatch_indices` draws one permutation per epoch (random reshuffling,
64 batches each); every minibatch is different, so claims 4-7 were judged again with their tolerances unchanged.
Verdicts before -> after: claim 4 passes -> passes, claim 5 FAILED (0.78 SE) -> passes (2.78 SE), claims 6-7 FAIL
-> FAIL. Claim 5's flip is the sampler's noise on a ~0.005 difference, not a property of AugLocal: read both as
"AugLocal and local-linear are within ~0.01 of each other and of BP on this toy".
  [128] passes all three: GDA - Bayes at 1024 shots -0.0034; gap ratio 0.007; ensemble - GDA at 2 shots +0.152
        (9.2 SE).
  [169] AugLocal - BP -0.002 (passes); AugLocal - local-linear +0.0049, 2.78 SE (passes; per seed BP 0.840 /
        0.850 / 0.863 / 0.852, local-linear 0.835 / 0.840 / 0.861 / 0.843, AugLocal 0.841 / 0.846 / 0.860 /
        0.851); memory ratio 0.54 (passes). Local learning with linear heads is itself within ~0.01 of BP on this
        MLP toy, so there is little gap for AugLocal to close.
  [167] MAN - local-4 -0.0051: FAILS (local-4 0.835 / 0.855 / 0.865 / 0.856, MAN 0.840 / 0.848 / 0.867 / 0.835);
        the gap fraction is undefined and FAILS (reported as nan): the BP - local-4 gap is -0.0013, local-4 is as
        accurate as BP here. Memory ratio 0.54 (passes). Same cause as [169]: the toy has no local-vs-BP gap.
        (Before the sampler change: MAN - local-4 -0.002, gap fraction -0.35 of a 0.007 gap.)
  [81]  the first run passed both: EcoTTA - entropy-only +0.43 over the last 20% of the stream (5.0 SE;
        entropy-only collapsed to ~0.40), EcoTTA - source +0.006; temp bytes meta-only / all parameters 532992 /
        794880 = 0.67. Today (the previous 13/19 record, reruns alone on 2026-12-02 and the 14/19 record, all
        with the same numbers; the sampler change above does not touch this part) the first one FAILS: EcoTTA -
        entropy-only +0.056, 1.85 SE (< 2); EcoTTA - source +0.006 still passes.
        Why it changed (2026-12-02): not the code. The ecotta part of the first-run commit (39b3e6f), run with
        today's environment, gives today's numbers exactly (last-20% accuracy, seeds 0-3: EcoTTA 0.870 / 0.978 /
        0.954 / 0.504, entropy-only 0.741 / 0.896 / 0.947 / 0.499). What moves is the entropy-only arm's collapse,
        which is chaotic in float rounding: the same code under other XLA CPU flags gives entropy-only 0.762 /
        0.489 / 0.281 / 0.291 (`--xla_backend_optimization_level=1 --xla_cpu_use_fusion_emitters=false`, the
        test suite's flags) and 0.363 / 0.782 / 0.415 / 0.257 (`--xla_cpu_use_fusion_emitters=false`), while
        EcoTTA's arm moves by <= 0.005 (0.873-0.875 / 0.977-0.978 / 0.954 / 0.504-0.507). So with 4 seeds claim 10
        passes or fails with the compiler's rounding (mean difference +0.056, 1.85 SE here; +0.372, 2.9 SE and
        +0.374, 4.2 SE under those flags): the direction holds in every setting, its significance at 4 seeds does
        not. Not changed (more seeds would be a preset change made after seeing the verdict); the gpu preset's 8
        seeds are where to judge it. Command: the part alone, `_vmapped(lambda k:
        ecotta_once(k, Config()), Config(), keep=())` under each XLA_FLAGS (~20-40 s each).
  [134] ensemble - online +0.001 (0.25 SE): FAILS; ensemble - offline +0.008 (passes).
  [125] passes both: HyperTab - MLP +0.041, all views - one view +0.157 (4.0 SE).
  [90]  monotone in decoder width (smallest step +0.003, passes); CIKD - no CIKD at encoder width 0.25 -0.038:
        FAILS (CIKD lowers the narrow configuration's accuracy here; see the exploratory runs below).

Setup changes after exploratory runs (tolerances untouched): [128] means 2 N(0, I) gave Bayes accuracy 1.0, so
`gda_sep` became 0.4 (Bayes ~0.77); the alpha grid [0, 100] picked alpha = 0 at many shots (Eq. 4's GDA logits shrink
~ D / N), so it became {0} + logspace(-2, 5). [167] [169] a saturating teacher (scales 2) gave BP 0.73 test accuracy,
so the teacher scales became 1, the width 16, lr 3e-3 and the training set 8192 (2-seed check: BP 0.83-0.85,
local-linear 0.79-0.85, AugLocal 0.84, local-4 0.82-0.84, MAN 0.82-0.83).

[81] toy (catalog row: drifting-Gaussian stream; with the regulariser, long-run accuracy does not collapse, unlike
entropy minimisation alone): 4 Gaussian classes in R^8 (means 2 N(0, I)); a source model of two frozen parts
(two 64-wide ReLU layers each) and a linear head, trained on source for 400 steps; EcoTTA meta networks (BatchNorm on
the part output + a linear block on its input, zero-initialised) pre-trained on source for 200 steps with the
parts and the head frozen (the paper's Fig. 3b); then `tta_batches` test batches of 64 whose inputs are shifted by
(t / T) * `tta_shift` along a random unit direction; each batch is predicted (online accuracy) and then used for one
adam step (`tta_lr`) of the meta networks on `ecotta_loss` (lam = `tta_lam`, vs lam = 0: entropy only). Memory: XLA
temp bytes of one gradient step with only the meta networks trainable vs with every weight trainable (recorded,
not asserted: `ecotta_temp_bytes`). Exploratory run (shift 3, lr 3e-3): every arm stayed at ~0.99 (no drift
effect), so the shift and lr were raised to 8 and 1e-2 before the claims were read.

[134] toy (catalog row: split tasks on a frozen random-feature backbone + adapter): 10 Gaussian classes in R^16
(means 1.5 N(0, I)), `lae_tasks` tasks of 2 classes, class-incremental; frozen features relu(R x) (R Gaussian,
16 -> 64); online PET = `nnx.LoRA` (rank 4) added to the features, a shared linear head; per task `lae_steps` adam
steps of 64 on the task's classes (logits of other classes masked), the PET frozen for the first
`lae_freeze_steps` steps of every task after the first (adaptation-speed calibration); offline PET =
`optax.incremental_update` EMA of the online one (decay `lae_decay`) after every step. Final accuracy on all
classes of the online expert, the offline expert and `lae_ensemble` (mutation `lae_ensemble=online`).

[125] toy (catalog row: small tabular data, n < 1k, make_classification-like; acc >= single MLP, ~ RF): 20
features (6 informative Gaussian clusters at hypercube vertices, 6 linear mixes, 8 noise), 3 classes,
`ht_train` training rows, 2000 test rows; HyperTab with `ht_views` views of `ht_subset` features (hypernetwork
20 -> 64 -> target weights; target MLP 20 -> 16 -> 3), every view trained with cross-entropy, `ht_steps`
full-batch adam steps; against HyperTab with one view and a 20 -> 64 -> 3 MLP trained the same way. (No random
forest: scikit-learn is not in the environment.)

[90] toy (catalog row: 2-task MLP; accuracy monotone in decoder width; CIKD raises narrow-configuration accuracy):
x ~ N(0, I_16), two tasks with 4 classes (argmax of tanh(x) T_t + 0.3 x_{0:4} x_{4:8}); shared slimmable encoder
16 -> 64 -> 64 and per-task slimmable decoders 64 -> 32 -> 4 (`SlimmableLinear`); every step trains all width
multipliers (0.25, 0.5, 0.75, 1; encoder and decoders together) plus, with CIKD, `sl_cikd` x `cikd_loss` of each
narrower encoder's features to the full encoder's; `sl_steps` adam steps of 128 fresh inputs. Exploratory runs:
with sl_cikd = 1 (and only widths 0.25, 0.5, 1 trained), CIKD lowered the narrowest accuracy (0.31-0.34 vs
0.77-0.83) and the untrained width 0.75 broke monotonicity; all widths were then trained every step and sl_cikd set
to 0.1 before the claims were read; CIKD still lowered the narrowest accuracy in the 2-seed check (0.69-0.79 vs
0.79-0.83), not tuned further.
On another CPU (2-core AMD EPYC, 2026-12-02; docs/measurements/epyc-2026-12-02) the same code gives 15/19: claim 10
(EcoTTA - entropy-only) passes there at 2.98 SE, the rounding sensitivity described under [81] above.
Claims audit (2026-12-03; no tolerance or setting changed): rows that hold by construction, or measure something
other than the paper's effect, are sanity rows now: [128] GDA at 1024 shots vs Bayes and the shrinking gap (the data
are drawn from exactly the shared-covariance Gaussian model GDA assumes: any consistent plug-in estimator passes);
[169] and [167] the XLA temp-bytes ratios (fixed by how many layers a module holds: 4 of 8 gives 0.54 for both);
[125] all views vs one view (a single view sees 8 of the 20 features, so it loses through missing information, not
through the views' augmentation effect). Each of these papers keeps one paper claim or none, [90] two (no mutation).
No MUTATION_PAPERS: `a_gda_identity_cov` and `e_hypertab_one_view` target papers with fewer than two paper claims.
(Later the same day: `e_hypertab_one_view` -> [125] declared after all, so the registry attributes the mutation;
under it [125]'s paper claim 14 fails at TINY, tests/experiments/test_mutations.py. [125] keeps one paper claim.)
Noted, not changed: several rows here judge a seed mean against a fixed margin ([169] AugLocal vs BP, [81] EcoTTA
vs source, [134] LAE vs offline, [125] HyperTab vs MLP).
[125] claims 14b and 14c PRE-REGISTERED 2026-12-04, written and committed before any run at `ht_train_large`: the
same task (`_tabular` draws its cluster vertices, mixing and feature permutation from the seed's data key alone, so
a larger n is more rows of the same distribution), the same model and optimiser settings and init keys, only the
training rows change, 300 -> 3000 (10x; the paper's split is "less than 1k samples" vs larger). 3000 was fixed
without trying another value; claims 14 and 15 and every other row are unchanged. Whatever the first cpu-preset run
says is the result. The mutation `e_hypertab_one_view` already breaks [125]'s claim 14 at TINY.
Judged run (2026-12-04, `python -m experiments run layers_wave2_local --workdir /tmp/s28/layers_wave2_local
--fresh`, 89 s wall): 14b passes at 2.65 standard errors (gaps at 300 rows +0.059 / +0.054 / +0.029 / +0.037, at
3000 rows +0.032 / +0.030 / +0.026 / +0.029; mean difference +0.015), 14c passes (+0.029 at 3000 rows). 2.65 is
below the two-sided 95% t quantile for 4 seeds (3.18), so claim 14d was PRE-REGISTERED right after that run and
committed before its first run: 8 fresh seeds, the same statistic and threshold; whatever it says is the result.
Confirmation run (`--workdir /tmp/s28/lw2l_b --fresh`, 198 s wall): 4.81 standard errors on the 8 fresh seeds
(gaps at 300 rows +0.030 / +0.054 / +0.057 / +0.050 / +0.041 / +0.046 / +0.047 / +0.049, at 3000 rows +0.022 /
+0.031 / +0.026 / +0.029 / +0.011 / +0.036 / +0.034 / +0.046); the gap at 3000 rows is +0.029 there too. Both
passed, but 198 s breaks the cpu preset's 3-minute budget (HyperTab at 3000 rows costs ~12 s per seed here), so the
4-seed 3000-row part was then dropped: claims 14b and 14c are now judged on the 8 confirmation seeds (14b's row is
14d's pre-registered test; 14c on the same seeds, its tolerance unchanged); claim 14 stays on the experiment's 4
seeds.
Recorded run after that change (2026-12-04, `python -m experiments run layers_wave2_local --workdir
/tmp/s28/rec/layers_wave2_local --fresh`, 143 s wall on the 2-core machine; 17/21 claims): [125] 14 +0.044, 14b 4.81
standard errors, 14c +0.029, all views - one view 4.5 SE (sanity): [125] has three passing paper claims and its
mutation, so it is `reproduced`. The other rows: the same verdicts as the previous record ([169] AugLocal -
local-linear 5.2 SE here against 2.78 in the text below, [81] EcoTTA - entropy-only 4.1 SE: both move with XLA's
rounding, as described below; [167] x2, [134] and [90]'s CIKD fail as before).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from experiments._seed_stats import paired_mean_se
from jaxlib_methods import data
from jaxlib_methods.nn import (AugLocalAuxiliary, EcoTTAPart, HyperTab, MomentumAuxiliary, SlimmableLinear,
                               auglocal_depths, cikd_loss, ecotta_forward, ecotta_loss, gda_ensemble_logits, gda_fit,
                               lae_ensemble, local_forward)
from jaxlib_methods.nn.low_rank import FrozenWeight
from jaxlib_methods.runner import (Claim, MeshConfig, MetricsLog, Paper, jit_fast_compile, make_mesh, minimize,
                                   save_figure, shard_leading, sweep)
from jaxlib_methods.runner.constraints import Check, Length, NonNegativeFloat, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=128, title="A Hard-to-Beat Baseline for Training-free CLIP-based Adaptation", year=2024,
              arxiv="2402.04087")
ALSO_REPRODUCES = (Paper(catalog_id=167, title="Momentum Auxiliary Network for Supervised Local Learning", year=2024,
                         arxiv="2407.05623"),
                   Paper(catalog_id=169, title="Scaling Supervised Local Learning with Augmented Auxiliary Networks",
                         year=2024, arxiv="2402.17318"),
                   Paper(catalog_id=81, title="EcoTTA: Memory-Efficient Continual Test-time Adaptation via "
                         "Self-distilled Regularization", year=2023, arxiv="2303.01904"),
                   Paper(catalog_id=134, title="A Unified Continual Learning Framework with General "
                         "Parameter-Efficient Tuning", year=2023, arxiv="2303.10070"),
                   Paper(catalog_id=125, title="HyperTab: Hypernetwork Approach for Deep Learning on Small Tabular "
                         "Datasets", year=2023, arxiv="2304.03543"),
                   Paper(catalog_id=90, title="Efficient Controllable Multi-Task Architectures", year=2023,
                         arxiv="2308.11744"))
DEMO = False


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=3)] = 4
  # [128]
  gda_dim: Annotated[int, Range(ge=2)] = 16
  gda_classes: Annotated[int, Range(ge=2)] = 5
  gda_sep: PositiveFloat = 0.4
  gda_shots: Annotated[tuple[int, ...], Range(ge=2), Length(min=2)] = (2, 8, 32, 128, 1024)
  gda_test: PositiveInt = 4000
  gda_val: PositiveInt = 8
  gda_text_noise: NonNegativeFloat = 1.0
  gda_cov: Literal["shared", "identity"] = "shared"
  # [167] [169]
  ll_in: Annotated[int, Range(ge=2)] = 16
  ll_classes: Annotated[int, Range(ge=2)] = 4
  ll_width: Annotated[int, Range(ge=2)] = 16
  ll_train: PositiveInt = 8192
  ll_steps: PositiveInt = 1500
  ll_batch: PositiveInt = 128
  ll_lr: PositiveFloat = 3e-3
  ll_aux_depth: Annotated[int, Range(ge=1, le=7)] = 3
  man_momentum: Annotated[float, Range(ge=0, le=1)] = 0.99
  man_aux: Literal["man", "plain"] = "man"
  # [81]
  tta_lam: NonNegativeFloat = 1.0
  tta_shift: NonNegativeFloat = 8.0
  tta_batches: PositiveInt = 300
  tta_lr: PositiveFloat = 1e-2
  # [134]
  lae_tasks: Annotated[int, Range(ge=2)] = 5
  lae_steps: PositiveInt = 200
  lae_decay: Annotated[float, Range(ge=0, le=1)] = 0.99
  lae_freeze_steps: Annotated[int, Range(ge=0)] = 20
  lae_ensemble: Literal["max", "online"] = "max"
  # [125]
  ht_train: PositiveInt = 300
  ht_train_large: PositiveInt = 3000   # claims 14b, 14c: the same task with 10x the training rows
  ht_confirm_seeds: PositiveInt = 8    # claims 14b, 14c: seeds of their own (the key stream of seed + 1000)
  ht_views: PositiveInt = 50
  ht_subset: PositiveInt = 8
  ht_steps: PositiveInt = 500
  # [90]
  sl_steps: PositiveInt = 800
  sl_cikd: NonNegativeFloat = 0.1
  mesh: MeshConfig = MeshConfig()   # devices the vmapped seeds are split over

  CHECKS = (Check("len(gda_shots) >= 2 and min(gda_shots) >= 2", "at least two shot counts, each >= 2 (the "
                  "pooled covariance needs N - K >= 1)"),
            Check("list(gda_shots) == sorted(gda_shots)", "gda_shots increasing"),
            Check("ll_batch <= ll_train", "a batch is drawn from the training set"),
            Check("ht_subset <= 20", "HyperTab's toy has 20 features"))


PRESETS = {"cpu": Config(), "gpu": Config(seeds=8, ll_steps=4000), "tpu": Config(seeds=8, ll_steps=4000)}
TINY = ("seeds=3", "gda_shots=2,64", "gda_test=500", "ll_steps=60", "ll_train=256", "ll_batch=64", "ll_width=8",
        "tta_batches=30", "lae_tasks=2", "lae_steps=30", "ht_views=16", "ht_steps=200", "ht_confirm_seeds=3",
        "sl_steps=40")
MUTATION_TEST_SLOW = True  # the TINY run compiles five vmapped training programs (several seconds of CPU)
# Only mutations whose claim passes at the TINY size can be tested (test_mutations.py). man_aux=plain,
# tta_lam=0, lae_ensemble=online and sl_cikd=0 are the wrong variants of claims 6, 10, 12 and 17, but those claims
# fail for the method itself at TINY (and 6, 12, 17 also at the cpu preset), so `pytest -m slow` failed on them
# (checked at 81f24f3 and after, 2026-12-02): they are kept as `--set` variants documented here, not listed.
# TINY trains HyperTab with 16 views for 200 steps (4 for 50 gave 0.65 standard errors for claim 15, untestable).
MUTATIONS = {"e_hypertab_one_view": ("ht_views=1",)}
MUTATION_PAPERS = {"e_hypertab_one_view": 125}   # (added 2026-12-03)
# (`a_gda_identity_cov` (gda_cov=identity) broke only [128] rows the claims audit made sanity rows: under it no
# passing paper claim fails at TINY, tests/experiments/test_mutations.py, 2026-12-03)


# ---- [128] GDA -------------------------------------------------------------------------------------------------------
def _gda_problem(key, config):
  d, k = config.gda_dim, config.gda_classes
  k_mu, k_rot, k_eig, k_text = jax.random.split(key, 4)
  mu = config.gda_sep * jax.random.normal(k_mu, (k, d))                  # Bayes accuracy ~0.8-0.95 at sep 0.4
  q, _ = jnp.linalg.qr(jax.random.normal(k_rot, (d, d)))
  eig = jnp.exp(jax.random.uniform(k_eig, (d,), minval=jnp.log(0.1), maxval=jnp.log(10.0)))
  chol = q * jnp.sqrt(eig)                                        # cov = q diag(eig) q^T = chol chol^T
  text = mu + config.gda_text_noise * config.gda_sep * jax.random.normal(k_text, mu.shape)
  return mu, chol, text


def _gda_sample(key, mu, chol, n_per_class):
  k = mu.shape[0]
  y = jnp.repeat(jnp.arange(k), n_per_class)
  x = mu[y] + jax.random.normal(key, (y.size, mu.shape[1])) @ chol.T
  return x, y


def gda_once(key, config: Config) -> dict:
  mu, chol, text = _gda_problem(key, config)
  k = config.gda_classes
  k_test, k_val, k_train = jax.random.split(jax.random.fold_in(key, 1), 3)
  x_te, y_te = _gda_sample(k_test, mu, chol, config.gda_test // k)
  prec = jnp.linalg.inv(chol @ chol.T)
  bayes_logits = x_te @ (mu @ prec).T - 0.5 * jnp.sum((mu @ prec) * mu, -1)
  acc = lambda logits, y: jnp.mean(jnp.argmax(logits, -1) == y)
  unit = lambda v: v / jnp.linalg.norm(v, axis=-1, keepdims=True)
  zs = lambda x: 100.0 * unit(x) @ unit(text).T
  x_val, y_val = _gda_sample(k_val, mu, chol, config.gda_val)
  alphas = jnp.concatenate([jnp.zeros(1), jnp.logspace(-2, 5, 15)])       # GDA logits shrink ~ D / N (Eq. 4)
  out = {"bayes": acc(bayes_logits, y_te), "zero_shot": acc(zs(x_te), y_te), "gda": [], "ensemble": []}
  for i, n in enumerate(config.gda_shots):
    x, y = _gda_sample(jax.random.fold_in(k_train, i), mu, chol, n)
    if config.gda_cov == "shared":
      W, b = gda_fit(x, y, k)
    else:                                                         # mutation: nearest class mean, no covariance
      W = (jax.nn.one_hot(y, k).T @ x) / n
      b = -0.5 * jnp.sum(W * W, -1)
    out["gda"].append(acc(gda_ensemble_logits(x_te, W, b), y_te))
    val_acc = jax.vmap(lambda a: acc(gda_ensemble_logits(x_val, W, b, zs(x_val), alpha=a), y_val))(alphas)
    a = alphas[jnp.argmax(val_acc)]
    out["ensemble"].append(acc(gda_ensemble_logits(x_te, W, b, zs(x_te), alpha=a), y_te))
  out["gda"], out["ensemble"] = jnp.stack(out["gda"]), jnp.stack(out["ensemble"])
  return out


# ---- [167] [169] local learning --------------------------------------------------------------------------------------
class _Layer(nnx.Module):
  def __init__(self, i, o, rngs):
    self.lin = nnx.Linear(i, o, rngs=rngs)

  def __call__(self, x):
    return jax.nn.relu(self.lin(x))


class _Block(nnx.Module):
  def __init__(self, layers):
    self.layers = nnx.List(layers)

  def __call__(self, x):
    for layer in self.layers:
      x = layer(x)
    return x


class _LocalNet(nnx.Module):
  """8 layers grouped into `group`-layer blocks; `aux` in {"bp", "linear", "auglocal", "man"}."""

  def __init__(self, config, aux, group, rngs):
    w, c = config.ll_width, config.ll_classes
    layers = [_Layer(config.ll_in if i == 0 else w, w, rngs) for i in range(8)]
    self.blocks = nnx.List([_Block(layers[i:i + group]) for i in range(0, 8, group)])
    self.head = nnx.Linear(w, c, rngs=rngs)
    nb = len(self.blocks)
    self.aux_kind = aux
    if aux == "linear":
      self.aux = nnx.List([nnx.Linear(w, c, rngs=rngs) for _ in range(nb - 1)])
    elif aux == "auglocal":
      depths = auglocal_depths(8, config.ll_aux_depth)
      self.aux = nnx.List([AugLocalAuxiliary(lambda i, r: _Layer(w, w, r), j, 8, depths[j], nnx.Linear(w, c, rngs=rngs),
                                             rngs=rngs) for j in range(nb - 1)])
    elif aux == "man":
      self.aux = nnx.List([MomentumAuxiliary(self.blocks[j + 1], nnx.Linear(w, c, rngs=rngs), w)
                           for j in range(nb - 1)])
    else:
      self.aux = nnx.List([])

  def logits(self, x):
    h = x
    for b in self.blocks:
      h = b(h)
    return self.head(h)

  def loss(self, x, y):
    ce = lambda z: optax.softmax_cross_entropy_with_integer_labels(z, y).mean()
    if self.aux_kind == "bp":
      return ce(self.logits(x))
    hs = local_forward(list(self.blocks), x)
    return sum(ce(a(h)) for a, h in zip(self.aux, hs[:-1])) + ce(self.head(hs[-1]))

  def after_step(self, momentum):
    if self.aux_kind == "man":
      for j, a in enumerate(self.aux):
        a.update_ema(self.blocks[j + 1], momentum)


def _teacher_data(key, config, n):
  k_w, k_x = jax.random.split(key)
  ws = jax.random.split(k_w, 3)
  x = jax.random.normal(k_x, (n, config.ll_in))
  h = jnp.tanh(x @ jax.random.normal(ws[0], (config.ll_in, 64)) / jnp.sqrt(config.ll_in))
  h = jnp.tanh(h @ jax.random.normal(ws[1], (64, 64)) / 8.0)
  return x, jnp.argmax(h @ jax.random.normal(ws[2], (64, config.ll_classes)), -1)


def _train_local(key, config, aux, group):
  k_data, k_init, k_test, k_batches = jax.random.split(key, 4)
  k_teacher = jax.random.fold_in(k_data, 0)
  x, y = _teacher_data(k_teacher, config, config.ll_train)
  # fresh test inputs through the same teacher: same teacher key, other inputs
  x_te, y_te = _teacher_data(k_teacher, config, config.ll_train + 4096)
  x_te, y_te = x_te[config.ll_train:], y_te[config.ll_train:]
  model = _LocalNet(config, aux, group, nnx.Rngs(params=k_init))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  tx = optax.adam(config.ll_lr)

  def step(carry, idx):
    p, r, opt = carry
    value, g = jax.value_and_grad(lambda p: nnx.merge(graphdef, p, r).loss(x[idx], y[idx]))(p)
    u, opt = tx.update(g, opt, p)
    p = optax.apply_updates(p, u)
    m = nnx.merge(graphdef, p, r)
    m.after_step(config.man_momentum)
    _, p, r = nnx.split(m, nnx.Param, ...)
    return (p, r, opt), value

  batches = data.epoch_minibatch_indices(k_batches, config.ll_train, config.ll_batch, config.ll_steps)
  (params, rest, _), losses = jax.lax.scan(step, (params, rest, tx.init(params)), batches)
  model = nnx.merge(graphdef, params, rest)
  return {"acc": jnp.mean(jnp.argmax(model.logits(x_te), -1) == y_te), "train_acc":
          jnp.mean(jnp.argmax(model.logits(x), -1) == y), "loss": losses}


def _step_temp_bytes(config, aux, group) -> int:
  """XLA temp bytes of one gradient step of the whole net (bp) or of the first local module alone."""
  model = _LocalNet(config, aux, group, nnx.Rngs(0))
  x = jnp.zeros((config.ll_batch, config.ll_in))
  y = jnp.zeros((config.ll_batch,), jnp.int32)
  if aux == "bp":
    f = lambda m: m.loss(x, y)
    target = model
  else:
    ce = lambda z: optax.softmax_cross_entropy_with_integer_labels(z, y).mean()
    f = lambda m: ce(m[1](m[0](x)))
    target = (model.blocks[0], model.aux[0])
  gd, st = nnx.split(target)
  compiled = jax.jit(jax.grad(lambda s: f(nnx.merge(gd, s)))).lower(st).compile()
  mem = compiled.memory_analysis()
  return int(getattr(mem, "temp_size_in_bytes", -1)) if mem is not None else -1


# ---- [81] EcoTTA ---------------------------------------------------------------------------------------------------
def _gauss_classes(key, n, means, scale=1.0):
  k_y, k_x = jax.random.split(key)
  y = jax.random.randint(k_y, (n,), 0, means.shape[0])
  return means[y] + scale * jax.random.normal(k_x, (n, means.shape[1])), y


class _Part(nnx.Module):
  def __init__(self, i, o, rngs):
    self.l1, self.l2 = nnx.Linear(i, o, rngs=rngs), nnx.Linear(o, o, rngs=rngs)

  def __call__(self, x):
    return jax.nn.relu(self.l2(jax.nn.relu(self.l1(x))))


class _EcoNet(nnx.Module):
  def __init__(self, parts, head, rngs):
    self.parts = nnx.List([EcoTTAPart(p, 64, nnx.Linear(i, 64, rngs=rngs), rngs=rngs)
                           for p, i in zip(parts, (8, 64))])
    for p in self.parts:
      p.meta_block.kernel[...] = jnp.zeros_like(p.meta_block.kernel[...])
    self.head = head                                              # frozen below (not part of the meta networks)

  def __call__(self, x):
    adapted, original = ecotta_forward(list(self.parts), x)
    return self.head(adapted[-1]), adapted, original


def ecotta_once(key, config: Config) -> dict:
  """Source model (2 parts + head) on 4 Gaussian classes; meta networks pre-trained on source; then a stream whose
  inputs drift linearly to a shift of norm `tta_shift`; online accuracy (predict, then adapt) per batch."""
  k_means, k_src, k_init, k_meta, k_shift, k_stream = jax.random.split(key, 6)
  means = 2.0 * jax.random.normal(k_means, (4, 8))
  rngs = nnx.Rngs(params=k_init)
  src = nnx.List([_Part(8, 64, rngs), _Part(64, 64, rngs), nnx.Linear(64, 4, rngs=rngs)])
  gd, p = nnx.split(src)
  ce = lambda z, y: optax.softmax_cross_entropy_with_integer_labels(z, y).mean()

  def src_loss(p, k):
    x, y = _gauss_classes(k, 128, means)
    m = nnx.merge(gd, p)
    return ce(m[2](m[1](m[0](x))), y)

  p, _ = minimize(src_loss, p, optax.adam(3e-3), jax.random.split(k_src, 400))
  src = nnx.merge(gd, p)
  net = _EcoNet([src[0], src[1]], src[2], nnx.Rngs(params=k_meta))
  meta_only = nnx.All(nnx.Param, nnx.Not(nnx.PathContains("head")))
  gd, meta, rest = nnx.split(net, meta_only, ...)

  def fit(p, r, loss_m, xs, lr):
    """adam on the meta networks; BatchNorm statistics (never used: batch statistics throughout) carried in r."""
    tx = optax.adam(lr)

    def step(carry, xi):
      p, r, opt = carry
      m = nnx.merge(gd, p, r)
      value, g = nnx.value_and_grad(lambda m: loss_m(m, xi), argnums=nnx.DiffState(0, meta_only))(m)
      _, _, r = nnx.split(m, meta_only, ...)
      u, opt = tx.update(g, opt, p)
      return (optax.apply_updates(p, u), r, opt), value

    (p, r, _), vals = jax.lax.scan(step, (p, r, tx.init(p)), xs)
    return p, r, vals

  def meta_src_loss(m, k):                                        # meta networks pre-trained on source (Fig. 3b)
    x, y = _gauss_classes(k, 128, means)
    return ce(m(x)[0], y)

  meta, rest, _ = fit(meta, rest, meta_src_loss, jax.random.split(jax.random.fold_in(k_meta, 1), 200), 3e-3)
  shift = jax.random.normal(k_shift, (8,))
  shift = config.tta_shift * shift / jnp.linalg.norm(shift)
  T = config.tta_batches

  def stream(lam):
    def loss_m(m, t):                                             # predict (online accuracy), then adapt
      x, y = _gauss_classes(jax.random.fold_in(k_stream, t), 64, means)
      logits, a, o = m(x + (t / T) * shift)
      acc = jnp.mean(jnp.argmax(jax.lax.stop_gradient(logits), -1) == y)
      return ecotta_loss(logits, a, o, lam=lam).mean() + 0.0 * acc, acc

    def loss_only(m, t):
      return loss_m(m, t)[0]

    tx = optax.adam(config.tta_lr)

    def step(carry, t):
      p, r, opt = carry
      m = nnx.merge(gd, p, r)
      (_, acc), g = nnx.value_and_grad(lambda m: loss_m(m, t), argnums=nnx.DiffState(0, meta_only),
                                       has_aux=True)(m)
      _, _, r = nnx.split(m, meta_only, ...)
      u, opt = tx.update(g, opt, p)
      return (optax.apply_updates(p, u), r, opt), acc

    _, accs = jax.lax.scan(step, (meta, rest, tx.init(meta)), jnp.arange(T))
    return accs

  def src_acc(t):
    x, y = _gauss_classes(jax.random.fold_in(k_stream, t), 64, means)
    return jnp.mean(jnp.argmax(src[2](src[1](src[0](x + (t / T) * shift))), -1) == y)

  src_accs = jax.vmap(src_acc)(jnp.arange(T))
  return {"acc_ecotta": stream(config.tta_lam), "acc_entropy": stream(0.0), "acc_source": src_accs}


def _ecotta_temp_bytes() -> dict:
  """XLA temp bytes of one entropy-minimisation gradient step: meta networks only vs every parameter."""
  rngs = nnx.Rngs(0)
  net = _EcoNet([_Part(8, 64, rngs), _Part(64, 64, rngs)], nnx.Linear(64, 4, rngs=rngs), rngs)
  x = jnp.zeros((256, 8))
  out = {}
  for name in ("meta_only", "all_params"):
    if name == "meta_only":
      filt = nnx.All(nnx.Param, nnx.Not(nnx.PathContains("head")))
      gd, st = nnx.split(net)
    else:                                                          # the same net with the frozen weights trainable
      gd0, st = nnx.split(net)
      st = jax.tree.map(lambda v: nnx.Param(v[...]) if isinstance(v, FrozenWeight) else v, st,
                        is_leaf=lambda v: isinstance(v, nnx.Variable))
      gd, st = nnx.split(nnx.merge(gd0, st))
      filt = nnx.Param
    loss = lambda m: ecotta_loss(m(x)[0], [], [], lam=0.0, entropy_threshold=1.0).mean()
    grad = lambda st, f=filt, g=gd: nnx.grad(loss, argnums=nnx.DiffState(0, f))(nnx.merge(g, st))
    mem = jax.jit(grad).lower(st).compile().memory_analysis()
    out[name] = int(getattr(mem, "temp_size_in_bytes", -1)) if mem is not None else -1
  return out


# ---- [134] LAE -----------------------------------------------------------------------------------------------------
class _PET(nnx.Module):
  """Frozen random-feature backbone phi(x) = relu(R x) with a LoRA adapter: h = phi + LoRA(phi)."""

  def __init__(self, rngs):
    self.lora = nnx.LoRA(64, 4, 64, rngs=rngs)

  def __call__(self, phi):
    return phi + self.lora(phi)


def lae_once(key, config: Config) -> dict:
  k_means, k_r, k_init, k_data, k_test = jax.random.split(key, 5)
  nt, cpt = config.lae_tasks, 2
  nc = nt * cpt
  means = 1.5 * jax.random.normal(k_means, (nc, 16))
  R = jax.random.normal(k_r, (16, 64)) / 4.0
  phi = lambda x: jax.nn.relu(x @ R)
  rngs = nnx.Rngs(params=k_init)
  online, head = _PET(rngs), nnx.Linear(64, nc, rngs=rngs)
  gd_pet, p_on = nnx.split(online)
  gd_head, p_head = nnx.split(head)
  p_off = jax.tree.map(jnp.copy, p_on)
  tx = optax.adam(3e-3)

  def logits_of(p_pet, p_h, x):
    return nnx.merge(gd_head, p_h)(nnx.merge(gd_pet, p_pet)(phi(x)))

  def task(carry, t):
    p_on, p_off, p_h = carry
    opt = tx.init((p_on, p_h))
    classes = t * cpt + jnp.arange(cpt)
    mask = jnp.zeros(nc, bool).at[classes].set(True)

    def step(c, i):
      p_on, p_off, p_h, opt = c
      kk = jax.random.fold_in(jax.random.fold_in(k_data, t), i)
      y = classes[jax.random.randint(kk, (64,), 0, cpt)]
      x = means[y] + jax.random.normal(jax.random.fold_in(kk, 1), (64, 16))

      def loss(pp):
        z = jnp.where(mask, logits_of(pp[0], pp[1], x), -1e9)            # current task's classes only
        return optax.softmax_cross_entropy_with_integer_labels(z, y).mean()
      g_on, g_h = jax.grad(loss)((p_on, p_h))
      frozen_pet = (t > 0) & (i < config.lae_freeze_steps)               # adaptation speed calibration
      g_on = jax.tree.map(lambda g: jnp.where(frozen_pet, 0.0, g), g_on)
      u, opt = tx.update((g_on, g_h), opt, (p_on, p_h))
      p_on, p_h = optax.apply_updates((p_on, p_h), u)
      p_off = optax.incremental_update(p_on, p_off, step_size=1 - config.lae_decay)   # accumulation
      return (p_on, p_off, p_h, opt), None

    (p_on, p_off, p_h, _), _ = jax.lax.scan(step, (p_on, p_off, p_h, opt), jnp.arange(config.lae_steps))
    return (p_on, p_off, p_h), None

  (p_on, p_off, p_h), _ = jax.lax.scan(task, (p_on, p_off, p_head), jnp.arange(nt))
  y = jnp.repeat(jnp.arange(nc), 200)
  x = means[y] + jax.random.normal(k_test, (y.size, 16))
  z_on, z_off = logits_of(p_on, p_h, x), logits_of(p_off, p_h, x)
  ens = lae_ensemble(z_on, z_off) if config.lae_ensemble == "max" else jax.nn.softmax(z_on)
  acc = lambda z: jnp.mean(jnp.argmax(z, -1) == y)
  return {"acc_online": acc(z_on), "acc_offline": acc(z_off), "acc_ensemble": acc(ens)}


# ---- [125] HyperTab ------------------------------------------------------------------------------------------------
def _tabular(key, n):
  """make_classification-like: 20 features, 6 informative (Gaussian clusters at hypercube vertices), 6 redundant
  (linear mixes), 8 noise; 3 classes."""
  k_v, k_y, k_x, k_mix, k_noise, k_perm = jax.random.split(key, 6)
  vertices = 2.0 * jax.random.bernoulli(k_v, 0.5, (6, 6)).astype(jnp.float32) - 1.0   # 2 clusters per class
  c = jax.random.randint(k_y, (n,), 0, 6)
  inf = vertices[c] + jax.random.normal(k_x, (n, 6))
  red = inf @ jax.random.normal(k_mix, (6, 6)) / 2.0
  x = jnp.concatenate([inf, red, jax.random.normal(k_noise, (n, 8))], -1)
  return x[:, jax.random.permutation(k_perm, 20)], c % 3


def hypertab_once(key, config: Config) -> dict:
  k_data, k_a, k_b, k_c, k_test = jax.random.split(key, 5)
  x, y = _tabular(k_data, config.ht_train + 2000)
  x_tr, y_tr, x_te, y_te = x[:config.ht_train], y[:config.ht_train], x[config.ht_train:], y[config.ht_train:]
  mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
  x_tr, x_te = (x_tr - mu) / sd, (x_te - mu) / sd
  ce = lambda z, y: optax.softmax_cross_entropy_with_integer_labels(z, y).mean()
  acc = lambda z: jnp.mean(jnp.argmax(z, -1) == y_te)
  out = {}
  for name, views, k in (("hypertab", config.ht_views, k_a), ("hypertab_1view", 1, k_b)):
    model = HyperTab(20, 3, num_views=views, subset_size=config.ht_subset, hidden=16, rngs=nnx.Rngs(params=k))
    gd, p, rest = nnx.split(model, nnx.Param, ...)

    def loss(p):
      z = nnx.merge(gd, p, rest).view_logits(x_tr)
      return ce(z.reshape(-1, 3), jnp.tile(y_tr, z.shape[0]))
    p, _ = minimize(loss, p, optax.adam(3e-3), length=config.ht_steps)
    out[name] = acc(nnx.merge(gd, p, rest)(x_te))
  mlp = nnx.List([nnx.Linear(20, 64, rngs=nnx.Rngs(params=k_c)), nnx.Linear(64, 3, rngs=nnx.Rngs(params=k_c))])
  gd, p = nnx.split(mlp)
  f = lambda p, x: (lambda m: m[1](jax.nn.relu(m[0](x))))(nnx.merge(gd, p))
  p, _ = minimize(lambda p: ce(f(p, x_tr), y_tr), p, optax.adam(3e-3), length=config.ht_steps)
  out["mlp"] = acc(f(p, x_te))
  return out


# ---- [90] slimmable multi-task -------------------------------------------------------------------------------------
SL_WIDTHS = (0.25, 0.5, 0.75, 1.0)


class _SlimMTL(nnx.Module):
  def __init__(self, rngs):
    self.enc = nnx.List([SlimmableLinear(16, 64, rngs=rngs), SlimmableLinear(64, 64, rngs=rngs)])
    self.dec = nnx.List([nnx.List([SlimmableLinear(64, 32, rngs=rngs), SlimmableLinear(32, 4, rngs=rngs)])
                         for _ in range(2)])

  def encode(self, x, w_enc):
    for layer in self.enc:
      x = jax.nn.relu(layer(x, w_enc))
    return x

  def decode(self, h, task, w_dec):
    d = self.dec[task]
    return d[1](jax.nn.relu(d[0](h, w_dec)), 1.0)


def slimmable_once(key, config: Config) -> dict:
  k_t, k_init, k_data, k_test = jax.random.split(key, 4)
  teachers = [jax.random.normal(k, (16, 4)) for k in jax.random.split(k_t, 2)]
  label = lambda x: [jnp.argmax(jnp.tanh(x) @ t + 0.3 * x[:, :4] * x[:, 4:8], -1) for t in teachers]
  ce = lambda z, y: optax.softmax_cross_entropy_with_integer_labels(z, y).mean()
  out = {}
  for arm, gamma in (("cikd", config.sl_cikd), ("no_cikd", 0.0)):
    model = _SlimMTL(nnx.Rngs(params=k_init))
    gd, p = nnx.split(model)

    def loss(p, k):
      m = nnx.merge(gd, p)
      x = jax.random.normal(k, (128, 16))
      ys = label(x)
      h_full = m.encode(x, 1.0)
      total = sum(ce(m.decode(h_full, t, 1.0), ys[t]) for t in range(2))
      # every configuration each step (static widths; encoder and decoders share the multiplier)
      for w in SL_WIDTHS[:-1]:
        h = m.encode(x, w)
        total = total + sum(ce(m.decode(h, t, w), ys[t]) for t in range(2))
        total = total + gamma * cikd_loss(h, h_full).mean()
      return total

    p, _ = minimize(loss, p, optax.adam(3e-3), jax.random.split(jax.random.fold_in(k_data, 0), config.sl_steps))
    m = nnx.merge(gd, p)
    x = jax.random.normal(k_test, (4000, 16))
    ys = label(x)
    h_full = m.encode(x, 1.0)
    out[f"{arm}_dec_acc"] = jnp.stack([jnp.stack([jnp.mean(jnp.argmax(m.decode(h_full, t, w), -1) == ys[t])
                                                  for w in SL_WIDTHS]) for t in range(2)])        # [task, width]
    h_narrow = m.encode(x, SL_WIDTHS[0])
    out[f"{arm}_narrow_acc"] = jnp.mean(jnp.stack([jnp.mean(jnp.argmax(m.decode(h_narrow, t, 1.0), -1) == ys[t])
                                                   for t in range(2)]))
  return out


# ---- runner --------------------------------------------------------------------------------------------------------
def _vmapped(fn, config, keep=("loss",), fast_compile=True):
  """fn vmapped over the seeds' keys. fast_compile: XLA:CPU backend level 1 (`jit_fast_compile`), checked to give
  bitwise the numbers of the default level for every part but HyperTab (2026-12-02: its one-view arm's accuracy moved
  by up to 0.026 on 3 of 4 seeds), which keeps `jax.jit`."""
  keys = jax.random.split(jax.random.key(config.seed), config.seeds)
  keys = shard_leading(keys, make_mesh(config.mesh), what="seed")
  jit = jit_fast_compile if fast_compile else jax.jit
  out = jax.device_get(jit(jax.vmap(fn))(keys))
  res = {}
  for k, v in out.items():
    v = np.asarray(v)
    res[k] = v.mean(0)[:: max(1, v.shape[1] // 100)].tolist() if k in keep else v.tolist()
  return res


LOCAL_ARMS = {"bp": ("bp", 1), "local_linear": ("linear", 1), "auglocal": ("auglocal", 1), "local4": ("linear", 2),
              "man": ("man", 2)}


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  part = lambda name, fn: sweep.memoized(workdir, {"part": name}, fn)
  out = {"gda": part("gda", lambda: _vmapped(lambda k: gda_once(k, config), config))}
  log.log(0, gda_most_shots=float(np.mean(np.asarray(out["gda"]["gda"])[:, -1])),
          bayes=float(np.mean(out["gda"]["bayes"])))
  for i, (arm, (aux, group)) in enumerate(LOCAL_ARMS.items()):
    if arm == "man" and config.man_aux == "plain":
      aux = "linear"
    out[arm] = part(f"local_{arm}", lambda a=aux, g=group: _vmapped(lambda k: _train_local(k, config, a, g), config))
    log.log(1 + i, **{f"{arm}_acc": float(np.mean(out[arm]["acc"]))})
  out["temp_bytes"] = part("memory", lambda: {arm: _step_temp_bytes(config, aux, group)
                                              for arm, (aux, group) in LOCAL_ARMS.items()})
  out["ecotta"] = part("ecotta", lambda: _vmapped(lambda k: ecotta_once(k, config), config, keep=()))
  out["ecotta_temp_bytes"] = part("ecotta_memory", _ecotta_temp_bytes)
  out["lae"] = part("lae", lambda: _vmapped(lambda k: lae_once(k, config), config))
  out["hypertab"] = part("hypertab", lambda: _vmapped(lambda k: hypertab_once(k, config), config, fast_compile=False))
  out["hypertab_rows"] = (config.ht_train, config.ht_train_large)
  confirm = dataclasses.replace(config, seed=config.seed + 1000, seeds=config.ht_confirm_seeds)
  for name, c in (("hypertab_confirm", confirm), ("hypertab_confirm_large",
                                                   dataclasses.replace(confirm, ht_train=config.ht_train_large))):
    out[name] = part(name, lambda c=c: _vmapped(lambda k: hypertab_once(k, c), c, fast_compile=False))
  out["slimmable"] = part("slimmable", lambda: _vmapped(lambda k: slimmable_once(k, config), config))
  last = lambda a: float(np.mean(np.asarray(a)[:, -len(a[0]) // 5:]))
  log.log(6, ecotta_last=last(out["ecotta"]["acc_ecotta"]), entropy_last=last(out["ecotta"]["acc_entropy"]),
          lae_ensemble=float(np.mean(out["lae"]["acc_ensemble"])), hypertab=float(np.mean(out["hypertab"]["hypertab"])),
          slim_cikd_narrow=float(np.mean(out["slimmable"]["cikd_narrow_acc"])))
  _figure(out, config, workdir)
  return out


_paired = paired_mean_se   # (mean, standard error) of the paired difference a - b over seeds


def _se_claim(name, a, b, paper, where, kind="paper"):
  mean, sem = _paired(a, b)
  return Claim.at_least(f"{name}, paired over seeds, in standard errors (mean difference {mean:.4f})",
                        mean / max(sem, 1e-12) if mean > 0 else mean, 2.0, paper=paper, kind=kind, where=where)


def claims(results: dict) -> list[Claim]:
  g = results["gda"]
  gda, ens = np.asarray(g["gda"]), np.asarray(g["ensemble"])
  bayes = np.asarray(g["bayes"])
  out = [Claim.at_least("GDA accuracy at the most shots - Bayes accuracy (mean over seeds)",
                        float(np.mean(gda[:, -1] - bayes)), -0.01,
                        paper="GDA (shared covariance) is the Bayes classifier of Gaussian classes", kind="sanity",
                        where="Sec. 3.1, Eq. 2-3 [128]"),
         Claim.at_most("Bayes-GDA gap at the most shots / gap at the fewest shots (means over seeds)",
                       float(np.mean(bayes - gda[:, -1]) / max(np.mean(bayes - gda[:, 0]), 1e-12)), 0.25,
                       paper="the estimated classifier improves with the number of shots", kind="sanity",
                       where="Sec. 4.1, Fig. 1 (accuracy vs shots) [128]"),
         _se_claim("ensemble accuracy - GDA accuracy at the fewest shots", ens[:, 0], gda[:, 0],
                   "ensembling with the zero-shot classifier helps in the few-shot regime",
                   "Sec. 3.2 and Table 4 (ablation of the ensemble) [128]"),
         Claim.at_most("zero-shot accuracy - GDA accuracy at the most shots (mean over seeds)",
                       float(np.mean(np.asarray(g["zero_shot"]) - gda[:, -1])), 0.0, kind="sanity")]
  acc = {arm: np.asarray(results[arm]["acc"], float) for arm in LOCAL_ARMS}
  out.append(Claim.at_least("AugLocal test accuracy - BP test accuracy (mean over seeds)",
                            float(np.mean(acc["auglocal"] - acc["bp"])), -0.02,
                            paper="AugLocal reaches accuracy comparable to BP", kind="paper",
                            where="Abstract and Table 1 [169]"))
  out.append(_se_claim("AugLocal - local-linear test accuracy", acc["auglocal"], acc["local_linear"],
                       "AugLocal is more accurate than local learning with shallow auxiliary nets",
                       "Table 1 (AugLocal vs DGL / InfoPro) [169]"))
  out.append(_se_claim("MAN - local-4 (linear auxiliary nets) test accuracy", acc["man"], acc["local4"],
                       "MAN improves over local learning without momentum auxiliary nets",
                       "Table 1 and Table 4 (ablation) [167]"))
  gap = float(np.mean(acc["bp"] - acc["local4"]))
  out.append(Claim.at_least(f"fraction of the BP - local-4 gap ({gap:.4f}) closed by MAN (means over seeds)",
                            float(np.mean(acc["man"] - acc["local4"]) / gap) if gap > 0 else float("nan"), 0.25,
                            paper="MAN closes the gap to end-to-end training", kind="paper",
                            where="Abstract and Table 1 [167]"))
  tb = results["temp_bytes"]
  out.append(Claim.at_most("XLA temp bytes of the first (deepest-auxiliary) AugLocal module's step / a BP step",
                           tb["auglocal"] / tb["bp"], 0.8, paper="~40% less GPU memory than BP", kind="sanity",
                           where="Abstract and Table 3 (memory) [169]"))
  out.append(Claim.at_most("XLA temp bytes of the first MAN module's step (block + EMA auxiliary net) / a BP step",
                           tb["man"] / tb["bp"], 1.0, paper="less GPU memory than end-to-end training (45% on "
                           "ImageNet)", kind="sanity", where="Abstract and Table 5 (memory) [167]"))
  out.append(Claim.at_least("BP test accuracy, min over seeds", float(acc["bp"].min()), 0.8, kind="sanity"))
  # [81]
  e = results["ecotta"]
  last = lambda k: np.asarray(e[k], float)[:, -np.asarray(e[k]).shape[1] // 5:].mean(1)
  out.append(_se_claim("EcoTTA (entropy + self-distilled reg.) - entropy-only online accuracy over the last 20% of "
                       "the drifting stream", last("acc_ecotta"), last("acc_entropy"),
                       "the regulariser prevents error accumulation in long-term adaptation",
                       "Sec. 3.2 and Fig. 5 (long-term adaptation) [81]"))
  out.append(Claim.at_least("EcoTTA - source-only online accuracy over the last 20% of the stream (mean over seeds)",
                            float(np.mean(last("acc_ecotta") - last("acc_source"))), 0.0,
                            paper="test-time adaptation with the meta networks improves on the frozen source model",
                            kind="paper", where="Tables 1-2 (EcoTTA vs source) [81]"))
  # [134]
  lae = results["lae"]
  out.append(_se_claim("LAE ensemble - online-expert final accuracy on all tasks", lae["acc_ensemble"],
                       lae["acc_online"], "the online/offline ensemble forgets less than the online expert",
                       "Sec. 3.3 and Table 5 (ablation: online / offline / ensemble) [134]"))
  out.append(Claim.at_least("LAE ensemble - offline-expert final accuracy (mean over seeds)",
                            float(np.mean(np.asarray(lae["acc_ensemble"]) - np.asarray(lae["acc_offline"]))), -0.005,
                            paper="the ensemble is at least as accurate as either expert", kind="paper",
                            where="Table 5 (ablation) [134]"))
  # [125]
  ht = results["hypertab"]
  out.append(Claim.at_least("HyperTab - single-MLP test accuracy on the small tabular toy (mean over seeds)",
                            float(np.mean(np.asarray(ht["hypertab"]) - np.asarray(ht["mlp"]))), 0.0,
                            paper="HyperTab outranks other deep models on small data (< 1k samples)", kind="paper",
                            where="Sec. 5, Table 2 and Fig. 4 [125]"))
  n_small, n_large = results["hypertab_rows"]
  hc, hcl = results["hypertab_confirm"], results["hypertab_confirm_large"]
  gap_small = np.asarray(hc["hypertab"]) - np.asarray(hc["mlp"])
  gap_large = np.asarray(hcl["hypertab"]) - np.asarray(hcl["mlp"])
  out.append(_se_claim(f"(HyperTab - MLP at {n_small} training rows) - (HyperTab - MLP at {n_large} rows), test "
                       f"accuracy on {len(gap_small)} seeds of their own", gap_small, gap_large, "the advantage is on "
                       "small data: HyperTab outranks other methods on small data and scores comparable to them on "
                       "larger datasets", "Abstract [125]"))
  out.append(Claim.at_least(f"HyperTab - single-MLP test accuracy at {n_large} training rows (mean over the same "
                            "seeds)", float(np.mean(gap_large)), -0.02, kind="paper", where="Abstract [125]",
                            paper="HyperTab scores comparable to other methods on larger datasets"))
  out.append(_se_claim("HyperTab with all views - with one view, test accuracy", ht["hypertab"], ht["hypertab_1view"],
                       "the views act as data augmentation: the ensemble of views generalises better",
                       "Sec. 3 and Sec. 5.3 (number of views) [125]", kind="sanity"))
  # [90]
  sl = results["slimmable"]
  dec = np.asarray(sl["cikd_dec_acc"], float).mean(0)                       # [task, width]
  worst = float(np.min(np.diff(dec, axis=1)))
  out.append(Claim.at_least("smallest step of per-task accuracy between successive decoder widths "
                            f"{SL_WIDTHS} (means over seeds; both tasks)", worst, -0.01,
                            paper="a task's accuracy is controlled by (monotone in) its decoder width", kind="paper",
                            where="Sec. 3 and Fig. 1 (controllability) [90]"))
  out.append(_se_claim("narrowest-encoder accuracy with CIKD - without CIKD (mean of the two tasks)",
                       sl["cikd_narrow_acc"], sl["no_cikd_narrow_acc"],
                       "CIKD improves the slimmed sub-architectures", "Sec. 3.2 and Table 6 (CIKD ablation) [90]"))
  return out


def _figure(out, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(2, 4, figsize=(22, 8))
  axes = axes.reshape(-1)
  g = out["gda"]
  shots = list(config.gda_shots)
  for name in ("gda", "ensemble"):
    a = np.asarray(g[name])
    axes[0].errorbar(shots, a.mean(0), yerr=a.std(0), label=name, marker="o")
  axes[0].axhline(np.mean(g["bayes"]), color="k", ls="--", label="Bayes")
  axes[0].axhline(np.mean(g["zero_shot"]), color="gray", ls=":", label="zero-shot")
  axes[0].set_xscale("log")
  axes[0].set_xlabel("shots per class")
  axes[0].set_ylabel("test accuracy (mean +- sd over seeds)")
  axes[0].set_title(f"[128] GDA head, cov={config.gda_cov}", fontsize=9)
  axes[0].legend(fontsize=7)
  arms = list(LOCAL_ARMS)
  axes[1].bar(range(len(arms)), [np.mean(out[a]["acc"]) for a in arms], yerr=[np.std(out[a]["acc"]) for a in arms])
  axes[1].set_xticks(range(len(arms)), arms, fontsize=7)
  axes[1].set_ylim(0.5, 1.0)
  axes[1].set_ylabel("test accuracy (mean +- sd over seeds)")
  axes[1].set_title("[167] MAN / [169] AugLocal, 8-layer MLP", fontsize=9)
  for a in arms:
    axes[2].plot(out[a]["loss"], label=a)
  axes[2].set_xlabel(f"step / {max(1, config.ll_steps // 100)}")
  axes[2].set_ylabel("training objective (sum of local losses)")
  axes[2].set_yscale("log")
  axes[2].legend(fontsize=7)
  e = out["ecotta"]
  for k in ("acc_ecotta", "acc_entropy", "acc_source"):
    a = np.asarray(e[k]).mean(0)
    axes[3].plot(np.convolve(a, np.ones(10) / 10, mode="valid"), label=k[4:])
  axes[3].set_xlabel("test batch (input shift grows linearly)")
  axes[3].set_ylabel("online accuracy (mean over seeds, 10-batch average)")
  axes[3].set_title(f"[81] EcoTTA, lambda={config.tta_lam}", fontsize=9)
  axes[3].legend(fontsize=7)
  names = ("acc_online", "acc_offline", "acc_ensemble")
  axes[4].bar(range(3), [np.mean(out["lae"][n]) for n in names], yerr=[np.std(out["lae"][n]) for n in names])
  axes[4].set_xticks(range(3), ["online", "offline (EMA)", "ensemble"], fontsize=7)
  axes[4].set_ylabel("final accuracy on all tasks (mean +- sd)")
  axes[4].set_title(f"[134] LAE, {config.lae_tasks} tasks", fontsize=9)
  names = ("mlp", "hypertab_1view", "hypertab")
  for j, (part_name, n_rows) in enumerate((("hypertab_confirm", config.ht_train),
                                           ("hypertab_confirm_large", config.ht_train_large))):
    axes[5].bar(np.arange(3) + 0.4 * j - 0.2, [np.mean(out[part_name][n]) for n in names], width=0.4,
                yerr=[np.std(out[part_name][n]) for n in names], label=f"n = {n_rows}")
  axes[5].set_xticks(range(3), ["MLP", "HyperTab, 1 view", f"HyperTab, {config.ht_views} views"], fontsize=7)
  axes[5].legend(fontsize=7)
  axes[5].set_ylabel("test accuracy (mean +- sd)")
  axes[5].set_title(f"[125] HyperTab vs MLP at two training-set sizes, {config.ht_confirm_seeds} seeds",
                    fontsize=9)
  for arm in ("cikd", "no_cikd"):
    dec = np.asarray(out["slimmable"][f"{arm}_dec_acc"]).mean(0)
    for t in range(2):
      axes[6].plot(SL_WIDTHS, dec[t], marker="o", label=f"{arm}, task {t}")
  axes[6].set_xlabel("decoder width multiplier (full encoder)")
  axes[6].set_ylabel("task accuracy (mean over seeds)")
  axes[6].set_title("[90] slimmable multi-task", fontsize=9)
  axes[6].legend(fontsize=7)
  axes[7].bar(range(2), [np.mean(out["slimmable"][f"{a}_narrow_acc"]) for a in ("no_cikd", "cikd")],
              yerr=[np.std(out["slimmable"][f"{a}_narrow_acc"]) for a in ("no_cikd", "cikd")])
  axes[7].set_xticks(range(2), ["no CIKD", "CIKD"])
  axes[7].set_ylabel("accuracy at encoder width 0.25 (mean of tasks)")
  axes[7].set_title("[90] configuration-invariant KD", fontsize=9)
  fig.suptitle("GDA head, local learning (MAN, AugLocal), EcoTTA, LAE, HyperTab, slimmable multi-task")
  save_figure(fig, workdir / "figure.png")
