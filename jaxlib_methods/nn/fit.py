"""FiTv2's core ops: AdaLN-LoRA modulation, FiT's 2-D rotary position embedding on (height, width) grids, and the
logit-normal timestep sampler.

Paper [137]: ZiDong Wang, Zeyu Lu, Di Huang, Cai Zhou, Wanli Ouyang, Lei Bai, "FiTv2: Scalable and Improved Flexible
Vision Transformer for Diffusion Model", 2024, arXiv:2410.13925 (Sec. 3: AdaLN-LoRA replaces each block's adaLN
projection, Linear(D, 6D), by one projection shared by all blocks plus a per-block low-rank one; 2-D RoPE over the
token grid, which makes the model indifferent to the image's aspect ratio and sequence length; the logit-normal
timestep sampler). Details follow the authors' code (github.com/whlzy/FiT, fit/model/fit_model.py and modules.py:
`global_adaLN_modulation = Sequential(SiLU, Linear(D, 6D))`, each block's `adaLN_modulation = Sequential(SiLU,
Linear(D, r), Linear(r, 6D))`, the sum of the two chunked into shift/scale/gate of attention and MLP, all final
layers zero-initialised; fit/model/rope.py `VisionRotaryEmbedding`: head dim Dh split in two halves, the first
rotated by the row (height) index and the second by the column (width) index, each with frequencies
theta^(-2j / (Dh / 2)) on interleaved pairs; 'ntk-aware' extrapolation changes the base to
theta * s^(d / (d - 2)), d = Dh / 2, s = max(1, L / L_train)).
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods.validation import check_floating, check_integer


class AdaLNLoRA(nnx.Module):
  """AdaLN-LoRA of FiTv2 (Wang et al. 2024, arXiv:2410.13925, Sec. 3): block l's modulation is
  m_l(c) = W_g silu(c) + b_g + B_l (A_l silu(c) + a_l) + b_l, shared W_g [D, 6D] plus a rank-r update per block.

  The output [L, ..., 6D] is chunked (shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp) as in DiT.
  At initialisation W_g, b_g, B_l, b_l are zero (the authors' adaLN-Zero init), so every block starts as the
  identity; A_l is drawn (normal, variance 1 / fan-in) and a_l is zero. Parameters:
  6D^2 + 6D + L (D r + r + 6 D r + 6D) versus adaLN-Zero's L (6D^2 + 6D).

  Args:
    hidden_size: D, the conditioning and model width.
    num_blocks: L, number of transformer blocks.
    rank: r, rank of the per-block update, 1 <= r.
    param_dtype: parameter dtype.
    rngs: `nnx.Rngs`.
  """

  def __init__(self, hidden_size: int, num_blocks: int, rank: int, *, param_dtype: Any = jnp.float32,
               rngs: nnx.Rngs):
    for name, v in (("hidden_size", hidden_size), ("num_blocks", num_blocks), ("rank", rank)):
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {name}={v!r}")
    d, big, r, L = hidden_size, 6 * hidden_size, rank, num_blocks
    init = jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal")
    out = bias_out = jax.nn.initializers.zeros
    self.hidden_size, self.num_blocks, self.rank = d, L, r
    self.global_kernel = nnx.Param(out(rngs.params(), (d, big), param_dtype))
    self.global_bias = nnx.Param(bias_out(rngs.params(), (big,), param_dtype))
    self.lora_a = nnx.Param(init(rngs.params(), (L, d, r), param_dtype))
    self.lora_a_bias = nnx.Param(jnp.zeros((L, r), param_dtype))
    self.lora_b = nnx.Param(out(rngs.params(), (L, r, big), param_dtype))
    self.lora_b_bias = nnx.Param(bias_out(rngs.params(), (L, big), param_dtype))

  def __call__(self, c: jax.Array) -> jax.Array:
    """Modulations of every block: c [..., D] -> [L, ..., 6D]."""
    c = check_floating(c, "c")
    if c.shape[-1:] != (self.hidden_size,):
      raise ValueError(f"c must be [..., {self.hidden_size}], got c.shape={c.shape}")
    s = jax.nn.silu(c)
    shared = s @ self.global_kernel[...] + self.global_bias[...]
    low = jnp.einsum("...d,ldr->l...r", s, self.lora_a[...])
    low = low + self.lora_a_bias[...].reshape((self.num_blocks,) + (1,) * (c.ndim - 1) + (self.rank,))
    upd = jnp.einsum("l...r,lre->l...e", low, self.lora_b[...])
    upd = upd + self.lora_b_bias[...].reshape((self.num_blocks,) + (1,) * (c.ndim - 1) + (6 * self.hidden_size,))
    return shared[None] + upd


def fit_rope_angles(grid_h: jax.Array, grid_w: jax.Array, head_dim: int, *, theta: float = 10000.0,
                    custom_freqs: Literal["normal", "ntk-aware"] = "normal", max_pe_len: int | None = None,
                    ori_max_pe_len: int | None = None) -> jax.Array:
  """Rotation angles of FiT's 2-D RoPE (Wang et al. 2024, arXiv:2410.13925, Sec. 3; the authors'
  `VisionRotaryEmbedding`): for token (h, w), angles [h f_0, h f_0, h f_1, h f_1, ..., w f_0, w f_0, ...] with
  f_j = base^(-2j / d), d = head_dim / 2, base = theta ('normal') or theta s^(d / (d - 2)), s = max(1, max_pe_len /
  ori_max_pe_len) ('ntk-aware', FiT's VisionNTK).

  Args:
    grid_h: [..., N] integer row index of each token.
    grid_w: [..., N] integer column index of each token.
    head_dim: Dh, a multiple of 4.
    theta: RoPE base.
    custom_freqs: 'normal' or 'ntk-aware'.
    max_pe_len: test-time max(H, W) in tokens (for 'ntk-aware').
    ori_max_pe_len: training max(H, W) in tokens (for 'ntk-aware').

  Returns:
    [..., N, Dh] float32 angles.
  """
  gh, gw = check_integer(grid_h, "grid_h"), check_integer(grid_w, "grid_w")
  if gh.shape != gw.shape:
    raise ValueError(f"grid_h and grid_w must have one shape, got {gh.shape} and {gw.shape}")
  if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim < 4 or head_dim % 4:
    raise ValueError(f"head_dim must be a positive multiple of 4, got {head_dim=}")
  if not theta > 0:
    raise ValueError(f"theta must be > 0, got {theta=}")
  d = head_dim // 2
  base = float(theta)
  if custom_freqs == "ntk-aware":
    lens_ok = isinstance(max_pe_len, int) and isinstance(ori_max_pe_len, int)
    if not (lens_ok and max_pe_len >= 1 and ori_max_pe_len >= 1):
      raise ValueError(f"'ntk-aware' needs ints max_pe_len, ori_max_pe_len >= 1, got {max_pe_len=}, {ori_max_pe_len=}")
    if d <= 2:
      raise ValueError(f"'ntk-aware' needs head_dim >= 8, got {head_dim=}")
    s = max(1.0, max_pe_len / ori_max_pe_len)
    base = base * s ** (d / (d - 2))
  elif custom_freqs != "normal":
    raise ValueError(f"custom_freqs must be 'normal' or 'ntk-aware', got {custom_freqs=!r}")
  freqs = 1.0 / base ** (jnp.arange(0, d, 2, dtype=jnp.float32) / d)         # [d / 2]
  ah = jnp.repeat(gh.astype(jnp.float32)[..., None] * freqs, 2, axis=-1)     # [..., N, d]
  aw = jnp.repeat(gw.astype(jnp.float32)[..., None] * freqs, 2, axis=-1)
  return jnp.concatenate([ah, aw], axis=-1)


def apply_fit_rope(x: jax.Array, angles: jax.Array) -> jax.Array:
  """Rotate queries or keys by FiT's 2-D RoPE angles: x cos + rotate_half(x) sin, rotate_half acting on interleaved
  pairs (x_{2i}, x_{2i+1}) -> (-x_{2i+1}, x_{2i}) (Wang et al. 2024, arXiv:2410.13925; the authors' `forward`).

  Args:
    x: [B, T, N, Dh] queries or keys (layout [batch, tokens, heads, head_dim]).
    angles: [B, T, Dh] or [T, Dh] from `fit_rope_angles`.

  Returns:
    [B, T, N, Dh] rotated, x's dtype.
  """
  x = check_floating(x, "x")
  angles = check_floating(angles, "angles")
  if x.ndim != 4 or angles.shape[-1] != x.shape[-1] or angles.shape[-2] != x.shape[1]:
    raise ValueError(f"need x [B, T, N, Dh] and angles [(B,) T, Dh], got {x.shape=}, {angles.shape=}")
  a = angles[..., None, :]                                                    # broadcast over heads
  pairs = x.reshape(x.shape[:-1] + (x.shape[-1] // 2, 2))
  rot = jnp.stack([-pairs[..., 1], pairs[..., 0]], axis=-1).reshape(x.shape)
  out = x.astype(jnp.float32) * jnp.cos(a) + rot.astype(jnp.float32) * jnp.sin(a)
  return out.astype(x.dtype)


def logit_normal_timesteps(key: jax.Array, shape: tuple[int, ...], *, mean: float = 0.0, std: float = 1.0) -> jax.Array:
  """FiTv2's logit-normal timestep sampler (Wang et al. 2024, arXiv:2410.13925, Sec. 3): t = sigmoid(u),
  u ~ N(mean, std^2).

  Args:
    key: PRNG key.
    shape: output shape.
    mean: mean of the logit.
    std: standard deviation of the logit, > 0.

  Returns:
    float32 array of `shape` in (0, 1).
  """
  if not std > 0:
    raise ValueError(f"std must be > 0, got {std=}")
  return jax.nn.sigmoid(mean + std * jax.random.normal(key, shape))


__all__ = ["AdaLNLoRA", "apply_fit_rope", "fit_rope_angles", "logit_normal_timesteps"]
