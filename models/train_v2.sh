#!/usr/bin/env bash
# Continue the second-generation models (each in its own network:
# colornet-v2-antialiased for natural, colornet-v2-replicate for
# natural-regression; hints, frame context, edge-replicating padding, trained at every orientation and against
# the tile grid, sub-pixel shifts and the crop) side by side on one GPU, from the shipped ones,
# then calibrate how far each trusts colour hints.
# Usage, from the repository root, after
#   python models/pack_training_data.py ../shared/data/train/natural .train_pack
#   bash models/train_v2.sh .train_pack OUT [MINUTES] [DEVICE]
# On a CPU (DEVICE=cpu) see models/runs/README.md for the commands and speeds,
# and for the options (--frames, --dark-sky...) natural's later stages used.
set -u
data=$1
out=$2
minutes=${3:-7}
device=${4:-cuda}
mkdir -p "$out"
export PYTHONPATH=${PYTHONPATH:-src} PYTHONUNBUFFERED=1
nvidia-smi -L || true
common=(--any-orientation --steps 60000 --batch-size 128 --crop-size 128
  --time-limit "$minutes" --checkpoint-minutes 1 --workers 7 --device "$device")
python -m napari_colorize.cli train "$data" -o "$out/natural.trained.safetensors" --init natural --head classification --lr 1e-4 --shift-consistency 2 "${common[@]}" >"$out/natural.log" 2>&1 &
python -m napari_colorize.cli train "$data" -o "$out/natural-regression.trained.safetensors" --init natural-regression --head regression --lr 2e-4 --shift-consistency 1 "${common[@]}" >"$out/natural-regression.log" 2>&1 &
wait
for name in natural natural-regression; do
  python models/calibrate_hint_gain.py "$out/$name.trained.safetensors" "$out/$name.safetensors" \
    --images ../shared/data/eval/natural/bsds500-test --limit 8 >"$out/calibrate-$name.log" 2>&1 &
done
wait
