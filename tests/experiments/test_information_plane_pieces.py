"""The pieces of the information-plane trainer that [63]'s arms take from the authors' code (github.com/ivansche/
adaptive_estimators, idnns/networks/model.py): the weight penalty `penalty * sum(tf.nn.l2_loss(W))` over the hidden
layers only, and the initialisation std `he / sqrt(fan in)` (he = 2 for ReLU/ELU/softplus), checked against a NumPy
transcription and the init's scaling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments import information_plane as ip


def test_l2_penalty_and_init_gain_follow_the_authors_code(monkeypatch):
  # small budget: a 3-layer stand-in network (the functions read WIDTHS at call time) and one compiled call giving
  # the init at gains 2 and 1 from the same key and the penalties
  monkeypatch.setattr(ip, "WIDTHS", (3, 2, 2, 2))

  def f(key):
    both = jax.vmap(lambda g: ip._init(key, g))(jnp.array([2.0, 1.0]))   # leading axis: gain 2, gain 1
    params, ref = [(W[0], b[0]) for W, b in both], [(W[1], b[1]) for W, b in both]
    moved = params[:-1] + [(params[-1][0] + 1.0, params[-1][1])]
    return params, ref, ip.l2_penalty(params, 0.015), ip.l2_penalty(moved, 0.015), ip.l2_penalty(params, 0.0)
  params, ref, pen, pen_moved, pen0 = jax.jit(f)(jax.random.key(0))
  assert len(params) == 3
  for (W, b), (W1, b1) in zip(params, ref):
    assert W.shape == W1.shape and np.all(np.abs(np.asarray(W)) > 0)
    np.testing.assert_allclose(np.asarray(W), 2.0 * np.asarray(W1), rtol=1e-6)   # same draw, scaled by the gain
    assert not np.any(np.asarray(b)) and not np.any(np.asarray(b1))
  # tf.nn.l2_loss(W) = sum(W ** 2) / 2, summed over every layer but the output layer (model.py's weights_all[:-1]).
  expected = 0.015 * sum(0.5 * np.sum(np.asarray(W, np.float64) ** 2) for W, _ in params[:-1])
  np.testing.assert_allclose(float(pen), expected, rtol=1e-5)
  np.testing.assert_allclose(float(pen_moved), expected, rtol=1e-5)   # the output layer is not penalised
  assert float(pen0) == 0.0
