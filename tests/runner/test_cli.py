"""The experiment CLI: usage errors exit 2 in one line, failed claims exit 1 with the table, overrides typed.

(Every config field's range, workdir faults and interrupts: tests/reliability/.)
"""

import dataclasses
import os
import subprocess
import sys
from typing import Literal, Optional

import pytest

from jaxlib_methods.runner import Claim, MeshConfig, UsageError, apply_overrides
from jaxlib_methods.runner import experiment as exp_lib
from jaxlib_methods.runner.cli import format_table

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cli(*args, cwd):
  env = dict(os.environ, PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, "-m", "experiments", *args], cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=300)


@pytest.mark.parametrize("args, needle", [
    (["run", "no_such_experiment"], "unknown experiment 'no_such_experiment'; valid experiments: "),
    (["run", "lion_k_constrained", "--preset", "huge"], "unknown preset 'huge'"),
    (["run", "lion_k_constrained", "--set", "nope=1"], "unknown config key 'nope'; valid keys: seed, n, d"),
    (["run", "lion_k_constrained", "--set", "steps"], "expected key=value"),
    (["run", "lion_k_constrained", "--set", "n=many"], "bad value for n: 'many' is not an int"),
    (["run", "lion_k_constrained", "--set", "grad_K=l7"], "valid choices: l1, huber"),
    (["run", "lion_k_constrained", "--set", "mesh.gpus=2"], "unknown config key 'mesh.gpus'"),
    (["run", "lion_k_constrained", "--set", "mesh=2"], "is a group"),
    (["run", "lion_k_constrained", "--set", "mesh.data=64"], "mesh.data=64 but 1 device(s) are visible"),
    (["run"], "exactly one of"),
    (["run", "lion_k_constrained", "--matmul-precision", "fp8"], "invalid choice: 'fp8'"),
    (["frobnicate"], "invalid choice"),
])
def test_usage_errors_exit_2_with_one_line(tmp_path, args, needle, monkeypatch, capsys):
  # In process (cli.main is what `python -m experiments` calls; a Python start per case cost 2.3 s): the process's
  # own exit status and stderr are checked by the subprocess test below.
  from jaxlib_methods.runner import cli
  monkeypatch.chdir(tmp_path)
  argv = [*args, "--workdir", str(tmp_path / "w")] if args[:1] == ["run"] and len(args) > 1 else list(args)
  assert cli.main(argv) == 2
  err = capsys.readouterr().err
  lines = [l for l in err.splitlines() if l.startswith("error:")]
  assert len(lines) == 1 and needle in lines[0], err
  assert "Traceback" not in err
  assert not (tmp_path / "w").exists(), "a usage error must not create the workdir"


@pytest.mark.parametrize("args, needle", [
    (["run", "no_such_experiment"], "unknown experiment 'no_such_experiment'; valid experiments: "),
    (["frobnicate"], "invalid choice"),
])
def test_usage_errors_exit_2_with_one_line_from_the_process(tmp_path, args, needle):
  proc = _cli(*args, cwd=tmp_path)
  assert proc.returncode == 2, proc.stderr
  lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(lines) == 1 and needle in lines[0], proc.stderr
  assert "Traceback" not in proc.stderr


def test_list_names_the_experiment(tmp_path):
  proc = _cli("list", cwd=tmp_path)
  assert proc.returncode == 0
  assert "lion_k_constrained" in proc.stdout and "[193]" in proc.stdout


def test_failed_claim_exits_1_and_prints_table(tmp_path):
  # Too short a horizon: the iterate has not reached the constrained optimum, the convergence claim must fail.
  proc = _cli("run", "lion_k_constrained", "--set", "horizon=1.0", "--set", "log_every=100",
              "--set", "checkpoint_every=500", "--workdir", str(tmp_path / "w"), "--quiet", cwd=tmp_path)
  assert proc.returncode == 1, proc.stderr
  assert "Converges to the box-constrained" in proc.stdout and "| NO" in proc.stdout
  assert (tmp_path / "w" / "summary.json").exists() and (tmp_path / "w" / "figure.png").exists()
  assert (tmp_path / "w" / "metrics.jsonl").read_text().count("\n") == 11  # steps 0, 100, ..., 1000


@dataclasses.dataclass(frozen=True)
class _Cfg:
  steps: int = 10
  lr: float = 0.1
  name: str = "a"
  flag: bool = False
  mode: Literal["x", "y"] = "x"
  maybe: Optional[int] = None
  sizes: tuple[int, ...] = (1, 2)
  mesh: MeshConfig = MeshConfig()


def test_apply_overrides_types():
  c = apply_overrides(_Cfg(), ["steps=3", "lr=1e-3", "name=b", "flag=true", "mode=y", "maybe=4", "sizes=3,4,5",
                               "mesh.data=8"])
  assert c == _Cfg(steps=3, lr=1e-3, name="b", flag=True, mode="y", maybe=4, sizes=(3, 4, 5),
                   mesh=MeshConfig(data=8))
  assert apply_overrides(_Cfg(maybe=3), ["maybe=none"]).maybe is None
  for bad in (["steps=1.5"], ["flag=maybe"], ["mode=z"], ["lr=fast"], ["mesh.data=x"]):
    with pytest.raises(UsageError):
      apply_overrides(_Cfg(), bad)


@dataclasses.dataclass(frozen=True)
class _Checked:
  sizes: tuple[int, ...] = (1, 2)
  cap: int = 4
  CHECKS = (exp_lib.constraints.Check("all(s <= cap for s in sizes)", "each size fits"),
            exp_lib.constraints.Check("sorted(sizes, key=lambda v: -v)[0] <= cap"),)


def test_failed_check_with_a_comprehension_is_a_usage_error_naming_only_fields():
  from jaxlib_methods.runner import constraints as C
  assert C.check_names(_Checked.CHECKS[0]) == ["cap", "sizes"]
  assert C.check_names(_Checked.CHECKS[1]) == ["sizes", "cap"]
  C.validate(_Checked())
  # The message used to look up the comprehension's variable `s` as a field: AttributeError instead of UsageError.
  with pytest.raises(UsageError, match=r"all\(s <= cap for s in sizes\) \(each size fits\); got cap=4, "
                                       r"sizes=\(1, 9\)$"):
    C.validate(_Checked(sizes=(1, 9)))


def test_claims_and_table():
  rows = [Claim.at_most("a", 0.5, 1.0), Claim.at_least("b", 0.5, 1.0), Claim.close("c", 1.04, 1.0, atol=0.05),
          Claim.holds("d", False), Claim.at_most("nan never passes", float("nan"), 1.0)]
  assert [c.passed for c in rows] == [True, False, True, False, False]
  table = format_table([{"paper": {"catalog_id": 1, "title": "T", "year": 2024}, "error": None,
                         "claims": [c.to_dict() for c in rows]}])
  assert table.count("| yes") == 2 and table.count("| NO") == 3


def test_non_finite_measurements_fail_however_the_claim_is_built():
  import numpy as np
  nan = float("nan")
  # Python counts NaN as true: `holds` and a hand-built row used to pass it.
  assert not Claim.holds("nan is not a yes", nan).passed
  assert not Claim.holds("nan is not a yes", np.float32(nan)).passed
  assert not Claim("hand-built", "0", nan, "<= 1", True).passed
  assert not Claim("hand-built", "0", float("inf"), "< inf", True).passed
  assert not Claim("read back from JSON", "0", "nan", "<= 1", True).passed
  assert Claim.holds("a plain yes", True).passed and Claim("hand-built", "0", 0.5, "<= 1", True).passed
  assert Claim("a text measurement", "monotone", "monotone", "equal", True).passed


@pytest.mark.parametrize("kwargs", [{"atol": -0.1}, {"rtol": -0.5}, {"atol": float("nan")}, {"atol": float("inf")}])
def test_close_refuses_a_tolerance_that_decides_nothing(kwargs):
  # A negative tolerance can never pass; an infinite one can never fail; NaN never passes.
  with pytest.raises(ValueError, match="must be a finite number >= 0"):
    Claim.close("c", 1.0, 1.0, **kwargs)


def test_crashed_run_exits_3_and_is_marked_in_the_table(tmp_path, monkeypatch, capsys):
  from experiments import lion_k_constrained as exp
  from jaxlib_methods.runner.cli import main

  def crash(config, workdir):
    raise ZeroDivisionError("a bug in the experiment")
  monkeypatch.setattr(exp, "run", crash)
  rc = main(["run", "lion_k_constrained", "--workdir", str(tmp_path / "w"), "--quiet"])
  out, err = capsys.readouterr()
  assert rc == 3
  assert "RUN FAILED: ZeroDivisionError: a bug in the experiment" in out.replace("\n", " ").replace("  ", " ") or \
      "RUN FAILED" in out
  assert "Traceback" in err  # a crash is shown in full, unlike a usage error


@pytest.mark.parametrize("flag, expected", [((), "float32"), (("--matmul-precision", "tensorfloat32"), "tensorfloat32")])
def test_runs_trace_under_the_matmul_precision_and_record_it(tmp_path, monkeypatch, flag, expected):
  """`python -m experiments` traces every run under jax.default_matmul_precision (default float32, whatever the
  process had: JAX's own default is TF32 on NVIDIA GPUs), so a jitted float32 dot of the run carries it, and the
  summary records it."""
  import json

  import jax
  import jax.numpy as jnp
  from experiments import lion_k_constrained as exp
  from jaxlib_methods.runner.cli import main

  seen = {}
  def run(config, workdir):
    seen["config"] = jax.config.jax_default_matmul_precision
    seen["hlo"] = jax.jit(jnp.dot).lower(jnp.ones((2, 2)), jnp.ones((2, 2))).as_text()
    raise ZeroDivisionError("stop here")
  monkeypatch.setattr(exp, "run", run)
  with jax.default_matmul_precision("bfloat16"):
    assert main(["run", "lion_k_constrained", "--workdir", str(tmp_path / "w"), "--quiet", *flag]) == 3
  assert seen["config"] == expected
  assert ("HIGHEST" in seen["hlo"]) == (expected == "float32"), seen["hlo"]
  assert json.loads((tmp_path / "w" / "summary.json").read_text())["matmul_precision"] == expected


def test_resuming_under_another_matmul_precision_is_refused(tmp_path):
  """Checkpoints written under one --matmul-precision are not continued under another (the numbers would mix): a
  usage error naming both, before any work; the same precision, or a workdir without checkpoints, passes."""
  import json

  from jaxlib_methods.runner import cli

  e = exp_lib.get("lion_k_constrained")
  config = e.config("cpu")
  workdir = tmp_path / "w"
  (workdir / "checkpoints").mkdir(parents=True)
  (workdir / "summary.json").write_text(json.dumps({"matmul_precision": "tensorfloat32"}))
  run = cli._Run(e, config, workdir, exp_lib.config_hash(config))
  cli._check_resume(run, "float32")                       # no checkpoint step yet: nothing to continue
  (workdir / "checkpoints" / "5").mkdir()
  with pytest.raises(UsageError, match="written under --matmul-precision tensorfloat32, not float32"):
    cli._check_resume(run, "float32")
  cli._check_resume(run, "tensorfloat32")


def test_a_run_shorter_than_one_log_interval_is_a_usage_error(tmp_path):
  # A horizon shorter than one log interval used to train zero steps and crash (exit 3); it is refused up front.
  proc = _cli("run", "lion_k_constrained", "--set", "horizon=0.0001", "--workdir", str(tmp_path / "w"), "--quiet",
              cwd=tmp_path)
  assert proc.returncode == 2, proc.stderr
  assert "config check failed: round(horizon / learning_rate) >= log_every" in proc.stderr
  assert "Traceback" not in proc.stderr and not (tmp_path / "w").exists()


@pytest.mark.parametrize("name", sorted(exp_lib.discover()))
def test_show_prints_every_field_with_its_valid_values(name, capsys):
  from jaxlib_methods.runner import cli, constraints
  assert cli.main(["show", name]) == 0
  out = capsys.readouterr().out
  e = exp_lib.get(name)
  cfg = e.config("cpu")
  assert out.startswith(f"{name}: [{e.paper.catalog_id}]")
  for spec in constraints.field_specs(type(cfg)):
    if not spec.is_nested:
      assert f"\n{spec.name} " in out, f"{spec.name} missing from `show {name}`"
  assert "cpu preset" in out and "valid values" in out


def test_show_unknown_experiment_is_a_usage_error(capsys):
  from jaxlib_methods.runner import cli
  assert cli.main(["show", "no_such_experiment"]) == 2
  assert "unknown experiment" in capsys.readouterr().err


def test_environment_names_the_host_cpu(monkeypatch):
  """Every summary says which CPU made it (XLA:CPU's code, and so float32 rounding, differs between CPUs)."""
  from jaxlib_methods.runner import cli
  env = cli.environment()
  assert isinstance(env["cpu_model"], str) and env["cpu_model"]
  assert isinstance(env["cpu_count"], int) and env["cpu_count"] >= 1
  if os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as f:
      names = [l.split(":", 1)[1].strip() for l in f if l.lower().startswith("model name")]
    if names:
      assert env["cpu_model"] == names[0]
  def no_cpuinfo(*a, **k):
    raise OSError("no /proc")
  monkeypatch.setattr("builtins.open", no_cpuinfo)
  monkeypatch.setattr(cli.platform, "processor", lambda: "")
  assert cli.cpu_model() == "?"


def test_resume_hint_after_an_interrupted_demo_resumes_that_experiment(tmp_path):
  """`--demo` implies --fresh, so the old hint (the same command) started over; it now names the experiment."""
  from jaxlib_methods.runner import cli
  wd = tmp_path / "results" / "altmin_completion"
  hint = cli._resume_command(["run", "--demo", "--workdir", str(tmp_path / "results"), "--quiet"],
                             "altmin_completion", wd)
  assert hint == f"python -m experiments run --quiet altmin_completion --workdir {wd}"
  assert cli._resume_command(["run", "x", "--fresh"], "x", wd) == "python -m experiments run x"
  args = cli._parser().parse_args(hint.split()[3:])
  assert args.name == "altmin_completion" and not args.demo and not args.fresh
