"""MC-SMoE [154]: permute_align recovers a hidden permutation exactly (a noisy permuted copy of an expert) and the
permuted expert computes the same function (NumPy ReLU MLP); merge_experts against a NumPy transcription of Eq. 3
(frequency weights, alignment to the dominant expert); grouping by router-logit similarity on a constructed case;
the low-rank + sparse compression against NumPy's SVD (exact at full rank, Eckart-Young error at rank r); bad
inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.nn.mc_smoe import (expert_frequency, group_experts, lowrank_sparse_compress, merge_experts,
                                       merged_num_params, permute_align, permute_expert)


def _np_ffn(x, e):
  return np.maximum(x @ e["w1"] + e["b1"], 0) @ e["w2"] + e["b2"]


def _expert(rng, d=5, h=7):
  return {"w1": rng.normal(size=(d, h)), "b1": rng.normal(size=h), "w2": rng.normal(size=(h, d)),
          "b2": rng.normal(size=d)}


def test_permute_align_merge_group_and_compress_vs_numpy():
  rng = np.random.default_rng(0)
  ref = _expert(rng)
  hidden = rng.permutation(7)
  other = {"w1": ref["w1"][:, hidden] + 0.05 * rng.normal(size=(5, 7)), "b1": ref["b1"][hidden],
           "w2": ref["w2"][hidden] + 0.05 * rng.normal(size=(7, 5)), "b2": ref["b2"]}
  pi = permute_align(ref, other)
  np.testing.assert_array_equal(hidden[pi], np.arange(7))                # recovers the hidden permutation
  x = rng.normal(size=(11, 5))
  e2 = _expert(rng)
  q = rng.permutation(7)
  with jax.enable_x64(True):
    pe = {k: np.asarray(v) for k, v in jax.jit(permute_expert)(e2, jnp.asarray(q)).items()}
  np.testing.assert_allclose(_np_ffn(x, pe), _np_ffn(x, e2), rtol=1e-12)  # same function after any permutation
  # merge: 4 experts, groups {0, 2} and {1, 3}; NumPy transcription of the frequency-weighted aligned average
  es = [_expert(rng) for _ in range(4)]
  experts = {k: np.stack([e[k] for e in es]) for k in ("w1", "b1", "w2", "b2")}
  freq = np.array([0.4, 0.3, 0.1, 0.2])
  groups = np.array([0, 1, 0, 1])
  with jax.enable_x64(True):
    merged = {k: np.asarray(v) for k, v in merge_experts(experts, freq, groups).items()}
    unif = {k: np.asarray(v) for k, v in merge_experts(experts, freq, groups, align=False,
                                                        weighting="uniform").items()}
  for members, dom in (([0, 2], 0), ([1, 3], 1)):
    w = freq[members] / freq[members].sum()
    want = {k: 0.0 for k in es[0]}
    for wj, j in zip(w, members):
      pi = permute_align(es[dom], es[j])
      e = es[j] if j == dom else {"w1": es[j]["w1"][:, pi], "b1": es[j]["b1"][pi], "w2": es[j]["w2"][pi],
                                  "b2": es[j]["b2"]}
      for k in want:
        want[k] = want[k] + wj * e[k]
    for j in members:
      for k in want:
        np.testing.assert_allclose(np.asarray(merged[k][j]), want[k], rtol=1e-12)
  np.testing.assert_allclose(np.asarray(unif["w1"][2]), (es[0]["w1"] + es[2]["w1"]) / 2, rtol=1e-12)
  assert merged_num_params(experts, groups) == 2 * (2 * 5 * 7 + 7 + 5)
  # grouping: experts 2, 3 have logits proportional to 0 and 1's (plus noise) -> join them
  base = rng.normal(size=(50, 2))
  logits = np.concatenate([base, base[:, ::-1] * 0 + base + 0.01 * rng.normal(size=(50, 2))], 1)
  np.testing.assert_array_equal(group_experts(logits, np.array([0.4, 0.3, 0.2, 0.1]), 2), [0, 1, 0, 1])
  idx = jnp.asarray([[0, 1], [0, 2], [0, 1]])
  np.testing.assert_allclose(np.asarray(jax.jit(expert_frequency, static_argnums=1)(idx, 4)), [0.5, 1 / 3, 1 / 6, 0])
  # compression: full rank is exact; rank r with no sparse part = Eckart-Young; sparse part keeps the largest entries
  w = rng.normal(size=(8, 6)).astype(np.float32)
  U, V, S = lowrank_sparse_compress(jnp.asarray(w), 6, 1.0)
  np.testing.assert_allclose(np.asarray(U @ V), w, atol=1e-5)
  U, V, S = lowrank_sparse_compress(jnp.asarray(w), 2, 1.0)
  sv = np.linalg.svd(w, compute_uv=False)
  np.testing.assert_allclose(np.linalg.norm(w - np.asarray(U @ V)), np.sqrt((sv[2:] ** 2).sum()), rtol=1e-4)
  U, V, S = lowrank_sparse_compress(jnp.asarray(w), 2, 0.75)
  resid = w - np.asarray(U @ V)
  assert np.count_nonzero(np.asarray(S)) == 12
  assert np.abs(resid[np.asarray(S) == 0]).max() <= np.abs(resid[np.asarray(S) != 0]).min() + 1e-6


def test_bad_inputs():
  rng = np.random.default_rng(1)
  e = _expert(rng)
  with pytest.raises(ValueError, match="shapes differ"):
    permute_align(e, _expert(rng, h=6))
  with pytest.raises(ValueError, match="weighting"):
    merge_experts({k: v[None] for k, v in e.items()}, np.ones(1), np.zeros(1, int), weighting="mean")
  with pytest.raises(ValueError, match="experts must be"):
    merge_experts({"w1": np.ones((2, 3, 4))}, np.ones(2), np.zeros(2, int))
  with pytest.raises(ValueError, match="num_groups"):
    group_experts(np.ones((4, 3)), np.ones(3), 4)
  with pytest.raises(ValueError, match="rank"):
    lowrank_sparse_compress(jnp.ones((3, 4)), 4, 0.5)
  with pytest.raises(TypeError, match="concrete"):
    jax.jit(lambda w: permute_align({"w1": w, "b1": e["b1"], "w2": e["w2"]}, e))(jnp.asarray(e["w1"]))
