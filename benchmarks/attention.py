"""Attention kernels: speed as ratios measured in the same run, plus the compiled-path tolerance checks.

    python benchmarks/attention.py                 # GPU: the full run (about 6 min on one H100), CPU: tiny smoke run
    python benchmarks/attention.py --quick         # GPU: seq 1k, 4k, 16k only
    python benchmarks/attention.py --tiny          # any machine: a smaller smoke run (GPU kernels interpreted)

GPU run, in this order (the tolerance checks run first and always, about 3 minutes on an H200 with their compiles;
a deadline, --deadline-s, default 450 s counted from their end, stops the speed tables early and says so):
  1. Compiled-path tolerances: our FlashAttention-2 kernels (`jaxlib_methods.kernels.flash_attention`) on the GPU,
     forward and all three gradients, against the XLA reference at HIGHEST precision in fp32, for bf16 and fp16
     inputs and fp32 with precision "default" (TF32), "high" (3xTF32) and "highest" (IEEE), causal and not, GQA,
     head dims 64 / 96 / 128 / 192, ragged lengths. Tolerances are fixed here, before the run (`TOLERANCES`).
  2. FA2 speed: ours vs `jax.nn.dot_product_attention(implementation="cudnn")`, `implementation="xla"`, jax's
     Pallas `mha` (`jax.experimental.pallas.ops.gpu.attention`) and tokamax when installed, forward and
     forward+backward, seq 1k..16k, head_dim 64 / 128, bf16, causal and not; total tokens fixed (batch * seq = 16k),
     hidden 2048 (heads = 2048 / head_dim) as in the FlashAttention-2 paper's benchmarks. Ratios are
     time(other) / time(ours) (> 1: ours faster); TFLOP/s use the paper's count (forward 4 B N T^2 H, halved when
     causal; forward+backward 3.5x) against the GPU's dense bf16 peak.
  3. GLA (`jaxlib_methods.kernels.gla`) vs our FA2 (causal) by sequence length, forward+backward: the crossover.
Issue 11's targets: FA2 fwd+bwd >= 1.0x jax's Pallas mha and >= 0.8x cuDNN; GLA faster than FA2 from 4k tokens.

CPU (no GPU): the Pallas kernels only run in interpret mode, which measures nothing about speed: the script checks
that our GPU and TPU kernels run and agree with the reference at tiny sizes, and times the XLA reference so the table
code runs (a default test runs this).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods.kernels.flash_attention import flash_attention, flash_attention_reference

PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}

# Relative L2 error of ours vs the fp32 HIGHEST-precision reference, fixed before any GPU run: bf16/fp16 carry
# 8/11-bit mantissas (inputs, P and dS are rounded to them); TF32 has a 10-bit mantissa; 3xTF32 and IEEE ~ fp32.
TOLERANCES = {"bf16": 2e-2, "fp16": 5e-3, "fp32-default": 5e-3, "fp32-high": 1e-4, "fp32-highest": 1e-4}
_DTYPES = {"bf16": jnp.bfloat16, "fp16": jnp.float16, "fp32": jnp.float32}


def _peak(device) -> float | None:
  kind = getattr(device, "device_kind", "")
  for name, peak in PEAK_BF16_TFLOPS.items():
    if name in kind:
      return peak
  return None


def _time(fn, *args, reps: int = 10) -> float:
  """Median seconds of a jitted call (compiled and warmed up first)."""
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def _fwd_bwd(attn):
  def loss(q, k, v):
    return jnp.sum(attn(q, k, v).astype(jnp.float32))
  return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))


def _flops(b, n, t, h, causal, mode):
  f = 4.0 * b * n * t * t * h * (0.5 if causal else 1.0)
  return f * (3.5 if mode == "fwd+bwd" else 1.0)


def _fmt_row(cells):
  return "| " + " | ".join(str(c) for c in cells) + " |"


def _rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


# ----------------------------------------------------------------------------------------------------------------------
# 1. Compiled-path tolerances
# ----------------------------------------------------------------------------------------------------------------------

TOLERANCE_CASES = [
    # (name, dtype key, precision, (B, T, S, N, K, H, Hv), options)
    ("bf16 causal MHA H128", "bf16", None, (2, 1024, 1024, 8, 8, 128, 128), dict(causal=True)),
    ("bf16 GQA H64 ragged", "bf16", None, (2, 1000, 1000, 8, 2, 64, 64), dict()),
    ("bf16 MQA H96 causal", "bf16", None, (1, 777, 777, 8, 1, 96, 96), dict(causal=True)),
    ("bf16 H192/Hv128 cross", "bf16", None, (1, 500, 640, 4, 2, 192, 128), dict()),
    ("bf16 window+seg+softcap", "bf16", None, (2, 1024, 1024, 8, 4, 128, 128),
     dict(causal=True, window=(256, 0), softcap=30.0, segments=True)),
    ("fp16 causal H128", "fp16", None, (2, 1024, 1024, 8, 8, 128, 128), dict(causal=True)),
    ("fp32 default (TF32) H128", "fp32-default", None, (1, 1024, 1024, 8, 8, 128, 128), dict(causal=True)),
    ("fp32 high (3xTF32) H128", "fp32-high", "high", (1, 1024, 1024, 8, 8, 128, 128), dict(causal=True)),
    ("fp32 highest (IEEE) H64", "fp32-highest", "highest", (1, 512, 512, 4, 4, 64, 64), dict(causal=True)),
]


def tolerance_checks(log=print, interpret=False, cases=None):
  """Our kernels on this machine's compiled path (or interpret) vs the fp32 HIGHEST reference: output and grads.

  Returns the number of failed checks."""
  log("\n## Compiled-path tolerances: relative L2 error vs the fp32 HIGHEST-precision XLA reference\n")
  header = ["case", "dtype / precision", "tol", "out", "dq", "dk", "dv", "pass"]
  log(_fmt_row(header))
  log(_fmt_row(["---"] * len(header)))
  failures = 0
  for name, dkey, prec, (b, t, s, n, kh, h, hv), opts in (cases or TOLERANCE_CASES):
    dt = _DTYPES[dkey.split("-")[0]]
    keys = jax.random.split(jax.random.PRNGKey(t + h), 5)
    q = jax.random.normal(keys[0], (b, t, n, h), jnp.float32)
    k = jax.random.normal(keys[1], (b, s, kh, h), jnp.float32)
    v = jax.random.normal(keys[2], (b, s, kh, hv), jnp.float32)
    do = jax.random.normal(keys[3], (b, t, n, hv), jnp.float32)
    opts = dict(opts)
    if opts.pop("segments", False):
      opts["segment_ids"] = jnp.cumsum(jax.random.bernoulli(keys[4], 4.0 / t, (b, t)), axis=1).astype(jnp.int32)
    qd, kd, vd, dod = (x.astype(dt) for x in (q, k, v, do))
    def ours(q, k, v, do, opts=opts, prec=prec):
      out, pullback = jax.vjp(
          lambda q, k, v: flash_attention(q, k, v, precision=prec, interpret=interpret, **opts), q, k, v)
      return out, pullback(do)
    out, grads = jax.jit(ours)(qd, kd, vd, dod)
    # The reference sees the same (rounded) inputs, in fp32, at HIGHEST precision; jitted like ours (one compile,
    # not one per op of the forward and the vjp).
    def reference(q, k, v, do, opts=opts):
      out, pullback = jax.vjp(
          lambda q, k, v: flash_attention_reference(q, k, v, precision="highest", **opts), q, k, v)
      return out, pullback(do)
    r_out, r_grads = jax.jit(reference)(*(x.astype(jnp.float32) for x in (qd, kd, vd, dod)))
    errs = [_rel(out, r_out)] + [_rel(g, r) for g, r in zip(grads, r_grads)]
    tol = TOLERANCES[dkey]
    ok = all(np.isfinite(errs)) and max(errs) < tol
    failures += not ok
    log(_fmt_row([name, dkey, f"{tol:.0e}"] + [f"{e:.1e}" for e in errs] + ["yes" if ok else "**NO**"]))
  return failures


GLA_TOLERANCES = {"bf16": 2e-2, "fp32-default": 5e-3, "fp32-highest": 1e-4}
GLA_CASES = [
    # (name, dtype key, precision, (B, T, H, Dk, Dv), gate divisor, options)
    ("GLA bf16 Dk128 Dv128 h0", "bf16", None, (2, 1000, 4, 128, 128), 16.0, dict(initial_state=True)),
    ("GLA bf16 Dk64 Dv256 strong decay seg", "bf16", None, (2, 1024, 4, 64, 256), 1.0, dict(segments=True)),
    ("GLA bf16 varlen h0", "bf16", None, (1, 1500, 4, 128, 128), 16.0, dict(initial_state=True, varlen=3)),
    ("GLA fp32 default (TF32)", "fp32-default", None, (2, 1000, 4, 128, 128), 16.0, dict(initial_state=True)),
    ("GLA fp32 highest (IEEE)", "fp32-highest", "highest", (1, 700, 4, 64, 64), 4.0, dict(segments=True)),
]


def gla_tolerance_checks(log=print, interpret=False, cases=None):
  """GLA's kernels (`jaxlib_methods.kernels.gla`) on this machine's compiled path (or interpret) vs the fp32
  recurrence (`gated_linear_attention_reference`): output, final state and the gradients of q, k, v, the log gates
  and the initial state. Returns the number of failed checks."""
  from jaxlib_methods.kernels.gla import (gated_linear_attention,   # pylint: disable=g-import-not-at-top
                                          gated_linear_attention_reference)
  log("\n## GLA compiled-path tolerances: relative L2 error vs the fp32 recurrence\n")
  header = ["case", "dtype / precision", "tol", "out", "state", "dq", "dk", "dv", "dgate", "dh0", "pass"]
  log(_fmt_row(header))
  log(_fmt_row(["---"] * len(header)))
  failures = 0
  for name, dkey, prec, (b, t, h, dk, dv), gdiv, opts in (cases or GLA_CASES):
    dt = _DTYPES[dkey.split("-")[0]]
    keys = jax.random.split(jax.random.PRNGKey(t + dk + dv), 8)
    q, k = (jax.random.normal(kk, (b, t, h, dk), jnp.float32) / np.sqrt(dk) for kk in keys[:2])
    v = jax.random.normal(keys[2], (b, t, h, dv), jnp.float32)
    g = jax.nn.log_sigmoid(jax.random.normal(keys[3], (b, t, h, dk))) / gdiv
    do = jax.random.normal(keys[4], (b, t, h, dv), jnp.float32)
    kw = {}
    n_states = b
    if opts.get("varlen"):
      cuts = np.sort(np.asarray(jax.random.choice(keys[5], np.arange(1, t), (opts["varlen"] - 1,), replace=False)))
      kw["cu_seqlens"] = jnp.asarray(np.concatenate([[0], cuts, [t]]), jnp.int32)
      n_states = opts["varlen"]
    if opts.get("segments"):
      kw["segment_ids"] = jnp.cumsum(jax.random.bernoulli(keys[5], 4.0 / t, (b, t)), axis=1).astype(jnp.int32)
    h0 = jax.random.normal(keys[6], (n_states, h, dk, dv), jnp.float32) if opts.get("initial_state") else None
    ds = jax.random.normal(keys[7], (n_states, h, dk, dv), jnp.float32)
    qd, kd, vd, dod = (x.astype(dt) for x in (q, k, v, do))

    def run(fn, q, k, v, g, h0, kw=kw):
      def f(q, k, v, g, h0):
        return fn(q, k, v, g, initial_state=h0, **kw)
      (o, s), pull = jax.vjp(f, q, k, v, g, h0)
      return o, s, pull((dod.astype(o.dtype), ds))

    precision = {"highest": jax.lax.Precision.HIGHEST}.get(prec)
    ours = jax.jit(functools.partial(run, functools.partial(gated_linear_attention, precision=precision,
                                                            interpret=interpret)))
    o, s, grads = ours(qd, kd, vd, g, h0)
    r_o, r_s, r_grads = run(gated_linear_attention_reference, *(x.astype(jnp.float32) for x in (qd, kd, vd)), g, h0)
    errs = [_rel(o, r_o), _rel(s, r_s)] + [_rel(x, r) for x, r in zip(grads[:4], r_grads[:4])]
    errs.append(float("nan") if h0 is None else _rel(grads[4], r_grads[4]))
    tol = GLA_TOLERANCES[dkey]
    checked = [e for e, x in zip(errs, [1] * 6 + [h0]) if x is not None]
    ok = all(np.isfinite(checked)) and max(checked) < tol
    failures += not ok
    log(_fmt_row([name, dkey, f"{tol:.0e}"] + [("-" if np.isnan(e) else f"{e:.1e}") for e in errs]
                 + ["yes" if ok else "**NO**"]))
  return failures


# ----------------------------------------------------------------------------------------------------------------------
# 2. FA2 speed
# ----------------------------------------------------------------------------------------------------------------------

def _attention_impls(causal, interpret=False):
  impls = {
      "ours": lambda q, k, v: flash_attention(q, k, v, causal=causal, interpret=interpret),
      "xla": lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation="xla"),
  }
  if jax.default_backend() == "gpu":
    impls["cudnn"] = lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation="cudnn")
    from jax.experimental.pallas.ops.gpu import attention as jax_pallas   # pylint: disable=g-import-not-at-top

    def jax_mha(q, k, v):
      return jax_pallas.mha(q, k, v, None, sm_scale=1.0 / np.sqrt(q.shape[-1]), causal=causal)
    impls["jax-pallas-mha"] = jax_mha
    try:
      import tokamax   # pylint: disable=g-import-not-at-top
      impls["tokamax"] = lambda q, k, v: tokamax.dot_product_attention(q, k, v, is_causal=causal)
    except Exception as e:  # noqa: BLE001 - optional baseline
      print(f"(tokamax not available: {type(e).__name__}: {str(e)[:120]})")
  return impls


def bench_attention(lengths, head_dims, dtype, reps, deadline, tokens=16384, hidden=2048):
  peak = _peak(jax.devices()[0])
  print("\n## FlashAttention-2: time ratios vs ours (> 1: ours faster) and our TFLOP/s\n")
  others = ["cudnn", "xla", "jax-pallas-mha", "tokamax"]
  header = ["mode", "causal", "head_dim", "seq", "batch x heads", "ours ms"] + [f"vs {o}" for o in others] + [
      "ours TFLOP/s", "% of peak"]
  print(_fmt_row(header))
  print(_fmt_row(["---"] * len(header)))
  skipped = 0
  for mode in ("fwd+bwd", "fwd"):
    for causal in (False, True):
      impls = _attention_impls(causal)
      for h in head_dims:
        for t in lengths:
          if time.perf_counter() > deadline:
            skipped += 1
            continue
          b, n = max(1, tokens // t), hidden // h
          keys = jax.random.split(jax.random.PRNGKey(t), 3)
          q, k, v = (jax.random.normal(kk, (b, t, n, h), dtype) for kk in keys)
          times = {}
          for name, f in impls.items():
            fn = jax.jit(f) if mode == "fwd" else _fwd_bwd(f)
            try:
              times[name] = _time(fn, q, k, v, reps=reps)
            except Exception as e:  # noqa: BLE001 - a failing baseline is reported, not fatal
              times[name] = None
              print(f"({name} failed at {mode} causal={causal} h={h} t={t}: {type(e).__name__}: {str(e)[:200]})")
          ours = times.get("ours")
          ratio = lambda other: ("n/a" if ours is None or times.get(other) is None
                                 else f"{times[other] / ours:.2f}")
          tflops = None if ours is None else _flops(b, n, t, h, causal, mode) / ours / 1e12
          print(_fmt_row([mode, causal, h, t, f"{b} x {n}", "n/a" if ours is None else f"{ours * 1e3:.3f}"]
                         + [ratio(o) for o in others]
                         + ["n/a" if tflops is None else f"{tflops:.1f}",
                            "n/a" if tflops is None or peak is None else f"{100 * tflops / peak:.0f}%"]), flush=True)
  if skipped:
    print(f"\n({skipped} rows skipped: the --deadline-s budget ran out)")


def bench_gla(lengths, head_dim, dtype, reps, deadline, tokens=16384, hidden=2048):
  try:
    from jaxlib_methods.kernels.gla import gated_linear_attention   # pylint: disable=g-import-not-at-top
  except Exception as e:  # noqa: BLE001
    print(f"(GLA unavailable: {e!r})")
    return
  print("\n## GLA (chunk 64) vs our FA2 (causal), forward+backward, same batch x heads x head_dim\n")
  header = ["seq", "batch x heads", "FA2 ms", "GLA ms", "FA2 / GLA"]
  print(_fmt_row(header))
  print(_fmt_row(["---"] * len(header)))
  crossover = None
  for t in lengths:
    if time.perf_counter() > deadline:
      print(f"(seq {t} skipped: deadline)")
      continue
    b, n = max(1, tokens // t), hidden // head_dim
    keys = jax.random.split(jax.random.PRNGKey(t), 4)
    q, k, v = (jax.random.normal(kk, (b, t, n, head_dim), dtype) for kk in keys[:3])
    g = jax.nn.log_sigmoid(jax.random.normal(keys[3], (b, t, n, head_dim))) / 16
    try:
      t_fa = _time(_fwd_bwd(lambda q, k, v: flash_attention(q, k, v, causal=True)), q, k, v, reps=reps)
      gla_loss = lambda q, k, v, g: jnp.sum(gated_linear_attention(q, k, v, g)[0].astype(jnp.float32))
      t_gla = _time(jax.jit(jax.grad(gla_loss, argnums=(0, 1, 2, 3))), q, k, v, g, reps=reps)
    except Exception as e:  # noqa: BLE001 - report and go on
      print(f"(GLA row seq={t} failed: {type(e).__name__}: {str(e)[:200]})")
      continue
    if crossover is None and t_gla < t_fa:
      crossover = t
    print(_fmt_row([t, f"{b} x {n}", f"{t_fa * 1e3:.3f}", f"{t_gla * 1e3:.3f}", f"{t_fa / t_gla:.2f}"]), flush=True)
  print(f"\nGLA faster than FA2 from seq = {crossover}" if crossover else "\nGLA not faster than FA2 at these lengths")


# ----------------------------------------------------------------------------------------------------------------------
# CPU smoke run
# ----------------------------------------------------------------------------------------------------------------------

def cpu_smoke(reps, lengths=(128, 256, 512), tpu=True):
  """Interpret-mode agreement of our GPU (and TPU) kernels at tiny sizes, and the XLA reference timed on CPU."""
  print("NO GPU: jax's default backend is %r. The Pallas kernels run in interpret mode only, which says nothing about"
        " speed. Checking that they run and agree with the reference at tiny sizes, and timing the XLA reference"
        " on CPU (ratios below are XLA-on-CPU vs the same run's shortest length, not kernel speed)."
        % jax.default_backend())
  tiny = [("fp32 GQA causal ragged H32 (GPU kernels, interpret)", "fp32-highest", None,
           (1, 40, 40, 2, 1, 32, 32), dict(causal=True))]
  failures = tolerance_checks(interpret=True, cases=tiny)
  if tpu:
    key = jax.random.split(jax.random.PRNGKey(0), 3)
    q, k, v = (jax.random.normal(kk, (1, 130, 2, 32), jnp.float32) for kk in key)
    t0 = time.perf_counter()
    out = flash_attention(q, k, v, causal=True, platform="tpu", interpret=True)
    err = _rel(out, flash_attention_reference(q, k, v, causal=True))
    failures += not err < TOLERANCES["fp32-highest"]
    print(f"\nTPU (Mosaic) kernel forward in the TPU interpret mode (B=1 T=130 N=2 H=32, causal): relative error "
          f"{err:.1e} ({time.perf_counter() - t0:.1f} s incl. tracing)")
  print("\n## XLA reference on CPU (fp32), forward and forward+backward\n")
  header = ["mode", "causal", "seq", "ms", "ms per seq^2 (vs shortest)"]
  print(_fmt_row(header))
  print(_fmt_row(["---"] * len(header)))
  for mode in ("fwd", "fwd+bwd"):
    for causal in (False, True):
      anchor = None
      for t in lengths:
        keys = jax.random.split(jax.random.PRNGKey(t), 3)
        q, k, v = (jax.random.normal(kk, (1, t, 4, 64), jnp.float32) for kk in keys)
        f = functools.partial(flash_attention_reference, causal=causal)
        fn = jax.jit(f) if mode == "fwd" else _fwd_bwd(f)
        ms = _time(fn, q, k, v, reps=reps) * 1e3
        per = ms / (t / lengths[0]) ** 2
        anchor = per if anchor is None else anchor
        print(_fmt_row([mode, causal, t, f"{ms:.2f}", f"{per:.3f} ({per / anchor:.2f}x)"]), flush=True)
  return failures


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="GPU: lengths 1k, 4k, 16k only")
  parser.add_argument("--tiny", action="store_true", help="the CPU smoke run on any machine")
  parser.add_argument("--reps", type=int, default=10)
  parser.add_argument("--deadline-s", type=float, default=450.0,
                      help="GPU: stop the speed tables this many seconds after the tolerance checks end")
  args = parser.parse_args(argv)
  t_start = time.perf_counter()
  dev = jax.devices()[0]
  print(f"# attention benchmark: jax {jax.__version__}, device {getattr(dev, 'device_kind', dev.platform)}, "
        f"command: python benchmarks/attention.py {' '.join(argv if argv is not None else sys.argv[1:])}")
  if args.tiny or jax.default_backend() != "gpu":
    failures = (cpu_smoke(min(args.reps, 3), lengths=(64, 128), tpu=False) if args.tiny
                else cpu_smoke(min(args.reps, 3)))
    print(f"\n{failures} tolerance check(s) failed; total {time.perf_counter() - t_start:.0f} s")
    return 1 if failures else 0
  failures = tolerance_checks()
  failures += gla_tolerance_checks()
  print(f"\n(tolerance checks: {time.perf_counter() - t_start:.0f} s, compiles included)", flush=True)
  deadline = time.perf_counter() + args.deadline_s
  lengths = [1024, 4096, 16384] if args.quick else [1024, 2048, 4096, 8192, 16384]
  bench_attention(lengths, (64, 128), jnp.bfloat16, args.reps, deadline)
  bench_gla(lengths, 128, jnp.bfloat16, args.reps, deadline + 60)
  print(f"\n{failures} tolerance check(s) failed; total {time.perf_counter() - t_start:.0f} s")
  return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main())
