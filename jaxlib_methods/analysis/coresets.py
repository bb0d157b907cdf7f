"""Coresets for data-efficient augmentation: the network Jacobian's spectrum and facility-location selection.

Paper [153]: Tian Yu Liu, Baharan Mirzasoleiman, "Data-Efficient Augmentation for Training Neural Networks",
NeurIPS 2022, arXiv:2210.08363 (abstract): augmentation modelled as additive perturbations enlarges the smaller
singular values of the network Jacobian J (rows: training examples, columns: parameters) relatively more than the
large ones while keeping the prominent singular directions. The subset to augment (after CRAIG, Mirzasoleiman, Bilmes, Leskovec,
ICML 2020, arXiv:1906.01827) maximises the facility-location function

    F(S) = sum_i max_{j in S} (C - ||g_i - g_j||),        C = max_{i, j} ||g_i - g_j||   (so F(empty) = 0)

over per-example gradient (Jacobian) proxies g_i with the greedy algorithm, which is >= (1 - 1/e) of the optimum
(Nemhauser, Wolsey, Fisher 1978: F is monotone submodular); each selected point is weighted by the number of
examples it serves (its cluster size). The greedy step reuses `analysis.ot.greedy_submodular_select`.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxlib_methods import validation
from jaxlib_methods.analysis.ot import greedy_submodular_select


def jacobian_spectrum(apply_fn: Callable[[Any, jax.Array], jax.Array], params: Any,
                      x: Any) -> tuple[jax.Array, jax.Array]:
  """Singular values and left singular vectors of the Jacobian J = d f(x_i) / d theta of a scalar-output model
  over a data set (Liu & Mirzasoleiman 2022, arXiv:2210.08363: the Jacobian whose spectrum augmentation reshapes).

  Run it eagerly or in float32 (a float64 SVD inside `jit` can deadlock XLA:CPU).

  Args:
    apply_fn: (params, x [N, ...]) -> [N] outputs.
    params: pytree of floating arrays.
    x: [N, ...] float inputs.

  Returns:
    (singular values [r] in decreasing order, left singular vectors [N, r]), r = min(N, number of parameters).
  """
  validation.check_float_tree(params, "params")
  x = validation.check_floating(x, "x")
  if x.ndim < 1:
    raise ValueError(f"x must have a leading batch axis, got x.shape={x.shape}")
  flat, unravel = ravel_pytree(params)

  def f(theta):
    out = apply_fn(unravel(theta), x)
    if out.shape != x.shape[:1]:
      raise ValueError(f"apply_fn must return one scalar per example, shape {x.shape[:1]}, got {out.shape}")
    return out

  jac = jax.jacrev(f)(flat)                                        # [N, P]
  u, s, _ = jnp.linalg.svd(jac.astype(validation.compute_dtype_for(jac.dtype)), full_matrices=False)  # no f16 SVD
  return s, u


def facility_location_coreset(gradients: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
  """Greedy facility-location coreset of k examples with CRAIG weights (Liu & Mirzasoleiman 2022,
  arXiv:2210.08363; Mirzasoleiman et al. 2020, arXiv:1906.01827, CRAIG): maximise
  F(S) = sum_i max_{j in S} (C - ||g_i - g_j||) greedily (>= (1 - 1/e) max F), weight each chosen j by the number
  of examples whose nearest chosen point it is.

  Args:
    gradients: [N, D] float per-example gradient (or Jacobian) proxies.
    k: 1 <= k <= N examples to select.

  Returns:
    (indices [k] int, in the order chosen; weights [k] int, summing to N).
  """
  g = validation.check_floating(gradients, "gradients")
  if g.ndim != 2:
    raise ValueError(f"gradients must be [N, D], got gradients.shape={g.shape}")
  n = g.shape[0]
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
    raise ValueError(f"k must be a Python int in [1, N={n}], got {k=}")
  g64 = np.asarray(g, np.float64)
  if not np.all(np.isfinite(g64)):
    raise ValueError("gradients must be finite")
  dist = np.sqrt(np.maximum(np.sum((g64[:, None] - g64[None]) ** 2, -1), 0.0))
  sim = jnp.asarray(dist.max() - dist)                                 # [N, N] >= 0

  def score(masks):                                                   # [B, N] bool -> [B] F(S)
    return jnp.sum(jnp.max(jnp.where(masks[:, None, :], sim[None], 0.0), -1), -1)

  idx, _ = greedy_submodular_select(score, n, int(k))
  nearest = np.argmax(np.asarray(sim)[:, idx], axis=1)                # the chosen point serving each example
  return idx, np.bincount(nearest, minlength=len(idx))
