"""Packaging as the ecosystem expects: the wheel and sdist build, the wheel installs into a fresh venv and every public
module imports from it (catalog.json and py.typed included), and the metadata states the license and tested ranges."""

import pathlib
import subprocess
import sys
import sysconfig
import tarfile
import zipfile

import pytest

import jaxlib_methods

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _public_modules() -> list[str]:
  names = []
  for package in ("jaxlib_methods", "experiments"):
    for path in sorted((ROOT / package).rglob("*.py")):
      rel = path.relative_to(ROOT).with_suffix("")
      parts = list(rel.parts)
      if parts[-1] == "__init__":
        parts = parts[:-1]
      if any(p.startswith("_") for p in parts):
        continue
      names.append(".".join(parts))
  return names


def test_license_version_and_typing_marker():
  assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
  assert (ROOT / "jaxlib_methods" / "py.typed").exists()
  major, minor, patch = jaxlib_methods.__version__.split(".")
  assert all(x.isdigit() for x in (major, minor, patch))


def test_wheel_and_sdist_build_and_the_wheel_installs_and_imports(tmp_path):
  dist = tmp_path / "dist"
  build = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--sdist", "--outdir",
                          str(dist), str(ROOT)], capture_output=True, text=True, timeout=300)
  assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
  wheels = list(dist.glob("*.whl"))
  sdists = list(dist.glob("*.tar.gz"))
  assert len(wheels) == 1 and len(sdists) == 1, list(dist.iterdir())
  assert jaxlib_methods.__version__ in wheels[0].name
  with zipfile.ZipFile(wheels[0]) as z:
    names = set(z.namelist())
    meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
  for needed in ("jaxlib_methods/catalog.json", "jaxlib_methods/py.typed", "experiments/__main__.py"):
    assert needed in names, f"{needed} missing from the wheel"
  assert any(n.endswith("licenses/LICENSE") or n.endswith("/LICENSE") for n in names)
  assert "Requires-Dist: jax<0.13,>=0.10.2" in meta or "Requires-Dist: jax>=0.10.2,<0.13" in meta, meta[:2000]
  with tarfile.open(sdists[0]) as t:
    assert any(n.endswith("/LICENSE") for n in t.getnames())

  # A fresh venv with only the wheel (no deps: those come from this interpreter's site-packages on PYTHONPATH,
  # which holds no copy of the project — its editable install is a .pth hook, not processed on PYTHONPATH).
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
  vpy = venv / "bin" / "python"
  target = pathlib.Path(subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                       capture_output=True, text=True, check=True).stdout.strip())
  with zipfile.ZipFile(wheels[0]) as z:   # what `pip install --no-deps` does for a pure wheel
    z.extractall(target)
  modules = _public_modules()
  code = ("import importlib, sys, pathlib\n"
          f"mods = {modules!r}\n"
          "for m in mods:\n"
          "  mod = importlib.import_module(m)\n"
          f"  assert (mod.__file__ or '').startswith({str(target)!r}), (m, mod.__file__)\n"
          "from jaxlib_methods import papers\n"
          "assert len(papers.load_catalog()) > 200\n"
          "print(len(mods), 'modules imported')\n")
  env = {"PYTHONPATH": sysconfig.get_paths()["purelib"], "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu",
         "HOME": str(tmp_path)}
  run = subprocess.run([str(vpy), "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
  assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
  assert "modules imported" in run.stdout
