"""Sub-run memoisation for sweeps: a killed sweep reruns only the sub-run that was in flight.

An experiment that runs many independent trainings (seeds x widths x learning rates ...) wraps each one:

    res = sweep.memoized(workdir, {"width": w, "lr": lr, "seed": s}, lambda: train_one(w, lr, s))

The first call runs `fn()` and writes its (JSON-serialisable) result to `workdir/subruns/<key hash>.json`
atomically, with the key beside it; a later call with the same key (the same command rerun after a kill) reads it
back instead of training again. The key must determine the sub-run completely together with the experiment's config:
the runner clears `subruns/` whenever the config changes or `--fresh` is given (`jaxlib_methods.runner.train.clear`),
so a key need not repeat the config's fields. A result file whose stored key differs (a hash collision) or that does
not parse is ignored and recomputed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from typing import Any, Callable, Mapping

from jaxlib_methods.runner.io import _jsonable, atomic_write_json

SUBRUNS = "subruns"


def key_hash(key: Mapping[str, Any]) -> str:
  """A stable 16-hex-digit hash of a JSON-serialisable key (sorted keys; tuples and lists alike)."""
  text = json.dumps(_jsonable(dict(key)), sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def memoized(workdir: pathlib.Path, key: Mapping[str, Any], fn: Callable[[], Any]) -> Any:
  """`fn()`'s result for `key`, computed once per workdir and stored in `workdir/subruns/`.

  Args:
    workdir: the run's directory.
    key: JSON-serialisable mapping naming the sub-run (e.g. {"seed": 1, "lr": 0.1}).
    fn: computes the sub-run; returns something JSON-serialisable (arrays become lists, NaN becomes "nan").

  Returns:
    The stored result (as read back from JSON, so a fresh and a resumed sweep see identical values).
  """
  if not isinstance(key, Mapping) or not key:
    raise ValueError(f"key must be a non-empty mapping, got {key!r}")
  key = _jsonable(dict(key))
  path = pathlib.Path(workdir) / SUBRUNS / f"{key_hash(key)}.json"
  if path.exists():
    try:
      stored = json.loads(path.read_text())
      if stored.get("key") == key:
        return stored["result"]
    except (ValueError, KeyError, AttributeError):   # ValueError: not JSON, or not even UTF-8 (random bytes)
      pass  # a damaged record is recomputed
  result = _jsonable(fn())
  atomic_write_json(path, {"key": key, "result": result})
  return json.loads(json.dumps(result))


def completed(workdir: pathlib.Path) -> int:
  """How many sub-runs of this workdir are stored."""
  d = pathlib.Path(workdir) / SUBRUNS
  return len(list(d.glob("*.json"))) if d.exists() else 0


def config_fields(config: Any) -> dict[str, Any]:
  """The fields of a dataclass config but its `mesh`, as a dict: the part of a sub-run's `memoized` key that names
  its configuration (a sub-run's result does not depend on the devices it was split over, so a rerun on another
  mesh reads it back).

  Args:
    config: a dataclass instance (an experiment's Config).

  Returns:
    dict field -> value (nested dataclasses as dicts), without the key "mesh".
  """
  if not dataclasses.is_dataclass(config) or isinstance(config, type):
    raise TypeError(f"config must be a dataclass instance, got {type(config).__name__}")
  return {k: v for k, v in dataclasses.asdict(config).items() if k != "mesh"}
