"""Analysis wave 3 (issue 21), part d: experiments for three analysis core ops: density-based pruning of concept
clusters [37], iterative feature merging / network feature complexity [23], and concept-patch data with region
attribution [32].

Paper [23]: Yiting Chen, Zhanpeng Zhou, Junchi Yan, "Going Beyond Neural Network Feature Similarity: The Network
Feature Complexity and Its Interpretation Using Category Theory", ICLR 2024, arXiv:2310.06756.
Paper [32]: Jack Furby, Daniel Cunnington, Dave Braines, Alun Preece, "Can we Constrain Concept Bottleneck Models to
Learn Semantically Meaningful Input Features?", 2024, arXiv:2402.00912.
Paper [37]: Amro Abbas, Evgenia Rusak, Kushal Tirumala, Wieland Brendel, Kamalika Chaudhuri, Ari S. Morcos,
"Effective pruning of web-scale datasets based on complexity of concept clusters", ICLR 2024, arXiv:2401.04578.

[37] The paper's argument (Sec. 3, Fig. 2): dense clusters (small d_intra) and clusters close to others (small
d_inter) hold redundant samples, so the per-cluster pruning rate should follow the complexity C_j = d_intra d_inter;
at LAION scale DBP beats training on the full data (+1.1 pp ImageNet zero-shot with 27.7% of the data, not small).
Our toy: a synthetic embedding set in R^`dbp_dim` with 4 "simple" concepts (tight, spread `dbp_spread_simple`, 600
samples each: many near-duplicates, as web data repeat common concepts) and 4 "complex" ones (spread
`dbp_spread_complex`, 150 samples each), centres N(0, `dbp_sep`^2 8/dim I). `dbp_prune` (k-means with
`dbp_clusters` clusters, over-clustered as the paper's 500 clusters of LAION-50M, tau = `dbp_tau`) keeps `dbp_keep`
of the samples; a random subset of the same size is the baseline. Downstream task: a linear softmax probe on the
concept labels (Adam, `dbp_probe_steps` full-batch steps), scored on a fresh class-balanced test set (300 per
concept); both subsets of a seed see the same data and test set. `seeds` seeds, probes vmapped over (seed, subset)
and sharded. Claims:
  1. DBP keeps a larger fraction of the complex concepts than of the simple ones: ratio >= 2 on every seed (random
     pruning keeps ~1);
  2. probe accuracy on the DBP subset - on the random subset of the same size: the paired 95% CI over seeds lies
     above 0;
  3. sanity: DBP's quotas sum to the budget and none exceeds its cluster's size (every seed).
Mutation `dbp_complexity=inverted`: quotas from softmax(-C / tau) (the simplest clusters kept first); claims 1-2
fail.
tau: our complexities are Euclidean (C ~ 5 for the dense clusters, ~ 20 for the complex ones), not the paper's
cosine ones, so its tau does not transfer; `dbp_tau` = 5 was chosen on a scan over tau in {0.5, 2, 5, 10} and 8 or 24
clusters on held-out data (seed=100): every setting gave DBP +3 pp there except tau = 0.5 with 8 clusters, where the
saturated softmax left a dense concept with no sample at all (-23 pp on one seed). Our first run (tau = 0.5, seed 0)
failed claim 2 the same way: paired CI [-0.040, 0.043], two of five seeds lost a dense concept entirely.


[23] The paper's findings (abstract, Sec. 6): functionally equivalent features (positive rescalings of each other)
are common in trained networks, so IFM removes features data-free without changing the accuracy, and the larger
the network, the more redundant features it learns. Our toy: one task (x ~ N(0, I_4), 4 classes from a random
4-8-4 ReLU teacher, 1000 training and 2000 test samples); ReLU MLPs 4-w-4, w in `ifm_widths`, He init, trained by
Adam (`ifm_steps` full-batch steps) from `seeds` seeds (per width the seeds are vmapped and sharded); then
`iterative_feature_merging` at beta = `ifm_beta` (fixed before the claims were run, from a scan of beta in 0.05-0.7 on
a first version of this toy with two hidden layers, where the second layer (in-dim w + 1) hardly merged at all and
beta >= 0.3 cost > 1 pt). Claims:
  4. fraction of the hidden features merged at the widest net >= 0.05 (min over seeds);
  5. |test accuracy after merging - before| <= 1 pt (max over seeds and widths; the catalog's tolerance);
  6. the merged fraction grows with the width (mean over seeds, every step);
  7. sanity (the definition, exact): the trained widest net with every hidden unit duplicated, its copy's incoming
     weights rescaled by c ~ U(0.5, 2) and the outgoing weights split between the copies: IFM at beta = 1e-6
     recovers the original width and its outputs to relative error <= 1e-9;
  8. sanity: the feature complexity of the widest net varies little across seeds (coefficient of variation <= 0.1).
Mutation `ifm_beta=0.7` (merging features that are not equivalent): claim 5 fails.

[32] The paper's point (abstract; its synthetic playing-card data): a CBM maps a concept to the concept's own input
features only when the concepts do not always co-occur; otherwise the concept's saliency spreads onto the other
concept's features. Our toy: `concept_patch_images` (2 concepts, 12x12 noisy images, a 4x4 patch per present
concept, `cbm_train` training images) with co-occurrence `cbm_co_high` (= 1: the concepts always co-occur) and
`cbm_co_low` (= 0: independent); per seed both CBMs start from the same init: a joint CBM (MLP concept predictor
144-32-2, task head on the concept probabilities, task = any concept present; concept BCE + task CE, AdamW,
`cbm_steps` full-batch steps); saliency = gradient x input of each concept logit on the images of a shared
decorrelated test set that show the concept; `attribution_on_region` on the concept's own mask. The tolerances (0.6
and a CI above 0) were fixed before the first run. Claims:
  9. own-region saliency mass of the decorrelated CBM >= 0.6 (mean over concepts, min over seeds);
  10. own-region mass, decorrelated - always co-occurring: paired 95% CI over seeds above 0;
  11. sanity: the decorrelated CBM predicts the concepts (test accuracy >= 0.95).
Mutation `cbm_co_low=1.0` (both CBMs trained on always co-occurring concepts): claims 9-10 fail.

Measured (cpu preset, 5 seeds, 84 s wall on 2 cores with a load average of ~17): 11/11 claims pass. [37] kept-fraction
ratio 16.0 (every seed; random ~1); probe accuracy DBP - random +0.024 [0.021, 0.028] (paired 95% CI), DBP above
random on every seed; quotas exact. [23] merged fraction at w = 256: 0.23-0.30 (min 0.23), mean over seeds 0.05 /
0.15 / 0.27 at w = 16 / 64 / 256; largest accuracy change 0.65 pt; planted duplicates 512 -> 256 with relative
error 7e-16; complexity CV 0.03. [32] own-region mass 0.65-0.70 (decorrelated) vs 0.47-0.50 (always co-occurring;
there 0.21-0.28 of the mass sits on the other concept's region, vs 0.07-0.12); difference +0.19 [0.16, 0.22]; the
correlated CBM's concept accuracy on decorrelated test images is 0.63-0.92 (it reads both patches), the decorrelated
one's 1.0. With two hidden layers and 2000 training samples (our first version, too slow for
the preset) the accuracy change reached 1.3 pt at w = 64 on one seed at beta = 0.3.
At TINY (3 seeds, 16 dims, 200 probe steps; widths 8, 32; 300 CBM images, 200 steps) claims 2 and 4 do not pass: the TINY run is for the
mutation test.

Mesh (`pytest -m slow tests/runner/test_seed_parallel.py -k analysis_wave3d`, TINY, 3 simulated devices, 2026-12-01):
the same verdicts, largest relative difference 9e-11 (the vmapped runs are padded to a multiple of the devices and
split over them).
"""

import dataclasses
import functools
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import _seed_stats
from jaxlib_methods import analysis
from jaxlib_methods.runner import (Claim, MeshConfig, MetricsLog, Paper, make_mesh, minimize, save_figure,
                                   shard_leading, sweep)
from jaxlib_methods.runner.constraints import Length, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=37, title="Effective pruning of web-scale datasets based on complexity of concept clusters",
              year=2024, arxiv="2401.04578")
ALSO_REPRODUCES = (Paper(catalog_id=23, title="Going Beyond Neural Network Feature Similarity: The Network Feature "
                         "Complexity and Its Interpretation Using Category Theory", year=2024, arxiv="2310.06756"),
                   Paper(catalog_id=32, title="Can we Constrain Concept Bottleneck Models to Learn Semantically "
                         "Meaningful Input Features?", year=2024, arxiv="2402.00912"))
DEMO = False
MUTATION_TEST_SLOW = True  # the TINY run trains vmapped probes / MLPs / CBMs of three parts (> 2 s on a loaded CPU)


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=2, le=32)] = 5                  # seeds (paired comparisons over them)
  # [37]
  dbp_dim: Annotated[int, Range(ge=2, le=512)] = 32              # embedding dimension
  dbp_sep: PositiveFloat = 1.0                                   # concept-centre scale (x sqrt(8 / dim))
  dbp_spread_simple: PositiveFloat = 0.25                        # per-dim std of the 4 dense concepts (600 each)
  dbp_spread_complex: PositiveFloat = 1.0                        # per-dim std of the 4 complex concepts (150 each)
  dbp_clusters: Annotated[int, Range(ge=2, le=512)] = 24         # k-means clusters of DBP
  dbp_keep: Annotated[float, Range(gt=0, le=1)] = 0.25           # fraction of the data kept
  dbp_tau: PositiveFloat = 5.0                                   # softmax temperature over complexities
  dbp_probe_steps: PositiveInt = 500                             # Adam steps of the linear probe
  dbp_complexity: Literal["dbp", "inverted"] = "dbp"             # "inverted": softmax(-C / tau) (mutation)
  # [23]
  # hidden widths of the one-hidden-layer ReLU MLPs 4-w-4
  ifm_widths: Annotated[tuple[int, ...], Range(ge=2, le=1024), Length(min=2)] = (16, 64, 256)
  ifm_steps: PositiveInt = 1000                                  # Adam steps, full batch
  ifm_lr: PositiveFloat = 3e-3
  ifm_beta: Annotated[float, Range(ge=0, le=2)] = 0.2            # IFM merging threshold
  # [32]
  cbm_co_low: Annotated[float, Range(ge=0, le=1)] = 0.0          # co-occurrence of the decorrelated training set
  cbm_co_high: Annotated[float, Range(ge=0, le=1)] = 1.0         # co-occurrence of the correlated training set
  cbm_train: Annotated[int, Range(ge=16, le=100_000)] = 1000     # training images
  cbm_steps: PositiveInt = 500                                   # AdamW steps, full batch
  mesh: MeshConfig = MeshConfig()                                # devices the vmapped runs / seeds are split over


PRESETS = {"cpu": Config(), "gpu": Config(seeds=8), "tpu": Config(seeds=8)}
TINY = ("seeds=3", "dbp_dim=16", "dbp_clusters=16", "dbp_probe_steps=200", "ifm_widths=8,32", "ifm_steps=300",
        "cbm_train=300", "cbm_steps=200")
MUTATIONS = {"inverted_complexity": ("dbp_complexity=inverted",), "loose_merging": ("ifm_beta=0.7",),
             "correlated_both": ("cbm_co_low=1.0",)}
MUTATION_PAPERS = {"inverted_complexity": 37, "loose_merging": 23, "correlated_both": 32}


def _vmapped(fn, tree, mesh, what):
  """jit(vmap(fn)) over the leading axis of `tree`, padded to a multiple of the mesh's batch devices and sharded
  over them; the results (NumPy) cut back to the unpadded length."""
  n = len(jax.tree.leaves(tree)[0])
  n_dev = int(np.prod([mesh.shape[a] for a in ("data", "fsdp")]))
  idx = np.r_[np.arange(n), np.arange((-n) % n_dev) % n]
  args = shard_leading(jax.tree.map(lambda v: np.asarray(v)[idx], tree), mesh, what=what)
  return jax.tree.map(lambda v: np.asarray(v)[:n], jax.jit(jax.vmap(fn))(args))


# ---- [37] density-based pruning ----------------------------------------------------------------------------------

_DBP_SIMPLE, _DBP_COMPLEX, _DBP_N_SIMPLE, _DBP_N_COMPLEX, _DBP_TEST = 4, 4, 600, 150, 300


def _dbp_data(rng, config: Config):
  """Host NumPy: the concept mixture (labels: concept ids, the simple ones first) and a balanced test set."""
  k, d = _DBP_SIMPLE + _DBP_COMPLEX, config.dbp_dim
  mu = rng.normal(size=(k, d)) * config.dbp_sep * np.sqrt(8.0 / d)
  spread = np.r_[[config.dbp_spread_simple] * _DBP_SIMPLE, [config.dbp_spread_complex] * _DBP_COMPLEX]
  y = np.repeat(np.arange(k), [_DBP_N_SIMPLE] * _DBP_SIMPLE + [_DBP_N_COMPLEX] * _DBP_COMPLEX)
  yt = np.repeat(np.arange(k), _DBP_TEST)
  x = mu[y] + rng.normal(size=(len(y), d)) * spread[y, None]
  xt = mu[yt] + rng.normal(size=(len(yt), d)) * spread[yt, None]
  return x.astype(np.float32), y.astype(np.int32), xt.astype(np.float32), yt.astype(np.int32)


def _dbp_inverted(x, info, keep_frac, tau):
  """The mutation: DBP's clusters and within-cluster order, quotas from softmax(-C / tau)."""
  a, c = info["assign"], info["centroids"]
  dist = np.linalg.norm(np.asarray(x, np.float64) - c[a], axis=1)
  sizes = np.bincount(a, minlength=len(c))
  quotas = analysis.dbp_quotas(-info["complexity"], sizes, int(round(keep_frac * len(x))), tau)
  keep = np.zeros(len(x), bool)
  for j in range(len(c)):
    members = np.flatnonzero(a == j)
    keep[members[np.argsort(-dist[members], kind="stable")[: quotas[j]]]] = True
  return keep, quotas


def _probe(d, config: Config):
  """A linear softmax probe trained on the weighted samples (weights: the subset's 0/1 mask); test accuracy."""
  k = _DBP_SIMPLE + _DBP_COMPLEX
  p = {"w": jnp.zeros((config.dbp_dim, k)), "b": jnp.zeros((k,))}
  tx = optax.adam(0.05)
  w = d["mask"] / jnp.sum(d["mask"])

  def loss(p):
    ce = optax.losses.softmax_cross_entropy_with_integer_labels(d["x"] @ p["w"] + p["b"], d["y"])
    return jnp.sum(w * ce) + 1e-4 * jnp.sum(p["w"] ** 2)

  p, _ = minimize(loss, p, tx, length=config.dbp_probe_steps)
  return jnp.mean(jnp.argmax(d["xt"] @ p["w"] + p["b"], -1) == d["yt"])


def run_dbp37(config: Config) -> dict:
  res = {"ratio_dbp": [], "ratio_random": [], "quota_ok": [], "complexity": [], "kept_frac": [],
         "budget": int(round(config.dbp_keep * (_DBP_SIMPLE * _DBP_N_SIMPLE + _DBP_COMPLEX * _DBP_N_COMPLEX)))}
  runs = []
  for s in range(config.seeds):
    rng = np.random.default_rng([config.seed, 37, s])
    x, y, xt, yt = _dbp_data(rng, config)
    keep, info = analysis.dbp_prune(x, config.dbp_clusters, config.dbp_keep, config.dbp_tau,
                                    key=jax.random.key(config.seed * 1000 + s))
    quotas = info["quotas"]
    if config.dbp_complexity == "inverted":
      keep, quotas = _dbp_inverted(x, info, config.dbp_keep, config.dbp_tau)
    sizes = np.bincount(info["assign"], minlength=config.dbp_clusters)
    res["quota_ok"].append(bool(quotas.sum() == res["budget"] and np.all(quotas <= sizes)))
    rand = np.zeros(len(y), bool)
    rand[rng.choice(len(y), int(keep.sum()), replace=False)] = True
    cplx = y >= _DBP_SIMPLE
    ratio = lambda m: float(m[cplx].mean() / max(m[~cplx].mean(), 1e-12))
    res["ratio_dbp"].append(ratio(keep))
    res["ratio_random"].append(ratio(rand))
    res["complexity"].append(np.asarray(info["complexity"]).tolist())
    res["kept_frac"].append((quotas / np.maximum(sizes, 1)).tolist())
    for m in (keep, rand):
      runs.append({"x": x, "y": y, "xt": xt, "yt": yt, "mask": m.astype(np.float32)})
  stack = jax.tree.map(lambda *v: np.stack(v), *runs)
  acc = _vmapped(functools.partial(_probe, config=config), stack, make_mesh(config.mesh), "probe").reshape(-1, 2)
  res["acc_dbp"], res["acc_random"] = acc[:, 0].tolist(), acc[:, 1].tolist()
  return res


# ---- [23] iterative feature merging ----------------------------------------------------------------------------

_IFM_D, _IFM_C, _IFM_N, _IFM_TEST, _IFM_TEACHER = 4, 4, 1000, 2000, 8   # input dim, classes, train/test size, teacher


def _ifm_task(rng):
  """Host NumPy: x ~ N(0, I_4), labels = argmax of a random 4-8-4 ReLU teacher; a training and a test set."""
  w1, b1 = rng.normal(size=(_IFM_D, _IFM_TEACHER)), 0.5 * rng.normal(size=_IFM_TEACHER)
  w2 = rng.normal(size=(_IFM_TEACHER, _IFM_C))
  label = lambda x: np.argmax(np.maximum(x @ w1 + b1, 0) @ w2, -1).astype(np.int32)
  x, xt = rng.normal(size=(_IFM_N, _IFM_D)), rng.normal(size=(_IFM_TEST, _IFM_D))
  return x.astype(np.float32), label(x), xt.astype(np.float32), label(xt)


def _ifm_init(rng, width, wmax):
  """He-initialised 4-w-4 ReLU MLP embedded in the widest one (units >= width zero and masked)."""
  m = (np.arange(wmax) < width).astype(np.float32)
  p = [{"w": rng.normal(size=(_IFM_D, wmax)) * np.sqrt(2 / _IFM_D) * m, "b": np.zeros(wmax)},
       {"w": rng.normal(size=(wmax, _IFM_C)) * np.sqrt(1 / width) * m[:, None], "b": np.zeros(_IFM_C)}]
  return jax.tree.map(lambda v: np.asarray(v, np.float32), p), m


def _ifm_forward(p, x, m):
  h = jax.nn.relu(x @ p[0]["w"] + p[0]["b"]) * m
  return h @ p[1]["w"] + p[1]["b"]


def _ifm_train(d, config: Config):
  tx = optax.adam(config.ifm_lr)
  loss = lambda p: optax.losses.softmax_cross_entropy_with_integer_labels(_ifm_forward(p, d["x"], d["m"]),
                                                                           d["y"]).mean()

  p, _ = minimize(loss, d["p"], tx, length=config.ifm_steps)
  return p


def _np_forward(layers, x):
  h = x
  for w, b in layers[:-1]:
    h = np.maximum(h @ w + b, 0)
  return h @ layers[-1][0] + layers[-1][1]


def _planted_duplicates(layers, rng):
  """Every hidden unit of the first layer duplicated with a random positive rescaling c in [0.5, 2] of its incoming
  weights; its outgoing weights split (t, (1 - t) / c) between the copies, so the function is unchanged."""
  (w1, b1), (w2, b2) = layers[0], layers[1]
  c = rng.uniform(0.5, 2.0, size=w1.shape[1])
  t = rng.uniform(0.2, 0.8, size=w1.shape[1])
  perm = rng.permutation(2 * w1.shape[1])
  w1d, b1d = np.c_[w1, w1 * c][:, perm], np.r_[b1, b1 * c][perm]
  w2d = np.r_[w2 * t[:, None], w2 * ((1 - t) / c)[:, None]][perm]
  return [(w1d, b1d), (w2d, b2)] + list(layers[2:])


def run_ifm23(config: Config) -> dict:
  """Every (seed, width) MLP is trained on the same task (per width, the seeds are one vmapped, sharded run); IFM
  runs on the host."""
  x, y, xt, yt = _ifm_task(np.random.default_rng([config.seed, 23]))
  wmax = max(config.ifm_widths)
  trained = {}
  for w in config.ifm_widths:
    runs = []
    for s in range(config.seeds):
      p, m = _ifm_init(np.random.default_rng([config.seed, 23, s, w]), w, w)
      runs.append({"p": p, "m": m, "x": x, "y": y})
    trained[w] = _vmapped(functools.partial(_ifm_train, config=config), jax.tree.map(lambda *v: np.stack(v), *runs),
                          make_mesh(config.mesh), "seed")
  grid = [(s, w) for s in range(config.seeds) for w in config.ifm_widths]
  res = {"grid": grid, "widths": [], "acc": [], "acc_merged": [], "merged_frac": []}
  for s, w in grid:
    p = jax.tree.map(lambda v: np.asarray(v[s], np.float64), trained[w])
    layers = [(p[0]["w"][:, :w], p[0]["b"][:w]), (p[1]["w"][:w], p[1]["b"])]
    merged, widths = analysis.iterative_feature_merging(layers, config.ifm_beta)
    acc = float(np.mean(np.argmax(_np_forward(layers, xt), -1) == yt))
    res["acc"].append(acc)
    res["acc_merged"].append(float(np.mean(np.argmax(_np_forward(merged, xt), -1) == yt)))
    res["widths"].append(widths)
    res["merged_frac"].append(1.0 - widths[0] / w)
    if w == wmax and s == 0:                                       # the exact check on planted duplicates
      dup = _planted_duplicates(layers, np.random.default_rng([config.seed, 23, 1]))
      rec, rec_widths = analysis.iterative_feature_merging(dup, 1e-6)
      ref = _np_forward(layers, xt)
      res["planted"] = {"widths_before": [dup[0][0].shape[1], w], "widths_after": rec_widths,
                        "max_rel_err": float(np.max(np.abs(_np_forward(rec, xt) - ref)) / np.max(np.abs(ref)))}
  return res


# ---- [32] concept-patch data and region attribution ------------------------------------------------------------

_CBM_C, _CBM_SIZE, _CBM_PATCH, _CBM_HIDDEN, _CBM_TEST = 2, 12, 4, 32, 1000


def _cbm_init(rng):
  d = _CBM_SIZE * _CBM_SIZE
  return {"w1": rng.normal(size=(d, _CBM_HIDDEN)) * np.sqrt(2 / d), "b1": np.zeros(_CBM_HIDDEN),
          "w2": rng.normal(size=(_CBM_HIDDEN, _CBM_C)) * np.sqrt(1 / _CBM_HIDDEN), "b2": np.zeros(_CBM_C),
          "wy": rng.normal(size=(_CBM_C, 2)) * 0.1, "by": np.zeros(2)}


def _cbm_concepts(p, x):
  """The concept predictor g: image [B, size, size] -> concept logits [B, C] (an MLP)."""
  h = jax.nn.relu(x.reshape(x.shape[0], -1) @ p["w1"] + p["b1"])
  return h @ p["w2"] + p["b2"]


def _cbm_run(d, config: Config):
  """A joint CBM: concept BCE + task CE through the predicted concept probabilities (task: any concept present);
  then the gradient x input saliency of every concept logit on the test images."""
  tx = optax.adamw(3e-3, weight_decay=1e-2)
  y = (jnp.sum(d["c"], 1) > 0).astype(jnp.int32)

  def loss(p):
    logits = _cbm_concepts(p, d["x"])
    task = jax.nn.sigmoid(logits) @ p["wy"] + p["by"]
    return (optax.losses.sigmoid_binary_cross_entropy(logits, d["c"].astype(jnp.float32)).mean()
            + optax.losses.softmax_cross_entropy_with_integer_labels(task, y).mean())

  p, _ = minimize(loss, d["p"], tx, length=config.cbm_steps)
  xt = d["xt"]
  grads = [jax.grad(lambda x, k=k: _cbm_concepts(p, x)[:, k].sum())(xt) for k in range(_CBM_C)]
  sal = jnp.stack([g * xt for g in grads], 1)                         # [B, C, size, size]
  acc = jnp.mean((_cbm_concepts(p, xt) > 0) == (d["ct"] > 0), 0)     # [C]
  return {"saliency": sal, "concept_acc": acc}


def run_cbm32(config: Config) -> dict:
  """Per seed, two CBMs (trained on the correlated and on the decorrelated data; same init) are one vmapped, sharded
  run each; both are scored on the same decorrelated test set."""
  from jaxlib_methods import data as data_lib
  masks = data_lib.concept_patch_masks(_CBM_C, size=_CBM_SIZE, patch=_CBM_PATCH)
  runs, tests = [], []
  for s in range(config.seeds):
    key = jax.random.key(config.seed * 1000 + 32 * 7 + s)
    k_lo, k_hi, k_test = jax.random.split(key, 3)
    test = data_lib.concept_patch_images(k_test, _CBM_TEST, num_concepts=_CBM_C, size=_CBM_SIZE, patch=_CBM_PATCH,
                                         co_occurrence=0.0)
    init = jax.tree.map(lambda v: np.asarray(v, np.float32), _cbm_init(np.random.default_rng([config.seed, 32, s])))
    for k, co in ((k_hi, config.cbm_co_high), (k_lo, config.cbm_co_low)):
      tr = data_lib.concept_patch_images(k, config.cbm_train, num_concepts=_CBM_C, size=_CBM_SIZE,
                                         patch=_CBM_PATCH, co_occurrence=co)
      runs.append({"p": init, "x": np.asarray(tr.images), "c": np.asarray(tr.concepts),
                   "xt": np.asarray(test.images), "ct": np.asarray(test.concepts)})
    tests.append(np.asarray(test.concepts))
  out = _vmapped(functools.partial(_cbm_run, config=config), jax.tree.map(lambda *v: np.stack(v), *runs),
                 make_mesh(config.mesh), "run")
  own = np.zeros((config.seeds, 2, _CBM_C))
  other = np.zeros_like(own)
  for i in range(2 * config.seeds):
    s, arm = divmod(i, 2)
    for k in range(_CBM_C):
      present = tests[s][:, k] > 0
      sal = out["saliency"][i][present, k]
      own[s, arm, k] = float(np.mean(analysis.attribution_on_region(sal, masks[k])))
      other[s, arm, k] = float(np.mean(analysis.attribution_on_region(sal, masks[1 - k])))
  return {"own": own.tolist(), "other": other.tolist(), "concept_acc": out["concept_acc"].reshape(
      config.seeds, 2, _CBM_C).tolist(), "arms": [config.cbm_co_high, config.cbm_co_low],
          "example": out["saliency"][1][np.flatnonzero(tests[0].min(1) > 0)[0]].tolist()}


# ---- run / claims / figure -------------------------------------------------------------------------------------

def _key(config: Config, part: str) -> dict:
  """A sub-run's key: its part and the config fields it reads (every field but the mesh: a sub-run's result does not
  depend on the devices)."""
  prefix = {"dbp37": "dbp_", "ifm23": "ifm_", "cbm32": "cbm_"}[part]
  fields = {k: v for k, v in dataclasses.asdict(config).items() if k.startswith(prefix) or k in ("seed", "seeds")}
  return {"part": part, "config": repr(fields)}


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  out = {"dbp37": sweep.memoized(workdir, _key(config, "dbp37"), lambda: run_dbp37(config))}
  log.log(0, part=37, acc_dbp=float(np.mean(out["dbp37"]["acc_dbp"])),
          acc_random=float(np.mean(out["dbp37"]["acc_random"])))
  out["ifm23"] = sweep.memoized(workdir, _key(config, "ifm23"), lambda: run_ifm23(config))
  log.log(1, part=23, merged_frac=float(np.mean(out["ifm23"]["merged_frac"])))
  out["cbm32"] = sweep.memoized(workdir, _key(config, "cbm32"), lambda: run_cbm32(config))
  log.log(2, part=32, own_region_decorrelated=float(np.mean(np.asarray(out["cbm32"]["own"])[:, 1])))
  _figure(out, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  out = []
  r = results["dbp37"]
  out.append(Claim.at_least("[37] kept fraction of the complex concepts / of the simple (dense) concepts under DBP "
                            "(min over seeds; random pruning: ~1)", float(np.min(r["ratio_dbp"])), 2.0,
                            paper="sample more from clusters with large d_intra and d_inter", kind="paper",
                            where="Sec. 3, Fig. 2 [37]"))
  ci = _seed_stats.paired_ci(r["acc_dbp"], r["acc_random"])
  out.append(Claim.at_least("[37] linear-probe test accuracy on the DBP subset - on a random subset of the same size "
                            f"(lower end of the paired 95% CI; {_seed_stats.fmt_ci(ci)})", ci["lo"], 1e-9,
                            paper="+1.1 pp ImageNet zero-shot with 27.7% of LAION (not small)", kind="paper",
                            where="Abstract; Fig. 1 [37]"))
  out.append(Claim.holds("[37] DBP quotas sum to the budget and none exceeds its cluster's size (every seed)",
                         all(r["quota_ok"]), kind="sanity"))
  r = results["ifm23"]
  widths = sorted({w for _, w in r["grid"]})
  frac = np.zeros((max(s for s, _ in r["grid"]) + 1, len(widths)))
  dacc = np.zeros_like(frac)
  for (s, w), f, a, am in zip(r["grid"], r["merged_frac"], r["acc"], r["acc_merged"]):
    frac[s, widths.index(w)] = f
    dacc[s, widths.index(w)] = am - a
  out.append(Claim.at_least(f"[23] fraction of the hidden features merged by IFM (beta fixed) at the widest net "
                            f"(w = {widths[-1]}; min over seeds)", float(frac[:, -1].min()), 0.05,
                            paper="functional equivalence widely exists", kind="paper", where="Abstract; Sec. 6 [23]"))
  out.append(Claim.at_most("[23] |test accuracy after merging - before| (max over seeds and widths; no fine-tuning)",
                           float(np.abs(dacc).max()), 0.01,
                           paper="parameters reduced without affecting the performance (data-free pruning)",
                           kind="paper", where="Abstract; Sec. 6 [23]"))
  steps = np.diff(frac.mean(0))
  out.append(Claim.at_least(f"[23] the merged fraction grows with the width (min step of the mean over seeds across "
                            f"w = {widths})", float(steps.min()), 1e-9,
                            paper="the larger the network, the more redundant features it learns", kind="paper",
                            where="Abstract (finding 1) [23]"))
  pl = r["planted"]
  out.append(Claim.holds(f"[23] planted positively rescaled duplicates: IFM (beta = 1e-6) recovers the width "
                         f"({pl['widths_before'][0]} -> {pl['widths_after'][0]}, original {pl['widths_before'][1]}) "
                         f"with relative output error {pl['max_rel_err']:.1e} <= 1e-9",
                         pl["widths_after"][0] == pl["widths_before"][1] and pl["max_rel_err"] <= 1e-9,
                         kind="sanity"))
  wide = [ws[0] for (s, w), ws in zip(r["grid"], r["widths"]) if w == widths[-1]]
  out.append(Claim.at_most("[23] feature complexity of the widest net across seeds: coefficient of variation",
                           float(np.std(wide) / np.mean(wide)), 0.1, kind="sanity"))
  r = results["cbm32"]
  own = np.asarray(r["own"]).mean(2)                              # [seeds, arm (correlated, decorrelated)]
  out.append(Claim.at_least(f"[32] saliency mass of each concept on its own region, CBM trained with co-occurrence "
                            f"{r['arms'][1]:g} (mean over concepts, min over seeds)", float(own[:, 1].min()), 0.6,
                            paper="decorrelated concepts map to their own input features", kind="paper",
                            where="Abstract; synthetic playing-cards experiments [32]"))
  ci = _seed_stats.paired_ci(own[:, 1], own[:, 0])
  out.append(Claim.at_least(f"[32] own-region saliency mass: co-occurrence {r['arms'][1]:g} - co-occurrence "
                            f"{r['arms'][0]:g} (lower end of the paired 95% CI; {_seed_stats.fmt_ci(ci)})", ci["lo"],
                            1e-9, paper="always co-occurring concepts spread saliency onto each other's regions",
                            kind="paper", where="Abstract; synthetic playing-cards experiments [32]"))
  acc = np.asarray(r["concept_acc"])[:, 1]
  out.append(Claim.at_least("[32] concept accuracy of the decorrelated CBM on the test set (min over seeds and "
                            "concepts)", float(acc.min()), 0.95, kind="sanity"))
  return out


def _figure(out, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
  r = out["dbp37"]
  ax = axes[0]
  for s, (c, f) in enumerate(zip(r["complexity"], r["kept_frac"])):
    ax.scatter(c, f, s=12, alpha=0.7, label=f"seed {s}")
  ax.set_xlabel("cluster complexity C_j = d_intra d_inter")
  ax.set_ylabel("fraction of the cluster kept by DBP")
  ax.set_title("[37] DBP quotas")
  ax.legend(fontsize=7)
  ax = axes[1]
  n = len(r["acc_dbp"])
  ax.plot(np.arange(n), r["acc_dbp"], "C0o-", label="DBP subset")
  ax.plot(np.arange(n), r["acc_random"], "C3x--", label="random subset")
  ax.set_xlabel("seed")
  ax.set_ylabel("linear-probe test accuracy (balanced)")
  ax.set_title(f"[37] probe on {r['budget']} kept samples")
  ax.legend(fontsize=8)
  r = out["ifm23"]
  ax = axes[2]
  for s in sorted({s for s, _ in r["grid"]}):
    pts = [(w, ws) for (ss, w), ws in zip(r["grid"], r["widths"]) if ss == s]
    ax.plot([w for w, _ in pts], [ws[0] for _, ws in pts], "C0o-", alpha=0.6, label="seeds" if s == 0 else None)
  lim = [0, max(w for _, w in r["grid"])]
  ax.plot(lim, lim, "k:", label="no merging")
  ax.set_xlabel("hidden width")
  ax.set_ylabel("feature complexity (width after IFM)")
  ax.set_title("[23] iterative feature merging")
  ax.legend(fontsize=8)
  r = out["cbm32"]
  ax = axes[3]
  own = np.asarray(r["own"]).mean(2)
  other = np.asarray(r["other"]).mean(2)
  xs = np.arange(2)
  ax.bar(xs - 0.2, own.mean(0), 0.4, yerr=own.std(0), label="own region")
  ax.bar(xs + 0.2, other.mean(0), 0.4, yerr=other.std(0), label="the other concept's region")
  ax.set_xticks(xs, [f"co-occurrence {a:g}" for a in r["arms"]])
  ax.set_xlabel("training data of the CBM")
  ax.set_ylabel("fraction of |gradient x input| saliency")
  ax.set_title("[32] concept saliency on regions")
  ax.legend(fontsize=8)
  save_figure(fig, workdir / "figure.png")
