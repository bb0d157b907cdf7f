"""The lm_scaleout experiment end to end at its cpu preset (slow: child processes with 8 simulated devices and a
2-process launch). Its checks also run in the default suite at a tiny size: tests/runner/test_sharding_multidevice.py
(mesh equality, bytes, mutations) and tests/runner/test_distributed.py (launch, restore in 1 process)."""

from __future__ import annotations

import pytest

from experiments import lm_scaleout


def test_projection_mask_selects_the_mlp_matrices_only():
  import jax
  from flax import nnx
  from jaxlib_methods.nn.transformer import TransformerLM
  cfg = lm_scaleout.model_config(lm_scaleout.Config())
  params = nnx.to_pure_dict(nnx.state(nnx.eval_shape(lambda: TransformerLM(cfg, rngs=nnx.Rngs(0)))))
  mask = lm_scaleout.projection_mask(params)
  chosen = {jax.tree_util.keystr(p) for p, v in jax.tree_util.tree_flatten_with_path(mask)[0] if v}
  assert chosen and all("['mlp']" in k for k in chosen)


def test_parse_mesh_and_global_rows():
  assert lm_scaleout.parse_mesh("2x4x1").fsdp == 4
  with pytest.raises(ValueError, match="DATAxFSDPxTENSOR"):
    lm_scaleout.parse_mesh("2x4")
  c = lm_scaleout.Config(batch_size=8, pool_sequences=64)
  assert list(lm_scaleout.global_rows(c, 1, shards=8)) == list(range(8, 16))
  bad = lm_scaleout.Config(batch_size=8, pool_sequences=64, data_seed_per_shard=True)
  assert list(lm_scaleout.global_rows(bad, 1, shards=1)) == list(range(8, 16))   # one shard: the same rows
  assert list(lm_scaleout.global_rows(bad, 1, shards=8)) != list(range(8, 16))


@pytest.mark.slow
def test_cpu_preset_passes_its_claims(tmp_path):
  res = lm_scaleout.run(lm_scaleout.PRESETS["cpu"], tmp_path)
  cl = lm_scaleout.claims(res)
  assert len(cl) == 9 and all(c.passed for c in cl), [(c.claim, c.ours) for c in cl if not c.passed]
