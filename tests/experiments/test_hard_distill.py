"""The HARD toy [143]: the signals, the CNN teacher's shift invariance and the augmentor's shifts (against np.roll),
and the claims' logic."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from experiments import _seed_stats as st
from experiments import hard_distill as exp
from jaxlib_methods.runner import experiment as exp_lib


def test_signals_teacher_and_augmentor_against_numpy():
  cfg = dataclasses.replace(exp_lib.get("hard_distill").config("cpu", exp.TINY), noise=0.0, max_noise=0.0)
  L = cfg.length
  tm = exp.templates(cfg, 0)
  x, y, pos = exp.make_set(cfg, 0, 64, L - 1, 2)
  # a noiseless signal is its class template (zero-padded) rolled by its position
  np.testing.assert_allclose(x, np.stack([np.roll(tm[c], p) for c, p in zip(y, pos)]), atol=1e-6)
  assert set(np.unique(exp.make_set(cfg, 0, 256, cfg.train_shift, 1)[2])) <= set(range(cfg.train_shift + 1))
  perms = exp.rolls(L)
  np.testing.assert_array_equal(np.einsum("sij,j->si", perms, x[0]), np.stack([np.roll(x[0], s) for s in range(L)]))
  # the teacher: scale x max over shifts of the correlation with each template (NumPy), and shift invariant; an
  # augmentor whose logits put all mass on shift 5 (no noise) rolls every signal by 5 (one compilation for all)
  bank = jnp.asarray(np.stack([np.stack([np.roll(tm[k], s) for s in range(L)]) for k in range(cfg.classes)]),
                     jnp.float32)
  params = {"shift_logits": jnp.where(jnp.arange(L) == 5, 1e4, 0.0), "noise_logit": jnp.asarray(0.0)}

  @jax.jit
  def f(xb):
    return (exp.teacher_logits(bank, cfg.teacher_scale, xb),
            exp.teacher_logits(bank, cfg.teacher_scale, jnp.roll(xb, 5, axis=1)),
            exp.augment(cfg, jnp.asarray(perms), params, xb, jax.random.key(0)),
            jax.nn.softmax(exp.init_augmentor(cfg)["shift_logits"]))
  t, t_rolled, xa, p = (np.asarray(a) for a in f(jnp.asarray(x[:8])))
  ref = cfg.teacher_scale * np.array([[max(np.dot(np.roll(tm[k], s), xi) for s in range(L))
                                       for k in range(cfg.classes)] for xi in x[:8].astype(np.float64)])
  np.testing.assert_allclose(t, ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(t_rolled, t, rtol=1e-5, atol=1e-5)
  assert np.mean(t.argmax(-1) == y[:8]) == 1.0
  np.testing.assert_allclose(xa, np.roll(x[:8], 5, axis=1), atol=1e-5)
  # the initial shift distribution is the discretised Gaussian of std init_shift_std around 0 (circular)
  d = np.minimum(np.arange(L), L - np.arange(L))
  q = np.exp(-d ** 2 / (2 * cfg.init_shift_std ** 2))
  np.testing.assert_allclose(p, q / q.sum(), rtol=1e-5)


def test_claims_logic():
  res = {"hard_minus_plain": st.paired_ci([0.7, 0.75, 0.72], [0.5, 0.52, 0.49]),
         "hard_minus_random": st.paired_ci([0.7, 0.75, 0.72], [0.71, 0.7, 0.74]),
         "teacher_acc_shifted": 0.99, "plain_gap": 0.5, "hard_in": 0.99}
  rows = exp.claims(res)
  assert [r.kind for r in rows] == ["paper", "paper", "sanity", "sanity", "sanity"]
  assert [r.passed for r in rows] == [True, False, True, True, True]
  res["hard_minus_random"] = st.paired_ci([0.7, 0.75, 0.72], [0.6, 0.62, 0.63])
  res["plain_gap"] = 0.1
  assert [r.passed for r in exp.claims(res)] == [True, True, True, False, True]
  res["hard_minus_plain"] = st.paired_ci([0.5, float("nan"), 0.5], [0.4, 0.4, 0.4])
  assert not exp.claims(res)[0].passed
