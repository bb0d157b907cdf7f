"""NonScalingLayerNorm [3] against PyTorch's LayerNorm with its weight frozen at 1 (the authors' class), in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxlib_methods.nn.norms import NonScalingLayerNorm

torch = pytest.importorskip("torch")


def _torch_non_scaling(d, bias):
  """The authors' definition: torch LayerNorm, weight initialised to 1 and frozen, learnable bias."""
  ln = torch.nn.LayerNorm(d, dtype=torch.float64)
  with torch.no_grad():
    ln.weight.fill_(1.0)
    ln.bias.copy_(torch.as_tensor(bias))
  ln.weight.requires_grad = False
  return ln


@pytest.mark.parity
def test_matches_torch_layernorm_with_frozen_unit_weight():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(3, 5, 8)) * np.array([1, 10, 100, 0.1, 1, 1, 1, 1e3])  # one large feature (an outlier)
  bias = rng.normal(size=8)
  with jax.enable_x64(True):
    m = NonScalingLayerNorm(8, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
    m.bias[...] = jnp.asarray(bias)
    y = m(jnp.asarray(x))
    gx = jax.grad(lambda x: jnp.sum(jnp.sin(m(x))))(jnp.asarray(x))
    gb = nnx.grad(lambda m: jnp.sum(jnp.sin(m(jnp.asarray(x)))))(m)["bias"][...]
  t = _torch_non_scaling(8, bias)
  xt = torch.tensor(x, requires_grad=True)
  yt = t(xt)
  torch.sin(yt).sum().backward()
  np.testing.assert_allclose(np.asarray(y), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(np.asarray(gx), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(np.asarray(gb), t.bias.grad.numpy(), rtol=1e-10)
  assert t.weight.grad is None


def test_has_no_scale_and_only_the_bias_trains():
  m = NonScalingLayerNorm(4, rngs=nnx.Rngs(0))
  params = nnx.state(m, nnx.Param)
  assert set(params.keys()) == {"bias"} and params["bias"][...].shape == (4,)
  x = jnp.array([[1.0, 2.0, 3.0, 40.0]])
  y = m(x)
  np.testing.assert_allclose(np.asarray(y).mean(-1), 0.0, atol=1e-6)
  np.testing.assert_allclose(np.asarray(y).var(-1), 1.0, rtol=1e-4)  # unit variance: nothing rescales it
  opt = nnx.Optimizer(m, optax.sgd(0.1), wrt=nnx.Param)
  loss = lambda m: jnp.sum((m(x) - 5.0) ** 2)
  grads = nnx.grad(loss)(m)
  opt.update(m, grads)
  assert float(loss(m)) < float(jnp.sum((y - 5.0) ** 2))  # the bias moved towards the target


def test_bad_arguments():
  with pytest.raises(ValueError, match="num_features"):
    NonScalingLayerNorm(0, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="epsilon"):
    NonScalingLayerNorm(3, epsilon=0.0, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="num_features=3"):
    NonScalingLayerNorm(3, rngs=nnx.Rngs(0))(jnp.ones((2, 4)))
