"""Contrastive, generative and augmentation losses wave 2, P2 toy claims (issue 19, ls19d): PamC's meta-node
contrastive loss for graphs.

Papers:
  [89]  Gayan K. Kulatilleke, Marius Portmann, Shekhar S. Chandra, "Efficient block contrastive learning via
        parameter-free meta-node approximation", 2022, arXiv:2209.14067 (`losses.pamc_loss`,
        `losses.graph_ncontrast_loss`).

PamC (catalog row: cost O(nk + k^2) vs O(n^2) on an SBM graph; paper: up to 3x training time, 1.8x inference time,
> 5x GPU memory). Graph: a stochastic block model with `pamc_k` blocks of equal size, mean degree `pamc_degree`
(90% of the edges inside a block), self-loops added, N in {n0, 2 n0, 4 n0}; node embeddings [N, `pamc_dim`], meta-node
assignments the one-hot blocks (as the official code's argmax of q). For each N we compile (nothing run) the value and
gradient with respect to the embeddings of PamC (edge list + meta-nodes) and of the node-level loss it approximates
(Graph-MLP's, dense [N, N] adjacency, every node pair a negative) and read XLA's `memory_analysis()` (arguments +
temporaries), then time both (best of `pamc_repeats` calls). `pamc_arm="node"` (the mutation) gives PamC N meta-nodes,
one per node (C = I): then it is the node-level loss (tested equal) and its memory grows quadratically too.

Claims (tolerances fixed before the first run):
  1. [89] memory(node-level) / memory(PamC) at N = 4 n0 >= 5 (paper: over 5x GPU memory reduction, abstract and
     Sec. 5);
  2. [89] PamC's memory grows linearly: log-log slope over N <= 1.2, while the node-level loss's is >= 1.8 (paper:
     linear vs quadratic complexity, Sec. 3);
  3. [89] time(node-level) / time(PamC) of one value-and-gradient at N = 4 n0 >= 1.5 (paper: up to 3x training time;
     1.5 leaves room for the shared CPU's timing noise).
  sanity: the two losses agree at k = N on the largest graph (relative difference <= 1e-5, float32).

What we measured ([89], cpu preset, 14 s wall on the shared, loaded 2-core machine): all pass. Memory (MiB) at
N = 512 / 1024 / 2048: PamC 1.9 / 3.9 / 7.8, node-level 3.1 / 12.2 / 48.3 (ratio 6.2 at 2048; slopes 1.03 vs 1.99);
time ratio at 2048: 34x (2.3 ms vs 77 ms; timings of a loaded machine); k = N vs node-level: 1.7e-7.

Sharding: `mesh` splits the vmapped seeds of the training parts (none yet: the [89] part compiles and times one
graph per N, no seeds).
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import losses
from jaxlib_methods.runner import Claim, MeshConfig, MetricsLog, Paper, save_figure, sweep
from jaxlib_methods.runner.constraints import PositiveInt, Range, Seed

PAPER = Paper(catalog_id=89, title="Efficient block contrastive learning via parameter-free meta-node approximation",
              year=2022, arxiv="2209.14067")
ALSO_REPRODUCES = ()
DEMO = False


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  # [89] PamC: compiled memory and time vs N on an SBM graph
  pamc_n0: Annotated[int, Range(ge=16)] = 512
  pamc_k: Annotated[int, Range(ge=2)] = 8
  pamc_dim: PositiveInt = 32
  pamc_degree: Annotated[int, Range(ge=2)] = 8
  pamc_repeats: PositiveInt = 5
  pamc_arm: Literal["meta", "node"] = "meta"
  mesh: MeshConfig = MeshConfig()   # devices the vmapped seeds of the training parts are split over


PRESETS = {"cpu": Config(), "gpu": Config(pamc_n0=4096), "tpu": Config(pamc_n0=4096)}
TINY = ("pamc_n0=64", "pamc_repeats=1")
MUTATION_TEST_SLOW = True  # the TINY run compiles 12 loss programs (>> 2 s of CPU on the shared machine)
MUTATIONS = {"a_node_level_negatives": ("pamc_arm=node",)}


# ---------------------------------------------------------------------------------------------------------------
# [89] PamC
# ---------------------------------------------------------------------------------------------------------------

def sbm_graph(rng: np.random.Generator, n: int, k: int, degree: int, p_in: float = 0.9):
  """Edges [E, 2] (both directions, plus self-loops) of an SBM with k equal blocks and mean degree `degree`."""
  labels = np.arange(n) % k
  m = n * degree // 2
  src = rng.integers(0, n, size=m)
  inside = rng.random(m) < p_in
  same = labels[src] + k * rng.integers(0, n // k, size=m)              # a node of the same block
  other = rng.integers(0, n, size=m)
  dst = np.where(inside, np.minimum(same, n - 1), other)
  e = np.concatenate([np.stack([src, dst], 1), np.stack([dst, src], 1), np.stack([np.arange(n)] * 2, 1)])
  return np.unique(e, axis=0).astype(np.int32), labels


def _memory(compiled) -> int:
  m = compiled.memory_analysis()
  return int(m.temp_size_in_bytes + m.argument_size_in_bytes)


def _best_time(fn, args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - t0)
  return best


def pamc_costs(config: Config) -> dict:
  """Compiled memory (bytes) and best wall time (s) of value_and_grad of PamC and of the node-level loss vs N."""
  rng = np.random.default_rng(config.seed)
  out = {"N": [], "pamc_mem": [], "node_mem": [], "pamc_time": [], "node_time": [], "max_rel_diff": 0.0}
  for n in (config.pamc_n0, 2 * config.pamc_n0, 4 * config.pamc_n0):
    edges, labels = sbm_graph(rng, n, config.pamc_k, config.pamc_degree)
    z = jnp.asarray(rng.normal(size=(n, config.pamc_dim)), jnp.float32)
    c = np.eye(n, dtype=np.float32) if config.pamc_arm == "node" else np.eye(config.pamc_k, dtype=np.float32)[labels]
    adj = np.zeros((n, n), np.float32)
    adj[edges[:, 0], edges[:, 1]] = 1.0
    pamc = jax.jit(jax.value_and_grad(lambda z_, e_, c_: losses.pamc_loss(z_, e_, c_)))
    node = jax.jit(jax.value_and_grad(lambda z_, a_: losses.graph_ncontrast_loss(z_, a_).mean()))
    pamc_args, node_args = (z, jnp.asarray(edges), jnp.asarray(c)), (z, jnp.asarray(adj))
    out["N"].append(n)
    out["pamc_mem"].append(_memory(pamc.lower(*pamc_args).compile()))
    out["node_mem"].append(_memory(node.lower(*node_args).compile()))
    out["pamc_time"].append(_best_time(pamc, pamc_args, config.pamc_repeats))
    out["node_time"].append(_best_time(node, node_args, config.pamc_repeats))
  # the exact special case on the largest graph: k = N meta-nodes (C = I) is the node-level loss
  same = float(jax.jit(losses.pamc_loss)(z, jnp.asarray(edges), jnp.eye(n, dtype=jnp.float32)))
  ref = float(node(*node_args)[0])
  out["max_rel_diff"] = abs(same - ref) / abs(ref)
  return out


def _slope(x, y) -> float:
  return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


# ---------------------------------------------------------------------------------------------------------------
# run / claims / figure
# ---------------------------------------------------------------------------------------------------------------

def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  log = MetricsLog(workdir)
  log.reset()
  pamc = sweep.memoized(workdir, {"part": "pamc"}, lambda: pamc_costs(config))
  for i, n in enumerate(pamc["N"]):
    log.log(i, N=n, pamc_mem=pamc["pamc_mem"][i], node_mem=pamc["node_mem"][i], pamc_time=pamc["pamc_time"][i],
            node_time=pamc["node_time"][i])
  out = {"pamc": pamc}
  _figure(out, workdir)
  return out


def claims(results: dict) -> list[Claim]:
  pc = results["pamc"]
  return [
      Claim.at_least("PamC: compiled memory (arguments + temporaries) of the node-level loss / PamC's, value and "
                     "gradient at the largest N", pc["node_mem"][-1] / pc["pamc_mem"][-1], 5.0,
                     paper="over 5x GPU memory reduction", kind="paper", where="Abstract, Sec. 5 [89]"),
      Claim.at_most("PamC: log-log slope of its compiled memory over N (linear)", _slope(pc["N"], pc["pamc_mem"]), 1.2,
                    paper="linear in N (O(nk + k^2))", kind="paper", where="Sec. 3, complexity [89]"),
      Claim.at_least("PamC: log-log slope of the node-level loss's compiled memory over N (quadratic)",
                     _slope(pc["N"], pc["node_mem"]), 1.8, paper="quadratic in N", kind="sanity"),
      Claim.at_least("PamC: wall time of one value-and-gradient, node-level / PamC, at the largest N (best of "
                     "repeats)", pc["node_time"][-1] / pc["pamc_time"][-1], 1.5,
                     paper="up to 3x faster training", kind="paper", where="Abstract, Sec. 5 [89]"),
      Claim.at_most("PamC with k = N meta-nodes vs the node-level loss, relative difference (float32)",
                    pc["max_rel_diff"], 1e-5, kind="sanity"),
  ]


def _figure(out, workdir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
  pc = out["pamc"]
  axes[0].loglog(pc["N"], np.asarray(pc["pamc_mem"]) / 2**20, "o-", label="PamC (meta-nodes)")
  axes[0].loglog(pc["N"], np.asarray(pc["node_mem"]) / 2**20, "s-", label="node-level (all pairs)")
  axes[0].set_xlabel("nodes N")
  axes[0].set_ylabel("compiled memory of value+grad (MiB)")
  axes[0].set_title("[89] PamC memory")
  axes[0].legend()
  axes[1].loglog(pc["N"], pc["pamc_time"], "o-", label="PamC")
  axes[1].loglog(pc["N"], pc["node_time"], "s-", label="node-level")
  axes[1].set_xlabel("nodes N")
  axes[1].set_ylabel("best wall time (s)")
  axes[1].set_title("[89] PamC time")
  axes[1].legend()
  fig.tight_layout()
  save_figure(fig, workdir / "figure.png")
