"""Grokking as the transition from lazy to rich training dynamics: a two-layer network with output scale alpha.

Paper [192]: Kumar, Bordelon, Gershman, Pehlevan, "Grokking as the Transition from Lazy to Rich Training Dynamics",
ICLR 2024, arXiv:2310.06110.

Setup (the paper's toy as we understood it from its text, shrunk; no official code): inputs x ~ N(0, I_d); a
single-index polynomial target y = He_2(beta . x) / sqrt(2) (`jaxlib_methods.data.teacher_student`, unit variance);
a two-layer network with the paper's activation phi(h) = h + (eps/2) h^2, whose small eps makes the initial kernel
poorly aligned with the quadratic target,
    g(x; theta) = (1/sqrt(N)) sum_i a_i phi(w_i . x / sqrt(d)),   f(x) = alpha (g(x; theta) - g(x; theta_0))
trained by full-batch gradient descent, no regularisation, on L = (1 / (2 alpha^2)) mean (f - y)^2 (the 1/alpha^2
keeps the function-space speed independent of alpha; Chizat, Oyallon, Bach 2019). Large alpha = lazy: the network
fits the training set with its initial NTK, which with n = 8d < d^2/2 samples cannot learn a degree-2 polynomial,
and only generalises once features move (rich). Measured for each alpha of a grid: train and test loss over time,
and the kernel-target alignment A(K_t, y) (Cristianini et al. 2001) of the empirical NTK K_t on held-out points
(`jaxlib_methods.analysis.empirical_ntk`, `kernel_target_alignment`).

Claims:
  1. Delayed generalisation grows with laziness: the delay t_test - t_train (t_train: first step with train loss
     <= 10 % of its initial value; t_test: the same for the test loss; inf if never) is non-decreasing in alpha.
  2. The largest alpha that generalises shows grokking: t_test / t_train >= 3, while the smallest alpha has
     t_test / t_train <= 2 (no grokking in the rich regime).
     Observed at the CPU size: alpha = 0.25 generalises with the train loss, alpha = 1 groks (test loss reaches 10 %
     of its initial value about 4x later than the train loss), alpha = 2 and 4 interpolate early and their test
     loss plateaus (0.24, 0.49 of a unit-variance target) within 10k steps: the paper's eventual grokking at large
     alpha is not reached here (infinite delay, which still satisfies the monotonicity of claim 1).
  3. The test-loss drop coincides with the NTK aligning with the target: over time the alignment and the test loss
     are strongly anti-correlated (Pearson r <= -0.8) in the grokking run, and the alignment at the end exceeds the
     alignment at init.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods.analysis import empirical_ntk, kernel_target_alignment
from jaxlib_methods.data import teacher_student
from jaxlib_methods.runner import Claim, MetricsLog, Paper, save_figure
from jaxlib_methods.runner.constraints import Check, Length, NonNegativeFloat, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=192, title="Grokking as the Transition from Lazy to Rich Training Dynamics", year=2023,
              arxiv="2310.06110")
DEMO = True


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  dim: PositiveInt = 32
  n_train: PositiveInt = 256
  n_test: PositiveInt = 400
  n_ntk: Annotated[int, Range(ge=2)] = 96            # held-out points for the NTK alignment
  width: PositiveInt = 256
  eps: NonNegativeFloat = 0.2
  alphas: Annotated[tuple[float, ...], Range(gt=0), Length(min=2)] = (0.25, 1.0, 2.0, 4.0)
  learning_rate: PositiveFloat = 4.0
  num_steps: PositiveInt = 10000
  log_every: PositiveInt = 100
  train_threshold: Annotated[float, Range(gt=0, lt=1)] = 0.1
  test_threshold: Annotated[float, Range(gt=0, lt=1)] = 0.1

  CHECKS = (Check("num_steps % log_every == 0", "losses are measured every log_every steps up to num_steps"),
            Check("list(alphas) == sorted(set(alphas))", "alphas increase strictly (the claims read the trend in "
                  "alpha)"))

PRESETS = {
    "cpu": Config(),
    "gpu": Config(dim=64, n_train=1024, width=2048, alphas=(0.25, 0.5, 1.0, 2.0, 4.0, 8.0), num_steps=100000,
                  log_every=500),
    "tpu": Config(dim=64, n_train=1024, width=2048, alphas=(0.25, 0.5, 1.0, 2.0, 4.0, 8.0), num_steps=100000,
                  log_every=500),
}


def _init(key, dim, width):
  k1, k2 = jax.random.split(key)
  return {"w": jax.random.normal(k1, (width, dim)), "a": jax.random.normal(k2, (width,))}


def _g(theta, x, eps):
  """(1/sqrt(N)) sum_i a_i phi(w_i . x / sqrt(d)), phi(h) = h + (eps / 2) h^2 (eps: the initial kernel's alignment
  with a quadratic target)."""
  n, d = theta["w"].shape[0], x.shape[-1]
  h = x @ theta["w"].T / math.sqrt(d)
  return (h + 0.5 * eps * h * h) @ theta["a"] / math.sqrt(n)


def _first_below(steps, values, threshold):
  idx = np.nonzero(values <= threshold * values[0])[0]
  return float(steps[idx[0]]) if len(idx) else float("inf")


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  log = MetricsLog(workdir)
  log.reset()
  key = jax.random.key(config.seed)
  ktr, kte, kntk, kinit = jax.random.split(key, 4)
  tr = teacher_student(ktr, config.n_train, config.dim, teacher="hermite", degree=2)
  te = teacher_student(kte, config.n_test, config.dim, teacher="hermite", degree=2, beta=tr.beta)
  nt = teacher_student(kntk, config.n_ntk, config.dim, teacher="hermite", degree=2, beta=tr.beta)
  scale = 1.0 / math.sqrt(2.0)                         # He_2 has variance 2
  xtr, ytr, xte, yte = tr.x, tr.y * scale, te.x, te.y * scale
  theta0 = _init(kinit, config.dim, config.width)

  out = {"alphas": list(config.alphas)}
  for alpha in config.alphas:
    def f(theta, x, alpha=alpha):
      return alpha * (_g(theta, x, config.eps) - _g(theta0, x, config.eps))

    def loss(theta, x, y, alpha=alpha, f=f):
      return 0.5 * jnp.mean((f(theta, x) - y) ** 2) / alpha ** 2

    @jax.jit
    def chunk(theta, loss=loss):
      def body(t, _):
        g = jax.grad(loss)(t, xtr, ytr)
        return jax.tree.map(lambda p, d: p - config.learning_rate * d, t, g), None
      return jax.lax.scan(body, theta, None, length=config.log_every)[0]

    @jax.jit
    def measure(theta, f=f):
      k = empirical_ntk(lambda p, x: f(p, x), theta, nt.x)
      return (jnp.mean((f(theta, xtr) - ytr) ** 2), jnp.mean((f(theta, xte) - yte) ** 2),
              kernel_target_alignment(k, nt.y * scale, centered=True))

    theta = theta0
    steps, trl, tel, ali = [], [], [], []
    for s in range(0, config.num_steps + 1, config.log_every):
      a, b, c = (float(v) for v in measure(theta))
      steps.append(s)
      trl.append(a)
      tel.append(b)
      ali.append(c)
      log.log(s, **{f"alpha{alpha:g}/train_mse": a, f"alpha{alpha:g}/test_mse": b, f"alpha{alpha:g}/alignment": c})
      if not (math.isfinite(a) and math.isfinite(b)):
        break
      if s < config.num_steps:
        theta = chunk(theta)
    steps, trl, tel, ali = map(np.asarray, (steps, trl, tel, ali))
    t_train = _first_below(steps, trl, config.train_threshold)
    t_test = _first_below(steps, tel, config.test_threshold)
    corr = float(np.corrcoef(ali, tel)[0, 1]) if np.std(ali) > 0 and np.std(tel) > 0 else float("nan")
    out[f"{alpha:g}"] = {
        "steps": steps.tolist(), "train_mse": trl.tolist(), "test_mse": tel.tolist(), "alignment": ali.tolist(),
        "t_train": t_train, "t_test": t_test, "delay": t_test - t_train,
        "ratio": t_test / t_train if t_train > 0 else float("nan"),
        "alignment_test_corr": corr, "alignment_init": float(ali[0]), "alignment_final": float(ali[-1]),
    }
  _figure(out, workdir, config)
  return out


def claims(results: dict) -> list[Claim]:
  alphas = results["alphas"]
  runs = [results[f"{a:g}"] for a in alphas]
  delays = [r["delay"] for r in runs]
  mono = all(d2 >= d1 for d1, d2 in zip(delays, delays[1:]))
  groks = [(a, r) for a, r in zip(alphas, runs) if math.isfinite(r["t_test"])]
  a_g, r_g = groks[-1] if groks else (alphas[-1], runs[-1])
  small = runs[0]
  return [
      Claim.holds("delay t_test - t_train non-decreasing in alpha ("
                  + ", ".join(f"{a:g}: {d:g}" for a, d in zip(alphas, delays)) + ")",
                  mono, paper="grows with laziness (Fig. 2)", detail="non-decreasing (inf = never generalised)"),
      Claim.at_least(f"grokking at alpha={a_g:g}: t_test / t_train", r_g["ratio"], 3.0,
                     paper="test loss drops long after train loss"),
      Claim.at_most(f"no grokking at the richest alpha={alphas[0]:g}: t_test / t_train", small["ratio"], 2.0,
                    paper="train and test drop together"),
      Claim.at_most(f"alpha={a_g:g}: Pearson r(NTK-target alignment, test loss) over time",
                    r_g["alignment_test_corr"], -0.8, paper="alignment rises as test loss drops (Fig. 4)"),
      Claim.holds(f"alpha={a_g:g}: alignment rises ({r_g['alignment_init']:.3g} -> {r_g['alignment_final']:.3g})",
                  r_g["alignment_final"] > r_g["alignment_init"], paper="rises", detail="final > init"),
  ]


def _figure(results, workdir, config):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
  for i, a in enumerate(results["alphas"]):
    r = results[f"{a:g}"]
    c = plt.cm.plasma(i / max(1, len(results["alphas"]) - 1))
    axes[0].semilogy(r["steps"], r["train_mse"], color=c, ls="--")
    axes[0].semilogy(r["steps"], r["test_mse"], color=c, label=f"alpha={a:g}")
    axes[1].plot(r["steps"], r["alignment"], color=c, label=f"alpha={a:g}")
  axes[2].plot(results["alphas"], [results[f"{a:g}"]["delay"] for a in results["alphas"]], "o-")
  axes[2].set_xscale("log")
  axes[0].set_title("MSE (solid: test, dashed: train)")
  axes[1].set_title("centered NTK-target alignment")
  axes[2].set_title("delay t_test - t_train")
  axes[0].legend(fontsize=8)
  for ax in axes[:2]:
    ax.set_xlabel("GD step")
  axes[2].set_xlabel("alpha (laziness)")
  fig.suptitle(f"Grokking as lazy-to-rich (Kumar et al. 2023): d={config.dim}, n={config.n_train}, N={config.width}")
  save_figure(fig, workdir / "figure.png")
