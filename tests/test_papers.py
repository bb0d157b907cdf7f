"""The paper registry: complete, sound, and docs/PAPERS.md current; recorded reproductions really pass."""

import dataclasses
import pathlib

import pytest

from jaxlib_methods import papers
from jaxlib_methods.runner import experiment as exp_lib

SHARED_CATALOG = papers.REPO_ROOT.parent / "shared" / "catalog.md"


def test_papers_md_is_current():
  expected = papers.render_markdown(papers.entries())
  assert papers.PAPERS_MD.read_text() == expected, "docs/PAPERS.md is stale: run `python -m jaxlib_methods.papers`"


def test_catalog_has_every_paper_once():
  catalog = papers.load_catalog()
  assert [p.id for p in catalog] == list(range(len(catalog)))
  assert len(catalog) == 215
  rendered = papers.PAPERS_MD.read_text()
  for p in catalog:
    assert f"\n| {p.id} | " in rendered


def test_catalog_json_matches_shared_catalog():
  if not SHARED_CATALOG.exists():
    pytest.skip(f"{SHARED_CATALOG} not beside the checkout (it is on the project's machines and in CI)")
  assert papers.import_catalog(SHARED_CATALOG) == [dataclasses.asdict(p) for p in papers.load_catalog()]


@pytest.mark.parametrize("pid", sorted(papers.IMPLEMENTATIONS))
def test_registry_entry_is_sound(pid):
  impl = papers.IMPLEMENTATIONS[pid]
  assert papers.check_implementation(impl) == []
  if impl.experiment:
    assert exp_lib.get(impl.experiment).paper.catalog_id == pid


def test_check_implementation_catches_bad_entries():
  bad = papers.Implementation(artifacts=("jaxlib_methods.optim.no_such_thing",), tests=("tests/nope.py",),
                              experiment="no_such_experiment")
  problems = papers.check_implementation(bad)
  assert any("does not import" in p for p in problems)
  assert any("does not exist" in p and "tests/nope.py" in p for p in problems)
  assert any("experiment no_such_experiment" in p for p in problems)


def test_status_is_derived_not_typed():
  statuses = {e.paper.id: e.status for e in papers.entries()}
  for e in papers.entries():
    assert e.status in papers.STATUSES
    if e.status in ("implemented", "reproduced"):
      assert e.paper.id in papers.IMPLEMENTATIONS
  # Without a passing record, an experiment-backed paper is only "implemented".
  assert {e.paper.id: e.status for e in papers.entries(reproductions={})}[193] == "implemented"
  assert statuses[193] == "reproduced"


def _recorded_demo_experiments():
  recs = papers.load_reproductions()
  return sorted(name for name, r in recs.items() if r["all_passed"] and exp_lib.get(name).demo)


@pytest.mark.parametrize("name", _recorded_demo_experiments())
def test_recorded_reproduction_really_passes(name, tmp_path):
  """A 'reproduced' status is only as good as the run behind it: rerun each DEMO experiment's cpu preset."""
  e = exp_lib.get(name)
  results = e.run(e.config("cpu"), tmp_path)
  failed = [c for c in e.claims(results) if not c.passed]
  assert not failed, failed
