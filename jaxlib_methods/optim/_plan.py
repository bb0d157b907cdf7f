"""Per-leaf plans shared by GaLore, Q-GaLore and FRUGAL: which leaves are projected, how a leaf of any rank is seen as
a matrix (or a stack of matrices), and the shardings of the state derived from the parameter's.

A `LeafPlan` is static (hashable, from shapes only): the leaf's `MatrixLayout` and the `SubspaceSpec` of its
projector. Layouts (the `reshape` option of the transforms):

- a 2-D leaf [m, n] is its own matrix;
- `reshape=k` (an int): rows are the first k axes, columns the rest ([d, n, h] with k=1 -> [d, n*h]: the LM's
  query/key/value weights; [n, h, d] with k=2 -> [n*h, d]: its output weight);
- `reshape="flatten"`: rows are every axis but the last (a conv kernel [kh, kw, cin, cout] -> [kh*kw*cin, cout],
  fan-in x fan-out, the convention of `optax.contrib.GaLoreDimensionNumbers`; the official GaLore code handles 2-D
  weights only and has no conv rule);
- `reshape="slices"`: a stacked [L, m, n] leaf is L independent matrices, each with its own projector (vmapped).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods.optim import _contracts, subspace

RESHAPE_CHOICES = "None, 'flatten', 'slices', an int k (rows = the first k axes), or a pytree / callable of those"


@dataclasses.dataclass(frozen=True)
class MatrixLayout:
  """How a leaf of `shape` is seen as a matrix: rows = the first `row_axes` axes (after the batch axis when
  `batched`), columns = the rest."""
  shape: tuple
  row_axes: int
  batched: bool = False

  @property
  def prefix(self) -> tuple:
    return (self.shape[0],) if self.batched else ()

  @property
  def matrix_shape(self) -> tuple[int, int]:
    s = self.shape[1:] if self.batched else self.shape
    return (math.prod(s[:self.row_axes]), math.prod(s[self.row_axes:]))

  def groups(self) -> list[list[int]]:
    b = 1 if self.batched else 0
    nd = len(self.shape)
    out = [[0]] if self.batched else []
    return out + [list(range(b, b + self.row_axes)), list(range(b + self.row_axes, nd))]

  def to_matrix(self, x: jax.Array) -> jax.Array:
    return x.reshape(self.prefix + self.matrix_shape)

  def from_matrix(self, y: jax.Array) -> jax.Array:
    return y.reshape(self.shape)


def layout_for(shape: tuple, reshape: Any, path: str, method: str) -> MatrixLayout:
  """The layout of a selected leaf from its per-leaf `reshape` value; ValueError naming the leaf when impossible."""
  nd = len(shape)
  if reshape is None:
    if nd != 2:
      raise ValueError(f"{method} projects 2-D leaves, but leaf {path} has shape {shape}; pass reshape= ('flatten', "
                       f"'slices' or an int number of row axes) or exclude it with the projection mask")
    return MatrixLayout(shape, 1)
  if isinstance(reshape, str):
    if reshape == "flatten":
      if nd < 2:
        raise ValueError(f"reshape='flatten' needs a leaf of rank >= 2, but leaf {path} has shape {shape}")
      return MatrixLayout(shape, nd - 1)
    if reshape == "slices":
      if nd != 3:
        raise ValueError(f"reshape='slices' needs a stacked [L, m, n] leaf, but leaf {path} has shape {shape}")
      return MatrixLayout(shape, 1, batched=True)
    raise ValueError(f"unknown reshape={reshape!r} for leaf {path}; use {RESHAPE_CHOICES}")
  if isinstance(reshape, (int, np.integer)) and not isinstance(reshape, (bool, np.bool_)):
    if not 1 <= reshape <= nd - 1:
      raise ValueError(f"reshape={reshape} row axes is out of range for leaf {path} of shape {shape} (1..{nd - 1})")
    return MatrixLayout(shape, int(reshape))
  raise TypeError(f"reshape for leaf {path} must be {RESHAPE_CHOICES}, got {reshape!r}")


@dataclasses.dataclass(frozen=True)
class LeafPlan:
  """A projected leaf: its path, matrix layout and projector spec (per matrix; vmapped over a batch axis)."""
  path: str
  layout: MatrixLayout
  spec: subspace.SubspaceSpec

  @property
  def basis_shape(self) -> tuple:
    return self.layout.prefix + self.spec.basis_shape

  @property
  def low_shape(self) -> tuple:
    return self.layout.prefix + self.spec.low_shape

  def _map(self, f, *args):
    return jax.vmap(f)(*args) if self.layout.batched else f(*args)

  def compute(self, gm: jax.Array, key: jax.Array) -> jax.Array:
    if self.layout.batched:
      return jax.vmap(self.spec.compute)(gm, jax.random.split(key, self.layout.shape[0]))
    return self.spec.compute(gm, key)

  def project(self, basis: jax.Array, gm: jax.Array) -> jax.Array:
    gm = _contracts.reshard_like(gm, self.project_input_spec(_contracts.param_spec(gm)), gm)
    return self._map(self.spec.project, basis, gm)

  def project_back(self, basis: jax.Array, low: jax.Array, like: jax.Array) -> jax.Array:
    """The back-projection, shaped and (in explicit mode) sharded like the leaf `like`."""
    pspec = _contracts.param_spec(like)
    if self.spec.kind in subspace.DENSE_PROJECTORS:
      full = self._map(self.spec.project_back, basis, low)
    else:
      out = _contracts.zeros(self.layout.prefix + self.spec.shape, low.dtype, like,
                             self.project_input_spec(self.matrix_spec(pspec)) if pspec is not None else None)
      full = self._map(self.spec.project_back, basis, low, out)
    full = self.layout.from_matrix(full)
    return _contracts.reshard_like(full, pspec, like)

  def to_matrix(self, x: jax.Array) -> jax.Array:
    pspec = _contracts.param_spec(x)
    if pspec is not None and _contracts.is_explicit(x):
      # Only an axis group's leading member may stay sharded through the reshape.
      keep = [None] * len(pspec)
      for g, s in zip(self.layout.groups(), self.matrix_spec(pspec)):
        keep[g[0]] = s
      x = _contracts.reshard_like(x, tuple(keep), x)
    return self.layout.to_matrix(x)

  # --- shardings, from the parameter's partition spec (None: unknown, let jit decide) ---

  def matrix_spec(self, pspec):
    return _contracts.merge_spec(pspec, self.layout.groups())

  def project_input_spec(self, mspec):
    """The matrix spec with the reduced axis unsharded (so the projection needs no gather of the other axis)."""
    if mspec is None:
      return None
    *pre, s0, s1 = mspec
    if self.spec.kind == "randk":
      return tuple(pre) + (None, None)
    return tuple(pre) + ((None, s1) if self.spec.side == "left" else (s0, None))

  def low_spec(self, pspec):
    if pspec is None:
      return None
    *pre, s0, s1 = self.matrix_spec(pspec)
    if self.spec.kind == "randk":
      return tuple(pre) + (None,)
    return tuple(pre) + ((None, s1) if self.spec.side == "left" else (s0, None))

  def basis_spec(self, pspec):
    return None if pspec is None else (None,) * len(self.basis_shape)


# ----------------------------------------------------------------------------------------------------------------------
# Masks and per-leaf options.
# ----------------------------------------------------------------------------------------------------------------------

def leaf_option(option: Any, params: Any, name: str, constant: str, *, is_value: Callable[[Any], bool]) -> list:
  """Flatten a per-leaf option: None, a single value (`is_value`) for every leaf, a pytree (a prefix of the params
  tree, e.g. {'blocks': True}), or a callable params -> pytree. ValueError naming the mismatch otherwise."""
  option = _contracts.static_choice(option, name, constant)
  leaves = jax.tree.leaves(params)
  if isinstance(option, (bool, np.bool_)) and (len(leaves) != 1 or jax.tree.structure(params).num_nodes != 1):
    raise _contracts.StaticArgumentError(
        f"{name} is a single bool ({bool(option)}) but the params have several leaves: pass a pytree of bools or a "
        f"callable params -> pytree; under optax.inject_hyperparams a callable {name} must be listed in static_args "
        f"(pass static_args={constant})")
  if option is None or is_value(option):
    return [option] * len(leaves)
  tree = option(params) if callable(option) else option
  tree = _contracts.static_choice(tree, name, constant)
  is_leaf = lambda x: x is None or is_value(x)
  try:
    flat = jax.tree.structure(params).flatten_up_to(tree)
  except (ValueError, TypeError) as e:
    try:  # a prefix of the params tree: each entry applies to its whole subtree
      prefix_leaves, prefix_def = jax.tree.flatten(tree, is_leaf=is_leaf)
      subtrees = prefix_def.flatten_up_to(params)
      flat = [v for v, sub in zip(prefix_leaves, subtrees) for _ in jax.tree.leaves(sub)]
    except (ValueError, TypeError):
      raise ValueError(f"{name} must be a pytree matching the params (or a prefix of them), a callable params -> "
                       f"such a pytree, or a single value; got a tree that does not match: {e}") from None
  return list(flat)


def _is_bool(x):
  return isinstance(x, (bool, np.bool_))


def _is_reshape_value(x):
  return isinstance(x, str) or (isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)))


def resolve_use(mask: Any, params: Any, name: str, constant: str, default: Callable[[Any, Any], bool],
                reshapes: list) -> list[bool]:
  """Which leaves are projected: `mask` (pytree of bools / callable / None) or `default(leaf, reshape)`."""
  leaves = jax.tree.leaves(params)
  if mask is None:
    return [bool(default(p, r)) for p, r in zip(leaves, reshapes)]
  flat = leaf_option(mask, params, name, constant, is_value=_is_bool)
  out = []
  for path, v in zip(subspace.leaf_paths(params), flat):
    if not _is_bool(v) and not (isinstance(v, (np.ndarray, jax.Array)) and np.ndim(v) == 0):
      raise ValueError(f"{name} must hold bools, got {v!r} for leaf {path}")
    out.append(bool(_contracts.static_choice(v, name, constant)))
  return out


def default_use(p: Any, reshape: Any) -> bool:
  """Default projection choice: floating (real) leaves of size > 0 that are 2-D, or of rank >= 3 with a reshape."""
  shape = jnp.shape(p)
  if not jnp.issubdtype(jnp.result_type(p), jnp.floating) or math.prod(shape) == 0:
    return False
  return len(shape) == 2 or (len(shape) >= 3 and reshape is not None)


def plans(tree: Any, *, use: list[bool], reshapes: list, make_spec: Callable[[str, tuple, tuple[int, int]], Any],
          method: str) -> list[Optional[LeafPlan]]:
  """A `LeafPlan` per selected leaf (None elsewhere); `make_spec(path, leaf_shape, (m, n))` returns the per-matrix
  `SubspaceSpec`, or None when the leaf has nothing to project (e.g. an effective rank of 0)."""
  out = []
  for path, p, u, r in zip(subspace.leaf_paths(tree), jax.tree.leaves(tree), use, reshapes):
    if not u:
      out.append(None)
      continue
    shape = tuple(jnp.shape(p))
    subspace.check_projectable_dtype(jnp.result_type(p), path)
    layout = layout_for(shape, None if len(shape) == 2 else r, path, method)  # 2-D leaves are matrices
    if math.prod(shape) == 0:  # nothing to project (a 0-size leaf): the inner transform handles it whole
      out.append(None)
      continue
    spec = make_spec(path, shape, layout.matrix_shape)
    out.append(None if spec is None else LeafPlan(path, layout, spec))
  return out


def rank_for(rank: Any, path: str, shape: tuple, constant: str) -> int:
  """A leaf's rank r >= 1 from an int or a callable (path, shape) -> int."""
  r = rank(path, shape) if callable(rank) else rank
  return _contracts.static_int(r, f"rank (leaf {path})", constant)


def placeholder(p: Any, dtype: Any) -> jax.Array:
  """The state entry of a leaf that has none (unprojected): a scalar, replicated, never zero-size (orbax cannot save
  zero-size arrays). One per leaf keeps the state a mirror of the params' tree (`optax.tree.map_params`)."""
  return jnp.zeros((), dtype)


__all__ = ["LeafPlan", "MatrixLayout"]
