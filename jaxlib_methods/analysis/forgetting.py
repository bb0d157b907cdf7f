"""Per-module forgetting (parameter drift) and forgetting-prioritised fine-tuning (FPF).

Zhao, Zhou, Shi, Liu, Wu, Luo, Tao, Zhang, "Does Continual Learning Equally Forget All Parameters?", ICML 2023,
arXiv:2304.04158. Sec. 3: across tasks, the parameters of only a few modules (the last layers and the normalisation
layers) change much, so forgetting concentrates there; Sec. 4: FPF fine-tunes only those modules on the replay
buffer after continual training (k-FPF: every k steps, with no replay in between), recovering most of the accuracy
of every-step replay at a fraction of its compute.

A module is a subtree of the parameters at a given depth (e.g. {"dense0": {...}, "head": {...}} at depth 1).
`module_drift` is the relative Frobenius change ||theta_new - theta_old|| / ||theta_old|| of each module;
`fpf_transform` wraps any optax transformation with `optax.multi_transform` so that only the chosen modules move
(the others get exactly zero updates).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax

from jaxlib_methods import validation


def _module_of(path, depth: int) -> str:
  keys = []
  for p in path[:depth]:
    keys.append(str(getattr(p, "key", getattr(p, "name", getattr(p, "idx", p)))))
  return "/".join(keys)


def _check_depth(depth: Any) -> int:
  if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
    raise ValueError(f"depth must be a Python int >= 1, got {depth=}")
  return depth


def module_drift(old_params: Any, new_params: Any, *, depth: int = 1, eps: float = 1e-12) -> dict:
  """Relative parameter change of each module between two checkpoints (Zhao et al. 2023, arXiv:2304.04158, Sec. 3,
  the per-module drift behind "forgetting is concentrated in a few modules").

  Args:
    old_params: a pytree of float arrays (e.g. the parameters before a task).
    new_params: a pytree of the same structure and shapes (after the task).
    depth: int >= 1, how many levels of the tree path name a module (1: the top-level keys).
    eps: > 0 added to ||theta_old|| (a module initialised at zero).

  Returns:
    dict module name -> scalar ||new - old||_F / (||old||_F + eps) over the module's leaves.
  """
  depth = _check_depth(depth)
  validation.check_positive(eps, "eps")
  if jax.tree.structure(old_params) != jax.tree.structure(new_params):
    raise ValueError("old_params and new_params must have the same tree structure")
  validation.check_float_tree(old_params, "old_params")
  validation.check_float_tree(new_params, "new_params")
  old = jax.tree_util.tree_flatten_with_path(old_params)[0]
  new = jax.tree.leaves(new_params)
  diff, norm = {}, {}
  for (path, a), b in zip(old, new):
    if a.shape != b.shape:
      raise ValueError(f"old_params and new_params differ in shape at {jax.tree_util.keystr(path)}: "
                       f"{a.shape} vs {b.shape}")
    name = _module_of(path, depth)
    ct = validation.compute_dtype_for(jnp.result_type(a, b))   # float32 at least, float64 kept (no downcast)
    a32, b32 = jnp.asarray(a, ct), jnp.asarray(b, ct)
    diff[name] = diff.get(name, 0.0) + jnp.sum((b32 - a32) ** 2)
    norm[name] = norm.get(name, 0.0) + jnp.sum(a32 ** 2)
  return {k: jnp.sqrt(diff[k]) / (jnp.sqrt(norm[k]) + eps) for k in diff}


def fpf_labels(params: Any, modules: Sequence[str], *, depth: int = 1) -> Any:
  """The `optax.multi_transform` labels of FPF: "train" on the leaves of `modules`, "freeze" elsewhere (Zhao et al.
  2023, arXiv:2304.04158, Sec. 4).

  Args:
    params: the parameter pytree.
    modules: module names (as `module_drift` names them) to fine-tune; each must exist.
    depth: int >= 1, as in `module_drift`.

  Returns:
    a pytree of "train" / "freeze" strings with the structure of `params`.
  """
  depth = _check_depth(depth)
  if isinstance(modules, str):
    raise TypeError(f"modules must be a sequence of module names, not a single string {modules!r}")
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  names = {_module_of(p, depth) for p, _ in leaves}
  unknown = sorted(set(modules) - names)
  if unknown:
    raise ValueError(f"modules {unknown} are not modules of params at depth {depth}; modules: {sorted(names)}")
  return jax.tree_util.tree_map_with_path(lambda p, _: "train" if _module_of(p, depth) in set(modules) else "freeze",
                                          params)


def fpf_transform(tx: optax.GradientTransformation, params: Any, modules: Sequence[str], *,
                  depth: int = 1) -> optax.GradientTransformation:
  """Forgetting-prioritised fine-tuning: `tx` on the chosen modules, exactly zero updates (and no optimizer state)
  elsewhere, via `optax.multi_transform` (Zhao et al. 2023, arXiv:2304.04158, Sec. 4, FPF and k-FPF).

  Args:
    tx: the optimizer of the fine-tuned modules (e.g. optax.sgd(0.01)).
    params: the parameter pytree (for the labels).
    modules: module names to fine-tune (e.g. the top of `module_drift`).
    depth: int >= 1, as in `module_drift`.

  Returns:
    an optax.GradientTransformation.
  """
  if not isinstance(tx, optax.GradientTransformation):
    raise TypeError(f"tx must be an optax.GradientTransformation, got {type(tx).__name__}")
  labels = fpf_labels(params, modules, depth=depth)
  return optax.multi_transform({"train": tx, "freeze": optax.set_to_zero()}, labels)
