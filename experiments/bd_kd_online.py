"""BD-KD: balancing forward and reverse KL in online distillation gives a better-calibrated student than plain online
KD (deep mutual learning), and (the paper's second statement, which does NOT reproduce here) a more accurate one.

Paper [76]: Ibtihel Amara, Nazanin Sepahvand, Brett H. Meyer, Warren J. Gross, James J. Clark, "BD-KD: Balancing the
Divergences for Online Knowledge Distillation", 2022 (v2 2024), arXiv:2212.12965.

The paper's point: in online KD (teacher and student trained together, each distilling from the other's softened
outputs) the student trained with the forward KL KL(p_t || p_s) ends over- or under-confident; BD-KD weighs the
forward and the reverse KL KL(p_s || p_t) per sample by the gap between the student's and the teacher's entropies,
which balances the student's confidence: lower ECE and equal or better accuracy than the online-KD baselines (its
CIFAR / TinyImageNet / ImageNet tables).

Setup. A K-class problem with overlapping classes (so confidence matters): Gaussian classes with random means and
label noise on the training set; a wide MLP teacher and a narrow MLP student, trained together from scratch with
Adam, temperature T, both for `steps` full-batch steps. Two runs per seed, the same data and initial weights:
  dml     the student's loss CE + T^2 KL(p_t^T || p_s^T) (`bd_kd_student_loss`, w_f = 1, w_r = 0);
  bd_kd   the student's loss CE + T^2 (w_f KL(p_t^T || p_s^T) + w_r KL(p_s^T || p_t^T)) with the per-sample weights of
          `bd_kd_entropy_weights` (reverse-KL-heavy where the student's entropy exceeds the teacher's);
the teacher's loss is the online-KD one in both (`online_kd_teacher_loss`). NOTE: the weighting rule in the library
is our reading of the paper (its text was not available to us; a secondary summary confirms "sample-wise weighting
guided by the entropy gap between teacher and student"), see jaxlib_methods.losses.bd_kd.

Claims (paired over `seeds` seeds, 95% t-intervals, tolerances fixed before the run):
  1. BD-KD lowers the student's ECE (the paper's calibration tables): the interval of ECE(bd_kd) - ECE(dml) lies
     below 0.
  2. BD-KD raises the student's accuracy (abstract: it "enhances both accuracy and model calibration"): the lower
     end of the interval of acc(bd_kd) - acc(dml) is > 0. (Until 2026-12-03 this claim read "at no loss of accuracy,
     lower end >= -0.01", weaker than the paper's statement; a claims audit found it, and it was restated in the
     paper's direction, which the recorded numbers below do not meet.)

What we measured (cpu preset, 5 seeds): the DML student is under-confident (mean confidence 0.75 at accuracy 0.93);
BD-KD raises its confidence and lowers ECE by 0.011 [0.009, 0.014], with accuracy -0.005 [-0.008, -0.001]: a small
significant LOSS, so claim 2 fails. The wide teacher (256 units) generalises worse than the student
(0.90 vs 0.93) on these noisy labels.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import _seed_stats as st
from jaxlib_methods.analysis import expected_calibration_error
from jaxlib_methods.losses import bd_kd
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, sweep
from jaxlib_methods.runner.constraints import NonNegativeFloat, PositiveFloat, PositiveInt, Probability, Range, Seed

PAPER = Paper(catalog_id=76, title="BD-KD: Balancing the Divergences for Online Knowledge Distillation", year=2022,
              arxiv="2212.12965")
DEMO = False


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=2)] = 5
  num_classes: Annotated[int, Range(ge=2)] = 10
  dim: PositiveInt = 20
  separation: NonNegativeFloat = 1.0
  label_noise: Probability = 0.2
  n_train: PositiveInt = 2000
  n_test: PositiveInt = 4000
  teacher_hidden: PositiveInt = 256
  student_hidden: PositiveInt = 16
  steps: PositiveInt = 1500
  learning_rate: PositiveFloat = 3e-3
  temperature: PositiveFloat = 2.0
  student_loss: Literal["bd_kd", "dml"] = "bd_kd"   # the BD-KD slot's student loss ("dml": a mutation)
  mesh: MeshConfig = MeshConfig()   # devices the independent runs (seeds) are split over

  CHECKS = ()

PRESETS = {"cpu": Config(), "gpu": Config(n_train=50000, n_test=20000, teacher_hidden=2048, student_hidden=64,
                                          steps=10000),
           "tpu": Config(n_train=50000, n_test=20000, teacher_hidden=2048, student_hidden=64, steps=10000)}
TINY = ("seeds=4", "steps=400", "n_train=600", "n_test=1000", "teacher_hidden=64")
MUTATIONS = {"dml_in_place_of_bd_kd": ("student_loss=dml",)}
MUTATION_TEST_SLOW = True  # TINY + mutation take ~45-110 s on 2 busy cores: under -m slow (test budget)


def make_data(config: Config, rep: int):
  rng = np.random.default_rng([config.seed, rep])
  k, d = config.num_classes, config.dim
  means = rng.normal(size=(k, d)) * config.separation
  y = rng.integers(0, k, config.n_train)
  yt = rng.integers(0, k, config.n_test)
  x = (means[y] + rng.normal(size=(config.n_train, d))).astype(np.float32)
  xt = (means[yt] + rng.normal(size=(config.n_test, d))).astype(np.float32)
  flip = rng.random(config.n_train) < config.label_noise
  y = np.where(flip, rng.integers(0, k, config.n_train), y)
  return x, y.astype(np.int32), xt, yt.astype(np.int32)


def init_mlp(key, d, h, k):
  k1, k2 = jax.random.split(key)
  return {"w1": jax.random.normal(k1, (d, h)) * np.sqrt(2.0 / d), "b1": jnp.zeros(h),
          "w2": jax.random.normal(k2, (h, k)) * np.sqrt(1.0 / h), "b2": jnp.zeros(k)}


def mlp(p, x):
  return jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]


def train_all(config: Config, data) -> dict:
  m = 2 * config.seeds
  x = jnp.stack([jnp.asarray(data[r // 2][0]) for r in range(m)])
  y = jnp.stack([jnp.asarray(data[r // 2][1]) for r in range(m)])
  balanced = jnp.asarray([r % 2 == 1 and config.student_loss == "bd_kd" for r in range(m)])
  keys = jnp.stack([jax.random.fold_in(jax.random.key(config.seed), r // 2) for r in range(m)])
  tx = optax.adam(config.learning_rate)
  t = config.temperature

  def one(x, y, bal, key):
    kt, ks = jax.random.split(key)
    teacher = init_mlp(kt, config.dim, config.teacher_hidden, config.num_classes)
    student = init_mlp(ks, config.dim, config.student_hidden, config.num_classes)

    def step(carry, _):
      tp, sp, ts, ss = carry
      zt, zs = mlp(tp, x), mlp(sp, x)
      w_f, w_r = bd_kd.bd_kd_entropy_weights(zs, zt, temperature=t)
      w_f = jnp.where(bal, w_f, 1.0)
      w_r = jnp.where(bal, w_r, 0.0)
      gs = jax.grad(lambda p: jnp.mean(bd_kd.bd_kd_student_loss(mlp(p, x), zt, y, temperature=t, forward_weight=w_f,
                                                                reverse_weight=w_r)))(sp)
      gt = jax.grad(lambda p: jnp.mean(bd_kd.online_kd_teacher_loss(mlp(p, x), zs, y, temperature=t)))(tp)
      ut, ts = tx.update(gt, ts, tp)
      us, ss = tx.update(gs, ss, sp)
      return (optax.apply_updates(tp, ut), optax.apply_updates(sp, us), ts, ss), None

    carry = (teacher, student, tx.init(teacher), tx.init(student))
    (teacher, student, _, _), _ = jax.lax.scan(step, carry, None, length=config.steps)
    return teacher, student

  x, y, balanced, keys = shard_leading((x, y, balanced, keys), make_mesh(config.mesh), what="run")
  teachers, students = jax.jit(jax.vmap(one))(x, y, balanced, keys)
  out = {"acc": [], "ece": [], "teacher_acc": [], "mean_conf": []}
  for r in range(m):
    s = jax.tree.map(lambda a: a[r], students)
    tch = jax.tree.map(lambda a: a[r], teachers)
    xt, yt = jnp.asarray(data[r // 2][2]), jnp.asarray(data[r // 2][3])
    z = mlp(s, xt)
    out["acc"].append(float(jnp.mean(jnp.argmax(z, -1) == yt)))
    out["ece"].append(float(expected_calibration_error(z, yt)))
    out["mean_conf"].append(float(jnp.mean(jnp.max(jax.nn.softmax(z), -1))))
    out["teacher_acc"].append(float(jnp.mean(jnp.argmax(mlp(tch, xt), -1) == yt)))
  return out


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  data = [make_data(config, r) for r in range(config.seeds)]
  out = sweep.memoized(workdir, {"runs": "dml_and_bd_kd"}, lambda: train_all(config, data))
  res = {}
  log = MetricsLog(workdir)
  log.reset()
  for key in ("acc", "ece", "teacher_acc", "mean_conf"):
    v = np.asarray(out[key])
    res[key] = {"dml": v[0::2].tolist(), "bd_kd": v[1::2].tolist()}
    log.log(config.steps, **{f"{key}/dml": float(v[0::2].mean()), f"{key}/bd_kd": float(v[1::2].mean())})
  res["diff"] = {k: st.paired_ci(res[k]["bd_kd"], res[k]["dml"]) for k in ("acc", "ece", "mean_conf")}
  _figure(res, config, workdir)
  return res


def claims(results: dict) -> list[Claim]:
  d = results["diff"]
  where = "Sec. 5, the accuracy / ECE tables (CIFAR-10/100, TinyImageNet, ImageNet)"
  return [
      Claim("student ECE, BD-KD minus online KD (DML): upper end of the 95% CI", "BD-KD lowers ECE", d["ece"]["hi"],
            f"< 0 (difference {st.fmt_ci(d['ece'], 4)})", bool(np.isfinite(d["ece"]["hi"]) and d["ece"]["hi"] < 0),
            "paper", where),
      Claim("student accuracy, BD-KD minus online KD (DML): lower end of the 95% CI", "BD-KD raises accuracy",
            d["acc"]["lo"], f"> 0 (difference {st.fmt_ci(d['acc'], 4)})",
            bool(np.isfinite(d["acc"]["lo"]) and d["acc"]["lo"] > 0), "paper", "Abstract; " + where),
  ]


def _figure(res, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
  for ax, key, label in ((axes[0], "ece", "student ECE (15 bins)"), (axes[1], "acc", "student test accuracy")):
    a, b = np.asarray(res[key]["dml"]), np.asarray(res[key]["bd_kd"])
    for i in range(len(a)):
      ax.plot([0, 1], [a[i], b[i]], "o-", color="gray", alpha=0.6)
    ax.plot([0, 1], [a.mean(), b.mean()], "o-", color="k", lw=2)
    ax.set_xticks([0, 1])
    ax.set_xticklabels(["online KD (DML)", "BD-KD"])
    ax.set_ylabel(label)
  axes[0].set_title("paper: BD-KD lowers ECE", fontsize=9)
  axes[1].set_title("paper: accuracy raised (CI lower end > 0)", fontsize=9)
  fig.suptitle(f"Online distillation, teacher {config.teacher_hidden} / student {config.student_hidden} hidden units "
               f"(Amara et al.), {config.seeds} seeds", fontsize=10)
  save_figure(fig, workdir / "figure.png")
