"""FLoRA [161]: flora_delta against a float64 NumPy einsum (N = 2 and 4); FLoRALinear with G = I equals flax's own
nnx.LoRA; parameter counts; FLoRAConv equals nnx.Conv with the NumPy-merged kernel; nnx.jit + split/merge training of
the adapter only, bf16, orbax round trip; bad inputs rejected."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn.flora import FLoRAConv, FLoRALinear, flora_delta, flora_num_params


def test_flora_delta_vs_numpy_and_lora_special_case():
  rng = np.random.default_rng(0)
  g4 = rng.normal(size=(2, 3, 4, 2))
  us = [rng.normal(size=(i, r)) for i, r in zip((3, 5, 6, 4), g4.shape)]
  want = 0.7 * np.einsum("abcd,ia,jb,kc,ld->ijkl", g4, *us)
  with jax.enable_x64(True):
    got = jax.jit(lambda g, u: flora_delta(g, u, scale=0.7))(jnp.asarray(g4), [jnp.asarray(u) for u in us])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)
    # N = 2: U_1 G U_2^T, and G = I is LoRA's B A
    u1, g, u2 = rng.normal(size=(7, 3)), rng.normal(size=(3, 3)), rng.normal(size=(5, 3))
    np.testing.assert_allclose(np.asarray(flora_delta(jnp.asarray(g), [jnp.asarray(u1), jnp.asarray(u2)])),
                               u1 @ g @ u2.T, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(flora_delta(jnp.eye(3), [jnp.asarray(u1), jnp.asarray(u2)])), u1 @ u2.T,
                               rtol=1e-12)
  assert flora_num_params((3, 3, 16, 32), (3, 3, 4, 4)) == 9 * 16 + 9 + 9 + 64 + 128
  with pytest.raises(ValueError, match="one factor per core mode"):
    flora_delta(jnp.ones((2, 2)), [jnp.ones((3, 2))])
  with pytest.raises(ValueError, match=r"factors\[1\]"):
    flora_delta(jnp.ones((2, 2)), [jnp.ones((3, 2)), jnp.ones((3, 3))])


def test_flora_linear_equals_flax_lora_and_counts():
  din, dout, r = 6, 5, 2
  m = FLoRALinear(din, dout, r, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (4, din))
  np.testing.assert_array_equal(np.asarray(m(x)), np.asarray(x @ m.kernel[...] + m.bias[...]))  # Delta W = 0 at init
  # parameter count: r^2 + (in + out) r trainable, exactly the LoRAParam leaves
  n_lora = sum(v.size for v in jax.tree.leaves(nnx.state(m, nnx.LoRAParam)))
  assert n_lora == flora_num_params((din, dout), (r, r)) == r * r + (din + dout) * r
  # G = I: flax's own LoRA (x A B + base) with A = U_in, B = U_out^T
  m.adapter.core[...] = jnp.eye(r)
  ref = nnx.LoRA(din, r, dout, base_module=nnx.Linear(din, dout, rngs=nnx.Rngs(5)), rngs=nnx.Rngs(6))
  ref.base_module.kernel[...] = m.kernel[...]
  ref.base_module.bias[...] = m.bias[...]
  ref.lora_a[...] = m.adapter.factors[0][...]
  ref.lora_b[...] = m.adapter.factors[1][...].T
  np.testing.assert_allclose(np.asarray(m(x)), np.asarray(ref(x)), rtol=1e-5, atol=1e-6)
  # bf16 params
  mb = FLoRALinear(din, dout, r, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
  assert nnx.jit(lambda m, x: m(x))(mb, x.astype(jnp.bfloat16)).dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="rank"):
    FLoRALinear(din, dout, 6, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="in_features"):
    m(jnp.ones((2, din + 1)))


@pytest.mark.slow
def test_flora_linear_adapter_training_and_orbax(tmp_path):
  din, dout, r = 6, 5, 2
  x = jax.random.normal(jax.random.key(1), (4, din))
  # train only the adapter with nnx.jit on a target that is W + a rank-r change; W stays frozen
  m = FLoRALinear(din, dout, r, rngs=nnx.Rngs(0))
  w0 = np.asarray(m.kernel[...])
  target = jnp.asarray(w0 + 0.5 * np.outer(np.arange(din) / din, np.ones(dout)))
  graphdef, lora, rest = nnx.split(m, nnx.LoRAParam, ...)
  tx = __import__("optax").adam(0.05)
  opt = tx.init(lora)

  @jax.jit
  def step(lora, opt):
    def loss(lora):
      mm = nnx.merge(graphdef, lora, rest)
      return jnp.mean((mm(x) - (x @ target + mm.bias[...])) ** 2)
    l, g = jax.value_and_grad(loss)(lora)
    u, opt = tx.update(g, opt, lora)
    return __import__("optax").apply_updates(lora, u), opt, l

  losses = []
  for _ in range(60):
    lora, opt, l = step(lora, opt)
    losses.append(float(l))
  assert losses[-1] < 0.05 * losses[0]
  m2 = nnx.merge(graphdef, lora, rest)
  np.testing.assert_array_equal(np.asarray(m2.kernel[...]), w0)
  # orbax round trip of the whole state
  ocp = pytest.importorskip("orbax.checkpoint")
  state = nnx.state(m2)
  ckptr = ocp.StandardCheckpointer()
  ckptr.save(tmp_path / "ck", nnx.to_pure_dict(state))
  ckptr.wait_until_finished()
  restored = ckptr.restore(tmp_path / "ck", nnx.to_pure_dict(state))
  m3 = FLoRALinear(din, dout, r, rngs=nnx.Rngs(9))
  s3 = nnx.state(m3)
  nnx.replace_by_pure_dict(s3, restored)
  nnx.update(m3, s3)
  np.testing.assert_array_equal(np.asarray(m3(x)), np.asarray(m2(x)))


def test_flora_conv_equals_merged_nnx_conv():
  cin, cout, r = 3, 4, 2
  m = FLoRAConv(cin, cout, (3, 3), r, spatial_rank=2, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(1)
  m.adapter.core[...] = jnp.asarray(rng.normal(size=(2, 2, r, r)), jnp.float32)
  n_lora = sum(v.size for v in jax.tree.leaves(nnx.state(m, nnx.LoRAParam)))
  assert n_lora == flora_num_params((3, 3, cin, cout), (2, 2, r, r))
  us = [np.asarray(u[...], np.float64) for u in m.adapter.factors]
  merged = np.asarray(m.kernel[...], np.float64) + np.einsum("abcd,ia,jb,kc,ld->ijkl",
                                                             np.asarray(m.adapter.core[...], np.float64), *us)
  ref = nnx.Conv(cin, cout, (3, 3), padding="SAME", rngs=nnx.Rngs(2))
  ref.kernel[...] = jnp.asarray(merged, jnp.float32)
  ref.bias[...] = m.bias[...]
  x = jax.random.normal(jax.random.key(3), (2, 6, 5, cin))
  np.testing.assert_allclose(np.asarray(nnx.jit(lambda m, x: m(x))(m, x)), np.asarray(ref(x)), rtol=1e-4, atol=1e-5)
  m1 = FLoRAConv(cin, cout, (3,), r, padding="VALID", rngs=nnx.Rngs(0))   # 1-d
  assert m1(jnp.ones((2, 7, cin))).shape == (2, 5, cout)
  with pytest.raises(ValueError, match="spatial axes"):
    m(jnp.ones((2, 6, cin)))
  with pytest.raises(ValueError, match="padding"):
    FLoRAConv(cin, cout, (3, 3), r, padding="FULL", rngs=nnx.Rngs(0))
