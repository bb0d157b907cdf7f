"""AdaEA's paper claim on the shared transfer-attack harness (paper [115]: "An Adaptive Model Ensemble Adversarial Attack for Boosting Adversarial Transferability", 2023, arXiv:2308.02897).

The setup, config, presets, TINY size and run are those of `experiments/transfer_attacks.py` (surrogate MLPs vs
held-out MLPs, paired bootstrap over the attacked images; see its docstring); this module registers paper [115] with
its own claim: the [115] claim of that harness plus its sanity checks. The deliberately wrong variant of the harness
(MUTATIONS) is declared and tested once, in `transfer_attacks`.
"""

from __future__ import annotations

from experiments.transfer_attacks import PRESETS, TINY, Config, run  # noqa: F401 (the shared harness)
from experiments.transfer_attacks import claims as _all_claims
from jaxlib_methods.runner import Claim, Paper

PAPER = Paper(catalog_id=115, title="An Adaptive Model Ensemble Adversarial Attack for Boosting Adversarial Transferability", year=2023, arxiv="2308.02897")
DEMO = False
MUTATIONS: dict = {}  # see transfer_attacks.MUTATIONS (the same run; its mutation test covers this claim's harness)


def claims(results: dict) -> list[Claim]:
  return [c for c in _all_claims(results) if c.kind == "sanity" or c.claim.startswith("[115]")]
