#!/usr/bin/env bash
# Slurm, one or more GPU nodes: one process per node sees all its GPUs; jax.distributed reads the
# Slurm environment. Submit with: sbatch launch/slurm_gpu.sh configs/resnet18_nfd.py /shared/runs/x
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
distributed=False
[ "${SLURM_NNODES:-1}" -gt 1 ] && distributed=True
srun python -m freqrobust.main --config="$config" --workdir="$workdir" \
  --config.distributed=$distributed "$@"
