"""The paper registry: every catalog paper -> the artifacts that implement it -> the experiment that reproduces it.

Status is derived, never typed by hand:
  out-of-scope  the catalog's triage says nothing small can be built (its reason is shown);
  planned       no artifact registered yet, or one does not import, or no registered test exercises it;
  implemented   every artifact imports and is named in at least one of the registered test files;
  reproduced    implemented, the registered experiment exists, and its cpu-preset claims all passed when last run
                (recorded in docs/reproductions.json by `python -m jaxlib_methods.papers --record results`).

`python -m jaxlib_methods.papers` regenerates docs/PAPERS.md; a test fails when it is stale or when an entry names an
artifact, test file or experiment that does not exist. The catalog itself (id, titles, category, priority, the
triage's artifact plan and small claim) lives in jaxlib_methods/catalog.json, imported once from
../shared/catalog.md with `--import-catalog`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import pathlib
import re
import sys
from typing import Optional, Sequence

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
CATALOG_JSON = PACKAGE_DIR / "catalog.json"
PAPERS_MD = REPO_ROOT / "docs" / "PAPERS.md"
REPRODUCTIONS_JSON = REPO_ROOT / "docs" / "reproductions.json"

STATUSES = ("reproduced", "implemented", "planned", "out-of-scope")


@dataclasses.dataclass(frozen=True)
class Implementation:
  """What implements a catalog paper. `artifacts` are import paths ("pkg.module.name" or "pkg.module");
  `tests` are test files (relative to the repo root) that must name each artifact; `experiment` a module of
  `experiments/`."""
  artifacts: tuple[str, ...]
  tests: tuple[str, ...]
  experiment: Optional[str] = None


# ---- the registry: catalog id -> implementation (add an entry when a paper's code and tests land) -----------------
IMPLEMENTATIONS: dict[int, Implementation] = {
    193: Implementation(
        artifacts=("jaxlib_methods.optim.lion_k", "jaxlib_methods.optim.scale_by_lion_k",
                   "jaxlib_methods.optim.make_k_function"),
        tests=("tests/optim/test_lion_k.py",),
        experiment="lion_k_constrained"),
}


@dataclasses.dataclass(frozen=True)
class Paper:
  id: int
  title: str
  short_title: str
  category: str
  priority: int
  plan: str
  small_claim: str
  seed: str


@dataclasses.dataclass(frozen=True)
class Entry:
  paper: Paper
  implementation: Optional[Implementation]
  status: str
  reason: str


def load_catalog(path: pathlib.Path = CATALOG_JSON) -> list[Paper]:
  return [Paper(**p) for p in json.loads(path.read_text())]


def _resolve(path: str):
  """Import `pkg.module.attr` or `pkg.module`; raises ImportError/AttributeError when it does not exist."""
  try:
    return importlib.import_module(path)
  except ModuleNotFoundError:
    module, _, attr = path.rpartition(".")
    if not module:
      raise
    return getattr(importlib.import_module(module), attr)


def check_implementation(impl: Implementation, root: pathlib.Path = REPO_ROOT) -> list[str]:
  """Problems with an entry: artifacts that do not import, test files missing or not naming an artifact,
  an experiment that does not exist. Empty when the entry is sound."""
  problems = []
  for a in impl.artifacts:
    try:
      _resolve(a)
    except (ImportError, AttributeError) as e:
      problems.append(f"artifact {a} does not import ({type(e).__name__}: {e})")
  texts = []
  for t in impl.tests:
    p = root / t
    if not p.exists():
      problems.append(f"test file {t} does not exist")
    else:
      texts.append(p.read_text())
  if not impl.tests:
    problems.append("no test file registered")
  for a in impl.artifacts:
    name = a.rpartition(".")[2]
    if texts and not any(re.search(rf"\b{re.escape(name)}\b", t) for t in texts):
      problems.append(f"no registered test names {name}")
  if impl.experiment is not None and importlib.util.find_spec(f"experiments.{impl.experiment}") is None:
    problems.append(f"experiment {impl.experiment} does not exist")
  return problems


def load_reproductions(path: pathlib.Path = REPRODUCTIONS_JSON) -> dict:
  return json.loads(path.read_text()) if path.exists() else {}


def entries(catalog: Optional[list[Paper]] = None, reproductions: Optional[dict] = None) -> list[Entry]:
  catalog = catalog if catalog is not None else load_catalog()
  reproductions = reproductions if reproductions is not None else load_reproductions()
  out = []
  for p in catalog:
    impl = IMPLEMENTATIONS.get(p.id)
    if impl is None:
      if p.plan.lower().startswith("none (out of scope"):
        reason = p.plan[len("none ("):].split(")")[0]
        out.append(Entry(p, None, "out-of-scope", reason))
      else:
        out.append(Entry(p, None, "planned", "not started"))
      continue
    problems = check_implementation(impl)
    if problems:
      out.append(Entry(p, impl, "planned", "; ".join(problems)))
      continue
    rec = reproductions.get(impl.experiment) if impl.experiment else None
    if rec and rec.get("all_passed"):
      out.append(Entry(p, impl, "reproduced", f"{rec['passed']}/{rec['claims']} claims ({rec['preset']} preset)"))
    elif impl.experiment:
      out.append(Entry(p, impl, "implemented", f"experiment {impl.experiment} has no passing record yet"))
    else:
      out.append(Entry(p, impl, "implemented", "no experiment yet"))
  return out


def render_markdown(es: Sequence[Entry]) -> str:
  cats = sorted({e.paper.category for e in es})
  lines = ["# Papers", "",
           "Generated by `python -m jaxlib_methods.papers` from the registry in `jaxlib_methods/papers.py`; do not edit.",
           "Status is derived: *implemented* = artifacts import and registered tests exercise them; *reproduced* =",
           "also an experiment whose cpu-preset claims all passed (docs/reproductions.json).", "",
           "## Counts", "", "| category | " + " | ".join(STATUSES) + " | all |",
           "|---|" + "---|" * (len(STATUSES) + 1)]
  for c in cats + ["all"]:
    sel = [e for e in es if c == "all" or e.paper.category == c]
    lines.append(f"| {c} | " + " | ".join(str(sum(e.status == s for e in sel)) for s in STATUSES)
                 + f" | {len(sel)} |")
  lines += ["", "## Registry", "", "| id | paper | category | P | status | artifacts | experiment | note |",
            "|---|---|---|---|---|---|---|---|"]
  for e in es:
    p = e.paper
    arts = ", ".join(f"`{a}`" for a in e.implementation.artifacts) if e.implementation else ""
    ex = f"`{e.implementation.experiment}`" if e.implementation and e.implementation.experiment else ""
    title = p.title.replace("|", "/")
    note = e.reason.replace("|", "/")
    lines.append(f"| {p.id} | {title} | {p.category} | {p.priority} | {e.status} | {arts} | {ex} | {note} |")
  return "\n".join(lines) + "\n"


# ---- catalog import and reproduction records -----------------------------------------------------------------------

def import_catalog(md_path: pathlib.Path) -> list[dict]:
  """Parse ../shared/catalog.md: the triage table plus the 'Full titles' section."""
  text = md_path.read_text()
  full = {int(m.group(1)): (m.group(2).strip(), m.group(3))
          for m in re.finditer(r"^- (\d+): (.*) \(seed (\d+)\)\s*$", text, re.M)}
  papers = []
  for line in text.splitlines():
    m = re.match(r"^\| (\d+) \| (.*) \|\s*$", line)
    if not m:
      continue
    cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
    if len(cells) < 6:
      raise ValueError(f"catalog row with {len(cells)} cells: {line[:80]}")
    pid, short, cat, plan, claim, prio = cells[0], cells[1], cells[2], " | ".join(cells[3:-2]), cells[-2], cells[-1]
    pid = int(pid)
    title, seed = full.get(pid, (short, "?"))
    papers.append(dict(id=pid, title=title, short_title=short, category=cat, priority=int(prio), plan=plan,
                       small_claim=claim, seed=seed))
  ids = [p["id"] for p in papers]
  if sorted(ids) != list(range(len(ids))):
    raise ValueError("catalog ids are not 0..N-1")
  return papers


def record_reproductions(results_dir: pathlib.Path, path: pathlib.Path = REPRODUCTIONS_JSON) -> dict:
  """Merge results/*/summary.json of runs made with an unmodified cpu preset into docs/reproductions.json."""
  from jaxlib_methods.runner import experiment as exp_lib
  from jaxlib_methods.runner.io import atomic_write_json
  records = load_reproductions(path)
  for summary_path in sorted(pathlib.Path(results_dir).glob("*/summary.json")):
    s = json.loads(summary_path.read_text())
    try:
      e = exp_lib.get(s["experiment"])
    except exp_lib.UsageError:
      continue
    if s.get("preset") != "cpu" or s["config"] != json.loads(json.dumps(dataclasses.asdict(e.presets["cpu"]))):
      continue  # only the default configuration counts as a reproduction
    records[s["experiment"]] = {"preset": "cpu", "all_passed": bool(s["all_passed"]),
                                "claims": len(s["claims"]), "passed": sum(bool(c["passed"]) for c in s["claims"]),
                                "wall_time_s": s["wall_time_s"], "device_kind": s["environment"]["device_kind"]}
  atomic_write_json(path, dict(sorted(records.items())))
  return records


def main(argv: Optional[Sequence[str]] = None) -> int:
  ap = argparse.ArgumentParser(prog="python -m jaxlib_methods.papers", description=__doc__.splitlines()[0])
  ap.add_argument("--import-catalog", type=pathlib.Path, help="re-import ../shared/catalog.md into catalog.json")
  ap.add_argument("--record", type=pathlib.Path, help="record cpu-preset results from this results directory")
  ap.add_argument("--check", action="store_true", help="exit 1 if docs/PAPERS.md is stale (write nothing)")
  args = ap.parse_args(argv)
  from jaxlib_methods.runner.io import atomic_write_json, atomic_write_text
  if args.import_catalog:
    atomic_write_json(CATALOG_JSON, import_catalog(args.import_catalog))
  if args.record:
    record_reproductions(args.record)
  md = render_markdown(entries())
  if args.check:
    stale = not PAPERS_MD.exists() or PAPERS_MD.read_text() != md
    print("docs/PAPERS.md is stale: run `python -m jaxlib_methods.papers`" if stale else "docs/PAPERS.md is current")
    return int(stale)
  atomic_write_text(PAPERS_MD, md)
  es = entries()
  counts = {s: sum(e.status == s for e in es) for s in STATUSES}
  print(f"wrote {PAPERS_MD.relative_to(REPO_ROOT)}: {len(es)} papers, " + ", ".join(f"{v} {k}" for k, v in counts.items()))
  return 0


if __name__ == "__main__":
  sys.exit(main())
