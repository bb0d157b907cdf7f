"""Learngene SWS [150]: expanded layers of a stage are bit-identical copies at init and independent variables; the
descendant with the auxiliary's depths computes exactly what the auxiliary computes; the tied gradient of a stage's
learngene layer equals the sum of its copies' gradients (autodiff of the untied descendant); stored-parameter
counts; the NNX contract; bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn.learngene import (LayerStack, ResidualMLPBlock, StageSharedStack, expand_learngene,
                                         learngene_num_params)
from tests.nn._layer_contract import check_layer_contract


def _stack(layers=(2, 3), dt=jnp.float32):
  return StageSharedStack(layers, lambda rngs: ResidualMLPBlock(4, 8, param_dtype=dt, rngs=rngs), rngs=nnx.Rngs(0))


def test_expansion_copies_and_equality():
  aux = _stack()
  x = jax.random.normal(jax.random.key(1), (3, 4))
  desc = expand_learngene(aux, (2, 3))
  assert desc.stage_of_layer == (0, 0, 1, 1, 1)
  leaves = [jax.tree.leaves(nnx.state(l)) for l in desc.layers]
  ref = [jax.tree.leaves(nnx.state(l)) for l in aux.learngene]
  for k, s in enumerate(desc.stage_of_layer):
    for a, b in zip(leaves[k], ref[s]):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))       # bit-identical copies
  y_desc, y_aux = nnx.jit(lambda d, a: (d(x), a(x)))(desc, aux)
  np.testing.assert_array_equal(np.asarray(y_desc), np.asarray(y_aux))
  assert learngene_num_params(aux, [(1, 1), (2, 3), (4, 4)])["descendants"] == 15 * (2 * 4 + 40 + 36)


@pytest.mark.slow
def test_tied_gradient_is_the_sum_of_the_copies_gradients():
  aux = _stack()
  x = jax.random.normal(jax.random.key(1), (3, 4))
  desc = expand_learngene(aux, (2, 3))
  # the tied gradient of stage s = the sum of the untied copies' gradients (independent: plain autodiff per copy)
  loss = lambda m: jnp.sum(jnp.sin(m(x)))
  g_aux = nnx.jit(nnx.grad(loss))(aux)
  g_desc = nnx.jit(nnx.grad(loss))(desc)
  for s in range(2):
    want = jax.tree.map(lambda *gs: sum(gs), *[g_desc["layers"][k] for k, t in enumerate(desc.stage_of_layer)
                                               if t == s])
    got = g_aux["learngene"][s]
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
  # the copies are separate variables: changing one leaves the others and the auxiliary alone
  desc.layers[0].fc1.kernel[...] = desc.layers[0].fc1.kernel[...] + 1.0
  np.testing.assert_array_equal(np.asarray(desc.layers[1].fc1.kernel[...]),
                                np.asarray(aux.learngene[0].fc1.kernel[...]))
  # a shallower and a deeper descendant; stored parameters
  assert len(expand_learngene(aux, (1, 4)).layers) == 5
  per_layer = 2 * 4 + (4 * 8 + 8) + (8 * 4 + 4)
  assert learngene_num_params(aux, [(1, 1), (2, 3), (4, 4)]) == {"learngene": 2 * per_layer,
                                                                 "descendants": 15 * per_layer}


def test_learngene_errors():
  aux = _stack()
  with pytest.raises(ValueError, match="depths"):
    expand_learngene(aux, (2,))
  with pytest.raises(ValueError, match="depths"):
    expand_learngene(aux, (2, 0))
  with pytest.raises(ValueError, match="layers_per_stage"):
    StageSharedStack((), lambda rngs: ResidualMLPBlock(4, 8, rngs=rngs), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="stage_of_layer"):
    LayerStack([aux.learngene[0]], [0, 1])


@pytest.mark.slow
def test_learngene_layer_contract(tmp_path):
  x = jax.random.normal(jax.random.key(0), (8, 4))
  check_layer_contract(lambda dt: _stack(dt=dt), x, tmp_path / "aux")
  check_layer_contract(lambda dt: expand_learngene(_stack(dt=dt), (1, 2)), x, tmp_path / "descendant")
