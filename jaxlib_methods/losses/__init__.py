"""jaxlib_methods.losses: pure loss functions, per example unless stated (conventions: docs/conventions.md)."""

from jaxlib_methods.losses.stablemax import (  # noqa: F401  (issue 8)
    log_stablemax,
    softmax_collapse_fraction,
    softmax_cross_entropy,  # deprecated alias (warns): takes integer labels, unlike optax's softmax_cross_entropy
    softmax_cross_entropy_with_integer_labels,
    stablemax_cross_entropy,
    zero_loss_fraction,
)  # the probability map `stablemax` stays at jaxlib_methods.losses.stablemax.stablemax (a same-named re-export
#    would shadow the submodule)
from jaxlib_methods.losses.ldr import (  # noqa: F401  (issue 6, [9])
    aldr_kl_init_state,
    aldr_kl_loss,
    aldr_kl_update_lambda,
    crammer_singer_loss,
    ldr_kl_loss,
)
from jaxlib_methods.losses.comp_sum import comp_sum_loss, smooth_adv_comp_sum_loss  # noqa: F401  (issue 6, [164])
from jaxlib_methods.losses.bias import bias_loss  # noqa: F401  (issue 6, [50])
from jaxlib_methods.losses.calibrated_ensemble import (  # noqa: F401  (issue 6, [75])
    ensloss,
    ensloss_margins,
    sample_calibrated_derivatives,
)
from jaxlib_methods.losses.bd_kd import bd_kd_student_loss, online_kd_teacher_loss  # noqa: F401  (issue 6, [76])
from jaxlib_methods.losses.reweighting import loss_reweighting, reweighted_mean  # noqa: F401  (issue 6, [78])
from jaxlib_methods.losses.npo import ga_loss, npo_loss, npo_weight  # noqa: F401  (issue 6, [182])
from jaxlib_methods.losses.aggregate_responses import (  # noqa: F401  (issue 6, [194])
    bag_level_loss,
    instance_level_loss,
    interpolating_loss,
)
from jaxlib_methods.losses.dexml import decoupled_softmax_loss, soft_topk_loss  # noqa: F401  (issue 6, [213])
from jaxlib_methods.losses.tcm import epsilon_opis, opis, tcm_loss  # noqa: F401  (issue 6, [10])
from jaxlib_methods.losses.consistency import (  # noqa: F401  (issue 7, [2] iCT, [3] latent consistency)
    cauchy_loss,
    consistency_loss,
    consistency_skip_out,
    ict_num_scales,
    ict_weight,
    karras_sigmas,
    lognormal_sigma_probs,
    ot_minibatch_coupling,
    pseudo_huber_loss,
    sample_sigma_indices,
)
from jaxlib_methods.losses.consistency import (  # noqa: F401  (issue 7, [3] adaptive c, early-timestep diffusion loss)
    early_timestep_mask,
    edm_diffusion_weight,
    lct_adaptive_c,
    lct_diffusion_loss,
    lct_total_loss,
)
from jaxlib_methods.losses.cauchy_schwarz import (  # noqa: F401  (issue 7, [4])
    conditional_cs_divergence,
    cs_divergence,
    cs_ib_loss,
    cs_qmi,
)
from jaxlib_methods.losses.contrastive import (  # noqa: F401  (issue 7, [183] [83] [119] [54])
    IsogclrState,
    alignment_loss,
    geodesic_mixup,
    isogclr_init,
    isogclr_loss,
    m2mix_loss,
    mcl_info_nce,
    mochi_infonce,
    mochi_negatives,
    robust_contrastive_loss,
    uniformity_loss,
)
from jaxlib_methods.losses.ssl import (  # noqa: F401  (issue 7, [91] [120] [96])
    barlow_twins_loss,
    cca_ey_loss,
    coding_rate,
    doubly_stochastic,
    ey_gep_loss,
    mixed_barlow_twins_regularizer,
    mlc_compression_rate,
    mlc_loss,
    pls_ey_loss,
    ssl_ey_loss,
)
from jaxlib_methods.losses.unnormalized import (  # noqa: F401  (issue 7, [201])
    CompositionalState,
    compositional_init,
    compositional_nll_loss,
    log_partition_estimate,
    nce_loss,
    unnormalized_nll,
)
# ---- pipe-distill (issue 22): [148] [12] [88] [77] distillation, [53] [68] cache objectives
from jaxlib_methods.losses.distill import (  # noqa: F401
    decoupled_distill_loss,
    head_distillation_loss,
    momentum_gs_block_weights,
    partial_unfreeze_labels,
    robust_kd_loss,
)
from jaxlib_methods.losses.cache import harmonica_router_objective, marginal_entropy_loss  # noqa: F401
# ---- pipe-signal (issue 22): FlipNeRF [0], DDC [8], AU-GAN [80], Denoising as Adaptation [171], Noise2Recon [174]
from jaxlib_methods.losses.mri import noise2recon_consistency_loss  # noqa: F401  (issue 22, [174])
from jaxlib_methods.losses.nerf import (  # noqa: F401  (issue 22, [0])
    flipped_reflection_rays,
    uncertainty_aware_emptiness_loss,
)
from jaxlib_methods.losses.restoration import (  # noqa: F401  (issue 22, [171] [210])
    conditioned_diffusion_loss,
    downsampled_invariance_loss,
)
from jaxlib_methods.losses.translation import (  # noqa: F401  (issue 22, [8] [80])
    ddc_direction,
    directional_distribution_consistency_loss,
    uncertainty_cycle_loss,
)
# ---- pipe-sampling (issue 22) ----
from jaxlib_methods.losses.conjugate_prior import conjugate_prior_elbo_loss  # noqa: F401  ([180])
# ---- losses2 (issue 19): [60] TESLA, [44] RMT, [56] ND loss, [152] WhitenedCSE, [200] Metrix
from jaxlib_methods.losses.dataset_distillation import (  # noqa: F401  (issue 19, [60])
    MTTGrads,
    mtt_bptt_grad,
    mtt_loss,
    tesla_grad,
    tesla_soft_labels,
    unrolled_sgd,
)
from jaxlib_methods.losses.adaptation import symmetric_cross_entropy  # noqa: F401  (issue 19, [44])
from jaxlib_methods.losses.feature_kd import nd_loss, teacher_class_means  # noqa: F401  (issue 19, [56])
from jaxlib_methods.losses.whitening import shuffled_group_whitening  # noqa: F401  (issue 19, [152])
from jaxlib_methods.losses.metric_mixup import metrix_contrastive_loss  # noqa: F401  (issue 19, [200])
# ---- app22 (issue 22) ----
from jaxlib_methods.losses.continual import (  # noqa: F401  ([26] MVP)
    gradient_similarity_focal_loss,
    gradient_similarity_scores,
)
# ---- ls19a (issue 19): [46] MIC, [24] CAFA, [94] LAPTOP-Diff, [93] DR-Tune, [30] MDCS
from jaxlib_methods.losses.adaptation import (  # noqa: F401  (issue 19, [46] [24])
    cafa_loss,
    cafa_source_statistics,
    mic_loss,
    mic_quality_weight,
    random_patch_mask,
)
from jaxlib_methods.losses.feature_kd import normalized_feature_kd, output_loss_criterion  # noqa: F401  ([94])
from jaxlib_methods.losses.feature_kd import dr_tune_loss, semantic_calibration  # noqa: F401  ([93])
from jaxlib_methods.losses.distill import (  # noqa: F401  ([30])
    consistency_self_distill,
    mdcs_diversity_loss,
    mdcs_expert_logits,
)
# ---- ls19b (issue 19): [184] AMCL, [116] Hydra
from jaxlib_methods.losses.contrastive import (  # noqa: F401  (issue 19, [184] [116])
    amcl_loss,
    amcl_temperature_regularizer,
    hydra_loss,
)
from jaxlib_methods.losses.metric_learning import (  # noqa: F401  (issue 19, [118] [87])
    icnn_score,
    normalized_softmax_loss,
    proto_triplet_loss,
)
from jaxlib_methods.losses.prototype_distill import prd_loss, prototype_cosine_loss  # noqa: F401  (issue 19, [59])
# ---- ls19c (issue 19): [48] AST smooth expert trajectories, [64] DCC
from jaxlib_methods.losses.dataset_distillation import (  # noqa: F401  (issue 19, [48] [64])
    AST_LOSS_DECAY,
    ast_balanced_inner_weight,
    ast_clipping_loss,
    ast_gradient_penalty,
    ast_intermediate_matching_loss,
    ast_weight_perturbation,
    dc_gradient_distance,
    dc_gradient_matching_loss,
    dcc_gradient_matching_loss,
)
from jaxlib_methods.losses.masked_modeling import hpm_easy_to_hard_mask, hpm_relative_loss  # noqa: F401  ([163])
# ---- ls19d (issue 19): [89] PamC, [173] ADC-GAN, [34] SMMix, [51] AdaWAC, [11] CVIB
from jaxlib_methods.losses.graph_contrastive import graph_ncontrast_loss, pamc_loss  # noqa: F401  (issue 19, [89])
from jaxlib_methods.losses.conditional_gan import adc_discriminator_loss, adc_generator_loss  # noqa: F401  ([173])
from jaxlib_methods.losses.token_mixing import smmix_consistency_loss, smmix_fine_grained_loss  # noqa: F401  ([34])
from jaxlib_methods.losses.consistency_weighting import adawac_objective, adawac_weight_update  # noqa: F401  ([51])
from jaxlib_methods.losses.contrastive import self_pruning_contrastive_loss  # noqa: F401  ([11])
# ---- ls19e (issue 19): [143] HARD
from jaxlib_methods.losses.distill import hard_augment_objective, hard_generator_loss  # noqa: F401  ([143])
