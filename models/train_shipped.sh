#!/usr/bin/env bash
# Train the two shipped models side by side on one GPU (the command behind
# models/README.md). Usage, from the repository root:
#   bash models/train_shipped.sh DATA_DIR OUT_DIR [MINUTES]
# DATA_DIR: colour images (the models were trained on a pack of
# ../shared/data/train/natural, see models/README.md).
set -u
data=$1
out=$2
minutes=${3:-7}
mkdir -p "$out"
export PYTHONPATH=${PYTHONPATH:-src} PYTHONUNBUFFERED=1
nvidia-smi -L || true
common=(--steps 60000 --batch-size 128 --crop-size 128 --lr 1e-3 --time-limit "$minutes" --checkpoint-minutes 1 --workers 7 --device cuda)
python -m napari_colorize.cli train "$data" -o "$out/natural.safetensors" --head classification "${common[@]}" >"$out/natural.log" 2>&1 &
python -m napari_colorize.cli train "$data" -o "$out/natural-regression.safetensors" --head regression "${common[@]}" >"$out/natural-regression.log" 2>&1 &
wait
