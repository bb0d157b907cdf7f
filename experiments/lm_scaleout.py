"""The project's transformer LM trained on one mesh from 1 CPU to a TPU pod slice: DP, FSDP, tensor, multi-process.

Not a paper reproduction: a check of the library's scale-out (issue 12) on the optimizers of the GaLore family, whose
sharded state users keep asking for (GaLore issues #2/#12/#55, Q-GaLore #1). `PAPER` names Q-GaLore [105], the
catalog entry that registers GaLore; every claim here is a `sanity` claim and the experiment is not registered as a
reproduction.

Setup. `jaxlib_methods.nn.TransformerLM` (logical axes on every parameter) on the seeded Markov language of
`jaxlib_methods.data.synthetic_language` (a corpus of `pool_sequences` sequences; step s reads global rows
s*B .. s*B+B-1, and each process loads only the rows its devices own). `--set optimizer=adamw|galore|frugal|q_galore`
(GaLore-family projections on the 2-D MLP matrices; embeddings, norms and the 3-D attention weights get the inner
Adam unprojected). The state {params, optimizer state, last loss} is sharded by `runner.sharding`: parameters from
their logical axes + FSDP, optimizer state derived from them (`shard_like_params`), both used for `init` and as the
jitted chunk's in/out shardings, with the state donated. Training goes through `runner.train` (orbax checkpoints,
exact resume, on any process count).

At the cpu preset, `run` also checks the scale-out in child processes (a plain CPU has 1 device):
  * `check_devices` simulated devices: `check_steps` steps on 1 device, then on each `check_meshes` mesh
    (data x fsdp x tensor), for each of `check_optimizers`; the per-device bytes of params + optimizer state with
    fsdp = check_devices, summed from the arrays' addressable shards;
  * `python -m experiments launch --processes check_processes -- run lm_scaleout ...` (check_devices/processes
    devices each) on mesh `process_mesh`, compared step by step with the same run in one process; then that run's
    orbax checkpoint (written by all processes) is restored in one process.

Claims (sanity; tolerances fixed before the runs):
  1. per mesh and optimizer: max over steps of |loss - loss_1device| / loss_1device <= `rtol` (fp32 reduction order);
  2. per optimizer: max per-device bytes with fsdp = N <= total / N + bytes of the leaves no dimension of which N
     divides (scalars);
  3. the 2-process run's losses equal the 1-process run's (<= `rtol`);
  4. its checkpoint restores in 1 process at the step it was written, with the same state checksum (<= `rtol`);
  5. the main run's loss decreases (final eval loss < initial).
Mutations: `shard_optimizer_state=false` (optimizer state replicated) fails claim 2; `data_seed_per_shard=true`
(each shard draws rows by its shard index, a classic multi-host data bug) fails claims 1 and 3.

Run: `python -m experiments run lm_scaleout` (cpu, about a minute on 2 cores);
`python -m experiments run lm_scaleout --preset gpu` (~125M params, 1 GPU);
`python -m experiments run lm_scaleout --preset tpu --distributed` on every host of a v5e-8 / v4-8 slice (~1B, FSDP 8).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import tempfile
import time
from typing import Annotated, Literal, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import PartitionSpec as P

from jaxlib_methods.data.synthetic_language import entropy_rate, random_markov_language, sample_markov_sequences
from jaxlib_methods.nn.transformer import TransformerConfig, TransformerLM, next_token_loss
from jaxlib_methods.optim import frugal, galore, q_galore
from jaxlib_methods.runner import Claim, MeshConfig, Paper, save_figure, train
from jaxlib_methods.runner import distributed
from jaxlib_methods.runner.constraints import (Check, Length, NonNegativeFloat, NonNegativeInt, PositiveFloat,
                                               PositiveInt, Range, Seed)
from jaxlib_methods.runner import sharding as shd

PAPER = Paper(catalog_id=105, title="Q-GaLore: Quantized GaLore with INT4 Projection and Layer-Adaptive Low-Rank "
              "Gradients", year=2024, arxiv="2407.08296")
DEMO = False

OPTIMIZERS = ("adamw", "galore", "frugal", "q_galore")


# Meshes the checks can name: "DATAxFSDPxTENSOR" with a product of 1, 2, 4 or 8 devices.
MESHES = tuple(f"{d}x{f}x{t}" for n in (1, 2, 4, 8) for d in (1, 2, 4, 8) for f in (1, 2, 4, 8) for t in (1, 2, 4, 8)
               if d * f * t == n)
Mesh = Literal[MESHES]
Dtype = Literal["float32", "bfloat16", "float16"]


@dataclasses.dataclass(frozen=True)
class Config:
  seed: Seed = 0
  # model: jaxlib_methods.nn.TransformerLM
  vocab_size: Annotated[int, Range(ge=2)] = 64
  d_model: PositiveInt = 64
  num_layers: PositiveInt = 2
  num_heads: PositiveInt = 4
  mlp_ratio: PositiveInt = 4
  seq_len: Annotated[int, Range(ge=2)] = 32
  attention: Literal["builtin", "mha", "gla"] = "builtin"
  implementation: Optional[Literal["pallas", "xla", "cudnn"]] = None
  interpret: bool = False
  param_dtype: Dtype = "float32"
  dtype: Dtype = "float32"
  # data: a seeded Markov language
  concentration: PositiveFloat = 0.1
  pool_sequences: PositiveInt = 512
  eval_sequences: PositiveInt = 64
  batch_size: PositiveInt = 16       # global batch (divisible by mesh.data * mesh.fsdp)
  # optimizer
  optimizer: Literal["adamw", "galore", "frugal", "q_galore"] = "adamw"
  learning_rate: PositiveFloat = 3e-3
  weight_decay: NonNegativeFloat = 0.0
  rank: PositiveInt = 8              # GaLore / Q-GaLore rank
  rho: Annotated[float, Range(gt=0, le=1)] = 0.25   # FRUGAL density
  update_gap: PositiveInt = 50
  # main run (runner.train)
  num_steps: PositiveInt = 60
  log_every: PositiveInt = 20
  checkpoint_every: PositiveInt = 60
  mesh: MeshConfig = MeshConfig()
  shard_optimizer_state: bool = True   # False replicates the optimizer state (a mutation)
  data_seed_per_shard: bool = False    # True: each batch shard reads rows by shard index (a mutation)
  # scale-out checks (child processes; 0 devices = skip)
  check_devices: Annotated[int, Range(ge=0, le=8)] = 8
  check_steps: PositiveInt = 3
  check_meshes: Annotated[tuple[Mesh, ...], Length(min=1)] = ("2x4x1", "2x2x2")
  check_optimizers: Annotated[tuple[Literal["adamw", "galore", "frugal", "q_galore"], ...], Length(min=1)] = (
      "adamw", "galore")
  check_processes: NonNegativeInt = 2
  process_mesh: Mesh = "2x4x1"
  rtol: Annotated[float, Range(gt=0, lt=1)] = 1e-4
  check_timeout_s: PositiveInt = 600

  CHECKS = (Check("d_model % num_heads == 0", "the heads split d_model evenly"),
            Check("mesh.data * mesh.fsdp == 0 or batch_size % (mesh.data * mesh.fsdp) == 0",
                  "the global batch is split evenly over the data and fsdp axes"),
            Check("check_processes == 0 or check_devices % check_processes == 0",
                  "the multi-process check gives each process the same number of devices"))


PRESETS = {
    "cpu": Config(),
    # one GPU, ~126M parameters (vocab 8192 keeps the Markov transition matrix at 256 MB)
    "gpu": Config(vocab_size=8192, d_model=768, num_layers=16, num_heads=12, seq_len=512, pool_sequences=8192,
                  eval_sequences=256, batch_size=32, learning_rate=6e-4, weight_decay=0.1, rank=256,
                  update_gap=200, num_steps=5000, log_every=100, checkpoint_every=1000, attention="mha",
                  check_devices=0, check_processes=0),
    # a v5e-8 / v4-8 slice, ~0.94B parameters, FSDP over the 8 chips (bf16 weights, f32 optimizer state)
    "tpu": Config(vocab_size=8192, d_model=2048, num_layers=18, num_heads=16, seq_len=1024, pool_sequences=16384,
                  eval_sequences=256, batch_size=64, learning_rate=3e-4, weight_decay=0.1, rank=512,
                  update_gap=200, num_steps=5000, log_every=100, checkpoint_every=1000, param_dtype="bfloat16",
                  dtype="bfloat16", mesh=MeshConfig(data=1, fsdp=8, tensor=1), check_devices=0, check_processes=0),
}

# Deliberately wrong variants of the scale-out code under which the sanity checks above must fail (this experiment
# has no paper claims, so they are not `MUTATIONS` in the runner's sense; tests/runner/test_sharding_multidevice.py
# runs them).
CHECK_MUTATIONS = {
    "replicated_optimizer_state": ("shard_optimizer_state=false", "check_processes=0", "check_meshes=2x4x1",
                                   "check_optimizers=adamw"),
    "per_shard_data_seed": ("data_seed_per_shard=true", "check_processes=0", "check_meshes=2x4x1",
                            "check_optimizers=adamw"),
}


# ----------------------------------------------------------------------------------------------------------------------
# Model, optimizer, data.
# ----------------------------------------------------------------------------------------------------------------------

def model_config(config: Config) -> TransformerConfig:
  return TransformerConfig(vocab_size=config.vocab_size, d_model=config.d_model, num_layers=config.num_layers,
                           num_heads=config.num_heads, mlp_ratio=config.mlp_ratio, attention=config.attention,
                           implementation=config.implementation, interpret=config.interpret,
                           param_dtype=config.param_dtype, dtype=config.dtype)


def projection_mask(params) -> dict:
  """GaLore-family projections on the 2-D hidden matrices (the MLP), never embeddings, norms or the readout."""
  def leaf(path, x):
    name = str(getattr(path[-1], "key", path[-1]))
    return x.ndim == 2 and name not in ("embed_vd", "unembed_dv")
  return jax.tree_util.tree_map_with_path(leaf, params)


def make_optimizer(config: Config, name: str) -> optax.GradientTransformation:
  if name not in OPTIMIZERS:
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
  lr, wd = config.learning_rate, config.weight_decay
  if name == "adamw":
    return optax.adamw(lr, weight_decay=wd)
  if name == "galore":
    return galore(lr, rank=config.rank, update_gap=config.update_gap, weight_decay=wd,
                  projection_mask=projection_mask)
  if name == "frugal":
    return frugal(lr, rho=config.rho, update_gap=config.update_gap, weight_decay=wd, split_mask=projection_mask)
  return q_galore(lr, rank=config.rank, update_gap=config.update_gap, weight_decay=wd,
                  projection_mask=projection_mask, group_size=64)


def parse_mesh(text: str) -> MeshConfig:
  parts = text.lower().split("x")
  if len(parts) != 3 or not all(p.isdigit() for p in parts):
    raise ValueError(f"a mesh is 'DATAxFSDPxTENSOR', e.g. '2x4x1', got {text!r}")
  d, f, t = map(int, parts)
  return MeshConfig(data=d, fsdp=f, tensor=t)


def _sample_np(language, rows: int, length: int, rng: np.random.Generator) -> np.ndarray:
  """Markov sequences [rows, length] sampled on the host (inverse CDF per step; no compilation)."""
  cum = np.cumsum(np.asarray(language.transition, np.float64), axis=1)
  pi = np.asarray(language.stationary, np.float64)
  x = np.empty((rows, length), np.int32)
  x[:, 0] = np.minimum(np.searchsorted(np.cumsum(pi), rng.random(rows) * np.cumsum(pi)[-1]), len(pi) - 1)
  for t in range(1, length):
    c = cum[x[:, t - 1]]
    x[:, t] = np.minimum((c < rng.random(rows)[:, None] * c[:, -1:]).sum(1), len(pi) - 1)
  return x


def corpus(config: Config):
  """The seeded corpus ([pool, T] train sequences, [E, T] eval sequences, entropy rate). Same on every process."""
  language = random_markov_language(jax.random.key(config.seed), config.vocab_size,
                                    concentration=config.concentration)
  if (config.pool_sequences + config.eval_sequences) * config.vocab_size <= 2 ** 24:   # small: host sampling
    rng = np.random.default_rng(config.seed + 1)
    train_seq = _sample_np(language, config.pool_sequences, config.seq_len, rng)
    eval_seq = _sample_np(language, config.eval_sequences, config.seq_len, rng)
    return train_seq, eval_seq, entropy_rate(language)
  sample = jax.jit(sample_markov_sequences, static_argnums=(2, 3))
  k_train, k_eval = jax.random.split(jax.random.key(config.seed + 1))
  train_seq = np.asarray(sample(k_train, language, config.pool_sequences, config.seq_len))
  eval_seq = np.asarray(sample(k_eval, language, config.eval_sequences, config.seq_len))
  return train_seq, eval_seq, entropy_rate(language)


def global_rows(config: Config, step: int, shards: int) -> np.ndarray:
  """The corpus rows of global batch `step`: s*B .. s*B+B-1 (mod pool). With `data_seed_per_shard` (a mutation),
  shard j of `shards` reads rows indexed by j instead, so the batch depends on the mesh."""
  b = config.batch_size
  rows = (step * b + np.arange(b)) % config.pool_sequences
  if config.data_seed_per_shard and shards > 1:
    per = b // shards
    j = np.arange(b) // per
    rows = (step * b * shards + j * 7919 + (np.arange(b) % per)) % config.pool_sequences
  return rows


# ----------------------------------------------------------------------------------------------------------------------
# The sharded state and the jitted step.
# ----------------------------------------------------------------------------------------------------------------------

class Trainer:
  """Everything of one (config, mesh, optimizer): shardings from `jax.eval_shape`, sharded init, donated step."""

  def __init__(self, config: Config, mesh, optimizer: str, *, corpus_data=None):
    self.config, self.mesh, self.optimizer = config, mesh, optimizer
    self.train_seq, self.eval_seq, self.entropy = corpus(config) if corpus_data is None else corpus_data
    cfg = model_config(config)
    abstract = nnx.eval_shape(lambda: TransformerLM(cfg, rngs=nnx.Rngs(0)))
    self.graphdef, abs_state = nnx.split(abstract)
    abs_params = nnx.to_pure_dict(abs_state)
    self.tx = make_optimizer(config, optimizer)
    p_specs = shd.param_specs(abs_params, shd.logical_axes(abs_state), mesh)
    abs_opt = jax.eval_shape(self.tx.init, abs_params)
    if config.shard_optimizer_state:
      o_specs = shd.shard_like_params(abs_opt, abs_params, p_specs, mesh)
    else:
      o_specs = jax.tree.map(lambda _: P(), abs_opt)
    self.specs = {"params": p_specs, "opt": o_specs, "loss": P()}
    self.shardings = shd.named(mesh, self.specs)
    self.replicated = shd.replicated(mesh)
    self.chunk_sharding = shd.batch_sharding(mesh, ndim=3, batch_axis=1)
    shd.process_rows(config.batch_size, mesh, path="batch (config.batch_size)")  # fail early on a bad batch
    self.shards = shd.axis_size(mesh, shd.BATCH_AXES)
    graphdef, tx, seed = self.graphdef, self.tx, config.seed

    def init():
      model = TransformerLM(cfg, rngs=nnx.Rngs(seed))
      params = nnx.to_pure_dict(nnx.state(model))
      return {"params": params, "opt": tx.init(params), "loss": jnp.zeros((), jnp.float32)}

    self._init = jax.jit(init, out_shardings=self.shardings)

    def loss_fn(params, tokens):
      logits = nnx.merge(graphdef, params)(tokens)
      return next_token_loss(logits, tokens)[0]

    def train_step(state, tokens):
      loss, grads = jax.value_and_grad(loss_fn)(state["params"], tokens)
      updates, opt = tx.update(grads, state["opt"], state["params"])
      params = optax.apply_updates(state["params"], updates)
      return {"params": params, "opt": opt, "loss": loss.astype(jnp.float32)}, loss

    def chunk(state, tokens):
      return jax.lax.scan(train_step, state, tokens)

    self._chunk = jax.jit(chunk, in_shardings=(self.shardings, self.chunk_sharding),
                          out_shardings=(self.shardings, self.replicated), donate_argnums=0)
    self._eval = jax.jit(loss_fn, in_shardings=(self.shardings["params"], shd.batch_sharding(mesh, 2)),
                         out_shardings=self.replicated)
    self._checksum = jax.jit(
        lambda s: sum(jnp.sum(jnp.abs(x.astype(jnp.float32))) for x in jax.tree.leaves(s)),
        in_shardings=(self.shardings,), out_shardings=self.replicated)
    self.eval_tokens = shd.shard_batch(self.eval_seq, mesh)

  def init(self):
    """The initial state, created sharded (jit with out_shardings: no host copy, as at scale)."""
    return self._init()

  def place(self, host_state):
    """A host copy of a state (e.g. another mesh's init, `jax.device_get`) placed with this mesh's shardings."""
    return shd.place_state(host_state, self.mesh, self.shardings)

  def batches(self, start: int, n: int):
    """Global [n, B, T] tokens of steps start..start+n-1; this process feeds only its rows."""
    rows = shd.process_rows(self.config.batch_size, self.mesh)
    local = np.stack([self.train_seq[global_rows(self.config, s, self.shards)[rows]] for s in range(start, start + n)])
    return shd.shard_batch(local, self.mesh, batch_axis=1, process_local=True)

  def advance(self, state, start: int, n: int):
    state, _ = self._chunk(state, self.batches(start, n))
    return state

  def run_steps(self, state, start: int, n: int):
    state, losses = self._chunk(state, self.batches(start, n))
    return state, np.asarray(jax.device_get(losses), np.float64)

  def eval_loss(self, state) -> float:
    return float(jax.device_get(self._eval(state["params"], self.eval_tokens)))

  def checksum(self, state) -> float:
    return float(jax.device_get(self._checksum(state)))


# ----------------------------------------------------------------------------------------------------------------------
# The main run (what `launch` runs in every process).
# ----------------------------------------------------------------------------------------------------------------------

def train_run(config: Config, workdir: pathlib.Path, *, desc: str = "lm_scaleout",
              trainer: Optional[Trainer] = None) -> dict:
  """The main run (resumed from `workdir`'s newest checkpoint if any). `trainer`: one already built for this config,
  its mesh and optimizer, whose compiled programs are then reused (default: a new one)."""
  if trainer is None:
    trainer = Trainer(config, shd.make_mesh(config.mesh), config.optimizer)
  mesh = trainer.mesh
  state = trainer.init()
  initial_eval = trainer.eval_loss(state)

  def measure(s, step):
    return {"train_loss": s["loss"], "eval_loss": trainer._eval(s["params"], trainer.eval_tokens)}

  t0 = time.perf_counter()
  result = train(workdir=workdir, state=state, advance=trainer.advance, measure=measure,
                 num_steps=config.num_steps, log_every=config.log_every, checkpoint_every=config.checkpoint_every,
                 desc=desc, state_sharding=trainer.shardings)
  wall = time.perf_counter() - t0
  final = result.state
  return {
      "mesh": dict(mesh.shape),
      "processes": jax.process_count(),
      "devices": jax.device_count(),
      "optimizer": config.optimizer,
      "entropy_rate": trainer.entropy,
      "initial_eval_loss": initial_eval,
      "final_eval_loss": trainer.eval_loss(final),
      "train_losses": [r["train_loss"] for r in result.rows if r["step"] > 0],
      "steps": [r["step"] for r in result.rows],
      "eval_losses": [r["eval_loss"] for r in result.rows],
      "state_checksum": trainer.checksum(final),
      "resumed_from": result.resumed_from,
      "train_wall_s": wall,
      "params": int(sum(np.prod(x.shape) for x in jax.tree.leaves(final["params"]))),
  }


# ----------------------------------------------------------------------------------------------------------------------
# The checks (in a child process with simulated devices).
# ----------------------------------------------------------------------------------------------------------------------

def unshardable_bytes(tree, n: int) -> int:
  """Bytes of the leaves that no dimension of which `n` divides (scalars included): they must be replicated."""
  return sum(int(x.nbytes) for x in jax.tree.leaves(tree) if not any(d % n == 0 and d >= n for d in x.shape))


def child_config(config: Config) -> Config:
  """The config of the multi-process check run: a short adamw run on `process_mesh`, no nested checks."""
  return dataclasses.replace(config, optimizer="adamw", num_steps=config.check_steps, log_every=1,
                             checkpoint_every=config.check_steps, mesh=parse_mesh(config.process_mesh),
                             check_devices=0, check_processes=0, check_meshes=(config.process_mesh,),
                             check_optimizers=("adamw",))


def _overrides(config: Config) -> list[str]:
  out = []
  for f in dataclasses.fields(config):
    v = getattr(config, f.name)
    if dataclasses.is_dataclass(v):
      out += [f"{f.name}.{g.name}={getattr(v, g.name)}" for g in dataclasses.fields(v)]
    elif isinstance(v, tuple):
      out.append(f"{f.name}={','.join(map(str, v))}")
    else:
      out.append(f"{f.name}={'none' if v is None else v}")
  return out


def run_checks(config: Config, multiprocess_dir: Optional[str], *, equality: bool = True,
               measure_bytes: bool = True) -> dict:
  """Mesh equality, per-device bytes, and the 1-process side of the multi-process checks (needs the devices).

  Every mesh starts from the same initial state (the 1-device init, placed with that mesh's shardings)."""
  n = config.check_devices
  if jax.device_count() < n:
    raise RuntimeError(f"the checks need {n} devices, {jax.device_count()} are visible")
  data = corpus(config)
  out: dict = {"mesh_equality": {}, "bytes": {}, "devices": jax.device_count()}
  for opt in config.check_optimizers:
    ref_trainer = Trainer(config, shd.make_mesh(MeshConfig()), opt, corpus_data=data)
    host = jax.device_get(ref_trainer.init())
    if equality:
      _, ref = ref_trainer.run_steps(ref_trainer.place(host), 0, config.check_steps)
      out["mesh_equality"][opt] = {"1x1x1": ref.tolist()}
      for m in config.check_meshes:
        trainer = Trainer(config, shd.make_mesh(parse_mesh(m)), opt, corpus_data=data)
        _, losses = trainer.run_steps(trainer.place(host), 0, config.check_steps)
        out["mesh_equality"][opt][m] = losses.tolist()
    if measure_bytes:   # per-device bytes with fsdp = n, from the arrays' addressable shards
      trainer = Trainer(config, shd.make_mesh(MeshConfig(data=1, fsdp=n, tensor=1)), opt, corpus_data=data)
      state = trainer.place(host)
      tree = {"params": state["params"], "opt": state["opt"]}
      per_device = shd.bytes_per_device(tree)
      out["bytes"][opt] = {"max_per_device": max(per_device.values()),
                           "total": sum(int(x.nbytes) for x in jax.tree.leaves(tree)),
                           "unshardable": unshardable_bytes(tree, n), "fsdp": n,
                           "unshardable_nonscalar": unshardable_bytes(
                               [x for x in jax.tree.leaves(tree) if x.ndim > 0], n)}
  if multiprocess_dir:
    child = child_config(config)
    # one Trainer for both runs: the restore reuses the programs the 1-process run compiled
    trainer = Trainer(child, shd.make_mesh(child.mesh), child.optimizer)
    with tempfile.TemporaryDirectory() as tmp:
      single = train_run(child, pathlib.Path(tmp) / "single", desc="1 process", trainer=trainer)
      restored_dir = pathlib.Path(tmp) / "restored"
      shutil.copytree(multiprocess_dir, restored_dir)
      restored = train_run(child, restored_dir, desc="restore", trainer=trainer)
    out["single_process"] = single
    out["restored"] = {k: restored[k] for k in ("resumed_from", "state_checksum", "final_eval_loss", "processes")}
  return out


# The check children compile at XLA backend optimization level 0: about 2.5x less CPU compile time, and every
# comparison is between programs compiled the same way (the main run uses the default level).
_CHECK_XLA_FLAGS = "--xla_backend_optimization_level=0"


def _check_env(devices: int) -> dict:
  base = dict(os.environ)
  base["XLA_FLAGS"] = f"{base.get('XLA_FLAGS', '')} {_CHECK_XLA_FLAGS}".strip()
  return distributed.cpu_child_env(devices, base)


def _scaleout(config: Config, workdir: pathlib.Path) -> dict:
  """Run the multi-process launch, then the checks in a child with `check_devices` simulated devices."""
  out: dict = {}
  mp_dir = None
  if config.check_processes:
    if config.check_devices % config.check_processes:
      raise ValueError(f"check_devices={config.check_devices} must be divisible by "
                       f"check_processes={config.check_processes}")
    child = child_config(config)
    mp_dir = workdir / "multiprocess"
    shutil.rmtree(mp_dir, ignore_errors=True)
    command = ["run", "lm_scaleout", "--workdir", str(mp_dir), "--quiet", "--fresh"]
    for item in _overrides(child):
      command += ["--set", item]
    res = distributed.launch(command, processes=config.check_processes,
                             devices_per_process=config.check_devices // config.check_processes,
                             timeout_s=config.check_timeout_s, log_dir=workdir / "launch_logs",
                             env=_check_env(1), echo=False)
    if res.failed is not None or res.returncode not in (0, 1):
      raise RuntimeError(f"the {config.check_processes}-process run failed (status {res.returncode}); last lines of "
                         f"{res.logs[res.failed or 0]}:\n{res.tail(res.failed or 0)}")
    summary = json.loads((mp_dir / "summary.json").read_text())
    if summary.get("error"):
      raise RuntimeError(f"the multi-process run crashed: {summary['error']}")
    out["multi_process"] = summary["results"]["main"]
  out.update(distributed.call_with_cpu_devices(
      "experiments.lm_scaleout:checks_entry", {"config": dataclasses.asdict(config),
                                               "multiprocess_dir": str(mp_dir) if mp_dir else None},
      devices=config.check_devices, timeout_s=config.check_timeout_s, env=_check_env(config.check_devices)))
  return out


def checks_entry(payload: dict) -> dict:
  """`distributed.call_with_cpu_devices` entry point: the checks in a process with `check_devices` devices."""
  return run_checks(_config_from_dict(payload["config"]), payload["multiprocess_dir"])


def _config_from_dict(d: dict) -> Config:
  d = dict(d)
  d["mesh"] = MeshConfig(**d["mesh"])
  for k in ("check_meshes", "check_optimizers"):
    d[k] = tuple(d[k])
  return Config(**d)


# ----------------------------------------------------------------------------------------------------------------------
# The experiment.
# ----------------------------------------------------------------------------------------------------------------------

def run(config: Config, workdir: pathlib.Path) -> dict:
  workdir = pathlib.Path(workdir)
  results = {"main": train_run(config, workdir), "rtol": config.rtol}
  if config.check_devices:
    results["scaleout"] = _scaleout(config, workdir)
  if distributed.is_primary():
    _figure(results, workdir)
  return results


def _rel(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape or a.size == 0:
    return float("inf")
  return float(np.max(np.abs(a - b) / np.abs(b)))


def claims(results: dict) -> list[Claim]:
  main = results["main"]
  out = [Claim.holds("the main run's eval loss decreases (final < initial)",
                     main["final_eval_loss"] < main["initial_eval_loss"], kind="sanity",
                     detail=f"{main['initial_eval_loss']:.4f} -> {main['final_eval_loss']:.4f}")]
  so = results.get("scaleout")
  if not so:
    return out
  config_rtol = results.get("rtol", 1e-4)
  for opt, runs in so["mesh_equality"].items():
    ref = runs["1x1x1"]
    for m, losses in runs.items():
      if m == "1x1x1":
        continue
      out.append(Claim.at_most(f"{opt}: loss on mesh {m} (data x fsdp x tensor) = 1-device loss, max rel. diff over "
                               f"{len(ref)} steps", _rel(losses, ref), config_rtol, kind="sanity",
                               paper="equal (fp32)"))
  for opt, b in so["bytes"].items():
    bound = b["total"] / b["fsdp"] + b["unshardable"]
    out.append(Claim.at_most(f"{opt}: max per-device bytes of params + opt state with fsdp={b['fsdp']} / (total/"
                             f"{b['fsdp']} + unshardable {b['unshardable']} B)", b["max_per_device"] / bound, 1.0,
                             kind="sanity", paper=f"<= 1 (total {b['total']} B)"))
  if "multi_process" in so:
    mp, single = so["multi_process"], so["single_process"]
    out.append(Claim.at_most(f"{mp['processes']}-process launch = 1-process run on {single['devices']} devices "
                             f"(max rel. diff of per-step losses)", _rel(mp["train_losses"], single["train_losses"]),
                             config_rtol, kind="sanity", paper="equal (fp32)"))
    rest = so["restored"]
    ok = rest["resumed_from"] == mp["steps"][-1] and rest["processes"] == 1
    out.append(Claim.holds(f"checkpoint written by {mp['processes']} processes restores in 1 at step "
                           f"{mp['steps'][-1]} (same state checksum, rtol {config_rtol:g})",
                           ok and _rel([rest["state_checksum"]], [mp["state_checksum"]]) <= config_rtol,
                           kind="sanity", detail=f"resumed_from={rest['resumed_from']}, checksum "
                           f"{rest['state_checksum']:.6g} vs {mp['state_checksum']:.6g}"))
  return out


def _figure(results: dict, workdir: pathlib.Path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  main = results["main"]
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
  ax = axes[0]
  ax.plot(main["steps"], main["eval_losses"], marker="o", label=f"eval loss ({main['optimizer']})")
  ax.axhline(main["entropy_rate"], ls="--", c="k", label="entropy rate (loss floor)")
  ax.set_xlabel("step")
  ax.set_title(f"main run, mesh {main['mesh']}")
  ax.legend()
  ax = axes[1]
  so = results.get("scaleout")
  if so:
    for opt, runs in so["mesh_equality"].items():
      ref = np.asarray(runs["1x1x1"])
      for m, losses in runs.items():
        if m != "1x1x1":
          ax.semilogy(np.abs(np.asarray(losses) - ref) / ref + 1e-12, marker=".", label=f"{opt} {m}")
    ax.set_xlabel("step")
    ax.set_title("|loss - 1-device loss| / loss")
    ax.legend(fontsize=7)
  fig.suptitle("lm_scaleout: one mesh (data, fsdp, tensor), same numbers")
  save_figure(fig, workdir / "figure.png")
