"""Entropic optimal transport (Sinkhorn) and the OT-based transferability terms of OTCE / OSBORN.

Sinkhorn: Cuturi, "Sinkhorn Distances: Lightspeed Computation of Optimal Transport", NeurIPS 2013, arXiv:1306.0895
(Eq. 2 and Alg. 1), in the log domain (Peyre & Cuturi, "Computational Optimal Transport", 2019, arXiv:1803.00567,
Remark 4.23): the plan P = diag(e^{f/eps}) K diag(e^{g/eps}), K = exp(-C / eps), minimises
<P, C> - eps H(P) over couplings with marginals (a, b); as eps -> 0 its cost <P, C> tends to the exact OT cost.

Transferability (the row of catalog id 117): Vimal K B, Bachu, Garg, Narasimhan, Konuru, Balasubramanian, "Building
a Winning Team: Selecting Source Model Ensembles using a Submodular Transferability Estimation Approach" (OSBORN),
ICCV 2023, arXiv:2309.02429, which scores an ensemble by an image-domain difference (an OT distance between
source and target features), a task difference (the conditional entropy of the target labels given the source
labels under the OT coupling, as in OTCE: Tan, Li, Huang, "OTCE: A Transferability Metric for Cross-Domain
Cross-Task Representations", CVPR 2021, arXiv:2103.13843, Eqs. 3-6) and the cohesiveness of the models, and selects
the ensemble greedily, the score being submodular. NOTE: the paper's own text could not be retrieved here; the way
`osborn_score` combines the three terms (weighted per-model sums minus a weighted sum over pairs) is our reading,
which is submodular by construction (a modular part minus non-negative pairwise interactions).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


def _check_num_iters(num_iters: Any) -> int:
  if isinstance(num_iters, bool) or not isinstance(num_iters, int) or num_iters < 1:
    raise ValueError(f"num_iters must be a Python int >= 1, got {num_iters=}")
  return num_iters


def sinkhorn(cost: Any, a: Optional[Any] = None, b: Optional[Any] = None, *, eps: float = 0.05,
             num_iters: int = 500) -> jax.Array:
  """The entropic OT plan between histograms a and b for a cost matrix, by log-domain Sinkhorn iterations
  (Cuturi 2013, arXiv:1306.0895, Eq. 2, Alg. 1; Peyre & Cuturi 2019, arXiv:1803.00567, Remark 4.23).

  Args:
    cost: [n, m] float cost matrix C.
    a: [n] non-negative source weights summing to 1 (default uniform 1/n).
    b: [m] non-negative target weights summing to 1 (default uniform 1/m).
    eps: > 0 entropic regularisation, in the units of the cost (the plan tends to an exact OT plan as eps -> 0).
    num_iters: >= 1 (row, column) scaling sweeps.

  Returns:
    [n, m] plan P >= 0 with column sums b exactly and row sums a up to the Sinkhorn tolerance.
  """
  c = validation.check_floating(cost, "cost")
  if c.ndim != 2 or c.shape[0] < 1 or c.shape[1] < 1:
    raise ValueError(f"cost must be a non-empty [n, m] matrix, got cost.shape={c.shape}")
  validation.check_positive(eps, "eps")
  num_iters = _check_num_iters(num_iters)
  c = c.astype(validation.compute_dtype_for(c.dtype))
  n, m = c.shape
  la = _log_weights(a, n, "a", c.dtype)
  lb = _log_weights(b, m, "b", c.dtype)
  lk = -c / eps

  def body(_, f):
    g = lb - jax.nn.logsumexp(lk + f[:, None], axis=0)
    return la - jax.nn.logsumexp(lk + g[None, :], axis=1)

  f = jax.lax.fori_loop(0, num_iters, body, jnp.zeros((n,), c.dtype))
  g = lb - jax.nn.logsumexp(lk + f[:, None], axis=0)
  return jnp.exp(lk + f[:, None] + g[None, :])


def _log_weights(w: Any, n: int, name: str, dtype) -> jax.Array:
  if w is None:
    return jnp.full((n,), -jnp.log(float(n)), dtype)
  w = validation.check_floating(w, name)
  if w.shape != (n,):
    raise ValueError(f"{name} must have shape ({n},), got {name}.shape={w.shape}")
  if not validation.is_traced(w):
    v = np.asarray(w, np.float64)
    if (v < 0).any() or not np.isfinite(v).all() or abs(v.sum() - 1.0) > 1e-4:
      raise ValueError(f"{name} must be non-negative weights summing to 1, got sum={v.sum()!r}")
  return jnp.log(w.astype(dtype))


def sinkhorn_ot(xs: Any, xt: Any, *, eps: float = 0.05, num_iters: int = 500,
                normalize_cost: bool = True) -> tuple[jax.Array, jax.Array]:
  """Entropic OT between two point clouds with uniform weights and squared Euclidean cost: the domain difference
  W_D of OTCE / OSBORN (Tan et al. 2021, arXiv:2103.13843, Eq. 3; OSBORN, arXiv:2309.02429).

  Args:
    xs: [n, d] float source points.
    xt: [m, d] float target points.
    eps: > 0 regularisation, relative to the mean cost when `normalize_cost` (else in the cost's units).
    num_iters: >= 1 Sinkhorn sweeps.
    normalize_cost: run Sinkhorn on C / mean(C), so eps is relative to the typical cost whatever the scale.

  Returns:
    (W_D = <P, C> scalar, P [n, m] the plan).
  """
  s = validation.check_floating(xs, "xs")
  t = validation.check_floating(xt, "xt")
  if s.ndim != 2 or t.ndim != 2 or s.shape[1] != t.shape[1]:
    raise ValueError(f"xs and xt must be [n, d] and [m, d] with the same d, got xs.shape={s.shape}, "
                     f"xt.shape={t.shape}")
  validation.check_positive(eps, "eps")
  dt = jnp.promote_types(validation.compute_dtype_for(s.dtype), t.dtype)
  s, t = s.astype(dt), t.astype(dt)
  c = jnp.sum((s[:, None, :] - t[None, :, :]) ** 2, axis=-1)
  # All points coinciding gives C = 0: any scale is fine then (W_D = 0), and dividing by mean(C) = 0 would be NaN.
  mean_c = jax.lax.stop_gradient(jnp.mean(c))
  scale = jnp.where(mean_c > 0, mean_c, jnp.ones((), dt)) if normalize_cost else 1.0
  p = sinkhorn(c / scale, eps=eps, num_iters=num_iters)
  return jnp.sum(p * c), p


def ot_conditional_entropy(plan: Any, ys: Any, yt: Any, num_source_classes: int,
                           num_target_classes: int) -> jax.Array:
  """The task difference W_T = H(Y_t | Y_s) under an OT coupling of source and target samples (OTCE, Tan et al.
  2021, arXiv:2103.13843, Eqs. 4-6; OSBORN's task-difference term, arXiv:2309.02429).

  The joint label distribution is P(y_s, y_t) = sum over pairs (i, j) with labels (y_s, y_t) of plan[i, j].

  Args:
    plan: [n, m] non-negative coupling (e.g. from `sinkhorn_ot`), summing to 1.
    ys: [n] int source labels in [0, num_source_classes).
    yt: [m] int target labels in [0, num_target_classes).
    num_source_classes: int >= 1.
    num_target_classes: int >= 1.

  Returns:
    scalar H(Y_t | Y_s) in nats, in [0, log num_target_classes].
  """
  p = validation.check_floating(plan, "plan")
  if p.ndim != 2:
    raise ValueError(f"plan must be [n, m], got plan.shape={p.shape}")
  for name, v in (("num_source_classes", num_source_classes), ("num_target_classes", num_target_classes)):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise ValueError(f"{name} must be a Python int >= 1, got {name}={v!r}")
  ys = validation.check_integer(ys, "ys")
  yt = validation.check_integer(yt, "yt")
  if ys.shape != p.shape[:1] or yt.shape != p.shape[1:]:
    raise ValueError(f"ys and yt must have shapes ({p.shape[0]},) and ({p.shape[1]},), got ys.shape={ys.shape}, "
                     f"yt.shape={yt.shape}")
  v1 = validation.check_labels(ys, num_source_classes, "ys")
  v2 = validation.check_labels(yt, num_target_classes, "yt")
  p = p.astype(validation.compute_dtype_for(p.dtype))
  joint = jax.nn.one_hot(ys, num_source_classes, dtype=p.dtype).T @ p @ jax.nn.one_hot(yt, num_target_classes,
                                                                                          dtype=p.dtype)
  ps = jnp.sum(joint, axis=1, keepdims=True)
  safe = lambda x: jnp.where(x > 0, x, 1.0)
  h = -jnp.sum(jnp.where(joint > 0, joint * (jnp.log(safe(joint)) - jnp.log(safe(ps))), 0.0))
  return validation.nan_where_invalid(validation.nan_where_invalid(h, v1), v2)


def osborn_score(subset: Any, domain: Any, task: Any, incohesion: Any, *, lam_domain: float = 1.0,
                 lam_task: float = 1.0, lam_cohesion: float = 1.0, offset: float = 0.0) -> jax.Array:
  """An OSBORN-style transferability of the ensemble `subset` (higher = better; arXiv:2309.02429, Sec. 3, in our
  reading, see the module NOTE): per-model terms minus pairwise incohesion,

      T(S) = sum_{m in S} [offset - lam_domain W_D(m) - lam_task W_T(m)] - lam_cohesion sum_{m < m' in S} MC(m, m').

  With MC >= 0 and lam_cohesion >= 0, T is submodular (the marginal gain of a model shrinks as S grows); it is
  also monotone when every model's per-model term exceeds its total incohesion penalty (choose `offset`).

  Args:
    subset: [M] bool (or 0/1) membership of the M candidate models; a leading batch axis [..., M] is allowed.
    domain: [M] float W_D per model (e.g. `sinkhorn_ot` of its source and the target features).
    task: [M] float W_T per model (e.g. `ot_conditional_entropy`).
    incohesion: [M, M] symmetric non-negative pairwise incohesion MC (the diagonal is ignored).
    lam_domain: >= 0 weight of the domain term.
    lam_task: >= 0 weight of the task term.
    lam_cohesion: >= 0 weight of the pairwise term.
    offset: per-model constant (makes T monotone when large enough; does not change the argmax at fixed |S|).

  Returns:
    [...] float scores.
  """
  d = validation.check_floating(domain, "domain")
  t = validation.check_floating(task, "task")
  mc = validation.check_floating(incohesion, "incohesion")
  m = d.shape[0] if d.ndim == 1 else -1
  if d.ndim != 1 or t.shape != d.shape or mc.shape != (m, m):
    raise ValueError(f"domain and task must be [M] and incohesion [M, M], got domain.shape={d.shape}, "
                     f"task.shape={t.shape}, incohesion.shape={mc.shape}")
  sub = jnp.asarray(subset)
  if sub.shape[-1:] != (m,):
    raise ValueError(f"subset must have shape [..., {m}], got subset.shape={sub.shape}")
  for name, v in (("lam_domain", lam_domain), ("lam_task", lam_task), ("lam_cohesion", lam_cohesion)):
    validation.check_nonnegative(v, name)
  if not validation.is_traced(mc) and (np.asarray(mc) < 0).any():
    raise ValueError("incohesion must be non-negative (the pairwise term is a penalty)")
  dt = jnp.promote_types(validation.compute_dtype_for(d.dtype), mc.dtype)
  s = sub.astype(dt)
  per = offset - lam_domain * d.astype(dt) - lam_task * t.astype(dt)
  off = mc.astype(dt) * (1.0 - jnp.eye(m, dtype=dt))
  pair = 0.5 * jnp.einsum("...i,ij,...j->...", s, off, s)
  return s @ per - lam_cohesion * pair


def greedy_submodular_select(score_fn: Callable[[jax.Array], jax.Array], num_candidates: int,
                             k: int) -> tuple[np.ndarray, np.ndarray]:
  """Greedy maximisation of a set function under |S| <= k (Nemhauser, Wolsey, Fisher 1978: for a monotone
  submodular f with f(empty) = 0 the result is >= (1 - 1/e) OPT), the selection step of OSBORN (arXiv:2309.02429).

  Each round evaluates every candidate's addition in one batched call of `score_fn`.

  Args:
    score_fn: maps [B, M] bool membership masks to [B] scores (e.g. a partial of `osborn_score`).
    num_candidates: M >= 1.
    k: 1 <= k <= M models to select.

  Returns:
    (selected [k] int indices in the order chosen, scores [k] the score after each addition).
  """
  if isinstance(num_candidates, bool) or not isinstance(num_candidates, int) or num_candidates < 1:
    raise ValueError(f"num_candidates must be a Python int >= 1, got {num_candidates=}")
  if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= num_candidates:
    raise ValueError(f"k must be a Python int in [1, num_candidates={num_candidates}], got {k=}")
  chosen = np.zeros(num_candidates, bool)
  order, vals = [], []
  eye = np.eye(num_candidates, dtype=bool)
  for _ in range(k):
    cand = chosen[None, :] | eye                                  # [M, M]: chosen + each candidate
    s = np.asarray(score_fn(jnp.asarray(cand)), np.float64)
    if s.shape != (num_candidates,):
      raise ValueError(f"score_fn must map [B, M] masks to [B] scores, got an output of shape {s.shape}")
    s = np.where(chosen, -np.inf, s)
    j = int(np.argmax(s))
    chosen[j] = True
    order.append(j)
    vals.append(float(s[j]))
  return np.asarray(order), np.asarray(vals)
