"""The TESLA experiment [60]: the claims' logic on hand-made results (no training)."""

from experiments import tesla_mtt as exp


def _results(**over):
  r = {"grad": {"1": {"vs_eq6": 1e-7, "vs_full_bptt": 1e-7}, "10": {"vs_eq6": 2e-7, "vs_full_bptt": 0.3}},
       "grad_steps": 10, "grad_reference": "paper_eq6",
       "memory": {"N": [10, 20, 40], "tesla": [100, 100, 100], "bptt": [100, 200, 400]},
       "soft_minus_hard": {"mean": 0.1, "lo": 0.05, "hi": 0.15, "n": 3},
       "hard_minus_random": {"mean": 0.1, "lo": 0.0, "hi": 0.2, "n": 3}}
  r.update(over)
  return r


def test_claims_pass_on_the_expected_results_and_fail_on_wrong_ones():
  assert all(c.passed for c in exp.claims(_results()))
  by = {c.claim: c for c in exp.claims(_results(grad_reference="full_bptt"))}
  assert not by[next(k for k in by if k.startswith("TESLA's accumulated gradient"))].passed
  grows = {c.claim: c for c in exp.claims(_results(memory={"N": [10, 20, 40], "tesla": [100, 200, 400],
                                                           "bptt": [100, 200, 400]}))}
  assert not grows[next(k for k in grows if k.startswith("TESLA's compiled peak"))].passed
  assert len(exp.claims(_results(memory={"N": [], "tesla": [], "bptt": []}))) == 5  # TINY: memory not measured
