"""GaLore: gradient low-rank projection around any optax transform.

Paper: Jiawei Zhao, Zhenyu Zhang, Beidi Chen, Zhangyang Wang, Anima Anandkumar, Yuandong Tian, "GaLore:
Memory-Efficient LLM Training by Gradient Low-Rank Projection", ICML 2024, arXiv:2403.03507 (the "Adam with GaLore"
algorithm box; its number was not verified here). Official code: `jiaweizzhao/GaLore` / PyPI `galore-torch` (`GaLoreProjector`, `AdamW`).

For every projected m x n leaf, with Q the projector of `jaxlib_methods.optim.subspace` (refreshed from the SVD of
the current gradient every `update_gap` steps, at steps 0, T, 2T, ... counted before the increment):

    R_t = project(G_t)              (Q^T G or G Q: r x n or m x r)
    N_t = inner(R_t)                (any optax transform; its state lives in the r-dimensional space)
    u_t = scale * project_back(N_t) (Q N or N Q^T)

Leaves that are not 2-D, or that the user's `projection_mask` excludes, get `inner` on their full gradient. The
inner state is never reset or re-projected when Q changes (as in the paper and both anchors).

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
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import chex
import jax
import jax.numpy as jnp
import optax

from jaxlib_methods import validation
from jaxlib_methods.optim import subspace


class GaLoreLeafState(NamedTuple):
  """Projector state of one projected leaf: the basis Q (d x r, or int32 indices) and whether it is valid.

  `ok` is False until a finite basis has been computed from a gradient; while False, every step retries the
  refresh (so a failed first SVD never leaves a zero projector in place).
  """
  basis: jax.Array
  ok: jax.Array  # bool scalar


class GaLoreState(NamedTuple):
  """State of `scale_by_galore`.

  count: int32 step count (refreshes happen when count % update_gap == 0, before the increment).
  projector: a tuple with one entry per params leaf (in `jax.tree.leaves` order): `GaLoreLeafState` at projected
    leaves, `optax.MaskedNode()` elsewhere. (A flat tuple, not the params' structure, so wrappers such as
    `nnx.Optimizer` that re-wrap the params' nodes cannot change it.)
  inner_state: the inner transform's state, initialised on the projected (low-rank) shapes.
  """
  count: chex.Array
  projector: Any
  inner_state: optax.OptState


def scale_by_adam_hf(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-6,
                     mu_dtype: Optional[Any] = None) -> optax.GradientTransformation:
  """Hugging Face / GaLore-official Adam direction: sqrt(1 - b2^t) / (1 - b1^t) * m_t / (sqrt(v_t) + eps).

  This is the Adam of GaLore's official `galore_torch.AdamW` (inherited from `transformers.AdamW`, `correct_bias=True`):
  m_t = b1 m + (1 - b1) g, v_t = b2 v + (1 - b2) g^2, and eps is added to sqrt(v_t) *before* the bias correction is
  folded into the step size (optax's `scale_by_adam` adds eps after: m_hat / (sqrt(v_hat) + eps)). Shapes of the
  updates are those of the gradients. The state is `optax.ScaleByAdamState`.

  Args:
    b1, b2: the moment decays, in [0, 1).
    eps: added to sqrt(v_t) (1e-6 is the official default).
    mu_dtype: dtype of the first moment (None: the gradients' dtype, as `optax.scale_by_adam`).
  """
  validation.check_in_interval(b1, "b1", 0.0, 1.0, closed_high=False)
  validation.check_in_interval(b2, "b2", 0.0, 1.0, closed_high=False)
  validation.check_nonnegative(eps, "eps")
  mu_dtype = optax._src.utils.canonicalize_dtype(mu_dtype)

  def init_fn(params):
    return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32),
                                  mu=optax.tree.zeros_like(params, dtype=mu_dtype),
                                  nu=optax.tree.zeros_like(params))

  def update_fn(updates, state, params=None):
    del params
    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
    count = optax.safe_increment(state.count)
    t = count.astype(jnp.float32)
    step = jnp.sqrt(1.0 - jnp.asarray(b2, jnp.float32) ** t) / (1.0 - jnp.asarray(b1, jnp.float32) ** t)
    new = jax.tree.map(lambda m, v: (step * m / (jnp.sqrt(v) + eps)).astype(m.dtype), mu, nu)
    return new, optax.ScaleByAdamState(count=count, mu=optax.tree.cast(mu, mu_dtype), nu=nu)

  return optax.GradientTransformation(init_fn, update_fn)


def _leaf_specs(tree: Any, *, rank, projector: str, side: str, projection_mask, oversample: int, n_iter: int,
                method: str) -> list[Optional[subspace.SubspaceSpec]]:
  """Static per-leaf projector specs (None for unprojected leaves); raises ValueError naming the leaf."""
  leaves = jax.tree.leaves(tree)
  paths = subspace.leaf_paths(tree)
  use = subspace.resolve_mask(projection_mask, tree, default=lambda p: jnp.ndim(p) == 2)
  specs = []
  for path, p, u in zip(paths, leaves, use):
    if not u:
      specs.append(None)
      continue
    shape = tuple(jnp.shape(p))
    if len(shape) != 2:
      raise ValueError(f"{method} projects 2-D leaves only, but leaf {path} has shape {shape}; exclude it with "
                       f"projection_mask (it then gets the inner transform unprojected)")
    subspace.check_projectable_dtype(jnp.result_type(p), path)
    r = rank(path, shape) if callable(rank) else rank
    r = subspace.check_rank_value(r, path)
    s = subspace.resolve_side(shape, side)
    m, n = shape
    r_eff = min(r, m * n) if projector == "randk" else min(r, m, n)
    specs.append(subspace.SubspaceSpec(projector, s, r_eff, (m, n), oversample, n_iter))
  return specs


def _refresh(spec: subspace.SubspaceSpec, g: jax.Array, leaf: GaLoreLeafState, do: jax.Array,
             key: jax.Array) -> GaLoreLeafState:
  """Recompute the basis when `do`; keep the previous one when the gradient or the new basis is not finite (NaN/Inf
  gradient, failed SVD). With no previous valid basis, a random orthonormal basis stands in and `ok` stays False (retry)."""

  def fresh():
    # LAPACK's SVD can loop for a very long time on NaN/Inf input, so a non-finite gradient is never decomposed.
    g_fine = subspace.all_finite(g)
    cand = spec.compute(jnp.where(g_fine, g, jnp.zeros_like(g)), key)
    fine = g_fine & subspace.all_finite(cand)
    if spec.kind in subspace.DENSE_PROJECTORS:
      fallback = subspace.random_orthogonal_basis(jax.random.fold_in(key, 1), spec.reduced_dim,
                                                  spec.rank).astype(cand.dtype)
      keep = jnp.where(leaf.ok, leaf.basis, fallback)
    else:
      keep = leaf.basis
    return GaLoreLeafState(jnp.where(fine, cand, keep), leaf.ok | fine)

  return jax.lax.cond(do, fresh, lambda: leaf)


def scale_by_galore(
    rank: subspace.RankSpec = 128,
    update_gap: int = 200,
    scale: float = 0.25,
    inner: Optional[optax.GradientTransformation] = None,
    *,
    projector: str = "svd",
    side: str = "std",
    projection_mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None,
    state_dtype: Optional[Any] = "float32",
    stagger: bool = False,
    seed: int = 0,
    oversample: int = 8,
    n_iter: int = 2,
) -> optax.GradientTransformation:
  """GaLore's projected direction: scale * project_back(inner(project(G))) per 2-D leaf (no learning rate).

  Zhao et al., "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank Projection" (2024, arXiv:2403.03507),
  the "Adam with GaLore" algorithm with Adam replaced by any optax transform `inner`. See the module docstring for the anchors'
  differences. With `side="reverse_std"`, `scale=1.0`, `state_dtype=None` and `inner=optax.scale_by_adam()` it
  equals `optax.contrib.scale_by_galore` (tested bit for bit).

  Args:
    rank: r, an int > 0 or a callable (path: str, shape) -> int per leaf; clamped per leaf to min(m, n).
    update_gap: T >= 1, steps between projector refreshes (static Python int).
    scale: alpha, multiplies the back-projected direction of projected leaves only (paper: 0.25; optax: 1.0).
    inner: any optax transform run on the projected gradients (default `optax.scale_by_adam()`); transforms that read
      the params (e.g. `optax.adamw`) receive the params projected with the same Q, so their decay acts inside the
      subspace (use `galore(weight_decay=...)` for decay of the full weight).
    projector: one of `subspace.PROJECTORS` ("svd" is GaLore's).
    side: one of `subspace.SIDES` ("std": GaLore official; "reverse_std": optax.contrib).
    projection_mask: pytree of bools (or callable params -> pytree) choosing projected leaves; default: all 2-D
      leaves. A selected leaf that is not 2-D or not floating point raises ValueError naming it.
    state_dtype: dtype (a name, e.g. "float32", so `optax.inject_hyperparams` does not mistake it for a schedule) of
      the inner state's zeros (and so of Adam's moments), float32 by default even for bf16
      params; None keeps the params' dtype (optax's behaviour). `inner` may override per moment (e.g.
      `optax.scale_by_adam(mu_dtype=jnp.bfloat16)`).
    stagger: if True, leaf j of the P projected leaves refreshes at steps = (j*T)//P mod T (after the common step 0),
      so the SVDs do not all land on the same step.
    seed: seed of the random projectors' keys (fold_in(fold_in(PRNGKey(seed), leaf), step)).
    oversample, n_iter: randomized-SVD settings.

  With `optax.inject_hyperparams`, pass the shape-setting and callable arguments as static:
  `static_args=("rank", "update_gap")` (plus any callable rank / projection_mask, which it would take for schedules).

  Returns:
    An `optax.GradientTransformation` with state `GaLoreState`; updates have the gradients' shapes and dtypes.

  Example:
    >>> import jax.numpy as jnp
    >>> tx = scale_by_galore(rank=2, update_gap=10)
    >>> params = {"w": jnp.ones((4, 6)), "b": jnp.ones(6)}
    >>> u, s = tx.update(params, tx.init(params))
  """
  update_gap = subspace.check_update_gap(update_gap)
  subspace.check_projector(projector)
  subspace.check_side(side)
  if not callable(rank):
    subspace.check_rank_value(rank, "(all leaves)")
  validation.check_nonnegative(scale, "scale")
  inner = optax.scale_by_adam() if inner is None else inner
  sdtype = None if state_dtype is None else jnp.dtype(state_dtype)
  spec_kw = dict(rank=rank, projector=projector, side=side, projection_mask=projection_mask,
                 oversample=oversample, n_iter=n_iter, method="galore")

  def init_fn(params):
    specs = _leaf_specs(params, **spec_kw)
    leaves, treedef = jax.tree.flatten(params)
    proj, proxies = [], []
    for spec, p in zip(specs, leaves):
      dt = p.dtype if sdtype is None else sdtype
      if spec is None:
        proj.append(optax.MaskedNode())
        proxies.append(jnp.zeros(p.shape, dt))
      else:
        proj.append(GaLoreLeafState(jnp.zeros(spec.basis_shape, spec.basis_dtype(p.dtype)), jnp.asarray(False)))
        proxies.append(jnp.zeros(spec.low_shape, dt))
    return GaLoreState(count=jnp.zeros([], jnp.int32), projector=tuple(proj),
                       inner_state=inner.init(treedef.unflatten(proxies)))

  def update_fn(updates, state, params=None):
    specs = _leaf_specs(updates, **spec_kw)
    g_leaves, treedef = jax.tree.flatten(updates)
    proj_leaves = list(state.projector)
    p_leaves = jax.tree.leaves(params) if params is not None else [None] * len(g_leaves)
    count = state.count
    n_proj = sum(s is not None for s in specs)
    new_proj, low, low_params = [], [], []
    j = 0
    for i, (spec, g, leaf, p) in enumerate(zip(specs, g_leaves, proj_leaves, p_leaves)):
      if spec is None:
        new_proj.append(leaf)
        low.append(g)
        low_params.append(p)
        continue
      offset = (j * update_gap) // n_proj if stagger else 0
      j += 1
      scheduled = ((count - offset) % update_gap == 0) & (count >= offset)
      leaf = _refresh(spec, g, leaf, scheduled | ~leaf.ok, subspace.refresh_key(seed, i, count))
      new_proj.append(leaf)
      low.append(spec.project(leaf.basis, g))
      low_params.append(None if p is None else spec.project(leaf.basis, p))
    inner_params = None if params is None else treedef.unflatten(low_params)
    inner_updates, inner_state = inner.update(treedef.unflatten(low), state.inner_state, inner_params)
    out = []
    for spec, g, u, leaf in zip(specs, g_leaves, treedef.flatten_up_to(inner_updates), new_proj):
      if spec is None:
        out.append(u.astype(g.dtype))
      else:
        out.append((scale * spec.project_back(leaf.basis, u)).astype(g.dtype))
    new_state = GaLoreState(count=optax.safe_increment(count), projector=tuple(new_proj),
                            inner_state=inner_state)
    return treedef.unflatten(out), new_state

  return optax.GradientTransformation(init_fn, update_fn)


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
    state_dtype: Optional[Any] = "float32",
    stagger: bool = False,
    seed: int = 0,
    oversample: int = 8,
    n_iter: int = 2,
) -> optax.GradientTransformation:
  """GaLore: W <- W - lr * (scale * project_back(inner(project(G))) + wd * W) for projected leaves.

  Zhao et al., "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank Projection" (ICML 2024, arXiv:2403.03507),
  the "Adam with GaLore" algorithm. Chained as every optax optimizer: `scale_by_galore`, then `optax.add_decayed_weights(weight_decay,
  mask)` on the full weights, then `optax.scale_by_learning_rate(learning_rate)`. Defaults follow the paper's
  pre-training scripts (rank 128, T = 200, alpha = 0.25, projector on the smaller side); `optax.contrib.galore`
  defaults differ (scale 1.0, moments on the smaller side). For the official code's exact numerics use
  `inner=scale_by_adam_hf()` (eps 1e-6 before bias correction); its weight decay is applied after the update.

  Args:
    learning_rate: a constant >= 0 or an optax schedule.
    rank, update_gap, scale, inner, projector, side, projection_mask, state_dtype, stagger, seed, oversample, n_iter:
      see `scale_by_galore`.
    weight_decay: decoupled weight decay >= 0 on the full weights.
    mask: which leaves get weight decay (as `optax.add_decayed_weights`).

  Returns:
    An `optax.GradientTransformation` (state: (GaLoreState, EmptyState, EmptyState)).

  Example:
    >>> import jax.numpy as jnp, optax
    >>> tx = galore(1e-2, rank=2)
    >>> params = {"w": jnp.ones((4, 6)), "b": jnp.ones(6)}
    >>> u, s = tx.update(params, tx.init(params), params)
    >>> params = optax.apply_updates(params, u)
  """
  validation.check_learning_rate(learning_rate)
  validation.check_nonnegative(weight_decay, "weight_decay")
  return optax.chain(
      scale_by_galore(rank=rank, update_gap=update_gap, scale=scale, inner=inner, projector=projector, side=side,
                      projection_mask=projection_mask, state_dtype=state_dtype, stagger=stagger, seed=seed,
                      oversample=oversample, n_iter=n_iter),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )
