"""The experiment contract, its discovery, and type-checked config overrides.

An experiment is a module `experiments/<name>.py` that declares:

    PAPER   = Paper(catalog_id=193, title="...", year=2023, arxiv="2310.05898")
    Config  = a frozen dataclass (small CPU defaults; nested frozen dataclasses allowed, e.g. `mesh: MeshConfig`);
              every field declares its valid values (`steps: PositiveInt = 100`, `Annotated[float, Range(gt=0)]`,
              a `Literal`, cross-field `CHECKS = (Check("steps >= log_every"),)`): see runner/constraints.py
    PRESETS = {"cpu": Config(), "gpu": Config(...), "tpu": Config(...)}
    DEMO    = True / False            # part of `make demo` (only experiments that run in seconds on CPU)
    def run(config: Config, workdir: pathlib.Path) -> dict         # JSON-serialisable results
    def claims(results: dict) -> list[Claim]      # each tagged kind="paper" (with where=...) or kind="sanity"
    MUTATIONS = {"no_momentum": ("b1=0",), ...}    # deliberately wrong variants (--set overrides, applied on top of
                                                  # the preset): under each, at least one paper claim must fail
    MUTATION_TEST_SLOW = True                         # optional: every mutation test under `-m slow` (TINY run >= ~10 s)
    ALSO_REPRODUCES = (Paper(...), ...)               # optional: further papers whose claims ("... [id]") it checks
    MUTATION_PAPERS = {"no_momentum": 193, ...}       # with ALSO_REPRODUCES: the paper(s) whose claims each mutation
                                                      # breaks; a paper no mutation names is not `reproduced`

The CLI (`python -m experiments`) finds them, applies `--preset` and `--set key=value` overrides (checked against the
dataclass field types; dotted keys reach nested dataclasses, e.g. `mesh.data=8`), validates the result against the
declared constraints, runs them and writes the summary. Errors a user can make (unknown experiment, preset or key, a
value of the wrong type or out of range) raise `UsageError`, which the CLI turns into a one-line message and exit
status 2, before any work.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import importlib.util
import json
import pkgutil
import types
import typing
from typing import Annotated, Any, Callable, Mapping, Optional, Sequence

from jaxlib_methods.runner import constraints
from jaxlib_methods.runner.constraints import Range, UsageError


@dataclasses.dataclass(frozen=True)
class Paper:
  """The paper an experiment reproduces (catalog id from ../shared/catalog.md)."""
  catalog_id: int
  title: str
  year: int
  arxiv: str = ""


@dataclasses.dataclass(frozen=True)
class MeshConfig:
  """Device mesh of a run (see `jaxlib_methods.runner.sharding`): `data` replicas x `fsdp` parameter shards x
  `tensor` head/MLP shards. The batch is split over data * fsdp; params and optimizer state over fsdp and tensor.

  The product is the number of devices used (the first ones visible); one axis may be 0 = the rest of the visible
  devices. The default (1, 1, 1) runs on the default device; `data=0` uses every visible device, data-parallel.
  """
  data: Annotated[int, Range(ge=0)] = 1
  fsdp: Annotated[int, Range(ge=0)] = 1
  tensor: Annotated[int, Range(ge=0)] = 1

  CHECKS = (constraints.Check("(data == 0) + (fsdp == 0) + (tensor == 0) <= 1",
                              "at most one mesh axis may be 0 = the rest of the devices"),)


@dataclasses.dataclass(frozen=True)
class Experiment:
  """A discovered experiment module, validated against the contract."""
  name: str
  module: types.ModuleType

  @property
  def paper(self) -> Paper:
    return self.module.PAPER

  @property
  def presets(self) -> Mapping[str, Any]:
    return self.module.PRESETS

  @property
  def demo(self) -> bool:
    return bool(getattr(self.module, "DEMO", False))

  @property
  def mutations(self) -> Mapping[str, tuple]:
    """Deliberately wrong variants: name -> `--set` overrides under which at least one paper claim must fail."""
    return dict(getattr(self.module, "MUTATIONS", {}))

  def user_fields(self, preset: str) -> tuple[str, ...]:
    """The fields `preset` leaves to the user (the module's PRESET_USER_FIELDS, e.g. a data directory): refused with a
    usage error until given with `--set`, and the only fields a recorded run of the preset may differ in."""
    return tuple(getattr(self.module, "PRESET_USER_FIELDS", {}).get(preset, ()))

  @property
  def run(self) -> Callable[[Any, Any], dict]:
    return self.module.run

  @property
  def claims(self) -> Callable[[dict], list]:
    return self.module.claims

  def config(self, preset: Optional[str] = None, overrides: Sequence[str] = ()) -> Any:
    """The config of `preset` (default "cpu") with `key=value` overrides applied, type-checked and validated
    against the Config's declared constraints (`UsageError` naming the first bad field)."""
    preset = preset or "cpu"
    if preset not in self.presets:
      raise UsageError(f"unknown preset {preset!r} for experiment {self.name!r}; "
                       f"valid presets: {', '.join(sorted(self.presets))}")
    return constraints.validate(apply_overrides(self.presets[preset], overrides))


_REQUIRED = ("PAPER", "PRESETS", "run", "claims")


def _load(name: str, package: str) -> Experiment:
  module = importlib.import_module(f"{package}.{name}")
  missing = [attr for attr in _REQUIRED if not hasattr(module, attr)]
  if missing:
    raise TypeError(f"experiment module {module.__name__} lacks {missing}: see jaxlib_methods.runner.experiment")
  if "cpu" not in module.PRESETS:
    raise TypeError(f"experiment module {module.__name__} has no 'cpu' preset")
  return Experiment(name=name, module=module)


def discover(package: str = "experiments") -> dict[str, Experiment]:
  """All experiment modules of `package` (every non-underscore module), by name."""
  pkg = importlib.import_module(package)
  names = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))
  return {name: _load(name, package) for name in names}


def get(name: str, package: str = "experiments") -> Experiment:
  """One experiment by name; `UsageError` naming the valid choices if there is none."""
  pkg = importlib.import_module(package)
  if (isinstance(name, str) and name.isidentifier() and not name.startswith("_")
      and importlib.util.find_spec(f"{package}.{name}") is not None):
    return _load(name, package)
  names = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))
  if name not in names:
    raise UsageError(f"unknown experiment {name!r}; valid experiments: {', '.join(names)}")
  return _load(name, package)


# ----------------------------------------------------------------------------------------------------------------------
# `--set key=value` overrides.
# ----------------------------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _field_types(cls: type) -> dict[str, Any]:
  """The resolved annotations of config class `cls` (once per class; callers only read the dict)."""
  return typing.get_type_hints(cls)


def _parse_value(text: str, tp: Any, key: str) -> Any:
  origin = typing.get_origin(tp)
  args = typing.get_args(tp)
  if origin is typing.Union or (hasattr(types, "UnionType") and isinstance(tp, types.UnionType)):
    if type(None) in args and text.lower() in ("none", "null"):
      return None
    errors = []
    for arg in args:
      if arg is type(None):
        continue
      try:
        return _parse_value(text, arg, key)
      except UsageError as e:
        errors.append(str(e))
    raise UsageError(f"bad value for {key}: {text!r} is none of {[getattr(a, '__name__', str(a)) for a in args]}")
  if origin is typing.Literal:
    for choice in args:
      if str(choice) == text:
        return choice
    raise UsageError(f"bad value for {key}: {text!r}; valid choices: {', '.join(map(str, args))}")
  if origin in (tuple, list):
    items = [s.strip() for s in text.strip("()[]").split(",") if s.strip()]
    inner = args[0] if args else str
    parsed = [_parse_value(s, inner, key) for s in items]
    return tuple(parsed) if origin is tuple else list(parsed)
  if tp is bool:
    low = text.lower()
    if low in ("true", "1", "yes"):
      return True
    if low in ("false", "0", "no"):
      return False
    raise UsageError(f"bad value for {key}: {text!r} is not a bool (true/false)")
  if tp is int:
    try:
      return int(text)
    except ValueError:
      raise UsageError(f"bad value for {key}: {text!r} is not an int") from None
  if tp is float:
    try:
      return float(text)
    except ValueError:
      raise UsageError(f"bad value for {key}: {text!r} is not a float") from None
  if tp is str:
    return text
  raise UsageError(f"{key} has type {tp} which cannot be set from the command line")


def apply_overrides(config: Any, overrides: Sequence[str]) -> Any:
  """Return `config` with each `key=value` (dotted keys for nested dataclasses) applied, values type-checked.

  Raises:
    UsageError: malformed item, unknown key (naming the valid keys) or a value that does not parse as the field's
      type (or is outside a `Literal`'s choices).
  """
  for item in overrides:
    if "=" not in item:
      raise UsageError(f"bad --set item {item!r}: expected key=value")
    key, text = item.split("=", 1)
    config = _set(config, key.strip().split("."), text.strip(), key.strip())
  return config


def _set(obj: Any, path: list[str], text: str, full_key: str) -> Any:
  if not dataclasses.is_dataclass(obj):
    raise UsageError(f"unknown config key {full_key!r}: {type(obj).__name__} has no sub-fields")
  fields = {f.name: f for f in dataclasses.fields(obj)}
  head = path[0]
  if head not in fields:
    raise UsageError(f"unknown config key {full_key!r}; valid keys: {', '.join(_all_keys(obj))}")
  if len(path) == 1:
    tp = _field_types(type(obj))[head]
    if dataclasses.is_dataclass(tp):
      raise UsageError(f"{full_key!r} is a group; set one of its keys: "
                       f"{', '.join(head + '.' + k for k in _all_keys(getattr(obj, head)))}")
    value = _parse_value(text, tp, full_key)
  else:
    value = _set(getattr(obj, head), path[1:], text, full_key)
  return dataclasses.replace(obj, **{head: value})


def _all_keys(obj: Any, prefix: str = "") -> list[str]:
  keys = []
  for f in dataclasses.fields(obj):
    v = getattr(obj, f.name)
    if dataclasses.is_dataclass(v):
      keys.extend(_all_keys(v, prefix + f.name + "."))
    else:
      keys.append(prefix + f.name)
  return keys


def config_to_dict(config: Any) -> dict:
  return dataclasses.asdict(config)


def config_hash(config: Any) -> str:
  """sha256 of the config's canonical JSON (what config.json holds): the fingerprint checkpoints carry."""
  if dataclasses.is_dataclass(config):
    config = config_to_dict(config)
  text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
  return hashlib.sha256(text.encode("utf-8")).hexdigest()
