"""The sharding rules, in process (1 device; abstract meshes for the multi-device layouts): mesh parsing, the logical
table, FSDP's choice of dimension, the derivation of optimizer-state shardings (checked against optax's own
`tree.map_params` for AdamW), and the errors that name the leaf, its shape and the axis before anything compiles."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import AbstractMesh, AxisType, PartitionSpec as P

from jaxlib_methods.nn.transformer import TransformerConfig, TransformerLM
from jaxlib_methods.optim import galore
from jaxlib_methods.runner import MeshConfig, UsageError
from jaxlib_methods.runner import sharding as shd


def mesh(data=1, fsdp=1, tensor=1):
  return AbstractMesh((data, fsdp, tensor), shd.MESH_AXES, axis_types=(AxisType.Auto,) * 3)


def lm_abstract(**kw):
  cfg = TransformerConfig(vocab_size=64, d_model=64, num_layers=1, num_heads=4, **kw)
  _, state = nnx.split(nnx.eval_shape(lambda: TransformerLM(cfg, rngs=nnx.Rngs(0))))
  return nnx.to_pure_dict(state), shd.logical_axes(state)


@pytest.mark.parametrize("cfg, devices, expected", [
    (MeshConfig(), 8, (1, 1, 1)),
    (MeshConfig(data=0), 8, (8, 1, 1)),
    (MeshConfig(data=2, fsdp=0), 8, (2, 4, 1)),
    (MeshConfig(data=2, fsdp=2, tensor=2), 8, (2, 2, 2)),
    (MeshConfig(fsdp=0, tensor=2), 8, (1, 4, 2)),
    (MeshConfig(data=2), 4, (2, 1, 1)),
])
def test_mesh_shape(cfg, devices, expected):
  assert shd.mesh_shape(cfg, devices) == expected


@pytest.mark.parametrize("cfg, devices, needle", [
    (MeshConfig(data=64), 1, "mesh.data=64 but 1 device(s) are visible"),
    (MeshConfig(data=3, fsdp=4), 8, "mesh.data=3 x mesh.fsdp=4 but 8 device(s)"),
    (MeshConfig(data=0, fsdp=0), 8, "at most one mesh axis may be 0"),
    (MeshConfig(data=3, fsdp=0), 8, "does not divide 8"),
    (MeshConfig(tensor=-1), 8, "mesh.tensor must be an int >= 0"),
])
def test_mesh_errors(cfg, devices, needle):
  with pytest.raises(UsageError, match=needle.replace("(", r"\(").replace(")", r"\)")):
    shd.mesh_shape(cfg, devices)


def test_make_mesh_on_one_device_is_the_default_layout():
  m = shd.make_mesh(MeshConfig())
  assert dict(m.shape) == {"data": 1, "fsdp": 1, "tensor": 1} and m.axis_names == shd.MESH_AXES


def test_rules_table_megatron_pairs_and_fsdp():
  m = mesh(data=2, fsdp=2, tensor=2)
  # column-parallel W1 [D, F]: F on tensor; row-parallel W2 [F, D]: F on tensor; FSDP takes the other dimension.
  assert shd.logical_to_spec(("embed", "mlp"), (64, 256), m) == P("fsdp", "tensor")
  assert shd.logical_to_spec(("mlp", "embed"), (256, 64), m) == P("tensor", "fsdp")
  assert shd.logical_to_spec(("embed", "heads", "head_dim"), (64, 4, 16), m) == P("fsdp", "tensor")
  assert shd.logical_to_spec(("heads", "head_dim", "embed"), (4, 16, 64), m) == P("tensor", None, "fsdp")
  # no tensor axis: heads stay whole, FSDP takes the largest divisible dimension
  m4 = mesh(data=2, fsdp=4)
  assert shd.logical_to_spec(("embed", "mlp"), (64, 256), m4) == P(None, "fsdp")
  assert shd.logical_to_spec(None, (3, 64, 8), m4) == P(None, "fsdp")
  assert shd.logical_to_spec(None, (), m4) == P()
  assert shd.logical_to_spec(None, (6,), m4) == P()          # nothing divisible: replicated
  assert shd.logical_to_spec(("embed",), (64,), mesh()) == P()  # one device: everything replicated


def test_transformer_parameters_follow_the_table():
  params, logical = lm_abstract()
  specs = shd.param_specs(params, logical, mesh(data=2, fsdp=2, tensor=2))
  blk = specs["blocks"][0]
  assert blk["attn"]["q_weight_dnh"] == P("fsdp", "tensor")
  assert blk["attn"]["o_weight_nhd"] == P("tensor", None, "fsdp")
  assert blk["mlp"]["w1"] == P("fsdp", "tensor") and blk["mlp"]["w2"] == P("tensor", "fsdp")
  assert specs["embed_vd"] == P("fsdp") and specs["unembed_dv"] == P("fsdp")   # vocab 64 = embed 64: first
  assert logical["blocks"][0]["mlp"]["w1"] == ("embed", "mlp")
  assert logical["embed_vd"] == ("vocab", "embed")


@pytest.mark.parametrize("attention, impl", [("mha", "xla"), ("gla", "xla")])
def test_other_attention_layers_are_annotated(attention, impl):
  params, logical = lm_abstract(attention=attention, implementation=impl)
  names = {a for t in jax.tree.leaves(logical, is_leaf=lambda x: isinstance(x, tuple)) if t for a in t}
  assert {"heads", "embed", "head_dim", "mlp", "vocab"} <= names
  specs = shd.param_specs(params, logical, mesh(tensor=4))
  attn = specs["blocks"][0]["attn"]
  assert attn["o_weight_nhd" if attention == "mha" else "o_weight_nvd"] == P("tensor")


def test_sharding_error_names_leaf_shape_and_axis_before_compiling():
  params, logical = lm_abstract()          # 4 heads
  with pytest.raises(shd.ShardingError) as e:
    shd.param_specs(params, logical, mesh(tensor=3))
  msg = str(e.value)
  assert "blocks/0/attn" in msg and "(64, 4, 16)" in msg and "'tensor'" in msg and "size 3" in msg
  with pytest.raises(shd.ShardingError, match="no rule"):
    shd.logical_to_spec(("embedding",), (8,), mesh())
  with pytest.raises(shd.ShardingError, match="has 1 logical axes"):
    shd.logical_to_spec(("embed",), (8, 8), mesh())
  with pytest.raises(shd.ShardingError, match=r"leaf w with shape \(6, 4\).*'fsdp' of size 4 does not divide"):
    shd.check_spec(P("fsdp"), (6, 4), mesh(fsdp=4), "w")


def test_batch_not_divisible_is_a_sharding_error():
  m = shd.make_mesh(MeshConfig())
  assert shd.process_rows(12, m) == slice(0, 12)
  b = shd.shard_batch({"tokens": np.arange(24).reshape(12, 2)}, m)
  np.testing.assert_array_equal(np.asarray(b["tokens"]), np.arange(24).reshape(12, 2))


def _reference_adamw_specs(params, specs):
  """optax's own mirror of the params inside AdamW's state (tree.map_params), independent of shard_like_params."""
  tx = optax.adamw(1e-3)
  state = jax.eval_shape(tx.init, params)
  spec_leaves = jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, P))
  it = iter(spec_leaves * 2)  # mu, then nu
  return optax.tree.map_params(tx.init, lambda _: next(it), state,
                               transform_non_params=lambda _: P())


def test_optimizer_state_derived_like_optax_map_params():
  params, logical = lm_abstract()
  m = mesh(data=2, fsdp=2, tensor=2)
  specs = shd.param_specs(params, logical, m)
  state = jax.eval_shape(optax.adamw(1e-3).init, params)
  derived = shd.shard_like_params(state, params, specs, m)
  ref = _reference_adamw_specs(params, specs)
  leaves = lambda t: jax.tree.leaves(t, is_leaf=lambda x: isinstance(x, P))
  assert leaves(derived) == leaves(ref)


def test_galore_low_rank_state_keeps_the_large_dimension():
  params = {"w1": jax.ShapeDtypeStruct((64, 256), jnp.float32), "ln": jax.ShapeDtypeStruct((64,), jnp.float32)}
  m = mesh(fsdp=4, tensor=2)
  specs = shd.param_specs(params, {"w1": ("embed", "mlp"), "ln": ("embed",)}, m)
  tx = galore(1e-2, rank=8, projection_mask={"w1": True, "ln": False})
  state = jax.eval_shape(tx.init, params)
  derived = shd.shard_like_params(state, params, specs, m)
  mu = derived[0].inner_state.mu
  assert mu["w1"] == P("fsdp", "tensor")    # [8, 256]: the 256 keeps 'tensor', FSDP takes the rank dimension
  assert mu["ln"] == P("fsdp")
  assert derived[0].basis["w1"] == P("fsdp")   # the [64, 8] projector: FSDP on its large dimension
  assert derived[0].basis["ln"] == P()          # the scalar placeholder of an unprojected leaf: replicated
  assert derived[0].count == P()


def test_bytes_per_device_sums_addressable_shards():
  m = shd.make_mesh(MeshConfig())
  x = jax.device_put(jnp.ones((4, 8)), shd.replicated(m))
  per = shd.bytes_per_device({"x": x, "s": jnp.zeros(())})
  assert sum(per.values()) == 4 * 8 * 4 + 4
  assert shd.replicated_bytes({"x": x}) == 128
