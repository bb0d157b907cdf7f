"""Theory wave 3b (issue 21): the Matrix Nuclear-Norm against the exact nuclear norm and the Matrix Entropy [147],
sketched least squares with an ell_inf guarantee [144], and ell_p sensitivities / Lewis weights [98], each on a
synthetic instance with a known answer. No training.

Paper [147]: Yahan Li, Tingyu Xia, Yi Chang, Yuan Wu, "Large Language Model Evaluation via Matrix Nuclear-Norm",
Findings of EMNLP 2025, arXiv:2410.10672.

[147] Random rank-r "hidden states" H = U V^T + noise * N(0, 1) (U [L, r], V [d, r] standard Gaussian) for r in
`mnn_ranks`, `seeds` draws each (vmapped, sharded). Measured: `analysis.matrix_nuclear_norm` (MNN, the L_{1,2}
approximation, no SVD), the exact nuclear norm ||X||_* / L of the same normalised matrix X (an SVD in float32: the
independent reference), and `analysis.matrix_entropy`. Claims (tolerances fixed before the run):
  1. the MNN's mean over draws increases strictly with r (paper: the nuclear norm as a convex proxy of rank, Sec. 3);
  2. Spearman rank correlation of the MNN with the exact ||X||_* / L over all (r, draw) pairs >= 0.8, and with the
     Matrix Entropy >= 0.8 (paper: MNN tracks Matrix Entropy's ranking of models, Sec. 4);
  3. cost: the fitted log-log exponent of the compiled FLOPs (`jax.jit(f).lower(H).compile().cost_analysis()`, not
     wall time) in n for square H [n, n], n in `mnn_cost_sizes`: MNN <= 2.2 and Matrix Entropy >= 2.8 (paper: O(n^2)
     vs O(n^3), Abstract), and the FLOP ratio entropy / MNN grows with n (paper: 8x -> 24x from 111M to 6.7B);
  4. sanity: on a matrix with orthogonal columns the MNN equals the SVD nuclear norm / L (rel. error <= 1e-5).
Mutation `mnn_variant=frobenius`: the "metric" is ||X||_F / L (constant 1 / sqrt(L) after row normalisation), which
carries no rank information; claims 1 and 2 fail.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from jaxlib_methods import analysis
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, sweep
from jaxlib_methods.runner.constraints import Length, Range, Seed

PAPER = Paper(catalog_id=147, title="Large Language Model Evaluation via Matrix Nuclear-Norm", year=2024,
              arxiv="2410.10672")
ALSO_REPRODUCES = ()
DEMO = False
MUTATION_TEST_SLOW = True  # the TINY run compiles the vmapped programs of every part (several s on 2 shared cores)


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=2, le=64)] = 8                       # draws per rank (vmapped, sharded)
  # [147]
  mnn_L: Annotated[int, Range(ge=2)] = 128                              # tokens
  mnn_d: Annotated[int, Range(ge=2)] = 64                               # hidden size
  mnn_ranks: Annotated[tuple[int, ...], Range(ge=1), Length(min=3)] = (1, 2, 4, 8, 16, 32)
  mnn_noise: Annotated[float, Range(ge=0)] = 0.01                       # isotropic noise on top of the rank-r part
  mnn_cost_sizes: Annotated[tuple[int, ...], Range(ge=8), Length(min=2)] = (64, 128, 256, 512)
  mnn_variant: Literal["l12", "frobenius"] = "l12"                      # "frobenius": a wrong metric (mutation)
  mesh: MeshConfig = MeshConfig()                                       # devices the draws are split over


PRESETS = {"cpu": Config(), "gpu": Config(seeds=32), "tpu": Config(seeds=32)}
TINY = ("seeds=4", "mnn_L=32", "mnn_d=16", "mnn_ranks=(1,2,4,8)", "mnn_cost_sizes=(32,64)")
MUTATIONS = {"frobenius_metric": ("mnn_variant=frobenius",)}


# ---- [147] Matrix Nuclear-Norm vs exact nuclear norm and Matrix Entropy ---------------------------------------

def _normalised(H):
  X = H - jnp.mean(H, axis=0, keepdims=True)
  return X / jnp.linalg.norm(X, axis=1, keepdims=True)


def _mnn_one(key, r_index, config: Config):
  """Metrics of one random hidden-state matrix of rank mnn_ranks[r_index] (r_index traced; the rank is a mask)."""
  L, d, rmax = config.mnn_L, config.mnn_d, max(config.mnn_ranks)
  r = jnp.asarray(config.mnn_ranks)[r_index]
  ku, kv, kn = jax.random.split(key, 3)
  mask = (jnp.arange(rmax) < r).astype(jnp.float32)
  U = jax.random.normal(ku, (L, rmax)) * mask
  V = jax.random.normal(kv, (d, rmax))
  H = U @ V.T + config.mnn_noise * jax.random.normal(kn, (L, d))
  if config.mnn_variant == "frobenius":   # mutation: a norm blind to rank
    mnn = jnp.linalg.norm(_normalised(H)) / L
  else:
    mnn = analysis.matrix_nuclear_norm(H)
  exact = jnp.sum(jnp.linalg.svd(_normalised(H), compute_uv=False)) / L
  return {"mnn": mnn, "exact": exact, "entropy": analysis.matrix_entropy(H)}


def _flops(fn, n: int) -> float:
  cost = jax.jit(fn).lower(jax.ShapeDtypeStruct((n, n), jnp.float32)).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost["flops"])


def run_mnn(config: Config) -> dict:
  R, S = len(config.mnn_ranks), config.seeds
  keys = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), 147), R * S)
  r_index = np.repeat(np.arange(R), S)
  keys, r_index = shard_leading((keys, r_index), make_mesh(config.mesh), what="draw")
  out = jax.jit(jax.vmap(functools.partial(_mnn_one, config=config)))(keys, r_index)
  out = {k: np.asarray(v, np.float64).reshape(R, S).tolist() for k, v in out.items()}
  # cost: compiled FLOPs of the two metrics on square [n, n] matrices
  out["flops_mnn"] = [_flops(analysis.matrix_nuclear_norm, n) for n in config.mnn_cost_sizes]
  out["flops_entropy"] = [_flops(analysis.matrix_entropy, n) for n in config.mnn_cost_sizes]
  # sanity: orthogonal columns (scaled orthonormal columns, no normalisation) -> MNN == ||H||_* / L exactly
  Q, _ = np.linalg.qr(np.random.default_rng(config.seed).standard_normal((config.mnn_L, config.mnn_d)))
  Q = Q[:, :config.mnn_d] * np.linspace(0.5, 2.0, Q.shape[1])
  ours = float(analysis.matrix_nuclear_norm(jnp.asarray(Q, jnp.float32), normalize=False))
  ref = float(np.sum(np.linalg.svd(Q, compute_uv=False)) / config.mnn_L)
  out["orthogonal_rel_err"] = abs(ours - ref) / ref
  return out


def _slope(sizes, flops) -> float:
  return float(np.polyfit(np.log(np.asarray(sizes, float)), np.log(np.asarray(flops, float)), 1)[0])


def claims_mnn(res: dict, config_sizes=None) -> list[Claim]:
  mnn, exact, ent = (np.asarray(res[k]) for k in ("mnn", "exact", "entropy"))   # [ranks, draws]
  means = mnn.mean(1)
  rho_exact = float(scipy.stats.spearmanr(mnn.ravel(), exact.ravel())[0])
  rho_ent = float(scipy.stats.spearmanr(mnn.ravel(), ent.ravel())[0])
  sizes = res["cost_sizes"]
  s_mnn, s_ent = _slope(sizes, res["flops_mnn"]), _slope(sizes, res["flops_entropy"])
  ratio = np.asarray(res["flops_entropy"]) / np.asarray(res["flops_mnn"])
  return [
      Claim.at_least("[147] MNN mean over draws: smallest increase between consecutive ranks (must be > 0)",
                     float(np.min(np.diff(means))), 1e-12, paper="the nuclear norm as a convex proxy of rank",
                     kind="paper", where="Sec. 3 [147]"),
      Claim.at_least("[147] Spearman(MNN, exact SVD nuclear norm / L) over all (rank, draw) pairs", rho_exact, 0.8,
                     paper="L_{1,2} approximates ||X||_*", kind="paper", where="Sec. 3 [147]"),
      Claim.at_least("[147] Spearman(MNN, Matrix Entropy) over all (rank, draw) pairs", rho_ent, 0.8,
                     paper="MNN ranks models as Matrix Entropy does", kind="paper", where="Sec. 4 [147]"),
      Claim.at_most(f"[147] fitted exponent of the MNN's compiled FLOPs in n (H [n, n], n in {tuple(sizes)})", s_mnn,
                    2.2, paper="O(n^2)", kind="paper", where="Abstract [147]"),
      Claim.at_least("[147] fitted exponent of the Matrix Entropy's compiled FLOPs in n", s_ent, 2.8,
                     paper="O(n^3)", kind="paper", where="Abstract [147]"),
      Claim.at_least("[147] FLOP ratio entropy / MNN: smallest increase between consecutive sizes "
                     f"(ratios {', '.join(f'{x:.0f}' for x in ratio)})", float(np.min(np.diff(ratio))), 1e-12,
                     paper="8x -> 24x from 111M to 6.7B", kind="paper", where="Abstract [147]"),
      Claim.at_most("[147] orthogonal columns: |MNN - ||H||_* / L| / (||H||_* / L)", res["orthogonal_rel_err"], 1e-5,
                    paper="exact when the columns are orthogonal", kind="sanity"),
  ]


# ---- run / claims / figure -------------------------------------------------------------------------------------

def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  mnn = sweep.memoized(workdir, {"part": "mnn147"}, lambda: run_mnn(config))
  out = {"mnn": dict(mnn, ranks=list(config.mnn_ranks), cost_sizes=list(config.mnn_cost_sizes))}
  log.log(0, part=147, **{f"mnn_r{r}": float(np.mean(m)) for r, m in zip(config.mnn_ranks, mnn["mnn"])})
  _figure(out, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  return claims_mnn(results["mnn"])


def _figure(out, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  m = out["mnn"]
  ax = axes[0]
  for name in ("mnn", "exact", "entropy"):
    v = np.asarray(m[name])
    ax.errorbar(m["ranks"], v.mean(1), yerr=v.std(1), fmt="o-", label={"mnn": "Matrix Nuclear-Norm (L1,2)",
                "exact": "SVD nuclear norm / L", "entropy": "Matrix Entropy"}[name])
  ax.set_xscale("log", base=2)
  ax.set_yscale("log")
  ax.set_xlabel("rank r of the hidden states")
  ax.set_ylabel("metric (mean +- std over draws)")
  ax.set_title("[147] metrics vs rank")
  ax.legend(fontsize=8)
  ax = axes[1]
  ax.loglog(m["cost_sizes"], m["flops_mnn"], "o-", label="Matrix Nuclear-Norm")
  ax.loglog(m["cost_sizes"], m["flops_entropy"], "s-", label="Matrix Entropy")
  ax.set_xlabel("n (H is [n, n])")
  ax.set_ylabel("compiled FLOPs (XLA cost analysis)")
  ax.set_title("[147] cost")
  ax.legend(fontsize=8)
  save_figure(fig, workdir / "figure.png")
