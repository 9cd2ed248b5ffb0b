"""Make docs/images/astro.png: the astro model beside natural on real frames.

Run from the repository root: python docs/make_domain_figure.py
One row per frame of ../shared/data/gray (the EM stack's first frame, m51,
m67 and the Spitzer frame, each with default options): the gray input,
'natural', 'astro'. Then one held-out telescope colour image
(eval/astro/jwst-gallery) as gray, both models and its true colours.
Frames are shown whole, resized to 256 px.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from napari_colorize import colorize
from napari_colorize.color import lightness_to_gray, rgb_to_lab
from napari_colorize.normalization import intensity_range, normalize_frame

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data"
MODELS = ("natural", "astro")
FRAMES = ("em-isbi2012-stack.tif", "m51.tif", "m67-palomar-dss.tif", "spitzer-irac.tif")
HELD_OUT = "eval/astro/jwst-gallery"
SIDE = 256


def tile(rgb: np.ndarray, label: str) -> Image.Image:
    from PIL import ImageDraw

    image = Image.fromarray(rgb).convert("RGB").resize((SIDE, SIDE), Image.LANCZOS)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, SIDE - 18, SIDE, SIDE], fill=(0, 0, 0))
    draw.text((4, SIDE - 16), label, fill=(255, 255, 255))
    return image


def as_gray_rgb(frame: np.ndarray) -> np.ndarray:
    low, high = intensity_range(frame)
    values = np.nan_to_num(normalize_frame(frame, low, high), nan=0.0)
    return np.repeat((np.clip(values, 0, 1) * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=-1)


def main() -> None:
    rows = []
    for name in FRAMES:
        frame = tifffile.imread(DATA / "gray" / name).astype(np.float32)
        frame = frame[0] if frame.ndim == 3 else frame
        rows.append([tile(as_gray_rgb(frame), f"{name} (gray)")] + [tile(colorize(frame, model=m, device="cpu"), m) for m in MODELS])
    truth_path = sorted((DATA / HELD_OUT).glob("*.jpg"))[0]
    truth = np.asarray(Image.open(truth_path).convert("RGB"))
    gray = lightness_to_gray(rgb_to_lab(truth)[..., 0])
    held_out = [tile(as_gray_rgb(gray), f"{truth_path.name} (gray)")]
    held_out += [tile(colorize(gray, model=m, device="cpu", normalize=(0.0, 1.0)), m) for m in MODELS]
    held_out.append(tile(truth, "true colours"))
    rows.append(held_out)
    columns = max(len(r) for r in rows)
    canvas = Image.new("RGB", (columns * SIDE, len(rows) * SIDE), (255, 255, 255))
    for y, row in enumerate(rows):
        for x, image in enumerate(row):
            canvas.paste(image, (x * SIDE, y * SIDE))
    out = HERE / "images" / "astro.png"
    canvas.save(out, optimize=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
