"""N:M sparsity and progressive gradient flow [170]: the mask keeps exactly N of every M (the largest, by a NumPy
sort), MDGF / SR-STE forward values and gradients by their formulas, and the SDGF stages of the official code."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import optim as O


@pytest.mark.parametrize("n,m,axis", [(1, 16, 0), (2, 4, -1), (3, 8, 1)])
def test_mask_keeps_exactly_n_of_every_m_and_they_are_the_largest(n, m, axis):
  rng = np.random.default_rng(n * 100 + m)
  w = rng.normal(size=(32, 16))
  mask = np.asarray(O.nm_mask(jnp.asarray(w, jnp.float32), n, m, axis=axis))
  moved_w, moved_m = np.moveaxis(w, axis, -1), np.moveaxis(mask, axis, -1)
  gw = moved_w.reshape(moved_w.shape[:-1] + (-1, m))
  gm = moved_m.reshape(moved_m.shape[:-1] + (-1, m))
  assert (gm.sum(-1) == n).all()
  top = np.sort(np.abs(gw), axis=-1)[..., m - n:]
  np.testing.assert_allclose(np.sort(np.where(gm, np.abs(gw), -1.0), axis=-1)[..., m - n:], top, rtol=1e-6)


def test_traced_n_under_jit_and_ties_keep_exactly_n():
  w = jnp.ones((4, 8))  # all ties: the stable sort keeps the first n of each group
  f = jax.jit(lambda w, n: O.nm_mask(w, n, 4))
  for n in range(5):
    mask = np.asarray(f(w, jnp.asarray(n, jnp.int32)))
    assert (mask.reshape(4, 2, 4).sum(-1) == n).all()
    assert mask.reshape(4, 2, 4)[..., :n].all()


def test_decaying_gradient_flow_forward_and_straight_through_gradient():
  w = jnp.array([1.0, -2.0, 3.0, 0.5])
  mask = jnp.array([True, False, True, False])
  for beta in (0.0, 0.3, 1.0):
    out = O.decaying_gradient_flow(w, mask, beta)
    np.testing.assert_allclose(np.asarray(out), np.asarray(w) * np.where(np.asarray(mask), 1.0, beta), rtol=1e-6)
    cot = jnp.array([0.1, 0.2, 0.3, 0.4])
    g = jax.grad(lambda w_: jnp.sum(O.decaying_gradient_flow(w_, mask, beta) * cot))(w)
    np.testing.assert_allclose(np.asarray(g), np.asarray(cot))  # the pruned weights get the full gradient


def test_sr_ste_forward_and_gradient():
  w = jnp.array([1.0, -2.0, 3.0, 0.5])
  mask = jnp.array([1.0, 0.0, 1.0, 0.0])
  np.testing.assert_allclose(np.asarray(O.sr_ste(w, mask, 0.1)), [1.0, 0.0, 3.0, 0.0])
  cot = jnp.array([0.1, 0.2, 0.3, 0.4])
  g = jax.grad(lambda w_: jnp.sum(O.sr_ste(w_, mask, 0.1) * cot))(w)
  np.testing.assert_allclose(np.asarray(g), [0.1, 0.2 + 0.1 * -2.0, 0.3, 0.4 + 0.1 * 0.5], rtol=1e-6)


def test_mdgf_decay_schedules():
  lin = O.mdgf_decay("linear", 0.01, start_step=10)
  ex = O.mdgf_decay("exp", 0.05, start_step=10)
  for t in (0, 9, 10, 50, 150):
    assert float(lin(t)) == pytest.approx(1.0 if t < 10 else max(0.0, 1 - 0.01 * (t - 10)), abs=1e-7)
    assert float(ex(t)) == pytest.approx(1.0 if t < 10 else math.exp(-0.05 * (t - 10)), rel=1e-6)


def test_sdgf_stages_follow_the_official_frames_for_1_of_16():
  """For 1:16 the official code uses 15:16, 8:16, 4:16, 2:16 over equal frames of the sparse phase, then 1:16."""
  sched = O.sdgf_n(1, 16, dense_steps=20, decay_steps=80)
  got = [int(sched(t)) for t in (0, 19, 20, 39, 40, 59, 60, 79, 80, 99, 100, 500)]
  assert got == [16, 16, 15, 15, 8, 8, 4, 4, 2, 2, 1, 1]


def test_bad_input_is_rejected():
  with pytest.raises(ValueError, match="multiple of m"):
    O.nm_mask(jnp.ones((3, 6)), 1, 4)
  with pytest.raises(ValueError, match="n must lie"):
    O.nm_mask(jnp.ones((4, 4)), 5, 4)
  with pytest.raises(ValueError, match="m must be"):
    O.nm_mask(jnp.ones((4, 4)), 1, 0)
  with pytest.raises(ValueError, match="kind"):
    O.mdgf_decay("cosine", 0.1)
  with pytest.raises(ValueError, match="mask must have"):
    O.decaying_gradient_flow(jnp.ones(4), jnp.ones(3, bool), 0.5)
  with pytest.raises(ValueError, match="decay"):
    O.sr_ste(jnp.ones(4), jnp.ones(4), -1.0)
