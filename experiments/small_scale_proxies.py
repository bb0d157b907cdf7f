"""Small-scale proxies for large-scale Transformer training instabilities: LR sweeps with and without qk-layernorm
and z-loss.

Paper [189]: Wortsman, Liu, Xiao, Everett, Alemi, Adlam, Co-Reyes, Gur, Kumar, Novak, Pennington, Sohl-Dickstein,
Xu, Lee, Gilmer, Kornblith, "Small-scale proxies for large-scale Transformer training instabilities", ICLR 2024,
arXiv:2309.14322.

Setup (the paper's recipe, shrunk; see official-code-facts.md section 6, no official code exists): a pre-LN
decoder-only transformer without biases (`jaxlib_methods.nn.transformer.TransformerLM`, untied embeddings, RoPE),
AdamW b = (0.9, 0.95), eps 1e-8, global-norm clipping 1.0, linear warm-up over 5 % of the steps then cosine decay,
independent weight decay 1e-4 (p <- p - lr_t u - wd * s(t) p, s the schedule's shape), trained on a synthetic
first-order Markov language with a known entropy rate (instead of C4) for every learning rate of a log grid
3e-4 .. 3e-1 (the paper's range), all LRs of one model variant vmapped in one jitted step. Variants:

  baseline   no qk-layernorm, no z-loss
  qk_ln      qk-layernorm (LayerNorm on queries and keys per head)
  qk_ln_z    qk-layernorm + z-loss 1e-4 * log^2 Z

Measured per (variant, LR): final loss (train cross-entropy averaged over the last 10 % of steps; a NaN/Inf run
counts as diverged and gets the init loss), the largest attention logit seen in any layer, the largest |log Z| of
the output logits. LR sensitivity (Sec. 2 of the paper): E_eta[min(loss(eta), loss_0) - min_eta loss(eta)] over the
grid.

Claims:
  1. Without qk-layernorm the max attention logit grows with the LR (highest-LR run >> lowest-LR run).
  2. qk-layernorm keeps attention logits small: at the highest LR its max logit is <= 0.1 x the baseline's (with a
     unit LN scale the bound is sqrt(head_dim); the learnt scales can grow, so we compare with the baseline).
  3. qk-layernorm lowers LR sensitivity (qk_ln < baseline).
  4. z-loss keeps the output logits' log Z near 0 (final mean |log Z| smaller with z-loss than without, highest LR).
At this size the paper's divergence of the baseline at high LR may not occur (it appears at larger scale); the claims
then fail and the numbers say by how much.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxlib_methods.data import entropy_rate, random_markov_language, sample_markov_sequences
from jaxlib_methods.nn.transformer import TransformerConfig, TransformerLM, next_token_loss
from jaxlib_methods.runner import Claim, MetricsLog, Paper, save_figure
from jaxlib_methods.runner.constraints import Check, NonNegativeFloat, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=189, title="Small-scale proxies for large-scale Transformer training instabilities",
              year=2023, arxiv="2309.14322")
DEMO = False

VARIANTS = ("baseline", "qk_ln", "qk_ln_z")


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  vocab_size: Annotated[int, Range(ge=2)] = 64
  concentration: PositiveFloat = 0.2        # Dirichlet concentration of the Markov language (lower = lower entropy)
  d_model: PositiveInt = 64
  num_layers: PositiveInt = 2
  num_heads: PositiveInt = 2
  batch_size: PositiveInt = 8
  seq_len: Annotated[int, Range(ge=2)] = 32
  num_steps: PositiveInt = 200
  warmup_fraction: Annotated[float, Range(ge=0, lt=1)] = 0.05
  lr_min: PositiveFloat = 3e-4
  lr_max: PositiveFloat = 3e-1
  num_lrs: Annotated[int, Range(ge=2)] = 7
  b1: Annotated[float, Range(ge=0, lt=1)] = 0.9
  b2: Annotated[float, Range(ge=0, lt=1)] = 0.95
  eps: PositiveFloat = 1e-8
  clip_norm: PositiveFloat = 1.0
  weight_decay: NonNegativeFloat = 1e-4     # independent of the LR
  z_loss_coeff: NonNegativeFloat = 1e-4
  log_every: PositiveInt = 50

  CHECKS = (Check("d_model % num_heads == 0", "attention splits d_model into heads"),
            Check("lr_min < lr_max", "the LR sweep runs from lr_min up to lr_max"))

PRESETS = {
    "cpu": Config(),
    "gpu": Config(d_model=512, num_layers=8, num_heads=4, batch_size=256, seq_len=512, num_steps=10000,
                  vocab_size=1024, num_lrs=7, log_every=500),
    "tpu": Config(d_model=512, num_layers=8, num_heads=4, batch_size=256, seq_len=512, num_steps=10000,
                  vocab_size=1024, num_lrs=7, log_every=500),
}


def learning_rates(config: Config) -> np.ndarray:
  return np.geomspace(config.lr_min, config.lr_max, config.num_lrs)


def lr_sensitivity(final_losses: np.ndarray, init_loss: float) -> float:
  """Wortsman et al. 2023 (Sec. 2): E_eta[min(loss(eta), loss_0) - min_eta loss(eta)]; non-finite = loss_0."""
  x = np.where(np.isfinite(final_losses), final_losses, init_loss)
  x = np.minimum(x, init_loss)
  return float(np.mean(x - x.min()))


def _schedule_shape(step, num_steps, warmup):
  step = jnp.asarray(step, jnp.float32)
  warm = jnp.minimum(1.0, (step + 1) / max(warmup, 1))
  prog = jnp.clip((step - warmup) / max(num_steps - warmup, 1), 0.0, 1.0)
  return jnp.where(step < warmup, warm, 0.5 * (1 + jnp.cos(jnp.pi * prog)))


def _run_variant(variant: str, config: Config, lang, lrs: np.ndarray, log: MetricsLog) -> dict:
  cfg = TransformerConfig(vocab_size=config.vocab_size, d_model=config.d_model, num_layers=config.num_layers,
                          num_heads=config.num_heads, qk_layernorm=variant != "baseline", tie_embeddings=False)
  zc = config.z_loss_coeff if variant == "qk_ln_z" else 0.0
  model = TransformerLM(cfg, rngs=nnx.Rngs(config.seed))
  graphdef, params0 = nnx.split(model, nnx.Param)
  n = len(lrs)
  params = jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + x.shape), params0)  # same init for every LR
  core = optax.chain(optax.clip_by_global_norm(config.clip_norm),
                     optax.scale_by_adam(b1=config.b1, b2=config.b2, eps=config.eps))
  opt = jax.vmap(core.init)(params)
  warmup = int(round(config.warmup_fraction * config.num_steps))
  lr_arr = jnp.asarray(lrs, jnp.float32)

  def loss_fn(p, toks):
    logits, aux = nnx.merge(graphdef, p)(toks, return_aux=True)
    total, parts = next_token_loss(logits, toks, z_loss_coeff=zc)
    return total, (parts, jnp.max(aux["max_attention_logits"]))

  def one(p, o, lr, toks, step):
    (_, (parts, amax)), g = jax.value_and_grad(loss_fn, has_aux=True)(p, toks)
    u, o = core.update(g, o, p)
    shape = _schedule_shape(step, config.num_steps, warmup)
    p = jax.tree.map(lambda w, d: w - lr * shape * d - config.weight_decay * shape * w, p, u)
    return p, o, parts["ce"], amax, parts["log_z"]

  @jax.jit
  def step_fn(p, o, step):
    toks = sample_markov_sequences(jax.random.fold_in(jax.random.key(config.seed + 1), step), lang,
                                   config.batch_size, config.seq_len)
    return jax.vmap(one, in_axes=(0, 0, 0, None, None))(p, o, lr_arr, toks, step)

  tail = max(1, config.num_steps // 10)
  ce_hist, amax_hist, logz_hist = [], [], []
  for step in range(config.num_steps):
    params, opt, ce, amax, logz = step_fn(params, opt, step)
    ce_hist.append(ce)
    amax_hist.append(amax)
    logz_hist.append(logz)
    if step % config.log_every == 0 or step == config.num_steps - 1:
      c = np.asarray(ce)
      log.log(step, **{f"{variant}/ce_lr{lr:.0e}": float(v) for lr, v in zip(lrs, c)})
  ce_hist = np.asarray(jnp.stack(ce_hist), np.float64)            # [steps, n]
  amax_hist = np.asarray(jnp.stack(amax_hist), np.float64)
  logz_hist = np.asarray(jnp.stack(logz_hist), np.float64)
  finite = np.all(np.isfinite(ce_hist), axis=0)
  final = np.where(finite, ce_hist[-tail:].mean(0), np.nan)
  return {
      "final_loss": final.tolist(),
      "max_attention_logit": np.nanmax(np.where(np.isfinite(amax_hist), amax_hist, np.nan), axis=0).tolist(),
      "max_abs_log_z": np.nanmax(np.where(np.isfinite(logz_hist), logz_hist, np.nan), axis=0).tolist(),
      "final_abs_log_z": np.where(finite, logz_hist[-tail:].mean(0), np.nan).tolist(),
      "diverged": (~finite).tolist(),
      "head_dim": cfg.head_dim,
  }


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  log = MetricsLog(workdir)
  log.reset()
  lang = random_markov_language(jax.random.key(config.seed), config.vocab_size, concentration=config.concentration)
  lrs = learning_rates(config)
  init_loss = math.log(config.vocab_size)  # ~ the loss at init (logits ~ 0)
  out = {"learning_rates": lrs.tolist(), "entropy_rate": entropy_rate(lang), "init_loss": init_loss}
  for v in VARIANTS:
    r = _run_variant(v, config, lang, lrs, log)
    r["lr_sensitivity"] = lr_sensitivity(np.asarray(r["final_loss"], float), init_loss)
    out[v] = r
  _figure(out, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  base, qk, qkz = (results[v] for v in VARIANTS)
  a_base = np.asarray(base["max_attention_logit"], float)
  a_qk = np.asarray(qk["max_attention_logit"], float)
  growth = float(a_base[-1] / max(a_base[0], 1e-9))
  return [
      Claim.at_least("no qk-LN: max attention logit grows with the LR (highest-LR run / lowest-LR run)", growth, 10.0,
                     paper="logit growth at high LR (Fig. 2)"),
      Claim.at_most("qk-LN keeps attention logits small: max logit with qk-LN / without, at the highest LR",
                    float(a_qk[-1] / max(a_base[-1], 1e-9)), 0.1, paper="no logit growth (Sec. 3.1)"),
      Claim.holds(f"qk-LN lowers LR sensitivity ({qk['lr_sensitivity']:.3g} vs baseline "
                  f"{base['lr_sensitivity']:.3g})", qk["lr_sensitivity"] < base["lr_sensitivity"],
                  paper="lower with qk-LN (Fig. 1)", detail="qk_ln < baseline"),
      Claim.holds(f"z-loss keeps log Z near 0 at the highest LR (final mean |log Z| {qkz['final_abs_log_z'][-1]:.3g} "
                  f"with vs {qk['final_abs_log_z'][-1]:.3g} without)",
                  qkz["final_abs_log_z"][-1] < qk["final_abs_log_z"][-1],
                  paper="prevents output-logit divergence (Sec. 3.2)", detail="with z-loss < without"),
  ]


def _figure(results, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  lrs = np.asarray(results["learning_rates"])
  fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
  for v in VARIANTS:
    r = results[v]
    fl = np.asarray(r["final_loss"], float)
    axes[0].semilogx(lrs, np.where(np.isfinite(fl), fl, results["init_loss"]), "o-",
                     label=f"{v} (LR sens. {r['lr_sensitivity']:.3f})")
    axes[1].loglog(lrs, r["max_attention_logit"], "o-", label=v)
    axes[2].semilogx(lrs, r["final_abs_log_z"], "o-", label=v)
  axes[0].axhline(results["entropy_rate"], color="k", ls=":", label="entropy rate")
  axes[0].set_title("final loss vs LR")
  axes[1].set_title("max attention logit")
  axes[2].set_title("final mean |log Z| of output logits")
  for ax in axes:
    ax.set_xlabel("learning rate")
  axes[0].legend(fontsize=8)
  axes[1].legend(fontsize=8)
  fig.suptitle("Small-scale proxies (Wortsman et al. 2023): LR sweeps, qk-layernorm and z-loss")
  save_figure(fig, workdir / "figure.png")
