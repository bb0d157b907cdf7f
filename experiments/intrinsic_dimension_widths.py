"""Intrinsic dimension of an objective landscape: train an MLP only in a random d-dimensional subspace of its
parameters (theta = theta0 + P z, Fastfood P) and find d_int90, the smallest d reaching 90% of the directly trained
network's test accuracy; d_int90 is roughly the same whatever the width (the number of native parameters D).

Paper [135]: Chunyuan Li, Heerad Farkhoor, Rosanne Liu, Jason Yosinski, "Measuring the Intrinsic Dimension of
Objective Landscapes", ICLR 2018, arXiv:1804.08838.

No MNIST offline (no dataset download; sklearn is not installed), so the task is synthetic and shipped here: inputs
x ~ N(0, I_16), 4 classes labelled by a fixed random teacher argmax(W2 tanh(W1 x)) (W1 [32, 16]); 2000 training and
2000 test points. Students: one-hidden-layer ReLU MLPs of width in `widths` (D = 21 width + 4 native parameters:
2,692 at width 128 to 21,508 at width 1024). A first version with 10 teacher classes left the direct baseline at ~0.63
test accuracy and the subspace runs far below it at TINY size; 4 classes is the task used.
Direct training and subspace training both use Adam on the full training batch for `steps` steps; the subspace runs
use `jaxlib_methods.analysis.subspace_wrap` with the Fastfood projection (the paper's for large D), z padded to
max(dims) with the coordinates beyond d masked to 0 (exactly the d-dimensional subspace), so all (d, seed) runs of a
width are one vmapped program split over the mesh; each width is a memoized sub-run. `d_int90` finds the threshold.

Claims (tolerances fixed before the run; accuracies are medians over seeds):
  1. paper: d_int90 is roughly constant across widths: max / min over widths <= 2 (one step of the dims grid, which
     doubles), while D grows 8x (paper, Sec. 3.1 / Fig. 3 left: d_int90 ~ 750 for FC MNIST nets of many widths and
     depths);
  2. paper: d_int90 << D: d_int90 / D <= 0.1 at every width (paper: MNIST FC d_int90 = 750 of D = 199,210);
  3. sanity: the direct baseline is well above chance (test accuracy >= 0.5 at every width).
Mutation `axis_aligned_subspace`: z trains the first d native parameters (the flattened biases, then weights) instead of
a random subspace, so d_int90 is no longer a property of the landscape alone.
The paper's MNIST numbers (d_int90 ~ 750 FC, ~290 LeNet) are not reproduced: no MNIST offline; a `gpu` preset would
need the data set.
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
from jaxlib_methods.runner.constraints import Length, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=135, title="Measuring the Intrinsic Dimension of Objective Landscapes", year=2018,
              arxiv="1804.08838")
DEMO = False
IN_DIM, TEACHER_WIDTH, CLASSES = 16, 32, 4


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
  mesh: MeshConfig = MeshConfig()                  # devices the (d, seed) subspace runs of a width are split over

  CHECKS = ()


PRESETS = {"cpu": Config(), "gpu": Config(seeds=3, widths=(128, 256, 512, 1024, 2048), steps=1000),
           "tpu": Config(seeds=3, widths=(128, 256, 512, 1024, 2048), steps=1000)}
TINY = ("seeds=2", "widths=64,128", "dims=32,128,512", "train_size=500", "test_size=500", "steps=300")
MUTATIONS = {"axis_aligned_subspace": ("projection=axis",)}
MUTATION_TEST_SLOW = True   # several widths' direct and subspace trainings: ~10 s of CPU at TINY


def task(config: Config):
  rng = np.random.default_rng(config.seed)
  w1 = rng.normal(size=(TEACHER_WIDTH, IN_DIM)) / np.sqrt(IN_DIM)
  w2 = rng.normal(size=(CLASSES, TEACHER_WIDTH)) / np.sqrt(TEACHER_WIDTH)
  x = rng.normal(size=(config.train_size + config.test_size, IN_DIM)).astype(np.float32)
  y = np.argmax(np.tanh(x @ w1.T) @ w2.T, -1).astype(np.int32)
  n = config.train_size
  return (x[:n], y[:n]), (x[n:], y[n:])


def init_mlp(key, width):
  k1, k2 = jax.random.split(key)
  return {"w1": jax.random.normal(k1, (IN_DIM, width)) / np.sqrt(IN_DIM), "b1": jnp.zeros(width),
          "w2": jax.random.normal(k2, (width, CLASSES)) / np.sqrt(width), "b2": jnp.zeros(CLASSES)}


def mlp(params, x):
  return jax.nn.relu(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def _fit(loss_fn, p0, lr, steps):
  tx = optax.adam(lr)

  def step(c, _):
    p, st = c
    g = jax.grad(loss_fn)(p)
    up, st = tx.update(g, st, p)
    return (optax.apply_updates(p, up), st), None

  (p, _), _ = jax.lax.scan(step, (p0, tx.init(p0)), None, length=steps)
  return p


def _xent(logits, y):
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


def _acc(logits, y):
  return jnp.mean(jnp.argmax(logits, -1) == y)


@functools.partial(jax.jit, static_argnames=("width", "steps"))
def _direct(keys, xtr, ytr, xte, yte, lr, *, width, steps):
  def one(key):
    p = _fit(lambda p: _xent(mlp(p, xtr), ytr), init_mlp(key, width), lr, steps)
    return _acc(mlp(p, xte), yte)
  return jax.vmap(one)(keys)


def _axis_wrap(apply_fn, theta0, d):
  """The wrong variant: theta = theta0 + (z, 0, ..., 0), an axis-aligned subspace of the first d flat parameters."""
  flat0, unravel = jax.flatten_util.ravel_pytree(theta0)
  return (lambda z, *a: apply_fn(unravel(flat0.at[:d].add(z)), *a)), jnp.zeros((d,), flat0.dtype)


@functools.partial(jax.jit, static_argnames=("width", "steps", "dmax", "projection"))
def _subspace(init_keys, proj_keys, masks, xtr, ytr, xte, yte, lr, *, width, steps, dmax, projection):
  def one(ik, pk, mask):
    theta0 = init_mlp(ik, width)
    if projection == "axis":
      wrapped, z0 = _axis_wrap(mlp, theta0, dmax)
    else:
      wrapped, z0 = idim.subspace_wrap(mlp, theta0, dmax, pk, projection=projection)
    f = lambda z: wrapped(z * mask, xtr)
    z = _fit(lambda z: _xent(f(z), ytr), z0, lr, steps)
    return _acc(wrapped(z * mask, xte), yte)
  return jax.vmap(one)(init_keys, proj_keys, masks)


def one_width(config: Config, width: int) -> dict:
  (xtr, ytr), (xte, yte) = task(config)
  base = jax.random.fold_in(jax.random.key(config.seed), width)
  seeds = jax.random.split(jax.random.fold_in(base, 0), config.seeds)
  direct = np.asarray(_direct(seeds, xtr, ytr, xte, yte, config.lr_direct, width=width, steps=config.steps))
  dmax = max(config.dims)
  runs = [(d, s) for d in config.dims for s in range(config.seeds)]
  init_keys = jnp.stack([seeds[s] for _, s in runs])                  # the same theta0 as the direct run of seed s
  proj_keys = jax.random.split(jax.random.fold_in(base, 1), len(runs))
  masks = np.stack([(np.arange(dmax) < d).astype(np.float32) for d, _ in runs])
  mesh = make_mesh(config.mesh)
  init_keys, proj_keys, masks = shard_leading((init_keys, proj_keys, masks), mesh, what="(d, seed) run")
  acc = np.asarray(_subspace(init_keys, proj_keys, masks, xtr, ytr, xte, yte, config.lr_subspace, width=width,
                             steps=config.steps, dmax=dmax, projection=config.projection)).reshape(len(config.dims), config.seeds)
  n_params = IN_DIM * width + width + width * CLASSES + CLASSES
  return {"direct": direct.tolist(), "subspace": acc.tolist(), "D": n_params}


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  out = {"widths": list(config.widths), "dims": list(config.dims), "D": {}, "baseline": {}, "subspace": {},
         "d_int90": {}}
  for i, w in enumerate(config.widths):
    res = sweep.memoized(workdir, {"width": w, "config": dataclasses.asdict(config)}, lambda w=w: one_width(config, w))
    baseline = float(np.median(res["direct"]))
    sub = np.median(np.array(res["subspace"]), axis=-1)
    out["D"][str(w)] = res["D"]
    out["baseline"][str(w)] = baseline
    out["subspace"][str(w)] = sub.tolist()
    out["d_int90"][str(w)] = idim.d_int90(config.dims, sub, baseline, fraction=config.fraction)
    log.log(i, width=w, baseline=baseline, d_int90=out["d_int90"][str(w)])
  _figure(out, config, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  dint = [results["d_int90"][str(w)] for w in results["widths"]]
  ratio = max(dint) / min(dint) if all(np.isfinite(dint)) else float("inf")
  out = [Claim.at_most("d_int90: max / min over widths", ratio, 2.0,
                       paper="roughly constant across widths (FC MNIST: ~750 for every width)", kind="paper",
                       where="Sec. 3.1, Fig. 3 (left)")]
  frac = max(results["d_int90"][str(w)] / results["D"][str(w)] for w in results["widths"])
  out.append(Claim.at_most("d_int90 / D, max over widths", frac, 0.1, paper="750 / 199,210 = 0.004 (MNIST FC)",
                           kind="paper", where="Sec. 3.1"))
  out.append(Claim.at_least("direct-training test accuracy, min over widths", min(results["baseline"].values()), 0.5,
                            paper="well above chance (0.1)", kind="sanity"))
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
  axes[1].semilogx([out["D"][str(w)] for w in config.widths], [out["d_int90"][str(w)] for w in config.widths], "o-")
  axes[1].set_xlabel("native parameters D")
  axes[1].set_ylabel("d_int90")
  axes[1].set_ylim(bottom=0)
  fig.suptitle("Intrinsic dimension is roughly independent of width (Li et al. 2018)")
  save_figure(fig, workdir / "figure.png")
