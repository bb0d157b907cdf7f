"""Training in a random subspace of parameter space, and the intrinsic dimension d_int90 of an objective landscape.

[135] Chunyuan Li, Heerad Farkhoor, Rosanne Liu, Jason Yosinski, "Measuring the Intrinsic Dimension of Objective
Landscapes", ICLR 2018, arXiv:1804.08838.

Sec. 2 of the paper: instead of the D native parameters theta^(D), train d parameters theta^(d) through

    theta^(D) = theta_0^(D) + P theta^(d),    P a fixed random D x d matrix, theta^(d) initialised at 0,

with P's columns (approximately) orthonormal: dense Gaussian columns normalised to unit length, or, for large D, the
Fastfood transform (Le, Sarlos, Smola 2013) V = H G Pi H B (Walsh-Hadamard H, random signs B, a random permutation Pi,
Gaussian diagonal G), applied in O(D log D) time without storing P. The intrinsic dimension d_int90 is the smallest d
whose subspace-trained model reaches 90% of the performance of the model trained in the full space.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Literal, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxlib_methods import validation


class FastfoodParams(NamedTuple):
  """The random pieces of one Fastfood projection R^d -> R^D (Le et al. 2013, as used by Li et al. 2018).

  Attributes:
    b: [L] random signs (B), L = 2^ceil(log2 D).
    perm: [L] int32 random permutation (Pi); a permutation of range(L), as `fastfood_params` draws it:
      `fastfood_project` declares its indices unique to XLA, so repeated indices would give wrong gradients.
    g: [L] standard normal diagonal (G).
  """
  b: jax.Array
  perm: jax.Array
  g: jax.Array


# The Walsh-Hadamard transform as a chain of small matmuls. Sylvester's H_L (L = 2^n) is the Kronecker product
# H_{2^n1} x H_{2^n2} x ... (n1 + n2 + ... = n), so H_L x is x reshaped to [2^n1, 2^n2, ...] with one small
# Hadamard matrix applied along each axis. Its transpose under autodiff is the same chain of matmuls. The radix-2
# butterfly it replaced was built from slices and stacks, whose transposes are pads: for 8 transforms of L = 2^18 on
# a 2-core AMD EPYC (jax 0.10.2) its gradient took 13 ms per transform against 0.9 ms for its value. Whole projection
# (`benchmarks/fastfood.py`, D = 199,210, d = 750, value and gradient, 8 vmapped): 15.9-17.5 ms before, 4.9-6.6 ms
# now (two runs; docs/benchmarks.md).
_HADAMARD_BITS = 5          # largest factor 2^5 = 32: the fastest of 3..7 bits per factor (same machine)


@functools.lru_cache(maxsize=None)
def _sylvester(bits: int) -> np.ndarray:
  """Sylvester's Hadamard matrix H_{2^bits} (entries +-1, symmetric), float32 (exact)."""
  h = np.ones((1, 1), np.float32)
  for _ in range(bits):
    h = np.block([[h, h], [h, -h]])
  return h


def _fwht(x):
  """Unnormalised Walsh-Hadamard transform along the last axis (length a power of 2): H x with Sylvester's H (entries
  +-1), as len(factors) matmuls with Hadamard factors of at most 2^_HADAMARD_BITS rows (full float32 precision: no
  TF32 or bf16 passes on GPU/TPU)."""
  bits = x.shape[-1].bit_length() - 1
  if bits == 0:
    return x
  k = -(-bits // _HADAMARD_BITS)
  base, extra = divmod(bits, k)
  factors = tuple(base + 1 if i < extra else base for i in range(k))
  lead = x.ndim - 1
  y = x.reshape(x.shape[:-1] + tuple(1 << f for f in factors))
  for f in reversed(factors):    # H along the last axis, which then moves to the front: after k steps, order restored
    y = jnp.matmul(y, jnp.asarray(_sylvester(f), x.dtype), precision=jax.lax.Precision.HIGHEST)
    y = jnp.moveaxis(y, -1, lead)
  return y.reshape(x.shape)


def fastfood_params(key: jax.Array, out_dim: int, *, dtype=jnp.float32) -> FastfoodParams:
  """Draw the random B, Pi, G of a Fastfood projection with output dimension D = out_dim (Li et al., "Measuring the
  Intrinsic Dimension of Objective Landscapes", ICLR 2018, arXiv:1804.08838, Sec. 2, the Fastfood projection).

  Args:
    key: PRNG key.
    out_dim: D (>= 1); the transform works on L = 2^ceil(log2 D) coordinates.
    dtype: floating dtype of b and g.

  Returns:
    `FastfoodParams` with arrays of length L.
  """
  if isinstance(out_dim, bool) or not isinstance(out_dim, int) or out_dim < 1:
    raise ValueError(f"out_dim must be a positive int, got {out_dim=!r}")
  length = 1 << max(0, math.ceil(math.log2(out_dim)))
  kb, kp, kg = jax.random.split(key, 3)
  b = jnp.where(jax.random.bernoulli(kb, 0.5, (length,)), 1.0, -1.0).astype(dtype)
  return FastfoodParams(b, jax.random.permutation(kp, length).astype(jnp.int32), jax.random.normal(kg, (length,), dtype))


def fastfood_project(params: FastfoodParams, z: jax.Array, out_dim: int) -> jax.Array:
  """P z for the Fastfood P (Li et al. 2018, arXiv:1804.08838, Sec. 2): z zero-padded to L, then H G Pi H B, the first
  D = out_dim coordinates kept, scaled by 1 / (sqrt(L sum g^2) sqrt(D / L)) so that P's d columns have unit norm and are
  orthogonal in expectation (E[P^T P] = I_d up to the normalisation's randomness).

  Args:
    params: `FastfoodParams` of length L >= max(D, d).
    z: [..., d] subspace coordinates (d <= L).
    out_dim: D (<= L).

  Returns:
    [..., D] projected vectors, in z's dtype (the normalisation is computed in float32 for half-precision z).
  """
  z = validation.check_floating(z, "z")
  length = params.b.shape[-1]
  if z.ndim < 1 or z.shape[-1] > length:
    raise ValueError(f"z must be [..., d] with d <= L = {length}, got shape {z.shape}")
  if isinstance(out_dim, bool) or not isinstance(out_dim, int) or not 1 <= out_dim <= length:
    raise ValueError(f"out_dim must be an int in [1, L = {length}], got {out_dim=!r}")
  x = jnp.pad(z, [(0, 0)] * (z.ndim - 1) + [(0, length - z.shape[-1])])
  x = _fwht(params.b.astype(z.dtype) * x)
  # Pi x as a gather whose indices are declared unique (perm is a permutation): its transpose, a scatter, then needs
  # no serialised accumulation (the plain gather's batched scatter cost ~2-4x more under vmap on CPU)
  x = x.at[..., params.perm].get(unique_indices=True, mode="clip") * params.g.astype(z.dtype)
  x = _fwht(x)[..., :out_dim]
  # The normaliser in float32 at least: in float16, L sum g^2 overflows for L >= 256 (P z = 0 silently).
  cdt = validation.compute_dtype_for(z.dtype)
  divisor = jnp.sqrt(length * jnp.sum(params.g.astype(cdt) ** 2)) * math.sqrt(out_dim / length)
  return (x.astype(cdt) / divisor).astype(z.dtype)


def dense_projection(key: jax.Array, out_dim: int, d: int, *, dtype=jnp.float32) -> jax.Array:
  """The dense random P [D, d] of Li et al. 2018 (arXiv:1804.08838, Sec. 2): i.i.d. N(0, 1) entries, each column
  normalised to unit length (approximately orthonormal columns for d << D).

  Args:
    key: PRNG key.
    out_dim: D (>= 1).
    d: subspace dimension (>= 1).
    dtype: floating dtype.

  Returns:
    [D, d] matrix with unit-norm columns, in `dtype` (normalised in float32 for half precision).
  """
  for name, val in (("out_dim", out_dim), ("d", d)):
    if isinstance(val, bool) or not isinstance(val, int) or val < 1:
      raise ValueError(f"{name} must be a positive int, got {name}={val!r}")
  p = jax.random.normal(key, (out_dim, d), dtype)
  # Column norms in float32 at least: in float16, sum p^2 overflows for D > 65504 (P = 0 silently).
  p32 = p.astype(validation.compute_dtype_for(p.dtype))
  return (p32 / jnp.linalg.norm(p32, axis=0, keepdims=True)).astype(p.dtype)


def subspace_wrap(apply_fn: Callable[..., Any], theta0: Any, d: int, key: jax.Array, *,
                  projection: Literal["dense", "fastfood"] = "dense") -> tuple[Callable[..., Any], jax.Array]:
  """Reparameterise a model onto a random d-dimensional subspace: theta = theta0 + P z (Li et al., "Measuring the
  Intrinsic Dimension of Objective Landscapes", ICLR 2018, arXiv:1804.08838, Eq. 2).

  `apply_fn(params, *args, **kwargs)` is any function of a parameter pytree; the wrapped function takes z [d] in its
  place. Only z is trained; theta0 and P are fixed (closed over: P is drawn here from `key`, dense as a [D, d] matrix
  or Fastfood as O(D) random numbers). The result is jit-, vmap- and grad-safe in z.

  Args:
    apply_fn: the model, `apply_fn(params, *args, **kwargs)`.
    theta0: the initial parameter pytree theta_0 (floating leaves; D numbers in all).
    d: subspace dimension (>= 1; for 'dense' at most D).
    key: PRNG key for P.
    projection: 'dense' (Gaussian, unit-norm columns) or 'fastfood'.

  Returns:
    (wrapped_apply(z, *args, **kwargs), z0) with z0 = zeros [d] (theta = theta0 at z0), in theta0's dtype.
  """
  if not callable(apply_fn):
    raise TypeError(f"apply_fn must be callable apply_fn(theta, *args), got {type(apply_fn).__name__}")
  validation.check_float_tree(theta0, "theta0")
  flat0, unravel = ravel_pytree(theta0)
  big_d = flat0.shape[0]
  if isinstance(d, bool) or not isinstance(d, int) or d < 1:
    raise ValueError(f"d must be a positive int, got {d=!r}")
  if projection == "dense":
    if d > big_d:
      raise ValueError(f"d must be <= D = {big_d} (the number of parameters) for a dense projection, got {d=}")
    p = dense_projection(key, big_d, d, dtype=flat0.dtype)
    project = lambda z: p @ z
  elif projection == "fastfood":
    ff = fastfood_params(key, big_d, dtype=flat0.dtype)
    if d > ff.b.shape[0]:
      raise ValueError(f"d must be <= L = {ff.b.shape[0]} for a Fastfood projection, got {d=}")
    project = lambda z: fastfood_project(ff, z, big_d)
  else:
    raise ValueError(f"projection must be 'dense' or 'fastfood', got {projection=!r}")

  def wrapped(z, *args, **kwargs):
    return apply_fn(unravel(flat0 + project(z)), *args, **kwargs)

  return wrapped, jnp.zeros((d,), flat0.dtype)


def d_int90(dims: Sequence[int], performance: Sequence[float], baseline: float, *, fraction: float = 0.9) -> float:
  """The intrinsic dimension d_int90 (Li et al. 2018, arXiv:1804.08838, Sec. 2): the smallest tested subspace
  dimension d whose performance reaches `fraction` (90%) of the full-space baseline's. Performance is
  higher-is-better (e.g. accuracy); dims need not be sorted.

  Args:
    dims: the tested subspace dimensions (positive integers; integer-valued floats are accepted).
    performance: the performance at each dim (same length).
    baseline: the full-space (direct training) performance (> 0).
    fraction: the threshold fraction of the baseline, in (0, 1].

  Returns:
    The smallest d with performance >= fraction * baseline, as a float; inf if none reaches it.

  Raises:
    ValueError: a dim is not a positive integer, or the shapes disagree.
  """
  dims = np.asarray(dims)
  performance = np.asarray(performance, np.float64)
  if dims.ndim != 1 or dims.shape != performance.shape or dims.size == 0:
    raise ValueError(f"dims and performance must be non-empty 1-D of equal length, got {dims.shape} and "
                     f"{performance.shape}")
  if dims.dtype == np.bool_ or not (np.issubdtype(dims.dtype, np.integer) or np.issubdtype(dims.dtype, np.floating)):
    raise ValueError(f"dims must be positive integers, got dims.dtype={dims.dtype}")
  bad = ~(np.isfinite(dims) & (dims >= 1) & (dims == np.round(dims)))
  if bad.any():
    raise ValueError(f"dims must be positive integers (subspace dimensions), got {dims[bad][:5].tolist()}")
  validation.check_positive(baseline, "baseline")
  validation.check_in_interval(fraction, "fraction", 0.0, 1.0, closed_low=False)
  ok = performance >= fraction * baseline
  return float(np.min(dims[ok])) if ok.any() else float("inf")
