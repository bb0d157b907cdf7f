"""GatedLinearAttention (NNX) vs a float64 NumPy transcription of the paper's layer, plus its invariants."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn import GatedLinearAttention


@nnx.jit(static_argnames=("return_state",))
def _apply(layer, x, segment_ids=None, initial_state=None, return_state=False):
  return layer(x, segment_ids=segment_ids, initial_state=initial_state, return_state=return_state)


def _np_layer(layer, x, tau=16.0):
  """Float64 NumPy: Q,K,V; alpha = sigmoid(x W1 W2 + b)^(1/tau); recurrence; LN per head; swish gate; W_O."""
  p = lambda a: np.asarray(a[...], np.float64)
  x = np.asarray(x, np.float64)                                        # [T, D]
  q = np.einsum("td,dnk->tnk", x, p(layer.q_weight_dnk)) / math.sqrt(layer.head_k)
  k = np.einsum("td,dnk->tnk", x, p(layer.k_weight_dnk))
  v = np.einsum("td,dnv->tnv", x, p(layer.v_weight_dnv))
  logits = np.einsum("td,dr,rnk->tnk", x, p(layer.gate_down_dr), p(layer.gate_up_rnk)) + p(layer.gate_bias_nk)
  alpha = (1.0 / (1.0 + np.exp(-logits))) ** (1.0 / tau)
  t, n, dk = q.shape
  o = np.zeros((t, n, v.shape[-1]))
  for h in range(n):
    s = np.zeros((dk, v.shape[-1]))
    for i in range(t):
      s = alpha[i, h][:, None] * s + np.outer(k[i, h], v[i, h])
      o[i, h] = s.T @ q[i, h]
  mu = o.mean(-1, keepdims=True)
  o = (o - mu) / np.sqrt(((o - mu) ** 2).mean(-1, keepdims=True) + 1e-6) * p(layer.norm.scale) + p(layer.norm.bias)
  r = np.einsum("td,dnv->tnv", x, p(layer.out_gate_dnv))
  o = r / (1.0 + np.exp(-r)) * o
  return np.einsum("tnv,nvd->td", o, p(layer.o_weight_nvd))


def _perturbed(layer, seed=0):
  """Randomise the zero-initialised gate bias and LayerNorm parameters so the test exercises them."""
  layer.gate_bias_nk[...], layer.norm.scale[...], layer.norm.bias[...] = _perturbation(
      seed, layer.gate_bias_nk.shape, layer.norm.scale.shape, layer.norm.bias.shape)
  return layer


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _perturbation(seed, bias_shape, scale_shape, norm_bias_shape):   # one program instead of eight eager ops
  keys = jax.random.split(jax.random.PRNGKey(seed), 3)
  return (jax.random.normal(keys[0], bias_shape), 1.0 + 0.1 * jax.random.normal(keys[1], scale_shape),
          0.1 * jax.random.normal(keys[2], norm_bias_shape))


def test_matches_numpy_transcription():
  layer = _perturbed(GatedLinearAttention(32, 4, rngs=nnx.Rngs(0)))
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 9, 32))
  y = _apply(layer, x)
  assert y.shape == (2, 9, 32)
  assert layer.q_weight_dnk.shape == (32, 4, 4) and layer.v_weight_dnv.shape == (32, 4, 8)   # expand_k=0.5, v=1
  for b in range(2):
    np.testing.assert_allclose(np.asarray(y[b]), _np_layer(layer, x[b]), atol=3e-5)


def test_log_gates_in_paper_range():
  """alpha = sigmoid(.)^(1/16) in (0, 1): log alpha <= 0 and >= log_sigmoid(.) / 16."""
  layer = GatedLinearAttention(16, 2, rngs=nnx.Rngs(0))
  lg = nnx.jit(lambda m, x: m.log_gates(x * 10))(layer, jax.random.normal(jax.random.PRNGKey(2), (1, 5, 16)))
  assert lg.shape == (1, 5, 2, 4)
  assert np.all(np.asarray(lg) <= 0)


def test_packed_segments_and_state_passing():
  layer = _perturbed(GatedLinearAttention(16, 2, rngs=nnx.Rngs(0)), seed=1)
  x = jax.random.normal(jax.random.PRNGKey(3), (1, 12, 16))
  seg = jnp.asarray([[0] * 6 + [1] * 6], jnp.int32)

  @nnx.jit
  def run(layer, x, seg):   # every call below in one program (one compile instead of five)
    y, y_a, y_b = layer(x, segment_ids=seg), layer(x[:, :6]), layer(x[:, 6:])
    y_all, s_all = layer(x, return_state=True)
    y1, s1 = layer(x[:, :6], return_state=True)
    y2, s2 = layer(x[:, 6:], initial_state=s1, return_state=True)
    return y, y_a, y_b, y_all, s_all, y1, y2, s2

  y, y_a, y_b, y_all, s_all, y1, y2, s2 = run(layer, x, seg)
  np.testing.assert_allclose(np.asarray(y[:, :6]), np.asarray(y_a), atol=2e-6)
  np.testing.assert_allclose(np.asarray(y[:, 6:]), np.asarray(y_b), atol=2e-6)
  # State passing: the second half continued from the first half's state equals one pass.
  np.testing.assert_allclose(np.asarray(jnp.concatenate([y1, y2], 1)), np.asarray(y_all), atol=2e-6)
  np.testing.assert_allclose(np.asarray(s2), np.asarray(s_all), atol=2e-6)


def test_pallas_interpret_matches_recurrence_with_grads():
  layer_p = _perturbed(GatedLinearAttention(16, 2, implementation="pallas", chunk_size=16, interpret=True,
                                            rngs=nnx.Rngs(0)))
  layer_x = _perturbed(GatedLinearAttention(16, 2, implementation="xla", rngs=nnx.Rngs(0)))
  x = jax.random.normal(jax.random.PRNGKey(4), (1, 20, 16))
  value_and_grad = nnx.jit(nnx.value_and_grad(lambda m, x: jnp.mean(m(x) ** 2)))
  (l_p, g_p), (l_x, g_x) = value_and_grad(layer_p, x), value_and_grad(layer_x, x)
  np.testing.assert_allclose(float(l_p), float(l_x), rtol=1e-5)
  for a, b in zip(jax.tree.leaves(g_p), jax.tree.leaves(g_x)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_heads=3), "divisible"),
    (dict(expand_k=0.3), "integers"),
    (dict(gate_logit_normalizer=0.0), "gate_logit_normalizer"),
    (dict(implementation="cudnn"), "implementation"),
    (dict(chunk_size=0), "chunk_size"),
    (dict(platform="cuda"), "platform"),
])
def test_constructor_validation(kwargs, match):
  args = dict(d_model=32, num_heads=4)
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    GatedLinearAttention(rngs=nnx.Rngs(0), **args)


def test_call_validation():
  layer = GatedLinearAttention(16, 2, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="shape"):
    layer(jnp.zeros((2, 5, 8)))


def test_tpu_default_dispatch_runs_the_mosaic_kernels(monkeypatch):
  """On a TPU backend the layer's default (implementation=None, platform=None) runs the Pallas TPU kernels: the
  backend is faked as 'tpu' and the kernels run in the TPU interpret mode; the result equals the recurrence."""
  from jaxlib_methods.kernels import gla_tpu
  calls = []
  forward = gla_tpu.forward
  monkeypatch.setattr(gla_tpu, "forward", lambda *a, **kw: calls.append(1) or forward(*a, **kw))
  layer_x = _perturbed(GatedLinearAttention(16, 2, implementation="xla", rngs=nnx.Rngs(0)))
  layer_t = _perturbed(GatedLinearAttention(16, 2, chunk_size=16, interpret=True, rngs=nnx.Rngs(0)))
  x = jax.random.normal(jax.random.PRNGKey(5), (1, 16, 16))
  y_x = nnx.jit(lambda m, x: m(x))(layer_x, x)
  monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
  y_t = nnx.jit(lambda m, x: m(x))(layer_t, x)   # a fresh jit: traced (and dispatched) under the faked backend
  assert calls, "the TPU kernels were not called"
  np.testing.assert_allclose(np.asarray(y_t), np.asarray(y_x), atol=2e-5)


@pytest.mark.parametrize("platform", [pytest.param("gpu", marks=pytest.mark.slow), "tpu"])
def test_layer_lowers_for_accelerators(platform):
  """The layer with an explicit kernel platform exports for cuda (Triton kernels) / tpu (Mosaic kernels)."""
  from jaxlib_methods.kernels.lowering import lower
  # abstract parameters (lowering needs shapes and dtypes only): no initialiser runs or compiles
  layer = nnx.eval_shape(lambda: GatedLinearAttention(256, 2, platform=platform, rngs=nnx.Rngs(0)))
  graphdef, state = nnx.split(layer)
  x = jax.ShapeDtypeStruct((2, 256, 256), jnp.bfloat16)

  def loss(state, x):
    return jnp.sum(nnx.merge(graphdef, state)(x).astype(jnp.float32) ** 2)

  text = lower(jax.grad(loss), (state, x), "cuda" if platform == "gpu" else "tpu").mlir_module()
  assert ("__gpu$xla.gpu.triton" if platform == "gpu" else "tpu_custom_call") in text
