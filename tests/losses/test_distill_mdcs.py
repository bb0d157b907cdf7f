"""MDCS [30]: diversity loss and consistency self-distillation against a float64 NumPy transcription of the
official `MDCSLoss` (values and gradients), exact special cases, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods import losses


def _np_log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _np_official(weak, strong, y, counts, lams=(-0.5, 1.0, 2.5)):
  """The official MDCSLoss on [E, B, C] logits of the two views (epoch >= warmup: weight 0.6): DL and KL terms."""
  adj = lambda v, lam: v + np.log(counts ** lam + 1e-9)
  dl = sum(-(np.take_along_axis(_np_log_softmax(adj(np.concatenate([w, s]), l)), np.concatenate([y, y])[:, None],
                                1)).mean() for w, s, l in zip(weak, strong, lams))
  kl = 0.0
  for w, s, l in zip(weak, strong, lams):
    lt, ls = _np_log_softmax(adj(w, l)), _np_log_softmax(adj(s, l))
    sel = lt.argmax(1) == y
    if sel.any():
      kl += (np.exp(lt[sel]) * (lt[sel] - ls[sel])).sum() / sel.sum()
  return dl, kl


def test_mdcs_matches_official_loss_float64():
  rng = np.random.default_rng(0)
  e, b, c = 3, 6, 5
  weak, strong = rng.normal(size=(e, b, c)) * 2, rng.normal(size=(e, b, c)) * 2
  y = rng.integers(0, c, b)
  counts = np.array([500.0, 200.0, 50.0, 10.0, 5.0])
  dl_ref, kl_ref = _np_official(weak, strong, y, counts)
  with jax.enable_x64(True):
    @jax.jit
    def everything(weak, strong):   # one program: the official loss, the CS gradient, the special cases
      dl = jnp.mean(losses.mdcs_diversity_loss(jnp.concatenate([weak, strong], 1), jnp.concatenate([y, y]), counts))
      aw, as_ = losses.mdcs_expert_logits(weak, counts), losses.mdcs_expert_logits(strong, counts)
      kl, mask = jax.vmap(lambda s, w: losses.consistency_self_distill(s, w, y))(as_, aw)
      g = jax.grad(lambda s: losses.consistency_self_distill(s, aw[0], y)[0].sum())(as_[0])
      plain = losses.mdcs_diversity_loss(weak, y, counts, lambdas=(0.0, 0.0, 0.0))
      scaled = losses.mdcs_diversity_loss(weak, y, 10 * counts) - losses.mdcs_diversity_loss(weak, y, counts)
      return dl, jnp.sum(kl.sum(1) / jnp.maximum(mask.sum(1), 1)), mask, aw[0], as_[0], g, plain, scaled

    dl, kl, mask, aw, as_, g, plain, scaled = (np.asarray(v) for v in everything(weak, strong))
  np.testing.assert_allclose(dl, dl_ref, rtol=1e-12)
  np.testing.assert_allclose(kl, kl_ref, rtol=1e-12)
  assert 0 < int(mask.sum()) < mask.size   # CIS selects some instances, not all
  # gradient of the CS term w.r.t. the strong view's adjusted logits: (p_s - p_t) on selected rows, 0 elsewhere
  sel = (aw.argmax(1) == y)[:, None]
  np.testing.assert_allclose(g, sel * (np.exp(_np_log_softmax(as_)) - np.exp(_np_log_softmax(aw))), atol=1e-12)
  # lambda = 0: plain CE summed over experts
  ref = sum(-np.take_along_axis(_np_log_softmax(w), y[:, None], 1)[:, 0] for w in weak)
  np.testing.assert_allclose(plain, ref, rtol=1e-12)
  # the counts' scale is a per-class constant softmax ignores (up to the official 1e-9 inside the log)
  np.testing.assert_allclose(scaled, 0, atol=1e-6)

@pytest.mark.slow  # where / half precision / traced-label probes: compiles many small programs
def test_mdcs_bad_input_and_traced_labels():
  z = jnp.zeros((3, 2, 4))
  y = jnp.array([0, 3])
  with pytest.raises(ValueError, match="lambdas"):
    losses.mdcs_expert_logits(z, jnp.ones(4), lambdas=(1.0, 2.0))
  with pytest.raises(ValueError, match="class_counts"):
    losses.mdcs_expert_logits(z, jnp.array([1.0, 0.0, 2.0, 3.0]))
  with pytest.raises(ValueError, match="labels"):
    losses.mdcs_diversity_loss(z, jnp.array([0, 4]), jnp.ones(4))
  with pytest.raises(ValueError, match="weak_logits"):
    losses.consistency_self_distill(z[0], z[0, :1], y)
  with pytest.raises(ValueError, match="temperature"):
    losses.consistency_self_distill(z[0], z[0], y, temperature=0.0)
  loss, _ = jax.jit(losses.consistency_self_distill)(z[0], z[0], jnp.array([0, 5]))
  assert np.isnan(float(loss[1])) and float(loss[0]) == 0
  half = losses.mdcs_expert_logits(z.astype(jnp.bfloat16), jnp.ones(4))
  assert half.dtype == jnp.bfloat16
