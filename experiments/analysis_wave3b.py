"""Analysis wave 3 (issue 21), part b: OSBORN-style ensemble selection with Sinkhorn OT [117], the data-filtering
scaling law with repetition (QQT) [70] and per-module forgetting with FPF [31], on synthetic problems.

Paper [117]: Vimal K B, Saketh Bachu, Tanmay Garg, Niveditha Lakshmi Narasimhan, Raghavan Konuru, Vineeth N
Balasubramanian, "Building a Winning Team: Selecting Source Model Ensembles using a Submodular Transferability
Estimation Approach", ICCV 2023, arXiv:2309.02429.
Paper [70]: Sachin Goyal, Pratyush Maini, Zachary C. Lipton, Aditi Raghunathan, J. Zico Kolter, "Scaling Laws for Data
Filtering -- Data Curation cannot be Compute Agnostic", CVPR 2024, arXiv:2404.07177.
Paper [31]: Haiyan Zhao, Tianyi Zhou, Guodong Long, Jing Jiang, Chengqi Zhang, "Does Continual Learning Equally Forget
All Parameters?", ICML 2023, arXiv:2304.04158.

NOTE: neither paper's equations could be retrieved in this session; `osborn_score` and the QQT law follow the
catalog's reading (see jaxlib_methods/analysis/ot.py and data_filtering.py), so a failing claim here may be our
reading's, not the paper's.

[117] A target task (4 Gaussian classes in R^8, `target_train` labelled samples) and a pool of `pool` source
"models": model m saw its own 6-class source domain (some classes shared with the target, the input shifted by a
random affine map) through a frozen random feature map, and classifies by the nearest mean of its source features
(`nearest_mean_*`). Per model: W_D = `sinkhorn_ot` between its source and target features (cost normalised by its
mean), W_T = `ot_conditional_entropy` of the target labels given the source labels under that plan; per pair:
incohesion = the symmetrised conditional entropy of one model's target predictions given the other's. Ground truth
of a k-subset: target accuracy of the nearest-mean head fitted on the concatenated features of its models. Claims
(`seeds` seeds vmapped, tolerances fixed before the run):
  1. greedy selection reaches >= (1 - 1/e) of the exhaustive optimum of the (monotone-offset) score, every seed;
  2. the score is submodular: diminishing returns hold on every (S subset of T, x not in T) of the pool;
  3. Spearman(score, ground truth) over all k-subsets >= that of MS-LEEP (the sum of the models' LEEP scores,
     Nguyen et al. 2020) (mean over seeds; the paper: OSBORN beats MS-LEEP / E-LEEP, Tables 1-2);
  4. sanity: Sinkhorn's W_D at eps = 0.01 is within 5% of the exact OT (an assignment) on one pair.
Mutation `cohesion_term=reward`: a supermodular pairwise term; claim 2 fails.
Measured (cpu preset, seeds 0-2): claims 1, 2, 4 pass; claim 3 FAILS: Spearman(OSBORN) - Spearman(MS-LEEP) = -0.55
on average. On this toy the task term W_T alone ranks the subsets about as well as MS-LEEP (Spearman 0.35-0.64 in a
scan of the terms, seeds 0-2) but the domain term W_D anti-correlates with the ground truth (-0.24 to 0.12): the
source shift is an affine map of the input, which a frozen tanh feature map turns into feature-space distances that
say little about how well the features separate the target classes. Not tried: weighting the terms per the paper
(not retrievable here), or the paper's exact cohesiveness term.

[31] A class-incremental stream of `cl_tasks` tasks (2 Gaussian classes each, R^16) learnt by a 16-64-64-C ReLU MLP
(modules dense0, dense1, head), Adam `cl_steps` full-batch steps per task, either plainly or with every-step replay
of a buffer (`buffer_per_class` samples of each past class). `module_drift` between the end of consecutive tasks
(plain training) ranks the modules; FPF (`fpf_transform`: optax.multi_transform) then fine-tunes only the top
module on the buffer for `fpf_steps` steps, starting from the plain run. Claims:
  7. the head (last layer) drifts most, >= 1.5x the next module (mean over seeds);
  8. FPF reaches every-step replay's accuracy - 0.05 (mean over seeds) with <= 25% of replay's buffer gradients;
  9. sanity: replay beats plain sequential training by >= 0.2 (there is forgetting to undo).
Option `fpf_modules=least_drift` (FPF on the least-drifting module) is not a declared mutation: claims 7-8 fail for
the method itself at the cpu preset (measured, seeds 0-2: head drift 0.340 vs dense1 0.308, ratio 1.10 < 1.5; FPF
0.914 vs replay 0.971 accuracy, -0.057 < -0.05; and FPF used 0.33 of replay's buffer gradients > 0.25). The toy MLP
has no normalisation layers, which the paper finds drift most along with the last layer.

[70] Error curves of two pools are simulated from the law (a = 3, utilities -0.3 for a 20k "top" pool and -0.25
for a 180k "lower" pool, half-life tau = 2 repetitions), with `qqt_noise` multiplicative noise at `qqt_points`
compute levels from 1e2 to 1e6 samples; `fit_qqt` fits each pool's curve. Claims:
  5. the fitted (a, b, tau) are within 5% of the truth (max over parameters, pools and seeds);
  6. QQT: the top pool alone wins at low compute and the union of both pools beyond a crossover; the crossover that
     the fitted laws predict (`qqt_error` vs `qqt_mix_error` on a log grid) is within 10% of the true one (max over
     seeds).
Mutation `fit_decay=none`: the fit ignores the decay with repetition (tau pinned beyond 1e6); claims 5-6 fail.
Measured (cpu preset, seeds 0-2): claim 5 passes (max relative error 0.036, on tau); claim 6 FAILS: the true
crossover is 4.47e5 samples, the fitted laws predict 4.49e5, 5.28e5 and 4.76e5 (errors 0.6%, 18%, 6.5%): the two
curves cross at a shallow angle, so a 2-3.5% error in the fitted tau moves the crossover by up to 18%. Every seed's
fitted laws do predict a crossover, within a factor 1.2 of the true one.
Claims audit (2026-12-03, before the rerun that recorded it; no tolerance or setting changed): rows that hold by
construction are sanity rows, not paper claims. [117] greedy >= (1 - 1/e) OPT (Nemhauser et al.'s theorem for any
monotone submodular score) and diminishing returns (`osborn_score` is a per-model term minus a non-negative pairwise
penalty: submodular by algebra); [70] the fitted (a, b, tau) and the crossover (the curves are simulated from
`qqt_error` and fitted with the same law: the fitter inverting its simulator). Paper claims left: [117] the
Spearman comparison with MS-LEEP (failing), [31] its two (failing; no mutation). Both mutations broke only rows
that are sanity rows now, so none is declared (`cohesion_term=reward`, `fit_decay=none` still run as --set).
"""

import dataclasses
import functools
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods import analysis
from jaxlib_methods.runner import (Claim, MeshConfig, MetricsLog, Paper, make_mesh, minimize, save_figure,
                                   shard_leading, sweep)
from jaxlib_methods.runner.constraints import Check, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=117, title="Building a Winning Team: Selecting Source Model Ensembles using a Submodular "
              "Transferability Estimation Approach", year=2023, arxiv="2309.02429")
ALSO_REPRODUCES = (Paper(catalog_id=70, title="Scaling Laws for Data Filtering -- Data Curation cannot be Compute "
                         "Agnostic", year=2024, arxiv="2404.07177"),
                   Paper(catalog_id=31, title="Does Continual Learning Equally Forget All Parameters?", year=2023,
                         arxiv="2304.04158"))
DEMO = False
MUTATION_TEST_SLOW = True  # the TINY run enumerates every subset of the pool on the host (~10 s of CPU when loaded)


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=1, le=16)] = 3          # vmapped seeds
  # [117]
  pool: Annotated[int, Range(ge=2, le=12)] = 8           # candidate source models (every subset is enumerated)
  ensemble_size: Annotated[int, Range(ge=1, le=6)] = 3   # k
  target_classes: Annotated[int, Range(ge=2, le=20)] = 4
  target_train: PositiveInt = 100                        # labelled target samples (a multiple of target_classes)
  ot_eps: PositiveFloat = 0.1                            # Sinkhorn eps, relative to the mean cost
  lam_cohesion: Annotated[float, Range(ge=0)] = 0.2
  cohesion_term: Literal["penalty", "reward"] = "penalty"   # "reward": a supermodular pairwise term (mutation)
  # [70]
  qqt_noise: Annotated[float, Range(ge=0, le=0.2)] = 0.01    # multiplicative noise of the simulated error curves
  qqt_points: Annotated[int, Range(ge=5, le=200)] = 25       # points per curve
  fit_decay: Literal["half_life", "none"] = "half_life"      # "none": fit without repetition decay (mutation)
  # [31]
  cl_tasks: Annotated[int, Range(ge=2, le=20)] = 5       # class-incremental tasks of 2 classes each
  cl_steps: PositiveInt = 150                            # Adam steps per task (full batch)
  cl_lr: PositiveFloat = 3e-3
  buffer_per_class: PositiveInt = 10                     # replay buffer samples per class
  fpf_steps: PositiveInt = 100                           # FPF fine-tuning steps on the buffer
  fpf_modules: Literal["most_drift", "least_drift"] = "most_drift"   # "least_drift": the wrong modules (mutation)
  mesh: MeshConfig = MeshConfig()                        # devices the vmapped seeds ([117], [31]) are split over

  CHECKS = (Check("ensemble_size <= pool", "ensemble_size must be <= pool"),
            Check("target_train % target_classes == 0", "target_classes must divide target_train"))


PRESETS = {"cpu": Config(), "gpu": Config(seeds=8), "tpu": Config(seeds=8)}
TINY = ("seeds=2", "pool=5", "ensemble_size=2", "target_train=40", "cl_tasks=3", "cl_steps=60", "fpf_steps=40")
# (no MUTATIONS: `supermodular_cohesion` (cohesion_term=reward) and `no_repetition_decay` (fit_decay=none) broke only
# rows the claims audit made sanity rows, see the docstring)
# (`fpf_modules=least_drift` is kept as a config option but not declared a mutation: the [31] claims it targets
# already fail for the method, see the module docstring; a mutation must turn a passing paper claim into a failing one.)


# ---- [117] OSBORN-style ensemble selection -------------------------------------------------------------------

_KS, _FEAT, _NS_PER, _NQ_PER = 6, 6, 20, 100   # source classes, model feature dim, source / query samples per class


def _osborn_pool(seed: int, config: Config):
  """Host-side toy (NumPy): a target task and `pool` source "models". Model m: its source domain (6 classes, some
  of them target classes, all seen through a random affine shift A_m x + s_m) and a frozen feature map tanh(z W_m)
  (6 features) applied to the shifted input; it classifies with the NMC of its source features. Returns the arrays
  the jitted part needs."""
  rng = np.random.default_rng([config.seed, seed, 117])
  kt, d, n, m = config.target_classes, 8, config.target_train, config.pool
  mu_t = rng.normal(size=(kt, d)) * 1.5
  yt = np.repeat(np.arange(kt), n // kt)
  yq = np.repeat(np.arange(kt), _NQ_PER)
  xt = mu_t[yt] + rng.normal(size=(n, d))
  xq = mu_t[yq] + rng.normal(size=(kt * _NQ_PER, d))
  ys = np.repeat(np.arange(_KS), _NS_PER)
  fs, ft, fq = [], [], []
  for _ in range(m):
    shift = rng.uniform(0, 3)
    a = np.eye(d) + rng.normal(size=(d, d)) * rng.uniform(0, 0.8)
    mu_s = rng.normal(size=(_KS, d)) * 1.5
    overlap = rng.integers(0, kt + 1)
    mu_s[:overlap] = mu_t[rng.permutation(kt)[:overlap]]
    w = rng.normal(size=(d, _FEAT)) / np.sqrt(d) * 2
    xs = mu_s[ys] + rng.normal(size=(ys.size, d))
    enc = lambda x: np.tanh((x @ a + shift) @ w)
    fs.append(enc(xs))
    ft.append(enc(xt))
    fq.append(enc(xq))
  f32 = lambda v: np.asarray(v, np.float32)
  return f32(fs), ys, f32(ft), yt, f32(fq), yq


def _leep(theta, y, num_classes):
  """LEEP (Nguyen et al. 2020, arXiv:2002.12462, Eq. 2): mean log of the expected empirical prediction."""
  joint = jax.nn.one_hot(y, num_classes, dtype=theta.dtype).T @ theta / theta.shape[0]     # [Kt, Ks]
  cond = joint / jnp.maximum(joint.sum(0, keepdims=True), 1e-30)
  return jnp.mean(jnp.log(jnp.sum(theta * cond[y], axis=1)))


def _osborn_one_seed(fs, ys, ft, yt, fq, yq, subsets, masks, config: Config):
  kt = config.target_classes
  states = jax.vmap(lambda f: analysis.nearest_mean_update(analysis.nearest_mean_init(_KS, _FEAT), f, ys))(fs)
  theta = jax.vmap(lambda st, f: jax.nn.softmax(-analysis.nearest_mean_distances(st, f)))(states, ft)  # [M, n, Ks]
  preds = jnp.argmax(theta, -1)                                                                        # [M, n]
  wd, plans = jax.vmap(lambda a, b: analysis.sinkhorn_ot(a, b, eps=config.ot_eps, num_iters=300))(fs, ft)
  wt = jax.vmap(lambda p: analysis.ot_conditional_entropy(p, ys, yt, _KS, kt))(plans)
  n = ft.shape[1]
  eye = jnp.eye(n, dtype=ft.dtype) / n
  ce = jax.vmap(lambda a: jax.vmap(lambda b: analysis.ot_conditional_entropy(eye, a, b, _KS, _KS))(preds))(preds)
  mc = (ce + ce.T) / 2 * (1 - jnp.eye(config.pool))       # incohesion: symmetrised H(pred_m' | pred_m) on target
  wd_n = wd / jnp.mean(wd)
  leep = jax.vmap(lambda t: _leep(t, yt, kt))(theta)

  def score(mask):
    if config.cohesion_term == "penalty":
      return analysis.osborn_score(mask, wd_n, wt, mc, lam_cohesion=config.lam_cohesion)
    base = analysis.osborn_score(mask, wd_n, wt, mc, lam_cohesion=0.0)   # mutation: reward incohesion
    s = mask.astype(mc.dtype)
    return base + config.lam_cohesion * 0.5 * jnp.einsum("...i,ij,...j->...", s, mc, s)

  all_scores = score(masks)                                 # [2^M] every subset

  def acc_of(idx):                                          # the target head fitted on the ensemble's features
    f_tr = jnp.transpose(ft[idx], (1, 0, 2)).reshape(n, -1)
    f_q = jnp.transpose(fq[idx], (1, 0, 2)).reshape(fq.shape[1], -1)
    st = analysis.nearest_mean_update(analysis.nearest_mean_init(kt, f_tr.shape[1]), f_tr, yt)
    return jnp.mean(analysis.nearest_mean_predict(st, f_q) == yq)

  acc = jax.vmap(acc_of)(subsets)                           # [S] k-subsets
  return {"scores": all_scores, "acc": acc, "leep": leep, "wd": wd, "wt": wt, "mc": mc}


def _spearman(a, b):
  ra = np.argsort(np.argsort(a)).astype(float)
  rb = np.argsort(np.argsort(b)).astype(float)
  return float(np.corrcoef(ra, rb)[0, 1])


def run_osborn(config: Config) -> dict:
  import itertools
  m, k = config.pool, config.ensemble_size
  masks = np.array(list(itertools.product([False, True], repeat=m)))            # [2^M, M]
  subsets = np.array(list(itertools.combinations(range(m), k)))                 # [S, k]
  pools = [_osborn_pool(s, config) for s in range(config.seeds)]
  stacked = [np.stack(x) for x in zip(*pools)]
  stacked = shard_leading(tuple(stacked), make_mesh(config.mesh), what="seed")
  out = jax.jit(jax.vmap(functools.partial(_osborn_one_seed, subsets=subsets, masks=masks, config=config)))(*stacked)
  out = jax.tree.map(np.asarray, out)
  sizes = masks.sum(1)
  index = {tuple(r): i for i, r in enumerate(masks)}
  res = {"greedy_ratio": [], "min_diminishing_return": [], "spearman_osborn": [], "spearman_msleep": [],
         "acc_best": [], "acc_greedy": []}
  for s in range(config.seeds):
    f = out["scores"][s].astype(np.float64)
    # monotone version for the greedy bound: offset each model by its largest possible penalty (argmax unchanged)
    off = 1.0 + config.lam_cohesion * out["mc"][s].sum() + np.abs(out["wd"][s] / out["wd"][s].mean()).max() \
        + np.abs(out["wt"][s]).max()
    g = f + off * sizes
    opt = g[sizes <= k].max()
    _, vals = analysis.greedy_submodular_select(lambda b, g=g: g[[index[tuple(r)] for r in np.asarray(b)]], m, k)
    res["greedy_ratio"].append(float(vals[-1] / opt))
    worst = np.inf                                          # diminishing returns on every (S subset T, x not in T)
    for t_i, t in enumerate(masks):
      for x in np.flatnonzero(~t):
        tx = t.copy()
        tx[x] = True
        gain_t = f[index[tuple(tx)]] - f[t_i]
        sub = masks[(masks & ~t).sum(1) == 0]               # every S subset of T
        sx = sub.copy()
        sx[:, x] = True
        gains = f[[index[tuple(r)] for r in sx]] - f[[index[tuple(r)] for r in sub]]
        worst = min(worst, float(gains.min() - gain_t))
    res["min_diminishing_return"].append(worst)
    ksets = np.zeros((len(subsets), m), bool)
    np.put_along_axis(ksets, subsets, True, axis=1)
    osb = f[[index[tuple(r)] for r in ksets]]
    msl = out["leep"][s][subsets].sum(1)
    res["spearman_osborn"].append(_spearman(osb, out["acc"][s]))
    res["spearman_msleep"].append(_spearman(msl, out["acc"][s]))
    res["acc_best"].append(float(out["acc"][s].max()))
    res["acc_greedy"].append(float(out["acc"][s][int(np.argmax(osb))]))
  # sanity: Sinkhorn's W_D vs the exact OT (an assignment: equal sample counts, uniform weights) on one source
  from scipy.optimize import linear_sum_assignment
  fs, _, ft, *_ = pools[0]
  a, b = fs[0][: config.target_train].astype(np.float64), ft[0].astype(np.float64)
  c = ((a[:, None] - b[None]) ** 2).sum(-1)
  r, col = linear_sum_assignment(c)
  with jax.enable_x64(True):
    w, _ = analysis.sinkhorn_ot(jnp.asarray(a), jnp.asarray(b), eps=0.01, num_iters=3000)
  res["sinkhorn_vs_exact"] = float(w) / float(c[r, col].mean()) - 1.0
  return res


# ---- [70] data-filtering scaling laws (QQT) ---------------------------------------------------------------------

_QQT = {"a": 3.0, "b_top": -0.3, "b_low": -0.25, "tau": 2.0, "n_top": 2e4, "n_low": 1.8e5}


def _crossover(a, b_top, b_low, tau, grid):
  """Smallest n of `grid` where the union of both pools beats repeating the top pool (inf if none)."""
  top = np.asarray(analysis.qqt_error(grid, _QQT["n_top"], a, b_top, tau, max_epochs=int(grid[-1] / _QQT["n_top"]) + 1))
  mix = np.asarray(analysis.qqt_mix_error(grid, [_QQT["n_top"], _QQT["n_low"]], a, [b_top, b_low], tau,
                                          max_epochs=int(grid[-1] / (_QQT["n_top"] + _QQT["n_low"])) + 1))
  w = np.flatnonzero(mix < top)
  return (float(grid[w[0]]) if w.size else float("inf")), bool(top[0] < mix[0])


def run_qqt(config: Config) -> dict:
  q = _QQT
  n = np.geomspace(100, 1e6, config.qqt_points)
  grid = np.geomspace(1e3, 1e8, 2001)
  tau_range = (0.1, 1e3) if config.fit_decay == "half_life" else (1e6, 2e6)   # "none": no decay within the range
  true_x, top_first = _crossover(q["a"], q["b_top"], q["b_low"], q["tau"], grid)
  res = {"true_crossover": true_x, "top_wins_first": top_first, "fits": [], "crossover": [], "rel_err_b": [],
         "rel_err_tau": [], "rel_err_a": []}
  for s in range(config.seeds):
    rng = np.random.default_rng([config.seed, s, 70])
    y_top = np.asarray(analysis.qqt_error(n, q["n_top"], q["a"], q["b_top"], q["tau"], max_epochs=64))
    y_low = np.asarray(analysis.qqt_error(n, q["n_low"], q["a"], q["b_low"], q["tau"], max_epochs=64))
    y_top = y_top * np.exp(config.qqt_noise * rng.normal(size=n.size))
    y_low = y_low * np.exp(config.qqt_noise * rng.normal(size=n.size))
    ft = analysis.fit_qqt(n, y_top, q["n_top"], tau_range=tau_range)
    fl = analysis.fit_qqt(n, y_low, q["n_low"], tau_range=tau_range)
    x, _ = _crossover(ft["a"], ft["b"], fl["b"], ft["tau"], grid)
    res["fits"].append({"top": ft, "low": fl})
    res["crossover"].append(x)
    res["rel_err_b"].append(max(abs(ft["b"] / q["b_top"] - 1), abs(fl["b"] / q["b_low"] - 1)))
    res["rel_err_tau"].append(abs(ft["tau"] / q["tau"] - 1))
    res["rel_err_a"].append(abs(ft["a"] / q["a"] - 1))
  return res


# ---- [31] per-module forgetting and FPF -------------------------------------------------------------------------

_CL_DIM, _CL_HIDDEN, _CL_TRAIN, _CL_TEST = 16, 64, 100, 100   # input dim, MLP width, train / test samples per class


def _mlp_init(key, classes):
  k0, k1, k2 = jax.random.split(key, 3)
  dense = lambda k, i, o: {"w": jax.random.normal(k, (i, o)) * jnp.sqrt(2.0 / i), "b": jnp.zeros((o,))}
  return {"dense0": dense(k0, _CL_DIM, _CL_HIDDEN), "dense1": dense(k1, _CL_HIDDEN, _CL_HIDDEN),
          "head": dense(k2, _CL_HIDDEN, classes)}


def _mlp(p, x):
  h = jax.nn.relu(x @ p["dense0"]["w"] + p["dense0"]["b"])
  h = jax.nn.relu(h @ p["dense1"]["w"] + p["dense1"]["b"])
  return h @ p["head"]["w"] + p["head"]["b"]


def _cl_data(key, config: Config):
  c = 2 * config.cl_tasks
  km, ktr, kte = jax.random.split(key, 3)
  mu = jax.random.normal(km, (c, _CL_DIM)) * 1.5
  xtr = mu[:, None] + jax.random.normal(ktr, (c, _CL_TRAIN, _CL_DIM))           # [C, n, D]
  xte = (mu[:, None] + jax.random.normal(kte, (c, _CL_TEST, _CL_DIM))).reshape(-1, _CL_DIM)
  return xtr, xte, jnp.repeat(jnp.arange(c), _CL_TEST)


def _ce(p, x, y, w):
  l = optax.losses.softmax_cross_entropy_with_integer_labels(_mlp(p, x), y)
  return jnp.sum(w * l) / jnp.maximum(jnp.sum(w), 1.0)


def _cl_train(key, config: Config, replay: bool):
  """Tasks in order, Adam per task; with `replay`, each step adds the buffer of the classes seen so far. Returns the
  final params and the params at the end of every task [T]."""
  c = 2 * config.cl_tasks
  xtr, _, _ = _cl_data(key, config)
  b = config.buffer_per_class
  bx = xtr[:, :b].reshape(-1, _CL_DIM)
  by = jnp.repeat(jnp.arange(c), b)
  tx = optax.adam(config.cl_lr)
  p0 = _mlp_init(jax.random.fold_in(key, 1), c)

  def task(p, t):
    x = jax.lax.dynamic_slice_in_dim(xtr, 2 * t, 2).reshape(-1, _CL_DIM)
    y = jnp.repeat(2 * t + jnp.arange(2), _CL_TRAIN)
    wb = (by < 2 * t).astype(x.dtype) * float(replay)                # the buffer of the past tasks

    def loss(p):
      return _ce(p, x, y, jnp.ones_like(y, x.dtype)) + _ce(p, bx, by, wb)

    p, _ = minimize(loss, p, tx, length=config.cl_steps)
    return p, p

  return jax.lax.scan(task, p0, jnp.arange(config.cl_tasks))


def _cl_phase1(key, config: Config):
  _, xte, yte = _cl_data(key, config)
  acc = lambda p: jnp.mean(jnp.argmax(_mlp(p, xte), -1) == yte)
  naive, naive_hist = _cl_train(key, config, replay=False)
  er, _ = _cl_train(key, config, replay=True)
  prev = jax.tree.map(lambda h: h[:-1], naive_hist)
  nxt = jax.tree.map(lambda h: h[1:], naive_hist)
  drift = jax.vmap(lambda a, b: analysis.module_drift(a, b))(prev, nxt)          # per task transition
  return {"naive": naive, "acc_naive": acc(naive), "acc_er": acc(er),
          "drift": {k: jnp.mean(v) for k, v in drift.items()}}


def _cl_fpf(key, naive, modules, config: Config):
  c = 2 * config.cl_tasks
  xtr, xte, yte = _cl_data(key, config)
  b = config.buffer_per_class
  bx, by = xtr[:, :b].reshape(-1, _CL_DIM), jnp.repeat(jnp.arange(c), b)
  tx = analysis.fpf_transform(optax.adam(config.cl_lr), naive, modules)
  p, _ = minimize(lambda p: _ce(p, bx, by, jnp.ones_like(by, bx.dtype)), naive, tx, length=config.fpf_steps)
  return jnp.mean(jnp.argmax(_mlp(p, xte), -1) == yte)


def run_fpf(config: Config) -> dict:
  keys = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), 31), config.seeds)
  keys = shard_leading(keys, make_mesh(config.mesh), what="seed")
  ph1 = jax.jit(jax.vmap(functools.partial(_cl_phase1, config=config)))(keys)
  drift = {k: np.asarray(v) for k, v in ph1["drift"].items()}                    # module -> [seeds]
  order = sorted(drift, key=lambda k: -float(np.mean(drift[k])))
  chosen = [order[0]] if config.fpf_modules == "most_drift" else [order[-1]]
  acc_fpf = jax.jit(jax.vmap(functools.partial(_cl_fpf, modules=chosen, config=config)))(keys, ph1["naive"])
  c = 2 * config.cl_tasks
  er_work = config.cl_steps * sum(2 * t * config.buffer_per_class for t in range(config.cl_tasks))
  fpf_work = config.fpf_steps * c * config.buffer_per_class
  return {"drift": {k: v.tolist() for k, v in drift.items()}, "order": order, "chosen": chosen,
          "acc_naive": np.asarray(ph1["acc_naive"]).tolist(), "acc_er": np.asarray(ph1["acc_er"]).tolist(),
          "acc_fpf": np.asarray(acc_fpf).tolist(), "replay_sample_grads_er": er_work,
          "replay_sample_grads_fpf": fpf_work}



# ---- run / claims / figure -------------------------------------------------------------------------------------

def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  out = {"osborn": sweep.memoized(workdir, {"part": "osborn117"}, lambda: run_osborn(config))}
  log.log(0, part=117, **{k: float(np.mean(v)) for k, v in out["osborn"].items()})
  out["qqt"] = sweep.memoized(workdir, {"part": "qqt70"}, lambda: run_qqt(config))
  log.log(1, part=70, crossover=float(np.mean(out["qqt"]["crossover"])), true_crossover=out["qqt"]["true_crossover"])
  out["fpf"] = sweep.memoized(workdir, {"part": "fpf31"}, lambda: run_fpf(config))
  log.log(2, part=31, acc_fpf=float(np.mean(out["fpf"]["acc_fpf"])), acc_er=float(np.mean(out["fpf"]["acc_er"])))
  _figure(out, config, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  out = []
  ob = results["osborn"]
  out.append(Claim.at_least("[117] greedy selection / exhaustive OPT of the (monotone-offset) OSBORN score, min over "
                            "seeds", float(np.min(ob["greedy_ratio"])), 1 - 1 / np.e, paper=">= 1 - 1/e",
                            kind="sanity", where="Sec. 3 (submodular score, greedy selection) [117]"))
  out.append(Claim.at_least("[117] diminishing returns of the OSBORN score, min over every (S in T, x not in T) of "
                            "the pool and seeds", float(np.min(ob["min_diminishing_return"])), -1e-5,
                            paper="the score is submodular", kind="sanity", where="Sec. 3 (submodularity) [117]"))
  d117 = np.asarray(ob["spearman_osborn"]) - np.asarray(ob["spearman_msleep"])
  out.append(Claim.at_least("[117] Spearman(score, ensemble target accuracy) over all k-subsets: OSBORN - MS-LEEP "
                            "(mean over seeds)", float(np.mean(d117)), 0.0,
                            paper="OSBORN correlates better than MS-LEEP / E-LEEP", kind="paper",
                            where="Tables 1-2 [117]"))
  out.append(Claim.at_most("[117] Sinkhorn W_D (eps = 0.01) / exact OT - 1 on one source-target pair",
                           abs(float(ob["sinkhorn_vs_exact"])), 0.05, paper="entropic OT -> OT as eps -> 0",
                           kind="sanity"))
  qq = results["qqt"]
  worst = max(max(qq["rel_err_b"]), max(qq["rel_err_tau"]), max(qq["rel_err_a"]))
  out.append(Claim.at_most("[70] fitted (a, b, tau) vs the true law from noisy error curves: max relative error over "
                           "parameters, pools and seeds", worst, 0.05, paper="the law fits the curves",
                           kind="sanity", where="Sec. 3, Fig. 3 (fits of the per-pool laws) [70]"))
  true_x = float(qq["true_crossover"])
  rel = [abs(x / true_x - 1) if np.isfinite(x) and np.isfinite(true_x) else np.inf for x in qq["crossover"]]
  ok = bool(qq["top_wins_first"]) and np.isfinite(true_x)
  out.append(Claim.at_most("[70] QQT: the top pool alone wins at low compute, the union of pools beyond a crossover; "
                           "crossover predicted from the fitted laws vs the true one (max relative error over seeds)",
                           max(rel) if ok else np.inf, 0.1,
                           paper="filtering is best at low compute, worse beyond a crossover", kind="sanity",
                           where="Fig. 1; Sec. 4 (the Pareto frontier of pools vs compute) [70]"))
  fp = results["fpf"]
  mean_drift = {k: float(np.mean(v)) for k, v in fp["drift"].items()}
  ranked = sorted(mean_drift.values(), reverse=True)
  out.append(Claim.at_least("[31] the last layer drifts most: head's mean drift / the next module's (must be the top "
                            f"module; top = {fp['order'][0]})",
                            ranked[0] / ranked[1] if fp["order"][0] == "head" else 0.0, 1.5,
                            paper="forgetting concentrates in a few modules (last layers, BN)", kind="paper",
                            where="Sec. 3, Figs. 1-3 [31]"))
  gap = float(np.mean(np.asarray(fp["acc_fpf"]) - np.asarray(fp["acc_er"])))
  work = fp["replay_sample_grads_fpf"] / fp["replay_sample_grads_er"]
  out.append(Claim.at_least(f"[31] FPF on {fp['chosen']} (buffer only, after plain sequential training) - every-step "
                            f"replay accuracy (mean over seeds), at {work:.2f} of replay's buffer gradients "
                            "(must be <= 0.25)", gap if work <= 0.25 else -np.inf, -0.05,
                            paper="FPF ~ replay at a fraction of the compute", kind="paper",
                            where="Sec. 4, Tables 1-2 [31]"))
  out.append(Claim.at_least("[31] every-step replay - plain sequential training accuracy (mean over seeds)",
                            float(np.mean(np.asarray(fp["acc_er"]) - np.asarray(fp["acc_naive"]))), 0.2,
                            paper="catastrophic forgetting without replay", kind="sanity"))
  return out


def _figure(out, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  ob = out["osborn"]
  ax = axes[0]
  x = np.arange(len(ob["spearman_osborn"]))
  ax.bar(x - 0.2, ob["spearman_osborn"], 0.4, label="OSBORN (our reading)")
  ax.bar(x + 0.2, ob["spearman_msleep"], 0.4, label="MS-LEEP (sum of LEEPs)")
  ax.set_xlabel("seed")
  ax.set_ylabel("Spearman with ensemble target accuracy")
  ax.set_title("[117] transferability of k-model ensembles")
  ax.legend(fontsize=8)
  q = _QQT
  grid = np.geomspace(1e2, 1e7, 200)
  ax = axes[1]
  ax.loglog(grid, np.asarray(analysis.qqt_error(grid, q["n_top"], q["a"], q["b_top"], q["tau"], max_epochs=501)),
            label="top pool repeated (true law)")
  ax.loglog(grid, np.asarray(analysis.qqt_mix_error(grid, [q["n_top"], q["n_low"]], q["a"], [q["b_top"], q["b_low"]],
                                                    q["tau"], max_epochs=51)), label="top + lower pool (true law)")
  ax.axvline(out["qqt"]["true_crossover"], color="k", ls=":", label="true crossover")
  for x in out["qqt"]["crossover"]:
    if np.isfinite(x):
      ax.axvline(x, color="r", alpha=0.4, ls="--")
  ax.set_xlabel("samples seen (compute)")
  ax.set_ylabel("error")
  ax.set_title(f"[70] QQT (red: crossovers predicted by fits, {config.fit_decay})")
  ax.legend(fontsize=8)
  save_figure(fig, workdir / "figure.png")
