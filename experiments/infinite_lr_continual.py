"""Infinite vs repeated-cosine learning-rate schedules for continual pre-training of a small LM over task shifts.

Paper [175]: Vaibhav Singh, Paul Janson, Paria Mehrbod, Adam Ibrahim, Irina Rish, Eugene Belilovsky, Benjamin
Therien, "Beyond Cosine Decay: On the effectiveness of Infinite Learning Rate Schedule for Continual Pre-training",
CoLLAs 2025, arXiv:2503.02844 (the schedule: Ibrahim et al. 2024, arXiv:2403.08763, Sec. 7).

Setup (the paper's continual LM pre-training, at toy scale). K tasks = K seeded random Markov languages over one
vocabulary (`jaxlib_methods.data.random_markov_language`) that share half (`shared_weight`) of their transition
probabilities with a common language (a shift of distribution, not an unrelated task), seen one after the other (K - 1
task shifts), each for
`task_steps` steps of next-token prediction by the project's NNX transformer (`jaxlib_methods.nn.transformer`), with
Adam and one of two schedules of the same peak eta_max and floor eta_min:
  repeated cosine   `repeated_cosine_schedule`: every task re-warms linearly to eta_max, then cosine-decays to eta_min;
  infinite          `continual_infinite_lr_schedule`: task 0 warms up, cools down (cosine) to eta_const, holds it and
                    anneals exponentially to eta_min over its last `anneal_steps`; every later task returns to
                    eta_const (never to eta_max), holds it and anneals again.
Both schedules start from the same initialisation and see the same token stream (paired per seed); every
(schedule, seed) run is batched in one state and advanced by the shared training loop (`runner.train`). After each
task the loss on every task's held-out sequences is measured: L[k, j] = loss on task j after training on task k.
Forgetting is F = mean_{j < K-1} (L[K-1, j] - L[j, j]) (loss gained on the earlier tasks by the end).

Claims (tolerances fixed before the run):
  1. (paper) the infinite schedule forgets less: the 95% CI over seeds of F(infinite) - F(cosine) lies below 0
     (strictly: upper end <= -1e-6);
  2. (paper) at equal final loss: on the last task, loss(infinite) - loss(cosine) <= `final_loss_tolerance` nats
     (upper end of the paired 95% t-interval over seeds; until 2026-12-03 the mean over seeds);
  3. (paper) over all tasks at the end, the infinite schedule's mean loss is lower (95% CI of the difference < 0);
  4. (sanity) the schedules are what they claim: the infinite rate never exceeds eta_const after the first task, the
     cosine one returns to eta_max on every task.
MUTATIONS: the infinite schedule re-warmed to eta_max on every task and held there (`rewarm=true`, eta_const = eta_max:
the re-warming the paper blames for forgetting, without the cool-down). Re-warming alone (eta_const < eta_max kept) is
not a mutation here: at the TINY size its constant phase still forgets less than the cosine's decay from the peak.
Claims audit (2026-12-03): claim 2 compared the two schedules (same seeds, same initialisation and token stream) on
the seed mean, not against seed noise. Pre-registered before the judged run: it is judged on the upper end of the
paired 95% Student-t interval of the per-seed differences (`experiments/_seed_stats`), the tolerance 0.02 nats and
every setting (4 seeds, the cpu preset) unchanged. Claims 1 and 3 already use the interval; claim 4 is a sanity row
on the schedules (deterministic). The interval code is now `_seed_stats.mean_ci` (the same t-interval as the local
helper it replaces). Judged run (`python -m experiments run infinite_lr_continual --preset cpu --workdir
/tmp/rec_s24/infinite_lr_continual --fresh`, 2026-12-03, 129 s wall under load): 4/4 claims pass. Claim 2: final-task
loss infinite - cosine per seed +0.0032 / +0.0030 / +0.0022 / +0.0086, 0.0042 [-0.0004, 0.0089] nats, upper end <=
0.02; claim 1: forgetting -0.053 [-0.060, -0.047]; claim 3: -0.030 [-0.035, -0.025] (95% CI, 4 seeds). The
mutation test (TINY) still passes.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from experiments import _seed_stats
from jaxlib_methods.data import sample_markov_sequences
from jaxlib_methods.data.synthetic_language import MarkovLanguage
from jaxlib_methods.nn.transformer import TransformerConfig, TransformerLM, next_token_loss
from jaxlib_methods.optim import continual_infinite_lr_schedule, infinite_lr_schedule, repeated_cosine_schedule
from jaxlib_methods.runner import Claim, MeshConfig, Paper, make_mesh, save_figure, scan_steps, shard_leading, train
from jaxlib_methods.runner.constraints import Check, PositiveFloat, PositiveInt, Probability, Range, Seed

PAPER = Paper(catalog_id=175, title="Beyond Cosine Decay: On the effectiveness of Infinite Learning Rate Schedule for "
              "Continual Pre-training", year=2025, arxiv="2503.02844")
DEMO = False
SCHEDULES = ("cosine", "infinite")


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  tasks: Annotated[int, Range(ge=2)] = 4           # K (K - 1 task shifts)
  task_steps: Annotated[int, Range(ge=8)] = 200
  vocab_size: Annotated[int, Range(ge=2)] = 32
  concentration: PositiveFloat = 0.1               # Dirichlet concentration of each language's transition rows
  shared_weight: Probability = 0.5                 # w: the tasks' languages share w of their transitions
  seq_len: Annotated[int, Range(ge=2)] = 32
  batch: PositiveInt = 16
  eval_batch: PositiveInt = 64
  d_model: PositiveInt = 32
  num_layers: PositiveInt = 1
  num_heads: PositiveInt = 2
  peak_lr: PositiveFloat = 1e-2                    # eta_max
  constant_lr: PositiveFloat = 3e-3                # eta_const
  end_lr: PositiveFloat = 3e-4                     # eta_min
  warmup_steps: PositiveInt = 20
  cooldown_steps: PositiveInt = 40
  anneal_steps: PositiveInt = 40
  rewarm: bool = False                             # mutation: the infinite schedule re-warms to eta_max every task
  seeds: Annotated[int, Range(ge=3)] = 4
  final_loss_tolerance: PositiveFloat = 0.02       # nats
  log_every: PositiveInt = 50
  mesh: MeshConfig = MeshConfig()   # devices the (seed, schedule) runs are split over

  CHECKS = (Check("task_steps % log_every == 0", "the loss matrix is measured at every task boundary"),
            Check("warmup_steps + cooldown_steps + anneal_steps <= task_steps",
                  "the first task holds the whole infinite schedule"),
            Check("end_lr <= constant_lr <= peak_lr", "the rate cools down and anneals downwards"),
            Check("d_model % num_heads == 0", "the heads split the model width"))


PRESETS = {"cpu": Config(),
           "gpu": Config(task_steps=3000, d_model=128, num_layers=2, num_heads=4, vocab_size=256, seq_len=128,
                         batch=64, eval_batch=256, warmup_steps=100, cooldown_steps=500, anneal_steps=300, seeds=8,
                         log_every=250),
           "tpu": Config(task_steps=3000, d_model=128, num_layers=2, num_heads=4, vocab_size=256, seq_len=128,
                         batch=64, eval_batch=256, warmup_steps=100, cooldown_steps=500, anneal_steps=300, seeds=8,
                         log_every=250)}
TINY = ("tasks=3", "task_steps=100", "seeds=3", "eval_batch=32", "warmup_steps=10", "cooldown_steps=20",
        "anneal_steps=20")
MUTATION_TEST_SLOW = True   # the TINY run compiles a transformer step (~20 s of CPU): its mutation test runs under -m slow
MUTATIONS = {"rewarm_to_peak": ("rewarm=true", "constant_lr=0.01")}   # constant_lr = the cpu peak_lr


def schedules(config: Config) -> dict[str, optax.Schedule]:
  """The two optax schedules over K * task_steps steps (with `rewarm`, the infinite one re-warms every task)."""
  steps = [config.task_steps] * config.tasks
  cos = repeated_cosine_schedule(config.peak_lr, config.end_lr, task_steps=steps, warmup_steps=config.warmup_steps)
  if config.rewarm:
    one = infinite_lr_schedule(config.peak_lr, config.constant_lr, config.end_lr, warmup_steps=config.warmup_steps,
                               cooldown_steps=config.cooldown_steps,
                               anneal_start=config.task_steps - config.anneal_steps, anneal_steps=config.anneal_steps)
    inf = optax.join_schedules([one] * config.tasks, list(np.cumsum(steps)[:-1]))
  else:
    inf = continual_infinite_lr_schedule(config.peak_lr, config.constant_lr, config.end_lr, task_steps=steps,
                                         warmup_steps=config.warmup_steps, cooldown_steps=config.cooldown_steps,
                                         anneal_steps=config.anneal_steps)
  return {"cosine": cos, "infinite": inf}


def task_languages(config: Config) -> list[MarkovLanguage]:
  """K languages sharing structure: P_j = w P_shared + (1 - w) P_j', with P_shared and P_j' random Markov languages as
  in `jaxlib_methods.data.random_markov_language` (rows ~ Dirichlet(concentration * 1), drawn here with NumPy: no
  XLA compile of the Dirichlet sampler), and the exact stationary distribution of each mixture (float64)."""
  rng = np.random.default_rng([config.seed, 175])
  make = lambda: np.maximum(rng.dirichlet(np.full(config.vocab_size, config.concentration), config.vocab_size), 1e-12)
  shared = make()
  out = []
  for _ in range(config.tasks):
    p = config.shared_weight * shared + (1 - config.shared_weight) * make()
    p /= p.sum(-1, keepdims=True)
    w, vecs = np.linalg.eig(p.T)
    pi = np.abs(np.real(vecs[:, np.argmin(np.abs(w - 1))]))
    out.append(MarkovLanguage(jnp.asarray(p, jnp.float32), jnp.asarray(pi / pi.sum(), jnp.float32)))
  return out


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  k, s, n = config.tasks, config.seeds, config.task_steps
  langs = task_languages(config)
  transitions = jnp.stack([l.transition for l in langs])
  stationaries = jnp.stack([l.stationary for l in langs])
  eval_key = jax.random.key(config.seed + 1)
  eval_tokens = jnp.stack([jnp.stack([sample_markov_sequences(jax.random.fold_in(eval_key, 100 * sd + j), langs[j],
                                                              config.eval_batch, config.seq_len)
                                      for j in range(k)]) for sd in range(s)])   # [s, K, B, T]
  cfg = TransformerConfig(vocab_size=config.vocab_size, d_model=config.d_model, num_layers=config.num_layers,
                          num_heads=config.num_heads)
  splits = [nnx.split(TransformerLM(cfg, rngs=nnx.Rngs(config.seed + 10 + sd)), nnx.Param) for sd in range(s)]
  graphdef = splits[0][0]   # one initialisation per seed, shared by both schedules: run r = (seed r // 2, sched r % 2)
  params0 = jax.tree.map(lambda *p: jnp.repeat(jnp.stack(p), len(SCHEDULES), axis=0), *[sp[1] for sp in splits])
  run_seed = jnp.asarray(np.repeat(np.arange(s), len(SCHEDULES)))
  run_sched = jnp.asarray(np.tile(np.arange(len(SCHEDULES)), s))
  core = optax.scale_by_adam()
  scheds = schedules(config)
  state = {"params": params0, "opt": jax.vmap(core.init)(params0)}
  # The (seed, schedule) runs train on their own devices: models, Adam states and run ids split over the mesh.
  state, run_seed, run_sched = shard_leading((state, run_seed, run_sched), make_mesh(config.mesh),
                                             what="(seed, schedule) run")
  data_key = jax.random.key(config.seed + 2)

  def loss_fn(p, toks):
    return next_token_loss(nnx.merge(graphdef, p)(toks), toks)[0]

  def one_step(st, t):
    task = jnp.minimum(t // n, k - 1)
    lang = MarkovLanguage(transitions[task], stationaries[task])
    lrs = jnp.stack([scheds[name](t) for name in SCHEDULES])

    def per_run(p, o, sd, sc):
      toks = sample_markov_sequences(jax.random.fold_in(jax.random.fold_in(data_key, sd), t), lang, config.batch,
                                     config.seq_len)
      g = jax.grad(loss_fn)(p, toks)
      u, o = core.update(g, o, p)
      return jax.tree.map(lambda w, d: w - lrs[sc] * d, p, u), o

    p, o = jax.vmap(per_run)(st["params"], st["opt"], run_seed, run_sched)
    return {"params": p, "opt": o}, None

  advance = scan_steps(one_step)

  @jax.jit
  def eval_losses(st):   # [runs, K]
    return jax.vmap(lambda p, sd: jax.vmap(lambda toks: loss_fn(p, toks))(eval_tokens[sd]))(st["params"], run_seed)

  def measure(st, step):
    losses = np.asarray(eval_losses(st), np.float64).reshape(s, len(SCHEDULES), k).mean(0)
    return {f"{name}/task{j}": float(losses[i, j]) for i, name in enumerate(SCHEDULES) for j in range(k)}

  snapshots = {}

  def measure_and_keep(st, step):
    out = measure(st, step)
    if step % n == 0 and step > 0:
      snapshots[step // n - 1] = np.asarray(eval_losses(st), np.float64).reshape(s, len(SCHEDULES), k)
    return out

  result = train(workdir=workdir, state=state, advance=advance, measure=measure_and_keep, num_steps=k * n,
                 log_every=config.log_every, checkpoint_every=None, desc="infinite-lr")
  if len(snapshots) < k:   # resumed from a checkpoint: the per-task snapshots come from the logged rows (seed means)
    raise RuntimeError("infinite_lr_continual needs every task boundary measured in one run; rerun with --fresh")
  mat = np.stack([snapshots[i] for i in range(k)], axis=-2)   # [s, schedules, K trained, K evaluated]
  diag = np.stack([mat[..., j, j] for j in range(k - 1)], -1)
  forgetting = (mat[..., k - 1, :k - 1] - diag).mean(-1)          # [s, schedules]
  final_task = mat[..., k - 1, k - 1]
  all_tasks = mat[..., k - 1, :].mean(-1)

  ci = _seed_stats.mean_ci   # of the per-seed differences: paired (the same seed, init and tokens for both)

  ic, ii = SCHEDULES.index("cosine"), SCHEDULES.index("infinite")
  grid = np.arange(k * n)
  lr_curves = {name: np.asarray(jax.vmap(scheds[name])(jnp.asarray(grid)), np.float64) for name in SCHEDULES}
  later = grid >= n
  peaks_per_task = [float(lr_curves["cosine"][j * n:(j + 1) * n].max()) for j in range(k)]
  results = {
      "loss_matrix_mean": {name: mat[:, i].mean(0).tolist() for i, name in enumerate(SCHEDULES)},
      "forgetting": {name: forgetting[:, i].tolist() for i, name in enumerate(SCHEDULES)},
      "forgetting_diff": ci(forgetting[:, ii] - forgetting[:, ic]),
      "final_task_loss": {name: final_task[:, i].tolist() for i, name in enumerate(SCHEDULES)},
      "final_task_diff": ci(final_task[:, ii] - final_task[:, ic]),
      "all_tasks_diff": ci(all_tasks[:, ii] - all_tasks[:, ic]),
      "infinite_max_lr_after_task0": float(lr_curves["infinite"][later].max()),
      "cosine_min_peak_per_task": min(peaks_per_task),
      "peak_lr": config.peak_lr,
      "constant_lr": config.constant_lr,
      "final_loss_tolerance": config.final_loss_tolerance,
      "lr_curves": {name: v[::max(1, n // 50)].tolist() for name, v in lr_curves.items()},
      "lr_curve_stride": max(1, n // 50),
      "curves": result.rows,
      "tasks": k,
      "task_steps": n,
  }
  _figure(results, workdir)
  return results


def claims(results: dict) -> list[Claim]:
  f, e, a = results["forgetting_diff"], results["final_task_diff"], results["all_tasks_diff"]
  where = "Abstract; Sec. 5 (continual LM pre-training: infinite vs repeated cosine decay)"
  no_rewarm = results["infinite_max_lr_after_task0"] <= results["constant_lr"] * (1 + 1e-6)
  rewarms = results["cosine_min_peak_per_task"] >= 0.99 * results["peak_lr"]
  return [
      Claim.at_most("forgetting F (loss gained on earlier tasks by the end): infinite - cosine (95% CI upper end over "
                    "seeds, nats; strictly < 0)", f["hi"], -1e-6,
                    paper="< 0 (re-warming causes forgetting)", kind="paper", where=where),
      Claim.at_most("final-task loss: infinite - cosine (95% CI upper end over seeds, nats; "
                    f"{_seed_stats.fmt_ci(e, 4)})", e["hi"],
                    results["final_loss_tolerance"], paper="<= 0 (equal or better final loss)", kind="paper",
                    where=where),
      Claim.at_most("mean loss over all tasks at the end: infinite - cosine (95% CI upper end over seeds)",
                    a["hi"], 0.0, paper="< 0 (infinite surpasses repeated cosine)", kind="paper", where=where),
      Claim.holds("the infinite rate stays <= eta_const after task 0 and the cosine rate returns to eta_max every task",
                  no_rewarm and rewarms, kind="sanity"),
  ]


def _figure(results, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  k, n = results["tasks"], results["task_steps"]
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  stride = results["lr_curve_stride"]
  for name, style in (("cosine", "--"), ("infinite", "-")):
    lr = np.asarray(results["lr_curves"][name])
    axes[0].plot(np.arange(len(lr)) * stride, lr, style, label=name)
  axes[0].set_xlabel("step")
  axes[0].set_ylabel("learning rate")
  axes[0].legend()
  rows = results["curves"]
  steps = [r["step"] for r in rows]
  for j in range(k):
    for name, style in (("cosine", "--"), ("infinite", "-")):
      axes[1].plot(steps, [r[f"{name}/task{j}"] for r in rows], style, color=f"C{j}",
                   label=f"task {j} ({name})" if j == 0 or name == "infinite" else None)
  for j in range(1, k):
    axes[1].axvline(j * n, color="0.8", lw=0.8)
  axes[1].set_xlabel("step")
  axes[1].set_ylabel("held-out loss per task (mean over seeds)")
  axes[1].legend(fontsize=7)
  for i, name in enumerate(("cosine", "infinite")):
    axes[2].bar(np.arange(k - 1) + 0.4 * i, np.asarray(results["loss_matrix_mean"][name])[k - 1, :k - 1]
                - np.diag(results["loss_matrix_mean"][name])[:k - 1], width=0.4, label=name)
  axes[2].set_xlabel("earlier task j")
  axes[2].set_ylabel("forgetting: L[K-1, j] - L[j, j] (nats)")
  axes[2].legend()
  fig.suptitle("Infinite vs repeated-cosine schedules over task shifts (Singh et al. 2025)")
  save_figure(fig, workdir / "figure.png")
