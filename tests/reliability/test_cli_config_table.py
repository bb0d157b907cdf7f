"""Every field of every experiment's Config, through the CLI: boundary values accepted, out-of-range values refused.

The cases are generated from the constraints each Config declares (runner/constraints.py): for each field, the
values at its bounds are accepted (the experiment's `run` is called with them), and values just outside its range,
NaN/inf for floats, the wrong type, a tuple too short or with an element out of range, a Literal's non-choice are
refused with exit status 2 and one line on stderr that names the field, without calling `run` and without touching
the workdir (which holds an earlier run's files). A boundary value that the Config's cross-field checks cannot admit
(whatever the other fields) must be refused naming the check.

In-process: `main()` is called with the experiment module's `run`/`claims` patched (a subprocess costs ~4 s of jax
import per case).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import pathlib
from typing import Any

import pytest

from jaxlib_methods.runner import Claim
from jaxlib_methods.runner import cli
from jaxlib_methods.runner import constraints as C
from jaxlib_methods.runner import experiment as exp_lib

EXPERIMENTS = exp_lib.discover()


# ----------------------------------------------------------------------------------------------------------------------
# Case generation from the declared constraints.
# ----------------------------------------------------------------------------------------------------------------------

def _specs(cls, prefix=""):
  for spec in C.field_specs(cls):
    if spec.is_nested:
      yield from _specs(spec.base, prefix + spec.name + ".")
    else:
      yield prefix + spec.name, spec


def _get(config, dotted):
  for part in dotted.split("."):
    config = getattr(config, part)
  return config


def _replace(config, dotted, value):
  head, _, rest = dotted.partition(".")
  if rest:
    return dataclasses.replace(config, **{head: _replace(getattr(config, head), rest, value)})
  return dataclasses.replace(config, **{head: value})


def _text(value) -> str:
  if isinstance(value, (tuple, list)):
    return ",".join(_text(v) for v in value)
  if isinstance(value, float):
    return repr(value)
  return str(value)


def _inside(rng: C.Range, tp) -> list:
  """The values at the bounds that are inside the range (closed bound: the bound; open: the next representable)."""
  out = []
  if rng.ge is not None:
    out.append(tp(rng.ge))
  elif rng.gt is not None:
    out.append(rng.gt + 1 if tp is int else math.nextafter(float(rng.gt), math.inf))
  if rng.le is not None:
    out.append(tp(rng.le))
  elif rng.lt is not None:
    out.append(rng.lt - 1 if tp is int else math.nextafter(float(rng.lt), -math.inf))
  return out


def _outside(rng: C.Range, tp) -> list:
  out = []
  if rng.ge is not None:
    out.append(rng.ge - 1 if tp is int else math.nextafter(float(rng.ge), -math.inf))
  elif rng.gt is not None:
    out.append(tp(rng.gt))
  if rng.le is not None:
    out.append(rng.le + 1 if tp is int else math.nextafter(float(rng.le), math.inf))
  elif rng.lt is not None:
    out.append(tp(rng.lt))
  return out


def accepted_values(spec: C.FieldSpec, current: Any) -> list:
  if spec.choices and spec.base is not tuple:
    return list(spec.choices)
  if spec.base is bool:
    return [True, False]
  if spec.base is tuple:
    values = []
    lo = _inside(spec.range, spec.element)[:1] if spec.range and spec.range.low is not None else []
    hi = _inside(spec.range, spec.element)[-1:] if spec.range and spec.range.high is not None else []
    cur = list(current)
    if lo:   # the smallest element moved to the lower bound keeps an ordered tuple ordered
      i = cur.index(min(cur))
      values.append(tuple(cur[:i] + lo + cur[i + 1:]))
    if hi:
      i = cur.index(max(cur))
      values.append(tuple(cur[:i] + hi + cur[i + 1:]))
    if spec.length is not None and spec.length.min < len(cur):
      values.append(tuple(cur[:max(spec.length.min, 1)]))
    return values
  return _inside(spec.range, spec.base) if spec.range else []


def refused_values(spec: C.FieldSpec, current: Any) -> list:
  """(text given to --set, why) pairs that must be refused."""
  if spec.choices and spec.base is not tuple:
    return [("not_a_choice", "not a choice")]
  if spec.base is bool:
    return [("maybe", "not a bool")]
  if spec.base is tuple:
    cur = list(current)
    out = []
    if spec.length is not None and spec.length.min >= 1:
      out.append((_text(tuple(cur[:spec.length.min - 1])), "too short"))
    for bad in (_outside(spec.range, spec.element) if spec.range else []):
      out.append((_text(tuple([bad] + cur[1:])), "element out of range"))
    if spec.element is float:
      out.append((_text(tuple(cur[:-1])) + ",nan", "NaN element"))
    return out
  if spec.base is str:   # a str field declares its Length (characters)
    return [("x" * (spec.length.max + 1), "too long")] if spec.length and spec.length.max is not None else []
  out = [(_text(v), "out of range") for v in (_outside(spec.range, spec.base) if spec.range else [])]
  if spec.base is float and (spec.range is None or spec.range.finite):
    out += [("nan", "NaN"), ("inf", "inf"), ("-inf", "-inf")]
  if spec.base is int:
    out.append(("1.5", "not an int"))
  return out


def _candidates(spec: C.FieldSpec, current: Any, hint: Any) -> list:
  """Values to try for another field when repairing a cross-field check."""
  if spec.base is not int and spec.base is not float:
    return [current]
  vals = [current]
  for v in ([hint] if isinstance(hint, (int, float)) and not isinstance(hint, bool) else []):
    vals += [v, v + 1, v - 1, v * 2, v // 2 if spec.base is int else v / 2]
  vals += _inside(spec.range, spec.base) if spec.range else []
  vals += [1, 2, 10, 100, 1000]
  out = []
  for v in vals:
    v = spec.base(v) if spec.base is float or float(v).is_integer() else None
    if v is not None and v not in out and (spec.range is None or spec.range.contains(v)):
      out.append(v)
  return out


def _checks(config, prefix=""):
  for f in dataclasses.fields(config):
    v = getattr(config, f.name)
    if dataclasses.is_dataclass(v):
      yield from _checks(v, prefix + f.name + ".")
  for check in getattr(type(config), "CHECKS", ()):
    yield prefix, check


def _failing(config):
  return [(p, c) for p, c in _checks(config) if not c.holds(_get(config, p[:-1]) if p else config)]


def repair(config, key: str, specs: dict):
  """Overrides of *other* fields that make every cross-field check hold with `key` fixed, or None if none exists."""
  failing = _failing(config)
  if not failing:
    return {}
  names = []
  for prefix, check in failing:
    names += [prefix + n for n in C.check_names(check) if prefix + n != key and prefix + n in specs]
  names = list(dict.fromkeys(names))[:3]
  value = _get(config, key)
  pools = [_candidates(specs[n], _get(config, n), value if not isinstance(value, tuple) else None) for n in names]
  for combo in itertools.product(*pools):
    trial = config
    for n, v in zip(names, combo):
      trial = _replace(trial, n, v)
    if not _failing(trial):
      return {n: v for n, v in zip(names, combo) if v != _get(config, n)}
  return None


def cases() -> dict:
  """{experiment: [(field, "accept" | "refuse", value), ...]} from the declared constraints."""
  out = {}
  for name, e in sorted(EXPERIMENTS.items()):
    base = e.config("cpu")
    specs = dict(_specs(type(base)))
    rows = out.setdefault(name, [])
    for key, spec in specs.items():
      current = _get(base, key)
      rows += [(key, "accept", v) for v in accepted_values(spec, current)]
      rows += [(key, "refuse", text) for text, _ in refused_values(spec, current)]
  return out


# One test per experiment running all its cases (about 60 each; 8,000 in all): a pytest item per case cost ~7 ms of
# collection and fixture overhead each, more than the case itself. A failing case is named in the assertion message.
CASES = cases()


# ----------------------------------------------------------------------------------------------------------------------
# Running the CLI in-process with the experiment's work replaced by a recorder.
# ----------------------------------------------------------------------------------------------------------------------

def _snapshot(root: pathlib.Path) -> dict:
  return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory):
  """A workdir holding an earlier run's files, which a refused command must leave exactly as they are."""
  root = tmp_path_factory.mktemp("earlier")
  (root / "checkpoints" / "1000").mkdir(parents=True)
  (root / "checkpoints" / "1000" / "data").write_bytes(b"\x00" * 64)
  (root / "metrics.jsonl").write_text('{"step": 0, "loss": 1.0}\n')
  (root / "summary.json").write_text('{"experiment": "earlier"}\n')
  (root / "config.json").write_text('{"seed": 12345}\n')
  return root


class _Recorder:
  def __init__(self):
    self.configs = []

  def run(self, config, workdir):
    self.configs.append(config)
    return {"ok": True}

  @staticmethod
  def claims(results):
    return [Claim.holds("recorded", True)]


def _one_case(e, name, key, mode, value, workdir, earlier_run, rec, capsys, reliability):
  base = e.config("cpu")
  specs = dict(_specs(type(base)))
  reliability.tried()
  if mode == "refuse":
    before = _snapshot(earlier_run)
    rc = cli.main(["run", name, "--set", f"{key}={value}", "--workdir", str(earlier_run), "--quiet"])
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if l.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and key in lines[0], err
    assert "Traceback" not in err
    assert rec.configs == [], "a refused config must not run"
    assert _snapshot(earlier_run) == before, "a refused command must leave the workdir untouched"
    reliability.clear_error()
    return
  # accept: the value with whatever other fields the cross-field checks need
  config = _replace(base, key, value)
  fixes = repair(config, key, specs)
  overrides = [f"{key}={_text(value)}"] + [f"{k}={_text(v)}" for k, v in (fixes or {}).items()]
  rc = cli.main(["run", name, *sum((["--set", o] for o in overrides), []), "--workdir", str(workdir), "--quiet"])
  err = capsys.readouterr().err
  if fixes is None:  # no other values admit it: the cross-field check must say so
    lines = [l for l in err.splitlines() if l.strip()]
    assert rc == 2 and len(lines) == 1 and "config check failed" in lines[0], err
    assert rec.configs == []
    reliability.clear_error()
    return
  assert rc == 0, err
  assert len(rec.configs) == 1 and _get(rec.configs[0], key) == value
  reliability.accepted()


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_fields_through_cli(name, tmp_path, earlier_run, monkeypatch, capsys, reliability):
  e = EXPERIMENTS[name]
  rec = _Recorder()
  monkeypatch.setattr(e.module, "run", rec.run)
  monkeypatch.setattr(e.module, "claims", rec.claims)
  failures = []
  for i, (key, mode, value) in enumerate(CASES[name]):
    rec.configs.clear()
    try:
      _one_case(e, name, key, mode, value, tmp_path / f"w{i}", earlier_run, rec, capsys, reliability)
    except AssertionError as err:
      failures.append(f"{key} {mode} {_text(value)!r}: {str(err)[:300]}")
  assert not failures, f"{len(failures)} of {len(CASES[name])} cases failed:\n" + "\n".join(failures[:20])


def test_every_field_of_every_config_declares_a_constraint():
  for name, e in EXPERIMENTS.items():
    for preset, config in e.presets.items():
      assert C.undeclared_fields(type(config)) == [], f"{name}: declare a constraint for these fields"
      # every preset is itself valid, once the fields only the user can give (a data path: PRESET_USER_FIELDS,
      # refused with a usage error while empty) are filled
      user = e.user_fields(preset)
      C.validate(dataclasses.replace(config, **{k: "/user/given" for k in user}))


def test_the_table_covers_every_field():
  covered = {(name, key) for name, rows in CASES.items() for key, mode, _ in rows if mode == "refuse"}
  for name, e in EXPERIMENTS.items():
    keys = dict(_specs(type(e.config("cpu"))))
    assert {(name, k) for k in keys} <= covered, f"{name}: a field without an out-of-range case"


@pytest.mark.parametrize("argv, needle", [
    # steps (100) < log_every (250): trained 0 steps and "passed" before constraints existed
    (["consistency_toy", "--set", "steps=100"], "steps % log_every == 0"),
    (["lion_k_constrained", "--set", "horizon=0.0001"], "round(horizon / learning_rate) >= log_every"),
    (["lion_k_constrained", "--set", "checkpoint_every=750"], "checkpoint_every % log_every == 0"),
    (["lion_k_constrained", "--set", "n=511", "--set", "mesh.data=0"], None),  # 1 device: 511 % 1 == 0, accepted
    (["frugal_vs_galore", "--set", "warmup=600"], "warmup < steps"),
    (["gla_vs_softmax", "--set", "steps=-5"], "steps=-5 is out of range: must be an int >= 1"),
    (["gla_vs_softmax", "--set", "pair_counts=(4,70)"], "max(pair_counts) <= num_keys"),
    (["ssl_ey_cca", "--set", "k=5"], "k <= n_signal <= p"),
    (["grokking_numerical_stability", "--set", "train_fraction=1.5"], "train_fraction=1.5 is out of range"),
    (["grokking_numerical_stability", "--set", "steps_softmax=0", "--set", "steps_stablemax=0",
      "--set", "steps_orthograd=0"], "at least one run trains"),
    (["dae_score", "--set", "sigmas=0.1,0.2"], "sigmas decrease strictly"),
    (["isogclr_temperatures", "--set", "batch_size=5000"], "batches are drawn without replacement"),
])
def test_cross_field_checks(argv, needle, tmp_path, monkeypatch, capsys, reliability):
  e = EXPERIMENTS[argv[0]]
  rec = _Recorder()
  monkeypatch.setattr(e.module, "run", rec.run)
  monkeypatch.setattr(e.module, "claims", rec.claims)
  reliability.tried()
  rc = cli.main(["run", *argv, "--workdir", str(tmp_path / "w"), "--quiet"])
  err = capsys.readouterr().err
  if needle is None:
    assert rc == 0 and len(rec.configs) == 1, err
    reliability.accepted()
    return
  lines = [l for l in err.splitlines() if l.strip()]
  assert rc == 2 and len(lines) == 1 and needle in lines[0], err
  assert rec.configs == [] and not (tmp_path / "w").exists()
  reliability.clear_error()
