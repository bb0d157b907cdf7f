"""The SAE family (issue 20, [166] [20]): the three budgeted sparsifiers against a float64 NumPy transcription
(exact counts: k per token, m per feature, k B in total), the gradient reaching exactly the selected entries, the
module's forward against NumPy, the NNX contract, the objective, dead latents and discover-then-name's naming."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn import (SparseAutoencoder, dead_latents, feature_choice_activation, mutual_choice_activation,
                               name_concepts, sae_loss, topk_activation)
from tests.nn._layer_contract import check_layer_contract


def _np_select(pre, how, n):
  """float64 reference: ReLU on the selected entries (rows: top n per row; cols: top n per column; all: top n)."""
  out = np.zeros_like(pre)
  if how == "rows":
    idx = np.argsort(-pre, axis=1, kind="stable")[:, :n]
    np.put_along_axis(out, idx, np.take_along_axis(pre, idx, 1), 1)
  elif how == "cols":
    idx = np.argsort(-pre, axis=0, kind="stable")[:n]
    np.put_along_axis(out, idx, np.take_along_axis(pre, idx, 0), 0)
  else:
    flat = out.reshape(-1)
    idx = np.argsort(-pre.reshape(-1), kind="stable")[:n]
    flat[idx] = pre.reshape(-1)[idx]
  return np.maximum(out, 0.0)


def test_sparsifiers_exact_counts_values_and_gradient():
  rng = np.random.default_rng(0)
  b, f, k = 8, 6, 2
  pre = rng.normal(size=(b, f))
  w = rng.normal(size=(b, f))
  m, budget = k * b // f, k * b                      # equal total sparsity: m = k B / F tokens per feature
  cases = [(topk_activation, "rows", k), (feature_choice_activation, "cols", m), (mutual_choice_activation, "all", budget)]

  @jax.jit
  def all_values_and_grads(p):
    outs = [fn(p, n) for fn, _, n in cases]
    grads = [jax.grad(lambda q, fn=fn, n=n: jnp.sum(w * fn(q, n)))(p) for fn, _, n in cases]
    pos = [fn(jnp.abs(p) + 0.1, n) for fn, _, n in cases]
    return outs, grads, pos

  outs, grads, pos = all_values_and_grads(jnp.asarray(pre, jnp.float32))
  for (fn, how, n), z, g, zp in zip(cases, outs, grads, pos):
    ref = _np_select(pre, how, n)
    np.testing.assert_allclose(np.asarray(z), ref, rtol=1e-6, atol=1e-7, err_msg=fn.__name__)
    # the gradient reaches exactly the selected positive entries (no straight-through into unselected ones)
    np.testing.assert_allclose(np.asarray(g), w * (ref > 0), rtol=1e-6, atol=1e-7, err_msg=fn.__name__)
    nz = np.asarray(zp) != 0
    if how == "rows":
      assert np.all(nz.sum(1) == k)                      # TopK: exactly k per token
    elif how == "cols":
      assert np.all(nz.sum(0) == m) and len(set(nz.sum(1))) > 1  # FC: exactly m per feature, variable per token
    else:
      assert nz.sum() == budget                          # MC: exactly the global budget
  with pytest.raises(ValueError, match="k must be"):
    topk_activation(jnp.ones((2, 3)), 4)
  with pytest.raises(ValueError, match="m must be"):
    feature_choice_activation(jnp.ones((2, 3)), 3)
  with pytest.raises(ValueError, match="budget must be"):
    mutual_choice_activation(jnp.ones((2, 3)), 7)
  with pytest.raises(ValueError, match="tokens, features"):
    mutual_choice_activation(jnp.ones((2, 3, 4)), 2)
  with pytest.raises(TypeError, match="pre_activations"):
    topk_activation(jnp.ones((2, 3), jnp.int32), 1)


def test_sae_forward_matches_numpy_and_loss_and_naming():
  rng = np.random.default_rng(1)
  d, f, b = 5, 8, 12
  x = rng.normal(size=(b, d)).astype(np.float32)
  for sparsifier in ("relu", "topk", "feature_choice", "mutual_choice"):
    sae = SparseAutoencoder(d, f, sparsifier=sparsifier, k=2, rngs=nnx.Rngs(0))
    sae.encoder_bias[...] = jnp.asarray(rng.normal(size=f) * 0.1, jnp.float32)
    sae.decoder_bias[...] = jnp.asarray(rng.normal(size=d) * 0.1, jnp.float32)
    v = np.asarray(sae.dictionary_fd[...], np.float64) * rng.uniform(0.5, 2.0, size=(f, 1))
    sae.dictionary_fd[...] = jnp.asarray(v, jnp.float32)       # not unit-norm: the forward pass normalises
    we, be, bd = (np.asarray(a[...], np.float64) for a in (sae.encoder_df, sae.encoder_bias, sae.decoder_bias))
    pre = (x - bd) @ we + be
    ref_z = {"relu": np.maximum(pre, 0), "topk": _np_select(pre, "rows", 2),
             "feature_choice": _np_select(pre, "cols", 2 * b // f), "mutual_choice": _np_select(pre, "all", 2 * b)}[sparsifier]
    wd = v / np.linalg.norm(v, axis=1, keepdims=True)
    x_hat, z = sae(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(z), ref_z, rtol=1e-5, atol=1e-5, err_msg=sparsifier)
    np.testing.assert_allclose(np.asarray(x_hat), ref_z @ wd + bd, rtol=1e-5, atol=1e-5, err_msg=sparsifier)
  np.testing.assert_allclose(np.linalg.norm(np.asarray(sae.decoder_weights()), axis=1), 1.0, rtol=1e-6)
  # objective: ||x - x_hat||^2 + lambda ||z||_1 per example
  loss = sae_loss(jnp.asarray(x), x_hat, z, l1_coeff=0.3)
  ref = np.sum((x - np.asarray(x_hat)) ** 2, 1) + 0.3 * np.abs(np.asarray(z)).sum(1)
  np.testing.assert_allclose(np.asarray(loss), ref, rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(dead_latents(jnp.asarray([[0.0, 1.0, 0.0], [0.0, 2.0, 3.0]]))),
                                [True, False, False])
  # naming: text embeddings = permuted, rescaled dictionary + small noise -> every concept gets its own name
  perm = rng.permutation(f)
  text = wd[perm] * rng.uniform(0.5, 3.0, size=(f, 1)) + 0.01 * rng.normal(size=(f, d))
  names, sim = name_concepts(jnp.asarray(wd), jnp.asarray(text))
  np.testing.assert_array_equal(np.asarray(names), np.argsort(perm))
  assert np.all(np.asarray(sim) > 0.99)
  # errors
  with pytest.raises(ValueError, match="sparsifier"):
    SparseAutoencoder(d, f, sparsifier="gated", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="k must be"):
    SparseAutoencoder(d, f, k=f + 1, rngs=nnx.Rngs(0))
  fc = SparseAutoencoder(d, f, sparsifier="feature_choice", k=3, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="integer"):
    fc(jnp.ones((b + 1, d)))
  with pytest.raises(ValueError, match="couples the tokens"):
    fc(jnp.ones((2, b, d)))
  with pytest.raises(ValueError, match="dim=5"):
    sae(jnp.ones((b, d + 1)))
  with pytest.raises(ValueError, match="l1_coeff"):
    sae_loss(jnp.asarray(x), x_hat, z, l1_coeff=-1.0)
  with pytest.raises(ValueError, match="text_embeddings"):
    name_concepts(jnp.ones((3, 4)), jnp.ones((3, 5)))


class _Reconstruction(nnx.Module):
  def __init__(self, param_dtype):
    self.sae = SparseAutoencoder(6, 8, sparsifier="mutual_choice", k=2, rngs=nnx.Rngs(0), param_dtype=param_dtype)

  def __call__(self, x):
    return self.sae(x)[0]


@pytest.mark.slow  # nnx.jit, split/merge train step, bf16, orbax: ~3 s of compiles
def test_sae_layer_contract(tmp_path):
  x = jax.random.normal(jax.random.key(0), (16, 6))
  check_layer_contract(_Reconstruction, x, tmp_path,
                       loss=lambda m, x: jnp.mean(sae_loss(x, *m.sae(x)).astype(jnp.float32)))
