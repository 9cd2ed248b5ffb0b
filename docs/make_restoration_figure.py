"""Make docs/images/restoration.jpg: colorized without and with restoration.

Run from the repository root: python docs/make_restoration_figure.py
One row per frame of ../shared/data/gray (the EM stack's first frame with
`natural` and ``restore="denoise"``; m51, m67 and the Spitzer frame with
`astro` and ``restore="hot-pixels,denoise"``), then a Kodak photograph
made noisy (Poisson, 10 photons at white) with its true colours: the gray
input, the result without restoration, the restored lightness alone
(``colorize(..., lightness_only=True)``) and the result with it. Each
picture is a 192x192 crop at full resolution (the middle of the frame), so
the noise is visible; the whole frame is colorized.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from make_domain_figure import DATA, FRAMES, as_gray_rgb  # docs/, beside this script
from make_figure import SIDE, gray_rgb, tile
from PIL import Image

from napari_colorize import colorize
from napari_colorize.color import lightness_to_gray, rgb_to_lab

HERE = Path(__file__).resolve().parent
CROP = 192
#: frame -> (model, restoration) shown for it.
SETTINGS = {"em-isbi2012-stack.tif": ("natural", "denoise")}
TELESCOPE = ("astro", "hot-pixels,denoise")


def middle(image: np.ndarray) -> np.ndarray:
    y, x = ((n - CROP) // 2 for n in image.shape[:2])
    return image[y : y + CROP, x : x + CROP]


def row(frame: np.ndarray, label: str, model: str, restore: str, **options) -> list:
    plain = colorize(frame, model=model, device="cpu", **options)
    restored = colorize(frame, model=model, device="cpu", restore=restore, **options)
    lightness = colorize(frame, restore=restore, lightness_only=True, **options) / 100.0
    return [
        tile(middle(as_gray_rgb(frame) if not options else gray_rgb(frame)), f"{label} (gray)"),
        tile(middle(plain), f"{model}, as it is"),
        tile(middle(gray_rgb(lightness)), f"restored L: {restore}"),
        tile(middle(restored), f"{model}, restored first"),
    ]


def main() -> None:
    rows = []
    for name in FRAMES:
        frame = tifffile.imread(DATA / "gray" / name).astype(np.float32)
        frame = frame[0] if frame.ndim == 3 else frame
        model, restore = SETTINGS.get(name, TELESCOPE)
        rows.append(row(frame, name, model, restore))
    photo = np.asarray(Image.open(DATA / "eval/natural/kodak24/kodim23.png").convert("RGB"))
    gray = lightness_to_gray(rgb_to_lab(photo)[..., 0])
    noisy = np.clip(np.random.default_rng(0).poisson(gray * 10.0) / 10.0, 0, 1).astype(np.float32)
    rows.append([*row(noisy, "kodim23, Poisson 10", "natural", "denoise", normalize=(0.0, 1.0)), tile(middle(photo), "true colours")])
    columns = max(len(r) for r in rows)
    canvas = Image.new("RGB", (columns * SIDE, len(rows) * SIDE), (255, 255, 255))
    for y, images in enumerate(rows):
        for x, image in enumerate(images):
            canvas.paste(image, (x * SIDE, y * SIDE))
    out = HERE / "images" / "restoration.jpg"
    canvas.save(out, quality=88, optimize=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
