"""benchmarks/fastfood.py ([135]) runs end to end at a small size: its radix-2 reference agrees with
`fastfood_project` (the script refuses to time otherwise) and it prints one table row per method."""

import importlib.util
import os


def _load_script():
  path = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "fastfood.py")
  spec = importlib.util.spec_from_file_location("fastfood_benchmark", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def test_small_run_prints_a_row_per_method(capsys):
  _load_script().main(["--runs", "2", "--reps", "1", "--dims", "8", "--nets", "784-50-50-10"])
  rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 784-50-50-10 |")]
  assert [r.split("|")[4].strip() for r in rows] == ["fastfood", "fastfood_radix2", "dense"]
  assert all(float(r.split("|")[6]) > 0 for r in rows)
