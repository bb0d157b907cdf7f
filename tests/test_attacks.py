"""Transfer attacks [106] [111] [115]: I-FGSM / MI-FGSM, MI-CWA and AdaEA against float64 NumPy transcriptions on
linear softmax models (whose input gradient has a closed form), the budget and box always hold, and bad input."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import attacks as A

RNG = np.random.default_rng(0)
B, H, W, C, K = 6, 2, 2, 3, 4
D = H * W * C
WS = [RNG.normal(size=(D, K)) for _ in range(3)]
X = RNG.uniform(0.2, 0.8, size=(B, H, W, C))
Y = RNG.integers(0, K, size=B)


def _model(w):
  wj = jnp.asarray(w, jnp.float32)
  return lambda x: x.reshape(x.shape[0], -1) @ wj


def _softmax(z):
  e = np.exp(z - z.max(1, keepdims=True))
  return e / e.sum(1, keepdims=True)


def _grad_np(ws, x, y, weights=None):
  """d/dx of the batch-mean CE of sum_i weights_i x W_i (closed form)."""
  weights = [1.0 / len(ws)] * len(ws) if weights is None else weights
  weff = sum(a * w for a, w in zip(weights, ws))
  z = x.reshape(B, -1) @ weff
  p = _softmax(z)
  p[np.arange(B), y] -= 1
  return (p @ weff.T / B).reshape(x.shape)


def _ce_np(w, x, y):
  p = _softmax(x.reshape(B, -1) @ w)
  return -np.mean(np.log(p[np.arange(B), y]))


def _proj(xa, x0, eps):
  return np.clip(np.clip(xa, x0 - eps, x0 + eps), 0.0, 1.0)


def _l1(g):
  return np.maximum(np.abs(g.reshape(B, -1)).sum(1), 1e-12).reshape(B, 1, 1, 1)


def _l2(g):
  return np.maximum(np.sqrt((g.reshape(B, -1) ** 2).sum(1)), 1e-12).reshape(B, 1, 1, 1)


def _run(fn, models, **kw):
  return np.asarray(jax.jit(lambda x, y: fn(models, x, y, **kw))(jnp.asarray(X, jnp.float32), jnp.asarray(Y)),
                    np.float64)


@pytest.mark.parametrize("momentum,ensemble", [(0.0, "logits"), pytest.param(1.0, "logits", marks=pytest.mark.slow),
                                               (0.5, "cycle")])
def test_ifgsm_and_mifgsm_match_numpy(momentum, ensemble):
  eps, alpha, steps = 0.05, 0.01, 7
  got = _run(A.ifgsm, [_model(w) for w in WS], eps=eps, step_size=alpha, steps=steps, momentum=momentum,
             ensemble=ensemble)
  xa, v = X.copy(), np.zeros_like(X)
  for t in range(steps):
    g = _grad_np([WS[t % 3]], xa, Y) if ensemble == "cycle" else _grad_np(WS, xa, Y)
    v = momentum * v + g / _l1(g)
    xa = _proj(xa + alpha * np.sign(v), X, eps)
  np.testing.assert_allclose(got, xa, atol=1e-5)


def test_cwa_matches_a_numpy_transcription_of_the_official_algorithm():
  eps, steps, mu, beta = 0.06, 4, 1.0, 0.3
  got = _run(A.cwa_attack, [_model(w) for w in WS], eps=eps, steps=steps, inner_step_size=beta, momentum=mu)
  xi, r = eps / 5, eps / 15
  xt, v, m = X.copy(), np.zeros_like(X), np.zeros_like(X)
  for _ in range(steps):
    xs = _proj(xt - r * np.sign(_grad_np(WS, xt, Y)), X, eps)      # MI-SAM's reverse step
    for w in WS:                                                     # MI-CSE's inner pass
      gi = _grad_np([w], xs, Y)
      v = mu * v + gi / _l2(gi)
      xs = _proj(xs + beta * v, X, eps)
    d = xs - xt
    m = mu * m + d / _l1(d)
    xt = _proj(xt + xi * np.sign(m), X, eps)
  np.testing.assert_allclose(got, xt, atol=1e-5)


def test_adaea_pieces_match_numpy_and_reduce_to_ensemble_ifgsm():
  models = [_model(w) for w in WS]
  eps, alpha = 0.05, 0.01
  x0, y = jnp.asarray(X, jnp.float32), jnp.asarray(Y)
  grads_np = [_grad_np([w], X, Y) for w in WS]
  # AGM: w_j = beta sum_{i != j} L_i(x^j) / L_i(x^i), x^j one I-FGSM step on model j; softmax.
  steps = [_proj(X + alpha * np.sign(g), X, eps) for g in grads_np]
  raw = [10.0 * sum(_ce_np(WS[i], steps[j], Y) / _ce_np(WS[i], steps[i], Y) for i in range(3) if i != j)
         for j in range(3)]
  want = np.exp(raw - np.max(raw)) / np.exp(raw - np.max(raw)).sum()
  got = A.adaea_weights(models, x0, x0, y, [jnp.asarray(g, jnp.float32) for g in grads_np], eps=eps, step_size=alpha)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4)
  # DRF: mean pairwise cosine along the channel axis per pixel, thresholded.
  unit = [g / np.linalg.norm(g, axis=-1, keepdims=True) for g in grads_np]
  mean = sum((unit[i] * unit[j]).sum(-1, keepdims=True) for i in range(3) for j in range(i + 1, 3)) / 3
  drf = A.disparity_reduced_filter([jnp.asarray(g, jnp.float32) for g in grads_np], threshold=0.1)
  np.testing.assert_array_equal(np.asarray(drf), (mean >= 0.1).astype(np.float32))
  # Without AGM and DRF it is I-FGSM on the equally weighted logits.
  plain = _run(A.adaea_attack, models, eps=eps, step_size=alpha, steps=5, use_agm=False, use_drf=False)
  ref = _run(A.ifgsm, models, eps=eps, step_size=alpha, steps=5)
  np.testing.assert_allclose(plain, ref, atol=1e-6)


@pytest.mark.parametrize("attack", ["ifgsm", pytest.param("cwa", marks=pytest.mark.slow),
                                    pytest.param("adaea", marks=pytest.mark.slow)])
def test_budget_and_box_hold_and_the_loss_goes_up(attack):
  models = [_model(w) for w in WS]
  eps = 0.03
  fn = {"ifgsm": functools.partial(A.ifgsm, step_size=0.01, steps=5),
        "cwa": functools.partial(A.cwa_attack, steps=3, inner_step_size=0.5),
        "adaea": functools.partial(A.adaea_attack, step_size=0.01, steps=5)}[attack]
  xa = _run(fn, models, eps=eps)
  assert np.abs(xa - X).max() <= eps + 1e-6 and xa.min() >= 0.0 and xa.max() <= 1.0
  w_ens = sum(WS) / 3
  assert _ce_np(w_ens, xa, Y) > _ce_np(w_ens, X, Y)


def test_bad_input_is_rejected():
  m = [_model(w) for w in WS]
  x, y = jnp.asarray(X, jnp.float32), jnp.asarray(Y)
  with pytest.raises(ValueError, match="ensemble"):
    A.ifgsm(m, x, y, eps=0.1, step_size=0.01, steps=1, ensemble="mean")
  with pytest.raises(ValueError, match="steps"):
    A.ifgsm(m, x, y, eps=0.1, step_size=0.01, steps=-1)
  with pytest.raises(ValueError, match="eps"):
    A.cwa_attack(m, x, y, eps=-0.1, steps=1)
  with pytest.raises(TypeError, match="y must be an integer"):
    A.ifgsm(m, x, y.astype(jnp.float32), eps=0.1, step_size=0.01, steps=1)
  with pytest.raises(ValueError, match="y must be"):
    A.ifgsm(m, x, y[:2], eps=0.1, step_size=0.01, steps=1)
  with pytest.raises(ValueError, match="at least 2"):
    A.adaea_attack(m[:1], x, y, eps=0.1, step_size=0.01, steps=1)
  with pytest.raises(TypeError, match="models"):
    A.ifgsm([1, 2], x, y, eps=0.1, step_size=0.01, steps=1)


def test_transfer_success_rate_counts_misclassified_examples():
  w = np.eye(D, K)
  x = np.zeros((4, H, W, C), np.float32)
  x.reshape(4, -1)[np.arange(4), [0, 1, 2, 3]] = 1.0  # logits = one-hot of class i for example i
  y = np.array([0, 1, 0, 0])  # examples 2 and 3 are misclassified
  m = _model(w)
  assert float(A.transfer_success_rate(m, jnp.asarray(x), jnp.asarray(y))) == pytest.approx(0.5)
  where = np.array([1, 1, 1, 0])
  assert float(A.transfer_success_rate(m, jnp.asarray(x), jnp.asarray(y), where)) == pytest.approx(1 / 3)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_inputs_stay_inside_the_budget_after_the_cast_back(dtype):
  # The attack runs in float32; casting x_adv back to a half-precision grid used to round entries up to half an
  # ulp outside the eps-ball (bfloat16: 0.03125 > eps = 0.03).
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.uniform(0.2, 0.8, size=(64, H, W, C)), dtype)
  y = jnp.asarray(rng.integers(0, K, size=64))
  eps = 0.03
  xa = A.ifgsm([_model(w) for w in WS], x, y, eps=eps, step_size=0.01, steps=5)
  assert xa.dtype == dtype
  d = np.asarray(xa, np.float64) - np.asarray(x, np.float64)
  assert np.abs(d).max() <= eps and np.abs(d).max() > eps - 0.01  # the budget is used, and it holds
  assert float(jnp.min(xa)) >= 0.0 and float(jnp.max(xa)) <= 1.0


def test_transfer_success_rate_rejects_misshaped_labels_and_mask():
  m = _model(WS[0])
  x, y = jnp.asarray(X, jnp.float32), jnp.asarray(Y)
  with pytest.raises(ValueError, match="where must be"):  # [B, 1] used to broadcast to [B, B]: a rate of 1.0
    A.transfer_success_rate(m, x, y, jnp.ones((B, 1)))
  with pytest.raises(ValueError, match="y must be"):
    A.transfer_success_rate(m, x, y[:, None])


def test_negative_eps_is_rejected_by_the_public_pieces():
  # project_linf (and adaea_weights through it) used to return x - |eps|, outside the (empty) ball, silently.
  x = jnp.full((2, 3), 0.5)
  with pytest.raises(ValueError, match="eps"):
    A.project_linf(x + 0.2, x, -0.1)
  m = [_model(w) for w in WS]
  x0, y = jnp.asarray(X, jnp.float32), jnp.asarray(Y)
  grads = [A.input_gradient(f, x0, y) for f in m]
  with pytest.raises(ValueError, match="eps"):
    A.adaea_weights(m, x0, x0, y, grads, eps=-0.1, step_size=0.01)
  # a traced eps is not inspected (it stays jit-able)
  out = jax.jit(lambda e: A.project_linf(x + 0.2, x, e))(0.1)
  np.testing.assert_allclose(np.asarray(out), 0.6, atol=1e-6)


def test_clean_inputs_outside_the_box_are_rejected_eagerly_and_poisoned_under_jit():
  # x in [-1, 1] with the default box [0, 1] used to be clipped into the box: ||x_adv - x||_inf ~ 0.94 >> eps.
  m = [_model(w) for w in WS]
  x = np.array(X, np.float32)
  x[0, 0, 0, 0], x[1, 0, 0, 1] = -0.5, np.nan
  y = jnp.asarray(Y)
  for fn, kw in ((A.ifgsm, dict(step_size=0.01, steps=2)), (A.cwa_attack, dict(steps=1, inner_step_size=0.1)),
                 (A.adaea_attack, dict(step_size=0.01, steps=1))):
    with pytest.raises(ValueError, match=r"x must be inside the box"):
      fn(m, jnp.asarray(x), y, eps=0.03, **kw)
  xa = np.asarray(jax.jit(lambda z: A.ifgsm(m, z, y, eps=0.03, step_size=0.01, steps=2))(jnp.asarray(x)))
  bad = ~np.all((x >= 0) & (x <= 1), axis=(1, 2, 3))  # examples 0 and 1
  assert bad.tolist() == [True, True] + [False] * (B - 2)
  assert np.isnan(xa[bad]).all() and np.isfinite(xa[~bad]).all()
  # a shifted box is honoured: inputs in [-1, 1] with clip_min=-1 are valid
  xs = jnp.asarray(2 * X - 1, jnp.float32)
  out = A.ifgsm(m, xs, y, eps=0.03, step_size=0.01, steps=2, clip_min=-1.0)
  assert np.abs(np.asarray(out) - np.asarray(xs)).max() <= 0.03 + 1e-6


def test_adaea_is_finite_when_a_surrogate_is_saturated():
  # Logits scaled by 1e4: every CE is exactly 0 in float32, and AGM's ratio L_i(x^j) / L_i(x^i) was 0 / 0 = NaN,
  # which made every weight, then x_adv, NaN.
  m = [lambda z, w=w: 1e4 * (z.reshape(z.shape[0], -1) @ jnp.asarray(w, jnp.float32)) for w in WS[:2]]
  x = jnp.asarray(X, jnp.float32)
  y = jnp.argmax(m[0](x), -1)
  assert float(A.cross_entropy(m[0](x), y)) == 0.0
  grads = [A.input_gradient(f, x, y) for f in m]
  w = np.asarray(A.adaea_weights(m, x, x, y, grads, eps=0.001, step_size=0.0001))
  assert np.isfinite(w).all() and abs(w.sum() - 1) < 1e-6
  xa = A.adaea_attack(m, x, y, eps=0.001, step_size=0.0001, steps=2)
  assert np.isfinite(np.asarray(xa)).all() and np.abs(np.asarray(xa) - X).max() <= 0.001 + 1e-6
