"""m^2-Mix: geodesic multi-modal mixup improves the alignment and uniformity of a CLIP-style embedding.

Paper [119]: Changdae Oh, Junhyuk So, Hoyoon Byun, YongTaek Lim, Minchul Shin, Jong-June Jeon, Kyungwoo Song, "Geodesic
Multi-Modal Mixup for Robust Fine-Tuning", NeurIPS 2023, arXiv:2203.03897. The paper finds that CLIP's joint embedding
has poor uniformity and alignment (a modality gap) and adds m^2-Mix, a contrastive term whose negatives are geodesic
mixtures m_lam(I_j, T_j) of the other pairs' image and text embeddings on the sphere; fine-tuning with it improves
both alignment and uniformity (its analysis of the embedding, alongside the downstream gains).

Setup. Paired two-modality data: a shared latent s ~ N(0, I_k); "image" = A s + noise, "text" = B s + noise, with
random A, B (different input dimensions). One MLP encoder per modality, outputs L2-normalised. From the same random
init (MLP outputs start in a narrow cone, the origin of the modality gap) and the same batches, two arms train for
`steps` Adam steps: (a) the symmetric CLIP loss, (b) CLIP + `mix_weight` * `jaxlib_methods.losses.m2mix_loss` with
lam ~ Beta(`beta_param`, `beta_param`) each step (the official script's Beta(0.5, 0.5)). `num_seeds` seeds, vmapped.
Measured on held-out pairs: alignment E||f(I) - g(T)||^2 and uniformity log E exp(-2||u - v||^2) over the union of
image and text embeddings (Wang & Isola's metrics, `alignment_loss` / `uniformity_loss`; lower is better for both).

Claims (tolerances fixed before the run):
  1. (paper) geodesic mixup stays on the sphere: max | ||m_lam(a, b)|| - 1 | <= 1e-5 over random unit pairs and lam,
     and m_lam is on the geodesic: angle(m_lam, b) = lam * angle(a, b) to 1e-4 (float64 NumPy reference).
  2. (paper) alignment: alignment(CLIP) - alignment(CLIP + m^2-Mix), lower end of the 95% t-interval over seeds > 0.
  3. (paper) uniformity: uniformity(CLIP) - uniformity(CLIP + m^2-Mix), lower end of the interval > 0.
Mutation `no_mixup` (`mix_weight=0`): the method arm is plain CLIP; claims 2-3 must fail.

What we measured (cpu preset, 3 seeds, 64 s on 2 cores): claim 2 reproduces, claim 3 does NOT. Alignment 0.322
(m^2-Mix) vs 0.344 (CLIP), gain interval [0.005, 0.039]; uniformity -2.891 vs -2.913, i.e. m^2-Mix slightly *less*
uniform (gain interval [-0.034, -0.009]). The official script logs lunif(cat([image, image])), the image
embedding's uniformity alone: on that reading (`uniformity_image_gain`, a diagnostic, not a claim) the difference is
within seed noise (gain -0.013, interval [-0.060, 0.034]). Tried: mix weight 0.05 and 0.5, temperature 0.05 and
0.01, and an initial modality gap
(`gap=3`: last-layer biases +-3u, so the two modalities start in separate cones). Every setting improved alignment
(by up to 1.06 with the gap at temperature 0.01) and none improved the uniformity of the union of image and text
embeddings (-0.02 to -0.58): closing the gap between the modalities brings the two point clouds together, and the
union's uniformity falls with it. The paper's uniformity gain is measured on CLIP's real embedding, whose modalities
each sit in a narrow cone; the toy encoders spread each modality over the sphere already.
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

from experiments._ssl_toys import l2_normalize, mean_ci, mlp_apply, mlp_init
from jaxlib_methods.losses import alignment_loss, geodesic_mixup, m2mix_loss, uniformity_loss
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, make_mesh, save_figure, shard_leading, sweep
from jaxlib_methods.runner.constraints import Check, NonNegativeFloat, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=119, title="Geodesic Multi-Modal Mixup for Robust Fine-Tuning", year=2023,
              arxiv="2203.03897")
DEMO = False


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  num_seeds: Annotated[int, Range(ge=2, le=16)] = 3
  latent: PositiveInt = 8
  dim_image: PositiveInt = 24
  dim_text: PositiveInt = 16
  noise: NonNegativeFloat = 0.5
  hidden: PositiveInt = 64
  embed: PositiveInt = 16
  batch_size: Annotated[int, Range(ge=2)] = 128
  steps: PositiveInt = 1000
  learning_rate: PositiveFloat = 1e-3
  temperature: PositiveFloat = 0.05          # CLIP and m^2-Mix temperature
  mix_weight: NonNegativeFloat = 0.05        # weight of the m^2-Mix term (official 0.001-0.05; 0: the mutation)
  gap: NonNegativeFloat = 0.0                # initial modality gap: last-layer biases +gap u (image), -gap u (text)
  beta_param: PositiveFloat = 0.5            # lam ~ Beta(b, b)
  n_eval: Annotated[int, Range(ge=4)] = 1000
  log_every: PositiveInt = 250
  mesh: MeshConfig = MeshConfig()   # devices the independent runs (seeds) are split over

  CHECKS = (Check("steps % log_every == 0", "training runs whole chunks of log_every steps"),)

PRESETS = {
    "cpu": Config(),
    "gpu": Config(latent=32, dim_image=256, dim_text=128, hidden=512, embed=128, batch_size=1024, steps=10000,
                  n_eval=8192, num_seeds=5, log_every=1000),
    "tpu": Config(latent=32, dim_image=256, dim_text=128, hidden=512, embed=128, batch_size=1024, steps=10000,
                  n_eval=8192, num_seeds=5, log_every=1000),
}

TINY = ("steps=250", "log_every=250", "n_eval=500", "mix_weight=0.5", "batch_size=64", "hidden=32")
MUTATIONS = {"no_mixup": ("mix_weight=0",)}
MUTATION_TEST_SLOW = True  # a paper claim of this experiment fails at its preset (not reproduced): the mutation test
                           # runs under -m slow only, keeping the default run for reproduced claims (test budget)


def clip_loss(image: jax.Array, text: jax.Array, temperature: float) -> jax.Array:
  """Symmetric InfoNCE over a batch of unit-norm pairs (Radford et al. 2021), [B, d] x2 -> scalar."""
  logits = image @ text.T / temperature
  labels = jnp.arange(image.shape[0])
  ce = optax.losses.softmax_cross_entropy_with_integer_labels
  return (jnp.mean(ce(logits, labels)) + jnp.mean(ce(logits.T, labels))) / 2


def geodesic_checks(num: int = 256, dim: int = 16, seed: int = 0) -> tuple[float, float]:
  """Max | ||m_lam|| - 1 | and max |angle(m_lam, b) - lam angle(a, b)| over random unit pairs (float64)."""
  rng = np.random.default_rng(seed)
  a = rng.normal(size=(num, dim))
  b = rng.normal(size=(num, dim))
  a /= np.linalg.norm(a, axis=1, keepdims=True)
  b /= np.linalg.norm(b, axis=1, keepdims=True)
  lam = rng.uniform(size=num)
  with jax.enable_x64(True):
    m = np.asarray(jax.jit(geodesic_mixup)(jnp.asarray(a), jnp.asarray(b), jnp.asarray(lam)))
  theta = np.arccos(np.clip(np.sum(a * b, 1), -1, 1))
  angle_mb = np.arccos(np.clip(np.sum(m * b, 1) / np.linalg.norm(m, axis=1), -1, 1))
  return float(np.max(np.abs(np.linalg.norm(m, axis=1) - 1))), float(np.max(np.abs(angle_mb - lam * theta)))


def make_data(config: Config, n: int, rng: np.random.Generator, mixing):
  s = rng.normal(size=(n, config.latent))
  a, b = mixing
  img = s @ a + config.noise * rng.normal(size=(n, config.dim_image))
  txt = s @ b + config.noise * rng.normal(size=(n, config.dim_text))
  return img.astype(np.float32), txt.astype(np.float32)


def _static(config: Config) -> Config:
  return dataclasses.replace(config, seed=0, mix_weight=0.0, noise=0.0, gap=0.0)


@functools.partial(jax.jit, static_argnums=0)
def _init(static: Config, keys, gap_vector):
  def one(k):
    k1, k2 = jax.random.split(k)
    p = {"image": mlp_init(k1, (static.dim_image, static.hidden, static.embed)),
         "text": mlp_init(k2, (static.dim_text, static.hidden, static.embed))}
    p["image"][-1]["b"] = p["image"][-1]["b"] + gap_vector
    p["text"][-1]["b"] = p["text"][-1]["b"] - gap_vector
    return p
  params = jax.vmap(one)(keys)
  return params, jax.vmap(optax.adam(static.learning_rate).init)(params)


def _embed(p, img, txt):
  return l2_normalize(mlp_apply(p["image"], img)), l2_normalize(mlp_apply(p["text"], txt))


@functools.partial(jax.jit, static_argnums=0)
def _chunk(static: Config, carry, keys, start, img, txt, mix_weight, lams):
  tx = optax.adam(static.learning_rate)
  n = img.shape[0]

  def one(prm, ost, key, lam, step):
    idx = jax.random.choice(jax.random.fold_in(key, step), n, (static.batch_size,), replace=False)

    def loss_fn(p):
      zi, zt = _embed(p, img[idx], txt[idx])
      return clip_loss(zi, zt, static.temperature) + mix_weight * jnp.mean(
          m2mix_loss(zi, zt, lam, static.temperature))

    loss, g = jax.value_and_grad(loss_fn)(prm)
    upd, ost = tx.update(g, ost, prm)
    return optax.apply_updates(prm, upd), ost, loss

  def step(carry, xs):
    s, lam = xs
    prm, ost = carry
    prm, ost, loss = jax.vmap(one, in_axes=(0, 0, 0, 0, None))(prm, ost, keys, lam, s)
    return (prm, ost), loss

  # lam [log_every, num_seeds] is drawn on the host: jax.random.beta's sampler inside the vmapped scan took most of
  # the compile time.
  return jax.lax.scan(step, carry, (start + jnp.arange(static.log_every), lams))


@functools.partial(jax.jit, static_argnums=0)
def _metrics(static: Config, params, img, txt):
  def one(p):
    zi, zt = _embed(p, img, txt)
    return jnp.mean(alignment_loss(zi, zt)), uniformity_loss(jnp.concatenate([zi, zt])), uniformity_loss(zi)
  return jax.vmap(one)(params)


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  static = _static(config)
  rng = np.random.default_rng(config.seed)
  mixing = (rng.normal(size=(config.latent, config.dim_image)) / np.sqrt(config.latent),
            rng.normal(size=(config.latent, config.dim_text)) / np.sqrt(config.latent))
  img, txt = make_data(config, 8 * config.batch_size * 4, rng, mixing)
  img_te, txt_te = make_data(config, config.n_eval, rng, mixing)
  keys = jnp.stack([jax.random.key(int(v), impl="unsafe_rbg") for v in rng.integers(0, 2**31 - 1,
                                                                                        size=config.num_seeds)])
  lams = rng.beta(config.beta_param, config.beta_param, size=(config.steps, config.num_seeds)).astype(np.float32)
  keys = shard_leading(keys, make_mesh(config.mesh))  # the seeds' models train on their own devices
  u = rng.normal(size=config.embed)
  gap_vector = jnp.asarray(config.gap * u / np.linalg.norm(u), jnp.float32)
  arms = {"m2mix": config.mix_weight, "clip": 0.0}
  log = MetricsLog(workdir)
  log.reset()
  def train_arm(w):
    curve = {"alignment": [], "uniformity": [], "uniformity_image": []}
    carry = _init(static, keys, gap_vector)
    for i in range(config.steps // config.log_every):
      carry, _ = _chunk(static, carry, keys, i * config.log_every, jnp.asarray(img), jnp.asarray(txt),
                        jnp.float32(w), jnp.asarray(lams[i * config.log_every:(i + 1) * config.log_every]))
      al, un, un_img = (np.asarray(v) for v in _metrics(static, carry[0], jnp.asarray(img_te), jnp.asarray(txt_te)))
      curve["alignment"].append(al.tolist())
      curve["uniformity"].append(un.tolist())
      curve["uniformity_image"].append(un_img.tolist())
    return curve

  curves = {}
  for arm, w in arms.items():
    # One arm is a unit of resume: a rerun after an interruption reads its stored curves back (runner.sweep).
    curves[arm] = sweep.memoized(workdir, {"arm": arm, "mix_weight": w}, lambda w=w: train_arm(w))
    for i, (al, un) in enumerate(zip(curves[arm]["alignment"], curves[arm]["uniformity"])):
      log.log((i + 1) * config.log_every, **{f"{arm}/alignment": float(np.mean(al)),
                                             f"{arm}/uniformity": float(np.mean(un))})
  norm_err, angle_err = geodesic_checks()
  final = {arm: {k: v[-1] for k, v in c.items()} for arm, c in curves.items()}
  results = {
      "mix_weight": config.mix_weight,
      "final": final,
      "curves": curves,
      "alignment_gain": list(mean_ci(np.asarray(final["clip"]["alignment"]) - np.asarray(final["m2mix"]["alignment"]))),
      "uniformity_gain": list(mean_ci(np.asarray(final["clip"]["uniformity"])
                                      - np.asarray(final["m2mix"]["uniformity"]))),
      # Diagnostic, not a claim: the official script logs lunif(cat([image, image])), i.e. the image embedding's
      # uniformity only (a pair of duplicates adds a constant); reported so the two readings can be compared.
      "uniformity_image_gain": list(mean_ci(np.asarray(final["clip"]["uniformity_image"])
                                            - np.asarray(final["m2mix"]["uniformity_image"]))),
      "geodesic_norm_err": norm_err, "geodesic_angle_err": angle_err,
  }
  _figure(results, config, workdir)
  return results


def claims(results: dict) -> list[Claim]:
  return [
      Claim.at_most("geodesic mixup: max | ||m_lam|| - 1 | and max |angle(m_lam, b) - lam angle(a, b)| (float64)",
                    max(results["geodesic_norm_err"], results["geodesic_angle_err"]), 1e-4,
                    paper="m_lam lies on the geodesic of the unit sphere", kind="paper",
                    where="Sec. 4, geodesic multi-modal mixup"),
      Claim.at_least("alignment(CLIP) - alignment(CLIP + m^2-Mix): lower end of the 95% interval over seeds",
                     results["alignment_gain"][1], 1e-6, paper="m^2-Mix improves alignment", kind="paper",
                     where="Sec. 5, alignment and uniformity of the fine-tuned embedding"),
      Claim.at_least("uniformity(CLIP) - uniformity(CLIP + m^2-Mix): lower end of the 95% interval over seeds",
                     results["uniformity_gain"][1], 1e-6, paper="m^2-Mix improves uniformity", kind="paper",
                     where="Sec. 5, alignment and uniformity of the fine-tuned embedding"),
  ]


def _figure(results, config, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(1, 2, figsize=(10.5, 3.8))
  t = np.arange(1, len(results["curves"]["clip"]["alignment"]) + 1) * config.log_every
  for a, metric in zip(ax, ("alignment", "uniformity")):
    for arm, label in (("clip", "CLIP loss"), ("m2mix", f"CLIP + {results['mix_weight']:g} m^2-Mix")):
      c = np.asarray(results["curves"][arm][metric])
      a.plot(t, c.mean(1), label=label)
      a.fill_between(t, c.min(1), c.max(1), alpha=0.2)
    a.set_xlabel("step")
    a.set_ylabel(f"{metric} loss (lower is better)")
    a.set_title(f"paper: m^2-Mix lowers {metric}", fontsize=9)
    a.legend(fontsize=8)
  fig.suptitle("Geodesic multi-modal mixup (Oh et al. 2023): held-out pairs, mean and range over seeds")
  save_figure(fig, workdir / "figure.png")
