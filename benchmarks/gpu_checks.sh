#!/usr/bin/env bash
# Issue 12, point 3, on a lent GPU machine in one call (its image holds torch,
# numpy, scikit-image, tifffile, safetensors and pytest; nothing to install):
# the CUDA tests, then bench_gpu.py (with a profile of a held stack, to show
# where the time goes if a target is missed). From the repository root there:
#
#     bash benchmarks/gpu_checks.sh          # logs and results_gpu.txt under $OUT when set
#
# The checkout is over the 64 MiB such a run takes along: first, here,
# `bash benchmarks/gpu_travel.sh aside` (55 MB then travel), and `back` after.
# About 5-8 minutes on an H200 (the host-path runs are the slow ones); give
# the run tool timeout_s=540 and read results_gpu.txt back from $OUT.
set -uo pipefail
out=${OUT:-.}
export PYTHONPATH=src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -m pytest -q -p no:warnings -p no:cacheprovider -p no:napari -p no:pytestqt -p no:xvfb \
  tests/test_engine.py tests/test_resident.py tests/test_prediction.py 2>&1 | tee "$out/gpu_tests.log"
python3 benchmarks/bench_gpu.py --profile "$@" 2>&1 | tee "$out/gpu_bench.log"
cp benchmarks/results_gpu.txt "$out/" 2>/dev/null || true
