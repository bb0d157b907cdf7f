"""EoRA: training-free low-rank compensation of a compressed linear layer in the eigenspace of its activations.

Paper [114]: Shih-Yang Liu, Maksim Khadkevich, Nai Chit Fung, Charbel Sakr, Chao-Han Huck Yang, Chien-Yi Wang,
Saurav Muralidharan, Hongxu Yin, Kwang-Ting Cheng, Jan Kautz, Yu-Chiang Frank Wang, Pavlo Molchanov, Min-Hung Chen,
"EoRA: Fine-tuning-free Compensation for Compressed LLM with Eigenspace Low-Rank Approximation", 2024,
arXiv:2410.21271 (Sec. 3, "Eigenspace Low-Rank Approximation").

With W the original weight [d_out, d_in] (y = W x), W_hat its compressed version, Delta W = W - W_hat, and the
calibration activations X [n, d_in] (rows are tokens; the paper's X X^T is X^T X here):

    X^T X = Q Lambda Q^T                                   (eigendecomposition of the activation covariance)
    Delta W' = Delta W Q Lambda^(1/2)                      (project the error into the eigenspace, scaled)
    SVD_r(Delta W') = U_r Sigma_r V_r^T,   B = U_r Sigma_r,   A = V_r^T Lambda^(-1/2) Q^T

so that B A minimises ||(Delta W - B A) X^T||_F over all rank-r matrices (Eckart-Young in the weighted norm,
||M X^T||_F = ||M Q Lambda^(1/2)||_F), and the compensated layer is y = W_hat x + B (A x). Plain SVD compensation
(`svd_compensation`) is the same with Lambda = I.
"""

from __future__ import annotations

import math
from typing import Optional

import jax
import jax.numpy as jnp
from flax import nnx


def _check_compensation_args(W, W_hat, X, r):
  W, W_hat = jnp.asarray(W), jnp.asarray(W_hat)
  if W.ndim != 2:
    raise ValueError(f"W must be [d_out, d_in], got {W.shape=}")
  if W_hat.shape != W.shape:
    raise ValueError(f"W_hat must have W's shape {W.shape}, got {W_hat.shape=}")
  for name, a in (("W", W), ("W_hat", W_hat)):
    if not jnp.issubdtype(a.dtype, jnp.floating):
      raise TypeError(f"{name} must be floating point, got {name}.dtype={a.dtype}")
  if X is not None:
    X = jnp.asarray(X)
    if X.ndim != 2 or X.shape[1] != W.shape[1]:
      raise ValueError(f"X must be [n, d_in] with d_in = {W.shape[1]}, got {X.shape=}")
  if not isinstance(r, int) or isinstance(r, bool) or not 1 <= r <= min(W.shape):
    raise ValueError(f"r must be an int in [1, min(d_out, d_in) = {min(W.shape)}], got {r=!r}")
  return W, W_hat, X


def _svd_truncate(m, r):
  u, s, vt = jnp.linalg.svd(m, full_matrices=False)
  return u[:, :r] * s[:r], vt[:r]


def eora_compensation(W: jax.Array, W_hat: jax.Array, X: jax.Array, r: int, *, eps: float = 1e-8
                      ) -> tuple[jax.Array, jax.Array]:
  """EoRA's rank-r compensation (B, A) of W_hat towards W, in the eigenspace of the activations (Liu et al. 2024,
  arXiv:2410.21271, Sec. 3, eqs. for the eigenspace projection and its inverse).

  Args:
    W: original weight [d_out, d_in] (y = W x).
    W_hat: compressed weight [d_out, d_in] (quantised, pruned, ...).
    X: calibration activations [n, d_in] (the layer's inputs, one row per token).
    r: rank (static int, 1 <= r <= min(d_out, d_in)).
    eps: eigenvalues of X^T X are floored at eps * max eigenvalue before Lambda^(-1/2) (directions with no
      activation energy get no compensation weight).

  Returns:
    (B [d_out, r], A [r, d_in]) in float32 (float64 for float64 inputs); W_hat + B @ A is the compensated weight.
  """
  W, W_hat, X = _check_compensation_args(W, W_hat, X, r)
  dt = jnp.promote_types(jnp.promote_types(W.dtype, X.dtype), jnp.float32)
  dw = (W - W_hat).astype(dt)
  x = X.astype(dt)
  lam, q = jnp.linalg.eigh(x.T @ x)                                 # X^T X = Q Lambda Q^T
  lam = jnp.maximum(lam, eps * jnp.max(lam))
  sqrt_lam = jnp.sqrt(lam)
  b, a_prime = _svd_truncate(dw @ (q * sqrt_lam), r)                 # SVD_r(Delta W Q Lambda^1/2)
  a = (a_prime / sqrt_lam) @ q.T                                     # A = A' Lambda^-1/2 Q^T
  return b, a


def svd_compensation(W: jax.Array, W_hat: jax.Array, r: int) -> tuple[jax.Array, jax.Array]:
  """Plain SVD compensation: the best rank-r approximation of Delta W = W - W_hat in Frobenius norm (the
  activation-agnostic baseline of Liu et al. 2024, arXiv:2410.21271, Sec. 3).

  Args:
    W: original weight [d_out, d_in].
    W_hat: compressed weight [d_out, d_in].
    r: rank (static int).

  Returns:
    (B [d_out, r], A [r, d_in]).
  """
  W, W_hat, _ = _check_compensation_args(W, W_hat, None, r)
  dt = jnp.promote_types(W.dtype, jnp.float32)
  return _svd_truncate((W - W_hat).astype(dt), r)


class FrozenWeight(nnx.Variable):
  """A weight that `nnx.split(model, nnx.Param, ...)` leaves out of the trained parameters (the compressed W_hat)."""


class LowRankCompensatedLinear(nnx.Module):
  """y = x W_hat^T + (x A^T) B^T (+ bias): a compressed linear layer with a trainable rank-r compensation (EoRA,
  Liu et al. 2024, arXiv:2410.21271, Sec. 3; initialise B, A with `eora_compensation` via `from_weights`).

  W_hat is a `FrozenWeight` (not an `nnx.Param`), so a LoRA-style fine-tune of the compensation trains B and A only.

  Args:
    in_features: d_in.
    out_features: d_out.
    rank: r.
    use_bias: add a trainable bias [d_out] (zeros).
    dtype: computation dtype.
    param_dtype: dtype of W_hat, B, A and the bias.
    rngs: nnx.Rngs with a 'params' stream (W_hat random normal / sqrt(d_in), A random, B zeros: y starts at x W_hat^T).

  Returns of `__call__(x [..., d_in])`: [..., d_out].
  """

  def __init__(self, in_features: int, out_features: int, rank: int, *, use_bias: bool = False,
               dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
    for name, v in (("in_features", in_features), ("out_features", out_features), ("rank", rank)):
      if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ValueError(f"{name} must be a positive int, got {name}={v!r}")
    if rank > min(in_features, out_features):
      raise ValueError(f"rank must be <= min(in_features, out_features) = {min(in_features, out_features)}, "
                       f"got {rank=}")
    k_w, k_a = jax.random.split(rngs.params())
    self.in_features, self.out_features, self.rank, self.dtype = in_features, out_features, rank, dtype
    self.w_hat = FrozenWeight((jax.random.normal(k_w, (out_features, in_features)) / math.sqrt(in_features))
                              .astype(param_dtype))
    self.lora_a = nnx.Param((jax.random.normal(k_a, (rank, in_features)) / math.sqrt(in_features))
                            .astype(param_dtype))
    self.lora_b = nnx.Param(jnp.zeros((out_features, rank), param_dtype))
    self.bias = nnx.Param(jnp.zeros((out_features,), param_dtype)) if use_bias else None

  @classmethod
  def from_weights(cls, W_hat: jax.Array, B: jax.Array, A: jax.Array, *, bias: Optional[jax.Array] = None,
                   dtype=jnp.float32, param_dtype=jnp.float32) -> "LowRankCompensatedLinear":
    """The layer with W_hat [d_out, d_in], B [d_out, r], A [r, d_in] (e.g. from `eora_compensation`).

    Args:
      W_hat: compressed weight [d_out, d_in].
      B: [d_out, r].
      A: [r, d_in].
      bias: optional [d_out].
      dtype: computation dtype.
      param_dtype: storage dtype.

    Returns:
      A `LowRankCompensatedLinear`.
    """
    W_hat, B, A = jnp.asarray(W_hat), jnp.asarray(B), jnp.asarray(A)
    if W_hat.ndim != 2 or B.ndim != 2 or A.ndim != 2 or B.shape[0] != W_hat.shape[0] \
        or A.shape[1] != W_hat.shape[1] or B.shape[1] != A.shape[0]:
      raise ValueError(f"need W_hat [d_out, d_in], B [d_out, r], A [r, d_in]; got {W_hat.shape=}, {B.shape=}, "
                       f"{A.shape=}")
    if bias is not None and jnp.shape(bias) != (W_hat.shape[0],):
      raise ValueError(f"bias must be [d_out] = [{W_hat.shape[0]}], got {jnp.shape(bias)}")
    layer = cls(W_hat.shape[1], W_hat.shape[0], B.shape[1], use_bias=bias is not None, dtype=dtype,
                param_dtype=param_dtype, rngs=nnx.Rngs(0))
    layer.w_hat[...] = W_hat.astype(param_dtype)
    layer.lora_b[...] = B.astype(param_dtype)
    layer.lora_a[...] = A.astype(param_dtype)
    if bias is not None:
      layer.bias[...] = jnp.asarray(bias).astype(param_dtype)
    return layer

  def __call__(self, x: jax.Array) -> jax.Array:
    """x [..., d_in] -> [..., d_out]."""
    if x.ndim < 1 or x.shape[-1] != self.in_features:
      raise ValueError(f"x must be [..., d_in] with d_in = {self.in_features}, got {x.shape=}")
    x = x.astype(self.dtype)
    y = x @ self.w_hat[...].astype(self.dtype).T
    y = y + (x @ self.lora_a[...].astype(self.dtype).T) @ self.lora_b[...].astype(self.dtype).T
    if self.bias is not None:
      y = y + self.bias[...].astype(self.dtype)
    return y


__all__ = ["FrozenWeight", "LowRankCompensatedLinear", "eora_compensation", "svd_compensation"]
