"""Layers wave 1, the last P2 toy claims (issue 18): SVFit's singular-value fine-tuning.

Papers:
  [139] Chengwei Sun et al., "SVFit: Parameter-Efficient Fine-Tuning of Large Pre-Trained Models Using Singular
        Values", 2024, arXiv:2409.05926.

SVFit (catalog row: a fine-tune of the top-r singular values recovers a target change inside the top-r singular
subspaces, not an orthogonal one): a "pretrained" weight W = Q_1 diag(lambda) Q_2^T [sv_dim, sv_dim] with a decaying
spectrum lambda_k = exp(-k / (sv_dim / 4)) (random orthogonal Q_1, Q_2 per seed). Two targets W* = W + Delta W with
||Delta W||_F = `sv_change` ||W||_F: "in", Delta W = Q_1[:, :r] diag(delta) Q_2[:, :r]^T (a rescaling of the top-r
components: what SVFit can express); "orth", the same on the next r singular directions (r..2r-1), orthogonal in the
Frobenius inner product to every u_i v_i^T, i < r. An `SVFitLinear` of rank r = `sv_rank` (sigma the only
`nnx.Param`) is fitted to y = x W* on fresh Gaussian batches with adam for `sv_steps` steps; recovery error =
||W_fit - W*||_F / ||Delta W||_F (0: recovered; 1: untouched). `sv_part=bottom` (mutation) trains the bottom-r
singular values instead of the top-r (the wrong end of the spectrum).
Parameter count (exact, a unit test): r trainable numbers per matrix against LoRA's r (m + n); at the paper's
RoBERTa-base 768 x 768 matrices, LoRA rank 8 is 12288 per matrix, 16x SVFit's 768 (all singular values), which is
the paper's "16 times fewer"; we report the count, not a claim (arithmetic cannot fail).

Claims (tolerances fixed before the first run):
  1. [139] recovery error of the in-subspace change <= 0.05 on every seed (paper: the top-r singular values "scale
     the fundamental subspaces of the matrix, facilitating rapid domain adaptation", abstract and Sec. III);
  sanity: recovery error of the orthogonal change >= 0.95 on every seed (SVFit cannot leave its subspaces);
  sanity: at init the layer equals the dense layer (max abs difference <= 1e-5) and trains exactly r numbers.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxlib_methods.nn.svfit import SVFitLinear
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading
from jaxlib_methods.runner import sweep
from jaxlib_methods.runner.constraints import Check, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=139, title="SVFit: Parameter-Efficient Fine-Tuning of Large Pre-Trained Models Using "
              "Singular Values", year=2024, arxiv="2409.05926")
ALSO_REPRODUCES = ()
DEMO = False


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=3)] = 4
  # SVFit
  sv_dim: Annotated[int, Range(ge=4)] = 32
  sv_rank: PositiveInt = 4
  sv_change: PositiveFloat = 0.3
  sv_steps: PositiveInt = 300
  sv_batch: PositiveInt = 64
  sv_lr: PositiveFloat = 0.05
  sv_part: Literal["top", "bottom"] = "top"
  mesh: MeshConfig = MeshConfig()   # devices the vmapped runs (seeds x arms) are split over

  CHECKS = (Check("2 * sv_rank <= sv_dim", "the orthogonal target uses singular directions r..2r-1"),)


PRESETS = {"cpu": Config(), "gpu": Config(seeds=8), "tpu": Config(seeds=8)}
TINY = ("sv_steps=150", "sv_dim=16")
MUTATION_TEST_SLOW = True  # baseline + mutated TINY runs: ~9 s on the loaded 2-core machine (several vmapped trainings)
MUTATIONS = {"a_svfit_bottom": ("sv_part=bottom",)}


# ---- SVFit ----------------------------------------------------------------------------------------------------------
def _svfit_layer(w: np.ndarray, r: int, part: str) -> SVFitLinear:
  layer = SVFitLinear.from_weights(jnp.asarray(w, jnp.float32), r, bias=jnp.zeros((w.shape[1],), jnp.float32))
  if part == "bottom":   # mutation: the bottom-r singular triplets are the trainable ones
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    u_r, s_r, v_r = u[:, -r:], s[-r:], vt[-r:].T
    layer.u_r[...] = jnp.asarray(u_r, jnp.float32)
    layer.v_r[...] = jnp.asarray(v_r, jnp.float32)
    layer.sigma[...] = jnp.asarray(s_r, jnp.float32)
    layer.w_e[...] = jnp.asarray(w - (u_r * s_r) @ v_r.T, jnp.float32)
  return layer


def svfit_problem(config: Config, seed: int) -> dict:
  """Float64 NumPy: the pretrained W and the two targets (in-subspace, orthogonal) of one seed."""
  rng = np.random.default_rng(seed)
  d, r = config.sv_dim, config.sv_rank
  q1, q2 = (np.linalg.qr(rng.normal(size=(d, d)))[0] for _ in range(2))
  lam = np.exp(-np.arange(d) / (d / 4))
  w = (q1 * lam) @ q2.T
  out = {"w": w}
  for name, idx in (("in", np.arange(r)), ("orth", np.arange(r, 2 * r))):
    delta = rng.normal(size=r)
    dw = (q1[:, idx] * delta) @ q2[:, idx].T
    out[name] = w + config.sv_change * np.linalg.norm(w) / np.linalg.norm(dw) * dw
  return out


def svfit_runs(config: Config) -> dict:
  probs = [svfit_problem(config, config.seed + s) for s in range(config.seeds)]
  arms = ("in", "orth")
  layers = [_svfit_layer(p["w"], config.sv_rank, config.sv_part) for p in probs for _ in arms]
  targets = np.stack([p[a] for p in probs for a in arms]).astype(np.float32)       # [runs, d, d]
  graphdef, _, _ = nnx.split(layers[0], nnx.Param, ...)
  params = jax.tree.map(lambda *xs: jnp.stack(xs), *[nnx.split(l, nnx.Param, ...)[1] for l in layers])
  rest = jax.tree.map(lambda *xs: jnp.stack(xs), *[nnx.split(l, nnx.Param, ...)[2] for l in layers])
  x0 = jax.random.normal(jax.random.key(config.seed), (16, config.sv_dim))
  init_err = max(float(jnp.max(jnp.abs(l(x0) - x0 @ jnp.asarray(p["w"], jnp.float32))))
                 for l, p in zip(layers[::2], probs))
  n_trainable = sum(v.size for v in jax.tree.leaves(nnx.state(layers[0], nnx.Param)))
  tx = optax.adam(config.sv_lr)

  def train(params, rest, target, key):
    def step(carry, k):
      p, opt = carry
      x = jax.random.normal(k, (config.sv_batch, config.sv_dim))
      loss = lambda p: jnp.mean((nnx.merge(graphdef, p, rest)(x) - x @ target) ** 2)
      l, g = jax.value_and_grad(loss)(p)
      u, opt = tx.update(g, opt, p)
      return (optax.apply_updates(p, u), opt), l
    (p, _), losses = jax.lax.scan(step, (params, tx.init(params)), jax.random.split(key, config.sv_steps))
    return nnx.merge(graphdef, p, rest).merged_kernel(), losses

  keys = jax.random.split(jax.random.key(config.seed + 1), len(layers))
  runs = shard_leading((params, rest, jnp.asarray(targets), keys), make_mesh(config.mesh), what="run")
  fitted, losses = jax.device_get(jax.jit(jax.vmap(train))(*runs))
  fitted = np.asarray(fitted, np.float64).reshape(config.seeds, len(arms), config.sv_dim, config.sv_dim)
  losses = np.asarray(losses).reshape(config.seeds, len(arms), -1)
  out = {"init_max_abs_err": init_err, "trainable": int(n_trainable), "rank": config.sv_rank,
         "lora_params": config.sv_rank * 2 * config.sv_dim}
  for j, a in enumerate(arms):
    out[f"recovery_err_{a}"] = [float(np.linalg.norm(fitted[s, j] - probs[s][a]) /
                                      np.linalg.norm(probs[s][a] - probs[s]["w"])) for s in range(config.seeds)]
    out[f"loss_{a}"] = losses[:, j].mean(0)[:: max(1, config.sv_steps // 100)].tolist()
  return out


# ---- run / claims ---------------------------------------------------------------------------------------------------
def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  part = lambda name, fn: sweep.memoized(workdir, {"part": name}, fn)
  sv = part("svfit", lambda: svfit_runs(config))
  for s in range(config.seeds):
    log.log(s, svfit_err_in=sv["recovery_err_in"][s], svfit_err_orth=sv["recovery_err_orth"][s])
  out = {"svfit": sv}
  _figure(out, config, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  sv = results["svfit"]
  return [
      Claim.at_most("[139] SVFit (top-r singular values only) recovery error of a change inside the top-r singular "
                    "subspaces, max over seeds", max(sv["recovery_err_in"]), 0.05,
                    paper="the trained top-r singular values rescale the fundamental subspaces", kind="paper",
                    where="Abstract and Sec. III (W = W_r + W_e, only the top-r singular values trained) [139]"),
      Claim.at_least("[139] SVFit recovery error of a change orthogonal to its subspaces, min over seeds",
                     min(sv["recovery_err_orth"]), 0.95, kind="sanity"),
      Claim.at_most("[139] SVFit layer at init vs the dense layer: max abs output difference",
                    sv["init_max_abs_err"], 1e-5, kind="sanity"),
      Claim.holds(f"[139] SVFit trains exactly r = {sv['rank']} numbers (LoRA at the same rank: {sv['lora_params']})",
                  sv["trainable"] == sv["rank"], kind="sanity"),
  ]


def _figure(out, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
  sv = out["svfit"]
  for a in ("in", "orth"):
    axes[0].semilogy(sv[f"loss_{a}"], label=f"target change: {a}")
  axes[0].set_xlabel(f"step / {max(1, config.sv_steps // 100)}")
  axes[0].set_ylabel("train MSE (mean over seeds)")
  axes[0].legend(fontsize=7)
  axes[0].set_title(f"[139] SVFit r={config.sv_rank} ({config.sv_part}), d={config.sv_dim}", fontsize=9)
  xs = np.arange(config.seeds)
  axes[1].bar(xs - 0.2, sv["recovery_err_in"], 0.4, label="in top-r subspaces")
  axes[1].bar(xs + 0.2, sv["recovery_err_orth"], 0.4, label="orthogonal")
  axes[1].set_xlabel("seed")
  axes[1].set_ylabel("||W_fit - W*|| / ||Delta W||")
  axes[1].legend(fontsize=7)
  fig.suptitle("Layers wave 1 P2b")
  save_figure(fig, workdir / "figure.png")
