"""Colour hints: (frame, y, x, r, g, b) rows in image pixels, checked once and
painted into the sparse ab map and mask that a hint-taking network reads
(Zhang et al. 2017: each hint a small patch of one colour), with the hint
colours spread over the whole frame, so that a tile learns of the hints in
other tiles."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .color import rgb_to_lab
from .colornet import AB_SCALE, HINT_CHANNELS, HINT_SPREAD_SIGMAS

#: Columns of a hint row; the frame column may be left out for a single frame.
HINT_COLUMNS = ("frame", "y", "x", "r", "g", "b")
#: Half-width, in working pixels, of the square patch a hint paints: training
#: samples patches 1 to 9 pixels wide, so a 3 x 3 patch is a typical hint.
HINT_RADIUS = 1
#: How far hints act (:func:`napari_colorize.colorize`'s ``hint_reach``):
#: near each hint only, or over the whole frame (as the network was trained).
HINT_REACHES = ("local", "frame")
#: Channel of the hint input holding the near spread's confidence.
NEAR_CONFIDENCE = 5
#: With ``hint_reach="local"``, the hinted result is taken whole where the
#: near confidence is at least this (within about two sigma of a hint, 32
#: working pixels) and fades into the automatic result from there to where
#: the confidence ends (about four sigma, 62 pixels).
LOCAL_REACH_FULL = 0.27


def check_hints(hints, frames_shape: tuple[int, ...], *, row_names: Sequence[str] | None = None) -> np.ndarray:
    """Hint rows as a float array (n, 6) of (frame, y, x, r, g, b).

    Parameters
    ----------
    hints : array_like of rows, or None
        (frame, y, x, r, g, b) per row, with y, x in image pixels of the
        frame (fractions allowed) and r, g, b in 0..255 (sRGB); for a single
        frame, (y, x, r, g, b) rows are accepted too. ``frame`` is the flat
        index over the leading axes. None or no rows: no hints.
    frames_shape : tuple of int
        Shape of the grayscale input, (..., Y, X).
    row_names : sequence of str, optional
        What to call each row in an error (a file's line, say); default
        "hint row N", counting from 0.

    Raises
    ------
    ValueError
        Naming the first bad row and what is wrong with it.
    """
    if hints is None:
        return np.zeros((0, 6))
    rows = np.asarray(hints, dtype=np.float64)
    if rows.size == 0:
        return np.zeros((0, 6))
    frames = int(np.prod(frames_shape[:-2], dtype=np.int64))
    height, width = frames_shape[-2:]
    if rows.ndim != 2 or rows.shape[1] not in (5, 6):
        raise ValueError(f"hints must be rows of (frame, y, x, r, g, b), got an array of shape {rows.shape}")
    if rows.shape[1] == 5:
        if frames != 1:
            raise ValueError(f"the input has {frames} frames: give each hint row as (frame, y, x, r, g, b)")
        rows = np.concatenate([np.zeros((len(rows), 1)), rows], axis=1)
    for number, (frame, y, x, *rgb) in enumerate(rows):
        problem = None
        if not np.isfinite(rows[number]).all():
            problem = "a value is not a finite number"
        elif frame != int(frame) or not 0 <= frame < frames:
            problem = f"frame {frame:g} is not a frame index in 0..{frames - 1}"
        elif not (0 <= y < height and 0 <= x < width):
            problem = f"(y, x) = ({y:g}, {x:g}) is outside the {height} x {width} frame"
        elif not all(0 <= c <= 255 for c in rgb):
            problem = f"colour ({', '.join(f'{c:g}' for c in rgb)}) is not r, g, b in 0..255"
        if problem:
            raise ValueError(f"{row_names[number] if row_names else f'hint row {number}'}: {problem}")
    return rows


def read_hints_csv(path: Path) -> tuple[np.ndarray, list[str]]:
    """Hint rows from a CSV file with a header naming its columns.

    Parameters
    ----------
    path : Path
        Columns ``y,x,r,g,b`` in any order, and optionally ``frame`` (the
        flat frame index of a stack; 0 when absent); y, x in image pixels,
        r, g, b in 0..255. Blank lines are skipped.

    Returns
    -------
    rows : ndarray, shape (n, 6) or (n, 5)
        (frame, y, x, r, g, b), or (y, x, r, g, b) when the file has no
        frame column; to check with :func:`check_hints` against the image.
    row_names : list of str
        "FILE line N" for each row, for :func:`check_hints`'s errors.

    Raises
    ------
    ValueError
        A missing or unknown column, or a row that is not numbers, naming its line.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as file:
        lines = [(number, row) for number, row in enumerate(csv.reader(file), start=1) if any(cell.strip() for cell in row)]
    if not lines:
        raise ValueError(f"{path.name} is empty: it needs a header line {','.join(HINT_COLUMNS[1:])} (and optionally frame)")
    header = [cell.strip().lower() for cell in lines[0][1]]
    missing = [name for name in HINT_COLUMNS[1:] if name not in header]
    unknown = [name for name in header if name not in HINT_COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        problem = f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(unknown)}" if unknown else "a column twice"
        raise ValueError(f"{path.name} line {lines[0][0]}: the header must name the columns y,x,r,g,b (and optionally frame): {problem}")
    columns = HINT_COLUMNS if "frame" in header else HINT_COLUMNS[1:]
    order = [header.index(name) for name in columns]
    rows, names = [], []
    for number, cells in lines[1:]:
        name = f"{path.name} line {number}"
        if len(cells) != len(header):
            raise ValueError(f"{name}: {len(cells)} values for the {len(header)} columns {','.join(header)}")
        try:
            rows.append([float(cells[index]) for index in order])
        except ValueError:
            raise ValueError(f"{name}: not all numbers: {','.join(cells)}") from None
        names.append(name)
    return np.asarray(rows, dtype=np.float64).reshape(-1, len(columns)), names


def hint_ab(rows: np.ndarray) -> np.ndarray:
    """The ab of the hints' sRGB colours, (n, 2)."""
    rgb = np.clip(np.round(rows[:, 3:6]), 0, 255).astype(np.uint8)[None]
    return rgb_to_lab(rgb)[0, :, 1:]


def spread_hints(sparse: np.ndarray) -> np.ndarray:
    """The network's whole hint input from the sparse map of one frame.

    Parameters
    ----------
    sparse : ndarray, shape (3, Y, X)
        a/110, b/110 and the mask (1 where a hint is).

    Returns
    -------
    ndarray of float32, shape (HINT_CHANNELS, Y, X)
        The sparse map, then for each sigma of ``HINT_SPREAD_SIGMAS`` the
        hints' a, b averaged with Gaussian weights (normalised convolution)
        and the confidence of that average: 1 within about one sigma of a
        3 x 3 hint, 0.27 at two, and exactly 0 (with a, b) past about four.
    """
    import torch
    from scipy.ndimage import gaussian_filter
    from skimage.transform import downscale_local_mean

    height, width = sparse.shape[-2:]
    out = np.zeros((HINT_CHANNELS, height, width), dtype=np.float32)
    out[:3] = sparse
    mask = sparse[2] > 0
    if not mask.any():
        return out
    weighted = np.stack([sparse[0] * mask, sparse[1] * mask, mask.astype(np.float32)])
    for index, sigma in enumerate(HINT_SPREAD_SIGMAS):
        # The spread is smooth at this scale: compute it on a coarser grid.
        factor = max(1, int(sigma // 4))
        coarse = downscale_local_mean(weighted, (1, factor, factor))
        coarse = np.stack([gaussian_filter(c, sigma / factor, mode="constant") for c in coarse])
        density = np.maximum(coarse[2], 1e-12)
        spread = np.stack([coarse[0] / density, coarse[1] / density, np.minimum(1.0, coarse[2] * 2 * np.pi * sigma**2 * 2 / 9)])
        spread *= spread[2] >= 1e-3  # beyond a hint's reach: exactly nothing
        # Bilinear, edges repeated (skimage's resize, order 1, to float rounding, and 20x faster).
        size = (coarse.shape[1] * factor, coarse.shape[2] * factor)
        full = torch.nn.functional.interpolate(torch.from_numpy(spread.astype(np.float32))[None], size=size, mode="bilinear", align_corners=False)
        out[3 + 3 * index : 6 + 3 * index] = full[0, :, :height, :width].numpy()
    return out


def local_reach(hint_tiles, stride: int):
    """Weight in 0..1 of the hinted result against the automatic one, per
    output cell, for ``hint_reach="local"``.

    Parameters
    ----------
    hint_tiles : torch.Tensor, shape (N, HINT_CHANNELS, H, W)
        Hint inputs of tiles (:func:`hint_map` cut into tiles).
    stride : int
        The network's output stride.

    Returns
    -------
    torch.Tensor, shape (N, 1, H / stride, W / stride)
        1 near a hint, exactly 0 beyond the near spread's reach.
    """
    import torch

    confidence = hint_tiles[:, NEAR_CONFIDENCE : NEAR_CONFIDENCE + 1].float()
    return (torch.nn.functional.avg_pool2d(confidence, stride) / LOCAL_REACH_FULL).clamp(max=1.0)


def hint_map(rows: np.ndarray, frame_shape: tuple[int, int], working: tuple[int, int], *, radius: int = HINT_RADIUS) -> np.ndarray:
    """The network's hint input for one frame at working resolution,
    (HINT_CHANNELS, Y, X) float32 (see :func:`spread_hints`), from that frame's rows."""
    out = np.zeros((3, *working), dtype=np.float32)
    if len(rows) == 0:
        return np.zeros((HINT_CHANNELS, *working), dtype=np.float32)
    ab = hint_ab(rows) / AB_SCALE
    factor_y, factor_x = working[0] / frame_shape[0], working[1] / frame_shape[1]
    for (y, x), (a, b) in zip(rows[:, 1:3], ab):
        cy = min(working[0] - 1, int((y + 0.5) * factor_y))
        cx = min(working[1] - 1, int((x + 0.5) * factor_x))
        ys = slice(max(0, cy - radius), cy + radius + 1)
        xs = slice(max(0, cx - radius), cx + radius + 1)
        out[0, ys, xs], out[1, ys, xs], out[2, ys, xs] = a, b, 1.0
    return spread_hints(out)
