"""Make docs/images/MODEL.jpg: a domain model beside natural on real frames.

Run from the repository root:
    python docs/make_domain_figure.py astro eval/astro/jwst-gallery
    python docs/make_domain_figure.py stained-microscopy eval/micro/bcss eval/micro/bccd eval/micro/fluocells
One row per frame of ../shared/data/gray (the EM stack's first frame, m51,
m67 and the Spitzer frame, each with default options): the gray input,
'natural', the domain model. Then, for each held-out folder given (relative
to ../shared/data), its first colour image as gray, both models and its true
colours. Frames are shown whole, resized to 256 px.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import tifffile
from make_figure import SIDE, gray_rgb, tile  # docs/, beside this script
from PIL import Image

from napari_colorize import colorize
from napari_colorize.color import lightness_to_gray, rgb_to_lab
from napari_colorize.normalization import intensity_range, normalize_frame

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data"
FRAMES = ("em-isbi2012-stack.tif", "m51.tif", "m67-palomar-dss.tif", "spitzer-irac.tif")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}


def as_gray_rgb(frame: np.ndarray) -> np.ndarray:
    """A frame as the gray picture the models are given (its own intensity range)."""
    low, high = intensity_range(frame)
    return gray_rgb(np.nan_to_num(normalize_frame(frame, low, high), nan=0.0))


def held_out_row(folder: Path, models: tuple[str, ...]) -> list:
    """A held-out colour image as gray, colorized by each model, and its true colours."""
    truth_path = min(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    truth = np.asarray(Image.open(truth_path).convert("RGB"))
    gray = lightness_to_gray(rgb_to_lab(truth)[..., 0])
    row = [tile(as_gray_rgb(gray), f"{truth_path.name} (gray)")]
    row += [tile(colorize(gray, model=m, device="cpu", normalize=(0.0, 1.0)), m) for m in models]
    return row + [tile(truth, "true colours")]


def main(model: str, held_out: list[str]) -> None:
    models = ("natural", model)
    rows = []
    for name in FRAMES:
        frame = tifffile.imread(DATA / "gray" / name).astype(np.float32)
        frame = frame[0] if frame.ndim == 3 else frame
        rows.append([tile(as_gray_rgb(frame), f"{name} (gray)")] + [tile(colorize(frame, model=m, device="cpu"), m) for m in models])
    rows += [held_out_row(DATA / folder, models) for folder in held_out]
    columns = max(len(r) for r in rows)
    canvas = Image.new("RGB", (columns * SIDE, len(rows) * SIDE), (255, 255, 255))
    for y, row in enumerate(rows):
        for x, image in enumerate(row):
            canvas.paste(image, (x * SIDE, y * SIDE))
    out = HERE / "images" / f"{model}.jpg"
    canvas.save(out, quality=88, optimize=True)  # photograph-like: a fifth of the PNG
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
