"""Config constraints, declared next to the fields and checked in one place before any work.

A field states its valid values in its type with `typing.Annotated` (as pydantic and annotated-types do), so the
constraint sits on the same line as the default:

    @dataclasses.dataclass(frozen=True)
    class Config:
      seed: Seed = 0                                             # an int in [0, 2**31 - 1]
      steps: PositiveInt = 4000                                  # an int >= 1
      learning_rate: Annotated[float, Range(gt=0)] = 1e-3        # a finite float > 0 (floats are always finite)
      b1: Annotated[float, Range(ge=0, lt=1)] = 0.9              # closed or open bounds, either side
      taus: Annotated[tuple[float, ...], Range(gt=0), Length(min=2)] = (0.1, 0.5)   # Range applies to each element
      metric: Literal["l1", "l2"] = "l1"                         # a Literal's choices are its constraint
      flag: bool = False                                         # so are a bool's
      mesh: MeshConfig = MeshConfig()                            # a nested config is checked field by field

      CHECKS = (Check("steps % log_every == 0", "the loop runs whole chunks of log_every steps"),)  # cross-field

`validate(config)` checks every field (its type, its range, finiteness, a tuple's length), then every `Check` (those
of nested configs first), and raises `UsageError` with one line naming the first offending field and its valid values.
The experiment CLI calls it after applying `--preset` and `--set`, before it touches the workdir or runs anything.
`undeclared_fields(cls)` lists the fields that declare nothing; a test over every experiment keeps it empty, so a new
experiment cannot skip this.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import math
import types
import typing
from typing import Annotated, Any, Optional, Union

__all__ = ["Range", "Length", "Check", "Seed", "PositiveInt", "NonNegativeInt", "PositiveFloat", "NonNegativeFloat",
           "Probability", "validate", "undeclared_fields", "field_spec", "FieldSpec", "check_names"]


class UsageError(ValueError):
  """A mistake on the command line: reported in one line, exit status 2 (re-exported by runner.experiment)."""


def _fmt(x: Any) -> str:
  if isinstance(x, float):
    return f"{x:g}"
  return repr(x)


@dataclasses.dataclass(frozen=True)
class Range:
  """A numeric interval: `ge`/`gt` the lower bound (closed/open), `le`/`lt` the upper; None = unbounded.

  On a float field the value must also be finite (NaN and +-inf are refused) unless `finite=False`. On a tuple field
  the range applies to every element.
  """
  ge: Optional[float] = None
  gt: Optional[float] = None
  le: Optional[float] = None
  lt: Optional[float] = None
  finite: bool = True

  def __post_init__(self):
    if self.ge is not None and self.gt is not None:
      raise TypeError("Range takes at most one of ge, gt")
    if self.le is not None and self.lt is not None:
      raise TypeError("Range takes at most one of le, lt")

  @property
  def low(self) -> Optional[float]:
    return self.ge if self.ge is not None else self.gt

  @property
  def high(self) -> Optional[float]:
    return self.le if self.le is not None else self.lt

  def contains(self, x: float) -> bool:
    if isinstance(x, float) and math.isnan(x):
      return False
    if isinstance(x, float) and self.finite and not math.isfinite(x):
      return False
    return ((self.ge is None or x >= self.ge) and (self.gt is None or x > self.gt)
            and (self.le is None or x <= self.le) and (self.lt is None or x < self.lt))

  def describe(self) -> str:
    lo, hi = self.low, self.high
    if lo is not None and hi is not None:
      return f"in {'[' if self.ge is not None else '('}{_fmt(lo)}, {_fmt(hi)}{']' if self.le is not None else ')'}"
    if lo is not None:
      return f"{'>=' if self.ge is not None else '>'} {_fmt(lo)}"
    if hi is not None:
      return f"{'<=' if self.le is not None else '<'} {_fmt(hi)}"
    return "any value"


@dataclasses.dataclass(frozen=True)
class Length:
  """The number of elements of a tuple (or characters of a str) field: `min <= len <= max` (max None: unbounded)."""
  min: int = 0
  max: Optional[int] = None

  def contains(self, n: int) -> bool:
    return n >= self.min and (self.max is None or n <= self.max)

  def describe(self) -> str:
    if self.max is None:
      return f"at least {self.min} element{'s' if self.min != 1 else ''}"
    if self.min == self.max:
      return f"exactly {self.min} element{'s' if self.min != 1 else ''}"
    return f"{self.min} to {self.max} elements"


_SAFE_BUILTINS = {f.__name__: f for f in (abs, all, any, float, int, len, list, max, min, round, sorted, sum, set,
                                                  tuple)}
_SAFE_BUILTINS["math"] = math


@dataclasses.dataclass(frozen=True)
class Check:
  """A cross-field constraint: a Python expression over the config's fields that must be true.

  `expr` may use the field names (and dotted names of nested configs, e.g. `n % mesh.data == 0`), arithmetic,
  comparisons and abs/all/any/float/int/len/list/max/min/round/sorted/sum/set/tuple/math. `why` says in words what the
  check guards against; both appear in the error, with the values of the fields the expression names.
  """
  expr: str
  why: str = ""

  def __post_init__(self):
    ast.parse(self.expr, mode="eval")  # a typo in a declaration fails at import, not when a user hits it

  def holds(self, config: Any) -> bool:
    namespace = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    try:
      # The fields are globals of the expression, not locals: a comprehension's body (its own scope) sees only
      # globals, so `all(t <= cap for t in taus)` could not read `cap` otherwise.
      return bool(eval(compile(self.expr, "<Check>", "eval"), {**namespace, "__builtins__": _SAFE_BUILTINS}))
    except (ArithmeticError, ValueError, TypeError):   # e.g. round(inf): the values cannot satisfy the check
      return False

  def message(self, config: Any, prefix: str = "") -> str:
    values = ", ".join(f"{prefix}{n}={_fmt(_lookup(config, n))}" for n in check_names(self))
    why = f" ({self.why})" if self.why else ""
    where = f" in {prefix[:-1]}" if prefix else ""
    return f"config check failed{where}: {self.expr}{why}; got {values}"


def check_names(check: Check) -> list[str]:
  """The (dotted) field names a check's expression reads, in order of first use (names a comprehension or a lambda
  binds, e.g. `t` in `all(t > 0 for t in taus)`, are not fields)."""
  names: list[str] = []
  tree = ast.parse(check.expr, mode="eval")
  bound = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.comprehension):
      bound.update(n.id for n in ast.walk(node.target) if isinstance(n, ast.Name))
    elif isinstance(node, ast.Lambda):
      bound.update(a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg))

  def visit(node):
    if isinstance(node, ast.Attribute):
      parts = []
      while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
      if isinstance(node, ast.Name) and node.id not in _SAFE_BUILTINS and node.id not in bound:
        dotted = ".".join([node.id] + parts[::-1])
        if dotted not in names:
          names.append(dotted)
        return
      visit(node)
      return
    if isinstance(node, ast.Name):
      if node.id not in _SAFE_BUILTINS and node.id not in bound and node.id not in names:
        names.append(node.id)
      return
    for child in ast.iter_child_nodes(node):
      visit(child)

  visit(tree)
  return names


def _lookup(config: Any, dotted: str) -> Any:
  for part in dotted.split("."):
    config = getattr(config, part)
  return config


# ----------------------------------------------------------------------------------------------------------------------
# Common declarations.
# ----------------------------------------------------------------------------------------------------------------------

Seed = Annotated[int, Range(ge=0, le=2**31 - 1)]
PositiveInt = Annotated[int, Range(ge=1)]
NonNegativeInt = Annotated[int, Range(ge=0)]
PositiveFloat = Annotated[float, Range(gt=0)]
NonNegativeFloat = Annotated[float, Range(ge=0)]
Probability = Annotated[float, Range(ge=0, le=1)]


# ----------------------------------------------------------------------------------------------------------------------
# Reading the declarations.
# ----------------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class FieldSpec:
  """What a field declares: its base type (Annotated and Optional stripped), whether None is allowed, the element
  type of a tuple, its Literal choices, and its Range / Length constraints."""
  name: str
  base: Any
  optional: bool
  element: Any = None
  choices: tuple = ()
  range: Optional[Range] = None
  length: Optional[Length] = None

  @property
  def is_nested(self) -> bool:
    return dataclasses.is_dataclass(self.base)

  @property
  def declared(self) -> bool:
    """True when the field says which values are valid (a nested config is checked through its own fields)."""
    if self.is_nested or self.base is bool or self.choices:
      return True
    if self.base is tuple:
      return self.length is not None and (self.range is not None or self.element is bool or bool(self.choices))
    return self.range is not None or (self.base is str and self.length is not None)


def _is_union(tp: Any) -> bool:
  return typing.get_origin(tp) is Union or (hasattr(types, "UnionType") and isinstance(tp, types.UnionType))


def field_spec(cls: type, name: str, hints: Optional[dict] = None) -> FieldSpec:
  hints = hints if hints is not None else typing.get_type_hints(cls, include_extras=True)
  tp = hints[name]
  extras: list = []
  optional = False
  while True:
    if typing.get_origin(tp) is Annotated:
      extras.extend(tp.__metadata__)
      tp = typing.get_args(tp)[0]
    elif _is_union(tp):
      args = [a for a in typing.get_args(tp) if a is not type(None)]
      optional = optional or len(args) < len(typing.get_args(tp))
      if len(args) != 1:
        raise TypeError(f"{cls.__name__}.{name}: only Optional[X] unions are supported, got {tp}")
      tp = args[0]
    else:
      break
  rng = next((e for e in extras if isinstance(e, Range)), None)
  length = next((e for e in extras if isinstance(e, Length)), None)
  origin = typing.get_origin(tp)
  element, choices, base = None, (), tp
  if origin is typing.Literal:
    choices, base = typing.get_args(tp), typing.Literal
  elif origin in (tuple, list):
    base = tuple
    element = typing.get_args(tp)[0] if typing.get_args(tp) else Any
    if typing.get_origin(element) is typing.Literal:
      choices = typing.get_args(element)
  return FieldSpec(name=name, base=base, optional=optional, element=element, choices=choices, range=rng, length=length)


def field_specs(cls: type) -> list[FieldSpec]:
  """The `FieldSpec` of every field of config class `cls` (computed once per class: resolving the annotations is
  the costly part, and a class's annotations do not change)."""
  return list(_field_specs(cls))


@functools.lru_cache(maxsize=None)
def _field_specs(cls: type) -> tuple[FieldSpec, ...]:
  hints = typing.get_type_hints(cls, include_extras=True)
  return tuple(field_spec(cls, f.name, hints) for f in dataclasses.fields(cls))


def undeclared_fields(cls: type, prefix: str = "") -> list[str]:
  """The (dotted) fields of config class `cls`, and of its nested config classes, that declare no constraint."""
  missing = []
  for spec in field_specs(cls):
    if spec.is_nested:
      missing.extend(undeclared_fields(spec.base, prefix + spec.name + "."))
    elif not spec.declared:
      missing.append(prefix + spec.name)
  return missing


# ----------------------------------------------------------------------------------------------------------------------
# Validation.
# ----------------------------------------------------------------------------------------------------------------------

def _type_name(tp: Any) -> str:
  return {int: "an int", float: "a float", str: "a str", bool: "a bool"}.get(tp, getattr(tp, "__name__", str(tp)))


def _scalar_error(key: str, value: Any, tp: Any, rng: Optional[Range], choices: tuple, shown: str) -> Optional[str]:
  """The error for one scalar (a field's value or a tuple's element), or None. `shown`: how to print the field."""
  if choices:
    if value not in choices:
      return f"{shown} is not valid: must be one of {', '.join(map(str, choices))}"
    return None
  if tp is bool:
    return None if isinstance(value, bool) else f"{shown} is not valid: must be a bool"
  if tp is int:
    if isinstance(value, bool) or not isinstance(value, int):
      return f"{shown} is not valid: must be an int"
  elif tp is float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      return f"{shown} is not valid: must be a float"
  elif tp is str:
    if not isinstance(value, str):
      return f"{shown} is not valid: must be a str"
  if rng is not None and not rng.contains(value):
    kind = "a finite float" if tp is float and rng.finite else _type_name(tp)
    return f"{shown} is out of range: must be {kind} {rng.describe()}"
  return None


def field_error(config: Any, spec: FieldSpec, prefix: str = "") -> Optional[str]:
  """The one-line error for field `spec` of `config`, or None when its value is valid."""
  key = prefix + spec.name
  value = getattr(config, spec.name)
  shown = f"{key}={_fmt(value)}"
  if value is None:
    return None if spec.optional else f"{shown} is not valid: must not be None"
  if spec.base is tuple:
    if not isinstance(value, (tuple, list)):
      return f"{shown} is not valid: must be a tuple"
    if spec.length is not None and not spec.length.contains(len(value)):
      return f"{key}={tuple(value)!r} is out of range: must have {spec.length.describe()}"
    for i, v in enumerate(value):
      err = _scalar_error(f"{key}[{i}]", v, spec.element, spec.range, spec.choices, f"{key}[{i}]={_fmt(v)}")
      if err:
        return f"{key}={tuple(value)!r}: {err}"
    return None
  if spec.base is str and spec.length is not None and isinstance(value, str) and not spec.length.contains(len(value)):
    return f"{shown} is out of range: must have {spec.length.describe().replace('element', 'character')}"
  return _scalar_error(key, value, spec.base, spec.range, spec.choices, shown)


def validate(config: Any, prefix: str = "") -> Any:
  """Check every declared constraint of `config` (a config dataclass instance); returns it unchanged.

  Raises:
    UsageError: one line naming the first offending field (dotted for nested configs), its value and what is valid;
      or the first failing `Check`, with the values of the fields it reads.
  """
  if not dataclasses.is_dataclass(config):
    raise TypeError(f"validate expects a config dataclass instance, got {type(config).__name__}")
  specs = field_specs(type(config))
  for spec in specs:
    if spec.is_nested:
      validate(getattr(config, spec.name), prefix + spec.name + ".")
      continue
    err = field_error(config, spec, prefix)
    if err:
      raise UsageError(err)
  for check in getattr(type(config), "CHECKS", ()):
    if not isinstance(check, Check):
      raise TypeError(f"{type(config).__name__}.CHECKS must hold Check objects, got {check!r}")
    if not check.holds(config):
      raise UsageError(check.message(config, prefix))
  return config
