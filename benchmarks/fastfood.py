"""Random-subspace projections P z of [135]: value-and-gradient time of the Fastfood transform against a dense P.

Li, Farkhoor, Liu, Yosinski, "Measuring the Intrinsic Dimension of Objective Landscapes", ICLR 2018 (arXiv:1804.08838,
Sec. 2) train z [d] through theta = theta0 + P z, with P either a dense Gaussian [D, d] matrix (D * d numbers stored)
or the Fastfood transform H G Pi H B (O(D) numbers, O(D log D) time). This script times one training step's share of
the projection, `jax.grad(z -> <P z, c>)` (the forward P z and the backward P^T g), for R independent projections
vmapped together as `experiments/intrinsic_dimension_widths` runs them, at the paper's MNIST FC sizes:

- `fastfood`: `jaxlib_methods.analysis.fastfood_project` (Hadamard transform as small matmuls, unique-index gather);
- `fastfood_radix2`: the same construction with the radix-2 butterfly Hadamard transform and plain gather that the
  library used before 2026-12-02, kept here as a reference (its autodiff transpose is built from pads and a scatter);
- `dense`: P z with a stored dense P [D, d] (`dense_projection`), the anchor: ratios are time / dense's.

Every row is checked against the library's `fastfood_project` (same B, Pi, G) before it is timed.

Usage:  .venv/bin/python benchmarks/fastfood.py [--runs 8] [--reps 10] [--dims 750] [--nets 784-50-50-10 ...]
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods.analysis import dense_projection, fastfood_params, fastfood_project

# D of the paper's MNIST FC nets 784-W-W-10: W = 50 and W = 200 (the reference net, d_int90 = 750 in the paper)
SIZES = {"784-50-50-10": 42_310, "784-200-200-10": 199_210}


def _radix2_fwht(x):
  """The previous implementation: unnormalised Walsh-Hadamard transform by radix-2 butterflies (slices and stacks)."""
  length = x.shape[-1]
  h = 1
  while h < length:
    x = x.reshape(x.shape[:-1] + (length // (2 * h), 2, h))
    x = jnp.stack([x[..., 0, :] + x[..., 1, :], x[..., 0, :] - x[..., 1, :]], axis=-2)
    x = x.reshape(x.shape[:-3] + (length,))
    h *= 2
  return x


def _radix2_project(params, z, out_dim):
  length = params.b.shape[-1]
  x = jnp.pad(z, [(0, 0)] * (z.ndim - 1) + [(0, length - z.shape[-1])])
  x = _radix2_fwht(params.b * x)
  x = jnp.take(x, params.perm, axis=-1) * params.g
  x = _radix2_fwht(x)[..., :out_dim]
  return x / (jnp.sqrt(length * jnp.sum(params.g ** 2)) * math.sqrt(out_dim / length))


def _time(fn, args, reps):
  jax.block_until_ready(fn(*args))
  best = math.inf
  for _ in range(reps):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - t)
  return best


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--runs", type=int, default=8, help="R projections vmapped together (default 8)")
  ap.add_argument("--reps", type=int, default=10, help="timed repetitions; the best is reported (default 10)")
  ap.add_argument("--dims", type=int, nargs="+", default=[750], help="subspace dimensions d (default 750)")
  ap.add_argument("--nets", nargs="+", default=list(SIZES), choices=list(SIZES), help="which nets' D (default both)")
  args = ap.parse_args(argv)
  print(f"jax {jax.__version__}, {jax.devices()[0].platform}, {platform.processor() or platform.machine()}, "
        f"R = {args.runs} vmapped projections, best of {args.reps}")
  print("| net | D | d | method | grad ms / projection | / dense | stored P (MB / projection) |")
  print("|---|---|---|---|---|---|---|")
  for net in args.nets:
    big_d = SIZES[net]
    for d in args.dims:
      keys = jax.random.split(jax.random.key(0), args.runs)
      ff = jax.vmap(lambda k: fastfood_params(k, big_d))(keys)
      dense = jax.vmap(lambda k: dense_projection(k, big_d, d))(keys)
      z = jax.random.normal(jax.random.key(1), (args.runs, d))
      c = jax.random.normal(jax.random.key(2), (big_d,))
      methods = {"fastfood": (lambda p, z: fastfood_project(p, z, big_d), ff),
                 "fastfood_radix2": (lambda p, z: _radix2_project(p, z, big_d), ff),
                 "dense": (lambda p, z: p @ z, dense)}
      want = np.asarray(jax.jit(jax.vmap(lambda p, z: fastfood_project(p, z, big_d)))(ff, z))
      got = np.asarray(jax.jit(jax.vmap(lambda p, z: _radix2_project(p, z, big_d)))(ff, z))
      err = np.max(np.abs(got - want)) / np.max(np.abs(want))
      if err > 1e-5:
        raise SystemExit(f"radix-2 reference disagrees with fastfood_project: relative error {err:.2e}")
      times = {}
      for name, (proj, p) in methods.items():
        grad = jax.jit(jax.vmap(jax.grad(lambda z, p: jnp.vdot(proj(p, z), c)), in_axes=(0, 0)))
        times[name] = _time(grad, (z, p), args.reps) / args.runs
      for name in methods:
        size = (f"{4 * big_d * d / 2 ** 20:.1f}" if name == "dense"
                else f"{3 * 4 * ff.b.shape[-1] / 2 ** 20:.1f} (B, Pi, G)")
        print(f"| {net} | {big_d:,} | {d} | {name} | {times[name] * 1e3:.2f} | {times[name] / times['dense']:.2f} "
              f"| {size} |", flush=True)


if __name__ == "__main__":
  main()
