"""`--tensorboard`: the metrics of a run also as TensorBoard event files, read back here with a TFRecord reader written
from the format (length, masked CRC32C of the length, Event proto, masked CRC32C), not with the writer's code."""

from __future__ import annotations

import json
import pathlib
import struct

import pytest

from jaxlib_methods.runner import MetricsLog, UsageError
from jaxlib_methods.runner import io as io_lib

event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2",
                                reason="tensorboardX (the `tensorboard` extra, in `.[test]`) is not installed")


def _crc32c(data: bytes) -> int:
  crc = 0xFFFFFFFF
  for b in data:
    crc ^= b
    for _ in range(8):
      crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
  return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_events(directory: pathlib.Path) -> list:
  """Every Event of every event file in `directory`, in file order, each record's two CRCs verified."""
  events = []
  for path in sorted(directory.glob("events.out.tfevents.*")):
    data = path.read_bytes()
    pos = 0
    while pos < len(data):
      (length,), (len_crc,) = struct.unpack("<Q", data[pos:pos + 8]), struct.unpack("<I", data[pos + 8:pos + 12])
      assert len_crc == _masked(_crc32c(data[pos:pos + 8]))
      body = data[pos + 12:pos + 12 + length]
      (body_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
      assert body_crc == _masked(_crc32c(body))
      events.append(event_pb2.Event.FromString(body))
      pos += 16 + length
  return events


def scalars(directory: pathlib.Path) -> dict:
  """{tag: [(step, value), ...]} with TensorBoard's purge rule: a SessionLog START at step s drops earlier points of
  step >= s."""
  out: dict = {}
  for e in read_events(directory):
    if e.HasField("session_log") and e.session_log.status == e.session_log.START:
      out = {t: [(s, v) for s, v in pts if s < e.step] for t, pts in out.items()}
    for v in e.summary.value:
      out.setdefault(v.tag, []).append((e.step, v.simple_value))
  return out


def test_metrics_log_mirrors_numbers_to_tensorboard_and_a_resume_purges(tmp_path):
  log = MetricsLog(tmp_path, tensorboard=True)
  log.log(1, loss=2.0, eval={"acc": 0.5, "curve": [1, 2]}, note="text", nan=float("nan"), ok=True)
  log.log(2, loss=1.5, eval={"acc": 0.6})
  log.log(3, loss=9.0, eval={"acc": 0.1})       # the interrupted run's point, after the checkpoint at step 2
  log.close()
  got = scalars(tmp_path / "tensorboard")
  assert got == {"loss": [(1, 2.0), (2, 1.5), (3, 9.0)], "eval/acc": [(1, 0.5), (2, pytest.approx(0.6)),
                                                                     (3, pytest.approx(0.1))]}
  resumed = MetricsLog(tmp_path, tensorboard=True)
  resumed.truncate_after(2)
  resumed.log(3, loss=1.0, eval={"acc": 0.7})
  resumed.close()
  got = scalars(tmp_path / "tensorboard")
  assert got["loss"] == [(1, 2.0), (2, 1.5), (3, 1.0)]
  assert [r["step"] for r in io_lib.read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2, 3]
  fresh = MetricsLog(tmp_path, tensorboard=True)
  fresh.reset()
  assert not list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
  off = MetricsLog(tmp_path / "off")
  off.log(1, loss=1.0)
  assert off.tensorboard_dir is None and not (tmp_path / "off" / "tensorboard").exists()


def test_cli_tensorboard_flag_writes_the_training_curve(tmp_path, capsys):
  from jaxlib_methods.runner.cli import main
  wd = tmp_path / "w"
  rc = main(["run", "lion_k_constrained", "--workdir", str(wd), "--quiet", "--tensorboard",
             "--set", "horizon=0.1", "--set", "step_ratio=2", "--set", "log_every=50", "--set", "checkpoint_every=100"])
  capsys.readouterr()
  assert rc in (0, 1)
  rows = io_lib.read_jsonl(wd / "metrics.jsonl")
  got = scalars(wd / "tensorboard")
  numeric = {k for r in rows for k, v in r.items() if k != "step" and isinstance(v, (int, float))}
  assert numeric and numeric <= set(got)
  k = sorted(numeric)[0]
  assert [s for s, _ in got[k]] == [r["step"] for r in rows if k in r]


def test_missing_tensorboardx_is_a_usage_error(monkeypatch):
  import builtins
  real = builtins.__import__

  def fake(name, *a, **kw):
    if name == "tensorboardX":
      raise ImportError("no")
    return real(name, *a, **kw)
  monkeypatch.setattr(builtins, "__import__", fake)
  with pytest.raises(UsageError, match=r"jaxlib-methods\[tensorboard\]"):
    io_lib.require_tensorboard()
  json.dumps({})  # the module imports stay usable after the patch is undone
