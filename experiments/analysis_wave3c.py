"""Analysis wave 3 (issue 21), part c: information and complexity estimators on toys with a known answer: the
information-bottleneck term I(X; Z | Y) against the generalisation gap [19], mutual information after lossy
compression [39] and inductive-bias bits [202].

Paper [19]: Kenji Kawaguchi, Zhun Deng, Xu Ji, Jiaoyang Huang, "How Does Information Bottleneck Help Deep Learning?",
ICML 2023, arXiv:2305.18887.
Paper [39]: Ivan Butakov, Alexander Tolmachev, Sofia Malanchuk, Anna Neopryatnaya, Alexey Frolov, Kirill Andreev,
"Information Bottleneck Analysis of Deep Neural Networks via Lossy Compression", ICLR 2024, arXiv:2305.08013.
Paper [202]: Akhilan Boopathy, William Yue, Jaedong Hwang, Abhiram Iyer, Ila Fiete, "Towards Exact Computation of
Inductive Bias", IJCAI 2024, arXiv:2406.15941.

NOTE: the papers' full texts could not be retrieved in this session; the estimators follow the authors' released code
(github.com/xu-ji/information-bottleneck `est_MI_binning_cond`; github.com/FieteLab/Exact-Inductive-Bias
`utils.compute_inductive_bias`) and the abstracts; see jaxlib_methods/analysis/information_complexity.py.

[19] A 4-class Gaussian mixture in R^8 (`ib_train` training samples, 2000 test samples); MLPs 8-w-w-2-4 (tanh,
w in `ib_widths`, a 2-unit bottleneck layer Z before the linear head) trained with Adam, full batch, on labels
flipped at random with probability r in `ib_noise` (test labels flipped alike), `seeds` seeds: every (width, noise,
seed) run is one vmapped run (widths by masking units of the widest net). Per run: the generalisation gap (training
minus test accuracy) and `cond_mi_x_z_given_y` of Z on the training set (10 bins per unit, bits). Claims:
  1. Spearman(gap, I(X; Z | Y)) over all runs > 0 (the paper: the gap correlates with the IB term);
  2. Spearman(gap, I(X; Z | Y)) > Spearman(gap, number of parameters) (the bound scales with the IB term, not the
     parameter count);
  3. sanity: the mean gap at the largest label noise exceeds that without noise by >= 0.05 (the toy has runs that
     memorise; the estimator itself is checked on planted codes in tests/analysis/test_information_complexity.py).
Mutation `ib_layer=input`: the same estimator on the (binned) inputs instead of Z: one value for every run, claim 1
fails.

[39] A latent Gaussian pair (a, b) with correlation rho (I(a; b) = -1/2 ln(1 - rho^2) nats, `mi_values`), embedded as
X = Q_x [3a, 15 independent N(0,1) dims] and Y = Q_y [3b, 15 dims] (Q random rotations): I(X; Y) = I(a; b) exactly.
`cmi_samples` samples per seed. Per seed and MI value: a linear autoencoder 16-1-16 (Adam, `ae_steps` steps) is
trained on X and on Y; `compressed_mutual_information` with the encoders vs the direct KSG estimate on the 16-dim
pair. Claims:
  4. |compressed estimate - true MI| <= 0.15 nats (max over MI values of the mean over seeds);
  5. the direct high-dimensional estimate's error >= 2x the compressed one's (mean over seeds, every MI value);
  6. sanity: KSG on the 1-dim latents themselves is within 0.1 nats of the truth.
Mutation `encoder=random`: untrained random projections as encoders; claim 4 fails.

[202] Random linear hypotheses h_w(x) = w.x, w ~ N(0, I/d), on a noiseless regression task with an orthonormal test
design and target ||w*|| = 1: the test MSE is ||w - w*||^2 ~ (1/d) ncx2(d, d), so the exact inductive bias
-log2 P(e <= eps) (eps = `ib_eps`, a fraction of the zero predictor's error 1) is known. `ib_hyp` hypotheses are
sampled per estimate, `seeds` seeds. Claims:
  7. the estimated bits rise strictly with the input dimension d in `ib_dims` (mean over seeds);
  8. the estimation error (mean abs over seeds) at `ib_hyp[-1]` sampled hypotheses is below that at `ib_hyp[0]` and
     within 5% of the exact bits (largest d).
Mutation `ib_method=empirical`: the plain fraction of sampled hypotheses reaching eps (+inf bits once none does);
claim 8 fails.
"""

import dataclasses
import functools
import math
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.stats as st

from jaxlib_methods.analysis import information_complexity as ic
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, sweep
from jaxlib_methods.runner.constraints import Check, Length, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=19, title="How Does Information Bottleneck Help Deep Learning?", year=2023,
              arxiv="2305.18887")
ALSO_REPRODUCES = (Paper(catalog_id=39, title="Information Bottleneck Analysis of Deep Neural Networks via Lossy "
                         "Compression", year=2024, arxiv="2305.08013"),
                   Paper(catalog_id=202, title="Towards Exact Computation of Inductive Bias", year=2024,
                         arxiv="2406.15941"))
DEMO = False
MUTATION_TEST_SLOW = True  # the TINY run still trains the [19] MLP grid and the [39] autoencoders (> 2 s loaded)


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=1, le=16)] = 3                  # vmapped seeds
  # [19]
  # hidden widths of the MLP grid
  ib_widths: Annotated[tuple[int, ...], Range(ge=1, le=1024), Length(min=1)] = (8, 32, 128)
  # label-flip probabilities
  ib_noise: Annotated[tuple[float, ...], Range(ge=0, lt=0.75), Length(min=1)] = (0.0, 0.2, 0.4)
  ib_train: Annotated[int, Range(ge=8, le=4096)] = 200           # training samples (a multiple of 4)
  ib_steps: PositiveInt = 1500                                   # Adam steps, full batch
  ib_lr: PositiveFloat = 1e-2
  ib_layer: Literal["bottleneck", "input"] = "bottleneck"        # "input": estimate on X (mutation)
  # [39]
  # true I(X; Y) in nats
  mi_values: Annotated[tuple[float, ...], Range(gt=0, le=3), Length(min=1)] = (0.5, 1.0)
  cmi_samples: Annotated[int, Range(ge=50, le=4000)] = 1000
  ae_steps: PositiveInt = 1500
  encoder: Literal["autoencoder", "random"] = "autoencoder"      # "random": untrained projections (mutation)
  # [202]
  ib_dims: Annotated[tuple[int, ...], Range(ge=1, le=256), Length(min=2)] = (4, 8, 16, 32)
  # sampled hypotheses per estimate
  ib_hyp: Annotated[tuple[int, ...], Range(ge=3, le=10**6), Length(min=2)] = (30, 300, 3000)
  ib_eps: Annotated[float, Range(gt=0, lt=1)] = 0.5
  ib_method: Literal["ncx2", "empirical"] = "ncx2"               # "empirical": the plain fraction (mutation)
  mesh: MeshConfig = MeshConfig()                                # devices the vmapped runs / seeds are split over

  CHECKS = (Check("ib_train % 4 == 0", "ib_train must be a multiple of the 4 classes"),)


PRESETS = {"cpu": Config(), "gpu": Config(seeds=8), "tpu": Config(seeds=8)}
TINY = ("seeds=2", "ib_widths=8,32", "ib_noise=0.0,0.4", "ib_steps=300", "cmi_samples=300", "ae_steps=150",
        "mi_values=1.0", "ib_dims=4,16", "ib_hyp=30,1000")
MUTATIONS = {"ib_on_inputs": ("ib_layer=input",), "random_encoder": ("encoder=random",),
             "empirical_fraction": ("ib_method=empirical",)}


def _spearman(a, b):
  ra = st.rankdata(a)
  rb = st.rankdata(b)
  if np.std(ra) == 0 or np.std(rb) == 0:
    return 0.0
  return float(np.corrcoef(ra, rb)[0, 1])


# ---- [19] I(X; Z | Y) vs the generalisation gap -----------------------------------------------------------------

_IB_DIM, _IB_CLASSES, _IB_TEST, _IB_Z = 8, 4, 2000, 2


def _ib_data(rng, noise, n_train):
  """Host NumPy (random draws compile slowly under vmap on CPU): the mixture, flipped labels and test set."""
  mu = rng.normal(size=(_IB_CLASSES, _IB_DIM))
  y = np.arange(n_train) % _IB_CLASSES
  yt = np.arange(_IB_TEST) % _IB_CLASSES
  x = mu[y] + rng.normal(size=(n_train, _IB_DIM))
  xt = mu[yt] + rng.normal(size=(_IB_TEST, _IB_DIM))

  def flip(lab):
    other = (lab + 1 + rng.integers(0, _IB_CLASSES - 1, lab.shape)) % _IB_CLASSES
    return np.where(rng.uniform(size=lab.shape) < noise, other, lab)

  return x.astype(np.float32), flip(y).astype(np.int32), xt.astype(np.float32), flip(yt).astype(np.int32)


def _ib_init(rng, wmax):
  dense = lambda i, o: {"w": (rng.normal(size=(i, o)) / np.sqrt(i)).astype(np.float32),
                        "b": np.zeros((o,), np.float32)}
  return {"l0": dense(_IB_DIM, wmax), "l1": dense(wmax, wmax), "z": dense(wmax, _IB_Z),
          "head": dense(_IB_Z, _IB_CLASSES)}


def _ib_forward(p, x, mask):
  h = jnp.tanh(x @ p["l0"]["w"] + p["l0"]["b"]) * mask
  h = jnp.tanh(h @ (p["l1"]["w"] * jnp.sqrt(p["l1"]["w"].shape[0] / jnp.sum(mask))) + p["l1"]["b"]) * mask
  z = jnp.tanh(h @ (p["z"]["w"] * jnp.sqrt(p["z"]["w"].shape[0] / jnp.sum(mask))) + p["z"]["b"])
  return z, z @ p["head"]["w"] + p["head"]["b"]


def _ib_run(p, data, width, config: Config):
  x, y, xt, yt = data
  mask = (jnp.arange(max(config.ib_widths)) < width).astype(jnp.float32)
  tx = optax.adam(config.ib_lr)

  def loss(p):
    return optax.losses.softmax_cross_entropy_with_integer_labels(_ib_forward(p, x, mask)[1], y).mean()

  def step(carry, _):
    p, s = carry
    u, s = tx.update(jax.grad(loss)(p), s, p)
    return (optax.apply_updates(p, u), s), None

  (p, _), _ = jax.lax.scan(step, (p, tx.init(p)), None, length=config.ib_steps)
  z, logits = _ib_forward(p, x, mask)
  acc_tr = jnp.mean(jnp.argmax(logits, -1) == y)
  acc_te = jnp.mean(jnp.argmax(_ib_forward(p, xt, mask)[1], -1) == yt)
  return {"z": z, "gap": acc_tr - acc_te, "acc_train": acc_tr, "acc_test": acc_te}


def run_ib19(config: Config) -> dict:
  grid = [(w, r, s) for w in config.ib_widths for r in config.ib_noise for s in range(config.seeds)]
  # the data of a (noise, seed) pair is shared across widths; the init of a seed too (masked to each width)
  data = [_ib_data(np.random.default_rng([config.seed, 19, config.ib_noise.index(r), s]), r, config.ib_train)
          for _, r, s in grid]
  inits = [_ib_init(np.random.default_rng([config.seed, 19, 1000 + s]), max(config.ib_widths)) for _, _, s in grid]
  width = np.asarray([w for w, _, _ in grid], np.float32)
  mesh = make_mesh(config.mesh)
  n_dev = int(np.prod([mesh.shape[a] for a in ("data", "fsdp")]))
  idx = list(range(len(grid))) + list(range((-len(grid)) % n_dev))   # padded to a multiple of the devices
  stack = lambda items: jax.tree.map(lambda *v: np.stack(v), *[items[i] for i in idx])
  args = shard_leading((stack(inits), stack(data), width[idx]), mesh, what="run")
  out = jax.jit(jax.vmap(functools.partial(_ib_run, config=config)))(*args)
  out = jax.tree.map(lambda v: np.asarray(v)[: len(grid)], out)
  mi = []
  for i in range(len(grid)):
    t = out["z"][i] if config.ib_layer == "bottleneck" else data[i][0]
    mi.append(float(ic.cond_mi_x_z_given_y(t, data[i][1], n_bins=10)))
  params = [(_IB_DIM + 1) * w + (w + 1) * w + (w + 1) * _IB_Z + (_IB_Z + 1) * _IB_CLASSES for w, _, _ in grid]
  return {"grid": grid, "gap": out["gap"].tolist(), "mi_bits": mi, "params": params,
          "acc_train": out["acc_train"].tolist(), "acc_test": out["acc_test"].tolist(),
          "bound": np.asarray(ic.ib_generalization_bound(jnp.asarray(mi), config.ib_train)).tolist()}


# ---- [39] MI after lossy compression ------------------------------------------------------------------------------

_CMI_JUNK, _CMI_SCALE = 15, 3.0


def _cmi_data(rng, rho, n):
  """Host NumPy: the latents (a, b) and their 16-dim embeddings, plus the autoencoders' initial weights."""
  a = rng.normal(size=n)
  b = rho * a + math.sqrt(1 - rho ** 2) * rng.normal(size=n)
  d = _CMI_JUNK + 1
  qx, qy = np.linalg.qr(rng.normal(size=(d, d)))[0], np.linalg.qr(rng.normal(size=(d, d)))[0]
  x = np.c_[_CMI_SCALE * a, rng.normal(size=(n, _CMI_JUNK))] @ qx
  y = np.c_[_CMI_SCALE * b, rng.normal(size=(n, _CMI_JUNK))] @ qy
  init = lambda: {"we": rng.normal(size=(d, 1)) / np.sqrt(d), "be": np.zeros((1,)),
                  "wd": rng.normal(size=(1, d)), "bd": np.zeros((d,))}
  f32 = lambda t: jax.tree.map(lambda v: np.asarray(v, np.float32), t)
  return f32({"a": a, "b": b, "x": x, "y": y, "px": init(), "py": init()})


def _train_encoder(p, v, config: Config):
  """A linear autoencoder 16-1-16 trained on v (MSE, Adam); returns the encoder's weights [16, 1] and bias."""
  if config.encoder == "random":
    return p["we"], p["be"]
  tx = optax.adam(1e-2)

  def loss(p):
    return jnp.mean(((v @ p["we"] + p["be"]) @ p["wd"] + p["bd"] - v) ** 2)

  def step(carry, _):
    p, s = carry
    u, s = tx.update(jax.grad(loss)(p), s, p)
    return (optax.apply_updates(p, u), s), None

  (p, _), _ = jax.lax.scan(step, (p, tx.init(p)), None, length=config.ae_steps)
  return p["we"], p["be"]


def _cmi_seed(d, config: Config):
  wx, bx = _train_encoder(d["px"], d["x"], config)
  wy, by = _train_encoder(d["py"], d["y"], config)
  return {"wx": wx, "bx": bx, "wy": wy, "by": by}


def run_cmi39(config: Config) -> dict:
  mesh = make_mesh(config.mesh)
  res = {"true": list(config.mi_values), "compressed": [], "direct": [], "latent": []}
  for mi in config.mi_values:
    rho = math.sqrt(1 - math.exp(-2 * mi))
    data = [_cmi_data(np.random.default_rng([config.seed, 39, int(mi * 1000), s]), rho, config.cmi_samples)
            for s in range(config.seeds)]
    data = jax.tree.map(lambda *v: np.stack(v), *data)
    out = jax.jit(jax.vmap(functools.partial(_cmi_seed, config=config)))(shard_leading(data, mesh, what="seed"))
    out = dict(jax.tree.map(np.asarray, out), **data)
    comp, direct, lat = [], [], []
    for s in range(config.seeds):
      ex = lambda v, s=s: v @ out["wx"][s] + out["bx"][s]
      ey = lambda v, s=s: v @ out["wy"][s] + out["by"][s]
      comp.append(float(ic.compressed_mutual_information(out["x"][s], out["y"][s], encoder_x=ex, encoder_y=ey)))
      direct.append(float(ic.compressed_mutual_information(out["x"][s], out["y"][s])))
      lat.append(float(ic.ksg_mutual_information(out["a"][s], out["b"][s])))
    res["compressed"].append(comp)
    res["direct"].append(direct)
    res["latent"].append(lat)
  return res


# ---- [202] inductive-bias bits ------------------------------------------------------------------------------------

def run_ib202(config: Config) -> dict:
  """Hypothesis losses are sampled on the host (NumPy); the fits of every (dimension, seed) for one sample count are
  one vmapped call, its rows sharded over the mesh."""
  mesh = make_mesh(config.mesh)
  dims = config.ib_dims
  # e = ||w - w*||^2 with w ~ N(0, I/d), ||w*|| = 1: d e ~ ncx2(d, d ||w*||^2) = ncx2(d, d)
  exact = [float(-st.ncx2.logcdf(d * config.ib_eps, d, d) / math.log(2)) for d in dims]
  n_dev = int(np.prod([mesh.shape[a] for a in ("data", "fsdp")]))
  est = np.zeros((len(dims), len(config.ib_hyp), config.seeds))
  for j, m in enumerate(config.ib_hyp):
    rows = []
    for d in dims:
      for s in range(config.seeds):
        w = np.random.default_rng([config.seed, 202, d, m, s]).normal(size=(m, d)) / math.sqrt(d)
        rows.append(((w - 1.0 / math.sqrt(d)) ** 2).sum(1))
    rows = np.asarray(rows)
    pad = (-len(rows)) % n_dev                # pad to a multiple of the devices (dropped below)
    rows = np.concatenate([rows, rows[:pad]]) if pad else rows
    with jax.enable_x64(True):
      bits = jax.jit(jax.vmap(lambda e: ic.inductive_bias_bits(e, config.ib_eps, method=config.ib_method)))(
          shard_leading(jnp.asarray(rows, jnp.float64), mesh, what="(dimension, seed) fit"))
      est[:, j] = np.asarray(bits)[: len(dims) * config.seeds].reshape(len(dims), config.seeds)
  return {"dims": list(dims), "hyp": list(config.ib_hyp), "exact": exact, "est": est.tolist()}


# ---- run / claims / figure -------------------------------------------------------------------------------------

def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  out = {"ib19": sweep.memoized(workdir, {"part": "ib19"}, lambda: run_ib19(config))}
  log.log(0, part=19, spearman=_spearman(out["ib19"]["gap"], out["ib19"]["mi_bits"]))
  out["cmi39"] = sweep.memoized(workdir, {"part": "cmi39"}, lambda: run_cmi39(config))
  log.log(1, part=39, compressed=float(np.mean(out["cmi39"]["compressed"])))
  out["ib202"] = sweep.memoized(workdir, {"part": "ib202"}, lambda: run_ib202(config))
  log.log(2, part=202, bits_largest_d=float(np.mean(out["ib202"]["est"][-1][-1])))
  _figure(out, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  out = []
  r = results["ib19"]
  rho_mi = _spearman(r["gap"], r["mi_bits"])
  rho_p = _spearman(r["gap"], r["params"])
  out.append(Claim.at_least("[19] Spearman(generalisation gap, I(X; Z | Y) of the bottleneck) over the (width, label "
                            "noise, seed) runs", rho_mi, 0.0, paper="positive correlation", kind="paper",
                            where="Sec. 5 (experiments) [19]"))
  out.append(Claim.at_least("[19] Spearman(gap, I(X; Z | Y)) - Spearman(gap, number of parameters)", rho_mi - rho_p,
                            0.0, paper="the bound scales with the IB term, not the parameter count", kind="paper",
                            where="Abstract; Sec. 5 [19]"))
  noise = np.asarray([g[1] for g in r["grid"]])
  gap = np.asarray(r["gap"])
  out.append(Claim.at_least("[19] mean gap at the largest label noise - mean gap without noise",
                            float(gap[noise == noise.max()].mean() - gap[noise == noise.min()].mean()), 0.05,
                            paper="memorising noisy labels opens a gap", kind="sanity"))
  c = results["cmi39"]
  true = np.asarray(c["true"])[:, None]
  err_c = np.abs(np.asarray(c["compressed"]) - true).mean(1)
  err_d = np.abs(np.asarray(c["direct"]) - true).mean(1)
  err_l = np.abs(np.asarray(c["latent"]) - true).mean(1)
  out.append(Claim.at_most("[39] |MI after autoencoder compression - true MI| (nats; max over MI values of the mean "
                           "over seeds)", float(err_c.max()), 0.15, paper="~0.1-0.2 nats", kind="paper",
                           where="Sec. 5 (synthetic tests with preset MI) [39]"))
  out.append(Claim.at_least("[39] direct 16-dim KSG error / compressed error (min over MI values)",
                            float((err_d / np.maximum(err_c, 1e-12)).min()), 2.0,
                            paper="direct high-dim estimates are biased", kind="paper",
                            where="Sec. 1, Sec. 5 [39]"))
  out.append(Claim.at_most("[39] |KSG on the 1-dim latents - true MI| (max over MI values, mean over seeds)",
                           float(err_l.max()), 0.1, paper="KSG is consistent", kind="sanity"))
  b = results["ib202"]
  bits = np.asarray(b["est"], np.float64)                 # [dims, hyp, seeds]
  exact = np.asarray(b["exact"])
  mean_last = bits[:, -1].mean(1)
  steps = np.diff(mean_last)
  out.append(Claim.at_least("[202] estimated bits rise with the input dimension: min step of the mean over seeds "
                            f"across d = {b['dims']}", float(steps.min()) if np.all(np.isfinite(steps)) else -np.inf,
                            1e-9, paper="higher-dimensional tasks need more inductive bias", kind="paper",
                            where="Sec. 5, Fig. 3 [202]"))
  err = np.abs(bits - exact[:, None, None]).mean(2)      # [dims, hyp]
  rel_last = float(err[-1, -1] / exact[-1])
  ok = bool(np.all(np.isfinite(err)) and err[-1, -1] < err[-1, 0])
  out.append(Claim.at_most(f"[202] estimation error at {b['hyp'][-1]} sampled hypotheses / exact bits (largest d; "
                           f"must also be below the error at {b['hyp'][0]})", rel_last if ok else np.inf, 0.05,
                           paper="error falls with the number of sampled hypotheses", kind="paper",
                           where="Sec. 4 (approximation error bounds) [202]"))
  return out


def _figure(out, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
  r = out["ib19"]
  ax = axes[0]
  sc = ax.scatter(r["mi_bits"], r["gap"], c=[g[1] for g in r["grid"]], cmap="viridis")
  fig.colorbar(sc, ax=ax, label="label-noise rate")
  ax.set_xlabel("I(X; Z | Y) of the bottleneck (bits, binned)")
  ax.set_ylabel("generalisation gap (train - test accuracy)")
  ax.set_title("[19] IB term vs gap")
  c = out["cmi39"]
  ax = axes[1]
  for i, mi in enumerate(c["true"]):
    ax.scatter([mi] * len(c["compressed"][i]), c["compressed"][i], c="C0", label="compressed (AE + KSG)" if i == 0
               else None)
    ax.scatter([mi] * len(c["direct"][i]), c["direct"][i], c="C3", marker="x", label="direct 16-dim KSG" if i == 0
               else None)
  lim = [0, max(c["true"]) * 1.2]
  ax.plot(lim, lim, "k:", label="truth")
  ax.set_xlabel("true I(X; Y) (nats)")
  ax.set_ylabel("estimate (nats)")
  ax.set_title("[39] MI after lossy compression")
  ax.legend(fontsize=8)
  b = out["ib202"]
  ax = axes[2]
  ax.plot(b["dims"], b["exact"], "k-o", label="exact")
  bits = np.asarray(b["est"])
  for j, m in enumerate(b["hyp"]):
    ax.plot(b["dims"], bits[:, j].mean(1), "--", marker="x", label=f"ncx2 fit, {m} hypotheses")
  ax.set_xlabel("input dimension d")
  ax.set_ylabel("inductive bias (bits)")
  ax.set_title("[202] random linear hypotheses")
  ax.legend(fontsize=8)
  save_figure(fig, workdir / "figure.png")
