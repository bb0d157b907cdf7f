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
# ---- pipe-distill (issue 22): [95] [110] [157] heads and fusion, [53] [68] [108] cache ops
from jaxlib_methods.nn.cache import cache_affinity_logits, cache_router_mix, feature_cache_predict  # noqa: F401
from jaxlib_methods.nn.heads import (  # noqa: F401
    MultiExpertFusionProjector,
    SpatialAttentionAggregator,
    image_position_ids,
    krr_classifier,
)
# ---- pipe-signal (issue 22): C-BSN [210], Denoising as Adaptation [171]
from jaxlib_methods.nn.restoration import (  # noqa: F401  (issue 22, [210] [171])
    ChannelShuffle,
    ConditionalBlindSpotConv,
    channel_shuffle,
    channel_unshuffle,
    conditional_blind_spot_conv,
    random_subsampler,
    subsample,
)
# ---- pipe-misc (issue 22) ----
from jaxlib_methods.nn.concept_bottleneck import (  # noqa: F401  (issue 22, [7])
    labo_discriminability,
    labo_select_concepts,
    labo_weight_prior,
)
from jaxlib_methods.nn.collisionless_embedding import (  # noqa: F401  (issue 22, [162])
    CollisionlessEmbedding,
    collisionless_lookup,
)
from jaxlib_methods.nn.detection_assign import atss_assign, box_iou, positive_query_boxes  # noqa: F401  ([172])
from jaxlib_methods.nn.fit import (  # noqa: F401  (issue 22, [137])
    AdaLNLoRA,
    apply_fit_rope,
    fit_rope_angles,
    logit_normal_timesteps,
)
from jaxlib_methods.nn.easycontrol import ConditionLoRALinear, easycontrol_attention_mask  # noqa: F401  ([113])
from jaxlib_methods.nn.slimsam import (  # noqa: F401  (issue 22, [121])
    apply_channel_mask,
    channel_keep_mask,
    disturbed_taylor_importance,
    group_channel_importance,
    slimsam_distillation_loss,
)
from jaxlib_methods.nn.subspace_learners import (  # noqa: F401  (issue 22, [102])
    kmeans_assign,
    split_subspaces,
    subspace_margin_loss,
)
from jaxlib_methods.nn.unlearnable_clusters import (  # noqa: F401  (issue 22, [158])
    cluster_wise_perturbation,
    project_perturbation,
    unlearnable_cluster_loss,
)
from jaxlib_methods.nn.summary_embeddings import SummaryEmbeddings  # noqa: F401  (issue 22, [199])
# ---- theory3 (issue 21): compressed embeddings [122]
from jaxlib_methods.nn.compressed_embedding import HashEmbed, QREmbed, TTEmbed  # noqa: F401  (issue 21, [122])
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
# ---- layers1b (issue 18): FLoRA [161], MomentumSMoE [142], reversible MBConv [42], SGConv [204] ----
from jaxlib_methods.nn.flora import FLoRAConv, FLoRALinear, flora_delta, flora_num_params  # noqa: F401  ([161])
from jaxlib_methods.nn.momentum_smoe import (  # noqa: F401  (issue 18, [142])
    MomentumSMoE,
    load_balancing_loss,
    momentum_smoe_stack,
    smoe_layer,
    top_k_routing,
)
from jaxlib_methods.nn.reversible import (  # noqa: F401  (issue 18, [42])
    ReversibleMBConv,
    grad_temp_bytes,
    mbconv,
    reversible_mbconv_inverse,
    reversible_mbconv_stack,
)
# [204]; sgconv.fft_causal_conv is the one FFT causal convolution (nn.fft_causal_conv, S4D's view of it, wraps it)
from jaxlib_methods.nn.sgconv import SGConv, sgconv_kernel, sgconv_num_scales  # noqa: F401
# ---- layers2a (issue 20) ----
from jaxlib_methods.nn.compatible import (  # noqa: F401  (issue 20, [73] [61])
    FixedSimplex,
    FixedSimplexClassifier,
    OrthogonalTransform,
    compat_criteria,
    dsimplex_weights,
    orthogonal_from_skew,
    pad_features,
)
from jaxlib_methods.nn.hypernetwork import MIPHyperNet, mip_encode  # noqa: F401  (issue 20, [72])
from jaxlib_methods.nn.ssvi import SparseMask, SparseMeanFieldDense, ssvi_update_mask  # noqa: F401  (issue 20, [126])
from jaxlib_methods.nn.repquant import (LayerwiseReparam, LogSqrt2Codes, channelwise_to_layerwise_reparam,  # noqa: F401
                                        log_sqrt2_dequantize, log_sqrt2_matmul, log_sqrt2_quantize)  # (issue 20, [33])
# ---- app22 (issue 22) ----
from jaxlib_methods.nn.subspace_learners import SubspaceAttention  # noqa: F401  ([102])
from jaxlib_methods.nn.walloc import WaLLoCAutoencoder  # noqa: F401  ([211])
# ---- ly20 (issue 20: concept bottlenecks and sparse dictionaries) ----
from jaxlib_methods.nn.sparse_autoencoder import (  # noqa: F401  ([166] [20])
    SparseAutoencoder,
    dead_latents,
    feature_choice_activation,
    mutual_choice_activation,
    name_concepts,
    sae_loss,
    topk_activation,
)
from jaxlib_methods.nn.concept_bottleneck import (  # noqa: F401  ([17])
    PCBM,
    concept_activation_vectors,
    edit_concept,
    pcbm_concept_scores,
    pcbm_elastic_net,
)
from jaxlib_methods.nn.codebook import CodebookLayer, codebook_loss  # noqa: F401  ([35])
# ---- th17a (issue 17) ----
from jaxlib_methods.nn.patch_cnn import PatchCNN  # noqa: F401  ([41])
# ---- ls19b (issue 19) ----
from jaxlib_methods.nn.pair_gate import PairGate  # noqa: F401  ([116] Hydra)
# ---- ly18 (issue 18) ----
from jaxlib_methods.nn.momentum_smoe import capacity_keep_mask, expert_capacity  # noqa: F401  ([127] router capacity)
from jaxlib_methods.nn.widenet import WideNet, widenet_num_params  # noqa: F401  ([127])
from jaxlib_methods.nn.mc_smoe import (  # noqa: F401  ([154])
    expert_frequency,
    group_experts,
    lowrank_sparse_compress,
    merge_experts,
    merged_num_params,
    permute_align,
    permute_expert,
)
from jaxlib_methods.nn.pmod import (  # noqa: F401  ([190])
    MoDBlock,
    pmod_flops_fraction,
    prd_ratio,
    prd_token_counts,
    tanh_norm,
)
from jaxlib_methods.nn.matryoshka_kv import (  # noqa: F401  ([82])
    MatryoshkaKVAttention,
    cayley_orthogonal,
    matryoshka_attention,
    pca_basis,
)
# ---- mixer18 (issue 18: convolutional mixers of the LM) ----
from jaxlib_methods.nn.transformer import SGConvMixer  # noqa: F401  ([204])
# ---- ly18b (issue 18: the last four P2 layers) ----
from jaxlib_methods.nn.svfit import SVFitLinear, svfit_decompose, svfit_num_params, svfit_weight  # noqa: F401  ([139])
from jaxlib_methods.nn.stitching import SNNet, StitchingLayer, stitching_least_squares  # noqa: F401  ([149])
from jaxlib_methods.nn.learngene import (  # noqa: F401  ([150])
    LayerStack,
    ResidualMLPBlock,
    StageSharedStack,
    expand_learngene,
    learngene_num_params,
)
from jaxlib_methods.nn.hyperzzw import (  # noqa: F401  ([13])
    HyperKernelMLP,
    HyperZZW,
    TerminatorBlock,
    hyperzzw_conv,
    instance_standardize,
    kernel_coordinates,
)
# ---- ly20e (issue 20: continual, test-time and local learning, hypernetworks) ----
from jaxlib_methods.nn.gda_head import gda_ensemble_logits, gda_fit  # noqa: F401  ([128])
from jaxlib_methods.nn.local_learning import (  # noqa: F401  ([167] [169])
    AugLocalAuxiliary,
    EMAWeight,
    MomentumAuxiliary,
    auglocal_depths,
    auglocal_layer_indices,
    local_forward,
)
from jaxlib_methods.nn.ecotta import (  # noqa: F401  ([81])
    EcoTTAPart,
    ecotta_forward,
    ecotta_loss,
    self_distilled_regularization,
)
from jaxlib_methods.nn.lae import lae_ensemble  # noqa: F401  ([134])
from jaxlib_methods.nn.hypertab import FeatureMasks, HyperTab  # noqa: F401  ([125])
from jaxlib_methods.nn.slimmable import SlimmableLinear, cikd_loss, slimmable_width  # noqa: F401  ([90])
# ---- ly20c (issue 20: sparse / energy-based CBMs and information bottlenecks) ----
from jaxlib_methods.nn.sparse_cbm import (  # noqa: F401  ([1])
    ConceptBottleneckLayer,
    cbl_l1_loss,
    gumbel_softmax,
    gumbel_sparse_cbl_loss,
)
from jaxlib_methods.nn.ecbm import (  # noqa: F401  ([58])
    ECBM,
    concept_configurations,
    ecbm_conditionals,
    ecbm_joint_log_probs,
    ecbm_loss,
)
from jaxlib_methods.nn.dkvb import DKVBottleneck, dkvb_decode  # noqa: F401  ([5])
from jaxlib_methods.nn.vib_mask import VIBMask, vib_keep_mask, vib_prune_dense  # noqa: F401  ([16])
from jaxlib_methods.nn.entropy_bottleneck import EntropyBottleneck, entropic_student_loss, rate_bits  # noqa: F401  ([45])
from jaxlib_methods.nn.nested_dropout import (  # noqa: F401  ([21])
    NestedDropout,
    coteaching_loss,
    nested_dropout_mask,
    small_loss_selection,
)
# ---- ls19d (issue 19): CVIB [11]
from jaxlib_methods.nn.vib_mask import vib_mask_kl  # noqa: F401  ([11]; VIBMask is shared with [16] above)
# ---- ly20d (issue 20) ----
from jaxlib_methods.nn.probabilistic_circuit import (  # noqa: F401  ([205])
    ProbabilisticCircuit,
    arithmetic_decode,
    arithmetic_encode,
    pc_conditional_marginals,
    quantize_probability,
)
from jaxlib_methods.nn.rbf_classifier import RBFClassifier, certified_radius, rbf_margin_loss  # noqa: F401  ([191])
from jaxlib_methods.nn.dcdm import (  # noqa: F401  ([176])
    DCDMNet,
    dcdm_solve,
    poisson_2d_eigenvectors,
    poisson_2d_matvec,
    scale_invariant_residual_loss,
)
from jaxlib_methods.nn.ulsam import ULSAM, ulsam_num_params  # noqa: F401  ([156])
from jaxlib_methods.nn.unified_embedding import UnifiedEmbedding, per_feature_hash_embeddings  # noqa: F401  ([6])
# ---- ly20f (issue 20) ----
from jaxlib_methods.nn.optfs import OptFSGate, optfs_beta  # noqa: F401  ([160])
# ---- ly20g (issue 20) ----
from jaxlib_methods.nn.ftwt import FTWTConv, ftwt_mask_loss, ftwt_mask_target  # noqa: F401  ([65])
# ---- ly20h (issue 20) ----
from jaxlib_methods.nn.optfs import optfs_gamma  # noqa: F401  ([160])
