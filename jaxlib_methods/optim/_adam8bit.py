"""8-bit block-wise Adam (bitsandbytes' `Adam8bit`), the inner optimizer of Q-GaLore's official code.

Paper: Tim Dettmers, Mike Lewis, Sam Shleifer, Luke Zettlemoyer, "8-bit Optimizers via Block-wise Quantization",
ICLR 2022, arXiv:2110.02861 (Sec. 2: block-wise quantisation and the dynamic data type). Q-GaLore (Zhang et al. 2024,
arXiv:2407.08296) runs its projected Adam through bitsandbytes' `Optimizer2State("adam", optim_bits=8,
block_wise=True)`, and its `min_8bit_size=4096`. What the CUDA kernel does per step (read from bitsandbytes'
`kOptimizerStatic8bit2StateBlockwise`; block size 2048 in the versions Q-GaLore pins, 256 in later ones):

    m, v   = code_m[c_m] * absmax_m[block], code_v[c_v] * absmax_v[block]      dequantise
    m      = b1 m + (1 - b1) g ;  v = b2 v + (1 - b2) g^2                     float32
    u      = sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps * sqrt(1 - b2^t))  = m_hat / (sqrt(v_hat) + eps)
    absmax = max |m| (|v|) over each block of `block_size` consecutive entries (row-major)
    c      = the nearest code to m / absmax (v / absmax); for m, a code of the wrong sign is moved one step towards
             the right sign (zero counts as positive)

with `code_m` the signed and `code_v` the unsigned dynamic quantisation map (`dynamic_map`): 7 decades of linearly
spaced values, more resolution near zero. The update uses the unquantised new moments; only the stored state is 8-bit.
Leaves with fewer than `min_8bit_size` entries keep float32 moments (plain Adam), as bitsandbytes does.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods import validation
from jaxlib_methods.optim import _contracts

SCALE_BY_ADAM_8BIT_STATIC_ARGS = ("block_size", "min_8bit_size")


def dynamic_map(signed: bool = True) -> np.ndarray:
  """The 256 sorted float32 values of bitsandbytes' dynamic quantisation map (`create_dynamic_map`, defaults).

  Dettmers et al. 2022 (arXiv:2110.02861, Sec. 2.2, "dynamic tree quantization"): for exponent level i = 0..6 the
  midpoints of 2^i (signed; 2^(i+1) unsigned) equal steps of [0.1, 1], scaled by 10^(i - 6), with their negatives
  when signed; plus 0 and 1. Signed: 127 negative, 0, 127 positive, 1 (256). Unsigned: 0, 254 positive, 1.
  """
  vals = [0.0, 1.0]
  for i in range(7):
    n = 2 ** i if signed else 2 ** (i + 1)
    edges = np.linspace(0.1, 1.0, n + 1)
    level = (10.0 ** (i - 6)) * (edges[:-1] + edges[1:]) / 2.0
    vals.extend(level.tolist())
    if signed:
      vals.extend((-level).tolist())
  out = np.sort(np.asarray(vals, np.float64)).astype(np.float32)
  assert out.shape == (256,)
  return out


class BlockQuantized(NamedTuple):
  """A block-wise 8-bit array: uint8 `codes` (the original shape) and float32 per-block `absmax`.

  Dettmers et al., "8-bit Optimizers via Block-wise Quantization", ICLR 2022, arXiv:2110.02861 (Sec. 2).

  codes: uint8, the shape of the quantised array; absmax: float32 (ceil(size / block_size),).
  """
  codes: jax.Array
  absmax: jax.Array


def _blocks(x: jax.Array, block_size: int) -> jax.Array:
  flat = x.reshape(-1)
  nb = -(-flat.size // block_size)
  return jnp.pad(flat, (0, nb * block_size - flat.size)).reshape(nb, block_size)


def quantize_blockwise(x: jax.Array, code: jax.Array, block_size: int, *, signed: bool) -> BlockQuantized:
  """Nearest-code block-wise quantisation of `x` (any shape) with the sorted 256-entry map `code` (bitsandbytes'
  `quantize_blockwise` as its optimizer kernel does it, including the sign correction for signed maps).

  Dettmers et al., "8-bit Optimizers via Block-wise Quantization", ICLR 2022, arXiv:2110.02861 (Sec. 2).

  x: any shape; code: [256] sorted float32; returns a `BlockQuantized` with uint8 codes of x's shape and float32
  absmax of shape (ceil(x.size / block_size),).
  """
  xb = _blocks(x.astype(jnp.float32), block_size)
  absmax = jnp.max(jnp.abs(xb), axis=1)
  safe = jnp.where(absmax > 0, absmax, 1.0)
  y = xb / safe[:, None]
  hi = jnp.clip(jnp.searchsorted(code, y), 0, 255)
  lo = jnp.clip(hi - 1, 0, 255)
  c = jnp.where(jnp.abs(y - code[lo]) <= jnp.abs(code[hi] - y), lo, hi)  # ties go to the lower code
  if signed:
    wrong = jnp.signbit(code[c]) != jnp.signbit(y)
    c = jnp.where(wrong, jnp.where(y > 0, c + 1, c - 1), c)
  codes = c.astype(jnp.uint8).reshape(-1)[:x.size].reshape(x.shape)
  return BlockQuantized(codes, absmax)


def dequantize_blockwise(q: BlockQuantized, code: jax.Array, block_size: int) -> jax.Array:
  """code[c] * absmax[block], float32, the codes' shape.

  Dettmers et al., "8-bit Optimizers via Block-wise Quantization", ICLR 2022, arXiv:2110.02861 (Sec. 2).

  q: `BlockQuantized` (codes of any shape, absmax (ceil(size / block_size),)); code: [256]; returns float32 with the
  codes' shape.
  """
  shape = q.codes.shape
  vals = code[_blocks(q.codes, block_size).astype(jnp.int32)] * q.absmax[:, None]
  return vals.reshape(-1)[:math.prod(shape)].reshape(shape)


class ScaleByAdam8bitState(NamedTuple):
  """State of `scale_by_adam_8bit`; `mu`, `nu`, `mu_absmax`, `nu_absmax` mirror the params' tree.

  count: int32 step count.
  mu, nu: uint8 codes shaped like each leaf (8-bit leaves), or float32 moments (leaves under `min_8bit_size`).
  mu_absmax, nu_absmax: float32 per-block scales (ceil(size / block_size),) of 8-bit leaves; a scalar placeholder
    for float32 leaves.

  Dettmers et al., "8-bit Optimizers via Block-wise Quantization", ICLR 2022, arXiv:2110.02861 (Sec. 2), the inner
  optimizer of Q-GaLore (Zhang et al. 2024, arXiv:2407.08296).
  """
  count: chex.Array
  mu: optax.Updates
  nu: optax.Updates
  mu_absmax: optax.Updates
  nu_absmax: optax.Updates


@_contracts.nan_on_invalid_injected
def scale_by_adam_8bit(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, *, block_size: int = 2048,
                       min_8bit_size: int = 4096) -> optax.GradientTransformation:
  """Adam's direction m_hat / (sqrt(v_hat) + eps) with block-wise 8-bit moments (bitsandbytes `Adam8bit`).

  Dettmers, Lewis, Shleifer, Zettlemoyer, "8-bit Optimizers via Block-wise Quantization" (ICLR 2022,
  arXiv:2110.02861), Sec. 2; the algorithm of bitsandbytes' block-wise 8-bit Adam kernel (module docstring). The
  direction of each step is computed from the dequantised-then-updated float32 moments, so a step equals
  `optax.scale_by_adam` run from the dequantised state; the state stored between steps is 8-bit (2 bytes per entry
  plus 8 bytes per block, vs 8 for float32 Adam). Real leaves only (complex moments have no 8-bit map here).

  Args:
    b1, b2: moment decays in [0, 1) (Q-GaLore's scripts use b2 = 0.95).
    eps: added to sqrt(v_hat), >= 0.
    block_size: entries per quantisation block (2048 in the bitsandbytes versions Q-GaLore pins; 256 in later ones).
      Static.
    min_8bit_size: leaves with fewer entries keep float32 moments (4096 in bitsandbytes). Static.

  Returns:
    An `optax.GradientTransformation` with state `ScaleByAdam8bitState`; updates have the gradients' shapes and
    dtypes.

  Example:
    >>> import jax.numpy as jnp
    >>> tx = scale_by_adam_8bit(min_8bit_size=0, block_size=4)
    >>> u, s = tx.update({"w": jnp.ones(8)}, tx.init({"w": jnp.zeros(8)}))
    >>> s.mu["w"].dtype
    dtype('uint8')

  References:
    Dettmers, Lewis, Shleifer, Zettlemoyer. "8-bit Optimizers via Block-wise Quantization". ICLR 2022.
    arXiv:2110.02861.
  """
  constant = "SCALE_BY_ADAM_8BIT_STATIC_ARGS"
  validation.check_in_interval(b1, "b1", 0.0, 1.0, closed_high=False)
  validation.check_in_interval(b2, "b2", 0.0, 1.0, closed_high=False)
  validation.check_nonnegative(eps, "eps")
  block_size = _contracts.static_int(block_size, "block_size", constant)
  min_8bit_size = _contracts.static_int(min_8bit_size, "min_8bit_size", constant, low=0)
  code_m = jnp.asarray(dynamic_map(signed=True))
  code_v = jnp.asarray(dynamic_map(signed=False))

  def is_8bit(x) -> bool:
    return math.prod(jnp.shape(x)) >= max(min_8bit_size, 1)

  def init_fn(params):
    _contracts.check_inexact_leaves(params, "scale_by_adam_8bit")
    for path, x in jax.tree_util.tree_flatten_with_path(params)[0]:
      if jnp.issubdtype(jnp.result_type(x), jnp.complexfloating) and is_8bit(x):
        raise TypeError(f"scale_by_adam_8bit: leaf {jax.tree_util.keystr(path)} is complex; the 8-bit maps are real "
                        f"(raise min_8bit_size above its size to keep it in float32)")

    def moment(x):
      if is_8bit(x):
        return jnp.zeros_like(x, dtype=jnp.uint8)
      return jnp.zeros_like(x, dtype=jnp.promote_types(jnp.result_type(x), jnp.float32))

    def absmax(x):
      return jnp.zeros((-(-math.prod(jnp.shape(x)) // block_size),), jnp.float32) if is_8bit(x) else jnp.zeros((), jnp.float32)

    mu = jax.tree.map(moment, params)
    return ScaleByAdam8bitState(count=jnp.zeros([], jnp.int32), mu=mu, nu=jax.tree.map(moment, params),
                                mu_absmax=jax.tree.map(absmax, params), nu_absmax=jax.tree.map(absmax, params))

  def update_fn(updates, state, params=None):
    del params
    _contracts.check_same_tree(updates, state.mu, "scale_by_adam_8bit")
    count = optax.safe_increment(state.count)
    t = count.astype(jnp.float32)
    c1 = 1.0 - jnp.asarray(b1, jnp.float32) ** t
    c2 = jnp.sqrt(1.0 - jnp.asarray(b2, jnp.float32) ** t)

    def leaf(g, mu, nu, am, av):
      if mu.dtype != jnp.uint8:  # small leaf: float32 Adam
        m = b1 * mu + (1 - b1) * g.astype(mu.dtype)
        v = b2 * nu + (1 - b2) * jnp.abs(g.astype(mu.dtype)) ** 2
        u = (m / c1) / (jnp.sqrt(v / (c2 * c2)) + eps)
        return u.astype(g.dtype), m, v, am, av
      mr, nr = _contracts.replicated(mu), _contracts.replicated(nu)
      m = b1 * dequantize_blockwise(BlockQuantized(mr, am), code_m, block_size) + (1 - b1) * \
          _contracts.replicated(g).astype(jnp.float32)
      v = b2 * dequantize_blockwise(BlockQuantized(nr, av), code_v, block_size) + (1 - b2) * \
          jnp.square(_contracts.replicated(g).astype(jnp.float32))
      u = (c2 / c1) * m / (jnp.sqrt(v) + eps * c2)
      qm = quantize_blockwise(m, code_m, block_size, signed=True)
      qv = quantize_blockwise(v, code_v, block_size, signed=False)
      spec = _contracts.param_spec(g)
      return (_contracts.reshard_like(u, spec, g).astype(g.dtype), _contracts.reshard_like(qm.codes, spec, g),
              _contracts.reshard_like(qv.codes, spec, g), qm.absmax, qv.absmax)

    treedef = jax.tree.structure(updates)
    cols = [treedef.flatten_up_to(t) for t in (updates, state.mu, state.nu, state.mu_absmax, state.nu_absmax)]
    outs = [leaf(*args) for args in zip(*cols)]
    u, mu, nu, am, av = (treedef.unflatten(list(col)) for col in zip(*outs)) if outs else (updates,) * 5
    return u, ScaleByAdam8bitState(count=count, mu=mu, nu=nu, mu_absmax=am, nu_absmax=av)

  return optax.GradientTransformation(init_fn, update_fn)


scale_by_adam_8bit.STATIC_ARGS = SCALE_BY_ADAM_8BIT_STATIC_ARGS
