"""[117] Sinkhorn OT against the exact OT (scipy's linear_sum_assignment on permutation problems), Sinkhorn's theorem
(the plan is the unique coupling of the form diag(u) K diag(v)), the eps -> infinity limit a b^T; the OTCE
conditional entropy against a NumPy transcription and its closed forms; osborn_score's submodularity checked on every
(S, T, m) of a small pool; greedy >= (1 - 1/e) OPT on many random monotone submodular pools (Nemhauser et al. 1978:
the bound holds with probability 1, so a single failure is a bug)."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from jaxlib_methods.analysis import (
    greedy_submodular_select,
    osborn_score,
    ot_conditional_entropy,
    sinkhorn,
    sinkhorn_ot,
)


@pytest.mark.slow
def test_sinkhorn_converges_to_exact_ot_and_has_the_scaling_form():
  rng = np.random.default_rng(0)
  n = 8
  xs, xt = rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) + 0.5
  c = ((xs[:, None] - xt[None]) ** 2).sum(-1)
  r, col = linear_sum_assignment(c)
  exact = c[r, col].sum() / n                         # uniform 1/n weights: the OT plan is a permutation / n
  with jax.enable_x64(True):
    ot_jit = jax.jit(lambda xs, xt, eps: sinkhorn_ot(xs, xt, eps=eps, num_iters=3000))   # eps traced: one compile
    errs = []
    for eps in (0.3, 0.1, 0.05, 0.03):
      w, p = ot_jit(jnp.asarray(xs), jnp.asarray(xt), eps)
      errs.append(float(w) - exact)
      # entropic bound: 0 <= <P_eps, C> - OT <= eps' log(n m), eps' = eps * mean(C) (the cost is normalised)
      assert -1e-9 <= errs[-1] <= eps * c.mean() * math.log(n * n)
    p = np.asarray(p)
    assert all(a > b for a, b in zip(errs, errs[1:])) and errs[-1] < 0.05 * exact   # converges as eps -> 0
    np.testing.assert_allclose(p.sum(1), 1 / n, atol=1e-9)
    np.testing.assert_allclose(p.sum(0), 1 / n, atol=1e-12)
    np.testing.assert_array_equal(p.argmax(1), col[np.argsort(r)])   # the plan concentrates on the assignment
    # Sinkhorn's theorem: log P + C / eps = f_i + g_j exactly (rank-2 additive structure), non-uniform marginals
    a = rng.dirichlet(np.ones(5))
    b = rng.dirichlet(np.ones(7))
    cc = rng.uniform(size=(5, 7))
    pp = np.asarray(jax.jit(sinkhorn, static_argnames=("eps", "num_iters"))(jnp.asarray(cc), jnp.asarray(a),
                                                                           jnp.asarray(b), eps=0.2, num_iters=2000))
    np.testing.assert_allclose(pp.sum(1), a, atol=1e-10)
    np.testing.assert_allclose(pp.sum(0), b, atol=1e-12)
    m = np.log(pp) + cc / 0.2
    resid = m - m[:, :1] - m[:1, :] + m[0, 0]
    assert np.abs(resid).max() < 1e-9
    # eps -> infinity: the independent coupling a b^T
    big = np.asarray(sinkhorn(jnp.asarray(cc), jnp.asarray(a), jnp.asarray(b), eps=1e6, num_iters=5))
    np.testing.assert_allclose(big, np.outer(a, b), rtol=1e-5)


def test_sinkhorn_fast_checks():
  """Default-run subset of the slow test above: one eps against the exact OT (its entropic bound), the marginals
  and the eps -> infinity limit."""
  rng = np.random.default_rng(0)
  n = 6
  xs, xt = rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) + 0.5
  c = ((xs[:, None] - xt[None]) ** 2).sum(-1)
  r, col = linear_sum_assignment(c)
  exact = c[r, col].sum() / n
  a = np.full(n, 1 / n, np.float32)

  @jax.jit
  def both(xs, xt, c):   # one compile
    return sinkhorn_ot(xs, xt, eps=0.05, num_iters=400), sinkhorn(c, a, a, eps=1e6, num_iters=3)

  (w, p), big = both(xs.astype(np.float32), xt.astype(np.float32), c.astype(np.float32))
  assert -1e-4 <= float(w) - exact <= 0.05 * c.mean() * math.log(n * n)
  np.testing.assert_allclose(np.asarray(p).sum(0), 1 / n, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(p).sum(1), 1 / n, rtol=1e-3)
  big = np.asarray(big)
  np.testing.assert_allclose(big, np.full((n, n), 1 / n ** 2), rtol=1e-4)


def test_ot_conditional_entropy_matches_numpy():
  rng = np.random.default_rng(1)
  p = rng.uniform(size=(6, 5))
  p /= p.sum()
  ys, yt = rng.integers(0, 3, 6), rng.integers(0, 4, 5)
  joint = np.zeros((3, 4))
  for i in range(6):
    for j in range(5):
      joint[ys[i], yt[j]] += p[i, j]
  ps = joint.sum(1, keepdims=True)
  want = -np.sum(np.where(joint > 0, joint * np.log(np.where(joint > 0, joint, 1) / np.where(ps > 0, ps, 1)), 0))
  fn = jax.jit(ot_conditional_entropy, static_argnames=("num_source_classes", "num_target_classes"))
  assert float(fn(p.astype(np.float32), ys, yt, num_source_classes=3, num_target_classes=4)) == pytest.approx(
      want, rel=1e-5)
  # closed forms: a deterministic label map -> 0; independent labels, uniform target -> log K_t
  eye = np.eye(4) / 4
  assert float(fn(eye.astype(np.float32), np.arange(4), np.arange(4), num_source_classes=4,
                  num_target_classes=4)) == pytest.approx(0.0, abs=1e-7)
  ind = np.full((4, 4), 1 / 16)
  assert float(fn(ind.astype(np.float32), np.arange(4), np.arange(4), num_source_classes=4,
                  num_target_classes=4)) == pytest.approx(math.log(4), rel=1e-6)
  with pytest.raises(ValueError, match="yt"):
    ot_conditional_entropy(p, ys, np.full(5, 4), 3, 4)


def test_osborn_submodular_and_greedy_bound():
  rng = np.random.default_rng(2)
  m = 6
  dom, task = rng.uniform(size=m), rng.uniform(size=m)
  mc = rng.uniform(size=(m, m))
  mc = (mc + mc.T) / 2
  masks = np.array(list(itertools.product([0, 1], repeat=m)), bool)           # all 64 subsets
  score = jax.jit(lambda s: osborn_score(s, dom, task, mc, lam_cohesion=0.5))
  f = dict(zip(map(tuple, masks), np.asarray(score(masks), np.float64)))
  # the NumPy transcription of the formula on every subset
  for s in masks[::7]:
    idx = np.flatnonzero(s)
    want = sum(-dom[i] - task[i] for i in idx) - 0.5 * sum(mc[i, j] for i in idx for j in idx if i < j)
    assert f[tuple(s)] == pytest.approx(want, rel=1e-5, abs=1e-6)
  # diminishing returns: f(S + x) - f(S) >= f(T + x) - f(T) for every S subset of T, x not in T
  worst = np.inf
  for t in masks:
    for s in masks:
      if (s & ~t).any():
        continue
      for x in np.flatnonzero(~t):
        sx, tx = s.copy(), t.copy()
        sx[x] = tx[x] = True
        worst = min(worst, (f[tuple(sx)] - f[tuple(s)]) - (f[tuple(tx)] - f[tuple(t)]))
  assert worst >= -1e-5
  # greedy >= (1 - 1/e) OPT on 200 random monotone submodular pools (facility location: f(S) = sum_j max_{i in S}
  # w_ij, f(empty) = 0): Nemhauser's bound holds for every instance; also the osborn score made monotone by offset
  k = 3
  ratios = []
  sizes = masks.sum(1)
  w_all = rng.uniform(size=(200, m, 5)) ** 3
  for w in w_all:   # NumPy set function (greedy takes any callable): no per-instance dispatch of jax ops
    fl = lambda s, w=w: np.max(np.where(np.asarray(s)[..., :, None], w, 0.0), axis=-2).sum(-1)
    vals = fl(masks)
    opt = vals[sizes <= k].max()
    _, got = greedy_submodular_select(fl, m, k)
    ratios.append(got[-1] / opt)
  assert min(ratios) >= 1 - 1 / math.e
  assert min(ratios) < 1.0                         # the instances are not all trivially solved by greedy
  off = 1 + 0.5 * mc.sum() + dom.max() + task.max()      # the offset makes the osborn score monotone
  mono = lambda b: np.array([f[tuple(r)] for r in np.asarray(b)]) + off * np.asarray(b).sum(1)
  _, got = greedy_submodular_select(mono, m, k)
  assert got[-1] >= (1 - 1 / math.e) * mono(masks)[sizes <= k].max()
  with pytest.raises(ValueError, match="k must"):
    greedy_submodular_select(mono, m, m + 1)
  with pytest.raises(ValueError, match="incohesion"):
    osborn_score(masks[:2], dom, task, -mc)


def test_sinkhorn_ot_of_coinciding_points_is_zero_not_nan():
  # Every point at one location: C = 0, so mean(C) = 0 and normalize_cost used to divide 0 by 0 (a NaN W_D and plan).
  x = jnp.ones((4, 3), jnp.float32)
  w, p = sinkhorn_ot(x, x, num_iters=10)
  assert float(w) == 0.0
  np.testing.assert_allclose(np.asarray(p), np.full((4, 4), 1 / 16), rtol=1e-6)
