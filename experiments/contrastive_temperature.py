"""Understanding the behaviour of contrastive loss: the temperature controls uniformity and tolerance.

Paper [22]: Feng Wang, Huaping Liu, "Understanding the Behaviour of Contrastive Loss", CVPR 2021, arXiv:2012.09740.

1. Exact gradient (Sec. 3): for L_i = -log( exp(s_ii/tau) / sum_k exp(s_ik/tau) ), dL_i/ds_ij = (1/tau) P_ij for every
   negative j != i and dL_i/ds_ii = -(1/tau) sum_{k != i} P_ik, with P_i. = softmax(s_i. / tau): the loss weighs
   negatives by a softmax of their similarity ("hardness-aware"). Checked with autodiff against the formula.
2. Temperature (Sec. 4): a smaller tau gives more uniform embeddings (higher uniformity) and lower tolerance to
   semantically similar samples. Checked by training a small encoder with InfoNCE on clustered synthetic data
   (K Gaussian clusters in R^d; positive pairs = two noisy views of one point) at each tau of a grid, then measuring
   `jaxlib_methods.analysis.uniformity` and `tolerance` (same-cluster mean cosine similarity) on held-out points.
   Observed at the CPU size (seed 0): from tau = 1 to 0.2 uniformity rises (2.03 -> 2.95) and tolerance falls
   (0.99 -> 0.58) as the paper says, but below tau = 0.2 both saturate and wobble (uniformity 2.92, 2.97, 2.95 and
   tolerance 0.59, 0.54, 0.58 at tau = 0.05, 0.1, 0.2), so both rank correlations come out at -0.7 / 0.7 and the
   claims (|rho| >= 0.8 over the whole grid) fail: the trend is reproduced, strict monotonicity at small tau is not.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods.analysis import tolerance, uniformity
from jaxlib_methods.runner import Claim, MetricsLog, Paper, save_figure
from jaxlib_methods.runner.constraints import Check, Length, NonNegativeFloat, PositiveFloat, PositiveInt, Range, Seed

PAPER = Paper(catalog_id=22, title="Understanding the Behaviour of Contrastive Loss", year=2021, arxiv="2012.09740")
DEMO = True


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  dim: PositiveInt = 16
  num_clusters: PositiveInt = 8
  cluster_std: NonNegativeFloat = 0.6
  view_noise: NonNegativeFloat = 0.3
  embed_dim: PositiveInt = 8
  hidden: PositiveInt = 64
  batch_size: Annotated[int, Range(ge=2)] = 128     # in-batch negatives need >= 2
  num_steps: PositiveInt = 1200
  learning_rate: PositiveFloat = 3e-3
  taus: Annotated[tuple[float, ...], Range(gt=0), Length(min=2)] = (0.05, 0.1, 0.2, 0.5, 1.0)
  n_eval: Annotated[int, Range(ge=2)] = 512

  CHECKS = (Check("len(set(taus)) == len(taus)", "the rank correlation over tau needs distinct temperatures"),)

PRESETS = {"cpu": Config(), "gpu": Config(num_steps=5000, batch_size=1024, n_eval=4096, hidden=512),
           "tpu": Config(num_steps=5000, batch_size=1024, n_eval=4096, hidden=512)}


def info_nce(z1: jax.Array, z2: jax.Array, tau: float) -> jax.Array:
  """Per-anchor InfoNCE with in-batch negatives: s_ij = z1_i . z2_j (unit vectors). [B, D] x2 -> [B]."""
  s = z1 @ z2.T / tau
  return -jnp.diagonal(jax.nn.log_softmax(s, axis=-1))


def negative_gradient_weights(s: jax.Array, tau: float) -> jax.Array:
  """The paper's closed form dL_i/ds_ij: (1/tau) softmax(s_i./tau)_j off the diagonal, -(1/tau) sum_{k!=i} P_ik
  on it (Wang & Liu 2021, Sec. 3). s [B, B] -> [B, B]."""
  p = jax.nn.softmax(s / tau, axis=-1)
  off = p / tau
  diag = -(1.0 - jnp.diagonal(p)) / tau
  return off * (1 - jnp.eye(s.shape[0])) + jnp.diag(diag)


def _encoder_init(key, config):
  k1, k2 = jax.random.split(key)
  return {"w1": jax.random.normal(k1, (config.dim, config.hidden)) / np.sqrt(config.dim),
          "w2": jax.random.normal(k2, (config.hidden, config.embed_dim)) / np.sqrt(config.hidden)}


def _encode(p, x):
  z = jax.nn.relu(x @ p["w1"]) @ p["w2"]
  return z / jnp.linalg.norm(z, axis=-1, keepdims=True)


def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  log = MetricsLog(workdir)
  log.reset()
  key = jax.random.key(config.seed)
  # Separate streams: in JAX, split(k, n)[i] == fold_in(k, i), so training keys get their own parent key.
  kc, kinit, keval, kgrad, ktrain = jax.random.split(key, 5)
  centers = 2.0 * jax.random.normal(kc, (config.num_clusters, config.dim)) / np.sqrt(config.dim) * 2

  def sample(k, n):
    k1, k2, k3, k4 = jax.random.split(k, 4)
    c = jax.random.randint(k1, (n,), 0, config.num_clusters)
    x = centers[c] + config.cluster_std * jax.random.normal(k2, (n, config.dim)) / np.sqrt(config.dim) * 2
    v1 = x + config.view_noise * jax.random.normal(k3, x.shape) / np.sqrt(config.dim) * 2
    v2 = x + config.view_noise * jax.random.normal(k4, x.shape) / np.sqrt(config.dim) * 2
    return x, v1, v2, c

  # 1. The exact gradient identity.
  s = jax.random.uniform(kgrad, (6, 6), minval=-1, maxval=1)
  grad_err = 0.0
  for tau in config.taus:
    g = jax.grad(lambda m: jnp.sum(-jnp.diagonal(jax.nn.log_softmax(m / tau, axis=-1))))(s)
    grad_err = max(grad_err, float(jnp.max(jnp.abs(g - negative_gradient_weights(s, tau))) * tau))

  # 2. Train one encoder per tau (vmapped) from the same init.
  taus = jnp.asarray(config.taus, jnp.float32)
  p0 = _encoder_init(kinit, config)
  params = jax.tree.map(lambda x: jnp.broadcast_to(x, (len(config.taus),) + x.shape), p0)
  tx = optax.adam(config.learning_rate)
  opt = jax.vmap(tx.init)(params)

  def loss(p, tau, v1, v2):
    return jnp.mean(info_nce(_encode(p, v1), _encode(p, v2), tau))

  @jax.jit
  def step(params, opt, k):
    _, v1, v2, _ = sample(k, config.batch_size)

    def one(p, o, tau):
      l, g = jax.value_and_grad(loss)(p, tau, v1, v2)
      u, o = tx.update(g, o, p)
      return optax.apply_updates(p, u), o, l
    return jax.vmap(one)(params, opt, taus)

  for i in range(config.num_steps):
    params, opt, l = step(params, opt, jax.random.fold_in(ktrain, i))
    if i % 100 == 0 or i == config.num_steps - 1:
      log.log(i, **{f"tau{t:g}/loss": float(v) for t, v in zip(config.taus, np.asarray(l))})
  x, _, _, c = sample(keval, config.n_eval)
  unif, tol = [], []
  for i in range(len(config.taus)):
    z = _encode(jax.tree.map(lambda a: a[i], params), x)
    unif.append(float(uniformity(z)))
    tol.append(float(tolerance(z, c)))
  out = {"taus": list(config.taus), "uniformity": unif, "tolerance": tol, "gradient_identity_max_err": grad_err}
  _figure(out, workdir)
  return out


def _spearman(a, b):
  ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
  return float(np.corrcoef(ra, rb)[0, 1])


def claims(results: dict) -> list[Claim]:
  taus = results["taus"]
  return [
      Claim.at_most("dL/ds_ij = (1/tau) softmax(s_i/tau)_j for negatives (max |autodiff - formula| * tau)",
                    results["gradient_identity_max_err"], 1e-6, paper="exact (Sec. 3)"),
      Claim.at_most("uniformity rises as tau falls: Spearman rank correlation(uniformity, tau)",
                    _spearman(results["uniformity"], taus), -0.8, paper="smaller tau -> more uniform (Fig. 3)"),
      Claim.at_least("tolerance falls as tau falls: Spearman rank correlation(tolerance, tau)",
                     _spearman(results["tolerance"], taus), 0.8, paper="smaller tau -> lower tolerance (Fig. 3)"),
  ]


def _figure(results, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
  ax[0].semilogx(results["taus"], results["uniformity"], "o-")
  ax[0].set_title("uniformity (-log E exp(-2||zi-zj||^2))")
  ax[1].semilogx(results["taus"], results["tolerance"], "o-")
  ax[1].set_title("tolerance (same-cluster similarity)")
  for a in ax:
    a.set_xlabel("temperature tau")
  fig.suptitle("Understanding the Behaviour of Contrastive Loss (Wang & Liu 2021)")
  save_figure(fig, workdir / "figure.png")
