"""Grokking at the edge of numerical stability: Softmax Collapse, StableMax and ⊥Grad on modular addition.

Paper [185]: Prieto, Barsbey, Mediano, Birdal, "Grokking at the Edge of Numerical Stability", ICLR 2025,
arXiv:2501.04697.

Setup (the official code's, official-code-facts.md section 5.4): all 113^2 pairs (a, b), label (a + b) mod 113, a
random 40 % training split, one-hot inputs concat(one_hot(a), one_hot(b)) (226 dims), a bias-free ReLU MLP
226 -> 200 -> 200 -> 113 with PyTorch's default init (U(±1/sqrt(fan_in))), float32 parameters, full-batch AdamW
(b1 0.9, b2 0.99, eps 1e-25), **no weight decay**, lr 0.01 (Fig. 1). The first layer is computed as the sum of two
rows of W_1 (a gather), which is exactly x @ W_1 for one-hot x. Runs, trained side by side:

  softmax_fp32   softmax cross-entropy, log-softmax in float32 (the baseline);
  softmax_fp64   the same with the log-softmax in float64 (loss cast back to float32, as the code does);
  stablemax      StableMax cross-entropy (float64, as the code), b2 = 0.999 as in Fig. 1;
  orthograd      softmax CE (float32) with ⊥AdamW (official code: renormalised ⊥Grad, then AdamW with PyTorch's
                 default b2 = 0.999, eps = 1e-8; see official-code-facts 5.3).

Softmax Collapse (SC) is measured as the official logger does: the share of training samples whose float32
sum_j exp(z_j - max z) equals 1 exactly.

Claims (paper -> measurable here):
  1. Softmax CE in float32 runs into SC: the SC share on the training set peaks >= 0.5.
  2. ... and does not grok: its final test accuracy stays near chance (<= 0.1).
  3. StableMax groks without regularisation: final test accuracy >= 0.9.
  4. ⊥Grad groks faster than the baseline: steps to 90 % test accuracy (orthograd) < (baseline, inf if never).
  5. float64 delays SC: the first step with SC share >= 0.5 comes later in float64 than in float32.

Each run has its own step budget (a finished run is frozen while the others go on). The CPU preset (2200 steps of
the two softmax runs, 300 of ⊥AdamW as in Fig. 1, 300 of StableMax; 147 s of CPU time, 461 s wall on 2 cores
shared with other jobs) reproduces
claims 1, 2, 4 and 5. Claim 3 fails at that size: at lr 0.01 StableMax has not grokked after 3000 full-batch steps
either (test accuracy ~0.001 in our run, train accuracy 1.0, no exactly-zero loss terms); the paper trains it for
80k epochs, which the `slow` (20k) and `gpu` (80k) presets do. Observed at the CPU size: the float32 SC share rises
from ~0 at step 1500 to ~0.6 at step 2000 and then falls back to ~0.12 and stays there, with test accuracy at
chance: learning has stopped.
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

from jaxlib_methods.data import modular_arithmetic
from jaxlib_methods.losses.stablemax import (
    softmax_collapse_fraction,
    softmax_cross_entropy_with_integer_labels,
    stablemax_cross_entropy,
    zero_loss_fraction,
)
from jaxlib_methods.nn.mlp import MLP
from jaxlib_methods.optim import scale_by_orthograd
from jaxlib_methods.runner import Claim, Paper, save_figure, train
from jaxlib_methods.runner.constraints import (
    Check,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    Range,
    Seed,
)

PAPER = Paper(catalog_id=185, title="Grokking at the Edge of Numerical Stability", year=2025, arxiv="2501.04697")
DEMO = False

RUNS = ("softmax_fp32", "softmax_fp64", "stablemax", "orthograd")


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 42                   # the official code's seed (our split differs: JAX's PRNG, not torch's)
  p: Annotated[int, Range(ge=2)] = 113
  train_fraction: Annotated[float, Range(gt=0, lt=1)] = 0.4
  width: PositiveInt = 200
  learning_rate: PositiveFloat = 0.01       # Fig. 1
  b1: Annotated[float, Range(ge=0, lt=1)] = 0.9
  b2: Annotated[float, Range(ge=0, lt=1)] = 0.99            # the code's default; the StableMax run uses b2_stablemax
  b2_stablemax: Annotated[float, Range(ge=0, lt=1)] = 0.999  # Fig. 1 StableMax run
  eps: PositiveFloat = 1e-25                # the code's AdamW eps
  steps_softmax: NonNegativeInt = 2200      # full-batch steps ("epochs") of the two softmax runs; the paper runs 80k
  steps_stablemax: NonNegativeInt = 300     # StableMax groks only after many thousand steps (80k in Fig. 1)
  steps_orthograd: NonNegativeInt = 300     # Fig. 1 runs ⊥AdamW for 300 epochs
  log_every: PositiveInt = 50
  checkpoint_every: PositiveInt = 1000
  grok_threshold: Probability = 0.9         # test accuracy that counts as "grokked"
  sc_threshold: Probability = 0.5           # SC share that counts as "in Softmax Collapse"

  CHECKS = (Check("1 <= round(train_fraction * p * p) < p * p", "both the train and the test split are non-empty"),
            Check("max(steps_softmax, steps_stablemax, steps_orthograd) >= 1", "at least one run trains"),
            Check("checkpoint_every % log_every == 0", "checkpoints are saved at the end of a logged chunk"))

PRESETS = {
    "cpu": Config(),
    "slow": Config(steps_softmax=20000, steps_stablemax=20000, log_every=250, checkpoint_every=5000),
    "gpu": Config(steps_softmax=80000, steps_stablemax=80000, log_every=500, checkpoint_every=10000),
    "tpu": Config(steps_softmax=80000, steps_stablemax=80000, log_every=500, checkpoint_every=10000),
}


def _make_optimizer(run_name: str, config: Config) -> optax.GradientTransformation:
  if run_name == "orthograd":
    # The official wrapper re-creates the base AdamW with PyTorch defaults (b2 0.999, eps 1e-8).
    return optax.chain(scale_by_orthograd(renormalize=True), optax.adamw(config.learning_rate, b1=config.b1,
                                                                          b2=0.999, eps=1e-8, weight_decay=0.0))
  b2 = config.b2_stablemax if run_name == "stablemax" else config.b2
  return optax.adamw(config.learning_rate, b1=config.b1, b2=b2, eps=config.eps, weight_decay=0.0)


def _per_example_loss(run_name: str, logits: jax.Array, labels: jax.Array) -> jax.Array:
  if run_name == "stablemax":
    return stablemax_cross_entropy(logits, labels, compute_dtype=jnp.float64)
  if run_name == "softmax_fp64":
    return softmax_cross_entropy_with_integer_labels(logits, labels, compute_dtype=jnp.float64).astype(jnp.float32)
  return softmax_cross_entropy_with_integer_labels(logits, labels)


def run(config: Config, workdir: pathlib.Path) -> dict:
  with jax.enable_x64(True):  # float64 is used only where a run asks for it; params and data stay float32
    return _run(config, pathlib.Path(workdir))


def _run(config: Config, workdir: pathlib.Path) -> dict:
  p = config.p
  ds = modular_arithmetic(jax.random.key(config.seed), p, train_fraction=config.train_fraction,
                          encoding="tokens")
  a_tr, b_tr, y_tr = ds.x_train[:, 0], ds.x_train[:, 1], ds.y_train
  a_te, b_te, y_te = ds.x_test[:, 0], ds.x_test[:, 1], ds.y_test

  model = MLP(2 * p, config.width, p, num_hidden_layers=1, init_distribution="torch_uniform", use_bias=False,
              param_dtype=jnp.float32, rngs=nnx.Rngs(config.seed))
  graphdef, params0 = nnx.split(model, nnx.Param)
  params0 = jax.tree.map(lambda x: x.astype(jnp.float32), params0)

  def apply(params, a, b):
    m = nnx.merge(graphdef, params)
    w1 = m.input_layer.kernel[...]
    h = jax.nn.relu(w1[a] + w1[p + b])              # == one_hot(a, b) @ W_1, exactly
    for layer in m.hidden_layers:
      h = jax.nn.relu(layer(h))
    return m.output_layer(h)

  txs = {r: _make_optimizer(r, config) for r in RUNS}
  budget = {"softmax_fp32": config.steps_softmax, "softmax_fp64": config.steps_softmax,
            "stablemax": config.steps_stablemax, "orthograd": config.steps_orthograd}
  for r, b in budget.items():
    if b < 0:
      raise ValueError(f"step budgets must be >= 0, got {r}: {b}")
  num_steps = max(budget.values())
  if num_steps < 1:
    raise ValueError("at least one run needs a positive step budget")
  state = {r: {"params": params0, "opt": txs[r].init(params0)} for r in RUNS}

  def one_step(s, step):
    new = {}
    for r in RUNS:
      def loss_fn(prm, r=r):
        return jnp.mean(_per_example_loss(r, apply(prm, a_tr, b_tr), y_tr)).astype(jnp.float32)

      def do_step(sr, r=r, loss_fn=loss_fn):
        g = jax.grad(loss_fn)(sr["params"])
        u, opt = txs[r].update(g, sr["opt"], sr["params"])
        return {"params": optax.apply_updates(sr["params"], u), "opt": opt}

      # A run stops at its own budget (real control flow on CPU: the skipped branch costs nothing).
      new[r] = jax.lax.cond(step < budget[r], do_step, lambda sr: sr, s[r])
    return new, None

  @jax.jit
  def advance_n(s, steps_arr):
    return jax.lax.scan(one_step, s, steps_arr)[0]

  def advance(s, start, n):
    return advance_n(s, jnp.asarray(start, jnp.int32) + jnp.arange(n, dtype=jnp.int32))

  @jax.jit
  def measure_jit(s):
    out = {}
    for r in RUNS:
      prm = s[r]["params"]
      lg_tr, lg_te = apply(prm, a_tr, b_tr), apply(prm, a_te, b_te)
      per = _per_example_loss(r, lg_tr, y_tr)
      out[f"{r}/train_loss"] = jnp.mean(per).astype(jnp.float32)
      out[f"{r}/train_acc"] = jnp.mean(jnp.argmax(lg_tr, -1) == y_tr)
      out[f"{r}/test_acc"] = jnp.mean(jnp.argmax(lg_te, -1) == y_te)
      sc_dtype = jnp.float64 if r == "softmax_fp64" else jnp.float32
      out[f"{r}/sc_fraction"] = softmax_collapse_fraction(lg_tr, compute_dtype=sc_dtype)
      out[f"{r}/zero_terms"] = zero_loss_fraction(per)
      out[f"{r}/weight_norm"] = jnp.sqrt(sum(jnp.sum(x.astype(jnp.float32) ** 2) for x in jax.tree.leaves(prm)))
      out[f"{r}/logit_max"] = jnp.mean(jnp.max(lg_tr, -1))
    return out

  def measure(s, step):
    del step
    return measure_jit(s)

  result = train(workdir=workdir, state=state, advance=advance, measure=measure, num_steps=num_steps,
                 log_every=config.log_every, checkpoint_every=config.checkpoint_every, desc="grokking")
  rows = result.rows
  steps = np.array([row["step"] for row in rows])

  def series(r, key):
    keep = steps <= budget[r]
    return np.array([row[f"{r}/{key}"] for row in rows], dtype=float)[keep]

  def first_step(r, values, threshold):
    idx = np.nonzero(values >= threshold)[0]
    return float(steps[steps <= budget[r]][idx[0]]) if len(idx) else float("inf")

  out = {"num_steps": num_steps, "budgets": budget, "n_train": int(y_tr.shape[0]), "n_test": int(y_te.shape[0]),
         "resumed_from": result.resumed_from}
  for r in RUNS:
    last = rows[-1]
    out[r] = {
        "final_test_acc": float(last[f"{r}/test_acc"]),
        "final_train_acc": float(last[f"{r}/train_acc"]),
        "final_sc_fraction": float(last[f"{r}/sc_fraction"]),
        "max_sc_fraction": float(series(r, "sc_fraction").max()),
        "final_zero_terms": float(last[f"{r}/zero_terms"]),
        "final_weight_norm": float(last[f"{r}/weight_norm"]),
        "max_test_acc": float(series(r, "test_acc").max()),
        "steps": budget[r],
        "steps_to_grok": first_step(r, series(r, "test_acc"), config.grok_threshold),
        "steps_to_sc": first_step(r, series(r, "sc_fraction"), config.sc_threshold),
        "steps_to_full_train_acc": first_step(r, series(r, "train_acc"), 1.0),
    }
  _figure(rows, steps, budget, workdir, config)
  return out


def claims(results: dict) -> list[Claim]:
  base, f64, sm, og = (results[r] for r in RUNS)
  sm_note = ("" if sm["final_test_acc"] >= 0.9 else
             f" [after {sm['steps']} steps; the paper trains 80k: run --preset slow or gpu]")
  return [
      Claim.at_least(f"softmax CE (float32) runs into Softmax Collapse: peak SC share of training samples "
                     f"(within {base['steps']} steps)", base["max_sc_fraction"], 0.5,
                     paper="-> most samples (Fig. 2)"),
      Claim.at_most("softmax CE (float32), no regularisation, does not grok: final test accuracy",
                    base["final_test_acc"], 0.1, paper="stalls near chance (Fig. 1)"),
      Claim.at_least("StableMax CE groks without regularisation: final test accuracy" + sm_note,
                     sm["final_test_acc"], 0.9, paper="~1.0 (Fig. 1)"),
      Claim.holds(f"⊥AdamW groks faster than AdamW: first step with 90% test acc "
                  f"({og['steps_to_grok']:g} vs baseline {base['steps_to_grok']:g}, inf = never)",
                  og["steps_to_grok"] < base["steps_to_grok"], paper="~300 epochs vs never (Fig. 1)",
                  detail="orthograd < baseline"),
      Claim.holds(f"float64 delays Softmax Collapse: first step with SC share >= 0.5 "
                  f"({f64['steps_to_sc']:g} in float64 vs {base['steps_to_sc']:g} in float32)",
                  f64["steps_to_sc"] > base["steps_to_sc"] and math.isfinite(base["steps_to_sc"]),
                  paper="later SC in float64 (Fig. 2)", detail="float64 step > float32 step (finite)"),
  ]


def _figure(rows, steps, budget, workdir, config):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
  labels = {"softmax_fp32": "softmax CE, float32", "softmax_fp64": "softmax CE, float64",
            "stablemax": "StableMax CE", "orthograd": "⊥AdamW (softmax CE)"}
  for r in RUNS:
    c = {"softmax_fp32": "C0", "softmax_fp64": "C1", "stablemax": "C2", "orthograd": "C3"}[r]
    keep = steps <= budget[r]
    sub = [row for row, k in zip(rows, keep) if k]
    st = steps[keep]
    axes[0].plot(st, [row[f"{r}/train_acc"] for row in sub], c, ls="--", alpha=0.6)
    axes[0].plot(st, [row[f"{r}/test_acc"] for row in sub], c, label=labels[r])
    if r != "stablemax":  # SC is a property of exp-based softmax; StableMax's loss never uses exp
      axes[1].plot(st, [row[f"{r}/sc_fraction"] for row in sub], c, label=labels[r])
    axes[2].semilogy(st, [row[f"{r}/weight_norm"] for row in sub], c, label=labels[r])
  axes[0].set_title("accuracy (solid: test, dashed: train)")
  axes[1].set_title("Softmax Collapse share (train)")
  axes[2].set_title("weight norm")
  for ax in axes:
    ax.set_xlabel("full-batch step")
  axes[0].legend(fontsize=8)
  fig.suptitle(f"Grokking at the Edge of Numerical Stability: modular addition p={config.p}, no weight decay")
  save_figure(fig, workdir / "figure.png")
