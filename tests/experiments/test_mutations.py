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
(`make test-ci-extra`), so every experiment's TINY run and one mutation are checked in CI.
"""

import re

import pytest

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
    passing = {key for key, c in claims.items() if c.kind == "paper" and c.passed}
    _BASELINE[e.name] = passing
  return _BASELINE[e.name]


def _cases():
  for name, e in sorted(WITH_MUTATIONS.items()):
    for i, mutation in enumerate(sorted(e.mutations)):
      slow = getattr(e.module, "MUTATION_TEST_SLOW", False)
      if i > 0:
        marks = (pytest.mark.slow,)
      elif slow:
        marks = (pytest.mark.slow, pytest.mark.ci_extra)
      else:
        marks = ()
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
