"""Sub-run memoisation: a rerun reads finished sub-runs back instead of recomputing them."""

import json

import numpy as np
import pytest

from jaxlib_methods.runner import sweep
from jaxlib_methods.runner.train import clear


def test_memoized_runs_once_and_reads_back(tmp_path):
  calls = []

  def fn():
    calls.append(1)
    return {"loss": np.float32(0.25), "curve": np.arange(3.0), "bad": float("nan")}

  a = sweep.memoized(tmp_path, {"seed": 1, "lr": 0.1}, fn)
  b = sweep.memoized(tmp_path, {"lr": 0.1, "seed": 1}, fn)   # same key, other order
  assert calls == [1]
  assert a == b == {"loss": 0.25, "curve": [0.0, 1.0, 2.0], "bad": "nan"}
  sweep.memoized(tmp_path, {"seed": 2, "lr": 0.1}, fn)
  assert len(calls) == 2 and sweep.completed(tmp_path) == 2


def test_damaged_or_colliding_record_is_recomputed(tmp_path):
  sweep.memoized(tmp_path, {"seed": 1}, lambda: 1)
  path = tmp_path / "subruns" / f"{sweep.key_hash({'seed': 1})}.json"
  path.write_text("{not json")
  assert sweep.memoized(tmp_path, {"seed": 1}, lambda: 2) == 2
  path.write_text(json.dumps({"key": {"seed": 99}, "result": 3}))
  assert sweep.memoized(tmp_path, {"seed": 1}, lambda: 4) == 4
  path.write_bytes(b"\xff\xfe\x00 torn")   # not even UTF-8 (a damaged disk block): recomputed, not a crash
  assert sweep.memoized(tmp_path, {"seed": 1}, lambda: 5) == 5
  path.write_text("[1, 2]")                # valid JSON of the wrong shape
  assert sweep.memoized(tmp_path, {"seed": 1}, lambda: 6) == 6


def test_clear_removes_subruns_and_bad_keys_are_refused(tmp_path):
  sweep.memoized(tmp_path, {"seed": 1}, lambda: 1)
  clear(tmp_path)
  assert sweep.completed(tmp_path) == 0
  with pytest.raises(ValueError, match="key"):
    sweep.memoized(tmp_path, {}, lambda: 1)


def test_config_fields_drops_only_the_mesh_and_refuses_a_class():
  import dataclasses

  import pytest

  from jaxlib_methods.runner import MeshConfig
  from jaxlib_methods.runner.sweep import config_fields

  @dataclasses.dataclass(frozen=True)
  class Cfg:
    seed: int = 0
    lr: float = 0.1
    mesh: MeshConfig = MeshConfig()

  assert config_fields(Cfg(seed=3)) == {"seed": 3, "lr": 0.1}
  assert config_fields(Cfg(mesh=MeshConfig(data=2))) == config_fields(Cfg())
  with pytest.raises(TypeError, match="dataclass instance"):
    config_fields(Cfg)
