"""Adaptive binning shows information compression for non-saturating activations (ReLU, ELU, softplus), and L2
regularisation increases it: the 12-bit task of `information_plane` with [63]'s arms.

Paper [63]: Ivan Chelombiev, Conor Houghton, Cian O'Donnell, "Adaptive Estimators Show Information Compression in
Deep Neural Networks", ICLR 2019, arXiv:1902.09037. Abstract: with adaptive estimators "saturation of the activation
function is not required for compression", and "L2 regularization leads to significantly increased compression"
(section and figure numbers not checked here). Adaptive binning: `analysis.adaptive_bins` (bins holding equal numbers
of distinct activation values, pooled over the layer).

Setup: `information_plane`'s task, network (12-10-7-5-4-3-2), trainer (Adam, batch 512, 85% split) and snapshots;
arms: ReLU, ELU, softplus, and ReLU with the weight penalty `l2` * sum ||W||^2, every arm with the same seeds (split,
initialisation and minibatch order shared: runs paired by seed). Compression of a layer = max_t I(X;T_t) -
I(X;T_final) with adaptive bins (bits).
Claims (tolerances fixed before the first judged run):
  1. the last hidden layer of the ReLU, ELU and softplus nets compresses >= 0.5 bits (min over seeds and the three
     activations);
  2. L2 increases compression: the total compression (summed over the 5 hidden layers) of ReLU+L2 exceeds ReLU's in
     every seed (paired).
No MUTATIONS (see below): the intended one, `l2=0`, needs a TINY run where a paper claim passes.

What we measured (2026-11-30, 3 seeds; both runs made with these arms inside `information_plane` before it was split,
the same per-run keys): seed 1, 1000 epochs: claim 1 FAILS, 0.49 < 0.5 (softplus; its I(X;T) peaks at 170-300 epochs
and is still falling), claim 2 passes (+0.35 bits, min over seeds). Lengthened to 2000 epochs (closer to the paper's
long training) and judged on seed 2: claim 1 passes (0.75; ReLU 0.77-1.91, ELU 3.8-5.1, softplus 0.75-3.6) but claim
2 FAILS: ReLU+L2 minus ReLU = +5.2, -5.1, +1.4 bits (with l2 = 5e-4 the penalised net's I(X;T) keeps rising late in
two seeds: peaks at epochs 1600 and 2000). Not tried: other L2 strengths, the paper's exact optimiser settings and
epochs, adaptive KDE (`analysis.kde_mutual_information` with a scaled noise variance).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated

import numpy as np

from experiments import information_plane as ip
from jaxlib_methods.runner import Claim, MeshConfig, Paper
from jaxlib_methods.runner.constraints import Check, NonNegativeFloat, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=63, title="Adaptive Estimators Show Information Compression in Deep Neural Networks",
              year=2019, arxiv="1902.09037")
DEMO = False


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 2
  seeds: Annotated[int, Range(ge=2)] = 3
  epochs: Annotated[int, Range(ge=300)] = 2000
  batch_size: PositiveInt = 512
  learning_rate: PositiveFloat = 1e-3
  train_fraction: Annotated[float, Range(gt=0, le=1)] = 0.85
  n_bins: Annotated[int, Range(ge=2)] = 30
  l2: NonNegativeFloat = 5e-4          # the ReLU+L2 arm's penalty
  mesh: MeshConfig = MeshConfig()   # devices the runs (arms x seeds) are split over

  CHECKS = (Check("(epochs - 200) % 100 == 0", "after the first 200 epochs, snapshots are every 100 epochs"),)


PRESETS = {"cpu": Config(), "gpu": Config(seeds=8, epochs=8000), "tpu": Config(seeds=8, epochs=8000)}
TINY = ("seeds=2", "epochs=400")
# No MUTATIONS: neither paper claim passes at the TINY size (nor both at the cpu preset), so a mutation test cannot
# tell right from wrong; the intended one is `l2=0` (the L2 arm equals the ReLU arm, claim 2 cannot hold).


def arms(config: Config) -> list[tuple[str, int, float]]:
  """(name, activation index, l2) of each arm."""
  return [("relu", 1, 0.0), ("elu", 2, 0.0), ("softplus", 3, 0.0), ("relu_l2", 1, config.l2)]


def run(config: Config, workdir: pathlib.Path) -> dict:
  return ip.run_arms(config, workdir, arms(config), titles=("ReLU (uniform bins over [min, max])",
                                                            "ELU (uniform bins over [min, max])"))


def claims(results: dict) -> list[Claim]:
  s = results.get("summary") or ip.summarize(results)
  return [
      Claim.at_least("adaptive bins: compression of the last hidden layer, min over seeds and ReLU/ELU/softplus (bits)",
                     float(min(np.min(s[n]["adaptive_fall"]) for n in ("relu", "elu", "softplus"))), 0.5,
                     paper="non-saturating nets also compress", kind="paper",
                     where="Abstract (saturation is not required for compression) [63]"),
      Claim.at_least("adaptive bins: total compression (sum over hidden layers) of ReLU+L2 minus ReLU, min over seeds "
                     "(bits)", float(np.min(np.asarray(s["relu_l2"]["adaptive_total_fall"])
                                            - np.asarray(s["relu"]["adaptive_total_fall"]))), 1e-6,
                     paper="L2 increases compression", kind="paper",
                     where="Abstract (L2 regularization leads to significantly increased compression) [63]"),
  ]
