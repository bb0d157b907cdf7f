"""mkdocs hook: one API page per public module of jaxlib_methods (and an index), generated at build time."""

from __future__ import annotations

import pathlib
import pkgutil

from mkdocs.structure.files import File

ROOT = pathlib.Path(__file__).resolve().parents[2]


def public_modules() -> list[str]:
  """Every module under jaxlib_methods/ whose dotted path has no part starting with '_'."""
  out = []
  pkg = ROOT / "jaxlib_methods"
  out.append("jaxlib_methods")
  for info in pkgutil.walk_packages([str(pkg)], "jaxlib_methods."):
    if not any(part.startswith("_") for part in info.name.split(".")):
      out.append(info.name)
  return sorted(out)


def on_files(files, config):
  modules = public_modules()
  lines = ["# API reference", "", "One page per public module; the docstrings cite each method's paper and state shapes.",
           "See [the conventions](../conventions.md) for shapes, reductions, labels, dtypes and invalid values.", ""]
  for name in modules:
    depth = name.count(".")
    lines.append(f"{'  ' * depth}- [`{name}`]({name}.md)")
    files.append(File.generated(config, f"api/{name}.md", content=f"# `{name}`\n\n::: {name}\n"))
  files.append(File.generated(config, "api/index.md", content="\n".join(lines) + "\n"))
  return files
