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
(`make test-ci-extra`); so is, in an experiment that reproduces several papers, the first mutation that names each of
its papers; except for the experiments in `_CI_TOO_LONG` (over 40 s each), whose mutation tests only `make test-slow`
runs.

An experiment that reproduces several papers (ALSO_REPRODUCES) names in MUTATION_PAPERS the paper(s) each mutation
targets; under it a passing paper claim of each named paper must fail (a claim belongs to the paper its `where` or
text tags "[id]", an untagged one to the experiment's first paper: `papers.claim_paper`). The registry counts such a
paper as `reproduced` only when some mutation names it (`papers.mutation_papers`).
"""

import fcntl
import json
import os
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


def _compute_baseline(e, tmp_path_factory) -> dict:
  claims = _run(e, (), tmp_path_factory, "tiny")
  ids = papers.experiment_papers(e.module)
  return {key: papers.claim_paper(c.where, c.claim, ids) or ids[0] for key, c in claims.items()
          if c.kind == "paper" and c.passed}


def _baseline(e, tmp_path_factory):
  """The unmutated TINY run's passing paper claims, computed once per test run: under pytest-xdist the workers
  share it through a file in this run's base temporary directory (a lock makes the second worker wait for the
  first one's run rather than repeat it). An experiment whose mutations name several papers has one ci_extra test
  per paper, and worksteal spreads them over both workers: each used to rerun the baseline."""
  if e.name not in _BASELINE:
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run_id is None:
      _BASELINE[e.name] = _compute_baseline(e, tmp_path_factory)
    else:
      shared = tmp_path_factory.getbasetemp().parent / f"mutation-baselines-{run_id}"
      shared.mkdir(exist_ok=True)
      path = shared / f"{e.name}.json"
      with open(shared / f"{e.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
          passing = {tuple(k): pid for k, pid in json.loads(path.read_text())}
        else:
          passing = _compute_baseline(e, tmp_path_factory)
          tmp = path.with_suffix(".tmp")
          tmp.write_text(json.dumps([[list(k), pid] for k, pid in passing.items()]))
          os.replace(tmp, path)
      _BASELINE[e.name] = passing
  return _BASELINE[e.name]


# Experiments whose TINY run plus one mutated run is too long for CI: their mutation tests run only under `-m slow`
# (`make test-slow`), not in `make test-ci-extra`. The CI of 2026-12-04 did not finish in its 5,400 s: on the 2-core
# machine `make test-ci-extra` took 3,912 s, 5,925 s of its test time in these mutation tests. Listed: each
# experiment whose longest ci_extra mutation test (its TINY run included) took over 40 s in that run, with that time
# (`pytest -n 2 --durations=0 -m ci_extra`); together 4,755 s of test time. The other 52 experiments' tests took
# 1,170 s.
_CI_TOO_LONG = {
    "adaptive_information_plane": 137, "analysis_wave3c": 47, "analysis_wave3e": 166, "bottlenecks_wave2": 217,
    "co2": 125, "concept_bottlenecks": 119, "contrastive_wave2_p2": 131, "frugal_vs_galore": 72, "gla_vs_softmax": 65,
    "grokking_numerical_stability": 66, "infinite_lr_continual": 53, "information_plane": 82,
    "latent_consistency": 54, "layers_exact_identities": 140, "layers_wave1_p2": 59, "layers_wave1_p2b": 357,
    "layers_wave2_compress": 118, "layers_wave2_gates": 149, "layers_wave2_local": 289, "losses_wave2_p3": 73,
    "losses_wave2_p4": 115, "losses_wave2_p5": 76, "lr_transfer_sharpness": 42, "mixed_barlow_twins": 303,
    "mixup_feature_learning": 84, "mlc_clustering": 71, "mochi_hard_negatives": 86, "nm_gradient_flow": 52,
    "small_scale_proxies": 59, "theory_wave3": 131,
}


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
      elif (i == 0 or new_paper) and name not in _CI_TOO_LONG:   # CI checks one mutation of every paper of an
        marks = (pytest.mark.slow, pytest.mark.ci_extra)            # experiment (one per paper when it has several)
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


def test_every_experiment_left_out_of_ci_exists_and_is_slow():
  """_CI_TOO_LONG names experiments with mutations, each MUTATION_TEST_SLOW (else its first mutation would run in the
  default suite anyway)."""
  assert set(_CI_TOO_LONG) <= set(WITH_MUTATIONS), sorted(set(_CI_TOO_LONG) - set(WITH_MUTATIONS))
  assert all(getattr(WITH_MUTATIONS[n].module, "MUTATION_TEST_SLOW", False) for n in _CI_TOO_LONG)
