"""Empirical neural tangent kernel and kernel-target alignment.

NTK: Jacot, Gabriel, Hongler, "Neural Tangent Kernel: Convergence and Generalization in Neural Networks", NeurIPS
2018, arXiv:1806.07572: Theta(x, x') = <d f(x)/d theta, d f(x')/d theta>. Kernel-target alignment: Cristianini,
Shawe-Taylor, Elisseeff, Kandola, "On Kernel-Target Alignment", NeurIPS 2001: A(K, y) = <K, y y^T>_F /
(||K||_F ||y y^T||_F). Used by [192] Kumar, Bordelon, Gershman, Pehlevan, "Grokking as the Transition from Lazy to
Rich Training Dynamics", ICLR 2024, arXiv:2310.06110 (Sec. 4: the NTK aligns with the target when test loss drops).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxlib_methods import validation



def empirical_ntk(apply_fn: Callable[[Any, jax.Array], jax.Array], params: Any, x1: jax.Array,
                  x2: Optional[jax.Array] = None) -> jax.Array:
  """Empirical NTK Theta(x1, x2) = J(x1) J(x2)^T for a scalar-output model (summed over outputs otherwise) (Jacot et
  al. 2018, arXiv:1806.07572).

  Args:
    apply_fn: (params, x [N, ...]) -> outputs [N] or [N, C].
    params: pytree of floating arrays (TypeError otherwise, naming the leaf).
    x1: [N1, ...]; x2: [N2, ...] (default x1), each with a leading batch axis.

  Returns:
    [N1, N2] kernel (for [N, C] outputs: the trace over outputs, sum_c <df_c(x1)/dtheta, df_c(x2)/dtheta>).
  """
  validation.check_float_tree(params, "params")
  for name, x in (("x1", x1), ("x2", x2)):
    if x is not None and jnp.ndim(x) < 1:
      raise ValueError(f"{name} must have a leading batch axis, got {name}.shape={jnp.shape(x)}")
  x2 = x1 if x2 is None else x2
  flat, unravel = ravel_pytree(params)

  def jac(x):
    def f(theta):
      out = apply_fn(unravel(theta), x)
      if out.ndim == 1:
        out = out[:, None]
      elif out.ndim != 2:
        raise ValueError(f"apply_fn must return [N] or [N, C], got {out.shape=}")
      return out
    return jax.jacrev(f)(flat)                                    # [N, C, P]

  j1 = jac(x1)
  j2 = j1 if x2 is x1 else jac(x2)
  return jnp.einsum("ncp,mcp->nm", j1, j2)


def kernel_target_alignment(kernel: jax.Array, targets: jax.Array, *, centered: bool = False) -> jax.Array:
  """A(K, Y) = <K, Y Y^T>_F / (||K||_F ||Y Y^T||_F) (Cristianini et al. 2001, "On Kernel-Target Alignment",
  NeurIPS 2001), in [-1, 1] (in [0, 1] for PSD K).

  Args:
    kernel: [N, N] floating, N >= 1, not all zero (after centering, if asked).
    targets: [N] or [N, C], floating or integer (e.g. +-1 labels), not all zero (after centering).
    centered: center K and Y Y^T first (Cortes, Mohri, Rostamizadeh 2012, "Algorithms for Learning Kernels Based on
      Centered Alignment").

  Returns:
    Scalar (float32 or wider). A zero kernel or zero targets leave A undefined: ValueError when concrete, NaN under
    jit.
  """
  k = validation.check_floating(kernel, "kernel")
  y = jnp.asarray(targets)
  if y.dtype == jnp.bool_ or not (jnp.issubdtype(y.dtype, jnp.floating) or jnp.issubdtype(y.dtype, jnp.integer)):
    raise TypeError(f"targets must be real numbers, got targets.dtype={y.dtype}")
  y = y[:, None] if y.ndim == 1 else y
  if k.ndim != 2 or k.shape[0] != k.shape[1] or y.ndim != 2 or k.shape[0] != y.shape[0]:
    raise ValueError(f"need kernel [N, N] and targets [N] or [N, C], got kernel.shape={k.shape}, "
                     f"targets.shape={jnp.shape(targets)}")
  validation.check_min_size(k, "kernel", 1)
  ct = validation.compute_dtype_for(k.dtype)
  k = k.astype(ct)
  y = y.astype(ct)
  yy = y @ y.T
  if centered:
    n = k.shape[0]
    h = jnp.eye(n) - jnp.ones((n, n)) / n
    k, yy = h @ k @ h, h @ yy @ h
  nk, ny = jnp.linalg.norm(k), jnp.linalg.norm(yy)
  valid = validation.combine_valid(
      validation.check_values(~(nk == 0), kernel, "kernel", "non-zero (after centering, if centered=True)"),
      validation.check_values(~(ny == 0), targets, "targets", "non-zero (after centering, if centered=True)"))
  return validation.nan_where_invalid(jnp.sum(k * yy) / (nk * ny), valid)
