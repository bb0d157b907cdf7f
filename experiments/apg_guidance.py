"""APG: high guidance scales oversaturate under classifier-free guidance but not under adaptive projected guidance,
at comparable class-conditional accuracy, on a 2-D Gaussian mixture with an analytic (exact) denoiser.

Paper [136]: Seyedmorteza Sadat, Otmar Hilliges, Romann M. Weber, "Eliminating Oversaturation and Artifacts of High
Guidance Scales in Diffusion Models", ICLR 2025, arXiv:2410.02416.

Setup. `num_classes` classes, class c ~ N(mu_c, std^2 I) in 2-D with the means evenly spaced on a circle of radius
`radius`. The conditional and unconditional denoisers are exact (Tweedie's formula on the noised mixture:
`jaxlib_methods.sampling.gaussian_mixture_denoiser`), so nothing is learnt and every difference between the
methods is the guidance rule's. Deterministic DDIM (`jaxlib_methods.sampling.ddim_sample`) over `steps` Karras noise
levels from `sigma_max` to 0, for each guidance scale w in `scales`, with
  - CFG: `cfg_guidance` (D_u + w (D_c - D_u));
  - APG: `apg_guidance` with the config's eta, norm threshold r and reverse momentum beta (the paper's method);
  - APG with eta = 1, r = inf, beta = 0 (a sanity row: must equal CFG).
Saturation here is the sample's distance from the origin (the data's "intensity"): the mean sample norm divided by
the mean norm of true class samples (1 = the data's). Accuracy: the fraction of samples whose Bayes class under
the clean mixture is the class conditioned on. Each number is a mean over `seeds` (std across seeds is reported).
Claims (tolerances fixed before the first run):
  1. [paper] CFG oversaturates with w: the norm ratio increases with w and exceeds 1.5 at the largest w.
  2. [paper] APG does not: |norm ratio - 1| <= 0.15 at every w.
  3. [paper] APG keeps guidance's benefit: at every w > 1, APG accuracy >= CFG accuracy - 0.03, and >= the
     unguided (w = 1) accuracy + 0.05.
  4. [sanity] APG(eta = 1, r = inf, beta = 0) = CFG (max abs difference of the samples <= 1e-4).
  5. [sanity] w = 1 is exact conditional sampling: its norm ratio is within 0.03 of 1.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import pathlib
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods.data.gaussian_mixture import gaussian_mixture_posterior, make_gaussian_mixture
from jaxlib_methods.losses.consistency import karras_sigmas
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, sweep
from jaxlib_methods.runner.constraints import Check, Length, PositiveFloat, PositiveInt, Range
from jaxlib_methods.sampling import apg_guidance, apg_init, cfg_guidance, ddim_sample, gaussian_mixture_denoiser

PAPER = Paper(catalog_id=136, title="Eliminating Oversaturation and Artifacts of High Guidance Scales in Diffusion "
              "Models", year=2024, arxiv="2410.02416")
DEMO = True


@dataclasses.dataclass(frozen=True)
class Config:
  seeds: Annotated[tuple[int, ...], Range(ge=0, le=2**31 - 1), Length(min=3)] = (0, 1, 2)
  num_classes: Annotated[int, Range(ge=2, le=16)] = 4
  radius: PositiveFloat = 2.0            # class means on a circle of this radius
  std: PositiveFloat = 1.0               # class std (classes overlap: unguided accuracy ~ 0.87)
  samples: Annotated[int, Range(ge=8)] = 2000   # samples per seed and scale (split evenly over the classes)
  steps: Annotated[int, Range(ge=2)] = 128      # DDIM steps (Euler is first order: 32 steps shrink the spread by 7%)
  sigma_max: PositiveFloat = 80.0        # the EDM default (Karras et al. 2022)
  sigma_min: PositiveFloat = 0.002
  scales: Annotated[tuple[float, ...], Range(ge=1), Length(min=2)] = (1.0, 3.0, 5.0, 7.0, 10.0)
  eta: Annotated[float, Range(ge=-10, le=10)] = 0.0                 # APG's parallel weight (paper: 0)
  norm_threshold: Annotated[float, Range(ge=0)] = 2.0              # APG's r (0: no rescaling, r = inf)
  momentum: Annotated[float, Range(gt=-1, lt=1)] = -0.5            # APG's beta (negative: reverse momentum)
  mesh: MeshConfig = MeshConfig()   # devices the classes' samplers are split over (num_classes: a multiple)

  CHECKS = (Check("sigma_max > sigma_min"), Check("samples >= num_classes"), Check("scales[0] == 1.0"))

PRESETS = {"cpu": Config(), "gpu": Config(samples=100000, steps=256), "tpu": Config(samples=100000, steps=256)}
TINY = ("samples=400", "steps=12", "scales=(1.0,5.0,10.0)")
# APG with eta = 1, r = inf, beta = 0 is CFG: it oversaturates like CFG and the APG claim 2 must fail.
MUTATIONS = {"apg_is_cfg": ("eta=1.0", "norm_threshold=0", "momentum=0.0")}


def _mixture(config: Config):
  ang = 2 * np.pi * np.arange(config.num_classes) / config.num_classes
  means = config.radius * np.stack([np.cos(ang), np.sin(ang)], 1)
  return make_gaussian_mixture(np.ones(config.num_classes), means, np.full(config.num_classes, config.std))


@functools.lru_cache(maxsize=8)
def _sampler(num_classes: int, radius: float, std: float, n: int, steps: int, sigma_min: float, sigma_max: float):
  """Jitted `init(key) -> x0 [K, n, 2]` (the start noise) and `sample(w, eta, r, beta, use_cfg, x0) -> samples
  [K, n, 2]`, the classes vmapped; the rule's numbers are traced, so every rule and scale shares one compilation."""
  full = _mixture(Config(num_classes=num_classes, radius=radius, std=std))
  k = num_classes
  sig = karras_sigmas(steps, sigma_min, sigma_max)[::-1]
  sig = jnp.concatenate([sig, jnp.zeros(1, sig.dtype)])

  def one_class(c, w, eta, r, beta, use_cfg, x0):
    cond = full._replace(weights=jax.nn.one_hot(c, k, dtype=full.weights.dtype))

    def den(x, sigma, state):
      dc = gaussian_mixture_denoiser(cond, x, sigma)
      du = gaussian_mixture_denoiser(full, x, sigma)
      apg, new_state = apg_guidance(dc, du, w, eta=eta, norm_threshold=r, momentum=beta, state=state)
      return jnp.where(use_cfg, cfg_guidance(dc, du, w), apg), new_state

    x, _ = ddim_sample(den, x0, sig, apg_init(x0))
    return x

  @jax.jit
  def init(key):
    return sig[0] * jax.random.normal(key, (k, n, 2))

  @jax.jit
  def sample(w, eta, r, beta, use_cfg, x0):
    return jax.vmap(one_class, in_axes=(0, None, None, None, None, None, 0))(jnp.arange(k), w, eta, r, beta, use_cfg,
                                                                              x0)

  return init, sample


@functools.lru_cache(maxsize=8)
def _stats_fn(num_classes: int, radius: float, std: float):
  full = _mixture(Config(num_classes=num_classes, radius=radius, std=std))

  @jax.jit
  def stats(x):
    k, n = x.shape[:2]
    post = gaussian_mixture_posterior(full, x.reshape(k * n, 2)).reshape(k, n, k)
    return jnp.mean(jnp.linalg.norm(x, axis=-1)), jnp.mean(jnp.argmax(post, -1) == jnp.arange(k)[:, None])

  return stats


def _stats(config: Config, x: jax.Array, data_norm: float) -> dict:
  norm, acc = _stats_fn(config.num_classes, config.radius, config.std)(x)
  return {"norm_ratio": float(norm) / data_norm, "accuracy": float(acc)}


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  full = _mixture(config)
  # the data's mean norm from many true samples (fixed seed)
  comp = np.arange(200000) % config.num_classes
  xd = np.asarray(full.means)[comp] + config.std * np.random.default_rng(12345).normal(size=(200000, 2))
  data_norm = float(np.linalg.norm(xd, axis=1).mean())
  r_apg = config.norm_threshold if config.norm_threshold > 0 else math.inf
  rules = {"cfg": (1.0, math.inf, 0.0, True), "apg": (config.eta, r_apg, config.momentum, False),
           "apg_as_cfg": (1.0, math.inf, 0.0, False)}
  out = {"data_norm": data_norm, "scales": list(config.scales), "methods": {}}
  raw = {}
  mesh = make_mesh(config.mesh)
  for name, (eta, r, beta, cfg) in rules.items():
    init, sampler = _sampler(config.num_classes, config.radius, config.std, config.samples // config.num_classes,
                       config.steps, config.sigma_min, config.sigma_max)
    per_seed = []
    for seed in config.seeds:
      def sub(seed=seed):
        rows, xs = [], []
        # the classes' samplers are independent: each device runs its classes' share
        x0 = shard_leading(init(jax.random.key(seed)), mesh, what="class")
        for w in config.scales:
          x = sampler(w, eta, r, beta, cfg, x0)
          rows.append(_stats(config, x, data_norm))
          xs.append(np.asarray(x[:, :50]).tolist())
        return {"rows": rows, "samples": xs}
      per_seed.append(sweep.memoized(workdir, {"rule": name, "seed": seed, "eta": eta, "r": str(r), "beta": beta,
                                               "config": dataclasses.asdict(config)}, sub))
    raw[name] = per_seed
    m = {}
    for key in ("norm_ratio", "accuracy"):
      vals = np.array([[row[key] for row in s["rows"]] for s in per_seed])   # [seeds, scales]
      m[key], m[key + "_std"] = vals.mean(0).tolist(), vals.std(0).tolist()
    out["methods"][name] = m
    for i, w in enumerate(config.scales):
      log.log(i, rule=name, w=w, norm_ratio=m["norm_ratio"][i], accuracy=m["accuracy"][i])
  a = np.array(raw["apg_as_cfg"][0]["samples"])
  b = np.array(raw["cfg"][0]["samples"])
  out["apg_as_cfg_max_abs_diff"] = float(np.max(np.abs(a - b)))
  out["example_samples"] = {k: v[0]["samples"][-1] for k, v in raw.items()}
  _figure(out, config, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  cfg, apg = results["methods"]["cfg"], results["methods"]["apg"]
  ws = results["scales"]
  where = "Abstract (the parallel component causes oversaturation; APG allows high w without it)"
  inc = bool(np.all(np.diff(cfg["norm_ratio"]) > 0))
  out = [
      Claim.holds("CFG: the mean sample norm / data norm increases with the guidance scale w", inc,
                  detail=f"ratios {np.round(cfg['norm_ratio'], 3).tolist()} at w = {ws}", kind="paper", where=where,
                  paper="high guidance scales oversaturate under CFG"),
      Claim.at_least(f"CFG: norm ratio at the largest w = {ws[-1]}", cfg["norm_ratio"][-1], 1.5, kind="paper",
                     where=where, paper="oversaturation (norm grows with w)"),
      Claim.at_most("APG: max over w of |norm ratio - 1|", float(np.max(np.abs(np.array(apg["norm_ratio"]) - 1))),
                    0.15, kind="paper", where=where, paper="no oversaturation at high w"),
      Claim.at_least("APG accuracy - CFG accuracy, min over w > 1",
                     float(np.min(np.array(apg["accuracy"][1:]) - np.array(cfg["accuracy"][1:]))), -0.03,
                     kind="paper", where="Abstract (quality benefits of CFG kept, precision comparable)",
                     paper="APG keeps CFG's quality benefits"),
      Claim.at_least("APG accuracy - unguided (w = 1) accuracy, min over w > 1",
                     float(np.min(np.array(apg["accuracy"][1:])) - apg["accuracy"][0]), 0.05, kind="paper",
                     where="Abstract", paper="guidance still improves condition alignment"),
      Claim.at_most("APG(eta = 1, r = inf, beta = 0) vs CFG samples: max abs difference",
                    results["apg_as_cfg_max_abs_diff"], 1e-4, kind="sanity", paper="equal (eta = 1, r = inf, beta = 0 is CFG)"),
      Claim.at_most("w = 1 (exact conditional sampling): |norm ratio - 1|", abs(cfg["norm_ratio"][0] - 1), 0.03,
                    kind="sanity", paper="1"),
  ]
  return out


def _figure(out, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 3, figsize=(13, 4))
  ws = out["scales"]
  for name, style in (("cfg", "r-o"), ("apg", "b-s")):
    m = out["methods"][name]
    axes[0].errorbar(ws, m["norm_ratio"], yerr=m["norm_ratio_std"], fmt=style, label=name.upper())
    axes[1].errorbar(ws, m["accuracy"], yerr=m["accuracy_std"], fmt=style, label=name.upper())
  axes[0].axhline(1.0, color="k", lw=0.8, ls="--", label="data")
  axes[0].set_xlabel("guidance scale w")
  axes[0].set_ylabel("mean sample norm / data norm")
  axes[1].set_xlabel("guidance scale w")
  axes[1].set_ylabel("class-conditional accuracy (Bayes classifier)")
  for ax in axes[:2]:
    ax.legend(fontsize=8)
  for name, c in (("cfg", "r"), ("apg", "b")):
    x = np.array(out["example_samples"][name]).reshape(-1, 2)
    axes[2].scatter(x[:, 0], x[:, 1], s=4, c=c, alpha=0.5, label=f"{name.upper()} w = {ws[-1]}")
  axes[2].set_xlabel("x1")
  axes[2].set_ylabel("x2")
  axes[2].set_aspect("equal")
  axes[2].legend(fontsize=8)
  fig.subplots_adjust(wspace=0.3)
  fig.suptitle("APG vs CFG on a 2-D Gaussian mixture with exact denoisers (Sadat et al. 2024)")
  save_figure(fig, workdir / "figure.png")
