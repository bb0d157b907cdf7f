"""benchmarks/attention.py runs end to end at a tiny size on CPU (interpret mode), so the prepared GPU script is not
first exercised in a scarce GPU window; its tolerance table must pass."""

import pytest


def test_tiny_run_passes_its_tolerance_checks(capsys, load_benchmark):
  script = load_benchmark("attention")
  assert script.main(["--tiny", "--reps", "1"]) == 0
  out = capsys.readouterr().out
  assert "| yes |" in out and "**NO**" not in out
  assert "## XLA reference on CPU" in out


def test_tolerances_are_fixed_before_the_run_and_ordered(load_benchmark):
  script = load_benchmark("attention")
  tol = script.TOLERANCES
  assert tol["fp32-highest"] <= tol["fp32-high"] < tol["fp32-default"] <= tol["bf16"]
  assert {c[1] for c in script.TOLERANCE_CASES} == set(tol)


@pytest.mark.slow
def test_gla_tolerance_checks_run_in_interpret_mode(capsys, load_benchmark):
  """The GLA table of the GPU run (varlen with initial states, segments, both precisions) at tiny sizes (~30 s)."""
  script = load_benchmark("attention")
  cases = [("GLA fp32 tiny h0 varlen", "fp32-highest", "highest", (1, 80, 2, 16, 32), 4.0,
            dict(initial_state=True, varlen=3)),
           ("GLA bf16 tiny seg", "bf16", None, (2, 70, 2, 32, 16), 1.0, dict(segments=True))]
  assert script.gla_tolerance_checks(interpret=True, cases=cases) == 0
  out = capsys.readouterr().out
  assert out.count("| yes |") == 2
  assert {c[1] for c in script.GLA_CASES} == set(script.GLA_TOLERANCES)


@pytest.mark.slow
def test_fa2_tune_script_runs_in_interpret_mode(capsys, load_benchmark):
  """benchmarks/fa2_tune.py (the tile sweep of a GPU window) at a tiny size: every candidate compiles and is timed
  (~5 s)."""
  mod = load_benchmark("fa2_tune")
  assert mod.main(["--tiny"]) == 0
  rows = [l for l in capsys.readouterr().out.splitlines() if l.startswith("| 32 |")]
  assert len(rows) == 6 and not any("failed" in r for r in rows)
