"""Analysis wave 3 (issue 21), part e: supervised dictionary learning with auxiliary covariates [146] and
general-purpose in-context learning [40], on synthetic toys.

Paper [146]: Joowon Lee, Hanbaek Lyu, Weixin Yao, "Supervised Dictionary Learning with Auxiliary Covariates", 2022,
arXiv:2206.06774.
Paper [40]: Louis Kirsch, James Harrison, Jascha Sohl-Dickstein, Luke Metz, "General-Purpose In-Context Learning by
Meta-Learning Transformers", 2022, arXiv:2212.04458.

[146] The paper's abstract: SDL learns "a class-discriminative dictionary", its block coordinate descent (BCD) finds
a stationary point, and "SDL becomes more effective when there is a discrepancy between the best reconstructive and
the best discriminative dictionaries" (simulation studies). Toy with such a discrepancy: data X in R^{p x n}
(p = `sdl_p`) is X = W_d H_d + W_n H_n + `sdl_noise` E, with orthonormal planted atoms W_d (`sdl_rank` discriminative
atoms, codes N(0, 1)) and W_n (as many nuisance atoms, codes N(0, `sdl_nuisance`^2), so the top principal directions
are the nuisance ones); `sdl_q` auxiliary covariates X' ~ N(0, I) with their own effect; labels in {0, ...,
`sdl_classes` - 1} drawn from the multinomial-logistic model a = beta*^T h_d + gamma*^T x' (class 0 the baseline,
beta* = `sdl_signal` x the polar factor of a Gaussian matrix, so every planted atom carries as much label signal,
gamma* entries N(0, 1)). `sdl_train` training and `sdl_test` test examples per
seed, `seeds` seeds vmapped. Methods at the same rank r = `sdl_rank`:
  - SDL-W (`jaxlib_methods.analysis.sdl_bcd`, mode "W", reconstruction weight xi = `sdl_xi`, `sdl_iters` sweeps,
    float64), random W_0 ~ N(0, 1/p), H_0 = W_0^+ X, beta_0 ~ N(0, 0.01), gamma_0 = 0; test prediction
    argmax [0, beta^T W^T x + gamma^T x'];
  - two-stage: unsupervised dictionary learning at rank r (its global minimiser min ||X - W H||_F^2 is the top-r
    PCA subspace, computed by SVD) followed by multinomial logistic regression on [W^T x, x'] (SciPy L-BFGS on a
    float64 NumPy transcription of the same NLL: independent of `sdl_objective`);
  - oracle: the same logistic regression on [W_d^T x, x'] (the planted atoms; an upper reference).
Claims (tolerances fixed before the cpu run):
  1. SDL test accuracy - two-stage test accuracy >= 0.1 on every seed (the paper: SDL is more effective under a
     reconstructive/discriminative discrepancy);
  2. BCD is monotone: max over sweeps and seeds of (f_{k+1} - f_k) / |f_k| <= 1e-10 (float64), and the objective
     falls by >= 30% from its initial value (the paper's BCD decreases the objective to a stationary point);
  3. SDL's dictionary is class-discriminative: RMS sine of the principal angles between span(W) and span(W_d)
     below that of the PCA dictionary by >= 0.3 (every seed);
  4. sanity: SDL's test accuracy is within 0.1 of the oracle's (mean over seeds).
Mutation `sdl_xi=10`: reconstruction dominates, SDL's W is the PCA subspace; claims 1 and 3 fail.
Measured (cpu preset, seeds 0-2, 17 s wall on the loaded 2 cores): 4/4 claims pass. Test accuracy SDL-W 0.748 /
0.724 / 0.750 vs two-stage 0.514 / 0.450 / 0.438 (min gap 0.234) vs oracle 0.764 / 0.727 / 0.762; objective falls
by 46-50%, never rises (largest relative step -6.7e-7); RMS sine to the planted atoms SDL 0.37 / 0.29 / 0.44 vs
PCA 1.00 (SDL's recovery is limited by estimating a 2-dim filter from 600 labels; with p = 20 and 400 examples, our
first setting, it was 0.64-0.78, and with a random beta* (not equal singular values) one seed's second direction
carried almost no label signal). Under `sdl_xi=10`: accuracy gap 0, sine gap 2e-6.
Not here: the paper's lifted convex problem and its low-rank projected GD (LPGD), so the catalog's "LPGD error falls
linearly to the global minimum" is not checked.

Mesh (`pytest -m slow tests/runner/test_seed_parallel.py -k analysis_wave3e`, TINY): 9/9 claims pass on 1 and on 2
simulated devices; largest relative difference 1.2e-6 (a [40] meta-training loss; [146] agrees to 7e-12).

[40] The paper (Sec. 2-4.1, Fig. 2): a black-box Transformer meta-trained on tasks made from one data set by random
linear projections and label permutations (`jaxlib_methods.data.gpicl_batch`, now with a fixed `pool_key` so that
each step draws fresh sequences from one pool of tasks) memorises its tasks when there are few, and becomes a
general-purpose in-context learner, as good on unseen tasks as on its training tasks, when there are many (~2^13 on
MNIST). Toy: the base data set is `icl_base` points of a `icl_classes`-class Gaussian mixture in R^`icl_features`
(class means of norm `icl_sep`, unit noise); sequences of T = `icl_seq` (input, previous label) tokens; the model
is a Linear embedding, `icl_layers` causal pre-norm `jaxlib_methods.nn.transformer.TransformerBlock`s (RoPE,
width `icl_d_model`, `icl_heads` heads) and a Linear readout, trained with Adam (`icl_lr`, `icl_batch` sequences,
`icl_steps` steps) on the cross-entropy of every position's label, for each pool size in `icl_tasks`, `seeds`
seeds vmapped. Evaluation on `icl_eval` sequences of the pool's own tasks (seen) and of fresh tasks (unseen),
accuracy per position; "late" = mean over the positions t >= T/2. Claims (tolerances fixed before the cpu run):
  5. memorisation: with the smallest pool, late accuracy on seen - on unseen tasks >= 0.2 (every seed);
  6. transition: unseen-task late accuracy at the largest pool - at the smallest >= 0.1 (lower end of the paired
     95% t-interval over seeds; until 2026-12-03 the mean over seeds);
  7. in-context learning at the largest pool: unseen late accuracy - unseen accuracy at position 0 >= 0.1 (lower
     end of the paired 95% t-interval over seeds; until 2026-12-03 the mean);
  8. generalisation at the largest pool: seen - unseen late accuracy <= 0.05 (every seed);
  9. sanity: unseen-task accuracy at position 0 is chance (within 0.1; mean over seeds, every pool).
Mutation `icl_tasks=4,8`: never enough tasks to generalise; claims 6-7 fail.
Measured (cpu preset, seeds 0-2; the whole experiment 238 s wall, 61 CPU-s, on the 2 cores shared at load ~16; 64 s
alone on the quiet machine, 2026-12-02):
5/5 claims passed (then judged on seed means). 4 tasks: late accuracy 0.995 / 0.942 / 0.970 on the seen tasks vs
0.486 / 0.486 / 0.502 on unseen ones (chance 0.5); 2^16 tasks: unseen late accuracy 0.723 / 0.689 / 0.571 (from
0.516 / 0.465 / 0.574 at position 0), seen 0.718 / 0.688 / 0.557. Seed 2 is still on the meta-training loss plateau
the paper describes (Sec. 4.4) after 300 steps: its in-context gain is 0.00, so claim 7 passed on the mean (0.14),
not on every seed (and fails under the interval judgment of the claims audit below). A first setting (T = 32, 500
steps, class-mean norm 2, pools 4 / 64 / 2^16, 2 seeds; 11 min wall under load) showed the same picture (64 tasks:
seen 0.89 / 0.83, unseen 0.52 / 0.50; 2^16: unseen 0.63 / 0.53) and did not fit the budget.
Claims audit (2026-12-03): claims 6 and 7 compared two settings on the seed mean, not against seed noise. Pre-
registered before the judged run: both are judged on the lower end of the paired 95% Student-t interval of the
per-seed differences (`experiments/_seed_stats.paired_ci`; the pools, resp. the positions, are evaluated on the same
seeds), with the threshold 0.1 unchanged, and no setting changed (3 seeds, the cpu preset). Claims 5 and 8 already
hold on every seed (min / max over seeds) and claim 9 is a sanity row: left as they were. From the per-seed numbers
above both were expected to fail: seed 2 has not left the plateau. Judged run (`python -m experiments run
analysis_wave3e --preset cpu --workdir /tmp/rec_s24/analysis_wave3e --fresh`, 2026-12-03, 210 s wall on the loaded 2
cores; the same per-seed numbers as above): 7/9 claims pass, claims 6 and 7 FAIL. Claim 6: per-seed differences
0.237 / 0.203 / 0.069, mean 0.170 [-0.050, 0.390]; claim 7: 0.208 / 0.224 / -0.003, mean 0.143 [-0.172, 0.457]
(95% CI, 3 seeds). With 3 seeds and one seed on the plateau, the transition and the in-context gain are not shown
against seed noise here; [40] is not reproduced at the cpu preset (the gpu preset has 8 seeds and 2000 steps).
The mutation test (`tests/experiments/test_mutations.py -k analysis_wave3e`, TINY) still passes for both mutations.
Not here: the catalog's second claim (larger accessible state => better in-context learning at a fixed parameter
count).
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.optimize as so
from flax import nnx

from experiments import _seed_stats
from jaxlib_methods.analysis import SDLParams, sdl_bcd
from jaxlib_methods.data import gpicl_batch
from jaxlib_methods.nn.transformer import TransformerBlock, TransformerConfig
from jaxlib_methods.runner import (Claim, MeshConfig, MetricsLog, Paper, make_mesh, minimize, save_figure,
                                   shard_leading, sweep)
from jaxlib_methods.runner.constraints import Check, Length, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=146, title="Supervised Dictionary Learning with Auxiliary Covariates", year=2022,
              arxiv="2206.06774")
ALSO_REPRODUCES = (Paper(catalog_id=40, title="General-Purpose In-Context Learning by Meta-Learning Transformers",
                         year=2022, arxiv="2212.04458"),)
DEMO = False
MUTATION_TEST_SLOW = True  # the TINY run still runs the SDL BCD sweeps and meta-trains transformers (> 2 s loaded)


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=1, le=16)] = 3                  # vmapped seeds
  # [146]
  sdl_p: Annotated[int, Range(ge=2, le=4096)] = 10               # data dimension p
  sdl_rank: Annotated[int, Range(ge=1, le=64)] = 2               # planted discriminative atoms = fitted rank r
  sdl_q: Annotated[int, Range(ge=0, le=64)] = 2                  # auxiliary covariates q
  sdl_classes: Annotated[int, Range(ge=2, le=16)] = 3            # label classes kappa + 1
  sdl_train: Annotated[int, Range(ge=10, le=100_000)] = 600      # training examples per seed
  sdl_test: Annotated[int, Range(ge=10, le=100_000)] = 2000      # test examples per seed
  sdl_nuisance: PositiveFloat = 2.0                              # std of the nuisance codes (discriminative: 1)
  sdl_noise: Annotated[float, Range(ge=0)] = 0.3                 # std of the isotropic noise E
  sdl_signal: PositiveFloat = 3.0                                # std of the planted beta* entries
  sdl_xi: Annotated[float, Range(ge=0)] = 0.001                  # SDL reconstruction weight xi
  sdl_iters: Annotated[int, Range(ge=1, le=1_000_000)] = 3000    # BCD sweeps
  # [40]
  # meta-training task-pool sizes (the paper's x-axis, 2^k), increasing
  icl_tasks: Annotated[tuple[int, ...], Range(ge=1, le=2**30), Length(min=2)] = (4, 2**16)
  icl_features: Annotated[int, Range(ge=1, le=256)] = 8          # N_x
  icl_classes: Annotated[int, Range(ge=2, le=16)] = 2            # N_y
  icl_base: Annotated[int, Range(ge=2, le=100_000)] = 1000       # base data set size
  icl_sep: Annotated[float, Range(ge=0)] = 3.0                   # norm of the base classes' means
  icl_seq: Annotated[int, Range(ge=2, le=1024)] = 16             # sequence length T
  icl_batch: Annotated[int, Range(ge=1, le=4096)] = 64           # sequences per meta-training step
  icl_steps: Annotated[int, Range(ge=1, le=1_000_000)] = 300     # meta-training steps (Adam)
  icl_lr: PositiveFloat = 3e-3
  icl_d_model: Annotated[int, Range(ge=4, le=1024)] = 32         # transformer width (icl_heads divides it)
  icl_layers: Annotated[int, Range(ge=1, le=24)] = 2
  icl_heads: Annotated[int, Range(ge=1, le=32)] = 4
  icl_eval: Annotated[int, Range(ge=1, le=100_000)] = 256        # evaluation sequences (seen and unseen tasks)
  mesh: MeshConfig = MeshConfig()                                # devices the vmapped seeds are split over

  CHECKS = (Check("2 * sdl_rank <= sdl_p", "the planted atoms (2 * sdl_rank orthonormal columns) need sdl_p >= "
                  "2 * sdl_rank"),
            Check("icl_d_model % icl_heads == 0", "icl_heads must divide icl_d_model"),
            Check("list(icl_tasks) == sorted(set(icl_tasks))", "icl_tasks must be strictly increasing"))


_BIG = dict(seeds=8, icl_tasks=(4, 64, 1024, 2**16), icl_seq=32, icl_steps=2000, icl_batch=128, icl_eval=1024)
PRESETS = {"cpu": Config(), "gpu": Config(**_BIG), "tpu": Config(**_BIG)}
TINY = ("seeds=2", "sdl_iters=600", "sdl_test=500", "icl_eval=128")
MUTATIONS = {"reconstruction_dominates": ("sdl_xi=10",), "few_tasks_only": ("icl_tasks=4,8",)}
MUTATION_PAPERS = {"reconstruction_dominates": 146, "few_tasks_only": 40}


# ---- [146] supervised dictionary learning ----------------------------------------------------------------------

def _sdl_sample(rng, Wd, Wn, beta, gamma, n, config: Config):
  r, q, k = config.sdl_rank, config.sdl_q, config.sdl_classes
  Hd = rng.normal(size=(r, n))
  Hn = rng.normal(size=(r, n)) * config.sdl_nuisance
  X = Wd @ Hd + Wn @ Hn + config.sdl_noise * rng.normal(size=(config.sdl_p, n))
  Xa = rng.normal(size=(q, n))
  a = np.c_[np.zeros(n), Hd.T @ beta + Xa.T @ gamma]
  prob = np.exp(a - a.max(1, keepdims=True))
  prob /= prob.sum(1, keepdims=True)
  y = (rng.uniform(size=(n, 1)) > np.cumsum(prob, 1)).sum(1).clip(0, k - 1)    # inverse-CDF draw per row
  return X, Xa, y.astype(np.int32)


def _sdl_data(config: Config, s: int) -> dict:
  """Host NumPy float64: one seed's planted model, training and test sets, and the BCD's initial parameters."""
  rng = np.random.default_rng([config.seed, 146, s])
  p, r, q, kap = config.sdl_p, config.sdl_rank, config.sdl_q, config.sdl_classes - 1
  Q = np.linalg.qr(rng.normal(size=(p, 2 * r)))[0]
  Wd, Wn = Q[:, :r], Q[:, r:]
  u, _, vt = np.linalg.svd(rng.normal(size=(r, kap)), full_matrices=False)
  beta = config.sdl_signal * (u @ vt)     # singular values all sdl_signal: every atom carries label signal
  gamma = rng.normal(size=(q, kap))
  X, Xa, y = _sdl_sample(rng, Wd, Wn, beta, gamma, config.sdl_train, config)
  Xt, Xat, yt = _sdl_sample(rng, Wd, Wn, beta, gamma, config.sdl_test, config)
  W0 = rng.normal(size=(p, r)) / np.sqrt(p)
  return {"X": X, "Xa": Xa, "y": y, "Xt": Xt, "Xat": Xat, "yt": yt, "Wd": Wd, "W0": W0,
          "H0": np.linalg.lstsq(W0, X, rcond=None)[0], "beta0": rng.normal(size=(r, kap)) * 0.1,
          "gamma0": np.zeros((q, kap))}


def _logreg(F, y, kap):
  """Multinomial logistic regression with class 0 as the baseline, no intercept: float64 NumPy NLL + SciPy L-BFGS.
  F [d, n] features, y [n]; returns the [d, kap] coefficients."""
  Z, onehot = F.T, np.eye(kap + 1)[y][:, 1:]

  def f(w):
    w = w.reshape(Z.shape[1], kap)
    a = np.c_[np.zeros(len(y)), Z @ w]
    m = a.max(1)
    lse = m + np.log(np.exp(a - m[:, None]).sum(1))
    P = np.exp(a - lse[:, None])[:, 1:]
    return float((lse - a[np.arange(len(y)), y]).sum()), (Z.T @ (P - onehot)).ravel()

  res = so.minimize(f, np.zeros(Z.shape[1] * kap), jac=True, method="L-BFGS-B", options={"maxiter": 2000})
  return res.x.reshape(Z.shape[1], kap)


def _accuracy(a, y):
  return float(np.mean(np.argmax(np.c_[np.zeros(len(y)), a], 1) == y))


def _rms_sine(W, Wd):
  """RMS sine of the principal angles between span(W) and span(Wd) (orthonormal Wd): ||P_W - P_Wd||_F / sqrt(2r)."""
  Q = np.linalg.qr(W)[0]
  cos = np.clip(np.linalg.svd(Wd.T @ Q, compute_uv=False), 0.0, 1.0)
  return float(np.sqrt(np.mean(1.0 - cos ** 2)))


def _sdl_seed(d, xi, iters):
  P0 = SDLParams(d["W0"], d["H0"], d["beta0"], d["gamma0"])
  P, fs = sdl_bcd(d["X"], d["y"], d["Xa"], P0, xi, mode="W", num_iters=iters)
  return {"W": P.W, "beta": P.beta, "gamma": P.gamma, "objective": fs}


def run_sdl146(config: Config) -> dict:
  kap = config.sdl_classes - 1
  data = [_sdl_data(config, s) for s in range(config.seeds)]
  with jax.enable_x64(True):
    train = {k: np.stack([d[k] for d in data]) for k in ("X", "y", "Xa", "W0", "H0", "beta0", "gamma0")}
    fit = jax.jit(jax.vmap(functools.partial(_sdl_seed, xi=float(config.sdl_xi), iters=config.sdl_iters)))
    out = jax.tree.map(np.asarray, fit(shard_leading(train, make_mesh(config.mesh), what="seed")))
  res = {"acc_sdl": [], "acc_pca": [], "acc_oracle": [], "sine_sdl": [], "sine_pca": [], "max_rel_increase": [],
         "objective": [], "rel_drop": []}
  for s, d in enumerate(data):
    fs = out["objective"][s]
    W, beta, gamma = out["W"][s], out["beta"][s], out["gamma"][s]
    res["acc_sdl"].append(_accuracy((W.T @ d["Xt"]).T @ beta + d["Xat"].T @ gamma, d["yt"]))
    U = np.linalg.svd(d["X"], full_matrices=False)[0][:, :config.sdl_rank]
    for name, B in (("pca", U), ("oracle", d["Wd"])):
      w = _logreg(np.r_[B.T @ d["X"], d["Xa"]], d["y"], kap)
      res[f"acc_{name}"].append(_accuracy(np.r_[B.T @ d["Xt"], d["Xat"]].T @ w, d["yt"]))
    res["sine_sdl"].append(_rms_sine(W, d["Wd"]))
    res["sine_pca"].append(_rms_sine(U, d["Wd"]))
    res["max_rel_increase"].append(float(np.max(np.diff(fs) / np.abs(fs[:-1]))))
    res["rel_drop"].append(float(1 - fs[-1] / fs[0]))
    res["objective"].append(fs[:: max(1, len(fs) // 200)].tolist())
  return res


def _sdl_claims(r: dict) -> list[Claim]:
  acc_sdl, acc_pca, acc_or = (np.asarray(r[k]) for k in ("acc_sdl", "acc_pca", "acc_oracle"))
  out = [Claim.at_least("[146] SDL-W test accuracy - two-stage (PCA dictionary + logistic regression) test accuracy "
                        "at the same rank (min over seeds)", float(np.min(acc_sdl - acc_pca)), 0.1,
                        paper="SDL more effective when reconstructive and discriminative dictionaries differ",
                        kind="paper", where="Abstract; simulation studies [146]")]
  mono = float(np.max(r["max_rel_increase"])) if min(r["rel_drop"]) >= 0.3 else np.inf
  out.append(Claim.at_most("[146] BCD: max relative objective increase over sweeps and seeds (float64; +inf when the "
                           "objective fell by < 30%)", mono, 1e-10,
                           paper="BCD decreases the objective to a stationary point", kind="paper",
                           where="Abstract; the BCD algorithm and its convergence theorem [146]"))
  out.append(Claim.at_least("[146] RMS principal-angle sine to the planted discriminative atoms: PCA's - SDL's "
                            "(min over seeds)", float(np.min(np.asarray(r["sine_pca"]) - np.asarray(r["sine_sdl"]))),
                            0.3, paper="SDL learns a class-discriminative dictionary", kind="paper",
                            where="Abstract [146]"))
  out.append(Claim.at_most("[146] oracle (planted atoms) test accuracy - SDL's (mean over seeds)",
                           float(np.mean(acc_or - acc_sdl)), 0.1, paper="SDL close to the planted model",
                           kind="sanity"))
  return out


# ---- [40] general-purpose in-context learning ------------------------------------------------------------------

class GPICLModel(nnx.Module):
  """The meta-learner: tokens [B, T, N_x + N_y] -> Linear -> L causal pre-norm `TransformerBlock`s (RoPE) -> norm ->
  Linear -> label logits [B, T, N_y]."""

  def __init__(self, config: Config, *, rngs: nnx.Rngs):
    cfg = TransformerConfig(vocab_size=config.icl_classes, d_model=config.icl_d_model, num_layers=config.icl_layers,
                            num_heads=config.icl_heads)
    self.embed = nnx.Linear(config.icl_features + config.icl_classes, cfg.d_model, rngs=rngs)
    self.blocks = nnx.List([TransformerBlock(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
    self.norm = nnx.LayerNorm(cfg.d_model, rngs=rngs)
    self.head = nnx.Linear(cfg.d_model, config.icl_classes, rngs=rngs)

  def __call__(self, tokens):
    h = self.embed(tokens)
    for block in self.blocks:
      h, _ = block(h)
    return self.head(self.norm(h))


def _icl_base(config: Config, s: int):
  """Host NumPy: the base data set, a Gaussian mixture in R^N_x (class means of norm `icl_sep`, unit noise)."""
  rng = np.random.default_rng([config.seed, 40, s])
  mu = rng.normal(size=(config.icl_classes, config.icl_features))
  mu *= config.icl_sep / np.linalg.norm(mu, axis=1, keepdims=True)
  y = np.arange(config.icl_base) % config.icl_classes
  x = mu[y] + rng.normal(size=(config.icl_base, config.icl_features))
  return x.astype(np.float32), y.astype(np.int32)


def _icl_seed(x, y, key, num_tasks, config: Config):
  """Meta-train one model on a pool of `num_tasks` tasks; per-position accuracy on seen and on fresh tasks."""
  k_init, k_pool, k_data, k_seen, k_unseen = jax.random.split(key, 5)
  gd, params = nnx.split(GPICLModel(config, rngs=nnx.Rngs(params=k_init)))
  tx = optax.adam(config.icl_lr)
  kw = dict(num_classes=config.icl_classes, seq_len=config.icl_seq)

  def loss(p, i):
    b = gpicl_batch(jax.random.fold_in(k_data, i), x, y, batch_size=config.icl_batch, num_tasks=num_tasks,
                    pool_key=k_pool, **kw)
    logits = nnx.merge(gd, p)(b.tokens)
    return optax.softmax_cross_entropy_with_integer_labels(logits, b.labels).mean()

  params, losses = minimize(loss, params, tx, jnp.arange(config.icl_steps))

  def accuracy(b):
    return jnp.mean(jnp.argmax(nnx.merge(gd, params)(b.tokens), -1) == b.labels, axis=0)   # [T]

  seen = gpicl_batch(k_seen, x, y, batch_size=config.icl_eval, num_tasks=num_tasks, pool_key=k_pool, **kw)
  unseen = gpicl_batch(k_unseen, x, y, batch_size=config.icl_eval, num_tasks=None, **kw)
  return {"acc_seen": accuracy(seen), "acc_unseen": accuracy(unseen), "loss": losses}


def run_gpicl40(config: Config) -> dict:
  base = [_icl_base(config, s) for s in range(config.seeds)]
  x, y = np.stack([b[0] for b in base]), np.stack([b[1] for b in base])
  keys = jax.random.split(jax.random.key(config.seed), config.seeds)
  mesh = make_mesh(config.mesh)
  res = {"tasks": list(config.icl_tasks), "classes": config.icl_classes, "acc_seen": [], "acc_unseen": [],
         "loss": []}
  for m in config.icl_tasks:
    fn = jax.jit(jax.vmap(functools.partial(_icl_seed, num_tasks=m, config=config)))
    out = jax.tree.map(np.asarray, fn(*shard_leading((x, y, keys), mesh, what="seed")))
    res["acc_seen"].append(out["acc_seen"].tolist())          # [seeds, T]
    res["acc_unseen"].append(out["acc_unseen"].tolist())
    res["loss"].append(out["loss"][:, :: max(1, config.icl_steps // 100)].tolist())
  return res


def _late(acc):
  """[pools, seeds, T] per-position accuracies -> [pools, seeds] mean over the positions t >= T/2."""
  acc = np.asarray(acc, np.float64)
  return acc[..., acc.shape[-1] // 2:].mean(-1)


def _gpicl_claims(r: dict) -> list[Claim]:
  seen, unseen = _late(r["acc_seen"]), _late(r["acc_unseen"])     # [pools, seeds]
  first = np.asarray(r["acc_unseen"], np.float64)[..., 0]           # [pools, seeds]
  small, large = r["tasks"][0], r["tasks"][-1]
  ci_transition = _seed_stats.paired_ci(unseen[-1], unseen[0])     # the same seeds (base data, keys) in every pool
  ci_icl = _seed_stats.paired_ci(unseen[-1], first[-1])            # the same models and sequences
  out = [Claim.at_least(f"[40] memorisation with few tasks: late-position accuracy on the {small} meta-training "
                        "tasks - on unseen tasks (min over seeds)", float(np.min(seen[0] - unseen[0])), 0.2,
                        paper="few tasks: the model memorises them and does not generalise", kind="paper",
                        where="Sec. 4.1, Fig. 2 (memorisation phase) [40]"),
         Claim.at_least(f"[40] unseen-task late-position accuracy: {large} tasks - {small} tasks (lower end of the "
                        f"paired 95% CI over seeds; {_seed_stats.fmt_ci(ci_transition)})", ci_transition["lo"], 0.1,
                        paper="generalisation to unseen tasks appears as the number of tasks grows (~2^13 on MNIST)",
                        kind="paper", where="Sec. 4.1, Fig. 2 (transition to general learning-to-learn) [40]"),
         Claim.at_least(f"[40] learning in context with {large} tasks: unseen-task accuracy at late positions - at "
                        f"position 0 (lower end of the paired 95% CI over seeds; {_seed_stats.fmt_ci(ci_icl)})",
                        ci_icl["lo"], 0.1,
                        paper="accuracy on unseen tasks improves with the in-context examples", kind="paper",
                        where="Sec. 4.1 (learning-to-learn) [40]"),
         Claim.at_most(f"[40] seen - unseen late-position accuracy with {large} tasks (max over seeds)",
                       float(np.max(seen[-1] - unseen[-1])), 0.05,
                       paper="general learning-to-learn: no gap between meta-training and unseen tasks",
                       kind="paper", where="Sec. 4.1, Fig. 2 [40]")]
  n_classes = r["classes"]
  out.append(Claim.at_most("[40] |unseen-task accuracy at position 0 - chance| (max over pools, mean over seeds)",
                           float(np.max(np.abs(first.mean(1) - 1.0 / n_classes))), 0.1,
                           paper="no label information before the context", kind="sanity"))
  return out


# ---- run / claims / figure -------------------------------------------------------------------------------------

def _key(config: Config, prefix: str) -> str:
  """A part's sub-run key: its own fields and the seeds (not the mesh: a sub-run's result does not depend on it)."""
  return repr({k: v for k, v in dataclasses.asdict(config).items()
               if k.startswith(prefix) or k in ("seed", "seeds")})


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  out = {"sdl146": sweep.memoized(workdir, {"part": "sdl146", "config": _key(config, "sdl_")},
                                  lambda: run_sdl146(config))}
  log.log(0, part=146, acc_gap=float(np.mean(np.asarray(out["sdl146"]["acc_sdl"])
                                             - np.asarray(out["sdl146"]["acc_pca"]))))
  out["gpicl40"] = sweep.memoized(workdir, {"part": "gpicl40", "config": _key(config, "icl_")},
                                  lambda: run_gpicl40(config))
  log.log(1, part=40, unseen_late=[float(v) for v in _late(out["gpicl40"]["acc_unseen"]).mean(1)])
  _figure(out, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  return _sdl_claims(results["sdl146"]) + _gpicl_claims(results["gpicl40"])


def _figure(out, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 5, figsize=(23, 3.8))
  r = out["sdl146"]
  ax = axes[0]
  for s, fs in enumerate(r["objective"]):
    ax.plot(np.linspace(0, 1, len(fs)), fs, label=f"seed {s}")
  ax.set_yscale("log")
  ax.set_xlabel("BCD sweep (fraction of sdl_iters)")
  ax.set_ylabel("SDL objective f")
  ax.set_title("[146] BCD is monotone")
  ax.legend(fontsize=8)
  ax = axes[1]
  names = ("acc_pca", "acc_sdl", "acc_oracle")
  for i, k in enumerate(names):
    ax.scatter([i] * len(r[k]), r[k])
  ax.set_xticks(range(3), ["PCA + LR", "SDL-W", "oracle atoms + LR"])
  ax.set_ylabel("test accuracy")
  ax.set_title("[146] same rank, every seed")
  ax = axes[2]
  ax.scatter(r["sine_pca"], r["sine_sdl"])
  ax.plot([0, 1], [0, 1], "k:")
  ax.set_xlabel("RMS sine to planted atoms: PCA")
  ax.set_ylabel("RMS sine to planted atoms: SDL")
  ax.set_title("[146] discriminative dictionary")
  g = out["gpicl40"]
  ax = axes[3]
  seen, unseen = _late(g["acc_seen"]), _late(g["acc_unseen"])
  ax.plot(g["tasks"], seen.mean(1), "C0-o", label="meta-training tasks")
  ax.plot(g["tasks"], unseen.mean(1), "C3-o", label="unseen tasks")
  for s in range(seen.shape[1]):
    ax.scatter(g["tasks"], seen[:, s], c="C0", s=8, alpha=0.5)
    ax.scatter(g["tasks"], unseen[:, s], c="C3", s=8, alpha=0.5)
  ax.axhline(1.0 / g["classes"], color="k", ls=":", label="chance")
  ax.set_xscale("log", base=2)
  ax.set_xlabel("number of meta-training tasks")
  ax.set_ylabel("accuracy, positions t >= T/2")
  ax.set_title("[40] memorisation -> generalisation")
  ax.legend(fontsize=8)
  ax = axes[4]
  for i, m in enumerate(g["tasks"]):
    ax.plot(np.asarray(g["acc_unseen"][i]).mean(0), label=f"{m} tasks")
  ax.set_xlabel("position in the sequence (examples seen)")
  ax.set_ylabel("accuracy on unseen tasks")
  ax.set_title("[40] in-context learning curve")
  ax.legend(fontsize=8)
  save_figure(fig, workdir / "figure.png")
