"""LaBo's concept selection for a concept bottleneck: a per-class greedy maximisation of a submodular utility.

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
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods.validation import check_floating, check_integer, is_traced


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
  unit = emb.astype(dtype) / jnp.maximum(jnp.linalg.norm(emb.astype(dtype), axis=1, keepdims=True), 1e-12)
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


__all__ = ["labo_discriminability", "labo_select_concepts", "labo_weight_prior"]
