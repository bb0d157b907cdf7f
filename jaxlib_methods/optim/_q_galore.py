"""Q-GaLore: GaLore with INT4 group-quantised projectors, lazy layer-adaptive refresh, and INT8 weights.

Paper: Zhenyu Zhang, Ajay Jaiswal, Lu Yin, Shiwei Liu, Jiawei Zhao, Yuandong Tian, Zhangyang Wang, "Q-GaLore:
Quantized GaLore with INT4 Projection and Layer-Adaptive Low-Rank Gradients", 2024, arXiv:2407.08296 (method section).
Official code: `VITA-Group/Q-GaLore` / PyPI `q-galore-torch` (`q_galore_projector.GaLoreProjector`,
`QGaLoreAdamW8bit`). What we follow, from the code:

- Projector quantisation (`_quantize`): the projector in the official layout (P = Vh[:r] as r x n for the right side,
  P = U[:, :r] as m x r for the left) is flattened row-major into groups of `group_size` (256 in the scripts) and
  stored asymmetric min-max with `bits` (4) bits per entry: scale = max(max - min, 1e-5) / (2^b - 1),
  zero = clip(-round(min / scale), 0, 2^b - 1), q = clip(round(w / scale) + zero, 0, 2^b - 1); it is used as
  scale * (q - zero). With bits <= 4 and an even group size we pack two codes per byte (real INT4 storage; the
  official code keeps one 4-bit code per uint8). A last partial group is padded with its last entry (no effect on its
  min/max); the official code requires divisibility.
- Lazy layer-adaptive refresh, per matrix: a refresh happens when count % gap == 0 (count before the increment,
  absolute steps; the first step always refreshes). From the second refresh on, the signed cosine similarity of the
  new and previous top singular vector (float, unquantised) is pushed to a FIFO queue of `queue_size` (5); when the
  queue is full and its mean is >= `cos_threshold` (0.4), gap <- int(gap * gamma) (gamma = 2). The queue is not
  cleared, so consecutive refreshes can keep doubling.
- The inner optimizer's state is never reset (as GaLore). The official inner optimizer is bitsandbytes' 8-bit
  blockwise Adam: `inner=scale_by_adam_8bit()` (`jaxlib_methods.optim`, the same algorithm: dynamic quantisation
  maps, block-wise absmax, tensors under 4096 entries kept in float32); the default `inner` is
  `optax.scale_by_adam()` with float32 moments (`state_dtype`).
- INT8 weights with stochastic rounding: see `apply_updates_int8` (how a train step uses it) and `quantize_groupwise`.
- Leaves of rank >= 3: the `reshape` option of `scale_by_galore`; with `reshape="slices"` each slice of the leading
  axis has its own projector and its own lazy schedule.

State layout (optax's contracts): every per-matrix field (`proj.codes/scales/zeros`, `top`, `queue`, `queue_len`,
`gap`, `svd_count`, `ok`) is a tree mirroring the params, with a scalar placeholder at unprojected leaves, so
`optax.tree.map_params` works and orbax saves it; dtypes and shardings are the same after `init` and `update`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods import validation
from jaxlib_methods.optim import _contracts, _plan, subspace
from jaxlib_methods.optim._galore import galore_plans


# ----------------------------------------------------------------------------------------------------------------------
# Group-wise asymmetric quantisation (projectors and INT8 weights).
# ----------------------------------------------------------------------------------------------------------------------

class QuantizedArray(NamedTuple):
  """Group-wise quantised array: `codes` uint8 (two 4-bit codes per byte when packed), per-group float32 `scales`
  and `zeros` (shape (num_groups,)). The original shape, bits and group size are static (not stored).

  Zhang et al., "Q-GaLore: Quantized GaLore with INT4 Projection and Layer-Adaptive Low-Rank Gradients", 2024,
  arXiv:2407.08296 (method section).

  codes: uint8 (ceil(numel / 2),) when two 4-bit codes are packed per byte, else (padded numel,) = (num_groups *
  group_size,); scales, zeros: float32 (num_groups,).
  """
  codes: jax.Array
  scales: jax.Array
  zeros: jax.Array


def _group_layout(size: int, group_size: int, row_len: int) -> tuple[int, int]:
  gs = row_len if group_size <= 0 else group_size
  num_groups = -(-size // gs)
  return gs, num_groups


def _packed(bits: int, gs: int) -> bool:
  return bits <= 4 and gs % 2 == 0


def quantize_groupwise(w: jax.Array, bits: int = 4, group_size: int = 256, *, key: Optional[jax.Array] = None
                       ) -> QuantizedArray:
  """Asymmetric min-max quantisation of `w` in groups of `group_size` consecutive (row-major) entries.

  Q-GaLore's `_quantize` (Zhang et al. 2024, arXiv:2407.08296, method section; official `q_galore_projector.py`):
  scale = max(max - min, 1e-5) / (2^b - 1), zero = clip(-round(min/scale), 0, 2^b - 1),
  q = clip(round(w/scale) + zero, 0, 2^b - 1). With `key`, the rounding of w/scale is stochastic (round up with
  probability equal to the fractional part, so E[q] is exact before clipping), as the official INT8 weight
  re-quantisation; the zero point is always rounded to nearest. `group_size <= 0` means one group per row of a 2-D
  `w` (last axis). Rounding to nearest is half-to-even (as torch.round).

  Args:
    w: a floating-point array of any shape.
    bits: 1..8.
    group_size: entries per group (> 0), or <= 0 for per-row groups.
    key: PRNG key for stochastic rounding, or None for round-to-nearest.

  Returns:
    `QuantizedArray`; codes of shape (ceil(numel / 2),) when bits <= 4 and the group size is even, else (padded
    numel,); scales and zeros of shape (num_groups,).
  """
  if not 1 <= bits <= 8:
    raise ValueError(f"bits must be in 1..8, got {bits=}")
  row_len = w.shape[-1] if w.ndim else 1
  gs, ng = _group_layout(w.size, group_size, row_len)
  flat = w.reshape(-1).astype(jnp.float32)
  pad = ng * gs - flat.size
  if pad:
    flat = jnp.concatenate([flat, jnp.broadcast_to(flat[-1:], (pad,))])
  x = flat.reshape(ng, gs)
  max_int = 2 ** bits - 1
  mx, mn = jnp.max(x, axis=1, keepdims=True), jnp.min(x, axis=1, keepdims=True)
  scales = jnp.maximum(mx - mn, 1e-5) / max_int
  zeros = jnp.clip(-jnp.round(mn / scales), 0, max_int)
  y = x / scales
  if key is None:
    r = jnp.round(y)
  else:
    fl = jnp.floor(y)
    r = fl + (jax.random.uniform(key, y.shape) < (y - fl)).astype(y.dtype)
  q = jnp.clip(r + zeros, 0, max_int).astype(jnp.uint8).reshape(-1)
  if _packed(bits, gs):
    q = q[0::2] | (q[1::2] << 4)
  return QuantizedArray(q, scales[:, 0], zeros[:, 0])


def dequantize_groupwise(qa: QuantizedArray, shape: tuple[int, ...], bits: int = 4, group_size: int = 256,
                         dtype: Any = jnp.float32) -> jax.Array:
  """scale * (q - zero) per group, reshaped to `shape` (inverse of `quantize_groupwise` up to rounding).

  Zhang et al., "Q-GaLore: Quantized GaLore with INT4 Projection and Layer-Adaptive Low-Rank Gradients", 2024,
  arXiv:2407.08296 (method section).

  qa: `QuantizedArray` of a tensor of `shape`; returns an array of `shape` and `dtype`.
  """
  size = int(np.prod(shape))
  row_len = shape[-1] if len(shape) else 1
  gs, ng = _group_layout(size, group_size, row_len)
  q = qa.codes
  if _packed(bits, gs):
    q = jnp.stack([q & 0xF, q >> 4], axis=1).reshape(-1)
  q = q.astype(jnp.float32).reshape(ng, gs)
  w = qa.scales[:, None] * (q - qa.zeros[:, None])
  return w.reshape(-1)[:size].reshape(shape).astype(dtype)


# ----------------------------------------------------------------------------------------------------------------------
# The transform.
# ----------------------------------------------------------------------------------------------------------------------

SCALE_BY_Q_GALORE_STATIC_ARGS = ("rank", "bits", "group_size", "queue_size", "projection_mask", "reshape",
                                 "state_dtype")
Q_GALORE_STATIC_ARGS = SCALE_BY_Q_GALORE_STATIC_ARGS + ("mask",)
CONSTANT = "Q_GALORE_STATIC_ARGS (SCALE_BY_Q_GALORE_STATIC_ARGS for scale_by_q_galore)"


class QGaLoreState(NamedTuple):
  """State of `scale_by_q_galore`. Every field but `count` and `inner_state` is a tree mirroring the params (a scalar
  placeholder at unprojected leaves); fields of a `reshape="slices"` leaf carry a leading [L] axis.

  count: int32 step count.
  proj: `QuantizedArray` of trees: the quantised projector (official layout: Q^T for the right side, Q for the left)
    as uint8 codes (two 4-bit codes per byte when packed) and float32 per-group scales and zero points.
  top: float32 (d,), the previous refresh's top singular vector (unquantised).
  queue: float32 (queue_size,), the last cosine similarities, oldest first; queue_len: int32 entries filled.
  gap: int32, the matrix's current refresh interval; svd_count: int32 refreshes so far; ok: bool, a valid projector.
  inner_state: the inner transform's state on the projected shapes.

  Zhang et al., "Q-GaLore: Quantized GaLore with INT4 Projection and Layer-Adaptive Low-Rank Gradients", 2024,
  arXiv:2407.08296 (method section).
  """
  count: chex.Array
  proj: QuantizedArray
  top: Any
  queue: Any
  queue_len: Any
  gap: Any
  svd_count: Any
  ok: Any
  inner_state: optax.OptState


class _Leaf(NamedTuple):  # one matrix's projector fields (vmapped over a slices axis)
  codes: jax.Array
  scales: jax.Array
  zeros: jax.Array
  top: jax.Array
  queue: jax.Array
  queue_len: jax.Array
  gap: jax.Array
  svd_count: jax.Array
  ok: jax.Array


@_contracts.nan_on_invalid_injected
def scale_by_q_galore(
    rank: subspace.RankSpec = 128,
    update_gap: int = 200,
    scale: float = 0.25,
    inner: Optional[optax.GradientTransformation] = None,
    *,
    bits: int = 4,
    group_size: int = 256,
    cos_threshold: float = 0.4,
    gamma: float = 2.0,
    queue_size: int = 5,
    projector: str = "svd",
    side: str = "std",
    projection_mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None,
    reshape: Optional[Any] = None,
    state_dtype: Optional[Any] = "auto",
    seed: int = 0,
) -> optax.GradientTransformation:
  """Q-GaLore's projected direction scale * deq(P) inner(deq(P)^T G) with a lazily refreshed INT4 projector.

  Zhang et al., "Q-GaLore: Quantized GaLore with INT4 Projection and Layer-Adaptive Low-Rank Gradients" (2024,
  arXiv:2407.08296), method section (INT4 projection; layer-adaptive lazy subspace update), following the official
  code as described in the module docstring. With `cos_threshold > 1` the lazy rule never fires and this is GaLore
  with a quantised projector.

  Args:
    rank: r (int > 0 or callable (path, leaf shape) -> int), clamped to min(m, n). Static.
    update_gap: the initial refresh interval T >= 1 of every matrix (read at init; the intervals then live in the
      state and grow by `gamma`).
    scale: alpha applied to the back-projected direction (paper scripts: 0.25).
    inner: any optax transform on the projected gradients (default `optax.scale_by_adam()`; the paper's 8-bit Adam is
      `scale_by_adam_8bit()`).
    bits: projector bits (4 in the paper), 1..8. Static.
    group_size: projector quantisation group size (256 in the scripts; <= 0: one group per row). Static.
    cos_threshold, gamma: the lazy-refresh rule (0.4, 2 in the code); may be injected.
    queue_size: length of the similarity queue (5 in the code). Static.
    projector: "svd" or "randomized_svd".
    side, projection_mask, reshape, state_dtype, seed: as `scale_by_galore`.

  With `optax.inject_hyperparams`, pass `static_args=SCALE_BY_Q_GALORE_STATIC_ARGS`.

  Returns:
    An `optax.GradientTransformation` with state `QGaLoreState`.

  References:
    Zhang, Jaiswal, Yin, Liu, Zhao, Tian, Wang. "Q-GaLore: Quantized GaLore with INT4 Projection and Layer-Adaptive
    Low-Rank Gradients". 2024. arXiv:2407.08296.
  """
  constant = CONSTANT
  update_gap = _contracts.gap_value(update_gap)
  subspace.check_projector(projector, ("svd", "randomized_svd"))
  subspace.check_side(side)
  if not callable(rank):
    _contracts.static_int(rank, "rank", constant)
  bits = _contracts.static_int(bits, "bits", constant)
  if bits > 8:
    raise ValueError(f"bits must be in 1..8, got {bits=}")
  queue_size = _contracts.static_int(queue_size, "queue_size", constant)
  group_size = _contracts.static_int(group_size, "group_size", constant, low=-(2 ** 62))
  _contracts.static_choice(projection_mask, "projection_mask", constant)
  _contracts.static_choice(reshape, "reshape", constant)
  validation.check_in_interval(gamma, "gamma", 1.0, float("inf"), closed_high=False)
  validation.check_nonnegative(scale, "scale")
  validation.check_in_interval(cos_threshold, "cos_threshold", -1.0, float("inf"), closed_high=False)
  sdtype = _contracts.check_state_dtype(state_dtype)
  inner = optax.scale_by_adam() if inner is None else inner
  plan_kw = dict(rank=rank, projector=projector, side=side, projection_mask=projection_mask, reshape=reshape,
                 oversample=8, n_iter=2, method="q_galore", constant=constant)

  def layout_shape(spec):  # official layout of the stored matrix
    d, r = spec.basis_shape
    return (r, d) if spec.side == "right" else (d, r)

  def to_layout(spec, q):
    return q.T if spec.side == "right" else q

  def from_layout(spec, m):
    return m.T if spec.side == "right" else m

  def leaf_init(plan, p):
    spec = plan.spec
    pre = plan.layout.prefix
    qa = jax.eval_shape(lambda: quantize_groupwise(jnp.zeros(layout_shape(spec), jnp.float32), bits, group_size))
    z = lambda shape, dtype: _contracts.zeros(pre + tuple(shape), dtype, p,
                                              None if _contracts.param_spec(p) is None else (None,) * (len(pre) +
                                                                                                      len(shape)))
    return _Leaf(codes=z(qa.codes.shape, qa.codes.dtype), scales=z(qa.scales.shape, jnp.float32),
                 zeros=z(qa.zeros.shape, jnp.float32), top=z((spec.reduced_dim,), jnp.float32),
                 queue=z((queue_size,), jnp.float32), queue_len=z((), jnp.int32),
                 gap=z((), jnp.int32) + jnp.asarray(update_gap, jnp.int32), svd_count=z((), jnp.int32),
                 ok=z((), jnp.bool_))

  def placeholder_leaf():
    return _Leaf(codes=jnp.zeros((), jnp.uint8), scales=jnp.zeros((), jnp.float32), zeros=jnp.zeros((), jnp.float32),
                 top=jnp.zeros((), jnp.float32), queue=jnp.zeros((), jnp.float32),
                 queue_len=jnp.zeros((), jnp.int32), gap=jnp.zeros((), jnp.int32),
                 svd_count=jnp.zeros((), jnp.int32), ok=jnp.asarray(True))

  def pack(treedef, leaves, inner_state, count):
    fields = {f: treedef.unflatten([getattr(l, f) for l in leaves]) for f in _Leaf._fields}
    return QGaLoreState(count=count, proj=QuantizedArray(fields["codes"], fields["scales"], fields["zeros"]),
                        top=fields["top"], queue=fields["queue"], queue_len=fields["queue_len"], gap=fields["gap"],
                        svd_count=fields["svd_count"], ok=fields["ok"], inner_state=inner_state)

  def unpack(treedef, state):
    cols = [treedef.flatten_up_to(t) for t in (state.proj.codes, state.proj.scales, state.proj.zeros, state.top,
                                              state.queue, state.queue_len, state.gap, state.svd_count, state.ok)]
    return [_Leaf(*c) for c in zip(*cols)]

  def init_fn(params):
    _contracts.check_inexact_leaves(params, "q_galore")
    plans = galore_plans(params, **plan_kw)
    leaves, treedef = jax.tree.flatten(params)
    out, proxies = [], []
    for plan, p in zip(plans, leaves):
      dt = _contracts.state_dtype_for(sdtype, jnp.result_type(p))
      if plan is None:
        out.append(placeholder_leaf())
        proxies.append(jnp.zeros_like(p, dtype=dt))
      else:
        out.append(leaf_init(plan, p))
        proxies.append(_contracts.zeros(plan.low_shape, dt, p, plan.low_spec(_contracts.param_spec(p))))
    return pack(treedef, out, inner.init(treedef.unflatten(proxies)), jnp.zeros([], jnp.int32))

  def refresh_one(spec, g, leaf, key):
    g_fine = subspace.all_finite(g)  # never hand a NaN/Inf matrix to LAPACK's SVD (it can hang)
    q = spec.compute(jnp.where(g_fine, g, jnp.zeros_like(g)), key).astype(jnp.float32)
    fine = g_fine & subspace.all_finite(q)
    top = spec.top_vector(q)
    denom = jnp.maximum(jnp.linalg.norm(top) * jnp.linalg.norm(leaf.top), 1e-8)
    cos = jnp.dot(top, leaf.top) / denom
    push = leaf.svd_count > 0
    queue = jnp.where(push, jnp.concatenate([leaf.queue[1:], cos[None]]), leaf.queue)
    # The FIFO keeps the newest `queue_size` entries at the end; the first queue_len - 1 pops are of empty slots.
    queue_len = jnp.where(push, jnp.minimum(leaf.queue_len + 1, queue_size), leaf.queue_len)
    full = queue_len == queue_size
    grow = full & (jnp.mean(queue) >= cos_threshold)
    gap = jnp.where(grow, jnp.minimum(leaf.gap.astype(jnp.float32) * gamma, 2.0 ** 30).astype(jnp.int32), leaf.gap)
    qa = quantize_groupwise(to_layout(spec, q), bits, group_size)
    new = _Leaf(codes=qa.codes, scales=qa.scales, zeros=qa.zeros, top=top, queue=queue, queue_len=queue_len,
                gap=gap, svd_count=leaf.svd_count + 1, ok=jnp.asarray(True))
    # A non-finite SVD (NaN/Inf gradient, failed decomposition) changes nothing: previous projector and counters.
    return jax.tree.map(lambda a, b: jnp.where(fine, a, b).astype(b.dtype), new, leaf)

  def refresh(plan, gm, leaf, count, key):
    do = (count % leaf.gap == 0) | ~leaf.ok
    gr = _contracts.replicated(gm)
    if not plan.layout.batched:
      return jax.lax.cond(do, lambda: refresh_one(plan.spec, gr, leaf, key), lambda: leaf)

    def some():
      keys = jax.random.split(key, plan.layout.shape[0])
      new = jax.vmap(lambda g, l, k: refresh_one(plan.spec, g, l, k))(gr, leaf, keys)
      return jax.tree.map(lambda a, b: jnp.where(do.reshape(do.shape + (1,) * (a.ndim - 1)), a, b), new, leaf)

    return jax.lax.cond(jnp.any(do), some, lambda: leaf)

  def dequantized(plan, leaf, dtype):
    shp = layout_shape(plan.spec)

    def one(l):
      return from_layout(plan.spec, dequantize_groupwise(QuantizedArray(l.codes, l.scales, l.zeros), shp, bits,
                                                         group_size, dtype))

    return jax.vmap(one)(leaf) if plan.layout.batched else one(leaf)

  def update_fn(updates, state, params=None):
    _contracts.check_same_tree(updates, state.top, "q_galore")
    if params is not None:
      _contracts.check_same_tree(params, state.top, "q_galore", what="the params given to init (params argument)")
    plans = galore_plans(updates, **plan_kw)
    g_leaves, treedef = jax.tree.flatten(updates)
    leaves = unpack(treedef, state)
    for plan, l in zip(plans, leaves):
      if plan is not None and tuple(l.top.shape) != plan.layout.prefix + (plan.spec.reduced_dim,):
        raise ValueError(f"q_galore: the gradient of leaf {plan.path} has shape {plan.layout.shape}, which does not "
                         f"match the params given to init")
    p_leaves = treedef.flatten_up_to(params) if params is not None else [None] * len(g_leaves)
    count = state.count
    new_leaves, dense, low, low_params = [], [], [], []
    for i, (plan, g, leaf, p) in enumerate(zip(plans, g_leaves, leaves, p_leaves)):
      dt = _contracts.state_dtype_for(sdtype, g.dtype)
      if plan is None:
        new_leaves.append(leaf)
        dense.append(None)
        low.append(g.astype(dt))
        low_params.append(None if p is None else p.astype(dt))
        continue
      gm = plan.to_matrix(g)
      leaf = refresh(plan, gm, leaf, count, subspace.refresh_key(seed, i, count))
      leaf = jax.tree.map(_contracts.replicated, leaf)  # small: replicated, as init made them
      new_leaves.append(leaf)
      q = dequantized(plan, leaf, g.dtype)
      dense.append(q)
      low.append(plan.project(q, gm).astype(dt))
      low_params.append(None if p is None else plan.project(q, plan.to_matrix(p)).astype(dt))
    inner_params = None if params is None else treedef.unflatten(low_params)
    inner_updates, inner_state = inner.update(treedef.unflatten(low), state.inner_state, inner_params)
    out = []
    for plan, g, u, q in zip(plans, g_leaves, treedef.flatten_up_to(inner_updates), dense):
      out.append(u.astype(g.dtype) if plan is None else (scale * plan.project_back(q, u, g)).astype(g.dtype))
    return treedef.unflatten(out), pack(treedef, new_leaves, inner_state, optax.safe_increment(count))

  return optax.GradientTransformation(init_fn, update_fn)


scale_by_q_galore.STATIC_ARGS = SCALE_BY_Q_GALORE_STATIC_ARGS


@_contracts.nan_on_invalid_injected
def q_galore(
    learning_rate: optax.ScalarOrSchedule,
    rank: subspace.RankSpec = 128,
    update_gap: int = 200,
    scale: float = 0.25,
    inner: Optional[optax.GradientTransformation] = None,
    weight_decay: float = 0.0,
    mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None,
    *,
    bits: int = 4,
    group_size: int = 256,
    cos_threshold: float = 0.4,
    gamma: float = 2.0,
    queue_size: int = 5,
    projector: str = "svd",
    side: str = "std",
    projection_mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None,
    reshape: Optional[Any] = None,
    state_dtype: Optional[Any] = "auto",
    seed: int = 0,
) -> optax.GradientTransformation:
  """Q-GaLore: `scale_by_q_galore`, then decoupled weight decay on the full weights, then the learning rate.

  Zhang et al., "Q-GaLore" (2024, arXiv:2407.08296). The official optimizer decays after the update with the
  unscaled lr (W <- W - lr*wd*W_new); here decay is chained before the learning rate as in every optax optimizer
  (the scripts use wd = 0, where the two agree). For INT8 weights, follow the step with `apply_updates_int8`; for
  the paper's 8-bit Adam states, `inner=scale_by_adam_8bit(b2=0.95)` (the scripts' beta2).

  Args:
    learning_rate: a constant >= 0 or an optax schedule.
    weight_decay: decoupled weight decay >= 0; mask: its leaf mask.
    Others: see `scale_by_q_galore`.

  With `optax.inject_hyperparams`, pass `static_args=Q_GALORE_STATIC_ARGS` (also `q_galore.STATIC_ARGS`).

  Returns:
    An `optax.GradientTransformation` (state: (QGaLoreState, EmptyState, EmptyState)).

  Example:
    >>> import jax.numpy as jnp, optax
    >>> tx = q_galore(1e-2, rank=2, group_size=8)
    >>> params = {"w": jnp.ones((4, 6))}
    >>> u, s = tx.update(params, tx.init(params), params)

  References:
    Zhang, Jaiswal, Yin, Liu, Zhao, Tian, Wang. "Q-GaLore: Quantized GaLore with INT4 Projection and Layer-Adaptive
    Low-Rank Gradients". 2024. arXiv:2407.08296.
  """
  validation.check_learning_rate(learning_rate)
  validation.check_nonnegative(weight_decay, "weight_decay")
  mask = _contracts.decay_mask(mask, "mask", CONSTANT)
  return optax.chain(
      scale_by_q_galore(rank=rank, update_gap=update_gap, scale=scale, inner=inner, bits=bits, group_size=group_size,
                        cos_threshold=cos_threshold, gamma=gamma, queue_size=queue_size, projector=projector,
                        side=side, projection_mask=projection_mask, reshape=reshape, state_dtype=state_dtype,
                        seed=seed),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )


q_galore.STATIC_ARGS = Q_GALORE_STATIC_ARGS


# ----------------------------------------------------------------------------------------------------------------------
# INT8 weights with stochastic rounding.
# ----------------------------------------------------------------------------------------------------------------------

def apply_updates_int8(params: optax.Params, updates: optax.Updates, key: jax.Array, *,
                       mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None, group_size: int = 256,
                       stochastic: bool = True) -> optax.Params:
  """`optax.apply_updates`, then snap the masked weights back onto their INT8 grid (Q-GaLore's weight path).

  Q-GaLore (Zhang et al. 2024, arXiv:2407.08296, method section) keeps the linear weights in INT8 (groups of 256, asymmetric
  min-max) and, after every optimizer step, re-quantises the updated float weight W' with stochastic rounding
  (round up with probability equal to the fractional part), so small updates survive in expectation. We keep the
  weights in the user's float pytree and simulate the storage exactly (the official `QLinear` simulation mode):
  the returned leaf equals dequantize(quantize(W', key)) and is representable as uint8 codes + per-group scale and
  zero (`quantize_groupwise(w, 8, group_size)` recovers them exactly).

  A train step:

      updates, opt_state = tx.update(grads, opt_state, params)
      params = apply_updates_int8(params, updates, jax.random.fold_in(key, step), mask=is_linear_weight)

  Args:
    params, updates: pytrees of the same structure.
    key: PRNG key (split per leaf internally).
    mask: which leaves are INT8 (pytree of bools or callable params -> pytree); default: every leaf with ndim >= 2.
    group_size: INT8 group size (256 in the code).
    stochastic: stochastic rounding (the official `--stochastic_round`, on in all scripts) or round-to-nearest.

  Returns:
    The new params, same structure and dtypes.
  """
  new = optax.apply_updates(params, updates)
  flat = _plan.leaf_option(mask, new, "mask", "('mask',)", is_value=_plan._is_bool)
  leaves, treedef = jax.tree.flatten(new)
  use = [jnp.ndim(w) >= 2 if m is None else bool(m) for w, m in zip(leaves, flat)]
  out = []
  for i, (w, u) in enumerate(zip(leaves, use)):
    if not u:
      out.append(w)
      continue
    k = jax.random.fold_in(key, i) if stochastic else None
    qa = quantize_groupwise(w, 8, group_size, key=k)
    out.append(dequantize_groupwise(qa, w.shape, 8, group_size, w.dtype))
  return treedef.unflatten(out)
