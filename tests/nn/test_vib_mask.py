"""VIB masks [16] (issue 20): the KL bound sum log(1 + mu^2 / sigma^2) and log alpha against NumPy; the
reparameterised mask's value and gradients (d/dmu, d/dlog sigma^2 in closed form for a fixed eps); prune-to-budget
equals NumPy's stable argsort; the physically pruned MLP (kept units only, mu folded into the next layer) equals the
masked MLP at inference; the NNX contract; errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn import VIBMask, vib_keep_mask, vib_prune_dense
from tests.nn._layer_contract import check_layer_contract


def test_vib_mask_kl_gradient_budget_and_pruned_equals_masked():
  rng = np.random.default_rng(0)
  b, d, n, d_out = 6, 5, 7, 3
  mask = VIBMask(n, rngs=nnx.Rngs(0))
  mu = rng.normal(size=n).astype(np.float32)
  ls2 = rng.normal(size=n).astype(np.float32)
  mask.mu[...], mask.log_sigma2[...] = jnp.asarray(mu), jnp.asarray(ls2)
  m64, s64 = mu.astype(np.float64), ls2.astype(np.float64)
  np.testing.assert_allclose(float(mask.kl()), np.sum(np.log(1 + m64 ** 2 / np.exp(s64))), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(mask.log_alpha()), np.log(m64 ** 2) - s64, rtol=1e-5, atol=1e-5)
  h = rng.normal(size=(b, n)).astype(np.float32)
  w = rng.normal(size=(b, n)).astype(np.float32)
  key = jax.random.key(4)
  eps = np.asarray(jax.random.normal(key, (b, n), jnp.float32), np.float64)
  gd, params, rest = nnx.split(mask, nnx.Param, ...)

  @jax.jit
  def run(params, h):
    f = lambda p: jnp.sum(w * nnx.merge(gd, p, rest)(h, key=key))
    return nnx.merge(gd, params, rest)(h, key=key), jax.grad(f)(params)

  out, g = run(params, jnp.asarray(h))
  sigma = np.exp(0.5 * s64)
  np.testing.assert_allclose(np.asarray(out), h * (m64 + sigma * eps), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(g["mu"][...]), (w * h).sum(0), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(g["log_sigma2"][...]), (w * h * eps * 0.5 * sigma).sum(0), rtol=1e-4,
                             atol=1e-6)
  # prune to budget: the 4 largest log alpha (stable ties)
  la = np.array([0.5, 2.0, 2.0, -1.0, 3.0, 0.5, -2.0], np.float32)
  order = np.argsort(-la, kind="stable")[:4]
  np.testing.assert_array_equal(np.asarray(vib_keep_mask(jnp.asarray(la), 4)), np.isin(np.arange(7), order))
  # pruned MLP == masked MLP at inference
  mask.prune_to_budget(4)
  keep = np.asarray(mask.keep[...])
  assert keep.sum() == 4 and np.all(np.asarray(mask.log_alpha())[keep].min() >= np.asarray(mask.log_alpha())[~keep])
  k1, b1 = rng.normal(size=(d, n)).astype(np.float32), rng.normal(size=n).astype(np.float32)
  k2 = rng.normal(size=(n, d_out)).astype(np.float32)
  x = rng.normal(size=(b, d)).astype(np.float32)
  masked = np.asarray(mask(jax.nn.relu(jnp.asarray(x @ k1 + b1)))) @ k2
  pk1, pb1, pk2 = vib_prune_dense(jnp.asarray(k1), jnp.asarray(b1), jnp.asarray(k2), mask.mu[...], keep)
  assert pk1.shape == (d, 4) and pk2.shape == (4, d_out)
  np.testing.assert_allclose(np.asarray(jax.nn.relu(x @ pk1 + pb1) @ pk2), masked, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(float(mask.kl()), np.sum(np.log(1 + m64 ** 2 / np.exp(s64))[keep]), rtol=1e-5)
  with pytest.raises(ValueError, match="n=7"):
    mask(jnp.ones((2, 6)))
  with pytest.raises(ValueError, match="keep"):
    vib_keep_mask(jnp.asarray(la), 8)
  with pytest.raises(ValueError, match="num_units"):
    VIBMask(0, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="kernel_in"):
    vib_prune_dense(jnp.asarray(k1), jnp.asarray(b1), jnp.asarray(k2), mask.mu[...], keep[:3])


class _Wrap(nnx.Module):
  def __init__(self, param_dtype):
    self.lin = nnx.Linear(4, 6, rngs=nnx.Rngs(0), param_dtype=param_dtype)
    self.mask = VIBMask(6, rngs=nnx.Rngs(0), param_dtype=param_dtype)

  def __call__(self, x):
    return self.mask(self.lin(x), key=jax.random.key(0))


@pytest.mark.slow  # nnx.jit, split/merge train step, bf16, orbax: a few seconds of compiles
def test_vib_mask_layer_contract(tmp_path):
  x = jax.random.normal(jax.random.key(0), (8, 4))
  loss = lambda m, x: jnp.mean(m(x).astype(jnp.float32) ** 2) + 1e-3 * m.mask.kl()
  check_layer_contract(_Wrap, x, tmp_path, loss=loss)
