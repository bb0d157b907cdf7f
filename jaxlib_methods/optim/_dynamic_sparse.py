"""Dynamic sparse training: a fixed parameter budget whose masks are pruned and regrown during training.

Paper [140]: Shuyao Wang, Yongduo Sui, Jiancan Wu, Zhi Zheng, Hui Xiong, "Dynamic Sparse Learning: A Novel Paradigm
for Efficient Recommendation", WSDM 2024, arXiv:2402.02855 (Sec. 3: sparsity initialisation, sparse learning,
dynamic exploration by pruning and growth, cosine-annealed update schedule), which follows RigL (Evci, Gale, Menick,
Castro, Elsen, "Rigging the Lottery: Making All Tickets Winners", ICML 2020, arXiv:1911.11134):

    init        a random mask per sparsified leaf with exactly round((1 - s) * size) active entries
    every step  g <- g * m; u <- inner(g); theta <- (theta + u) * m            (inactive weights stay exactly 0)
    every dT    while t < T_end: k = floor(zeta_t * n_active) with zeta_t = zeta_0 / 2 * (1 + cos(pi t / T_end));
                prune the k active weights of smallest |theta|; grow the k inactive ones of largest |g| (the dense
                gradient; "random" growth for the ablation); grown weights start at 0.

The number of active weights of every leaf is the same at every step (the budget is fixed); the distribution of
active entries within a leaf (e.g. across the rows of an embedding table: per-user / per-item embedding sizes) is
what the exploration changes. `dynamic_sparse(inner, ...)` wraps any optax transform; its state keeps the masks
(bool, mirroring the params) and the inner state. Apply the initial masks to the params once before training
(`apply_masks(params, state)`), or let the first update zero the masked-out weights.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Literal, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods import validation
from jaxlib_methods.optim import _contracts

DYNAMIC_SPARSE_STATIC_ARGS = ("inner", "sparsity", "sparsify", "regrow")
REGROW_CHOICES = ("gradient", "random")


class DynamicSparseState(NamedTuple):
  """State of `dynamic_sparse`: step count, the masks (bool, mirroring the params; all True on dense leaves) and the
  inner transform's state.

  Wang et al., "Dynamic Sparse Learning: A Novel Paradigm for Efficient Recommendation", WSDM 2024, arXiv:2402.02855
  (Sec. 3); Evci et al., "Rigging the Lottery: Making All Tickets Winners", ICML 2020, arXiv:1911.11134.

  count: int32 scalar; masks: bool tree, each leaf the shape of its parameter.
  """
  count: jax.Array   # int32 scalar
  masks: Any         # bool pytree like the params
  inner_state: Any


def default_sparsify(params: Any) -> Any:
  """The leaves sparsified by default: those with at least 2 dimensions and at least one entry (weights and
  embedding tables; biases and scalars stay dense), as RigL does.

  Wang et al., "Dynamic Sparse Learning: A Novel Paradigm for Efficient Recommendation", WSDM 2024, arXiv:2402.02855
  (Sec. 3); Evci et al., "Rigging the Lottery: Making All Tickets Winners", ICML 2020, arXiv:1911.11134.

  params: any tree; returns a tree of Python bools with the same structure.
  """
  _contracts.reject_step_count(params, "sparsify")
  return jax.tree.map(lambda p: np.ndim(p) >= 2 and np.size(p) > 0, params)


def cosine_drop_fraction(drop_fraction: float, end_step: int) -> optax.Schedule:
  """zeta_t = zeta_0 / 2 * (1 + cos(pi t / T_end)) for t < T_end, then 0 (RigL / DSL's cosine-annealed update ratio).

  Args:
    drop_fraction: zeta_0 in [0, 1], the fraction of the active weights replaced at the first mask update.
    end_step: T_end >= 1; no mask update at or after it.

  References:
    Evci et al. "Rigging the Lottery: Making All Tickets Winners". ICML 2020. arXiv:1911.11134, eq. (1).
    Wang et al. "Dynamic Sparse Learning: A Novel Paradigm for Efficient Recommendation". WSDM 2024.
    arXiv:2402.02855, Sec. 3.4 (update schedule).
  """
  validation.check_in_interval(drop_fraction, "drop_fraction", 0.0, 1.0)

  def schedule(count):
    t = jnp.asarray(count, jnp.float32)
    end = jnp.asarray(end_step, jnp.float32)
    z = 0.5 * jnp.asarray(drop_fraction, jnp.float32) * (1.0 + jnp.cos(jnp.pi * jnp.minimum(t / end, 1.0)))
    return jnp.where(t < end, z, 0.0)

  return schedule


def _n_active(size: int, sparsity: float) -> int:
  return int(round((1.0 - sparsity) * size))


def _ranks(scores: jax.Array, descending: bool) -> jax.Array:
  """rank[i] = position of entry i in the sorted order (0 = first), ties broken by index (stable)."""
  order = jnp.argsort(-scores if descending else scores, stable=True)
  return jnp.zeros(scores.shape, jnp.int32).at[order].set(jnp.arange(scores.shape[0], dtype=jnp.int32))


def _flat(x: jax.Array) -> jax.Array:
  return _contracts.replicated(x).reshape(-1)


def _unflat(x: jax.Array, like: Any) -> jax.Array:
  """x reshaped to `like`'s shape and placed like it: resharded in explicit mode, device_put for a concrete
  parameter on an automatic mesh (eager init), unchanged otherwise."""
  out = x.reshape(np.shape(like))
  spec = _contracts.param_spec(like)
  if spec is None:
    return out
  if _contracts.is_explicit(like):
    return _contracts.reshard_like(out, spec, like)
  if isinstance(out, jax.core.Tracer):
    return out
  return jax.device_put(out, jax.sharding.NamedSharding(like.sharding.mesh, jax.sharding.PartitionSpec(*spec)))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _random_mask(key: jax.Array, size: int, n_keep: int) -> jax.Array:
  """A flat bool mask with exactly n_keep True entries at random positions (jitted: one compile per leaf size)."""
  scores = jax.random.uniform(key, (size,))
  return _ranks(scores, descending=True) < n_keep


def apply_masks(params: Any, state: Any) -> Any:
  """params * masks, with the masks of the `DynamicSparseState` found in `state` (possibly nested in a chain or
  `inject_hyperparams` state): the sparse starting point of training.

  Wang et al., "Dynamic Sparse Learning: A Novel Paradigm for Efficient Recommendation", WSDM 2024, arXiv:2402.02855
  (Sec. 3); Evci et al., "Rigging the Lottery: Making All Tickets Winners", ICML 2020, arXiv:1911.11134.

  params: any tree; returns a tree like params (same shapes and dtypes).
  """
  found = [s for s in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, DynamicSparseState))
           if isinstance(s, DynamicSparseState)]
  if len(found) != 1:
    raise ValueError(f"apply_masks: expected one DynamicSparseState in the optimizer state, found {len(found)}")
  return jax.tree.map(lambda p, m: jnp.where(m, p, jnp.zeros_like(p)), params, found[0].masks)


@_contracts.nan_on_invalid_injected
def dynamic_sparse(inner: optax.GradientTransformation, sparsity: float, *, update_interval: int = 100,
                   end_step: int = 1000, drop_fraction: float = 0.3,
                   regrow: Literal["gradient", "random"] = "gradient",
                   sparsify: Optional[Callable[[Any], Any]] = None, seed: int = 0) -> optax.GradientTransformation:
  """Wrap `inner` to train with a fixed budget of active weights whose masks are pruned and regrown (DSL / RigL).

  See the module docstring for the update. The output updates make the new params exactly (theta + u) * m_new, so
  inactive weights are 0 after every step and the number of active weights per leaf is constant.

  Args:
    inner: the optimizer of the active weights (e.g. `optax.adam(1e-3)`); it sees the masked gradients.
    sparsity: s in [0, 1), the fraction of each sparsified leaf that is inactive.
    update_interval: dT >= 1, steps between mask updates.
    end_step: T_end >= 1, the last step at which masks may change (afterwards the masks are frozen).
    drop_fraction: zeta_0 in [0, 1], the initial fraction of active weights replaced per update (cosine-annealed).
    regrow: "gradient" (the inactive weights of largest |gradient|, RigL / DSL) or "random" (SET-style ablation).
    sparsify: `params -> bool pytree`, the leaves to sparsify (default: `default_sparsify`, leaves with ndim >= 2).
    seed: seed of the initial random masks and of random regrowth.

  Returns:
    An optax GradientTransformation; `update` requires `params`.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> tx = dynamic_sparse(optax.sgd(0.1), sparsity=0.75, update_interval=1, end_step=10)
    >>> params = {"w": jnp.ones((4, 4))}
    >>> state = tx.init(params)
    >>> params = apply_masks(params, state)
    >>> int((params["w"] != 0).sum())
    4

  References:
    Wang, Sui, Wu, Zheng, Xiong. "Dynamic Sparse Learning: A Novel Paradigm for Efficient Recommendation". WSDM
    2024. arXiv:2402.02855, Sec. 3 (Alg. 1).
    Evci, Gale, Menick, Castro, Elsen. "Rigging the Lottery: Making All Tickets Winners". ICML 2020.
    arXiv:1911.11134, Sec. 3.
  """
  if not isinstance(inner, optax.GradientTransformation):
    raise TypeError(f"inner must be an optax GradientTransformation, got {type(inner).__name__}")
  sparsity = _contracts.static_number(sparsity, "sparsity", "DYNAMIC_SPARSE_STATIC_ARGS")
  if not 0.0 <= sparsity < 1.0:
    raise ValueError(f"sparsity must lie in [0, 1), got {sparsity=}")
  regrow = _contracts.static_choice(regrow, "regrow", "DYNAMIC_SPARSE_STATIC_ARGS")
  if regrow not in REGROW_CHOICES:
    raise ValueError(f"regrow must be one of {REGROW_CHOICES}, got {regrow=!r}")
  sparsify = _contracts.static_choice(sparsify, "sparsify", "DYNAMIC_SPARSE_STATIC_ARGS")
  if sparsify is not None and not callable(sparsify):
    raise TypeError(f"sparsify must be None or a function params -> bool pytree, got {sparsify!r}")
  update_interval = _contracts.gap_value(update_interval, "update_interval")
  end_step = _contracts.gap_value(end_step, "end_step")
  validation.check_in_interval(drop_fraction, "drop_fraction", 0.0, 1.0)
  drop_schedule = cosine_drop_fraction(drop_fraction, end_step)
  which = sparsify if sparsify is not None else default_sparsify

  def _which(params):
    flags = which(params)
    if jax.tree.structure(flags) != jax.tree.structure(params):
      raise ValueError("dynamic_sparse: sparsify(params) must return a bool for every leaf of the params")
    return flags

  def init_fn(params):
    _contracts.check_inexact_leaves(params, "dynamic_sparse")
    flags = _which(params)
    leaves, treedef = jax.tree.flatten(params)
    flag_leaves = jax.tree.leaves(flags)
    base = jax.random.key(seed)
    masks = []
    for i, (p, f) in enumerate(zip(leaves, flag_leaves)):
      if bool(f):
        size = int(np.size(p))
        m = _unflat(_random_mask(jax.random.fold_in(base, i), size, _n_active(size, sparsity)), p)
        masks.append(m)
      else:
        masks.append(jnp.logical_not(_contracts.zeros(np.shape(p), jnp.bool_, p, _contracts.param_spec(p))))
    return DynamicSparseState(count=jnp.zeros([], jnp.int32), masks=jax.tree.unflatten(treedef, masks),
                              inner_state=inner.init(params))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("dynamic_sparse needs the parameters: call update(updates, state, params)")
    _contracts.check_same_tree(updates, params, "dynamic_sparse", what="the params")
    _contracts.check_inexact_leaves(updates, "dynamic_sparse", what="gradients")
    count = state.count
    flags = jax.tree.leaves(_which(params))
    masked_g = jax.tree.map(lambda g, m: jnp.where(m, g, jnp.zeros_like(g)), updates, state.masks)
    inner_u, inner_state = inner.update(masked_g, state.inner_state, params)
    do_update = (count > 0) & (count % update_interval == 0) & (count < end_step)
    zeta = drop_schedule(count)
    key = jax.random.fold_in(jax.random.key(seed), count)

    p_leaves, treedef = jax.tree.flatten(params)
    out_u, out_m = [], []
    for i, (p, g, u, m, f) in enumerate(zip(p_leaves, jax.tree.leaves(updates), jax.tree.leaves(inner_u),
                                            jax.tree.leaves(state.masks), flags)):
      new_w = jnp.where(m, p + u.astype(p.dtype), jnp.zeros_like(p))
      if bool(f) and np.size(p):
        n_active = _n_active(int(np.size(p)), sparsity)
        k = jnp.floor(zeta * n_active).astype(jnp.int32)
        mf, wf, gf = _flat(m), _flat(new_w), _flat(g)
        mag = jnp.abs(wf).astype(jnp.float32)
        drop_rank = _ranks(jnp.where(mf, mag, jnp.inf), descending=False)
        kept = mf & (drop_rank >= k)
        if regrow == "gradient":
          score = jnp.abs(gf).astype(jnp.float32)
        else:
          score = jax.random.uniform(jax.random.fold_in(key, i), mf.shape)
        grow_rank = _ranks(jnp.where(kept, -jnp.inf, score), descending=True)
        grown = (~kept) & (grow_rank < k)
        new_mf = jnp.where(do_update, kept | grown, mf)
        new_m = _unflat(new_mf, p)
        new_w = jnp.where(new_m, new_w, jnp.zeros_like(new_w))  # pruned -> 0; grown were inactive, hence 0
        out_m.append(new_m)
      else:
        out_m.append(m)
      out_u.append((new_w - p).astype(p.dtype))
    new_state = DynamicSparseState(count=optax.safe_increment(count), masks=jax.tree.unflatten(treedef, out_m),
                                   inner_state=inner_state)
    return jax.tree.unflatten(treedef, out_u), new_state

  return optax.GradientTransformation(init_fn, update_fn)


dynamic_sparse.STATIC_ARGS = DYNAMIC_SPARSE_STATIC_ARGS

__all__ = ["DYNAMIC_SPARSE_STATIC_ARGS", "DynamicSparseState", "apply_masks", "cosine_drop_fraction",
           "default_sparsify", "dynamic_sparse"]
