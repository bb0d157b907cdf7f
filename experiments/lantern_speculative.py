"""LANTERN: relaxing speculative acceptance over latent neighbourhoods raises the acceptance rate with k and delta,
each relaxed target stays within delta of the target in total variation, and k = 1 is exact speculative sampling;
whether latent (not arbitrary) neighbours buy that speed at a smaller loss of quality is measured and reported, not
claimed: this toy cannot test it (see the end).

Paper [86]: Doohyuk Jang, Sihwan Park, June Yong Yang, Yeonsung Jung, Jihun Yun, Souvik Kundu, Sungyub Kim, Eunho
Yang, "LANTERN: Accelerating Visual Autoregressive Models with Relaxed Speculative Decoding", ICLR 2025,
arXiv:2410.03355. Its statements used here: the relaxed acceptance A_{k,delta} over latent neighbours raises the
acceptance (1.75x speed-up on LlamaGen); the TV bound delta holds for every relaxed target; and "tokens close in
latent space are interchangeable", so "these speed gains are achieved without significantly compromising image
quality" (abstract; quality measured by FID, CLIP score, precision/recall next to the speed-up).

Setup (a toy of the paper's "token selection ambiguity"). A fixed 2-D latent codebook: `clusters` cluster centres on
a square grid, `per_cluster` tokens jittered around each (V = clusters * per_cluster). Each context draws a point c
in the latent plane; the target is p(v) ~ exp(-||e_v - c||^2 / (2 tau^2) + noise): smooth in latent space, so the
tokens of a cluster are near-interchangeable and individually improbable. The drafter (`drafter="ambiguity"`, the
default) gives every cluster the target's mass but splits it among the cluster's tokens with noisy logits (std
`draft_noise`): it knows the region and not which interchangeable token, the paper's premise (`drafter="token"`:
independent noise on every token's logit, the first version of this toy). Everything is exact (no sampling) except
the Monte Carlo sanity rows:
  acceptance   beta(k, delta) = sum_x q(x) min(1, p(A_{k,delta}(x)) / q(x))       (`lantern_aggregate`)
  output       o(y) = sum_x q(x) [a_x 1{y = x} + (1 - a_x) norm(max(p_tilde_x - q, 0))(y)],  a_x = min(1, p(A(x))/q(x))
  quality      the latent Frechet distance FD(o, p): FID's formula on the codebook vectors (Gaussian moment fits of
               the latent under o and under p), the toy's stand-in for the paper's FID
averaged over `contexts` contexts per seed, for k in `ks`, delta in `deltas`, with the latent neighbours
(`latent_neighbors`) and, as the baseline, arbitrary ones (the token itself plus k - 1 random tokens) at k = max(ks)
over the finer grid `baseline_deltas`.
Claims (tolerances fixed before the runs):
  1. [sanity] the acceptance rate is non-decreasing in k and in delta; [paper] the largest (k, delta) accepts at
     least 0.05 more than standard speculative sampling (k = 1);
  2. [sanity] every relaxed target is within delta of the target: max over contexts and tokens of TV(p, p_tilde_x)
     <= delta (the bound defining A_{k,delta}; it holds per draft token, not for the output law, see below).
     Monotonicity and the TV bound hold by construction (A is the prefix of neighbours whose mass fits in delta,
     and it only grows with k and delta), so since the claims audit of 2026-12-03 they are sanity rows; with one
     paper claim left [86] is `implemented`, as the end of this docstring says it should be;
  3. [sanity] Monte Carlo through `lantern_accept` matches the exact acceptance rate (5 binomial std) and, at k = 1,
     the exact output equals the target (TV <= 1e-6) while its samples pass a chi-square test (p > 1e-4).
What the TV bound does not give: the output law o is not within delta of p. At the cpu preset TV(o, p) is 0.13 at
k = 8, delta = 0.05 and 0.17 at delta >= 0.1 (the figure's middle panel); once every draft is accepted, o = q.

Outcome at the cpu preset: every claim passes. These are the claims issue 22 lists for [86] (k = 1 is exact
speculative sampling; the acceptance rises with k and delta while the TV bound holds).

The quality comparison (reported as `finding_fd_ratio_latent_over_arbitrary` in the results and drawn in the third
panel; it was claim 3 of the earlier versions and is no longer a claim). Measured: the latent Frechet distance FD of
the output to the target in latent space, latent neighbours / arbitrary neighbours (the token itself plus k - 1
random tokens) at equal acceptance (the baseline's FD interpolated at the method's acceptance, for every delta > 0
at k = max(ks) whose acceptance gain is >= 0.01 and within the baseline's range). Earlier versions claimed this ratio
<= 0.5 in every seed (a threshold of our own: the paper gives no number for it) and failed:
  First version: the mean latent shift ||E_o[e] - E_p[e]|| at the largest (k, delta); ratio 1.02. Mis-designed twice:
  at the largest (k, delta) both variants accept almost every draft, and then the output law is the drafter's q
  whichever neighbours are used (the ratio is 1 by construction), and a mean shift is not the paper's measure.
  Second version (the FD at equal acceptance above, with the drafter's errors confined to latent clusters): worst
  ratio 5.7 (per seed, over the matched deltas: [4.70, 2.39, 0.99], [3.45, 1.45, 0.99], [5.67, 2.14]); with the
  token-wise drafter (`--set drafter=token`) 3.5.
Why the toy cannot test it, and why it is not a claim any more: in this exact single-token model the output law is
set by the per-draft acceptance probabilities and residuals, which do not carry the latent distance the credited
mass travelled; arbitrary neighbours mostly carry little target mass, so more of them fit in the budget delta and
they raise the acceptance faster per unit delta (0.91 at delta 0.025 vs 0.87 at 0.02), and at equal acceptance their
output is no farther from p in latent space; at saturation both outputs equal q. The paper's evidence is FID of whole
images decoded from multi-token accepted runs under a trained drafter (Table 1, LlamaGen), which this toy does not
model. [86] therefore stays `implemented`, not `reproduced`: the paper's headline (speed-up at kept image quality)
is not reproduced here, only its acceptance mechanism and its TV bound.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, sweep
from jaxlib_methods.runner.constraints import Check, Length, PositiveFloat, Range
from jaxlib_methods.sampling import lantern_accept, lantern_aggregate, latent_neighbors

PAPER = Paper(catalog_id=86, title="LANTERN: Accelerating Visual Autoregressive Models with Relaxed Speculative "
              "Decoding", year=2024, arxiv="2410.03355")
DEMO = False   # [86] is implemented, not reproduced (see the docstring): not in the default set


@dataclasses.dataclass(frozen=True)
class Config:
  seeds: Annotated[tuple[int, ...], Range(ge=0, le=2**31 - 1), Length(min=3)] = (0, 1, 2)
  clusters: Annotated[int, Range(ge=2, le=64)] = 16       # a square number of cluster centres (4 x 4 grid)
  per_cluster: Annotated[int, Range(ge=1, le=16)] = 4
  jitter: PositiveFloat = 0.1                              # token spread around its cluster centre
  tau: PositiveFloat = 1.0                                 # target's latent smoothness
  logit_noise: Annotated[float, Range(ge=0)] = 0.1
  draft_noise: Annotated[float, Range(ge=0)] = 0.5
  # "ambiguity": the drafter's errors stay inside each latent cluster (the cluster's total mass is the target's;
  # its split among the cluster's tokens gets the noise): the paper's token selection ambiguity. "token": the
  # noise on every token's logit independently (the first version of this toy; errors unstructured in latent space)
  drafter: Literal["ambiguity", "token"] = "ambiguity"
  contexts: Annotated[int, Range(ge=1)] = 32
  ks: Annotated[tuple[int, ...], Range(ge=1), Length(min=2)] = (1, 2, 4, 8)
  deltas: Annotated[tuple[float, ...], Range(ge=0, le=1), Length(min=2)] = (0.0, 0.02, 0.05, 0.1, 0.2)
  mc_samples: Annotated[int, Range(ge=1000)] = 50000       # Monte Carlo draws (one context) for the sanity rows
  # the arbitrary-neighbour baseline's delta grid (k = max(ks)), to match the method's acceptance (the finding)
  baseline_deltas: Annotated[tuple[float, ...], Range(ge=0, le=1), Length(min=2)] = tuple(
      round(0.025 * i, 3) for i in range(41))
  neighbors: Literal["latent", "random"] = "latent"        # "random": arbitrary neighbours for the method too
  tv_budget: Literal["paper", "ignored"] = "paper"         # "ignored": all k neighbours aggregated (a mutation)
  mesh: MeshConfig = MeshConfig()   # devices the contexts and the Monte Carlo draws are split over

  CHECKS = (Check("mesh.data == 0 or (contexts % mesh.data == 0 and mc_samples % mesh.data == 0)",
                  "the contexts and the Monte Carlo draws are split evenly over mesh.data devices"),)

PRESETS = {"cpu": Config(), "gpu": Config(contexts=512, mc_samples=1000000),
           "tpu": Config(contexts=512, mc_samples=1000000)}
TINY = ("contexts=8", "mc_samples=5000", "ks=(1,8)", "deltas=(0.0,0.05)", "baseline_deltas=(0.0,0.05,0.1,0.2,0.4,1.0)")
# The method without its relaxation (one neighbour: the draft token itself, i.e. standard speculative sampling at
# every k) gains no acceptance: the paper claim fails. (Until 2026-12-03 the mutation was `tv_budget=ignored`,
# which breaks the TV bound, now a sanity row.)
MUTATIONS = {"no_neighbours": ("ks=(1,1)",)}
MUTATION_TEST_SLOW = True  # [86] is not reproduced (its quality statement is untestable here): the mutation test
                           # runs under -m slow only, keeping the default run for reproduced claims (test budget)


def _codebook(config: Config, rng) -> np.ndarray:
  side = int(round(np.sqrt(config.clusters)))
  grid = np.stack(np.meshgrid(np.arange(side), np.arange(-(-config.clusters // side))), -1).reshape(-1, 2)
  centres = grid[:config.clusters].astype(np.float64)
  return (np.repeat(centres, config.per_cluster, 0)
          + config.jitter * rng.normal(size=(config.clusters * config.per_cluster, 2)))


def _random_neighbors(v: int, k: int, rng) -> np.ndarray:
  out = np.zeros((v, k), np.int32)
  for t in range(v):
    others = rng.permutation(np.delete(np.arange(v), t))[:k - 1]
    out[t] = np.concatenate([[t], others])
  return out


_aggregate = jax.jit(lantern_aggregate)     # delta traced: one compilation per neighbourhood width k
_accept = jax.jit(lantern_accept)


def latent_frechet_distance(o: np.ndarray, p: np.ndarray, emb: np.ndarray) -> np.ndarray:
  """The FID formula on the codebook: Frechet distance between the Gaussian moment fits of the latent vectors
  under two token distributions, ||mu_o - mu_p||^2 + tr(S_o + S_p - 2 (S_p^1/2 S_o S_p^1/2)^1/2); o, p [C, V],
  emb [V, 2] -> [C]. For 2 x 2 PSD A, tr A^1/2 = sqrt(tr A + 2 sqrt(det A)), and det(S_p^1/2 S_o S_p^1/2) =
  det S_p det S_o, tr(...) = tr(S_p S_o)."""
  mu_o, mu_p = o @ emb, p @ emb
  s_o = np.einsum("cv,vi,vj->cij", o, emb, emb) - mu_o[:, :, None] * mu_o[:, None, :]
  s_p = np.einsum("cv,vi,vj->cij", p, emb, emb) - mu_p[:, :, None] * mu_p[:, None, :]
  det = np.maximum(np.linalg.det(s_o) * np.linalg.det(s_p), 0.0)
  cross = np.sqrt(np.maximum(np.einsum("cij,cji->c", s_p, s_o) + 2 * np.sqrt(det), 0.0))
  return (np.sum((mu_o - mu_p) ** 2, 1) + np.trace(s_o, axis1=1, axis2=2) + np.trace(s_p, axis1=1, axis2=2)
          - 2 * cross)


def _exact(p, q, nb, delta, emb, mesh=None):
  """Exact acceptance, output TV, latent Frechet distance of the output to the target, max per-token TV(p, p_tilde):
  p, q [C, V]; the contexts are split over `mesh` (None: the default device)."""
  c, v = p.shape
  toks = np.broadcast_to(np.arange(v), (c, v)).astype(np.int32)
  pb = np.broadcast_to(p[:, None, :], (c, v, v)).astype(np.float32)
  if mesh is not None:
    pb, toks = shard_leading((pb, toks), mesh, what="context")
  pt, moved = _aggregate(jnp.asarray(pb), jnp.asarray(toks), jnp.asarray(nb), delta=jnp.float32(delta))
  pt, moved = np.asarray(pt, np.float64), np.asarray(moved, np.float64)      # p_tilde_x [C, x, V]
  pa = pt[:, np.arange(v), np.arange(v)]                                     # p(A(x)) [C, V]
  alpha = np.minimum(q, pa)                                   # q(x) min(1, p(A(x))/q(x))
  beta = alpha.sum(1)
  res = np.maximum(pt - q[:, None, :], 0)                     # residual norm(max(p_tilde_x - q, 0)) per draft x
  res = res / np.maximum(res.sum(-1, keepdims=True), 1e-300)
  out = alpha + np.einsum("cx,cxy->cy", q - alpha, res)
  return {"acceptance": float(beta.mean()), "output_tv": float(0.5 * np.abs(out - p).sum(1).mean()),
          "max_token_tv": float(moved.max()), "latent_fd": float(latent_frechet_distance(out, p, emb).mean())}


def _one_seed(config: Config, seed: int) -> dict:
  mesh = make_mesh(config.mesh)
  rng = np.random.default_rng(seed)
  emb = _codebook(config, rng)
  v = emb.shape[0]
  lo, hi = emb.min(0), emb.max(0)
  ctx = lo + (hi - lo) * rng.uniform(size=(config.contexts, 2))
  logits = (-((emb[None] - ctx[:, None]) ** 2).sum(-1) / (2 * config.tau ** 2)
            + config.logit_noise * rng.normal(size=(config.contexts, v)))
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  dl = logits + config.draft_noise * rng.normal(size=logits.shape)
  q = np.exp(dl - dl.max(1, keepdims=True))
  if config.drafter == "ambiguity":        # q_v = p(cluster of v) * softmax over the cluster of the noisy logits
    cluster = np.arange(v) // config.per_cluster
    onehot = np.eye(config.clusters)[cluster]                                   # [V, clusters]
    q = q / (q @ onehot)[:, cluster] * (p @ onehot)[:, cluster]
  q /= q.sum(1, keepdims=True)
  kmax = max(config.ks)
  nb_latent = np.asarray(latent_neighbors(jnp.asarray(emb, jnp.float32), kmax))
  nb_random = _random_neighbors(v, kmax, np.random.default_rng(seed + 1000))
  nb_method = nb_latent if config.neighbors == "latent" else nb_random
  grid = {}
  for k in config.ks:
    for d in config.deltas:
      d_method = d if config.tv_budget == "paper" else 1.0
      grid[f"{k},{d}"] = {"method": _exact(p, q, nb_method[:, :k], d_method, emb, mesh),
                          "random": _exact(p, q, nb_random[:, :k], d, emb, mesh)}
  baseline = [_exact(p, q, nb_random, d, emb, mesh) for d in config.baseline_deltas]   # k = max(ks)
  # Monte Carlo through lantern_accept on context 0
  n = config.mc_samples
  kd, ka = jax.random.split(jax.random.key(seed))
  pj, qj = jnp.asarray(p[0], jnp.float32), jnp.asarray(q[0], jnp.float32)
  draft = jax.random.categorical(kd, jnp.log(qj), shape=(n,))
  P, Q, draft = shard_leading((jnp.broadcast_to(pj, (n, v)), jnp.broadcast_to(qj, (n, v)), draft), mesh,
                              what="Monte Carlo draw")
  kb, db = max(config.ks), max(config.deltas)
  mc = {}
  for name, (k, d) in {"largest": (kb, db), "standard": (1, 0.0)}.items():
    out, acc = _accept(ka, P, Q, draft, jnp.asarray(nb_method[:, :k]), delta=jnp.float32(d))
    exact = _exact(p[:1], q[:1], nb_method[:, :k], d, emb)
    counts = np.bincount(np.asarray(out), minlength=v)
    mc[name] = {"acceptance": float(acc.mean()), "exact_acceptance": exact["acceptance"], "samples": n,
                "exact_output_tv": exact["output_tv"],
                "chi2_p": float(stats.chisquare(counts[p[0] * n > 5], (p[0] * n)[p[0] * n > 5]
                                                * counts[p[0] * n > 5].sum() / (p[0] * n)[p[0] * n > 5].sum()
                                                ).pvalue)}
  return {"grid": grid, "baseline": baseline, "mc": mc}


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  per_seed = [sweep.memoized(workdir, {"seed": s, "config": dataclasses.asdict(config)},
                             lambda s=s: _one_seed(config, s)) for s in config.seeds]
  keys = list(per_seed[0]["grid"])
  table = {}
  for i, key in enumerate(keys):
    row = {}
    for which in ("method", "random"):
      for m in ("acceptance", "output_tv", "max_token_tv", "latent_fd"):
        vals = np.array([s["grid"][key][which][m] for s in per_seed])
        row[f"{which}_{m}"], row[f"{which}_{m}_std"] = float(vals.mean()), float(vals.std())
    table[key] = row
    log.log(i, kd=key, acceptance=row["method_acceptance"], output_tv=row["method_output_tv"],
            latent_fd=row["method_latent_fd"])
  kmax = max(config.ks)
  out = {"ks": list(config.ks), "deltas": list(config.deltas), "table": table, "mc": [s["mc"] for s in per_seed],
         "baseline_deltas": list(config.baseline_deltas),
         # per seed: the method's (acceptance, latent FD) at k = max(ks) over deltas, and the baseline's curve
         "method_curve": [[[s["grid"][f"{kmax},{d}"]["method"][m] for d in config.deltas]
                           for m in ("acceptance", "latent_fd")] for s in per_seed],
         "baseline_curve": [[[b[m] for b in s["baseline"]] for m in ("acceptance", "latent_fd")] for s in per_seed]}
  # A measured finding, not a claim (see the module docstring): latent / arbitrary FD at equal acceptance.
  fd_ratios, n_points = matched_acceptance_fd_ratios(out)
  out["finding_fd_ratio_latent_over_arbitrary"] = {"per_seed": fd_ratios, "matched_deltas": n_points,
                                                   "worst": (max(r for seed in fd_ratios for r in seed)
                                                             if n_points else None)}
  _figure(out, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  ks, ds, t = results["ks"], results["deltas"], results["table"]
  acc = np.array([[t[f"{k},{d}"]["method_acceptance"] for d in ds] for k in ks])     # [k, delta]
  mono = bool(np.all(np.diff(acc, axis=0) >= -1e-9) and np.all(np.diff(acc, axis=1) >= -1e-9))
  worst_tv_excess = max(t[f"{k},{d}"]["method_max_token_tv"] - d for k in ks for d in ds)
  mc = results["mc"]
  def within(m):   # 5 binomial std of the Monte Carlo sample (floored at one count when the rate is 0 or 1)
    b, n = m["exact_acceptance"], m["samples"]
    return abs(m["acceptance"] - b) <= 5 * np.sqrt(max(b * (1 - b), 1.0 / n) / n)
  mc_ok = all(within(m["largest"]) and within(m["standard"]) for m in mc)
  std_ok = all(m["standard"]["exact_output_tv"] <= 1e-6 and m["standard"]["chi2_p"] > 1e-4 for m in mc)
  where = "method section (relaxed acceptance with latent proximity, TVD bound); ablation on k and delta"
  return [
      Claim.holds("acceptance rate non-decreasing in k and in delta (exact, mean over contexts and seeds)", mono,
                  detail=f"acceptance [k x delta] = {np.round(acc, 3).tolist()}", kind="sanity", where=where,
                  paper="larger k, delta -> more accepted tokens"),
      Claim.at_least(f"acceptance(k = {ks[-1]}, delta = {ds[-1]}) - acceptance(k = 1) (standard)",
                     float(acc[-1, -1] - acc[0, 0]), 0.05, kind="paper", where=where,
                     paper="LANTERN raises acceptance over standard speculative decoding"),
      Claim.at_most("max over (k, delta), contexts, tokens of TV(p, p_tilde_x) - delta", worst_tv_excess, 1e-6,
                    kind="sanity", where="method section, A_{k,delta}: TVD(p, p_tilde) <= delta", paper="<= 0"),
      Claim.holds("Monte Carlo acceptance of lantern_accept = exact (5 binomial std), every seed", mc_ok,
                  kind="sanity", paper="exact"),
      Claim.holds("k = 1: exact output = target (TV <= 1e-6) and chi-square p > 1e-4 on lantern_accept samples",
                  std_ok, kind="sanity", paper="standard speculative sampling is exact"),
  ]


def matched_acceptance_fd_ratios(results: dict, min_gain: float = 0.01) -> tuple[list[list[float]], int]:
  """Per seed, FD_latent(delta) / FD_arbitrary(at the same acceptance) for the method's deltas at k = max(ks) whose
  acceptance gain over delta = 0 is >= min_gain and within the arbitrary-neighbour curve's range (linear
  interpolation of that curve's latent FD in its acceptance). Returns (ratios per seed, number of deltas used)."""
  ratios = []
  for (acc_m, fd_m), (acc_b, fd_b) in zip(results["method_curve"], results["baseline_curve"]):
    acc_b = np.maximum.accumulate(np.asarray(acc_b))            # non-decreasing in delta (claim 1); exact ties kept
    xs, idx = np.unique(acc_b, return_index=True)
    ys = np.asarray(fd_b)[idx]
    seed = []
    for a, f in zip(acc_m, fd_m):
      if a - acc_m[0] >= min_gain and a <= xs[-1]:
        seed.append(float(f / max(np.interp(a, xs, ys), 1e-300)))
    ratios.append(seed)
  return ratios, min(len(seed) for seed in ratios)


def _figure(out, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  ks, ds, t = out["ks"], out["deltas"], out["table"]
  fig, axes = plt.subplots(1, 3, figsize=(14, 4))
  for k in ks:
    axes[0].plot(ds, [t[f"{k},{d}"]["method_acceptance"] for d in ds], "-o", label=f"k = {k}")
    axes[1].plot(ds, [t[f"{k},{d}"]["method_output_tv"] for d in ds], "-o", label=f"k = {k}")
  acc_m, fd_m = np.mean(out["method_curve"], axis=0)
  acc_b, fd_b = np.mean(out["baseline_curve"], axis=0)
  axes[2].plot(acc_m, fd_m, "-o", label=f"latent neighbours, k = {ks[-1]}")
  axes[2].plot(acc_b, fd_b, "k--x", label=f"arbitrary neighbours, k = {ks[-1]}")
  axes[1].plot(ds, ds, "k:", label="delta")
  for ax, xlab, lab in zip(axes, ("delta", "delta", "acceptance rate (seed mean)"),
                           ("acceptance rate", "TV(output, target)", "latent Frechet distance(output, target)")):
    ax.set_xlabel(xlab)
    ax.set_ylabel(lab)
    ax.legend(fontsize=7)
  fig.subplots_adjust(wspace=0.3)
  fig.suptitle("LANTERN relaxed speculative acceptance on a toy latent vocabulary (Jang et al. 2024)")
  save_figure(fig, workdir / "figure.png")
