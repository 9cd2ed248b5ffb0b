"""Make docs/images/results.png, the README's picture of real results.

Run from the repository root: python docs/make_figure.py
Row 1: a Kodak photo (free to use) as gray, colorized by 'natural' and by
'natural-regression', and the true colours. Row 2: scikit-image's Hubble
deep field (its luminance) and Moon, each gray and colorized by 'natural'.
Only redistributable images appear in the picture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from napari_colorize import colorize
from napari_colorize.color import lightness_to_gray, rgb_to_lab, to_luminance
from napari_colorize.normalization import intensity_range, normalize_frame

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SIDE = 256


def tile(rgb: np.ndarray, label: str) -> Image.Image:
    image = Image.fromarray(rgb).convert("RGB").resize((SIDE, SIDE), Image.LANCZOS)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, SIDE - 18, SIDE, SIDE], fill=(0, 0, 0))
    draw.text((4, SIDE - 16), label, fill=(255, 255, 255))
    return image


def gray_rgb(values: np.ndarray) -> np.ndarray:
    return np.repeat((np.clip(values, 0, 1) * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=-1)


def main() -> None:
    photo = np.asarray(Image.open(DATA / "eval/natural/kodak24/kodim23.png").convert("RGB"))
    gray = lightness_to_gray(rgb_to_lab(photo)[..., 0])
    row1 = [
        tile(gray_rgb(gray), "input (gray)"),
        tile(colorize(gray, normalize=(0, 1), model="natural"), "natural (classification)"),
        tile(colorize(gray, normalize=(0, 1), model="natural-regression"), "natural-regression"),
        tile(photo, "true colours"),
    ]
    from skimage import data

    hubble = to_luminance(data.hubble_deep_field())
    row2 = []
    for image, name in ((hubble, "Hubble deep field"), (data.moon(), "Moon")):
        shown = normalize_frame(image, *intensity_range(image))
        row2.append(tile(gray_rgb(shown), f"{name} (gray)"))
        row2.append(tile(colorize(image, model="natural"), f"{name}, natural"))
    sheet = Image.new("RGB", (4 * SIDE, 2 * SIDE))
    for i, picture in enumerate(row1 + row2):
        sheet.paste(picture, ((i % 4) * SIDE, (i // 4) * SIDE))
    out = Path(__file__).parent / "images" / "results.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
