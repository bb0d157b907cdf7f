"""HARD [143]: the augmentor objective (`hard_generator_loss`, `hard_augment_objective`) against a float64 NumPy
transcription (values and gradients, the student-CE cap), the gradient reaching only the augmentor, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import losses


def _np_softmax(z):
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _np_hard(s, t, y, alpha, beta, cap):
  """Value and gradients (w.r.t. s, t) of alpha CE(t) - beta min(CE(s), cap), per row, the cap rescaling the row."""
  ps, pt = _np_softmax(s), _np_softmax(t)
  onehot = np.eye(s.shape[-1])[y]
  ce_s, ce_t = -np.log(ps[np.arange(len(y)), y]), -np.log(pt[np.arange(len(y)), y])
  scale = np.ones_like(ce_s) if cap is None else np.where(ce_s > cap, cap / ce_s, 1.0)
  val = alpha * ce_t - beta * ce_s * scale
  return val, -beta * scale[:, None] * (ps - onehot), alpha * (pt - onehot)


def test_hard_generator_loss_matches_numpy_float64_values_grads_and_cap():
  rng = np.random.default_rng(0)
  b, k = 6, 4
  s, t = rng.normal(size=(b, k)) * 2, rng.normal(size=(b, k)) * 2
  y = rng.integers(0, k, b)
  with jax.enable_x64(True):
    fn = lambda s, t, cap: losses.hard_generator_loss(s, t, y, alpha=3.0, beta=0.5, student_max=cap)
    # one compilation, the cap traced: 2.5 binds on some rows, 1e6 on none (= no cap)
    f = jax.jit(lambda s, t, cap: (fn(s, t, cap), jax.jacrev(lambda s, t: jnp.sum(fn(s, t, cap)), (0, 1))(s, t)))
    outs = [f(jnp.asarray(s), jnp.asarray(t), jnp.asarray(c)) for c in (2.5, 1e6)]
    for (val, (gs, gt)), cap in zip(outs, (2.5, None)):
      rv, rgs, rgt = _np_hard(s, t, y, 3.0, 0.5, cap)
      np.testing.assert_allclose(val, rv, rtol=1e-12, atol=1e-12)
      np.testing.assert_allclose(gs, rgs, rtol=1e-10, atol=1e-12)
      np.testing.assert_allclose(gt, rgt, rtol=1e-10, atol=1e-12)
    ce_s = -np.log(_np_softmax(s)[np.arange(b), y])
    assert (ce_s > 2.5).any() and (ce_s <= 2.5).any()
    np.testing.assert_allclose(np.asarray(outs[0][0])[ce_s > 2.5], (3.0 * -np.log(
        _np_softmax(t)[np.arange(b), y]) - 0.5 * 2.5)[ce_s > 2.5], rtol=1e-12)
  # vmap over a leading axis equals the per-slice call; where zeroes rows; bf16 in, bf16 out (one compilation)
  s3, t3 = jnp.asarray(np.stack([s, s[::-1]]), jnp.float32), jnp.asarray(np.stack([t, t[::-1]]), jnp.float32)
  y3 = jnp.asarray(np.stack([y, y[::-1]]))
  w = jnp.array([True, False, True, True, False, True])

  @jax.jit
  def g(s3, t3, y3, w):
    v = jax.vmap(lambda a, c, l: losses.hard_generator_loss(a, c, l, student_max=2.0))(s3, t3, y3)
    return (v, losses.hard_generator_loss(s3[1], t3[1], y3[1], student_max=2.0),
            losses.hard_generator_loss(s3[0], t3[0], y3[0], where=w),
            losses.hard_generator_loss(s3[0].astype(jnp.bfloat16), t3[0].astype(jnp.bfloat16), y3[0]))
  v, v1, out, half = g(s3, t3, y3, w)
  np.testing.assert_allclose(v[1], v1, rtol=1e-6)
  assert out.dtype == jnp.float32 and float(out[1]) == 0.0 and float(out[4]) == 0.0 and float(out[0]) != 0.0
  assert half.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(half)))


def test_hard_augment_objective_gradient_reaches_only_the_augmentor():
  """Linear teacher/student on x' = x + a: d/da = sum_i alpha (p_t - e_y) W_t - beta (p_s - e_y) W_s (chain rule
  in NumPy float64); the networks' parameters get exactly zero."""
  rng = np.random.default_rng(1)
  b, d, k = 5, 3, 4
  x = rng.normal(size=(b, d))
  y = rng.integers(0, k, b)
  a = rng.normal(size=(d,)) * 0.3
  wt, ws = rng.normal(size=(d, k)), rng.normal(size=(d, k))
  augment = lambda p, x: x + p
  net = lambda w, x: x @ w
  with jax.enable_x64(True):
    def obj(a, wt, ws):
      return jnp.sum(losses.hard_augment_objective(a, x, jnp.asarray(y), augment=augment, teacher=net,
                                                   teacher_params=wt, student=net, student_params=ws,
                                                   alpha=2.0, beta=1.0))
    val, (ga, gwt, gws) = jax.jit(jax.value_and_grad(obj, argnums=(0, 1, 2)))(a, wt, ws)
  xa = x + a
  rv, rgs, rgt = _np_hard(xa @ ws, xa @ wt, y, 2.0, 1.0, None)
  np.testing.assert_allclose(val, rv.sum(), rtol=1e-12)
  np.testing.assert_allclose(ga, (rgt @ wt.T + rgs @ ws.T).sum(0), rtol=1e-10, atol=1e-12)
  assert not np.any(np.asarray(gwt)) and not np.any(np.asarray(gws))
  # one descent step on the augmentor lowers the objective (evaluated in NumPy): the sign is the one minimised
  xb = x + (a - 1e-3 * np.asarray(ga))
  assert _np_hard(xb @ ws, xb @ wt, y, 2.0, 1.0, None)[0].sum() < rv.sum()


def test_hard_bad_input():
  s, t, y = jnp.zeros((3, 4)), jnp.zeros((3, 4)), jnp.array([0, 1, 2])
  with pytest.raises(ValueError, match="alpha"):
    losses.hard_generator_loss(s, t, y, alpha=-1.0)
  with pytest.raises(ValueError, match="beta"):
    losses.hard_generator_loss(s, t, y, beta=float("nan"))
  with pytest.raises(ValueError, match="student_max"):
    losses.hard_generator_loss(s, t, y, student_max=0.0)
  with pytest.raises(ValueError, match="teacher_logits"):
    losses.hard_generator_loss(s, jnp.zeros((3, 5)), y)
  with pytest.raises(ValueError, match="labels"):
    losses.hard_generator_loss(s, t, jnp.array([0, 1, 7]))
  with pytest.raises(TypeError, match="labels"):
    losses.hard_generator_loss(s, t, jnp.zeros(3))
  with pytest.raises(TypeError, match="augment"):
    losses.hard_augment_objective(0.0, s, y, augment=None, teacher=lambda p, x: x, teacher_params=0.0,
                                  student=lambda p, x: x, student_params=0.0)
  with pytest.raises(ValueError, match="student"):
    losses.hard_augment_objective(0.0, s, y, augment=lambda p, x: x + p, teacher=lambda p, x: x,
                                  teacher_params=0.0, student=lambda p, x: x[:2], student_params=0.0)
