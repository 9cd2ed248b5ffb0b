"""Tile grids with overlap, and taper-weighted stitching of tile predictions.

A frame is padded to at least one tile and to a multiple of the model's
output stride, covered by overlapping tiles whose starts are multiples of the
stride, and the per-tile predictions (at 1/stride resolution) are blended with
weights that ramp linearly across the overlaps, so that no seams show.
Works on NumPy arrays and on torch tensors alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

import numpy as np


def tile_starts(length: int, *, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of tiles covering ``[0, length)`` with at least ``overlap``.

    Parameters
    ----------
    length : int
        Length of the (padded) axis; ``length >= tile`` and a multiple of ``align``.
    tile : int
        Tile length.
    overlap : int
        Minimum overlap between neighbouring tiles, ``0 <= overlap < tile``.
    align : int
        Every start is a multiple of this.

    Examples
    --------
    >>> tile_starts(500, tile=224, overlap=32, align=4)
    [0, 136, 276]
    """
    if length < tile:
        raise ValueError(f"axis of length {length} is shorter than the tile ({tile})")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, {tile}), got {overlap}")
    if length == tile:
        return [0]
    # Largest aligned stride that keeps the overlap (aligned starts cannot be
    # closer than ``align``): rounding starts to ``align`` then never shrinks it.
    stride = max(align, (tile - overlap) // align * align)
    count = math.ceil((length - tile) / stride) + 1
    last = length - tile
    starts = [int(round(i * last / (count - 1) / align)) * align for i in range(count)]
    starts[-1] = last
    return starts


@dataclass(frozen=True)
class TileGrid:
    """Overlapping tiles over a 2D frame of ``shape`` (padded as needed).

    Attributes
    ----------
    shape : tuple of int
        Frame shape before padding.
    padded_shape : tuple of int
        Frame shape after padding (>= tile, multiple of ``align``).
    tile : int
    overlap : int
    align : int
    starts_y, starts_x : tuple of int
    """

    shape: tuple[int, int]
    padded_shape: tuple[int, int]
    tile: int
    overlap: int
    align: int
    starts_y: tuple[int, ...]
    starts_x: tuple[int, ...]

    @classmethod
    def for_shape(cls, shape: tuple[int, int], *, tile: int, overlap: int, align: int = 1) -> "TileGrid":
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"need a non-empty 2D frame shape, got {shape}")
        if tile % align:
            raise ValueError(f"tile ({tile}) must be a multiple of align ({align})")
        padded = tuple(max(tile, math.ceil(n / align) * align) for n in shape)
        return cls(
            shape=tuple(int(n) for n in shape),
            padded_shape=padded,
            tile=tile,
            overlap=overlap,
            align=align,
            starts_y=tuple(tile_starts(padded[0], tile=tile, overlap=overlap, align=align)),
            starts_x=tuple(tile_starts(padded[1], tile=tile, overlap=overlap, align=align)),
        )

    @property
    def origins(self) -> list[tuple[int, int]]:
        """(y, x) of every tile, row by row."""
        return list(product(self.starts_y, self.starts_x))

    def __len__(self) -> int:
        return len(self.starts_y) * len(self.starts_x)

    def tiles(self, frame, origins: list[tuple[int, int]]) -> np.ndarray:
        """Stack the tiles at ``origins`` read from the *unpadded* frame: (n, tile, tile).

        Each tile is sliced (so a memory-mapped or lazy frame is read piece by
        piece) and padded on its own (mirrored; edge-extended for 1-pixel
        axes), exactly as mirroring the whole frame would have padded it: pads (under ``align`` wide) are narrower than the
        slices they mirror whenever ``tile >= 2 * align``, as for the model's
        224-pixel tiles.
        """
        t = self.tile
        out = []
        for y, x in origins:
            piece = np.asarray(frame[y : y + t, x : x + t])
            if piece.shape != (t, t):
                mode = "symmetric" if min(self.shape) > 1 else "edge"
                piece = np.pad(piece, [(0, t - piece.shape[0]), (0, t - piece.shape[1])], mode=mode)
            out.append(piece)
        return np.stack(out)


def taper(length: int, ramp: float) -> np.ndarray:
    """Blend weights along one tile axis: a linear ramp over ``ramp`` samples at
    each end, 1 in the middle, never 0 (so a lone tile still counts)."""
    i = np.arange(length, dtype=np.float32) + 0.5
    if ramp <= 0:
        return np.ones(length, dtype=np.float32)
    return np.minimum(1.0, np.minimum(i, length - i) / ramp).astype(np.float32)


class Stitcher:
    """Accumulate tile predictions into a taper-weighted average.

    Parameters
    ----------
    grid : TileGrid
    channels : int
        Channels of each tile prediction (first axis).
    scale : int
        Input pixels per prediction pixel (the model's output stride).
    like : ndarray or torch.Tensor, optional
        Array whose type, dtype and device the accumulators take.

    Examples
    --------
    >>> grid = TileGrid.for_shape((300, 250), tile=224, overlap=32)
    >>> frame = np.random.rand(*grid.padded_shape).astype(np.float32)
    >>> stitcher = Stitcher(grid, channels=1, scale=1)
    >>> for y, x in grid.origins:
    ...     stitcher.add(frame[None, y:y + 224, x:x + 224], y, x)
    >>> bool(np.allclose(stitcher.result()[0], frame[:300, :250]))
    True
    """

    def __init__(self, grid: TileGrid, *, channels: int, scale: int = 1, like=None):
        if grid.tile % scale or grid.align % scale:
            raise ValueError("tile and alignment must be multiples of the scale")
        self.grid = grid
        self.scale = scale
        out_tile = grid.tile // scale
        shape = tuple(n // scale for n in grid.padded_shape)
        w1d = taper(out_tile, grid.overlap / scale)
        weight = np.outer(w1d, w1d)
        if like is not None and not isinstance(like, np.ndarray):
            import torch

            self._sum = torch.zeros((channels, *shape), dtype=torch.float32, device=like.device)
            self._weight = torch.zeros(shape, dtype=torch.float32, device=like.device)
            self._tile_weight = torch.as_tensor(weight, device=like.device)
        else:
            self._sum = np.zeros((channels, *shape), dtype=np.float32)
            self._weight = np.zeros(shape, dtype=np.float32)
            self._tile_weight = weight

    def add(self, prediction, y: int, x: int) -> None:
        """Add one tile's prediction (channels, tile/scale, tile/scale) at input origin (y, x)."""
        s, t = self.scale, self.grid.tile // self.scale
        ys, xs = y // s, x // s
        self._sum[:, ys : ys + t, xs : xs + t] += prediction * self._tile_weight
        self._weight[ys : ys + t, xs : xs + t] += self._tile_weight

    def result(self, *, crop: bool = True):
        """The blended prediction, cropped to the unpadded frame (rounded up) if ``crop``."""
        out = self._sum / self._weight
        if crop:
            h, w = (math.ceil(n / self.scale) for n in self.grid.shape)
            out = out[:, :h, :w]
        return out
