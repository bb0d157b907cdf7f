"""EoRA on a toy 4-bit-quantised linear layer: the eigenspace compensation is the activation-weighted rank-r optimum,
so it is never worse than plain SVD compensation, and on held-out activations it recovers more of the original
layer's output at equal rank.

Paper [114]: Shih-Yang Liu et al., "EoRA: Fine-tuning-free Compensation for Compressed LLM with Eigenspace Low-Rank
Approximation", 2024, arXiv:2410.21271 (Sec. 3: the eigenspace projection; Sec. 4: EoRA vs SVD compensation of
quantised / pruned LLaMA layers at equal rank).

Setup (float64, no training): a linear layer W [d_out, d_in] ~ N(0, 1/d_in); LLM-like anisotropic activations
x ~ N(0, Sigma) with a power-law spectrum (exponent `decay`) in a random basis plus `outliers` channels scaled by
`outlier_scale`; W_hat = 4-bit group-wise min-max quantisation of W (`jaxlib_methods.optim.quantize_groupwise`,
groups of `group_size` along d_in); calibration set of `calib` tokens, held-out set of `test` tokens.
For each rank r in `ranks` and `seeds` seeds, compensation (B, A) by `eora_compensation` and `svd_compensation`.
Claims (tolerances fixed before the run):
  1. EoRA's calibration error ||(Delta W - BA) X^T||_F equals the rank-r optimum computed independently (SciPy
     sqrtm of X^T X, SVD of Delta W (X^T X)^(1/2)): max relative gap <= 1e-6 over r and seeds (Sec. 3);
  2. hence EoRA's activation-weighted error <= plain SVD's at every r and seed (max of EoRA - SVD <= 0) (Sec. 3);
  3. on held-out activations EoRA's relative output error ||X (W - W_hat - BA)^T|| / ||X W^T|| is below SVD's at
     every r for every seed (Sec. 4: EoRA beats SVD compensation at equal rank) -- min gap > 0.
Mutation `eigenspace=false`: "EoRA" computed without the eigenspace projection (= SVD): claims 1 and 3 fail.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from jaxlib_methods.nn import eora_compensation, svd_compensation
from jaxlib_methods.optim import dequantize_groupwise, quantize_groupwise
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, sweep
from jaxlib_methods.runner.constraints import Check, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=114, title="EoRA: Fine-tuning-free Compensation for Compressed LLM with Eigenspace Low-Rank "
              "Approximation", year=2024, arxiv="2410.21271")
DEMO = True


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=1, le=20)] = 3
  d_in: Annotated[int, Range(ge=8)] = 128
  d_out: Annotated[int, Range(ge=8)] = 64
  calib: PositiveInt = 512                      # calibration tokens
  test: PositiveInt = 2048                      # held-out tokens
  decay: PositiveFloat = 1.0                    # activation spectrum: lambda_i ~ i^-decay
  outliers: Annotated[int, Range(ge=0)] = 4     # outlier channels (LLM-like)
  outlier_scale: PositiveFloat = 10.0
  bits: Annotated[int, Range(ge=2, le=8)] = 4
  group_size: PositiveInt = 64
  max_rank_log2: Annotated[int, Range(ge=1, le=10)] = 5     # ranks 2^1 .. 2^max_rank_log2
  eigenspace: bool = True                       # False: no eigenspace projection (= SVD; the mutation)
  mesh: MeshConfig = MeshConfig()   # devices the seeds' compensations are split over

  CHECKS = (Check("2 ** max_rank_log2 <= min(d_in, d_out)", "the largest rank must fit the layer"),
            Check("d_in % group_size == 0", "quantisation groups must tile d_in"),
            Check("outliers <= d_in", "at most d_in outlier channels"))


PRESETS = {"cpu": Config(), "gpu": Config(d_in=1024, d_out=1024, calib=4096, test=8192, max_rank_log2=8),
           "tpu": Config(d_in=1024, d_out=1024, calib=4096, test=8192, max_rank_log2=8)}
MUTATION_TEST_SLOW = True  # TINY + the mutated run took 11.9 s in the default suite (2 cores, 2026-12-01): under -m slow
TINY = ("d_in=64", "d_out=32", "calib=256", "test=512", "max_rank_log2=4", "group_size=32", "seeds=2")
MUTATIONS = {"no_eigenspace": ("eigenspace=false",)}


def make_layer(config: Config, seed: int):
  """(W, W_hat, X_calib, X_test), float64 NumPy; W_hat = 4-bit group-wise quantised W."""
  rng = np.random.default_rng(seed)
  d_in, d_out = config.d_in, config.d_out
  w = rng.normal(size=(d_out, d_in)) / np.sqrt(d_in)
  basis, _ = np.linalg.qr(rng.normal(size=(d_in, d_in)))
  scales = np.arange(1, d_in + 1) ** (-config.decay / 2)
  chans = rng.choice(d_in, config.outliers, replace=False)

  def acts(n):
    x = (rng.normal(size=(n, d_in)) * scales) @ basis.T
    x[:, chans] *= config.outlier_scale
    return x

  qa = quantize_groupwise(jnp.asarray(w, jnp.float32), bits=config.bits, group_size=config.group_size)
  w_hat = np.asarray(dequantize_groupwise(qa, w.shape, bits=config.bits, group_size=config.group_size), np.float64)
  return w, w_hat, acts(config.calib), acts(config.test)


def weighted_optimum_errors(dw: np.ndarray, x: np.ndarray, ranks) -> list[float]:
  """min over rank-r M of ||(dW - M) X^T||_F for each r, independently: SciPy sqrtm S = (X^T X)^(1/2), tail singular
  values of dW S (||M X^T|| = ||M S|| for any M)."""
  s = np.real(scipy.linalg.sqrtm(x.T @ x))
  sig = np.linalg.svd(dw @ s, compute_uv=False)
  return [float(np.sqrt(np.sum(sig[r:] ** 2))) for r in ranks]


# Not under jax.jit: at the cpu preset's sizes, XLA:CPU's compiled float64 program of vmapped SVDs/eigendecompositions
# deadlocks on this 2-core machine (every thread waiting on a futex, no CPU time; TINY sizes run). Eagerly, each
# vmapped decomposition is one batched op: the seed axis is still split over the mesh.
def _compensations(w, w_hat, xc, *, r: int, eigenspace: bool):
  """The rank-r corrections B @ A of EoRA and of plain SVD for every seed: w, w_hat [S, d_out, d_in], xc
  [S, n, d_in] -> (M_eora, M_svd), each [S, d_out, d_in] (the seeds vmapped)."""
  def one(w, w_hat, x):
    bs, as_ = svd_compensation(w, w_hat, r)
    be, ae = eora_compensation(w, w_hat, x, r) if eigenspace else (bs, as_)
    return be @ ae, bs @ as_
  return jax.vmap(one)(w, w_hat, xc)


def evaluate(config: Config, seeds) -> list[dict]:
  """Per seed: the compensations' calibration errors, held-out relative errors and the weighted optimum. The
  float64 compensations of all seeds run as one vmapped program whose seed axis is split over the mesh."""
  layers = [make_layer(config, s) for s in seeds]
  w, w_hat, xc, xt = (np.stack(a) for a in zip(*layers))
  ranks = [2 ** k for k in range(1, config.max_rank_log2 + 1)]
  with jax.enable_x64(True):
    args = shard_leading((w, w_hat, xc), make_mesh(config.mesh), what="seed")
    comp = [tuple(np.asarray(m) for m in _compensations(*args, r=r, eigenspace=config.eigenspace)) for r in ranks]
  per_seed = []
  for i in range(len(seeds)):
    dw = w[i] - w_hat[i]
    y_test = xt[i] @ w[i].T
    rel = lambda m: float(np.linalg.norm(xt[i] @ (dw - m).T) / np.linalg.norm(y_test))
    out = {"ranks": ranks, "eora_calib": [], "svd_calib": [], "optimum_calib": [], "eora_test": [], "svd_test": [],
           "quantised_test": rel(np.zeros_like(dw))}
    for m_e, m_s in comp:
      m_e, m_s = m_e[i], m_s[i]
      out["eora_calib"].append(float(np.linalg.norm((dw - m_e) @ xc[i].T)))
      out["svd_calib"].append(float(np.linalg.norm((dw - m_s) @ xc[i].T)))
      out["eora_test"].append(rel(m_e))
      out["svd_test"].append(rel(m_s))
    out["optimum_calib"] = weighted_optimum_errors(dw, xc[i], ranks)
    per_seed.append(out)
  return per_seed


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  seeds = [config.seed + i for i in range(config.seeds)]
  per_seed = sweep.memoized(workdir, {"seeds": seeds}, lambda: evaluate(config, seeds))   # a rerun reads it back
  for i, res in enumerate(per_seed):
    log.log(i, seed=seeds[i], eora_test=res["eora_test"], svd_test=res["svd_test"])
  opt_gap = max(abs(e - o) / o for s in per_seed for e, o in zip(s["eora_calib"], s["optimum_calib"]))
  calib_gap = max(e - v for s in per_seed for e, v in zip(s["eora_calib"], s["svd_calib"]))
  test_gap = min(v - e for s in per_seed for e, v in zip(s["eora_test"], s["svd_test"]))
  results = {"per_seed": per_seed, "optimum_rel_gap": opt_gap, "max_eora_minus_svd_calib": calib_gap,
             "min_svd_minus_eora_test": test_gap}
  _figure(results, workdir)
  return results


def claims(results: dict) -> list[Claim]:
  s0 = results["per_seed"][0]
  return [
      Claim.at_most("EoRA calibration error == independent rank-r optimum of ||(dW - M) X^T||_F (max rel. gap over "
                    "ranks and seeds)", results["optimum_rel_gap"], 1e-6, paper="optimal (Eckart-Young in the "
                    "eigenspace)", kind="paper", where="Sec. 3 (eigenspace low-rank approximation)"),
      Claim.at_most("EoRA activation-weighted error - SVD's, max over ranks and seeds (calibration set)",
                    results["max_eora_minus_svd_calib"], 0.0, paper="<= 0 at every rank", kind="paper",
                    where="Sec. 3 (eigenspace low-rank approximation)"),
      Claim.at_least("held-out relative output error: SVD - EoRA, min over ranks and seeds (EoRA recovers more)",
                     results["min_svd_minus_eora_test"], 1e-12, paper="EoRA > SVD at equal rank", kind="paper",
                     where="Sec. 4 (EoRA vs SVD compensation at equal rank)"),
      Claim.at_least("4-bit quantisation alone has a visible output error (relative, seed 0)",
                     s0["quantised_test"], 0.01, paper="-", kind="sanity"),
  ]


def _figure(results, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4))
  for i, s in enumerate(results["per_seed"]):
    ax.loglog(s["ranks"], s["svd_test"], "s--", color="tab:orange", alpha=0.7, label="SVD" if i == 0 else None)
    ax.loglog(s["ranks"], s["eora_test"], "o-", color="tab:blue", alpha=0.7, label="EoRA" if i == 0 else None)
    ax.axhline(s["quantised_test"], color="gray", ls=":", label="4-bit, no compensation" if i == 0 else None)
  ax.set_xlabel("compensation rank r")
  ax.set_ylabel("held-out relative output error")
  ax.set_title("EoRA vs SVD compensation of a 4-bit linear layer (Liu et al. 2024)", fontsize=9)
  ax.legend(fontsize=8)
  save_figure(fig, workdir / "figure.png")
