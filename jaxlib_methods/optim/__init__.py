"""optax GradientTransformations from the papers, one paper family per (private) module, re-exported here.

As optax does, the implementation modules have their own names (`_galore`, `_lion_k`, ...) so that no module is
shadowed by a function of the same name: use `jaxlib_methods.optim.galore` (the function) and, for the projector
math, the public module `jaxlib_methods.optim.subspace`.

Every transform exports the names `optax.inject_hyperparams` must keep static (shape-setting and callable
arguments) as `<NAME>_STATIC_ARGS` and as `<function>.STATIC_ARGS`; `StaticArgumentError` is raised when one of them
arrives injected.
"""

from jaxlib_methods.optim import subspace
from jaxlib_methods.optim._contracts import StaticArgumentError
from jaxlib_methods.optim._lion_k import (
    K_NAMES,
    LION_K_STATIC_ARGS,
    SCALE_BY_LION_K_STATIC_ARGS,
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
from jaxlib_methods.optim._galore import (
    GALORE_STATIC_ARGS,
    SCALE_BY_GALORE_STATIC_ARGS,
    GaLoreState,
    galore,
    scale_by_adam_hf,
    scale_by_galore,
)
from jaxlib_methods.optim._q_galore import (
    Q_GALORE_STATIC_ARGS,
    SCALE_BY_Q_GALORE_STATIC_ARGS,
    QGaLoreState,
    QuantizedArray,
    apply_updates_int8,
    dequantize_groupwise,
    q_galore,
    quantize_groupwise,
    scale_by_q_galore,
)
from jaxlib_methods.optim._adam8bit import (
    SCALE_BY_ADAM_8BIT_STATIC_ARGS,
    BlockQuantized,
    ScaleByAdam8bitState,
    dequantize_blockwise,
    dynamic_map,
    quantize_blockwise,
    scale_by_adam_8bit,
)
from jaxlib_methods.optim._frugal import (
    FRUGAL_PROJECTORS,
    FRUGAL_STATIC_ARGS,
    SCALE_BY_FRUGAL_STATIC_ARGS,
    STATE_FREE_RULES,
    FrugalState,
    frugal,
    scale_by_frugal,
)
from jaxlib_methods.optim._masks import paper_projection_mask, paper_reshape
from jaxlib_methods.optim._orthograd import (
    ORTHOGONAL_ADAMW_STATIC_ARGS,
    ScaleByOrthogradState,
    orthogonal_adamw,
    orthograd,
    scale_by_orthograd,
)
from jaxlib_methods.optim.subspace import PROJECTORS, SIDES, SubspaceSpec, block_indices, block_selection

# The public API (griffe/mkdocstrings document re-exported names listed here; a test keeps it complete).
__all__ = [
    "BlockQuantized",
    "FRUGAL_PROJECTORS",
    "FRUGAL_STATIC_ARGS",
    "FrugalState",
    "GALORE_STATIC_ARGS",
    "GaLoreState",
    "KFunction",
    "K_NAMES",
    "LION_K_STATIC_ARGS",
    "ORTHOGONAL_ADAMW_STATIC_ARGS",
    "PROJECTORS",
    "QGaLoreState",
    "Q_GALORE_STATIC_ARGS",
    "QuantizedArray",
    "SCALE_BY_ADAM_8BIT_STATIC_ARGS",
    "SCALE_BY_FRUGAL_STATIC_ARGS",
    "SCALE_BY_GALORE_STATIC_ARGS",
    "SCALE_BY_LION_K_STATIC_ARGS",
    "SCALE_BY_Q_GALORE_STATIC_ARGS",
    "SIDES",
    "STATE_FREE_RULES",
    "ScaleByAdam8bitState",
    "ScaleByLionKState",
    "ScaleByOrthogradState",
    "StaticArgumentError",
    "SubspaceSpec",
    "apply_updates_int8",
    "block_indices",
    "block_selection",
    "dequantize_blockwise",
    "dequantize_groupwise",
    "dynamic_map",
    "frugal",
    "galore",
    "grad_dead_zone",
    "grad_half_squared_l2",
    "grad_huber",
    "grad_l1",
    "grad_l2",
    "grad_linf",
    "grad_lp",
    "grad_relativistic",
    "lion_k",
    "make_k_function",
    "orthogonal_adamw",
    "orthograd",
    "paper_projection_mask",
    "paper_reshape",
    "q_galore",
    "quantize_blockwise",
    "quantize_groupwise",
    "scale_by_adam_8bit",
    "scale_by_adam_hf",
    "scale_by_frugal",
    "scale_by_galore",
    "scale_by_lion_k",
    "scale_by_orthograd",
    "scale_by_q_galore",
]

# ---- issue 16, wave 2 (P1): infinite LR schedule [175], target surrogates / SSO [187], Fisher merging [141],
# optimistic OMD [209] ----
from jaxlib_methods.optim import fisher_merging
from jaxlib_methods.optim._infinite_lr import (
    COOLDOWNS,
    continual_infinite_lr_schedule,
    infinite_lr_schedule,
    repeated_cosine_schedule,
)
from jaxlib_methods.optim._optimistic import HINTS, OPTIMISTIC_OMD_STATIC_ARGS, OptimisticOMDState, optimistic_omd
from jaxlib_methods.optim._target_surrogates import (
    SSO_STATIC_ARGS,
    SSOState,
    TargetSurrogateOptimizer,
    sso,
    sso_surrogate,
)
from jaxlib_methods.optim.fisher_merging import LIKELIHOODS, diag_fisher, fisher_merge, fisher_merge_full

__all__ += [
    "COOLDOWNS",
    "HINTS",
    "LIKELIHOODS",
    "OPTIMISTIC_OMD_STATIC_ARGS",
    "OptimisticOMDState",
    "SSOState",
    "SSO_STATIC_ARGS",
    "TargetSurrogateOptimizer",
    "continual_infinite_lr_schedule",
    "diag_fisher",
    "fisher_merge",
    "fisher_merge_full",
    "infinite_lr_schedule",
    "optimistic_omd",
    "repeated_cosine_schedule",
    "sso",
    "sso_surrogate",
]

# ---- Issue 16, optimizers wave 2, P2 papers ([74] GAQAT, [104] Concrete subspace, [106] cSGLD, [123] Flag
# Aggregator, [140] dynamic sparse training, [165] FLAD, [170] N:M gradient flow); the attacks of [106]/[111]/[115]
# are in jaxlib_methods.attacks. The public
# modules aggregation, concrete_subspace, data_mixing and nm_sparsity hold the non-optimizer pieces (not in
# __all__, like `subspace`). ----
from jaxlib_methods.optim import aggregation, concrete_subspace, data_mixing, nm_sparsity
from jaxlib_methods.optim._csgld import (
    CSGLD_STATIC_ARGS,
    SCALE_BY_LANGEVIN_STATIC_ARGS,
    ScaleByLangevinState,
    csgld,
    csgld_is_sampling,
    cyclical_step_size,
    scale_by_langevin,
)
from jaxlib_methods.optim._dynamic_sparse import (
    DYNAMIC_SPARSE_STATIC_ARGS,
    DynamicSparseState,
    apply_masks,
    cosine_drop_fraction,
    default_sparsify,
    dynamic_sparse,
)
from jaxlib_methods.optim._gaqat import (
    SCALE_BY_GAQAT_FREEZE_STATIC_ARGS,
    ScaleByGaqatFreezeState,
    gaqat_freeze_scales,
    gradient_disorder,
    lsq_fake_quant,
    lsq_levels,
    sam_task_and_sharpness_grads,
    scale_by_gaqat_freeze,
)
from jaxlib_methods.optim.aggregation import (
    FlagSubspace,
    aggregate_pytrees,
    coordinate_median,
    flag_aggregate,
    flag_objective,
    flag_subspace,
    mean_aggregate,
    multi_krum,
)
from jaxlib_methods.optim.concrete_subspace import concrete_mask, masked_task_arithmetic, task_vectors
from jaxlib_methods.optim.data_mixing import (
    Exp3FladState,
    Ucb1FladState,
    exp3_flad_init,
    exp3_flad_sample,
    exp3_flad_update,
    gradient_alignment,
    ucb1_flad_init,
    ucb1_flad_scores,
    ucb1_flad_select,
    ucb1_flad_update,
)
from jaxlib_methods.optim.nm_sparsity import decaying_gradient_flow, mdgf_decay, nm_mask, sdgf_n, sr_ste

__all__ += [
    "CSGLD_STATIC_ARGS",
    "DYNAMIC_SPARSE_STATIC_ARGS",
    "DynamicSparseState",
    "Exp3FladState",
    "FlagSubspace",
    "SCALE_BY_GAQAT_FREEZE_STATIC_ARGS",
    "SCALE_BY_LANGEVIN_STATIC_ARGS",
    "ScaleByGaqatFreezeState",
    "ScaleByLangevinState",
    "Ucb1FladState",
    "aggregate_pytrees",
    "apply_masks",
    "concrete_mask",
    "coordinate_median",
    "cosine_drop_fraction",
    "csgld",
    "csgld_is_sampling",
    "cyclical_step_size",
    "decaying_gradient_flow",
    "default_sparsify",
    "dynamic_sparse",
    "exp3_flad_init",
    "exp3_flad_sample",
    "exp3_flad_update",
    "flag_aggregate",
    "flag_objective",
    "flag_subspace",
    "gaqat_freeze_scales",
    "gradient_alignment",
    "gradient_disorder",
    "lsq_fake_quant",
    "lsq_levels",
    "masked_task_arithmetic",
    "mdgf_decay",
    "mean_aggregate",
    "multi_krum",
    "nm_mask",
    "sam_task_and_sharpness_grads",
    "scale_by_gaqat_freeze",
    "scale_by_langevin",
    "sdgf_n",
    "sr_ste",
    "task_vectors",
    "ucb1_flad_init",
    "ucb1_flad_scores",
    "ucb1_flad_select",
    "ucb1_flad_update",
]

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
    FEDHYPER_GLOBAL_STATIC_ARGS,
    SCALE_BY_FEDHYPER_CLIENT_STATIC_ARGS,
    SCALE_BY_HYPERGRADIENT_LR_STATIC_ARGS,
    FedHyperClientState,
    HypergradientLRState,
    fedhyper_global,
    scale_by_fedhyper_client,
    scale_by_hypergradient_lr,
)

__all__ += [
    "CO2State",
    "FEDHYPER_GLOBAL_STATIC_ARGS",
    "FedHyperClientState",
    "HypergradientLRState",
    "as_varying",
    "co2_finalize",
    "co2_init",
    "co2_outer_update",
    "co2_round",
    "count_collectives",
    "fedhyper_global",
    "pmean_grouped",
    "SCALE_BY_FEDHYPER_CLIENT_STATIC_ARGS",
    "SCALE_BY_HYPERGRADIENT_LR_STATIC_ARGS",
    "scale_by_fedhyper_client",
    "scale_by_hypergradient_lr",
]

# ---- layers1 (issue 18) ----
from jaxlib_methods.optim._grassmann import (  # noqa: E402  ([97] Grassmann Class Representation)
    RIEMANNIAN_SGD_GRASSMANN_STATIC_ARGS,
    RiemannianSGDState,
    grassmann_tangent,
    qr_retraction,
    riemannian_sgd_grassmann,
)

__all__ += [
    "RIEMANNIAN_SGD_GRASSMANN_STATIC_ARGS",
    "RiemannianSGDState",
    "grassmann_tangent",
    "qr_retraction",
    "riemannian_sgd_grassmann",
]
