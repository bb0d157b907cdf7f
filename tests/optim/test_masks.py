"""`paper_projection_mask` / `paper_reshape` on the project's transformer (the leaves the GaLore / Q-GaLore / FRUGAL
papers project: attention and MLP matrices, never embeddings, the output layer, norms or biases), and GaLore
training the LM through `nnx.Optimizer` with them (issue 13, item 1)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxlib_methods import optim as O
from jaxlib_methods.nn.transformer import TransformerConfig, TransformerLM


def _names(tree, mask):
  flat = jax.tree_util.tree_flatten_with_path(mask)[0]
  return sorted(jax.tree_util.keystr(p) for p, v in flat if v)


def _lm(attention="builtin", num_layers=2):
  cfg = TransformerConfig(vocab_size=16, d_model=16, num_layers=num_layers, num_heads=2, attention=attention)
  return TransformerLM(cfg, rngs=nnx.Rngs(0))


def test_mask_selects_the_attention_and_mlp_matrices_of_the_lm():
  state = nnx.state(_lm(), nnx.Param)
  pure = nnx.to_pure_dict(state)
  want = sorted(f"['blocks'][{i}]['{m}']['{w}']" for i in range(2) for m, w in
                [("attn", "q_weight_dnh"), ("attn", "k_weight_dnh"), ("attn", "v_weight_dnh"),
                 ("attn", "o_weight_nhd"), ("mlp", "w1"), ("mlp", "w2")])
  assert _names(pure, O.paper_projection_mask(pure)) == want
  # The same on the nnx.State itself (its Variables add a '.value' to every path).
  assert [n.replace(".value", "") for n in _names(state, O.paper_projection_mask(state))] == want
  reshape = O.paper_reshape(pure)
  assert reshape["blocks"][0]["attn"]["q_weight_dnh"] == 1 and reshape["blocks"][0]["attn"]["o_weight_nhd"] == 2
  assert reshape["blocks"][0]["mlp"]["w1"] is None and reshape["embed_vd"] is None


def test_mask_on_gla_attention_and_on_a_hand_written_lm():
  pure = nnx.to_pure_dict(nnx.state(_lm("gla"), nnx.Param))
  got = {n.split("[")[-1].strip("]'") for n in _names(pure, O.paper_projection_mask(pure))}
  assert got == {"q_weight_dnk", "k_weight_dnk", "v_weight_dnv", "gate_down_dr", "gate_up_rnk", "out_gate_dnv",
                 "o_weight_nvd", "w1", "w2"}  # not gate_bias_nk (a bias), not the GLA norm
  reshape = O.paper_reshape(pure)["blocks"][0]["attn"]
  assert (reshape["gate_up_rnk"], reshape["o_weight_nvd"], reshape["q_weight_dnk"]) == (1, 2, 1)
  d = 8
  params = {"embed": jnp.ones((32, d)), "head": jnp.ones((d, 32)), "ln_f": jnp.ones(d),
            "layer0": {"attn": {"q": jnp.ones((d, d)), "o": jnp.ones((d, d))}, "mlp": {"up": jnp.ones((d, 4 * d)),
                                                                                       "bias": jnp.ones((4 * d, 1))},
                       "ln1": jnp.ones(d), "attn_norm": {"scale": jnp.ones((d, 1))}}}
  assert _names(params, O.paper_projection_mask(params)) == [
      "['layer0']['attn']['o']", "['layer0']['attn']['q']", "['layer0']['mlp']['up']"]


def test_galore_trains_the_lm_through_nnx_optimizer_with_the_paper_mask():
  model = _lm(num_layers=1)
  tx = O.galore(3e-2, rank=4, update_gap=2, projection_mask=O.paper_projection_mask, reshape=O.paper_reshape)
  opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
  tokens = jax.random.randint(jax.random.PRNGKey(0), (4, 9), 0, 16)

  def loss_fn(m):
    logits = m(tokens[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

  @nnx.jit
  def step(m, o):
    loss, grads = nnx.value_and_grad(loss_fn)(m)
    o.update(m, grads)
    return loss

  losses = [float(step(model, opt)) for _ in range(4)]
  assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
  pure = nnx.to_pure_dict(nnx.state(opt.opt_state))
  gs = pure[0]
  assert gs["basis"]["blocks"][0]["attn"]["q_weight_dnh"].shape == (16, 4)  # [16, 2*8] matrix: right basis
  assert gs["inner_state"]["mu"]["blocks"][0]["attn"]["q_weight_dnh"].shape == (16, 4)
  assert gs["inner_state"]["mu"]["embed_vd"].shape == (16, 16)  # embedding: full Adam state, never projected
  assert gs["basis"]["embed_vd"].shape == ()


def test_mask_functions_reject_a_step_count():
  # What optax.inject_hyperparams passes to a callable it took for a schedule.
  with pytest.raises(O.StaticArgumentError, match="step count"):
    O.paper_projection_mask(jnp.asarray(0, jnp.int32))
  with pytest.raises(O.StaticArgumentError, match="step count"):
    O.paper_reshape(jnp.asarray(0, jnp.int32))
