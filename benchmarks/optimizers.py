"""Optimizer-state bytes, step time and compiled peak memory of GaLore / Q-GaLore / FRUGAL against optax.adamw.

A small decoder-only transformer LM (pure JAX, pre-LN, untied embeddings) is trained with each optimizer. For each we
report, all measured in the same run and divided by AdamW's:

- state bytes: measured from the optimizer-state pytree, next to the analytic formula of the chosen layout
  (GaLore std side: min(m,n)*r + 2*r*max(m,n) per m x n weight; reverse_std: max*r + 2*r*min; Q-GaLore: r*d/2
  bytes of INT4 codes + 8 bytes per group + float32 moments; FRUGAL columns: 2*m*int(rho*n) + int(rho*n) indices;
  everything else AdamW's 2 * size) in float32;
- step time: median of >= 20 jitted train steps (loss, grad, update) after warm-up, between refreshes; the refresh
  step (SVD of every projected weight) is timed separately by forcing a refresh on every step (update_gap=1);
- peak memory: the compiled step's temporaries (`compiled.memory_analysis().temp_size_in_bytes`, SVD workspaces
  included) and arguments + outputs.

Usage:  .venv/bin/python benchmarks/optimizers.py [--steps 30] [--d-model 256] [--layers 2] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods.optim import frugal, galore, q_galore


def init_lm(key, vocab, d, layers, ff):
  ks = iter(jax.random.split(key, 4 + 6 * layers))
  n = lambda shape, fan_in: jax.random.normal(next(ks), shape) / np.sqrt(fan_in)
  p = {"embed": n((vocab, d), 1.0) * 0.02, "head": n((d, vocab), d), "ln_f": jnp.ones((d,))}
  for i in range(layers):
    p[f"layer{i}"] = {"attn": {"q": n((d, d), d), "k": n((d, d), d), "v": n((d, d), d), "o": n((d, d), d)},
                      "mlp": {"up": n((d, ff), d), "down": n((ff, d), ff)},
                      "ln1": jnp.ones((d,)), "ln2": jnp.ones((d,))}
  return p


def lm_loss(p, tokens, heads):
  x = p["embed"][tokens[:, :-1]]
  b, t, d = x.shape
  mask = jnp.tril(jnp.ones((t, t), bool))

  def ln(h, g):
    return g * (h - h.mean(-1, keepdims=True)) / jnp.sqrt(h.var(-1, keepdims=True) + 1e-5)

  for name in sorted(k for k in p if k.startswith("layer")):
    lp = p[name]
    h = ln(x, lp["ln1"])
    q, k, v = (jnp.reshape(h @ lp["attn"][c], (b, t, heads, d // heads)) for c in "qkv")
    s = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(d // heads)
    a = jax.nn.softmax(jnp.where(mask, s, -1e9), axis=-1)
    x = x + jnp.einsum("bhqk,bkhd->bqhd", a, v).reshape(b, t, d) @ lp["attn"]["o"]
    x = x + jax.nn.gelu(ln(x, lp["ln2"]) @ lp["mlp"]["up"]) @ lp["mlp"]["down"]
  logits = ln(x, p["ln_f"]) @ p["head"]
  return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()


def nbytes(tree) -> int:
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


def is_block_weight(path: str, shape) -> bool:
  """The weights the papers project / split: 2-D attention and MLP matrices (not embed, head, norms)."""
  return len(shape) == 2 and ("attn" in path or "mlp" in path)


def split_mask(params):
  return jax.tree_util.tree_map_with_path(lambda path, x: is_block_weight(jax.tree_util.keystr(path), x.shape),
                                          params)


def analytic_bytes(params, kind: str, rank: int, rho: float, group_size: int) -> int:
  """Float32 state bytes of each optimizer's layout (scalar counters excluded)."""
  total = 0
  for path, x in jax.tree_util.tree_flatten_with_path(params)[0]:
    path = jax.tree_util.keystr(path)
    adam = 2 * 4 * x.size
    if kind == "adamw" or not is_block_weight(path, x.shape):
      total += adam
      continue
    m, n = x.shape
    r = min(rank, m, n)
    if kind == "galore_std":
      total += 4 * (min(m, n) * r + 2 * r * max(m, n))
    elif kind == "galore_reverse":
      total += 4 * (max(m, n) * r + 2 * r * min(m, n))
    elif kind == "q_galore":
      d = min(m, n)
      groups = -(-d * r // group_size)
      total += groups * group_size // 2 + 8 * groups + 4 * d + 4 * 5 + 4 * 2 * r * max(m, n)  # codes, scales+zeros, top, queue
    elif kind == "frugal_columns":
      k = int(n * rho)
      total += 4 * (2 * m * k + k)
  return total


def time_steps(step: Callable, params, state, batch, steps: int) -> tuple[float, Any]:
  params, state, loss = step(params, state, batch)  # warm-up (compile + first, refresh, step)
  jax.block_until_ready(loss)
  params, state, loss = step(params, state, batch)
  jax.block_until_ready(loss)
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    params, state, loss = step(params, state, batch)
    jax.block_until_ready(loss)
    times.append(time.perf_counter() - t0)
  return statistics.median(times), float(loss)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--steps", type=int, default=30)
  ap.add_argument("--d-model", type=int, default=256)
  ap.add_argument("--layers", type=int, default=2)
  ap.add_argument("--vocab", type=int, default=512)
  ap.add_argument("--seq", type=int, default=64)
  ap.add_argument("--batch", type=int, default=8)
  ap.add_argument("--rank", type=int, default=64)
  ap.add_argument("--rho", type=float, default=0.25)
  ap.add_argument("--group-size", type=int, default=256)
  ap.add_argument("--out", type=str, default="")
  ap.add_argument("--only", type=str, default="", help="comma-separated subset of optimizers (adamw always runs)")
  args = ap.parse_args(argv)

  d, heads = args.d_model, max(1, args.d_model // 64)
  params = init_lm(jax.random.PRNGKey(0), args.vocab, d, args.layers, 4 * d)
  tokens = jax.random.randint(jax.random.PRNGKey(1), (args.batch, args.seq + 1), 0, args.vocab)
  lr, mask = 1e-3, split_mask(params)
  r, rho, gs = args.rank, args.rho, args.group_size

  def make(kind, gap):
    if kind == "adamw":
      return optax.adamw(lr)
    if kind == "galore_std":
      return galore(lr, rank=r, update_gap=gap, projection_mask=mask, side="std")
    if kind == "galore_reverse":
      return galore(lr, rank=r, update_gap=gap, projection_mask=mask, side="reverse_std")
    if kind == "q_galore":
      return q_galore(lr, rank=r, update_gap=gap, projection_mask=mask, group_size=gs)
    if kind == "frugal_columns":
      return frugal(lr, rho=rho, update_gap=gap, split_mask=mask, projector="columns")
    if kind == "frugal_svd":
      return frugal(lr, rho=rho, update_gap=gap, split_mask=mask, projector="svd")
    raise ValueError(kind)

  kinds = ["adamw", "galore_std", "galore_reverse", "q_galore", "frugal_columns", "frugal_svd"]
  if args.only:
    kinds = ["adamw"] + [k for k in kinds[1:] if k in args.only.split(",")]
  rows = []
  for kind in kinds:
    res = {"kind": kind}
    for label, gap in (("between", 10 ** 6), ("refresh", 1)):
      tx = make(kind, gap)
      state = tx.init(params)

      def step(p, s, batch, tx=tx):
        loss, g = jax.value_and_grad(lm_loss)(p, batch, heads)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

      jstep = jax.jit(step, donate_argnums=(0, 1))
      if label == "between":
        mem = jax.jit(step).lower(params, state, tokens).compile().memory_analysis()
        res["temp"] = getattr(mem, "temp_size_in_bytes", float("nan"))
        res["args_out"] = getattr(mem, "argument_size_in_bytes", 0) + getattr(mem, "output_size_in_bytes", 0)
        res["state"] = nbytes(state)
        res["analytic"] = (analytic_bytes(params, kind, r, rho, gs) if kind != "frugal_svd" else float("nan"))
      p_copy = jax.tree.map(jnp.copy, params)
      res[label], res["loss"] = time_steps(jstep, p_copy, state, tokens, args.steps if label == "between" else
                                           max(5, args.steps // 3))
    rows.append(res)
    print(f"{kind:15s} done: step {res['between'] * 1e3:.2f} ms, refresh step {res['refresh'] * 1e3:.2f} ms",
          flush=True)

  base = rows[0]
  n_params = sum(x.size for x in jax.tree.leaves(params))
  lines = [
      f"Model: decoder LM, d={d}, layers={args.layers}, vocab={args.vocab}, seq={args.seq}, batch={args.batch}, "
      f"{n_params / 1e6:.2f}M params; rank={r}, rho={rho}, group={gs}; device={jax.devices()[0].device_kind}; "
      f"median of {args.steps} steps.",
      "",
      "| optimizer | state bytes | analytic bytes | state / AdamW | step ms | step / AdamW | refresh step ms | "
      "refresh / AdamW | compiled temp MiB | temp / AdamW | args+out MiB |",
      "|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for row in rows:
    analytic = "n/a" if np.isnan(row["analytic"]) else f"{int(row['analytic'])}"
    lines.append(
        f"| {row['kind']} | {row['state']} | {analytic} | {row['state'] / base['state']:.3f} | "
        f"{row['between'] * 1e3:.2f} | {row['between'] / base['between']:.2f} | {row['refresh'] * 1e3:.2f} | "
        f"{row['refresh'] / base['between']:.2f} | {row['temp'] / 2 ** 20:.2f} | {row['temp'] / base['temp']:.2f} | "
        f"{row['args_out'] / 2 ** 20:.2f} |")
  lines.append("")
  lines.append("State bytes include scalar counters and per-leaf flags (a few bytes over the analytic formula); "
               "frugal_svd's analytic layout equals galore_std's projector + moments at rank round(rho*d).")
  table = "\n".join(lines)
  print(table)
  if args.out:
    with open(args.out, "w") as f:
      f.write(table + "\n")
  return rows


if __name__ == "__main__":
  main()
