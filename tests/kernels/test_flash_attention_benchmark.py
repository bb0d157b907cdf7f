"""benchmarks/attention.py runs end to end at a tiny size on CPU (interpret mode), so the prepared GPU script is not
first exercised in a scarce GPU window; its tolerance table must pass."""

import importlib.util
import os


def _load_script():
  path = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "attention.py")
  spec = importlib.util.spec_from_file_location("attention_benchmark", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def test_tiny_run_passes_its_tolerance_checks(capsys):
  script = _load_script()
  assert script.main(["--tiny", "--reps", "1"]) == 0
  out = capsys.readouterr().out
  assert "| yes |" in out and "**NO**" not in out
  assert "## XLA reference on CPU" in out


def test_tolerances_are_fixed_before_the_run_and_ordered():
  script = _load_script()
  tol = script.TOLERANCES
  assert tol["fp32-highest"] <= tol["fp32-high"] < tol["fp32-default"] <= tol["bf16"]
  assert {c[1] for c in script.TOLERANCE_CASES} == set(tol)
