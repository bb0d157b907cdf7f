"""CS-IB: regression with the Cauchy-Schwarz divergence information bottleneck, under non-Gaussian noise.

Paper [4]: Shujian Yu, Xi Yu, Sigurd Lokse, Robert Jenssen, Jose C. Principe, "Cauchy-Schwarz Divergence Information
Bottleneck for Regression", ICLR 2024, arXiv:2404.17951. CS-IB minimises D_CS(p(y|x) || q(y_hat|x)) + beta I_CS(x; t)
with kernel (Parzen) estimators: no Gaussian assumption on p(y|x), whereas an MSE prediction term is the KL
divergence under a Gaussian likelihood. The paper reports lower RMSE than MSE-trained and other IB regressors.

Setup. y = f(x) + eps with f a fixed random smooth function of x in R^`dim`, eps = `noise_scale` *
Student-t(`noise_df`), and a fraction `outlier_fraction` of the training targets replaced by uniform[-`outlier_scale`, `outlier_scale`]
outliers (non-Gaussian noise: the situation where an MSE prediction term, a Gaussian likelihood, is misspecified and
the kernel-based CS term is not). Kernel widths and beta follow the official script (sigma = 1 there on
standardised data; 0.5 here on our scale), beta = 0.01. The same MLP (its last hidden layer is the bottleneck t) is
trained, from the same init and batches, with (a) `jaxlib_methods.losses.cs_ib_loss` (conditional CS divergence +
beta CS-QMI), (b) mean squared error, (c) Huber and (d) absolute error, `num_seeds` seeds each (vmapped). Test RMSE
is measured against the noiseless f(x) on held-out inputs (the regression function the losses aim at). Independent
reference for the estimator: the closed form of D_CS between two Gaussians, int N(x; m1, S1) N(x; m2, S2) dx =
N(m1; m2, S1 + S2), in float64 NumPy.

What the paper claims (read 2026-12-03; only the abstract and third-party summaries were reachable, not the body or
its tables): CS-IB "move[s] away from MSE-based regression" and avoids "distributional assumptions", and shows
"superior performance on six real-world regression tasks over other popular deep IB approaches" (RMSE), plus
adversarial-robustness guarantees. The paper's "robustness" is adversarial; it does not claim robustness to outliers
in the targets, nor compare with robust losses. The comparisons below are our test of its stated direction (CS-IB's
prediction term, free of the Gaussian assumption, regresses better when p(y|x) is not Gaussian).

Arms (same MLP, same init, same batches, same Adam budget; targets standardised by the MAD as for every arm):
CS-IB (the method arm), MSE, Huber (optax.losses.huber_loss, delta = `huber_delta` = 1.0 MAD-standardised target
unit: optax's default, fixed before any run, not tuned) and MAE (|y_hat - y|, no hyperparameter). The Huber and MAE
arms were added on 2026-12-03 after the claims audit (below).

Claims (tolerances fixed before the run):
  1. (sanity) the kernel estimator `cs_divergence` on n samples of two Gaussians matches the closed-form D_CS of the
     kernel-smoothed Gaussians (covariances + sigma^2/2 I) to 5% relative (n = `estimator_n`). A closed form with no
     trained model: sanity since 2026-12-03 (it was tagged paper before).
  2. (paper) CS-IB's test RMSE is below MSE's: RMSE(MSE) - RMSE(CS-IB), the lower end of the 95% t-interval over
     seeds, > 0. (The paper's benchmarks are real data sets; this checks the direction on non-Gaussian noise.)
  3. (paper) CS-IB's test RMSE is below the Huber baseline's: RMSE(Huber) - RMSE(CS-IB), lower end of the paired 95%
     t-interval over seeds (experiments/_seed_stats.paired_ci) >= 1e-6.
  4. (paper) the same against the MAE baseline: RMSE(MAE) - RMSE(CS-IB), lower end of the paired 95% interval >= 1e-6.
  5. (sanity) D_CS is symmetric and >= 0 on the samples of claim 1.
Mutation `mse_in_place_of_cs_ib` (`method=mse`): the method arm trains with MSE; claim 2 must fail at TINY
(checked 2026-12-03 by tests/experiments/test_mutations.py).

Pre-registered for the robust-baseline comparison (written 2026-12-03 before any run with the Huber/MAE arms): the
setting is the existing uniform-outlier one unchanged (20% of targets uniform on [-10, 10], t(5) noise of scale 0.1,
2000 steps, lr 1e-3, beta 0.01, kernel widths 0.5/0.5/1.0); Huber delta 1.0 (optax default) in MAD units; the
judged run is the cpu preset, which now uses fresh seeds never used in development: `seed` = 20261203 (it draws the
data, the target function f and the 5 models' init/batch keys) and `num_seeds` = 5 (was 0 and 3); TINY resets
seed=0, num_seeds=3, the development setting. Claims 3 and 4 are judged by ONE run of the cpu preset:
  PYTHONPATH=. python -m experiments run cs_ib_regression --preset cpu --workdir /tmp/rec_s24/cs_ib_regression --fresh
and whatever it gives is reported; no tolerance or setting is changed after it. Claim 2 is kept as it was (its
tolerance unchanged; it now also runs on the fresh seeds).

What we measured before 2026-12-03 (cpu preset then: seed 0, 3 seeds): RMSE 0.555 (CS-IB) vs 0.894 (MSE), gap
interval [0.24, 0.44]; estimator 1.396 vs closed form 1.412 (1.1%). What did not work while designing it: with
Student-t(1.5) noise alone and no outliers, CS-IB was worse than MSE and unstable (RMSE 1.1-35 vs 0.73-1.9 over 3
seeds, sigma_y 0.25-1.0, lr 1e-3 and 3e-3), and with Student-t(3) noise at sigma_x = 0.5 still worse (0.68 vs 0.58):
the conditional CS divergence matches the conditional *distribution*, so its self-overlap term log int q(y_hat|x)^2
pushes neighbouring predictions apart when p(y|x) is broad; it pays off when the noise has outliers that dominate a
squared error. The uniform-outlier setting was adopted after those losses, with MSE as the only baseline.

Claims audit (2026-12-03), acted on the same day: the audit asked for a robust-loss baseline on a setting fixed
before the run; the Huber and MAE arms and claims 3-4 above are that test. Judged run (2026-12-03, the command above,
seed 20261203, 5 seeds; 285 s wall on 2 shared, loaded cores, 92 s of CPU): final test RMSE per seed
  CS-IB 0.492 0.503 0.541 0.532 0.521 (mean 0.518)   MSE 0.822 0.842 0.891 0.808 0.811 (0.835)
  Huber 0.544 0.541 0.589 0.534 0.542 (0.550)         MAE 0.506 0.508 0.527 0.488 0.497 (0.505)
Claim 2: MSE - CS-IB 0.317 [0.277, 0.357], passes. Claim 3: Huber - CS-IB 0.032 [0.007, 0.058], passes. Claim 4:
MAE - CS-IB -0.013 [-0.041, 0.015] (per seed +0.013 +0.005 -0.014 -0.044 -0.024), FAILS: the plain absolute-error
regressor is as good as CS-IB here (nominally better), so on this setting CS-IB's advantage is one over squared-error
(and, narrowly, Huber with the default delta) losses, not over robust regression as such. Estimator (claim 1): 1.396
vs closed form 1.412 (1.1%). All test-RMSE curves but MSE's were still falling at step 2000 (figure.png).
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

from experiments._seed_stats import paired_ci
from experiments._ssl_toys import mlp_apply, mlp_init
from jaxlib_methods.losses import cs_divergence, cs_ib_loss
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, sweep
from jaxlib_methods.runner.constraints import Check, NonNegativeFloat, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=4, title="Cauchy-Schwarz Divergence Information Bottleneck for Regression", year=2024,
              arxiv="2404.17951")
DEMO = False
ESTIMATOR_REPS = 4
LOSSES = ("mse", "cs_ib", "huber", "mae")   # the training losses; an arm passes its index (traced) to _chunk


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  num_seeds: Annotated[int, Range(ge=2, le=16)] = 3
  dim: PositiveInt = 4
  n_train: Annotated[int, Range(ge=16)] = 2000
  n_test: Annotated[int, Range(ge=16)] = 2000
  noise_df: Annotated[float, Range(gt=0.5, le=100)] = 5.0    # Student-t degrees of freedom
  noise_scale: NonNegativeFloat = 0.1
  outlier_fraction: Annotated[float, Range(ge=0, lt=1)] = 0.2   # targets replaced by uniform[-outlier_scale, ...]
  outlier_scale: NonNegativeFloat = 10.0
  hidden: PositiveInt = 64
  bottleneck: PositiveInt = 8
  batch_size: Annotated[int, Range(ge=4)] = 128
  steps: PositiveInt = 2000
  learning_rate: PositiveFloat = 1e-3
  beta: NonNegativeFloat = 0.01          # weight of I_CS(x; t) (the official script's default)
  sigma_x: PositiveFloat = 0.5           # kernel widths (inputs standardised; targets standardised by the MAD)
  sigma_y: PositiveFloat = 0.5
  sigma_t: PositiveFloat = 1.0
  huber_delta: PositiveFloat = 1.0      # Huber baseline, in MAD-standardised target units (optax's default)
  method: Literal["cs_ib", "mse"] = "cs_ib"   # "mse": the mutation (MSE in the method's arm)
  estimator_n: Annotated[int, Range(ge=100)] = 2000
  log_every: PositiveInt = 250
  mesh: MeshConfig = MeshConfig()   # devices the independent runs (seeds) are split over

  CHECKS = (Check("steps % log_every == 0", "training runs whole chunks of log_every steps"),
            Check("batch_size <= n_train", "batches are drawn without replacement from the training set"))

PRESETS = {
    "cpu": Config(seed=20261203, num_seeds=5),   # fresh seeds for the judged run of 2026-12-03 (see the docstring)
    "gpu": Config(n_train=50000, n_test=20000, steps=20000, batch_size=1024, hidden=256, num_seeds=5,
                  log_every=1000),
    "tpu": Config(n_train=50000, n_test=20000, steps=20000, batch_size=1024, hidden=256, num_seeds=5,
                  log_every=1000),
}

TINY = ("seed=0", "num_seeds=3", "n_train=1000", "n_test=500", "steps=500", "learning_rate=3e-3", "estimator_n=500")
MUTATIONS = {"mse_in_place_of_cs_ib": ("method=mse",)}
MUTATION_TEST_SLOW = True   # its first mutation takes 10-14 s of CPU at TINY (CI log of 2026-11-30): kept for -m slow


def gaussian_cs_divergence(m1, s1, m2, s2) -> float:
  """Closed-form D_CS(N(m1, S1) || N(m2, S2)) = log int p^2 + log int q^2 - 2 log int p q, with
  int N(x; a, A) N(x; b, B) dx = N(a; b, A + B) (float64 NumPy)."""
  def log_overlap(a, sa, b, sb):
    cov = np.asarray(sa) + np.asarray(sb)
    diff = np.asarray(a) - np.asarray(b)
    _, logdet = np.linalg.slogdet(2 * np.pi * cov)
    return -0.5 * logdet - 0.5 * diff @ np.linalg.solve(cov, diff)
  return float(log_overlap(m1, s1, m1, s1) + log_overlap(m2, s2, m2, s2) - 2 * log_overlap(m1, s1, m2, s2))


def make_data(config: Config):
  """Standardised inputs, heavy-tailed noisy targets for training and the noiseless targets for testing (NumPy)."""
  rng = np.random.default_rng(config.seed)
  w1 = rng.normal(size=(config.dim, 16)) / np.sqrt(config.dim)
  w2 = rng.normal(size=(16,)) / 4.0

  def f(x):
    return np.sin(2.0 * x @ w1) @ w2 * 2.0

  x_tr = rng.normal(size=(config.n_train, config.dim))
  x_te = rng.normal(size=(config.n_test, config.dim))
  y_tr = f(x_tr) + config.noise_scale * rng.standard_t(config.noise_df, size=config.n_train)
  outlier = rng.random(config.n_train) < config.outlier_fraction
  y_tr = np.where(outlier, rng.uniform(-config.outlier_scale, config.outlier_scale, size=config.n_train), y_tr)
  return (x_tr.astype(np.float32), y_tr.astype(np.float32), x_te.astype(np.float32),
          f(x_te).astype(np.float32))


def _static(config: Config) -> Config:
  return dataclasses.replace(config, seed=0, method="cs_ib", beta=0.0, noise_df=1.0, noise_scale=0.0)


def _apply(params, x):
  """MLP with the last hidden layer as the bottleneck t: returns (y_hat [n], t [n, bottleneck])."""
  h = x
  for layer in params[:-1]:
    h = jax.nn.relu(h @ layer["w"] + layer["b"])
  return (h @ params[-1]["w"] + params[-1]["b"])[:, 0], h


@functools.partial(jax.jit, static_argnums=0)
def _init(static: Config, keys):
  sizes = (static.dim, static.hidden, static.bottleneck, 1)
  params = jax.vmap(lambda k: mlp_init(k, sizes))(keys)
  return params, jax.vmap(optax.adam(static.learning_rate).init)(params)


@functools.partial(jax.jit, static_argnums=0)
def _chunk(static: Config, carry, keys, start, x, y, loss_id, beta, delta):
  """log_every Adam steps of every seed's model; `loss_id` (traced, an index into LOSSES) picks the training loss."""
  tx = optax.adam(static.learning_rate)
  n = x.shape[0]

  def one(prm, ost, key, step):
    idx = jax.random.choice(jax.random.fold_in(key, step), n, (static.batch_size,), replace=False)
    xb, yb = x[idx], y[idx]

    def loss_fn(p):
      y_hat, t = _apply(p, xb)
      branches = {
          "mse": lambda: jnp.mean(jnp.square(y_hat - yb)),
          "cs_ib": lambda: cs_ib_loss(xb, t, yb[:, None], y_hat[:, None], beta=beta, sigma_x=static.sigma_x,
                                      sigma_t=static.sigma_t, sigma_y=static.sigma_y),
          "huber": lambda: jnp.mean(optax.losses.huber_loss(y_hat, yb, delta=delta)),
          "mae": lambda: jnp.mean(jnp.abs(y_hat - yb)),
      }
      return jax.lax.switch(loss_id, [branches[name] for name in LOSSES])

    loss, g = jax.value_and_grad(loss_fn)(prm)
    upd, ost = tx.update(g, ost, prm)
    return optax.apply_updates(prm, upd), ost, loss

  def step(carry, s):
    prm, ost = carry
    prm, ost, loss = jax.vmap(one, in_axes=(0, 0, 0, None))(prm, ost, keys, s)
    return (prm, ost), loss

  return jax.lax.scan(step, carry, start + jnp.arange(static.log_every))


@functools.partial(jax.jit, static_argnums=0)
def _rmse(static: Config, params, x, y):
  return jax.vmap(lambda p: jnp.sqrt(jnp.mean(jnp.square(_apply(p, x)[0] - y))))(params)


@jax.jit
def _cs_both(a, b):
  """D_CS(a || b) and D_CS(b || a) with kernel width 1, in one compiled program."""
  return cs_divergence(a, b, 1.0), cs_divergence(b, a, 1.0)


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  static = _static(config)
  x_tr, y_tr, x_te, f_te = make_data(config)
  # Targets standardised by a robust scale (median absolute deviation): heavy tails would inflate a std.
  loc, scale = float(np.median(y_tr)), float(1.4826 * np.median(np.abs(y_tr - np.median(y_tr))))
  y_std = jnp.asarray((y_tr - loc) / scale)
  keys = jnp.stack([jax.random.key(int(v), impl="unsafe_rbg")
                    for v in np.random.default_rng(config.seed + 1).integers(0, 2**31 - 1, size=config.num_seeds)])
  keys = shard_leading(keys, make_mesh(config.mesh))  # the seeds' models train on their own devices
  log = MetricsLog(workdir)
  log.reset()
  arms = {"method_arm": config.method, "mse": "mse", "huber": "huber", "mae": "mae"}
  rmse, curves = {}, {}
  def train_arm(loss):
    carry, curve = _init(static, keys), []
    for i in range(config.steps // config.log_every):
      carry, losses = _chunk(static, carry, keys, i * config.log_every, jnp.asarray(x_tr), y_std,
                             jnp.int32(LOSSES.index(loss)), jnp.float32(config.beta), jnp.float32(config.huber_delta))
      r = np.asarray(_rmse(static, carry[0], jnp.asarray(x_te), jnp.asarray((f_te - loc) / scale))) * scale
      curve.append(r.tolist())
    return curve

  for arm, loss in arms.items():
    # One arm is a unit of resume: a rerun after an interruption reads its stored curves back (runner.sweep).
    curves[arm] = sweep.memoized(workdir, {"arm": arm, "loss": loss}, lambda loss=loss: train_arm(loss))
    for i, r in enumerate(curves[arm]):
      log.log((i + 1) * config.log_every, **{f"{arm}/test_rmse": float(np.mean(r))})
    rmse[arm] = curves[arm][-1]

  # The estimator against the closed form (kernel-smoothed Gaussians), averaged over independent sample sets.
  rng = np.random.default_rng(config.seed + 2)
  m1, m2 = np.zeros(2), np.array([2.0, 1.0])
  s1, s2 = np.eye(2), np.array([[1.5, 0.3], [0.3, 0.8]])
  sig = 1.0
  ests, gaps = [], []
  with jax.enable_x64(True):
    for _ in range(ESTIMATOR_REPS):
      a = jnp.asarray(rng.multivariate_normal(m1, s1, size=config.estimator_n))
      b = jnp.asarray(rng.multivariate_normal(m2, s2, size=config.estimator_n))
      d_ab, d_ba = (float(v) for v in _cs_both(a, b))
      ests.append(d_ab)
      gaps.append(abs(d_ab - d_ba) - min(d_ab, 0.0))
  est = float(np.mean(ests))
  smooth = sig ** 2 / 2 * np.eye(2)
  closed = gaussian_cs_divergence(m1, s1 + smooth, m2, s2 + smooth)
  results = {"method": config.method, "test_rmse": rmse, "rmse_curves": curves,
             # paired over seeds (the same seed gives every arm the same data, init and batches)
             "rmse_gap_mse_minus_method": paired_ci(rmse["mse"], rmse["method_arm"]),
             "rmse_gap_huber_minus_method": paired_ci(rmse["huber"], rmse["method_arm"]),
             "rmse_gap_mae_minus_method": paired_ci(rmse["mae"], rmse["method_arm"]),
             "estimator": {"n": config.estimator_n, "reps": ESTIMATOR_REPS, "kernel_sigma": sig, "estimates": ests,
                           "estimate": est, "symmetry_and_sign_violation": float(max(gaps)), "closed_form": closed,
                           "relative_error": abs(est - closed) / closed},
             "target_scale_mad": scale}
  _figure(results, config, workdir)
  return results


def claims(results: dict) -> list[Claim]:
  e = results["estimator"]
  hub, mae = results["rmse_gap_huber_minus_method"], results["rmse_gap_mae_minus_method"]
  robust = ("Abstract: 'superior performance ... over other popular deep IB approaches' without distributional "
            "assumptions (a robust-loss baseline is our stronger test, not a table of the paper)")
  return [
      Claim.at_most("kernel estimator of D_CS (mean of 4 sample sets) vs the closed form for kernel-smoothed "
                    "Gaussians: relative error",
                    e["relative_error"], 0.05, paper="consistent estimator", kind="sanity"),
      Claim.at_least("test RMSE(MSE) - RMSE(CS-IB) with outliers in the targets: lower end of the 95% interval over "
                     "seeds",
                     results["rmse_gap_mse_minus_method"]["lo"], 1e-6, paper="CS-IB has the lower RMSE", kind="paper",
                     where="Sec. 5, regression benchmarks (RMSE tables)"),
      Claim.at_least("test RMSE(Huber, delta 1 MAD unit) - RMSE(CS-IB) with outliers in the targets: lower end of "
                     "the paired 95% interval over seeds",
                     hub["lo"], 1e-6, paper="CS-IB has the lower RMSE", kind="paper", where=robust),
      Claim.at_least("test RMSE(MAE) - RMSE(CS-IB) with outliers in the targets: lower end of the paired 95% "
                     "interval over seeds",
                     mae["lo"], 1e-6, paper="CS-IB has the lower RMSE", kind="paper", where=robust),
      Claim.at_most("D_CS estimate symmetric and >= 0: max over sample sets of |D(a,b) - D(b,a)| - min(D, 0)",
                    e["symmetry_and_sign_violation"], 1e-9, paper="exact", kind="sanity"),
  ]


def _figure(results, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(1, 2, figsize=(10.5, 3.8))
  t = np.arange(1, len(results["rmse_curves"]["mse"]) + 1) * config.log_every
  names = {"method_arm": results["method"].upper().replace("_", "-"), "mse": "MSE", "huber": "Huber",
           "mae": "MAE"}
  for arm, c in results["rmse_curves"].items():
    c = np.asarray(c)
    ax[0].plot(t, c.mean(1), label=f"{names[arm]} (mean of {c.shape[1]} seeds)")
    ax[0].fill_between(t, c.min(1), c.max(1), alpha=0.2)
  ax[0].set_xlabel("step")
  ax[0].set_ylabel("test RMSE vs noiseless f(x)")
  ax[0].set_title(f"{config.outlier_fraction:.0%} outliers + t({config.noise_df:g}) noise; paper: CS-IB lowest",
                  fontsize=9)
  ax[0].legend(fontsize=8)
  e = results["estimator"]
  ax[1].bar([0, 1], [e["closed_form"], e["estimate"]], color=["tab:red", "tab:blue"])
  ax[1].set_xticks([0, 1], ["closed form", f"kernel estimate (n={e['n']}, mean of {e['reps']})"])
  ax[1].set_ylabel("D_CS (nats)")
  fig.suptitle("Cauchy-Schwarz divergence information bottleneck for regression (Yu et al. 2024)")
  save_figure(fig, workdir / "figure.png")
