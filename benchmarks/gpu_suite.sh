#!/bin/bash
# The GPU suite (benchmarks/gpu_suite.py): nnU-Net multitask with the ResEncM plans, the liver
# loader at 128 / 224 px and DDPM sampling at 64^3, written to benchmarks/gpu_suite.json and the
# README's GPU table. Without a GPU it runs the tiny CPU configuration (gpu_suite_cpu.json).
#
# Usage: bash benchmarks/gpu_suite.sh [--tiny] [--work DIR] [--cores N]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH=$here/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
exec python "$here/benchmarks/gpu_suite.py" "$@"
