"""jaxlib_methods.kernels: Pallas kernels beside their pure-jnp references.

  flash_attention   FlashAttention-2 forward/backward (Dao, 2023, arXiv:2307.08691)
  gla               Gated Linear Attention, chunkwise form (Yang et al., 2023, arXiv:2312.06635)
  dispatch          `attention(..., implementation=None | "pallas" | "xla" | "cudnn")`
"""

from jaxlib_methods.kernels.dispatch import attention, default_implementation
from jaxlib_methods.kernels.flash_attention import flash_attention, flash_attention_reference
from jaxlib_methods.kernels.gla import gated_linear_attention, gated_linear_attention_reference, gla_attention
