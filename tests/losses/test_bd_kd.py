"""BD-KD student loss vs a float64 NumPy transcription of CE + T^2 (w_f KL(t||s) + w_r KL(s||t)) (Amara et al.)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods.losses import bd_kd
from jaxlib_methods.testing import central_difference_grad


def np_softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def np_kl(p, q):
  return np.sum(p * (np.log(p) - np.log(q)), -1)


def np_student(s, t, y, T, wf, wr):
  s = np.asarray(s, np.float64)
  t = np.asarray(t, np.float64)
  ce = -np.log(np_softmax(s)[np.arange(len(y)), y])
  ps, pt = np_softmax(s / T), np_softmax(t / T)
  return ce + T ** 2 * (wf * np_kl(pt, ps) + wr * np_kl(ps, pt))



def np_grad(fn, x, h=1e-6):
  return central_difference_grad(fn, x, h)


@pytest.mark.parametrize("n,k,T,wf,wr", [(1, 2, 1.0, 1.0, 0.0), (4, 5, 3.0, 0.5, 1.5), (3, 7, 2.0, 1.0, 1.0)])
def test_student_loss_matches_numpy_values_and_grad(n, k, T, wf, wr):
  rng = np.random.default_rng(k)
  s = rng.normal(size=(n, k))
  t = rng.normal(size=(n, k)) * 2
  y = rng.integers(0, k, n)
  with jax.enable_x64(True):
    f = lambda a: bd_kd.bd_kd_student_loss(a, jnp.asarray(t), jnp.asarray(y), temperature=T, forward_weight=wf,
                                           reverse_weight=wr)
    got, g, gt = jax.jit(lambda a, b: (  # one program for the value and both gradients
        f(a), jax.grad(lambda a: f(a).sum())(a),
        jax.grad(lambda b: bd_kd.bd_kd_student_loss(a, b, jnp.asarray(y)).sum())(b)))(jnp.asarray(s), jnp.asarray(t))
  np.testing.assert_allclose(np.asarray(got), np_student(s, t, y, T, wf, wr), rtol=1e-10)
  np.testing.assert_allclose(np.asarray(g), np_grad(lambda a: np_student(a, t, y, T, wf, wr).sum(), s), rtol=1e-6,
                             atol=1e-8)
  np.testing.assert_array_equal(np.asarray(gt), 0.0)  # the teacher is a constant in the student's loss


def test_per_example_weights_and_special_cases():
  rng = np.random.default_rng(0)
  s = rng.normal(size=(4, 3))
  t = rng.normal(size=(4, 3))
  y = np.array([0, 1, 2, 0])
  wf = np.array([1.0, 0.0, 0.5, 2.0])
  wr = np.array([0.0, 1.0, 0.5, 0.1])
  with jax.enable_x64(True):
    got = bd_kd.bd_kd_student_loss(jnp.asarray(s), jnp.asarray(t), jnp.asarray(y), temperature=2.0,
                                   forward_weight=jnp.asarray(wf), reverse_weight=jnp.asarray(wr))
    # equal logits: both KLs vanish, the loss is CE
    same = bd_kd.bd_kd_student_loss(jnp.asarray(s), jnp.asarray(s), jnp.asarray(y))
    kl_self = bd_kd.kl_divergence_from_logits(jnp.asarray(s), jnp.asarray(s))
    kl = bd_kd.kl_divergence_from_logits(jnp.asarray(s), jnp.asarray(t), temperature=1.5)
  np.testing.assert_allclose(np.asarray(got), np_student(s, t, y, 2.0, wf, wr), rtol=1e-10)
  ce = optax.losses.softmax_cross_entropy_with_integer_labels(jnp.asarray(s, jnp.float32), jnp.asarray(y))
  np.testing.assert_allclose(np.asarray(same), ce, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(kl_self), 0.0, atol=1e-15)
  assert np.all(np.asarray(kl) > 0)
  np.testing.assert_allclose(np.asarray(kl), np_kl(np_softmax(s / 1.5), np_softmax(t / 1.5)), rtol=1e-10)


def test_teacher_loss_and_entropy_weights():
  rng = np.random.default_rng(1)
  s = rng.normal(size=(5, 4))
  t = rng.normal(size=(5, 4)) * 3
  y = rng.integers(0, 4, 5)
  with jax.enable_x64(True):
    tl = bd_kd.online_kd_teacher_loss(jnp.asarray(t), jnp.asarray(s), jnp.asarray(y), temperature=2.0)
    wf, wr = bd_kd.bd_kd_entropy_weights(jnp.asarray(s), jnp.asarray(t), temperature=2.0, high=1.0, low=0.2)
  ce = -np.log(np_softmax(t)[np.arange(5), y])
  np.testing.assert_allclose(np.asarray(tl), ce + 4.0 * np_kl(np_softmax(s / 2), np_softmax(t / 2)), rtol=1e-10)
  h = lambda x: -np.sum(np_softmax(x / 2) * np.log(np_softmax(x / 2)), -1)
  less_conf = h(s) > h(t)
  np.testing.assert_allclose(np.asarray(wr), np.where(less_conf, 1.0, 0.2))
  np.testing.assert_allclose(np.asarray(wf), np.where(less_conf, 0.2, 1.0))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.bfloat16])
def test_stability(dtype):
  s = jnp.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]], dtype)
  t = jnp.array([[0.0, 1e4, 0.0], [0.0, 0.0, 0.0]], dtype)  # the loss (~5e4) still fits in float16
  y = jnp.array([1, 1])
  loss = lambda a: bd_kd.bd_kd_student_loss(a, t, y, temperature=1.0)
  v, g = jax.jit(lambda a: (loss(a), jax.grad(lambda a: loss(a).astype(jnp.float32).sum())(a)))(s)  # one program
  assert v.dtype == dtype
  assert np.all(np.isfinite(np.asarray(v, np.float32))) and np.all(np.isfinite(np.asarray(g, np.float32)))


def test_bad_inputs():
  s = jnp.zeros((3, 4))
  y = jnp.array([0, 1, 2])
  with pytest.raises(ValueError, match="temperature"):
    bd_kd.bd_kd_student_loss(s, s, y, temperature=0.0)
  with pytest.raises(ValueError, match="teacher_logits"):
    bd_kd.bd_kd_student_loss(s, jnp.zeros((2, 4)), y)
  with pytest.raises(ValueError, match="forward_weight"):
    bd_kd.bd_kd_student_loss(s, s, y, forward_weight=-1.0)
  with pytest.raises(ValueError, match="reverse_weight"):
    bd_kd.bd_kd_student_loss(s, s, y, reverse_weight=jnp.ones(2))
  with pytest.raises(ValueError, match="labels"):
    bd_kd.bd_kd_student_loss(s, s, jnp.array([0, 1]))


def test_masked_minus_inf_classes_add_zero_in_value_and_gradient():
  # Regression: exp(logp) * (logp - logq) and exp(logp) * logp were 0 * NaN / 0 * -inf = NaN for a class masked to
  # -inf (e.g. an unseen class), in the KL terms, the entropy and hence in every BD-KD loss and its gradient.
  rng = np.random.default_rng(7)
  s = rng.normal(size=(4, 3)).astype(np.float32)
  t = rng.normal(size=(4, 3)).astype(np.float32)
  y = jnp.array([0, 1, 2, 1])
  pad = lambda a: jnp.concatenate([jnp.asarray(a), jnp.full((4, 1), -jnp.inf, jnp.float32)], axis=1)

  def student(a, ext):
    return bd_kd.bd_kd_student_loss(a, pad(t) if ext else jnp.asarray(t), y, temperature=2.0,
                                    forward_weight=0.7, reverse_weight=0.4).sum()

  np.testing.assert_allclose(student(pad(s), True), student(jnp.asarray(s), False), rtol=1e-6)
  g_ext = jax.jit(jax.grad(lambda a: student(a, True)))(pad(s))
  g = jax.grad(lambda a: student(a, False))(jnp.asarray(s))
  np.testing.assert_allclose(np.asarray(g_ext), np.concatenate([np.asarray(g), np.zeros((4, 1))], 1), atol=1e-6)
  np.testing.assert_allclose(bd_kd.online_kd_teacher_loss(pad(t), pad(s), y),
                             bd_kd.online_kd_teacher_loss(jnp.asarray(t), jnp.asarray(s), y), rtol=1e-6)
  np.testing.assert_allclose(bd_kd.entropy_from_logits(pad(s)), bd_kd.entropy_from_logits(jnp.asarray(s)), rtol=1e-6)
  w_f, w_r = bd_kd.bd_kd_entropy_weights(pad(s), pad(t))
  assert np.all(np.isfinite(np.asarray(w_f))) and np.all(np.isfinite(np.asarray(w_r)))
