"""The Gated Linear Attention layer (Flax NNX), the token mixer of the GLA Transformer.

Paper [206]: Songlin Yang, Bailin Wang, Yikang Shen, Rameswar Panda, Yoon Kim, "Gated Linear Attention Transformers
with Hardware-Efficient Training", 2023, arXiv:2312.06635 (the GLA Transformer layer, in the section "Gated
Linear Attention"):

    Q = X W_Q,  K = X W_K,  V = X W_V                       (key width D * expand_k, value width D * expand_v)
    alpha = sigmoid(X W_a1 W_a2 + b_a)^(1/tau)              (low-rank gate, rank 16, temperature tau = 16)
    O = GLA(Q, K, V, alpha)  per head                       (`kernels.gla`; queries scaled by Dk^-1/2 per head)
    Y = (Swish(X W_r) o LN(O)) W_O                          (output gate, LayerNorm per head)

In log space, log alpha = log_sigmoid(X W_a1 W_a2 + b_a) / tau, which is what the kernel consumes. The defaults
(expand_k = 0.5, expand_v = 1, gate rank 16, tau = 16) are those of the paper and its official code
(flash-linear-attention, `fla/layers/gla.py`).
"""

from __future__ import annotations

import math
from typing import Literal, Optional

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods import validation
from jaxlib_methods.kernels.gla import gla_attention


class GatedLinearAttention(nnx.Module):
  """GLA token mixer: `__call__(x [B, T, D], *, segment_ids=None, initial_state=None, return_state=False)`.

  Yang et al., "Gated Linear Attention Transformers with Hardware-Efficient Training", 2023, arXiv:2312.06635 (the
  GLA Transformer layer, section "Gated Linear Attention"): Y = (Swish(X W_r) o LN(GLA(Q, K, V, alpha))) W_O.

  Args:
    d_model: D.
    num_heads: heads; D * expand_k and D * expand_v must be divisible by it.
    expand_k: key width D_k = expand_k * D (paper: 0.5). expand_v: value width D_v = expand_v * D (paper: 1).
    gate_low_rank_dim: rank of the gate projection W_a1 W_a2 (paper: 16).
    gate_logit_normalizer: tau in alpha = sigmoid(.)^(1/tau) (paper: 16).
    use_output_gate: Swish(X W_r) output gate (paper: on).
    implementation: None (our Pallas kernels on GPU and TPU, the recurrence elsewhere), "pallas" or "xla" (see
      `kernels.gla.gla_attention`).
    platform: which Pallas kernels: "gpu" (Triton), "tpu" (Mosaic) or None (jax's default backend).
    chunk_size: chunk length of the Pallas kernel.
    interpret: Pallas interpret mode (CPU tests; the TPU kernels in the TPU interpret mode).
    dtype, param_dtype: computation and parameter dtypes.
    rngs: nnx.Rngs with a 'params' stream.

  Returns of `__call__`: [B, T, D]; with return_state=True, (y, final_state [B, heads, Dk/heads, Dv/heads]).
  """

  def __init__(self, d_model: int, num_heads: int, *, expand_k: float = 0.5, expand_v: float = 1.0,
               gate_low_rank_dim: int = 16, gate_logit_normalizer: float = 16.0, use_output_gate: bool = True,
               implementation: Optional[Literal["pallas", "xla"]] = None,
               platform: Optional[Literal["gpu", "tpu"]] = None, chunk_size: int = 64,
               interpret: bool = False, dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
    for name, val in (("d_model", d_model), ("num_heads", num_heads), ("gate_low_rank_dim", gate_low_rank_dim),
                      ("chunk_size", chunk_size)):
      if not isinstance(val, int) or isinstance(val, bool) or val <= 0:
        raise ValueError(f"{name} must be a positive int, got {name}={val!r}")
    validation.check_positive(expand_k, "expand_k")
    validation.check_positive(expand_v, "expand_v")
    validation.check_positive(gate_logit_normalizer, "gate_logit_normalizer")
    key_dim, value_dim = int(d_model * expand_k), int(d_model * expand_v)
    if key_dim != d_model * expand_k or value_dim != d_model * expand_v:
      raise ValueError(f"d_model * expand_k and d_model * expand_v must be integers, got {d_model=}, {expand_k=}, "
                       f"{expand_v=}")
    if key_dim % num_heads or value_dim % num_heads:
      raise ValueError(f"key width {key_dim} and value width {value_dim} must be divisible by {num_heads=}")
    if implementation not in (None, "pallas", "xla"):
      raise ValueError(f"implementation must be None, 'pallas' or 'xla', got {implementation=}")
    if platform not in (None, "gpu", "tpu"):
      raise ValueError(f"platform must be None, 'gpu' or 'tpu', got {platform=}")
    self.d_model, self.num_heads = d_model, num_heads
    self.head_k, self.head_v = key_dim // num_heads, value_dim // num_heads
    self.gate_logit_normalizer = float(gate_logit_normalizer)
    self.implementation, self.platform, self.chunk_size = implementation, platform, chunk_size
    self.interpret, self.dtype = interpret, dtype
    w = lambda fan_in, shape: nnx.Param(nnx.initializers.normal(1.0 / math.sqrt(fan_in))(rngs.params(), shape,
                                                                                         param_dtype))
    n = num_heads
    self.q_weight_dnk = w(d_model, (d_model, n, self.head_k))
    self.k_weight_dnk = w(d_model, (d_model, n, self.head_k))
    self.v_weight_dnv = w(d_model, (d_model, n, self.head_v))
    self.gate_down_dr = w(d_model, (d_model, gate_low_rank_dim))
    self.gate_up_rnk = w(gate_low_rank_dim, (gate_low_rank_dim, n, self.head_k))
    self.gate_bias_nk = nnx.Param(jnp.zeros((n, self.head_k), param_dtype))
    self.out_gate_dnv = w(d_model, (d_model, n, self.head_v)) if use_output_gate else None
    self.o_weight_nvd = w(value_dim, (n, self.head_v, d_model))
    self.norm = nnx.LayerNorm(self.head_v, dtype=jnp.float32, param_dtype=param_dtype, rngs=rngs)

  def log_gates(self, x: jax.Array) -> jax.Array:
    """log alpha = log_sigmoid(x W_a1 W_a2 + b_a) / tau: [B, T, D] -> [B, T, heads, Dk/heads] (float32, <= 0)."""
    r = jnp.einsum("BTD,DR->BTR", x, self.gate_down_dr[...].astype(x.dtype))
    logits = jnp.einsum("BTR,RNK->BTNK", r, self.gate_up_rnk[...].astype(x.dtype)) + self.gate_bias_nk[...]
    return jax.nn.log_sigmoid(logits.astype(jnp.float32)) / self.gate_logit_normalizer

  def __call__(self, x: jax.Array, *, segment_ids: Optional[jax.Array] = None,
               initial_state: Optional[jax.Array] = None, return_state: bool = False):
    if x.ndim != 3 or x.shape[-1] != self.d_model:
      raise ValueError(f"x must have shape [B, T, {self.d_model}], got {x.shape=}")
    x = x.astype(self.dtype)
    q = jnp.einsum("BTD,DNK->BTNK", x, self.q_weight_dnk[...].astype(self.dtype))
    k = jnp.einsum("BTD,DNK->BTNK", x, self.k_weight_dnk[...].astype(self.dtype))
    v = jnp.einsum("BTD,DNV->BTNV", x, self.v_weight_dnv[...].astype(self.dtype))
    o, state = gla_attention(q, k, v, self.log_gates(x), scale=1.0 / math.sqrt(self.head_k),
                               initial_state=initial_state, segment_ids=segment_ids, chunk_size=self.chunk_size,
                               implementation=self.implementation, platform=self.platform,
                               interpret=self.interpret)
    o = self.norm(o.astype(jnp.float32)).astype(self.dtype)          # LayerNorm per head
    if self.out_gate_dnv is not None:
      o = jax.nn.swish(jnp.einsum("BTD,DNV->BTNV", x, self.out_gate_dnv[...].astype(self.dtype))) * o
    y = jnp.einsum("BTNV,NVD->BTD", o, self.o_weight_nvd[...].astype(self.dtype))
    return (y, state) if return_state else y
