"""Every experiment module follows the runner's contract (so `list`, `run --all` and `--set` work for all)."""

import dataclasses

import pytest

from jaxlib_methods import papers
from jaxlib_methods.runner import experiment as exp_lib

EXPERIMENTS = exp_lib.discover()
CATALOG = {p.id: p for p in papers.load_catalog()}


def test_there_are_experiments():
  assert "lion_k_constrained" in EXPERIMENTS


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_contract(name):
  e = EXPERIMENTS[name]
  assert e.paper.catalog_id in CATALOG, f"{name}: PAPER.catalog_id {e.paper.catalog_id} is not in the catalog"
  assert e.paper.title and e.paper.year >= 2000
  assert {"cpu", "gpu", "tpu"} <= set(e.presets), f"{name}: presets {sorted(e.presets)}"
  cfg = e.config("cpu")
  assert dataclasses.is_dataclass(cfg) and type(cfg).__dataclass_params__.frozen
  # every field can be set from the command line with its own current value
  for f in dataclasses.fields(cfg):
    v = getattr(cfg, f.name)
    if dataclasses.is_dataclass(v):
      continue
    text = ",".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)
    assert exp_lib.apply_overrides(cfg, [f"{f.name}={text}"]) == cfg, f"{name}: {f.name}={text!r} does not round-trip"
  assert callable(e.run) and callable(e.claims)
  assert e.module.__doc__, f"{name}: the module docstring states the paper, setup and claims"
