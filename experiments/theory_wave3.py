"""Theory wave 3 (issue 21, th21c): theory rows with closed forms, each paper its own part and claims.

Paper [155]: Song Xia, Yi Yu, Xudong Jiang, Henghui Ding, "Mitigating the Curse of Dimensionality for Certified
Robustness via Dual Randomized Smoothing", ICLR 2024, arXiv:2404.09586.

[155] Dual Randomized Smoothing (`analysis.dual_smoothed_certify`, radius `analysis.dual_smoothing_radius`: the
tight radius of G = argmax of the two sub-classifiers' summed smoothed probabilities; see its module docstring).
  Validity: an 8 x 8 "image" split by `checkerboard_split` into two 8 x 4 sub-images; each base classifier is a
  half-space on its sub-image (random unit normal, random offset), so the smoothed probabilities and the exact
  robust radius of G are closed forms (computed here in float64 NumPy/SciPy, not by the module). `drs_inputs`
  random inputs per seed (`seeds` vmapped), each certified once (n0 = 20, n = `drs_n` samples, alpha =
  `drs_alpha`). A certificate is wrong when it names the wrong class with R > 0 or its R exceeds the exact radius.
  1. the certificate holds with probability >= 1 - alpha: wrong fraction <= alpha + the binomial slack at failure
     probability 1e-3 (over all seeds' inputs) (paper: Theorem 3.2, DRS guarantees a tight l2 radius).
  Curse of dimensionality: constant images +1 (d = `drs_dims` pixels), noise at a fixed norm c = 1 (RS: sigma =
  c / sqrt(d); DRS: sigma_i = c / sqrt(d / 2) on each half), a mean-threshold base classifier (correct on every
  noise draw, so both certificates sit at the sample-size cap of Clopper-Pearson):
  2. RS's certified radius falls as d^(-1/2): log-log slope over `drs_dims` in [-0.52, -0.48] (abstract: the RS
     upper bound decreases at the rate 1/sqrt(d));
  3. DRS's radius exceeds RS's at every d by >= 1.5x (abstract: DRS's bound decreases at (1/sqrt(m) + 1/sqrt(n)),
     m + n = d, a superior upper bound; at equal confidence the radius ratio is 2).
  Mutation `drs_radius=sqrt_sum`: the authors' code's combination sqrt(R_1^2 + R_2^2), larger than G's radius when
  the two sub-images' confidences differ: claim 1 fails (many certificates exceed the exact radius).
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats as st

from jaxlib_methods import analysis
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, sweep
from jaxlib_methods.runner.constraints import Length, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=155, title="Mitigating the Curse of Dimensionality for Certified Robustness via Dual "
              "Randomized Smoothing", year=2024, arxiv="2404.09586")
ALSO_REPRODUCES = ()
DEMO = False
MUTATION_TEST_SLOW = True  # the TINY run compiles the vmapped certification programs (several s on 2 shared cores)


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=1, le=64)] = 4                       # vmapped seeds
  # [155]
  drs_inputs: Annotated[int, Range(ge=10, le=100000)] = 250           # certified inputs per seed
  drs_n: Annotated[int, Range(ge=10, le=1000000)] = 1000              # estimation samples per certificate
  drs_alpha: Annotated[float, Range(gt=0, lt=0.5)] = 0.05
  drs_dims: Annotated[tuple[int, ...], Range(ge=8), Length(min=2)] = (64, 256, 1024, 4096)
  drs_radius: Literal["tight", "sqrt_sum"] = "tight"                  # "sqrt_sum": the mutation (see docstring)
  mesh: MeshConfig = MeshConfig()                                     # devices the vmapped seeds are split over


PRESETS = {"cpu": Config(), "gpu": Config(seeds=16, drs_inputs=2000, drs_n=10000),
           "tpu": Config(seeds=16, drs_inputs=2000, drs_n=10000)}
TINY = ("seeds=2", "drs_inputs=100", "drs_n=200", "drs_dims=64,1024")
MUTATIONS = {"sqrt_sum_radius": ("drs_radius=sqrt_sum",)}


# ---- [155] dual randomized smoothing ----------------------------------------------------------------------------

_H155, _W155 = 8, 8


def _drs_problem(key):
  """Half-space base classifiers on the two sub-images: class 1 iff <u_i, z_i> < b_i."""
  ku1, ku2, kb, kx = jax.random.split(key, 4)
  m = _H155 * _W155 // 2
  u1 = jax.random.normal(ku1, (m,))
  u2 = jax.random.normal(ku2, (m,))
  b = jax.random.uniform(kb, (2,), minval=-0.5, maxval=0.5)
  return u1 / jnp.linalg.norm(u1), u2 / jnp.linalg.norm(u2), b, kx


def _drs_one_seed(key, config: Config):
  u1, u2, b, kx = _drs_problem(key)
  kxs, kc = jax.random.split(kx)
  xs = jax.random.normal(kxs, (config.drs_inputs, _H155, _W155)) * 0.4
  x1, x2 = analysis.checkerboard_split(xs)
  s1, s2 = 0.5, 0.25
  f1 = lambda z: (z.reshape(z.shape[0], -1) @ u1 < b[0]).astype(jnp.int32)
  f2 = lambda z: (z.reshape(z.shape[0], -1) @ u2 < b[1]).astype(jnp.int32)

  def cert(a, c, k):
    if config.drs_radius == "tight":
      return analysis.dual_smoothed_certify(f1, f2, a, c, k, sigma1=s1, sigma2=s2, num_classes=2, n0=20,
                                            n=config.drs_n, alpha=config.drs_alpha)
    # mutation: the authors' code's sqrt(R_1^2 + R_2^2) from the same two Clopper-Pearson bounds
    c_a, _ = analysis.dual_smoothed_certify(f1, f2, a, c, k, sigma1=s1, sigma2=s2, num_classes=2, n0=20,
                                            n=config.drs_n, alpha=config.drs_alpha)
    k2 = jax.random.split(k, 4)
    cnt = lambda f, z, kk, s: jnp.sum(f(z[None] + s * jax.random.normal(kk, (config.drs_n,) + z.shape)) == c_a)
    p1 = analysis.clopper_pearson_lower(cnt(f1, a, k2[2], s1), config.drs_n, config.drs_alpha / 2)
    p2 = analysis.clopper_pearson_lower(cnt(f2, c, k2[3], s2), config.drs_n, config.drs_alpha / 2)
    r = jnp.hypot(analysis.smoothing_radius(p1, s1), analysis.smoothing_radius(p2, s2))
    return jnp.where(r > 0, c_a, -1), r

  cls, rad = jax.vmap(cert)(x1, x2, jax.random.split(kc, config.drs_inputs))
  proj = jnp.stack([x1.reshape(config.drs_inputs, -1) @ u1, x2.reshape(config.drs_inputs, -1) @ u2], -1)
  return {"cls": cls, "radius": rad, "proj": proj, "b": b, "sigma": jnp.array([s1, s2])}


def _drs_exact(out):
  """The exact class and robust radius of G for half-space base classifiers (float64 NumPy/SciPy)."""
  proj, b, s = (np.asarray(out[k], np.float64) for k in ("proj", "b", "sigma"))
  q = st.norm.cdf((b[..., None, :] - proj) / s[..., None, :])            # P(f_i = 1), [seeds, inputs, 2]
  top = (q.sum(-1) > 1).astype(int)
  pa = np.where(top[..., None] == 1, q, 1 - q)
  a = st.norm.ppf(pa).sum(-1)
  return top, np.maximum(a, 0) / np.sqrt(np.sum(1 / s ** 2, -1))[..., None]


def run_drs_validity(config: Config) -> dict:
  keys = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), 155), config.seeds)
  keys = shard_leading(keys, make_mesh(config.mesh), what="seed")
  out = jax.jit(jax.vmap(functools.partial(_drs_one_seed, config=config)))(keys)
  out = jax.tree.map(np.asarray, out)
  top, r_true = _drs_exact(out)
  cls, r = out["cls"], out["radius"]
  wrong = (r > 0) & ((cls != top) | (r > r_true * (1 + 1e-5)))
  return {"wrong": int(wrong.sum()), "total": int(wrong.size), "alpha": config.drs_alpha, "certified": float(np.mean(r > 0)),
          "mean_ratio": float(np.mean(r[r_true > 0] / r_true[r_true > 0]))}


def run_drs_rate(config: Config) -> dict:
  rs, drs = [], []
  key = jax.random.fold_in(jax.random.key(config.seed), 1551)
  for d in config.drs_dims:
    side = int(round(np.sqrt(d)))
    shape = (side, d // side) if side * (d // side) == d and (d // side) % 2 == 0 else (1, d)
    x = jnp.ones(shape)
    x1, x2 = analysis.checkerboard_split(x)
    f = lambda z: (z.reshape(z.shape[0], -1).mean(-1) > 0).astype(jnp.int32)
    c = 1.0
    k1, k2 = jax.random.split(jax.random.fold_in(key, d))
    _, r_rs = jax.jit(lambda x, k: analysis.smoothed_certify(f, x, k, sigma=c / np.sqrt(d), num_classes=2, n0=20,
                                                             n=config.drs_n, alpha=config.drs_alpha))(x, k1)
    s_half = c / np.sqrt(d / 2)
    if config.drs_radius == "tight":
      _, r_drs = jax.jit(lambda a, b, k: analysis.dual_smoothed_certify(
          f, f, a, b, k, sigma1=s_half, sigma2=s_half, num_classes=2, n0=20, n=config.drs_n,
          alpha=config.drs_alpha))(x1, x2, k2)
    else:
      p = analysis.clopper_pearson_lower(jnp.array(config.drs_n), config.drs_n, config.drs_alpha / 2)
      r_drs = jnp.hypot(*(analysis.smoothing_radius(p, s_half),) * 2)
    rs.append(float(r_rs))
    drs.append(float(r_drs))
  return {"dims": list(config.drs_dims), "rs": rs, "drs": drs}


# ---- run / claims / figure -------------------------------------------------------------------------------------

def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  out = {"drs_validity": sweep.memoized(workdir, {"part": "drs155", "what": "validity"},
                                        lambda: run_drs_validity(config))}
  out["drs_rate"] = sweep.memoized(workdir, {"part": "drs155", "what": "rate"}, lambda: run_drs_rate(config))
  log.log(0, part=155, **out["drs_validity"])
  _figure(out, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  out = []
  # [155]
  v = results["drs_validity"]
  alpha = float(v["alpha"])
  bound = float(st.binom.isf(1e-3, v["total"], alpha)) / v["total"]
  out.append(Claim.at_most(f"[155] DRS certificates that are wrong (wrong class, or radius above G's exact radius) "
                           f"over {v['total']} inputs; bound = alpha + binomial slack at failure prob. 1e-3",
                           v["wrong"] / v["total"], bound, paper="holds with prob. >= 1 - alpha (tight radius)",
                           kind="paper", where="Theorem 3.2 [155]"))
  rt = results["drs_rate"]
  dims, rs, drs = (np.asarray(rt[k], np.float64) for k in ("dims", "rs", "drs"))
  slope = float(np.polyfit(np.log(dims), np.log(rs), 1)[0]) if np.all(rs > 0) else float("nan")
  out.append(Claim.close("[155] RS certified radius vs input dimension d at a fixed noise norm: log-log slope",
                         slope, -0.5, atol=0.02, paper="decreases at the rate 1/sqrt(d)", kind="paper",
                         where="Abstract; Eq. 4 [155]"))
  out.append(Claim.at_least("[155] DRS / RS certified radius, min over d (m = n = d/2, same noise norm)",
                            float(np.min(drs / rs)), 1.5, paper="(1/sqrt(m) + 1/sqrt(n)) vs 1/sqrt(d): superior",
                            kind="paper", where="Abstract; Fig. 1(b) [155]"))
  out.append(Claim.at_least("[155] fraction of validity inputs with a non-zero DRS certificate", v["certified"], 0.5,
                            paper="(a non-vacuous check)", kind="sanity"))
  return out


def _figure(out, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  rt = out["drs_rate"]
  ax = axes[0]
  ax.loglog(rt["dims"], rt["rs"], "o-", label="RS (sigma = 1/sqrt(d))")
  ax.loglog(rt["dims"], rt["drs"], "s-", label="DRS (sigma_i = 1/sqrt(d/2))")
  ax.set_xlabel("input dimension d")
  ax.set_ylabel("certified l2 radius")
  ax.set_title("[155] radius at a fixed noise norm")
  ax.legend(fontsize=8)
  v = out["drs_validity"]
  ax = axes[1]
  ax.bar(["wrong certificates", "certified"], [v["wrong"] / v["total"], v["certified"]])
  ax.set_ylabel("fraction of inputs")
  ax.set_title("[155] DRS certificate validity")
  save_figure(fig, workdir / "figure.png")
