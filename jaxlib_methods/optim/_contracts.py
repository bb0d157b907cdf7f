"""The optax contracts every transform of `jaxlib_methods.optim` keeps, in one place.

What optax users rely on (optax's `contrib/_common_test.py`, `_src/sharding_test.py`, `tree.map_params`), and the
helpers our transforms use to keep it:

- **Static arguments.** Only what sets the state's shapes (a rank, bit widths, group and queue sizes, FRUGAL's density)
  or takes a callable (masks, per-leaf rules) must be static under `optax.inject_hyperparams`; each transform exports
  those names (e.g. `GALORE_STATIC_ARGS`, also `galore.STATIC_ARGS`). Passing one of them as an injected (traced or
  array) value raises `StaticArgumentError`, one error type for this mistake, naming the argument and the constant.
  Everything else (update gaps, scales, thresholds, seeds) may be injected and changed without a retrace.
- **State dtype.** The state keeps one dtype from `init` to `update` (no recompile at step 2, a stable `lax.scan`
  carry): `state_dtype_for` resolves the per-leaf dtype and the transforms cast their inner inputs to it.
- **Sharding.** State arrays are created like `zeros_like` would: in explicit-sharding mode (`jax.sharding.AxisType.
  Explicit`) with the sharding the update produces, and for concrete arrays sharded on an automatic mesh, placed with
  the sharding derived from the parameter's; the update reshards its outputs to the same shardings, so `init` and
  `update` agree (and a jitted step is not recompiled at step 2).
- **Trees.** Per-parameter state mirrors the params' tree (so `optax.tree.map_params` works); a gradient tree that
  does not match gets a `ValueError` naming the first differing leaf.
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from jaxlib_methods import validation

Spec = Optional[tuple]


class StaticArgumentError(TypeError):
  """A hyperparameter that must be static (it sets state shapes, or is a callable) arrived as an array or tracer.

  Raised when such an argument is injected by `optax.inject_hyperparams` (which turns every numeric argument into an
  array, and every callable into a schedule) without being listed in its `static_args`.

  Raised by the transforms whose static arguments set state shapes, e.g. the rank of GaLore (Zhao et al., "GaLore:
  Memory-Efficient LLM Training by Gradient Low-Rank Projection", 2024, arXiv:2403.03507), the bit widths and group /
  queue sizes of Q-GaLore (Zhang et al. 2024, arXiv:2407.08296) and the density of FRUGAL (Zmushko et al. 2025,
  arXiv:2411.07837). The offending value is an array or tracer of any shape (usually a scalar).
  """


def _is_injected(value: Any) -> bool:
  """True for arrays and tracers (what `optax.inject_hyperparams` passes), False for Python / NumPy scalars."""
  return isinstance(value, (jax.Array, jax.core.Tracer)) or (isinstance(value, np.ndarray) and value.ndim == 0)


def static_int(value: Any, name: str, constant: str, *, low: int = 1, allow: Sequence[int] = ()) -> int:
  """A Python int >= `low` (or in `allow`) for a shape-setting argument; StaticArgumentError for an array/tracer,
  TypeError for another type, ValueError for an out-of-range value. `constant` names the static-args constant."""
  if _is_injected(value):
    raise StaticArgumentError(
        f"{name} sets the optimizer state's shapes and must be a Python int, got an array ({name}={value!r}); with "
        f"optax.inject_hyperparams pass static_args={constant} (it lists every such argument)")
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
    raise TypeError(f"{name} must be a Python int, got {name}={value!r}")
  if value < low and value not in allow:
    raise ValueError(f"{name} must be >= {low}, got {name}={value!r}")
  return int(value)


def static_number(value: Any, name: str, constant: str) -> float:
  """A concrete Python number for a shape-setting float (FRUGAL's rho); StaticArgumentError for an array/tracer."""
  if _is_injected(value):
    raise StaticArgumentError(
        f"{name} sets the optimizer state's shapes and must be a Python number, got an array ({name}={value!r}); "
        f"with optax.inject_hyperparams pass static_args={constant}")
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise TypeError(f"{name} must be a Python number, got {name}={value!r}")
  return float(value)


def static_choice(value: Any, name: str, constant: str) -> Any:
  """A pytree, callable or None argument (masks, per-leaf rules); StaticArgumentError when it arrived as an array
  (a callable turned into a schedule by `optax.inject_hyperparams`, or a value it injected)."""
  if _is_injected(value):
    raise StaticArgumentError(
        f"{name} arrived as an array ({name}={value!r}): optax.inject_hyperparams treats callables as schedules and "
        f"numbers as hyperparameters; pass static_args={constant} (it lists {name})")
  return value


def decay_mask(mask: Any, name: str, constant: str) -> Any:
  """The `mask` of `optax.add_decayed_weights`, checked: an array, or a single bool where the params have several
  leaves, is what `optax.inject_hyperparams` makes of a callable mask (it calls it with the step count): raise
  StaticArgumentError then (at `init`, when the params are known) instead of optax's `Expected dict, got False`."""
  mask = static_choice(mask, name, constant)
  if not isinstance(mask, (bool, np.bool_)):
    return mask
  value = bool(mask)

  def single(params):
    if len(jax.tree.leaves(params)) == 1 and jax.tree.structure(params).num_nodes == 1:
      return value
    raise StaticArgumentError(
        f"{name} is a single bool ({value}) but the params have several leaves: a callable {name} turned into a "
        f"schedule by optax.inject_hyperparams gives this; pass static_args={constant} (it lists {name})")

  return single


def reject_step_count(params: Any, name: str) -> None:
  """StaticArgumentError when a params-reading rule (a mask function) is handed a step count: a 0-d integer array is
  what `optax.inject_hyperparams` passes to callables it took for schedules."""
  if isinstance(params, (jax.Array, np.ndarray)) and np.ndim(params) == 0 and \
      jnp.issubdtype(jnp.result_type(params), jnp.integer):
    raise StaticArgumentError(
        f"{name} was called with a step count ({params!r}) instead of the params: optax.inject_hyperparams takes "
        f"callables for schedules; list the argument in static_args (each transform exports them, e.g. "
        f"galore.STATIC_ARGS)")


def gap_value(update_gap: Any, name: str = "update_gap") -> Any:
  """A refresh interval: a Python int >= 1, or an integer array / tracer (injected; a traced value < 1 makes the
  update NaN, see `nan_unless`). Floats and bools raise TypeError, a concrete value < 1 ValueError."""
  if isinstance(update_gap, (bool, np.bool_)):
    raise TypeError(f"{name} must be an int >= 1, got {name}={update_gap!r}")
  if isinstance(update_gap, (int, np.integer)):
    if update_gap < 1:
      raise ValueError(f"{name} must be >= 1, got {name}={update_gap!r}")
    return int(update_gap)
  if isinstance(update_gap, (jax.Array, jax.core.Tracer, np.ndarray)):
    if np.ndim(update_gap) != 0 or not jnp.issubdtype(jnp.result_type(update_gap), jnp.integer):
      raise TypeError(f"{name} must be an integer scalar, got dtype {jnp.result_type(update_gap)} and shape "
                      f"{np.shape(update_gap)}")
    if not isinstance(update_gap, jax.core.Tracer) and int(update_gap) < 1:
      raise ValueError(f"{name} must be >= 1, got {name}={int(update_gap)}")
    return update_gap
  raise TypeError(f"{name} must be an int >= 1, got {name}={update_gap!r}")


def nan_unless(ok: Any, tree: Any) -> Any:
  """`tree` where the (traced) condition holds, NaN everywhere otherwise: the documented outcome of an injected
  hyperparameter that is out of range inside `jit` (it cannot raise there), instead of a plausible wrong number."""
  if isinstance(ok, (bool, np.bool_)):
    return tree if ok else jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), tree)
  return jax.tree.map(lambda x: jnp.where(ok, x, jnp.full_like(x, jnp.nan)) if jnp.issubdtype(x.dtype, jnp.inexact)
                      else x, tree)


def nan_on_invalid_injected(factory: Callable[..., Any]) -> Callable[..., Any]:
  """Decorate a transform factory so that an injected hyperparameter out of its range gives NaN updates.

  The factory's eager checks (`validation.check_learning_rate`, `check_in_interval`, `check_positive`,
  `check_nonnegative`) raise `ValueError` for a concrete value out of range. Under `optax.inject_hyperparams` inside
  `jit` the values are tracers and cannot raise; this wrapper collects the checks' verdicts on them
  (`validation.collect_traced_checks`) and returns the transform with its updates NaN wherever one fails (the
  library's rule for invalid traced values, docs/conventions.md 5: the parameters turn NaN at that step, and the
  runner's non-finite guard stops the run at the next loss; the state is not poisoned). With every checked value
  concrete the factory's own transform is returned unchanged.
  The signature is kept (`functools.wraps`), so `optax.inject_hyperparams` sees the factory's arguments.
  """

  @functools.wraps(factory)
  def wrapped(*args, **kwargs):
    with validation.collect_traced_checks() as verdicts:
      tx = factory(*args, **kwargs)
    if not verdicts:
      return tx
    ok = functools.reduce(jnp.logical_and, verdicts)
    inner = optax.with_extra_args_support(tx)

    def update_fn(updates, state, params=None, **extra_args):
      new_updates, new_state = inner.update(updates, state, params, **extra_args)
      return nan_unless(ok, new_updates), new_state

    return optax.GradientTransformationExtraArgs(inner.init, update_fn)

  return wrapped


# ----------------------------------------------------------------------------------------------------------------------
# Dtypes.
# ----------------------------------------------------------------------------------------------------------------------

STATE_DTYPE_CHOICES = "None (the params' dtype), 'auto' (at least float32), or a floating dtype such as 'float32'"


def check_state_dtype(state_dtype: Any, name: str = "state_dtype") -> Any:
  """Validate eagerly: None, 'auto' or a floating dtype; returns the canonical form (None, 'auto' or a jnp.dtype)."""
  if state_dtype is None or (isinstance(state_dtype, str) and state_dtype == "auto"):
    return state_dtype
  try:
    dt = jnp.dtype(state_dtype)
  except TypeError as e:
    raise ValueError(f"{name} must be {STATE_DTYPE_CHOICES}, got {name}={state_dtype!r}") from e
  if not jnp.issubdtype(dt, jnp.floating):
    raise ValueError(f"{name} must be {STATE_DTYPE_CHOICES}, got {name}={state_dtype!r}")
  return dt


def state_dtype_for(state_dtype: Any, leaf_dtype: Any) -> Any:
  """The dtype of a leaf's optimizer state. None: the leaf's. 'auto': the leaf's promoted to at least float32
  (bfloat16 -> float32, float64 stays float64, complex64 stays complex64). A real dtype d: d for real leaves, the
  complex dtype of d's precision for complex leaves (a real state would drop the imaginary part)."""
  leaf_dtype = jnp.dtype(leaf_dtype)
  if state_dtype is None:
    return leaf_dtype
  if isinstance(state_dtype, str) and state_dtype == "auto":
    return jnp.promote_types(leaf_dtype, jnp.float32)
  dt = jnp.dtype(state_dtype)
  if jnp.issubdtype(leaf_dtype, jnp.complexfloating):
    return jnp.promote_types(dt, jnp.complex64)
  return dt


def check_inexact_leaves(tree: Any, method: str, what: str = "params") -> None:
  """TypeError naming the first integer/bool leaf: these optimizers update floating-point (or complex) leaves."""
  for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
    dt = jnp.result_type(x)
    if not jnp.issubdtype(dt, jnp.inexact):
      raise TypeError(f"{method}: leaf {jax.tree_util.keystr(path)} of the {what} has dtype {jnp.dtype(dt)}; it "
                      f"updates floating-point or complex leaves only (freeze integer leaves with optax.masked / "
                      f"optax.set_to_zero)")


def check_real_leaves(tree: Any, method: str, reason: str, what: str = "params") -> None:
  """`check_inexact_leaves`, and a TypeError naming the first complex leaf, for methods defined on real numbers."""
  check_inexact_leaves(tree, method, what)
  for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
    if jnp.issubdtype(jnp.result_type(x), jnp.complexfloating):
      raise TypeError(f"{method}: leaf {jax.tree_util.keystr(path)} of the {what} is complex "
                      f"({jnp.result_type(x)}); {reason}")


# ----------------------------------------------------------------------------------------------------------------------
# Trees.
# ----------------------------------------------------------------------------------------------------------------------

def _paths(tree: Any, is_leaf=None) -> list[str]:
  return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)[0]]


def check_same_tree(updates: Any, reference: Any, method: str, what: str = "the params given to init") -> None:
  """ValueError naming the first leaf where `updates` and `reference` (a tree mirroring the params) differ."""
  if jax.tree.structure(updates) == jax.tree.structure(reference):
    return
  got, want = _paths(updates), _paths(reference)
  for i in range(max(len(got), len(want))):
    g = got[i] if i < len(got) else "(missing)"
    w = want[i] if i < len(want) else "(missing)"
    if g != w:
      raise ValueError(f"{method}: the gradient tree does not match {what}: at leaf {i} the gradients have {g} where "
                       f"the params have {w} ({len(got)} vs {len(want)} leaves)")
  raise ValueError(f"{method}: the gradient tree does not match {what} (same leaf paths, different node types: "
                   f"{jax.tree.structure(updates)} vs {jax.tree.structure(reference)})")


# ----------------------------------------------------------------------------------------------------------------------
# Sharding.
# ----------------------------------------------------------------------------------------------------------------------

def _named_sharding(x: Any) -> Optional[NamedSharding]:
  try:
    s = jax.typeof(x).sharding
  except Exception:  # noqa: BLE001  (a Python scalar or an object without an abstract value)
    return None
  return s if isinstance(s, NamedSharding) else None


def _padded(spec: PartitionSpec, ndim: int) -> tuple:
  spec = tuple(spec)
  return spec + (None,) * (ndim - len(spec))


def is_explicit(x: Any) -> bool:
  """True when `x`'s type carries an explicit-mode sharding (every mesh axis `AxisType.Explicit`)."""
  s = _named_sharding(x)
  if s is None or not s.mesh.axis_names:
    return False
  return all(t == jax.sharding.AxisType.Explicit for t in s.mesh.axis_types)


def param_spec(x: Any) -> Spec:
  """The partition spec of `x` (padded to its rank) when it is known at trace time: explicit mode (any array or
  tracer), or a concrete array with a `NamedSharding` on an automatic mesh (eager `init`). None otherwise."""
  if is_explicit(x):
    return _padded(jax.typeof(x).sharding.spec, np.ndim(x))
  if isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer):
    s = getattr(x, "sharding", None)
    if isinstance(s, NamedSharding) and s.mesh.size > 1:
      return _padded(s.spec, x.ndim)
  return None


def merge_spec(spec: Spec, groups: Sequence[Sequence[int]]) -> Spec:
  """The spec of `x` reshaped by merging the axis `groups` (e.g. [[0], [1, 2]] for [d, n, h] -> [d, n*h]): a merged
  axis keeps the sharding of its leading member when the others are unsharded, else it is unsharded."""
  if spec is None:
    return None
  out = []
  for g in groups:
    names = [spec[a] for a in g]
    out.append(names[0] if all(n is None for n in names[1:]) else None)
  return tuple(out)


def zeros(shape: Sequence[int], dtype: Any, like: Any, spec: Spec) -> jax.Array:
  """`jnp.zeros(shape, dtype)` placed the way `like` (a parameter) says: with sharding `spec` on its mesh in explicit
  mode or when `like` is a concrete array on an automatic mesh; plain otherwise (then jit's propagation decides)."""
  shape = tuple(shape)
  if spec is None:
    return jnp.zeros(shape, dtype)
  if is_explicit(like):
    return jnp.zeros(shape, dtype, out_sharding=NamedSharding(jax.typeof(like).sharding.mesh, PartitionSpec(*spec)))
  return jax.device_put(jnp.zeros(shape, dtype), NamedSharding(like.sharding.mesh, PartitionSpec(*spec)))


def reshard_like(x: jax.Array, spec: Spec, like: Any) -> jax.Array:
  """In explicit mode, `x` resharded to `spec` on `like`'s mesh (a no-op when it already is); unchanged otherwise."""
  if spec is None or not is_explicit(like) or not is_explicit(x):
    return x
  want = PartitionSpec(*spec)
  if _padded(jax.typeof(x).sharding.spec, x.ndim) == tuple(spec):
    return x
  return jax.sharding.reshard(x, NamedSharding(jax.typeof(like).sharding.mesh, want))


def replicated(x: jax.Array) -> jax.Array:
  """`x` with every axis unsharded (what `jnp.linalg.svd` and flattening need): resharded in explicit mode; under an
  automatic mesh set with `jax.set_mesh`, a sharding constraint (so the small results, e.g. a basis, come out
  replicated as `init` made them); unchanged otherwise."""
  if is_explicit(x):
    return reshard_like(x, (None,) * x.ndim, x)
  mesh = jax.sharding.get_abstract_mesh()
  if isinstance(x, jax.core.Tracer) and mesh.axis_names and mesh.size > 1:
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, PartitionSpec()))
  return x


__all__ = ["StaticArgumentError"]
