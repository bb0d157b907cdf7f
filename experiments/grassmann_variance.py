"""Grassmann Class Representation on a toy: the subspaces stay orthonormal under Riemannian SGD, k = 1 is the
|cos| classifier, and the intra-class variability of the learnt features grows with the subspace dimension k.

Paper [97]: Haoqi Wang, Zhizhong Li, Wayne Zhang, "Get the Best of Both Worlds: Improving Accuracy and
Transferability by Grassmann Class Representation", ICCV 2023, arXiv:2308.01547 (Sec. 3: logits ||S_i^T x||,
Riemannian SGD; Sec. 5 / abstract: "the intra-class feature variability grows when the subspace dimension
increases").

Toy: `classes` classes in R^`d_in`, each a mixture of `subclusters` Gaussian blobs (so a class has internal structure
a feature may keep or collapse); an MLP d_in -> hidden (ReLU) -> d_feat and a `GrassmannClassifier`-style head
(jaxlib_methods.nn.grassmann_logits, scale `scale`), trained jointly
by `riemannian_sgd_grassmann` (Grassmann leaves: the head's S; Euclidean SGD with momentum for the MLP) with
cross-entropy, for k in `ks` and `seeds` seeds (vmapped).
Measured on held-out data, on normalised features f = phi(x) / ||phi(x)||, through P = f f^T (sign-invariant, as the
logits ||S_i^T f|| are: with k = 1 a class may use both +s_i and -s_i):
  intra-class variability V = sum_c sum_{i in c} ||P_i - mean_c P||_F^2 / sum_i ||P_i - mean P||_F^2 (within / total).
Linear transfer (the paper's downstream claim, added 2026-12-03): a ridge-regression probe (one-hot targets,
penalty 1e-3 * n) on the frozen normalised features of the training set, predicting the blob (sub-class) label, a
finer task the head was never trained on; held-out accuracy.
History (reported, not hidden): the first settings tried (ReLU features without the f f^T map, scale 16, d_feat 16 or
32, 600-2000 steps) showed no trend in V with k (seed noise +-0.1 around 0.5, the claim failed); with linear
features, the sign-invariant V, scale 4 (so cross-entropy keeps pulling features towards their subspace) and
d_feat = 64 >= classes * k_max the trend is clear. Those settings were chosen on base seed 0; the claims and
tolerances were not changed.
Claims (fixed before the run; claim 4 and the base seed 100 pre-registered on 2026-12-03 before the judged run):
  1. [sanity] max over every training step, k and seed of ||S^T S - I||_max < 1e-6 (the head stays on the
     Grassmannian: an implementation identity of the QR retraction);
  2. [sanity] k = 1: the head's logits equal scale * |cos(s_i, x)| computed in NumPy from its single basis vector
     (max abs error <= 1e-4 relative to the scale), on the trained head (an identity of the logit's definition);
  3. [paper] V grows with k: the seed-mean of V is strictly increasing along `ks`, and V(k_max) - V(1) exceeds 2
     standard errors of that difference over seeds;
  4. [paper] linear transfer improves with k: probe accuracy at k_max minus at k = 1, paired over seeds, exceeds 2
     standard errors (> 0 at 2 s.e.).
  5. [sanity] held-out accuracy >= 0.9 for every k (the toy is learnt).
Judged on fresh draws: every preset uses base seed 100 (the data and the seeds' initialisations), never run before;
TINY keeps base seed 0 (the development seed; the mutation test only).
Mutations: `one_direction_logit` (logit=summed: the k projection coordinates summed before the absolute value, so
each class is one direction whatever k; S stays orthonormal and k = 1 is unchanged, so sanity rows 1-2 cannot see it)
fails claims 3-4 at TINY (V 0.127/0.104 at k = 1 vs 0.110/0.106 at k = 2). The former mutation `no_retraction`
(`retraction=none`: Euclidean momentum SGD on S, no tangent projection or retraction) fails sanity row 1 only, so it
is no longer listed in MUTATIONS (it stays a config option).
Development check on base seed 0 at the cpu size (2026-12-03, before the judged run): V 0.053, 0.206, 0.337, 0.395
and probe accuracy 0.830, 0.847, 0.955, 0.985 at k = 1, 2, 4, 8 (3 seeds; all claims pass).

Claims audit (2026-12-03), acted on the same day: claims 1-2 were implementation identities tagged paper and the
only mutation (`retraction=none`) failed claim 1 alone. They are sanity rows now; the mutation `one_direction_logit`
fails claim 3 (and 4); claim 3 is re-judged on fresh base seed 100, and claim 4 (transfer) is new.
Judged run (2026-12-03, `python -m experiments run grassmann_variance --preset cpu --workdir
/tmp/rec_s24/grassmann_variance --fresh`, base seed 100, 93 s wall on the shared 2-core machine): claim 3 FAILS.
V per seed (k = 1, 2, 4, 8): 0.039/0.043/0.047, 0.212/0.187/0.174, 0.376/0.264/0.400, 0.402/0.253/0.364; seed means
0.043, 0.191, 0.347, 0.340: V(8) - V(1) = 0.297 +- 0.045 (s.e.) clears 2 s.e., but the means are not strictly
increasing (k = 4 -> 8 falls by 0.007), so the pre-registered claim fails; on fresh draws V grows from k = 1 to 4
and levels off at 8. Claim 4 passes: probe accuracy per seed 0.755/0.766/0.811 (k = 1), 0.801/0.855/0.825,
0.930/0.954/0.998, 0.937/0.984/0.933 (k = 8); gain 0.174 +- 0.028 (s.e.). Sanity rows pass (orth error 8.3e-7,
|cos| error 2.4e-7, accuracy 1.0). So 4/5 claims pass and [97] has one passing paper claim of two: not reproduced.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments._ssl_toys import ridge_probe_accuracy
from jaxlib_methods.nn import grassmann_logits
from jaxlib_methods.optim import qr_retraction, riemannian_sgd_grassmann
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, sweep
from jaxlib_methods.runner.constraints import PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=97, title="Get the Best of Both Worlds: Improving Accuracy and Transferability by Grassmann "
              "Class Representation", year=2023, arxiv="2308.01547")
DEMO = True


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=2, le=16)] = 3
  classes: Annotated[int, Range(ge=2)] = 4
  subclusters: PositiveInt = 4
  d_in: PositiveInt = 16
  hidden: PositiveInt = 64
  d_feat: Annotated[int, Range(ge=8)] = 64
  max_k_log2: Annotated[int, Range(ge=1, le=4)] = 3        # k in 1, 2, 4, ..., 2^max_k_log2
  train: PositiveInt = 2048
  test: PositiveInt = 1024
  steps: PositiveInt = 1500
  batch: PositiveInt = 128
  learning_rate: PositiveFloat = 0.1
  momentum: Annotated[float, Range(ge=0.0, lt=1.0)] = 0.9
  scale: PositiveFloat = 4.0
  retraction: Literal["qr", "none"] = "qr"                  # "none": Euclidean SGD on S (a deliberately wrong variant)
  # "norm": the GCR logit scale * ||S_i^T f_hat||; "summed" (a deliberately wrong variant): the k coordinates are
  # summed before the absolute value, scale * |sum_j (S_i^T f_hat)_j| / sqrt(k), i.e. a single class direction
  # (the unit vector along S_i's column sum) whatever k; identical to GCR at k = 1, S still orthonormal.
  logit: Literal["norm", "summed"] = "norm"
  mesh: MeshConfig = MeshConfig()   # devices the seeds are split over

  CHECKS = ()


# The presets use base seed 100 (data and the seeds' initialisations), never run before 2026-12-03: the settings
# were settled on base seed 0, so the judged claims are confirmed on fresh draws.
PRESETS = {"cpu": Config(seed=100), "gpu": Config(seed=100, steps=3000, seeds=8),
           "tpu": Config(seed=100, steps=3000, seeds=8)}
TINY = ("steps=200", "train=512", "test=256", "max_k_log2=1", "seeds=2", "d_feat=32", "seed=0")
# `retraction=none` (Euclidean SGD on S) stays a config option: sanity row 1 catches it, no paper claim need.
MUTATIONS = {"one_direction_logit": ("logit=summed",)}
MUTATION_TEST_SLOW = True   # the TINY run trains two heads (k = 1, 2) x 2 seeds: ~10 s or more of CPU


def make_data(config: Config, seed: int):
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(config.classes, config.subclusters, config.d_in)) * 2.0

  def sample(n):
    y = rng.integers(0, config.classes, n)
    sub = rng.integers(0, config.subclusters, n)
    x = (centers[y, sub] + 0.7 * rng.normal(size=(n, config.d_in))).astype(np.float32)
    return x, y.astype(np.int32), (y * config.subclusters + sub).astype(np.int32)   # fine label: the blob

  return sample(config.train), sample(config.test)


def init_params(key, config: Config, k: int):
  k1, k2, k3 = jax.random.split(key, 3)
  return {"w1": jax.random.normal(k1, (config.d_in, config.hidden)) / np.sqrt(config.d_in),
          "b1": jnp.zeros(config.hidden),
          "w2": jax.random.normal(k2, (config.hidden, config.d_feat)) / np.sqrt(config.hidden),
          "b2": jnp.zeros(config.d_feat),
          "S": qr_retraction(jax.random.normal(k3, (config.classes, config.d_feat, k)))}


def features(p, x):
  return jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]


def head_logits(config: Config, f, S):
  if config.logit == "norm":
    return grassmann_logits(f, S, scale=config.scale)
  f = f / jnp.maximum(jnp.linalg.norm(f, axis=-1, keepdims=True), 1e-12)   # the mutation `one_direction_logit`
  return config.scale * jnp.abs(jnp.sum(jnp.einsum("...d,cdk->...ck", f, S), -1)) / np.sqrt(S.shape[-1])


def _orth_error(s):
  k = s.shape[-1]
  return jnp.max(jnp.abs(jnp.einsum("cdk,cdl->ckl", s, s) - jnp.eye(k)))


def train(config: Config, k: int, data, keys):
  (xtr, ytr, _), _ = data
  mask = {"w1": False, "b1": False, "w2": False, "b2": False, "S": config.retraction == "qr"}
  if config.retraction == "qr":
    tx = riemannian_sgd_grassmann(config.learning_rate, config.momentum, grassmann_mask=mask)
  else:
    tx = optax.sgd(config.learning_rate, config.momentum)
  xtr, ytr = jnp.asarray(xtr), jnp.asarray(ytr)

  def loss(p, x, y):
    logits = head_logits(config, features(p, x), p["S"])
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

  def one(key):
    p = init_params(key, config, k)

    def step(c, t):
      p, st = c
      idx = jax.random.randint(jax.random.fold_in(key, t), (config.batch,), 0, xtr.shape[0])
      g = jax.grad(loss)(p, xtr[idx], ytr[idx])
      u, st = tx.update(g, st, p)
      p = optax.apply_updates(p, u)
      return (p, st), _orth_error(p["S"])

    (p, _), orth = jax.lax.scan(step, (p, tx.init(p)), jnp.arange(config.steps))
    return p, jnp.max(orth)

  return jax.jit(jax.vmap(one))(keys)


def intra_class_variability(f: np.ndarray, y: np.ndarray) -> float:
  f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
  f = np.einsum("ni,nj->nij", f, f).reshape(len(f), -1)         # f f^T: sign-invariant, as the |.| logits are
  total = np.sum((f - f.mean(0)) ** 2)
  within = sum(np.sum((f[y == c] - f[y == c].mean(0)) ** 2) for c in np.unique(y))
  return float(within / total)


def linear_probe_accuracy(f_train, y_train, f_test, y_test, ridge: float = 1e-3) -> float:
  """Linear transfer on frozen features: `_ssl_toys.ridge_probe_accuracy` (ridge regression onto one-hot targets,
  with a bias) on the L2-normalised features, penalty `ridge` * n; held-out accuracy."""
  unit = lambda f: (f := np.asarray(f, np.float64)) / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
  return ridge_probe_accuracy(unit(f_train), y_train, unit(f_test), y_test, ridge=ridge * len(f_train))


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  data = make_data(config, config.seed)
  (xtr, _, ftr), (xte, yte, fte) = data
  keys = jax.random.split(jax.random.PRNGKey(config.seed), config.seeds)
  keys = shard_leading(keys, make_mesh(config.mesh), what="seed")   # each device trains its seeds' heads
  ks = [2 ** j for j in range(config.max_k_log2 + 1)]
  out = {"ks": ks, "variability": {}, "accuracy": {}, "transfer": {}, "orth_error": {}, "seed": config.seed}

  def one_k(k: int) -> dict:
    params, orth = train(config, k, data, keys)
    res = {"variability": [], "accuracy": [], "transfer": [], "orth_error": float(jnp.max(orth))}
    for s in range(config.seeds):
      p = jax.tree.map(lambda a: a[s], params)
      f = np.asarray(features(p, jnp.asarray(xte)))
      res["variability"].append(intra_class_variability(f, yte))
      res["transfer"].append(linear_probe_accuracy(np.asarray(features(p, jnp.asarray(xtr))), ftr, f, fte))
      logits = head_logits(config, jnp.asarray(f), p["S"])
      res["accuracy"].append(float(np.mean(np.argmax(np.asarray(logits), 1) == yte)))
      if k == 1 and s == 0:
        w = np.asarray(p["S"][:, :, 0], np.float64)
        fd = np.asarray(f, np.float64)
        cos = (fd @ w.T) / (np.maximum(np.linalg.norm(fd, axis=1, keepdims=True), 1e-12)
                           * np.linalg.norm(w, axis=1)[None])
        res["k1_abs_cos_error"] = float(np.max(np.abs(np.asarray(logits) - config.scale * np.abs(cos)))
                                        / config.scale)
    return res

  for i, k in enumerate(ks):
    res = sweep.memoized(workdir, {"k": k}, lambda k=k: one_k(k))   # a rerun reads the finished k back
    if "k1_abs_cos_error" in res:
      out["k1_abs_cos_error"] = res["k1_abs_cos_error"]
    var, acc = res["variability"], res["accuracy"]
    out["variability"][str(k)] = var
    out["accuracy"][str(k)] = acc
    out["transfer"][str(k)] = res["transfer"]
    out["orth_error"][str(k)] = res["orth_error"]
    log.log(i, k=k, variability=float(np.mean(var)), accuracy=float(np.mean(acc)),
            transfer=float(np.mean(res["transfer"])),
            orth_error=out["orth_error"][str(k)])
  _figure(out, workdir)
  return out


def _paired_gain(results: dict, key: str):
  """Seed means per k, and the paired difference k_max - k_1 over seeds: (mean, standard error)."""
  ks = [str(k) for k in results["ks"]]
  means = [float(np.mean(results[key][k])) for k in ks]
  diff = np.asarray(results[key][ks[-1]]) - np.asarray(results[key][ks[0]])
  se = float(np.std(diff, ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("inf")
  return ks, means, float(diff.mean()), se


def claims(results: dict) -> list[Claim]:
  ks, means, gain, se = _paired_gain(results, "variability")
  increasing = all(b > a for a, b in zip(means, means[1:]))
  _, t_means, t_gain, t_se = _paired_gain(results, "transfer")
  return [
      Claim.at_most("max ||S^T S - I|| over every training step, k and seed", max(results["orth_error"].values()),
                    1e-6, paper="(implementation check: the retraction keeps S orthonormal)", kind="sanity"),
      Claim.at_most("k = 1 head == scale * |cos(s_i, x)| (max abs error / scale, trained head)",
                    results["k1_abs_cos_error"], 1e-4, paper="(implementation check: the k = 1 logit is |cos|)",
                    kind="sanity"),
      Claim.holds("intra-class variability (within / total, held-out) grows with k: seed means strictly increasing "
                  "and V(k_max) - V(1) > 2 standard errors", increasing and gain > 2 * se,
                  paper="intra-class feature variability grows with the subspace dimension",
                  detail=f"means {[round(m, 4) for m in means]} over k = {ks}; V(k_max) - V(1) = "
                         f"{gain:.4f} +- {se:.4f} (s.e.)",
                  kind="paper", where="Abstract; Sec. 5 (feature transfer, intra-class variability vs k)"),
      Claim.holds("linear transfer to the blob (sub-class) labels, held-out probe accuracy: k_max - k = 1 > 2 "
                  "standard errors (paired over seeds)", t_gain > 2 * t_se,
                  paper="more variable GCR features are better for downstream tasks",
                  detail=f"means {[round(m, 4) for m in t_means]} over k = {ks}; gain {t_gain:.4f} +- {t_se:.4f} "
                         "(s.e.)", kind="paper", where="Abstract; Sec. 5 (linear transfer vs k)"),
      Claim.at_least("held-out accuracy, min over k and seeds", min(min(v) for v in results["accuracy"].values()),
                     0.9, paper="-", kind="sanity"),
  ]


def _figure(out, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4))
  ks = out["ks"]
  v = np.asarray([out["variability"][str(k)] for k in ks])
  for s in range(v.shape[1]):
    ax.plot(ks, v[:, s], "o:", alpha=0.5, color="gray", label="seeds" if s == 0 else None)
  ax.plot(ks, v.mean(1), "o-", color="tab:blue", label="seed mean")
  ax.set_xscale("log", base=2)
  ax.set_xlabel("subspace dimension k")
  ax.set_ylabel("intra-class variability (within / total, held-out)")
  ax.set_title("GCR (Wang, Li, Zhang 2023): feature variability grows with k", fontsize=9)
  ax.legend(fontsize=8)
  save_figure(fig, workdir / "figure.png")
