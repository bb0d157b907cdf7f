"""A probabilistic circuit (sum-product network) over binary variables, its exact marginals, and a lossless coder.

Anji Liu, Stephan Mandt, Guy Van den Broeck, "Lossless Compression with Probabilistic Circuits", ICLR 2022,
arXiv:2111.11632. A PC is smooth and decomposable, so any marginal p(x_S) is ONE feed-forward pass with the input
units of the marginalised variables set to 1 (Sec. 2); the coder codes x_{pi(1)}, ..., x_{pi(D)} with the
conditionals p(x_{pi(t)} | x_{pi(<t)}) = p(x_{pi(<=t)}) / p(x_{pi(<t)}) (Sec. 3, Eq. (1)-(2)), so its ideal length is
-log2 p(x) by telescoping.

- `ProbabilisticCircuit`: a balanced binary-tree region graph over D = 2^L variables (a RAT-SPN/HCLT-like layered
  PC, not the paper's learnt HCLT structure): K Bernoulli input units per variable; at each level the regions are
  paired, their K x K product units formed, and K sum units per region mix them; one root sum unit.
- `pc_conditional_marginals(pc, x, order)`: all D conditionals p(x_{pi(t)} = 1 | x_{pi(<t)}), computed as 2D
  marginal passes (vmapped): O(D |p|), the naive scheme, NOT the paper's O(log(D) |p|) Algorithm 1.
- `arithmetic_encode` / `arithmetic_decode`: an exact arithmetic (Shannon-Fano-Elias interval) coder on Python big
  integers with P(1) quantised to `precision` bits: the code of a message is the shortest dyadic interval inside the
  message's interval, so its length is <= -log2 prod_t q_t + 2 bits (q_t the quantised conditionals). The paper
  streams with rANS; this coder is exact (no renormalisation), slower, and serves toy sizes.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlib_methods import validation



class ProbabilisticCircuit(nnx.Module):
  """A layered, smooth and decomposable PC over D binary variables (Liu, Mandt, Van den Broeck, ICLR 2022,
  arXiv:2111.11632, Sec. 2: sum units mix children over the same scope, product units join disjoint scopes).

  Region graph: a balanced binary tree over the variables in index order (level l has D / 2^l regions). Inputs:
  K Bernoulli units per variable, p = sigmoid(leaf_logits[i, k]). Level l >= 1: for region r with children a, b,
  the K^2 product units a_i * b_j, and K sum units (1 at the root), each with softmax weights over the K^2 products
  (`level_logits`, one [regions, K_out, K^2] table per level).
  Parameters: D K + sum_l (D / 2^l) K_out K^2.

  Args:
    num_vars: D, a power of two >= 2.
    num_units: K >= 1 units per region.
    param_dtype: dtype of the parameters.
    rngs: nnx.Rngs with a 'params' stream.
  """

  def __init__(self, num_vars: int, num_units: int, *, param_dtype=jnp.float32, rngs: nnx.Rngs):
    D = validation.check_int(num_vars, "num_vars", 2)
    K = validation.check_int(num_units, "num_units", 1)
    if D & (D - 1):
      raise ValueError(f"num_vars must be a power of two (balanced region tree), got {num_vars=}")
    self.num_vars, self.num_units, self.levels = D, K, D.bit_length() - 1
    shapes = [(D, K)] + [(D >> l, 1 if l == self.levels else K, K * K) for l in range(1, self.levels + 1)]
    sizes = [math.prod(s) for s in shapes]
    # one normal draw for every table (one small compile, not one per shape): N(0, 1) leaves, 0.1 N(0, 1) sums
    flat = np.asarray(jax.random.normal(rngs.params(), (sum(sizes),), jnp.float32))
    tables, start = [], 0
    for i, (shape, size) in enumerate(zip(shapes, sizes)):
      tables.append(jnp.asarray((1.0 if i == 0 else 0.1) * flat[start:start + size].reshape(shape), param_dtype))
      start += size
    self.leaf_logits = nnx.Param(tables[0])
    logits = [nnx.Param(t) for t in tables[1:]]
    self.level_logits = nnx.List(logits)

  def num_params(self) -> int:
    """D K + sum_l regions_l K_out,l K^2."""
    return int(self.leaf_logits[...].size + sum(w[...].size for w in self.level_logits))

  def log_prob(self, x, mask=None) -> jax.Array:
    """log p(x_S), S = the variables where `mask` is True (all when mask is None): the marginal of the observed
    variables (inputs of unobserved ones set to 1, Sec. 2 of the paper).

    Args:
      x: [..., D] binary values (int or bool; values at unobserved positions are ignored).
      mask: optional [..., D] (or [D]) bool, True = observed.

    Returns:
      [...] float32 log-probabilities (natural log).
    """
    x = jnp.asarray(x)
    if x.shape[-1:] != (self.num_vars,):
      raise ValueError(f"x must be [..., D] with D = num_vars = {self.num_vars}, got x.shape={x.shape}")
    if not (jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == jnp.bool_):
      raise TypeError(f"x must hold binary integers or bools, got x.dtype={x.dtype}")
    if mask is None:
      mask = jnp.ones(x.shape[-1:], bool)
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
      raise TypeError(f"mask must be bool (True = observed), got mask.dtype={mask.dtype}")
    return _log_prob(self.leaf_logits[...], tuple(w[...] for w in self.level_logits), x, mask)

  def __call__(self, x, mask=None) -> jax.Array:
    return self.log_prob(x, mask)


@jax.jit
def _log_prob(leaf_logits, level_logits, x, mask):
  """The layered PC's forward pass in log space (one compiled program: eager op-by-op dispatch is slow)."""
  l = leaf_logits.astype(jnp.float32)
  h = jnp.where((x == 1)[..., None], jax.nn.log_sigmoid(l), jax.nn.log_sigmoid(-l))       # [..., D, K]
  h = jnp.where(mask[..., None], h, 0.0)                  # unobserved variables: input units = 1 (log 0)
  K = l.shape[-1]
  for w in level_logits:
    a, b = h[..., 0::2, :], h[..., 1::2, :]
    prod = (a[..., :, None] + b[..., None, :]).reshape(h.shape[:-2] + (h.shape[-2] // 2, K * K))
    logw = jax.nn.log_softmax(w.astype(jnp.float32), axis=-1)                               # [R, K_out, K^2]
    h = jax.nn.logsumexp(prod[..., None, :] + logw, axis=-1)                                  # [..., R, K_out]
  return h[..., 0, 0]


def _check_order(order, D: int) -> np.ndarray:
  o = np.asarray(order)
  if o.shape != (D,) or not np.issubdtype(o.dtype, np.integer) or sorted(o.tolist()) != list(range(D)):
    raise ValueError(f"order must be a permutation of range(D = {D}), got order={order!r}")
  return o


def pc_conditional_marginals(pc: ProbabilisticCircuit, x, order) -> jax.Array:
  """p(x_{pi(t)} = 1 | x_{pi(1)}, ..., x_{pi(t-1)}) for t = 1..D (Liu et al. 2022, arXiv:2111.11632, Eq. (2)):
  the ratio of the marginals p(x_{pi(<t)}, x_{pi(t)} = 1) / p(x_{pi(<t)}), each one PC pass. This is the naive
  O(D |p|) scheme (2D marginal passes, vmapped), not the paper's O(log(D) |p|) Algorithm 1.

  Args:
    pc: the circuit.
    x: [..., D] binary values.
    order: a permutation of range(D) (static; the coding order pi).

  Returns:
    [..., D] float32: entry t is the conditional of variable order[t].
  """
  D = pc.num_vars
  o = _check_order(order, D)
  x = jnp.asarray(x)
  if x.shape[-1:] != (D,):
    raise ValueError(f"x must be [..., D] with D = num_vars = {D}, got x.shape={x.shape}")
  rank = np.empty(D, np.int64)
  rank[o] = np.arange(D)
  prefix = rank[None, :] < np.arange(D)[:, None]                # [t, j]: j observed before step t
  with_t = prefix | (rank[None, :] == np.arange(D)[:, None])
  ones = jnp.zeros((D, D), x.dtype).at[np.arange(D), o].set(1)   # x with x_{pi(t)} := 1, per t
  xt = jnp.where(jnp.asarray(with_t & ~prefix), ones, x[..., None, :])   # [..., t, D]
  lp_prefix = pc.log_prob(jnp.broadcast_to(x[..., None, :], xt.shape), jnp.asarray(prefix))
  lp_one = pc.log_prob(xt, jnp.asarray(with_t))
  return jnp.exp(jnp.minimum(lp_one - lp_prefix, 0.0))


# ---- the coder (exact integers, host side) ----------------------------------------------------------------------------
def quantize_probability(p_one, precision: int) -> np.ndarray:
  """P(1) -> integer q in [1, 2^precision - 1] (P(1) ~ q / 2^precision; both symbols keep a nonzero interval).

  The quantised conditionals q_t of the coder (Liu et al., "Lossless Compression with Probabilistic Circuits", ICLR
  2022, arXiv:2111.11632, Sec. 3). p_one: scalar or array [...] -> int64 array of the same shape.
  """
  precision = validation.check_int(precision, "precision", 1)
  p = np.asarray(p_one, np.float64)
  return np.clip(np.rint(p * 2.0 ** precision), 1, 2 ** precision - 1).astype(np.int64)


def arithmetic_encode(bits, q_one, precision: int) -> tuple[int, int]:
  """Exact arithmetic coding of one binary message (Liu et al. 2022, arXiv:2111.11632, Sec. 3: any streaming code
  driven by the PC's conditionals; this one is the Shannon-Fano-Elias interval code on big integers).

  The message's interval is [low, low + width) / 2^(P D), where symbol t narrows it to its q0 = 2^P - q1 (bit 0,
  lower part) or q1 (bit 1, upper part) share; the code is the shortest n-bit c with [c, c + 1) / 2^n inside it, so
  n <= -log2(width / 2^(P D)) + 2.

  Args:
    bits: [D] ints in {0, 1}.
    q_one: [D] ints in [1, 2^P - 1], the quantised P(bit_t = 1 | earlier bits) (`quantize_probability`).
    precision: P.

  Returns:
    (c, n): the code as an integer and its length in bits.
  """
  P = validation.check_int(precision, "precision", 1)
  bits, q_one = np.asarray(bits).reshape(-1), np.asarray(q_one).reshape(-1)
  if bits.shape != q_one.shape:
    raise ValueError(f"bits and q_one must have the same length, got {bits.shape} and {q_one.shape}")
  if not np.isin(bits, (0, 1)).all():
    raise ValueError("bits must hold 0/1 values")
  if q_one.size and (q_one.min() < 1 or q_one.max() > 2 ** P - 1):
    raise ValueError(f"q_one must lie in [1, 2^precision - 1] = [1, {2 ** P - 1}]")
  low, width, scale = 0, 1, 1 << P
  for b, q1 in zip(bits.tolist(), q_one.tolist()):
    q0 = scale - q1
    low = low * scale + (width * q0 if b else 0)
    width = width * (q1 if b else q0)
  total = P * bits.size
  n = max(0, total - width.bit_length() + 1)
  while True:                               # smallest n with a dyadic [c, c+1) / 2^n inside [low, low + width)
    c = -((-low << n) >> total)             # ceil(low 2^n / 2^total)
    if ((c + 1) << total) <= ((low + width) << n):
      return c, n
    n += 1


def arithmetic_decode(code: int, num_bits: int, length: int, q_one_fn: Callable[[int, list], int],
                      precision: int) -> list:
  """Invert `arithmetic_encode`: symbol t is decoded with q1 = q_one_fn(t, bits_so_far) (the decoder computes the
  same conditionals from the bits it has already decoded; Liu et al., "Lossless Compression with Probabilistic
  Circuits", ICLR 2022, arXiv:2111.11632, Sec. 3, Eq. (1)-(2)).

  Args:
    code: c from the encoder.
    num_bits: n from the encoder.
    length: D, the number of symbols.
    q_one_fn: (t, decoded prefix) -> quantised P(1) of symbol t.
    precision: P (as encoded).

  Returns:
    The decoded bits (list of D ints).
  """
  P = validation.check_int(precision, "precision", 1)
  low, width, scale, out = 0, 1, 1 << P, []
  for t in range(length):
    q1 = int(q_one_fn(t, out))
    q0 = scale - q1
    split = low * scale + width * q0        # units 2^-(P (t + 1)); c / 2^n < split  <=>  bit 0
    if (code << (P * (t + 1))) < (split << num_bits):
      low, width = low * scale, width * q0
      out.append(0)
    else:
      low, width = split, width * q1
      out.append(1)
  return out
