"""Comp-sum losses: the H-consistency bounds of cross-entropy, sum-exponential and the tau = 0.5 loss hold on every
sampled hypothesis, and are attained (tight).

Paper [164]: Anqi Mao, Mehryar Mohri, Yutao Zhong, "Cross-Entropy Loss Functions: Theoretical Analysis and
Applications", ICML 2023, arXiv:2304.07288.

The paper's bound (Sec. 3, the H-consistency bounds of comp-sum losses; for the complete hypothesis set the
minimizability gaps vanish and the bound is one between excess risks): for every hypothesis h,

    R_01(h) - R_01*  <=  Gamma_tau( R_tau(h) - R_tau* ),     Gamma_tau = T_tau^{-1},
    T_tau(t) = 2^(1-tau)/(1-tau) [1 - (((1+t)^(1/(2-tau)) + (1-t)^(1/(2-tau))) / 2)^(2-tau)]   tau in [0, 1)
    T_1(t)   = (1+t)/2 log(1+t) + (1-t)/2 log(1-t)                                               tau = 1 (CE)

for the comp-sum loss Phi^tau(sum_{y' != y} exp(h_y' - h_y)) (tau = 0: sum-exponential, tau = 1: cross-entropy),
whatever the number of classes n. T_tau(t) is exactly the excess conditional risk, at p = ((1+t)/2, (1-t)/2), of the
hypothesis on the decision boundary, which is where the bound is attained ("we further show that our bounds are
tight", abstract). Everything here is float64 NumPy/JAX on finite problems (no training):
  - a finite input space, each point with its own conditional distribution p(.|x) over n classes (n from 2 to
    `max_classes`, Dirichlet(`concentration`)), and random score vectors h(x, .) (the complete hypothesis set allows
    any scores per point); the surrogate risks use `jaxlib_methods.losses.comp_sum_loss`;
  - the Bayes surrogate risk per point in closed form: the minimiser's softmax is s_y ~ p_y^(1/(2-tau)), so
    C*_tau = (sum_y p_y^(1/(2-tau)))^(2-tau) - 1) / (1 - tau) for tau < 1 and the entropy H(p) for tau = 1 (checked
    against gradient descent on comp_sum_loss as a sanity row);
  - the excess risks averaged over the points (the bound is applied to the averaged excesses, as stated).
Claims (tolerances fixed before the run, float64):
  1-3. for tau = 1, 0.5, 0: over `samples` sampled (distribution, hypothesis) pairs, max [excess 0-1 - Gamma_tau(excess
       surrogate)] <= 1e-9 (the bound holds);
  4. tightness: along the paper's worst case (two classes, p = ((1+t)/2, (1-t)/2), scores on the boundary), the
     ratio excess 0-1 / Gamma_tau(excess surrogate) reaches >= 0.999 for each tau.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods.losses import comp_sum
from jaxlib_methods.runner import (Claim, MeshConfig, MetricsLog, Paper, make_mesh, minimize, save_figure,
                                   shard_leading, sweep)
from jaxlib_methods.runner.constraints import PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=164, title="Cross-Entropy Loss Functions: Theoretical Analysis and Applications", year=2023,
              arxiv="2304.07288")
DEMO = True

TAUS = (1.0, 0.5, 0.0)


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  samples: PositiveInt = 4000                      # sampled (distribution, hypothesis) problems
  points: PositiveInt = 4                          # input points per problem
  max_classes: Annotated[int, Range(ge=2)] = 10
  concentration: PositiveFloat = 0.5               # Dirichlet concentration of p(.|x)
  score_scale: PositiveFloat = 3.0                 # std of the random scores
  gamma: Literal["paper", "linear"] = "paper"      # "linear": Gamma(t) = t, a deliberately wrong bound (mutation)
  mesh: MeshConfig = MeshConfig()                  # devices the sampled problems' risks are split over (samples: a
                                                   # multiple)

  CHECKS = ()

PRESETS = {"cpu": Config(), "gpu": Config(samples=100000), "tpu": Config(samples=100000)}
MUTATION_TEST_SLOW = True  # TINY + the mutated run took 6.8 s in the default suite (2 cores, 2026-12-01): under -m slow
TINY = ("samples=300",)
MUTATIONS = {"linear_gamma": ("gamma=linear",)}


def t_transform(t: np.ndarray, tau: float) -> np.ndarray:
  """The paper's T_tau(t), t in [0, 1] (float64)."""
  t = np.asarray(t, np.float64)
  if tau == 1.0:
    with np.errstate(divide="ignore", invalid="ignore"):
      return np.where(t < 1, (1 + t) / 2 * np.log1p(t) + (1 - t) / 2 * np.log1p(-np.minimum(t, 1 - 1e-300)),
                      math.log(2.0))
  a = 1.0 / (2.0 - tau)
  mean = ((1 + t) ** a + np.maximum(1 - t, 0.0) ** a) / 2
  return 2 ** (1 - tau) / (1 - tau) * (1 - mean ** (2 - tau))


def gamma_transform(x: np.ndarray, tau: float, form: str = "paper") -> np.ndarray:
  """Gamma_tau = T_tau^{-1} on [0, T_tau(1)] by bisection (T_tau is increasing); 1 beyond (float64)."""
  x = np.asarray(x, np.float64)
  if form == "linear":
    return x
  lo, hi = np.zeros_like(x), np.ones_like(x)
  for _ in range(200):
    mid = (lo + hi) / 2
    below = t_transform(mid, tau) < x
    lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
  return np.where(x >= t_transform(np.ones(1), tau)[0], 1.0, (lo + hi) / 2)


def conditional_risks(scores: np.ndarray, p: np.ndarray, tau: float, mesh=None) -> np.ndarray:
  """sum_y p_y l_tau(h, y) per point, with the library's comp-sum loss at every label: scores and p [..., n] (classes
  beyond a point's own n padded with scores -inf and p = 0, excluded through `where`). Returns [...] float64. One
  jitted program over the leading axis; with a `mesh`, that axis (the sampled problems) is split over its devices."""
  with jax.enable_x64(True):
    h, pj = (jnp.asarray(scores, jnp.float64), jnp.asarray(p, jnp.float64)) if mesh is None else \
        shard_leading((np.asarray(scores, np.float64), np.asarray(p, np.float64)), mesh, what="sampled problem")
    return np.asarray(_conditional_risks(h, pj, tau=float(tau)))


@functools.partial(jax.jit, static_argnames=("tau",))
def _conditional_risks(h, p, *, tau: float):
  n = h.shape[-1]
  logits = jnp.broadcast_to(h[..., None, :], h.shape[:-1] + (n, n))          # [..., label, class]
  labels = jnp.broadcast_to(jnp.arange(n), h.shape[:-1] + (n,))
  losses = comp_sum.comp_sum_loss(logits, labels, tau=tau, where=p > 0)    # [..., label]
  return jnp.sum(p * losses, axis=-1)


def bayes_conditional_risk(p: np.ndarray, tau: float) -> np.ndarray:
  """inf_h sum_y p_y l_tau(h, y) in closed form, per point: p [..., n] -> [...] (float64)."""
  p = np.asarray(p, np.float64)
  if tau == 1.0:
    with np.errstate(divide="ignore", invalid="ignore"):
      return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)
  z = np.sum(p ** (1.0 / (2.0 - tau)), axis=-1)
  return (z ** (2.0 - tau) - 1.0) / (1.0 - tau)


def bayes_by_descent(p: np.ndarray, tau: float, steps: int = 3000) -> float:
  """inf over scores by gradient descent on the library's loss (a check of the closed form)."""
  n = p.shape[0]
  with jax.enable_x64(True):
    labels, pj = jnp.arange(n), jnp.asarray(p)
    risk = lambda h: jnp.dot(pj, comp_sum.comp_sum_loss(jnp.tile(h, (n, 1)), labels, tau=tau))
    tx = optax.adam(0.05)
    h = jnp.zeros(n)

    @jax.jit
    def fit(h):
      h, _ = minimize(risk, h, tx, length=steps)
      return risk(h)

    return float(fit(h))


def excess_pairs(p: np.ndarray, h: np.ndarray, tau: float, mesh=None) -> tuple[np.ndarray, np.ndarray]:
  """(excess 0-1 risk, excess comp-sum risk) per problem, averaged over its points: p, h [S, points, n] (padded).
  The conditional risks are one jitted program over S, split over `mesh` when one is given."""
  pred = np.argmax(h, axis=-1)
  d01 = np.max(p, axis=-1) - np.take_along_axis(p, pred[..., None], -1)[..., 0]
  dl = conditional_risks(h, p, tau, mesh) - bayes_conditional_risk(p, tau)
  return d01.mean(-1), dl.mean(-1)


def sample_problems(config: Config):
  """S problems of `points` points each, n classes per problem (padded to max_classes: p = 0, scores -inf)."""
  rng = np.random.default_rng(config.seed)
  s, m, k = config.samples, config.points, config.max_classes
  p_all = np.zeros((s, m, k))
  h_all = np.full((s, m, k), -np.inf)
  for i in range(s):
    n = int(rng.integers(2, k + 1))
    p = rng.dirichlet(np.full(n, config.concentration), size=m)
    h = rng.normal(size=(m, n)) * config.score_scale
    if i % 2:  # near-boundary hypotheses: the Bayes scores log p plus noise, with the top two classes swapped
      h = np.log(np.maximum(p, 1e-12)) + rng.normal(size=h.shape) * 0.1
      top2 = np.argsort(-p, axis=1)[:, :2]
      rows = np.arange(m)
      h[rows, top2[:, 0]], h[rows, top2[:, 1]] = h[rows, top2[:, 1]], h[rows, top2[:, 0]]
    p_all[i, :, :n], h_all[i, :, :n] = p, h
  return p_all, h_all


def _violations(config: Config, tau: float, problems) -> dict:
  d01, dl = excess_pairs(*problems, tau, make_mesh(config.mesh))
  g = gamma_transform(np.maximum(dl, 0.0), tau, config.gamma)
  ok = g > 1e-12
  return {"max_gap": float(np.max(d01 - g)), "min_excess_surrogate": float(np.min(dl)),
          "max_ratio_random": float(np.max(d01[ok] / g[ok])) if ok.any() else float("nan"),
          "d01": d01.tolist(), "dl": dl.tolist()}


def tightness(tau: float, config: Config) -> dict:
  """The paper's worst case: n = 2, p = ((1+t)/2, (1-t)/2), scores just past the boundary (the wrong class)."""
  ts = np.linspace(0.02, 0.98, 49)
  p = np.stack([(1 + ts) / 2, (1 - ts) / 2], -1)[:, None, :]
  h = np.broadcast_to(np.array([0.0, 1e-7]), p.shape)
  d01, dl = excess_pairs(p, h, tau)
  ratios = d01 / gamma_transform(dl, tau, config.gamma)
  return {"t": ts.tolist(), "ratio": ratios.tolist(), "max_ratio": float(np.max(ratios))}


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  problems = sample_problems(config)
  log = MetricsLog(workdir)
  log.reset()
  out = {"bound": {}, "tight": {}, "closed_form_check": {}}

  def one_tau(tau: float) -> dict:
    v = _violations(config, tau, problems)
    bound = {k: v[k] for k in ("max_gap", "min_excess_surrogate", "max_ratio_random")}
    bound["scatter"] = {"d01": v["d01"][:2000], "dl": v["dl"][:2000]}
    p = np.random.default_rng(config.seed + 1).dirichlet(np.ones(5))
    return {"bound": bound, "tight": tightness(tau, config),
            "closed_form_check": abs(bayes_by_descent(p, tau) - float(bayes_conditional_risk(p, tau)))}

  for i, tau in enumerate(TAUS):
    res = sweep.memoized(workdir, {"tau": tau}, lambda tau=tau: one_tau(tau))   # a rerun reads finished taus back
    for k in ("bound", "tight", "closed_form_check"):
      out[k][str(tau)] = res[k]
    log.log(i, tau=tau, max_gap=out["bound"][str(tau)]["max_gap"], max_ratio=out["tight"][str(tau)]["max_ratio"])
  _figure(out, config, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  out = []
  names = {"1.0": "cross-entropy (tau = 1)", "0.5": "comp-sum tau = 0.5", "0.0": "sum-exponential (tau = 0)"}
  where = "Sec. 3, H-consistency bounds of comp-sum losses (complete hypothesis set)"
  for tau in ("1.0", "0.5", "0.0"):
    b = results["bound"][tau]
    out.append(Claim.at_most(f"{names[tau]}: max over sampled (p, h) of excess 0-1 - Gamma_tau(excess surrogate)",
                             b["max_gap"], 1e-9, paper="<= 0 (the bound holds for every h)", kind="paper",
                             where=where))
  worst = min(results["tight"][tau]["max_ratio"] for tau in ("1.0", "0.5", "0.0"))
  out.append(Claim.at_least("tightness: min over tau of the max ratio excess 0-1 / Gamma_tau(excess surrogate) on the "
                            "paper's two-class worst case", worst, 0.999, paper="1 (the bounds are tight)",
                            kind="paper", where="Abstract; Sec. 3 (tightness)"))
  check = max(results["closed_form_check"].values())
  out.append(Claim.at_most("closed-form Bayes comp-sum risk vs gradient descent on comp_sum_loss (max abs gap)", check,
                           1e-6, paper="closed form", kind="sanity"))
  return out


def _figure(out, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(TAUS), figsize=(12, 3.8))
  for ax, tau in zip(axes, TAUS):
    sc = out["bound"][str(tau)]["scatter"]
    ax.scatter(sc["dl"], sc["d01"], s=3, alpha=0.4, label="sampled (p, h)")
    x = np.linspace(0, max(max(sc["dl"]), 1e-3), 200)
    ax.plot(x, gamma_transform(x, tau, config.gamma), "r-", label=f"paper: Gamma_tau ({config.gamma})")
    ax.set_xlabel("excess comp-sum risk")
    ax.set_title(f"tau = {tau}", fontsize=9)
    ax.set_xlim(0, min(x[-1], 1.5))
  axes[0].set_ylabel("excess 0-1 risk")
  axes[0].legend(fontsize=7)
  fig.suptitle("Comp-sum H-consistency bounds: every point lies under the paper's curve (Mao, Mohri, Zhong 2023)")
  save_figure(fig, workdir / "figure.png")
