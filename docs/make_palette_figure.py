"""Make docs/images/astro-palettes.jpg: one field, two palettes, one gray.

Run from the repository root:
    python docs/make_palette_figure.py
Two held-out JWST composites of the Pillars of Creation (ESA/Webb, CC BY 4.0:
MIRI in teal and orange, NIRCam in orange and blue; ../shared/data/eval/astro)
and the training set's composite of the same field: their true colours,
the gray the models are given (nearly the same picture three times), what
'astro' makes of each gray, and what it makes of each with the MIRI and
with the NIRCam picture as its reference palette. A colour composite's
palette is its maker's choice of filters and hues, which the gray does not
carry; a reference palette says which one is wanted.
"""

from __future__ import annotations

from pathlib import Path

from make_figure import DATA, SIDE, gray_rgb, tile  # docs/, beside this script
from PIL import Image

from napari_colorize import colorize
from napari_colorize.evaluation import colour_truths

HERE = Path(__file__).resolve().parent
IMAGES = (
    ("eval/astro/jwst-gallery/weic2218a_full.jpg", "held out: MIRI"),
    ("eval/astro/jwst-gallery/weic2218d_full.jpg", "held out: NIRCam"),
    ("train/astro/jwst-gallery/pillarsofcreation_composite_full.jpg", "trained on: composite"),
)


def main() -> None:
    columns = []
    pictures = list(colour_truths([DATA / path for path, _ in IMAGES]))
    references = {"MIRI": pictures[0][1], "NIRCam": pictures[1][1]}
    for (_, truth, _, gray), (_, label) in zip(pictures, IMAGES):
        column = [tile(truth, f"true colours, {label}"), tile(gray_rgb(gray), "gray input")]
        column.append(tile(colorize(gray, model="astro", normalize=(0.0, 1.0), device="cpu"), "astro"))
        for name, reference in references.items():
            result = colorize(gray, model="astro", normalize=(0.0, 1.0), device="cpu", reference=reference)
            column.append(tile(result, f"astro, reference: {name}"))
        columns.append(column)
    sheet = Image.new("RGB", (len(columns) * SIDE, len(columns[0]) * SIDE))
    for x, column in enumerate(columns):
        for y, picture in enumerate(column):
            sheet.paste(picture, (x * SIDE, y * SIDE))
    out = HERE / "images" / "astro-palettes.jpg"
    sheet.save(out, quality=85)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
