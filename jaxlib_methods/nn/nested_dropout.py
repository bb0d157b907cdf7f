"""Nested dropout on feature dimensions and co-teaching's small-loss exchange, the compression regularisers of
learning with noisy labels.

Paper [21]: Yingyi Chen, Shell Xu Hu, Xi Shen, Chunrong Ai, Johan A.K. Suykens, "Compressing Features for Learning
with Noisy Labels", IEEE TNNLS 2022, arXiv:2206.13140 (Sec. 3). Nested dropout (Rippel, Gelbart, Adams 2014,
arXiv:1402.0915) samples an index k and keeps only the first k feature dimensions, zeroing units k+1..n, which orders
the features by importance (a compression constraint); here k ~ Geometric(p) truncated to [1, n] (P(k) = p (1-p)^(k-1)
for k < n, the rest of the mass at n), one k per batch as in the authors' code (github.com/yingyichen-cyy/
Nested-Co-teaching, one mask per minibatch) or one per example. Co-teaching (Han et al. 2018, arXiv:1804.06872):
two networks each rank the batch by their own cross-entropy and keep the R = floor((1 - forget_rate) B) smallest
losses; each network is then trained on the examples its peer kept (the authors' `SampleSelection` /
`Classification`: argsort of the per-example loss, the first R indices). The selection carries no gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxlib_methods import validation


def nested_dropout_mask(key: jax.Array, shape: tuple[int, ...], *, p: float) -> jax.Array:
  """A nested-dropout mask over the last axis of `shape`: 1 on the first k units, 0 after, k ~ Geometric(p) truncated
  to [1, n], one k per row of the leading axes (Rippel et al. 2014, arXiv:1402.0915, Sec. 2; Chen et al. 2022,
  arXiv:2206.13140, Sec. 3).

  Args:
    key: PRNG key.
    shape: (..., n); pass (1, n) for one k shared by the batch.
    p: geometric success probability in (0, 1].

  Returns:
    float32 array of `shape`, each row a prefix of ones.
  """
  if not isinstance(shape, tuple) or len(shape) < 1 or not all(isinstance(s, int) and s >= 1 for s in shape):
    raise ValueError(f"shape must be a tuple of ints >= 1, got {shape=!r}")
  if not validation.is_traced(p):
    validation.check_in_interval(p, "p", 0.0, 1.0, closed_low=False)
  n = shape[-1]
  u = jax.random.uniform(key, shape[:-1], jnp.float32, minval=jnp.finfo(jnp.float32).tiny, maxval=1.0)
  k = jnp.where(p >= 1.0, 1.0, 1.0 + jnp.floor(jnp.log(u) / jnp.log1p(-jnp.minimum(p, 1.0 - 1e-7))))
  k = jnp.minimum(k, n)
  return (jnp.arange(n) < k[..., None]).astype(jnp.float32)


class NestedDropout(nnx.Module):
  """Nested dropout on the last axis (Chen et al. 2022, arXiv:2206.13140, Sec. 3; Rippel et al. 2014).

  Args:
    num_units: n, the features on the last axis.
    p: geometric parameter of the kept prefix length (mean about 1/p).
    per_example: one k per example (True) or one per call, shared by the batch (False, the authors' choice).
    rngs: PRNG streams (unused: the key is passed per call).

  Shapes: __call__ h [..., n] -> [..., n]. With `key`: a random prefix is kept; with `k`: the first k units are kept
  (the paper's inference with its best prefix); with neither: identity.
  """

  def __init__(self, num_units: int, *, p: float = 0.1, per_example: bool = False, rngs: nnx.Rngs | None = None):
    if isinstance(num_units, bool) or not isinstance(num_units, int) or num_units < 1:
      raise ValueError(f"num_units must be an int >= 1, got {num_units=!r}")
    validation.check_in_interval(p, "p", 0.0, 1.0, closed_low=False)
    del rngs
    self.num_units, self.p, self.per_example = num_units, float(p), bool(per_example)

  def __call__(self, h: jax.Array, *, key: jax.Array | None = None, k: int | jax.Array | None = None) -> jax.Array:
    h = validation.check_floating(h, "h")
    if h.ndim < 1 or h.shape[-1] != self.num_units:
      raise ValueError(f"h must be [..., n={self.num_units}], got h.shape={h.shape}")
    if key is not None and k is not None:
      raise ValueError("pass key (training) or k (a fixed prefix), not both")
    if k is not None:
      if not validation.is_traced(k) and not 1 <= int(k) <= self.num_units:
        raise ValueError(f"k must be in [1, {self.num_units}], got {k=}")
      return h * (jnp.arange(self.num_units) < k).astype(h.dtype)
    if key is None:
      return h
    shape = h.shape if self.per_example else (1,) * (h.ndim - 1) + (self.num_units,)
    return h * nested_dropout_mask(key, shape, p=self.p).astype(h.dtype)


def small_loss_selection(losses: jax.Array, *, forget_rate: float | jax.Array) -> jax.Array:
  """Co-teaching's selection: True for the R = floor((1 - forget_rate) B) smallest losses (stable ties: the lower
  index) (Han et al. 2018, arXiv:1804.06872, Alg. 1; Chen et al. 2022, arXiv:2206.13140, Sec. 3).

  Args:
    losses: [B] per-example losses.
    forget_rate: fraction in [0, 1) to drop (may be traced, e.g. a schedule).

  Returns:
    [B] bool mask.
  """
  l = validation.check_floating(losses, "losses")
  if l.ndim != 1 or l.shape[0] < 1:
    raise ValueError(f"losses must be [B] with B >= 1, got losses.shape={l.shape}")
  if not validation.is_traced(forget_rate):
    validation.check_in_interval(forget_rate, "forget_rate", 0.0, 1.0, closed_high=False)
  remember = jnp.floor((1.0 - forget_rate) * l.shape[0] + 1e-6)
  rank = jnp.argsort(jnp.argsort(jax.lax.stop_gradient(l), stable=True), stable=True)
  return rank < remember


def coteaching_loss(logits1: jax.Array, logits2: jax.Array, labels: jax.Array, *,
                    forget_rate: float | jax.Array) -> tuple[jax.Array, jax.Array]:
  """Co-teaching's exchanged small-loss objectives (Han et al. 2018, arXiv:1804.06872, Alg. 1; used with nested
  dropout by Chen et al. 2022, arXiv:2206.13140, Sec. 3): network 1 is trained on the mean cross-entropy of the
  examples network 2 selected as small-loss, and network 2 on those network 1 selected.

  Args:
    logits1: [B, K] network 1's logits.
    logits2: [B, K] network 2's logits.
    labels: [B] integer (noisy) labels in [0, K).
    forget_rate: fraction in [0, 1) of each batch to drop (may be traced).

  Returns:
    (loss1, loss2): scalars, the losses of network 1 and network 2 (float32 for half-precision inputs).
  """
  l1 = validation.check_floating(logits1, "logits1")
  l2 = validation.check_floating(logits2, "logits2")
  y = validation.check_integer(labels, "labels")
  if l1.ndim != 2 or l1.shape != l2.shape or y.shape != l1.shape[:1]:
    raise ValueError(f"need logits1 [B, K], logits2 [B, K], labels [B]; got {l1.shape=}, {l2.shape=}, {y.shape=}")
  if not validation.is_traced(y) and bool(jnp.any((y < 0) | (y >= l1.shape[1]))):
    raise ValueError(f"labels must be in [0, {l1.shape[1]})")
  dt = validation.compute_dtype_for(jnp.result_type(l1, l2))
  ce1 = optax.softmax_cross_entropy_with_integer_labels(l1.astype(dt), y)
  ce2 = optax.softmax_cross_entropy_with_integer_labels(l2.astype(dt), y)
  keep1 = small_loss_selection(ce1, forget_rate=forget_rate)
  keep2 = small_loss_selection(ce2, forget_rate=forget_rate)
  loss1 = jnp.sum(jnp.where(keep2, ce1, 0.0)) / jnp.maximum(jnp.sum(keep2), 1)
  loss2 = jnp.sum(jnp.where(keep1, ce2, 0.0)) / jnp.maximum(jnp.sum(keep1), 1)
  return loss1, loss2


__all__ = ["NestedDropout", "coteaching_loss", "nested_dropout_mask", "small_loss_selection"]
