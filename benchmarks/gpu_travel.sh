#!/usr/bin/env bash
# The checkout is over the 64 MiB a lent GPU machine's run takes with it
# (the shipped models and the kept training runs). Before `run`, set aside
# the files the GPU checks do not read; after it, put them back (they are
# tracked, so `git checkout -- models` also restores them):
#
#     bash benchmarks/gpu_travel.sh aside     # moves them to ../gpu-aside
#     bash benchmarks/gpu_travel.sh back
set -euo pipefail
cd "$(dirname "$0")/.."
aside=../gpu-aside
files=(models/runs/*.safetensors models/natural-regression-v1.safetensors
       models/astro.safetensors models/astro.int8.onnx models/stained-microscopy.safetensors models/stained-microscopy.int8.onnx)
case "${1:-}" in
  aside) mkdir -p "$aside/models/runs"; for f in "${files[@]}"; do [ -e "$f" ] && mv "$f" "$aside/$f"; done
         echo "what travels now: $(git ls-files -co --exclude-standard | xargs -d '\n' du -cb 2>/dev/null | tail -1 | cut -f1) bytes" ;;
  back)  (cd "$aside" && find models -type f) | while read -r f; do mv "$aside/$f" "$f"; done; git status --short models ;;
  *) echo "usage: bash benchmarks/gpu_travel.sh aside|back" >&2; exit 2 ;;
esac
