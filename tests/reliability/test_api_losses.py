"""Hostile-input API table for every public function of `jaxlib_methods.losses` (issue 14; rules: docs/conventions.md).

One parametrised table: each public function has a spec (a valid call and the roles of its arguments), and
`jaxlib_methods.testing.api_cases` turns it into probes (wrong dtypes, ranks, NaN/Inf entries, out-of-range labels
eagerly and under jit, empty batches, bfloat16 inputs, bad hyperparameters), each with its documented outcome: a
ValueError/TypeError naming the argument, NaN propagation, or a valid output. `test_every_public_function_is_probed`
keeps the table complete; `test_report_counts` prints how many cases were tried and how they are answered.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import losses
from jaxlib_methods.losses import (aggregate_responses as ag, bd_kd, bias, calibrated_ensemble as ens, cauchy_schwarz
                                   as cs, comp_sum, consistency as cm, contrastive as cl, dexml, ldr, npo, reweighting,
                                   ssl, stablemax as sm, tcm, unnormalized as un)
from jaxlib_methods.losses import (adaptation as ada, dataset_distillation as ddl,  # losses2 (issue 19)
                                   feature_kd as fkd, metric_mixup as mmx, whitening as wh)
from jaxlib_methods.testing import ApiSpec, api_case_params, api_cases, api_counts_report, run_api_case
from jaxlib_methods.losses import cache as lcache, distill  # pipe-distill (issue 22)

MODULES = (ag, bd_kd, bias, ens, cs, comp_sum, cm, cl, dexml, ldr, npo, reweighting, ssl, sm, tcm, un)
MODULES += (distill, lcache)  # pipe-distill (issue 22)
MODULES += (ddl, ada, fkd, wh, mmx)  # losses2 (issue 19)
DEPRECATED = {sm.softmax_cross_entropy}  # warns and forwards to softmax_cross_entropy_with_integer_labels

_rng = np.random.default_rng(0)


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


B, K = 4, 3
LOGITS = f(B, K, scale=2.0)
LABELS = np.array([0, 2, 1, 0], np.int32)
KEY = jax.random.key(0)
W_BAD = np.zeros(B, np.float32)  # a float mask where a bool one is needed
CLS = dict(logits=LOGITS, labels=LABELS)


def cls_spec(fn, extra=(), **kw):
  """A per-example classification loss fn(logits [B, K], labels [B], *, axis, where, ...)."""
  base = (("where:float", {"where": W_BAD}, "TypeError", "where"),
          ("where:shape", {"where": np.ones(B + 1, bool)}, "ValueError", "where"),
          ("axis=2", {"axis": 2}, "ValueError", "axis"),
          ("axis=1.0", {"axis": 1.0}, "TypeError", "axis"))
  args = dict(CLS, **kw.pop("args", {}))
  return ApiSpec(fn, args, floats=kw.pop("floats", ("logits",)), labels={"labels": K},
                 batch=kw.pop("batch", ("logits", "labels")), empty="empty", extra=base + tuple(extra), **kw)


def _zeros_check(out):
  assert np.all(np.asarray(out) == 0), f"empty bags must give 0, got {out}"


def _apply(params, x, sigma):
  return params["w"] * x / (1.0 + sigma[:, None])


N_DATA = 10
ISO_STATE = cl.isogclr_init(N_DATA)
PERM = np.array([2, 0, 3, 1])
SIGMA = np.array([0.5, 1.0, 2.0, 4.0])
SIGMA_NEXT = SIGMA * 1.5
SCORES = f(B, 5)
POS = np.array([[True, False, False, True, False]] + [[False, True, False, False, False]] * 3)
_e = np.asarray(f(5, 3), np.float64)
_e /= np.linalg.norm(_e, axis=-1, keepdims=True)
SIM = (_e @ _e.T).astype(np.float32)
MLC_Z = unit(6, 3)
GAMMA = np.full((6, 6), 1.0 / 6)  # doubly stochastic
KARRAS = np.asarray(cm.karras_sigmas(6))
TOTAL_MASK = np.array([True, False, True, False])
# A noise sample with energy +inf (or log q = +inf) has importance weight exp(-E - log q) = 0: it drops out of the
# estimate of log Z, which is the right (finite) value.
NOISE_INF = {"energy_noise": "finite: an energy of +inf is a zero importance weight",
             "log_q_noise": "finite: log q = +inf is a zero importance weight (the limit)"}

SPECS = [
    # ------------------------------------------------------------------ stablemax [185]
    ApiSpec(sm.stablemax_s, {"x": f(B, K)}, floats=("x",), any_rank=("x",), batch=("x",), empty="empty"),
    ApiSpec(sm.stablemax, {"logits": LOGITS}, floats=("logits",), any_rank=("logits",), batch=("logits",),
            empty="empty", extra=(("axis=2", {"axis": 2}, "ValueError", "axis"),)),
    ApiSpec(sm.log_stablemax, {"logits": LOGITS}, floats=("logits",), any_rank=("logits",), batch=("logits",),
            empty="empty"),
    cls_spec(sm.stablemax_cross_entropy,
             extra=(("where:class-mask-excludes-label", {"where": put(np.ones((B, K), bool), (0, 0), False)},
                     "ValueError", "labels"),)),
    cls_spec(sm.softmax_cross_entropy_with_integer_labels),
    ApiSpec(sm.softmax_collapse_fraction, {"logits": LOGITS}, floats=("logits",), any_rank=("logits",),
            batch=("logits",), empty="error"),
    ApiSpec(sm.zero_loss_fraction, {"per_example_loss": np.array([0.0, 1.0, 2.0, 0.0])},
            floats=("per_example_loss",), any_rank=("per_example_loss",), batch=("per_example_loss",),
            empty="error", inf={"per_example_loss": "finite: the share of exact zeros is defined with an inf loss"}),
    # ------------------------------------------------------------------ LDR [9]
    ApiSpec(ldr.normalize_logits, {"logits": LOGITS}, floats=("logits",), any_rank=("logits",), batch=("logits",),
            empty="empty", extra=(("eps=0", {"eps": 0.0}, "ValueError", "eps"),)),
    cls_spec(ldr.ldr_kl_loss, extra=(
        ("lam=0", {"lam": 0.0}, "ValueError", "lam"),
        ("lam:negative-row", {"lam": np.array([1.0, -1.0, 1.0, 1.0])}, "ValueError", "lam"),
        ("lam:NaN-row", {"lam": np.array([1.0, np.nan, 1.0, 1.0])}, "ValueError", "lam"),
        ("lam:shape", {"lam": np.ones(B + 1)}, "ValueError", "lam"),
        ("lam:negative-row:jit", {"lam": np.array([1.0, -1.0, 1.0, 1.0])}, "nan", "", ("lam",)),
        ("margin<0", {"margin": -0.1}, "ValueError", "margin"))),
    cls_spec(ldr.ldr_kl_worst_case_distribution, extra=(("lam=-1", {"lam": -1.0}, "ValueError", "lam"),)),
    cls_spec(ldr.crammer_singer_loss, extra=(("margin<0", {"margin": -1.0}, "ValueError", "margin"),)),
    ApiSpec(ldr.aldr_kl_init_state, {"num_examples": 5, "lam0": 1.0}, extra=(
        ("num_examples=0", {"num_examples": 0}, "ValueError", "num_examples"),
        ("num_examples=2.5", {"num_examples": 2.5}, "ValueError", "num_examples"),
        ("lam0<0", {"lam0": -1.0}, "ValueError", "lam0"),
        ("lam0=NaN", {"lam0": float("nan")}, "ValueError", "lam0"))),
    cls_spec(ldr.aldr_kl_loss, args={"lam": np.ones(B), "lam0": 1.0, "alpha": 2.0}, extra=(
        ("alpha=0", {"alpha": 0.0}, "ValueError", "alpha"),
        ("alpha=1", {"alpha": 1.0}, "ValueError", "alpha"),
        ("normalize=bad", {"normalize": "l2"}, "ValueError", "normalize"),
        ("lam:NaN-row", {"lam": np.array([1.0, np.nan, 1.0, 1.0])}, "ValueError", "lam"),
        ("lam:zero-row:jit", {"lam": np.array([1.0, 0.0, 1.0, 1.0])}, "nan", "", ("lam",))),
             batch=("logits", "labels", "lam")),
    cls_spec(ldr.aldr_kl_update_lambda, args={"lam": np.ones(B), "lam0": 1.0, "alpha": 2.0}, extra=(
        ("alpha=1", {"alpha": 1.0}, "ValueError", "alpha"),
        ("lam0=0", {"lam0": 0.0}, "ValueError", "lam0"),
        ("lam:negative-row", {"lam": np.array([1.0, -1.0, 1.0, 1.0])}, "ValueError", "lam")),
             batch=("logits", "labels", "lam"), jit_grad=False),
    # ------------------------------------------------------------------ comp-sum [164]
    ApiSpec(comp_sum.comp_sum_tau, {"phi": "gce", "q": 0.7}, extra=(
        ("phi=bad", {"phi": "bad"}, "ValueError", "phi"),
        ("q=0", {"q": 0.0}, "ValueError", "q"),
        ("q=NaN", {"q": float("nan")}, "ValueError", "q"))),
    cls_spec(comp_sum.comp_sum_loss, args={"phi": "gce"}, extra=(
        ("tau<0", {"tau": -1.0}, "ValueError", "tau"),
        ("phi=bad", {"phi": "bad"}, "ValueError", "phi"))),
    cls_spec(comp_sum.smooth_adv_comp_sum_loss, args={"adv_logits": LOGITS + 0.1}, floats=("logits", "adv_logits"),
             batch=("logits", "adv_logits", "labels"), extra=(("nu<0", {"nu": -1.0}, "ValueError", "nu"),)),
    # ------------------------------------------------------------------ bias loss [50]
    ApiSpec(bias.normalized_feature_variance, {"features": f(B, 2, 3)}, floats=("features",),
            any_rank=("features",), batch=("features",), empty="empty",
            extra=(("features:rank1", {"features": f(B)}, "ValueError", "features"),)),
    ApiSpec(bias.bias_loss_weights, {"v": np.linspace(0.0, 1.0, B)}, floats=("v",), any_rank=("v",),
            batch=("v",), empty="empty", extra=(("alpha=NaN", {"alpha": float("nan")}, "ValueError", "alpha"),
                                                ("weight_form=bad", {"weight_form": "bad"}, "ValueError",
                                                 "weight_form"))),
    cls_spec(bias.bias_loss, args={"features": f(B, 2, 3)}, floats=("logits", "features"),
             batch=("logits", "labels", "features"), any_rank=("features",),
             extra=(("features:batch", {"features": f(B + 1, 2)}, "ValueError", "features"),)),
    # ------------------------------------------------------------------ EnsLoss [75]
    ApiSpec(ens.ensloss_margins, {"logits": f(B), "labels": np.array([0, 1, 1, 0])}, floats=("logits",),
            labels={"labels": 2}, batch=("logits", "labels"), empty="empty", extra=(
                ("labels=2", {"labels": np.array([0, 2, 1, 0])}, "ValueError", "labels"),
                ("labels=0.5", {"labels": np.array([0.0, 0.5, 1.0, 0.0])}, "TypeError", "labels"),
                ("labels:bool", {"labels": np.array([False, True, True, False])}, "ok", ""))),
    ApiSpec(ens.sample_calibrated_derivatives, {"key": KEY, "margins": f(B)}, floats=("margins",),
            batch=("margins",), empty="empty",
            inf={"margins": "finite: the superlinear tail g / s tends to 0 as s -> +inf (the derivative's limit)"},
            extra=(("lower>=0", {"lower": 0.5}, "ValueError", "lower"),
                   ("eps=0", {"eps": 0.0}, "ValueError", "eps"))),
    ApiSpec(ens.ensloss, {"margins": f(B), "key": KEY}, floats=("margins",), batch=("margins",), empty="empty"),
    # ------------------------------------------------------------------ BD-KD [76]
    ApiSpec(bd_kd.kl_divergence_from_logits, {"p_logits": LOGITS, "q_logits": f(B, K)},
            floats=("p_logits", "q_logits"), batch=("p_logits", "q_logits"), empty="empty",
            extra=(("temperature=0", {"temperature": 0.0}, "ValueError", "temperature"),)),
    ApiSpec(bd_kd.entropy_from_logits, {"logits": LOGITS}, floats=("logits",), any_rank=("logits",),
            batch=("logits",), empty="empty"),
    ApiSpec(bd_kd.bd_kd_entropy_weights, {"student_logits": LOGITS, "teacher_logits": f(B, K)},
            floats=("student_logits", "teacher_logits"), batch=("student_logits", "teacher_logits"), empty="empty",
            extra=(("high<0", {"high": -1.0}, "ValueError", "high"),)),
    ApiSpec(bd_kd.bd_kd_student_loss, {"student_logits": LOGITS, "teacher_logits": f(B, K), "labels": LABELS},
            floats=("student_logits", "teacher_logits"), labels={"labels": K},
            batch=("student_logits", "teacher_logits", "labels"), empty="empty", extra=(
                ("forward_weight<0", {"forward_weight": -1.0}, "ValueError", "forward_weight"),
                ("reverse_weight:row<0", {"reverse_weight": np.array([1.0, -1.0, 1.0, 1.0])}, "ValueError",
                 "reverse_weight"),
                ("reverse_weight:row<0:jit", {"reverse_weight": np.array([1.0, -1.0, 1.0, 1.0])}, "nan", "",
                 ("reverse_weight",)),
                ("where:float", {"where": W_BAD}, "TypeError", "where"))),
    ApiSpec(bd_kd.online_kd_teacher_loss, {"teacher_logits": LOGITS, "student_logits": f(B, K), "labels": LABELS},
            floats=("teacher_logits", "student_logits"), labels={"labels": K},
            batch=("teacher_logits", "student_logits", "labels"), empty="empty",
            extra=(("temperature<0", {"temperature": -1.0}, "ValueError", "temperature"),)),
    # ------------------------------------------------------------------ loss reweighting [78]
    ApiSpec(reweighting.normalize_batch_losses, {"per_example_loss": f(B)}, floats=("per_example_loss",),
            batch=("per_example_loss",), empty="error"),
    ApiSpec(reweighting.loss_reweighting, {"per_example_loss": f(B)}, floats=("per_example_loss",),
            batch=("per_example_loss",), empty="error", extra=(
                ("strategy=bad", {"strategy": "bad"}, "ValueError", "strategy"),
                ("r=0", {"r": 0.0}, "ValueError", "r"),
                ("delta<0", {"delta": -1.0}, "ValueError", "delta"),
                ("uniform:NaN", {"strategy": "uniform", "per_example_loss": np.array([np.nan, 1.0, 2.0, 3.0])},
                 "nan", ""))),
    ApiSpec(reweighting.reweighted_mean, {"per_example_loss": f(B), "weights": np.ones(B)},
            floats=("per_example_loss", "weights"), batch=("per_example_loss", "weights"), empty="error",
            nan={"weights": "error"}, inf={"weights": "error"}, extra=(
                ("weights<0", {"weights": np.array([1.0, -1.0, 1.0, 1.0])}, "ValueError", "weights"),
                ("weights<0:jit", {"weights": np.array([1.0, -1.0, 1.0, 1.0])}, "nan", "", ("weights",)))),
    # ------------------------------------------------------------------ NPO [182]
    ApiSpec(npo.ga_loss, {"logp": -np.abs(f(B))}, floats=("logp",), any_rank=("logp",), batch=("logp",),
            empty="empty", extra=(("where:float", {"where": W_BAD}, "TypeError", "where"),)),
    ApiSpec(npo.npo_loss, {"logp": -np.abs(f(B)), "logp_ref": -np.abs(f(B))}, floats=("logp", "logp_ref"),
            batch=("logp", "logp_ref"), empty="empty",
            inf={"logp_ref": "finite: the loss tends to 0 as log pi_ref -> +inf (the limit; NPO does not check that "
                             "log-probabilities are <= 0)"},
            extra=(("beta=0", {"beta": 0.0}, "ValueError", "beta"),
                   ("where:shape", {"where": np.ones(B + 1, bool)}, "ValueError", "where"))),
    ApiSpec(npo.npo_weight, {"logp": -np.abs(f(B)), "logp_ref": -np.abs(f(B))}, floats=("logp", "logp_ref"),
            batch=("logp", "logp_ref"), empty="empty",
            inf={"logp_ref": "finite: W tends to 0 as log pi_ref -> +inf (the limit)",
                 "logp": "finite: W tends to 2 as log pi -> +inf (the limit)"},
            extra=(("beta<0", {"beta": -1.0}, "ValueError", "beta"),)),
    ApiSpec(npo.sequence_log_prob, {"logits": f(2, 3, 5), "targets": np.array([[0, 4, 1], [2, 3, 0]])},
            floats=("logits",), labels={"targets": 5}, batch=("logits", "targets"), empty="empty", extra=(
                ("mask:shape", {"mask": np.ones((2, 4))}, "ValueError", "mask"),
                ("masked-target-unchecked", {"targets": np.array([[0, 4, -100], [2, 3, 0]]),
                                             "mask": np.array([[1, 1, 0], [1, 1, 1]])}, "ok", ""))),
    # ------------------------------------------------------------------ aggregate responses [194]
    ApiSpec(ag.squared_loss, {"target": f(B), "pred": f(B)}, floats=("target", "pred"),
            any_rank=("target", "pred"), batch=("target", "pred"), empty="empty"),
    ApiSpec(ag.bag_level_loss, {"preds": f(6), "bag_ids": np.array([0, 0, 1, 1, 2, 2]), "bag_responses": f(3),
                                "num_bags": 3}, floats=("preds", "bag_responses"), labels={"bag_ids": 3},
            batch=("preds", "bag_ids"), empty=_zeros_check, extra=(
                ("num_bags=0", {"num_bags": 0}, "ValueError", "num_bags"),)),
    ApiSpec(ag.instance_level_loss, {"preds": f(6), "bag_ids": np.array([0, 0, 1, 1, 2, 2]), "bag_responses": f(3),
                                     "num_bags": 3}, floats=("preds", "bag_responses"), labels={"bag_ids": 3},
            batch=("preds", "bag_ids"), empty="empty"),
    ApiSpec(ag.interpolating_loss, {"preds": f(6), "bag_ids": np.array([0, 0, 1, 1, 2, 2]), "bag_responses": f(3),
                                    "num_bags": 3, "rho": 0.5}, floats=("preds", "bag_responses"),
            labels={"bag_ids": 3}, batch=("preds", "bag_ids"), empty=_zeros_check, extra=(
                ("rho=1.5", {"rho": 1.5}, "ValueError", "rho"),)),
    ApiSpec(ag.within_bag_variance, {"preds": f(6), "bag_ids": np.array([0, 0, 1, 1, 2, 2]), "num_bags": 3},
            floats=("preds",), labels={"bag_ids": 3}, batch=("preds", "bag_ids"), empty=_zeros_check),
    # ------------------------------------------------------------------ DEXML [213]
    ApiSpec(dexml.decoupled_softmax_loss, {"scores": SCORES, "pos_mask": POS}, floats=("scores",),
            batch=("scores", "pos_mask"), empty="empty",
            extra=(("pos_mask:float", {"pos_mask": POS.astype(np.float32)}, "TypeError", "pos_mask"),
                   ("NaN-among-negatives", {"scores": put(SCORES, (0, 1), np.nan)}, "nan", ""))),
    ApiSpec(dexml.multi_positive_softmax_loss, {"scores": SCORES, "pos_mask": POS}, floats=("scores",),
            batch=("scores", "pos_mask"), empty="empty"),
    ApiSpec(dexml.soft_topk_threshold, {"scores": SCORES, "k": 2}, floats=("scores",), batch=("scores",),
            empty="empty", extra=(("k=0", {"k": 0}, "ValueError", "k"), ("k=L", {"k": 5}, "ValueError", "k"),
                                  ("k:row=L:jit", {"k": np.array([2.0, 5.0, 2.0, 2.0])}, "nan", "", ("k",)),
                                  ("alpha=0", {"alpha": 0.0}, "ValueError", "alpha"))),
    ApiSpec(dexml.soft_topk_loss, {"scores": SCORES, "pos_mask": POS, "k": 2}, floats=("scores",),
            batch=("scores", "pos_mask"), empty="empty", extra=(
                ("k=NaN", {"k": float("nan")}, "ValueError", "k"),
                ("n_iter=0", {"n_iter": 0}, "ValueError", "n_iter"),
                ("NaN-among-negatives", {"scores": put(SCORES, (0, 1), np.nan)}, "nan", ""))),
    # ------------------------------------------------------------------ TCM [10]
    ApiSpec(tcm.cosine_similarity_matrix, {"embeddings": f(5, 3)}, floats=("embeddings",),
            batch=("embeddings",), empty="empty"),
    ApiSpec(tcm.tcm_loss_from_similarity, {"sim": SIM, "labels": np.array([0, 0, 1, 1, 2])}, floats=("sim",),
            at={"sim": 1}, batch=("sim", "labels"), empty="error", extra=(
                ("labels:float", {"labels": np.zeros(5)}, "TypeError", "labels"),
                ("m_pos=2", {"m_pos": 2.0}, "ValueError", "m_pos"),
                ("NaN-on-diagonal-ignored", {"sim": put(SIM, (0, 0), np.nan)}, "ok", ""))),
    ApiSpec(tcm.tcm_loss, {"embeddings": f(5, 3), "labels": np.array([0, 0, 1, 1, 2])}, floats=("embeddings",),
            batch=("embeddings", "labels"), empty="error",
            extra=(("labels:float", {"labels": np.zeros(5)}, "TypeError", "labels"),)),
    ApiSpec(tcm.opis, {"sim": SIM, "labels": np.array([0, 0, 1, 1, 2]), "thresholds": np.linspace(-1.0, 1.0, 5),
                       "num_classes": 3}, floats=("sim", "thresholds"), at={"sim": 1}, labels={"labels": 3},
            jit_grad=False, batch=("sim", "labels"), empty="error",
            extra=(("num_classes=0", {"num_classes": 0}, "ValueError", "num_classes"),)),
    ApiSpec(tcm.epsilon_opis, {"sim": SIM, "labels": np.array([0, 0, 1, 1, 2]),
                               "thresholds": np.linspace(-1.0, 1.0, 5), "num_classes": 3, "epsilon": 0.3},
            floats=("sim", "thresholds"), at={"sim": 1}, labels={"labels": 3}, jit_grad=False, batch=("sim", "labels"),
            empty="error", extra=(("num_classes=0", {"num_classes": 0}, "ValueError", "num_classes"),
                                  ("epsilon=0", {"epsilon": 0.0}, "ValueError", "epsilon"),
                                  ("epsilon=0.6", {"epsilon": 0.6}, "ValueError", "epsilon"))),
    # ------------------------------------------------------------------ consistency models [2] [3]
    ApiSpec(cm.default_pseudo_huber_c, {"dim": 16}, extra=(("dim=0", {"dim": 0}, "ValueError", "dim"),
                                                          ("dim=2.5", {"dim": 2.5}, "TypeError", "dim"))),
    ApiSpec(cm.pseudo_huber_loss, {"x": f(B, 2, 3), "y": f(B, 2, 3)}, floats=("x", "y"), batch=("x", "y"),
            empty="empty", extra=(("c=0", {"c": 0.0}, "ValueError", "c"),
                                  ("dtype-mismatch", {"y": f(B, 2, 3).astype(jnp.bfloat16)}, "ValueError", "dtype"))),
    ApiSpec(cm.cauchy_loss, {"x": f(B, 2, 3), "y": f(B, 2, 3), "c": 0.5}, floats=("x", "y"), batch=("x", "y"),
            empty="empty", extra=(("c<0", {"c": -1.0}, "ValueError", "c"),
                                  ("reduction=bad", {"reduction": "bad"}, "ValueError", "reduction"))),
    ApiSpec(cm.karras_sigmas, {"num_scales": 5}, extra=(
        ("num_scales=1", {"num_scales": 1}, "ValueError", "num_scales"),
        ("num_scales=2.5", {"num_scales": 2.5}, "ValueError", "num_scales"),
        ("sigma_min<0", {"sigma_min": -1.0}, "ValueError", "sigma_min"),
        ("sigma_max<sigma_min", {"sigma_max": 0.001}, "ValueError", "sigma_max"),
        ("rho=0", {"rho": 0.0}, "ValueError", "rho"))),
    ApiSpec(cm.ict_num_scales, {"step": 10, "total_steps": 100}, extra=(
        ("step<0", {"step": -1}, "ValueError", "step"),
        ("total_steps=0", {"total_steps": 0}, "ValueError", "total_steps"),
        ("s1<s0", {"s0": 20, "s1": 10}, "ValueError", "s1"))),
    ApiSpec(cm.lognormal_sigma_probs, {"sigmas": KARRAS}, floats=("sigmas",), batch=("sigmas",),
            empty="error", nan={"sigmas": "error"}, inf={"sigmas": "error"}, extra=(
                ("sigmas:decreasing", {"sigmas": KARRAS[::-1]}, "ValueError", "sigmas"),
                ("sigmas:decreasing:jit", {"sigmas": KARRAS[::-1]}, "nan", "", ("sigmas",)),
                ("p_std=0", {"p_std": 0.0}, "ValueError", "p_std"))),
    ApiSpec(cm.sample_sigma_indices, {"key": KEY, "sigmas": KARRAS, "shape": (B,)}, floats=("sigmas",),
            batch=("sigmas",), empty="error", nan={"sigmas": "error"}, inf={"sigmas": "error"}),
    ApiSpec(cm.ict_weight, {"sigma": SIGMA, "sigma_next": SIGMA_NEXT}, floats=("sigma", "sigma_next"),
            any_rank=("sigma", "sigma_next"), batch=("sigma", "sigma_next"), empty="empty",
            nan={"sigma": "error", "sigma_next": "error"}, inf={"sigma": "error", "sigma_next": "error"}, extra=(
                ("sigma>sigma_next", {"sigma": SIGMA_NEXT, "sigma_next": SIGMA}, "ValueError", "sigma_next"),
                ("sigma>sigma_next:jit", {"sigma": SIGMA_NEXT, "sigma_next": SIGMA}, "nan", "",
                 ("sigma", "sigma_next")))),
    ApiSpec(cm.consistency_skip_out, {"sigma": SIGMA}, floats=("sigma",), any_rank=("sigma",), batch=("sigma",),
            empty="empty"),
    ApiSpec(cm.consistency_loss, {"apply_fn": _apply, "params": {"w": np.float32(0.7)}, "x": f(B, 2),
                                  "noise": f(B, 2), "sigma": SIGMA, "sigma_next": SIGMA_NEXT},
            floats=("x", "noise", "sigma", "sigma_next"), batch=("x", "noise", "sigma", "sigma_next"), empty="empty",
            nan={"sigma": "error", "sigma_next": "error"}, inf={"sigma": "error", "sigma_next": "error"}, extra=(
                ("sigma>sigma_next", {"sigma": SIGMA_NEXT, "sigma_next": SIGMA}, "ValueError", "sigma_next"),
                ("sigma>sigma_next:jit", {"sigma": SIGMA_NEXT, "sigma_next": SIGMA}, "nan", "",
                 ("sigma", "sigma_next")),
                ("sigma<0", {"sigma": -SIGMA}, "ValueError", "sigma"))),
    ApiSpec(cm.ot_minibatch_coupling, {"noise": f(B, 2), "x": f(B, 2)}, floats=("noise", "x"),
            batch=("noise", "x"), empty="empty", nan={"noise": "error", "x": "error"},
            inf={"noise": "error", "x": "error"}),
    ApiSpec(cm.lct_adaptive_c, {"num_scales": 11}, extra=(
        ("num_scales=1", {"num_scales": 1}, "ValueError", "num_scales"),
        ("slope=NaN", {"slope": float("nan")}, "ValueError", "slope"),
        ("start_scales-without-initial_c", {"start_scales": 10}, "ValueError", "initial_c"),
        ("multiplier=0", {"multiplier": 0.0}, "ValueError", "multiplier"))),
    ApiSpec(cm.early_timestep_mask, {"indices": np.array([0, 3, 8, 9]), "num_scales": 11},
            labels={"indices": 10}, jit_labels=False, batch=("indices",), empty="empty", extra=(
                ("diff_rate=1.5", {"diff_rate": 1.5}, "ValueError", "diff_rate"),
                ("num_scales=1", {"num_scales": 1}, "ValueError", "num_scales"))),
    ApiSpec(cm.edm_diffusion_weight, {"sigma": SIGMA}, floats=("sigma",), any_rank=("sigma",), batch=("sigma",),
            empty="empty", nan={"sigma": "error"}, inf={"sigma": "error"}, extra=(
                ("sigma=0", {"sigma": put(SIGMA, 0, 0.0)}, "ValueError", "sigma"),
                ("sigma<0:jit", {"sigma": -SIGMA}, "nan", "", ("sigma",)),
                ("sigma_data=0", {"sigma_data": 0.0}, "ValueError", "sigma_data"))),
    ApiSpec(cm.lct_diffusion_loss, {"denoised": f(B, 2), "x": f(B, 2), "sigma": SIGMA},
            floats=("denoised", "x", "sigma"), batch=("denoised", "x", "sigma"), empty="empty",
            nan={"sigma": "error"}, inf={"sigma": "error"}),
    ApiSpec(cm.lct_total_loss, {"consistency_losses": np.abs(f(B)), "diffusion_losses": np.abs(f(B)),
                                "mask": TOTAL_MASK}, floats=("consistency_losses", "diffusion_losses"),
            batch=("consistency_losses", "diffusion_losses", "mask"), empty="error", extra=(
                ("mask:float", {"mask": TOTAL_MASK.astype(np.float32)}, "TypeError", "mask"),
                ("diff_lambda<0", {"diff_lambda": -1.0}, "ValueError", "diff_lambda"),
                ("NaN-outside-mask-ignored", {"diffusion_losses": np.array([1.0, np.nan, 1.0, 1.0])}, "ok", ""))),
    # ------------------------------------------------------------------ Cauchy-Schwarz IB [4]
    ApiSpec(cs.gaussian_gram_log, {"a": f(5, 2), "b": f(4, 2), "sigma": 1.0}, floats=("a", "b"),
            batch=("a",), empty="error", extra=(("sigma=0", {"sigma": 0.0}, "ValueError", "sigma"),)),
    ApiSpec(cs.cs_divergence, {"x": f(5, 2), "y": f(4, 2), "sigma": 1.0}, floats=("x", "y"), batch=("x",),
            empty="error", extra=(("sigma<0", {"sigma": -1.0}, "ValueError", "sigma"),)),
    ApiSpec(cs.conditional_cs_divergence, {"x": f(5, 2), "y": f(5, 1), "y_hat": f(5, 1), "sigma_x": 1.0},
            floats=("x", "y", "y_hat"), batch=("x", "y", "y_hat"), empty="error"),
    ApiSpec(cs.cs_qmi, {"x": f(5, 2), "t": f(5, 3), "sigma_x": 1.0}, floats=("x", "t"), batch=("x", "t"),
            empty="error"),
    ApiSpec(cs.cs_ib_loss, {"x": f(5, 2), "t": f(5, 3), "y": f(5, 1), "y_hat": f(5, 1), "beta": 0.1,
                            "sigma_x": 1.0}, floats=("x", "t", "y", "y_hat"), batch=("x", "t", "y", "y_hat"),
            empty="error", extra=(("beta<0", {"beta": -1.0}, "ValueError", "beta"),)),
    # ------------------------------------------------------------------ contrastive [183] [83] [119] [54]
    ApiSpec(cl.robust_contrastive_loss, {"sim_pos": f(B), "sim_neg": f(B, 5), "tau": 0.5, "rho": 0.1},
            floats=("sim_pos", "sim_neg"), batch=("sim_pos", "sim_neg"), empty="empty", extra=(
                ("tau=0", {"tau": 0.0}, "ValueError", "tau"),
                ("tau:row<0", {"tau": np.array([0.5, -0.5, 0.5, 0.5])}, "ValueError", "tau"),
                ("tau:row<0:jit", {"tau": np.array([0.5, -0.5, 0.5, 0.5])}, "nan", "", ("tau",)),
                ("rho<0", {"rho": -1.0}, "ValueError", "rho"))),
    ApiSpec(cl.isogclr_init, {"num_examples": 5}, extra=(
        ("num_examples=0", {"num_examples": 0}, "ValueError", "num_examples"),
        ("tau_init=0", {"tau_init": 0.0}, "ValueError", "tau_init"))),
    ApiSpec(cl.isogclr_loss, {"z1": f(B, 3), "z2": f(B, 3), "index": np.array([3, 0, 7, 5]), "state": ISO_STATE},
            floats=("z1", "z2"), labels={"index": N_DATA}, batch=("z1", "z2", "index"), empty="error", extra=(
                ("index:duplicate", {"index": np.array([3, 3, 7, 5])}, "ValueError", "index"),
                ("index:duplicate:jit", {"index": np.array([3, 3, 7, 5])}, "nan", "", ("index",)),
                ("state:type", {"state": (1, 2)}, "TypeError", "state"),
                ("gamma=0", {"gamma": 0.0}, "ValueError", "gamma"),
                ("tau_min>tau_max", {"tau_min": 0.5, "tau_max": 0.1}, "ValueError", "tau_min"),
                ("grad_clip=0", {"grad_clip": 0.0}, "ValueError", "grad_clip"))),
    ApiSpec(cl.mochi_negatives, {"key": KEY, "q": f(B, 3), "queue": f(8, 3), "num_hard": 4, "num_mix": 3,
                                 "num_query_mix": 2}, floats=("q", "queue"), batch=("q",), empty="empty", extra=(
                                     ("num_hard>K", {"num_hard": 9}, "ValueError", "num_hard"),
                                     ("beta_max=0.7", {"beta_max": 0.7}, "ValueError", "beta_max"))),
    ApiSpec(cl.mochi_infonce, {"q": f(B, 3), "k": f(B, 3), "queue": f(8, 3), "synthetic": f(B, 2, 3)},
            floats=("q", "k", "queue", "synthetic"), batch=("q", "k", "synthetic"), empty="empty",
            extra=(("temperature=0", {"temperature": 0.0}, "ValueError", "temperature"),)),
    ApiSpec(cl.geodesic_mixup, {"a": unit(B, 3), "b": unit(B, 3), "lam": 0.3}, floats=("a", "b"),
            batch=("a", "b"), empty="empty", extra=(
                ("lam=1.5", {"lam": 1.5}, "ValueError", "lam"),
                ("lam:row=1.5", {"lam": np.array([0.3, 1.5, 0.3, 0.3])}, "ValueError", "lam"),
                ("lam:row=1.5:jit", {"lam": np.array([0.3, 1.5, 0.3, 0.3])}, "nan", "", ("lam",)))),
    ApiSpec(cl.m2mix_loss, {"image": f(B, 3), "text": f(B, 3), "lam": 0.4}, floats=("image", "text"),
            batch=("image", "text"), empty="empty", extra=(("lam<0", {"lam": -0.1}, "ValueError", "lam"),)),
    ApiSpec(cl.alignment_loss, {"x": unit(B, 3), "y": unit(B, 3)}, floats=("x", "y"), batch=("x", "y"),
            empty="empty", extra=(("alpha=0", {"alpha": 0.0}, "ValueError", "alpha"),)),
    ApiSpec(cl.uniformity_loss, {"z": unit(5, 3)}, floats=("z",), batch=("z",), empty="error",
            extra=(("one-point", {"z": unit(1, 3)}, "ValueError", "z"), ("t=0", {"t": 0.0}, "ValueError", "t"))),
    ApiSpec(cl.mcl_info_nce, {"z1": f(B, 3), "z2": f(B, 3), "cluster_ids": np.array([0, 0, 1, 1])},
            floats=("z1", "z2"), batch=("z1", "z2", "cluster_ids"), empty="empty", extra=(
                ("cluster_ids:float", {"cluster_ids": np.zeros(B)}, "TypeError", "cluster_ids"),
                ("temperature=0", {"temperature": 0.0}, "ValueError", "temperature"))),
    # ------------------------------------------------------------------ SSL [91] [120] [96]
    ApiSpec(ssl.standardize, {"z": f(5, 3)}, floats=("z",), batch=("z",), empty="error",
            extra=(("ddof=2", {"ddof": 2}, "ValueError", "ddof"),)),
    ApiSpec(ssl.barlow_twins_loss, {"z1": f(5, 3), "z2": f(5, 3)}, floats=("z1", "z2"), batch=("z1", "z2"),
            empty="error", extra=(("lambd<0", {"lambd": -1.0}, "ValueError", "lambd"),)),
    ApiSpec(ssl.mixed_barlow_twins_regularizer, {"z1": f(B, 3), "z2": f(B, 3), "z_mix": f(B, 3), "perm": PERM,
                                                 "alpha": 0.3, "lambd": 0.5},
            floats=("z1", "z2", "z_mix"), labels={"perm": B}, batch=("z1", "z2", "z_mix", "perm"), empty="error",
            extra=(("perm:not-a-permutation", {"perm": np.array([0, 0, 1, 2])}, "ValueError", "perm"),
                   ("alpha=2", {"alpha": 2.0}, "ValueError", "alpha"))),
    ApiSpec(ssl.ey_gep_loss, {"a": np.eye(3) + 0.1, "b1": np.eye(3), "u": f(3, 2)}, floats=("a", "b1", "u")),
    ApiSpec(ssl.cca_ey_loss, {"zx": f(5, 2), "zy": f(5, 2)}, floats=("zx", "zy"), batch=("zx", "zy"),
            empty="error", extra=(("zx2-without-zy2", {"zx2": f(5, 2)}, "ValueError", "zy2"),)),
    ApiSpec(ssl.ssl_ey_loss, {"z1": f(5, 2), "z2": f(5, 2)}, floats=("z1", "z2"), batch=("z1", "z2"),
            empty="error", extra=(("z1_b-without-z2_b", {"z1_b": f(5, 2)}, "ValueError", "z2_b"),)),
    ApiSpec(ssl.pls_ey_loss, {"zx": f(5, 2), "zy": f(5, 2), "ux": f(4, 2), "uy": f(3, 2)},
            floats=("zx", "zy", "ux", "uy"), batch=("zx", "zy"), empty="error"),
    ApiSpec(ssl.coding_rate, {"z": MLC_Z}, floats=("z",), batch=("z",), empty="error",
            extra=(("eps=0", {"eps": 0.0}, "ValueError", "eps"),)),
    ApiSpec(ssl.mlc_compression_rate, {"z": MLC_Z, "gamma": GAMMA}, floats=("z", "gamma"), extra=(
        ("gamma<0", {"gamma": put(GAMMA, (0, 1), -0.5)}, "ValueError", "gamma"),
        ("gamma<0:jit", {"gamma": put(GAMMA, (0, 1), -0.5)}, "nan", "", ("gamma",)))),
    ApiSpec(ssl.mlc_loss, {"z": MLC_Z, "gamma": GAMMA}, floats=("z", "gamma")),
    ApiSpec(ssl.doubly_stochastic, {"s": MLC_Z @ MLC_Z.T}, floats=("s",), batch=("s",), empty="error", extra=(
        ("eta=0", {"eta": 0.0}, "ValueError", "eta"), ("num_iters=0", {"num_iters": 0}, "ValueError", "num_iters"))),
    # ------------------------------------------------------------------ unnormalised models [201]
    ApiSpec(un.compositional_init, {}, extra=(("dtype=int32", {"dtype": np.int32}, "TypeError", "dtype"),)),
    ApiSpec(un.log_partition_estimate, {"energy_noise": f(6), "log_q_noise": f(6)},
            floats=("energy_noise", "log_q_noise"), batch=("energy_noise", "log_q_noise"), empty="error",
            inf=NOISE_INF),
    ApiSpec(un.unnormalized_nll, {"energy_data": f(B), "energy_noise": f(6), "log_q_noise": f(6)},
            floats=("energy_data", "energy_noise", "log_q_noise"), batch=("energy_data",), empty="error",
            inf=NOISE_INF),
    ApiSpec(un.compositional_nll_loss, {"energy_data": f(B), "energy_noise": f(6), "log_q_noise": f(6),
                                        "state": un.compositional_init(), "gamma": 0.5},
            floats=("energy_data", "energy_noise", "log_q_noise"), batch=("energy_data",), empty="error",
            inf=NOISE_INF, extra=(
                ("gamma=0", {"gamma": 0.0}, "ValueError", "gamma"),
                ("state:type", {"state": None}, "TypeError", "state"))),
    ApiSpec(un.nce_loss, {"log_model_data": f(B), "log_model_noise": f(6), "log_q_data": f(B),
                          "log_q_noise": f(6)},
            floats=("log_model_data", "log_model_noise", "log_q_data", "log_q_noise"),
            batch=("log_model_data", "log_q_data"), empty="error", extra=(("nu=0", {"nu": 0.0}, "ValueError", "nu"),)),
    # ---------------------------------------------------------- pipe-distill (issue 22): [148] [12] [88] [77] [53] [68]
    ApiSpec(distill.decoupled_distill_loss, {"student_emb": f(B, 3, 2), "teacher_emb": f(B, 3, 2)},
            floats=("student_emb", "teacher_emb"), batch=("student_emb", "teacher_emb"), empty="empty",
            extra=(("where:float", {"where": W_BAD}, "TypeError", "where"),)),
    ApiSpec(distill.head_distillation_loss, {"student_feats": f(B, 3), "teacher_feats": f(B, 3)},
            floats=("student_feats", "teacher_feats"), batch=("student_feats", "teacher_feats"), empty="empty",
            extra=(("layer_weights<0", {"layer_weights": (-1.0,)}, "ValueError", "layer_weights"),
                   ("reduction=max", {"reduction": "max"}, "ValueError", "reduction"))),
    ApiSpec(distill.robust_kd_loss, {"student_logits": LOGITS, "teacher_logits": f(B, K), "labels": LABELS},
            floats=("student_logits", "teacher_logits"), labels={"labels": K},
            batch=("student_logits", "teacher_logits", "labels"), empty="empty", extra=(
                ("alpha=1.5", {"alpha": 1.5}, "ValueError", "alpha"),
                ("temperature=0", {"temperature": 0.0}, "ValueError", "temperature"),
                ("where:float", {"where": W_BAD}, "TypeError", "where"))),
    ApiSpec(distill.partial_unfreeze_labels, {"params": {"a": np.ones(2), "b": {"c": np.ones(3)}}, "trainable": ("b",)},
            extra=(("trainable=3", {"trainable": 3}, "TypeError", "trainable"),
                   ("trainable:no-match", {"trainable": ("z",)}, "ValueError", "trainable"))),
    ApiSpec(distill.momentum_gs_block_weights, {"psnr": np.array([24.0, 26.0, 25.0]), "ssim": np.array([0.8, 0.9, 0.7]),
                                                "sigma": 2.0},
            floats=("psnr", "ssim"), batch=("psnr", "ssim"), empty="error",
            extra=(("sigma=0", {"sigma": 0.0}, "ValueError", "sigma"),
                   ("ssim:shape", {"ssim": np.ones(2)}, "ValueError", "ssim"))),
    ApiSpec(lcache.harmonica_router_objective, {"pred_cached": f(B, 3), "pred_full": f(B, 3),
                                                "router": np.array([0.2, 0.9, 0.5]), "lam": 0.1},
            floats=("pred_cached", "pred_full", "router"), any_rank=("router",), batch=("pred_cached", "pred_full"),
            empty="empty", nan={"router": "error"}, inf={"router": "error"}, extra=(
                ("lam<0", {"lam": -1.0}, "ValueError", "lam"),
                ("router>1", {"router": np.array([0.2, 1.5, 0.5])}, "ValueError", "router"),
                ("router>1:jit", {"router": np.array([0.2, 1.5, 0.5])}, "nan", "", ("router",)),
                ("error_weight:row<0", {"error_weight": np.array([1.0, -1.0, 1.0, 1.0])}, "ValueError",
                 "error_weight"))),
    ApiSpec(lcache.marginal_entropy_loss, {"logits": LOGITS}, floats=("logits",), batch=("logits",), empty="error",
            extra=(("axis=2", {"axis": 2}, "ValueError", "axis"),)),
]

# ---- pipe-signal (issue 22): FlipNeRF [0], DDC [8], AU-GAN [80], Denoising as Adaptation [171], Noise2Recon [174]
from jaxlib_methods.losses import mri, nerf, restoration, translation  # noqa: E402

MODULES = MODULES + (mri, nerf, restoration, translation)
R3 = f(B, 3)
Y_K = (f(B, 4, 4) + 1j * f(B, 4, 4)).astype(np.complex64)
K_MASK = np.arange(B * 16).reshape(B, 4, 4) % 3 == 0


def _eps_fn(xt, t, c):
  return 0.5 * xt + jnp.mean(c.reshape(c.shape[0], int(np.prod(c.shape[1:]))), axis=1).reshape((-1,) + (1,) * (xt.ndim - 1))


def _recon(k):
  return jnp.abs(jnp.fft.ifft2(k, norm="ortho"))


SPECS += [
    ApiSpec(nerf.flipped_reflection_rays, {"origins": R3, "directions": f(B, 3), "normals": f(B, 3) + 1.0,
                                           "t": np.abs(f(B)) + 0.5},
            floats=("origins", "directions", "normals", "t"), batch=("origins", "directions", "normals", "t"),
            empty="empty", extra=(("normalize_normals=1", {"normalize_normals": 1}, "TypeError", "normalize_normals"),)),
    ApiSpec(nerf.uncertainty_aware_emptiness_loss, {"weights": np.abs(f(B, 5)), "uncertainty": np.abs(f(B, 5, 3))},
            floats=("weights", "uncertainty"), batch=("weights", "uncertainty"), empty="empty", extra=(
                ("weights<0", {"weights": -np.abs(f(B, 5))}, "ValueError", "weights"),
                ("weights<0:jit", {"weights": -np.abs(f(B, 5))}, "nan", "", ("weights",)),
                ("eta=0", {"eta": 0.0}, "ValueError", "eta"))),
    ApiSpec(translation.ddc_direction, {"source_features": f(6, 3), "target_features": f(2, 3)},
            floats=("source_features", "target_features"), batch=("source_features", "target_features"),
            empty="error", extra=(("D-mismatch", {"target_features": f(2, 4)}, "ValueError", "target_features"),)),
    ApiSpec(translation.directional_distribution_consistency_loss,
            {"source_features": f(B, 3), "generated_features": f(B, 3), "direction": f(3)},
            floats=("source_features", "generated_features", "direction"),
            batch=("source_features", "generated_features"), empty="empty"),
    ApiSpec(translation.uncertainty_cycle_loss, {"x": f(B, 2, 2, 3), "x_rec": f(B, 2, 2, 3), "log_sigma": f(B, 2, 2, 1)},
            floats=("x", "x_rec", "log_sigma"), batch=("x", "x_rec", "log_sigma"), empty="empty",
            extra=(("residual_weight=0", {"residual_weight": 0.0}, "ValueError", "residual_weight"),)),
    ApiSpec(restoration.conditioned_diffusion_loss,
            {"eps_fn": _eps_fn, "x0": f(B, 2, 2, 3), "cond": f(B, 2, 2, 6), "t": np.arange(B),
             "alpha_bar": np.array([0.9, 0.5, 0.1, 1.0], np.float32), "key": KEY},
            floats=("x0", "cond", "alpha_bar"), any_rank=("x0", "cond"), batch=("x0", "cond", "alpha_bar"),
            empty="empty", inf={"alpha_bar": "error"}, extra=(
                ("alpha_bar=0", {"alpha_bar": np.zeros(B, np.float32)}, "ValueError", "alpha_bar"),
                ("alpha_bar=0:jit", {"alpha_bar": np.zeros(B, np.float32)}, "nan", "", ("alpha_bar",)),
                ("reduction=bad", {"reduction": "max"}, "ValueError", "reduction"),
                ("eps_fn:None", {"eps_fn": None}, "TypeError", "eps_fn"))),
    ApiSpec(restoration.downsampled_invariance_loss,
            {"unmasked_output": f(B, 4, 4, 3), "masked_sub_output": f(B, 2, 2, 3),
             "index": (np.arange(B * 4).reshape(B, 2, 2) % 4).astype(np.int32)},
            floats=("unmasked_output", "masked_sub_output"), batch=("unmasked_output", "masked_sub_output", "index"),
            empty="empty", extra=(
                ("index=4", {"index": np.full((B, 2, 2), 4, np.int32)}, "ValueError", "index"),
                ("index:float", {"index": np.zeros((B, 2, 2), np.float32)}, "TypeError", "index"),
                ("index=4:jit", {"index": np.full((B, 2, 2), 4, np.int32)}, "nan", "", ("index",)),
                ("stride=0", {"stride": 0}, "ValueError", "stride"))),
    ApiSpec(mri.noise2recon_consistency_loss,
            {"recon_fn": _recon, "y": Y_K, "mask": K_MASK, "key": KEY, "sigma": np.full(B, 0.3, np.float32)},
            batch=("y", "mask", "sigma"), empty="empty", extra=(
                ("y:NaN", {"y": put(Y_K, (0, 0, 0), np.nan)}, "nan", ""),
                ("y:int32", {"y": np.zeros((B, 4, 4), np.int32)}, "TypeError", "y"),
                ("mask:float", {"mask": K_MASK.astype(np.float32)}, "TypeError", "mask"),
                ("sigma<0", {"sigma": -1.0}, "ValueError", "sigma"),
                ("sigma:shape", {"sigma": np.ones(B + 1, np.float32)}, "ValueError", "sigma"),
                ("sigma<0:jit", {"sigma": np.full(B, -1.0, np.float32)}, "nan", "", ("sigma",)),
                ("metric=bad", {"metric": "ssim"}, "ValueError", "metric"))),
    # ---- pipe-sampling (issue 22): conjugate-prior ELBO [180]
    ApiSpec(losses.conjugate_prior_elbo_loss, {"x": f(B), "mu": f(B), "m2": np.abs(f(B)) + 0.1,
                                               "alpha": np.abs(f(B)) + 1.0, "beta": np.abs(f(B)) + 0.1, "y": f(B)},
            floats=("x", "mu", "m2", "alpha", "beta", "y"), batch=("x", "mu", "m2", "alpha", "beta", "y"),
            empty="empty", extra=(("m2<0", {"m2": -np.abs(f(B)) - 0.1}, "ValueError", "m2"),
                                  ("eps2=0", {"eps2": 0.0}, "ValueError", "eps2"))),
]


# ---- losses2 (issue 19): dataset distillation [60]
def _lin_inner(w, x, y):
  return 0.5 * jnp.mean(jnp.sum((x @ w - y) ** 2, axis=-1))


_DD = {"inner_loss": _lin_inner, "start_params": f(3, 2), "target_params": f(3, 2), "syn_x": f(B, 3),
       "syn_y": f(B, 2), "lr": 0.1, "batch_indices": np.array([[0, 1], [2, 3], [1, 3]], np.int32)}
_DD_EXTRA = (("lr=0", {"lr": 0.0}, "ValueError", "lr"),
             ("batch_indices:rank1", {"batch_indices": np.array([0, 1], np.int32)}, "ValueError", "batch_indices"),
             ("syn_y:rows", {"syn_y": f(B - 1, 2)}, "ValueError", "syn_y"),
             ("target_params:shape", {"target_params": f(2, 2)}, "ValueError", "target_params"))
SPECS += [
    ApiSpec(ddl.mtt_loss, {"student_params": f(3, 2), "start_params": f(3, 2), "target_params": f(3, 2)},
            floats=("student_params", "start_params", "target_params"),
            any_rank=("student_params", "start_params", "target_params"),
            extra=(("start_params:shape", {"start_params": f(2, 2)}, "ValueError", "start_params"),)),
    ApiSpec(ddl.tesla_soft_labels, {"logits": f(B, K)}, floats=("logits",), batch=("logits",), empty="empty",
            extra=(("temperature=0", {"temperature": 0.0}, "ValueError", "temperature"),)),
    ApiSpec(ddl.unrolled_sgd, {"params": f(3, 2)} | {k: v for k, v in _DD.items() if "params" not in k},
            floats=("syn_x",), any_rank=("syn_x",), labels={"batch_indices": B}, batch=("syn_x", "syn_y"),
            empty="error", extra=_DD_EXTRA[:3]),
    ApiSpec(ddl.tesla_grad, _DD, floats=("syn_x",), any_rank=("syn_x",), labels={"batch_indices": B},
            batch=("syn_x", "syn_y"), empty="error", extra=_DD_EXTRA),
    ApiSpec(ddl.mtt_bptt_grad, _DD, floats=("syn_x",), any_rank=("syn_x",), labels={"batch_indices": B},
            batch=("syn_x", "syn_y"), empty="error", extra=_DD_EXTRA),
    # [44] RMT symmetric cross-entropy
    ApiSpec(ada.symmetric_cross_entropy, {"student_logits": LOGITS, "teacher_logits": f(B, K)},
            floats=("student_logits", "teacher_logits"), batch=("student_logits", "teacher_logits"), empty="empty",
            extra=(("where:float", {"where": W_BAD}, "TypeError", "where"),
                   ("where:shape", {"where": np.ones(B + 1, bool)}, "ValueError", "where"),
                   ("teacher_logits:shape", {"teacher_logits": f(B, K + 1)}, "ValueError", "teacher_logits"),
                   ("axis=2", {"axis": 2}, "ValueError", "axis"))),
    # [56] ND loss
    ApiSpec(fkd.teacher_class_means, {"features": f(6, 3), "labels": np.array([0, 1, 2, 0, 1, 2]), "num_classes": K},
            floats=("features",), labels={"labels": K}, batch=("features", "labels"), jit_labels=False,
            extra=(("num_classes=0", {"num_classes": 0}, "ValueError", "num_classes"),)),
    ApiSpec(fkd.nd_loss, {"student_emb": f(B, 3), "teacher_emb": f(B, 3), "class_means": f(K, 3), "labels": LABELS},
            floats=("student_emb", "teacher_emb", "class_means"), labels={"labels": K},
            batch=("student_emb", "teacher_emb", "labels"), empty="empty", grad_arg="student_emb",
            extra=(("where:float", {"where": W_BAD}, "TypeError", "where"),
                   ("class_means:dim", {"class_means": f(K, 2)}, "ValueError", "class_means"))),
    # [152] WhitenedCSE shuffled group whitening
    ApiSpec(wh.shuffled_group_whitening, {"z": f(8, 4), "key": KEY, "num_groups": 2}, floats=("z",), batch=("z",),
            empty="error", extra=(("num_groups=3", {"num_groups": 3}, "ValueError", "num_groups"),
                                  ("eps<0", {"eps": -1.0}, "ValueError", "eps"))),
    # [200] Metrix
    ApiSpec(mmx.metrix_contrastive_loss, {"anchor": f(B, 3), "positive": f(B, 3), "negative": f(B, 3), "lam": 0.3},
            floats=("anchor", "positive", "negative"), batch=("anchor", "positive", "negative"), empty="empty",
            extra=(("lam=1.5", {"lam": 1.5}, "ValueError", "lam"),
                   ("lam:row=1.5:jit", {"lam": np.array([0.3, 1.5, 0.3, 0.3])}, "nan", "", ("lam",)),
                   ("neg_margin<0", {"neg_margin": -1.0}, "ValueError", "neg_margin"),
                   ("negative:shape", {"negative": f(B, 2)}, "ValueError", "negative"))),
]

# ---- app22 (issue 22): MVP's gradient-similarity focal loss [26]
from jaxlib_methods.losses import continual  # noqa: E402
MODULES += (continual,)
_GSF = dict(CLS, features=f(B, 2))
SPECS += [
    ApiSpec(fn, _GSF, floats=("logits", "features"), labels={"labels": K}, batch=("logits", "labels", "features"),
            empty="empty", jit_grad=fn is continual.gradient_similarity_focal_loss,  # the scores are constants
            extra=(("where:float", {"where": W_BAD}, "TypeError", "where"),
                   ("where:shape", {"where": np.ones(B + 1, bool)}, "ValueError", "where"),
                   ("features:rows", {"features": f(B + 1, 2)}, "ValueError", "features"))
            + ((("alpha=2", {"alpha": 2.0}, "ValueError", "alpha"), ("gamma<0", {"gamma": -1.0}, "ValueError", "gamma"))
               if fn is continual.gradient_similarity_focal_loss else ()))
    for fn in (continual.gradient_similarity_focal_loss, continual.gradient_similarity_scores)
]


# ---- ls19a (issue 19): [46] MIC, [24] CAFA, [94] LAPTOP-Diff, [93] DR-Tune, [30] MDCS
_EYE = np.stack([np.eye(2, dtype=np.float32)] * K)
_COUNTS = np.array([50.0, 10.0, 2.0], np.float32)
_FEATS = [f(B, 3), f(B, 2, 2)]


def _three_block_forward(keep):
  import jax.numpy as jnp
  return jnp.outer(jnp.arange(1.0, B + 1.0), jnp.cumsum(keep))


SPECS += [
    ApiSpec(ada.random_patch_mask, {"key": KEY, "shape": (B, 4), "patch_size": 2},
            extra=(("patch_size=0", {"patch_size": 0}, "ValueError", "patch_size"),
                   ("shape:indivisible", {"shape": (B, 5)}, "ValueError", "shape"),
                   ("mask_ratio=1", {"mask_ratio": 1.0}, "ValueError", "mask_ratio"))),
    ApiSpec(ada.mic_quality_weight, {"teacher_logits": f(B, 2, K, scale=3.0), "tau": 0.5}, floats=("teacher_logits",),
            any_rank=("teacher_logits",), batch=("teacher_logits",), empty="empty",
            extra=(("tau=2", {"tau": 2.0}, "ValueError", "tau"), ("axis=0", {"axis": 0}, "ValueError", "axis"))),
    ApiSpec(ada.mic_loss, {"masked_student_logits": f(B, 2, K), "teacher_logits": f(B, 2, K, scale=3.0), "tau": 0.5},
            floats=("masked_student_logits", "teacher_logits"), batch=("masked_student_logits", "teacher_logits"),
            empty="empty", extra=(("where:float", {"where": W_BAD}, "TypeError", "where"),
                                  ("tau<0", {"tau": -0.1}, "ValueError", "tau"))),
    ApiSpec(ada.cafa_source_statistics, {"features": f(8, 2), "labels": np.arange(8) % 2, "num_classes": 2},
            floats=("features",), labels={"labels": 2}, batch=("features", "labels"), jit_labels=False,
            extra=(("ridge<0", {"ridge": -1.0}, "ValueError", "ridge"),)),
    ApiSpec(ada.cafa_loss, {"features": f(B, 2), "pseudo_labels": LABELS, "means": f(K, 2), "precisions": _EYE},
            floats=("features", "means", "precisions"), labels={"pseudo_labels": K},
            batch=("features", "pseudo_labels"), empty="empty", grad_arg="features",
            # a concrete NaN/Inf precision is not SPD: its documented ValueError, before any work
            nan={"precisions": "error"}, inf={"precisions": "error"},
            extra=(("where:float", {"where": W_BAD}, "TypeError", "where"),
                   ("precisions:shape", {"precisions": np.eye(3, dtype=np.float32)}, "ValueError", "precisions"))),
    ApiSpec(fkd.normalized_feature_kd, {"student_feats": _FEATS, "teacher_feats": [f(B, 3), f(B, 2, 2)]},
            extra=(("student_feats:int32", {"student_feats": [_FEATS[0].astype(np.int32), _FEATS[1]]}, "TypeError",
                    "student_feats[0]"),
                   ("student_feats:NaN", {"student_feats": [put(_FEATS[0], (0, 0), np.nan), _FEATS[1]]}, "nan", ""),
                   ("student_feats:array", {"student_feats": _FEATS[0]}, "TypeError", "student_feats"),
                   ("teacher_feats:layers", {"teacher_feats": [f(B, 3)]}, "ValueError", "teacher_feats"),
                   ("teacher_feats:shape", {"teacher_feats": [f(B, 3), f(B, 4)]}, "ValueError", "teacher_feats[1]"),
                   ("where:float", {"where": W_BAD}, "TypeError", "where"))),
    ApiSpec(fkd.output_loss_criterion, {"forward": _three_block_forward, "num_blocks": 3},
            extra=(("num_blocks=0", {"num_blocks": 0}, "ValueError", "num_blocks"),
                   ("forward=3", {"forward": 3}, "TypeError", "forward"))),
    ApiSpec(fkd.semantic_calibration, {"pre_feats": f(6, 3), "down_feats": f(6, 3), "labels": np.arange(6) % K,
                                       "num_classes": K},
            floats=("pre_feats", "down_feats"), labels={"labels": K}, batch=("pre_feats", "down_feats", "labels"),
            empty="error", jit_grad=False,  # the calibrated features are constants (no gradient to poison)
            extra=(("prototypes:shape", {"prototypes": f(2, 3)}, "ValueError", "prototypes"),
                   ("scale=0", {"scale": 0.0}, "ValueError", "scale"),
                   ("num_classes=0", {"num_classes": 0}, "ValueError", "num_classes"))),
    ApiSpec(fkd.dr_tune_loss, {"down_logits": LOGITS, "labels": LABELS, "calibrated_logits": f(5, K),
                               "calibrated_labels": np.array([0, 1, 2, 0, 1], np.int32)},
            floats=("down_logits", "calibrated_logits"), labels={"labels": K, "calibrated_labels": K},
            extra=(("calibrated_logits:classes", {"calibrated_logits": f(5, K + 1)}, "ValueError",
                    "calibrated_logits"),)),
    ApiSpec(distill.mdcs_expert_logits, {"expert_logits": f(3, B, K), "class_counts": _COUNTS},
            floats=("expert_logits",),
            extra=(("class_counts=0", {"class_counts": put(_COUNTS, 1, 0.0)}, "ValueError", "class_counts"),
                   ("lambdas:len", {"lambdas": (1.0,)}, "ValueError", "lambdas"))),
    ApiSpec(distill.mdcs_diversity_loss, {"expert_logits": f(3, B, K), "labels": LABELS, "class_counts": _COUNTS},
            floats=("expert_logits",), labels={"labels": K},
            extra=(("labels:shape", {"labels": LABELS[:2]}, "ValueError", "labels"),)),
    ApiSpec(distill.consistency_self_distill, {"strong_logits": LOGITS, "weak_logits": f(B, K), "labels": LABELS},
            floats=("strong_logits", "weak_logits"), labels={"labels": K},
            batch=("strong_logits", "weak_logits", "labels"), empty="empty",
            extra=(("temperature=0", {"temperature": 0.0}, "ValueError", "temperature"),)),
]

# ---- ls19b (issue 19): AMCL [184], Hydra [116] (contrastive module, already in MODULES)
_Z3 = f(B, 2, 3)
SPECS += [
    ApiSpec(cl.amcl_loss, {"z1": _Z3, "z2": f(B, 2, 3), "tau": 0.5}, floats=("z1", "z2"), batch=("z1", "z2"),
            empty="empty",
            extra=(("tau=0", {"tau": 0.0}, "ValueError", "tau"),
                   ("tau:shape", {"tau": np.ones(3, np.float32)}, "ValueError", "tau"),
                   ("tau:head<0:jit", {"tau": np.array([0.5, -1.0], np.float32)}, "nan", "", ("tau",)),
                   ("beta<0", {"beta": -1.0}, "ValueError", "beta"),
                   ("z2:shape", {"z2": f(B, 2, 2)}, "ValueError", "z2"))),
    ApiSpec(cl.amcl_temperature_regularizer, {"tau": np.array([0.5, 1.0, 2.0], np.float32), "dim": 4},
            floats=("tau",), any_rank=("tau",), nan={"tau": "error"}, inf={"tau": "error"},
            extra=(("dim=0", {"dim": 0}, "ValueError", "dim"),
                   ("tau<0", {"tau": np.array([-1.0], np.float32)}, "ValueError", "tau"),
                   ("tau<0:jit", {"tau": np.array([0.5, -1.0], np.float32)}, "nan", "", ("tau",)))),
    ApiSpec(cl.hydra_loss, {"z": f(B, 3), "labels": np.array([0, 1, 0, 1]), "pair_labels": np.array([1, 0, 1, 1]),
                            "gate": np.full((B, 3), 0.5, np.float32)},
            floats=("z", "gate"), batch=("z", "labels", "pair_labels", "gate"), empty="empty",
            nan={"gate": "error"}, inf={"gate": "error"},
            extra=(("gate=1.5", {"gate": np.full((B, 3), 1.5, np.float32)}, "ValueError", "gate"),
                   ("gate:row=1.5:jit", {"gate": put(np.full((B, 3), 0.5, np.float32), (1, 0), 1.5)}, "nan", "",
                    ("gate",)),
                   ("labels:float", {"labels": np.zeros(B, np.float32)}, "TypeError", "labels"),
                   ("pair_labels:shape", {"pair_labels": np.zeros(B + 1, np.int32)}, "ValueError", "pair_labels"),
                   ("temperature=0", {"temperature": 0.0}, "ValueError", "temperature"))),
]

from jaxlib_methods.losses import metric_learning as mlr  # noqa: E402  (ls19b, issue 19, [118])
MODULES += (mlr,)
SPECS += [
    ApiSpec(mlr.normalized_softmax_loss, {"embeddings": f(B, 3), "class_weights": f(K, 3), "labels": LABELS},
            floats=("embeddings", "class_weights"), labels={"labels": K}, batch=("embeddings", "labels"),
            empty="empty",
            extra=(("where:float", {"where": W_BAD}, "TypeError", "where"),
                   ("class_weights:dim", {"class_weights": f(K, 2)}, "ValueError", "class_weights"),
                   ("temperature=0", {"temperature": 0.0}, "ValueError", "temperature"))),
    ApiSpec(mlr.proto_triplet_loss, {"queries": f(B, 3), "query_labels": LABELS, "prototypes": f(K, 3)},
            floats=("queries", "prototypes"), labels={"query_labels": K}, batch=("queries", "query_labels"),
            empty="empty",
            extra=(("prototypes:one", {"prototypes": f(1, 3)}, "ValueError", "prototypes"),
                   ("margin<0", {"margin": -1.0}, "ValueError", "margin"))),
    ApiSpec(mlr.icnn_score, {"features": f(6, 3), "labels": np.array([0, 0, 1, 1, 2, 2])}, floats=("features",),
            batch=("features", "labels"), empty="error",
            extra=(("k=0", {"k": 0}, "ValueError", "k"), ("ipc=9", {"ipc": 9}, "ValueError", "ipc"),
                   ("labels:float", {"labels": np.zeros(6, np.float32)}, "TypeError", "labels"))),
]
from jaxlib_methods.losses import prototype_distill as pdl  # noqa: E402  (ls19b, issue 19, [59])
MODULES += (pdl,)
SPECS += [
    ApiSpec(pdl.prd_loss, {"features": f(B, 3), "old_features": f(B, 3), "prototypes": f(2, K, 3),
                           "old_prototypes": f(2, K, 3), "temperature": 0.5},
            floats=("features", "old_features", "prototypes", "old_prototypes"), batch=("features", "old_features"),
            empty="empty",
            extra=(("temperature=0", {"temperature": 0.0}, "ValueError", "temperature"),
                   ("old_prototypes:shape", {"old_prototypes": f(1, K, 3)}, "ValueError", "old_prototypes"),
                   ("old_features:shape", {"old_features": f(B, 2)}, "ValueError", "old_features"))),
    ApiSpec(pdl.prototype_cosine_loss, {"features": f(B, 3), "prototypes": f(K, 3), "labels": LABELS},
            floats=("features", "prototypes"), labels={"labels": K}, batch=("features", "labels"), empty="empty",
            extra=(("prototypes:dim", {"prototypes": f(K, 2)}, "ValueError", "prototypes"),)),
]
# ---- ls19c (issue 19): [48] AST, [64] DCC, [163] HPM
from jaxlib_methods.losses import masked_modeling as mmod  # noqa: E402
MODULES += (mmod,)
_AST_IM = {"inner_loss": _lin_inner, "expert_params": f(3, 3, 2), "syn_x": f(B, 3), "syn_y": f(B, 2), "lr": 0.1,
           "batch_indices": np.array([[0, 1], [2, 3]], np.int32)}
SPECS += [
    cls_spec(ddl.ast_clipping_loss, args={"epoch": 0},
             extra=(("epoch=-1", {"epoch": -1}, "ValueError", "epoch"),
                    ("schedule>1", {"schedule": (2.0,)}, "ValueError", "schedule"))),
    ApiSpec(ddl.ast_gradient_penalty, {"input_grads": f(B, 3)}, floats=("input_grads",), batch=("input_grads",),
            any_rank=("input_grads",), empty="empty", extra=(("weight<0", {"weight": -1.0}, "ValueError", "weight"),)),
    ApiSpec(ddl.ast_balanced_inner_weight, {"start_epoch": np.array([0, 3, 5, 2], np.int32), "max_start_epoch": 5},
            labels={"start_epoch": 6}, batch=("start_epoch",), empty="empty", jit_grad=False,
            extra=(("max_start_epoch=0", {"max_start_epoch": 0}, "ValueError", "max_start_epoch"),
                   ("start_epoch:float", {"start_epoch": np.zeros(B, np.float32)}, "TypeError", "start_epoch"))),
    ApiSpec(ddl.ast_weight_perturbation, {"key": KEY, "params": f(3, 2)}, floats=("params",), any_rank=("params",),
            extra=(("alpha<0", {"alpha": -1.0}, "ValueError", "alpha"),
                   ("drop_rate=1", {"drop_rate": 1.0}, "ValueError", "drop_rate"))),
    ApiSpec(ddl.ast_intermediate_matching_loss, _AST_IM, floats=("syn_x",), any_rank=("syn_x",),
            labels={"batch_indices": B}, batch=("syn_x", "syn_y"), empty="error",
            extra=(("lr=0", {"lr": 0.0}, "ValueError", "lr"),
                   ("expert_params:one", {"expert_params": f(1, 3, 2)}, "ValueError", "expert_params"),
                   ("batch_indices:3steps", {"batch_indices": np.zeros((3, 2), np.int32)}, "ValueError",
                    "batch_indices"))),
    ApiSpec(ddl.dc_gradient_distance, {"grads_a": f(3, 2), "grads_b": f(3, 2)}, floats=("grads_a", "grads_b"),
            any_rank=("grads_a", "grads_b"), extra=(("grads_b:shape", {"grads_b": f(2, 2)}, "ValueError", "grads_b"),)),
    ApiSpec(ddl.dc_gradient_matching_loss, {"g_real_by_class": f(2, 3, 2), "g_syn_by_class": f(2, 3, 2)},
            floats=("g_real_by_class", "g_syn_by_class"), any_rank=("g_real_by_class", "g_syn_by_class"),
            extra=(("g_syn_by_class:shape", {"g_syn_by_class": f(3, 3, 2)}, "ValueError", "g_syn_by_class"),)),
    ApiSpec(ddl.dcc_gradient_matching_loss, {"g_real_by_class": f(2, 3, 2), "g_syn_by_class": f(2, 3, 2)},
            floats=("g_real_by_class", "g_syn_by_class"), any_rank=("g_real_by_class", "g_syn_by_class"),
            extra=(("g_syn_by_class:shape", {"g_syn_by_class": f(3, 3, 2)}, "ValueError", "g_syn_by_class"),)),
    ApiSpec(mmod.hpm_relative_loss, {"pred_loss": f(B, 5), "recon_loss": f(B, 5)}, floats=("pred_loss", "recon_loss"),
            batch=("pred_loss", "recon_loss"), empty="empty",
            extra=(("where:float", {"where": np.ones((B, 5), np.float32)}, "TypeError", "where"),
                   ("recon_loss:shape", {"recon_loss": f(B, 4)}, "ValueError", "recon_loss"))),
    ApiSpec(mmod.hpm_easy_to_hard_mask, {"key": KEY, "pred_loss": f(B, 8), "epoch": 0, "total_epochs": 4},
            floats=("pred_loss",), batch=("pred_loss",), empty="empty", nan={"pred_loss": "error"},
            inf={"pred_loss": "error"},
            extra=(("epoch=4", {"epoch": 4}, "ValueError", "epoch"),
                   ("mask_ratio=1", {"mask_ratio": 1.0}, "ValueError", "mask_ratio"))),
]

# ---- ls19d (issue 19): PamC [89] ...
from jaxlib_methods.losses import graph_contrastive as gcl  # noqa: E402
MODULES += (gcl,)
_EDGES = np.array([[0, 0], [1, 1], [2, 2], [3, 3], [0, 1], [1, 2], [2, 3], [3, 0]], np.int32)
_ONEHOT = np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]
SPECS += [
    ApiSpec(gcl.pamc_loss, {"z": f(B, 3), "edges": _EDGES, "assignments": _ONEHOT,
                            "edge_weights": np.full(len(_EDGES), 0.5, np.float32)},
            floats=("z", "assignments", "edge_weights"), batch=("z", "assignments"), empty="error",
            nan={"assignments": "error", "edge_weights": "error"},
            inf={"assignments": "error", "edge_weights": "error"},
            extra=(("edges=N", {"edges": put(_EDGES, (4, 1), B)}, "ValueError", "edges"),
                   ("edges=N:jit", {"edges": put(_EDGES, (4, 1), B)}, "nan", "", ("edges",)),
                   ("edges:no-own-edge", {"edge_weights": np.where(_EDGES[:, 0] == 3, 0.0, 0.5).astype(np.float32)},
                    "ValueError", "edges"),
                   ("edges:float", {"edges": _EDGES.astype(np.float32)}, "TypeError", "edges"),
                   ("edges:shape", {"edges": _EDGES[:, :1]}, "ValueError", "edges"),
                   ("assignments<0", {"assignments": -_ONEHOT}, "ValueError", "assignments"),
                   ("assignments<0:jit", {"assignments": -_ONEHOT}, "nan", "", ("assignments",)),
                   ("temperature=0", {"temperature": 0.0}, "ValueError", "temperature"))),
    ApiSpec(gcl.graph_ncontrast_loss, {"z": f(B, 3), "adjacency": np.eye(B, dtype=np.float32) + 0.5},
            floats=("z", "adjacency"), batch=("z",), nan={"adjacency": "error"}, inf={"adjacency": "error"},
            extra=(("adjacency:row0", {"adjacency": put(np.eye(B, dtype=np.float32), (2, 2), 0.0)}, "ValueError",
                    "adjacency"),
                   ("adjacency<0:jit", {"adjacency": put(np.eye(B, dtype=np.float32), (2, 2), -1.0)}, "nan", "",
                    ("adjacency",)),
                   ("adjacency:shape", {"adjacency": np.eye(B + 1, dtype=np.float32)}, "ValueError", "adjacency"),
                   ("temperature=0", {"temperature": 0.0}, "ValueError", "temperature"))),
]
from jaxlib_methods.losses import conditional_gan as cgan  # noqa: E402  (ls19d, issue 19, [173])
MODULES += (cgan,)
_ADC = f(B, 2 * K, scale=2.0)
SPECS += [
    ApiSpec(cgan.adc_discriminator_loss, {"logits": _ADC, "labels": LABELS, "real": False}, floats=("logits",),
            labels={"labels": K}, batch=("logits", "labels"), empty="empty",
            extra=(("real=1", {"real": 1}, "TypeError", "real"),
                   ("logits:odd", {"logits": f(B, 2 * K - 1)}, "ValueError", "logits"),
                   ("where:float", {"where": W_BAD}, "TypeError", "where"))),
    ApiSpec(cgan.adc_generator_loss, {"logits": _ADC, "labels": LABELS}, floats=("logits",), labels={"labels": K},
            batch=("logits", "labels"), empty="empty",
            extra=(("logits:odd", {"logits": f(B, 2 * K - 1)}, "ValueError", "logits"),
                   ("axis=2", {"axis": 2}, "ValueError", "axis"))),
]
from jaxlib_methods.losses import token_mixing as tmix  # noqa: E402  (ls19d, issue 19, [34])
MODULES += (tmix,)
_PARTNER = np.array([3, 2, 1, 0], np.int32)
SPECS += [
    ApiSpec(tmix.smmix_fine_grained_loss, {"target_logits": LOGITS, "source_logits": f(B, K), "labels": LABELS,
                                           "partner": _PARTNER},
            floats=("target_logits", "source_logits"), labels={"labels": K},
            batch=("target_logits", "source_logits", "labels", "partner"), empty="empty",
            extra=(("partner:shape", {"partner": _PARTNER[:2]}, "ValueError", "partner"),
                   ("partner=4", {"partner": put(_PARTNER, 0, B)}, "ValueError", "partner"),
                   ("source_logits:shape", {"source_logits": f(B, K + 1)}, "ValueError", "source_logits"))),
    ApiSpec(tmix.smmix_consistency_loss, {"mixed_logits": LOGITS, "unmixed_logits": f(B, K), "lam": 0.75,
                                          "partner": _PARTNER},
            floats=("mixed_logits", "unmixed_logits"), batch=("mixed_logits", "unmixed_logits", "partner"),
            empty="empty",
            extra=(("lam=1.5", {"lam": 1.5}, "ValueError", "lam"),
                   ("lam:jit", {"lam": np.array([0.5, 1.5, 0.5, 0.5], np.float32)}, "nan", "", ("lam",)),
                   ("partner=4", {"partner": put(_PARTNER, 0, B)}, "ValueError", "partner"),
                   ("unmixed_logits:shape", {"unmixed_logits": f(B, K + 1)}, "ValueError", "unmixed_logits"))),
]
from jaxlib_methods.losses import consistency_weighting as cwt  # noqa: E402  (ls19d, issue 19, [51])
MODULES += (cwt,)
_BETA = np.array([0.2, 0.5, 0.9, 0.5], np.float32)
_SUP, _CONS = np.abs(f(B)), np.abs(f(B))
SPECS += [
    ApiSpec(cwt.adawac_objective, {"sup_loss": _SUP, "cons_loss": _CONS, "beta": _BETA},
            floats=("sup_loss", "cons_loss", "beta"), batch=("sup_loss", "cons_loss", "beta"), empty="empty",
            any_rank=("sup_loss", "cons_loss", "beta"), nan={"beta": "error"}, inf={"beta": "error"},
            extra=(("beta=1.5", {"beta": put(_BETA, 0, 1.5)}, "ValueError", "beta"),
                   ("beta=1.5:jit", {"beta": put(_BETA, 0, 1.5)}, "nan", "", ("beta",)),
                   ("cons_loss:shape", {"cons_loss": _CONS[:2]}, "ValueError", "cons_loss"))),
    ApiSpec(cwt.adawac_weight_update, {"beta": _BETA, "sup_loss": _SUP, "cons_loss": _CONS, "learning_rate": 0.5},
            floats=("beta", "sup_loss", "cons_loss"), batch=("beta", "sup_loss", "cons_loss"), empty="empty",
            any_rank=("sup_loss", "cons_loss", "beta"), nan={"beta": "error"}, inf={"beta": "error"},
            extra=(("beta<0", {"beta": put(_BETA, 1, -0.1)}, "ValueError", "beta"),
                   ("beta<0:jit", {"beta": put(_BETA, 1, -0.1)}, "nan", "", ("beta",)),
                   ("learning_rate<0", {"learning_rate": -1.0}, "ValueError", "learning_rate"))),
]
SPECS += [  # ls19d (issue 19): CVIB [11] (contrastive module, already in MODULES)
    ApiSpec(cl.self_pruning_contrastive_loss, {"anchor": f(B, 3), "positive": f(B, 3)}, floats=("anchor", "positive"),
            batch=("anchor", "positive"), empty="empty",
            extra=(("positive:shape", {"positive": f(B, 2)}, "ValueError", "positive"),
                   ("temperature=0", {"temperature": 0.0}, "ValueError", "temperature"))),
]

# ---- ls19e (issue 19): HARD [143] (distill module, already in MODULES)
_HARD_NET = {"augment": lambda p, x: x + p, "teacher": lambda p, x: x @ p, "teacher_params": f(3, K),
             "student": lambda p, x: x @ p, "student_params": f(3, K)}
SPECS += [
    ApiSpec(distill.hard_generator_loss, {"student_logits": LOGITS, "teacher_logits": f(B, K), "labels": LABELS},
            floats=("student_logits", "teacher_logits"), labels={"labels": K},
            batch=("student_logits", "teacher_logits", "labels"), empty="empty", extra=(
                ("alpha<0", {"alpha": -1.0}, "ValueError", "alpha"),
                ("beta<0", {"beta": -1.0}, "ValueError", "beta"),
                ("student_max=0", {"student_max": 0.0}, "ValueError", "student_max"),
                ("teacher_logits:shape", {"teacher_logits": f(B, K + 1)}, "ValueError", "teacher_logits"),
                ("where:float", {"where": W_BAD}, "TypeError", "where"))),
    ApiSpec(distill.hard_augment_objective, {"aug_params": f(3), "x": f(B, 3), "labels": LABELS, **_HARD_NET},
            floats=("x",), labels={"labels": K}, batch=("x", "labels"), empty="empty", extra=(
                ("augment=None", {"augment": None}, "TypeError", "augment"),
                ("student:rows", {"student": lambda p, x: (x @ p)[:1]}, "ValueError", "student"),
                ("student_max=0", {"student_max": 0.0}, "ValueError", "student_max"))),
]
CASES = [c for spec in SPECS for c in api_cases(spec)]
# Probes that compute (NaN propagation, jit, valid outputs) are slow-ish to compile one by one: the default run keeps
# every error probe (they raise before any work) and these headline probes of issue 14; `pytest -m slow` runs all.
FAST = {
    "losses.stablemax.softmax_cross_entropy_with_integer_labels[labels=3:jit]",
    "losses.stablemax.stablemax_cross_entropy[labels=3:jit]",
    "losses.stablemax.stablemax_cross_entropy[logits:NaN]",
    "losses.stablemax.stablemax_s[x:NaN]",
    "losses.ldr.ldr_kl_loss[labels=3:jit]",
    "losses.calibrated_ensemble.ensloss_margins[labels=2:jit]",
    "losses.contrastive.isogclr_loss[index:duplicate:jit]",
    "losses.consistency.consistency_loss[sigma>sigma_next:jit]",
}


@pytest.mark.parametrize("case", api_case_params(CASES, FAST))
def test_api_case(case):
  run_api_case(case)


def _public_functions():
  out = {}
  for mod in MODULES:
    for name, obj in vars(mod).items():
      if name.startswith("_") or not inspect.isfunction(obj) or obj.__module__ != mod.__name__:
        continue
      out[f"{mod.__name__}.{name}"] = obj
  for name in dir(losses):
    obj = getattr(losses, name)
    if inspect.isfunction(obj) and not name.startswith("_"):
      out.setdefault(f"{obj.__module__}.{obj.__name__}", obj)
  return out


def test_every_public_function_is_probed():
  probed = {spec.fn for spec in SPECS}
  missing = sorted(name for name, fn in _public_functions().items() if fn not in probed and fn not in DEPRECATED)
  assert not missing, f"public loss functions without an API spec: {missing}"


def test_deprecated_softmax_cross_entropy_warns_and_forwards():
  with pytest.warns(DeprecationWarning, match="softmax_cross_entropy_with_integer_labels"):
    old = sm.softmax_cross_entropy(LOGITS, LABELS)
  np.testing.assert_array_equal(np.asarray(old),
                                np.asarray(sm.softmax_cross_entropy_with_integer_labels(LOGITS, LABELS)))


def test_report_counts(capsys, record_property):
  counts, line = api_counts_report("api-losses", len(SPECS), CASES, FAST)
  for k, v in counts.items():
    record_property(k, v)
  with capsys.disabled():
    print("\n" + line)
  assert counts["tried"] == counts["clear_errors"] + counts["nan_propagation"] + counts["valid_outputs"]

