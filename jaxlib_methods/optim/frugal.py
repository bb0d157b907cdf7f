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
  round(d*rho) on the side chosen by `side`, the code's `GaloreOptimizer`), "randomized_svd", and "blocks" (whole
  tensors: round(L*rho) of the L split leaves are state-full, cyclic "descending" order in the paper's pre-training
  runs). Our default is "columns" (the code's default; coordinate projections keep the complement exactly
  orthogonal, so sign(G_free) never touches the state-full coordinates).
- At each refresh the inner state is re-initialised (Adam moments zeroed, bias correction restarted), the code's
  `reset_statistics=True`; `reset_state=False` keeps it as is (the code's GaLore baseline). No re-projection.
- Inner default `optax.scale_by_adam()` is FRUGAL's AdamW direction exactly (eps 1e-8 after bias correction).
- Blocks: XLA needs static shapes, so every split leaf keeps full-size inner state (zero for inactive blocks): the
  *computation* is FRUGAL's, but this variant does not save optimizer memory here (the column/row/randk/SVD variants
  do). State-free leaves get no state at all in the other variants.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import chex
import jax
import jax.numpy as jnp
import optax

from jaxlib_methods import validation
from jaxlib_methods.optim import subspace
from jaxlib_methods.optim.galore import GaLoreLeafState, _refresh

FRUGAL_PROJECTORS = ("columns", "rows", "randk", "svd", "randomized_svd", "random", "blocks")
STATE_FREE_RULES = ("sign_sgd", "sgd", "none")


class FrugalState(NamedTuple):
  """State of `scale_by_frugal`.

  count: int32 step count. projector: a tuple with one entry per params leaf (leaves order), `GaLoreLeafState` (basis
  or indices, valid flag) at split leaves (non-block projectors), `optax.MaskedNode()` elsewhere. active: bool (L,)
  block mask over the L split leaves ("blocks" only; `optax.MaskedNode()` otherwise). inner_state: the inner state over the split leaves' subspace coordinates.
  full_state: the inner state over the leaves that are not split.
  """
  count: chex.Array
  projector: Any
  active: jax.Array
  inner_state: optax.OptState
  full_state: optax.OptState


def _frugal_specs(tree, *, rho, projector, side, split_mask, oversample, n_iter):
  leaves = jax.tree.leaves(tree)
  paths = subspace.leaf_paths(tree)
  default = (lambda p: jnp.ndim(p) >= 2) if projector == "blocks" else (lambda p: jnp.ndim(p) == 2)
  use = subspace.resolve_mask(split_mask, tree, default=default)
  specs = []
  for path, p, u in zip(paths, leaves, use):
    if not u:
      specs.append(None)
      continue
    shape = tuple(jnp.shape(p))
    subspace.check_projectable_dtype(jnp.result_type(p), path)
    if projector == "blocks":
      specs.append("block")
      continue
    if len(shape) != 2:
      raise ValueError(f"frugal projector {projector!r} splits 2-D leaves only, but leaf {path} has shape {shape}; "
                       f"exclude it with split_mask or use projector='blocks'")
    m, n = shape
    if projector == "columns":
      specs.append(subspace.SubspaceSpec("coordinates", "right", int(n * rho), shape))
    elif projector == "rows":
      specs.append(subspace.SubspaceSpec("coordinates", "left", int(m * rho), shape))
    elif projector == "randk":
      specs.append(subspace.SubspaceSpec("randk", "right", int(m * n * rho), shape))
    else:
      s = subspace.resolve_side(shape, side)
      d = m if s == "left" else n
      kind = "random_orthogonal" if projector == "random" else projector
      specs.append(subspace.SubspaceSpec(kind, s, int(round(d * rho)), shape, oversample, n_iter))
  return specs


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
    state_dtype: Optional[Any] = "float32",
    seed: int = 0,
    oversample: int = 8,
    n_iter: int = 2,
) -> optax.GradientTransformation:
  """FRUGAL's direction: scale * (P^-1 inner(P G) + state_free_scale * rule(G - P^-1 P G)) per split leaf.

  Zmushko et al., "FRUGAL: Memory-Efficient Optimization by Reducing State Overhead for Scalable Training" (2024,
  arXiv:2411.07837), the paper's algorithm box, following the official code (module docstring). No learning rate, no decay.

  Special cases (tested exactly): rho = 1 with "columns"/"rows"/"randk"/"blocks" equals `inner` until the first
  refresh after step 0; rho = 0 is signSGD (`state_free="sign_sgd"`) on the split leaves; `state_free="none"` with
  `reset_state=False` and "svd" equals `scale_by_galore(scale=1)` with the same rank.

  Args:
    rho: density in [0, 1] of the state-full subspace (0.25 in the paper and code).
    update_gap: T >= 1, steps between subspace refreshes (200 in the scripts), static int.
    inner: the state-full optimizer, any optax transform (default `optax.scale_by_adam()`); also used for the leaves
      that are not split. Transforms that read params receive the params projected the same way.
    projector: one of `FRUGAL_PROJECTORS`.
    side: for "svd"/"random"/"randomized_svd", one of `subspace.SIDES` ("std": the code's).
    state_free: "sign_sgd" (default), "sgd", or "none".
    state_free_scale: the code's `inactive_lr_scale` >= 0 (1.0 for pre-training, 0.1 for fine-tuning).
    scale: the code's `proj_params_lr_scale` >= 0, multiplying both parts of split leaves.
    reset_state: re-initialise the inner state of the split leaves at every refresh (the code's default).
    block_order: "descending" (paper's pre-training), "ascending" or "random", for projector="blocks".
    split_mask: pytree of bools (or callable params -> pytree): leaves to split; default every 2-D leaf (every leaf
      with ndim >= 2 for "blocks"). The paper keeps embeddings, norms, output layer and biases state-full: pass a
      mask that excludes them.
    state_dtype: dtype of the inner states' zeros (float32 default; None: the params' dtype).
    seed: seed of the random selections (fold_in(fold_in(PRNGKey(seed), leaf), step)).
    oversample, n_iter: randomized-SVD settings.

  Returns:
    An `optax.GradientTransformation` with state `FrugalState`; updates have the gradients' shapes and dtypes.
  """
  validation.check_in_interval(rho, "rho", 0.0, 1.0)
  if not validation.is_concrete_number(rho):
    raise TypeError(f"rho must be a concrete number (it sets state shapes; with optax.inject_hyperparams pass "
                    f"static_args=('rho', 'update_gap')), got {rho=!r}")
  update_gap = subspace.check_update_gap(update_gap)
  subspace.check_projector(projector, FRUGAL_PROJECTORS)
  subspace.check_side(side)
  if state_free not in STATE_FREE_RULES:
    raise ValueError(f"unknown state_free rule {state_free=!r}; choose one of {STATE_FREE_RULES}")
  if block_order not in subspace.BLOCK_ORDERS:
    raise ValueError(f"unknown block order {block_order=!r}; choose one of {subspace.BLOCK_ORDERS}")
  validation.check_nonnegative(state_free_scale, "state_free_scale")
  validation.check_nonnegative(scale, "scale")
  rho = float(rho)
  inner = optax.scale_by_adam() if inner is None else inner
  sdtype = None if state_dtype is None else jnp.dtype(state_dtype)
  spec_kw = dict(rho=rho, projector=projector, side=side, split_mask=split_mask, oversample=oversample,
                 n_iter=n_iter)
  blocks = projector == "blocks"

  def rule(x):
    if state_free == "sign_sgd":
      return jnp.sign(x)
    if state_free == "sgd":
      return x
    return jnp.zeros_like(x)

  def proxies(specs, leaves, treedef):
    split, full = [], []
    for spec, p in zip(specs, leaves):
      dt = p.dtype if sdtype is None else sdtype
      if spec is None:
        split.append(optax.MaskedNode())
        full.append(jnp.zeros(p.shape, dt))
      else:
        split.append(jnp.zeros(p.shape if spec == "block" else spec.low_shape, dt))
        full.append(optax.MaskedNode())
    return treedef.unflatten(split), treedef.unflatten(full)

  def num_active(specs):
    n_split = sum(s is not None for s in specs)
    return n_split, int(round(n_split * rho))

  def init_fn(params):
    specs = _frugal_specs(params, **spec_kw)
    leaves, treedef = jax.tree.flatten(params)
    proj = []
    for spec, p in zip(specs, leaves):
      if spec is None or spec == "block":
        proj.append(optax.MaskedNode())
      else:
        proj.append(GaLoreLeafState(jnp.zeros(spec.basis_shape, spec.basis_dtype(p.dtype)), jnp.asarray(False)))
    split, full = proxies(specs, leaves, treedef)
    n_split, _ = num_active(specs)
    return FrugalState(count=jnp.zeros([], jnp.int32), projector=tuple(proj),
                       active=jnp.zeros((n_split,), bool) if blocks else optax.MaskedNode(),
                       inner_state=inner.init(split), full_state=inner.init(full))

  def update_fn(updates, state, params=None):
    specs = _frugal_specs(updates, **spec_kw)
    g_leaves, treedef = jax.tree.flatten(updates)
    p_leaves = jax.tree.leaves(params) if params is not None else [None] * len(g_leaves)
    proj_leaves = list(state.projector)
    count = state.count
    refresh = count % update_gap == 0
    n_split, n_active = num_active(specs)

    active = state.active
    if blocks:
      key = subspace.refresh_key(seed, len(g_leaves), count)
      active = jax.lax.cond(refresh, lambda: subspace.block_selection(n_split, n_active, count // update_gap,
                                                                      block_order, key), lambda: state.active)

    new_proj, split_g, split_p, full_g, full_p = [], [], [], [], []
    k = 0
    for i, (spec, g, leaf, p) in enumerate(zip(specs, g_leaves, proj_leaves, p_leaves)):
      if spec is None:
        new_proj.append(leaf)
        split_g.append(optax.MaskedNode())
        split_p.append(optax.MaskedNode())
        full_g.append(g)
        full_p.append(p)
        continue
      full_g.append(optax.MaskedNode())
      full_p.append(optax.MaskedNode())
      if spec == "block":
        new_proj.append(leaf)
        split_g.append(jnp.where(active[k], g, jnp.zeros_like(g)))
        split_p.append(p)
        k += 1
        continue
      leaf = _refresh(spec, g, leaf, refresh | ~leaf.ok, subspace.refresh_key(seed, i, count))
      new_proj.append(leaf)
      split_g.append(spec.project(leaf.basis, g))
      split_p.append(None if p is None else spec.project(leaf.basis, p))

    inner_state = state.inner_state
    if reset_state:
      split0, _ = proxies(specs, g_leaves, treedef)
      inner_state = jax.lax.cond(refresh, lambda: inner.init(split0), lambda: state.inner_state)
    split_params = None if params is None else treedef.unflatten(split_p)
    full_params = None if params is None else treedef.unflatten(full_p)
    split_u, inner_state = inner.update(treedef.unflatten(split_g), inner_state, split_params)
    full_u, full_state = inner.update(treedef.unflatten(full_g), state.full_state, full_params)

    out = []
    k = 0
    for spec, g, su, fu, low, leaf in zip(specs, g_leaves, treedef.flatten_up_to(split_u),
                                         treedef.flatten_up_to(full_u), split_g, new_proj):
      if spec is None:
        out.append(fu.astype(g.dtype))
        continue
      if spec == "block":
        u = jnp.where(active[k], su.astype(g.dtype), state_free_scale * rule(g).astype(g.dtype))
        k += 1
      else:
        u = spec.project_back(leaf.basis, su)
        if state_free != "none":
          u = u + state_free_scale * rule(g - spec.project_back(leaf.basis, low))
      out.append((scale * u).astype(g.dtype))
    new_state = FrugalState(count=optax.safe_increment(count), projector=tuple(new_proj), active=active,
                            inner_state=inner_state, full_state=full_state)
    return treedef.unflatten(out), new_state

  return optax.GradientTransformation(init_fn, update_fn)


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
    state_dtype: Optional[Any] = "float32",
    seed: int = 0,
    oversample: int = 8,
    n_iter: int = 2,
) -> optax.GradientTransformation:
  """FRUGAL: p <- p(1 - lr*wd) - lr * scale * (P^-1 inner(P g) + state_free_scale * sign(g - P^-1 P g)).

  Zmushko et al., "FRUGAL: Memory-Efficient Optimization by Reducing State Overhead for Scalable Training" (ICML
  2025, arXiv:2411.07837), its algorithm box. `scale_by_frugal`, then `optax.add_decayed_weights(weight_decay, mask)` on
  all params, then `optax.scale_by_learning_rate`: identical to the official update order (decoupled decay with the
  unscaled lr before the step). With rho = 1 and a coordinate/block projector it is `optax.adamw` until the first
  refresh after step 0.

  Args:
    learning_rate: a constant >= 0 or an optax schedule (the code's lr; the state-free part uses
      lr * scale * state_free_scale).
    weight_decay: decoupled weight decay >= 0 (the code's class default is 0.01, its scripts use 0.0; ours is 0.0).
    mask: which leaves get weight decay (default all, as the code).
    Others: see `scale_by_frugal`.

  Returns:
    An `optax.GradientTransformation` (state: (FrugalState, EmptyState, EmptyState)).

  Example:
    >>> import jax.numpy as jnp, optax
    >>> tx = frugal(1e-3, rho=0.25, projector="columns")
    >>> params = {"w": jnp.ones((4, 8)), "b": jnp.ones(8)}
    >>> u, s = tx.update(params, tx.init(params), params)
  """
  validation.check_learning_rate(learning_rate)
  validation.check_nonnegative(weight_decay, "weight_decay")
  return optax.chain(
      scale_by_frugal(rho=rho, update_gap=update_gap, inner=inner, projector=projector, side=side,
                      state_free=state_free, state_free_scale=state_free_scale, scale=scale, reset_state=reset_state,
                      block_order=block_order, split_mask=split_mask, state_dtype=state_dtype, seed=seed,
                      oversample=oversample, n_iter=n_iter),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )
