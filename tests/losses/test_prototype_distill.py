"""PRD [59] (ls19b, issue 19): prd_loss and prototype_cosine_loss vs float64 NumPy transcriptions of the official
pre-release code (repe.py), gradients by finite differences, the fixed point p = q (zero gradient), bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import losses


def _np_prd(f, fo, w, wo, t):
  """Official relation_distillation_loss, per sample (the official batch loss is its mean)."""
  out = np.zeros(f.shape[0])
  for task in range(w.shape[0]):
    s_new = f @ w[task].T / np.linalg.norm(w[task], axis=1)
    s_old = fo @ wo[task].T / np.linalg.norm(wo[task], axis=1)
    q = np.exp(s_old / t) / np.exp(s_old / t).sum(1, keepdims=True)
    logp = s_new / t - np.log(np.exp(s_new / t).sum(1, keepdims=True))
    out += np.sum(-q * logp, axis=-1)
  return out


@pytest.mark.slow  # float64 transcription + finite differences: many small compiles (default-run budget)
def test_prd_and_prototype_loss_vs_numpy_float64():
  rng = np.random.default_rng(0)
  f, fo = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
  w, wo = rng.normal(size=(2, 3, 3)), rng.normal(size=(2, 3, 3))
  with jax.enable_x64(True):
    fn = jax.jit(lambda f, w: losses.prd_loss(f, fo, w, wo, temperature=0.5))
    np.testing.assert_allclose(np.asarray(fn(f, w)), _np_prd(f, fo, w, wo, 0.5), rtol=1e-12)
    gf, gw = jax.grad(lambda f, w: fn(f, w).sum(), argnums=(0, 1))(jnp.asarray(f), jnp.asarray(w))
    eps = 1e-6
    for idx in [(0, 0), (4, 2)]:
      e = np.zeros_like(f)
      e[idx] = eps
      fd = (_np_prd(f + e, fo, w, wo, 0.5).sum() - _np_prd(f - e, fo, w, wo, 0.5).sum()) / (2 * eps)
      np.testing.assert_allclose(float(gf[idx]), fd, rtol=1e-6, atol=1e-9)
    for idx in [(0, 1, 2), (1, 2, 0)]:
      e = np.zeros_like(w)
      e[idx] = eps
      fd = (_np_prd(f, fo, w + e, wo, 0.5).sum() - _np_prd(f, fo, w - e, wo, 0.5).sum()) / (2 * eps)
      np.testing.assert_allclose(float(gw[idx]), fd, rtol=1e-6, atol=1e-9)
    # nothing moved (current = previous model and prototypes): p = q, the loss is q's entropy and its gradient is 0
    g0 = jax.grad(lambda f: losses.prd_loss(f, f, wo, wo, temperature=0.5).sum())(jnp.asarray(fo))
    np.testing.assert_allclose(np.asarray(g0), 0.0, atol=1e-13)
    # prototype loss: 1 - cos(f, w_y); 0 at f = w_y, 2 at f = -w_y
    proto, y = rng.normal(size=(3, 3)), np.array([0, 2, 1, 1, 0])
    ref = 1 - np.sum(f * proto[y], 1) / (np.linalg.norm(f, axis=1) * np.linalg.norm(proto[y], axis=1))
    np.testing.assert_allclose(np.asarray(losses.prototype_cosine_loss(f, proto, y)), ref, rtol=1e-12)
    ends = losses.prototype_cosine_loss(np.stack([2 * proto[1], -proto[2]]), proto, np.array([1, 2]))
    np.testing.assert_allclose(np.asarray(ends), [0.0, 2.0], atol=1e-12)
  with pytest.raises(ValueError, match="old_prototypes"):
    losses.prd_loss(f, fo, w, wo[:1], temperature=0.5)
  with pytest.raises(ValueError, match="temperature"):
    losses.prd_loss(f, fo, w, wo, temperature=0.0)
  with pytest.raises(ValueError, match="labels"):
    losses.prototype_cosine_loss(f, w[0], np.array([0, 3, 1, 1, 0]))
  assert losses.prd_loss(f.astype(jnp.bfloat16), fo.astype(jnp.bfloat16), w.astype(jnp.bfloat16),
                         wo.astype(jnp.bfloat16), temperature=0.5).dtype == jnp.bfloat16
