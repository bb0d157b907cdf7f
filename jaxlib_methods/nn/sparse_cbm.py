"""Sparse concept bottleneck models: a Concept Bottleneck Layer over frozen CLIP image-concept similarities, trained
with a Gumbel-softmax contrastive objective (Sparse-CBM) or an L1 penalty.

Paper [1]: Andrei Semenov, Vladimir Ivanov, Aleksandr Beznosikov, Alexander Gasnikov, "Sparse Concept Bottleneck
Models: Gumbel Tricks in Contrastive Learning", 2024, arXiv:2404.03323 (Sec. 3, the CBM architecture and the three
CBL objectives). A frozen multi-modal encoder gives every image its similarities to the C concept prompts,
s in R^C (CLIP's `logits_per_image`). The Concept Bottleneck Layer (CBL) is a bias-free linear map C -> C, a = W s
(the concept activations), and the head a bias-free linear map C -> K, logits = V a. The head is trained with the
cross-entropy; the CBL with the cross-entropy plus its own objective. Sparse-CBM's objective on a batch A in R^{B x C}
of CBL outputs (the authors' released code, github.com/Andron00e/SparseCBM, bottlenecks/cbm.py, `criterion_gumbel`):

  L_gumbel(A) = 1/2 [ mean_{i,j} -log GS_0(A)_{ij} + mean_{i,j} -log GS_1(A)_{ij} ],
  GS_d(A) = softmax_d((A + G) / tau),  G_ij i.i.d. Gumbel(0, 1),

the Gumbel-softmax (Jang et al. 2017, arXiv:1611.01144) taken over the batch (d = 0) and over the concepts (d = 1)
with fresh noise each. (The authors' `hard=True` option gives -log 0 off the argmax; only the soft form trains, and
only it is offered here.) The L1 variant adds lambda * ||W||_1 / C (`criterion_l1`, scaled by the number of
concepts as in the authors' trainer). `gumbel_softmax(..., hard=True)` is the straight-through sampler: its value is
the one-hot of argmax (A + G) and its gradient is the soft sample's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods import validation


def _check_tau(tau):
  if not validation.is_traced(tau):
    if isinstance(tau, bool) or jnp.ndim(tau) != 0 or not float(tau) > 0:
      raise ValueError(f"tau must be a number > 0 (the Gumbel-softmax temperature), got {tau=!r}")


def gumbel_softmax(key: jax.Array, logits: jax.Array, *, tau: float = 1.0, axis: int = -1,
                   hard: bool = False) -> jax.Array:
  """A Gumbel-softmax sample softmax((logits + G) / tau) along `axis`, G i.i.d. Gumbel(0, 1) (Jang et al. 2017,
  arXiv:1611.01144, eq. 1; used by Sparse-CBM, Semenov et al. 2024, arXiv:2404.03323, Sec. 3).

  With `hard=True` the value is the one-hot of argmax(logits + G) (a sample of the categorical softmax(logits)) and
  the gradient is the soft sample's (straight-through: y_hard + y_soft - stop_gradient(y_soft)).

  Args:
    key: PRNG key of the Gumbel noise.
    logits: [...] unnormalised log-probabilities.
    tau: temperature > 0.
    axis: the categorical axis.
    hard: return the straight-through one-hot sample.

  Returns:
    An array of `logits`' shape and dtype that sums to 1 along `axis`.
  """
  logits = validation.check_floating(logits, "logits")
  if logits.ndim == 0:
    raise ValueError(f"logits must have at least one axis, got logits.shape={logits.shape}")
  axis = validation.check_axis(axis, logits.ndim)
  _check_tau(tau)
  dt = validation.compute_dtype_for(logits.dtype)
  g = jax.random.gumbel(key, logits.shape, dt)
  soft = jax.nn.softmax((logits.astype(dt) + g) / tau, axis=axis)
  if not hard:
    return soft.astype(logits.dtype)
  idx = jnp.argmax(logits.astype(dt) + g, axis=axis, keepdims=True)
  one_hot = (jnp.arange(logits.shape[axis]).reshape([-1 if a == axis else 1 for a in range(logits.ndim)])
             == idx).astype(dt)
  return (one_hot + (soft - jax.lax.stop_gradient(soft))).astype(logits.dtype)   # forward: exactly one_hot


def gumbel_sparse_cbl_loss(key: jax.Array, concept_logits: jax.Array, *, tau: float = 1.0) -> jax.Array:
  """Sparse-CBM's contrastive Gumbel-softmax objective of the CBL outputs of one batch (Semenov et al. 2024,
  arXiv:2404.03323, Sec. 3; the authors' `criterion_gumbel`):
  1/2 [mean -log softmax_0((A + G0)/tau) + mean -log softmax_1((A + G1)/tau)], G0, G1 independent Gumbel noise.

  A batch-level objective (the batch axis is one of the softmax axes), computed in log space.

  Args:
    key: PRNG key of the two Gumbel draws.
    concept_logits: [B, C] CBL outputs A of a batch (B >= 1, C >= 1).
    tau: temperature > 0 (the authors' default 1).

  Returns:
    scalar loss, float32 for half-precision inputs.
  """
  a = validation.check_floating(concept_logits, "concept_logits")
  if a.ndim != 2 or 0 in a.shape:
    raise ValueError(f"concept_logits must be [B, C] with B, C >= 1, got concept_logits.shape={a.shape}")
  _check_tau(tau)
  dt = validation.compute_dtype_for(a.dtype)
  a = a.astype(dt)
  k0, k1 = jax.random.split(key)
  l0 = jax.nn.log_softmax((a + jax.random.gumbel(k0, a.shape, dt)) / tau, axis=0)
  l1 = jax.nn.log_softmax((a + jax.random.gumbel(k1, a.shape, dt)) / tau, axis=1)
  return 0.5 * (-jnp.mean(l0) - jnp.mean(l1))


def cbl_l1_loss(kernel: jax.Array, *, l1_lambda: float = 1e-3) -> jax.Array:
  """The L1-CBM penalty lambda * ||W||_1 / C on the [C, C] CBL kernel (Semenov et al. 2024, arXiv:2404.03323,
  Sec. 3; the authors' `criterion_l1`, divided by the number of concepts in their trainer).

  Args:
    kernel: [C_in, C] CBL weights.
    l1_lambda: lambda >= 0.

  Returns:
    scalar penalty.
  """
  w = validation.check_floating(kernel, "kernel")
  if w.ndim != 2:
    raise ValueError(f"kernel must be [C_in, C], got kernel.shape={w.shape}")
  if not validation.is_traced(l1_lambda):
    validation.check_nonnegative(l1_lambda, "l1_lambda")
  return l1_lambda * jnp.sum(jnp.abs(w.astype(validation.compute_dtype_for(w.dtype)))) / w.shape[1]


class ConceptBottleneckLayer(nnx.Module):
  """Sparse-CBM's bottleneck: concept activations a = W s (bias-free C -> C) over frozen image-concept similarities
  s, and class logits V a (bias-free C -> K) (Semenov et al. 2024, arXiv:2404.03323, Sec. 3; the authors'
  `BaseCBModel` with `cbl` and `head`).

  Train `cbl` with the cross-entropy plus `gumbel_sparse_cbl_loss` (Sparse-CBM) or `cbl_l1_loss` (L1-CBM) and
  `head` with the cross-entropy (the authors use one optimizer each).

  Args:
    num_concepts: C, number of concepts (the similarity vector's length), >= 1.
    num_classes: K >= 2.
    rngs: PRNG streams (`params`).
    param_dtype: parameter dtype.

  Shapes: __call__ s [..., C] -> (concept_logits [..., C], class_logits [..., K]).
  """

  def __init__(self, num_concepts: int, num_classes: int, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
    for name, val, low in (("num_concepts", num_concepts, 1), ("num_classes", num_classes, 2)):
      if isinstance(val, bool) or not isinstance(val, int) or val < low:
        raise ValueError(f"{name} must be an int >= {low}, got {name}={val!r}")
    self.num_concepts = num_concepts
    self.cbl = nnx.Linear(num_concepts, num_concepts, use_bias=False, rngs=rngs, param_dtype=param_dtype)
    self.head = nnx.Linear(num_concepts, num_classes, use_bias=False, rngs=rngs, param_dtype=param_dtype)

  def __call__(self, similarities: jax.Array) -> tuple[jax.Array, jax.Array]:
    s = validation.check_floating(similarities, "similarities")
    if s.ndim < 1 or s.shape[-1] != self.num_concepts:
      raise ValueError(f"similarities must be [..., C={self.num_concepts}], got similarities.shape={s.shape}")
    a = self.cbl(s)
    return a, self.head(a)


__all__ = ["ConceptBottleneckLayer", "cbl_l1_loss", "gumbel_softmax", "gumbel_sparse_cbl_loss"]
