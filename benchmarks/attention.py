"""Attention kernels: forward and forward+backward time as ratios measured in the same run.

    python benchmarks/attention.py                 # GPU: the full table; CPU: a tiny interpret-mode smoke run
    python benchmarks/attention.py --quick         # GPU: fewer lengths

Rows (GPU): our FlashAttention-2 Pallas kernel (`jaxlib_methods.kernels.flash_attention`) vs
`jax.nn.dot_product_attention(implementation="cudnn")`, vs `implementation="xla"`, vs jax's own Pallas `mha`
(`jax.experimental.pallas.ops.gpu.attention`), for seq 512..16k, head_dim 64/128, bf16, causal and not, with the
total token count fixed (batch * seq = 16k) and hidden size 2048 (heads = 2048 / head_dim), as in the FlashAttention-2
paper's benchmarks. Ratios are time(other) / time(ours): > 1 means ours is faster. TFLOP/s use the paper's count
(forward 4 * B * N * T^2 * H, halved when causal; forward+backward 3.5x the forward) against the GPU's dense bf16 peak.
The GLA table compares our GLA kernel (`jaxlib_methods.kernels.gla`, chunk 64, Dk = Dv = head_dim) with our FA2 by
sequence length (forward+backward, causal FA2), and reports the first length where GLA is faster (the crossover).

On a machine with no GPU the Pallas kernels only run in the interpreter, which measures nothing about speed: the
script says so, checks that our kernels run and agree with the XLA reference at tiny sizes, and times the XLA
reference on CPU so the table format is exercised.
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
from jaxlib_methods.kernels.gla import gated_linear_attention, gated_linear_attention_reference

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}


def _peak(device) -> float | None:
  kind = getattr(device, "device_kind", "")
  for name, peak in PEAK_BF16_TFLOPS.items():
    if name in kind:
      return peak
  return None


def _time(fn, *args, reps: int = 10) -> float:
  """Median seconds of a jitted call (compiled and warmed up first)."""
  out = fn(*args)
  jax.block_until_ready(out)
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


def _attention_impls(causal, interpret=False, block=128):
  impls = {
      "ours": lambda q, k, v: flash_attention(q, k, v, causal=causal, block_q=block, block_k=block,
                                                 interpret=interpret),
      "xla": lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation="xla"),
  }
  if jax.default_backend() == "gpu":
    impls["cudnn"] = lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation="cudnn")
    try:
      from jax.experimental.pallas.ops.gpu import attention as jax_pallas

      def jax_mha(q, k, v):
        return jax_pallas.mha(q, k, v, None, sm_scale=1.0 / np.sqrt(q.shape[-1]), causal=causal)
      impls["jax-pallas-mha"] = jax_mha
    except Exception as e:  # noqa: BLE001 - report and go on without this row
      print(f"(jax's Pallas mha unavailable: {e!r})")
  return impls


def _fmt_row(cells):
  return "| " + " | ".join(str(c) for c in cells) + " |"


def bench_attention(lengths, head_dims, dtype, reps, tokens=16384, hidden=2048):
  peak = _peak(jax.devices()[0])
  print("\n## FlashAttention-2: time ratios vs ours (> 1: ours faster) and our TFLOP/s\n")
  header = ["mode", "causal", "head_dim", "seq", "batch x heads", "ours ms", "vs cudnn", "vs xla", "vs jax-pallas-mha",
            "ours TFLOP/s", "% of peak"]
  print(_fmt_row(header))
  print(_fmt_row(["---"] * len(header)))
  for mode in ("fwd", "fwd+bwd"):
    for causal in (False, True):
      impls = _attention_impls(causal)
      for h in head_dims:
        for t in lengths:
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
          print(_fmt_row([mode, causal, h, t, f"{b} x {n}", "n/a" if ours is None else f"{ours * 1e3:.3f}",
                          ratio("cudnn"), ratio("xla"), ratio("jax-pallas-mha"),
                          "n/a" if tflops is None else f"{tflops:.1f}",
                          "n/a" if tflops is None or peak is None else f"{100 * tflops / peak:.0f}%"]), flush=True)


def bench_gla(lengths, head_dim, dtype, reps, tokens=16384, hidden=2048):
  print("\n## GLA (chunk 64) vs our FA2 (causal), forward+backward, same batch x heads x head_dim\n")
  header = ["seq", "batch x heads", "FA2 ms", "GLA ms", "FA2 / GLA"]
  print(_fmt_row(header))
  print(_fmt_row(["---"] * len(header)))
  crossover = None
  for t in lengths:
    b, n = max(1, tokens // t), hidden // head_dim
    keys = jax.random.split(jax.random.PRNGKey(t), 4)
    q, k, v = (jax.random.normal(kk, (b, t, n, head_dim), dtype) for kk in keys[:3])
    g = jax.nn.log_sigmoid(jax.random.normal(keys[3], (b, t, n, head_dim))) / 16
    t_fa = _time(_fwd_bwd(lambda q, k, v: flash_attention(q, k, v, causal=True)), q, k, v, reps=reps)
    gla_loss = lambda q, k, v, g: jnp.sum(gated_linear_attention(q, k, v, g)[0].astype(jnp.float32))
    t_gla = _time(jax.jit(jax.grad(gla_loss, argnums=(0, 1, 2, 3))), q, k, v, g, reps=reps)
    if crossover is None and t_gla < t_fa:
      crossover = t
    print(_fmt_row([t, f"{b} x {n}", f"{t_fa * 1e3:.3f}", f"{t_gla * 1e3:.3f}", f"{t_fa / t_gla:.2f}"]), flush=True)
  print(f"\nGLA faster than FA2 from seq = {crossover}" if crossover else "\nGLA not faster than FA2 at these lengths")


def cpu_smoke(reps):
  print("NO GPU: jax's default backend is %r. The Pallas kernels run in interpret mode only, which says nothing about"
        " speed. Checking that they run and agree with the XLA reference at tiny sizes, and timing the XLA reference"
        " on CPU (ratios below are XLA-on-CPU vs XLA-on-CPU anchors, not kernel speed)." % jax.default_backend())
  key = jax.random.split(jax.random.PRNGKey(0), 4)
  q, k, v = (jax.random.normal(kk, (1, 80, 2, 64), jnp.float32) for kk in key[:3])
  t0 = time.perf_counter()
  out = flash_attention(q, k, v, causal=True, block_q=32, block_k=32, interpret=True)
  err = float(jnp.max(jnp.abs(out - flash_attention_reference(q, k, v, causal=True))))
  print(f"\nflash_attention (interpret, B=1 T=80 N=2 H=64, causal): max |ours - reference| = {err:.2e} "
        f"({time.perf_counter() - t0:.1f} s incl. tracing)")
  g = jax.nn.log_sigmoid(jax.random.normal(key[3], q.shape)) / 16
  t0 = time.perf_counter()
  o, s = gated_linear_attention(q, k, v, g, chunk_size=32, interpret=True)
  o_r, s_r = gated_linear_attention_reference(q, k, v, g)
  print(f"gated_linear_attention (interpret, same shapes, chunk 32): max |ours - recurrence| = "
        f"{float(jnp.max(jnp.abs(o - o_r))):.2e} ({time.perf_counter() - t0:.1f} s incl. tracing)")
  print("\n## XLA reference on CPU (fp32), forward and forward+backward\n")
  header = ["mode", "causal", "seq", "ms", "ms per 1k tokens^2 (vs seq 256)"]
  print(_fmt_row(header))
  print(_fmt_row(["---"] * len(header)))
  for mode in ("fwd", "fwd+bwd"):
    for causal in (False, True):
      anchor = None
      for t in (256, 512, 1024):
        keys = jax.random.split(jax.random.PRNGKey(t), 3)
        q, k, v = (jax.random.normal(kk, (1, t, 4, 64), jnp.float32) for kk in keys)
        f = functools.partial(flash_attention_reference, causal=causal)
        fn = jax.jit(f) if mode == "fwd" else _fwd_bwd(f)
        ms = _time(fn, q, k, v, reps=reps) * 1e3
        per = ms / (t / 1024) ** 2
        anchor = per if anchor is None else anchor
        print(_fmt_row([mode, causal, t, f"{ms:.2f}", f"{per:.2f} ({per / anchor:.2f}x)"]), flush=True)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="GPU: lengths 1k, 4k, 16k only")
  parser.add_argument("--reps", type=int, default=10)
  args = parser.parse_args(argv)
  dev = jax.devices()[0]
  print(f"# attention benchmark: jax {jax.__version__}, device {getattr(dev, 'device_kind', dev.platform)}, "
        f"command: python benchmarks/attention.py {' '.join(argv if argv is not None else sys.argv[1:])}")
  if jax.default_backend() != "gpu":
    cpu_smoke(min(args.reps, 5))
    return
  lengths = [1024, 4096, 16384] if args.quick else [512, 1024, 2048, 4096, 8192, 16384]
  bench_attention(lengths, (64, 128), jnp.bfloat16, args.reps)
  bench_gla(lengths, 128, jnp.bfloat16, args.reps)


if __name__ == "__main__":
  main()
