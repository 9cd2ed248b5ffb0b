#!/usr/bin/env bash
# Train the second-generation models (colornet-v2: hints + frame context, no
# up/down prior, trained against the tile grid), side by side on one GPU: the
# classification model continues the committed CPU run, regression starts from v1.
# Usage, from the repository root, after
#   python models/pack_training_data.py ../shared/data/train/natural .train_pack
#   bash models/train_v2.sh .train_pack OUT [MINUTES] [DEVICE]
# On a CPU (DEVICE=cpu) run one head at a time instead: see models/runs/README.md.
set -u
data=$1
out=$2
minutes=${3:-7}
device=${4:-cuda}
mkdir -p "$out"
export PYTHONPATH=${PYTHONPATH:-src} PYTHONUNBUFFERED=1
nvidia-smi -L || true
common=(--architecture colornet-v2 --any-orientation --shift-consistency 1 --fresh-lr-scale 10 --steps 60000 --batch-size 128 --crop-size 128 --lr 5e-4
  --time-limit "$minutes" --checkpoint-minutes 1 --workers 7 --device "$device")
python -m napari_colorize.cli train "$data" -o "$out/natural.safetensors" --init models/runs/natural-v2-cpu.safetensors --head classification "${common[@]}" >"$out/natural.log" 2>&1 &
python -m napari_colorize.cli train "$data" -o "$out/natural-regression.safetensors" --init natural-regression --head regression "${common[@]}" >"$out/natural-regression.log" 2>&1 &
wait
