"""optax GradientTransformations from the papers, one paper family per module."""

from jaxlib_methods.optim.lion_k import (
    K_NAMES,
    KFunction,
    ScaleByLionKState,
    grad_dead_zone,
    grad_half_squared_l2,
    grad_huber,
    grad_l1,
    grad_l2,
    grad_linf,
    grad_lp,
    grad_relativistic,
    lion_k,
    make_k_function,
    scale_by_lion_k,
)
from jaxlib_methods.optim.galore import GaLoreLeafState, GaLoreState, galore, scale_by_adam_hf, scale_by_galore
from jaxlib_methods.optim.q_galore import (
    QGaLoreLeafState,
    QGaLoreState,
    QuantizedArray,
    apply_updates_int8,
    dequantize_groupwise,
    q_galore,
    quantize_groupwise,
    scale_by_q_galore,
)
from jaxlib_methods.optim.frugal import FRUGAL_PROJECTORS, STATE_FREE_RULES, FrugalState, frugal, scale_by_frugal
from jaxlib_methods.optim.subspace import PROJECTORS, SIDES, SubspaceSpec, block_selection
from jaxlib_methods.optim.orthograd import (  # noqa: F401  (issue 8; the wrapper `orthograd` is not re-exported:
    ScaleByOrthogradState,                     # it would shadow the submodule jaxlib_methods.optim.orthograd)
    orthogonal_adamw,
    scale_by_orthograd,
)

# ---- scale-out (issue 12): CO2 [52] and FedHyper [57] ------------------------------------------------------------
from jaxlib_methods.optim.co2 import (  # noqa: E402
    CO2State,
    as_varying,
    co2_finalize,
    co2_init,
    co2_outer_update,
    co2_round,
    count_collectives,
    pmean_grouped,
)
from jaxlib_methods.optim.fedhyper import (  # noqa: E402
    FedHyperClientState,
    HypergradientLRState,
    fedhyper_global,
    scale_by_fedhyper_client,
    scale_by_hypergradient_lr,
)
