"""Tile sweep of our FlashAttention-2 GPU kernels: each kernel's (block_q, block_k, num_warps, num_stages) timed on
this GPU, one kernel varied at a time from the defaults (`BlockSizes.get_default`), beside cuDNN and jax's Pallas
`mha` measured in the same run. This is how the defaults in `jaxlib_methods/kernels/flash_attention.py` are chosen
for a GPU; `benchmarks/kernel_resources.py` then checks the chosen tiles fit sm_80 and sm_90a without spills.

    python benchmarks/fa2_tune.py [--deadline-s 220] [--seq 4096] [--tokens 16384]

Per (head_dim, causal), bf16, batch * seq = tokens, hidden 2048: (1) forward time per forward tile; (2) forward +
backward time per dK/dV tile (forward and dQ at their defaults); (3) the same per dQ tile. A tile that does not
compile (shared memory) is reported as failed. Ratios: time(default) / time(candidate) (> 1: the candidate is faster).
CPU: `--tiny` runs two candidates at a tiny size in interpret mode, to check the script itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from attention import _fmt_row, _fwd_bwd, _time  # noqa: E402  pylint: disable=g-import-not-at-top
from jaxlib_methods.kernels.flash_attention import BlockSizes, flash_attention  # noqa: E402

FWD = [(64, 64, 8, 3), (128, 64, 8, 3), (128, 64, 4, 3), (128, 128, 8, 2), (128, 128, 8, 3), (128, 32, 4, 3),
       (64, 128, 4, 3), (64, 64, 4, 3), (128, 64, 8, 2), (128, 128, 4, 2)]
DKV = [(32, 32, 8, 2), (64, 64, 8, 2), (64, 64, 4, 2), (32, 64, 4, 2), (64, 128, 8, 2), (128, 64, 8, 2),
       (32, 128, 8, 2), (64, 32, 4, 2), (128, 128, 8, 2), (64, 128, 4, 3)]
DQ = [(64, 64, 8, 2), (128, 64, 8, 2), (128, 32, 8, 2), (64, 32, 4, 2), (128, 64, 4, 2), (128, 128, 8, 2),
      (64, 128, 8, 2)]


def _with(bs: BlockSizes, kernel: str, cand) -> BlockSizes:
  bq, bk, w, s = cand
  if kernel == "fwd":
    return dataclasses.replace(bs, block_q=bq, block_k=bk, num_warps_fwd=w, num_stages_fwd=s)
  if kernel == "dkv":
    return dataclasses.replace(bs, block_q_dkv=bq, block_k_dkv=bk, num_warps_dkv=w, num_stages_dkv=s)
  return dataclasses.replace(bs, block_q_dq=bq, block_k_dq=bk, num_warps_dq=w, num_stages_dq=s)


def _current(bs: BlockSizes, kernel: str):
  if kernel == "fwd":
    return (bs.block_q, bs.block_k, bs.num_warps_fwd, bs.num_stages_fwd)
  if kernel == "dkv":
    return (bs.block_q_dkv, bs.block_k_dkv, bs.num_warps_dkv, bs.num_stages_dkv)
  return (bs.block_q_dq, bs.block_k_dq, bs.num_warps_dq, bs.num_stages_dq)


def sweep(head_dims, causals, seq, tokens, hidden, reps, deadline, interpret=False, cands=None, dtype=jnp.bfloat16):
  header = ["head_dim", "causal", "kernel", "block_q", "block_k", "warps", "stages", "ms", "default / this"]
  print(_fmt_row(header))
  print(_fmt_row(["---"] * len(header)), flush=True)
  for h in head_dims:
    for causal in causals:
      b, n = max(1, tokens // seq), max(1, hidden // h)
      keys = jax.random.split(jax.random.PRNGKey(seq + h), 3)
      q, k, v = (jax.random.normal(kk, (b, seq, n, h), dtype) for kk in keys)
      default = BlockSizes.get_default(h, dtype)
      if not interpret and jax.default_backend() == "gpu":
        from jax.experimental.pallas.ops.gpu import attention as jax_pallas   # pylint: disable=g-import-not-at-top
        anchors = {
            "cudnn": lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation="cudnn"),
            "jax-pallas-mha": lambda q, k, v: jax_pallas.mha(q, k, v, None, sm_scale=1.0 / np.sqrt(h),
                                                             causal=causal)}
        for name, f in anchors.items():
          for mode, fn in (("fwd", jax.jit(f)), ("fwd+bwd", _fwd_bwd(f))):
            try:
              print(f"anchor h={h} causal={causal} {name} {mode}: {_time(fn, q, k, v, reps=reps) * 1e3:.3f} ms",
                    flush=True)
            except Exception as e:  # noqa: BLE001
              print(f"anchor {name} {mode} failed: {type(e).__name__}: {str(e)[:160]}")
      for kernel, grid in (("fwd", FWD), ("dkv", DKV), ("dq", DQ)):
        grid = (cands or {}).get(kernel, grid)
        base = _current(default, kernel)
        grid = [base] + [c for c in grid if c != base]
        t_base = None
        for cand in grid:
          if time.perf_counter() > deadline:
            print(f"(deadline: h={h} causal={causal} {kernel} {cand} skipped)")
            continue
          bs = _with(default, kernel, cand)
          f = lambda q, k, v, bs=bs: flash_attention(q, k, v, causal=causal, block_sizes=bs, interpret=interpret)
          fn = jax.jit(f) if kernel == "fwd" else _fwd_bwd(f)
          try:
            t = _time(fn, q, k, v, reps=reps)
          except Exception as e:  # noqa: BLE001 - a tile that does not compile is a result
            print(_fmt_row([h, causal, kernel, *cand, "failed", f"{type(e).__name__}: {str(e)[:100]}"]), flush=True)
            continue
          t_base = t if t_base is None else t_base
          print(_fmt_row([h, causal, kernel, *cand, f"{t * 1e3:.3f}", f"{t_base / t:.2f}"]), flush=True)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--deadline-s", type=float, default=220.0)
  ap.add_argument("--seq", type=int, default=4096)
  ap.add_argument("--tokens", type=int, default=16384)
  ap.add_argument("--reps", type=int, default=10)
  ap.add_argument("--head-dims", type=str, default="128,64")
  ap.add_argument("--tiny", action="store_true")
  args = ap.parse_args(argv)
  t0 = time.perf_counter()
  print(f"# fa2_tune: jax {jax.__version__}, device {jax.devices()[0].device_kind}")
  if args.tiny:
    sweep([32], [True], 64, 64, 64, 1, t0 + 600, interpret=True, dtype=jnp.float32,
          cands={"fwd": [(32, 16, 4, 2)], "dkv": [(16, 32, 4, 2)], "dq": [(32, 32, 4, 2)]})
    return 0
  sweep([int(x) for x in args.head_dims.split(",")], (False, True), args.seq, args.tokens, 2048, args.reps,
        t0 + args.deadline_s)
  print(f"total {time.perf_counter() - t0:.0f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
