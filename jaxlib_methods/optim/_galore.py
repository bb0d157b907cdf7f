"""GaLore: gradient low-rank projection around any optax transform.

Paper: Jiawei Zhao, Zhenyu Zhang, Beidi Chen, Zhangyang Wang, Anima Anandkumar, Yuandong Tian, "GaLore:
Memory-Efficient LLM Training by Gradient Low-Rank Projection", ICML 2024, arXiv:2403.03507 (the "Adam with GaLore"
algorithm box). Official code: `jiaweizzhao/GaLore` / PyPI `galore-torch` (`GaLoreProjector`, `AdamW`).

For every projected leaf, seen as an m x n matrix G (see `reshape`), with Q the projector of
`jaxlib_methods.optim.subspace` (refreshed from the SVD of the current gradient every `update_gap` steps, at steps
0, T, 2T, ... counted before the increment):

    R_t = project(G_t)              (Q^T G or G Q: r x n or m x r)
    N_t = inner(R_t)                (any optax transform; its state lives in the r-dimensional space)
    u_t = scale * project_back(N_t) (Q N or N Q^T)

Leaves that are not projected (by default: everything but real floating-point 2-D leaves, and 3-D+ leaves given a
`reshape`) get `inner` on their full gradient. The inner state is never reset or re-projected when Q changes (as in
the paper and both anchors).

Differences between the two anchors, all selectable here:
- side: the official code keeps Q on the smaller dimension (`side="std"`, our default, the paper's m*r + 2*r*n
  state for m <= n); `optax.contrib.galore` keeps the moments on the smaller dimension (`side="reverse_std"`).
- scale: the paper and scripts use alpha = 0.25 (our default); `optax.contrib.galore` defaults to 1.0.
- Adam form: the official code uses Hugging Face's AdamW (eps = 1e-6 added to sqrt(v) *before* the bias correction
  is folded into the step size), offered as `scale_by_adam_hf`; our default inner is `optax.scale_by_adam()`
  (eps = 1e-8 after bias correction), as `optax.contrib.galore`'s. Use `inner=scale_by_adam_hf()` for the official
  numerics.
- weight decay: the official code decays the full weight *after* the update (W <- W - lr*wd*W_new); `galore` here
  chains `optax.add_decayed_weights` before the learning rate like every optax optimizer (W_new = W - lr*(u + wd*W)),
  a difference of O(lr^2 * wd) per step.

State layout (optax's contracts, see `_contracts`): `GaLoreState.basis` and `.ok` mirror the params' tree (a scalar
placeholder at unprojected leaves), so `optax.tree.map_params` works; the inner state is initialised on a tree of the
params' structure with the projected shapes; dtypes and shardings are the same after `init` and after `update`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import chex
import jax
import jax.numpy as jnp
import optax

from jaxlib_methods import validation
from jaxlib_methods.optim import _contracts, _plan, subspace

SCALE_BY_GALORE_STATIC_ARGS = ("rank", "oversample", "n_iter", "projection_mask", "reshape", "state_dtype")
GALORE_STATIC_ARGS = SCALE_BY_GALORE_STATIC_ARGS + ("mask",)
CONSTANT = "GALORE_STATIC_ARGS (SCALE_BY_GALORE_STATIC_ARGS for scale_by_galore)"


class GaLoreState(NamedTuple):
  """State of `scale_by_galore`.

  count: int32 step count (refreshes happen when count % update_gap == 0, before the increment).
  basis: a tree mirroring the params: the basis Q (d x r; [L, d, r] for `reshape="slices"`; int32 indices for the
    coordinate projectors) at projected leaves, a float32 scalar placeholder elsewhere.
  ok: a tree mirroring the params of bool scalars: False at a projected leaf until a finite basis has been computed
    from a gradient (while False, every step retries the refresh, so a failed first SVD never leaves a zero
    projector in place); True elsewhere.
  inner_state: the inner transform's state, initialised on the projected (low-rank) shapes.

  Zhao et al., "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank Projection", ICML 2024, arXiv:2403.03507 (the
  "Adam with GaLore" algorithm box).
  """
  count: chex.Array
  basis: Any
  ok: Any
  inner_state: optax.OptState


@_contracts.nan_on_invalid_injected
def scale_by_adam_hf(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-6,
                     mu_dtype: Optional[Any] = None) -> optax.GradientTransformation:
  """Hugging Face / GaLore-official Adam direction: sqrt(1 - b2^t) / (1 - b1^t) * m_t / (sqrt(v_t) + eps).

  This is the Adam of GaLore's official `galore_torch.AdamW` (Zhao et al. 2024, arXiv:2403.03507; inherited from
  `transformers.AdamW`, `correct_bias=True`): m_t = b1 m + (1 - b1) g, v_t = b2 v + (1 - b2) g^2, and eps is added to
  sqrt(v_t) *before* the bias correction is folded into the step size (optax's `scale_by_adam` adds eps after:
  m_hat / (sqrt(v_hat) + eps)). Shapes of the updates are those of the gradients. The state is
  `optax.ScaleByAdamState`.

  Args:
    b1, b2: the moment decays, in [0, 1).
    eps: added to sqrt(v_t) (1e-6 is the official default).
    mu_dtype: dtype of the first moment (None: the params' dtype given to `init`, as `optax.scale_by_adam`); both
      moments keep their `init` dtypes across updates.
  """
  validation.check_in_interval(b1, "b1", 0.0, 1.0, closed_high=False)
  validation.check_in_interval(b2, "b2", 0.0, 1.0, closed_high=False)
  validation.check_nonnegative(eps, "eps")
  mu_dtype = optax._src.utils.canonicalize_dtype(mu_dtype)

  def init_fn(params):
    _contracts.check_inexact_leaves(params, "scale_by_adam_hf")
    return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32),
                                  mu=optax.tree.zeros_like(params, dtype=mu_dtype),
                                  nu=optax.tree.zeros_like(params))

  def update_fn(updates, state, params=None):
    del params
    _contracts.check_same_tree(updates, state.mu, "scale_by_adam_hf")
    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
    count = optax.safe_increment(state.count)
    t = count.astype(jnp.float32)
    step = jnp.sqrt(1.0 - jnp.asarray(b2, jnp.float32) ** t) / (1.0 - jnp.asarray(b1, jnp.float32) ** t)
    new = jax.tree.map(lambda m, v, g: (step * m / (jnp.sqrt(v) + eps)).astype(g.dtype), mu, nu, updates)
    # The moments keep the dtypes init gave them (e.g. float32 gradients of bfloat16 params), as `_contracts` requires.
    like = lambda tree, ref: jax.tree.map(lambda x, r: x.astype(r.dtype), tree, ref)
    return new, optax.ScaleByAdamState(count=count, mu=like(mu, state.mu), nu=like(nu, state.nu))

  return optax.GradientTransformation(init_fn, update_fn)


def galore_plans(tree: Any, *, rank, projector: str, side: str, projection_mask, reshape, oversample: int,
                 n_iter: int, method: str, constant: str) -> list:
  """Static per-leaf plans of GaLore-style projection (None for unprojected leaves); errors name the leaf."""
  if not jax.tree.leaves(tree):
    return []
  reshapes = _plan.leaf_option(reshape, tree, "reshape", constant, is_value=_plan._is_reshape_value)
  use = _plan.resolve_use(projection_mask, tree, "projection_mask", constant, _plan.default_use, reshapes)

  def make_spec(path, shape, mn):
    r = _plan.rank_for(rank, path, shape, constant)
    m, n = mn
    s = subspace.resolve_side(mn, side)
    r_eff = min(r, m * n) if projector == "randk" else min(r, m, n)
    return subspace.SubspaceSpec(projector, s, r_eff, (m, n), oversample, n_iter)

  return _plan.plans(tree, use=use, reshapes=reshapes, make_spec=make_spec, method=method)


def fallback_basis(plan: _plan.LeafPlan, key: jax.Array, dtype) -> jax.Array:
  """A random orthonormal basis of the plan's shape (what stands in when no valid basis exists yet)."""
  spec = plan.spec

  def one(k):
    return subspace.random_orthogonal_basis(k, spec.reduced_dim, spec.rank).astype(dtype)

  if plan.layout.batched:
    return jax.vmap(one)(jax.random.split(key, plan.layout.shape[0]))
  return one(key)


def refresh_basis(plan: _plan.LeafPlan, gm: jax.Array, basis: jax.Array, ok: jax.Array, do: jax.Array,
                  key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Recompute the basis when `do`; keep the previous one when the gradient or the new basis is not finite (NaN/Inf
  gradient, failed SVD). With no previous valid basis, a random orthonormal basis stands in and `ok` stays False
  (retry at the next step)."""

  def fresh():
    gr = _contracts.replicated(gm)  # the decompositions need an unsharded matrix
    # LAPACK's SVD can loop for a very long time on NaN/Inf input, so a non-finite gradient is never decomposed.
    g_fine = subspace.all_finite(gr)
    cand = plan.compute(jnp.where(g_fine, gr, jnp.zeros_like(gr)), key).astype(basis.dtype)
    fine = g_fine & subspace.all_finite(cand)
    if plan.spec.kind in subspace.DENSE_PROJECTORS:
      keep = jnp.where(ok, basis, fallback_basis(plan, jax.random.fold_in(key, 1), basis.dtype))
    else:
      keep = basis
    return jnp.where(fine, cand, keep), ok | fine

  basis, ok = jax.lax.cond(do, fresh, lambda: (basis, ok))
  return _contracts.replicated(basis), ok  # small: replicated, as init made it (also under an automatic mesh)


def check_basis_shapes(plans: list, bases: list, method: str) -> None:
  """ValueError naming the leaf whose gradient shape does not match the state made by `init`."""
  for plan, b in zip(plans, bases):
    if plan is not None and tuple(b.shape) != plan.basis_shape:
      raise ValueError(f"{method}: the gradient of leaf {plan.path} has shape {plan.layout.shape}, which does not "
                       f"match the params given to init (its basis has shape {tuple(b.shape)}, expected "
                       f"{plan.basis_shape})")


@_contracts.nan_on_invalid_injected
def scale_by_galore(
    rank: subspace.RankSpec = 128,
    update_gap: int = 200,
    scale: float = 0.25,
    inner: Optional[optax.GradientTransformation] = None,
    *,
    projector: str = "svd",
    side: str = "std",
    projection_mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None,
    reshape: Optional[Any] = None,
    state_dtype: Optional[Any] = "auto",
    stagger: bool = False,
    seed: int = 0,
    oversample: int = 8,
    n_iter: int = 2,
) -> optax.GradientTransformation:
  """GaLore's projected direction: scale * project_back(inner(project(G))) per projected leaf (no learning rate).

  Zhao et al., "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank Projection" (2024, arXiv:2403.03507),
  the "Adam with GaLore" algorithm with Adam replaced by any optax transform `inner`. See the module docstring for the
  anchors' differences. With `side="reverse_std"`, `scale=1.0`, `state_dtype=None` and `inner=optax.scale_by_adam()`
  it equals `optax.contrib.scale_by_galore` (tested bit for bit).

  Args:
    rank: r, an int > 0 or a callable (path: str, leaf shape) -> int per leaf; clamped per matrix to min(m, n).
      Static (it sets the state's shapes).
    update_gap: T >= 1, steps between projector refreshes (an int; may be injected and changed without a retrace).
    scale: alpha, multiplies the back-projected direction of projected leaves only (paper: 0.25; optax: 1.0).
    inner: any optax transform run on the projected gradients (default `optax.scale_by_adam()`); transforms that read
      the params (e.g. `optax.adamw`) receive the params projected with the same Q, so their decay acts inside the
      subspace (use `galore(weight_decay=...)` for decay of the full weight).
    projector: one of `subspace.PROJECTORS` ("svd" is GaLore's).
    side: one of `subspace.SIDES` ("std": GaLore official; "reverse_std": optax.contrib).
    projection_mask: pytree of bools (or a prefix of the params tree, or a callable params -> pytree) choosing the
      projected leaves, e.g. `paper_projection_mask` (attention and MLP matrices, as the paper); default: real
      floating 2-D leaves (and leaves of rank >= 3 when `reshape` is given) of non-zero size. A selected leaf that
      cannot be projected (not floating point, rank >= 3 without a reshape) raises ValueError naming it; a 0-size
      selected leaf is left to `inner` whole.
    reshape: how leaves of rank >= 3 are seen as matrices: None (they are not projected by default), "flatten" (rows
      = all axes but the last: conv kernels [kh, kw, cin, cout] -> [kh*kw*cin, cout]), "slices" (a stacked [L, m, n]
      leaf gets L independent projectors), an int k (rows = the first k axes: [d, n, h] with k=1 -> [d, n*h]), or a
      pytree / callable params -> pytree of those per leaf (`paper_reshape` for the project's transformer).
    state_dtype: dtype of the inner state (and of the inner computation): "auto" (default: the leaf's dtype promoted
      to at least float32: bf16 -> f32, f64 stays f64, complex stays complex), None (the leaf's dtype, optax's
      behaviour) or a floating dtype name. The state keeps this dtype from init to update.
    stagger: if True, leaf j of the P projected leaves refreshes at steps = (j*T)//P mod T (after the common step 0),
      so the SVDs do not all land on the same step.
    seed: seed of the random projectors' keys (fold_in(fold_in(PRNGKey(seed), leaf), step)).
    oversample, n_iter: randomized-SVD settings (static).

  With `optax.inject_hyperparams`, pass `static_args=SCALE_BY_GALORE_STATIC_ARGS` (the shape-setting and callable
  arguments); everything else may be injected. A shape-setting argument injected by mistake raises
  `StaticArgumentError`.

  Returns:
    An `optax.GradientTransformation` with state `GaLoreState`; updates have the gradients' shapes and dtypes.

  Example:
    >>> import jax.numpy as jnp
    >>> tx = scale_by_galore(rank=2, update_gap=10)
    >>> params = {"w": jnp.ones((4, 6)), "b": jnp.ones(6)}
    >>> u, s = tx.update(params, tx.init(params))

  References:
    Zhao, Zhang, Chen, Wang, Anandkumar, Tian. "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank
    Projection". ICML 2024. arXiv:2403.03507 (Algorithm "Adam with GaLore").
  """
  constant = CONSTANT
  update_gap = _contracts.gap_value(update_gap)
  subspace.check_projector(projector)
  subspace.check_side(side)
  if not callable(rank):
    _contracts.static_int(rank, "rank", constant)
  oversample = _contracts.static_int(oversample, "oversample", constant, low=0)
  n_iter = _contracts.static_int(n_iter, "n_iter", constant, low=0)
  _contracts.static_choice(projection_mask, "projection_mask", constant)
  _contracts.static_choice(reshape, "reshape", constant)
  validation.check_nonnegative(scale, "scale")
  sdtype = _contracts.check_state_dtype(state_dtype)
  inner = optax.scale_by_adam() if inner is None else inner
  plan_kw = dict(rank=rank, projector=projector, side=side, projection_mask=projection_mask, reshape=reshape,
                 oversample=oversample, n_iter=n_iter, method="galore", constant=constant)

  def init_fn(params):
    _contracts.check_inexact_leaves(params, "galore")
    plans = galore_plans(params, **plan_kw)
    leaves, treedef = jax.tree.flatten(params)
    basis, ok, proxies = [], [], []
    for plan, p in zip(plans, leaves):
      dt = _contracts.state_dtype_for(sdtype, jnp.result_type(p))
      pspec = _contracts.param_spec(p)
      if plan is None:
        basis.append(_plan.placeholder(p, jnp.float32))
        ok.append(jnp.asarray(True))
        proxies.append(jnp.zeros_like(p, dtype=dt))
      else:
        basis.append(_contracts.zeros(plan.basis_shape, plan.spec.basis_dtype(jnp.result_type(p)), p,
                                      plan.basis_spec(pspec)))
        ok.append(jnp.asarray(False))
        proxies.append(_contracts.zeros(plan.low_shape, dt, p, plan.low_spec(pspec)))
    return GaLoreState(count=jnp.zeros([], jnp.int32), basis=treedef.unflatten(basis), ok=treedef.unflatten(ok),
                       inner_state=inner.init(treedef.unflatten(proxies)))

  def update_fn(updates, state, params=None):
    _contracts.check_same_tree(updates, state.basis, "galore")
    if params is not None:
      _contracts.check_same_tree(params, state.basis, "galore", what="the params given to init (params argument)")
    plans = galore_plans(updates, **plan_kw)
    g_leaves, treedef = jax.tree.flatten(updates)
    b_leaves, ok_leaves = treedef.flatten_up_to(state.basis), treedef.flatten_up_to(state.ok)
    check_basis_shapes(plans, b_leaves, "galore")
    p_leaves = treedef.flatten_up_to(params) if params is not None else [None] * len(g_leaves)
    count = state.count
    n_proj = sum(pl is not None for pl in plans)
    new_b, new_ok, low, low_params = [], [], [], []
    j = 0
    for i, (plan, g, b, ok, p) in enumerate(zip(plans, g_leaves, b_leaves, ok_leaves, p_leaves)):
      dt = _contracts.state_dtype_for(sdtype, g.dtype)
      if plan is None:
        new_b.append(b)
        new_ok.append(ok)
        low.append(g.astype(dt))
        low_params.append(None if p is None else p.astype(dt))
        continue
      offset = (j * update_gap) // n_proj if stagger else 0
      j += 1
      scheduled = ((count - offset) % update_gap == 0) & (count >= offset)
      gm = plan.to_matrix(g)
      b, ok = refresh_basis(plan, gm, b, ok, scheduled | ~ok, subspace.refresh_key(seed, i, count))
      new_b.append(b)
      new_ok.append(ok)
      low.append(plan.project(b, gm).astype(dt))
      low_params.append(None if p is None else plan.project(b, plan.to_matrix(p)).astype(dt))
    inner_params = None if params is None else treedef.unflatten(low_params)
    inner_updates, inner_state = inner.update(treedef.unflatten(low), state.inner_state, inner_params)
    out = []
    for plan, g, u, b in zip(plans, g_leaves, treedef.flatten_up_to(inner_updates), new_b):
      if plan is None:
        out.append(u.astype(g.dtype))
      else:
        out.append((scale * plan.project_back(b, u, g)).astype(g.dtype))
    out = treedef.unflatten(out)
    if not isinstance(update_gap, int):
      out = _contracts.nan_unless(update_gap >= 1, out)
    return out, GaLoreState(count=optax.safe_increment(count), basis=treedef.unflatten(new_b),
                            ok=treedef.unflatten(new_ok), inner_state=inner_state)

  return optax.GradientTransformation(init_fn, update_fn)


scale_by_galore.STATIC_ARGS = SCALE_BY_GALORE_STATIC_ARGS


@_contracts.nan_on_invalid_injected
def galore(
    learning_rate: optax.ScalarOrSchedule,
    rank: subspace.RankSpec = 128,
    update_gap: int = 200,
    scale: float = 0.25,
    inner: Optional[optax.GradientTransformation] = None,
    weight_decay: float = 0.0,
    mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None,
    *,
    projector: str = "svd",
    side: str = "std",
    projection_mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None,
    reshape: Optional[Any] = None,
    state_dtype: Optional[Any] = "auto",
    stagger: bool = False,
    seed: int = 0,
    oversample: int = 8,
    n_iter: int = 2,
) -> optax.GradientTransformation:
  """GaLore: W <- W - lr * (scale * project_back(inner(project(G))) + wd * W) for projected leaves.

  Zhao et al., "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank Projection" (ICML 2024, arXiv:2403.03507),
  the "Adam with GaLore" algorithm. Chained as every optax optimizer: `scale_by_galore`, then
  `optax.add_decayed_weights(weight_decay, mask)` on the full weights, then `optax.scale_by_learning_rate(
  learning_rate)`. Defaults follow the paper's pre-training scripts (rank 128, T = 200, alpha = 0.25, projector on the
  smaller side); `optax.contrib.galore` defaults differ (scale 1.0, moments on the smaller side). For the official
  code's exact numerics use `inner=scale_by_adam_hf()` (eps 1e-6 before bias correction); its weight decay is applied
  after the update.

  Args:
    learning_rate: a constant >= 0 or an optax schedule.
    rank: projection rank r. `update_gap`, `scale`, `inner`, `projector`, `side`, `projection_mask`, `reshape`,
      `state_dtype`, `stagger`, `seed`, `oversample` and `n_iter` are as in `scale_by_galore`.
    weight_decay: decoupled weight decay >= 0 on the full weights.
    mask: which leaves get weight decay (as `optax.add_decayed_weights`).

  With `optax.inject_hyperparams`, pass `static_args=GALORE_STATIC_ARGS` (also `galore.STATIC_ARGS`).

  Returns:
    An `optax.GradientTransformation` (state: (GaLoreState, EmptyState, EmptyState)).

  Example:
    >>> import jax.numpy as jnp, optax
    >>> tx = galore(1e-2, rank=2)
    >>> params = {"w": jnp.ones((4, 6)), "b": jnp.ones(6)}
    >>> u, s = tx.update(params, tx.init(params), params)
    >>> params = optax.apply_updates(params, u)

  References:
    Zhao, Zhang, Chen, Wang, Anandkumar, Tian. "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank
    Projection". ICML 2024. arXiv:2403.03507.
  """
  validation.check_learning_rate(learning_rate)
  validation.check_nonnegative(weight_decay, "weight_decay")
  mask = _contracts.decay_mask(mask, "mask", CONSTANT)
  tx = scale_by_galore(rank=rank, update_gap=update_gap, scale=scale, inner=inner, projector=projector, side=side,
                       projection_mask=projection_mask, reshape=reshape, state_dtype=state_dtype, stagger=stagger,
                       seed=seed, oversample=oversample, n_iter=n_iter)
  return optax.chain(tx, optax.add_decayed_weights(weight_decay, mask), optax.scale_by_learning_rate(learning_rate))


galore.STATIC_ARGS = GALORE_STATIC_ARGS
