"""Test-session settings, applied before any test module imports jax.

XLA:CPU compiles at backend optimization level 1 in the tests (children started by the tests inherit it). Most unit
test time is compiling many small programs once each; level 1 compiles them faster without slowing what runs long.
Measured on the 2-core machine, quiet, single process (user CPU seconds):
  signal + heads + distillation + Hutchinson tests (compile-bound):  level 3 (default) 30.3, level 1 22.1
  isogclr + cs_ib mutation tests (run-bound, hundreds of steps):     level 3 22.0,          level 1 22.4
  (level 0 compiles faster still but ran the mutation tests 3.4x slower: 75.7.)
Numbers: with XLA's default (fusion) emitters, level 1 gave bitwise the numbers of level 3 (layers_wave2_local's
EcoTTA part, 2026-12-02); with the legacy emitters the tests also select (below), levels 1 and 3 differ in the last
bits, and so do the legacy and fusion emitters at one level; a chaotic run amplifies it (that part's entropy-only
arm: mean last-20% accuracy 0.77 default, 0.45 legacy emitters, 0.46 legacy + level 1; see its docstring). So a test
judges a TINY run under the tests' flags; experiments and benchmarks outside the tests compile with XLA's defaults.
A level the user set in XLA_FLAGS is kept.
"""

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from importlib import metadata

import pytest

_FLAG = "--xla_backend_optimization_level"
_USER_SET_LEVEL = _FLAG in os.environ.get("XLA_FLAGS", "")
if not _USER_SET_LEVEL:
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {_FLAG}=1").strip()


@pytest.fixture
def load_benchmark():
  """A loader for the scripts in benchmarks/ (not a package): `load_benchmark("attention")` imports
  benchmarks/attention.py as a module, so a test can run the script's `main` at a small size."""
  def load(name):
    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
  return load


@pytest.fixture
def fast_xla(monkeypatch):
  """Child processes (and notebook kernels) started in this test compile at XLA backend optimization level 0: for
  compile-bound children it is about 2.5x less compile time on CPU, and every configuration compared in a test is
  compiled the same way. Appended to XLA_FLAGS (XLA takes a flag's last value); a level the user set is kept."""
  if not _USER_SET_LEVEL:
    monkeypatch.setenv("XLA_FLAGS", os.environ["XLA_FLAGS"] + f" {_FLAG}=0")


def _jaxlib_minor() -> tuple[int, int] | None:
  try:
    return tuple(int(p) for p in metadata.version("jaxlib").split(".")[:2])
  except (metadata.PackageNotFoundError, ValueError):
    return None


# XLA:CPU's legacy elemental emitters instead of its MLIR fusion emitters: about 30% less compile time per program
# (one process, small jit: 0.13 -> 0.09 s; a new-shape jax.random.normal: 0.30 -> 0.19 s), and the suite is mostly
# compiling. tests/losses + tests/analysis (-n 2): 170 -> 131 s wall; tests/experiments + tests/kernels: 195 -> 162 s,
# every test passing either way and no run-bound test measurably slower. Only for the jaxlib versions whose
# libjax_common.so has the flag (checked 0.10.2 and 0.12.0; XLA aborts on an unknown flag), and only where no GPU or
# TPU plugin is installed: the CUDA plugin parses XLA_FLAGS itself and does not know the CPU flag (on one H200 with
# jax-cuda13-plugin 0.11.2 every test process aborted at its first jax call, "Unknown flag in XLA_FLAGS:
# --xla_cpu_use_fusion_emitters=false", 2026-12-04). A value the user set is kept.
_EMITTERS = "--xla_cpu_use_fusion_emitters"
_ACCELERATOR_PLUGINS = ("jax-cuda", "jax_cuda", "jax-rocm", "jax_rocm", "libtpu")


def _accelerator_plugin() -> str | None:
  """The installed jax GPU/TPU plugin's distribution name, if any."""
  for dist in metadata.distributions():
    name = (dist.metadata["Name"] or "").lower()
    if name.startswith(_ACCELERATOR_PLUGINS):
      return name
  return None


if (_EMITTERS not in os.environ.get("XLA_FLAGS", "") and (0, 10) <= (_jaxlib_minor() or (0, 0)) < (0, 13)
    and _accelerator_plugin() is None):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {_EMITTERS}=false").strip()

# float32 matrix products in float32 on every backend (JAX's default is TF32 on NVIDIA GPUs and one bfloat16 pass on
# TPUs): the tests' tolerances against float64 transcriptions are set for float32, as on the CPU, and `python -m
# experiments` runs at the same precision by default (`--matmul-precision`). Tests that set a precision keep it; so
# does a value the user set.
os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "float32")


@pytest.fixture
def jax_default_matmul_precision():
  """JAX's own default matmul precision (not the suite's float32, above) for the test: the kernel lowering and
  resource tests check what a user's program compiles to, where a Pallas dot at precision None/"default" follows
  `jax.default_matmul_precision` (an fp32 Triton dot is TF32 by default and IEEE under "float32")."""
  import jax
  with jax.default_matmul_precision(None):
    yield

# JAX's persistent compilation cache, one fresh directory per test session: the xdist workers and the CLI children
# the tests start inherit it (so none writes to the user's ~/.cache/jaxlib-methods/xla, the CLI's default), and the
# process that made it removes it at exit. A mutation test's mutated run loads the programs its baseline run
# compiled (each run builds new closures, so jit's in-memory cache misses): the ci_extra mutation runs of
# layers_wave1_moe and layers_wave2_local took 287 s without it and 193 s with it (-n 2, 2026-12-02). A directory
# the user set in JAX_COMPILATION_CACHE_DIR is kept (empty: no cache).
_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
if _CACHE_ENV not in os.environ:
  os.environ[_CACHE_ENV] = tempfile.mkdtemp(prefix="jaxlib-methods-tests-xla-cache-")
  atexit.register(shutil.rmtree, os.environ[_CACHE_ENV], True)
  if "jax" in sys.modules:  # imported before this file (a plugin): jax read its environment already
    sys.modules["jax"].config.update("jax_compilation_cache_dir", os.environ[_CACHE_ENV])


# `make test-ci-extra`, which .ci/run runs after the default suite, selects `-m ci_extra`: the first mutation of each
# MUTATION_TEST_SLOW experiment (marked in tests/experiments/test_mutations.py) and, marked here, every slow case of
# the optimizer contract suite, so that every transform passes every contract in CI (215 cases, 240 s on 2 cores);
# and every slow probe of the hostile-input tables (docs/conventions.md section 5: NaN/Inf propagation, jit, valid
# outputs; 1,244 cases with the default ones, 143 s with -n 2 on 2 cores, 2026-12-04). Those probes ran only under
# `pytest -m slow` until then, and 4 of them had failed unseen since the 0 log 0 / zero-distance guards of f31f22f
# (alignment_loss and marginal_entropy_loss gave 0 for a NaN input).
_CI_EXTRA_FILES = ("tests/optim/test_conformance.py", "tests/reliability/test_api_losses.py",
                   "tests/reliability/test_api_analysis.py", "tests/reliability/test_api_kernels.py")

# End-to-end runs moved out of the default suite into `ci_extra` (marked slow and ci_extra here, so `make test`
# deselects them and `.ci/run` still runs every one of them): `make test` took 984 s at c8eba0b on the 2-core machine
# (2026-12-01, `pytest -n 2 --dist worksteal --durations=0`), over the 15-minute budget. The entries are the longest
# whole runs (notebooks, subprocess launches and kills, docs and wheel builds, 8-device meshes, TINY experiment runs,
# interpreted TPU kernels at a second size, every experiment's config through the CLI); the seconds are each one's
# call time in that run. With all but the config-table entry moved, `make test` took 764.5 s (3,711 passed) on the
# same machine. The `cuda`/`tpu` lowering tests and the kernel resource checks stay in the default suite.
_CI_EXTRA_TESTS = {
    "tests/test_notebooks.py::test_notebook_executes": 127.3,   # all six notebooks
    "tests/runner/test_distributed.py::test_two_processes_equal_one_and_the_checkpoint_restores_in_one": 48.1,
    "tests/reliability/test_cli_config_table.py::test_config_fields_through_cli": 42.0,   # 114 experiments' configs
    "tests/test_docs.py::test_docs_build_strict": 34.1,
    "tests/runner/test_resume_and_sharding.py::test_sigkill_then_rerun_is_bitwise_identical": 32.1,
    "tests/reliability/test_fault_injection.py::test_ctrl_c_mid_run_then_rerun_is_identical": 27.0,
    "tests/runner/test_sharding_multidevice.py::test_fsdp_and_tensor_meshes_equal_one_device_and_shard_the_bytes": 21.6,
    "tests/optim/test_conformance.py::test_explicit_and_auto_sharding_on_8_devices": 21.1,
    "tests/runner/test_seed_parallel.py::test_seed_parallel_run_equals_one_device": 19.5,
    "tests/runner/test_resume_and_sharding.py::test_data_parallel_mesh_of_8_matches_one_device": 17.3,
    "tests/nn/test_mlp.py::test_coordinate_check_mup_flat_sp_grows": 16.1,
    "tests/test_packaging.py::test_wheel_and_sdist_build_and_the_wheel_installs_and_imports": 13.8,
    "tests/experiments/test_lion_k_constrained.py::test_same_seed_same_numbers_other_seed_other_numbers": 11.8,
    "tests/kernels/test_flash_attention_tpu.py::test_tpu_kernel_gqa_causal_window_segments_softcap_ragged": 11.0,
    "tests/kernels/test_gla_tpu.py::test_tpu_segments_initial_state_scale": 10.6,
    "tests/experiments/test_issue8_experiments.py::test_grokking_numerical_stability_tiny": 10.0,
    "tests/kernels/test_flash_attention_benchmark.py::test_tiny_run_passes_its_tolerance_checks": 9.7,
    "tests/reliability/test_fault_injection.py::test_a_concurrent_run_in_the_same_workdir_is_refused": 9.3,
    "tests/reliability/test_checkpoint_damage.py::test_damaged_checkpoint_falls_back_and_resumes_identically": 9.3,
    "tests/nn/test_transformer.py::test_training_approaches_the_entropy_rate": 9.3,
    "tests/optim/test_masks.py::test_galore_trains_the_lm_through_nnx_optimizer_with_the_paper_mask": 8.9,
    "tests/experiments/test_issue8_experiments.py::test_dae_score_tiny": 8.2,
    # `make test` took 852 s in the fresh-clone .ci/run of 53304f1 (2026-12-03): the next five longest non-kernel
    # calls of that run moved too, for margin under the 15-minute budget.
    "tests/test_norms.py::test_zero_vectors_give_finite_gradients_in_every_loss_that_normalises": 17.5,
    "tests/analysis/test_intrinsic_dimension.py::test_half_precision_projections_keep_unit_columns": 14.6,
    "tests/nn/test_reversible.py::test_inverse_gradients_and_numpy_forward": 10.9,
    "tests/data/test_synthetic.py::test_bfloat16_generators_draw_gaussian_noise_with_tails": 9.8,
    "tests/analysis/test_fastfood_benchmark.py::test_small_run_prints_a_row_per_method": 9.1,
    # `make test` took 981 s on the 2-core AMD EPYC of 2026-12-04 (`pytest -n 2 --dist worksteal --durations=0`), with
    # no test over 21 s: every unparametrized test of 4 s or more outside the kernel lowering/resource tests, the
    # optimizer contract suite, the hostile-input tables and the PyTorch parity tests moved (355 s of test time).
    "tests/nn/test_gla.py::test_pallas_interpret_matches_recurrence_with_grads": 12.2,
    "tests/nn/test_momentum_smoe.py::test_module_training_step_bf16_and_bad_inputs": 10.4,
    "tests/analysis/test_information.py::test_binned_mi_nan_activations_and_empty_ranges": 10.0,
    "tests/runner/test_cli.py::test_list_names_the_experiment": 9.8,
    "tests/nn/test_hypernetwork.py::test_mip_exact": 8.6,
    "tests/nn/test_ssvi.py::test_ssvi_layer_nonzeros_constant_kl_and_forward": 7.9,
    "tests/runner/test_cli.py::test_failed_claim_exits_1_and_prints_table": 7.7,
    "tests/nn/test_ssm.py::test_transformer_s4d_mixer": 7.3,
    "tests/analysis/test_generative_classifiers.py::test_logistic_regression_matches_scipy_and_is_stationary": 7.2,
    "tests/experiments/test_mochi_hard_negatives.py::test_no_synthetic_negatives_makes_the_arms_identical": 7.2,
    "tests/sampling/test_noise_policy.py::test_reinforce_gradient_is_unbiased": 7.0,
    "tests/experiments/test_npo_unlearning.py::test_vmapped_seeds_with_a_stop_mask_equal_a_loop_that_breaks_per_seed": 6.8,
    "tests/losses/test_stablemax.py::test_stablemax_does_not_collapse_where_softmax_does": 6.6,
    "tests/nn/test_attention.py::test_pallas_interpret_matches_xla_and_trains": 6.4,
    "tests/analysis/test_transductive_clustering.py::test_offset_features_keep_their_precision": 6.3,
    "tests/optim/test_co2.py::test_sharded_co2_matches_numpy_and_has_the_collectives_of_the_paper": 6.3,
    "tests/losses/test_contrastive.py::test_half_precision_identical_pairs_and_tiny_temperature_match_float32": 6.3,
    "tests/data/test_gpicl.py::test_gpicl_tasks_are_exact_projections_and_permutations": 6.3,
    "tests/analysis/test_matrix_completion.py::test_degenerate_inputs_stay_finite_and_correct": 6.2,
    "tests/analysis/test_information.py::test_kde_is_shift_invariant_far_from_the_origin": 6.2,
    "tests/nn/test_stitching.py::test_least_squares_stitch_and_anchor_end_points": 5.9,
    "tests/nn/test_dcdm.py::test_dcdm_identity_is_cg_and_poisson_operator": 5.9,
    "tests/analysis/test_information.py::test_binned_estimators_exact_cases": 5.9,
    "tests/nn/test_widenet.py::test_forward_param_count_and_capacity_vs_numpy": 5.7,
    "tests/nn/test_transformer.py::test_lm_is_causal_and_segment_ids_isolate": 5.7,
    "tests/nn/test_momentum_smoe.py::test_stack_special_case_variants_and_balance_loss_vs_numpy": 5.6,
    "tests/nn/test_ftwt.py::test_ftwt_conv_layer_contract": 5.6,
    "tests/experiments/test_frugal_vs_galore.py::test_svd_calls_reads_q_galores_state_and_never_lazy_equals_galores_schedule": 5.6,
    "tests/reliability/test_fault_injection.py::test_file_size_limit_is_exit_4_in_one_line": 5.5,
    "tests/sampling/test_speculative.py::test_speculative_accept_takes_bfloat16_softmax_probabilities": 5.5,
    "tests/sampling/test_speculative.py::test_speculative_verify_sequences_follow_the_target_markov_chain": 5.3,
    "tests/data/test_synthetic.py::test_low_rank_matrix_factors_are_haar_distributed": 5.3,
    "tests/nn/test_matryoshka_kv.py::test_exact_full_rank_truncation_cayley_and_pca_vs_numpy": 5.3,
    "tests/analysis/test_intrinsic_dimension.py::test_fastfood_float32_at_mnist_scale_matches_float64": 5.2,
    "tests/losses/test_conjugate_prior.py::test_closed_form_matches_the_definition_and_the_conjugate_optimum": 5.2,
    "tests/analysis/test_information.py::test_kde_invalid_labels_and_noise_variance": 5.1,
    "tests/nn/test_local_learning.py::test_local_gradients_are_isolated_and_man_ema": 5.1,
    "tests/nn/test_sparse_autoencoder.py::test_sae_forward_matches_numpy_and_loss_and_naming": 5.0,
    "tests/nn/test_schrodinger.py::test_potentials_and_plan_match_quadrature": 5.0,
    "tests/test_norms.py::test_layers_normalising_features_have_finite_gradients_at_zero": 4.9,
    "tests/nn/test_flora.py::test_flora_linear_equals_flax_lora_and_counts": 4.9,
    "tests/experiments/test_bias_loss_low_info.py::test_bias_slot_ce_trains_the_same_model_twice": 4.8,
    "tests/losses/test_stablemax.py::test_stablemax_ce_class_where_keeps_excluded_classes_out_of_the_gradient": 4.8,
    "tests/experiments/test_layers_exact_identities.py::test_repquant_part_quantisers_match_numpy_and_the_no_fold_mutation_breaks_the_identity": 4.8,
    "tests/nn/test_pmod.py::test_mod_block_prd_and_flops_vs_numpy": 4.7,
    "tests/nn/test_ftwt.py::test_ftwt_exact": 4.7,
    "tests/losses/test_whitening.py::test_sgw_bad_input_and_half": 4.7,
    "tests/test_sketching.py::test_linf_guarantee_on_many_draws": 4.6,
    "tests/losses/test_contrastive.py::test_isogclr_rejects_temperatures_whose_exp_overflows_the_state": 4.6,
    "tests/nn/test_transformer.py::test_z_loss_and_next_token_loss_closed_form": 4.4,
    "tests/nn/test_gla.py::test_tpu_default_dispatch_runs_the_mosaic_kernels": 4.4,
    "tests/nn/test_matryoshka_kv.py::test_causal_decode_with_fewer_queries_aligns_bottom_right": 4.4,
    "tests/nn/test_ecbm.py::test_ecbm_probabilities_match_brute_force_enumeration": 4.4,
    "tests/losses/test_masked_modeling.py::test_easy_to_hard_mask_counts_top_k_and_random_rest": 4.4,
    "tests/nn/test_momentum_smoe.py::test_adam_variant_in_fp16_is_finite_and_close_to_fp32": 4.4,
    "tests/reliability/test_cli_workdir.py::test_the_cli_entry_point_writes_and_reuses_the_compilation_cache": 4.3,
    "tests/nn/test_transformer.py::test_qk_layernorm_bounds_attention_logits": 4.2,
    "tests/nn/test_vib_mask.py::test_vib_mask_kl_gradient_budget_and_pruned_equals_masked": 4.2,
    "tests/test_attacks.py::test_adaea_pieces_match_numpy_and_reduce_to_ensemble_ifgsm": 4.1,
    "tests/nn/test_sgconv.py::test_module_jit_bf16_and_bad_inputs": 4.1,
    "tests/optim/test_q_galore.py::test_lazy_refresh_does_fewer_svds_at_equal_loss": 4.0,
}


@pytest.hookimpl(tryfirst=True)   # before pytest's own -m selection
def pytest_collection_modifyitems(config, items):
  for item in items:
    if item.get_closest_marker("slow") and item.nodeid.split("::")[0] in _CI_EXTRA_FILES:
      item.add_marker(pytest.mark.ci_extra)
    elif item.nodeid.split("[")[0] in _CI_EXTRA_TESTS:
      item.add_marker(pytest.mark.slow)
      item.add_marker(pytest.mark.ci_extra)
