"""Spurious feature diversification: WiSE-FT fixes samples both members get wrong, lowers OOD error, and an
overconfident fine-tuned model spoils it.

Paper [112]: Yong Lin, Lu Tan, Yifan Hao, Ho Nam Wong, Hanze Dong, Weizhong Zhang, Yujiu Yang, Tong Zhang, "Spurious
Feature Diversification Improves Out-of-distribution Generalization", ICLR 2024, arXiv:2309.17230.

The paper's toy model (Sec. 4; `jaxlib_methods.data.spurious_feature_data`): K classes, d_v invariant and d_s
spurious features, each a d-dimensional vector mu_i(c) + N(0, sigma^2 I) with orthonormal class means; out of
distribution each spurious feature independently (probability p) carries a random class. Two models learn
different, small subsets of the features (the paper's premise: the pre-trained and the fine-tuned model rely on
different spurious features). A model is a two-layer linear map with a per-feature gate phi (the feature extractor:
which features it has learnt) and a per-feature head weight w on the features' class-mean scores:

    f(x)_k = sum_i w_i phi_i <x_i, mu_i(k)>,

member 0 ("pre-trained") with phi = w = 1 on its own features, member 1 ("fine-tuned") on a disjoint set, both with
one invariant feature. The weight-space ensemble is `wise_ft(theta0, theta1, alpha)`, so a feature one member learnt
gets weight ((1 - alpha) . 0 + alpha . 1) on both layers; the output-space ensemble is `output_ensemble`. Every
member and ensemble is evaluated on the same fresh OOD set; `seeds` independent draws (feature means, data) are
vmapped and split over `mesh`.

Overconfidence (paper Sec. 5, abstract: "overconfidence of fine-tuned models in OOD situations ... magnifies the
fine-tuned model's incorrect prediction, leading to deteriorated OOD ensemble performance"): the fine-tuned head is
scaled by `overconfidence` (lambda > 1) before WiSE-FT, which leaves its own predictions unchanged.

Claims (alpha = 0.5; 95% t-intervals over seeds; tolerances fixed before the run):
  1. FalseFalseTrue: the OOD rate of samples both members get wrong and WiSE-FT gets right is > 0.02 on every seed
     (the paper: a substantial FFT fraction, abstract / Sec. 2).
  2. WiSE-FT lowers OOD error: the interval of acc(WiSE-FT) - max(acc(member 0), acc(member 1)) lies strictly
     above 0.
  3. Overconfidence hurts: the interval of acc(WiSE-FT, lambda = 1) - acc(WiSE-FT, lambda = `overconfidence`) lies
     strictly above 0.
  4. (sanity) both members are accurate in distribution (ID accuracy >= 0.95 on every seed).
BANG (the paper's fix for that overconfidence; as far as we could check it without the full text, which our tools
could not open, it fine-tunes with Mixup / label smoothing and then averages) is a recipe for fine-tuning CLIP with
no counterpart in the toy's fixed feature sets, so it is not reproduced here. Mutation `shared`: both members learn the same features; there is then nothing to diversify, the
ensemble equals each member, and claims 1-3 must fail (FFT rate and both differences exactly 0). A first version
of claims 2-3 used ">= 0" and passed under this mutation (a zero difference with zero spread); "strictly" fixed it.

Claims audit (2026-12-03): with n_test = 4000 claim 1's verdict depended on the base seed (`--set seed=1`: min
0.01925, FAIL; seed 2: 0.0205): the per-seed estimate's sampling noise (s.e. ~0.0024) was as large as the margin.
The claim and its 0.02 bound are unchanged; the cpu preset now evaluates 40,000 OOD samples per seed (s.e.
~0.0008), and base seeds 0, 1, 2 give min FFT rates 0.0239, 0.0247, 0.0247 (all pass; 48-50 s wall each).
Measured before that change (cpu preset with n_test = 4000, 6 seeds, 2026-11-30, 11-16 s wall on 2 loaded cores):
member OOD accuracy ~0.72 each,
WiSE-FT (alpha = 0.5) ~0.90; FFT rate min over seeds 0.021 (claim 1 passes with a THIN margin over its 0.02 bound,
fixed before the run: the rate itself is ~0.023 and each seed's estimate from 4000 OOD samples has s.e. ~0.0024; at
TINY, 1000 samples, it reads 0.016 and fails); gain over the best member 0.173 [0.168, 0.179]; overconfidence (lambda
= 5) costs 0.091 [0.087, 0.096]; ID accuracy >= 0.99. The 2-device mesh run (`pytest -m slow
tests/runner/test_seed_parallel.py -k spurious_feature_ensembles`, TINY) equals the 1-device run exactly. Note
(figure, left panel): in this linear toy the overconfident ensemble's curve is the unscaled one with alpha
reparametrised, so its best alpha (0.3) reaches the same OOD accuracy; the claim is about the fixed alpha = 0.5 that
WiSE-FT uses. With disjoint feature sets the output ensemble's argmax equals WiSE-FT's at alpha = 0.5 (the paper's
WiSE-FT > output-ensemble result needs overlapping feature sets; not claimed here).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np

from experiments import _seed_stats as st
from jaxlib_methods.analysis import weight_ensembles as we
from jaxlib_methods.data import spurious_features as sf
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, sweep
from jaxlib_methods.runner.constraints import Check, PositiveFloat, PositiveInt, Probability, Range, Seed

PAPER = Paper(catalog_id=112, title="Spurious Feature Diversification Improves Out-of-distribution Generalization",
              year=2024, arxiv="2309.17230")
DEMO = True
ALPHAS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2).tolist())


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  seeds: Annotated[int, Range(ge=2)] = 6           # independent draws (a multiple of the mesh's devices)
  num_classes: Annotated[int, Range(ge=2)] = 10
  dim: Annotated[int, Range(ge=2)] = 16            # d >= num_classes
  spurious_per_model: PositiveInt = 8              # spurious features each member learns
  n_test: PositiveInt = 40000                      # per seed: the FFT rate's s.e. ~0.0008 (4000 gave ~0.0024)
  flip_prob: Probability = 0.5                     # p: each spurious feature carries a random class OOD
  noise_std: PositiveFloat = 0.7                   # sigma
  overconfidence: Annotated[float, Range(ge=1)] = 5.0   # lambda, the fine-tuned head's scale
  features: Literal["disjoint", "shared"] = "disjoint"   # "shared": both members learn the same features (mutation)
  mesh: MeshConfig = MeshConfig()                  # devices the seeds are split over (seeds: a multiple)

  CHECKS = (Check("dim >= num_classes", "each feature needs num_classes orthonormal class means in dim dimensions"),)


PRESETS = {"cpu": Config(), "gpu": Config(seeds=16, n_test=50000), "tpu": Config(seeds=16, n_test=50000)}
TINY = ("seeds=2", "n_test=1000")
MUTATIONS = {"shared": ("features=shared",)}
MUTATION_TEST_SLOW = True  # TINY + mutation: two ~3-10 s XLA compiles of the vmapped evaluation on 2 busy cores


def member_params(config: Config) -> tuple[dict, dict]:
  """The two members' gates: features 0, 1 invariant; member m learns invariant feature m and spurious block m."""
  s = config.spurious_per_model
  f = 2 + 2 * s
  idx = np.arange(f)
  m0 = (idx == 0) | ((idx >= 2) & (idx < 2 + s))
  m1 = (idx == 1) | (idx >= 2 + s) if config.features == "disjoint" else m0
  p0 = {"phi": m0.astype(np.float32), "w": m0.astype(np.float32)}
  p1 = {"phi": m1.astype(np.float32), "w": m1.astype(np.float32)}
  return p0, p1


def evaluate(config: Config, keys: jax.Array) -> dict:
  """Per seed (vmapped): ID accuracy of the members; OOD accuracy of members, WiSE-FT (lambda = 1 and lambda =
  overconfidence) and the output ensemble at every alpha; the FFT rate at every alpha. The WiSE-FT parameters of
  every alpha are built once (`wise_ft` vmapped over alpha), so each model's OOD logits are one einsum."""
  p0, p1 = member_params(config)
  f = len(p0["phi"])
  p1_over = {"phi": p1["phi"], "w": config.overconfidence * p1["w"]}
  alphas = np.asarray(ALPHAS, np.float32)
  gate = lambda p: p["w"] * p["phi"]

  def one(key):
    gates_wise = jax.vmap(lambda a: gate(we.wise_ft(p0, p1, a)))(alphas)            # [A, F]
    gates_over = jax.vmap(lambda a: gate(we.wise_ft(p0, p1_over, a)))(alphas)       # [A, F]
    members = jnp.stack([gate(p0), gate(p1)])                                      # [2, F]
    k_m, k_id, k_ood = jax.random.split(key, 3)
    means = sf.spurious_feature_means(k_m, f, config.num_classes, config.dim)
    id_set = sf.spurious_feature_data(k_id, config.n_test, means, num_invariant=2, noise_std=config.noise_std)
    ood = sf.spurious_feature_data(k_ood, config.n_test, means, num_invariant=2, flip_prob=config.flip_prob,
                                   noise_std=config.noise_std)
    scores = lambda x: jnp.einsum("nfd,fkd->nfk", x, means)                     # <x_i, mu_i(k)>
    right = lambda lg, y: jnp.argmax(lg, -1) == y
    id_acc = jnp.mean(right(jnp.einsum("mf,nfk->mnk", members, scores(id_set.x)), id_set.y), -1)
    s_ood = scores(ood.x)
    l01 = jnp.einsum("mf,nfk->mnk", members, s_ood)
    c0, c1 = right(l01[0], ood.y), right(l01[1], ood.y)
    cw = right(jnp.einsum("af,nfk->ank", gates_wise, s_ood), ood.y)                # [A, n]
    cw_over = right(jnp.einsum("af,nfk->ank", gates_over, s_ood), ood.y)
    co = right(jax.vmap(lambda a: we.output_ensemble(l01[0], l01[1], a))(alphas), ood.y)
    c0a, c1a = jnp.broadcast_to(c0, cw.shape), jnp.broadcast_to(c1, cw.shape)
    return {"id_acc": id_acc, "member_ood": jnp.stack([jnp.mean(c0), jnp.mean(c1)]), "wise": jnp.mean(cw, -1),
            "wise_over": jnp.mean(cw_over, -1), "output": jnp.mean(co, -1),
            "fft": we.false_false_true_rate(c0a, c1a, cw), "fft_over": we.false_false_true_rate(c0a, c1a, cw_over)}

  keys = shard_leading(keys, make_mesh(config.mesh), what="seed")
  res = jax.jit(jax.vmap(one))(keys)
  return {k: np.asarray(v).tolist() for k, v in res.items()}


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  keys = jax.random.split(jax.random.key(config.seed), config.seeds)
  out = sweep.memoized(workdir, {"runs": "all_seeds", "features": config.features},
                       lambda: evaluate(config, keys))
  log = MetricsLog(workdir)
  log.reset()
  half = ALPHAS.index(0.5)
  for s in range(config.seeds):
    log.log(s, wise_ood=out["wise"][s][half], fft=out["fft"][s][half], wise_over_ood=out["wise_over"][s][half])
  out["alphas"] = list(ALPHAS)
  _figure(out, config, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  half = list(results["alphas"]).index(0.5)
  wise = np.asarray(results["wise"])[:, half]
  wise_over = np.asarray(results["wise_over"])[:, half]
  best_member = np.max(np.asarray(results["member_ood"]), axis=1)
  fft = np.asarray(results["fft"])[:, half]
  gain = st.paired_ci(wise, best_member)
  hurt = st.paired_ci(wise, wise_over)
  return [
      Claim.at_least("FalseFalseTrue: min over seeds of the OOD rate (both members wrong, WiSE-FT alpha = 0.5 right)",
                     float(fft.min()), 0.02, paper="> 0, a substantial FFT fraction", kind="paper",
                     where="Abstract; Sec. 2 (FalseFalseTrue phenomenon) [112]"),
      Claim.holds("WiSE-FT lowers OOD error: acc(WiSE-FT) - max member acc (OOD) = " + st.fmt_ci(gain, 4),
                  bool(gain["lo"] > 0), paper="> 0 (ensembles use more diverse spurious features)",
                  detail="lower 95% bound > 0 (strictly)", kind="paper", where="Abstract; Sec. 4 (toy model) [112]"),
      Claim.holds("overconfidence hurts: acc(WiSE-FT) - acc(WiSE-FT with the fine-tuned head scaled by lambda) "
                  "(OOD) = " + st.fmt_ci(hurt, 4), bool(hurt["lo"] > 0),
                  paper="> 0 (overconfidence deteriorates the ensemble)", detail="lower 95% bound > 0 (strictly)",
                  kind="paper", where="Abstract; Sec. 5 (overconfidence of the fine-tuned model) [112]"),
      Claim.at_least("both members' ID accuracy (min over seeds and members)", float(np.min(results["id_acc"])),
                     0.95, paper="members fit in distribution", kind="sanity"),
  ]


def _figure(out, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  a = np.asarray(ALPHAS)
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  for key, label in (("wise", "WiSE-FT (weight space)"), ("wise_over", f"WiSE-FT, FT head x{config.overconfidence}"),
                     ("output", "output ensemble")):
    v = np.asarray(out[key])
    axes[0].errorbar(a, v.mean(0), yerr=v.std(0), label=label, capsize=2)
  axes[0].set_xlabel("alpha (weight of the fine-tuned model)")
  axes[0].set_ylabel("OOD accuracy")
  axes[0].legend(fontsize=7)
  for key, label in (("fft", "WiSE-FT"), ("fft_over", f"WiSE-FT, FT head x{config.overconfidence}")):
    v = np.asarray(out[key])
    axes[1].plot(a, v.mean(0), "o-", label=label)
  axes[1].set_xlabel("alpha (weight of the fine-tuned model)")
  axes[1].set_ylabel("FalseFalseTrue rate (OOD)")
  axes[1].legend(fontsize=7)
  fig.suptitle(f"Spurious feature diversification (Lin et al. 2024): {config.seeds} seeds, p = {config.flip_prob}")
  save_figure(fig, workdir / "figure.png")
