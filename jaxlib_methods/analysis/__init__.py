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
