"""[28] streaming nearest-mean classifier and [100] selective-classification metrics + window cascade, against
float64 NumPy transcriptions written here from the definitions (batch class means and a brute-force nearest mean;
risk-coverage by enumerating every threshold)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.analysis import (
    NearestMeanState,
    aurc,
    cascade_macs,
    coverage_at_risk,
    nearest_mean_distances,
    nearest_mean_init,
    nearest_mean_predict,
    nearest_mean_update,
    risk_coverage,
    window_cascade,
)

@jax.jit
def _stream(xb, yb, wb, q):
  """The whole stream in one program (one compile): scan `nearest_mean_update` over the chunks, then predict."""
  k, d = 5, xb.shape[-1]
  s, _ = jax.lax.scan(lambda s, c: (nearest_mean_update(s, *c), None), nearest_mean_init(k, d, xb.dtype), (xb, yb, wb))
  # vmap over the chunks as independent streams (e.g. seeds): one state per stream
  per = jax.vmap(lambda a, b, w: nearest_mean_update(nearest_mean_init(k, d, xb.dtype), a, b, w))(xb, yb, wb)
  return s, nearest_mean_predict(s, q), nearest_mean_distances(s, q), per


def test_streaming_nmc_equals_batch_nmc_in_any_order():
  """Streaming means == batch means (float64, any chunk order, masked rows ignored); predictions equal the brute-force
  nearest mean among seen classes, under jax.jit; unseen classes are never predicted; vmap over streams."""
  rng = np.random.default_rng(0)
  K, D, N = 5, 4, 60
  x = rng.normal(size=(N, D)) + 3 * rng.normal(size=(K, D))[np.arange(N) % 4]   # class 4 never appears
  y = (np.arange(N) % 4).astype(np.int32)
  q = rng.normal(size=(25, D)) * 3
  with jax.enable_x64(True):
    batch_means = np.stack([x[y == k].mean(0) if (y == k).any() else np.zeros(D) for k in range(K)])
    d2 = ((q[:, None] - batch_means[None]) ** 2).sum(-1)
    d2[:, 4] = np.inf
    want = d2.argmin(1)
    for trial in range(2):
      perm = rng.permutation(N) if trial else np.argsort(y, kind="stable")   # random order; then class by class
      chunks = np.stack([np.concatenate([c, c[:1]]) for c in np.split(perm, 6)])   # + 1 masked row per chunk
      yb = y[chunks].copy()
      yb[:, -1] = -100                                                     # masked rows: invalid labels unchecked
      wb = np.arange(chunks.shape[1])[None].repeat(6, 0) < chunks.shape[1] - 1
      s, pred, dist, per = _stream(jnp.asarray(x[chunks]), jnp.asarray(yb), jnp.asarray(wb), jnp.asarray(q))
      np.testing.assert_allclose(np.asarray(s.means), batch_means, rtol=0, atol=1e-12)
      np.testing.assert_array_equal(np.asarray(s.counts), np.bincount(y, minlength=K))
      np.testing.assert_array_equal(np.asarray(pred), want)
      assert np.isinf(np.asarray(dist)[:, 4]).all()
      c1 = chunks[1, :-1]
      one = np.stack([x[c1][y[c1] == k].mean(0) if (y[c1] == k).any() else np.zeros(D) for k in range(K)])
      np.testing.assert_allclose(np.asarray(per.means[1]), one, atol=1e-12)


def test_nmc_errors():
  s = nearest_mean_init(3, 2)
  assert isinstance(s, NearestMeanState) and s.means.shape == (3, 2) and s.counts.dtype == jnp.int32
  with pytest.raises(ValueError, match="labels"):
    nearest_mean_update(s, np.zeros((2, 2), np.float32), np.array([0, 3]))
  with pytest.raises(TypeError, match="labels"):
    nearest_mean_update(s, np.zeros((2, 2), np.float32), np.zeros(2))
  with pytest.raises(ValueError, match="features"):
    nearest_mean_update(s, np.zeros((2, 3), np.float32), np.array([0, 1]))
  with pytest.raises(ValueError, match="seen no class"):
    nearest_mean_predict(s, np.zeros((1, 2), np.float32))
  with pytest.raises(ValueError, match="num_classes"):
    nearest_mean_init(0, 2)
  with pytest.raises(TypeError, match="state"):
    nearest_mean_predict((s.means, s.counts), np.zeros((1, 2), np.float32))
  # a traced invalid label poisons the means (NaN), never a silent wrong mean
  bad = jax.jit(nearest_mean_update)(s, jnp.ones((2, 2)), jnp.array([0, 5]))
  assert np.isnan(np.asarray(bad.means)).all()


def _np_risk_coverage(u, correct):
  """Brute force: one cut per sample, accepting every sample with uncertainty <= that sample's."""
  u = np.asarray(u, np.float64)
  order = np.argsort(u, kind="stable")
  cov, risk = [], []
  for i in order:
    acc = u <= u[i]
    cov.append(acc.mean())
    risk.append((~correct[acc]).mean())
  return np.array(cov), np.array(risk)


def test_selective_metrics_and_window_cascade_match_numpy():
  rng = np.random.default_rng(1)
  u = np.round(rng.uniform(size=200), 2)                   # rounding makes ties
  correct = rng.uniform(size=200) > u * 0.6
  cov_np, risk_np = _np_risk_coverage(u, correct)
  n, e = 200, 30
  ramp = np.arange(n, dtype=np.float32)
  u1, u2 = rng.uniform(size=50).astype(np.float32), rng.uniform(size=50).astype(np.float32)
  p1, p2 = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
  u1[:2] = [0.3, 0.6]

  @jax.jit
  def everything(u, c, rs):   # one compile for every metric of the test
    cov, risk = risk_coverage(u, c)
    car = jax.vmap(lambda r: coverage_at_risk(u, c, r))(rs)
    uc, pc, passed = window_cascade(u1, p1, u2, p2, 0.3, 0.6)
    return (cov, risk, aurc(u, c), car, aurc(ramp, jnp.ones(n, bool)), aurc(ramp, jnp.arange(n) < n - e),
            uc, pc, passed, cascade_macs(passed, (2.0, 3.0)))

  rs = np.array([0.0, 0.05, 0.2, 1.0], np.float32)
  cov, risk, a, car, a_ok, a_oracle, uc, pc, passed, macs = everything(u.astype(np.float32), correct, rs)
  np.testing.assert_allclose(np.asarray(cov), cov_np, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(risk), risk_np, rtol=1e-5, atol=1e-7)
  assert float(a) == pytest.approx(risk_np.mean(), rel=1e-5)
  for r, got in zip(rs, np.asarray(car)):
    ok = risk_np <= r
    assert float(got) == pytest.approx(cov_np[ok].max() if ok.any() else 0.0, abs=1e-6)
  # closed forms: all correct -> AURC 0; an oracle ranking (the E errors last) has AURC = mean over the cuts i of
  # max(0, i - (N - E)) / i
  assert float(a_ok) == 0.0
  assert float(a_oracle) == pytest.approx(np.mean([max(0, i - (n - e)) / i for i in range(1, n + 1)]), rel=1e-6)
  # window cascade: the NumPy rule, both window edges inclusive; Alg. 1 is the window [t, inf)
  m = (u1 >= 0.3) & (u1 <= 0.6)
  np.testing.assert_array_equal(np.asarray(passed), m)
  np.testing.assert_array_equal(np.asarray(uc), np.where(m, u2, u1))
  np.testing.assert_array_equal(np.asarray(pc), np.where(m, p2, p1))
  assert float(macs) == pytest.approx(2.0 + 3.0 * m.mean())
  with pytest.raises(ValueError, match="hi"):
    window_cascade(u1, p1, u2, p2, 0.6, 0.3)
  with pytest.raises(TypeError, match="correct"):
    risk_coverage(u, correct.astype(np.float32))
  with pytest.raises(ValueError, match="risk"):
    coverage_at_risk(u, correct, 1.5)


def test_nearest_mean_predict_under_jit_with_a_closed_over_state():
  # A concrete state closed over by a jitted function used to raise TracerBoolConversionError (the "no class seen"
  # check ran a jnp reduction, a tracer inside jit).
  st = nearest_mean_update(nearest_mean_init(3, 2), jnp.asarray([[0.0, 0.0], [5.0, 5.0], [9.0, 0.0]]),
                           jnp.asarray([0, 1, 2]))
  x = jnp.asarray([[4.0, 4.0], [8.0, 1.0]])
  np.testing.assert_array_equal(np.asarray(jax.jit(lambda f: nearest_mean_predict(st, f))(x)), [1, 2])
