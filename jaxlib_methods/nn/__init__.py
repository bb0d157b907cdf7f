"""jaxlib_methods.nn"""

from jaxlib_methods.nn.attention import MultiHeadAttention  # noqa: F401  (issue 5)
from jaxlib_methods.nn.gla import GatedLinearAttention  # noqa: F401  (issue 5)
from jaxlib_methods.nn.mlp import MLP, ScaledDense  # noqa: F401  (issue 8)
from jaxlib_methods.nn.norms import NonScalingLayerNorm  # noqa: F401  (issue 15, [3])
from jaxlib_methods.nn.parametrization import (  # noqa: F401  (issue 8)
    LayerScale,
    layer_scale,
    lr_multipliers,
    scale_by_lr_multipliers,
    with_lr_multipliers,
)
from jaxlib_methods.nn.transformer import TransformerConfig, TransformerLM, next_token_loss, z_loss  # noqa: F401  (issue 8)
# ---- layers1 (issue 18) ----
from jaxlib_methods.nn.ssm import (  # noqa: F401  (issue 18, [132])
    S4DLayer,
    fft_causal_conv,
    hippo_legs,
    s4d_discretize,
    s4d_inv,
    s4d_kernel,
    s4d_legs,
    s4d_lin,
    s4d_recurrence,
)
from jaxlib_methods.nn.low_rank import (  # noqa: F401  (issue 18, [114])
    LowRankCompensatedLinear,
    eora_compensation,
    svd_compensation,
)
from jaxlib_methods.nn.grassmann import GrassmannClassifier, grassmann_logits  # noqa: F401  (issue 18, [97])
from jaxlib_methods.nn.schrodinger import (  # noqa: F401  (issue 18, [133])
    LightSB,
    LightSBParams,
    lightsb_conditional,
    lightsb_log_c,
    lightsb_log_potential,
    lightsb_loss,
    lightsb_sample,
)
