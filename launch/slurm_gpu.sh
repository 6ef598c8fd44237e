#!/usr/bin/env bash
# Slurm, one or more GPU nodes: one process per node sees all its GPUs; jax.distributed reads the
# Slurm environment. Submit with: sbatch launch/slurm_gpu.sh configs/resnet18_nfd.py /shared/runs/x
# N nodes: sbatch --nodes=N launch/slurm_gpu.sh ... (the workdir must be on storage every node
# sees: a shared filesystem or gs://; process 0 holds its lock and writes its files for all;
# docs/SCALING.md). tests/launch_test.py runs this script with two simulated tasks on one machine.
#SBATCH --job-name=freqrobust
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=16
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@120
#SBATCH --requeue
# --signal=TERM@120 sends SIGTERM two minutes before the time limit: the run saves and exits, and
# --requeue plus the same command resumes it from that checkpoint.
set -euo pipefail
if [ $# -lt 2 ]; then echo "usage: sbatch $0 CONFIG WORKDIR [--config.x=y ...]" >&2; exit 2; fi
config=$1; workdir=$2; shift 2
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
# More than one task (nodes x tasks per node): one JAX process per task, joined through the
# Slurm environment (jax.distributed.initialize() with no arguments).
distributed=False
if [ "${SLURM_NTASKS:-1}" -gt 1 ] || [ "${SLURM_NNODES:-1}" -gt 1 ]; then distributed=True; fi
srun python -m freqrobust.main --config="$config" --workdir="$workdir" \
  --config.distributed=$distributed "$@"
