"""Every notebook under notebooks/ executes top to bottom (small sizes; each asserts its own results)."""

import os
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, monkeypatch):
  # The kernels compile at XLA's backend optimization level 0: the notebooks' small programs are compile-bound, and
  # this roughly halves their CPU time in the default run (each notebook checks its own results at whatever level).
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_backend_optimization_level" not in flags:
    monkeypatch.setenv("XLA_FLAGS", (flags + " --xla_backend_optimization_level=0").strip())
  nbformat = pytest.importorskip("nbformat", reason="install the test extra: pip install -e '.[test]'")
  nbclient = pytest.importorskip("nbclient", reason="install the test extra: pip install -e '.[test]'")
  nb = nbformat.read(path, as_version=4)
  nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
                          ).execute()
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
  assert not errors


def test_there_is_a_notebook():
  assert NOTEBOOKS, "notebooks/01_quickstart.ipynb is missing"
