"""jaxlib_methods.kernels: Pallas kernels beside their pure-jnp references.

  flash_attention       FlashAttention-2 forward/backward, GPU (Triton) kernels (Dao, 2023, arXiv:2307.08691)
  flash_attention_tpu   the same for TPU (Mosaic); reached through flash_attention(..., platform="tpu")
  gla                   Gated Linear Attention, chunkwise form (Yang et al., 2023, arXiv:2312.06635)
  dispatch              `attention(..., implementation=None | "pallas" | "xla" | "cudnn" | "splash", platform=None)`
  lowering              `jax.export` for cuda / tpu from any machine; Triton IR capture and offline compile
"""

from jaxlib_methods.kernels.dispatch import attention, default_implementation
from jaxlib_methods.kernels.flash_attention import BlockSizes, flash_attention, flash_attention_reference
from jaxlib_methods.kernels.gla import gated_linear_attention, gated_linear_attention_reference, gla_attention
