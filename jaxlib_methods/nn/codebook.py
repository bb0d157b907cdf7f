"""Codebook features: a sparse, discrete bottleneck that replaces an activation by the sum of its k most similar codes.

Paper [35]: Alex Tamkin, Mohammad Taufeeque, Noah D. Goodman, "Codebook Features: Sparse and Discrete
Interpretability for Neural Networks", ICML 2024, arXiv:2310.17230 (Sec. 2, the codebook bottleneck). For an
activation a in R^D and a codebook {c_1..c_C}, pick the k codes of largest cosine similarity a.c_i / (|a| |c_i|) and
output q = sum of the k chosen codes. The selection is discrete: the activation receives the output's gradient
unchanged (straight-through: out = q + a - stop_gradient(a), so d out / d a = I), the chosen codes receive the
output's gradient through q, and the codes are also pulled toward the activations by the codebook reconstruction
loss ||stop_gradient(a) - q||^2 (the authors' released code adds this MSE's gradient to the codebook's only).
Interventions set a code on: `force_code` makes the given code one of the k selected at every position.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods import validation
from jaxlib_methods._norms import l2_normalize


def _unit(x):
  x32 = x.astype(jnp.float32)
  return l2_normalize(x32)


class CodebookLayer(nnx.Module):
  """Codebook bottleneck: top-k cosine-similarity codes, output their sum, straight-through to the input (Tamkin et
  al. 2023, arXiv:2310.17230, Sec. 2).

  Args:
    dim: D, activation dimension.
    num_codes: C, codebook size.
    k: codes per activation, in [1, C].
    rngs: PRNG streams (`params`).
    param_dtype: parameter dtype.

  Shapes: __call__ [..., D] -> (out [..., D], codes [..., k] int32 in decreasing similarity, q [..., D] the codebook
  reconstruction used by `codebook_loss`).
  """

  def __init__(self, dim: int, num_codes: int, *, k: int = 1, rngs: nnx.Rngs, param_dtype=jnp.float32):
    for name, val, low in (("dim", dim, 1), ("num_codes", num_codes, 1)):
      if isinstance(val, bool) or not isinstance(val, int) or val < low:
        raise ValueError(f"{name} must be an int >= {low}, got {name}={val!r}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= num_codes:
      raise ValueError(f"k must be an int in [1, num_codes={num_codes}], got {k=}")
    self.dim, self.num_codes, self.k = dim, num_codes, k
    self.codebook_cd = nnx.Param(jax.random.normal(rngs.params(), (num_codes, dim), param_dtype) / jnp.sqrt(dim))

  def select(self, a: jax.Array, *, force_code: int | jax.Array | None = None) -> jax.Array:
    """[..., D] -> [..., k] int32 indices of the k most cosine-similar codes (ties: lower index). With `force_code`,
    that code is put first and the other k - 1 slots are the most similar remaining codes."""
    a = validation.check_floating(a, "a")
    if a.ndim < 1 or a.shape[-1] != self.dim:
      raise ValueError(f"a must be [..., D={self.dim}], got a.shape={a.shape}")
    sim = jax.lax.stop_gradient(_unit(a) @ _unit(self.codebook_cd[...]).T)       # [..., C]
    if force_code is None:
      return jax.lax.top_k(sim, self.k)[1].astype(jnp.int32)
    if not validation.is_traced(force_code) and not 0 <= int(force_code) < self.num_codes:
      raise ValueError(f"force_code must be in [0, {self.num_codes}), got {force_code=}")
    forced = jnp.asarray(force_code, jnp.int32)
    rest = jax.lax.top_k(jnp.where(jnp.arange(self.num_codes) == forced, -jnp.inf, sim), self.k - 1)[1]
    return jnp.concatenate([jnp.broadcast_to(forced, sim.shape[:-1] + (1,)), rest.astype(jnp.int32)], -1)

  def __call__(self, a: jax.Array, *, force_code: int | jax.Array | None = None):
    codes = self.select(a, force_code=force_code)
    q = jnp.take(self.codebook_cd[...], codes, axis=0).sum(-2).astype(a.dtype)     # sum of the chosen codes
    out = q + (a - jax.lax.stop_gradient(a))                     # straight-through to a; forward: exactly q
    return out, codes, q


def codebook_loss(a: jax.Array, q: jax.Array) -> jax.Array:
  """Per-position codebook reconstruction loss ||stop_gradient(a) - q||^2: trains the codes only (Tamkin et al.
  2023, arXiv:2310.17230, Sec. 2; the authors' code adds this MSE's gradient to the codebook).

  Args:
    a: [..., D] activations entering the codebook.
    q: [..., D] the codebook's sum of chosen codes (third output of `CodebookLayer`).

  Returns:
    [...] losses, float32 for half-precision inputs.
  """
  a = validation.check_floating(a, "a")
  q = validation.check_floating(q, "q")
  if a.shape != q.shape or a.ndim < 1:
    raise ValueError(f"a and q must have the same shape [..., D], got {a.shape=}, {q.shape=}")
  dt = validation.compute_dtype_for(jnp.result_type(a, q))
  return jnp.sum((jax.lax.stop_gradient(a).astype(dt) - q.astype(dt)) ** 2, -1)


__all__ = ["CodebookLayer", "codebook_loss"]
