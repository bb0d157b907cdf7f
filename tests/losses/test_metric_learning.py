"""Normalized softmax loss [118] (ls19b, issue 19) vs a float64 NumPy transcription (values, gradients) and optax's
cross-entropy on pre-normalised inputs; where, labels and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods import losses


def _np_norm_softmax(x, w, y, t):
  u = x / np.linalg.norm(x, axis=-1, keepdims=True)
  v = w / np.linalg.norm(w, axis=-1, keepdims=True)
  logits = u @ v.T / t
  m = logits.max(-1, keepdims=True)
  logp = logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))
  return -logp[np.arange(len(y)), y]


def test_normalized_softmax_vs_numpy_optax_and_bad_input():
  rng = np.random.default_rng(0)
  x, w, y = rng.normal(size=(5, 3)), rng.normal(size=(4, 3)), np.array([0, 3, 1, 1, 2])
  with jax.enable_x64(True):
    f = jax.jit(lambda x, w: losses.normalized_softmax_loss(x, w, y, temperature=0.3))
    np.testing.assert_allclose(np.asarray(f(x, w)), _np_norm_softmax(x, w, y, 0.3), rtol=1e-12)
    gx, gw = jax.grad(lambda x, w: f(x, w).sum(), argnums=(0, 1))(jnp.asarray(x), jnp.asarray(w))
    eps = 1e-6
    for arr, g, name in ((x, gx, "x"), (w, gw, "w")):
      for idx in [(0, 0), (3, 2)]:
        e = np.zeros_like(arr)
        e[idx] = eps
        args_p = (x + e, w) if name == "x" else (x, w + e)
        args_m = (x - e, w) if name == "x" else (x, w - e)
        fd = (_np_norm_softmax(*args_p, y, 0.3).sum() - _np_norm_softmax(*args_m, y, 0.3).sum()) / (2 * eps)
        np.testing.assert_allclose(float(g[idx]), fd, rtol=1e-6, atol=1e-9)
    # unit inputs: plain softmax cross-entropy of the dot products / T (optax)
    u = x / np.linalg.norm(x, axis=-1, keepdims=True)
    v = w / np.linalg.norm(w, axis=-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(losses.normalized_softmax_loss(u, v, y, temperature=0.05)),
                               np.asarray(optax.softmax_cross_entropy_with_integer_labels(u @ v.T / 0.05, y)),
                               rtol=1e-12)
  where = np.array([True, False, True, True, True])
  out = losses.normalized_softmax_loss(x.astype(np.float32), w.astype(np.float32), np.array([0, -100, 1, 1, 2]),
                                       where=where)
  assert float(out[1]) == 0.0 and np.all(np.asarray(out)[where] > 0)
  with pytest.raises(ValueError, match="labels"):
    losses.normalized_softmax_loss(x, w, np.array([0, 4, 1, 1, 2]))
  with pytest.raises(ValueError, match="class_weights"):
    losses.normalized_softmax_loss(x, w[:, :2], y)
  with pytest.raises(ValueError, match="temperature"):
    losses.normalized_softmax_loss(x, w, y, temperature=0.0)
  assert losses.normalized_softmax_loss(jnp.ones((2, 3), jnp.bfloat16), jnp.ones((4, 3), jnp.bfloat16),
                                        jnp.array([0, 1])).dtype == jnp.bfloat16
