"""[86] LANTERN and [131] speculative verification: standard speculative sampling's output is the target
distribution (chi-square tests with fixed seeds), LANTERN reduces to it at k = 1 / delta = 0, and its aggregation
matches a NumPy transcription of the paper's rule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxlib_methods.sampling import (lantern_accept, lantern_aggregate, latent_neighbors, speculative_accept,
                                     speculative_verify)

# Each chi-square test rejects a correct sampler with probability ALPHA (fixed seeds make the outcome deterministic;
# with a wrong sampler, e.g. accepting every draft token, the statistic is in the thousands).
ALPHA = 1e-4


def _dist(rng, v, conc=1.0):
  return rng.dirichlet(np.full(v, conc))


def test_speculative_and_lantern_single_token():
  rng = np.random.default_rng(0)
  v, n = 6, 40_000
  p, q = _dist(rng, v), _dist(rng, v)
  pj, qj = jnp.asarray(p, jnp.float32), jnp.asarray(q, jnp.float32)
  kd, ka = jax.random.split(jax.random.key(0))
  draft = jax.random.categorical(kd, jnp.log(qj), shape=(n,))
  P, Q = jnp.broadcast_to(pj, (n, v)), jnp.broadcast_to(qj, (n, v))
  out, acc = jax.jit(speculative_accept)(ka, P, Q, draft)
  counts = np.bincount(np.asarray(out), minlength=v)
  assert stats.chisquare(counts, n * p).pvalue > ALPHA
  # acceptance rate = sum_x min(p, q) (Leviathan et al. 2023, Sec. 3), within 5 binomial std
  beta = np.minimum(p, q).sum()
  assert abs(float(acc.mean()) - beta) < 5 * np.sqrt(beta * (1 - beta) / n)
  # LANTERN with k = 1 or delta = 0 is exactly the same sampler (same key, same outputs)
  codebook = jnp.asarray(rng.normal(size=(v, 3)), jnp.float32)
  # (k = 1 leaves p unchanged: checked in test_lantern_aggregate_and_neighbors_match_numpy)
  lantern = jax.jit(lantern_accept)
  o2, a2 = lantern(ka, P, Q, draft, latent_neighbors(codebook, 4), delta=jnp.float32(0.0))
  np.testing.assert_array_equal(np.asarray(o2), np.asarray(out))
  np.testing.assert_array_equal(np.asarray(a2), np.asarray(acc))
  # with a budget: acceptance sum_x q(x) min(1, p(A(x)) / q(x)) and the output law
  # o(y) = sum_x q(x) [a_x 1{y = x} + (1 - a_x) norm(max(p_tilde_x - q, 0))(y)], from the NumPy transcription below
  nb = np.asarray(latent_neighbors(codebook, 4))
  pt = np.stack([_lantern_numpy(p, x, nb, 0.2)[0] for x in range(v)])      # [x, V]
  a = np.minimum(1, pt[np.arange(v), np.arange(v)] / q)
  res = np.maximum(pt - q[None], 0)
  res /= res.sum(1, keepdims=True)
  law = q * a + ((q * (1 - a))[:, None] * res).sum(0)
  o3, a3 = lantern(ka, P, Q, draft, jnp.asarray(nb), delta=jnp.float32(0.2))
  beta3 = float(np.sum(q * a))
  assert beta3 > beta
  assert abs(float(a3.mean()) - beta3) < 5 * np.sqrt(beta3 * (1 - beta3) / n)
  assert stats.chisquare(np.bincount(np.asarray(o3), minlength=v), n * law).pvalue > ALPHA


def _lantern_numpy(p, x, nb, delta):
  """The paper's rule, literally: add neighbours in proximity order while the moved mass stays <= delta; the
  relaxed target carries their mass on x. Returns (p_tilde [V], moved)."""
  moved, pt = 0.0, np.array(p, np.float64)
  for y in nb[x][1:]:
    if moved + p[y] > delta:
      break
    moved += p[y]
    pt[y] = 0.0
  pt[x] = p[x] + moved
  return pt, moved


def test_lantern_aggregate_and_neighbors_match_numpy():
  rng = np.random.default_rng(1)
  v, d, k = 12, 3, 5
  cb = rng.normal(size=(v, d))
  nb = np.asarray(latent_neighbors(jnp.asarray(cb, jnp.float32), k))
  dist = ((cb[:, None] - cb[None]) ** 2).sum(-1)
  np.testing.assert_array_equal(nb, np.argsort(dist, axis=1, kind="stable")[:, :k])
  p = rng.dirichlet(np.full(v, 0.5), size=7)
  toks = rng.integers(0, v, size=7)
  agg = jax.jit(lantern_aggregate)
  for delta in (0.0, 0.05, 0.3, 1.0):
    pt, moved = agg(jnp.asarray(p, jnp.float32), jnp.asarray(toks), jnp.asarray(nb), delta=jnp.float32(delta))
    refs = [_lantern_numpy(p[i], toks[i], nb, delta) for i in range(7)]
    np.testing.assert_allclose(np.asarray(pt), np.stack([r[0] for r in refs]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(moved), [r[1] for r in refs], rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(moved) <= delta + 1e-6)
    np.testing.assert_allclose(0.5 * np.abs(np.asarray(pt, np.float64) - p).sum(1), np.asarray(moved), atol=1e-5)
  # k = 1: the relaxed target is p itself, whatever delta
  pt1, moved1 = agg(jnp.asarray(p, jnp.float32), jnp.asarray(toks), jnp.asarray(nb[:, :1]), delta=jnp.float32(1.0))
  np.testing.assert_array_equal(np.asarray(pt1), np.asarray(p, np.float32))
  assert np.all(np.asarray(moved1) == 0)
  with pytest.raises(ValueError, match="k must be"):
    latent_neighbors(jnp.asarray(cb, jnp.float32), 0)
  with pytest.raises(ValueError, match="delta"):
    lantern_aggregate(jnp.asarray(p, jnp.float32), jnp.asarray(toks), jnp.asarray(nb), delta=-0.1)
  with pytest.raises(ValueError, match="token"):
    speculative_accept(jax.random.key(0), jnp.asarray(p, jnp.float32), jnp.asarray(p, jnp.float32),
                       jnp.asarray(toks) + v)
  with pytest.raises(ValueError, match="probabilities"):
    speculative_accept(jax.random.key(0), jnp.asarray(p, jnp.float32) * 2, jnp.asarray(p, jnp.float32),
                       jnp.asarray(toks))


def test_speculative_verify_sequences_follow_the_target_markov_chain():
  """[131]: rounds of draft (gamma tokens from q) + verify emit sequences distributed as the target chain."""
  rng = np.random.default_rng(2)
  v, gamma, length, n = 3, 2, 2, 30_000
  P = rng.dirichlet(np.full(v, 1.0), size=v)     # target p(next | prev)
  Q = rng.dirichlet(np.full(v, 1.0), size=v)     # draft q(next | prev)
  Pj, Qj = jnp.asarray(P, jnp.float32), jnp.asarray(Q, jnp.float32)

  def generate(key):
    buf = jnp.full(length + gamma + 1, -1, jnp.int32)
    prev, pos = jnp.int32(0), jnp.int32(0)        # the prefix is token 0
    for r in range(length):                       # each round emits >= 1 token
      key, kd, kv = jax.random.split(key, 3)
      drafts, ctx = [], prev
      for i in range(gamma):
        ctx = jax.random.categorical(jax.random.fold_in(kd, i), jnp.log(Qj[ctx])).astype(jnp.int32)
        drafts.append(ctx)
      d = jnp.stack(drafts)
      ctxs = jnp.concatenate([prev[None], d])     # p_i conditions on the prefix and the first i drafts
      toks, m = speculative_verify(kv, Pj[ctxs], Qj[ctxs[:-1]], d)
      buf = jax.lax.dynamic_update_slice(buf, jnp.where(jnp.arange(gamma + 1) <= m, toks, -1), (pos,))
      pos = pos + m + 1
      prev = buf[pos - 1]
      buf = jnp.where(jnp.arange(buf.shape[0]) < pos, buf, -1)
    return buf[:length]

  seqs = np.asarray(jax.jit(jax.vmap(generate))(jax.random.split(jax.random.key(3), n)))
  assert seqs.min() >= 0
  codes = seqs @ (v ** np.arange(length)[::-1])
  counts = np.bincount(codes, minlength=v ** length)
  expected = np.zeros(v ** length)
  for c in range(v ** length):
    s = [(c // v ** (length - 1 - j)) % v for j in range(length)]
    expected[c] = P[0, s[0]] * np.prod([P[s[j - 1], s[j]] for j in range(1, length)])
  assert stats.chisquare(counts, n * expected).pvalue > ALPHA
  with pytest.raises(ValueError, match="gamma"):
    speculative_verify(jax.random.key(0), Pj[:2], Qj[:2], jnp.zeros(2, jnp.int32))


def test_speculative_accept_takes_bfloat16_softmax_probabilities():
  """A bfloat16 softmax sums to 1 only within ~0.005 (rounding of each probability), which the fixed 1e-3 check
  rejected as "not summing to 1": valid low-precision model outputs crashed the sampler. The tolerance now follows
  the dtype's epsilon; unnormalised inputs are still rejected."""
  logits = 5.0 * jax.random.normal(jax.random.key(0), (64, 2, 100))
  p = jax.nn.softmax(logits.astype(jnp.bfloat16), -1)
  assert np.abs(np.asarray(p, np.float64).sum(-1) - 1).max() > 1e-3          # the case that was rejected
  q = jnp.asarray([0.1, 0.2, 0.3, 0.4], jnp.bfloat16)                           # sums to 1.0017 in bfloat16
  out, acc = speculative_accept(jax.random.key(1), jnp.asarray([0.5, 0.3, 0.2, 0.0], jnp.bfloat16), q,
                                jnp.asarray(2))
  assert 0 <= int(out) < 4 and acc.dtype == jnp.bool_
  tokens, n = speculative_verify(jax.random.key(2), jnp.concatenate([p, p[:, :1]], 1), p,
                                 jnp.zeros((64, 2), jnp.int32))
  assert tokens.shape == (64, 3) and np.all(np.asarray(n) >= 0)
  with pytest.raises(ValueError, match="summing to 1"):
    speculative_accept(jax.random.key(1), jnp.asarray([0.6, 0.3, 0.2, 0.0], jnp.bfloat16), q, jnp.asarray(2))


def test_speculative_accept_keeps_the_target_law_for_bfloat16_probabilities():
  """The acceptance uniform was drawn in p's dtype: a bfloat16 uniform lies on a 1/128 grid, so a token with
  p/q = 1/256 was accepted with probability 1/128 and emitted twice as often as p says (0.0039 instead of 0.00195).
  Uniforms (and the residual's Gumbel noise) are now float32; float32 inputs give the same draws as before."""
  n = 400_000
  p = jnp.asarray([0.99609375, 0.001953125, 0.001953125])        # exact in bfloat16
  q = jnp.asarray([0.25, 0.25, 0.5])
  kt, ka = jax.random.split(jax.random.key(0))
  tok = jax.random.categorical(kt, jnp.log(jnp.broadcast_to(q, (n, 3))))
  freq = {}
  for dt in (jnp.float32, jnp.bfloat16):
    out, _ = speculative_accept(ka, jnp.broadcast_to(p, (n, 3)).astype(dt), jnp.broadcast_to(q, (n, 3)).astype(dt),
                                tok)
    freq[dt] = np.bincount(np.asarray(out), minlength=3) / n
    np.testing.assert_allclose(freq[dt], np.asarray(p), atol=5 * np.sqrt(0.002 / n))    # 5 binomial std errors
  np.testing.assert_array_equal(freq[jnp.float32], freq[jnp.bfloat16])


def test_speculative_accept_checks_p_relaxed():
  """p_relaxed replaces p in the test and the residual: a misshaped or unnormalised one was used unchecked."""
  p = jnp.array([[0.5, 0.5, 0.0]])
  q = jnp.array([[0.2, 0.3, 0.5]])
  token = jnp.array([2])
  key = jax.random.PRNGKey(0)
  with pytest.raises(ValueError, match="p_relaxed must have the shape"):
    speculative_accept(key, p, q, token, p_relaxed=jnp.array([0.5, 0.5, 0.0]))
  with pytest.raises(ValueError, match="p_relaxed must hold finite non-negative probabilities"):
    speculative_accept(key, p, q, token, p_relaxed=jnp.array([[0.9, 0.9, 0.0]]))
  out, acc = speculative_accept(key, p, q, token, p_relaxed=jnp.array([[0.0, 0.0, 1.0]]))
  assert bool(acc[0]) and int(out[0]) == 2   # p_relaxed(2) = 1 >= q(2): always accepted
