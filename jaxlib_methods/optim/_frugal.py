"""FRUGAL: full-rank updates with gradient splitting (state-full subspace + state-free complement).

Paper: Philip Zmushko, Aleksandr Beznosikov, Martin Takáč, Samuel Horváth, "FRUGAL: Memory-Efficient Optimization
by Reducing State Overhead for Scalable Training", ICML 2025, arXiv:2411.07837 (the paper's FRUGAL algorithm box; its number was not verified here). Official code:
`fzmushko/FRUGAL` (`ProjOptimizer`, `GaLoreProjector`, `CoordinateProjector`, `BlockOptimizer`).

For each split leaf G (m x n), with a projector P refreshed every `update_gap` steps (count % T == 0):

    R      = P(G)                                  state-full part, in the subspace of density rho
    u_full = P^-1(inner(R))                        inner: Adam by default (any optax transform: Lion, SGD-momentum)
    G_free = G - P^-1(R)                           the complement
    u      = scale * (u_full + state_free_scale * rule(G_free)),   rule = sign (signSGD, default) | identity (SGD)
                                                                          | 0 ("none": GaLore-style training)

`frugal(learning_rate, ...)` then adds decoupled weight decay on all params and multiplies by -lr, which is exactly
the official order (p <- p(1 - lr*wd), then p <- p + update, both with the unscaled lr). Leaves that are not split
(the `split_mask` excludes them) get `inner` on their full gradient (always state-full). What the official code
does, and the defaults here:

- Which leaves are split: only the Linear weights inside attention/MLP blocks; embeddings, norms, the output layer
  and biases always get AdamW. Pass that choice as `split_mask`; the default splits every 2-D leaf.
- Projections (`projector`): "columns" (random subset of int(n*rho) columns; the code's default `coord_choice`),
  "rows" (int(m*rho) rows), "randk" (int(m*n*rho) random entries), "svd" / "random" (orthonormal Q of rank
  round(d*rho) on the side chosen by `side`, the code's `GaloreOptimizer`), "randomized_svd", and "blocks" (the
  code's `BlockOptimizer`, BAdam-like: round(L*rho) of L blocks are state-full, chosen in the cyclic "descending"
  order of the paper's pre-training runs; see "Blocks" below). Our default is "columns" (the code's default; coordinate projections keep the complement exactly
  orthogonal, so sign(G_free) never touches the state-full coordinates).
- At each refresh the inner state is re-initialised (Adam moments zeroed, bias correction restarted), the code's
  `reset_statistics=True`; `reset_state=False` keeps it as is (the code's GaLore baseline). No re-projection.
- Inner default `optax.scale_by_adam()` is FRUGAL's AdamW direction exactly (eps 1e-8 after bias correction).
- Blocks: the official code's block is a whole parameter tensor. XLA needs static state shapes, so here the blocks
  are the slices of each split leaf along its leading axis: a fixed number round(L*rho) of the L slices of every
  split leaf is state-full, gathered and scattered by index, and the inner state holds only those (the state shrinks
  by rho). With stacked layers (a [L, ...] leaf, e.g. `nnx.scan`/`nnx.vmap` layers), this is the paper's
  layer-wise selection (one window per parameter type); on a leaf that is a single matrix, its rows are the blocks.
- rho = 0 (or a subspace of size 0): the leaf is purely state-free (signSGD) and has no inner state; the state keeps a
  scalar placeholder there (orbax cannot save zero-size arrays), so it saves and restores like any other.

State layout (optax's contracts): `basis` and `ok` mirror the params (a scalar placeholder at leaves without a
projector); `inner_state` and `full_state` are initialised on trees of the params' structure (scalar placeholders at
the leaves each does not cover), so `optax.tree.map_params` works and dtypes and shardings are stable.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional, Union

import chex
import jax
import jax.numpy as jnp
import optax

from jaxlib_methods import validation
from jaxlib_methods.optim import _contracts, _plan, subspace
from jaxlib_methods.optim._galore import check_basis_shapes, refresh_basis

FRUGAL_PROJECTORS = ("columns", "rows", "randk", "svd", "randomized_svd", "random", "blocks")
STATE_FREE_RULES = ("sign_sgd", "sgd", "none")
SCALE_BY_FRUGAL_STATIC_ARGS = ("rho", "oversample", "n_iter", "split_mask", "reshape", "state_dtype")
FRUGAL_STATIC_ARGS = SCALE_BY_FRUGAL_STATIC_ARGS + ("mask",)
CONSTANT = "FRUGAL_STATIC_ARGS (SCALE_BY_FRUGAL_STATIC_ARGS for scale_by_frugal)"


class FrugalState(NamedTuple):
  """State of `scale_by_frugal`.

  count: int32 step count.
  basis: a tree mirroring the params: the projector of each split leaf (a dense basis, or int32 indices of the
    state-full columns / rows / entries / blocks), a float32 scalar placeholder elsewhere (unsplit leaves, and split
    leaves with an empty state-full part, e.g. rho = 0).
  ok: a tree mirroring the params of bool scalars (False while a split leaf has no valid projector yet).
  inner_state: the inner state over the split leaves' state-full coordinates (reset at each refresh by default).
  full_state: the inner state over the leaves that are not split.

  Zmushko et al., "FRUGAL: Memory-Efficient Optimization by Reducing State Overhead for Scalable Training", ICML 2025,
  arXiv:2411.07837 (the FRUGAL algorithm box). Shapes: basis [d, r] (dense) or int32 [k] (indices) per split leaf.
  """
  count: chex.Array
  basis: Any
  ok: Any
  inner_state: optax.OptState
  full_state: optax.OptState


def frugal_plans(tree, *, rho, projector, side, split_mask, reshape, oversample, n_iter):
  if not jax.tree.leaves(tree):
    return []
  blocks = projector == "blocks"
  if blocks:  # blocks are the slices of the leading axis: rows = axis 0 of the matrix view
    reshapes = [1] * len(jax.tree.leaves(tree))
    default = lambda p, r: (jnp.ndim(p) >= 2 and jnp.issubdtype(jnp.result_type(p), jnp.floating)
                            and math.prod(jnp.shape(p)) > 0)
  else:
    reshapes = _plan.leaf_option(reshape, tree, "reshape", CONSTANT, is_value=_plan._is_reshape_value)
    default = _plan.default_use
  use = _plan.resolve_use(split_mask, tree, "split_mask", CONSTANT, default, reshapes)

  def make_spec(path, shape, mn):
    m, n = mn
    if projector == "columns":
      return subspace.SubspaceSpec("coordinates", "right", int(n * rho), mn)
    if projector in ("rows", "blocks"):
      k = int(round(m * rho)) if blocks else int(m * rho)
      return subspace.SubspaceSpec("coordinates", "left", k, mn)
    if projector == "randk":
      return subspace.SubspaceSpec("randk", "right", int(m * n * rho), mn)
    s = subspace.resolve_side(mn, side)
    d = m if s == "left" else n
    kind = "random_orthogonal" if projector == "random" else projector
    return subspace.SubspaceSpec(kind, s, int(round(d * rho)), mn, oversample, n_iter)

  return _plan.plans(tree, use=use, reshapes=reshapes, make_spec=make_spec, method="frugal")


@_contracts.nan_on_invalid_injected
def scale_by_frugal(
    rho: float = 0.25,
    update_gap: int = 200,
    inner: Optional[optax.GradientTransformation] = None,
    *,
    projector: str = "columns",
    side: str = "std",
    state_free: str = "sign_sgd",
    state_free_scale: float = 1.0,
    scale: float = 1.0,
    reset_state: bool = True,
    block_order: str = "descending",
    split_mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None,
    reshape: Optional[Any] = None,
    state_dtype: Optional[Any] = "auto",
    seed: int = 0,
    oversample: int = 8,
    n_iter: int = 2,
) -> optax.GradientTransformation:
  """FRUGAL's direction: scale * (P^-1 inner(P G) + state_free_scale * rule(G - P^-1 P G)) per split leaf.

  Zmushko et al., "FRUGAL: Memory-Efficient Optimization by Reducing State Overhead for Scalable Training" (2024,
  arXiv:2411.07837), the paper's algorithm box, following the official code (module docstring). No learning rate, no
  decay.

  Special cases (tested exactly): rho = 1 with "columns"/"rows"/"randk"/"blocks" equals `inner` until the first
  refresh after step 0; rho = 0 is signSGD (`state_free="sign_sgd"`) on the split leaves; `state_free="none"` with
  `reset_state=False` and "svd" equals `scale_by_galore(scale=1)` with the same rank.

  Args:
    rho: density in [0, 1] of the state-full subspace (0.25 in the paper and code). Static (it sets the state's
      shapes).
    update_gap: T >= 1, steps between subspace refreshes (200 in the scripts); may be injected.
    inner: the state-full optimizer, any optax transform (default `optax.scale_by_adam()`); also used for the leaves
      that are not split. Transforms that read params receive the params projected the same way.
    projector: one of `FRUGAL_PROJECTORS`.
    side: for "svd"/"random"/"randomized_svd", one of `subspace.SIDES` ("std": the code's).
    state_free: "sign_sgd" (default), "sgd", or "none".
    state_free_scale: the code's `inactive_lr_scale` >= 0 (1.0 for pre-training, 0.1 for fine-tuning).
    scale: the code's `proj_params_lr_scale` >= 0, multiplying both parts of split leaves.
    reset_state: re-initialise the inner state of the split leaves at every refresh (the code's default).
    block_order: "descending" (paper's pre-training), "ascending" or "random", for projector="blocks".
    split_mask: pytree of bools (a prefix of the params tree, or a callable params -> pytree): leaves to split;
      default every real floating 2-D leaf of non-zero size (rank >= 2 for "blocks"; rank >= 3 too with a
      `reshape`). The paper keeps embeddings, norms, output layer and biases state-full: pass
      `paper_projection_mask`.
    reshape: how leaves of rank >= 3 are seen as matrices (see `scale_by_galore`); "blocks" always uses the leading
      axis as the block axis.
    state_dtype: dtype of the inner states ("auto" default: at least float32; None: the params' dtype).
    seed: seed of the random selections (fold_in(fold_in(PRNGKey(seed), leaf), step)).
    oversample, n_iter: randomized-SVD settings (static).

  With `optax.inject_hyperparams`, pass `static_args=SCALE_BY_FRUGAL_STATIC_ARGS`.

  Returns:
    An `optax.GradientTransformation` with state `FrugalState`; updates have the gradients' shapes and dtypes.

  References:
    Zmushko, Beznosikov, Takáč, Horváth. "FRUGAL: Memory-Efficient Optimization by Reducing State Overhead for
    Scalable Training". ICML 2025. arXiv:2411.07837.
  """
  rho = _contracts.static_number(rho, "rho", CONSTANT)
  validation.check_in_interval(rho, "rho", 0.0, 1.0)
  update_gap = _contracts.gap_value(update_gap)
  subspace.check_projector(projector, FRUGAL_PROJECTORS)
  subspace.check_side(side)
  if state_free not in STATE_FREE_RULES:
    raise ValueError(f"unknown state_free rule {state_free=!r}; choose one of {STATE_FREE_RULES}")
  if block_order not in subspace.BLOCK_ORDERS:
    raise ValueError(f"unknown block order {block_order=!r}; choose one of {subspace.BLOCK_ORDERS}")
  if not isinstance(reset_state, bool):
    raise TypeError(f"reset_state must be a bool, got {reset_state=!r}")
  oversample = _contracts.static_int(oversample, "oversample", CONSTANT, low=0)
  n_iter = _contracts.static_int(n_iter, "n_iter", CONSTANT, low=0)
  _contracts.static_choice(split_mask, "split_mask", CONSTANT)
  _contracts.static_choice(reshape, "reshape", CONSTANT)
  validation.check_nonnegative(state_free_scale, "state_free_scale")
  validation.check_nonnegative(scale, "scale")
  sdtype = _contracts.check_state_dtype(state_dtype)
  inner = optax.scale_by_adam() if inner is None else inner
  plan_kw = dict(rho=rho, projector=projector, side=side, split_mask=split_mask, reshape=reshape,
                 oversample=oversample, n_iter=n_iter)
  blocks = projector == "blocks"

  def rule(x):
    if state_free == "sign_sgd":
      return jnp.sign(x)
    if state_free == "sgd":
      return x
    return jnp.zeros_like(x)

  def has_state(plan):
    return plan is not None and plan.spec.rank > 0

  def proxies(plans, leaves, treedef):
    """Zeros on the state-full shapes (placed like the update produces them); scalar placeholders elsewhere."""
    split, full = [], []
    for plan, p in zip(plans, leaves):
      dt = _contracts.state_dtype_for(sdtype, jnp.result_type(p))
      if plan is None:
        split.append(_plan.placeholder(p, dt))
        full.append(jnp.zeros_like(p, dtype=dt))
      else:
        full.append(_plan.placeholder(p, dt))
        split.append(_contracts.zeros(plan.low_shape, dt, p, plan.low_spec(_contracts.param_spec(p)))
                     if has_state(plan) else _plan.placeholder(p, dt))
    return treedef.unflatten(split), treedef.unflatten(full)

  def init_fn(params):
    _contracts.check_inexact_leaves(params, "frugal")
    plans = frugal_plans(params, **plan_kw)
    leaves, treedef = jax.tree.flatten(params)
    basis, ok = [], []
    for plan, p in zip(plans, leaves):
      if not has_state(plan):
        basis.append(_plan.placeholder(p, jnp.float32))
        ok.append(jnp.asarray(True))
      else:
        basis.append(_contracts.zeros(plan.basis_shape, plan.spec.basis_dtype(jnp.result_type(p)), p,
                                      plan.basis_spec(_contracts.param_spec(p))))
        ok.append(jnp.asarray(False))
    split, full = proxies(plans, leaves, treedef)
    return FrugalState(count=jnp.zeros([], jnp.int32), basis=treedef.unflatten(basis), ok=treedef.unflatten(ok),
                       inner_state=inner.init(split), full_state=inner.init(full))

  def block_refresh(plan, basis, count, do, key):
    idx = subspace.block_indices(plan.spec.shape[0], plan.spec.rank, count // update_gap, block_order, key)
    return jax.lax.cond(do, lambda: idx.astype(basis.dtype), lambda: basis), jnp.asarray(True)

  def update_fn(updates, state, params=None):
    _contracts.check_same_tree(updates, state.basis, "frugal")
    if params is not None:
      _contracts.check_same_tree(params, state.basis, "frugal", what="the params given to init (params argument)")
    plans = frugal_plans(updates, **plan_kw)
    g_leaves, treedef = jax.tree.flatten(updates)
    b_leaves, ok_leaves = treedef.flatten_up_to(state.basis), treedef.flatten_up_to(state.ok)
    check_basis_shapes([pl if has_state(pl) else None for pl in plans], b_leaves, "frugal")
    p_leaves = treedef.flatten_up_to(params) if params is not None else [None] * len(g_leaves)
    count = state.count
    refresh = count % update_gap == 0

    new_b, new_ok, split_g, split_p, full_g, full_p, mats = [], [], [], [], [], [], []
    for i, (plan, g, b, ok, p) in enumerate(zip(plans, g_leaves, b_leaves, ok_leaves, p_leaves)):
      dt = _contracts.state_dtype_for(sdtype, g.dtype)
      ph = _plan.placeholder(g, dt)
      if plan is None:
        new_b.append(b)
        new_ok.append(ok)
        split_g.append(ph)
        split_p.append(None if p is None else ph)
        full_g.append(g.astype(dt))
        full_p.append(None if p is None else p.astype(dt))
        mats.append(None)
        continue
      full_g.append(ph)
      full_p.append(None if p is None else ph)
      gm = plan.to_matrix(g)
      mats.append(gm)
      if not has_state(plan):
        new_b.append(b)
        new_ok.append(ok)
        split_g.append(ph)
        split_p.append(None if p is None else ph)
        continue
      key = subspace.refresh_key(seed, i, count)
      if blocks:
        b, ok = block_refresh(plan, b, count, refresh, key)
      else:
        b, ok = refresh_basis(plan, gm, b, ok, refresh | ~ok, key)
      new_b.append(b)
      new_ok.append(ok)
      split_g.append(plan.project(b, gm).astype(dt))
      split_p.append(None if p is None else plan.project(b, plan.to_matrix(p)).astype(dt))

    inner_state = state.inner_state
    if reset_state:
      split0, _ = proxies(plans, g_leaves, treedef)
      inner_state = jax.lax.cond(refresh, lambda: inner.init(split0), lambda: state.inner_state)
    split_params = None if params is None else treedef.unflatten(split_p)
    full_params = None if params is None else treedef.unflatten(full_p)
    split_u, inner_state = inner.update(treedef.unflatten(split_g), inner_state, split_params)
    full_u, full_state = inner.update(treedef.unflatten(full_g), state.full_state, full_params)

    out = []
    for plan, g, su, fu, low, b, gm in zip(plans, g_leaves, treedef.flatten_up_to(split_u),
                                           treedef.flatten_up_to(full_u), split_g, new_b, mats):
      if plan is None:
        out.append(fu.astype(g.dtype))
        continue
      if not has_state(plan):
        u = state_free_scale * rule(g)
      else:
        u = plan.project_back(b, su, g)
        if state_free != "none":
          u = u + state_free_scale * rule(g - plan.project_back(b, low, g))
      out.append((scale * u).astype(g.dtype))
    out = treedef.unflatten(out)
    if not isinstance(update_gap, int):
      out = _contracts.nan_unless(update_gap >= 1, out)
    new_state = FrugalState(count=optax.safe_increment(count), basis=treedef.unflatten(new_b),
                            ok=treedef.unflatten(new_ok), inner_state=inner_state, full_state=full_state)
    return out, new_state

  return optax.GradientTransformation(init_fn, update_fn)


scale_by_frugal.STATIC_ARGS = SCALE_BY_FRUGAL_STATIC_ARGS


@_contracts.nan_on_invalid_injected
def frugal(
    learning_rate: optax.ScalarOrSchedule,
    rho: float = 0.25,
    update_gap: int = 200,
    inner: Optional[optax.GradientTransformation] = None,
    weight_decay: float = 0.0,
    mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None,
    *,
    projector: str = "columns",
    side: str = "std",
    state_free: str = "sign_sgd",
    state_free_scale: float = 1.0,
    scale: float = 1.0,
    reset_state: bool = True,
    block_order: str = "descending",
    split_mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None,
    reshape: Optional[Any] = None,
    state_dtype: Optional[Any] = "auto",
    seed: int = 0,
    oversample: int = 8,
    n_iter: int = 2,
) -> optax.GradientTransformation:
  """FRUGAL: p <- p(1 - lr*wd) - lr * scale * (P^-1 inner(P g) + state_free_scale * sign(g - P^-1 P g)).

  Zmushko et al., "FRUGAL: Memory-Efficient Optimization by Reducing State Overhead for Scalable Training" (ICML
  2025, arXiv:2411.07837), its algorithm box. `scale_by_frugal`, then `optax.add_decayed_weights(weight_decay, mask)`
  on all params, then `optax.scale_by_learning_rate`: identical to the official update order (decoupled decay with
  the unscaled lr before the step). With rho = 1 and a coordinate/block projector it is `optax.adamw` until the first
  refresh after step 0.

  Args:
    learning_rate: a constant >= 0 or an optax schedule (the code's lr; the state-free part uses
      lr * scale * state_free_scale).
    weight_decay: decoupled weight decay >= 0 (the code's class default is 0.01, its scripts use 0.0; ours is 0.0).
    mask: which leaves get weight decay (default all, as the code).
    Others: see `scale_by_frugal`.

  With `optax.inject_hyperparams`, pass `static_args=FRUGAL_STATIC_ARGS` (also `frugal.STATIC_ARGS`).

  Returns:
    An `optax.GradientTransformation` (state: (FrugalState, EmptyState, EmptyState)).

  Example:
    >>> import jax.numpy as jnp, optax
    >>> tx = frugal(1e-3, rho=0.25, projector="columns")
    >>> params = {"w": jnp.ones((4, 8)), "b": jnp.ones(8)}
    >>> u, s = tx.update(params, tx.init(params), params)

  References:
    Zmushko, Beznosikov, Takáč, Horváth. "FRUGAL: Memory-Efficient Optimization by Reducing State Overhead for
    Scalable Training". ICML 2025. arXiv:2411.07837.
  """
  validation.check_learning_rate(learning_rate)
  validation.check_nonnegative(weight_decay, "weight_decay")
  mask = _contracts.decay_mask(mask, "mask", CONSTANT)
  return optax.chain(
      scale_by_frugal(rho=rho, update_gap=update_gap, inner=inner, projector=projector, side=side,
                      state_free=state_free, state_free_scale=state_free_scale, scale=scale, reset_state=reset_state,
                      block_order=block_order, split_mask=split_mask, reshape=reshape, state_dtype=state_dtype,
                      seed=seed, oversample=oversample, n_iter=n_iter),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )


frugal.STATIC_ARGS = FRUGAL_STATIC_ARGS
