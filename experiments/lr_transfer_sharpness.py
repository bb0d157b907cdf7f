"""Why do learning rates transfer? Sharpness trajectories across widths under µP vs NTK parametrisation.

Paper [92]: Noci, Meterez, Hofmann, Orvieto, "Why do Learning Rates Transfer? Reconciling Optimization and Scaling
Limits for Deep Learning", NeurIPS 2024, arXiv:2402.17457.

Claim of the paper: under µP the sharpness lambda_max of the (preconditioned) loss Hessian follows the same
trajectory at every width ("super consistency"), which is why the optimal learning rate transfers; under the NTK
parametrisation it does not (wider nets stay lazier, sharpen less) and the optimal LR shifts.

Setup (shrunk): a 3-layer ReLU MLP (`jaxlib_methods.nn.mlp.MLP`, 2 hidden layers, no biases) at widths
64..512 (µP base width = the smallest), full-batch gradient descent with MSE on a fixed random teacher (a width-256
tanh MLP) with Gaussian inputs. Per-layer LR multipliers c (µP's SGD rule, `lr_multipliers`) make GD on w with LR
eta * c equal to GD with one LR eta on theta = w / sqrt(c); lambda_max is measured for that preconditioned
Hessian diag(sqrt c) H diag(sqrt c) (whose 2/eta is the GD stability edge) by HVP power iteration
(`jaxlib_methods.analysis.hessian_top_eigenvalue`). Every LR of the grid is trained (vmapped) to get the final loss
per (width, LR); the sharpness trajectory is recorded at one LR (`sharpness_lr`).

Claims:
  1. Super consistency under µP: the spread of lambda_max across widths (max/min over widths of its mean over the
     second half of training) is small (<= 1.3).
  2. ... and larger under NTK than under µP.
  3. The optimal LR under µP moves by at most one grid step (factor `lr_grid_ratio`) from the smallest to the
     largest width.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlib_methods.analysis import hessian_top_eigenvalue
from jaxlib_methods.nn.mlp import MLP
from jaxlib_methods.nn.parametrization import lr_multipliers
from jaxlib_methods.runner import Claim, MetricsLog, Paper, save_figure
from jaxlib_methods.runner.constraints import Check, Length, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=92, title="Why do Learning Rates Transfer? Reconciling Optimization and Scaling Limits for "
              "Deep Learning", year=2024, arxiv="2402.17457")
DEMO = False

PARAMS = ("mup", "ntk")


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  widths: Annotated[tuple[int, ...], Range(ge=1), Length(min=2)] = (32, 64, 128, 256)
  in_dim: PositiveInt = 16
  n_train: PositiveInt = 256
  num_steps: PositiveInt = 150
  lr_min: PositiveFloat = 0.05
  lr_grid_ratio: Annotated[float, Range(gt=1)] = 2.0
  num_lrs: PositiveInt = 9
  sharpness_lr: PositiveFloat = 0.4
  sharpness_every: PositiveInt = 25
  power_iters: PositiveInt = 10
  log_every: PositiveInt = 20

  CHECKS = (Check("list(widths) == sorted(set(widths))", "widths increase strictly (the LR shift is read from the "
                  "smallest to the largest)"),
            Check("num_steps % sharpness_every == 0", "sharpness is measured every sharpness_every steps up to "
                  "num_steps"))

PRESETS = {
    "cpu": Config(),
    "gpu": Config(widths=(128, 256, 512, 1024, 2048, 4096), n_train=2048, num_steps=2000, sharpness_every=100),
    "tpu": Config(widths=(128, 256, 512, 1024, 2048, 4096), n_train=2048, num_steps=2000, sharpness_every=100),
}


def _data(config: Config):
  key = jax.random.key(config.seed)
  kx, k1, k2 = jax.random.split(key, 3)
  x = jax.random.normal(kx, (config.n_train, config.in_dim))
  w1 = jax.random.normal(k1, (config.in_dim, 256)) / jnp.sqrt(config.in_dim)
  w2 = jax.random.normal(k2, (256, 1)) / jnp.sqrt(256)
  y = jnp.tanh(x @ w1) @ w2
  return x, y / jnp.std(y)


def _train(param: str, width: int, config: Config, x, y, lrs: np.ndarray, track: bool):
  base = config.widths[0]
  model = MLP(config.in_dim, width, 1, num_hidden_layers=2, parametrization=param, base_width=base,
              optimizer="sgd", rngs=nnx.Rngs(config.seed + 1))
  graphdef, w0 = nnx.split(model, nnx.Param)
  c = lr_multipliers(model)
  sqrt_c = jax.tree.map(lambda m, sub: jax.tree.map(lambda v: jnp.sqrt(m) * jnp.ones_like(v), sub), c, w0)
  theta0 = jax.tree.map(lambda w, s: w / s, w0, sqrt_c)        # GD on theta with one LR == per-layer LRs on w

  def loss(theta):
    w = jax.tree.map(lambda t, s: t * s, theta, sqrt_c)
    return 0.5 * jnp.mean((nnx.merge(graphdef, w)(x) - y) ** 2)

  grad = jax.grad(loss)

  def gd(theta, lr, n):
    def body(t, _):
      return jax.tree.map(lambda a, g: a - lr * g, t, grad(t)), None
    return jax.lax.scan(body, theta, None, length=n)[0]

  final = jax.jit(jax.vmap(lambda lr: loss(gd(theta0, lr, config.num_steps))))(jnp.asarray(lrs, jnp.float32))
  traj = []
  if track:
    step_chunk = jax.jit(lambda t: gd(t, config.sharpness_lr, config.sharpness_every))
    sharp = jax.jit(lambda t: hessian_top_eigenvalue(loss, t, key=jax.random.key(0),
                                                     num_iters=config.power_iters)[0])
    theta = theta0
    for s in range(0, config.num_steps + 1, config.sharpness_every):
      traj.append((s, float(sharp(theta)), float(loss(theta))))
      if s < config.num_steps:
        theta = step_chunk(theta)
  return np.asarray(final, np.float64), traj


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  log = MetricsLog(workdir)
  log.reset()
  x, y = _data(config)
  lrs = config.lr_min * config.lr_grid_ratio ** np.arange(config.num_lrs)
  out = {"learning_rates": lrs.tolist(), "widths": list(config.widths), "sharpness_lr": config.sharpness_lr}
  for param in PARAMS:
    res = {}
    for w in config.widths:
      final, traj = _train(param, w, config, x, y, lrs, track=True)
      for s, lam, l in traj:
        log.log(s, **{f"{param}/w{w}/lambda_max": lam, f"{param}/w{w}/loss": l})
      fin = np.where(np.isfinite(final), final, np.inf)
      res[str(w)] = {"final_loss": final.tolist(), "best_lr": float(lrs[int(np.argmin(fin))]),
                     "sharpness": [t[1] for t in traj], "steps": [t[0] for t in traj],
                     "loss": [t[2] for t in traj]}
    half = [np.mean(r["sharpness"][len(r["sharpness"]) // 2:]) for r in res.values()]
    res["sharpness_spread"] = float(max(half) / min(half))
    best = [res[str(w)]["best_lr"] for w in config.widths]
    res["best_lr_shift_steps"] = float(abs(np.log(best[-1] / best[0]) / np.log(config.lr_grid_ratio)))
    out[param] = res
  _figure(out, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  mup, ntk = results["mup"], results["ntk"]
  return [
      Claim.at_most("µP super consistency: lambda_max spread across widths (max/min of late-training mean)",
                    mup["sharpness_spread"], 1.3, paper="~1 (width-independent, Fig. 1)"),
      Claim.holds(f"NTK: lambda_max spread across widths larger than µP's ({ntk['sharpness_spread']:.3g} vs "
                  f"{mup['sharpness_spread']:.3g})", ntk["sharpness_spread"] > mup["sharpness_spread"],
                  paper="width-dependent under NTK (Fig. 1)", detail="ntk > mup"),
      Claim.at_most("µP: optimal LR shift from smallest to largest width (grid steps)",
                    mup["best_lr_shift_steps"], 1.0, paper="0 (LR transfers)"),
  ]


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
      fl = np.asarray(r[str(w)]["final_loss"], float)
      axes[2 + j].loglog(lrs, np.where(np.isfinite(fl), fl, np.nan), "o-", color=c, label=f"width {w}")
    axes[j].axhline(2 / results["sharpness_lr"], color="k", ls=":", label="2 / eta")
    axes[j].set_title(f"{param}: preconditioned lambda_max")
    axes[j].set_xlabel("GD step")
    axes[2 + j].set_title(f"{param}: final train loss vs LR")
    axes[2 + j].set_xlabel("learning rate")
  axes[0].legend(fontsize=8)
  fig.suptitle("Why do learning rates transfer? (Noci et al. 2024): µP vs NTK, "
               f"sharpness at eta={results['sharpness_lr']}")
  save_figure(fig, workdir / "figure.png")
