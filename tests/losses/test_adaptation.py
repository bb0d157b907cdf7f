"""RMT's symmetric cross-entropy [44] against float64 NumPy: values, the closed-form student gradient, special cases."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods import losses


def _np_log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _np_sce(zs, zt):
  ls, lt = _np_log_softmax(zs), _np_log_softmax(zt)
  return -0.5 * ((np.exp(lt) * ls).sum(-1) + (np.exp(ls) * lt).sum(-1))


def _np_sce_grad(zs, zt):
  """d/dz_s of the sum over examples: 1/2 (p_s - p_t) - 1/2 p_s (log p_t - <p_s, log p_t>) (teacher constant)."""
  ps, lt = np.exp(_np_log_softmax(zs)), _np_log_softmax(zt)
  return 0.5 * (ps - np.exp(lt)) - 0.5 * ps * (lt - (ps * lt).sum(-1, keepdims=True))


def test_sce_values_gradients_and_special_cases_float64():
  rng = np.random.default_rng(0)
  zs, zt = rng.normal(size=(5, 4)) * 2, rng.normal(size=(5, 4)) * 2
  with jax.enable_x64(True):
    sce = jax.jit(losses.symmetric_cross_entropy)
    np.testing.assert_allclose(np.asarray(sce(zs, zt)), _np_sce(zs, zt), rtol=1e-12)
    g_s, g_t = jax.grad(lambda a, b: sce(a, b).sum(), argnums=(0, 1))(jnp.asarray(zs), jnp.asarray(zt))
    np.testing.assert_allclose(np.asarray(g_s), _np_sce_grad(zs, zt), rtol=1e-10, atol=1e-12)
    assert np.all(np.asarray(g_t) == 0)  # the mean teacher gets no gradient
    # = 1/2 [CE(p_t, student) + CE(p_s, teacher)] with optax's soft-label CE
    ps, pt = jax.nn.softmax(zs), jax.nn.softmax(zt)
    ref = 0.5 * (optax.losses.softmax_cross_entropy(zs, pt) + optax.losses.softmax_cross_entropy(zt, ps))
    np.testing.assert_allclose(np.asarray(sce(zs, zt)), np.asarray(ref), rtol=1e-12)
    # student == teacher: the entropy; class axis 0; vmap
    ent = -(np.exp(_np_log_softmax(zs)) * _np_log_softmax(zs)).sum(-1)
    np.testing.assert_allclose(np.asarray(sce(zs, zs)), ent, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(losses.symmetric_cross_entropy(zs.T, zt.T, axis=0)), _np_sce(zs, zt),
                               rtol=1e-12)
    np.testing.assert_allclose(np.asarray(jax.vmap(sce)(zs[:, None], zt[:, None]))[:, 0], _np_sce(zs, zt), rtol=1e-12)


def test_sce_where_half_precision_and_bad_input():
  zs = jnp.array([[1.0, 2.0, 0.5], [jnp.nan, 0.0, 1.0]])
  zt = jnp.array([[0.0, 1.0, 0.0], [3.0, jnp.nan, 0.0]])
  where = jnp.array([True, False])
  sce = jax.jit(losses.symmetric_cross_entropy)  # one compilation per signature (eager dispatch is slower here)
  out, g = jax.jit(jax.value_and_grad(lambda a, w: sce(a, zt, where=w).sum()))(zs, where)
  out = sce(zs, zt, where=where)
  assert float(out[1]) == 0 and np.all(np.asarray(g[1]) == 0) and np.all(np.isfinite(np.asarray(g)))
  assert np.isnan(float(sce(zs, zt)[1]))  # NaN propagates where not excluded
  half = sce(zs[:1].astype(jnp.bfloat16), zt[:1].astype(jnp.bfloat16))
  assert half.dtype == jnp.bfloat16
  np.testing.assert_allclose(float(half[0]), _np_sce(np.asarray(zs[:1], np.float64), np.asarray(zt[:1]))[0],
                             rtol=2e-2)
  with pytest.raises(ValueError, match="teacher_logits"):
    losses.symmetric_cross_entropy(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
  with pytest.raises(TypeError, match="student_logits"):
    losses.symmetric_cross_entropy(jnp.zeros((2, 3), jnp.int32), jnp.zeros((2, 3)))
  with pytest.raises(TypeError, match="where"):
    losses.symmetric_cross_entropy(jnp.zeros((2, 3)), jnp.zeros((2, 3)), where=jnp.ones(2))


def test_sce_skips_a_class_masked_by_minus_inf_in_both():
  # 0 log 0 = 0 (audit 2026-12-03: it was 0 * -inf = NaN): masking class 0 in both equals dropping it
  lg = np.random.default_rng(4).normal(size=(4, 5)).astype(np.float32)
  masked = lg.copy()
  masked[:, 0] = -np.inf
  val, g = jax.value_and_grad(lambda x: losses.symmetric_cross_entropy(x, masked).sum())(jnp.asarray(masked))
  np.testing.assert_allclose(float(val), float(losses.symmetric_cross_entropy(lg[:, 1:], lg[:, 1:]).sum()), rtol=1e-6)
  assert np.isfinite(np.asarray(g)).all() and np.all(np.asarray(g)[:, 0] == 0)
  # masked in the teacher only: the student puts mass where the teacher has none, KL-like +inf, not NaN
  assert np.all(np.isposinf(np.asarray(losses.symmetric_cross_entropy(lg, masked))))
