"""[67] bound optimizer (analysis/transductive_clustering.py) against a float64 NumPy transcription of the objective,
closed forms at lam = 0, autodiff stationarity at the fixed point, and exact monotonicity; plus the experiment's
claims on hand-made results."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import transductive_clustering as exp
from jaxlib_methods.analysis import TransductiveResult, bound_optimizer, gaussian_affinity, transductive_objective


def _np_objective(s, x, m, w, lam):
  d2 = ((x[:, None, :] - m[None, :, :]) ** 2).sum(-1)
  with np.errstate(divide="ignore", invalid="ignore"):
    ent = np.where(s > 0, s * np.log(s), 0.0).sum()
  lap = sum(w[p, q] * s[p] @ s[q] for p in range(len(x)) for q in range(len(x)))
  return (s * d2).sum() + ent - lam * lap


def _episode(seed=0, k=3, nq=12, d=4):
  rng = np.random.default_rng(seed)
  mu = 1.5 * rng.normal(size=(k, d))
  ys = np.arange(k)
  yq = rng.integers(0, k, nq)
  xs = mu[ys] + rng.normal(size=(k, d))
  xq = mu[yq] + rng.normal(size=(nq, d))
  return xs, ys, xq


def test_bound_optimizer_matches_numpy_closed_forms_and_is_monotone():
  with jax.enable_x64(True):
    xs, ys, xq = _episode()
    x = np.concatenate([xs, xq])
    k, ns = 3, 3
    w_np = np.exp(-((x[:, None] - x[None]) ** 2).sum(-1) / (2 * 1.5 ** 2))
    w = jax.jit(gaussian_affinity, static_argnums=1)(jnp.asarray(x), 1.5)   # jitted: one compile, not op by op
    np.testing.assert_allclose(np.asarray(w), w_np, rtol=1e-12, atol=1e-12)

    # lam = 0, no prototype step, 1 iteration: softmax(-||x - m||^2) at the support means (1-shot: the supports).
    r0 = bound_optimizer(xs, ys, xq, w, num_classes=k, lam=0.0, iters=1, update_prototypes=False)
    assert isinstance(r0, TransductiveResult)
    a = ((xq[:, None] - xs[None]) ** 2).sum(-1)
    soft = np.exp(-a - (-a).max(1, keepdims=True))
    soft /= soft.sum(1, keepdims=True)
    np.testing.assert_allclose(np.asarray(r0.assignments), soft, rtol=1e-10, atol=1e-12)
    # Gibbs: min over the simplex of a^T s + s log s is -logsumexp(-a); supports contribute their own distance 0.
    gibbs = -np.log(np.exp(-a).sum(1)).sum()
    np.testing.assert_allclose(float(r0.objective[-1]), gibbs, rtol=1e-10)

    # lam > 0 with prototype steps: the history is the NumPy objective, and it never increases (float64 rounding).
    lam = 0.4
    r = bound_optimizer(xs, ys, xq, w, num_classes=k, lam=lam, iters=200)
    s_all = np.concatenate([np.eye(k)[ys], np.asarray(r.assignments)])
    np.testing.assert_allclose(float(r.objective[-1]), _np_objective(s_all, x, np.asarray(r.prototypes), w_np, lam),
                               rtol=1e-10)
    e = np.asarray(r.objective)
    assert np.all(np.diff(e) <= 1e-12 * np.maximum(1.0, np.abs(e[:-1]))), np.diff(e).max()
    assert e[-1] < e[0] - 1.0
    # prototypes are the assignment-weighted means of all points (exact minimiser of the K-means term).
    np.testing.assert_allclose(np.asarray(r.prototypes), (s_all.T @ x) / s_all.sum(0)[:, None], rtol=1e-8)

    # Fixed point = stationary point of E on the simplex: autodiff of the objective w.r.t. the query assignments has
    # equal components within each row (the KKT condition with multiplier per row), at the final prototypes.
    def energy(s_q):
      return transductive_objective(jnp.concatenate([jnp.eye(k)[ys], s_q]), jnp.asarray(x), r.prototypes, w, lam)
    g = np.asarray(jax.jit(jax.grad(energy))(r.assignments))   # jitted: eager autodiff compiles every op
    assert np.max(np.abs(g - g.mean(1, keepdims=True))) < 1e-6

    # Under jax.jit (labels traced) the same numbers (vmap over episodes is what the experiment runs).
    f = jax.jit(lambda xs_, ys_, xq_: bound_optimizer(xs_, ys_, xq_, w, num_classes=k, lam=lam, iters=200))
    np.testing.assert_allclose(np.asarray(f(xs, ys, xq).assignments), np.asarray(r.assignments), rtol=1e-9)


def test_offset_features_keep_their_precision():
  # Features far from the origin (float32): ||a||^2 + ||b||^2 - 2ab lost the distances, giving an affinity with
  # diagonal 0 and a negative eigenvalue (-3.78 here) and an objective rising by 0.13-0.26 between half-steps. All of
  # it is shift invariant, so the offset features must give the centred features' numbers.
  rng = np.random.default_rng(0)
  x = (50.0 + 0.01 * rng.standard_normal((20, 64))).astype(np.float32)
  w = np.asarray(gaussian_affinity(jnp.asarray(x), 0.01), np.float64)
  x64 = x.astype(np.float64)
  w_ref = np.exp(-((x64[:, None] - x64[None]) ** 2).sum(-1) / (2 * 0.01 ** 2))
  np.testing.assert_allclose(w, w_ref, atol=1e-4)
  assert w.diagonal().min() > 1 - 1e-4 and np.linalg.eigvalsh(w).min() > 0

  k, dim, offset = 5, 512, 10.0
  means = 0.05 * rng.standard_normal((k, dim))
  yq = np.repeat(np.arange(k), 15)
  xs = (offset + means + 0.05 * rng.standard_normal((k, dim))).astype(np.float32)
  xq = (offset + means[yq] + 0.05 * rng.standard_normal((len(yq), dim))).astype(np.float32)
  x = np.concatenate([xs, xq])
  aff = gaussian_affinity(jnp.asarray(x), 0.5)
  aff_c = gaussian_affinity(jnp.asarray(x - offset), 0.5)
  np.testing.assert_allclose(np.asarray(aff), np.asarray(aff_c), atol=1e-5)
  for lam in (1.0, 5.0):
    r = bound_optimizer(xs, np.arange(k), xq, aff, num_classes=k, lam=lam, iters=10)
    rc = bound_optimizer(xs - offset, np.arange(k), xq - offset, aff_c, num_classes=k, lam=lam, iters=10)
    e = np.asarray(r.objective, np.float64)
    assert np.all(np.diff(e) <= 1e-6 * np.abs(e[:-1]).max()), np.diff(e).max()     # float32 rounding only
    np.testing.assert_allclose(e, np.asarray(rc.objective), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(np.asarray(r.assignments), np.asarray(rc.assignments), atol=1e-4)
    np.testing.assert_allclose(np.asarray(r.prototypes) - offset, np.asarray(rc.prototypes), atol=1e-4)
    assert np.all(np.asarray(r.assignments).argmax(1) == yq)
    # the public objective agrees with the recorded history at the final iterate
    s_all = jnp.concatenate([jnp.eye(k), r.assignments])
    assert float(transductive_objective(s_all, x, r.prototypes, aff, lam)) == pytest.approx(e[-1], rel=1e-5)


def test_bound_optimizer_rejects_bad_input():
  xs, ys, xq = _episode()
  w = np.eye(15)
  with pytest.raises(ValueError, match="support_labels must lie"):
    bound_optimizer(xs, np.array([0, 1, 3]), xq, w, num_classes=3, lam=0.1)
  with pytest.raises(ValueError, match="every class needs a support"):
    bound_optimizer(xs, np.array([0, 1, 1]), xq, w, num_classes=3, lam=0.1)
  with pytest.raises(ValueError, match="affinity must be"):
    bound_optimizer(xs, ys, xq, np.eye(14), num_classes=3, lam=0.1)
  with pytest.raises(ValueError, match="lam"):
    bound_optimizer(xs, ys, xq, w, num_classes=3, lam=-1.0)
  with pytest.raises(ValueError, match="iters"):
    bound_optimizer(xs, ys, xq, w, num_classes=3, lam=0.1, iters=0)
  with pytest.raises(ValueError, match="same D"):
    bound_optimizer(xs, ys, xq[:, :2], w, num_classes=3, lam=0.1)
  with pytest.raises(ValueError, match="sigma"):
    gaussian_affinity(xs, 0.0)


def test_transductive_clustering_claims_on_hand_made_results():
  rng = np.random.default_rng(0)
  ind = (0.6 + 0.1 * rng.normal(size=100)).tolist()
  good = {"inductive": ind, "kmeans": (np.array(ind) + 0.2).tolist(),
          "transductive": (np.array(ind) + 0.25 + 0.05 * rng.normal(size=100)).tolist(), "max_rel_increase": 1e-16}
  assert all(c.passed for c in exp.claims(good))
  bad = dict(good, max_rel_increase=1e-6, transductive=(np.array(ind) - 0.01).tolist())
  failed = [c.claim for c in exp.claims(bad) if not c.passed]
  assert any(f.startswith("bound optimizer") for f in failed) and any(f.startswith("transductive") for f in failed)
