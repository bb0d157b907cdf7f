"""Why do learning rates transfer? Sharpness trajectories across widths under µP vs NTK parametrisation.

Paper [92]: Noci, Meterez, Hofmann, Orvieto, "Why do Learning Rates Transfer? Reconciling Optimization and Scaling
Limits for Deep Learning", NeurIPS 2024, arXiv:2402.17457.

Claim of the paper: under µP the sharpness lambda_max of the (preconditioned) loss Hessian follows the same
trajectory at every width ("super consistency"), which is why the optimal learning rate transfers; under the NTK
parametrisation it does not (wider nets stay lazier, sharpen less) and the optimal LR shifts.

Setup (shrunk): a 3-layer ReLU MLP (`jaxlib_methods.nn.mlp.MLP`, 2 hidden layers, no biases) at widths
32..256 in the cpu preset (µP base width = the smallest), full-batch gradient descent with MSE on a fixed random
teacher (a width-256 tanh MLP) with Gaussian inputs. Per-layer LR multipliers c (µP's SGD rule, `lr_multipliers`)
make GD on w with LR eta * c equal to GD with one LR eta on theta = w / sqrt(c); lambda_max is measured for that
preconditioned Hessian diag(sqrt c) H diag(sqrt c) (whose 2/eta is the GD stability edge) by HVP power iteration
(`jaxlib_methods.analysis.hessian_top_eigenvalue`). `num_seeds` seeds (seed s: data, teacher and init; seeds
`seed` .. `seed + num_seeds - 1`) and every LR of the grid are trained (vmapped: one compile per width) to get the
final loss per (width, seed, LR); the sharpness trajectory is recorded per seed at one LR (`sharpness_lr`) and
averaged over the seeds.

Claims (pre-registered 2026-12-03 before the judged run: cpu preset, base seed 100, i.e. seeds 100..104; development
used base seed 0 and the audit's seed 1, never seeds >= 100 at the cpu size):
  1. [paper] Super consistency under µP: the spread of the seed-mean lambda_max across widths (max/min over widths
     of its mean over the second half of training) is small (<= 1.3).
  2. [paper] Under NTK it is not: the spread exceeds that bound (> 1.3).
  3. [paper] The optimal LR under µP is the same at every width: the argmin over the LR grid of the SEED-MEAN final
     loss (a diverged seed makes the mean inf) shifts by <= 0.5 grid steps (i.e. none) from the smallest to the
     largest width.
  4. [paper] Under NTK it moves with width, beyond seed noise: per seed i the signed shift s_i = log2(argmin LR at
     the largest width / at the smallest) in grid steps; passes iff the paired 95% Student-t interval of
     s_i(NTK) - s_i(µP) (`_seed_stats.paired_ci`, 5 seeds) has its lower end > 0 AND the seed-mean-argmin shift of
     NTK minus that of µP is >= 1 grid step.
  5. [sanity] No optimum (seed-mean or any single seed's) sits at an edge of the LR grid, for either parametrisation
     at any width: the grid 0.05 x 2^k, k = 0..11 reaches 102.4 because NTK's optimum grows with width (12.8 at
     width 32, 25.6 or more at width 256; an earlier grid stopped at 12.8, the edge).
`mup_as=ntk` (a mutation) trains the µP rows with the NTK parametrisation: claim 4 then always fails (the paired
differences are all 0), and claims 1 and 3 fail wherever NTK's spread and shift are as measured below.

Robustness (claims audit, 2026-12-03): claims 3-4 used to read one argmin over a x2 LR grid from ONE seed; with
`--set seed=1` the µP optima were 0.4 / 0.4 / 0.2 / 0.2 across widths (claim 3 failed) and NTK's shift was also 1
step, so the LR-transfer claims did not separate µP from NTK beyond seed noise. Fixed 2026-12-03 as above (several
seeds, seed-mean argmin, a paired interval over seeds). Development (base seed 0, 6 seeds, cpu preset): µP
spread 1.02, NTK 1.66; the µP seed-mean optimum was 0.4 / 0.4 / 0.4 / 0.2 (claim 3 FAILED, 1 step; per-seed shifts
0, -1, -1, -1, -1, -1) while NTK's moved 12.8 -> 25.6 (paired NTK-minus-µP shift 2.33 [1.48, 3.19]); the tolerance
was left at 0.5. The seed count then went 6 -> 5 for cost alone (244 CPU-s at 6 seeds, 78 at the old single seed).
Judged run (2026-12-03, `python -m experiments run lr_transfer_sharpness --preset cpu --workdir
/tmp/rec_s24/lr_transfer_sharpness --fresh`, seeds 100..104; 251 s wall, 187 CPU-s, on the shared 2-core machine):
5/5 pass. µP spread 1.025, NTK 1.989; µP seed-mean optimum 0.4 at every width (shift 0; per-seed shifts -1, 0, -1,
0, +1); NTK 12.8 / 12.8 / 25.6 / 25.6 (shift 1; per-seed +1, +2, +1, +2, +2); NTK-minus-µP per-seed shift 1.80
[1.24, 2.36] (95% CI, 5 seeds); no optimum at a grid edge. Caveat: single-seed µP optima still wander by +-1 grid
step across widths (dev and judged alike), and in development the seed-mean µP optimum moved 1 step at width 256:
claim 3 sits on the grid's resolution; the separation from NTK (claim 4) is the robust part.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlib_methods.analysis import hessian_top_eigenvalue
from jaxlib_methods.nn.mlp import MLP
from jaxlib_methods.nn.parametrization import lr_multipliers
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading
from jaxlib_methods.runner.constraints import Check, Length, PositiveFloat, PositiveInt, Range, Seed
from jaxlib_methods.runner.sweep import memoized

from experiments._seed_stats import fmt_ci, paired_ci

PAPER = Paper(catalog_id=92, title="Why do Learning Rates Transfer? Reconciling Optimization and Scaling Limits for "
              "Deep Learning", year=2024, arxiv="2402.17457")
DEMO = False
# Two small widths 8x apart, two seeds and an LR grid (0.1 .. 12.8) that reaches NTK's optimum: at development seed 0
# claims 1, 3 and 4 pass (µP spread 1.27, NTK 1.79; NTK-minus-µP shift 1 step in both seeds) and all three fail under
# the mutation (claim 4 always does). NTK's optimum sits at the grid's top edge here (the sanity row fails at TINY).
TINY = ("widths=(16,128)", "n_train=64", "num_steps=60", "sharpness_every=20", "power_iters=5", "lr_min=0.1",
        "num_lrs=8", "num_seeds=2")
# ~20 CPU-seconds for each of the TINY and mutated runs (measured on the 2-core machine): the mutation test runs under
# -m slow (the default-run budget), its first mutation also in CI (ci_extra).
MUTATION_TEST_SLOW = True
MUTATIONS = {"mup_as_ntk": ("mup_as=ntk",)}

PARAMS = ("mup", "ntk")


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 100            # base seed: seeds seed .. seed + num_seeds - 1 (100 judged; 0 in development)
  num_seeds: PositiveInt = 5
  widths: Annotated[tuple[int, ...], Range(ge=1), Length(min=2)] = (32, 64, 128, 256)
  in_dim: PositiveInt = 16
  n_train: PositiveInt = 256
  num_steps: PositiveInt = 150
  lr_min: PositiveFloat = 0.05
  lr_grid_ratio: Annotated[float, Range(gt=1)] = 2.0
  num_lrs: PositiveInt = 12
  mup_as: Literal["mup", "ntk"] = "mup"      # the parametrisation of the "mup" rows; ntk is a mutation
  sharpness_lr: PositiveFloat = 0.4
  sharpness_every: PositiveInt = 25
  power_iters: PositiveInt = 10
  log_every: PositiveInt = 20
  mesh: MeshConfig = MeshConfig()   # devices the learning-rate grid's runs are split over

  CHECKS = (Check("list(widths) == sorted(set(widths))", "widths increase strictly (the LR shift is read from the "
                  "smallest to the largest)"),
            Check("num_steps % sharpness_every == 0", "sharpness is measured every sharpness_every steps up to "
                  "num_steps"))

PRESETS = {
    "cpu": Config(),
    "gpu": Config(widths=(128, 256, 512, 1024, 2048, 4096), n_train=2048, num_steps=2000, sharpness_every=100),
    "tpu": Config(widths=(128, 256, 512, 1024, 2048, 4096), n_train=2048, num_steps=2000, sharpness_every=100),
}


def _seeds(config: Config) -> list[int]:
  return [config.seed + i for i in range(config.num_seeds)]


def _data(seed: int, config: Config):
  key = jax.random.key(seed)
  kx, k1, k2 = jax.random.split(key, 3)
  x = jax.random.normal(kx, (config.n_train, config.in_dim))
  w1 = jax.random.normal(k1, (config.in_dim, 256)) / jnp.sqrt(config.in_dim)
  w2 = jax.random.normal(k2, (256, 1)) / jnp.sqrt(256)
  y = jnp.tanh(x @ w1) @ w2
  return x, y / jnp.std(y)


def _train(param: str, width: int, config: Config, lrs: np.ndarray, track: bool):
  """Final losses [seed, lr] of GD over the LR grid and (if `track`) the sharpness trajectory at `sharpness_lr`:
  [(step, lambda_max per seed, loss per seed)]. Seeds (data, teacher and init) and LRs are vmapped: one compile."""
  base = config.widths[0]
  if param == "mup":
    param = config.mup_as
  xs, ys, thetas = [], [], []
  for seed in _seeds(config):
    x, y = _data(seed, config)
    model = MLP(config.in_dim, width, 1, num_hidden_layers=2, parametrization=param, base_width=base,
                optimizer="sgd", rngs=nnx.Rngs(seed + 1))
    graphdef, w0 = nnx.split(model, nnx.Param)
    c = lr_multipliers(model)
    sqrt_c = jax.tree.map(lambda m, sub: jax.tree.map(lambda v: jnp.sqrt(m) * jnp.ones_like(v), sub), c, w0)
    thetas.append(jax.tree.map(lambda w, s: w / s, w0, sqrt_c))   # GD on theta with one LR == per-layer LRs on w
    xs.append(x)
    ys.append(y)
  theta0 = jax.tree.map(lambda *a: jnp.stack(a), *thetas)
  x, y = jnp.stack(xs), jnp.stack(ys)

  def loss(theta, x, y):
    w = jax.tree.map(lambda t, s: t * s, theta, sqrt_c)
    return 0.5 * jnp.mean((nnx.merge(graphdef, w)(x) - y) ** 2)

  grad = jax.grad(loss)

  def gd(theta, x, y, lr, n):
    def body(t, _):
      return jax.tree.map(lambda a, g: a - lr * g, t, grad(t, x, y)), None
    return jax.lax.scan(body, theta, None, length=n)[0]

  def final_loss(lr, theta0, x, y):   # one LR, every seed
    return jax.vmap(lambda t, xx, yy: loss(gd(t, xx, yy, lr, config.num_steps), xx, yy))(theta0, x, y)

  lr_grid = shard_leading(np.asarray(lrs, np.float32), make_mesh(config.mesh), what="learning rate")   # over the mesh
  final = jax.jit(jax.vmap(final_loss, in_axes=(0, None, None, None)))(lr_grid, theta0, x, y)   # [lr, seed]
  traj = []
  if track:
    step_chunk = jax.jit(jax.vmap(lambda t, xx, yy: gd(t, xx, yy, config.sharpness_lr, config.sharpness_every)))
    sharp = jax.jit(jax.vmap(lambda t, xx, yy: hessian_top_eigenvalue(
        lambda th: loss(th, xx, yy), t, key=jax.random.key(0), num_iters=config.power_iters)[0]))
    seed_loss = jax.jit(jax.vmap(loss))
    theta = theta0
    for s in range(0, config.num_steps + 1, config.sharpness_every):
      traj.append((s, np.asarray(sharp(theta, x, y), np.float64).tolist(),
                   np.asarray(seed_loss(theta, x, y), np.float64).tolist()))
      if s < config.num_steps:
        theta = step_chunk(theta, x, y)
  return np.asarray(final, np.float64).T, traj


def _argmin_lr(final: np.ndarray, lrs: np.ndarray) -> float:
  """The LR of the lowest final loss (a diverged, non-finite loss counts as +inf)."""
  return float(lrs[int(np.argmin(np.where(np.isfinite(final), final, np.inf)))])


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  log = MetricsLog(workdir)
  log.reset()
  lrs = config.lr_min * config.lr_grid_ratio ** np.arange(config.num_lrs)
  steps_of = lambda a, b: float(np.log(b / a) / np.log(config.lr_grid_ratio))   # signed shift in grid steps
  out = {"learning_rates": lrs.tolist(), "widths": list(config.widths), "sharpness_lr": config.sharpness_lr,
         "seeds": _seeds(config)}
  for param in PARAMS:
    res = {}
    for w in config.widths:
      sub = memoized(workdir, {"param": param, "width": w, "seeds": _seeds(config)},
                     lambda param=param, w=w: dict(zip(("final", "traj"), _train(param, w, config, lrs,
                                                                                  track=True))))
      final = np.asarray(sub["final"], dtype=float)                    # [seed, lr]
      traj = [(t[0], np.asarray(t[1], float), np.asarray(t[2], float)) for t in sub["traj"]]
      for s, lam, l in traj:
        log.log(s, **{f"{param}/w{w}/lambda_max": float(np.mean(lam)), f"{param}/w{w}/loss": float(np.mean(l))})
      mean_final = np.mean(np.where(np.isfinite(final), final, np.inf), axis=0)   # a diverged seed makes it inf
      res[str(w)] = {"final_loss": final.tolist(), "mean_final_loss": mean_final.tolist(),
                     "best_lr": _argmin_lr(mean_final, lrs),
                     "best_lr_per_seed": [_argmin_lr(f, lrs) for f in final],
                     "sharpness": [float(np.mean(t[1])) for t in traj],
                     "sharpness_per_seed": [t[1].tolist() for t in traj], "steps": [t[0] for t in traj],
                     "loss": [float(np.mean(t[2])) for t in traj]}
    half = [np.mean(r["sharpness"][len(r["sharpness"]) // 2:]) for r in res.values()]
    res["sharpness_spread"] = float(max(half) / min(half))
    lo, hi = res[str(config.widths[0])], res[str(config.widths[-1])]
    res["best_lr_shift_steps"] = steps_of(lo["best_lr"], hi["best_lr"])
    res["best_lr_shift_steps_per_seed"] = [steps_of(a, b) for a, b in zip(lo["best_lr_per_seed"],
                                                                         hi["best_lr_per_seed"])]
    res["best_lr_at_edge"] = [w for w in config.widths
                              if {res[str(w)]["best_lr"], *res[str(w)]["best_lr_per_seed"]} & {lrs[0], lrs[-1]}]
    out[param] = res
  out["ntk_minus_mup_shift"] = out["ntk"]["best_lr_shift_steps"] - out["mup"]["best_lr_shift_steps"]
  out["ntk_minus_mup_shift_ci"] = paired_ci(out["ntk"]["best_lr_shift_steps_per_seed"],
                                            out["mup"]["best_lr_shift_steps_per_seed"])
  _figure(out, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  mup, ntk = results["mup"], results["ntk"]
  best = lambda r: ", ".join(f"w{w}: {r[str(w)]['best_lr']:g}" for w in results["widths"])
  per_seed = lambda r: ", ".join(f"{s:+g}" for s in r["best_lr_shift_steps_per_seed"])
  edges = {p: results[p]["best_lr_at_edge"] for p in PARAMS}
  ci, diff = results["ntk_minus_mup_shift_ci"], results["ntk_minus_mup_shift"]
  shift_ok = diff >= 1.0 and math.isfinite(ci["lo"]) and ci["lo"] > 0
  return [
      Claim.at_most("µP super consistency: lambda_max spread across widths (max/min of late-training mean)",
                    mup["sharpness_spread"], 1.3, paper="~1 (width-independent sharpness)", kind="paper",
                    where="Sec. 3, Fig. 1 (µP)"),
      Claim.at_least("NTK: lambda_max spread across widths exceeds the µP bound", ntk["sharpness_spread"], 1.3,
                     paper="width-dependent sharpness under NTK", kind="paper", where="Sec. 3, Fig. 1 (NTK)"),
      _noted(Claim.at_most("µP: optimal LR (argmin of the seed-mean final loss) shift from the smallest to the "
                           "largest width (|grid steps|)", abs(mup["best_lr_shift_steps"]), 0.5,
                           paper="0: the optimal LR transfers", kind="paper",
                           where="Sec. 1 and Fig. 1 (LR transfer under µP)"),
             f"{best(mup)}; per-seed shifts {per_seed(mup)}"),
      _noted(Claim("NTK-minus-µP optimal-LR shift (grid steps, smallest to largest width): 95% CI lower end of "
                   "the per-seed paired differences", "the optimal LR moves with width under NTK, not under µP",
                   ci["lo"], "> 0, and the seed-mean-argmin difference >= 1", shift_ok, "paper",
                   "Sec. 1 and Fig. 1 (no transfer under NTK)"),
             f"seed-mean-argmin difference {diff:g}; paired {fmt_ci(ci, 2)}; NTK {best(ntk)}; "
             f"NTK per-seed shifts {per_seed(ntk)}"),
      _noted(Claim.holds("no optimal LR at an edge of the grid", not any(edges.values()),
                         paper="(setup check: the LR grid brackets every optimum)",
                         detail="no width at an edge (seed-mean or any seed)", kind="sanity"),
             f"at an edge: {edges}"),
  ]


def _noted(claim: Claim, note: str) -> Claim:
  """The claim with measured details appended to its tolerance text (its name stays fixed)."""
  return dataclasses.replace(claim, tolerance=f"{claim.tolerance} [{note}]")


def _figure(results, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
  lrs = np.asarray(results["learning_rates"])
  for j, param in enumerate(PARAMS):
    r = results[param]
    for i, w in enumerate(results["widths"]):
      c = plt.cm.viridis(i / max(1, len(results["widths"]) - 1))
      axes[j].plot(r[str(w)]["steps"], r[str(w)]["sharpness"], color=c, label=f"width {w}")
      fl = np.asarray(r[str(w)]["mean_final_loss"], float)
      axes[2 + j].loglog(lrs, np.where(np.isfinite(fl), fl, np.nan), "o-", color=c, label=f"width {w}")
    axes[j].axhline(2 / results["sharpness_lr"], color="k", ls=":", label="2 / eta")
    axes[j].set_title(f"{param}: preconditioned lambda_max")
    axes[j].set_xlabel("GD step")
    axes[2 + j].set_title(f"{param}: seed-mean final train loss vs LR")
    axes[2 + j].set_xlabel("learning rate")
  axes[0].legend(fontsize=8)
  fig.suptitle("Why do learning rates transfer? (Noci et al. 2024): µP vs NTK, "
               f"sharpness at eta={results['sharpness_lr']}")
  save_figure(fig, workdir / "figure.png")
