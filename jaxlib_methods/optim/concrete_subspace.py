"""Concrete subspace learning for multi-task model fusion: a shared (relaxed) binary mask on task vectors.

Paper [104]: Anke Tang, Li Shen, Yong Luo, Liang Ding, Han Hu, Bo Du, Dacheng Tao, "Concrete Subspace Learning based
Interference Elimination for Multi-task Model Fusion", 2023, arXiv:2312.06173.

Task arithmetic merges fine-tuned models theta_i = theta_0 + tau_i as theta_0 + lambda sum_i tau_i; the task vectors
interfere. The paper learns one binary mask m shared by all task vectors,

    theta(m) = theta_0 + lambda * sum_i (m / mean(m)) * tau_i                 (masked task arithmetic)

by a bi-level problem whose upper level minimises the merged model's loss over the tasks (the paper: entropy on
unlabelled test data; labelled validation loss works the same way), with m relaxed to the binary Concrete
distribution (Maddison, Mnih, Teh 2017; Jang, Gu, Poole 2017) so that it can be learned by gradient descent on the
mask logits:

    m = sigmoid((l + log u - log(1 - u)) / temperature),  u ~ U(0, 1)        (`concrete_mask`)

As temperature -> 0 the sample becomes the hard mask 1[l + log u - log(1 - u) > 0], a Bernoulli(sigmoid(l)) draw.
The rescaling by mean(m) per tensor follows the official code (fusion_bench `concrete_subspace`), which also keeps
the inner level (the merging coefficients lambda) fixed for task arithmetic, as here.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


def task_vectors(pretrained: Any, finetuned: Sequence[Any]) -> list:
  """tau_i = theta_i - theta_0 for each fine-tuned pytree (Ilharco et al. 2023's task vectors).

  Args:
    pretrained: theta_0, a pytree of floating arrays.
    finetuned: a non-empty sequence of pytrees of the same structure and shapes.

  Returns:
    A list of pytrees.

  References:
    Tang et al. "Concrete Subspace Learning based Interference Elimination for Multi-task Model Fusion". 2023.
    arXiv:2312.06173, Sec. 3.1.
  """
  if not isinstance(finetuned, (list, tuple)) or not finetuned:
    raise ValueError(f"finetuned must be a non-empty list of pytrees, got {type(finetuned).__name__}")
  validation.check_float_tree(pretrained, "pretrained")
  out = []
  for i, ft in enumerate(finetuned):
    if jax.tree.structure(ft) != jax.tree.structure(pretrained):
      raise ValueError(f"finetuned[{i}] has a different tree structure from pretrained")
    for a, b in zip(jax.tree.leaves(ft), jax.tree.leaves(pretrained)):
      if np.shape(a) != np.shape(b):
        raise ValueError(f"finetuned[{i}] has a leaf of shape {np.shape(a)} where pretrained has {np.shape(b)}")
    out.append(jax.tree.map(lambda a, b: a - b, ft, pretrained))
  return out


def concrete_mask(logits: Any, key: jax.Array, temperature: float = 0.5) -> Any:
  """A binary-Concrete (relaxed Bernoulli) sample per entry: sigmoid((l + log u - log(1 - u)) / temperature).

  Args:
    logits: pytree of floating arrays l (the mask logits, one per parameter entry).
    key: a PRNG key (one draw per leaf, from `fold_in(key, leaf index)`).
    temperature: > 0 gives the relaxed sample in (0, 1); 0 gives the hard {0, 1} mask 1[l + logistic noise > 0]
      (the temperature -> 0 limit: a Bernoulli(sigmoid(l)) sample; no gradient to l).

  Returns:
    A pytree like `logits` (same dtypes).

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> m = concrete_mask({"w": jnp.array([20.0, -20.0])}, jax.random.key(0), temperature=0.0)
    >>> m["w"].tolist()
    [1.0, 0.0]

  References:
    Tang et al. "Concrete Subspace Learning based Interference Elimination for Multi-task Model Fusion". 2023.
    arXiv:2312.06173, Sec. 3.2 (eq. for the Concrete mask).
    Maddison, Mnih, Teh. "The Concrete Distribution". ICLR 2017. arXiv:1611.00712, Sec. 3.3 (binary Concrete).
  """
  validation.check_float_tree(logits, "logits")
  validation.check_nonnegative(temperature, "temperature")
  leaves, treedef = jax.tree.flatten(logits)
  out = []
  for i, l in enumerate(leaves):
    lf = jnp.asarray(l).astype(jnp.promote_types(jnp.result_type(l), jnp.float32))
    u = jax.random.uniform(jax.random.fold_in(key, i), lf.shape, lf.dtype, minval=jnp.finfo(lf.dtype).tiny,
                           maxval=1.0)
    z = lf + jnp.log(u) - jnp.log1p(-u)
    if isinstance(temperature, (int, float)) and temperature == 0:
      m = (z > 0).astype(lf.dtype)
    else:
      m = jax.nn.sigmoid(z / jnp.asarray(temperature, lf.dtype))
    out.append(m.astype(jnp.result_type(l)))
  return jax.tree.unflatten(treedef, out)


def masked_task_arithmetic(pretrained: Any, taus: Sequence[Any], mask: Any, scaling: float = 0.3, *,
                           rescale: bool = True) -> Any:
  """theta_0 + lambda * sum_i (m / mean(m)) * tau_i: task arithmetic inside the subspace selected by the shared mask.

  Args:
    pretrained: theta_0 (pytree).
    taus: task vectors (`task_vectors`), each a pytree like theta_0.
    mask: a pytree like theta_0 with entries in [0, 1] (`concrete_mask`, or a hard mask); None merges without a mask
      (plain task arithmetic).
    scaling: lambda, the task-arithmetic coefficient (0.3 is task arithmetic's usual choice).
    rescale: divide each mask leaf by its mean (the official code), so that the masked sum keeps the scale of the
      unmasked one; an all-zero leaf is then left at theta_0.

  Returns:
    The merged pytree.

  References:
    Tang et al. "Concrete Subspace Learning based Interference Elimination for Multi-task Model Fusion". 2023.
    arXiv:2312.06173, eq. (5) (masked task arithmetic) and the official fusion_bench implementation (rescaling).
    Ilharco et al. "Editing Models with Task Arithmetic". ICLR 2023. arXiv:2212.04089.
  """
  if not isinstance(taus, (list, tuple)) or not taus:
    raise ValueError("taus must be a non-empty list of task vectors")
  if not isinstance(rescale, bool):
    raise TypeError(f"rescale must be a bool, got {rescale=!r}")
  for i, t in enumerate(taus):
    if jax.tree.structure(t) != jax.tree.structure(pretrained):
      raise ValueError(f"taus[{i}] has a different tree structure from pretrained")
  total = jax.tree.map(lambda *ts: sum(ts[1:], ts[0]), *taus)
  if mask is None:
    return jax.tree.map(lambda p, t: p + scaling * t, pretrained, total)
  if jax.tree.structure(mask) != jax.tree.structure(pretrained):
    raise ValueError("mask must have the structure of pretrained (one mask leaf per parameter leaf)")

  def one(p, t, m):
    if np.shape(m) != np.shape(p):
      raise ValueError(f"mask leaf of shape {np.shape(m)} for a parameter of shape {np.shape(p)}")
    m = m.astype(jnp.promote_types(jnp.result_type(m), jnp.float32))
    if rescale:
      mean = jnp.mean(m) if m.size else jnp.ones([], m.dtype)
      m = jnp.where(mean > 0, m / jnp.where(mean > 0, mean, 1.0), jnp.zeros_like(m))
    return (p + scaling * m * t).astype(p.dtype)

  return jax.tree.map(one, pretrained, total, mask)


__all__ = ["concrete_mask", "masked_task_arithmetic", "task_vectors"]
