"""GAQAT: LSQ fake quantisation, SAM's task / sharpness gradient split, and freezing of conflicting quantiser scales.

Paper [74]: Jiacheng Jiang, Yuan Meng, Chen Tang, Han Yu, Qun Li, Zhi Wang, Wenwu Zhu, "GAQAT: Gradient-Adaptive
Quantization-Aware Training for Domain Generalization", 2024, arXiv:2412.05551.

The paper trains a quantised network (LSQ quantisers with learnable step sizes s) with a sharpness-aware objective
L_task + L_sharp and observes the *scale-gradient conflict*: for some layers the task gradient and the sharpness
gradient of the quantiser scale point in opposite directions, which makes the scales oscillate and hurts
out-of-domain accuracy; it measures this inconsistency ("gradient disorder") and freezes the scale gradients of the
conflicting layers. The pieces:

- `lsq_fake_quant(w, s, bits)`: LSQ (Esser et al., ICLR 2020, arXiv:1902.08153, eqs. 1-3): w_q = round(clip(w / s,
  -Q_N, Q_P)) * s with the straight-through estimator for round and the step-size gradient scaled by
  g = 1 / sqrt(N_w Q_P).
- `sam_task_and_sharpness_grads(loss_fn, params, ...)`: g_task = grad L(w) and g_sharp = grad L(w + eps) - grad L(w),
  eps = rho grad L / ||grad L|| (SAM's perturbation); their sum is SAM's gradient, and g_sharp is the gradient of the
  sharpness term L(w + eps) - L(w) with eps held fixed.
- `gradient_disorder(g_task, g_sharp)`: per leaf, the fraction of entries where the two gradients have opposite
  (nonzero) signs. The paper defines its disorder metric in Sec. 3 from this sign conflict; its exact normalisation
  could not be retrieved (the text was not accessible to us), so this is the plainest form: 1 for a per-tensor scale
  whose gradients conflict, 0 otherwise.
- `gaqat_freeze_scales(...)` and the optax transform `scale_by_gaqat_freeze(threshold, scale_mask=...)`: zero the
  update of every quantiser-scale leaf whose disorder exceeds `threshold` at this step; other leaves pass unchanged.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods import validation
from jaxlib_methods.optim import _contracts

SCALE_BY_GAQAT_FREEZE_STATIC_ARGS = ("scale_mask",)


def _round_ste(x: jax.Array) -> jax.Array:
  """round(x) in the forward pass, identity gradient (LSQ's round_pass)."""
  return x + jax.lax.stop_gradient(jnp.round(x) - x)


def _grad_scale(x: jax.Array, g: Any) -> jax.Array:
  """x in the forward pass, gradient multiplied by g (LSQ's grad_scale)."""
  return jax.lax.stop_gradient(x - x * g) + x * g


def lsq_levels(bits: int, signed: bool = True) -> tuple[int, int]:
  """(Q_N, Q_P) of a b-bit LSQ quantiser: signed (2^(b-1), 2^(b-1) - 1), unsigned (0, 2^b - 1) (Esser et al. Sec. 2).

  Esser et al., "Learned Step Size Quantization", ICLR 2020, arXiv:1902.08153 (Sec. 2), the quantiser of Jiang et al.,
  "GAQAT: Gradient-Adaptive Quantization-Aware Training for Domain Generalization", 2024, arXiv:2412.05551. Returns two
  Python ints.
  """
  if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 16:
    raise ValueError(f"bits must be an int in [2, 16], got {bits=!r}")
  if not isinstance(signed, bool):
    raise TypeError(f"signed must be a bool, got {signed=!r}")
  return (2 ** (bits - 1), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)


def lsq_fake_quant(w: jax.Array, s: jax.Array, bits: int, *, signed: bool = True,
                   grad_scale: Optional[float] = None) -> jax.Array:
  """LSQ fake quantisation: round(clip(w / s, -Q_N, Q_P)) * s, straight-through for round (Esser et al. 2020).

  Gradients (LSQ eq. 3): dw_q/dw = 1 inside the clipping range and 0 outside; dw_q/ds = -w/s + round(w/s) inside,
  -Q_N or Q_P outside, multiplied by g (default 1 / sqrt(N Q_P), N = entries of w per step size).

  Args:
    w: weights (or activations) [...], floating.
    s: step size(s) > 0, broadcastable to w (a scalar per tensor, or e.g. [1, out] per output channel).
    bits: b in [2, 16].
    signed: signed levels [-Q_N, Q_P] (weights) or unsigned [0, Q_P] (post-ReLU activations).
    grad_scale: g; None uses LSQ's 1 / sqrt(N Q_P).

  Returns:
    The fake-quantised w (w's shape and dtype).

  Examples:
    >>> import jax.numpy as jnp
    >>> lsq_fake_quant(jnp.array([0.26, -0.9, 3.0]), jnp.array(0.5), bits=3).tolist()
    [0.5, -1.0, 1.5]

  References:
    Esser, McKinstry, Bablani, Appuswamy, Modha. "Learned Step Size Quantization". ICLR 2020. arXiv:1902.08153,
    eqs. (1)-(3) and Sec. 2.2 (gradient scale).
    Jiang et al. "GAQAT: Gradient-Adaptive Quantization-Aware Training for Domain Generalization". 2024.
    arXiv:2412.05551 (the quantiser GAQAT trains).
  """
  w = validation.check_floating(w, "w")
  s = validation.check_floating(s, "s")
  q_n, q_p = lsq_levels(bits, signed)
  try:
    np.broadcast_shapes(np.shape(s), np.shape(w))
  except ValueError:
    raise ValueError(f"s must broadcast to w's shape: w.shape={np.shape(w)}, s.shape={np.shape(s)}") from None
  if np.broadcast_shapes(np.shape(s), np.shape(w)) != np.shape(w):
    raise ValueError(f"s must broadcast to w's shape: w.shape={np.shape(w)}, s.shape={np.shape(s)}")
  if grad_scale is None:
    per_step = max(int(np.size(w)) // max(int(np.size(s)), 1), 1)
    grad_scale = 1.0 / float(np.sqrt(per_step * q_p))
  else:
    validation.check_positive(grad_scale, "grad_scale")
  dtype = jnp.promote_types(w.dtype, jnp.float32)
  s_g = _grad_scale(s.astype(dtype), grad_scale)
  v = jnp.clip(w.astype(dtype) / s_g, -q_n, q_p)
  return (_round_ste(v) * s_g).astype(w.dtype)


def sam_task_and_sharpness_grads(loss_fn: Callable[..., jax.Array], params: Any, *args: Any, rho: float = 0.05,
                                 eps: float = 1e-12) -> tuple[jax.Array, Any, Any]:
  """The two gradients of a sharpness-aware objective: g_task = grad L(w), g_sharp = grad L(w + e) - grad L(w).

  e = rho * g_task / ||g_task||_2 (SAM's first-order worst-case perturbation, held fixed), so g_task + g_sharp is
  SAM's gradient grad L(w + e), and g_sharp is the gradient of the sharpness term L(w + e) - L(w).

  Args:
    loss_fn: `loss_fn(params, *args) -> scalar`.
    params: pytree.
    *args: passed to loss_fn (a batch).
    rho: SAM's radius (>= 0).
    eps: added to the norm.

  Returns:
    (L(w), g_task, g_sharp).

  References:
    Foret, Kleiner, Mobahi, Neyshabur. "Sharpness-Aware Minimization for Efficiently Improving Generalization".
    ICLR 2021. arXiv:2010.01412, eq. (2).
    Jiang et al. "GAQAT". 2024. arXiv:2412.05551, Sec. 3 (task and sharpness gradients of the scales).
  """
  validation.check_nonnegative(rho, "rho")
  loss, g_task = jax.value_and_grad(loss_fn)(params, *args)
  norm = optax.tree.norm(g_task)
  perturbed = jax.tree.map(lambda p, g: p + (rho / (norm + eps)) * g, params, g_task)
  g_sam = jax.grad(loss_fn)(perturbed, *args)
  g_sharp = jax.tree.map(lambda a, b: a - b, g_sam, g_task)
  return loss, g_task, g_sharp


def gradient_disorder(g_task: Any, g_sharp: Any) -> Any:
  """Per leaf, the fraction of entries where sign(g_task) = -sign(g_sharp) != 0 (the scale-gradient conflict).

  Args:
    g_task: the task gradient pytree.
    g_sharp: the sharpness gradient pytree (same structure and shapes).

  Returns:
    A pytree of float32 scalars in [0, 1] (0 for empty leaves).

  References:
    Jiang et al. "GAQAT: Gradient-Adaptive Quantization-Aware Training for Domain Generalization". 2024.
    arXiv:2412.05551, Sec. 3 (gradient disorder of the quantiser scales).
  """
  _contracts.check_same_tree(g_sharp, g_task, "gradient_disorder", what="g_task")

  def one(a, b):
    if np.shape(a) != np.shape(b):
      raise ValueError(f"gradient_disorder: shapes differ: {np.shape(a)} vs {np.shape(b)}")
    if np.size(a) == 0:
      return jnp.zeros([], jnp.float32)
    return jnp.mean((jnp.sign(a) * jnp.sign(b) < 0).astype(jnp.float32))

  return jax.tree.map(one, g_task, g_sharp)


def _resolve_mask(scale_mask: Any, params: Any) -> list:
  mask = scale_mask(params) if callable(scale_mask) else scale_mask
  if jax.tree.structure(mask) != jax.tree.structure(params):
    raise ValueError("scale_mask must be a bool pytree with one bool per leaf of the params (or a function of the "
                     f"params returning one); got structure {jax.tree.structure(mask)}")
  return [bool(m) for m in jax.tree.leaves(mask)]


def gaqat_freeze_scales(updates: Any, g_task: Any, g_sharp: Any, scale_mask: Any,
                        threshold: float = 0.5) -> tuple[Any, Any]:
  """Zero the updates of the quantiser-scale leaves whose gradient disorder exceeds `threshold` (GAQAT).

  Args:
    updates: the pytree to filter (the gradient or a processed update).
    g_task: the task gradient (`sam_task_and_sharpness_grads`).
    g_sharp: the sharpness gradient (same structure).
    scale_mask: bool pytree (or `params -> bool pytree`) marking the quantiser-scale leaves.
    threshold: freeze a scale leaf when its disorder > threshold (in [0, 1)).

  Returns:
    (filtered updates, frozen): `frozen` is a pytree of bool scalars (True: that leaf's update was zeroed).

  References:
    Jiang et al. "GAQAT: Gradient-Adaptive Quantization-Aware Training for Domain Generalization". 2024.
    arXiv:2412.05551, Sec. 3 (selective freezing of the scale gradients).
  """
  validation.check_in_interval(threshold, "threshold", 0.0, 1.0, closed_high=False)
  _contracts.check_same_tree(updates, g_task, "gaqat_freeze_scales", what="g_task")
  flags = _resolve_mask(scale_mask, updates)
  disorder = jax.tree.leaves(gradient_disorder(g_task, g_sharp))
  leaves, treedef = jax.tree.flatten(updates)
  out, frozen = [], []
  for u, d, f in zip(leaves, disorder, flags):
    freeze = (d > threshold) if f else jnp.zeros([], jnp.bool_)
    frozen.append(freeze)
    out.append(jnp.where(freeze, jnp.zeros_like(u), u) if f else u)
  return jax.tree.unflatten(treedef, out), jax.tree.unflatten(treedef, frozen)


def _is_masked_node(x: Any) -> bool:
  return isinstance(x, optax.MaskedNode)


def _masked_like(updates: Any, tree: Any, name: str) -> Any:
  """`tree` (spanning every parameter) with optax.MaskedNode wherever the masked `updates` have one."""
  try:
    return jax.tree.map(lambda u, t: u if _is_masked_node(u) else t, updates, tree, is_leaf=_is_masked_node)
  except ValueError as e:
    raise ValueError(f"scale_by_gaqat_freeze inside optax.masked: {name} must span the full parameter tree "
                     f"(the tree optax.masked was given): {e}") from None


class ScaleByGaqatFreezeState(NamedTuple):
  """State of `scale_by_gaqat_freeze`: the step count (the decision is made from the current gradients).

  Jiang et al., "GAQAT: Gradient-Adaptive Quantization-Aware Training for Domain Generalization", 2024,
  arXiv:2412.05551.

  count: int32 scalar.
  """
  count: jax.Array  # int32 scalar


@_contracts.nan_on_invalid_injected
def scale_by_gaqat_freeze(threshold: float = 0.5, *,
                          scale_mask: Any = None) -> optax.GradientTransformationExtraArgs:
  """GAQAT's scale freezing as an optax transform: given SAM's gradient and the task gradient, freeze the quantiser
  scales whose task and sharpness gradients conflict (Jiang et al. 2024, arXiv:2412.05551, Sec. 3).

  `update(updates, state, params=None, *, task_grads)`: `updates` is SAM's gradient grad L(w + e) (= g_task +
  g_sharp), `task_grads` is grad L(w); g_sharp = updates - task_grads. Scale leaves (per `scale_mask`) whose
  `gradient_disorder` exceeds `threshold` get a zero update; everything else passes unchanged. Chain it before the
  base optimizer: `optax.chain(scale_by_gaqat_freeze(0.5, scale_mask=m), optax.adam(1e-3))` (optax.chain forwards
  `task_grads` to the transforms that take it).

  Composition: inside `optax.masked`, pass `task_grads` (and a bool-pytree `scale_mask`) over the full parameter
  tree; the leaves outside the mask are dropped to match. Under `optax.MultiSteps` the inner update runs once per
  k micro-steps on the *accumulated* SAM gradient but receives only the last micro-step's `task_grads` (MultiSteps
  does not accumulate extra arguments), so g_sharp would mix the two: pass the task gradient averaged over the same
  micro-steps yourself, or accumulate outside the optimizer.

  Args:
    threshold: disorder threshold in [0, 1).
    scale_mask: bool pytree or `params -> bool pytree` marking the quantiser-scale leaves (required).

  Returns:
    An optax GradientTransformationExtraArgs.

  Examples:
    >>> import jax.numpy as jnp
    >>> tx = scale_by_gaqat_freeze(0.5, scale_mask={"s": True, "w": False})
    >>> g_sam = {"s": jnp.array(1.0), "w": jnp.array([1.0])}
    >>> g_task = {"s": jnp.array(-0.5), "w": jnp.array([2.0])}   # g_sharp = 1.5 opposes g_task on "s"
    >>> u, _ = tx.update(g_sam, tx.init(g_sam), task_grads=g_task)
    >>> float(u["s"]), u["w"].tolist()
    (0.0, [1.0])

  References:
    Jiang, Meng, Tang, Yu, Li, Wang, Zhu. "GAQAT: Gradient-Adaptive Quantization-Aware Training for Domain
    Generalization". 2024. arXiv:2412.05551.
  """
  validation.check_in_interval(threshold, "threshold", 0.0, 1.0, closed_high=False)
  scale_mask = _contracts.static_choice(scale_mask, "scale_mask", "SCALE_BY_GAQAT_FREEZE_STATIC_ARGS")
  if scale_mask is None:
    raise ValueError("scale_by_gaqat_freeze needs scale_mask: a bool pytree (or a function of the params) marking "
                     "the quantiser-scale leaves")

  def init_fn(params):
    _contracts.check_real_leaves(params, "scale_by_gaqat_freeze", "the sign conflict of GAQAT's gradient disorder "
                                 "is defined for real gradients")
    return ScaleByGaqatFreezeState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None, *, task_grads=None, **extra_args):
    del extra_args
    if task_grads is None:
      raise ValueError("scale_by_gaqat_freeze needs the task gradient: update(sam_grads, state, params, "
                       "task_grads=grad_of_loss_at_w) (see sam_task_and_sharpness_grads)")
    mask = scale_mask
    if any(isinstance(x, optax.MaskedNode) for x in jax.tree.leaves(updates, is_leaf=_is_masked_node)):
      # Inside optax.masked: the leaves outside the mask are MaskedNode in `updates` and `params`, while task_grads
      # (an extra argument, forwarded as given) and a bool-pytree scale_mask still span every parameter.
      task_grads = _masked_like(updates, task_grads, "task_grads")
      if not callable(mask):
        mask = _masked_like(updates, mask, "scale_mask")
    if params is not None:
      _contracts.check_same_tree(updates, params, "scale_by_gaqat_freeze", what="params")
    _contracts.check_same_tree(updates, task_grads, "scale_by_gaqat_freeze", what="task_grads")
    _contracts.check_real_leaves(updates, "scale_by_gaqat_freeze", "the sign conflict of GAQAT's gradient disorder "
                                 "is defined for real gradients", what="gradients")
    g_sharp = jax.tree.map(lambda a, b: a - b.astype(a.dtype), updates, task_grads)
    out, _ = gaqat_freeze_scales(updates, task_grads, g_sharp, mask, threshold)
    return out, ScaleByGaqatFreezeState(count=optax.safe_increment(state.count))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


scale_by_gaqat_freeze.STATIC_ARGS = SCALE_BY_GAQAT_FREEZE_STATIC_ARGS

__all__ = ["SCALE_BY_GAQAT_FREEZE_STATIC_ARGS", "ScaleByGaqatFreezeState", "gaqat_freeze_scales",
           "gradient_disorder", "lsq_fake_quant", "lsq_levels", "sam_task_and_sharpness_grads",
           "scale_by_gaqat_freeze"]
