"""benchmarks/fastfood.py ([135]) runs end to end at a small size: its radix-2 reference agrees with
`fastfood_project` (the script refuses to time otherwise) and it prints one table row per method."""


def test_small_run_prints_a_row_per_method(capsys, load_benchmark):
  load_benchmark("fastfood").main(["--runs", "2", "--reps", "1", "--dims", "8", "--nets", "784-50-50-10"])
  rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 784-50-50-10 |")]
  assert [r.split("|")[4].strip() for r in rows] == ["fastfood", "fastfood_radix2", "dense"]
  assert all(float(r.split("|")[6]) > 0 for r in rows)
