"""Diagnostics the papers measure: sharpness, empirical NTK, calibration, embedding geometry, attention logits."""

from jaxlib_methods.analysis.attention_logits import max_attention_logit
from jaxlib_methods.analysis.calibration import (
    brier_score,
    expected_calibration_error,
    fit_temperature,
    temperature_nll,
)
from jaxlib_methods.analysis.embedding import tolerance, uniformity, uniformity_loss
from jaxlib_methods.analysis.ntk import empirical_ntk, kernel_target_alignment
from jaxlib_methods.analysis.sharpness import hessian_top_eigenvalue, hvp
from jaxlib_methods.analysis.eigenlearning import eigenlearning_kappa, eigenlearning_risk
# ---- theory2 (issue 17: Hutchinson / Hutch++ trace estimators [198] [212]; AltMin matrix completion [101]) ----
from jaxlib_methods.analysis.hutchinson import hessian_trace, hutchinson_trace_jacobian, jacobian_trace
from jaxlib_methods.analysis.matrix_completion import altmin_complete

# ---- theory3 (issue 21): FTRL log-barrier [203], Kronecker SBL [207], concept XAI [25], label propagation [62],
# lp sensitivities [98], nuclear norm [147], forest smoothers [109]
from jaxlib_methods.analysis.ftrl_log_barrier import ftrl_log_barrier_policy, linear_q_estimate
from jaxlib_methods.analysis.kronecker_sbl import (
    KronSBLResult,
    kron_matvec,
    kron_sbl,
    kron_sbl_m_step_am,
    kron_sbl_m_step_svd,
)
from jaxlib_methods.analysis.concept_xai import (
    concept_activation_map,
    concept_existence_metric,
    concept_global_importance,
    concept_location_metric,
)
from jaxlib_methods.analysis.video_label_propagation import label_propagation
from jaxlib_methods.analysis.lp_sensitivity import lewis_weights, lp_sensitivities, sensitivity_sample
from jaxlib_methods.analysis.representation_rank import matrix_entropy, matrix_nuclear_norm
from jaxlib_methods.analysis.forest_smoother import (
    RegressionForest,
    effective_params,
    fit_regression_forest,
    forest_smoother_weights,
)
# ---- theory2b (issue 17: transductive few-shot bound optimizer [67]) ----
from jaxlib_methods.analysis.transductive_clustering import (
    TransductiveResult,
    bound_optimizer,
    gaussian_affinity,
    transductive_objective,
)
# ---- theory2b (issue 17: naive Bayes vs logistic regression [43]) ----
from jaxlib_methods.analysis.generative_classifiers import (
    LogisticParams,
    NaiveBayesParams,
    gaussian_naive_bayes,
    logistic_objective,
    logistic_regression,
    naive_bayes_logits,
)
# ---- app22 (issue 22) ----
from jaxlib_methods.analysis.hutchinson import hutchinson_trace_gradient  # noqa: F401  ([212] STSL drift)
# ---- an21 (issue 21): streaming nearest-mean classifier [28], selective classification + window cascades [100]
from jaxlib_methods.analysis.nearest_mean import (
    NearestMeanState,
    nearest_mean_distances,
    nearest_mean_init,
    nearest_mean_predict,
    nearest_mean_update,
)
from jaxlib_methods.analysis.selective import aurc, cascade_macs, coverage_at_risk, risk_coverage, window_cascade
# an21 (issue 21): Sinkhorn OT and the OSBORN transferability terms + greedy selection [117]
from jaxlib_methods.analysis.ot import (
    greedy_submodular_select,
    osborn_score,
    ot_conditional_entropy,
    sinkhorn,
    sinkhorn_ot,
)
# an21 (issue 21): data-filtering scaling laws with repetition (QQT) [70]
from jaxlib_methods.analysis.data_filtering import fit_qqt, qqt_error, qqt_mix_error
# an21 (issue 21): per-module drift and forgetting-prioritised fine-tuning [31]
from jaxlib_methods.analysis.forgetting import fpf_labels, fpf_transform, module_drift
# ---- th17c (issue 17: binned / adaptive-binned / KDE mutual information [38] [63]) ----
from jaxlib_methods.analysis.information import (
    adaptive_bins,
    binned_mutual_information,
    discrete_entropy,
    discrete_mutual_information,
    kde_mutual_information,
    uniform_bins,
)
# ---- th17c (issue 17: continual-evaluation metrics of the stability gap [69]) ----
from jaxlib_methods.analysis.continual_evaluation import min_acc, wc_acc, windowed_forgetting, windowed_plasticity
# ---- th17a (issue 17: layer-wise feature weighting of the projection-head paper [55]) ----
from jaxlib_methods.analysis.feature_weighting import layerwise_feature_weights  # noqa: F401
# ---- th17b (issue 17: robust matrix recovery by SubGM [188]) ----
from jaxlib_methods.analysis.robust_recovery import l1_recovery_loss, small_initialization, subgm_recovery
# ---- th17b (issue 17: MoLRG diffusion denoiser and subspace recovery [129]) ----
from jaxlib_methods.analysis.diffusion_subspace import (
    molrg_denoiser,
    molrg_dsm_loss,
    principal_angles,
    subspace_distance,
)
# ---- th17b (issue 17: random-subspace training and intrinsic dimension [135]) ----
from jaxlib_methods.analysis.intrinsic_dimension import (
    FastfoodParams,
    d_int90,
    dense_projection,
    fastfood_params,
    fastfood_project,
    subspace_wrap,
)
# ---- wise112 (issue 17: WiSE-FT, output ensembles and the FalseFalseTrue rate [112]) ----
from jaxlib_methods.analysis.weight_ensembles import false_false_true_rate, output_ensemble, wise_ft  # noqa: F401
# ---- th21c (issue 21: theory rows with closed forms) ----
# [155] randomized-smoothing certificates: Cohen et al.'s radius and Dual Randomized Smoothing
from jaxlib_methods.analysis.certification import (
    checkerboard_split,
    clopper_pearson_lower,
    dual_smoothed_certify,
    dual_smoothing_radius,
    smoothed_certify,
    smoothing_radius,
)
# [168] the deep hierarchical CNN's NTK / NNGP kernel and KRR learning curves
from jaxlib_methods.analysis.cnn_kernels import (
    hierarchical_cnn_apply,
    hierarchical_cnn_init,
    hierarchical_cnn_kernel,
    krr_learning_curve,
)
# [47] neural-collapse metrics, the simplex ETF, and the UFM's optimal mixup features
from jaxlib_methods.analysis.neural_collapse import mixup_ufm_features, nc_metrics, simplex_etf
# [153] the Jacobian spectrum under augmentation and facility-location coresets
from jaxlib_methods.analysis.coresets import facility_location_coreset, jacobian_spectrum
# [196] deep kernel machines: the DKM objective, its optimiser and the NNGP limit
from jaxlib_methods.analysis.deep_kernel_machines import dkm_fit, dkm_nngp_grams, dkm_objective
# [197] the augmentation kernel, its top-d eigenspace encoder and the augmentation complexity
from jaxlib_methods.analysis.ssl_augmentation import (
    augmentation_complexity,
    augmentation_kernel,
    masking_augmentation,
    top_d_encoder,
)
# [181] bandit action selection by reduction to online regression: inverse-gap weighting (SquareCB) and FastCB
from jaxlib_methods.analysis.bandits import fastcb_weighting, inverse_gap_weighting
# [179] denoiser Jacobian eigenbasis and the agreement of two denoisers
from jaxlib_methods.analysis.denoiser_geometry import denoiser_agreement, denoiser_jacobian_eig
# ---- an21b (issue 21): IB conditional MI + bound [19], MI after compression (KSG) [39], inductive-bias bits [202],
# V-information feature complexity [36]
from jaxlib_methods.analysis.information_complexity import (
    compressed_mutual_information,
    cond_mi_x_z_given_y,
    fit_scaled_ncx2,
    ib_generalization_bound,
    inductive_bias_bits,
    ksg_mutual_information,
    linear_v_information,
    scaled_ncx2_logcdf,
    v_information_complexity,
)
from jaxlib_methods.analysis.opposing_signals import group_swing_correlation, opposing_signal_groups  # [195]
from jaxlib_methods.analysis.feature_merging import feature_complexity, iterative_feature_merging  # [23]
from jaxlib_methods.analysis.density_pruning import dbp_prune, dbp_quotas  # [37]
from jaxlib_methods.analysis.concept_regions import attribution_on_region  # [32]
# ---- th21d (issue 21): [146] supervised dictionary learning with auxiliary covariates
from jaxlib_methods.analysis.supervised_dictionary import SDLParams, sdl_bcd, sdl_objective
# ---- dd8 (duplicates): leave-one-out Recall@1, shared by experiments tcm_threshold_consistency and losses_wave2_p6
from jaxlib_methods.analysis.embedding import recall_at_1
