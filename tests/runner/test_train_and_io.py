"""The training loop (chunks, checkpoints, resume, non-finite stop) and atomic outputs, in-process on a toy state."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.runner import MetricsLog, NonFiniteError, atomic_write_json, read_jsonl, train
from jaxlib_methods.runner import io as runner_io


def _toy(blow_up_at=None):
  def advance(state, start, n):
    def body(s, step):
      x = s["x"] * 0.9 + jnp.sin(step.astype(jnp.float32))
      if blow_up_at is not None:
        x = jnp.where(step >= blow_up_at, jnp.nan, x)
      return {"x": x, "count": s["count"] + 1}, None
    return jax.lax.scan(body, state, start + jnp.arange(n))[0]
  measure = lambda s, step: {"x": s["x"], "count": s["count"]}
  return {"x": jnp.float32(1.0), "count": jnp.int32(0)}, advance, measure


def test_train_logs_checkpoints_and_resumes_exactly(tmp_path):
  state, advance, measure = _toy()
  full = train(workdir=tmp_path / "a", state=state, advance=advance, measure=measure, num_steps=50, log_every=10,
               checkpoint_every=20)
  assert [r["step"] for r in full.rows] == [0, 10, 20, 30, 40, 50]
  assert int(full.state["count"]) == 50
  # Interrupted after 20 steps, then resumed with a longer target: same numbers as one run.
  part = train(workdir=tmp_path / "b", state=state, advance=advance, measure=measure, num_steps=20, log_every=10,
               checkpoint_every=20)
  assert part.resumed_from is None
  resumed = train(workdir=tmp_path / "b", state=state, advance=advance, measure=measure, num_steps=50, log_every=10,
                  checkpoint_every=20)
  assert resumed.resumed_from == 20
  assert resumed.rows == full.rows
  assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()
  kept = sorted(int(p.name) for p in (tmp_path / "a" / "checkpoints").iterdir() if p.name.isdigit())
  assert kept == [20, 40, 50]


def test_nonfinite_metric_stops_the_run_and_keeps_the_last_checkpoint(tmp_path):
  state, advance, measure = _toy(blow_up_at=25)
  with pytest.raises(NonFiniteError, match="non-finite metric"):
    train(workdir=tmp_path, state=state, advance=advance, measure=measure, num_steps=50, log_every=10,
          checkpoint_every=10)
  kept = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  assert kept[-1] == 20
  assert read_jsonl(tmp_path / "metrics.jsonl")[-1]["x"] == "nan"


@pytest.mark.parametrize("measure", [
    lambda s, step: {"per_seed": jnp.stack([s["x"], s["x"] * 0 + 1.0])},   # a vector metric (one value per seed)
    lambda s, step: {"arm": {"x": s["x"]}},                                # a nested dict of metrics
])
def test_nonfinite_value_inside_a_vector_or_nested_metric_stops_the_run(tmp_path, measure):
  state, advance, _ = _toy(blow_up_at=25)
  with pytest.raises(NonFiniteError, match="non-finite metric"):
    train(workdir=tmp_path, state=state, advance=advance, measure=measure, num_steps=50, log_every=10,
          checkpoint_every=10)
  assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [0, 10, 20, 30]


def test_a_state_with_numpy_and_python_leaves_trains_and_resumes(tmp_path):
  # Host leaves had no `.sharding`: train crashed with AttributeError before its first step.
  _, advance, measure = _toy()
  state = {"x": np.float32(1.0), "count": np.zeros((), np.int32)}
  full = train(workdir=tmp_path / "a", state=state, advance=advance, measure=measure, num_steps=40, log_every=10)
  train(workdir=tmp_path / "b", state=state, advance=advance, measure=measure, num_steps=20, log_every=10)
  resumed = train(workdir=tmp_path / "b", state=state, advance=advance, measure=measure, num_steps=40, log_every=10)
  assert resumed.resumed_from == 20 and resumed.rows == full.rows and int(full.state["count"]) == 40
  assert np.asarray(resumed.state["x"]).tobytes() == np.asarray(full.state["x"]).tobytes()


def test_a_checkpoint_past_num_steps_is_refused_not_returned(tmp_path):
  # It used to be restored and returned as is: 20 steps asked, a 50-step state (and rows up to 50) given back.
  from jaxlib_methods.runner import ConfigMismatchError
  state, advance, measure = _toy()
  train(workdir=tmp_path, state=state, advance=advance, measure=measure, num_steps=50, log_every=10)
  with pytest.raises(ConfigMismatchError, match="at step 50, past num_steps=20"):
    train(workdir=tmp_path, state=state, advance=advance, measure=measure, num_steps=20, log_every=10)
  again = train(workdir=tmp_path, state=state, advance=advance, measure=measure, num_steps=50, log_every=10)
  assert again.resumed_from == 50 and int(again.state["count"]) == 50


def test_bad_loop_arguments():
  state, advance, measure = _toy()
  with pytest.raises(ValueError, match="checkpoint_every"):
    train(workdir="/tmp/unused", state=state, advance=advance, measure=measure, num_steps=10, log_every=3,
          checkpoint_every=4)
  with pytest.raises(ValueError, match="num_steps"):
    train(workdir="/tmp/unused", state=state, advance=advance, measure=measure, num_steps=0, log_every=1)
  with pytest.raises(ValueError, match="keep must be >= 1"):   # orbax would keep no checkpoint: no resume, silently
    train(workdir="/tmp/unused", state=state, advance=advance, measure=measure, num_steps=10, log_every=1, keep=0)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
  path = tmp_path / "summary.json"
  atomic_write_json(path, {"v": 1})

  def broken_replace(src, dst):
    raise OSError("disk full")
  monkeypatch.setattr(runner_io.os, "replace", broken_replace)
  with pytest.raises(OSError):
    atomic_write_json(path, {"v": 2})
  assert json.loads(path.read_text()) == {"v": 1}
  assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temp file left behind


def test_metrics_log_round_trip_and_truncate(tmp_path):
  log = MetricsLog(tmp_path)
  for s in range(5):
    log.log(s, loss=np.float32(s) / 2, arr=np.arange(2), bad=float("inf"))
  again = MetricsLog(tmp_path)
  assert [r["step"] for r in again.rows] == list(range(5))
  assert again.rows[1] == {"step": 1, "loss": 0.5, "arr": [0, 1], "bad": "inf"}
  again.truncate_after(2)
  assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [0, 1, 2]


def test_float64_state_under_enable_x64_resumes_exactly_inside_a_running_event_loop(tmp_path):
  """In Jupyter an event loop already runs, so orbax restores in a worker thread where a thread-local
  `jax.enable_x64()` does not apply: float64 leaves came back as float32 (caught by the state digest, so the run
  refused to resume). The restore now keeps the caller's x64 setting."""
  import asyncio

  def advance(state, start, n):
    return {"x": state["x"] * (1 + 1e-12) + 1e-13, "count": state["count"] + n}

  def measure(state, step):
    return {"count": state["count"]}

  async def in_a_running_loop():
    with jax.enable_x64(True):
      state = {"x": jnp.full((4,), 1.0 + 2.0 ** -40, jnp.float64), "count": jnp.int32(0)}
      first = train(workdir=tmp_path, state=state, advance=advance, measure=measure, num_steps=2, log_every=1)
      resumed = train(workdir=tmp_path, state=state, advance=advance, measure=measure, num_steps=3, log_every=1)
      return first, resumed

  first, resumed = asyncio.run(in_a_running_loop())
  assert resumed.resumed_from == 2
  assert resumed.state["x"].dtype == np.float64
  expected = np.asarray(first.state["x"], np.float64) * (1 + 1e-12) + 1e-13
  np.testing.assert_array_equal(np.asarray(resumed.state["x"]), expected)


def test_json_keeps_the_kind_of_0d_arrays(tmp_path):
  """A 0-d int or bool array is written as an int or a bool, as the elements of a 1-d array are (it was a float:
  a memoised count read back as 3.0, a flag as 1.0); float arrays stay floats and NaN stays visible as "nan"."""
  path = tmp_path / "r.json"
  atomic_write_json(path, {"i": jnp.asarray(3), "b": jnp.asarray(True), "f": jnp.asarray(0.5, jnp.float32),
                           "n": np.float32("nan"), "i1": np.array([3]), "b1": np.array([True]),
                           "u": np.array(7, np.uint8), "h": jnp.asarray(0.25, jnp.bfloat16)})
  back = json.loads(path.read_text())
  assert back == {"i": 3, "b": True, "f": 0.5, "n": "nan", "i1": [3], "b1": [True], "u": 7, "h": 0.25}
  assert type(back["i"]) is int and type(back["b"]) is bool and type(back["f"]) is float
