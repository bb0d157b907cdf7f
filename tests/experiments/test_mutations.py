"""Claims that can fail: every experiment's paper claims pass for the method and fail for a deliberately wrong variant.

Contract (jaxlib_methods/runner/experiment.py): an experiment module declares
  TINY      = ("steps=200", ...)            # --set overrides on top of the cpu preset: a run of <= ~10 s on 2 cores
  MUTATIONS = {"no_momentum": ("b1=0",), ...}   # wrong variants, applied on top of TINY
At the TINY size the unmutated run must pass at least one paper claim, and under each mutation at least one of the
paper claims that passed unmutated must fail: a claim that also passes for the wrong method is not a claim. The first
mutation of each experiment runs in the default suite; the others under `-m slow` (all of them when the module sets
`MUTATION_TEST_SLOW = True`, for experiments whose TINY run plus one mutated run cost more than ~6 s on the 2-core
machine: the default suite keeps to its 15-minute budget, and `make test-slow` runs every mutation). The first
mutation of a `MUTATION_TEST_SLOW` experiment is also marked `ci_extra`: `.ci/run` runs those after the default suite
(`make test-ci-extra`), so every experiment's TINY run and one mutation are checked in CI; so is, in an experiment
that reproduces several papers, the first mutation that names each of its papers.

An experiment that reproduces several papers (ALSO_REPRODUCES) names in MUTATION_PAPERS the paper(s) each mutation
targets; under it a passing paper claim of each named paper must fail (a claim belongs to the paper its `where` or
text tags "[id]", an untagged one to the experiment's first paper: `papers.claim_paper`). The registry counts such a
paper as `reproduced` only when some mutation names it (`papers.mutation_papers`).
"""

import re

import pytest

from jaxlib_methods import papers
from jaxlib_methods.runner import experiment as exp_lib

EXPERIMENTS = exp_lib.discover()
WITH_MUTATIONS = {n: e for n, e in EXPERIMENTS.items() if e.mutations}
_BASELINE: dict = {}


def _keys(claims) -> list:
  """Each claim's identity across runs: its text with the numbers taken out (some claims print a measured or
  configured value in their text), and which occurrence of that text it is; so a mutated run's claim is matched even
  when its text shows other numbers, and a run that adds or drops a claim does not shift the others."""
  seen: dict = {}
  keys = []
  for c in claims:
    text = re.sub(r"[-+]?\d[\d.eE+-]*", "#", c.claim)
    seen[text] = seen.get(text, -1) + 1
    keys.append((text, seen[text]))
  return keys


def _run(e, overrides, tmp_path_factory, label):
  config = e.config("cpu", tuple(getattr(e.module, "TINY", ())) + tuple(overrides))
  workdir = tmp_path_factory.mktemp(f"{e.name}-{label}")
  results = e.run(config, workdir) or {}
  claims = list(e.claims(results))
  return dict(zip(_keys(claims), claims))


def _baseline(e, tmp_path_factory):
  if e.name not in _BASELINE:
    claims = _run(e, (), tmp_path_factory, "tiny")
    ids = papers.experiment_papers(e.module)
    passing = {key: papers.claim_paper(c.where, c.claim, ids) or ids[0] for key, c in claims.items()
               if c.kind == "paper" and c.passed}
    _BASELINE[e.name] = passing
  return _BASELINE[e.name]


def _cases():
  for name, e in sorted(WITH_MUTATIONS.items()):
    targets = papers.mutation_papers(e.module)
    named: set = set()
    slow = getattr(e.module, "MUTATION_TEST_SLOW", False)
    for i, mutation in enumerate(sorted(e.mutations)):
      new_paper = not set(targets.get(mutation, ())) <= named   # the first mutation that names a paper
      named |= set(targets.get(mutation, ()))
      if i == 0 and not slow:
        marks = ()
      elif i == 0 or new_paper:     # so CI checks one mutation of every paper a multi-paper experiment reproduces
        marks = (pytest.mark.slow, pytest.mark.ci_extra)
      else:
        marks = (pytest.mark.slow,)
      yield pytest.param(name, mutation, id=f"{name}-{mutation}", marks=marks)


@pytest.mark.parametrize("name,mutation", list(_cases()))
def test_a_paper_claim_fails_under_the_mutation(name, mutation, tmp_path_factory):
  e = WITH_MUTATIONS[name]
  assert hasattr(e.module, "TINY"), f"{name} declares MUTATIONS but no TINY overrides"
  passing = _baseline(e, tmp_path_factory)
  assert passing, f"{name}: no paper claim passes at the TINY size, so the mutation test cannot tell right from wrong"
  mutated = _run(e, e.mutations[mutation], tmp_path_factory, mutation)
  failed = sorted(k for k in passing if k in mutated and not mutated[k].passed)
  missing = sorted(k[0] for k in passing if k not in mutated)
  assert failed, (f"{name}: under the mutation {mutation} {e.mutations[mutation]} every paper claim that passes for "
                  f"the method still passes: {sorted(k[0] for k in passing)}"
                  + (f"; not found in the mutated run (a claim's text must not name a setting the mutation changes, "
                     f"only numbers are ignored when matching): {missing}" if missing else ""))
  for pid in papers.mutation_papers(e.module).get(mutation, ()):
    own = [k for k in passing if passing[k] == pid]
    assert own, (f"{name}: MUTATION_PAPERS says {mutation} breaks a claim of [{pid}], but no paper claim of [{pid}] "
                 f"passes at the TINY size")
    assert any(k in failed for k in own), (
        f"{name}: MUTATION_PAPERS says {mutation} breaks a claim of [{pid}], but every passing paper claim of "
        f"[{pid}] still passes under it: {sorted(k[0] for k in own)}; the ones that failed: {[k[0] for k in failed]}")


@pytest.mark.parametrize("name", sorted(n for n, e in WITH_MUTATIONS.items()
                                        if len(papers.experiment_papers(e.module)) > 1))
def test_a_multi_paper_experiment_names_the_papers_of_its_mutations(name):
  """MUTATION_PAPERS (optional: without it no paper of the experiment can be `reproduced`) names only declared
  mutations and the experiment's own papers, so that `reproduced` (which needs a mutation per paper) cannot rest on a
  mutation of another paper's claims."""
  module = WITH_MUTATIONS[name].module
  declared = getattr(module, "MUTATION_PAPERS", {})
  assert isinstance(declared, dict), (name, type(declared))
  assert set(declared) <= set(module.MUTATIONS), (name, sorted(set(declared) - set(module.MUTATIONS)))
  ids = set(papers.experiment_papers(module))
  for m, targets in papers.mutation_papers(module).items():
    assert targets and set(targets) <= ids, (name, m, targets, sorted(ids))
