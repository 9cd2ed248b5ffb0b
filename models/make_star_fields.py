"""Write synthetic star fields: gray telescope frames for ``train --frames``.

The telescope images in ``../shared/data/train/astro`` are processed colour
pictures of nebulae and galaxies. A raw survey plate (a Digitized Sky Survey
frame of a star cluster, say) is something else: a noisy sky with thousands
of point sources and a dense cluster core, whose cut-outs look nothing like
the whole frame (bright, crowded stars against a dark, sparse field). Frames
teach no colour, only that a cut-out is coloured as its frame
(``TrainConfig.frames_share``), so synthetic ones are as good as real ones
for that, and they can cover the cases the pictures lack.

Each frame is float32: a sky (a level, a gradient, sometimes faint
nebulosity), field stars and sometimes a cluster (a Plummer profile), with
power-law fluxes, one Gaussian point spread per frame, a saturating plate
response (bright stars become disks) and sensor noise.

Usage, from the repository root:

    python models/make_star_fields.py OUT_DIR [--count 300] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage


def star_field(rng: np.random.Generator) -> np.ndarray:
    """One synthetic frame (H, W) float32 in about 0..1."""
    height, width = (int(v) for v in rng.integers(384, 769, size=2))
    area = height * width / 512**2
    fluxes = np.zeros((height, width), np.float64)
    flux_floor = rng.uniform(0.05, 0.3)  # the faintest star's flux

    def add_stars(ys, xs):
        inside = (ys >= 0) & (ys < height - 1) & (xs >= 0) & (xs < width - 1)
        ys, xs = ys[inside], xs[inside]
        # Power-law fluxes: many faint stars, a few bright ones.
        flux = flux_floor * (1.0 - rng.random(ys.size)) ** (-1.0 / rng.uniform(1.0, 1.8))
        y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
        fy, fx = ys - y0, xs - x0
        # Sub-pixel positions, shared bilinearly among four pixels.
        for dy, dx, weight in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
            np.add.at(fluxes, (y0 + dy, x0 + dx), flux * weight)

    field = int(np.exp(rng.uniform(np.log(200), np.log(3000))) * area)
    add_stars(rng.uniform(0, height, field), rng.uniform(0, width, field))
    if rng.random() < 0.6:
        members = int(np.exp(rng.uniform(np.log(100), np.log(3000))))
        scale = rng.uniform(0.04, 0.3) * min(height, width)
        # Plummer sphere, projected: radius r = a / sqrt(u^(-2/3) - 1) in 3-D, seen from a random side.
        u = rng.uniform(0.01, 0.99, members)
        radius = scale / np.sqrt(u ** (-2.0 / 3.0) - 1.0)
        direction = rng.normal(size=(members, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        centre = rng.uniform(0.2, 0.8, 2) * (height, width)
        add_stars(centre[0] + radius * direction[:, 0], centre[1] + radius * direction[:, 1])
    sigma = rng.uniform(0.7, 2.0)
    stars = ndimage.gaussian_filter(fluxes, sigma) * (2 * np.pi * sigma**2) ** 0.5
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    sky = rng.uniform(0.02, 0.2) + rng.uniform(-0.03, 0.03) * yy + rng.uniform(-0.03, 0.03) * xx
    if rng.random() < 0.2:
        cloud = ndimage.gaussian_filter(rng.normal(size=(height, width)), rng.uniform(20, 80))
        sky = sky + rng.uniform(0.01, 0.06) * cloud / (np.abs(cloud).max() + 1e-12)
    signal = np.clip(sky + stars, 0.0, None)
    # A plate (or a stretched CCD frame) saturates: bright stars grow into flat disks.
    response = 1.0 - np.exp(-signal * rng.uniform(1.0, 4.0))
    read_noise = rng.uniform(0.001, 0.01) * rng.normal(size=signal.shape)
    shot_noise = rng.uniform(0.0, 0.01) * np.sqrt(response) * rng.normal(size=signal.shape)
    return (response + read_noise + shot_noise).astype(np.float32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path, help="folder for the frames (created)")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import tifffile

    args.output.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    for index in range(args.count):
        tifffile.imwrite(args.output / f"star-field-{index:04d}.tif", star_field(rng))
    print(f"wrote {args.count} star fields to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
