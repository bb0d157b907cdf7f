"""Hostile-input API table for every public function of `jaxlib_methods.analysis` (issue 14; rules:
docs/conventions.md). Same machinery as tests/reliability/test_api_losses.py (`jaxlib_methods.testing.api_cases`).

The calibration functions take LOGITS (one convention with `fit_temperature`); probabilities passed by mistake give
a UserWarning, which the table checks too.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import analysis
from jaxlib_methods.analysis import attention_logits, calibration, eigenlearning, embedding, ntk, sharpness
from jaxlib_methods.analysis import hutchinson, matrix_completion
from jaxlib_methods.testing import ApiSpec, api_case_params, api_cases, api_counts_report, run_api_case

MODULES = (attention_logits, calibration, eigenlearning, embedding, ntk, sharpness, hutchinson, matrix_completion)

_rng = np.random.default_rng(1)


def f(*shape, scale=1.0):
  return (_rng.normal(size=shape) * scale).astype(np.float32)


def unit(*shape):
  x = _rng.normal(size=shape)
  return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def put(x, index, value):
  """A copy of the NumPy array x with x[index] = value (the table's data stay NumPy: nothing compiles at import)."""
  y = np.array(x)
  y[index] = value
  return y


N, K = 6, 3
LOGITS = f(N, K, scale=2.0)
LABELS = np.array([0, 2, 1, 0, 1, 2], np.int32)
CAL = dict(logits=LOGITS, labels=LABELS)
CAL_EXTRA = (("where:float", {"where": np.ones(N)}, "TypeError", "where"),
             ("where:all-False", {"where": np.zeros(N, bool)}, "ValueError", "where"),
             ("where:all-False:jit", {"where": np.zeros(N, bool)}, "nan", "", ("where",)),
             ("labels:shape", {"labels": LABELS[:-1]}, "ValueError", "labels"),
             ("masked-label-unchecked", {"labels": put(LABELS, (0), -100), "where": np.arange(N) > 0}, "ok", ""))
PARAMS = {"w": f(3, 2), "b": f(2)}


def _apply(params, x):
  return jnp.tanh(x @ params["w"] + params["b"])[:, 0]


def _loss(params):
  return jnp.sum(jnp.tanh(params["w"]) ** 2) + jnp.sum(params["b"] ** 4)


SPECS = [
    ApiSpec(attention_logits.max_attention_logit, {"q": f(2, 3, 2, 4), "k": f(2, 3, 2, 4)}, floats=("q", "k"),
            batch=("q", "k"), empty="error", extra=(
                ("causal:T!=S", {"k": f(2, 4, 2, 4)}, "ValueError", "T == S"),
                ("scale=0", {"scale": 0.0}, "ValueError", "scale"))),
    ApiSpec(calibration.expected_calibration_error, CAL, floats=("logits",), labels={"labels": K},
            batch=("logits", "labels"), empty="error", extra=CAL_EXTRA + (
                ("n_bins=0", {"n_bins": 0}, "ValueError", "n_bins"),
                ("n_bins=2.5", {"n_bins": 2.5}, "TypeError", "n_bins"),
                ("logits:rank3", {"logits": LOGITS[None]}, "ValueError", "logits"))),
    ApiSpec(calibration.temperature_nll, dict(CAL, temperature=1.5), floats=("logits",), labels={"labels": K},
            batch=("logits", "labels"), empty="error", extra=CAL_EXTRA + (
                ("temperature=0", {"temperature": 0.0}, "ValueError", "temperature"),
                ("temperature=NaN", {"temperature": float("nan")}, "ValueError", "temperature"),
                ("temperature<0:jit", {"temperature": np.float32(-1.0)}, "nan", "", ("temperature",)))),
    ApiSpec(calibration.fit_temperature, CAL, floats=("logits",), labels={"labels": K}, batch=("logits", "labels"),
            empty="error", jit_grad=False, extra=CAL_EXTRA + (
                ("log_t_range:decreasing", {"log_t_range": (1.0, -1.0)}, "ValueError", "log_t_range"),
                ("num_iters=0", {"num_iters": 0}, "ValueError", "num_iters"))),
    ApiSpec(calibration.brier_score, CAL, floats=("logits",), labels={"labels": K}, batch=("logits", "labels"),
            empty="error", extra=CAL_EXTRA),
    ApiSpec(eigenlearning.eigenlearning_kappa, {"eigenvalues": np.array([1.0, 0.5, 0.25, 0.1]), "n": 3,
                                                "ridge": 0.01}, extra=(
        ("eigenvalues:NaN", {"eigenvalues": np.array([1.0, np.nan])}, "ValueError", "eigenvalues"),
        ("eigenvalues:+Inf", {"eigenvalues": np.array([1.0, np.inf])}, "ValueError", "eigenvalues"),
        ("eigenvalues<0", {"eigenvalues": np.array([1.0, -0.5])}, "ValueError", "eigenvalues"),
        ("eigenvalues:rank2", {"eigenvalues": np.ones((2, 2))}, "ValueError", "eigenvalues"),
        ("eigenvalues:bool", {"eigenvalues": np.array([True, False])}, "TypeError", "eigenvalues"),
        ("n=0", {"n": 0}, "ValueError", "n"),
        ("n=2.5", {"n": 2.5}, "TypeError", "n"),
        ("ridge<0", {"ridge": -1.0}, "ValueError", "ridge"),
        ("ridge=NaN", {"ridge": float("nan")}, "ValueError", "ridge"))),
    ApiSpec(eigenlearning.eigenlearning_risk, {"eigenvalues": np.array([1.0, 0.5, 0.25, 0.1]),
                                               "target_power": np.array([0.5, 0.3, 0.1, 0.1]), "n": 3,
                                               "ridge": 0.01}, extra=(
        ("target_power:NaN", {"target_power": np.array([0.5, np.nan, 0.1, 0.1])}, "ValueError", "target_power"),
        ("target_power<0", {"target_power": np.array([0.5, -0.3, 0.1, 0.1])}, "ValueError", "target_power"),
        ("target_power:shape", {"target_power": np.ones(3)}, "ValueError", "target_power"),
        ("noise_var<0", {"noise_var": -1.0}, "ValueError", "noise_var"),
        ("noise_var=NaN", {"noise_var": float("nan")}, "ValueError", "noise_var"))),
    ApiSpec(embedding.uniformity_loss, {"z": unit(5, 3)}, floats=("z",), batch=("z",), empty="error",
            name="analysis.uniformity_loss (= losses.uniformity_loss)"),
    ApiSpec(embedding.uniformity, {"z": unit(5, 3)}, floats=("z",), batch=("z",), empty="error",
            extra=(("t<0", {"t": -2.0}, "ValueError", "t"),)),
    ApiSpec(embedding.tolerance, {"z": unit(5, 3), "labels": np.array([0, 0, 1, 1, 2])}, floats=("z",),
            batch=("z", "labels"), empty="error", extra=(
                ("labels:float", {"labels": np.zeros(5)}, "TypeError", "labels"),
                ("labels:all-distinct", {"labels": np.arange(5)}, "ValueError", "labels"),
                ("labels:all-distinct:jit", {"labels": np.arange(5)}, "nan", "", ("labels",)),
                ("NaN-in-a-pair", {"z": put(unit(5, 3), (0, 0), np.nan)}, "nan", ""))),
    ApiSpec(embedding.recall_at_1, {"sim": f(5, 5), "labels": np.array([0, 0, 1, 1, 2])}, floats=("sim",),
            batch=("sim", "labels"), empty="error", at={"sim": 1},
            inf={"sim": "finite: an infinite similarity is a valid nearest neighbour"}, extra=(
                ("sim:not-square", {"sim": f(5, 4)}, "ValueError", "sim"),
                ("labels:float", {"labels": np.zeros(5)}, "TypeError", "labels"),
                ("labels:shape", {"labels": np.zeros(4, np.int32)}, "ValueError", "labels"),
                ("sim:NaN:jit", {"sim": put(f(5, 5), (0, 1), np.nan)}, "nan", "", ("sim",)))),
    ApiSpec(ntk.empirical_ntk, {"apply_fn": _apply, "params": PARAMS, "x1": f(4, 3)}, extra=(
        ("params:int", {"params": {"w": np.ones((3, 2), np.int32), "b": np.zeros(2)}}, "TypeError", "params"),
        ("params:empty", {"params": {}}, "ValueError", "params"),
        ("x1:rank0", {"x1": np.float32(1.0)}, "ValueError", "x1"),
        ("x1:NaN", {"x1": put(f(4, 3), (0, 0), np.nan)}, "nan", ""))),
    ApiSpec(ntk.kernel_target_alignment, {"kernel": np.eye(4) + 0.1, "targets": np.array([1.0, -1.0, 1.0, -1.0])},
            floats=("kernel",), batch=("kernel",), empty="error", extra=(
                ("targets:int", {"targets": np.array([1, -1, 1, -1])}, "ok", ""),
                ("targets:bool", {"targets": np.array([True, False, True, False])}, "TypeError", "targets"),
                ("kernel=0", {"kernel": np.zeros((4, 4))}, "ValueError", "kernel"),
                ("targets=0", {"targets": np.zeros(4)}, "ValueError", "targets"),
                ("kernel=0:jit", {"kernel": np.zeros((4, 4))}, "nan", "", ("kernel",)),
                ("targets:shape", {"targets": np.ones(5)}, "ValueError", "targets"))),
    ApiSpec(sharpness.hvp, {"loss_fn": _loss, "params": PARAMS, "v": jax.tree.map(np.ones_like, PARAMS)}, extra=(
        ("v:structure", {"v": {"w": np.ones((3, 2))}}, "ValueError", "v"),
        ("v:shape", {"v": {"w": np.ones((2, 3)), "b": np.ones(2)}}, "ValueError", "v"),
        ("params:int", {"params": {"w": np.ones((3, 2), np.int32), "b": np.zeros(2, np.int32)}}, "TypeError",
         "params"),
        ("params:NaN", {"params": {"w": put(PARAMS["w"], (0, 0), np.nan), "b": PARAMS["b"]}}, "nan", ""))),
    ApiSpec(sharpness.hessian_top_eigenvalue, {"loss_fn": _loss, "params": PARAMS, "key": jax.random.key(0),
                                               "num_iters": 3}, extra=(
        ("num_iters=0", {"num_iters": 0}, "ValueError", "num_iters"),
        ("num_iters=2.5", {"num_iters": 2.5}, "TypeError", "num_iters"),
        ("method=bad", {"method": "bad"}, "ValueError", "method"),
        ("params:int", {"params": {"w": np.ones((3, 2), np.int32)}}, "TypeError", "params"),
        ("params:empty", {"params": {"w": np.zeros((0,))}}, "ValueError", "params"),
        ("params:NaN", {"params": {"w": put(PARAMS["w"], (0, 0), np.nan), "b": PARAMS["b"]}}, "nan", ""))),
    # ---- theory2 (issue 17): trace estimators ----
    ApiSpec(hutchinson.hessian_trace, {"loss_fn": _loss, "params": PARAMS, "key": jax.random.key(0),
                                       "num_probes": 3}, extra=(
        ("num_probes=0", {"num_probes": 0}, "ValueError", "num_probes"),
        ("num_probes=2.5", {"num_probes": 2.5}, "TypeError", "num_probes"),
        ("hutch++:num_probes=4", {"num_probes": 4, "method": "hutch++"}, "ValueError", "num_probes"),
        ("method=bad", {"method": "bad"}, "ValueError", "method"),
        ("probe_batch_size=0", {"probe_batch_size": 0}, "ValueError", "probe_batch_size"),
        ("params:int", {"params": {"w": np.ones((3, 2), np.int32)}}, "TypeError", "params"),
        ("params:empty", {"params": {"w": np.zeros((0,))}}, "ValueError", "params"),
        ("params:NaN", {"params": {"w": put(PARAMS["w"], (0, 0), np.nan), "b": PARAMS["b"]}}, "nan", ""))),
    ApiSpec(hutchinson.jacobian_trace, {"fn": jnp.tanh, "x": f(2, 3), "key": jax.random.key(0), "num_probes": 3},
            extra=(
        ("num_probes=0", {"num_probes": 0}, "ValueError", "num_probes"),
        ("method=bad", {"method": "bad"}, "ValueError", "method"),
        ("x:int", {"x": np.ones(3, np.int32)}, "TypeError", "x"),
        ("x:empty", {"x": np.zeros((0,), np.float32)}, "ValueError", "x"),
        ("fn:not-square", {"fn": lambda x: x[:1]}, "ValueError", "fn"),
        ("x:NaN", {"x": put(f(2, 3), (0, 0), np.nan)}, "nan", ""))),
    ApiSpec(hutchinson.hutchinson_trace_jacobian, {"denoiser": jnp.tanh, "z": f(2, 3), "key": jax.random.key(0)},
            extra=(
        ("num_probes=0", {"num_probes": 0}, "ValueError", "num_probes"),
        ("z:int", {"z": np.ones((2, 3), np.int32)}, "TypeError", "z"),
        ("z:rank1", {"z": f(3)}, "ValueError", "z"),
        ("z:B=0", {"z": np.zeros((0, 3), np.float32)}, "ValueError", "z"),
        ("denoiser:not-square", {"denoiser": lambda z: z[:, :1]}, "ValueError", "denoiser"),
        ("z:NaN", {"z": put(f(2, 3), (0, 0), np.nan)}, "nan", ""))),
    ApiSpec(matrix_completion.altmin_complete, {"m_obs": f(6, 5), "mask": np.ones((6, 5), bool), "k": 2,
                                                "iters": 2}, extra=(
        ("k=0", {"k": 0}, "ValueError", "k"),
        ("k=2.5", {"k": 2.5}, "TypeError", "k"),
        ("k>min(n1,n2)", {"k": 6}, "ValueError", "k"),
        ("iters=0", {"iters": 0}, "ValueError", "iters"),
        ("solver=bad", {"solver": "bad"}, "ValueError", "solver"),
        ("cg_tol=0", {"cg_tol": 0.0}, "ValueError", "cg_tol"),
        ("mask:float", {"mask": np.ones((6, 5))}, "TypeError", "mask"),
        ("mask:shape", {"mask": np.ones((5, 6), bool)}, "ValueError", "mask"),
        ("mask:row<k", {"mask": put(np.ones((6, 5), bool), (0, slice(None)), False)}, "ValueError", "every row"),
        ("m_obs:int", {"m_obs": np.ones((6, 5), np.int32)}, "TypeError", "m_obs"),
        ("m_obs:rank1", {"m_obs": f(5)}, "ValueError", "m_obs"),
        ("reference:shape", {"reference": f(5, 6)}, "ValueError", "reference"),
        ("m_obs:NaN-observed", {"m_obs": put(f(6, 5), (0, 0), np.nan)}, "nan", ""))),
]

# ---- theory3 (issue 21): error probes of [203] [207] [25] [62] [98] [147] [109] (their math: tests/analysis/test_*.py)
from jaxlib_methods.analysis import (concept_xai, forest_smoother, ftrl_log_barrier, kronecker_sbl,  # noqa: E402
                                     lp_sensitivity, representation_rank, video_label_propagation)

MODULES += (concept_xai, ftrl_log_barrier, kronecker_sbl, video_label_propagation, lp_sensitivity, representation_rank,
            forest_smoother)
_A1, _A2 = f(3, 4), f(2, 3)
SPECS += [
    ApiSpec(ftrl_log_barrier.ftrl_log_barrier_policy, {"cumulative_losses": f(2, 3), "eta": 0.5}, extra=(
        ("eta=0", {"eta": 0.0}, "ValueError", "eta"),
        ("cumulative_losses:int", {"cumulative_losses": np.zeros((2, 3), np.int32)}, "TypeError", "cumulative_losses"),
        ("num_iters=0", {"num_iters": 0}, "ValueError", "num_iters"))),
    ApiSpec(ftrl_log_barrier.linear_q_estimate, {"features": f(2, 3, 2), "covariance": np.eye(2, dtype=np.float32),
                                                 "taken_feature": f(2), "loss_to_go": np.float32(1.0)}, extra=(
        ("covariance:shape", {"covariance": np.eye(3, dtype=np.float32)}, "ValueError", "covariance"),
        ("taken_feature:shape", {"taken_feature": f(3)}, "ValueError", "taken_feature"))),
    ApiSpec(kronecker_sbl.kron_matvec, {"A1": _A1, "A2": _A2, "x": f(12)}, extra=(
        ("x:shape", {"x": f(11)}, "ValueError", "x"),
        ("A1:int", {"A1": np.ones((3, 4), np.int32)}, "TypeError", "A1"))),
    ApiSpec(kronecker_sbl.kron_sbl, {"y": f(6), "A1": _A1, "A2": _A2, "noise_var": 0.1, "num_iters": 3}, extra=(
        ("y:shape", {"y": f(5)}, "ValueError", "y"),
        ("noise_var=0", {"noise_var": 0.0}, "ValueError", "noise_var"),
        ("method=bad", {"method": "bad"}, "ValueError", "method"),
        ("num_iters=0", {"num_iters": 0}, "ValueError", "num_iters"))),
    ApiSpec(kronecker_sbl.kron_sbl_m_step_am, {"D": np.abs(f(3, 2)) + 0.1, "gamma_2": np.ones(2, np.float32)}, extra=(
        ("gamma_2:shape", {"gamma_2": np.ones(3, np.float32)}, "ValueError", "gamma_2"),
        ("num_sweeps=0", {"num_sweeps": 0}, "ValueError", "num_sweeps"))),
    ApiSpec(kronecker_sbl.kron_sbl_m_step_svd, {"D": np.abs(f(3, 2)) + 0.1}, extra=(
        ("D:rank1", {"D": np.ones(3, np.float32)}, "ValueError", "D"),)),
    ApiSpec(concept_xai.concept_activation_map, {"features": f(3, 3, 4), "concept_vectors": f(2, 4)}, extra=(
        ("concept_vectors:shape", {"concept_vectors": f(2, 5)}, "ValueError", "concept_vectors"),
        ("features:rank2", {"features": f(3, 4)}, "ValueError", "features"))),
    ApiSpec(concept_xai.concept_global_importance, {"class_concept_weights": f(2, 4),
                                                    "class_concept_annotations": np.array([[1, 0, 1, 0]] * 2, bool)},
            extra=(("annotations:shape", {"class_concept_annotations": np.ones((2, 3), bool)}, "ValueError",
                    "class_concept_annotations"),
                   ("C=1", {"class_concept_weights": f(2, 1), "class_concept_annotations": np.ones((2, 1), bool)},
                    "ValueError", "C >= 2"))),
    ApiSpec(concept_xai.concept_existence_metric, {"concept_importance": f(2, 4),
                                                   "concept_present": np.ones((2, 4), bool), "k": 2}, extra=(
        ("k=0", {"k": 0}, "ValueError", "k"),
        ("k=2.5", {"k": 2.5}, "TypeError", "k"),
        ("concept_present:float", {"concept_present": np.ones((2, 4), np.float32)}, "TypeError", "concept_present"))),
    ApiSpec(concept_xai.concept_location_metric, {"activation_map": np.abs(f(3, 3)) / 10,
                                                  "region_mask": np.eye(3, dtype=bool)}, extra=(
        ("threshold=1", {"threshold": 1.0}, "ValueError", "threshold"),
        ("region_mask:shape", {"region_mask": np.eye(4, dtype=bool)}, "ValueError", "region_mask"))),
    ApiSpec(video_label_propagation.label_propagation, {"f_ref": f(1, 3, 3, 4), "y_ref": np.abs(f(1, 3, 3, 2)),
                                                  "f_tgt": f(3, 3, 4), "topk": 2, "temperature": 0.1}, extra=(
        ("topk=0", {"topk": 0}, "ValueError", "topk"),
        ("temperature=0", {"temperature": 0.0}, "ValueError", "temperature"),
        ("radius<0", {"radius": -1.0}, "ValueError", "radius"),
        ("f_tgt:shape", {"f_tgt": f(3, 4, 4)}, "ValueError", "f_tgt"),
        ("y_ref:shape", {"y_ref": f(1, 3, 2, 2)}, "ValueError", "y_ref"))),
    ApiSpec(lp_sensitivity.lewis_weights, {"A": f(6, 2), "p": 1.0, "num_iters": 3}, extra=(
        ("p=4", {"p": 4.0}, "ValueError", "p < 4"),
        ("p=0.5", {"p": 0.5}, "ValueError", "p"),
        ("A:rank1", {"A": f(6)}, "ValueError", "A"),
        ("num_iters=0", {"num_iters": 0}, "ValueError", "num_iters"))),
    ApiSpec(lp_sensitivity.lp_sensitivities, {"A": f(6, 2), "p": 1.5, "num_iters": 3}, extra=(
        ("p=0.5", {"p": 0.5}, "ValueError", "p"),
        ("smoothing=0", {"smoothing": 0.0}, "ValueError", "smoothing"),
        ("A:int", {"A": np.ones((6, 2), np.int32)}, "TypeError", "A"))),
    ApiSpec(lp_sensitivity.sensitivity_sample, {"key": jax.random.key(0), "scores": np.ones(5, np.float32), "m": 3},
            extra=(("scores=0", {"scores": np.zeros(5, np.float32)}, "ValueError", "scores"),
                   ("scores<0", {"scores": -np.ones(5, np.float32)}, "ValueError", "scores"),
                   ("m=0", {"m": 0}, "ValueError", "m"))),
    ApiSpec(representation_rank.matrix_nuclear_norm, {"hidden": f(5, 4)}, extra=(
        ("D=5", {"D": 5}, "ValueError", "D"),
        ("D=1.5", {"D": 1.5}, "TypeError", "D"),
        ("hidden:rank1", {"hidden": f(5)}, "ValueError", "hidden"),
        ("hidden:int", {"hidden": np.ones((5, 4), np.int32)}, "TypeError", "hidden"))),
    ApiSpec(representation_rank.matrix_entropy, {"hidden": f(5, 4)}, extra=(
        ("d=1", {"hidden": f(5, 1)}, "ValueError", "d >= 2"),
        ("hidden:empty", {"hidden": f(0, 4)}, "ValueError", "hidden"))),
    ApiSpec(forest_smoother.fit_regression_forest, {"X": f(8, 2), "y": f(8), "n_trees": 2}, extra=(
        ("y:shape", {"y": f(7)}, "ValueError", "y"),
        ("X:NaN", {"X": put(f(8, 2), (0, 0), np.nan)}, "ValueError", "finite"),
        ("n_trees=0", {"n_trees": 0}, "ValueError", "n_trees"),
        ("max_features=3", {"max_features": 3}, "ValueError", "max_features"))),
    ApiSpec(forest_smoother.forest_smoother_weights, {"train_leaves": np.array([[0, 1], [1, 1], [0, 2]]),
                                                      "query_leaves": np.array([[0, 1]])}, extra=(
        ("train_leaves:float", {"train_leaves": np.zeros((3, 2))}, "TypeError", "train_leaves"),
        ("query_leaves:T", {"query_leaves": np.array([[0]])}, "ValueError", "share T"),
        ("counts:shape", {"counts": np.ones((3, 3))}, "ValueError", "counts"))),
    ApiSpec(forest_smoother.effective_params, {"S": np.full((2, 4), 0.25, np.float32)}, extra=(
        ("S:rank1", {"S": np.ones(4, np.float32)}, "ValueError", "S"),
        ("S:int", {"S": np.ones((2, 4), np.int32)}, "TypeError", "S"))),
]

# ---- theory2b (issue 17): error probes of [67] (its math: tests/analysis/test_transductive_clustering.py) ----
from jaxlib_methods.analysis import transductive_clustering  # noqa: E402

MODULES += (transductive_clustering,)
_XS, _XQ = f(3, 2), f(4, 2)
_W7 = np.eye(7, dtype=np.float32)
SPECS += [
    ApiSpec(transductive_clustering.gaussian_affinity, {"x": f(4, 2), "sigma": 1.0}, extra=(
        ("sigma=0", {"sigma": 0.0}, "ValueError", "sigma"),
        ("x:int", {"x": np.ones((4, 2), np.int32)}, "TypeError", "x"),
        ("x:rank1", {"x": f(4)}, "ValueError", "x"))),
    ApiSpec(transductive_clustering.bound_optimizer, {"support": _XS, "support_labels": np.arange(3), "query": _XQ,
                                                      "affinity": _W7, "num_classes": 3, "lam": 0.1, "iters": 2},
            extra=(
        ("lam<0", {"lam": -1.0}, "ValueError", "lam"),
        ("iters=0", {"iters": 0}, "ValueError", "iters"),
        ("num_classes=1", {"num_classes": 1}, "ValueError", "num_classes"),
        ("support_labels:out-of-range", {"support_labels": np.array([0, 1, 3])}, "ValueError", "support_labels"),
        ("support_labels:missing-class", {"support_labels": np.array([0, 1, 1])}, "ValueError", "every class"),
        ("support_labels:float", {"support_labels": np.arange(3.0)}, "TypeError", "support_labels"),
        ("affinity:shape", {"affinity": np.eye(6, dtype=np.float32)}, "ValueError", "affinity"),
        ("query:D", {"query": f(4, 3)}, "ValueError", "query"))),
    ApiSpec(transductive_clustering.transductive_objective, {"assignments": np.full((7, 3), 1 / 3, np.float32),
                                                             "feats": f(7, 2), "prototypes": f(3, 2),
                                                             "affinity": _W7, "lam": 0.1}, extra=(
        ("lam<0", {"lam": -1.0}, "ValueError", "lam"),
        ("assignments:shape", {"assignments": np.full((6, 3), 1 / 3, np.float32)}, "ValueError", "assignments"),
        ("prototypes:D", {"prototypes": f(3, 3)}, "ValueError", "prototypes"),
        ("affinity:shape", {"affinity": np.eye(6, dtype=np.float32)}, "ValueError", "affinity"))),
]
# [43] naive Bayes / logistic regression
from jaxlib_methods.analysis import generative_classifiers  # noqa: E402

MODULES += (generative_classifiers,)
_X43, _Y43 = f(6, 2), np.arange(6) % 2
_NB43 = generative_classifiers.NaiveBayesParams(f(2, 2), np.ones(2, np.float32), np.log(np.full(2, 0.5, np.float32)))
_LP43 = generative_classifiers.LogisticParams(f(2, 2), f(2))
SPECS += [
    ApiSpec(generative_classifiers.gaussian_naive_bayes, {"x": _X43, "y": _Y43, "num_classes": 2}, extra=(
        ("y:out-of-range", {"y": np.full(6, 2)}, "ValueError", "y"),
        ("y:float", {"y": np.zeros(6)}, "TypeError", "y"),
        ("num_classes=1", {"num_classes": 1}, "ValueError", "num_classes"),
        ("where:shape", {"where": np.ones(5, bool)}, "ValueError", "where"),
        ("var_smoothing<0", {"var_smoothing": -1.0}, "ValueError", "var_smoothing"),
        ("x:rank1", {"x": f(6)}, "ValueError", "x"))),
    ApiSpec(generative_classifiers.naive_bayes_logits, {"params": _NB43, "x": _X43}, extra=(
        ("x:D", {"x": f(6, 3)}, "ValueError", "x"),
        ("x:int", {"x": np.ones((6, 2), np.int32)}, "TypeError", "x"))),
    ApiSpec(generative_classifiers.logistic_regression, {"x": _X43, "y": _Y43, "num_classes": 2, "iters": 2}, extra=(
        ("C=0", {"C": 0.0}, "ValueError", "C"),
        ("iters=0", {"iters": 0}, "ValueError", "iters"),
        ("y:shape", {"y": np.zeros(5, np.int32)}, "ValueError", "y"))),
    ApiSpec(generative_classifiers.logistic_objective, {"params": _LP43, "x": _X43, "y": _Y43,
                                                        "where": np.ones(6, bool), "C": 1.0}, extra=(
        ("C=0", {"C": 0.0}, "ValueError", "C"),
        ("x:D", {"x": f(6, 3)}, "ValueError", "x"),
        ("y:out-of-range", {"y": np.full(6, 2)}, "ValueError", "y"))),
]

# ---- app22 (issue 22): STSL drift [212]
SPECS += [
    ApiSpec(hutchinson.hutchinson_trace_gradient, {"fn": jnp.tanh, "z": f(2, 3), "key": jax.random.key(0)},
            extra=(
        ("num_probes=0", {"num_probes": 0}, "ValueError", "num_probes"),
        ("z:int", {"z": np.ones((2, 3), np.int32)}, "TypeError", "z"),
        ("z:rank1", {"z": f(3)}, "ValueError", "z"),
        ("z:B=0", {"z": np.zeros((0, 3), np.float32)}, "ValueError", "z"),
        ("fn:not-square", {"fn": lambda z: z[:, :1]}, "ValueError", "fn"),
        ("z:NaN", {"z": put(f(2, 3), (0, 0), np.nan)}, "nan", ""))),
]

# ---- an21 (issue 21): error probes of [28] nearest-mean and [100] selective metrics (their math:
# tests/analysis/test_nearest_mean_selective.py)
from jaxlib_methods.analysis import nearest_mean, selective  # noqa: E402

MODULES += (nearest_mean, selective)
_NM = nearest_mean.NearestMeanState(f(3, 2), np.array([2, 1, 1], np.int32))
_U100, _C100 = f(6), np.array([True, False, True, True, False, True])
SPECS += [
    ApiSpec(nearest_mean.nearest_mean_init, {"num_classes": 3, "dim": 2}, extra=(
        ("num_classes=0", {"num_classes": 0}, "ValueError", "num_classes"),
        ("dim=1.5", {"dim": 1.5}, "ValueError", "dim"),
        ("dtype:int", {"dtype": np.int32}, "TypeError", "dtype"))),
    ApiSpec(nearest_mean.nearest_mean_update, {"state": _NM, "features": f(4, 2), "labels": np.array([0, 1, 2, 0])},
            extra=(
        ("labels=3", {"labels": np.array([0, 1, 3, 0])}, "ValueError", "labels"),
        ("labels:float", {"labels": np.zeros(4)}, "TypeError", "labels"),
        ("labels:shape", {"labels": np.zeros(3, np.int32)}, "ValueError", "labels"),
        ("features:D", {"features": f(4, 3)}, "ValueError", "features"),
        ("features:int", {"features": np.ones((4, 2), np.int32)}, "TypeError", "features"),
        ("where:shape", {"where": np.ones(3, bool)}, "ValueError", "where"),
        ("state:tuple", {"state": (_NM.means, _NM.counts)}, "TypeError", "state"))),
    ApiSpec(nearest_mean.nearest_mean_distances, {"state": _NM, "features": f(4, 2)}, extra=(
        ("features:rank1", {"features": f(2)}, "ValueError", "features"),)),
    ApiSpec(nearest_mean.nearest_mean_predict, {"state": _NM, "features": f(4, 2)}, extra=(
        ("state:empty", {"state": nearest_mean.NearestMeanState(f(3, 2), np.zeros(3, np.int32))}, "ValueError",
         "seen no class"),
        ("features:int", {"features": np.ones((4, 2), np.int32)}, "TypeError", "features"))),
    ApiSpec(selective.risk_coverage, {"uncertainty": _U100, "correct": _C100}, extra=(
        ("correct:float", {"correct": _C100.astype(np.float32)}, "TypeError", "correct"),
        ("correct:shape", {"correct": _C100[:5]}, "ValueError", "correct"),
        ("uncertainty:empty", {"uncertainty": f(0), "correct": np.zeros(0, bool)}, "ValueError", "uncertainty"),
        ("uncertainty:rank2", {"uncertainty": f(6, 1)}, "ValueError", "uncertainty"))),
    ApiSpec(selective.aurc, {"uncertainty": _U100, "correct": _C100}, extra=(
        ("uncertainty:int", {"uncertainty": np.ones(6, np.int32)}, "TypeError", "uncertainty"),)),
    ApiSpec(selective.coverage_at_risk, {"uncertainty": _U100, "correct": _C100, "risk": 0.05}, extra=(
        ("risk=1.5", {"risk": 1.5}, "ValueError", "risk"),)),
    ApiSpec(selective.window_cascade, {"u1": _U100, "preds1": np.zeros(6, np.int32), "u2": f(6),
                                       "preds2": np.ones(6, np.int32), "lo": 0.0, "hi": 0.5}, extra=(
        ("hi<lo", {"hi": -1.0}, "ValueError", "hi"),
        ("lo:vector", {"lo": np.zeros(2)}, "TypeError", "lo"),
        ("preds1:float", {"preds1": np.zeros(6)}, "TypeError", "preds1"),
        ("u2:shape", {"u2": f(5)}, "ValueError", "u2"))),
    ApiSpec(selective.cascade_macs, {"passed": _C100, "macs": (1.0, 2.0)}, extra=(
        ("macs:len3", {"macs": (1.0, 2.0, 3.0)}, "ValueError", "macs"),
        ("macs<0", {"macs": (1.0, -2.0)}, "ValueError", "macs"),
        ("passed:float", {"passed": _C100.astype(np.float32)}, "TypeError", "passed"))),
]

# an21 (issue 21): error probes of [117] Sinkhorn OT / OSBORN (their math: tests/analysis/test_ot.py)
from jaxlib_methods.analysis import ot as ot_mod  # noqa: E402

MODULES += (ot_mod,)
_MC117 = np.abs(f(3, 3))
SPECS += [
    ApiSpec(ot_mod.sinkhorn, {"cost": np.abs(f(3, 4)), "eps": 0.5, "num_iters": 5}, extra=(
        ("eps=0", {"eps": 0.0}, "ValueError", "eps"),
        ("num_iters=0", {"num_iters": 0}, "ValueError", "num_iters"),
        ("a:sum", {"a": np.ones(3, np.float32)}, "ValueError", "a"),
        ("b:shape", {"b": np.full(3, 1 / 3, np.float32)}, "ValueError", "b"),
        ("cost:rank1", {"cost": f(3)}, "ValueError", "cost"),
        ("cost:int", {"cost": np.ones((3, 4), np.int32)}, "TypeError", "cost"))),
    ApiSpec(ot_mod.sinkhorn_ot, {"xs": f(3, 2), "xt": f(4, 2), "num_iters": 5}, extra=(
        ("xt:d", {"xt": f(4, 3)}, "ValueError", "xt"),
        ("eps<0", {"eps": -1.0}, "ValueError", "eps"),
        ("xs:int", {"xs": np.ones((3, 2), np.int32)}, "TypeError", "xs"))),
    ApiSpec(ot_mod.ot_conditional_entropy, {"plan": np.full((3, 4), 1 / 12, np.float32), "ys": np.array([0, 1, 1]),
                                            "yt": np.array([0, 1, 2, 0]), "num_source_classes": 2,
                                            "num_target_classes": 3}, extra=(
        ("yt=3", {"yt": np.array([0, 1, 3, 0])}, "ValueError", "yt"),
        ("ys:float", {"ys": np.zeros(3)}, "TypeError", "ys"),
        ("ys:shape", {"ys": np.zeros(4, np.int32)}, "ValueError", "ys"),
        ("num_source_classes=0", {"num_source_classes": 0}, "ValueError", "num_source_classes"))),
    ApiSpec(ot_mod.osborn_score, {"subset": np.array([True, False, True]), "domain": f(3), "task": f(3),
                                  "incohesion": _MC117}, extra=(
        ("incohesion<0", {"incohesion": -_MC117}, "ValueError", "incohesion"),
        ("subset:shape", {"subset": np.ones(2, bool)}, "ValueError", "subset"),
        ("lam_cohesion<0", {"lam_cohesion": -1.0}, "ValueError", "lam_cohesion"),
        ("task:shape", {"task": f(2)}, "ValueError", "task"))),
    ApiSpec(ot_mod.greedy_submodular_select, {"score_fn": lambda b: jnp.sum(b, -1).astype(jnp.float32),
                                              "num_candidates": 3, "k": 2}, extra=(
        ("k=4", {"k": 4}, "ValueError", "k"),
        ("num_candidates=0", {"num_candidates": 0}, "ValueError", "num_candidates"),
        ("score_fn:shape", {"score_fn": lambda b: jnp.zeros(2)}, "ValueError", "score_fn"))),
]

# an21 (issue 21): error probes of [70] the QQT scaling law (its math: tests/analysis/test_data_filtering.py)
from jaxlib_methods.analysis import data_filtering  # noqa: E402

MODULES += (data_filtering,)
_N70 = np.array([10.0, 100.0, 300.0], np.float32)
SPECS += [
    ApiSpec(data_filtering.qqt_error, {"n": _N70, "pool_size": 100.0, "a": 1.0, "b": -0.3, "tau": 2.0,
                                       "max_epochs": 4}, extra=(
        ("tau=0", {"tau": 0.0}, "ValueError", "tau"),
        ("a=0", {"a": 0.0}, "ValueError", "a"),
        ("n<1", {"n": np.array([0.5], np.float32)}, "ValueError", "n"),
        ("max_epochs:small", {"max_epochs": 2}, "ValueError", "max_epochs"),
        ("n:int", {"n": np.array([10, 100])}, "TypeError", "n"))),
    ApiSpec(data_filtering.qqt_mix_error, {"n": _N70, "pool_sizes": [50.0, 50.0], "a": 1.0,
                                           "utilities": [-0.3, -0.2], "tau": 2.0, "max_epochs": 4}, extra=(
        ("utilities:len", {"utilities": [-0.3]}, "ValueError", "utilities"),
        ("pool_sizes<=0", {"pool_sizes": [50.0, 0.0]}, "ValueError", "pool_sizes"))),
    ApiSpec(data_filtering.fit_qqt, {"n": np.geomspace(10, 400, 8), "y": np.geomspace(1, 0.3, 8),
                                     "pool_size": 100.0}, extra=(
        ("y<=0", {"y": -np.ones(8)}, "ValueError", "y"),
        ("n:short", {"n": np.ones(2), "y": np.ones(2)}, "ValueError", "P >= 3"),
        ("tau_range", {"tau_range": (2.0, 1.0)}, "ValueError", "tau_range"),
        ("n:beyond", {"n": np.geomspace(10, 1e5, 8)}, "ValueError", "max_epochs"))),
]

# an21 (issue 21): error probes of [31] drift / FPF (their math: tests/analysis/test_forgetting.py)
from jaxlib_methods.analysis import forgetting  # noqa: E402

import optax  # noqa: E402

MODULES += (forgetting,)
_P31 = {"a": {"w": f(2, 2)}, "b": {"w": f(2)}}
SPECS += [
    ApiSpec(forgetting.module_drift, {"old_params": _P31, "new_params": _P31}, extra=(
        ("new_params:structure", {"new_params": {"a": {"w": f(2, 2)}}}, "ValueError", "structure"),
        ("new_params:shape", {"new_params": {"a": {"w": f(2, 3)}, "b": {"w": f(2)}}}, "ValueError", "shape"),
        ("old_params:int", {"old_params": {"a": {"w": np.ones((2, 2), np.int32)}, "b": {"w": f(2)}}}, "TypeError",
         "old_params"),
        ("depth=0", {"depth": 0}, "ValueError", "depth"))),
    ApiSpec(forgetting.fpf_labels, {"params": _P31, "modules": ["a"]}, extra=(
        ("modules:unknown", {"modules": ["c"]}, "ValueError", "modules"),
        ("modules:str", {"modules": "a"}, "TypeError", "modules"))),
    ApiSpec(forgetting.fpf_transform, {"tx": optax.sgd(0.1), "params": _P31, "modules": ["a"]}, extra=(
        ("tx:not-optax", {"tx": 0.1}, "TypeError", "tx"),
        ("modules:unknown", {"modules": ["c"]}, "ValueError", "modules"))),
]

# ---- th17a (issue 17): error probes of [55] (its math: tests/analysis/test_feature_weighting.py) ----
from jaxlib_methods.analysis import feature_weighting  # noqa: E402
MODULES += (feature_weighting,)
SPECS += [
    ApiSpec(feature_weighting.layerwise_feature_weights, {"weights": [f(3, 4), f(2, 3)], "features": f(4, 2)}, extra=(
        ("weights:empty", {"weights": []}, "TypeError", "weights"),
        ("weights:chain", {"weights": [f(3, 4), f(2, 2)]}, "ValueError", "weights[1]"),
        ("features:int", {"features": np.ones((4, 2), np.int32)}, "TypeError", "features"),
        ("features:rank1", {"features": f(4)}, "ValueError", "features"))),
]

# ---- th17c (issue 17): error probes of [38] [63] [69] (their math: tests/analysis/test_information.py and
# tests/analysis/test_continual_evaluation.py) ----
from jaxlib_methods.analysis import continual_evaluation, information  # noqa: E402
MODULES += (information, continual_evaluation)
_T8, _Y8, _X8 = f(8, 3), np.array([0, 1] * 4, np.int32), np.arange(8, dtype=np.int32)
_ACC, _TE = np.abs(f(10, 2)) % 1.0, np.array([4, 9], np.int32)
SPECS += [
    ApiSpec(information.discrete_entropy, {"symbols": _Y8}, extra=(
        ("symbols:float", {"symbols": _T8}, "TypeError", "symbols"),
        ("unit:unknown", {"unit": "x"}, "ValueError", "unit"))),
    ApiSpec(information.discrete_mutual_information, {"a": _Y8, "b": _X8}, extra=(
        ("b:rows", {"b": _X8[:-1]}, "ValueError", "same number of rows"),)),
    ApiSpec(information.uniform_bins, {"t": _T8, "n_bins": 4}, extra=(
        ("n_bins:1", {"n_bins": 1}, "ValueError", "n_bins"),
        ("t:int", {"t": _Y8}, "TypeError", "t"))),
    ApiSpec(information.adaptive_bins, {"t": _T8, "n_bins": 4}, extra=(
        ("n_bins:1", {"n_bins": 1}, "ValueError", "n_bins"),)),
    ApiSpec(information.binned_mutual_information, {"t": _T8, "x": _X8, "y": _Y8, "n_bins": 4}, extra=(
        ("y:rows", {"y": _Y8[:-1]}, "ValueError", "y"),
        ("binning:unknown", {"binning": "z"}, "ValueError", "binning"))),
    ApiSpec(information.kde_mutual_information, {"t": _T8, "noise_variance": 0.1, "labels": _Y8, "num_classes": 2},
            extra=(("noise_variance:0", {"noise_variance": 0.0}, "ValueError", "noise_variance"),
                   ("num_classes:missing", {"num_classes": None}, "ValueError", "num_classes"))),
    ApiSpec(continual_evaluation.min_acc, {"acc": _ACC, "task_end": _TE}, extra=(
        ("task_end:decreasing", {"task_end": _TE[::-1].copy()}, "ValueError", "task_end"),
        ("step:out-of-range", {"step": 10}, "ValueError", "step"))),
    ApiSpec(continual_evaluation.wc_acc, {"acc": _ACC, "task_end": _TE}, extra=(
        ("acc:int", {"acc": _ACC.astype(np.int32)}, "TypeError", "acc"),)),
    ApiSpec(continual_evaluation.windowed_forgetting, {"acc": _ACC, "window": 3}, extra=(
        ("window:0", {"window": 0}, "ValueError", "window"),)),
    ApiSpec(continual_evaluation.windowed_plasticity, {"acc": _ACC, "window": 3}, extra=(
        ("window:0", {"window": 0}, "ValueError", "window"),)),
]

# ---- wise112 (issue 17): error probes of [112] WiSE-FT / output ensemble / FFT rate (their math:
# tests/analysis/test_weight_ensembles.py)
from jaxlib_methods.analysis import weight_ensembles  # noqa: E402

MODULES += (weight_ensembles,)
_T112 = {"w": f(3, 2), "b": f(2)}
_C112 = np.array([True, False, False, True])
SPECS += [
    ApiSpec(weight_ensembles.wise_ft, {"theta0": _T112, "theta1": jax.tree.map(lambda x: x + 1, _T112), "alpha": 0.5},
            extra=(
        ("alpha=1.5", {"alpha": 1.5}, "ValueError", "alpha"),
        ("alpha:vector", {"alpha": np.full(2, 0.5)}, "TypeError", "alpha"),
        ("alpha:bool", {"alpha": True}, "TypeError", "alpha"),
        ("theta1:structure", {"theta1": {"w": f(3, 2)}}, "ValueError", "structure"),
        ("theta1:shape", {"theta1": {"w": f(3, 3), "b": f(2)}}, "ValueError", "shape"),
        ("theta0:int", {"theta0": {"w": np.ones((3, 2), np.int32), "b": f(2)}}, "TypeError", "theta0"))),
    ApiSpec(weight_ensembles.output_ensemble, {"logits0": f(4, 3), "logits1": f(4, 3), "alpha": 0.25}, extra=(
        ("logits1:shape", {"logits1": f(4, 2)}, "ValueError", "logits1"),
        ("logits0:int", {"logits0": np.ones((4, 3), np.int32)}, "TypeError", "logits0"),
        ("alpha<0", {"alpha": -0.1}, "ValueError", "alpha"))),
    ApiSpec(weight_ensembles.false_false_true_rate, {"correct0": _C112, "correct1": ~_C112,
                                                     "correct_ensemble": _C112}, extra=(
        ("correct0:float", {"correct0": _C112.astype(np.float32)}, "TypeError", "correct0"),
        ("correct_ensemble:shape", {"correct_ensemble": _C112[:3]}, "ValueError", "correct_ensemble"),
        ("correct0:empty", {"correct0": np.zeros(0, bool), "correct1": np.zeros(0, bool),
                            "correct_ensemble": np.zeros(0, bool)}, "ValueError", "correct0"))),
]

# ---- th17b (issue 17): error probes of [188] [129] [135] (their math: tests/analysis/test_robust_recovery.py,
# test_diffusion_subspace.py, test_intrinsic_dimension.py) ----
from jaxlib_methods.analysis import diffusion_subspace, intrinsic_dimension, robust_recovery  # noqa: E402
MODULES += (robust_recovery, diffusion_subspace, intrinsic_dimension)
_U42, _A644, _Y6 = f(4, 2), f(6, 4, 4), f(6)
_B152 = np.linalg.qr(f(5, 2))[0][None].astype(np.float32)
_KEY = np.asarray(jax.random.key_data(jax.random.key(0)))


def _key():
  return jax.random.wrap_key_data(_KEY)


def _ff8():
  return intrinsic_dimension.fastfood_params(_key(), 8)


SPECS += [
    ApiSpec(robust_recovery.l1_recovery_loss, {"u": _U42, "a": _A644, "y": _Y6}, extra=(
        ("y:length", {"y": _Y6[:-1]}, "ValueError", "y"),
        ("a:not-square", {"a": f(6, 4, 3)}, "ValueError", "a"),
        ("u:int", {"u": _U42.astype(np.int32)}, "TypeError", "u"))),
    ApiSpec(robust_recovery.small_initialization, {"key": _key(), "d": 4, "r_over": 2, "alpha": 0.1}, extra=(
        ("alpha:negative", {"alpha": -0.1}, "ValueError", "alpha"),
        ("r_over:0", {"r_over": 0}, "ValueError", "r_over"))),
    ApiSpec(robust_recovery.subgm_recovery, {"a": _A644, "y": _Y6, "u0": _U42, "steps": 3, "eta0": 0.1, "rho": 0.9},
            extra=(("rho:above-1", {"rho": 1.5}, "ValueError", "rho"),
                   ("steps:0", {"steps": 0}, "ValueError", "steps"),
                   ("eta0:negative", {"eta0": -0.1}, "ValueError", "eta0"))),
    ApiSpec(diffusion_subspace.molrg_denoiser, {"x_t": f(3, 5), "bases": _B152, "sigma": 0.5}, extra=(
        ("sigma:0", {"sigma": 0.0}, "ValueError", "sigma"),
        ("x_t:n", {"x_t": f(3, 4)}, "ValueError", "x_t"),
        ("log_weights:K", {"log_weights": f(2)}, "ValueError", "log_weights"))),
    ApiSpec(diffusion_subspace.molrg_dsm_loss, {"bases": _B152, "x_0": f(3, 5), "noise": f(3, 5), "sigma": 0.5},
            extra=(("noise:shape", {"noise": f(3, 4)}, "ValueError", "noise"),
                   ("sigma:negative", {"sigma": -1.0}, "ValueError", "sigma"))),
    ApiSpec(diffusion_subspace.principal_angles, {"u": f(5, 2), "v": f(5, 2)}, extra=(
        ("v:d", {"v": f(5, 3)}, "ValueError", "same n and d"),
        ("u:int", {"u": f(5, 2).astype(np.int32)}, "TypeError", "u"))),
    ApiSpec(diffusion_subspace.subspace_distance, {"u": f(5, 2), "v": f(5, 2)}, extra=(
        ("v:n", {"v": f(4, 2)}, "ValueError", "same n and d"),)),
    ApiSpec(intrinsic_dimension.fastfood_params, {"key": _key(), "out_dim": 8}, extra=(
        ("out_dim:0", {"out_dim": 0}, "ValueError", "out_dim"),)),
    ApiSpec(intrinsic_dimension.fastfood_project, {"params": _ff8(), "z": f(3), "out_dim": 8}, extra=(
        ("z:too-long", {"z": f(30)}, "ValueError", "z"),
        ("out_dim:above-L", {"out_dim": 9}, "ValueError", "out_dim"))),
    ApiSpec(intrinsic_dimension.dense_projection, {"key": _key(), "out_dim": 8, "d": 3}, extra=(
        ("d:0", {"d": 0}, "ValueError", "d"),)),
    ApiSpec(intrinsic_dimension.subspace_wrap, {"apply_fn": lambda th, x: x @ th["w"], "theta0": {"w": f(3, 2)},
                                                 "d": 4, "key": _key()}, extra=(
        ("projection:unknown", {"projection": "x"}, "ValueError", "projection"),
        ("d:0", {"d": 0}, "ValueError", "d"),
        ("apply_fn:not-callable", {"apply_fn": 3}, "TypeError", "apply_fn"))),
    ApiSpec(intrinsic_dimension.d_int90, {"dims": [1, 2, 4], "performance": [0.1, 0.5, 0.9], "baseline": 1.0}, extra=(
        ("performance:length", {"performance": [0.1, 0.5]}, "ValueError", "dims and performance"),
        ("fraction:above-1", {"fraction": 1.5}, "ValueError", "fraction"))),
]

# ---- th21c (issue 21): error probes of [155] RS / DRS certificates (their math: tests/analysis/test_certification.py)
from jaxlib_methods.analysis import certification  # noqa: E402

MODULES += (certification,)
_CLS155 = lambda z: (z.reshape(z.shape[0], -1)[:, 0] > 0).astype(jnp.int32)
SPECS += [
    ApiSpec(certification.clopper_pearson_lower, {"successes": np.array([3, 9]), "trials": 10, "alpha": 0.05},
            extra=(("successes:float", {"successes": np.ones(2, np.float32)}, "TypeError", "successes"),
                   ("successes>trials", {"successes": np.array([11])}, "ValueError", "successes"),
                   ("trials=0", {"trials": 0}, "ValueError", "trials"),
                   ("alpha=0", {"alpha": 0.0}, "ValueError", "alpha"))),
    ApiSpec(certification.smoothing_radius, {"p_lower": np.float32(0.9), "sigma": 0.5}, extra=(
        ("p_lower>1", {"p_lower": np.float32(1.2)}, "ValueError", "p_lower"),
        ("p_lower:int", {"p_lower": np.int32(1)}, "TypeError", "p_lower"),
        ("sigma=0", {"sigma": 0.0}, "ValueError", "sigma"))),
    ApiSpec(certification.dual_smoothing_radius, {"p1_lower": np.float32(0.9), "p2_lower": np.float32(0.8),
                                                  "sigma1": 0.5, "sigma2": 0.5}, extra=(
        ("p2_lower<0", {"p2_lower": np.float32(-0.1)}, "ValueError", "p2_lower"),
        ("sigma2<0", {"sigma2": -1.0}, "ValueError", "sigma2"))),
    ApiSpec(certification.checkerboard_split, {"x": f(2, 4, 4)}, extra=(
        ("x:odd-width", {"x": f(4, 3)}, "ValueError", "x"),
        ("x:int", {"x": np.ones((4, 4), np.int32)}, "TypeError", "x"))),
    ApiSpec(certification.smoothed_certify, {"classify": _CLS155, "x": f(3), "key": jax.random.key(0), "sigma": 0.5,
                                             "num_classes": 2, "n0": 4, "n": 8}, extra=(
        ("alpha=1", {"alpha": 1.0}, "ValueError", "alpha"),
        ("num_classes=1", {"num_classes": 1}, "ValueError", "num_classes"),
        ("classify:float", {"classify": lambda z: z[:, 0]}, "ValueError", "classify"),
        ("sigma=0", {"sigma": 0.0}, "ValueError", "sigma"))),
    ApiSpec(certification.dual_smoothed_certify, {"classify1": _CLS155, "classify2": _CLS155, "x1": f(3), "x2": f(3),
                                                  "key": jax.random.key(0), "sigma1": 0.5, "sigma2": 0.5,
                                                  "num_classes": 2, "n0": 4, "n": 8}, extra=(
        ("n=0", {"n": 0}, "ValueError", "n"),
        ("x2:int", {"x2": np.ones(3, np.int32)}, "TypeError", "x2"))),
]

# th21c (issue 21): error probes of [168] the deep-CNN kernel (its math: tests/analysis/test_cnn_kernels.py)
from jaxlib_methods.analysis import cnn_kernels  # noqa: E402

MODULES += (cnn_kernels,)
_P168 = [np.ones((2, 3), np.float32), np.ones((2, 3, 3), np.float32), np.ones(3, np.float32)]
SPECS += [
    ApiSpec(cnn_kernels.hierarchical_cnn_kernel, {"x1": f(3, 4), "filter_size": 2}, extra=(
        ("x1:d", {"x1": f(3, 6)}, "ValueError", "power of filter_size"),
        ("x2:d", {"x2": f(3, 8)}, "ValueError", "x2"),
        ("filter_size=1", {"filter_size": 1}, "ValueError", "filter_size"),
        ("kind:unknown", {"kind": "cntk"}, "ValueError", "kind"),
        ("x1:int", {"x1": np.ones((3, 4), np.int32)}, "TypeError", "x1"))),
    ApiSpec(cnn_kernels.hierarchical_cnn_init, {"key": jax.random.key(0), "d": 4, "filter_size": 2, "width": 3},
            extra=(("width=0", {"width": 0}, "ValueError", "width"),
                   ("d:not-power", {"d": 6}, "ValueError", "power of filter_size"))),
    ApiSpec(cnn_kernels.hierarchical_cnn_apply, {"params": _P168, "x": f(2, 4)}, extra=(
        ("x:int", {"x": np.ones((2, 4), np.int32)}, "TypeError", "x"),)),
    ApiSpec(cnn_kernels.krr_learning_curve, {"k_train": np.eye(4), "y_train": f(4), "k_test": f(2, 4),
                                             "y_test": f(2), "ns": [2, 4]}, extra=(
        ("ns:too-large", {"ns": [5]}, "ValueError", "ns"),
        ("ridge<0", {"ridge": -1.0}, "ValueError", "ridge"),
        ("y_test:shape", {"y_test": f(3)}, "ValueError", "shapes"))),
]

# th21c (issue 21): error probes of [47] NC metrics / mixup UFM (their math: tests/analysis/test_neural_collapse.py)
from jaxlib_methods.analysis import neural_collapse  # noqa: E402

MODULES += (neural_collapse,)
_Y47 = np.array([0, 1, 2, 0, 1, 2])
SPECS += [
    ApiSpec(neural_collapse.simplex_etf, {"num_classes": 3, "dim": 4}, extra=(
        ("dim<K-1", {"dim": 1}, "ValueError", "dim"),
        ("num_classes=1", {"num_classes": 1}, "ValueError", "num_classes"))),
    ApiSpec(neural_collapse.nc_metrics, {"features": f(6, 4), "labels": _Y47, "num_classes": 3}, extra=(
        ("labels:range", {"labels": np.array([0, 1, 3, 0, 1, 2])}, "ValueError", "labels"),
        ("labels:missing-class", {"labels": np.array([0, 1, 1, 0, 1, 0])}, "ValueError", "every class"),
        ("classifier:shape", {"classifier": f(2, 4)}, "ValueError", "classifier"),
        ("features:int", {"features": np.ones((6, 4), np.int32)}, "TypeError", "features"))),
    ApiSpec(neural_collapse.mixup_ufm_features, {"classifier": f(3, 4), "labels_a": np.array([0, 1]),
                                                 "labels_b": np.array([1, 2]), "lam": np.array([0.2, 0.7], np.float32),
                                                 "weight_decay": 0.1, "steps": 3}, extra=(
        ("lam>1", {"lam": np.array([0.2, 1.5], np.float32)}, "ValueError", "lam"),
        ("labels_b:range", {"labels_b": np.array([1, 3])}, "ValueError", "labels_b"),
        ("weight_decay=0", {"weight_decay": 0.0}, "ValueError", "weight_decay"),
        ("loss:unknown", {"loss": "l1"}, "ValueError", "loss"))),
]

# th21c (issue 21): error probes of [153] Jacobian spectrum / coresets (their math: tests/analysis/test_coresets.py)
from jaxlib_methods.analysis import coresets  # noqa: E402

MODULES += (coresets,)
SPECS += [
    ApiSpec(coresets.jacobian_spectrum, {"apply_fn": _apply, "params": PARAMS, "x": f(4, 3)}, extra=(
        ("x:int", {"x": np.ones((4, 3), np.int32)}, "TypeError", "x"),
        ("apply_fn:shape", {"apply_fn": lambda p, x: x @ p["w"]}, "ValueError", "apply_fn"),
        ("params:int", {"params": {"w": np.ones((3, 2), np.int32)}}, "TypeError", "params"))),
    ApiSpec(coresets.facility_location_coreset, {"gradients": f(5, 2), "k": 2}, extra=(
        ("k=0", {"k": 0}, "ValueError", "k"),
        ("gradients:rank1", {"gradients": f(5)}, "ValueError", "gradients"),
        ("gradients:NaN", {"gradients": put(f(5, 2), (0, 0), np.nan)}, "ValueError", "finite"))),
]

# th21c (issue 21): error probes of [196] deep kernel machines (their math: tests/analysis/test_deep_kernel_machines.py)
from jaxlib_methods.analysis import deep_kernel_machines  # noqa: E402

MODULES += (deep_kernel_machines,)
_G196 = np.eye(3, dtype=np.float32) + 0.1
SPECS += [
    ApiSpec(deep_kernel_machines.dkm_nngp_grams, {"gram0": _G196, "depth": 2}, extra=(
        ("depth=0", {"depth": 0}, "ValueError", "depth"),
        ("gram0:rect", {"gram0": f(3, 2)}, "ValueError", "gram0"))),
    ApiSpec(deep_kernel_machines.dkm_objective, {"grams": [_G196], "gram0": _G196, "y": f(3, 1), "nu": 1.0}, extra=(
        ("grams:empty", {"grams": []}, "ValueError", "grams"),
        ("y:P", {"y": f(4, 1)}, "ValueError", "y"),
        ("noise_var=0", {"noise_var": 0.0}, "ValueError", "noise_var"),
        ("grams:int", {"grams": [np.eye(3, dtype=np.int32)]}, "TypeError", "grams[0]"))),
    ApiSpec(deep_kernel_machines.dkm_fit, {"gram0": _G196, "y": f(3, 1), "depth": 1, "nu": 1.0, "steps": 2}, extra=(
        ("steps=0", {"steps": 0}, "ValueError", "steps"),
        ("learning_rate=0", {"learning_rate": 0.0}, "ValueError", "learning_rate"),
        ("y:P", {"y": f(4, 1)}, "ValueError", "y"))),
]

# th21c (issue 21): error probes of [197] the augmentation kernel (its math: tests/analysis/test_augmentation_kernel.py)
from jaxlib_methods.analysis import ssl_augmentation as aug_kernel  # noqa: E402

MODULES += (aug_kernel,)
_A197 = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])
_PX197 = np.array([0.5, 0.5])
SPECS += [
    ApiSpec(aug_kernel.augmentation_kernel, {"aug": _A197, "px": _PX197}, extra=(
        ("aug:rows", {"aug": _A197 * 2}, "ValueError", "aug"),
        ("px:len", {"px": np.array([0.2, 0.3, 0.5])}, "ValueError", "px"),
        ("aug:int", {"aug": np.eye(2, dtype=np.int32)}, "TypeError", "aug"))),
    ApiSpec(aug_kernel.top_d_encoder, {"kernel": np.eye(2) * 2.0, "px": _PX197, "d": 1}, extra=(
        ("d=3", {"d": 3}, "ValueError", "d"),
        ("kernel:asym", {"kernel": np.array([[1.0, 0.5], [0.0, 1.0]])}, "ValueError", "symmetric"),
        ("px:zero", {"px": np.array([1.0, 0.0])}, "ValueError", "px"))),
    ApiSpec(aug_kernel.augmentation_complexity, {"kernel": np.eye(2) * 2.0}, extra=(
        ("kernel:rect", {"kernel": np.ones((2, 3))}, "ValueError", "kernel"),
        ("kernel:neg-diag", {"kernel": -np.eye(2)}, "ValueError", "diagonal"))),
    ApiSpec(aug_kernel.masking_augmentation, {"length": 2, "mask_prob": 0.3}, extra=(
        ("length=9", {"length": 9}, "ValueError", "length"),
        ("mask_prob=1", {"mask_prob": 1.0}, "ValueError", "mask_prob"))),
]

# th21c (issue 21): error probes of [181] IGW / FastCB (their math: tests/analysis/test_bandits.py)
from jaxlib_methods.analysis import bandits  # noqa: E402

MODULES += (bandits,)
_Y181 = np.array([[0.2, 0.5, 0.9]], np.float32)
SPECS += [
    ApiSpec(bandits.inverse_gap_weighting, {"predicted_losses": _Y181, "gamma": 10.0}, extra=(
        ("gamma<0", {"gamma": -1.0}, "ValueError", "gamma"),
        ("predicted_losses:int", {"predicted_losses": np.ones((1, 3), np.int32)}, "TypeError", "predicted_losses"),
        ("predicted_losses:scalar", {"predicted_losses": np.float32(1.0)}, "ValueError", "predicted_losses"))),
    ApiSpec(bandits.fastcb_weighting, {"predicted_losses": _Y181, "gamma": 10.0}, extra=(
        ("predicted_losses>1", {"predicted_losses": _Y181 + 1.0}, "ValueError", "predicted_losses"),
        ("gamma:NaN", {"gamma": float("nan")}, "ValueError", "gamma"))),
]

# th21c (issue 21): error probes of [179] denoiser geometry (their math: tests/analysis/test_denoiser_geometry.py)
from jaxlib_methods.analysis import denoiser_geometry  # noqa: E402

MODULES += (denoiser_geometry,)
SPECS += [
    ApiSpec(denoiser_geometry.denoiser_jacobian_eig, {"denoiser": jnp.tanh, "y": f(3)}, extra=(
        ("y:rank2", {"y": f(2, 3)}, "ValueError", "y"),
        ("denoiser:shape", {"denoiser": lambda y: y[:2]}, "ValueError", "denoiser"),
        ("y:int", {"y": np.ones(3, np.int32)}, "TypeError", "y"))),
    ApiSpec(denoiser_geometry.denoiser_agreement, {"out1": f(4, 3), "out2": f(4, 3)}, extra=(
        ("out2:shape", {"out2": f(4, 2)}, "ValueError", "out2"),
        ("out1:empty", {"out1": f(0, 3), "out2": f(0, 3)}, "ValueError", "out1"),
        ("out1:int", {"out1": np.ones((4, 3), np.int32)}, "TypeError", "out1"))),
]

# ---- an21b (issue 21): error probes of [19] [39] [202] (their math: tests/analysis/test_information_complexity.py)
from jaxlib_methods.analysis import information_complexity  # noqa: E402

MODULES += (information_complexity,)
_Z21, _Y21 = f(8, 2), np.array([0, 1, 0, 1, 0, 1, 0, 1], np.int32)
_E21 = np.abs(f(12)) + 0.1
SPECS += [
    ApiSpec(information_complexity.cond_mi_x_z_given_y, {"z": _Z21, "y": _Y21, "n_bins": 4}, extra=(
        ("y:rows", {"y": _Y21[:-1]}, "ValueError", "y"),
        ("x:rows", {"x": _Y21[:-1]}, "ValueError", "x"),
        ("z:int", {"z": _Y21}, "TypeError", "z"),
        ("n_bins:1", {"n_bins": 1}, "ValueError", "n_bins"),
        ("unit:unknown", {"unit": "x"}, "ValueError", "unit"))),
    ApiSpec(information_complexity.ib_generalization_bound, {"cond_mi_bits": np.float32(1.0), "n": 100}, extra=(
        ("cond_mi_bits:negative", {"cond_mi_bits": np.float32(-1.0)}, "ValueError", "cond_mi_bits"),
        ("n:0", {"n": 0}, "ValueError", "n"),
        ("g1:negative", {"g1": -1.0}, "ValueError", "g1"),
        ("cond_mi_bits:int", {"cond_mi_bits": np.int32(1)}, "TypeError", "cond_mi_bits"))),
    ApiSpec(information_complexity.ksg_mutual_information, {"x": f(10, 2), "y": f(10)}, extra=(
        ("y:rows", {"y": f(9)}, "ValueError", "same number of rows"),
        ("k:0", {"k": 0}, "ValueError", "k"),
        ("k:n", {"k": 10}, "ValueError", "k"),
        ("k:float", {"k": 2.0}, "TypeError", "k"),
        ("x:int", {"x": _Y21}, "TypeError", "x"))),
    ApiSpec(information_complexity.compressed_mutual_information, {"x": f(10, 4), "y": f(10, 3)}, extra=(
        ("encoder_x:not-callable", {"encoder_x": 3}, "TypeError", "encoder_x"),
        ("encoder_y:drops-rows", {"encoder_y": lambda v: v[:-1]}, "ValueError", "one row per sample"),)),
    ApiSpec(information_complexity.fit_scaled_ncx2, {"losses": _E21}, extra=(
        ("losses:2", {"losses": _E21[:2]}, "ValueError", "losses"),
        ("losses:2d", {"losses": _E21.reshape(3, 4)}, "ValueError", "losses"))),
    ApiSpec(information_complexity.scaled_ncx2_logcdf, {"value": np.float32(1.0), "df": 3.0, "nc": 1.0,
                                                        "scale": 1.0}, extra=(
        ("df:0", {"df": 0.0}, "ValueError", "df"),
        ("nc:negative", {"nc": -1.0}, "ValueError", "nc"),
        ("scale:0", {"scale": 0.0}, "ValueError", "scale"),
        ("terms:0", {"terms": 0}, "ValueError", "terms"))),
    ApiSpec(information_complexity.inductive_bias_bits, {"losses": _E21, "target_error": 0.3}, extra=(
        ("target_error:0", {"target_error": 0.0}, "ValueError", "target_error"),
        ("method:unknown", {"method": "mle"}, "ValueError", "method"),
        ("losses:2", {"losses": _E21[:2]}, "ValueError", "losses"))),
    ApiSpec(information_complexity.linear_v_information, {"acts": f(10, 3), "feature": f(10)}, extra=(
        ("feature:rows", {"feature": f(9)}, "ValueError", "feature"),
        ("ridge:negative", {"ridge": -1.0}, "ValueError", "ridge"),
        ("n_fit:n", {"n_fit": 10}, "ValueError", "n_fit"),
        ("acts:int", {"acts": np.ones((10, 3), np.int32)}, "TypeError", "acts"))),
    ApiSpec(information_complexity.v_information_complexity, {"feature": f(10), "layer_acts": [f(10, 3), f(10, 2)]},
            extra=(("layer_acts:array", {"layer_acts": f(10, 3)}, "TypeError", "layer_acts"),
                   ("layer_acts:empty", {"layer_acts": []}, "TypeError", "layer_acts"),
                   ("feature:rows", {"feature": f(9)}, "ValueError", "feature"))),
]
from jaxlib_methods.analysis import opposing_signals  # noqa: E402

MODULES += (opposing_signals,)
_H195 = np.abs(f(5, 8))
SPECS += [
    ApiSpec(opposing_signals.opposing_signal_groups, {"loss_hist": _H195, "k": 2}, extra=(
        ("k:too-large", {"k": 5}, "ValueError", "k"),
        ("k:float", {"k": 2.0}, "TypeError", "k"),
        ("step:out-of-range", {"step": 4}, "ValueError", "step"),
        ("loss_hist:1-checkpoint", {"loss_hist": _H195[:1]}, "ValueError", "loss_hist"),
        ("loss_hist:int", {"loss_hist": np.ones((5, 8), np.int32)}, "TypeError", "loss_hist"))),
    ApiSpec(opposing_signals.group_swing_correlation, {"loss_hist": _H195, "group_a": np.array([0, 1]),
                                                      "group_b": np.array([2, 3])}, extra=(
        ("group_b:out-of-range", {"group_b": np.array([8])}, "ValueError", "group_b"),
        ("group_a:empty", {"group_a": np.zeros(0, np.int32)}, "ValueError", "group_a"),
        ("group_a:float", {"group_a": np.array([0.0, 1.0])}, "TypeError", "group_a"),
        ("loss_hist:2-checkpoints", {"loss_hist": _H195[:2]}, "ValueError", "loss_hist"))),
]
from jaxlib_methods.analysis import feature_merging  # noqa: E402

MODULES += (feature_merging,)
_NET23 = [(f(3, 4).astype(np.float64), f(4).astype(np.float64)), (f(4, 2).astype(np.float64), f(2).astype(np.float64))]
SPECS += [
    ApiSpec(feature_merging.iterative_feature_merging, {"layers": _NET23, "beta": 0.1}, extra=(
        ("beta:negative", {"beta": -0.1}, "ValueError", "beta"),
        ("beta:nan", {"beta": float("nan")}, "ValueError", "beta"),
        ("layers:one", {"layers": _NET23[:1]}, "TypeError", "layers"),
        ("layers:mismatch", {"layers": [_NET23[0], _NET23[0]]}, "ValueError", "inputs"),
        ("layers:int", {"layers": [(np.ones((3, 4), np.int32), f(4)), _NET23[1]]}, "TypeError", "float"),
        ("layers:nan", {"layers": [(put(_NET23[0][0], (0, 0), np.nan), _NET23[0][1]), _NET23[1]]}, "ValueError",
         "finite"))),
    ApiSpec(feature_merging.feature_complexity, {"layers": _NET23, "beta": 0.1}, extra=(
        ("beta:negative", {"beta": -0.1}, "ValueError", "beta"),)),
]
from jaxlib_methods.analysis import density_pruning  # noqa: E402

MODULES += (density_pruning,)
_C37, _S37 = np.array([0.1, 0.5, 0.2]), np.array([5, 5, 5])
SPECS += [
    ApiSpec(density_pruning.dbp_quotas, {"complexity": _C37, "cluster_sizes": _S37, "budget": 6, "tau": 0.5}, extra=(
        ("budget:too-large", {"budget": 16}, "ValueError", "budget"),
        ("budget:float", {"budget": 6.0}, "TypeError", "budget"),
        ("tau:0", {"tau": 0.0}, "ValueError", "tau"),
        ("cluster_sizes:float", {"cluster_sizes": _S37.astype(float)}, "ValueError", "cluster_sizes"),
        ("complexity:nan", {"complexity": put(_C37, 0, np.nan)}, "ValueError", "complexity"))),
    ApiSpec(density_pruning.dbp_prune, {"embs": f(12, 2), "n_clusters": 3, "keep_frac": 0.5, "tau": 0.5,
                                        "key": _key()}, extra=(
        ("keep_frac:0", {"keep_frac": 0.0}, "ValueError", "keep_frac"),
        ("n_clusters:1", {"n_clusters": 1}, "ValueError", "n_clusters"),
        ("n_clusters:above-N", {"n_clusters": 13}, "ValueError", "n_clusters"),
        ("embs:int", {"embs": np.ones((12, 2), np.int32)}, "TypeError", "embs"),
        ("iters:0", {"iters": 0}, "ValueError", "iters"))),
]
from jaxlib_methods.analysis import concept_regions  # noqa: E402

MODULES += (concept_regions,)
_M32 = np.arange(16).reshape(4, 4) % 3 == 0
SPECS += [
    ApiSpec(concept_regions.attribution_on_region, {"saliency": f(3, 4, 4), "mask": _M32}, extra=(
        ("mask:shape", {"mask": _M32[:3]}, "ValueError", "mask"),
        ("mask:float", {"mask": _M32.astype(np.float32)}, "TypeError", "mask"),
        ("saliency:int", {"saliency": np.ones((3, 4, 4), np.int32)}, "TypeError", "saliency"),
        ("saliency:1d", {"saliency": f(4), "mask": _M32[0]}, "ValueError", "saliency"))),
]

from jaxlib_methods.analysis import supervised_dictionary  # noqa: E402  (th21d, issue 21 [146])

MODULES += (supervised_dictionary,)
_X146, _A146, _Y146 = f(4, 5).astype(np.float64), f(1, 5).astype(np.float64), np.array([0, 1, 2, 1, 0])
_P146 = supervised_dictionary.SDLParams(f(4, 2).astype(np.float64), f(2, 5).astype(np.float64),
                                        f(2, 2).astype(np.float64), f(1, 2).astype(np.float64))
_E146 = (
    ("X:nan", {"X": put(_X146, (0, 0), np.nan)}, "ValueError", "X"),
    ("X:int", {"X": np.ones((4, 5), np.int32)}, "TypeError", "X"),
    ("X_aux:columns", {"X_aux": _A146[:, :3]}, "ValueError", "X_aux"),
    ("Y:out-of-range", {"Y": np.array([0, 1, 3, 1, 0])}, "ValueError", "Y"),
    ("Y:float", {"Y": _Y146.astype(np.float64)}, "TypeError", "Y"),
    ("xi:negative", {"xi": -1.0}, "ValueError", "xi"),
    ("mode:bad", {"mode": "Z"}, "ValueError", "mode"),
    ("params:tuple", {"params": tuple(_P146)}, "TypeError", "params"),
    ("params:H-shape", {"params": _P146._replace(H=f(2, 4))}, "ValueError", "params.H"))
SPECS += [
    ApiSpec(supervised_dictionary.sdl_objective, {"X": _X146, "Y": _Y146, "X_aux": _A146, "params": _P146, "xi": 1.0},
            extra=_E146 + (("Y:traced-out-of-range", {"Y": np.array([0, 1, 3, 1, 0])}, "nan", "Y", ("Y",)),)),
    ApiSpec(supervised_dictionary.sdl_bcd, {"X": _X146, "Y": _Y146, "X_aux": _A146, "params": _P146, "xi": 1.0,
                                            "num_iters": 2}, extra=_E146 + (
        ("num_iters:0", {"num_iters": 0}, "ValueError", "num_iters"),
        ("nonnegative:negative-init", {"nonnegative": True}, "ValueError", "nonnegative"))),
]

CASES = [c for spec in SPECS for c in api_cases(spec)]
# Probes that compute are slow-ish to compile one by one: the default run keeps every error probe and these
# headline probes of issue 14; `pytest -m slow` runs all.
FAST = {
    "analysis.calibration.expected_calibration_error[labels=3:jit]",
    "analysis.calibration.expected_calibration_error[logits:NaN]",
}


@pytest.mark.parametrize("case", api_case_params(CASES, FAST))
def test_api_case(case):
  run_api_case(case)


def test_every_public_function_is_probed():
  probed = {spec.fn for spec in SPECS}
  public = {f"{mod.__name__}.{name}": obj for mod in MODULES for name, obj in vars(mod).items()
            if not name.startswith("_") and inspect.isfunction(obj) and obj.__module__.startswith("jaxlib_methods")}
  public.update({f"analysis.{name}": getattr(analysis, name) for name in dir(analysis)
                 if not name.startswith("_") and inspect.isfunction(getattr(analysis, name))})
  missing = sorted(name for name, fn in public.items() if fn not in probed)
  assert not missing, f"public analysis functions without an API spec: {missing}"


def test_probabilities_passed_as_logits_warn():
  probs = jax.nn.softmax(LOGITS)
  for fn in (calibration.expected_calibration_error, calibration.brier_score):
    with pytest.warns(UserWarning, match="look like probabilities"):
      fn(probs, LABELS)


def test_report_counts(capsys, record_property):
  counts, line = api_counts_report("api-analysis", len(SPECS), CASES, FAST)
  for k, v in counts.items():
    record_property(k, v)
  with capsys.disabled():
    print("\n" + line)
  assert counts["tried"] == counts["clear_errors"] + counts["nan_propagation"] + counts["valid_outputs"]
