"""Energy-based concept bottleneck models: three energy networks over (input, concepts, class) whose Boltzmann
distributions give prediction, concept intervention and conditional probabilities from one joint energy.

Paper [58]: Xinyue Xu, Yi Qin, Lu Mi, Hao Wang, Xiaomeng Li, "Energy-Based Concept Bottleneck Models: Unifying
Prediction, Concept Intervention, and Probabilistic Interpretations", ICLR 2024, arXiv:2401.14142 (Sec. 3). With z the
frozen encoder's features of x, learnable class embeddings u_m, and a positive and a negative embedding per concept
(v_k^+, v_k^-; a relaxed c_k in [0, 1] mixes them, v_k = c_k v_k^+ + (1 - c_k) v_k^-):

  class energy    E_class(x, y = m)   = G_zu(z, u_m),                 p(y | x)   = softmax_m(-E_class(x, m));
  concept energy  E_concept(x, c)     = sum_k G_zv^k(z, v_k),          p(c_k | x) = softmax over c_k in {0, 1};
  global energy   E_global(c, y = m)  = G_vu(P [v_1; ...; v_K], u_m),  p(y | c)   = softmax_m(-E_global(c, m));
  joint energy    E(x, c, y) = E_class(x, y) + lambda_c E_concept(x, c) + lambda_g E_global(c, y),

and the training loss L_class + lambda_c L_concept + lambda_g L_global, each the negative log-likelihood of the
ground truth under its Boltzmann distribution (eqs. 1-6). Every G is the authors' pairing (github.com/xmed-lab/ECBM,
networks/EBM.py): h = W z (a linear map per network), e the L2-normalised embedding, G = w . relu(h + h * e) + b
(a per-concept head w_k, b_k for the concept energy); the global network projects the K concatenated (raw) concept
embeddings with one linear map P. The authors' training-time augmentations (dropout, random concept flips in the
global branch) are left out.

Inference and interventions use the joint Boltzmann distribution p(c, y | x) proportional to exp(-E(x, c, y)) over
binary c: `ecbm_joint_log_probs` enumerates all 2^K concept configurations exactly (small K; the paper minimises the
joint energy over relaxed c by gradient descent for its 112-concept data sets, which approximates the same mode);
`ecbm_conditionals` returns p(c_k = 1 | x, observed concepts) and p(y | x, observed concepts), an intervention being
the observed (ground-truth) value of some concepts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlib_methods import validation
from jaxlib_methods._norms import l2_normalize

MAX_ENUMERATED_CONCEPTS = 16


def _unit(e):
  return l2_normalize(e)


def _pair(h, e):
  """The authors' pairing relu(h + h * e), broadcast over leading axes."""
  return jax.nn.relu(h + h * e)


class ECBM(nnx.Module):
  """The three energy networks of an energy-based concept bottleneck model (Xu et al. 2024, arXiv:2401.14142, Sec. 3,
  eqs. 1-6; module docstring).

  Args:
    in_features: D, the frozen encoder's feature size.
    num_concepts: K >= 1 binary concepts.
    num_classes: M >= 2.
    hidden: H, embedding width of every energy network.
    rngs: PRNG streams (`params`).
    param_dtype: parameter dtype.

  Shapes: `class_energy` z [B, D] -> [B, M]; `concept_energy` z [B, D] -> [B, K, 2] (last axis: c_k = 0, 1);
  `global_energy` c [..., K] in [0, 1] -> [..., M]; __call__ z -> (class_energy, concept_energy).
  """

  def __init__(self, in_features: int, num_concepts: int, num_classes: int, *, hidden: int = 64, rngs: nnx.Rngs,
               param_dtype=jnp.float32):
    for name, val, low in (("in_features", in_features, 1), ("num_concepts", num_concepts, 1),
                           ("num_classes", num_classes, 2), ("hidden", hidden, 1)):
      if isinstance(val, bool) or not isinstance(val, int) or val < low:
        raise ValueError(f"{name} must be an int >= {low}, got {name}={val!r}")
    self.in_features, self.num_concepts, self.num_classes, self.hidden = in_features, num_concepts, num_classes, hidden
    normal = nnx.initializers.normal(1.0)
    self.class_emb_mh = nnx.Param(normal(rngs.params(), (num_classes, hidden), param_dtype))
    self.concept_emb_kvh = nnx.Param(normal(rngs.params(), (num_concepts, 2, hidden), param_dtype))  # v_k^-, v_k^+
    lin = dict(rngs=rngs, param_dtype=param_dtype)
    self.xy_fc = nnx.Linear(in_features, hidden, **lin)
    self.xy_out = nnx.Linear(hidden, 1, **lin)
    self.xc_fc = nnx.Linear(in_features, hidden, **lin)
    self.xc_out_kh = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (num_concepts, hidden), param_dtype))
    self.xc_out_k = nnx.Param(jnp.zeros((num_concepts,), param_dtype))
    self.concept_proj = nnx.Linear(num_concepts * hidden, hidden, **lin)
    self.cy_out = nnx.Linear(hidden, 1, **lin)

  def _check_z(self, z):
    z = validation.check_floating(z, "z")
    if z.ndim < 1 or z.shape[-1] != self.in_features:
      raise ValueError(f"z must be [..., D={self.in_features}], got z.shape={z.shape}")
    return z

  def class_energy(self, z: jax.Array) -> jax.Array:
    z = self._check_z(z)
    h = self.xy_fc(z)[..., None, :]                                                  # [..., 1, H]
    return self.xy_out(_pair(h, _unit(self.class_emb_mh[...])))[..., 0]              # [..., M]

  def concept_energy(self, z: jax.Array) -> jax.Array:
    z = self._check_z(z)
    h = self.xc_fc(z)[..., None, None, :]                                            # [..., 1, 1, H]
    p = _pair(h, _unit(self.concept_emb_kvh[...]))                                   # [..., K, 2, H]
    return jnp.einsum("...kvh,kh->...kv", p, self.xc_out_kh[...]) + self.xc_out_k[...][:, None]

  def global_energy(self, c: jax.Array) -> jax.Array:
    c = validation.check_floating(c, "c")
    if c.ndim < 1 or c.shape[-1] != self.num_concepts:
      raise ValueError(f"c must be [..., K={self.num_concepts}], got c.shape={c.shape}")
    v = self.concept_emb_kvh[...]
    c = c.astype(v.dtype)[..., None]
    mixed = c * v[:, 1] + (1 - c) * v[:, 0]                                          # [..., K, H]
    g = self.concept_proj(mixed.reshape(mixed.shape[:-2] + (-1,)))[..., None, :]     # [..., 1, H]
    return self.cy_out(_pair(g, _unit(self.class_emb_mh[...])))[..., 0]              # [..., M]

  def __call__(self, z: jax.Array) -> tuple[jax.Array, jax.Array]:
    return self.class_energy(z), self.concept_energy(z)


def _nll(energy, index):
  """-log softmax(-energy)[index] along the last axis."""
  return jnp.take_along_axis(energy, index[..., None], -1)[..., 0] + jax.nn.logsumexp(-energy, -1)


def _check_targets(model, z, concepts, labels):
  z = model._check_z(z)
  c = jnp.asarray(concepts)
  c = c.astype(jnp.int32) if c.dtype == jnp.bool_ else validation.check_integer(c, "concepts")
  y = validation.check_integer(labels, "labels")
  if c.shape != z.shape[:-1] + (model.num_concepts,) or y.shape != z.shape[:-1]:
    raise ValueError(f"need concepts {z.shape[:-1] + (model.num_concepts,)} and labels {z.shape[:-1]}, got "
                     f"concepts.shape={c.shape}, labels.shape={y.shape}")
  if not validation.is_traced(c) and np.any((np.asarray(c) < 0) | (np.asarray(c) > 1)):
    raise ValueError("concepts must be 0/1")
  if not validation.is_traced(y) and np.any((np.asarray(y) < 0) | (np.asarray(y) >= model.num_classes)):
    raise ValueError(f"labels must be in [0, {model.num_classes})")
  return z, c, y


def ecbm_loss(model: ECBM, z: jax.Array, concepts: jax.Array, labels: jax.Array, *, lambda_c: float = 1.0,
              lambda_g: float = 1.0) -> jax.Array:
  """Per-example ECBM training loss L_class + lambda_c L_concept + lambda_g L_global (Xu et al. 2024,
  arXiv:2401.14142, Sec. 3.2): the negative log-likelihoods of y under softmax(-E_class(x, .)), of each c_k under
  softmax over {0, 1} of -E_concept^k(x, .) (summed over k), and of y under softmax(-E_global(c, .)) with the ground
  truth concepts c.

  Args:
    model: an `ECBM`.
    z: [B, D] encoder features.
    concepts: [B, K] ground-truth concepts (0/1 integers or bool).
    labels: [B] integer classes in [0, M).
    lambda_c: weight of the concept loss, >= 0.
    lambda_g: weight of the global loss, >= 0.

  Returns:
    [B] losses (reduce outside).
  """
  z, c, y = _check_targets(model, z, concepts, labels)
  for name, lam in (("lambda_c", lambda_c), ("lambda_g", lambda_g)):
    if not validation.is_traced(lam):
      validation.check_nonnegative(lam, name)
  l_class = _nll(model.class_energy(z), y)
  l_concept = _nll(model.concept_energy(z), c).sum(-1)
  l_global = _nll(model.global_energy(c.astype(z.dtype)), y)
  return l_class + lambda_c * l_concept + lambda_g * l_global


def concept_configurations(num_concepts: int) -> jax.Array:
  """[2^K, K] float32 0/1 matrix of every binary concept configuration; row j has c_k = bit k of j.

  The configurations over which the joint energy E(x, c, y) is enumerated exactly (Xu et al., "Energy-Based Concept
  Bottleneck Models", ICLR 2024, arXiv:2401.14142, Sec. 3). num_concepts: K (int) -> [2^K, K].
  """
  if isinstance(num_concepts, bool) or not isinstance(num_concepts, int) or not 1 <= num_concepts \
      <= MAX_ENUMERATED_CONCEPTS:
    raise ValueError(f"num_concepts must be an int in [1, {MAX_ENUMERATED_CONCEPTS}] to enumerate, got "
                     f"{num_concepts=}")
  j = np.arange(2 ** num_concepts)[:, None]
  return jnp.asarray((j >> np.arange(num_concepts)[None, :]) & 1, jnp.float32)


def ecbm_joint_log_probs(model: ECBM, z: jax.Array, *, lambda_c: float = 1.0, lambda_g: float = 1.0) -> jax.Array:
  """log p(c, y | x) = -E(x, c, y) - log sum_{c', y'} exp(-E(x, c', y')) over every binary c (Xu et al. 2024,
  arXiv:2401.14142, Sec. 3.3, the joint energy E = E_class + lambda_c E_concept + lambda_g E_global), by exact
  enumeration of the 2^K configurations (K <= 16; rows ordered as `concept_configurations`).

  Args:
    model: an `ECBM`.
    z: [B, D] encoder features.
    lambda_c: weight of the concept energy.
    lambda_g: weight of the global energy.

  Returns:
    [B, 2^K, M] log-probabilities (float32 or wider).
  """
  z = model._check_z(z)
  configs = concept_configurations(model.num_concepts)                                  # [S, K]
  e_class = model.class_energy(z)                                                       # [B, M]
  e_concept = model.concept_energy(z)                                                   # [B, K, 2]
  e_c = (e_concept[..., None, :, 0] * (1 - configs) + e_concept[..., None, :, 1] * configs).sum(-1)   # [B, S]
  e_global = model.global_energy(configs)                                               # [S, M]
  energy = e_class[..., None, :] + lambda_c * e_c[..., None] + lambda_g * e_global
  flat = -energy.reshape(energy.shape[:-2] + (-1,))
  return (flat - jax.nn.logsumexp(flat, -1, keepdims=True)).reshape(energy.shape)


def ecbm_conditionals(model: ECBM, z: jax.Array, *, observed: jax.Array | None = None, lambda_c: float = 1.0,
                      lambda_g: float = 1.0) -> tuple[jax.Array, jax.Array]:
  """p(c_k = 1 | x, observed) and p(y | x, observed) from the joint Boltzmann distribution (Xu et al. 2024,
  arXiv:2401.14142, Sec. 3.3, prediction and concept intervention; exact enumeration, K <= 16).

  Args:
    model: an `ECBM`.
    z: [B, D] encoder features.
    observed: optional [B, K] int array: 0 or 1 where a concept is intervened on (set to that value), -1 where it is
      inferred. Default: nothing observed.
    lambda_c: weight of the concept energy.
    lambda_g: weight of the global energy.

  Returns:
    (concept_probs [B, K], class_probs [B, M]).
  """
  z = model._check_z(z)
  if observed is not None:
    obs = validation.check_integer(observed, "observed")
    if obs.shape != z.shape[:-1] + (model.num_concepts,):
      raise ValueError(f"observed must be [B, K] = {z.shape[:-1] + (model.num_concepts,)}, got {obs.shape}")
    if not validation.is_traced(obs) and np.any((np.asarray(obs) < -1) | (np.asarray(obs) > 1)):
      raise ValueError("observed must be -1 (inferred), 0 or 1")
  logp = ecbm_joint_log_probs(model, z, lambda_c=lambda_c, lambda_g=lambda_g)              # [B, S, M]
  configs = concept_configurations(model.num_concepts)
  if observed is not None:
    consistent = jnp.all((obs[..., None, :] < 0) | (obs[..., None, :] == configs), -1)   # [B, S]
    logp = jnp.where(consistent[..., None], logp, -jnp.inf)
    logp = logp - jax.nn.logsumexp(logp, (-2, -1), keepdims=True)
  p = jnp.exp(logp)
  return jnp.einsum("...sm,sk->...k", p, configs.astype(p.dtype)), p.sum(-2)


__all__ = ["ECBM", "concept_configurations", "ecbm_conditionals", "ecbm_joint_log_probs", "ecbm_loss"]
