"""N:M structured sparsity and the progressive gradient-flow recipes that train it (MDGF, SDGF; SR-STE baseline).

Paper [170]: Abhimanyu Rajeshkumar Bambhaniya, Amir Yazdanbakhsh, Suvinay Subramanian, Sheng-Chun Kao, Shivani
Agrawal, Utku Evci, Tushar Krishna, "Progressive Gradient Flow for Robust N:M Sparsity Training in Transformers",
2024, arXiv:2402.04744.

N:M sparsity keeps, in every group of M consecutive weights along the reduction (input) dimension, the N of largest
magnitude. Training with the mask applied from the start (SR-STE) lets very little gradient reach the pruned weights
at high sparsity (1:16, 1:32), which the paper identifies as the cause of the quality loss; its remedy is to let the
gradient flow to the pruned weights and decay that flow progressively:

- MDGF (mask decay): the forward pass uses w * (mask + (1 - mask) * beta_t), the backward pass is straight-through
  (the dense weights get the gradient of the effective weights); beta_t decays from 1 (dense) to 0 with a linear,
  max(0, 1 - c (t - t_0)), or exponential, exp(-c (t - t_0)), schedule (`mdgf_decay`).
- SDGF (structure decay): the binary mask is tightened in stages, e.g. for 1:16 the phases 15:16, 8:16, 4:16, 2:16,
  then 1:16, equally spaced over the sparse-training phase (`sdgf_n`).
- SR-STE (Zhou et al., ICLR 2021, arXiv:2102.04010), the baseline: forward w * mask, gradient
  g + lambda_W (1 - mask) * w for the dense weights (`sr_ste`).

The functions here are pure and jit-able; call them on the weights inside the model's forward pass. For a Flax
`Dense` kernel [in, out] use `axis=0` (the input dimension, the paper's row-wise groups of a PyTorch [out, in] weight).
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods import validation

DECAY_KINDS = ("linear", "exp")


def _check_nm(n: Any, m: Any) -> None:
  if isinstance(m, (bool, np.bool_)) or not isinstance(m, (int, np.integer)) or m < 1:
    raise ValueError(f"m must be a Python int >= 1 (the group size), got {m=!r}")
  if isinstance(n, (bool, np.bool_)):
    raise TypeError(f"n must be an int in [0, m], got {n=!r}")
  if isinstance(n, (int, np.integer)):
    if not 0 <= n <= m:
      raise ValueError(f"n must lie in [0, m] = [0, {m}], got {n=}")
  elif isinstance(n, (jax.Array, jax.core.Tracer, np.ndarray)):
    if np.ndim(n) != 0 or not jnp.issubdtype(jnp.result_type(n), jnp.integer):
      raise TypeError(f"n must be an integer scalar, got dtype {jnp.result_type(n)} and shape {np.shape(n)}")
  else:
    raise TypeError(f"n must be an int in [0, m], got {n=!r}")


def nm_mask(w: jax.Array, n: Any, m: int, *, axis: int = -1) -> jax.Array:
  """The N:M mask: in every group of `m` consecutive entries along `axis`, True at the `n` of largest |w|.

  Ties are broken towards the lower index (stable sort), so the mask keeps exactly n of every m.

  Args:
    w: weights [..., D, ...] with D = w.shape[axis] a multiple of m; floating.
    n: N, an int in [0, m] (may be a traced integer scalar, e.g. from `sdgf_n`).
    m: M >= 1, the group size (a Python int: it sets shapes).
    axis: the grouping axis (the reduction dimension; 0 for a Flax Dense kernel [in, out]).

  Returns:
    A bool array of w's shape.

  Examples:
    >>> import jax.numpy as jnp
    >>> nm_mask(jnp.array([[0.1, -3.0, 2.0, 0.5]]), n=2, m=4).tolist()
    [[False, True, True, False]]

  References:
    Bambhaniya et al. "Progressive Gradient Flow for Robust N:M Sparsity Training in Transformers". 2024.
    arXiv:2402.04744, Sec. 2 (N:M structured sparsity).
  """
  w = validation.check_floating(w, "w")
  _check_nm(n, m)
  if w.ndim == 0:
    raise ValueError("nm_mask needs at least one axis to group along, got a scalar w")
  ax = validation.check_axis(axis, w.ndim, "axis")
  d = w.shape[ax]
  if d % m:
    raise ValueError(f"w.shape[{axis}] = {d} must be a multiple of m = {m}")
  moved = jnp.moveaxis(jnp.abs(w), ax, -1)
  groups = moved.reshape(moved.shape[:-1] + (d // m, m))
  order = jnp.argsort(-groups, axis=-1, stable=True)
  ranks = jnp.argsort(order, axis=-1, stable=True)  # rank of each entry within its group (0 = largest)
  keep = ranks < jnp.asarray(n, jnp.int32)
  return jnp.moveaxis(keep.reshape(moved.shape), -1, ax)


def decaying_gradient_flow(w: jax.Array, mask: jax.Array, beta: Any) -> jax.Array:
  """MDGF's effective weights: w * (mask + (1 - mask) * beta) forward, straight-through (identity) gradient to w.

  With beta = 1 the forward pass is dense; with beta = 0 it is the N:M-sparse w * mask, while the pruned weights keep
  receiving the gradient of their effective values, so they can regrow into the mask when it is recomputed.

  Args:
    w: dense weights (floating).
    mask: bool (or 0/1) array of w's shape (`nm_mask`).
    beta: the decay factor beta_t in [0, 1] (a scalar; `mdgf_decay` gives the paper's schedules).

  Returns:
    The effective weights (w's shape and dtype); d(out)/dw = identity.

  References:
    Bambhaniya et al. "Progressive Gradient Flow for Robust N:M Sparsity Training in Transformers". 2024.
    arXiv:2402.04744, Sec. 4 (mask decay gradient flow).
  """
  w = validation.check_floating(w, "w")
  if np.shape(mask) != np.shape(w):
    raise ValueError(f"mask must have w's shape: {np.shape(mask)} vs {np.shape(w)}")
  m = jnp.asarray(mask).astype(w.dtype)
  b = jnp.asarray(beta, w.dtype)
  eff = w * (m + (1 - m) * b)
  return w + jax.lax.stop_gradient(eff - w)


@jax.custom_vjp
def _sr_ste(w, m, decay):
  return w * m


def _sr_ste_fwd(w, m, decay):
  return w * m, (w, m, decay)


def _sr_ste_bwd(res, g):
  w, m, decay = res
  return g + decay * (1 - m) * w, jnp.zeros_like(m), jnp.zeros_like(decay)


_sr_ste.defvjp(_sr_ste_fwd, _sr_ste_bwd)


def sr_ste(w: jax.Array, mask: jax.Array, decay: float = 2e-4) -> jax.Array:
  """SR-STE: w * mask forward; gradient g + decay * (1 - mask) * w to the dense weights (Zhou et al. 2021, eq. 5).

  Args:
    w: dense weights (floating).
    mask: bool (or 0/1) array of w's shape.
    decay: lambda_W >= 0, the sparse-refined regularisation of the pruned weights (2e-4 in the paper and the
      progressive-gradient-flow code).

  Returns:
    w * mask (w's dtype).

  References:
    Zhou, Ma, Zhu, Liu, Zhang, Yuan, Sun, Li. "Learning N:M Fine-grained Structured Sparse Neural Networks From
    Scratch". ICLR 2021. arXiv:2102.04010, eq. (5).
  """
  w = validation.check_floating(w, "w")
  validation.check_nonnegative(decay, "decay")
  if np.shape(mask) != np.shape(w):
    raise ValueError(f"mask must have w's shape: {np.shape(mask)} vs {np.shape(w)}")
  return _sr_ste(w, jnp.asarray(mask).astype(w.dtype), jnp.asarray(decay, w.dtype))


def mdgf_decay(kind: Literal["linear", "exp"], coef: float, *, start_step: int = 0) -> optax.Schedule:
  """beta_t of MDGF: 1 before `start_step`, then max(0, 1 - coef * (t - t_0)) ("linear") or exp(-coef (t - t_0)).

  Args:
    kind: "linear" or "exp".
    coef: c >= 0, the decay rate per step.
    start_step: t_0 >= 0, the end of the dense phase.

  Returns:
    An optax schedule `count -> beta_t` (float32).

  References:
    Bambhaniya et al. "Progressive Gradient Flow for Robust N:M Sparsity Training in Transformers". 2024.
    arXiv:2402.04744, Sec. 4 (linear and exponential mask decay).
  """
  if kind not in DECAY_KINDS:
    raise ValueError(f"kind must be one of {DECAY_KINDS}, got {kind=!r}")
  validation.check_nonnegative(coef, "coef")
  if isinstance(start_step, bool) or not isinstance(start_step, (int, np.integer)) or start_step < 0:
    raise ValueError(f"start_step must be an int >= 0, got {start_step=!r}")

  def schedule(count):
    t = jnp.asarray(count, jnp.float32) - float(start_step)
    c = jnp.asarray(coef, jnp.float32)
    beta = jnp.maximum(0.0, 1.0 - c * t) if kind == "linear" else jnp.exp(-c * jnp.maximum(t, 0.0))
    return jnp.where(t < 0, 1.0, beta)

  return schedule


def sdgf_n(n: int, m: int, *, dense_steps: int, decay_steps: int) -> optax.Schedule:
  """N_t of SDGF: m (dense) for t < dense_steps, then m - 1, m/2, m/4, ... down to n in equal stages over
  `decay_steps`, and n afterwards (for 1:16: 15:16, 8:16, 4:16, 2:16, then 1:16, as the official code does).

  Args:
    n: the target N (an int in [1, m]).
    m: M (an int >= 1).
    dense_steps: steps of dense training first (>= 0).
    decay_steps: length of the staged phase (>= 1); afterwards N_t = n.

  Returns:
    An optax schedule `count -> N_t` (int32), for `nm_mask(w, N_t, m)`.

  References:
    Bambhaniya et al. "Progressive Gradient Flow for Robust N:M Sparsity Training in Transformers". 2024.
    arXiv:2402.04744, Sec. 4 (structure decay gradient flow).
  """
  _check_nm(n, m)
  if n < 1:
    raise ValueError(f"n must be >= 1 for a structure decay, got {n=}")
  for name, v, low in (("dense_steps", dense_steps, 0), ("decay_steps", decay_steps, 1)):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
      raise ValueError(f"{name} must be an int >= {low}, got {name}={v!r}")
  levels = [m - 1]
  while levels[-1] > n:
    nxt = max(n, m // 2 ** len(levels))
    if nxt >= levels[-1]:
      nxt = n
    levels.append(nxt)
  levels = [lv for lv in levels if lv >= n] or [n]
  stages = len(levels) - 1 if len(levels) > 1 else 1
  stage_len = decay_steps / stages
  starts = [dense_steps + int(i * stage_len) for i in range(len(levels))]
  if len(levels) == 1:
    starts = [dense_steps]

  def schedule(count):
    t = jnp.asarray(count, jnp.int32)
    out = jnp.asarray(m, jnp.int32)
    for start, lv in zip(starts, levels):
      out = jnp.where(t >= start, lv, out)
    return jnp.where(t >= dense_steps + decay_steps, n, out).astype(jnp.int32)

  return schedule


__all__ = ["DECAY_KINDS", "decaying_gradient_flow", "mdgf_decay", "nm_mask", "sdgf_n", "sr_ste"]
