"""Test utilities shared by the test suite (and by users checking their own extensions): independent references,
and the table-driven probes of public functions with hostile inputs (issue 14).

Nothing here is used by the library itself; it exists so that tests compare against something not derived from the
code under test, and so that every public function is held to the same input rules (docs/conventions.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import numpy as np


def central_difference_grad(fn: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
  """Gradient of a scalar float64 NumPy function by central differences, (f(x + h e_i) - f(x - h e_i)) / 2h.

  Args:
    fn: maps an array shaped like `x` to a scalar; evaluated 2 * x.size times.
    x: the point, any shape (cast to float64).
    h: the step; error O(h^2) for smooth fn.

  Returns:
    float64 array shaped like `x`.
  """
  x = np.asarray(x, np.float64)
  g = np.zeros_like(x)
  for idx in np.ndindex(x.shape):
    e = np.zeros_like(x)
    e[idx] = h
    g[idx] = (fn(x + e) - fn(x - e)) / (2 * h)
  return g


# ----------------------------------------------------------------------------------------------------------------------
# Table-driven API probes (issue 14): hostile inputs for a public function, each with the documented outcome.
#
# A spec gives one valid call and names the roles of its arguments; `api_cases` generates the probes:
#   float arrays:  integer dtype -> TypeError naming the argument; an extra trailing axis -> ValueError/TypeError
#                  naming it (unless it takes any rank); a NaN and a +Inf in its first entry -> the documented NaN
#                  propagation (some float output is not finite) or, where documented, a ValueError;
#   label arrays:  float dtype -> TypeError; -1, K and -100 in the first entry -> ValueError naming it (eager);
#                  the same K under jax.jit -> NaN output, and NaN gradient (the library's rule for traced values);
#   the batch:     every batch argument cut to length 0 -> an empty output (per-example functions) or a ValueError
#                  (batch-level ones);
#   half precision: every float array in bfloat16 -> finite and equal, to bfloat16 rounding, to the float32 result
#                  on the same (rounded) inputs;
#   extra cases:   hand-written probes of hyperparameters and values (expected error and the name it must carry).
# ----------------------------------------------------------------------------------------------------------------------

ERROR_KINDS = ("TypeError", "ValueError")


@dataclasses.dataclass
class ApiSpec:
  """One public function, a valid call, and the roles of its arguments (see the module comment above)."""
  fn: Callable[..., Any]
  args: dict
  floats: Sequence[str] = ()
  labels: dict = dataclasses.field(default_factory=dict)  # name -> number of classes (valid range [0, K))
  batch: Sequence[str] = ()
  empty: Any = None  # "empty" (output rows 0) | "error" (ValueError) | a check(out) callable | None (no probe)
  any_rank: Sequence[str] = ()
  at: dict = dataclasses.field(default_factory=dict)  # name -> flat index of the NaN/Inf probe (default 0)
  nan: dict = dataclasses.field(default_factory=dict)  # name -> "error" where a NaN input is a ValueError
  inf: dict = dataclasses.field(default_factory=dict)  # name -> "error" | "finite: <why the finite value is right>"
  half: bool = True
  jit_labels: bool = True
  grad_arg: Optional[str] = None  # float arg to differentiate in the jit label probe (default: the first float)
  jit_grad: bool = True  # also check that the jit label probe's gradient is NaN
  # (id, overrides, "TypeError" | "ValueError" | "nan", name the message must carry[, names of traced arguments]):
  # with the fifth element the call runs under jax.jit with those arguments traced.
  extra: Sequence[tuple] = ()
  name: Optional[str] = None

  @property
  def label(self) -> str:
    return self.name or f"{self.fn.__module__.replace('jaxlib_methods.', '')}.{self.fn.__name__}"


@dataclasses.dataclass
class ApiCase:
  """One probe: `run()` calls the function; `expect` is "TypeError", "ValueError", "nan" or "ok"."""
  id: str
  run: Callable[[], Any]
  expect: str
  names: tuple = ()
  check: Optional[Callable[[Any], None]] = None


def _np_leaves(out: Any) -> list:
  import jax
  return [np.asarray(x) for x in jax.tree_util.tree_leaves(out) if hasattr(x, "dtype")]


def _float_leaves(out: Any) -> list:
  return [x.astype(np.float64) for x in _np_leaves(out)
          if np.issubdtype(x.dtype, np.floating) or x.dtype.name == "bfloat16"]


def _with(args: dict, **over) -> dict:
  """args updated with over; NumPy arrays become jax arrays here, at run time (a table built from NumPy data costs
  no compilation when it is collected)."""
  import jax.numpy as jnp
  out = dict(args)
  out.update(over)
  return {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in out.items()}


def _set_first(x: Any, value: Any, index: int = 0) -> Any:
  import jax.numpy as jnp
  a = jnp.asarray(x)
  return a.reshape(-1).at[index].set(value).reshape(a.shape)


def api_cases(spec: ApiSpec) -> list[ApiCase]:
  """The probes of one spec (see the module comment); each case knows its expected, documented outcome.

  Cheap to build: every perturbed argument is made inside the case's `run`, not at collection time.
  """
  import jax.numpy as jnp

  fn, args, label = spec.fn, spec.args, spec.label

  def call(make_over: Callable[[], dict]) -> Callable[[], Any]:
    return lambda: fn(**_with(args, **make_over()))

  cases = [ApiCase(f"{label}[valid]", call(dict), "ok", check=_all_finite_check)]
  for name in spec.floats:
    x = lambda name=name: jnp.asarray(args[name])
    at = spec.at.get(name, 0)
    cases.append(ApiCase(f"{label}[{name}:int32]", call(lambda name=name, x=x: {name: x().astype(jnp.int32)}),
                         "TypeError", (name,)))
    if name not in spec.any_rank:
      cases.append(ApiCase(f"{label}[{name}:extra-axis]", call(lambda name=name, x=x: {name: x()[..., None]}),
                           "error", (name,)))
    nan_over = lambda name=name, x=x, at=at: {name: _set_first(x(), jnp.nan, at)}
    cases.append(ApiCase(f"{label}[{name}:NaN]", call(nan_over),
                         "ValueError" if spec.nan.get(name, "nan") == "error" else "nan", (name,)))
    inf_over = lambda name=name, x=x, at=at: {name: _set_first(x(), jnp.inf, at)}
    inf_expect = spec.inf.get(name, "nan")
    if inf_expect == "error":
      cases.append(ApiCase(f"{label}[{name}:+Inf]", call(inf_over), "ValueError", (name,)))
    elif inf_expect == "nan":
      cases.append(ApiCase(f"{label}[{name}:+Inf]", call(inf_over), "nan", (name,)))
    else:  # "finite: <why>": documented, the finite value is the right one (e.g. a limit); checked to be finite
      cases.append(ApiCase(f"{label}[{name}:+Inf]", call(inf_over), "ok", check=_all_finite_check))
  for name, k in spec.labels.items():
    y = lambda name=name: jnp.asarray(args[name])
    cases.append(ApiCase(f"{label}[{name}:float]", call(lambda name=name, y=y: {name: y().astype(jnp.float32)}),
                         "TypeError", (name,)))
    for bad in (-1, k, -100):
      bad_over = lambda name=name, y=y, bad=bad: {name: _set_first(y(), bad)}
      cases.append(ApiCase(f"{label}[{name}={bad}]", call(bad_over), "ValueError", (name,)))
    if spec.jit_labels:
      probe = _jit_label_probe(spec, name, lambda y=y, k=k: _set_first(y(), k))
      cases.append(ApiCase(f"{label}[{name}={k}:jit]", probe, "nan"))
  if spec.empty is not None:
    cut = lambda: {n: jnp.asarray(args[n])[:0] for n in spec.batch}
    if spec.empty == "error":
      cases.append(ApiCase(f"{label}[empty-batch]", call(cut), "ValueError", tuple(spec.batch)))
    else:
      check = _empty_check if spec.empty == "empty" else spec.empty
      cases.append(ApiCase(f"{label}[empty-batch]", call(cut), "ok", check=check))
  if spec.half and spec.floats:
    cases.append(ApiCase(f"{label}[bfloat16]", _half_probe(spec), "ok"))
  for case_id, over, expect, name, *traced in spec.extra:
    run = call(lambda over=over: over) if not traced else _jit_call(fn, _with(args, **over), tuple(traced[0]))
    cases.append(ApiCase(f"{label}[{case_id}]", run, expect, (name,) if name else ()))
  return cases


def _jit_call(fn: Callable[..., Any], args: dict, traced: tuple) -> Callable[[], Any]:
  import jax

  def run():
    static = {k: v for k, v in args.items() if k not in traced}
    return jax.jit(lambda dyn: fn(**static, **dyn))({k: args[k] for k in traced})
  return run


def _all_finite_check(out: Any) -> None:
  for leaf in _float_leaves(out):
    assert np.all(np.isfinite(leaf)), "the valid call gave a non-finite output"


def _empty_check(out: Any) -> None:
  leaves = [x for x in _np_leaves(out) if x.ndim >= 1]
  assert leaves and all(x.shape[0] == 0 for x in leaves), f"expected empty outputs, got {[x.shape for x in leaves]}"


def _jit_label_probe(spec: ApiSpec, name: str, make_bad_labels: Callable[[], Any]) -> Callable[[], Any]:
  import jax
  import jax.numpy as jnp

  def run():
    bad_labels = make_bad_labels()
    out = jax.jit(lambda lab: spec.fn(**_with(spec.args, **{name: lab})))(bad_labels)
    g_name = spec.grad_arg or (spec.floats[0] if spec.floats else None)
    if g_name is None or not spec.jit_grad:
      return out

    def total(x):
      res = spec.fn(**_with(spec.args, **{g_name: x, name: bad_labels}))
      return sum(jnp.sum(jnp.asarray(leaf, jnp.float32)) for leaf in jax.tree_util.tree_leaves(res)
                 if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.floating))

    g = jax.jit(jax.grad(total))(jnp.asarray(spec.args[g_name]))
    assert not np.all(np.isfinite(np.asarray(g))), f"an invalid label under jit left a finite gradient for {g_name}"
    return out
  return run


def _half_probe(spec: ApiSpec) -> Callable[[], Any]:
  import jax.numpy as jnp

  def run():
    half = {n: jnp.asarray(spec.args[n]).astype(jnp.bfloat16) for n in spec.floats}
    rounded = {n: h.astype(jnp.float32) for n, h in half.items()}
    out = spec.fn(**_with(spec.args, **half))
    ref = spec.fn(**_with(spec.args, **rounded))
    for o, r in zip(_float_leaves(out), _float_leaves(ref)):
      assert np.all(np.isfinite(o)), "bfloat16 inputs gave a non-finite output"
      scale = max(1.0, float(np.max(np.abs(r))) if r.size else 1.0)
      np.testing.assert_allclose(o, r, rtol=2e-2, atol=2e-2 * scale)
    return out
  return run


def run_api_case(case: ApiCase) -> str:
  """Run one probe and assert its documented outcome; returns the outcome ("error", "nan" or "ok")."""
  import pytest
  if case.expect in ERROR_KINDS + ("error",):
    kinds = (TypeError, ValueError) if case.expect == "error" else {"TypeError": TypeError,
                                                                     "ValueError": ValueError}[case.expect]
    with pytest.raises(kinds) as info:
      case.run()
    msg = str(info.value)
    assert not case.names or any(n in msg for n in case.names), (
        f"the {type(info.value).__name__} must name {' or '.join(case.names)}: {msg!r}")
    return "error"
  out = case.run()
  if case.expect == "nan":
    leaves = _float_leaves(out)
    assert leaves and any(not np.all(np.isfinite(x)) for x in leaves), (
        "a NaN/Inf (or invalid traced) input gave an all-finite output: a silent wrong value")
    return "nan"
  if case.check is not None:
    case.check(out)
  return "ok"


def is_default_run_case(case: ApiCase, fast_ids: frozenset = frozenset()) -> bool:
  """True for the probes a table runs by default: every error probe (it raises before any work) and `fast_ids`."""
  return case.expect in ERROR_KINDS + ("error",) or case.id in fast_ids


def api_case_params(cases: Sequence[ApiCase], fast_ids: Sequence[str] = ()) -> list:
  """`pytest.param`s for `cases`, the probes that compute (and are not in `fast_ids`) marked `slow`.

  Raises ValueError for ids in `fast_ids` that no case has (a renamed probe must not silently leave the default run).
  """
  import pytest
  fast = frozenset(fast_ids)
  unknown = fast - {c.id for c in cases}
  if unknown:
    raise ValueError(f"fast_ids names probes that do not exist: {sorted(unknown)}")
  return [pytest.param(c, id=c.id, marks=() if is_default_run_case(c, fast) else pytest.mark.slow) for c in cases]


def api_counts_report(label: str, n_functions: int, cases: Sequence[ApiCase], fast_ids: Sequence[str] = ()
                      ) -> tuple[dict, str]:
  """The counts of a table (`summarize_api_cases` plus functions and default-run size) and a one-line report."""
  counts = summarize_api_cases(cases)
  counts["functions"] = n_functions
  counts["default_run"] = sum(is_default_run_case(c, frozenset(fast_ids)) for c in cases)
  line = (f"[{label}] {counts['functions']} functions, {counts['tried']} cases tried: {counts['clear_errors']} clear "
          f"errors, {counts['nan_propagation']} documented NaN propagation, {counts['valid_outputs']} documented "
          f"valid outputs ({counts['default_run']} in the default run, all with -m slow)")
  return counts, line


def summarize_api_cases(cases: Sequence[ApiCase]) -> dict:
  """Counts by documented outcome: tried, clear errors, documented NaN propagation, documented valid outputs."""
  errors = sum(c.expect in ERROR_KINDS + ("error",) for c in cases)
  nans = sum(c.expect == "nan" for c in cases)
  return {"tried": len(cases), "clear_errors": errors, "nan_propagation": nans,
          "valid_outputs": len(cases) - errors - nans}
