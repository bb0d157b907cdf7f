"""Optimizer-state bytes, step time and compiled peak memory of GaLore / Q-GaLore / FRUGAL against optax.adamw, on the
project's transformer LM; and Q-GaLore's SVD count at equal loss (lazy refresh vs a refresh every T steps).

The model is `jaxlib_methods.nn.transformer.TransformerLM` (pre-norm, RoPE, untied embeddings; attention weights
[d, n, h] / [n, h, d]); the low-memory optimizers project the matrices the papers project: `paper_projection_mask`
(attention and MLP weights, never embeddings, the unembedding or norms) with `paper_reshape` (attention weights as
[d, n*h] / [n*h, d] matrices). For each optimizer, measured in the same run and divided by AdamW's:

- state bytes: measured from the optimizer-state pytree, next to the analytic formula of the chosen layout (GaLore
  std side: min(m,n)*r + 2*r*max(m,n) per m x n matrix; reverse_std: max*r + 2*r*min; Q-GaLore: r*d/2 bytes of INT4
  codes + 8 bytes per group + its float32 top vector and queue + the moments (float32, or 8-bit: 2 bytes per entry +
  8 per 2048-block, float32 under 4096 entries); FRUGAL columns: 2*m*int(rho*n) + int(rho*n) indices; FRUGAL blocks:
  2*round(rho*m)*n + round(rho*m) indices (the blocks of a separate-leaf model are its rows); everything else AdamW's
  2 * size) in float32; scalar placeholders and counters are the few bytes over the formula;
- step time: median of >= 20 jitted train steps (loss, grad, update) after warm-up, between refreshes; the refresh
  step (SVD of every projected weight) is timed separately by forcing a refresh on every step (update_gap=1);
- peak memory: the compiled step's temporaries (`compiled.memory_analysis().temp_size_in_bytes`, SVD workspaces
  included) and arguments + outputs.

The wave-2 section (issue 16) adds the other stateful transforms of `jaxlib_methods.optim` on the same model, each
beside AdamW: cSGLD (`csgld`: the step count only, the noise key is derived from the seed and the count), dynamic
sparse training (`dynamic_sparse(adamw)`: a bool mask mirroring the params, 1 byte per entry, all True on the leaves
it does not sparsify, + AdamW's moments), SSO
(`sso(adamw)`: AdamW's moments for the inner surrogate steps), optimistic OMD (`optimistic_omd`: the offset and the
hint, 2 x float32 per entry), GAQAT's freezing (`scale_by_gaqat_freeze` chained before AdamW: a step count; the LSQ
step sizes are parameters, one float per quantised tensor) and the 8-bit Adam inner transform on its own
(`scale_by_adam_8bit`). N:M sparsity (`nm_sparsity`) keeps no optimizer state: its masks are recomputed from the
weights in the forward pass. State bytes are measured from the state pytree next to the analytic per-entry formula;
the step time is the same jitted (loss, grad, update) step (SSO's update needs the model outputs, so it has none).

The SVD section trains the same LM with Q-GaLore twice from the same seed, with the lazy layer-adaptive refresh
(cos_threshold 0.4, the paper's) and with it disabled (cos_threshold 2: a refresh every `update_gap` steps), and
reports the SVDs computed (sum over matrices of `svd_count`) and the final loss.

Usage:  .venv/bin/python benchmarks/optimizers.py [--steps 30] [--d-model 256] [--layers 2] [--svd-steps 120]
        [--svd-only] [--no-wave2] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxlib_methods import optim as O
from jaxlib_methods.nn.transformer import TransformerConfig, TransformerLM


def make_lm(vocab: int, d: int, layers: int, heads: int):
  """The project's LM as a pure params dict and a loss (params, tokens [B, T+1]) -> next-token cross-entropy."""
  model = TransformerLM(TransformerConfig(vocab_size=vocab, d_model=d, num_layers=layers, num_heads=heads),
                        rngs=nnx.Rngs(0))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def loss_fn(p, tokens):
    logits = nnx.merge(graphdef, p, rest)(tokens[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

  return nnx.to_pure_dict(params), loss_fn


def nbytes(tree) -> int:
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


def matrices(params):
  """(shape, m, n, projected) per leaf: the matrix view `paper_reshape` gives, for the leaves the paper mask picks."""
  out = []
  flat_mask = jax.tree.leaves(O.paper_projection_mask(params))
  flat_reshape = jax.tree.structure(params).flatten_up_to(O.paper_reshape(params))
  for (path, x), use, k in zip(jax.tree_util.tree_flatten_with_path(params)[0], flat_mask, flat_reshape):
    if x.ndim == 2:
      k = 1
    m, n = (math.prod(x.shape[:k]), math.prod(x.shape[k:])) if use else (x.size, 1)
    out.append((x.shape, m, n, bool(use)))
  return out


def adam8_bytes(size: int) -> int:
  return 2 * size + 2 * 4 * -(-size // 2048) if size >= 4096 else 8 * size


def analytic_bytes(params, kind: str, rank: int, rho: float, group_size: int) -> int:
  """State bytes of each optimizer's layout (scalar counters and placeholders excluded)."""
  total = 0
  for shape, m, n, use in matrices(params):
    size = m * n
    if kind == "adamw" or not use:
      total += adam8_bytes(size) if kind == "q_galore_8bit" else 8 * size
      continue
    r = min(rank, m, n)
    if kind in ("galore_std", "galore_rsvd"):
      total += 4 * (min(m, n) * r + 2 * r * max(m, n))
    elif kind == "galore_reverse":
      total += 4 * (max(m, n) * r + 2 * r * min(m, n))
    elif kind in ("q_galore", "q_galore_8bit"):
      d = min(m, n)
      groups = -(-d * r // group_size)
      proj = groups * group_size // 2 + 8 * groups + 4 * d + 4 * 5  # INT4 codes, scales+zeros, top, queue
      low = r * max(m, n)
      total += proj + (adam8_bytes(low) if kind == "q_galore_8bit" else 8 * low)
    elif kind == "frugal_columns":
      k = int(n * rho)
      total += 4 * (2 * m * k + k)
    elif kind == "frugal_blocks":  # blocks are the slices of the leading axis, whatever the reshape
      rows, cols = shape[0], size // shape[0]
      k = int(round(rows * rho))
      total += 4 * (2 * k * cols + k)
    else:
      return float("nan")
  return total


WAVE2 = ("csgld", "dynamic_sparse", "sso", "optimistic_omd", "gaqat_freeze", "adam_8bit")


def wave2_analytic_bytes(params, kind: str) -> int:
  """Per-entry state bytes of the wave-2 transforms (scalar counters excluded), float32 params."""
  sizes = [x.size for x in jax.tree.leaves(params)]
  adamw = sum(8 * n for n in sizes)
  if kind == "csgld":
    return 0
  if kind == "dynamic_sparse":   # a bool mask (1 byte) per entry of every leaf (all True where not sparsified), + AdamW
    return adamw + sum(sizes)
  if kind in ("sso", "gaqat_freeze"):
    return adamw
  if kind == "optimistic_omd":   # hat_offset + hint
    return adamw
  if kind == "adam_8bit":
    return sum(adam8_bytes(n) for n in sizes)
  return float("nan")


def wave2_section(params, loss_fn, tokens, args, base_state: int, base_step: float):
  lr = 1e-3
  makers = {
      "csgld": lambda: O.csgld(lr, total_steps=1000, num_cycles=4, data_size=1000),
      "dynamic_sparse": lambda: O.dynamic_sparse(optax.adamw(lr), 0.9, update_interval=100, end_step=1000),
      "sso": lambda: O.sso(optax.adamw(lr), eta=1.0, num_inner_steps=4),
      "optimistic_omd": lambda: O.optimistic_omd(lr),
      "gaqat_freeze": lambda: optax.chain(O.scale_by_gaqat_freeze(0.5, scale_mask=lambda p: jax.tree.map(
          lambda _: False, p)), optax.adamw(lr)),
      "adam_8bit": lambda: optax.chain(O.scale_by_adam_8bit(), optax.scale(-lr)),
  }
  lines = ["", "Wave-2 transforms (issue 16): optimizer-state bytes measured from the state pytree, beside the "
           "analytic per-entry formula and AdamW's (same model); N:M sparsity keeps no optimizer state.", "",
           "| transform | state bytes | analytic bytes | state / AdamW | step ms | step / AdamW |",
           "|---|---|---|---|---|---|"]
  for kind in WAVE2:
    tx = makers[kind]()
    state = tx.init(params)
    n = nbytes(state)
    step_ms = "n/a"
    ratio = "n/a"
    if kind != "sso":

      def step(p, s, batch, tx=tx, kind=kind):
        loss, g = jax.value_and_grad(loss_fn)(p, batch)
        kw = {"task_grads": g} if kind == "gaqat_freeze" else {}
        u, s = tx.update(g, s, p, **kw)
        return optax.apply_updates(p, u), s, loss

      t, _ = time_steps(jax.jit(step, donate_argnums=(0, 1)), jax.tree.map(jnp.copy, params), state, tokens,
                        args.steps)
      step_ms, ratio = f"{t * 1e3:.2f}", f"{t / base_step:.2f}"
    analytic = wave2_analytic_bytes(params, kind)
    lines.append(f"| {kind} | {n} | {int(analytic)} | {n / base_state:.3f} | {step_ms} | {ratio} |")
    print(f"{kind:15s} done", flush=True)
  return lines


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


def svd_section(params, loss_fn, tokens, args):
  lines = ["", f"Q-GaLore lazy refresh vs a refresh every T={args.svd_gap} steps ({args.svd_steps} steps, rank "
           f"{args.rank}, same seed and data):", "",
           "| refresh rule | SVDs computed | SVDs / every-T | final loss | loss / every-T |", "|---|---|---|---|---|"]
  res = {}
  for name, thr in (("every T (cos_threshold 2)", 2.0), ("lazy (cos_threshold 0.4, paper)", 0.4)):
    tx = O.q_galore(3e-3, rank=args.rank, update_gap=args.svd_gap, group_size=args.group_size, cos_threshold=thr,
                    projection_mask=O.paper_projection_mask, reshape=O.paper_reshape)
    state = tx.init(params)

    @jax.jit
    def step(p, s, tx=tx):
      loss, g = jax.value_and_grad(loss_fn)(p, tokens)
      u, s = tx.update(g, s, p)
      return optax.apply_updates(p, u), s, loss

    p = params
    for _ in range(args.svd_steps):
      p, state, loss = step(p, state)
    res[name] = (sum(int(v) for v in jax.tree.leaves(state[0].svd_count)), float(loss_fn(p, tokens)))
  base_svd, base_loss = res["every T (cos_threshold 2)"]
  for name, (svds, loss) in res.items():
    lines.append(f"| {name} | {svds} | {svds / base_svd:.2f} | {loss:.4f} | {loss / base_loss:.3f} |")
  return lines


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
  ap.add_argument("--svd-steps", type=int, default=120)
  ap.add_argument("--svd-gap", type=int, default=4)
  ap.add_argument("--out", type=str, default="")
  ap.add_argument("--only", type=str, default="", help="comma-separated subset of optimizers (adamw always runs)")
  ap.add_argument("--svd-only", action="store_true", help="only the Q-GaLore SVD-count section")
  ap.add_argument("--no-wave2", action="store_true", help="skip the wave-2 (issue 16) state-bytes section")
  args = ap.parse_args(argv)

  d, heads = args.d_model, max(1, args.d_model // 64)
  params, loss_fn = make_lm(args.vocab, d, args.layers, heads)
  tokens = jax.random.randint(jax.random.PRNGKey(1), (args.batch, args.seq + 1), 0, args.vocab)
  lr, mask, reshape = 1e-3, O.paper_projection_mask(params), O.paper_reshape(params)
  r, rho, gs = args.rank, args.rho, args.group_size
  low = dict(projection_mask=mask, reshape=reshape)

  def make(kind, gap):
    if kind == "adamw":
      return optax.adamw(lr)
    if kind == "galore_std":
      return O.galore(lr, rank=r, update_gap=gap, side="std", **low)
    if kind == "galore_rsvd":
      return O.galore(lr, rank=r, update_gap=gap, side="std", projector="randomized_svd", **low)
    if kind == "galore_reverse":
      return O.galore(lr, rank=r, update_gap=gap, side="reverse_std", **low)
    if kind == "q_galore":
      return O.q_galore(lr, rank=r, update_gap=gap, group_size=gs, **low)
    if kind == "q_galore_8bit":
      return O.q_galore(lr, rank=r, update_gap=gap, group_size=gs, inner=O.scale_by_adam_8bit(), **low)
    if kind == "frugal_columns":
      return O.frugal(lr, rho=rho, update_gap=gap, split_mask=mask, reshape=reshape, projector="columns")
    if kind == "frugal_svd":
      return O.frugal(lr, rho=rho, update_gap=gap, split_mask=mask, reshape=reshape, projector="svd")
    if kind == "frugal_blocks":
      return O.frugal(lr, rho=rho, update_gap=gap, split_mask=mask, projector="blocks")
    raise ValueError(kind)

  if args.svd_only:
    table = "\n".join(svd_section(params, loss_fn, tokens, args)[1:])
    print(table)
    if args.out:
      with open(args.out, "w") as f:
        f.write(table + "\n")
    return []
  kinds = ["adamw", "galore_std", "galore_rsvd", "galore_reverse", "q_galore", "q_galore_8bit", "frugal_columns", "frugal_svd",
           "frugal_blocks"]
  if args.only:
    kinds = ["adamw"] + [k for k in kinds[1:] if k in args.only.split(",")]
  rows = []
  for kind in kinds:
    res = {"kind": kind}
    for label, gap in (("between", 10 ** 6), ("refresh", 1)):
      tx = make(kind, gap)
      state = tx.init(params)

      def step(p, s, batch, tx=tx):
        loss, g = jax.value_and_grad(loss_fn)(p, batch)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

      jstep = jax.jit(step, donate_argnums=(0, 1))
      if label == "between":
        mem = jax.jit(step).lower(params, state, tokens).compile().memory_analysis()
        res["temp"] = getattr(mem, "temp_size_in_bytes", float("nan"))
        res["args_out"] = getattr(mem, "argument_size_in_bytes", 0) + getattr(mem, "output_size_in_bytes", 0)
        res["state"] = nbytes(state)
        res["analytic"] = analytic_bytes(params, kind, r, rho, gs)
      p_copy = jax.tree.map(jnp.copy, params)
      res[label], res["loss"] = time_steps(jstep, p_copy, state, tokens, args.steps if label == "between" else
                                           max(5, args.steps // 3))
    rows.append(res)
    print(f"{kind:15s} done: step {res['between'] * 1e3:.2f} ms, refresh step {res['refresh'] * 1e3:.2f} ms",
          flush=True)

  base = rows[0]
  n_params = sum(x.size for x in jax.tree.leaves(params))
  n_proj = sum(m * n for _, m, n, use in matrices(params) if use)
  lines = [
      f"Model: TransformerLM, d={d}, layers={args.layers}, heads={heads}, vocab={args.vocab}, seq={args.seq}, "
      f"batch={args.batch}, {n_params / 1e6:.2f}M params ({n_proj / n_params:.0%} in the projected attention/MLP "
      f"matrices); rank={r}, rho={rho}, group={gs}; device={jax.devices()[0].device_kind}; median of {args.steps} "
      f"steps.",
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
  lines.append("State bytes include scalar counters and the scalar placeholders of unprojected leaves (a few bytes "
               "over the analytic formula); frugal_svd's layout equals galore_std's projector + moments at rank "
               "round(rho*d).")
  if not args.no_wave2:
    lines += wave2_section(params, loss_fn, tokens, args, base["state"], base["between"])
  if args.svd_steps > 0:
    lines += svd_section(params, loss_fn, tokens, args)
  table = "\n".join(lines)
  print(table)
  if args.out:
    with open(args.out, "w") as f:
      f.write(table + "\n")
  return rows


if __name__ == "__main__":
  main()
