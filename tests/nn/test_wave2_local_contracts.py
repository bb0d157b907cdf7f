"""The NNX contract (nnx.jit, a pure split/merge optax train step, bf16 parameters, orbax save/restore) for the
layers of issue 20's ly20e wave: [81] EcoTTAPart, [125] HyperTab, [90] SlimmableLinear (MAN / AugLocal: in
tests/nn/test_local_learning.py). Slow: three compiles each."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from jaxlib_methods.nn import EcoTTAPart, HyperTab, SlimmableLinear, ecotta_forward
from tests.nn._layer_contract import check_layer_contract


class _Eco(nnx.Module):
  def __init__(self, param_dtype):
    rngs = nnx.Rngs(0)
    self.parts = nnx.List([
        EcoTTAPart(nnx.Linear(3, 4, rngs=rngs), 4, nnx.Linear(3, 4, param_dtype=param_dtype, rngs=rngs),
                   param_dtype=param_dtype, rngs=rngs),
        EcoTTAPart(nnx.Linear(4, 4, rngs=rngs), 4, nnx.Linear(4, 4, param_dtype=param_dtype, rngs=rngs),
                   param_dtype=param_dtype, rngs=rngs)])

  def __call__(self, x):
    # running statistics: a jax.grad of nnx.merge cannot carry the BatchNorm statistics update of batch-statistics
    # mode (adapt with nnx.value_and_grad and a DiffState filter instead, as experiments/layers_wave2_local.py does)
    return ecotta_forward(list(self.parts), x, use_running_average=True)[0][-1]


class _Slim(nnx.Module):
  def __init__(self, param_dtype):
    self.a = SlimmableLinear(6, 8, param_dtype=param_dtype, rngs=nnx.Rngs(0))
    self.b = SlimmableLinear(8, 3, param_dtype=param_dtype, rngs=nnx.Rngs(1))

  def __call__(self, x):
    return self.b(jax.nn.relu(self.a(x, 0.5)), 1.0)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["ecotta", "hypertab", "slimmable"])
def test_wave2_layer_contract(which, tmp_path):
  if which == "ecotta":
    make, x = _Eco, jax.random.normal(jax.random.key(0), (8, 3))
  elif which == "hypertab":
    make = lambda dt: HyperTab(6, 3, num_views=3, subset_size=2, hidden=4, param_dtype=dt, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (5, 6))
  else:
    make, x = _Slim, jax.random.normal(jax.random.key(0), (5, 6))
  check_layer_contract(make, x, tmp_path)
