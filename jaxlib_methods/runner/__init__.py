"""The experiment machinery: contract, config constraints and overrides, CLI, training loop with orbax checkpoints,
sharding rules, atomic outputs, workdir checks, progress bars and claims. See `jaxlib_methods.runner.experiment` for
the contract and docs/reliability.md for what the CLI promises."""

from jaxlib_methods.runner.claims import Claim
from jaxlib_methods.runner.compile import jit_fast_compile
from jaxlib_methods.runner.constraints import (
    Check,
    Length,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    Range,
    Seed,
    validate,
)
from jaxlib_methods.runner.experiment import (
    Experiment,
    MeshConfig,
    Paper,
    UsageError,
    apply_overrides,
    discover,
    get,
)
from jaxlib_methods.runner.io import MetricsLog, atomic_write_json, atomic_write_text, read_jsonl, save_figure
from jaxlib_methods.runner.progress import progress
from jaxlib_methods.runner.sharding import (
    LOGICAL_AXIS_RULES,
    ShardingError,
    batch_sharding,
    bytes_per_device,
    logical_axes,
    make_mesh,
    named,
    param_specs,
    place_state,
    replicated,
    shard_batch,
    shard_leading,
    shard_like_params,
)
from jaxlib_methods.runner.train import (CheckpointError, ConfigMismatchError, NonFiniteError, TrainResult, minimize,
                                         scan_steps, train)
from jaxlib_methods.runner.workdir import WorkdirError
