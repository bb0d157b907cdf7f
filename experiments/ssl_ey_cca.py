"""Minibatch SGD on the Eckhart-Young objective recovers the top-k canonical correlations of exact CCA.

Paper [120]: James Chapman, Lennie Wells, Ana Lawry Aguila, "Unconstrained Stochastic CCA: Unifying Multiview and
Self-Supervised Learning", ICLR 2024, arXiv:2310.01012.

Setup. Two views with known population canonical correlations: latent canonical pairs (a_i, b_i) with
corr(a_i, b_i) = rho_i for i < n_signal (rho linearly spaced from `rho_max` to `rho_min`) and 0 for the remaining
dimensions, mixed by random invertible matrices into X [n, p] and Y [n, p]. Linear CCA weights U = (U_x, U_y) are
trained with Adam on the unbiased two-batch EY loss `jaxlib_methods.losses.cca_ey_loss` (each step draws two
independent minibatches). The independent reference is exact CCA on the same training set in float64 NumPy
(SVD of S_xx^{-1/2} S_xy S_yy^{-1/2}).

Measured: the top-k canonical correlations of the learnt projections (X U_x, Y U_y) on the training set versus
exact CCA, and the final full-batch EY loss versus its closed-form minimum -sum_{i<=k} rho_i^2.

Claims (all `paper`; tolerances fixed before the run):
  1. Recovery (the paper's stochastic-CCA experiments, where CCA-EY's PCC reaches 1):
     max_i |rho_i(ours) - rho_i(exact)| <= 1e-3.
  2. The paper's metric, PCC = sum_i rho_i(ours) / sum_i rho_i(exact), >= 0.999.
  3. The full-batch EY loss reaches its closed-form minimum -sum rho_i^2 (Sec. 3) to 1e-3 relative.

Mutation `pls_in_place_of_cca` (`loss=pls_ey`): the PLS-EY loss (B = I instead of the views' covariances) learns
the top covariance directions, not the canonical ones; claims 1-3 must fail.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods.losses import cca_ey_loss, pls_ey_loss
from jaxlib_methods.runner import (Claim, MeshConfig, Paper, batch_sharding, make_mesh, replicated, save_figure,
                                   shard_leading, train)
from jaxlib_methods.runner.sharding import ShardingError
from jaxlib_methods.runner.constraints import Check, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=120, title="Unconstrained Stochastic CCA: Unifying Multiview and Self-Supervised Learning",
              year=2024, arxiv="2310.01012")
DEMO = True


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  n: PositiveInt = 4000             # training pairs
  p: PositiveInt = 8                # dimension of each view
  n_signal: PositiveInt = 4         # canonical pairs with non-zero correlation
  rho_max: Annotated[float, Range(gt=0, lt=1)] = 0.9
  rho_min: Annotated[float, Range(gt=0, lt=1)] = 0.3
  k: PositiveInt = 3                # components learnt
  batch_size: PositiveInt = 256
  steps: PositiveInt = 4000
  learning_rate: PositiveFloat = 1e-2   # Adam, cosine-decayed to 0
  init_scale: PositiveFloat = 0.1
  log_every: PositiveInt = 200
  loss: Literal["cca_ey", "pls_ey"] = "cca_ey"   # "pls_ey": the mutation (PLS's B = I in place of CCA's covariances)
  mesh: MeshConfig = MeshConfig()   # devices the examples (data set and minibatches) are split over

  CHECKS = (Check("k <= n_signal <= p", "k components are learnt among the n_signal correlated pairs of p"),
            Check("rho_min <= rho_max", "the canonical correlations run from rho_max down to rho_min"),
            Check("batch_size <= n", "batches are drawn without replacement from the n pairs"),
            Check("steps % log_every == 0", "training runs whole chunks of log_every steps"))

MUTATION_TEST_SLOW = True  # TINY + the mutated run took 8.7 s in the default suite (2 cores, 2026-12-01): under -m slow
TINY = ("n=2000", "steps=1000", "log_every=500", "learning_rate=3e-2")
MUTATIONS = {"pls_in_place_of_cca": ("loss=pls_ey",)}

PRESETS = {
    "cpu": Config(),
    "gpu": Config(n=200_000, p=64, n_signal=16, k=8, batch_size=2048, steps=20_000),
    "tpu": Config(n=200_000, p=64, n_signal=16, k=8, batch_size=2048, steps=20_000),
}


def make_data(config: Config):
  """Two views with population canonical correlations rho (float64 NumPy)."""
  if not 1 <= config.k <= config.n_signal <= config.p:
    raise ValueError(f"need 1 <= k <= n_signal <= p, got {config.k=}, {config.n_signal=}, {config.p=}")
  rng = np.random.default_rng(config.seed)
  rho = np.zeros(config.p)
  rho[:config.n_signal] = np.linspace(config.rho_max, config.rho_min, config.n_signal)
  a = rng.normal(size=(config.n, config.p))
  b = rho * a + np.sqrt(1 - rho ** 2) * rng.normal(size=(config.n, config.p))
  mx = rng.normal(size=(config.p, config.p)) + 2 * np.eye(config.p)
  my = rng.normal(size=(config.p, config.p)) + 2 * np.eye(config.p)
  return a @ mx, b @ my, rho


def exact_cca(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Canonical correlations (descending) of x [n, p], y [n, q] in float64 NumPy."""
  xc, yc = x - x.mean(0), y - y.mean(0)
  n = len(x)
  sxx, syy, sxy = xc.T @ xc / (n - 1), yc.T @ yc / (n - 1), xc.T @ yc / (n - 1)
  wx = np.linalg.inv(np.linalg.cholesky(sxx))
  wy = np.linalg.inv(np.linalg.cholesky(syy))
  return np.linalg.svd(wx @ sxy @ wy.T, compute_uv=False)


def _static(config: Config) -> Config:
  """The config with its data-only fields canonicalised (compiled programs are shared across seeds and mutations)."""
  return dataclasses.replace(config, seed=0, loss="cca_ey", rho_max=0.5, rho_min=0.5, init_scale=1.0)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _chunk(static: Config, mesh, carry, key, x, y, use_pls):
  """log_every Adam steps on the EY loss (two independent minibatches per step); `use_pls` (traced) swaps in the
  PLS-EY loss, the mutation. The minibatches are split over the mesh's (data, fsdp) devices (data parallel)."""
  opt = optax.adam(optax.cosine_decay_schedule(static.learning_rate, static.steps))

  def loss_fn(prm, idx1, idx2):
    x1, y1, x2, y2 = (jax.lax.with_sharding_constraint(v[i], batch_sharding(mesh, 2))
                      for v, i in ((x, idx1), (y, idx1), (x, idx2), (y, idx2)))
    zx1, zy1, zx2, zy2 = x1 @ prm["ux"], y1 @ prm["uy"], x2 @ prm["ux"], y2 @ prm["uy"]
    return jnp.where(use_pls, pls_ey_loss(zx1, zy1, prm["ux"], prm["uy"]), cca_ey_loss(zx1, zy1, zx2, zy2))

  def step(carry, k):
    prm, st = carry
    k1, k2 = jax.random.split(k)
    idx1 = jax.random.choice(k1, static.n, (static.batch_size,), replace=False)
    idx2 = jax.random.choice(k2, static.n, (static.batch_size,), replace=False)
    loss, g = jax.value_and_grad(loss_fn)(prm, idx1, idx2)
    upd, st = opt.update(g, st, prm)
    return (optax.apply_updates(prm, upd), st), loss

  carry, _ = jax.lax.scan(step, carry, jax.random.split(key, static.log_every))
  return carry, cca_ey_loss(x @ carry[0]["ux"], y @ carry[0]["uy"])


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  static = _static(config)
  x_np, y_np, rho_pop = make_data(config)
  rho_exact = exact_cca(x_np, y_np)
  # Standardise each view (a linear change of variables: canonical correlations are unchanged).
  x = jnp.asarray((x_np - x_np.mean(0)) / x_np.std(0), jnp.float32)
  y = jnp.asarray((y_np - y_np.mean(0)) / y_np.std(0), jnp.float32)

  rng = np.random.default_rng(config.seed + 1)
  params = {"ux": jnp.asarray(config.init_scale * rng.normal(size=(config.p, config.k)), jnp.float32),
            "uy": jnp.asarray(config.init_scale * rng.normal(size=(config.p, config.k)), jnp.float32)}
  opt = optax.adam(optax.cosine_decay_schedule(config.learning_rate, config.steps))
  key = jax.random.key(config.seed)
  use_pls = jnp.asarray(config.loss == "pls_ey")
  # Data parallel: the pairs and every minibatch are split over mesh.data x mesh.fsdp (the parameters replicated).
  mesh = make_mesh(config.mesh)
  n_dev = mesh.shape["data"] * mesh.shape["fsdp"]
  if config.batch_size % n_dev:
    raise ShardingError(f"batch_size={config.batch_size} cannot be split evenly over mesh.data x mesh.fsdp = {n_dev} "
                        f"devices; use a multiple of {n_dev} or a smaller mesh")
  x, y = shard_leading((x, y), mesh, what="training pair")

  def advance(st, start, num):   # one chunk of log_every steps (train's chunks start at multiples of log_every)
    (prm, ost), fl = _chunk(static, mesh, (st["params"], st["opt"]), jax.random.fold_in(key, start // config.log_every),
                            x, y, use_pls)
    return {"params": prm, "opt": ost, "full_batch_ey_loss": fl}

  def measure(st, step):
    return {"full_batch_ey_loss": float(st["full_batch_ey_loss"])} if step else {}

  state = {"params": params, "opt": opt.init(params), "full_batch_ey_loss": jnp.zeros((), jnp.float32)}
  state = jax.device_put(state, replicated(mesh))   # on the mesh (a resumed state is restored there too)
  # runner.train: an orbax checkpoint at the end and on a stop request; a rerun of the command resumes.
  result = train(workdir=workdir, state=state, advance=advance, measure=measure, num_steps=config.steps,
                 log_every=config.log_every, desc="ey-cca")
  curve = [r["full_batch_ey_loss"] for r in result.rows if "full_batch_ey_loss" in r]
  prm = jax.tree.map(np.asarray, result.state["params"])
  zx = np.asarray(x, np.float64) @ prm["ux"]
  zy = np.asarray(y, np.float64) @ prm["uy"]
  rho_ours = exact_cca(zx, zy)[:config.k]
  k = config.k
  results = {
      "rho_population": rho_pop[:k].tolist(),
      "rho_exact_cca": rho_exact[:k].tolist(),
      "rho_ey_sgd": rho_ours.tolist(),
      "max_abs_rho_error": float(np.max(np.abs(rho_ours - rho_exact[:k]))),
      "pcc": float(np.sum(rho_ours) / np.sum(rho_exact[:k])),
      "final_full_batch_ey_loss": curve[-1],
      "ey_minimum_closed_form": float(-np.sum(rho_exact[:k] ** 2)),
      "ey_loss_curve": curve,
      "loss": config.loss,
  }
  _figure(results, config, workdir)
  return results


def claims(results: dict) -> list[Claim]:
  m = results["ey_minimum_closed_form"]
  return [
      Claim.at_most("max_i |rho_i(EY-SGD) - rho_i(exact CCA)| over the top-k", results["max_abs_rho_error"], 1e-3,
                    paper="SGD on the EY loss recovers the top-k CCA subspace", kind="paper",
                    where="Experiments, stochastic CCA (PCC against samples seen)"),
      Claim.at_least("PCC = sum_i rho_i(EY-SGD) / sum_i rho_i(exact CCA), the paper's metric", results["pcc"],
                     0.999, paper="-> 1 (CCA-EY captures all of the correlation)", kind="paper",
                     where="Experiments, stochastic CCA (PCC against samples seen)"),
      Claim.close("final full-batch EY loss vs its minimum -sum rho_i^2", results["final_full_batch_ey_loss"], m,
                  rtol=1e-3, paper=f"{m:.4f} (closed form)", kind="paper",
                  where="Sec. 3, the EY loss of the generalised eigenproblem (its minimum)"),
  ]


def _figure(results, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
  steps = np.arange(1, len(results["ey_loss_curve"]) + 1) * config.log_every
  gap = np.maximum(np.asarray(results["ey_loss_curve"]) - results["ey_minimum_closed_form"], 1e-12)
  axes[0].semilogy(steps, gap)
  axes[0].set_xlabel("step")
  axes[0].set_ylabel("full-batch EY loss - minimum")
  idx = np.arange(config.k)
  axes[1].bar(idx - 0.2, results["rho_exact_cca"], width=0.4, label="exact CCA (NumPy)")
  axes[1].bar(idx + 0.2, results["rho_ey_sgd"], width=0.4, label="EY + minibatch Adam")
  axes[1].set_xlabel("component")
  axes[1].set_ylabel("canonical correlation")
  axes[1].legend()
  fig.suptitle("Stochastic CCA with the Eckhart-Young loss (Chapman et al. 2024)")
  save_figure(fig, workdir / "figure.png")
