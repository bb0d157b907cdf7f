"""Per-device state bytes and step time of data parallelism vs FSDP vs FSDP + tensor, as ratios to DP measured in
the same run (issue 12). Run: `python benchmarks/scaleout.py [--devices 8] [--steps 10] [--optimizers adamw,galore]`.

On a CPU it simulates `--devices` devices (XLA_FLAGS, set before JAX starts); on a GPU/TPU host it uses the real
devices. The model is the project's transformer LM (`experiments.lm_scaleout.Trainer`, the same sharded init and
donated jitted step as the experiment); bytes are summed from each array's addressable shards on each device (params
+ optimizer state, the maximum over devices); the step time is the median over `--steps` single-step calls after a
warm-up (compile excluded). On simulated CPU devices the times measure XLA:CPU's partitioned programs on shared
cores (collectives are memcpys between threads), not an accelerator's interconnect: only the bytes transfer.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if __name__ == "__main__":
  _ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  _ap.add_argument("--devices", type=int, default=8)
  _ap.add_argument("--steps", type=int, default=10)
  _ap.add_argument("--optimizers", default="adamw,galore")
  _ap.add_argument("--layouts", default="DP,FSDP,DP x FSDP,FSDP + tensor",
                   help="comma-separated subset of the layouts (DP, the anchor, is always measured)")
  _ap.add_argument("--d-model", type=int, default=256)
  _ap.add_argument("--layers", type=int, default=2)
  _ap.add_argument("--vocab", type=int, default=512)
  _ap.add_argument("--seq", type=int, default=64)
  _ap.add_argument("--batch", type=int, default=16)
  ARGS = _ap.parse_args()
  if "JAX_PLATFORMS" not in os.environ or os.environ["JAX_PLATFORMS"] == "cpu":
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
      os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={ARGS.devices}".strip()
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from jaxlib_methods.runner import distributed
  distributed.collective_timeouts()
  distributed.cpu_thread_pool_headroom()

import jax
import numpy as np

from experiments import lm_scaleout
from jaxlib_methods.runner import MeshConfig
from jaxlib_methods.runner import sharding as shd

LAYOUTS = (("DP", MeshConfig(data=0)), ("FSDP", MeshConfig(fsdp=0)), ("DP x FSDP", MeshConfig(data=2, fsdp=0)),
           ("FSDP + tensor", MeshConfig(fsdp=0, tensor=2)))


def measure(config, optimizer: str, mesh_cfg: MeshConfig, steps: int, data) -> dict:
  mesh = shd.make_mesh(mesh_cfg)
  trainer = lm_scaleout.Trainer(config, mesh, optimizer, corpus_data=data)
  state = trainer.init()
  per = shd.bytes_per_device({"params": state["params"], "opt": state["opt"]})
  state = trainer.advance(state, 0, 1)                       # compile + warm-up
  jax.block_until_ready(state)
  times = []
  for s in range(steps):
    batch = trainer.batches(1 + s, 1)
    t0 = time.perf_counter()
    state, _ = trainer._chunk(state, batch)
    jax.block_until_ready(state)
    times.append(time.perf_counter() - t0)
  return {"mesh": dict(mesh.shape), "bytes": max(per.values()), "ms": 1e3 * float(np.median(times))}


def main(args) -> None:
  n = jax.device_count()
  config = lm_scaleout.Config(vocab_size=args.vocab, d_model=args.d_model, num_layers=args.layers, num_heads=4,
                              seq_len=args.seq, batch_size=args.batch, pool_sequences=max(256, 4 * args.batch),
                              eval_sequences=max(16, n), rank=32, check_devices=0, check_processes=0)
  data = lm_scaleout.corpus(config)
  print(f"Model: decoder LM d={args.d_model} layers={args.layers} vocab={args.vocab} seq={args.seq} "
        f"global batch={args.batch}; {n} {jax.devices()[0].platform} devices; median of {args.steps} steps.\n")
  print("| optimizer | layout | mesh (data, fsdp, tensor) | per-device state bytes | bytes / DP | step ms | "
        "step / DP |")
  print("|---|---|---|---|---|---|---|")
  for opt in args.optimizers.split(","):
    base = None
    wanted = {"DP"} | {x.strip() for x in args.layouts.split(",")}
    for name, mcfg in LAYOUTS:
      if name not in wanted:
        continue
      r = measure(config, opt, mcfg, args.steps, data)
      base = base or r
      m = r["mesh"]
      print(f"| {opt} | {name} | ({m['data']}, {m['fsdp']}, {m['tensor']}) | {r['bytes']} | "
            f"{r['bytes'] / base['bytes']:.3f} | {r['ms']:.1f} | {r['ms'] / base['ms']:.2f} |", flush=True)


if __name__ == "__main__":
  main(ARGS)
