"""Every experiment takes `mesh.*`: the independent runs an experiment vmaps (seeds, paired method arms) are split over
the mesh's devices with `runner.shard_leading`, and the results equal the one-device run's.

The multi-device runs are real (a child process with simulated CPU devices, `distributed.call_with_cpu_devices`):
the default run checks one cheap experiment and the errors; every experiment with a mesh runs under `-m slow`.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.runner import MeshConfig, UsageError, distributed, make_mesh, shard_leading
from jaxlib_methods.runner import experiment as exp_lib
from jaxlib_methods.runner.sharding import ShardingError

EXPERIMENTS = exp_lib.discover()
# The child runs in a process of its own: a module that imports only the experiments it runs (importing this one
# would discover, i.e. import, every experiment first: ~2-4 s of the child's time).
CHILD = "tests.runner._seed_parallel_child:child"


def _has_mesh(e) -> bool:
  return any(f.name == "mesh" and f.type in (MeshConfig, "MeshConfig") for f in dataclasses.fields(e.presets["cpu"]))


MESHED = sorted(n for n, e in EXPERIMENTS.items() if _has_mesh(e))


# Deliberate exceptions, each with its reason (docs/scaling.md, "Which experiments take mesh.*"). An experiment listed
# here that has a mesh fails the test too: the list only shrinks.
WITHOUT_MESH: dict[str, str] = {}


def test_every_experiment_takes_a_mesh():
  without = {n for n in EXPERIMENTS if n not in MESHED}
  assert without == set(WITHOUT_MESH) & set(EXPERIMENTS), sorted(without ^ (set(WITHOUT_MESH) & set(EXPERIMENTS)))
  # docs/scaling.md's table says what each one splits and how it resumes: every experiment with a mesh has a row
  text = (pathlib.Path(__file__).parents[2] / "docs" / "scaling.md").read_text()
  section = text[text.index("## Which experiments take mesh.*"):text.index("## Simulated devices on a CPU")]
  rows = {n for line in re.findall(r"^\| (`.+?) \|", section, re.M) for n in re.findall(r"`(\w+)`", line)}
  assert set(MESHED) <= rows, sorted(set(MESHED) - rows)


@pytest.mark.parametrize("name", MESHED)
def test_mesh_overrides_validate(name):
  e = EXPERIMENTS[name]
  config = e.config("cpu", ("mesh.data=0",))
  assert config.mesh == MeshConfig(data=0)
  with pytest.raises(UsageError, match="mesh"):
    e.config("cpu", ("mesh.data=-1",))


def test_shard_leading_on_one_device_changes_nothing():
  mesh = make_mesh(MeshConfig())
  keys = jnp.stack([jax.random.key(i) for i in range(3)])
  tree = shard_leading({"k": keys, "x": np.arange(6.0).reshape(3, 2)}, mesh)
  assert tree["x"].sharding.mesh.size == 1
  np.testing.assert_array_equal(np.asarray(tree["x"]), np.arange(6.0).reshape(3, 2))
  np.testing.assert_array_equal(jax.random.key_data(tree["k"]), jax.random.key_data(keys))
  with pytest.raises(ShardingError, match="scalar"):
    shard_leading({"s": 1.0}, mesh)
  assert issubclass(ShardingError, UsageError)   # the CLI reports it in one line, exit status 2


# A split changes how XLA fuses and vectorises each device's share, so float32 results are not bitwise equal, and a
# training run can amplify the difference. These experiments' results differ by more than 1e-4 relative at the TINY
# size (measured; docs/scaling.md); for them the test requires the same claim verdicts and reports the difference.
AMPLIFIED = {
    "dae_score": "1.4e-4: a score-matching error curve near 0",
    "frugal_vs_galore": "1.3e-4: the standard error of a paired difference",
    "lr_transfer_sharpness": "7.9e-3: a final loss of the learning-rate sweep",
    "small_scale_proxies": "0.42: the max attention logit of the highest-LR qk-LN run (low-LR runs agree to 1e-7)",
    "latent_consistency": "4% of SW2 in the Cauchy-loss run (the pseudo-Huber run agrees to 2e-6)",
    "gaqat_domain_shift": "2.2 (relative) on a paired accuracy difference of ~0.002: LSQ's rounding turns float32 "
                          "reassociation into a few flipped test predictions (the verdicts agree)",
    "mixed_barlow_twins": "0.72 on the probe gain's interval lower end, 0.21 on its mean: differences of two "
                          "accuracies after 4000 float32 steps",
    "temperature_scaling_overlap": "0.12 on Mixup's post-TS ECE: with one Mixup weight per batch (issue 15) the "
                                   "Mixup models differ by ~1e-6 after 50 steps (ERM's agree bitwise), and 800 "
                                   "interpolating steps amplify it (the verdicts agree)",
    "mlc_clustering": "4000 (relative) on an entry of seed 0's Gram matrix near 0, 3.4 on the NMI gain's interval "
                      "lower end: rounding moves Z and one seed's k-means labels (2026-12-01; the verdicts agree)",
    "mochi_hard_negatives": "1.4: the probe-accuracy CI's lower end (MoCHi's top-k negatives amplify float32 "
                            "reassociation; the MoCo arms agree to 4e-7)",
    "apg_guidance": "3.6% of apg_as_cfg_max_abs_diff, itself float32 rounding (1.2e-5) between two equal samplers",
    "grassmann_variance": "9% of k1_abs_cos_error, itself float32 rounding (3.2e-7) of |cos| logits",
    "npo_unlearning": "6.7% of a straight line's RMSE fitted to GA's diverging forget log-likelihood",
    "layers_exact_identities": "4.2% of orth_err, itself float32 rounding: max |B^T B - I| of a Cayley transform",
    "tesla_mtt": "0.43% of TESLA's relative gradient error against autodiff, itself float32 rounding (2e-7)",
    "bottlenecks_wave2": "0.2% of the [45] students' distortion (bits 5e-4, entropy 4e-4): since 2026-12-04 TINY "
                         "trains them the preset's 1500 adam steps, which amplify float32 reassociation (the "
                         "verdicts agree)",
    "grokking_numerical_stability": "0.44% of the orthograd run's final test accuracy: another float32 summation "
                                    "order of the padded full batch, the sensitivity the paper itself reports",
    "nm_gradient_flow": "0.91 of a final test MSE since it trains through runner.train (2.7e-6 after 50 steps): the "
                        "N:M mask's top-1 choice turns float32 rounding into another mask (the verdicts agree)",
    "hard_distill": "2.5 (relative) on a learnt shift probability, 0.035 on one seed's HARD shifted-input agreement "
                    "(the plain and random arms are bitwise equal): the adversarial augmentor amplifies float32 "
                    "reassociation (the verdicts agree)",
    # measured 2026-12-01 (the child's worst_keys; 2 or 3 simulated devices as the test picks them), verdicts agree:
    "adaptive_information_plane": "0.037 on the ReLU run's adaptive-binning fall of I(X;T) (bits), 0.012 on an MI "
                                  "curve: a binned estimate is discontinuous in the activations (a few examples "
                                  "change bin)",
    "information_plane": "0.025 on the ReLU run's adaptive-binning fall of I(X;T): binned MI, as above",
    "analysis_wave3c": "0.80 on [195]'s group swing correlation and 0.56 on its top-k group precision (GD at the edge "
                       "of stability; those claims fail on both meshes), 0.053 on [19]'s binned I(X;Z|Y)",
    "bd_kd_online": "0.48 on the upper end of a paired ECE difference's interval, 0.015 on one arm's ECE (binned "
                    "calibration of trained students)",
    "consistency_toy": "1.1% of the squared-L2 run's sample distance, 0.27% of iCT's, after 400 training steps (8 "
                       "of 11 results within 1e-4)",
    "contrastive_temperature": "2.8e-4 on the uniformity gap, a difference of two uniformities after 200 adam "
                               "steps (9 of 10 results within 1e-4)",
    "contrastive_wave2_p2": "7.9e-3 on Hydra's ungated margin, 5.2e-3 on PRD's task accuracy (three tasks of "
                            "sequential training)",
    "cs_ib_regression": "1.2% of the CS-IB arm's test-RMSE curve, 0.76% of its final test RMSE (500 adam steps "
                        "through a kernel MI estimate; the MSE arm within 1e-4)",
    "diffusion_subspace_phase": "0.18 on the median subspace error at N = 24, 0.056 at N = 12: points of the phase "
                                "transition, where a run either recovers the subspace or not",
    "robust_recovery_subgm": "1.9% of a point of the median error curve, 0.16% of the final median error (the "
                             "subgradient steps are sign(residual) steps)",
    "layers_wave1_moe": "0.39 on MoD's paired raw-minus-TanhNorm test-CE difference, 0.66% of a test CE",
    "tcm_threshold_consistency": "0.63 on the lower end of the paired eps-OPIS interval, 0.20 on recall@1's upper "
                                 "end: interval ends of differences between trained embeddings' metrics",
    "layers_wave1_p2b": "5.4% of SN-Net's accuracy after the stitching fine-tune, 2.0% before it",
    "losses_wave2_p6": "0.32 on the uniformity gain's interval lower end (2 seeds at TINY; per-seed metrics ~1e-3, "
                       "amplified through the eigh of SGW whitening in the training loop)",
    "compositional_nll": "3.8e-4 on the upper end of claim 4's paired interval of log10(late error, wide noise / "
                         "unit noise): logs of late-training float32 errors (measured 2026-12-04, after claim 4 was "
                         "added; the verdicts agree)",
    "layers_wave2_local": "0.066 on the MAN arm's train accuracy under pytest's XLA flags, 0.016 on EcoTTA's "
                          "entropy-only accuracy without them (each mesh is deterministic run to run: two runs "
                          "agree bitwise on 1 and on 3 devices)",
}


# Claims whose TINY verdict the mesh's float32 reassociation may flip, by experiment (claim-name prefixes): each sits
# on its tolerance at TINY, and its experiment is in AMPLIFIED. Seen on a 2-core AMD EPYC (2026-12-02), where these
# and only these flipped between 1 and 2 devices (deterministically); the same claims flip between CPUs at the cpu
# preset (docs/measurements/epyc-2026-12-02). Every other claim's verdict must still agree.
VERDICT_MAY_FLIP = {
    "small_scale_proxies": ("z-loss pulls log Z toward 0 at the highest LR",),
    "tcm_threshold_consistency": ("eps-OPIS on unseen classes",),
    "mlc_clustering": ("ACC(MLC) - ACC(k-means on the same features)",),   # 2 seeds at TINY
}


def _check(report: dict, names, devices: int) -> None:
  assert report["devices"] == devices
  assert report["out_devices"] == devices and report["out_shard_rows"] == 2   # each device computed its 2 runs
  assert report["error"] and "cannot be split evenly" in report["error"], report["error"]
  for name in names:
    r = report[name]
    if not r["same_verdicts"]:
      allowed = VERDICT_MAY_FLIP.get(name, ())
      assert r["flipped"] and all(c.startswith(allowed) for c in r["flipped"]), (name, r)
      print(f"{name}: verdict flipped on {devices} devices (allowed, on its tolerance): {r['flipped']}")
    if name in AMPLIFIED:
      print(f"{name}: max relative difference {r['max_rel_diff']:.3g} (known: {AMPLIFIED[name]})")
    else:
      assert r["max_rel_diff"] <= 1e-4, (name, r)   # float32 reductions may reassociate across devices


def test_seed_parallel_run_equals_one_device():
  # loss_reweighting's TINY run with 200 of its 600 SGD steps (8 runs, 4 seeds x 2 arms, split over 2 devices): how
  # the runs are split does not depend on their length, and the two meshes' results are bitwise equal at 100, 200 and
  # 600 steps (measured).
  names = ("loss_reweighting",)
  report = distributed.call_with_cpu_devices(CHILD, {"experiments": names,
                                                     "overrides": {"loss_reweighting": ("steps=200",)}},
                                             devices=2, timeout_s=400)
  _check(report, names, 2)


# Experiments whose mesh splits something other than the seeds: the config field that counts what is split.
SPLIT_FIELD = {"dae_score": "sigmas", "grokking_lazy_to_rich": "alphas", "lr_transfer_sharpness": "num_lrs",
               "temperature_scaling_overlap": "noises", "transductive_clustering": "episodes",
               "apg_guidance": "num_classes", "generative_vs_discriminative": "repeats", "altmin_completion": "n",
               "lightsb_gaussian": "samples", "comp_sum_bounds": "samples", "lantern_speculative": "contexts",
               # not a config field: the number of arms each seed vmaps and splits
               "mixup_feature_learning": len(EXPERIMENTS["mixup_feature_learning"].module.ARMS)}


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in MESHED if n not in ("lion_k_constrained", "lm_scaleout", "co2")])
def test_every_meshed_experiment_equals_one_device(name):
  e = EXPERIMENTS[name]
  cfg = e.config("cpu", tuple(getattr(e.module, "TINY", ())))
  field = SPLIT_FIELD.get(name) or next((f for f in ("num_seeds", "seeds") if hasattr(cfg, f)), None)
  runs = 2 if field is None else field if isinstance(field, int) else getattr(cfg, field)
  runs = len(runs) if isinstance(runs, tuple) else runs
  devices = next((d for d in (2, 3, 5) if runs % d == 0), runs)   # a device count that divides the seeds
  report = distributed.call_with_cpu_devices(CHILD, {"experiments": [name]},
                                             devices=devices, timeout_s=900)
  _check(report, [name], devices)


def test_verdict_flips_are_allowed_only_where_the_amplification_is_known():
  assert set(VERDICT_MAY_FLIP) <= set(AMPLIFIED)
  assert all(prefixes and all(isinstance(p, str) and p for p in prefixes) for prefixes in VERDICT_MAY_FLIP.values())
