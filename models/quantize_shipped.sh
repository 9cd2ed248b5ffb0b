#!/usr/bin/env bash
# The shipped models' int8 companions (models/*.int8.onnx), each calibrated on
# 64 of its own training images (../shared/data/train), spread evenly over
# the sorted file list. Run again after retraining a model: a companion is
# used only with the checkpoint it was made from.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=../shared/data/train
napari-colorize quantize natural --images "$DATA/natural"
napari-colorize quantize natural-lean --images "$DATA/natural"
napari-colorize quantize natural-regression --images "$DATA/natural"
napari-colorize quantize astro --images "$DATA/astro"
napari-colorize quantize stained-microscopy --images "$DATA/micro"
