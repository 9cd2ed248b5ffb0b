"""Tile grids with overlap, and taper-weighted stitching of tile predictions.

A frame is padded to at least one tile and to a multiple of the model's
output stride, covered by overlapping tiles whose starts are multiples of the
stride, and the per-tile predictions (at 1/stride resolution) are blended with
weights that ramp linearly across the overlaps, so that no seams show.
Works on NumPy arrays and on torch tensors alike.

The pieces the network runs on need not be the model's training tile: a
fully convolutional network can colour a larger window in one pass, and
:func:`window_sides` picks the sides that cover a frame with the fewest
windows, so that less of the work goes to overlaps.
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


def window_step(tile: int, align: int) -> int:
    """What every window side is a multiple of: the largest power of two that
    divides the model's ``tile`` (32 for 224), and ``align``, so that each
    stride-2 layer of the network halves a window exactly as it halves a tile."""
    step = tile & -tile
    return step * align // math.gcd(step, align)


def window_sides(shape: tuple[int, int], *, tile: int, window: int, overlap: int, align: int = 1) -> tuple[int, int]:
    """Sides (height, width) of the windows that cover a frame of ``shape``
    with the fewest windows of at most ``window`` (and at least ``tile``)
    per axis, overlapping by at least ``overlap``, each side a multiple of
    :func:`window_step`. With ``window <= tile``, the model's tiles.

    Examples
    --------
    >>> window_sides((4096, 4096), tile=224, window=1024, overlap=32, align=4)
    (864, 864)
    >>> window_sides((512, 700), tile=224, window=1024, overlap=32, align=4)
    (512, 704)
    >>> window_sides((4096, 300), tile=224, window=224, overlap=32, align=4)
    (224, 224)
    """
    if window <= tile:
        return (tile, tile)
    step = window_step(tile, align)
    largest = max(tile, window // step * step)
    sides = []
    for length in shape:
        count = 1 if length <= largest else math.ceil((length - overlap) / (largest - overlap))
        side = math.ceil(math.ceil((length + (count - 1) * overlap) / count) / step) * step
        sides.append(min(largest, max(tile, side)))
    return tuple(sides)


@dataclass(frozen=True)
class TileGrid:
    """Overlapping tiles over a 2D frame of ``shape`` (padded as needed).

    Attributes
    ----------
    shape : tuple of int
        Frame shape before padding.
    padded_shape : tuple of int
        Frame shape after padding (>= tile, multiple of ``align``).
    tile : tuple of int
        The tiles' (height, width).
    overlap : int
    align : int
    starts_y, starts_x : tuple of int
    """

    shape: tuple[int, int]
    padded_shape: tuple[int, int]
    tile: tuple[int, int]
    overlap: int
    align: int
    starts_y: tuple[int, ...]
    starts_x: tuple[int, ...]

    @classmethod
    def for_shape(cls, shape: tuple[int, int], *, tile: int | tuple[int, int], overlap: int, align: int = 1) -> "TileGrid":
        """The grid of tiles of side ``tile`` (or (height, width)) over a frame of ``shape``."""
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"need a non-empty 2D frame shape, got {shape}")
        tile = (int(tile), int(tile)) if np.ndim(tile) == 0 else tuple(int(t) for t in tile)
        if any(t % align for t in tile):
            raise ValueError(f"tile ({tile}) must be a multiple of align ({align})")
        padded = tuple(max(t, math.ceil(n / align) * align) for n, t in zip(shape, tile))
        return cls(
            shape=tuple(int(n) for n in shape),
            padded_shape=padded,
            tile=tile,
            overlap=overlap,
            align=align,
            starts_y=tuple(tile_starts(padded[0], tile=tile[0], overlap=overlap, align=align)),
            starts_x=tuple(tile_starts(padded[1], tile=tile[1], overlap=overlap, align=align)),
        )

    @property
    def origins(self) -> list[tuple[int, int]]:
        """(y, x) of every tile, row by row."""
        return list(product(self.starts_y, self.starts_x))

    def __len__(self) -> int:
        return len(self.starts_y) * len(self.starts_x)

    def tiles(self, frame, origins: list[tuple[int, int]]) -> np.ndarray:
        """Stack the tiles at ``origins`` read from the *unpadded* frame: (n, height, width).

        Each tile is sliced (so a memory-mapped or lazy frame is read piece by
        piece) and padded on its own (mirrored; edge-extended for 1-pixel
        axes), exactly as mirroring the whole frame would have padded it:
        along an axis with several tiles, pads (under ``align`` wide) are
        narrower than the slices they mirror whenever ``tile >= 2 * align``,
        as for the model's 224-pixel tiles; a lone tile holds the whole axis.
        """
        th, tw = self.tile
        out = []
        for y, x in origins:
            piece = np.asarray(frame[y : y + th, x : x + tw])
            if piece.shape != (th, tw):
                mode = "symmetric" if min(self.shape) > 1 else "edge"
                piece = np.pad(piece, [(0, th - piece.shape[0]), (0, tw - piece.shape[1])], mode=mode)
            out.append(piece)
        return np.stack(out)

    def source_indices(self, origins: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        """The frame rows (n, height) and columns (n, width) each tile at
        ``origins`` reads, padding included: ``frame[rows[i][:, None], cols[i]]``
        is :meth:`tiles`' tile i (padding is separable, so mirrored indices
        give the mirrored pixels)."""
        mode = "symmetric" if min(self.shape) > 1 else "edge"

        def axis(start: int, tile: int, length: int) -> np.ndarray:
            read = np.arange(start, min(start + tile, length))
            return np.pad(read, (0, tile - len(read)), mode=mode)

        (th, tw), (height, width) = self.tile, self.shape
        rows = np.stack([axis(y, th, height) for y, _ in origins])
        cols = np.stack([axis(x, tw, width) for _, x in origins])
        return rows, cols

    def gathered_tiles(self, frame, origins: list[tuple[int, int]]):
        """:meth:`tiles` of a frame held as a torch tensor (Y, X), gathered
        where it lies (on a GPU, no tile crosses to the host): (n, height, width)."""
        import torch

        # non_blocking: a small copy from pageable memory is staged at once, and on a GPU
        # the host then need not wait for the batches queued before it.
        rows, cols = (torch.from_numpy(index).to(frame.device, non_blocking=True) for index in self.source_indices(origins))
        return frame[rows[:, :, None], cols[:, None, :]]


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
        if any(t % scale for t in grid.tile) or grid.align % scale:
            raise ValueError("tile and alignment must be multiples of the scale")
        self.grid = grid
        self.scale = scale
        shape = tuple(n // scale for n in grid.padded_shape)
        weight = np.outer(*(taper(t // scale, grid.overlap / scale) for t in grid.tile))
        if like is not None and not isinstance(like, np.ndarray):
            import torch

            self._sum = torch.zeros((channels, *shape), dtype=torch.float32, device=like.device)
            self._weight = torch.zeros(shape, dtype=torch.float32, device=like.device)
            self._tile_weight = torch.as_tensor(weight).to(like.device, non_blocking=True)  # staged at once: no wait on a GPU
        else:
            self._sum = np.zeros((channels, *shape), dtype=np.float32)
            self._weight = np.zeros(shape, dtype=np.float32)
            self._tile_weight = weight

    def add(self, prediction, y: int, x: int) -> None:
        """Add one tile's prediction (channels, height/scale, width/scale) at input origin (y, x)."""
        s = self.scale
        th, tw = (t // s for t in self.grid.tile)
        ys, xs = y // s, x // s
        self._sum[:, ys : ys + th, xs : xs + tw] += prediction * self._tile_weight
        self._weight[ys : ys + th, xs : xs + tw] += self._tile_weight

    def result(self, *, crop: bool = True):
        """The blended prediction, cropped to the unpadded frame (rounded up) if ``crop``."""
        out = self._sum / self._weight
        if crop:
            h, w = (math.ceil(n / self.scale) for n in self.grid.shape)
            out = out[:, :h, :w]
        return out
