#!/usr/bin/env bash
# One GPU session's checks, in one command that ends inside ~8 minutes on one H100/H200 (the device windows this
# project gets are short; on the H200 of 2026-11-30 the tolerance checks alone took ~3 min with their compiles):
# what the machine is, the attention kernels' compiled-path tolerances (FA2 and GLA) and speed tables
# (benchmarks/attention.py --quick), then the memory-efficient optimizers' step time on the GPU (benchmarks/optimizers.py
# at a larger LM). Each part has its own time limit, so one stuck part cannot eat the rest.
#
#   PYTHONPATH=. OUT=/some/dir bash benchmarks/gpu_session.sh      # logs land in $OUT (default: ./gpu_session_out)
#
# Run from the repository root with the machine's own jax (no install); the versions are printed first.
set -u
OUT=${OUT:-gpu_session_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:-.}
PY=${PY:-python3}
ATTN_DEADLINE_S=${ATTN_DEADLINE_S:-100}   # for the speed tables, counted after the ~3 min of tolerance checks

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1
  $PY -c "import jax, jaxlib, flax, optax; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'flax', \
flax.__version__, 'optax', optax.__version__); print(jax.devices())" 2>&1
} | tee "$OUT/env.txt"

echo "== attention (FA2 + GLA tolerances, speed --quick, deadline ${ATTN_DEADLINE_S} s)"
timeout -s KILL $((ATTN_DEADLINE_S + 300)) $PY benchmarks/attention.py --quick --reps 10 \
  --deadline-s "$ATTN_DEADLINE_S" 2>&1 | grep -v -E "DeprecationWarning|return rule\(" | tee "$OUT/attention.txt"
echo "attention rc=${PIPESTATUS[0]}"

echo "== optimizers on the GPU"
timeout -s KILL 150 $PY benchmarks/optimizers.py --d-model 1024 --layers 4 --vocab 8192 --seq 512 --batch 8 \
  --rank 256 --steps 20 --svd-steps 0 --no-wave2 --only galore_std,galore_rsvd,q_galore,frugal_columns 2>&1 \
  | tee "$OUT/optimizers.txt"
echo "optimizers rc=${PIPESTATUS[0]}"
date -u
