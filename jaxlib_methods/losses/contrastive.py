"""Contrastive losses: iSogCLR (individualised temperatures), MoCHi (hard-negative mixing), m^2-Mix (geodesic
multi-modal mixup) and MCL (cluster-restricted negatives).

Papers:
  [183] Zi-Hao Qiu, Quanqi Hu, Zhuoning Yuan, Denny Zhou, Lijun Zhang, Tianbao Yang, "Not All Semantics are Created
        Equal: Contrastive Self-supervised Learning with Automatic Temperature Individualization", ICML 2023,
        arXiv:2305.11965 (robust objective Eq. (6); algorithm iSogCLR). Reference implementation: LibAUC
        `GCLoss_v1(enable_isogclr=True)` (maintained by the authors), whose defaults we use.
  [83]  Yannis Kalantidis, Mert Bulent Sariyildiz, Noe Pion, Philippe Weinzaepfel, Diane Larlus, "Hard Negative
        Mixing for Contrastive Learning", NeurIPS 2020, arXiv:2010.01028 (Sec. 4: mixing the hardest negatives, and
        mixing the query with the hardest negatives).
  [119] Changdae Oh, Junhyuk So, Hoyoon Byun, YongTaek Lim, Minchul Shin, Jong-June Jeon, Kyungwoo Song, "Geodesic
        Multi-Modal Mixup for Robust Fine-Tuning", NeurIPS 2023, arXiv:2203.03897 (Sec. 4; official code
        changdaeoh/multimodal-mixup `sph_inter` and the `mmmix` loss).
  [54]  Jihai Zhang, Xiang Lan, Xiaoye Qu, Yu Cheng, Mengling Feng, Bryan Hooi, "Learning the Unlearned: Mitigating
        Feature Suppression in Contrastive Learning", ECCV 2024, arXiv:2402.11816 (multistage contrastive learning:
        negatives drawn only from the anchor's cluster of the previous stage).

Losses are per example ([B]); reduce outside. Embeddings are L2-normalised inside unless stated.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Tuple

import jax
import jax.numpy as jnp
import optax

from jaxlib_methods import validation
from jaxlib_methods._norms import l2_normalize
from jaxlib_methods.validation import check_same_shape_and_dtype, check_in_interval, check_positive, is_concrete_number


def _check_embeddings(name: str, z: jax.Array, ndim: int = 2) -> jax.Array:
  z = validation.check_floating(z, name)
  if z.ndim != ndim:
    raise ValueError(f"{name} must have rank {ndim}, got {name}.shape={z.shape}")
  return z


def _check_lam(lam: Any):
  """Mixing weights in [0, 1]: a number or an array (ValueError when concrete, a valid mask when traced)."""
  if jnp.ndim(lam) == 0 and is_concrete_number(lam):
    check_in_interval(lam, "lam", 0.0, 1.0)
    return None
  lam = validation.check_floating(lam, "lam")
  return validation.check_values(jnp.isfinite(lam) & (lam >= 0) & (lam <= 1), lam, "lam", "in [0, 1]")


_check_same = check_same_shape_and_dtype


def _normalize(z: jax.Array, eps: float = 1e-12) -> jax.Array:
  return l2_normalize(z, eps=eps)


# ----------------------------------------------------------------------------------------------------------------
# [183] iSogCLR
# ----------------------------------------------------------------------------------------------------------------

def robust_contrastive_loss(sim_pos: jax.Array, sim_neg: jax.Array, tau: jax.Array, rho: float) -> jax.Array:
  """iSogCLR's robust (KL-DRO) contrastive objective per anchor (Qiu et al. 2023, Eq. (6)).

    L_i = tau_i log( (1/M) sum_j exp((s_ij - s_i+) / tau_i) ) + tau_i rho

  With all tau_i equal this is tau * (decoupled InfoNCE) - tau log M + tau rho; equivalently
  log(1 + M exp(L_i / tau - rho)) is the standard NT-Xent loss with the positive in the denominator.

  Args:
    sim_pos: [B] similarities s_i+ to the positive (floating).
    sim_neg: [B, M] similarities to the M >= 1 negatives (floating).
    tau: [B] (or scalar) positive temperatures (invalid: ValueError eagerly, NaN rows under jit).
    rho: >= 0 KL-ball radius.

  Returns:
    [B] per-anchor objective (the exact batch value; `isogclr_loss` gives the stochastic estimator), in the
    dtype of sim_neg (float16/bfloat16 computed in float32).
  """
  sim_neg = _check_embeddings("sim_neg", sim_neg)
  sim_pos = validation.check_floating(sim_pos, "sim_pos")
  if sim_pos.shape != sim_neg.shape[:1]:
    raise ValueError(f"sim_pos must have shape [B]={sim_neg.shape[:1]}, got sim_pos.shape={sim_pos.shape}")
  if sim_neg.shape[1] < 1:
    raise ValueError(f"sim_neg needs at least one negative per anchor, got sim_neg.shape={sim_neg.shape}")
  valid = validation.check_positive_values(tau, "tau", sim_pos.shape)
  check_in_interval(rho, "rho", 0.0, float("inf"), closed_high=False)
  dtype = sim_neg.dtype
  ct = validation.compute_dtype_for(dtype)
  tau = jnp.broadcast_to(jnp.asarray(tau, ct), sim_pos.shape)
  m = sim_neg.shape[1]
  lse = jax.nn.logsumexp((sim_neg.astype(ct) - sim_pos.astype(ct)[:, None]) / tau[:, None], axis=1)
  out = tau * (lse - jnp.log(jnp.asarray(m, ct))) + tau * rho
  return validation.nan_where_invalid(out, valid).astype(dtype)


class IsogclrState(NamedTuple):
  """Per-example state of iSogCLR, indexed by dataset position (carry it between steps; shard it like data).

  Qiu et al., "Not All Semantics are Created Equal: Contrastive Self-supervised Learning with Automatic Temperature
  Individualization", ICML 2023, arXiv:2305.11965 (Eq. (6), algorithm iSogCLR).

  u: [N] moving average of (1/M) sum_j exp(s_ij / tau_i) (0 = never seen).
  tau: [N] individual temperatures.
  grad_tau: [N] momentum (moving average) of the temperature gradients.
  count: int32 step counter.
  """
  u: jax.Array
  tau: jax.Array
  grad_tau: jax.Array
  count: jax.Array


def _check_isogclr_tau(tau: Any, name: str, dtype: Any) -> None:
  """The state holds u = mean_j exp(s_ij / tau) with |s_ij| <= 1: exp(1 / tau) must be finite in `dtype` (float32:
  tau >= ~0.0114), or u overflows to inf and the loss and the stored temperatures become NaN for good."""
  if is_concrete_number(tau):
    bound = 1.0 / (math.log(float(jnp.finfo(dtype).max)) - 1.0)
    if float(tau) < bound:
      raise ValueError(f"{name}={float(tau):g} is too small for {jnp.dtype(dtype).name}: exp(1 / tau) overflows the "
                       f"state u (need {name} >= {bound:.4g}; use float64 embeddings and state for smaller "
                       f"temperatures)")


def isogclr_init(num_examples: int, tau_init: float = 0.1, dtype=jnp.float32) -> IsogclrState:
  """Initial iSogCLR state for a data set of `num_examples` (Qiu et al. 2023, arXiv:2305.11965; LibAUC default
  tau_init = 0.1): u = 0, tau = tau_init, grad_tau = 0, each [num_examples] in `dtype`. tau_init must keep
  exp(1 / tau_init) finite in `dtype` (float32: >= ~0.0114), else ValueError."""
  if int(num_examples) < 1:
    raise ValueError(f"num_examples must be >= 1, got {num_examples=}")
  check_positive(tau_init, "tau_init")
  _check_isogclr_tau(tau_init, "tau_init", dtype)
  n = int(num_examples)
  return IsogclrState(u=jnp.zeros((n,), dtype), tau=jnp.full((n,), tau_init, dtype), grad_tau=jnp.zeros((n,), dtype),
                      count=jnp.zeros((), jnp.int32))


def isogclr_loss(z1: jax.Array, z2: jax.Array, index: jax.Array, state: IsogclrState, *, gamma: float = 0.9,
                 rho: float = 0.3, eta: float = 0.01, beta: float = 0.9, tau_min: float = 0.05,
                 tau_max: float = 0.7, grad_clip: float | None = None) -> Tuple[jax.Array, IsogclrState]:
  """iSogCLR stochastic surrogate loss and state update (Qiu et al. 2023, Algorithm iSogCLR; LibAUC GCLoss_v1).

  For anchor i (view 1; view 2 symmetric) with negatives j over both views except i and its positive
  (M = 2(B - 1)), g_i = (1/M) sum_j exp(s_ij / tau_i) and the moving average
  u_i <- (1 - gamma) u_i + gamma g_i (gamma = 1 on an example's first visit). The returned per-example value

    loss_i = sum_j sg(exp(s_ij / tau_i) / u_i) s_ij / M - s_i+     (both views summed)

  has gradient w.r.t. the embeddings equal to the estimator of grad_w tau_i log E_j exp((s_ij - s_i+) / tau_i)
  (its value is not the objective: use `robust_contrastive_loss` to monitor). Temperatures take one step of
  momentum SGD on dL_i/dtau_i = log u_i + rho - sum_j sg(exp(s_ij/tau_i)/u_i) (s_ij/tau_i) / M, clipped to
  [tau_min, tau_max]. Defaults: LibAUC's unimodal values (gamma 0.9, rho 0.3, eta 0.01, beta 0.9, tau in
  [0.05, 0.7]); the official repo's SogCLR_DRO_Loss (zhqiu/contrastive-learning-iSogCLR, unimodal_exps/losses.py)
  clips the batch estimate of dL_i/dtau_i to [-3, 3] before the momentum (`grad_clip=3.0`), allows tau in
  [0.05, 1.0], and its unimodal README runs gamma 0.8, rho 0.4, beta 0.5, eta 0.03 (tau_init 0.1).

  Args:
    z1, z2: [B, d] floating embeddings of two views (normalised inside), B >= 2.
    index: [B] int dataset indices of the batch: distinct and in [0, N) for a state of N examples (otherwise a
      ValueError eagerly; under jit the offending rows' losses are NaN, in value and gradient, and their state
      entries are not to be trusted).
    state: `IsogclrState` from `isogclr_init`.
    gamma: moving-average weight of the new estimate, in (0, 1].
    beta: momentum weight of the new temperature gradient, in (0, 1].
    rho: KL radius, >= 0.
    eta: temperature step size, >= 0.
    tau_min: lower clip of the temperatures, > 0, with exp(1 / tau_min) finite in the narrower of the compute and
      state dtypes (float32: tau_min >= ~0.0114; smaller is a ValueError: u would overflow to inf and the loss and
      the stored temperatures turn NaN; use float64 embeddings and state for smaller temperatures).
    tau_max: upper clip of the temperatures, >= tau_min.
    grad_clip: None (LibAUC) or a positive bound c: the batch estimate of dL_i/dtau_i is clipped to [-c, c]
      before the momentum (the authors' repository uses 3.0).

  Returns:
    (loss [B], new_state). Reduce with mean to match LibAUC's scalar.
  """
  z1 = _check_embeddings("z1", z1)
  z2 = _check_embeddings("z2", z2)
  _check_same("z1", z1, "z2", z2)
  index = validation.check_integer(index, "index")
  if index.shape != z1.shape[:1]:
    raise ValueError(f"index must have shape [B]={z1.shape[:1]}, got index.shape={index.shape}")
  if z1.shape[0] < 2:
    raise ValueError(f"need a batch of at least 2 pairs for negatives, got z1.shape={z1.shape}")
  if not isinstance(state, IsogclrState) or jnp.ndim(state.u) != 1:
    raise TypeError(f"state must be an IsogclrState from isogclr_init, got {type(state).__name__}")
  n_data = state.u.shape[0]
  # Out-of-range indices would be clamped in the reads and dropped in the writes, duplicates would race in the
  # writes: either way the state silently misses an update. Concrete: ValueError; traced: NaN loss rows.
  order = jnp.argsort(index)
  same_next = index[order][1:] == index[order][:-1]
  no = jnp.zeros((1,), bool)
  dup = jnp.zeros(index.shape, bool).at[order].set(jnp.concatenate([same_next, no]) | jnp.concatenate([no, same_next]))
  valid = validation.check_values((index >= 0) & (index < n_data) & ~dup, index, "index",
                                  f"distinct dataset indices in [0, {n_data}) (the size of the state)")
  check_in_interval(gamma, "gamma", 0.0, 1.0, closed_low=False)
  check_in_interval(beta, "beta", 0.0, 1.0, closed_low=False)
  check_in_interval(rho, "rho", 0.0, float("inf"), closed_high=False)
  check_in_interval(eta, "eta", 0.0, float("inf"), closed_high=False)
  check_positive(tau_min, "tau_min")
  check_positive(tau_max, "tau_max")
  if is_concrete_number(tau_min) and is_concrete_number(tau_max) and float(tau_min) > float(tau_max):
    raise ValueError(f"tau_min must be <= tau_max, got {tau_min=}, {tau_max=}")
  if grad_clip is not None:
    check_positive(grad_clip, "grad_clip")
  _check_isogclr_tau(tau_min, "tau_min", min((validation.compute_dtype_for(z1.dtype), state.u.dtype),
                                             key=lambda d: jnp.finfo(d).bits))

  b = z1.shape[0]
  m = 2 * (b - 1)
  out_dtype = z1.dtype
  ct = validation.compute_dtype_for(z1.dtype)
  h1, h2 = _normalize(z1.astype(ct)), _normalize(z2.astype(ct))
  eye = jnp.eye(b, dtype=bool)
  # Row i of view-1 anchors: [s(h1_i, h2_j) for j] ++ [s(h1_i, h1_j) for j]; positive at j = i of the first block.
  logits1 = jnp.concatenate([h1 @ h2.T, h1 @ h1.T], axis=1)
  logits2 = jnp.concatenate([h2 @ h1.T, h2 @ h2.T], axis=1)
  neg_mask = ~jnp.concatenate([eye, eye], axis=1)
  pos1 = jnp.diagonal(logits1[:, :b])
  pos2 = jnp.diagonal(logits2[:, :b])

  tau = state.tau[index].astype(logits1.dtype)
  u_old = state.u[index].astype(logits1.dtype)
  first = u_old == 0
  g_eff = jnp.where(first, 1.0, gamma).astype(logits1.dtype)

  def branch(logits):
    sl = jax.lax.stop_gradient(logits)
    e = jnp.where(neg_mask, jnp.exp(sl / tau[:, None]), 0.0)
    u_new = (1 - g_eff) * u_old + g_eff * jnp.sum(e, axis=1) / m
    w = e / u_new[:, None]
    weighted = jnp.sum(jnp.where(neg_mask, w * logits, 0.0), axis=1) / m
    grad_tau = jnp.log(u_new) + rho - jnp.sum(jnp.where(neg_mask, w * sl / tau[:, None], 0.0), axis=1) / m
    return weighted, u_new, grad_tau

  wsum1, u1, gt1 = branch(logits1)
  wsum2, u2, gt2 = branch(logits2)
  loss = validation.nan_where_invalid((wsum1 - pos1) + (wsum2 - pos2), valid).astype(out_dtype)

  grad_tau_batch = (gt1 + gt2) / 2
  if grad_clip is not None:
    grad_tau_batch = jnp.clip(grad_tau_batch, -grad_clip, grad_clip)
  grad_tau_new = (1 - beta) * state.grad_tau[index] + beta * grad_tau_batch.astype(state.grad_tau.dtype)
  tau_new = jnp.clip(state.tau[index] - eta * grad_tau_new, tau_min, tau_max)
  new_state = IsogclrState(
      u=state.u.at[index].set(jax.lax.stop_gradient((u1 + u2) / 2).astype(state.u.dtype)),
      tau=state.tau.at[index].set(jax.lax.stop_gradient(tau_new).astype(state.tau.dtype)),
      grad_tau=state.grad_tau.at[index].set(jax.lax.stop_gradient(grad_tau_new)),
      count=state.count + 1)
  return loss, new_state


# ----------------------------------------------------------------------------------------------------------------
# [83] MoCHi
# ----------------------------------------------------------------------------------------------------------------

def mochi_negatives(key: jax.Array, q: jax.Array, queue: jax.Array, *, num_hard: int = 1024, num_mix: int = 1024,
                    num_query_mix: int = 256, beta_max: float = 0.5) -> jax.Array:
  """MoCHi synthetic hard negatives per query (Kalantidis et al. 2020, Sec. 4.1 "mixing the hardest negatives" and
  Sec. 4.2 "mixing for even harder negatives").

  With Q~_N the `num_hard` queue entries most similar to q:
    h_k  = normalise(alpha_k n_i + (1 - alpha_k) n_j),  n_i, n_j ~ U(Q~_N), alpha_k ~ U(0, 1),  k = 1..s
    h'_k = normalise(beta_k q + (1 - beta_k) n_j),       n_j ~ U(Q~_N),      beta_k ~ U(0, beta_max), k = 1..s'
  The synthetic points are returned under stop_gradient (they are extra memory-bank entries; no gradient flows
  through them into the query). The defaults (N, s, s') = (1024, 1024, 256) are a convenience, not a setting we could
  confirm in the paper's tables (it ablates several (N, s, s') triples in Tables 1-2): set them for your queue size.

  Args:
    key: PRNG key. q: [B, d] queries (normalised inside). queue: [K, d] negatives (normalised inside).
    num_hard: N <= K. num_mix: s >= 0. num_query_mix: s' >= 0. beta_max in (0, 0.5] (beta < 0.5 keeps the query's
      contribution below the negative's).

  Returns:
    [B, s + s', d] unit-norm synthetic negatives in q's dtype (computed in float32 or wider); NaN rows for a
    non-finite query, all NaN for a non-finite queue entry.
  """
  q = _check_embeddings("q", q)
  queue = _check_embeddings("queue", queue)
  if q.shape[1] != queue.shape[1] or q.dtype != queue.dtype:
    raise ValueError(f"q and queue must share feature dim and dtype, got {q.shape=}, {queue.shape=}")
  for name, v in (("num_hard", num_hard), ("num_mix", num_mix), ("num_query_mix", num_query_mix)):
    if not isinstance(v, int) or v < 0:
      raise ValueError(f"{name} must be a Python int >= 0, got {name}={v!r}")
  if not 1 <= num_hard <= queue.shape[0]:
    raise ValueError(f"num_hard must lie in [1, K={queue.shape[0]}], got {num_hard=}")
  check_in_interval(beta_max, "beta_max", 0.0, 0.5, closed_low=False)
  out_dtype = q.dtype
  ct = validation.compute_dtype_for(q.dtype)
  qn, kn = _normalize(q.astype(ct)), _normalize(queue.astype(ct))
  b = q.shape[0]
  _, hard_idx = jax.lax.top_k(qn @ kn.T, num_hard)  # [B, N]
  hard = kn[hard_idx]  # [B, N, d]
  k1, k2, k3, k4, k5 = jax.random.split(key, 5)
  out = []
  if num_mix:
    i = jax.random.randint(k1, (b, num_mix), 0, num_hard)
    j = jax.random.randint(k2, (b, num_mix), 0, num_hard)
    alpha = jax.random.uniform(k3, (b, num_mix, 1), dtype=ct)
    ni = jnp.take_along_axis(hard, i[..., None], axis=1)
    nj = jnp.take_along_axis(hard, j[..., None], axis=1)
    out.append(_normalize(alpha * ni + (1 - alpha) * nj))
  if num_query_mix:
    j = jax.random.randint(k4, (b, num_query_mix), 0, num_hard)
    bet = jax.random.uniform(k5, (b, num_query_mix, 1), dtype=ct, maxval=beta_max)
    nj = jnp.take_along_axis(hard, j[..., None], axis=1)
    out.append(_normalize(bet * qn[:, None, :] + (1 - bet) * nj))
  if not out:
    return jnp.zeros((b, 0, q.shape[1]), q.dtype)
  # A NaN query or queue entry would otherwise just reorder top_k and leave finite (meaningless) negatives.
  ok = jnp.all(jnp.isfinite(q), axis=-1) & jnp.all(jnp.isfinite(queue))
  out = validation.nan_where_invalid(jnp.concatenate(out, axis=1), ok)
  return jax.lax.stop_gradient(out.astype(out_dtype))


def mochi_infonce(q: jax.Array, k: jax.Array, queue: jax.Array, synthetic: jax.Array | None = None,
                  temperature: float = 0.2) -> jax.Array:
  """MoCo InfoNCE with MoCHi's synthetic negatives appended to the memory bank (Kalantidis et al. 2020, Sec. 3).

    L_q = -log exp(q.k / tau) / ( exp(q.k / tau) + sum_{n in queue} exp(q.n / tau) + sum_{h in synthetic_q} exp(q.h /
          tau) )

  Args:
    q: [B, d] queries; k: [B, d] positive keys; queue: [K, d]; synthetic: [B, S, d] or None (plain MoCo).
      All normalised inside.
    temperature: tau > 0 (MoCo v2 uses 0.2).

  Returns:
    [B] per-query losses (computed with optax's softmax cross-entropy on the logits), q's dtype (float16/bfloat16
    computed in float32).
  """
  q = _check_embeddings("q", q)
  k = _check_embeddings("k", k)
  _check_same("q", q, "k", k)
  queue = _check_embeddings("queue", queue)
  if queue.shape[1] != q.shape[1]:
    raise ValueError(f"queue feature dim must match q, got {queue.shape=}, {q.shape=}")
  check_positive(temperature, "temperature")
  ct = validation.compute_dtype_for(q.dtype)  # half precision: logits / tau overflow float16 at small tau
  qn, kn, nn = _normalize(q.astype(ct)), _normalize(k.astype(ct)), _normalize(queue.astype(ct))
  logits = [jnp.sum(qn * kn, axis=-1, keepdims=True), qn @ nn.T]
  if synthetic is not None:
    synthetic = _check_embeddings("synthetic", synthetic, ndim=3)
    if synthetic.shape[0] != q.shape[0] or synthetic.shape[2] != q.shape[1]:
      raise ValueError(f"synthetic must be [B, S, d] matching q, got {synthetic.shape=}, {q.shape=}")
    logits.append(jnp.einsum("bd,bsd->bs", qn, _normalize(synthetic.astype(ct))))
  logits = jnp.concatenate(logits, axis=1) / temperature
  loss = optax.losses.softmax_cross_entropy_with_integer_labels(logits, jnp.zeros((q.shape[0],), jnp.int32))
  return loss.astype(q.dtype)


# ----------------------------------------------------------------------------------------------------------------
# [119] m^2-Mix
# ----------------------------------------------------------------------------------------------------------------

def geodesic_mixup(a: jax.Array, b: jax.Array, lam: jax.Array | float) -> jax.Array:
  """Geodesic (spherical) mixup m_lam(a, b) = a sin(lam theta)/sin theta + b sin((1 - lam) theta)/sin theta,
  theta = arccos(a . b) (Oh et al. 2023, Sec. 4, Eq. of m_lambda; official `sph_inter(a, b, lam)`).

  Endpoints: lam = 1 gives a, lam = 0 gives b; unit norm for unit inputs. Near theta = 0 the ratios are replaced by
  their limits lam and 1 - lam (the official code divides by sin(theta) = 0 there and returns NaN). Antipodal
  inputs (theta = pi) have no unique geodesic and are not handled, as in the official code.

  Args:
    a, b: [..., d] floating unit vectors (same shape). lam: scalar or broadcastable to [...], in [0, 1] (outside:
      ValueError eagerly, NaN under jit).

  Returns:
    [..., d] mixed unit vectors, the inputs' dtype (float16/bfloat16 computed in float32).
  """
  a = validation.check_floating(a, "a")
  b = validation.check_floating(b, "b")
  if a.shape != b.shape:
    raise ValueError(f"a and b must have the same shape, got a.shape={a.shape}, b.shape={b.shape}")
  if a.ndim < 1:
    raise ValueError(f"a must have a feature axis (rank >= 1), got a.shape={a.shape}")
  valid = _check_lam(lam)
  out_dtype = jnp.result_type(a.dtype, b.dtype)
  ct = validation.compute_dtype_for(out_dtype)  # in half precision 1 - 1e-6 rounds to 1: sin(0) / sin(0) = NaN
  a, b = a.astype(ct), b.astype(ct)
  lam = jnp.asarray(lam, ct)
  lam = lam[..., None] if lam.ndim > 0 else lam
  cos = jnp.clip(jnp.sum(a * b, axis=-1, keepdims=True), -1.0, 1.0)
  # Below theta ~ 1.4e-3 use the limits (error O(theta^2)); the double `where` keeps arccos'(1) = inf out of the
  # gradient.
  small = cos > 1.0 - 1e-6
  safe_theta = jnp.arccos(jnp.where(small, 0.0, cos))
  sin_t = jnp.sin(safe_theta)
  wa = jnp.where(small, lam, jnp.sin(lam * safe_theta) / sin_t)
  wb = jnp.where(small, 1 - lam, jnp.sin((1 - lam) * safe_theta) / sin_t)
  return validation.nan_where_invalid(wa * a + wb * b, valid).astype(out_dtype)


def m2mix_loss(image: jax.Array, text: jax.Array, lam: jax.Array | float, temperature: float = 0.01) -> jax.Array:
  """m^2-Mix contrastive term with mixed image-text hard negatives (Oh et al. 2023, Sec. 4; official `mmmix` loss).

  With n_j = m_lam(I_j, T_j), the image and text anchors keep their positive pair on the diagonal and see the mixed
  embeddings of the other pairs as negatives:

    logits^I_ij = I_i . T_i if i = j else I_i . n_j,   logits^T_ij = T_i . I_i if i = j else T_i . n_j
    L_i = CE(logits^I_i / tau, i) + CE(logits^T_i / tau, i)

  The paper samples lam ~ Beta(b, b) per step (official script b = 0.5) and adds this term with a small weight
  (0.001-0.05) to the CLIP loss.

  Args:
    image, text: [B, d] embeddings (normalised inside). lam: scalar in [0, 1]. temperature: > 0 (official tau 0.01).

  Returns:
    [B] per-pair losses, image's dtype (float16/bfloat16 computed in float32).
  """
  image = _check_embeddings("image", image)
  text = _check_embeddings("text", text)
  _check_same("image", image, "text", text)
  check_positive(temperature, "temperature")
  ct = validation.compute_dtype_for(image.dtype)
  i_n, t_n = _normalize(image.astype(ct)), _normalize(text.astype(ct))
  neg = geodesic_mixup(i_n, t_n, lam)
  eye = jnp.eye(image.shape[0], dtype=bool)
  pos = jnp.sum(i_n * t_n, axis=-1)
  li = jnp.where(eye, pos[:, None], i_n @ neg.T) / temperature
  lt = jnp.where(eye, pos[:, None], t_n @ neg.T) / temperature
  labels = jnp.arange(image.shape[0])
  ce = optax.losses.softmax_cross_entropy_with_integer_labels
  return (ce(li, labels) + ce(lt, labels)).astype(image.dtype)


def alignment_loss(x: jax.Array, y: jax.Array, alpha: float = 2.0) -> jax.Array:
  """Alignment ||x_i - y_i||^alpha per pair (Wang & Isola, "Understanding Contrastive Representation Learning through
  Alignment and Uniformity on the Hypersphere", ICML 2020, arXiv:2005.10242, Sec. 4.1.2; the metric m^2-Mix
  reports). x, y: [B, d] floating -> [B]."""
  x = _check_embeddings("x", x)
  y = _check_embeddings("y", y)
  _check_same("x", x, "y", y)
  check_positive(alpha, "alpha")
  sq = jnp.sum(jnp.square(x - y), axis=-1)
  # 0 ** (alpha / 2) has an infinite derivative for alpha < 2 (NaN gradient at x_i = y_i): give 0 there (a
  # subgradient, what torch's (x - y).norm().pow(alpha) gives for alpha >= 1).
  # `!= 0`, not `> 0`: a NaN distance takes the power branch and stays NaN (docs/conventions.md, rule 3).
  pos = sq != 0
  return jnp.where(pos, jnp.where(pos, sq, 1.0) ** (alpha / 2), 0.0).astype(sq.dtype)


def uniformity_loss(z: jax.Array, t: float = 2.0) -> jax.Array:
  """Uniformity L_uniform = log mean_{i != j} exp(-t ||z_i - z_j||^2) (Wang & Isola, "Understanding Contrastive
  Representation Learning through Alignment and Uniformity on the Hypersphere", ICML 2020, arXiv:2005.10242,
  Sec. 4.1.2, t = 2). Lower is more uniform. The one implementation in the library: `jaxlib_methods.analysis` re-exports
  it (and `analysis.uniformity` is its negative, Wang & Liu 2021's metric).

  The mean over ordered pairs i != j equals the mean over i < j (the kernel is symmetric). Squared distances come
  from the Gram matrix, ||z_i||^2 + ||z_j||^2 - 2 z_i.z_j clamped at 0, so memory is O(N^2), not O(N^2 d).

  Args:
    z: [N, d] floating embeddings, N >= 2 (L2-normalise them first, as the paper does).
    t: the kernel scale t > 0 (the paper's t = 2).

  Returns:
    Scalar, float32 or wider (float16/bfloat16 computed in float32); NaN if an embedding holds NaN.

  Example:
    >>> import jax.numpy as jnp
    >>> float(uniformity_loss(jnp.array([[1.0, 0.0], [-1.0, 0.0]])))  # antipodal pair: -2 * 4
    -8.0
  """
  z = _check_embeddings("z", z)
  validation.check_min_size(z, "z", 2, what="points")
  check_positive(t, "t")
  z = z.astype(validation.compute_dtype_for(z.dtype))
  sq = jnp.sum(z * z, axis=-1)
  d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0.0)
  d2 = jnp.where(jnp.isnan(sq[:, None] + sq[None, :]), jnp.nan, d2)  # jnp.maximum(NaN, 0) is NaN; keep it explicit
  n = z.shape[0]
  off = ~jnp.eye(n, dtype=bool)
  return jax.nn.logsumexp(jnp.where(off, -t * d2, -jnp.inf)) - jnp.log(jnp.asarray(n * (n - 1.0), z.dtype))


# ----------------------------------------------------------------------------------------------------------------
# [54] MCL
# ----------------------------------------------------------------------------------------------------------------

def mcl_info_nce(z1: jax.Array, z2: jax.Array, cluster_ids: jax.Array, temperature: float = 0.5) -> jax.Array:
  """MCL's stage-t InfoNCE: NT-Xent whose negatives are restricted to the anchor's cluster from stage t-1
  (Zhang et al. 2024, Sec. 3, multistage contrastive learning).

  Over the 2B views v = [z1; z2] (cosine similarity), anchor a with positive p(a):

    L_a = -log exp(s_{a,p(a)} / tau) / sum_{c != a, cluster(c) = cluster(a)} exp(s_{a,c} / tau)

  The per-pair loss is the mean of its two views' losses. With a single cluster this is SimCLR's NT-Xent
  (`optax.losses.ntxent` averages exactly these 2B terms).

  Args:
    z1, z2: [B, d] two views. cluster_ids: [B] int cluster assignment of each pair from the previous stage.
    temperature: tau > 0.

  Returns:
    [B] per-pair losses, z1's dtype (float16/bfloat16 computed in float32).
  """
  z1 = _check_embeddings("z1", z1)
  z2 = _check_embeddings("z2", z2)
  _check_same("z1", z1, "z2", z2)
  cluster_ids = validation.check_integer(cluster_ids, "cluster_ids")
  if cluster_ids.shape != z1.shape[:1]:
    raise ValueError(f"cluster_ids must have shape [B]={z1.shape[:1]}, got cluster_ids.shape={cluster_ids.shape}")
  check_positive(temperature, "temperature")
  b = z1.shape[0]
  ct = validation.compute_dtype_for(z1.dtype)  # half precision: logits / tau overflow float16 at small tau
  v = _normalize(jnp.concatenate([z1, z2], axis=0).astype(ct))
  cid = jnp.concatenate([cluster_ids, cluster_ids])
  logits = (v @ v.T) / temperature
  allowed = (cid[:, None] == cid[None, :]) & ~jnp.eye(2 * b, dtype=bool)
  logits = jnp.where(allowed, logits, -jnp.inf)
  pos_idx = jnp.concatenate([jnp.arange(b) + b, jnp.arange(b)])
  per_view = -(jnp.take_along_axis(logits, pos_idx[:, None], axis=1)[:, 0] - jax.nn.logsumexp(logits, axis=1))
  return ((per_view[:b] + per_view[b:]) / 2).astype(z1.dtype)


# ----------------------------------------------------------------------------------------------------------------
# [11] CVIB self-pruning contrastive loss (ls19d, issue 19)
# ----------------------------------------------------------------------------------------------------------------

def self_pruning_contrastive_loss(anchor: jax.Array, positive: jax.Array, *, temperature: float = 0.1) -> jax.Array:
  """CVIB's self-pruning contrastive loss, an InfoNCE across two networks (Chang et al., "Contrastive Variational
  Information Bottleneck for Aspect-Based Sentiment Analysis" / "Reducing Spurious Correlations for Aspect-Based
  Sentiment Analysis with Variational Information Bottleneck and Contrastive Learning", 2023, arXiv:2303.02846,
  Sec. 3.3; official `SdConLoss`).

    l_i = -log exp(cos(a_i, p_i) / tau) / sum_j exp(cos(a_i, p_j) / tau)

  The anchor a_i is one network's representation of input i, its positive p_i the other network's representation
  of the same input, and the other inputs' p_j are the negatives. The official training uses it both ways with the
  other network's features detached: the original network with (a, p) = (pruned.detach(), original) and the
  self-pruned network with (pruned, original.detach()).

  Args:
    anchor: [B, d] representations from one network.
    positive: [B, d] representations of the same B inputs from the other network.
    temperature: tau > 0 (official `sd_temp`: 0.1).

  Returns:
    [B] per-anchor losses (anchor's dtype; half precision computed in float32).
  """
  anchor = _check_embeddings("anchor", anchor)
  positive = _check_embeddings("positive", positive)
  _check_same("anchor", anchor, "positive", positive)
  check_positive(temperature, "temperature")
  ct = validation.compute_dtype_for(anchor.dtype)
  logits = _normalize(anchor.astype(ct)) @ _normalize(positive.astype(ct)).T / temperature
  loss = optax.losses.softmax_cross_entropy_with_integer_labels(logits, jnp.arange(anchor.shape[0]))
  return loss.astype(anchor.dtype)


# ----------------------------------------------------------------------------------------------------------------
# [184] AMCL (ls19b, issue 19)
# ----------------------------------------------------------------------------------------------------------------

def amcl_temperature_regularizer(tau: jax.Array, dim: int) -> jax.Array:
  """AMCL's temperature regulariser Omega(tau) = (d / 2) log tau + 1 / tau (Wang et al., "Adaptive Multi-head
  Contrastive Learning", ECCV 2024, arXiv:2310.05615, the regularisation term of Eq. (2); authors' code
  LeiWangR/cl `AdaptiveTemperature`: `(d / 2) * log(temp) + 1 / temp`).

  With the positive term -s / tau it forms the negative log-likelihood of an isotropic Gaussian of variance tau
  between two unit vectors of cosine similarity s, (1 - s) / tau + (d / 2) log tau (up to constants), whose
  minimiser is tau* = 2 (1 - s) / d: a pair that the augmentations make less similar gets a larger temperature.

  Args:
    tau: temperatures (any shape), > 0.
    dim: d, the dimension of the projected features (a positive int).

  Returns:
    Omega(tau), of tau's shape (float32 for half-precision input).
  """
  if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
    raise ValueError(f"dim must be a positive int (the feature dimension d), got {dim=}")
  tau = validation.check_floating(tau, "tau")
  valid = validation.check_values(jnp.isfinite(tau) & (tau > 0), tau, "tau", "finite and > 0")
  t = tau.astype(validation.compute_dtype_for(tau.dtype))
  return validation.nan_where_invalid(0.5 * dim * jnp.log(t) + 1.0 / t, valid)


def amcl_loss(z1: jax.Array, z2: jax.Array, tau: Any, *, beta: float = 0.1) -> jax.Array:
  """AMCL with the SimCLR (NT-Xent) base: one InfoNCE per projection head, each pair scaled by its own temperature,
  summed over heads, plus the temperature regulariser on the positive pairs (Wang et al., "Adaptive Multi-head
  Contrastive Learning", ECCV 2024, arXiv:2310.05615, Eq. (2) with the SimCLR entry of Table 2; regulariser as in
  the authors' code LeiWangR/cl).

  For head c over the 2B views v = [z1[:, c]; z2[:, c]] (L2-normalised, cosine similarities s_ij), anchor i with
  positive p(i) and pair temperatures tau_cij:

    l_ci = -s_ip / tau_cip + log sum_{k != i} exp(s_ik / tau_cik)
    L_b  = sum_c [ (l_cb + l_c(b+B)) / 2 + beta * (Omega(tau_cb(b+B)) + Omega(tau_c(b+B)b)) / 2 ]

  with Omega = `amcl_temperature_regularizer` (d = the head's feature dimension). With one head, a fixed temperature
  and beta = 0 this is SimCLR's NT-Xent (`optax.losses.ntxent` is its batch mean; tested). The paper's
  temperatures are pair-adaptive, tau = eta + iota / (1 + exp(r)) with r from a shared MLP (Eq. (3)); pass them
  here as a [C, 2B, 2B] array, or one temperature per head ([C]) or a scalar. The paper's top-k approximation of
  the negatives (for large queues) is not implemented: every negative is used.

  Args:
    z1: [B, C, d] first view's features from each of the C projection heads.
    z2: [B, C, d] second view's features (same shape and dtype).
    tau: temperatures > 0: a scalar, [C] (one per head) or [C, 2B, 2B] (one per head and view pair, rows = anchors
      in the order [z1; z2]).
    beta: the regulariser's weight, >= 0 (authors' code default 0.1).

  Returns:
    [B] per-pair losses (z1's dtype; half precision computed in float32).
  """
  z1 = _check_embeddings("z1", z1, ndim=3)
  z2 = _check_embeddings("z2", z2, ndim=3)
  _check_same("z1", z1, "z2", z2)
  validation.check_nonnegative(beta, "beta")
  b, c, d = z1.shape
  if d < 1:
    raise ValueError(f"z1 needs d >= 1 features, got z1.shape={z1.shape}")
  if not isinstance(tau, (int, float)):
    tau = validation.check_floating(tau, "tau")
  if jnp.ndim(tau) == 0:
    tau_full = jnp.broadcast_to(jnp.asarray(tau), (c, 1, 1))
  elif jnp.shape(tau) == (c,):
    tau_full = jnp.asarray(tau)[:, None, None]
  elif jnp.shape(tau) == (c, 2 * b, 2 * b):
    tau_full = jnp.asarray(tau)
  else:
    raise ValueError(f"tau must be a scalar, [C]=({c},) or [C, 2B, 2B]=({c}, {2 * b}, {2 * b}), got shape "
                     f"{jnp.shape(tau)}")
  valid_tau = validation.check_values(jnp.isfinite(tau_full) & (tau_full > 0), tau, "tau", "finite and > 0")
  ct = validation.compute_dtype_for(z1.dtype)
  v = _normalize(jnp.concatenate([z1, z2], axis=0).astype(ct))           # [2B, C, d]
  t = jnp.broadcast_to(jnp.where(tau_full > 0, tau_full, 1.0).astype(ct), (c, 2 * b, 2 * b))
  s = jnp.einsum("icd,jcd->cij", v, v)                                    # [C, 2B, 2B]
  logits = jnp.where(jnp.eye(2 * b, dtype=bool), -jnp.inf, s / t)
  pos = jnp.concatenate([jnp.arange(b) + b, jnp.arange(b)])
  pos_logit = jnp.take_along_axis(logits, pos[None, :, None], axis=2)[..., 0]   # [C, 2B]
  per_view = jax.nn.logsumexp(logits, axis=2) - pos_logit
  tau_pos = jnp.take_along_axis(t, pos[None, :, None], axis=2)[..., 0]
  omega = 0.5 * d * jnp.log(tau_pos) + 1.0 / tau_pos
  per_view = per_view + beta * omega
  loss = jnp.sum((per_view[:, :b] + per_view[:, b:]) / 2, axis=0)
  if valid_tau is not None:
    ok = jnp.all(jnp.broadcast_to(valid_tau, (c, 2 * b, 2 * b)), axis=(0, 2))
    loss = validation.nan_where_invalid(loss, ok[:b] & ok[b:] & jnp.all(ok))
  return loss.astype(z1.dtype)


# ----------------------------------------------------------------------------------------------------------------
# [116] Hydra (ls19b, issue 19)
# ----------------------------------------------------------------------------------------------------------------

def hydra_loss(z: jax.Array, labels: jax.Array, pair_labels: jax.Array, gate: jax.Array, *,
               temperature: float = 0.1) -> jax.Array:
  """Hydra's gated contrastive loss for arbitrary class pairs (Wu et al., "Rethinking Positive Pairs in Contrastive
  Learning", 2024, arXiv:2410.18200, Sec. 3, the feature filter and its loss; official code SimLAP
  `disparate_loss` + `multipos_ce_loss` in the vitookit repository).

  Anchor i of class y_i is paired with class y'_i = `pair_labels[i]`; g_i in [0, 1]^d is the pair's gate
  (`nn.PairGate`). Every candidate n is filtered by the anchor's gate and L2-normalised, f_in = (z_n * g_i) /
  ||z_n * g_i||, and l_in = cos(f_ii, f_in) / temperature. Positives P_i = {n : y_n = y'_i} (every sample of the
  paired class), negatives N_i = {n : y_n not in {y_i, y'_i}}; per positive p the multi-positive InfoNCE term is
  log(exp l_ip + sum_{n in N_i} exp l_in) - l_ip. This returns, per anchor, the mean over its positives (0 when the
  batch holds no sample of class y'_i); the official batch loss, the mean over all (anchor, positive) pairs, is
  `(loss * n_pos).sum() / n_pos.sum()` with n_pos_i = |P_i| (tested). The official loss has no gate-sparsity term.
  With gates of ones and y'_i = y_i it is a supervised-contrastive loss on the unfiltered features.

  Args:
    z: [B, d] projected features (the official code contrasts the batch with itself).
    labels: [B] int class of each sample.
    pair_labels: [B] int class paired with each anchor's class (any integers; only equality matters).
    gate: [B, d] the anchor pairs' gates, in [0, 1] (out of range: ValueError eagerly, NaN rows under jit).
    temperature: tau > 0 (official: 0.1, logits scaled by 1 / tau).

  Returns:
    [B] per-anchor losses (z's dtype; half precision computed in float32).
  """
  z = _check_embeddings("z", z)
  gate = _check_embeddings("gate", gate)
  if gate.shape != z.shape:
    raise ValueError(f"gate must have z's shape {z.shape} (one gate vector per anchor), got gate.shape={gate.shape}")
  labels = validation.check_integer(labels, "labels")
  pair_labels = validation.check_integer(pair_labels, "pair_labels")
  for name, x in (("labels", labels), ("pair_labels", pair_labels)):
    if x.shape != z.shape[:1]:
      raise ValueError(f"{name} must have shape [B]={z.shape[:1]}, got {name}.shape={x.shape}")
  check_positive(temperature, "temperature")
  valid = validation.check_values(jnp.all((gate >= 0) & (gate <= 1), axis=-1), gate, "gate",
                                  "in [0, 1] (a sigmoid gate)")
  ct = validation.compute_dtype_for(z.dtype)
  zc, g = z.astype(ct), gate.astype(ct)
  f_anchor = _normalize(zc * g)                                   # [B, d]
  f_all = _normalize(zc[None, :, :] * g[:, None, :])              # [B (anchor), B (candidate), d]
  logits = jnp.einsum("id,ind->in", f_anchor, f_all) / temperature
  pos = pair_labels[:, None] == labels[None, :]
  neg = ~((labels[:, None] == labels[None, :]) | pos)
  neg_lse = jax.nn.logsumexp(jnp.where(neg, logits, -jnp.inf), axis=1, keepdims=True)   # -inf when no negative
  terms = jnp.logaddexp(logits, neg_lse) - logits                 # [B, B], used where pos
  n_pos = pos.sum(axis=1)
  loss = jnp.sum(jnp.where(pos, terms, 0.0), axis=1) / jnp.maximum(n_pos, 1)
  return validation.nan_where_invalid(loss, valid).astype(z.dtype)
