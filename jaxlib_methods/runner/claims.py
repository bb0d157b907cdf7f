"""Claims: a measured number next to the paper's, with the tolerance that decides pass or fail.

An experiment's `claims(results)` returns a list of `Claim`. The constructors below state the comparison in the
row itself (the `tolerance` text says exactly what was checked), so a reader of the table never has to open the code
to know what "pass" meant. Non-finite measurements always fail.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional


CLAIM_KINDS = ("paper", "sanity", "")


@dataclasses.dataclass(frozen=True)
class Claim:
  """One row of a claims table.

  Attributes:
    claim: what the paper states, made measurable (one line).
    paper: the paper's value or statement, as text (e.g. "0", "monotone", "2.51 FID (not small)").
    ours: our measured value (a float, int or bool).
    tolerance: how `ours` is compared (e.g. "<= 1e-6", "|ours - paper| <= 0.05").
    passed: the verdict.
    kind: "paper" (the paper's own statement, made measurable; `where` says where in the paper it is: only paper
      claims can make a paper `reproduced`), "sanity" (a check of our setup, not the paper's claim), or "" (not yet
      tagged: counts as neither).
    where: for paper claims, the location in the paper ("Table 2, row 3", "Fig. 1", "Thm. 4.1").
  """
  claim: str
  paper: str
  ours: Any
  tolerance: str
  passed: bool
  kind: str = ""
  where: str = ""

  # ---- constructors -------------------------------------------------------------------------------------------------
  @staticmethod
  def at_most(claim: str, ours: float, bound: float, *, paper: Optional[str] = None, kind: str = "",
              where: str = "") -> "Claim":
    """Passes when ours <= bound (and ours is finite)."""
    ok = _finite(ours) and float(ours) <= bound
    return Claim(claim, paper if paper is not None else f"<= {bound:g}", _num(ours), f"<= {bound:g}", ok, kind, where)

  @staticmethod
  def at_least(claim: str, ours: float, bound: float, *, paper: Optional[str] = None, kind: str = "",
               where: str = "") -> "Claim":
    """Passes when ours >= bound (and ours is finite)."""
    ok = _finite(ours) and float(ours) >= bound
    return Claim(claim, paper if paper is not None else f">= {bound:g}", _num(ours), f">= {bound:g}", ok, kind, where)

  @staticmethod
  def close(claim: str, ours: float, paper_value: float, *, atol: float = 0.0, rtol: float = 0.0,
            paper: Optional[str] = None, kind: str = "", where: str = "") -> "Claim":
    """Passes when |ours - paper_value| <= atol + rtol * |paper_value|.

    Raises:
      ValueError: `atol` or `rtol` is negative or not finite (a claim that could never pass, or never fail).
    """
    for name, value in (("atol", atol), ("rtol", rtol)):
      if not (_finite(value) and float(value) >= 0):
        raise ValueError(f"Claim.close: {name} must be a finite number >= 0, got {value!r} ({claim!r})")
    tol = atol + rtol * abs(paper_value)
    ok = _finite(ours) and abs(float(ours) - paper_value) <= tol
    parts = ([f"atol {atol:g}"] if atol else []) + ([f"rtol {rtol:g}"] if rtol else [])
    return Claim(claim, paper if paper is not None else f"{paper_value:g}", _num(ours),
                 f"|ours - paper| <= {tol:.3g} ({', '.join(parts) or 'exact'})", ok, kind, where)

  @staticmethod
  def holds(claim: str, ours: bool, *, paper: str = "true", detail: str = "must be true", kind: str = "",
            where: str = "") -> "Claim":
    """A yes/no statement the paper makes; passes when `ours` is True (a non-finite number, e.g. NaN, which Python
    counts as true, fails)."""
    ok = bool(ours) and not _nonfinite(ours)
    return Claim(claim, paper, ok, detail, ok, kind, where)

  def __post_init__(self):
    # Non-finite measurements always fail, however the row was built (a hand-built row's verdict included).
    object.__setattr__(self, "passed", bool(self.passed) and not _nonfinite(self.ours))
    if self.kind not in CLAIM_KINDS:
      raise ValueError(f"Claim.kind must be one of {CLAIM_KINDS}, got {self.kind!r}")
    if self.kind == "paper" and not self.where:
      raise ValueError(f"a paper claim must say where in the paper it is (where=...): {self.claim!r}")

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def _finite(x: Any) -> bool:
  try:
    return math.isfinite(float(x))
  except (TypeError, ValueError):
    return False


def _nonfinite(x: Any) -> bool:
  """True for a number (or a number's text, e.g. "nan" as JSON records hold it) that is NaN or +-inf."""
  try:
    return not math.isfinite(float(x))
  except (TypeError, ValueError):
    return False


def _num(x: Any) -> Any:
  """Plain Python number for JSON (NumPy/JAX scalars become float/int)."""
  if isinstance(x, (bool, int, str)):
    return x
  try:
    return float(x)
  except (TypeError, ValueError):
    return str(x)
