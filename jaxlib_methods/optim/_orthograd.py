"""⊥Grad (OrthoGrad): remove the gradient's component along the weights, per tensor.

Paper [185]: Lucas Prieto, Melih Barsbey, Pedro A. M. Mediano, Tolga Birdal, "Grokking at the Edge of Numerical
Stability", ICLR 2025, arXiv:2501.04697 (Section 5, "⊥Grad").

For each parameter tensor w with gradient g (both flattened):

    g_perp = g - (w.g / w.w) w                                  (the paper's formula)
    g_perp <- g_perp * ||g||_2 / ||g_perp||_2                   (the official code, `renormalize=True`)

The component of g along w is the "naive loss minimisation" direction: scaling up the logits without changing the
predictions, which drives Softmax Collapse. The official PyTorch `OrthoGrad` wrapper also rescales g_perp to the
original gradient norm, which the paper's formula does not; `renormalize` chooses (default True = the code). Both
use eps = 1e-30 in the denominators, as the code does.

`scale_by_orthograd` is the projection alone; chain it *before* a base optimizer (as the official wrapper does:
it overwrites p.grad then calls the base step). `orthograd(base)` is that chain; `orthogonal_adamw(learning_rate,
...)` is the paper's ⊥AdamW.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from jaxlib_methods import validation
from jaxlib_methods.optim import _contracts

ORTHOGONAL_ADAMW_STATIC_ARGS = ("mask",)


class ScaleByOrthogradState(NamedTuple):
  """State of `scale_by_orthograd`: only the step count (the projection is stateless).

  Prieto et al., "Grokking at the Edge of Numerical Stability", ICLR 2025, arXiv:2501.04697 (Sec. 5, "⊥Grad").

  count: int32 scalar.
  """
  count: jax.Array  # int32 scalar


def _project(g: jax.Array, w: jax.Array, eps: float, renormalize: bool) -> jax.Array:
  if g.shape != w.shape:
    raise ValueError(f"gradient and parameter shapes differ: {g.shape=}, {w.shape=}")
  dtype = g.dtype
  gf = g.astype(jnp.promote_types(dtype, jnp.float32))
  wf = w.astype(gf.dtype)
  # <w, g> / <w, w> with the complex inner product <a, b> = sum conj(a) b; sums over every axis (no reshape, so a
  # sharded tensor stays sharded).
  sq = lambda x: jnp.sum(jnp.square(jnp.abs(x)))
  proj = jnp.sum(jnp.conj(wf) * gf) / (sq(wf) + eps)
  gp = gf - proj * wf
  if renormalize:
    gp = gp * (jnp.sqrt(sq(gf)) / (jnp.sqrt(sq(gp)) + eps))
  return gp.astype(dtype)


@_contracts.nan_on_invalid_injected
def scale_by_orthograd(*, renormalize: bool = True, eps: float = 1e-30) -> optax.GradientTransformation:
  """Per tensor, remove the component of the update along the parameters (Prieto et al. 2025, Sec. 5).

  update_i <- g_i - (w_i.g_i / (w_i.w_i + eps)) w_i, then (if `renormalize`) rescaled to ||g_i||.

  Args:
    renormalize: rescale the projected gradient to the original gradient's l2 norm, as the official code does
      (True); False gives the paper's formula.
    eps: added to both denominators (1e-30 in the official code).

  Returns:
    An optax GradientTransformation; `update` requires `params` (shapes as the updates).

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> tx = scale_by_orthograd(renormalize=False)
    >>> w = {"w": jnp.array([1.0, 0.0])}; g = {"w": jnp.array([2.0, 3.0])}
    >>> tx.update(g, tx.init(w), w)[0]["w"].tolist()
    [0.0, 3.0]

  References:
    Prieto, Barsbey, Mediano, Birdal. "Grokking at the Edge of Numerical Stability". ICLR 2025. arXiv:2501.04697.
  """
  validation.check_nonnegative(eps, "eps")
  if not isinstance(renormalize, bool):
    raise TypeError(f"renormalize must be a bool, got {renormalize=!r}")

  def init_fn(params):
    _contracts.check_inexact_leaves(params, "scale_by_orthograd")
    return ScaleByOrthogradState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("scale_by_orthograd needs the parameters: call update(updates, state, params)")
    _contracts.check_same_tree(updates, params, "scale_by_orthograd", what="the params")
    _contracts.check_inexact_leaves(updates, "scale_by_orthograd", what="gradients")
    new = jax.tree.map(lambda g, w: _project(g, w, eps, renormalize), updates, params)
    return new, ScaleByOrthogradState(count=optax.safe_increment(state.count))

  return optax.GradientTransformation(init_fn, update_fn)


@_contracts.nan_on_invalid_injected
def orthograd(base: optax.GradientTransformation, *, renormalize: bool = True,
              eps: float = 1e-30) -> optax.GradientTransformation:
  """⊥Grad wrapper: project the gradient with `scale_by_orthograd`, then run `base` (Prieto et al. 2025, Sec. 5).

  Note the official wrapper feeds the projected gradient to the base optimizer, so a base with weight decay
  applies its decay to the *unprojected* weights as usual.

  Args:
    base: any optax transformation (e.g. `optax.adamw(1e-3)`).
    renormalize, eps: see `scale_by_orthograd`.
  """
  return optax.chain(scale_by_orthograd(renormalize=renormalize, eps=eps), base)


@_contracts.nan_on_invalid_injected
def orthogonal_adamw(learning_rate: optax.ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999,
                     eps: float = 1e-8, weight_decay: float = 0.0, *, renormalize: bool = True,
                     mask: Optional[Any] = None) -> optax.GradientTransformation:
  """⊥AdamW (Prieto et al. 2025, arXiv:2501.04697, Sec. 5): AdamW on the ⊥Grad-projected gradient.

  Defaults b2 = 0.999, eps = 1e-8 are what the official script effectively runs (its wrapper re-creates the base
  optimizer with PyTorch defaults, see official-code-facts.md 5.3); weight decay defaults to 0, as in the paper.

  Args:
    learning_rate: scalar or schedule (>= 0).
    b1, b2, eps: Adam constants.
    weight_decay: decoupled weight decay (AdamW).
    renormalize: see `scale_by_orthograd`.
    mask: weight-decay mask, as `optax.adamw`.
  """
  validation.check_learning_rate(learning_rate)
  validation.check_in_interval(b1, "b1", 0.0, 1.0, closed_high=False)
  validation.check_in_interval(b2, "b2", 0.0, 1.0, closed_high=False)
  validation.check_nonnegative(eps, "eps")
  validation.check_nonnegative(weight_decay, "weight_decay")
  mask = _contracts.decay_mask(mask, "mask", "ORTHOGONAL_ADAMW_STATIC_ARGS")
  return optax.chain(
      scale_by_orthograd(renormalize=renormalize),
      optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )


orthogonal_adamw.STATIC_ARGS = ORTHOGONAL_ADAMW_STATIC_ARGS

__all__ = ["ScaleByOrthogradState", "orthogonal_adamw", "orthograd", "scale_by_orthograd"]
