"""TCM loss and OPIS vs float64 NumPy transcriptions; TCM parity with pytorch-metric-learning (Zhang et al. 2024)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.losses import tcm


def np_cos(e):
  e = np.asarray(e, np.float64)
  e = e / np.linalg.norm(e, axis=1, keepdims=True)
  return e @ e.T


def np_tcm(sim, y, mp=0.9, mn=0.5, lp=1.0, ln=1.0):
  n = len(y)
  hp, hn = [], []
  for i in range(n):
    for j in range(n):
      if i == j:
        continue
      if y[i] == y[j] and sim[i, j] <= mp:
        hp.append(mp - sim[i, j])
      if y[i] != y[j] and sim[i, j] >= mn:
        hn.append(sim[i, j] - mn)
  return lp * (np.mean(hp) if hp else 0.0) + ln * (np.mean(hn) if hn else 0.0)


def np_opis(sim, y, thresholds, num_classes):
  n = len(y)

  def f1(tp, fp, fn):
    return 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) > 0 else 0.0

  per_class = []
  for c in range(num_classes):
    if not np.any(y == c):
      continue
    sq = []
    for d in thresholds:
      tp = fp = fn = 0
      TP = FP = FN = 0
      for i in range(n):
        for j in range(n):
          if i == j:
            continue
          acc = sim[i, j] >= d
          same = y[i] == y[j]
          TP += acc and same
          FN += (not acc) and same
          FP += acc and not same
          if y[i] == c:
            tp += acc and same
            fn += (not acc) and same
            fp += acc and not same
      sq.append((f1(tp, fp, fn) - f1(TP, FP, FN)) ** 2)
    per_class.append(np.mean(sq))
  return np.mean(per_class)


def _emb(n=10, d=4, seed=0):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 3, n)
  centers = rng.normal(size=(3, d)) * 2
  return centers[y] + rng.normal(size=(n, d)), y


@jax.jit
def _tcm_value_and_grad(e, y, mp, mn, lp, ln):
  """tcm_loss and its gradient in e, margins and weights traced: one compile per shape, shared by the parametrized
  cases."""
  return jax.value_and_grad(lambda a: tcm.tcm_loss(a, y, m_pos=mp, m_neg=mn, lam_pos=lp, lam_neg=ln))(e)


@pytest.mark.parametrize("mp,mn,lp,ln", [(0.9, 0.5, 1.0, 1.0), (0.5, 0.0, 0.3, 2.0), (0.95, -0.2, 1.0, 0.0)])
def test_tcm_matches_numpy_values_and_grad(mp, mn, lp, ln):
  e, y = _emb()
  with jax.enable_x64(True):
    got, g = _tcm_value_and_grad(jnp.asarray(e), jnp.asarray(y), mp, mn, lp, ln)
  np.testing.assert_allclose(float(got), np_tcm(np_cos(e), y, mp, mn, lp, ln), rtol=1e-10)
  h = 1e-6
  fd = np.zeros_like(e)
  for idx in np.ndindex(e.shape):
    d = np.zeros_like(e)
    d[idx] = h
    fd[idx] = (np_tcm(np_cos(e + d), y, mp, mn, lp, ln) - np_tcm(np_cos(e - d), y, mp, mn, lp, ln)) / (2 * h)
  np.testing.assert_allclose(np.asarray(g), fd, rtol=1e-5, atol=1e-8)


def test_tcm_zero_when_no_hard_pairs():
  # Two tight classes, orthogonal to each other: positives at s ~ 1 >= m+, negatives at s ~ 0 <= m-.
  e = jnp.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [0.01, 1.0]])
  y = jnp.array([0, 0, 1, 1])
  loss = jax.jit(tcm.tcm_loss)  # one program for both embeddings
  assert float(loss(e, y)) == 0.0
  # and positive when a positive pair is pulled apart
  e2 = e.at[1].set(jnp.array([-1.0, 0.2]))
  assert float(loss(e2, y)) > 0.0


def test_opis_matches_numpy_and_is_zero_for_identical_classes():
  e, y = _emb(9, 3, seed=4)
  sim = np_cos(e)
  th = np.linspace(-0.5, 0.9, 8)
  opis = jax.jit(tcm.opis, static_argnames="num_classes")
  got = opis(jnp.asarray(sim, jnp.float32), jnp.asarray(y), jnp.asarray(th), num_classes=4)  # class 3 absent
  np.testing.assert_allclose(float(got), np_opis(sim.astype(np.float32), y, th, 4), rtol=1e-5, atol=1e-8)
  # Classes with identical structure (block similarity, same within/between values) have identical F1 curves.
  y2 = np.repeat(np.arange(3), 3)
  sim2 = np.where(y2[:, None] == y2[None, :], 0.8, 0.1)
  # 0 up to float32 rounding: exactly 0 on CPU, 4.4e-16 on an H200 (another summation order)
  assert abs(float(opis(jnp.asarray(sim2), jnp.asarray(y2), jnp.asarray(th), num_classes=3))) <= 1e-12


def np_epsilon_opis(sim, y, thresholds, num_classes, eps):
  """Float64 loops: rank the present classes by mean F1 over the thresholds; pool the pairs of the worst and of the
  best ceil(eps * T) classes; mean over thresholds of the squared gap of their F1."""
  n = len(y)

  def f1(tp, fp, fn):
    return 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) > 0 else 0.0

  def counts(classes, d):
    tp = fp = fn = 0
    for i in range(n):
      if y[i] not in classes:
        continue
      for j in range(n):
        if i == j:
          continue
        acc, same = sim[i, j] >= d, y[i] == y[j]
        tp += acc and same
        fn += (not acc) and same
        fp += acc and not same
    return tp, fp, fn

  present = [c for c in range(num_classes) if np.any(y == c)]
  score = {c: np.mean([f1(*counts({c}, d)) for d in thresholds]) for c in present}
  order = sorted(present, key=lambda c: score[c])  # stable: ties keep the class order
  m = max(1, int(np.ceil(eps * len(present))))
  worst, best = set(order[:m]), set(sorted(present, key=lambda c: -score[c])[:m])
  return np.mean([(f1(*counts(worst, d)) - f1(*counts(best, d))) ** 2 for d in thresholds])


@pytest.mark.parametrize("eps,num_classes", [(0.05, 4), (0.4, 4), (0.5, 6)])
def test_epsilon_opis_matches_numpy(eps, num_classes):
  e, y = _emb(12, 3, seed=5)
  sim = np_cos(e).astype(np.float32)
  th = np.linspace(-0.5, 0.9, 8)
  eps_opis = jax.jit(tcm.epsilon_opis, static_argnames=("num_classes", "epsilon"))
  got = eps_opis(jnp.asarray(sim), jnp.asarray(y), jnp.asarray(th), num_classes=num_classes, epsilon=eps)
  np.testing.assert_allclose(float(got), np_epsilon_opis(sim, y, th, num_classes, eps), rtol=1e-5, atol=1e-8)


def test_epsilon_opis_zero_for_identical_classes_and_positive_for_a_loose_class():
  th = np.linspace(0.05, 0.95, 10)  # no threshold ties a similarity value
  y = np.repeat(np.arange(4), 3)
  same = y[:, None] == y[None, :]
  sim = np.where(same, 0.8, 0.1)
  eps_opis = jax.jit(lambda s: tcm.epsilon_opis(s, jnp.asarray(y), jnp.asarray(th), num_classes=4, epsilon=0.25))
  assert float(eps_opis(jnp.asarray(sim))) == 0  # (one program for both similarity matrices)
  loose = np.where(same & (y[:, None] == 3), 0.3, sim)  # class 3's positives fall below thresholds 0.4 .. 0.9
  v = float(eps_opis(jnp.asarray(loose)))
  assert v > 0.1
  np.testing.assert_allclose(v, np_epsilon_opis(loose, y, th, 4, 0.25), rtol=1e-6)
  with pytest.raises(ValueError, match="epsilon"):
    tcm.epsilon_opis(jnp.asarray(sim), jnp.asarray(y), jnp.asarray(th), num_classes=4, epsilon=0.0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.bfloat16])
def test_stability(dtype):
  e = jnp.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1.0], [1e4, 1e4, 0.0], [0.0, 0.0, 1e-3]], dtype)
  y = jnp.array([0, 0, 1, 1])
  v, g = jax.jit(jax.value_and_grad(lambda a: tcm.tcm_loss(a, y)))(e)  # one program
  assert np.isfinite(float(v)) and np.all(np.isfinite(np.asarray(g, np.float32)))


def test_bad_inputs():
  e = jnp.ones((4, 3))
  y = jnp.array([0, 0, 1, 1])
  with pytest.raises(ValueError, match="m_pos"):
    tcm.tcm_loss(e, y, m_pos=1.5)
  with pytest.raises(ValueError, match="lam_neg"):
    tcm.tcm_loss(e, y, lam_neg=-1.0)
  with pytest.raises(ValueError, match="labels"):
    tcm.tcm_loss(e, jnp.array([0, 1]))
  with pytest.raises(ValueError, match="square"):
    tcm.tcm_loss_from_similarity(jnp.ones((3, 4)), jnp.zeros(3, jnp.int32))
  with pytest.raises(ValueError, match="thresholds"):
    tcm.opis(jnp.ones((4, 4)), y, jnp.ones((2, 2)), num_classes=2)
  with pytest.raises(ValueError, match="num_classes"):
    tcm.opis(jnp.ones((4, 4)), y, jnp.ones(3), num_classes=0)


@pytest.mark.parity
@pytest.mark.parametrize("seed,mp,mn", [(0, 0.9, 0.5), (1, 0.3, -0.1)])
def test_parity_with_pytorch_metric_learning(seed, mp, mn):
  torch = pytest.importorskip("torch", reason="parity test needs torch")
  pml = pytest.importorskip("pytorch_metric_learning.losses.tcm_loss",
                            reason="parity test needs pytorch-metric-learning")
  e, y = _emb(12, 5, seed)
  ref_fn = pml.ThresholdConsistentMarginLoss(lambda_plus=0.7, lambda_minus=1.3, margin_plus=mp, margin_minus=mn)
  te = torch.tensor(e, dtype=torch.float64, requires_grad=True)
  ref = ref_fn(te, torch.tensor(y))
  ref.backward()
  with jax.enable_x64(True):
    got, g = _tcm_value_and_grad(jnp.asarray(e), jnp.asarray(y), mp, mn, 0.7, 1.3)
  np.testing.assert_allclose(float(got), float(ref.detach()), rtol=1e-10)
  np.testing.assert_allclose(np.asarray(g), te.grad.numpy(), rtol=1e-8, atol=1e-12)
