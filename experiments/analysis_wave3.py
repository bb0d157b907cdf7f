"""Analysis wave 3 (issue 21): a streaming nearest-mean classifier over frozen features [28] and window-based
early-exit cascades for selective classification [100], each on a synthetic toy with a known answer.

Paper [28]: Paul Janson, Wenxuan Zhang, Rahaf Aljundi, Mohamed Elhoseiny, "A Simple Baseline that Questions the Use
of Pretrained-Models in Continual Learning", NeurIPS 2022 workshop (DistShift), arXiv:2210.04428.
Paper [100]: Guoxuan Xia, Christos-Savvas Bouganis, "Window-Based Early-Exit Cascades for Uncertainty Estimation:
When Deep Ensembles are More Efficient than Single Models", ICCV 2023, arXiv:2303.08010.

[28] Class-incremental stream: `classes` Gaussian classes in R^`dim` (means N(0, separation^2 I), unit noise) seen
through a frozen random feature map (tanh(x W), W fixed: the "pretrained encoder"), split into `tasks` tasks of
equal numbers of classes, shown one task after the other. The NMC (`nearest_mean_update` over the stream, in
float64) against the batch NMC (class means of all training features at once) and against the usual baseline,
a linear softmax head on the same frozen features fine-tuned task after task (Adam, `ft_steps` full-batch steps per
task), and experience replay (ER: the same head, each task's full batch joined by a class-balanced buffer of the
first `replay_per_class` training examples of every class of the earlier tasks). Claims (tolerances fixed before the
run, `seeds` seeds vmapped; paired = the same seed's data for both arms):
  1. sanity (exact, an identity of running means): the streaming NMC predicts exactly what the batch NMC predicts
     (fraction of test points that differ, max over seeds and task orders, 0);
  2. sanity (exact): its final accuracy is invariant to the stream order (`orders` orders: random task orders,
     shuffled within each task, fed in `batches_per_task` mini-batches per task; max - min over orders, max over
     seeds, <= 1e-12);
  3. paper: the NMC's final accuracy exceeds the sequentially fine-tuned head's by >= 0.2 (lower end of the paired
     95% t-interval over seeds; the paper: the NMC baseline surpasses most continual learners built on the same
     frozen model, Table 1);
  4. paper: the NMC's final accuracy is not below experience replay's: lower end of the paired 95% t-interval of
     NMC - ER >= 0 (Table 1: NMC, 88.53%, above the replay-based learners it lists on the same pretrained model;
     the rows are taken from L2P's table, whose buffer sizes could not be read here).
Mutation `nmc_update=sum`: the stream keeps class SUMS (the running mean without its division by the count, a
plausible slip), so prediction picks the class with the smallest summed vector; claims 3-4 fail.

Claims audit (2026-12-03) and what was done: claims 1-2 are exact identities of running means (now sanity rows);
claim 3 compared with naive fine-tuning without replay, a weak baseline, and was judged on the seed mean; the
mutation `ema_means` failed claims 1-2 only. Now claim 3 is judged on the paired interval, the ER baseline (claim 4)
was added and the mutation replaced. PRE-REGISTERED before any run of the ER arm: the buffer is
`replay_per_class` = 10% of `train_per_class` (5 at the cpu preset; 10% of the stream is the large end of the
buffers used on CIFAR-100, i.e. the choice favours the baseline), ER uses the head's optimiser, learning rate and
steps unchanged, claim 4's tolerance is 0 on the lower end, and the judged run is the cpu preset as it stands
(seeds from `seed` = 0, never used for an ER run before). Whatever it says is the result.
JUDGED RUN (2026-12-03, `python -m experiments run analysis_wave3 --workdir /tmp/rec_s24/analysis_wave3 --fresh`,
68 s wall on the shared 2-core machine, 7/7 claims): final accuracy per seed NMC 0.838 / 0.820 / 0.844, ER 0.690 /
0.712 / 0.678, fine-tuned head 0.317 / 0.304 / 0.249; NMC - fine-tuning +0.544 [0.434, 0.654] (claim 3 passes),
NMC - ER +0.141 [0.067, 0.214] (claim 4 passes). At TINY (4 seeds) the mutation `nmc_update=sum` turns both to
-0.33 and -0.50.

[100] A simulated 2-member deep ensemble of a K-class classifier: member logits 3 e_y / (0.3 + a) + g + e_m with a
per-sample difficulty a ~ Exp(1), a shared component g ~ N(0, I) and a member component e_m ~ N(0, member_noise^2
I); uncertainty = 1 - max softmax (the ensemble: of the mean softmax). Stage 1 = member 1; stage 2 = the ensemble of
both. On a validation half, the window (`window_cascade`) is the band of stage-1 uncertainties holding a fraction
`window_frac` of the samples, centred (in quantile) on the midpoint of the stage-1 and ensemble operating points at
5% risk (our choice: the paper places the window around the operating threshold); the single-threshold cascade
(Alg. 1) passes the `window_frac` most uncertain samples. Measured on the test half (coverage at 5% risk,
`coverage_at_risk`, mean over seeds):
  4. the window cascade matches the full ensemble: coverage >= ensemble - 0.01, while stage 2 runs on <= 25% of the
     samples (paper: a cascaded EfficientNet-B2 ensemble matches a B4's coverage at 5% risk with < 30% of its MACs);
  5. window beats the single-threshold cascade at the same stage-2 fraction by >= 0.01 and by > 2 seed std (Sec. 4,
     Fig. 5: for uncertainty tasks the samples worth passing on are those near the decision boundary);
  6. sanity: the full ensemble's coverage exceeds the single model's by >= 0.01 (there is a gain to keep).
Mutation `cascade_policy=threshold`: the "window" arm uses the single threshold; claim 4 fails.
Claims 4-5 PRE-REGISTERED again (2026-12-03, committed before the run): they were judged on the seed mean (claim 4:
mean >= -0.01; claim 5: mean - max(0.01, 2 std) >= 0, over 3 seeds). Now [100] runs on its own `cascade_seeds` =
16 seeds from a fresh stream (fold_in 1100, never run before; [28]'s seeds are unchanged) and: 4. the paired 95%
t-interval of window - ensemble coverage has its lower end >= -0.01 and stage 2 runs on <= 25% of the samples (max
over seeds); 5. the paired 95% t-interval of window - single-threshold coverage has its lower end > 0 and its mean
>= 0.01. One judged run at the cpu preset; whatever it says is the result.
Result (2026-12-03, `PYTHONPATH=. python -m experiments run analysis_wave3 --workdir /tmp/rec/runs4/analysis_wave3
--fresh`, 12 s wall with a warm compile cache, 7/7 claims): claim 4 passes, window - ensemble -0.006 [-0.007,
-0.005] (lower end -0.0071 >= -0.01), stage 2 on <= 0.207 of the samples; claim 5 passes, window - single threshold
+0.026 [0.023, 0.029]; the ensemble's gain over the single model 0.033 (sanity). [28]'s rows are unchanged.

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

from jaxlib_methods import analysis
from jaxlib_methods.runner import (Claim, MeshConfig, MetricsLog, Paper, make_mesh, minimize, save_figure,
                                   shard_leading, sweep)
from jaxlib_methods.runner.constraints import Check, PositiveFloat, PositiveInt, Range, Seed

from experiments._seed_stats import fmt_ci, paired_ci

PAPER = Paper(catalog_id=28, title="A Simple Baseline that Questions the Use of Pretrained-Models in Continual "
              "Learning", year=2022, arxiv="2210.04428")
ALSO_REPRODUCES = (Paper(catalog_id=100, title="Window-Based Early-Exit Cascades for Uncertainty Estimation: When "
                         "Deep Ensembles are More Efficient than Single Models", year=2023, arxiv="2303.08010"),)
DEMO = False
MUTATION_TEST_SLOW = True  # the TINY run compiles the two parts' vmapped programs (~15 s of CPU on 2 shared cores)


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=1, le=16)] = 3          # vmapped seeds
  # [28]
  classes: Annotated[int, Range(ge=2, le=200)] = 20
  tasks: Annotated[int, Range(ge=1, le=50)] = 5          # must divide `classes`
  dim: PositiveInt = 16                                  # input dimension
  features: PositiveInt = 64                             # frozen feature dimension
  separation: PositiveFloat = 1.0
  train_per_class: PositiveInt = 50
  test_per_class: PositiveInt = 50
  orders: Annotated[int, Range(ge=2, le=16)] = 4         # random task orders
  batches_per_task: PositiveInt = 5                      # mini-batches the stream feeds per task
  ft_steps: PositiveInt = 100                            # fine-tuning steps per task (baseline head)
  ft_lr: PositiveFloat = 0.05
  replay_per_class: PositiveInt = 5                      # ER baseline: stored training examples per earlier class
  nmc_update: Literal["running", "sum"] = "running"      # "sum": class sums, not means (a deliberate slip: mutation)
  # [100]
  samples: Annotated[int, Range(ge=200)] = 20000         # validation + test samples per seed (half each)
  num_classes: Annotated[int, Range(ge=2, le=1000)] = 10
  member_noise: PositiveFloat = 0.5
  window_frac: Annotated[float, Range(gt=0, lt=1)] = 0.2
  cascade_policy: Literal["window", "threshold"] = "window"   # "threshold": Alg. 1 in the window arm (mutation)
  cascade_seeds: Annotated[int, Range(ge=2, le=64)] = 16      # [100]'s own vmapped seeds (claims 4-5: paired CIs)
  mesh: MeshConfig = MeshConfig()                        # devices the vmapped seeds are split over (seeds: a multiple)

  CHECKS = (Check("classes % tasks == 0", "tasks must divide classes"),
            Check("(classes // tasks * train_per_class) % batches_per_task == 0",
                  "batches_per_task must divide a task's training samples"),
            Check("replay_per_class <= train_per_class", "replay_per_class must be <= train_per_class"))


PRESETS = {"cpu": Config(), "gpu": Config(seeds=8, samples=200000), "tpu": Config(seeds=8, samples=200000)}
TINY = ("classes=8", "tasks=4", "train_per_class=20", "replay_per_class=2", "test_per_class=20", "ft_steps=30",
        "orders=2", "samples=4000", "seeds=4")
MUTATIONS = {"unnormalised_means": ("nmc_update=sum",), "threshold_cascade": ("cascade_policy=threshold",)}
MUTATION_PAPERS = {"unnormalised_means": 28, "threshold_cascade": 100}


# ---- [28] streaming nearest-mean classifier --------------------------------------------------------------------

def _nmc_data(key, config: Config):
  """Frozen features of a class-incremental stream: train [C, n, F], test [C * m, F], test labels [C * m]."""
  c, d = config.classes, config.dim
  k_mu, k_w, k_tr, k_te = jax.random.split(key, 4)
  mu = jax.random.normal(k_mu, (c, d)) * config.separation
  w = jax.random.normal(k_w, (d, config.features)) / jnp.sqrt(d)
  enc = lambda x: jnp.tanh(x @ w)                                   # the frozen "pretrained" encoder
  xtr = mu[:, None, :] + jax.random.normal(k_tr, (c, config.train_per_class, d))
  xte = mu[:, None, :] + jax.random.normal(k_te, (c, config.test_per_class, d))
  yte = jnp.repeat(jnp.arange(c), config.test_per_class)
  return enc(xtr), enc(xte).reshape(-1, config.features), yte


def _stream_nmc(ftr, stream, config: Config):
  """Fold the training stream (`stream`: [C * n] indices, task after task, shuffled within each task) into the NMC,
  `batches_per_task` mini-batches per task, one `nearest_mean_update` each."""
  c = config.classes
  x = ftr.reshape(-1, ftr.shape[-1])[stream]
  y = jnp.repeat(jnp.arange(c), config.train_per_class)[stream]
  nb = config.tasks * config.batches_per_task
  xb, yb = x.reshape(nb, -1, x.shape[-1]), y.reshape(nb, -1)
  empty = analysis.nearest_mean_init(c, ftr.shape[-1], ftr.dtype)
  state, _ = jax.lax.scan(lambda s, b: (analysis.nearest_mean_update(s, *b), None), empty, (xb, yb))
  if config.nmc_update == "sum":  # mutation: the class sums, the running mean never divided by its count
    state = state._replace(means=state.means * state.counts[:, None].astype(state.means.dtype))
  return state


def _finetune_head(ftr, config: Config, replay: int = 0):
  """The baselines: a linear softmax head over all classes, fine-tuned on each task in turn (natural order); with
  `replay` > 0 each task's full batch is joined by the first `replay` training examples of every class of the earlier
  tasks (experience replay with a class-balanced buffer; the loss is the mean over the joined batch)."""
  c, t, f = config.classes, config.tasks, ftr.shape[-1]
  per = c // t
  task_x = ftr.reshape(t, per * config.train_per_class, f)
  task_y = jnp.repeat(jnp.arange(c), config.train_per_class).reshape(t, -1)
  buf_x = ftr[:, :replay].reshape(c * replay, f)                          # [C * replay, F]
  buf_y = jnp.repeat(jnp.arange(c), replay)
  tx = optax.adam(config.ft_lr)
  params = {"w": jnp.zeros((f, c), ftr.dtype), "b": jnp.zeros((c,), ftr.dtype)}

  def loss(p, i):
    x = jnp.concatenate([task_x[i], buf_x])
    y = jnp.concatenate([task_y[i], buf_y])
    w = jnp.concatenate([jnp.ones(task_y.shape[1], ftr.dtype), (buf_y // per < i).astype(ftr.dtype)])
    ce = optax.losses.softmax_cross_entropy_with_integer_labels(x @ p["w"] + p["b"], y)
    return jnp.sum(w * ce) / jnp.sum(w)

  def task(carry, i):
    p, _ = minimize(lambda p: loss(p, i), carry, tx, length=config.ft_steps)
    return p, None

  params, _ = jax.lax.scan(task, params, jnp.arange(t))
  return params


def _nmc_one_seed(key, orders, config: Config):
  ftr, fte, yte = _nmc_data(key, config)
  ftr64, fte64 = ftr.astype(jnp.float64), fte.astype(jnp.float64)
  batch = analysis.nearest_mean_update(analysis.nearest_mean_init(config.classes, config.features, jnp.float64),
                                       ftr64.reshape(-1, config.features),
                                       jnp.repeat(jnp.arange(config.classes), config.train_per_class))
  pred_batch = analysis.nearest_mean_predict(batch, fte64)
  states = jax.vmap(lambda o: _stream_nmc(ftr64, o, config))(orders)               # orders: [orders, C * n]
  preds = jax.vmap(lambda s: analysis.nearest_mean_predict(s, fte64))(states)       # [orders, N]
  acc = jnp.mean(preds == yte[None], axis=1)
  differ = jnp.max(jnp.mean(preds != pred_batch[None], axis=1))
  head_acc = lambda h: jnp.mean(jnp.argmax(fte @ h["w"] + h["b"], -1) == yte)
  ft_acc = head_acc(_finetune_head(ftr, config))
  er_acc = head_acc(_finetune_head(ftr, config, replay=config.replay_per_class))
  return {"nmc_acc": acc, "differ": differ, "ft_acc": ft_acc, "er_acc": er_acc,
          "batch_acc": jnp.mean(pred_batch == yte)}


def run_nmc(config: Config) -> dict:
  keys = jax.random.split(jax.random.key(config.seed), config.seeds)
  rng = np.random.default_rng(config.seed)
  per, n = config.classes // config.tasks, config.train_per_class
  task_idx = np.arange(config.classes * n).reshape(config.tasks, per * n)

  def stream(first: bool):
    order = np.arange(config.tasks) if first else rng.permutation(config.tasks)
    return np.concatenate([task_idx[t] if first else rng.permutation(task_idx[t]) for t in order])

  orders = np.stack([np.stack([stream(o == 0) for o in range(config.orders)])
                     for _ in range(config.seeds)])                         # [seeds, orders, C * n] stream orders
  with jax.enable_x64(True):
    keys, orders = shard_leading((keys, orders), make_mesh(config.mesh), what="seed")
    out = jax.jit(jax.vmap(functools.partial(_nmc_one_seed, config=config)))(keys, orders)
    return jax.tree.map(lambda x: np.asarray(x).tolist(), out)


# ---- [100] window-based early-exit cascades -------------------------------------------------------------------

def _cascade_one_seed(key, config: Config):
  n, k = config.samples, config.num_classes
  ky, ka, kg, k1, k2 = jax.random.split(key, 5)
  y = jax.random.randint(ky, (n,), 0, k)
  a = jax.random.exponential(ka, (n,))
  g = jax.random.normal(kg, (n, k))
  signal = 3.0 * jax.nn.one_hot(y, k) / (0.3 + a[:, None])
  z1 = signal + g + config.member_noise * jax.random.normal(k1, (n, k))
  z2 = signal + g + config.member_noise * jax.random.normal(k2, (n, k))
  p1 = jax.nn.softmax(z1)
  pe = (p1 + jax.nn.softmax(z2)) / 2
  u1, ue = 1 - p1.max(-1), 1 - pe.max(-1)
  y1, ye = jnp.argmax(p1, -1), jnp.argmax(pe, -1)
  val, te = slice(0, n // 2), slice(n // 2, n)
  f = config.window_frac
  cov1_val = analysis.coverage_at_risk(u1[val], y1[val] == y[val], 0.05)
  cove_val = analysis.coverage_at_risk(ue[val], ye[val] == y[val], 0.05)
  centre = (cov1_val + cove_val) / 2
  lo_w = jnp.quantile(u1[val], jnp.clip(centre - f / 2, 0.0, 1.0))
  hi_w = jnp.quantile(u1[val], jnp.clip(centre + f / 2, 0.0, 1.0))
  lo_t, hi_t = jnp.quantile(u1[val], 1 - f), jnp.inf
  if config.cascade_policy == "threshold":
    lo_w, hi_w = lo_t, hi_t
  yt = y[te]

  def cov(u, pred):
    return analysis.coverage_at_risk(u, pred == yt, 0.05)

  uw, pw, passed_w = analysis.window_cascade(u1[te], y1[te], ue[te], ye[te], lo_w, hi_w)
  ut, pt, passed_t = analysis.window_cascade(u1[te], y1[te], ue[te], ye[te], lo_t, hi_t)
  return {"single": cov(u1[te], y1[te]), "ensemble": cov(ue[te], ye[te]), "window": cov(uw, pw),
          "threshold": cov(ut, pt), "frac_window": jnp.mean(passed_w), "frac_threshold": jnp.mean(passed_t),
          "macs_window": analysis.cascade_macs(passed_w, (1.0, 1.0)),
          "aurc_single": analysis.aurc(u1[te], y1[te] == yt), "aurc_ensemble": analysis.aurc(ue[te], ye[te] == yt),
          "aurc_window": analysis.aurc(uw, pw == yt)}


def run_cascade(config: Config) -> dict:
  # stream 1100: fresh seeds for the paired-CI claims pre-registered on 2026-12-03 (stream 100, 3 seeds, before)
  keys = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), 1100), config.cascade_seeds)
  keys = shard_leading(keys, make_mesh(config.mesh), what="seed")
  out = jax.jit(jax.vmap(functools.partial(_cascade_one_seed, config=config)))(keys)
  return jax.tree.map(lambda x: np.asarray(x).tolist(), out)


# ---- run / claims / figure -------------------------------------------------------------------------------------

def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  out = {"nmc": sweep.memoized(workdir, {"part": "nmc28-er"}, lambda: run_nmc(config))}
  log.log(0, part=28, nmc_acc=float(np.mean(out["nmc"]["nmc_acc"])), ft_acc=float(np.mean(out["nmc"]["ft_acc"])))
  out["cascade"] = sweep.memoized(workdir, {"part": "cascade100"}, lambda: run_cascade(config))
  log.log(1, part=100, **{k: float(np.mean(v)) for k, v in out["cascade"].items()})
  _figure(out, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  nm, cs = results["nmc"], results["cascade"]
  acc = np.asarray(nm["nmc_acc"])                                # [seeds, orders]
  out = [
      Claim.at_most("[28] streaming NMC vs batch NMC: fraction of test predictions that differ (max over seeds and "
                    "task orders)", float(np.max(nm["differ"])), 0.0, paper="identical (the means are exact)",
                    kind="sanity"),
      Claim.at_most("[28] NMC final accuracy: max - min over task orders (max over seeds)",
                    float(np.max(acc.max(1) - acc.min(1))), 1e-12, paper="order-invariant", kind="sanity"),
  ]
  ft = paired_ci(acc[:, 0], nm["ft_acc"])
  out.append(Claim.at_least(f"[28] NMC final accuracy - sequentially fine-tuned linear head's: {fmt_ci(ft)}; lower "
                            "end", ft["lo"], 0.2, paper="NMC 88.53% surpasses most CL methods on the same frozen model",
                            kind="paper", where="Table 1, 10-Split-CIFAR-100 [28]"))
  er = paired_ci(acc[:, 0], nm["er_acc"])
  out.append(Claim.at_least(f"[28] NMC final accuracy - experience replay's (class-balanced buffer): {fmt_ci(er)}; "
                            "lower end", er["lo"], 0.0,
                            paper="NMC on the frozen model beats the replay-based learners on the same model",
                            kind="paper", where="Table 1, 10-Split-CIFAR-100 [28]"))
  w, e, t, s = (np.asarray(cs[k]) for k in ("window", "ensemble", "threshold", "single"))
  frac = float(np.max(cs["frac_window"]))
  we, wt = paired_ci(w, e), paired_ci(w, t)
  out.append(Claim.at_least(f"[100] window cascade - full ensemble coverage@5% risk: {fmt_ci(we)}; lower end, with "
                            f"stage 2 on <= {frac:.3f} of the samples (must be <= 0.25)",
                            we["lo"] if frac <= 0.25 else -np.inf, -0.01,
                            paper="cascade ~ larger model at 5% risk with < 30% of its MACs", kind="paper",
                            where="Abstract; Fig. 1 [100]"))
  out.append(Claim.at_least(f"[100] window - single-threshold cascade coverage@5% risk at the same stage-2 fraction: "
                            f"{fmt_ci(wt)}; min(lower end, mean - 0.01)", min(wt["lo"], wt["mean"] - 0.01), 1e-12,
                            paper="window-based exit beats single-threshold exit for uncertainty tasks",
                            kind="paper", where="Sec. 4, Fig. 5 [100]"))
  out.append(Claim.at_least("[100] full ensemble - single model coverage@5% risk (mean over seeds)",
                            float(np.mean(e - s)), 0.01, paper="ensembles improve selective classification",
                            kind="sanity"))
  return out


def _figure(out, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  nm = out["nmc"]
  acc = np.asarray(nm["nmc_acc"])
  ax = axes[0]
  x = np.arange(acc.shape[0])
  ax.bar(x - 0.27, acc[:, 0], 0.27, label="streaming NMC (order 0)")
  ax.bar(x, np.asarray(nm["er_acc"]), 0.27, label="experience replay head")
  ax.bar(x + 0.27, np.asarray(nm["ft_acc"]), 0.27, label="fine-tuned linear head")
  ax.set_xlabel("seed")
  ax.set_ylabel("final test accuracy")
  ax.set_title("[28] class-incremental stream, frozen features")
  ax.legend(fontsize=8)
  cs = out["cascade"]
  ax = axes[1]
  names = ("single", "threshold", "window", "ensemble")
  macs = (1.0, 1.0 + float(np.mean(cs["frac_threshold"])), 1.0 + float(np.mean(cs["frac_window"])), 2.0)
  for name, m in zip(names, macs):
    ax.errorbar(m, np.mean(cs[name]), yerr=np.std(cs[name]), fmt="o", label=name)
  ax.set_xlabel("average MACs per sample (single member = 1)")
  ax.set_ylabel("coverage at 5% risk")
  ax.set_title("[100] cascades of a 2-member ensemble")
  ax.legend(fontsize=8)
  save_figure(fig, workdir / "figure.png")
