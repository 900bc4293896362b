#!/usr/bin/env bash
# launch.sh N CMD...: start CMD as N distributed training processes.
# Inside a Slurm allocation srun starts them (ranks from SLURM_PROCID/SLURM_NTASKS, see
# sstl/train/distributed.py); elsewhere torchrun starts them on this machine.
set -euo pipefail
n=$1
shift
if [ -n "${SLURM_JOB_ID:-}" ] && command -v srun >/dev/null; then
  exec srun --ntasks="$n" --kill-on-bad-exit=1 --export=ALL "$@"
fi
exec torchrun --standalone --nproc-per-node="$n" --no-python "$@"
