"""[126] SSVI, exact checks: the number of nonzeros is constant through 20 ELBO steps + subspace updates under
nnx.jit; removal takes exactly the lowest-score active entries (NumPy argsort), additions come only from the
previously inactive; masked weights get no gradient; the KL equals the closed form in NumPy; the local
reparameterisation's mean and variance match NumPy; split/merge; errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxlib_methods.nn import SparseMeanFieldDense, ssvi_update_mask


def test_ssvi_mask_update_matches_numpy():
  rng = np.random.default_rng(0)
  mu, sigma = rng.normal(size=(6, 5)), rng.uniform(0.1, 1.0, (6, 5))
  mask = np.zeros(30, bool)
  mask[rng.permutation(30)[:12]] = True
  mask = mask.reshape(6, 5)
  for crit, score in (("abs_mu", np.abs(mu)), ("snr", np.abs(mu) / sigma)):
    new, added = jax.jit(lambda k, a, b, m: ssvi_update_mask(k, a, b, m, 4, criterion=crit))(
        jax.random.key(1), jnp.asarray(mu, jnp.float32), jnp.asarray(sigma, jnp.float32), jnp.asarray(mask))
    new, added = np.asarray(new), np.asarray(added)
    active = np.flatnonzero(mask)
    removed = set(active[np.argsort(score.reshape(-1)[active])[:4]].tolist())
    assert new.sum() == mask.sum() == 12
    assert set(np.flatnonzero(mask & ~new).tolist()) == removed
    assert added.sum() == 4 and not (added & mask).any() and (new == ((mask & ~np.isin(np.arange(30), list(removed))
                                                                       .reshape(6, 5)) | added)).all()


def test_ssvi_layer_nonzeros_constant_kl_and_forward():
  layer = SparseMeanFieldDense(8, 6, density=0.25, rngs=nnx.Rngs(0))
  nnz = int(layer.mask[...].sum())
  assert nnz == 12
  x = jax.random.normal(jax.random.key(1), (32, 8))
  y = jnp.sin(x.sum(-1, keepdims=True)) * jnp.ones((1, 6))
  opt = nnx.Optimizer(layer, optax.adam(0.05), wrt=nnx.Param)

  @nnx.jit
  def step(layer, opt, key):
    k1, k2 = jax.random.split(key)
    def elbo(m):
      return jnp.mean((m(x, k1) - y) ** 2) + m.kl() / 1000
    loss, g = nnx.value_and_grad(elbo)(layer)
    opt.update(layer, g)
    layer.update_mask(k2, 3, criterion="snr")
    return loss, g

  for i in range(20):
    _, g = step(layer, opt, jax.random.key(i))
    assert int(layer.mask[...].sum()) == nnz  # exact, every step
    np.testing.assert_array_equal(np.asarray(layer.mu[...])[~np.asarray(layer.mask[...])], 0.0)
  # Masked weights get exactly zero gradient (from the last step's pre-update mask: check on a fresh grad).
  g = nnx.jit(nnx.grad(lambda m: jnp.mean((m(x, jax.random.key(0)) - y) ** 2) + m.kl()))(layer)
  off = ~np.asarray(layer.mask[...])
  np.testing.assert_array_equal(np.asarray(g["mu"][...])[off], 0.0)
  np.testing.assert_array_equal(np.asarray(g["rho"][...])[off], 0.0)
  # KL and the forward mean / variance against NumPy.
  mu, rho, m = (np.asarray(v, np.float64) for v in (layer.mu[...], layer.rho[...], layer.mask[...]))
  s = np.log1p(np.exp(rho))
  kl = np.sum(m * (np.log(1.0 / s) + (s ** 2 + mu ** 2) / 2 - 0.5))
  np.testing.assert_allclose(layer.kl(), kl, rtol=1e-4)
  xn = np.asarray(x, np.float64)
  np.testing.assert_allclose(layer(x), xn @ (m * mu) + np.asarray(layer.bias[...]), rtol=1e-4, atol=1e-5)
  samples = jax.jit(jax.vmap(lambda k: layer(x[:2], k)))(jax.random.split(jax.random.key(5), 4000))
  np.testing.assert_allclose(np.var(np.asarray(samples), 0), (xn[:2] ** 2) @ (m * s ** 2), rtol=0.1)
  gdef, state = nnx.split(layer)
  np.testing.assert_array_equal(nnx.merge(gdef, state)(x), layer(x))


def test_ssvi_errors():
  with pytest.raises(ValueError, match="density"):
    SparseMeanFieldDense(4, 4, density=0.0, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="x must be"):
    SparseMeanFieldDense(4, 4, density=0.5, rngs=nnx.Rngs(0))(jnp.ones((2, 3)))
  with pytest.raises(ValueError, match="n_swap"):
    ssvi_update_mask(jax.random.key(0), jnp.ones(4), jnp.ones(4), jnp.array([True, False, False, False]), 2)
  with pytest.raises(ValueError, match="criterion"):
    ssvi_update_mask(jax.random.key(0), jnp.ones(4), jnp.ones(4), jnp.array([True, False, True, False]), 1,
                     criterion="grad")
  with pytest.raises(TypeError, match="mask"):
    ssvi_update_mask(jax.random.key(0), jnp.ones(4), jnp.ones(4), jnp.ones(4), 1)
