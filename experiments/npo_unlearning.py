"""Gradient ascent vs NPO unlearning: catastrophic collapse versus an exponentially slower one.

Paper [182]: Ruiqi Zhang, Licong Lin, Yu Bai, Song Mei, "Negative Preference Optimization: From Catastrophic
Collapse to Effective Unlearning", COLM 2024, arXiv:2404.05868.

Setup. A K-class Gaussian-mixture problem and a one-hidden-layer MLP trained (Adam) on the whole training set: this
is the initial model pi_ref. A random `forget_fraction` of the training examples is the forget set: they are moved to a separate cluster
with random labels that the model memorises (like the fictitious-author facts of TOFU: information the rest of the
data does not imply, so forgetting it need not cost utility). Starting from
pi_ref, two runs unlearn it with plain SGD at the same step size and no retain-set term (the paper's "forget loss
only" setting, where GA collapses):
  GA   minimise mean_i log pi_theta(y_i | x_i) over the forget set        (jaxlib_methods.losses.npo.ga_loss)
  NPO  minimise mean_i -(2/beta) log sigmoid(-beta log(pi_theta / pi_ref)) (jaxlib_methods.losses.npo.npo_loss)
Measured every `log_every` steps: the forget set's mean log-likelihood, the retain-set accuracy and the clean test
accuracy ("model utility").

Claims (paper -> measurable here):
  1. GA collapses: its test accuracy falls below `collapse_fraction` x the initial one within the budget.
  2. NPO's collapse is far slower: steps-to-collapse(NPO) / steps-to-collapse(GA) >= `min_slowdown` (if NPO never
     collapses within the budget, the ratio reported is the lower bound budget / steps(GA)).
  3. GA's forget log-likelihood diverges (the paper: linearly in the steps for its simplified model; in an MLP the
     weights grow and it diverges even faster): it falls below -1e3 (or overflows) within the budget.
  4. NPO's forget log-likelihood diverges only logarithmically: over the second half of the budget it falls at
     <= 0.5x its first-half rate.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods.losses import npo
from jaxlib_methods.runner import Claim, MetricsLog, Paper, save_figure
from jaxlib_methods.runner.constraints import Check, NonNegativeFloat, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=182, title="Negative Preference Optimization: From Catastrophic Collapse to Effective "
              "Unlearning", year=2024, arxiv="2404.05868")
DEMO = True


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  num_classes: Annotated[int, Range(ge=2)] = 10
  dim: PositiveInt = 20
  separation: NonNegativeFloat = 1.5
  n_train: PositiveInt = 1000
  n_test: PositiveInt = 2000
  forget_fraction: Annotated[float, Range(gt=0, lt=1)] = 0.1
  forget_offset: PositiveFloat = 10.0       # distance of the forget cluster from the origin
  forget_spread: NonNegativeFloat = 1.0
  hidden: PositiveInt = 128
  pretrain_steps: PositiveInt = 1500
  pretrain_lr: PositiveFloat = 3e-3
  unlearn_steps: PositiveInt = 4000
  unlearn_lr: PositiveFloat = 0.005
  beta: PositiveFloat = 0.1                 # the official code's default
  collapse_fraction: Annotated[float, Range(gt=0, lt=1)] = 0.5    # collapse: test accuracy < this x the initial one
  min_slowdown: PositiveFloat = 5.0
  log_every: PositiveInt = 40

  CHECKS = (Check("unlearn_steps % log_every == 0", "unlearning runs whole chunks of log_every steps"),
            Check("1 <= round(forget_fraction * n_train) < n_train", "both the forget and the retain set are "
                  "non-empty"))

PRESETS = {
    "cpu": Config(),
    "gpu": Config(n_train=20000, n_test=20000, hidden=1024, unlearn_steps=10000, log_every=50),
    "tpu": Config(n_train=20000, n_test=20000, hidden=1024, unlearn_steps=10000, log_every=50),
}


def make_data(config: Config):
  rng = np.random.default_rng(config.seed)
  k, d = config.num_classes, config.dim
  means = rng.normal(size=(k, d)) * config.separation
  y = rng.integers(0, k, config.n_train)
  yt = rng.integers(0, k, config.n_test)
  x = (means[y] + rng.normal(size=(config.n_train, d))).astype(np.float32)
  xt = (means[yt] + rng.normal(size=(config.n_test, d))).astype(np.float32)
  forget = np.zeros(config.n_train, bool)
  forget[rng.choice(config.n_train, int(round(config.forget_fraction * config.n_train)), replace=False)] = True
  # The forget set is its own cluster (away from the class means, at distance `forget_offset`) with random labels
  # that the model must memorise: like the fictitious-author facts of the paper's TOFU benchmark, it is information
  # the rest of the data does not imply, so forgetting it need not cost utility.
  direction = rng.normal(size=d)
  direction *= config.forget_offset / np.linalg.norm(direction)
  nf = int(forget.sum())
  x[forget] = (direction + config.forget_spread * rng.normal(size=(nf, d))).astype(np.float32)
  y = np.where(forget, rng.integers(0, k, config.n_train), y)
  return x, y, xt, yt, forget


def init_mlp(key, d, h, k):
  k1, k2 = jax.random.split(key)
  return {"w1": jax.random.normal(k1, (d, h)) * np.sqrt(2.0 / d), "b1": jnp.zeros(h),
          "w2": jax.random.normal(k2, (h, k)) * np.sqrt(1.0 / h), "b2": jnp.zeros(k)}


def mlp(p, x):
  return jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]


def log_lik(p, x, y):
  return jnp.take_along_axis(jax.nn.log_softmax(mlp(p, x)), y[:, None], -1)[:, 0]


def accuracy(p, x, y):
  return jnp.mean(jnp.argmax(mlp(p, x), -1) == y)


def pretrain(config: Config, x, y):
  p = init_mlp(jax.random.PRNGKey(config.seed + 1), config.dim, config.hidden, config.num_classes)
  tx = optax.adam(config.pretrain_lr)

  @jax.jit
  def fit(p):
    def step(carry, _):
      p, s = carry
      g = jax.grad(lambda p: -jnp.mean(log_lik(p, x, y)))(p)
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), None
    (p, _), _ = jax.lax.scan(step, (p, tx.init(p)), None, length=config.pretrain_steps)
    return p

  return fit(p)


def unlearn(method: str, p_ref, config: Config, xf, yf, xr, yr, xt, yt):
  lref = log_lik(p_ref, xf, yf)

  def objective(p):
    lp = log_lik(p, xf, yf)
    if method == "ga":
      return jnp.mean(npo.ga_loss(lp))
    return jnp.mean(npo.npo_loss(lp, lref, beta=config.beta))

  @jax.jit
  def chunk(p):
    def step(p, _):
      g = jax.grad(objective)(p)
      return jax.tree.map(lambda a, b: a - config.unlearn_lr * b, p, g), None
    p, _ = jax.lax.scan(step, p, None, length=config.log_every)
    return p, (jnp.mean(log_lik(p, xf, yf)), accuracy(p, xr, yr), accuracy(p, xt, yt))

  rows = [(0, float(jnp.mean(lref)), float(accuracy(p_ref, xr, yr)), float(accuracy(p_ref, xt, yt)))]
  p = p_ref
  for i in range(config.unlearn_steps // config.log_every):
    p, (f, r, t) = chunk(p)
    if not np.isfinite(float(f)):
      break  # GA overflowed: the run has diverged, stop it
    rows.append(((i + 1) * config.log_every, float(f), float(r), float(t)))
  return rows


def _steps_to_collapse(rows, threshold):
  for step, _, _, test_acc in rows:
    if test_acc < threshold:
      return step
  return None


def _half_rates(rows):
  """Mean fall per step of the forget log-likelihood over the first and the second half of the run."""
  if len(rows) < 3:
    return float("nan"), float("nan")
  steps = np.array([r[0] for r in rows], float)
  ll = np.array([r[1] for r in rows], float)
  mid = len(rows) // 2
  first = (ll[0] - ll[mid]) / (steps[mid] - steps[0])
  second = (ll[mid] - ll[-1]) / (steps[-1] - steps[mid])
  return first, second


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  x, y, xt, yt, forget = make_data(config)
  x, xt = jnp.asarray(x), jnp.asarray(xt)
  y, yt = jnp.asarray(y), jnp.asarray(yt)
  p_ref = pretrain(config, x, y)
  f_idx, r_idx = np.where(forget)[0], np.where(~forget)[0]
  args = (x[f_idx], y[f_idx], x[r_idx], y[r_idx], xt, yt)
  log = MetricsLog(workdir)
  log.reset()
  out = {"initial_test_acc": float(accuracy(p_ref, xt, yt)), "initial_forget_loglik": None, "runs": {}}
  threshold = config.collapse_fraction * out["initial_test_acc"]
  for method in ("ga", "npo"):
    rows = unlearn(method, p_ref, config, *args)
    out["runs"][method] = {"steps": [r[0] for r in rows], "forget_loglik": [r[1] for r in rows],
                           "retain_acc": [r[2] for r in rows], "test_acc": [r[3] for r in rows]}
    out["initial_forget_loglik"] = rows[0][1]
    out[f"steps_to_collapse_{method}"] = _steps_to_collapse(rows, threshold)
    first, second = _half_rates(rows)
    out[f"forget_loglik_rate_ratio_{method}"] = float(second / first) if first > 0 else float("nan")
    out[f"final_forget_loglik_{method}"] = rows[-1][1]
    out[f"min_forget_loglik_{method}"] = min(r[1] for r in rows)
    out[f"overflowed_{method}"] = rows[-1][0] < config.unlearn_steps
    out[f"final_test_acc_{method}"] = rows[-1][3]
    for step, f, r, t in rows:
      log.log(step, **{f"{method}/forget_loglik": f, f"{method}/retain_acc": r, f"{method}/test_acc": t})
  ga, npo_steps = out["steps_to_collapse_ga"], out["steps_to_collapse_npo"]
  out["npo_collapsed"] = npo_steps is not None
  if ga:
    out["slowdown"] = (npo_steps if npo_steps else config.unlearn_steps) / ga
  else:
    out["slowdown"] = float("nan")
  out["collapse_threshold"] = threshold
  _figure(out, config, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  budget_note = "" if results["npo_collapsed"] else " (NPO did not collapse: lower bound)"
  return [
      Claim.holds("GA collapses: test accuracy falls below the threshold within the budget",
                  results["steps_to_collapse_ga"] is not None, paper="catastrophic collapse",
                  detail=f"steps = {results['steps_to_collapse_ga']}"),
      Claim.at_least("Slowdown of NPO's collapse vs GA's, steps(NPO) / steps(GA)" + budget_note,
                     results["slowdown"], 5.0, paper="exponentially slower"),
      Claim.holds("GA's forget log-likelihood diverges (< -1e3, or overflow) within the budget",
                  results["overflowed_ga"] or results["min_forget_loglik_ga"] < -1e3, paper="diverges (linearly)",
                  detail=f"min = {results['min_forget_loglik_ga']:.3g}, overflow = {results['overflowed_ga']}"),
      Claim.at_most("NPO's forget log-likelihood slows down (log-like): second-half / first-half fall rate",
                    results["forget_loglik_rate_ratio_npo"], 0.5, paper="logarithmic divergence"),
  ]


def _figure(out, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
  for m, style in (("ga", "-"), ("npo", "--")):
    r = out["runs"][m]
    axes[0].plot(r["steps"], r["forget_loglik"], style, label=m.upper())
    axes[1].plot(r["steps"], r["test_acc"], style, label=f"{m.upper()} test")
    axes[1].plot(r["steps"], r["retain_acc"], style, alpha=0.5, label=f"{m.upper()} retain")
  axes[0].set_yscale("symlog")
  axes[0].set_xlabel("unlearning step")
  axes[0].set_ylabel("forget-set mean log-likelihood (symlog)")
  axes[1].axhline(out["collapse_threshold"], color="k", lw=0.8, ls=":", label="collapse threshold")
  axes[1].set_xlabel("unlearning step")
  axes[1].set_ylabel("accuracy")
  axes[0].legend()
  axes[1].legend()
  fig.suptitle(f"GA vs NPO (beta = {config.beta}) unlearning (Zhang et al. 2024)")
  save_figure(fig, workdir / "figure.png")
