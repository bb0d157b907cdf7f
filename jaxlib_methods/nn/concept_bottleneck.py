"""Concept bottleneck models: LaBo's concept selection and the post-hoc CBM (PCBM / PCBM-h).

LaBo's concept selection for a concept bottleneck: a per-class greedy maximisation of a submodular utility.

Paper [7]: Yue Yang, Artemis Panagopoulou, Shenghao Zhou, Daniel Jin, Chris Callison-Burch, Mark Yatskar, "Language
in a Bottle: Language Model Guided Concept Bottlenecks for Interpretable Image Classification", CVPR 2023,
arXiv:2211.11158 (Sec. 3.2, concept selection: for every class y, pick k of the concepts the language model wrote for
y by greedily maximising F(S) = alpha * sum_{c in S} D(c) + beta * sum_{c1 in C_y} max_{c2 in S} phi(c1, c2), a modular
discriminability term plus a facility-location coverage term over the concept embeddings; Sec. 3.3, the class-concept
weights start from the language prior). The discriminability score follows the authors' released code
(github.com/YueYANG1996/LaBo, models/select_concept/select_algo.py, `mi_score` and `submodular_select`): with
Sim(c, y) the mean CLIP similarity between concept c and the images of class y, p(c, y) = Sim(c, y) /
(Y * sum_c' Sim(c', y)) is a joint distribution with uniform class marginal, and D(c) = sum_y p(c, y) log(p(c, y) /
(p(c) p(y))), the concept's share of the mutual information between concepts and classes (>= 0). The coverage term
uses the cosine similarity phi of the concept embeddings with max over the empty set 0 (so negative similarities
count as 0, as in the facility location of the authors' `apricot` selector). With alpha, beta >= 0 the utility is
monotone submodular and the greedy choice is within (1 - 1/e) of the best k-subset (Nemhauser et al. 1978).

Paper [17]: Mert Yuksekgonul, Maggie Wang, James Zou, "Post-hoc Concept Bottleneck Models", ICLR 2023,
arXiv:2205.15480 (Sec. 3). A frozen backbone's embedding x is projected on a concept subspace: a concept activation
vector (CAV) c_i per concept, the normal of a linear SVM separating embeddings with and without the concept, and the
concept score f_C(x)_i = <x, c_i> / ||c_i||^2. The interpretable predictor is a sparse linear head g on f_C(x), trained
with the cross-entropy plus lambda / (N_c K) * (alpha ||w||_1 + (1 - alpha) ||w||_2^2) (elastic net); PCBM-h adds a
residual linear head r on x trained with g frozen, y_hat = g(f_C(x)) + r(x). A global model edit removes a concept by
zeroing its weights. The SVM here is the L2-regularised squared-hinge SVM (the default of scikit-learn's LinearSVC,
which the authors' code calls with its defaults apart from C), solved by damped Newton steps.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import optax
from flax import nnx

from jaxlib_methods.validation import check_floating, check_integer, is_traced
from jaxlib_methods._norms import l2_normalize


def labo_discriminability(class_similarity: jax.Array) -> jax.Array:
  """LaBo's discriminability score D(c) of each concept (Yang et al. 2023, arXiv:2211.11158, Sec. 3.2; the authors'
  `mi_score`).

  p(c, y) = Sim(c, y) / (Y * sum_c' Sim(c', y)); D(c) = sum_y p(c, y) log(p(c, y) / (p(c) / Y)), which equals
  p(c) * KL(p(y | c) || uniform): concepts whose similarity singles out few classes score high.

  Args:
    class_similarity: [C, Y] mean similarity Sim(c, y) > 0 between concept c and the images of class y (CLIP scores).

  Returns:
    [C] discriminability scores, >= 0, float32 (or the input's wider float).
  """
  s = check_floating(class_similarity, "class_similarity")
  if s.ndim != 2 or 0 in s.shape:
    raise ValueError(f"class_similarity must be [C, Y] with C, Y >= 1, got class_similarity.shape={s.shape}")
  if not is_traced(s) and not bool(np.all(np.asarray(s) > 0)):
    raise ValueError("class_similarity must be > 0 everywhere (mean CLIP similarities); got a value <= 0 or NaN")
  s = s.astype(jnp.promote_types(s.dtype, jnp.float32))
  num_classes = s.shape[1]
  p = s / (s.sum(0, keepdims=True) * num_classes)
  pc = p.sum(1, keepdims=True)
  return (p * jnp.log(p / (pc / num_classes))).sum(1)


def labo_select_concepts(discriminability: jax.Array, concept_embeddings: jax.Array, class_ids: jax.Array, k: int, *,
                         num_classes: int, alpha: float = 1.0, beta: float = 1.0) -> tuple[jax.Array, jax.Array]:
  """Greedy LaBo concept selection, k concepts per class (Yang et al. 2023, arXiv:2211.11158, Sec. 3.2).

  For each class y, among the concepts C_y = {c : class_ids[c] = y}, greedily grow S (|S| = k) maximising
  F(S) = alpha * sum_{c in S} D(c) + beta * sum_{c1 in C_y} max(0, max_{c2 in S} phi(c1, c2)), phi the cosine
  similarity of the concept embeddings. Ties go to the lowest concept index. Monotone submodular for alpha, beta >= 0
  and D >= 0, so F(greedy) >= (1 - 1/e) max_{|S| = k} F(S), and the greedy gains are non-increasing.

  Args:
    discriminability: [C] modular scores D(c) (`labo_discriminability`), >= 0.
    concept_embeddings: [C, d] concept text embeddings (any norm; cosine similarity is used).
    class_ids: [C] integer class each concept was generated for, in [0, num_classes).
    k: concepts to select per class, >= 1; every class needs >= k concepts.
    num_classes: Y, number of classes (static).
    alpha: weight of the discriminability term, >= 0 (the authors' `submodular_weights[0]` scale); may be traced.
    beta: weight of the coverage term, >= 0 (the authors' facility-location weight); may be traced.

  Returns:
    (indices, gains): [Y, k] int32 concept indices in selection order and [Y, k] their marginal gains, so
    F(S_y) = gains[y].sum(). Under jit, a class with fewer than k concepts gets index -1 and gain -inf in the
    missing slots (eager calls raise instead).
  """
  disc = check_floating(discriminability, "discriminability")
  emb = check_floating(concept_embeddings, "concept_embeddings")
  ids = check_integer(class_ids, "class_ids")
  if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
    raise ValueError(f"num_classes must be an int >= 1, got {num_classes=}")
  if isinstance(k, bool) or not isinstance(k, int) or k < 1:
    raise ValueError(f"k must be an int >= 1, got {k=}")
  if disc.ndim != 1 or emb.ndim != 2 or ids.shape != disc.shape or emb.shape[0] != disc.shape[0]:
    raise ValueError(f"need discriminability [C], concept_embeddings [C, d], class_ids [C]; got "
                     f"{disc.shape=}, {emb.shape=}, {ids.shape=}")
  for name, w in (("alpha", alpha), ("beta", beta)):
    if is_traced(w):
      continue                                   # a traced weight is passed through (docs/conventions.md, sec. 5)
    if isinstance(w, bool) or np.ndim(w) != 0 or not float(w) >= 0:
      raise ValueError(f"{name} must be a number >= 0 (the utility is submodular only then), got {name}={w!r}")
  if not is_traced(ids):
    counts = np.bincount(np.asarray(ids).clip(0), minlength=num_classes)
    if np.any((np.asarray(ids) < 0) | (np.asarray(ids) >= num_classes)):
      raise ValueError(f"class_ids must be in [0, {num_classes}), got values outside")
    if np.any(counts < k):
      raise ValueError(f"every class needs >= k={k} candidate concepts; classes {np.flatnonzero(counts < k)[:5]} "
                       f"have {counts[counts < k][:5]}")
  if not is_traced(disc) and not bool(np.all(np.asarray(disc) >= 0)):
    raise ValueError("discriminability must be >= 0 (as labo_discriminability returns)")
  dtype = jnp.promote_types(jnp.result_type(disc, emb), jnp.float32)
  unit = l2_normalize(emb.astype(dtype), axis=1)
  phi = unit @ unit.T
  disc = disc.astype(dtype)

  def one_class(y):
    cand = ids == y

    def step(carry, _):
      cover, chosen = carry
      coverage = jnp.where(cand[:, None], jnp.maximum(phi - cover[:, None], 0.0), 0.0).sum(0)
      gain = jnp.where(cand & ~chosen, alpha * disc + beta * coverage, -jnp.inf)
      j = jnp.argmax(gain)
      ok = jnp.isfinite(gain[j])
      cover = jnp.where(ok, jnp.maximum(cover, phi[:, j]), cover)
      chosen = chosen.at[j].set(chosen[j] | ok)
      return (cover, chosen), (jnp.where(ok, j, -1).astype(jnp.int32), gain[j])

    init = (jnp.zeros(disc.shape, dtype), jnp.zeros(disc.shape, bool))
    _, (idx, gains) = jax.lax.scan(step, init, None, length=k)
    return idx, gains

  return jax.vmap(one_class)(jnp.arange(num_classes))


def labo_weight_prior(class_ids: jax.Array, *, num_classes: int) -> jax.Array:
  """LaBo's language-prior initialisation of the class-concept weights (Yang et al. 2023, arXiv:2211.11158,
  Sec. 3.3): W[y, c] = 1 when concept c was generated for class y, else 0.

  Args:
    class_ids: [C] integer class of each selected concept, in [0, num_classes).
    num_classes: Y (static).

  Returns:
    [Y, C] float32 0/1 matrix.
  """
  ids = check_integer(class_ids, "class_ids")
  if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
    raise ValueError(f"num_classes must be an int >= 1, got {num_classes=}")
  if ids.ndim != 1:
    raise ValueError(f"class_ids must be [C], got {ids.shape=}")
  if not is_traced(ids) and np.any((np.asarray(ids) < 0) | (np.asarray(ids) >= num_classes)):
    raise ValueError(f"class_ids must be in [0, {num_classes})")
  return (jnp.arange(num_classes)[:, None] == ids[None, :]).astype(jnp.float32)


def concept_activation_vectors(embeddings: jax.Array, concept_labels: jax.Array, *, C: float = 1.0,
                               steps: int = 30) -> tuple[jax.Array, jax.Array]:
  """CAVs: per concept, the weight vector of a linear SVM separating embeddings with the concept from those without
  (Yuksekgonul et al. 2022, arXiv:2205.15480, Sec. 3, "learning concept vectors"; Kim et al. 2018).

  Minimises (1/2) ||w||^2 + C * sum_n max(0, 1 - s_n (<w, x_n> + b))^2, s_n = +1 when concept i is present in
  example n, else -1 (the squared-hinge L2 SVM of LinearSVC), by `steps` damped Newton iterations (generalised
  Hessian, Keerthi & DeCoste 2005), one SVM per concept (vmapped), in float32 or wider; a [d+1, d+1] solve per step.

  Args:
    embeddings: [N, d] frozen embeddings.
    concept_labels: [N, C_concepts] bool, concept i present in example n; every concept needs both classes.
    C: SVM penalty > 0.
    steps: Newton iterations (>= 1).

  Returns:
    (cavs, intercepts): [C_concepts, d] concept vectors c_i and [C_concepts] SVM intercepts.
  """
  x = check_floating(embeddings, "embeddings")
  if jnp.asarray(concept_labels).dtype != jnp.bool_:
    raise TypeError(f"concept_labels must be a bool array, got dtype {jnp.asarray(concept_labels).dtype}")
  lab = jnp.asarray(concept_labels)
  if x.ndim != 2 or lab.ndim != 2 or lab.shape[0] != x.shape[0] or 0 in x.shape or lab.shape[1] == 0:
    raise ValueError(f"need embeddings [N, d] and concept_labels [N, C] (same N, non-empty), got {x.shape=}, "
                     f"{lab.shape=}")
  if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
    raise ValueError(f"steps must be an int >= 1, got {steps=}")
  if not is_traced(C) and not float(C) > 0:
    raise ValueError(f"C must be > 0, got {C=}")
  if not is_traced(lab):
    l = np.asarray(lab)
    bad = np.flatnonzero(l.all(0) | (~l).all(0))
    if bad.size:
      raise ValueError(f"every concept needs positive and negative examples; concepts {bad[:5]} have only one class")
  return _fit_cavs(x, lab, C, steps)


@functools.partial(jax.jit, static_argnums=3)
def _fit_cavs(x, lab, C, steps):
  # Damped Newton on the (piecewise-quadratic, C^1) primal: gradient R theta - 2C X_A^T (s_A m_A), generalised
  # Hessian R + 2C X_A^T X_A over the margin violators A (Keerthi & DeCoste 2005); the step size is the best of
  # 1, 1/2, ..., 1/128 (the objective never increases).
  dt = jnp.promote_types(x.dtype, jnp.float32)
  xa = jnp.concatenate([x.astype(dt), jnp.ones((x.shape[0], 1), dt)], 1)         # [N, d + 1], bias last
  reg = jnp.ones((xa.shape[1],), dt).at[-1].set(0.0)
  etas = 0.5 ** jnp.arange(8, dtype=dt)

  def one(labels):
    s = jnp.where(labels, 1.0, -1.0).astype(dt)

    def objective(theta):
      return 0.5 * jnp.sum(reg * theta ** 2) + C * jnp.sum(jnp.maximum(1.0 - s * (xa @ theta), 0.0) ** 2)

    def step(_, theta):
      m = 1.0 - s * (xa @ theta)
      act = (m > 0).astype(dt)
      grad = reg * theta - 2.0 * C * xa.T @ (act * s * m)
      hess = jnp.diag(reg + 1e-6) + 2.0 * C * (xa * act[:, None]).T @ xa
      d = jnp.linalg.solve(hess, grad)
      vals = jax.vmap(lambda e: objective(theta - e * d))(etas)
      best = jnp.argmin(vals)
      return jnp.where(vals[best] <= objective(theta), theta - etas[best] * d, theta)

    theta = jax.lax.fori_loop(0, steps, step, jnp.zeros((xa.shape[1],), dt))
    return theta[:-1], theta[-1]

  return jax.vmap(one, in_axes=1)(lab)


def pcbm_concept_scores(embeddings: jax.Array, concept_vectors: jax.Array) -> jax.Array:
  """PCBM's projection on the concept subspace, f_C(x)_i = <x, c_i> / ||c_i||^2 (Yuksekgonul et al. 2022,
  arXiv:2205.15480, Sec. 3).

  Args:
    embeddings: [..., d].
    concept_vectors: [C, d] CAVs.

  Returns:
    [..., C] concept scores.
  """
  x = check_floating(embeddings, "embeddings")
  c = check_floating(concept_vectors, "concept_vectors")
  if c.ndim != 2 or x.ndim < 1 or x.shape[-1] != c.shape[1]:
    raise ValueError(f"need embeddings [..., d] and concept_vectors [C, d], got {x.shape=}, {c.shape=}")
  return jnp.einsum("...d,cd->...c", x, c.astype(x.dtype)) / jnp.sum(c.astype(x.dtype) ** 2, 1)


def pcbm_elastic_net(weights: jax.Array, *, lam: float, alpha: float) -> jax.Array:
  """PCBM's sparsity penalty lambda / (N_c K) * (alpha ||w||_1 + (1 - alpha) ||w||_2^2) on the [N_c, K] concept head
  (Yuksekgonul et al. 2022, arXiv:2205.15480, Sec. 3, the interpretable predictor's objective).

  Args:
    weights: [N_c, K] head weights (concepts x classes).
    lam: lambda >= 0.
    alpha: L1 share in [0, 1].

  Returns:
    scalar penalty.
  """
  w = check_floating(weights, "weights")
  if w.ndim != 2:
    raise ValueError(f"weights must be [N_c, K], got {w.shape=}")
  if not is_traced(lam) and not float(lam) >= 0:
    raise ValueError(f"lam must be >= 0, got {lam=}")
  if not is_traced(alpha) and not 0.0 <= float(alpha) <= 1.0:
    raise ValueError(f"alpha must be in [0, 1], got {alpha=}")
  return lam / w.size * (alpha * jnp.sum(jnp.abs(w)) + (1.0 - alpha) * jnp.sum(w ** 2))


class PCBM(nnx.Module):
  """Post-hoc concept bottleneck: logits = W f_C(x) + b over frozen CAVs, plus (PCBM-h, `residual=True`) a residual
  linear head on the embedding, logits += R x + r (Yuksekgonul et al. 2022, arXiv:2205.15480, Sec. 3).

  The CAVs are an `nnx.Variable` (frozen, not an `nnx.Param`); the residual starts at zero, so a fresh PCBM-h equals
  its PCBM. To train PCBM-h's residual alone, split with `nnx.split(model, nnx.All(nnx.Param,
  nnx.PathContains("residual")), ...)`.

  Args:
    concept_vectors: [N_c, d] CAVs (e.g. from `concept_activation_vectors`).
    num_classes: K.
    residual: add PCBM-h's residual head.
    rngs: PRNG streams (`params`).
    param_dtype: parameter dtype.

  Shapes: __call__ [..., d] -> [..., K]; `concept_scores` [..., d] -> [..., N_c].
  """

  def __init__(self, concept_vectors: jax.Array, num_classes: int, *, residual: bool = False, rngs: nnx.Rngs,
               param_dtype=jnp.float32):
    c = check_floating(concept_vectors, "concept_vectors")
    if c.ndim != 2 or 0 in c.shape:
      raise ValueError(f"concept_vectors must be [N_c, d], got {c.shape=}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
      raise ValueError(f"num_classes must be an int >= 2, got {num_classes=}")
    self.concept_vectors = nnx.Variable(c.astype(param_dtype))
    self.head = nnx.Linear(c.shape[0], num_classes, rngs=rngs, param_dtype=param_dtype,
                           kernel_init=nnx.initializers.zeros_init())
    self.residual = (nnx.Linear(c.shape[1], num_classes, rngs=rngs, param_dtype=param_dtype,
                                kernel_init=nnx.initializers.zeros_init()) if residual else None)

  def concept_scores(self, x: jax.Array) -> jax.Array:
    return pcbm_concept_scores(x, self.concept_vectors[...])

  def __call__(self, x: jax.Array) -> jax.Array:
    x = check_floating(x, "x")
    if x.ndim < 1 or x.shape[-1] != self.concept_vectors.shape[1]:
      raise ValueError(f"x must be [..., d={self.concept_vectors.shape[1]}], got x.shape={x.shape}")
    logits = self.head(self.concept_scores(x).astype(self.head.kernel.dtype))
    if self.residual is not None:
      logits = logits + self.residual(x.astype(self.residual.kernel.dtype))
    return logits


def edit_concept(weights: jax.Array, idx, classes=None) -> jax.Array:
  """A PCBM global model edit: zero concept `idx`'s weights (for all classes, or only `classes`) in the [N_c, K]
  concept head (Yuksekgonul et al. 2022, arXiv:2205.15480, its global model edits: pruning a spurious concept).

  Args:
    weights: [N_c, K] head kernel.
    idx: concept index (int) or int array of indices, in [0, N_c).
    classes: optional class index or indices to edit; default every class.

  Returns:
    [N_c, K] edited copy.
  """
  w = check_floating(weights, "weights")
  if w.ndim != 2:
    raise ValueError(f"weights must be [N_c, K], got {w.shape=}")
  i = np.atleast_1d(np.asarray(idx))
  if not np.issubdtype(i.dtype, np.integer) or np.any((i < 0) | (i >= w.shape[0])):
    raise ValueError(f"idx must be integer concept indices in [0, {w.shape[0]}), got {idx=}")
  cols = slice(None) if classes is None else np.atleast_1d(np.asarray(classes))
  if classes is not None and (not np.issubdtype(cols.dtype, np.integer) or np.any((cols < 0) | (cols >= w.shape[1]))):
    raise ValueError(f"classes must be integer class indices in [0, {w.shape[1]}), got {classes=}")
  rows = i[:, None] if classes is not None else i
  return w.at[rows, cols].set(0.0)


__all__ = ["labo_discriminability", "labo_select_concepts", "labo_weight_prior", "concept_activation_vectors",
           "pcbm_concept_scores", "pcbm_elastic_net", "PCBM", "edit_concept"]
