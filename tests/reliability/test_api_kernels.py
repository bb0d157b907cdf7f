"""Hostile-input API table for the public attention kernels and their references (issue 14; rules:
docs/conventions.md). Same machinery as tests/reliability/test_api_losses.py (`jaxlib_methods.testing.api_cases`).

Documented outcomes: wrong ranks, shapes, head counts -> ValueError naming the argument; non-floating or mixed dtypes
-> TypeError; a NaN or Inf in q, k, v or the gates propagates (the output is not finite, never a plausible number);
softmax attention of an empty batch returns an empty output; gated linear attention refuses empty inputs (it also
returns per-sequence states). The Pallas kernels run in Pallas' interpreter here (`interpret=True`); their compiled
paths share the validation, which runs before tracing.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from jaxlib_methods import kernels
from jaxlib_methods.testing import ApiSpec, api_case_params, api_cases, api_counts_report, run_api_case

_rng = np.random.default_rng(3)


def f(*shape, scale=1.0):
  return (_rng.normal(size=shape) * scale).astype(np.float32)


B, T, N, K, H = 2, 16, 4, 2, 8
Q, KK, V = f(B, T, N, H), f(B, T, K, H), f(B, T, K, H)
ATT = dict(q=Q, k=KK, v=V, causal=True)
SEG = np.repeat(np.array([[0] * 8 + [1] * 8]), B, axis=0).astype(np.int32)
ATT_EXTRA = (
    ("k:heads-not-dividing", {"k": f(B, T, 3, H), "v": f(B, T, 3, H)}, "ValueError", "heads"),
    ("k:head_dim", {"k": f(B, T, K, H + 2)}, "ValueError", "head_dim"),
    ("v:seq", {"v": f(B, T + 1, K, H)}, "ValueError", "sequence length"),
    ("k:batch", {"k": f(B + 1, T, K, H), "v": f(B + 1, T, K, H)}, "ValueError", "batch"),
    ("k:float16-with-float32-q", {"k": KK.astype(np.float16)}, "TypeError", "dtype"),
    ("segment_ids:float", {"segment_ids": SEG.astype(np.float32)}, "TypeError", "segment_ids"),
    ("segment_ids:shape", {"segment_ids": SEG[:, :-1]}, "ValueError", "segment_ids"),
    ("segments", {"segment_ids": SEG}, "ok", ""),
    ("softcap=0", {"softcap": 0.0}, "ValueError", "softcap"),
    ("scale=-1", {"scale": -1.0}, "ValueError", "scale"),
    ("window:bad", {"window": (-2, 0)}, "ValueError", "window"),
)
INTERPRET = dict(interpret=True, block_q=16, block_k=16)

DK, DV, HH = 8, 8, 2
GLA = dict(q=f(B, T, HH, DK, scale=0.3), k=f(B, T, HH, DK, scale=0.3), v=f(B, T, HH, DV),
           log_gates=np.log(1.0 / (1.0 + np.exp(-(f(B, T, HH, DK) + 3.0)))).astype(np.float32))
GLA_FLOATS = ("q", "k", "v", "log_gates")
GLA_EXTRA = (
    ("log_gates:shape", {"log_gates": GLA["log_gates"][..., :-1]}, "ValueError", "log_gates"),
    ("v:heads", {"v": f(B, T, HH + 1, DV)}, "ValueError", "v"),
    ("initial_state:shape", {"initial_state": np.zeros((B, HH, DK, DV + 1), np.float32)}, "ValueError",
     "initial_state"),
    ("initial_state:int", {"initial_state": np.zeros((B, HH, DK, DV), np.int32)}, "TypeError", "initial_state"),
    ("initial_state", {"initial_state": np.ones((B, HH, DK, DV), np.float32)}, "ok", ""),
    ("segment_ids:float", {"segment_ids": SEG.astype(np.float32)}, "TypeError", "segment_ids"),
    ("segment_ids+cu_seqlens", {"segment_ids": SEG, "cu_seqlens": np.array([0, T])}, "ValueError", "cu_seqlens"),
    ("cu_seqlens:batch>1", {"cu_seqlens": np.array([0, 4, T])}, "ValueError", "cu_seqlens"),
    ("cu_seqlens:float", {"cu_seqlens": np.array([0.0, 16.0])}, "TypeError", "cu_seqlens"),
    ("log_gates=-inf", {"log_gates": np.full((B, T, HH, DK), -np.inf, np.float32)}, "ok", ""),
)

SPECS = [
    ApiSpec(kernels.attention, ATT, floats=("q", "k", "v"), batch=("q", "k", "v"), empty="empty",
            extra=ATT_EXTRA + (("implementation=bad", {"implementation": "fast"}, "ValueError", "implementation"),),
            name="kernels.attention"),
    ApiSpec(kernels.flash_attention_reference, ATT, floats=("q", "k", "v"), batch=("q", "k", "v"), empty="empty",
            extra=ATT_EXTRA, name="kernels.flash_attention_reference"),
    ApiSpec(kernels.flash_attention, dict(ATT, **INTERPRET), floats=("q", "k", "v"), batch=("q", "k", "v"),
            empty="empty", extra=ATT_EXTRA + (
                ("block_q=0", {"block_q": 0}, "ValueError", "block_q"),
                ("platform=bad", {"platform": "metal"}, "ValueError", "platform")),
            name="kernels.flash_attention"),
    ApiSpec(kernels.gla_attention, GLA, floats=GLA_FLOATS, batch=GLA_FLOATS, empty="error", extra=GLA_EXTRA + (
        ("implementation=bad", {"implementation": "fast"}, "ValueError", "implementation"),),
        name="kernels.gla_attention"),
    ApiSpec(kernels.gated_linear_attention_reference, GLA, floats=GLA_FLOATS, batch=GLA_FLOATS, empty="error",
            extra=GLA_EXTRA, name="kernels.gated_linear_attention_reference"),
    ApiSpec(kernels.gated_linear_attention, dict(GLA, interpret=True, chunk_size=16, sub_chunk_size=16),
            floats=GLA_FLOATS, batch=GLA_FLOATS, empty="error", extra=GLA_EXTRA + (
                ("sub_chunk_size:not-dividing", {"sub_chunk_size": 6}, "ValueError", "chunk"),),
            name="kernels.gated_linear_attention"),
]

CASES = [c for spec in SPECS for c in api_cases(spec)]
# Every error probe runs by default (they raise before tracing); of the probes that compute, the interpreter's are
# slow: the default run keeps one NaN probe per kernel and the references' bfloat16 probes, `-m slow` runs all.
FAST = {
    "kernels.flash_attention[q:NaN]",
    "kernels.gated_linear_attention[log_gates:NaN]",
    "kernels.flash_attention[empty-batch]",
    "kernels.attention[k:+Inf]",
    "kernels.gla_attention[v:NaN]",
    "kernels.gla_attention[log_gates=-inf]",
}


@pytest.mark.parametrize("case", api_case_params(CASES, FAST))
def test_api_case(case, reliability):
  reliability.tried()
  outcome = run_api_case(case)
  if outcome == "error":
    reliability.clear_error()
  else:
    reliability.accepted()


def test_every_public_kernel_function_is_probed():
  probed = {spec.fn for spec in SPECS}
  public = {name: getattr(kernels, name) for name in dir(kernels)
            if not name.startswith("_") and inspect.isfunction(getattr(kernels, name))}
  exempt = {"default_implementation"}  # takes a backend name only; checked in tests/kernels
  missing = sorted(name for name, fn in public.items() if fn not in probed and name not in exempt)
  assert not missing, f"public kernel functions without an API spec: {missing}"


def test_report_counts(capsys, record_property):
  counts, line = api_counts_report("api-kernels", len(SPECS), CASES, FAST)
  for k, v in counts.items():
    record_property(k, v)
  with capsys.disabled():
    print("\n" + line)
  assert counts["tried"] == counts["clear_errors"] + counts["nan_propagation"] + counts["valid_outputs"]
