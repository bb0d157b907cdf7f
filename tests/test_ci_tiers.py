"""The test tiers in tests/conftest.py name tests that exist: an entry of `_CI_EXTRA_TESTS` whose test was renamed or
removed would match nothing, and the renamed test would silently rejoin (and slow) the default suite."""

import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_every_ci_extra_entry_names_a_test_function_that_exists(pytestconfig):
  conftest = next(p for p in pytestconfig.pluginmanager.get_plugins()
                  if pathlib.Path(getattr(p, "__file__", "")) == REPO / "tests" / "conftest.py")
  missing = []
  for node_id in list(conftest._CI_EXTRA_TESTS) + [f + "::" for f in conftest._CI_EXTRA_FILES]:
    path, _, name = node_id.partition("::")
    file = REPO / path
    if not file.is_file():
      missing.append(node_id)
      continue
    if name:
      defined = {n.name for n in ast.walk(ast.parse(file.read_text())) if isinstance(n, ast.FunctionDef)}
      if name not in defined:
        missing.append(node_id)
  assert not missing, f"tests/conftest.py names tests that do not exist: {missing}"
