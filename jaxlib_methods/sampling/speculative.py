"""Speculative sampling (standard verification) and LANTERN's relaxed acceptance with latent neighbourhoods.

Standard speculative sampling (Leviathan, Kalman, Matias, "Fast Inference from Transformers via Speculative
Decoding", ICML 2023, arXiv:2211.17192, Algorithm 1; Chen et al. 2023, arXiv:2302.01318, Algorithm 2): a draft
token x ~ q is accepted with probability min(1, p(x)/q(x)); on rejection the token is resampled from
norm(max(p - q, 0)). The output is distributed exactly as the target p. Used as the verifier of
[131] Wu et al., "EasySpec: Layer-Parallel Speculative Decoding for Efficient Multi-GPU Utilization", 2025,
arXiv:2502.02493 (its drafts come from a layer-parallel approximation of the draft model; verification is this one).

[86] Jang et al., "LANTERN: Accelerating Visual Autoregressive Models with Relaxed Speculative Decoding", ICLR 2025,
arXiv:2410.03355, the relaxed acceptance of its method section: the target probability of the draft token x is
replaced by the aggregated probability p(A_{k,delta}(x)) of a latent neighbourhood: B_k(x) are the k tokens nearest to
x in the tokenizer's latent (codebook) space, x itself first; A_{k,delta}(x) is the longest prefix of B_k(x) whose
neighbours' total target mass (the mass moved onto x, i.e. TV(p, p_tilde) of the relaxed target p_tilde) is <= delta.
With k = 1 or delta = 0 it is standard speculative sampling; otherwise the draft token is verified against p_tilde_x,
the relaxed target with A's mass moved onto x (TV(p, p_tilde_x) <= delta). That bound holds per draft token only: the
law of the sampler's output tokens is not within delta of p (once every draft is accepted it is the draft law q; the
experiment lantern_speculative measures TV 0.13 at k = 8, delta = 0.05).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


def _check_probs(p, name):
  p = validation.check_floating(p, name)
  if p.ndim < 1 or p.shape[-1] < 1:
    raise ValueError(f"{name} must be [..., V] probabilities, got {name}.shape={p.shape}")
  if not validation.is_traced(p):
    a = np.asarray(p, np.float64)
    tol = max(1e-3, 2 * float(jnp.finfo(p.dtype).eps))     # a bfloat16 softmax sums to 1 only within ~0.005
    if a.size and (np.any(~np.isfinite(a)) or np.any(a < 0) or np.any(np.abs(a.sum(-1) - 1) > tol)):
      raise ValueError(f"{name} must hold finite non-negative probabilities summing to 1 over the last axis")
  return p


def _check_token(token, shape, v, name="token"):
  token = validation.check_integer(token, name)
  if token.shape != shape:
    raise ValueError(f"{name} must have shape {shape} (the probabilities' batch shape), got {token.shape}")
  if not validation.is_traced(token) and token.size and (int(token.min()) < 0 or int(token.max()) >= v):
    raise ValueError(f"{name} must lie in [0, {v}), got values in [{int(token.min())}, {int(token.max())}]")
  return token


def _residual_sample(key, p, q):
  """A token from norm(max(p - q, 0)) (p where the residual is all zero, i.e. p == q), [..., V] -> [...]."""
  ct = validation.compute_dtype_for(p.dtype)      # bfloat16 Gumbel noise would distort small probabilities
  p, q = p.astype(ct), q.astype(ct)
  res = jnp.maximum(p - q, 0.0)
  z = jnp.sum(res, -1, keepdims=True)
  res = jnp.where(z > 0, res / jnp.where(z > 0, z, 1.0), p)
  return jax.random.categorical(key, jnp.log(res), axis=-1)


def speculative_accept(key: jax.Array, p: jax.Array, q: jax.Array, token: jax.Array, *,
                       p_relaxed=None) -> tuple[jax.Array, jax.Array]:
  """One token of standard speculative sampling: accept the draft token or resample from the residual.

  Leviathan, Kalman, Matias, "Fast Inference from Transformers via Speculative Decoding", 2023, arXiv:2211.17192,
  Algorithm 1 (the residual p'(x) = norm(max(0, p(x) - q(x)))): accept x ~ q with probability
  min(1, p(x)/q(x)); otherwise output a token from the residual. The output is distributed as p exactly.

  Args:
    key: a PRNG key.
    p: target probabilities [..., V].
    q: draft probabilities [..., V] (`token` was drawn from q).
    token: the draft tokens [...] (int, in [0, V)).
    p_relaxed: optional [..., V] distribution that replaces p in both the acceptance test and the residual (LANTERN's
      relaxed target of the draft token, `lantern_accept`); None: p. Checked like p (shape, values when concrete).

  Returns:
    (output tokens [...] int32, accepted [...] bool).
  """
  p = _check_probs(p, "p")
  q = _check_probs(q, "q")
  if p.shape != q.shape:
    raise ValueError(f"p and q must have one shape, got {p.shape=} and {q.shape=}")
  token = _check_token(token, p.shape[:-1], p.shape[-1])
  ku, kr = jax.random.split(key)
  if p_relaxed is not None:
    p_relaxed = _check_probs(p_relaxed, "p_relaxed")
    if p_relaxed.shape != q.shape:
      raise ValueError(f"p_relaxed must have the shape of p and q {q.shape}, got {p_relaxed.shape=}")
    p = p_relaxed
  ct = validation.compute_dtype_for(p.dtype)   # a bfloat16 uniform lies on a 1/128 grid: P(u < 0.004) = 1/128
  pt = jnp.take_along_axis(p, token[..., None], -1)[..., 0].astype(ct)
  qt = jnp.take_along_axis(q, token[..., None], -1)[..., 0].astype(ct)
  u = jax.random.uniform(ku, token.shape, ct)
  accepted = u * qt < pt                      # u < min(1, p/q), without dividing by q
  out = jnp.where(accepted, token, _residual_sample(kr, p, q))
  return out.astype(jnp.int32), accepted


def speculative_verify(key: jax.Array, p: jax.Array, q: jax.Array, draft_tokens: jax.Array) -> tuple[jax.Array,
                                                                                                   jax.Array]:
  """Verify gamma draft tokens against the target in one step (standard speculative sampling).

  Leviathan et al. 2023, arXiv:2211.17192, Algorithm 1; the verification step of [131] EasySpec (Wu et al. 2025,
  arXiv:2502.02493), whose layer-parallel drafts need no change to it: draft token i is kept while every earlier
  one was kept and u_i < p_i(x_i)/q_i(x_i); the first rejected position is resampled from norm(max(p_i - q_i, 0));
  if all gamma are kept a bonus token is drawn from p_gamma. The emitted sequence is distributed exactly as gamma + 1
  (or fewer) tokens sampled from the target autoregressively.

  Args:
    key: a PRNG key.
    p: target probabilities [..., gamma + 1, V] (p_i conditions on the prefix and the first i draft tokens).
    q: draft probabilities [..., gamma, V] (draft token i was drawn from q_i).
    draft_tokens: [..., gamma] int.

  Returns:
    (tokens [..., gamma + 1] int32: the first n + 1 are the emitted ones, the rest -1; n [...] int32: the number of
    draft tokens accepted, 0..gamma).
  """
  p = _check_probs(p, "p")
  q = _check_probs(q, "q")
  if p.ndim < 2 or q.shape[:-2] != p.shape[:-2] or q.shape[-2] + 1 != p.shape[-2] or q.shape[-1] != p.shape[-1]:
    raise ValueError(f"need p [..., gamma + 1, V] and q [..., gamma, V], got {p.shape=}, {q.shape=}")
  gamma = q.shape[-2]
  draft_tokens = _check_token(draft_tokens, q.shape[:-1], q.shape[-1], "draft_tokens")
  ka, kb = jax.random.split(key)
  # one residual / acceptance draw per position, all positions at once
  out, acc = speculative_accept(ka, p[..., :gamma, :], q, draft_tokens)
  n = jnp.sum(jnp.cumprod(acc.astype(jnp.int32), axis=-1), axis=-1)          # accepted prefix length
  bonus = jax.random.categorical(kb, jnp.log(p[..., gamma, :].astype(validation.compute_dtype_for(p.dtype))),
                                 axis=-1).astype(jnp.int32)
  idx = jnp.arange(gamma + 1)
  draft_ext = jnp.concatenate([draft_tokens.astype(jnp.int32), bonus[..., None]], -1)
  resampled_ext = jnp.concatenate([out, bonus[..., None]], -1)
  last = jnp.where(n[..., None] == gamma, bonus[..., None], resampled_ext)   # token at position n
  tokens = jnp.where(idx < n[..., None], draft_ext, jnp.where(idx == n[..., None], last, -1))
  return tokens.astype(jnp.int32), n.astype(jnp.int32)


def latent_neighbors(codebook: jax.Array, k: int) -> jax.Array:
  """The k tokens nearest to each token in latent space, itself first: LANTERN's B_k ([86] Jang et al. 2024,
  arXiv:2410.03355, method section), by Euclidean distance between codebook vectors (ties by index).

  Args:
    codebook: [V, D] latent vectors of the V tokens.
    k: neighbourhood size, 1 <= k <= V (k = 1: the token alone).

  Returns:
    [V, k] int32 token indices, column 0 the token itself, by increasing distance.
  """
  codebook = validation.check_floating(codebook, "codebook")
  if codebook.ndim != 2:
    raise ValueError(f"codebook must be [V, D], got {codebook.shape=}")
  v = codebook.shape[0]
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= v:
    raise ValueError(f"k must be an int in [1, V={v}], got {k=}")
  c = codebook.astype(jnp.promote_types(codebook.dtype, jnp.float32))
  d = jnp.sum((c[:, None, :] - c[None, :, :]) ** 2, -1)
  d = jnp.where(jnp.eye(v, dtype=bool), -1.0, d)            # itself first, even with duplicate vectors
  return jnp.argsort(d, axis=-1, stable=True)[:, :k].astype(jnp.int32)


def lantern_aggregate(p: jax.Array, token: jax.Array, neighbors: jax.Array, *, delta) -> tuple[jax.Array,
                                                                                              jax.Array]:
  """LANTERN's relaxed target p_tilde_x for the draft token x: the mass of A_{k,delta}(x) moved onto x.

  Jang et al., "LANTERN: Accelerating Visual Autoregressive Models with Relaxed Speculative Decoding", 2024,
  arXiv:2410.03355 (catalog [86]), method section: A_{k,delta}(x) is x with the longest prefix of its other latent
  neighbours (B_k(x), by proximity) whose total target mass is <= delta; moving that mass onto x gives the relaxed
  target p_tilde_x (p_tilde_x(x) = p(A), 0 on the other members of A, p elsewhere) with TV(p, p_tilde_x) <= delta.

  Args:
    p: target probabilities [..., V].
    token: draft tokens [...] int in [0, V).
    neighbors: [V, k] int, `latent_neighbors(codebook, k)` (column 0 the token itself).
    delta: the total-variation budget, >= 0.

  Returns:
    (p_tilde_x [..., V], the moved mass TV(p, p_tilde_x) [...] (<= delta)).
  """
  p = _check_probs(p, "p")
  token = _check_token(token, p.shape[:-1], p.shape[-1])
  neighbors = validation.check_integer(neighbors, "neighbors")
  if neighbors.ndim != 2 or neighbors.shape[0] != p.shape[-1]:
    raise ValueError(f"neighbors must be [V={p.shape[-1]}, k], got {neighbors.shape=}")
  validation.check_nonnegative(delta, "delta")
  nb = neighbors[token]                                           # [..., k]
  pn = jnp.take_along_axis(p, nb, -1)                             # p of x and its neighbours
  cum = jnp.cumsum(pn[..., 1:], -1)                               # mass of the first j other neighbours
  in_a = cum <= delta                                             # cum is non-decreasing: a prefix
  moved = jnp.max(jnp.where(in_a, cum, 0.0), -1, initial=0.0)
  v = p.shape[-1]
  drop = jnp.any(jax.nn.one_hot(nb[..., 1:], v, dtype=bool) & in_a[..., None], axis=-2)   # A minus x, [..., V]
  p_tilde = jnp.where(drop, 0.0, p)
  p_tilde = jnp.where(jax.nn.one_hot(token, v, dtype=bool), (pn[..., 0] + moved)[..., None], p_tilde)
  return p_tilde.astype(p.dtype), moved


def lantern_accept(key: jax.Array, p: jax.Array, q: jax.Array, token: jax.Array, neighbors: jax.Array, *,
                   delta) -> tuple[jax.Array, jax.Array]:
  """LANTERN's relaxed speculative acceptance of one draft token.

  Jang et al. 2024, arXiv:2410.03355 (catalog [86]), method section: standard speculative sampling towards the relaxed
  target p_tilde_x of the draft token (`lantern_aggregate`): accept x ~ q with probability
  min(1, p(A_{k,delta}(x)) / q(x)); on rejection resample from norm(max(p_tilde_x - q, 0)), which excludes the
  neighbours whose mass was credited to x (as the authors' code zeroes them before resampling). k = 1 or delta = 0
  gives `speculative_accept` exactly. TV(p, p_tilde_x) <= delta holds for each draft token x; the output tokens'
  law is not bounded by delta (it tends to q as the acceptance tends to 1).

  Args:
    key: a PRNG key.
    p: target probabilities [..., V].
    q: draft probabilities [..., V].
    token: draft tokens [...] drawn from q.
    neighbors: [V, k] int from `latent_neighbors` (k is its width).
    delta: total-variation budget >= 0.

  Returns:
    (output tokens [...] int32, accepted [...] bool).
  """
  p_tilde, _ = lantern_aggregate(p, token, neighbors, delta=delta)
  return speculative_accept(key, p, q, token, p_relaxed=p_tilde)
