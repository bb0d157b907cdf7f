"""A damaged latest checkpoint: the loop falls back to the newest one that restores intact, says so, and ends equal
to an uninterrupted run; checkpoints of another config are refused; when none restores, the error says so.

In-process on a small state shaped like a real one (a PRNG key, an optax state); the same damage through the CLI on a
real experiment is in test_fault_injection.py (slow).
"""

from __future__ import annotations

import functools
import importlib
import os
import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods.runner import control as run_control
from jaxlib_methods.runner import read_jsonl, train

train_lib = importlib.import_module("jaxlib_methods.runner.train")
HASH = "a" * 64


@functools.lru_cache(maxsize=None)
def _toy():
  """(state, advance, measure), built once: every run shares the compiled step."""
  tx = optax.adam(1e-2)
  params = {"w": jnp.linspace(-1.0, 1.0, 300, dtype=jnp.float32)}
  state = {"params": params, "opt": tx.init(params), "key": jax.random.key(0)}

  def advance(s, start, n):
    def body(c, step):
      key = jax.random.fold_in(c["key"], step)
      g = jax.tree.map(lambda w: w - jax.random.normal(key, w.shape), c["params"])
      u, o = tx.update(g, c["opt"], c["params"])
      return {"params": optax.apply_updates(c["params"], u), "opt": o, "key": c["key"]}, None
    return jax.lax.scan(body, s, start + jnp.arange(n))[0]

  return state, jax.jit(advance, static_argnums=2), lambda s, step: {"w0": s["params"]["w"][0]}


def _run(workdir, num_steps, config_hash=HASH):
  state, advance, measure = _toy()
  with run_control.active(run_control.RunControl(config_hash=config_hash)):
    return train(workdir=workdir, state=state, advance=advance, measure=measure, num_steps=num_steps, log_every=10,
                 checkpoint_every=10, keep=5)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  root = tmp_path_factory.mktemp("ref")
  result = _run(root, 50)
  return jax.device_get(result.state["params"]["w"]), (root / "metrics.jsonl").read_text()


def _flip_middle(path: pathlib.Path):
  b = bytearray(path.read_bytes())
  b[len(b) // 2] ^= 0x10
  path.write_bytes(bytes(b))


def _data_files(step_dir: pathlib.Path):
  return sorted((step_dir / "default" / "d").iterdir())


def _largest_file(step_dir: pathlib.Path) -> pathlib.Path:
  """The array data (OCDBT chunks): a flip there is read back by TensorStore without complaint, silently wrong,
  unless the state digest saved with the checkpoint catches it."""
  return max((p for p in (step_dir / "default").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


DAMAGE = {
    # kind: (damage the newest checkpoint (step 30) of a run stopped at 30, the step the loop must fall back to)
    "deleted _METADATA": (lambda ck: os.remove(ck / "30" / "default" / "_METADATA"), 20),
    "deleted _CHECKPOINT_METADATA": (lambda ck: os.remove(ck / "30" / "_CHECKPOINT_METADATA"), 20),
    "truncated data file": (lambda ck: [os.truncate(p, p.stat().st_size // 2) for p in _data_files(ck / "30")], 20),
    "bit-flipped data file": (lambda ck: _flip_middle(_largest_file(ck / "30")), 20),
    "empty newer step directory": (lambda ck: (ck / "40").mkdir(), 30),
    "newest two damaged": (lambda ck: [shutil.rmtree(ck / "30" / "default"), (ck / "40").mkdir()], 20),
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damaged_checkpoint_falls_back_and_resumes_identically(kind, tmp_path, reference, capfd, reliability):
  damage, expected_step = DAMAGE[kind]
  reliability.tried()
  _run(tmp_path, 30)
  damage(tmp_path / "checkpoints")
  capfd.readouterr()
  result = _run(tmp_path, 50)
  err = capfd.readouterr().err
  assert result.resumed_from == expected_step, err
  assert f"falling back to checkpoint step {expected_step}" in err and "is damaged" in err
  assert "Traceback" not in err and "Event loop is closed" not in err
  np.testing.assert_array_equal(jax.device_get(result.state["params"]["w"]), reference[0])
  assert (tmp_path / "metrics.jsonl").read_text() == reference[1]
  assert (tmp_path / "damaged_checkpoints").is_dir()  # kept for inspection, out of orbax's way
  reliability.recovered()


def test_no_checkpoint_restores_is_a_clear_error(tmp_path, reliability):
  reliability.tried()
  _run(tmp_path, 20)
  for step in ("10", "20"):
    shutil.rmtree(tmp_path / "checkpoints" / step / "default")
  with pytest.raises(train_lib.CheckpointError, match=r"no checkpoint in .* restores \(step 20: .*step 10: .*--fresh"):
    _run(tmp_path, 50)
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["10", "20"]  # nothing deleted
  reliability.clear_error()


def test_checkpoints_of_another_config_are_refused(tmp_path, reliability):
  reliability.tried()
  _run(tmp_path, 20, config_hash="b" * 64)
  with pytest.raises(train_lib.ConfigMismatchError, match="written by another config"):
    _run(tmp_path, 50, config_hash="c" * 64)
  assert train_lib.checkpoint_config_hashes(tmp_path / "checkpoints") == {10: "b" * 64, 20: "b" * 64}
  reliability.clear_error()


def test_without_a_run_control_train_is_a_plain_function(tmp_path):
  # Library use (no CLI): checkpoints still carry the state digest, and resume works without a config fingerprint.
  state, advance, measure = _toy()
  train(workdir=tmp_path, state=state, advance=advance, measure=measure, num_steps=20, log_every=10)
  again = train(workdir=tmp_path, state=state, advance=advance, measure=measure, num_steps=30, log_every=10)
  assert again.resumed_from == 20
