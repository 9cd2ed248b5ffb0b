"""Tile grids and taper-weighted stitching."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from helpers import cut_tiles, pad_frame

from napari_colorize.architectures import COLORNET_V1

TILE_SIZE = COLORNET_V1.tile_size
OUTPUT_STRIDE = COLORNET_V1.output_stride
from napari_colorize.tiling import Stitcher, TileGrid, taper, tile_starts, window_sides, window_step

SHAPES = [
    (1, 1),
    (1, 300),
    (300, 1),
    (1, 1000),
    (17, 9),
    (101, 57),
    (223, 223),
    (224, 224),
    (225, 225),
    (224, 449),
    (1000, 37),
    (37, 1000),
    (301, 450),
]


def check_starts(starts, length, *, tile, overlap, align):
    assert starts[0] == 0
    assert starts[-1] == length - tile
    assert all(s % align == 0 for s in starts)
    gaps = np.diff(starts)
    assert np.all(gaps > 0), f"duplicate or unsorted starts {starts}"
    # the tiles cover the axis, and neighbours overlap by at least `overlap`
    # (aligned starts cannot be closer than `align`)
    if len(starts) > 1:
        assert tile - gaps.max() >= min(overlap, tile - align), (starts, overlap)
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + tile] = True
    assert covered.all()
    # no more tiles than needed: dropping one tile would leave a gap too wide
    if len(starts) > 2:
        stride = max(align, (tile - overlap) // align * align)
        assert len(starts) == math.ceil((length - tile) / stride) + 1


def test_tile_starts_examples():
    assert tile_starts(500, tile=224, overlap=32, align=4) == [0, 136, 276]
    assert tile_starts(224, tile=224, overlap=32, align=4) == [0]
    assert tile_starts(228, tile=224, overlap=32, align=4) == [0, 4]
    assert tile_starts(416, tile=224, overlap=32, align=4) == [0, 192]
    assert tile_starts(10, tile=4, overlap=0) == [0, 3, 6]


@pytest.mark.parametrize("overlap", [0, 1, 30, 32, 33, 63, 100, 190, 220, 223])
@pytest.mark.parametrize("align", [1, 4])
def test_tile_starts_overlap_and_alignment(overlap, align):
    for length in list(range(224, 700, align)) + [1000, 2048, 4096 + align]:
        starts = tile_starts(length, tile=224, overlap=overlap, align=align)
        check_starts(starts, length, tile=224, overlap=overlap, align=align)


@settings(max_examples=300, deadline=None)
@given(
    align=st.sampled_from([1, 2, 4, 8]),
    tile_units=st.integers(1, 64),
    extra_units=st.integers(0, 400),
    overlap_fraction=st.floats(0, 0.999),
)
def test_tile_starts_property(align, tile_units, extra_units, overlap_fraction):
    tile = tile_units * align
    length = tile + extra_units * align
    overlap = min(tile - 1, int(overlap_fraction * tile))
    check_starts(tile_starts(length, tile=tile, overlap=overlap, align=align), length, tile=tile, overlap=overlap, align=align)


def test_tile_starts_rejects_bad_arguments():
    with pytest.raises(ValueError, match="shorter than the tile"):
        tile_starts(100, tile=224, overlap=32)
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(500, tile=224, overlap=224)
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(500, tile=224, overlap=-1)


@pytest.mark.parametrize("shape", SHAPES)
def test_grid_padding(shape):
    grid = TileGrid.for_shape(shape, tile=TILE_SIZE, overlap=32, align=OUTPUT_STRIDE)
    assert grid.shape == shape
    for n, p in zip(shape, grid.padded_shape):
        assert p >= max(n, TILE_SIZE) and p % OUTPUT_STRIDE == 0 and p - max(n, TILE_SIZE) < OUTPUT_STRIDE
    assert len(grid) == len(grid.origins) == len(grid.starts_y) * len(grid.starts_x)
    frame = np.random.default_rng(0).random(shape).astype(np.float32)
    padded = pad_frame(grid, frame)
    assert padded.shape == grid.padded_shape
    np.testing.assert_array_equal(padded[: shape[0], : shape[1]], frame)
    tiles = cut_tiles(grid, padded, grid.origins)
    assert tiles.shape == (len(grid), TILE_SIZE, TILE_SIZE)


def test_pad_mirrors_and_extends_lines():
    grid = TileGrid.for_shape((3, 5), tile=8, overlap=2)
    frame = np.arange(15, dtype=np.float32).reshape(3, 5)
    padded = pad_frame(grid, frame)
    # symmetric: the row after the last repeats it, then the one before
    np.testing.assert_array_equal(padded[3, :5], frame[2])
    np.testing.assert_array_equal(padded[4, :5], frame[1])
    np.testing.assert_array_equal(padded[:3, 5], frame[:, 4])
    np.testing.assert_array_equal(padded[:3, 6], frame[:, 3])
    line = np.arange(5, dtype=np.float32)[None]
    padded = pad_frame(TileGrid.for_shape((1, 5), tile=8, overlap=2), line)
    np.testing.assert_array_equal(padded, np.broadcast_to(np.r_[line[0], [4, 4, 4]], (8, 8)))
    # a frame already of the padded size is returned as is
    grid = TileGrid.for_shape((8, 8), tile=8, overlap=2)
    frame = np.ones((8, 8))
    assert pad_frame(grid, frame) is frame


def test_grid_rejects_bad_shapes():
    for shape in [(0, 5), (5, 0), (5,), (2, 3, 4)]:
        with pytest.raises(ValueError, match="2D"):
            TileGrid.for_shape(shape, tile=224, overlap=32)
    with pytest.raises(ValueError, match="multiple of align"):
        TileGrid.for_shape((300, 300), tile=225, overlap=32, align=4)


def test_taper():
    w = taper(56, 8)
    assert w.dtype == np.float32 and w.shape == (56,)
    assert (w > 0).all() and w.max() == 1.0
    np.testing.assert_array_equal(w, w[::-1])
    np.testing.assert_array_equal(w[8:-8], 1.0)
    assert np.all(np.diff(w[:9]) > 0)
    np.testing.assert_array_equal(taper(10, 0), np.ones(10))


def downsample(tile, scale):
    if scale == 1:
        return tile
    h, w = tile.shape[-2] // scale, tile.shape[-1] // scale
    return tile.reshape(*tile.shape[:-2], h, scale, w, scale).mean(axis=(-3, -1))


def stitch_copy(frame, *, overlap, scale, channels=1, torch_backend=False, align=OUTPUT_STRIDE, tile_size=TILE_SIZE):
    """Stitch a 'prediction' that copies (a downsample of) each input tile
    (``tile_size``: a side, or (height, width))."""
    grid = TileGrid.for_shape(frame.shape, tile=tile_size, overlap=overlap, align=align)
    padded = pad_frame(grid, frame)
    like = torch.empty(0) if torch_backend else None
    stitcher = Stitcher(grid, channels=channels, scale=scale, like=like)
    th, tw = grid.tile
    for y, x in grid.origins:
        tile = np.stack([padded[y : y + th, x : x + tw] * (c + 1) for c in range(channels)])
        prediction = downsample(tile, scale)
        stitcher.add(torch.from_numpy(prediction) if torch_backend else prediction, y, x)
    result = stitcher.result()
    if torch_backend:
        result = result.numpy()
    expected = downsample(padded, scale)[: math.ceil(frame.shape[0] / scale), : math.ceil(frame.shape[1] / scale)]
    expected = np.stack([expected * (c + 1) for c in range(channels)])
    return result, expected, stitcher


@pytest.mark.parametrize(("scale", "align"), [(1, 1), (1, 4), (4, 4)])
@pytest.mark.parametrize("shape", SHAPES)
def test_stitching_a_copy_reproduces_the_input(shape, scale, align):
    frame = np.random.default_rng(sum(shape)).random(shape).astype(np.float32)
    result, expected, _ = stitch_copy(frame, overlap=32, scale=scale, channels=2, align=align)
    assert result.shape == expected.shape == (2, math.ceil(shape[0] / scale), math.ceil(shape[1] / scale))
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)
    if scale == 1:
        np.testing.assert_allclose(result[0], frame, rtol=1e-5, atol=1e-6)


def test_stitching_with_torch_and_uncropped():
    frame = np.random.default_rng(1).random((300, 250)).astype(np.float32)
    result, expected, stitcher = stitch_copy(frame, overlap=32, scale=4, torch_backend=True)
    assert isinstance(stitcher.result(), torch.Tensor)
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)
    full = stitcher.result(crop=False)
    assert tuple(full.shape) == (1, *(n // 4 for n in stitcher.grid.padded_shape))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    height=st.integers(1, 520),
    width=st.integers(1, 520),
    overlap=st.integers(0, 120),
    scale=st.sampled_from([1, 4]),
)
def test_stitching_property(height, width, overlap, scale):
    frame = np.random.default_rng(height * 1000 + width).random((height, width)).astype(np.float32)
    result, expected, _ = stitch_copy(frame, overlap=overlap, scale=scale)
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    height=st.integers(1, 300),
    width=st.integers(1, 300),
    tile_units=st.integers(2, 24),  # tiles of at least 2 x align: see TileGrid.tiles
    overlap_fraction=st.floats(0, 0.95),
    scale=st.sampled_from([1, 2, 4]),
    backend=st.sampled_from(["numpy", "torch"]),
)
def test_stitching_property_across_tile_sizes(height, width, tile_units, overlap_fraction, scale, backend):
    """Any shape, tile size (a multiple of the output stride) and overlap:
    tiles read piece by piece equal tiles cut from the padded frame, and
    stitching copies of them gives back the frame, with every pixel weighted."""
    tile_size = 4 * tile_units
    overlap = int(overlap_fraction * tile_size)
    frame = np.random.default_rng(height * 1000 + width).random((height, width)).astype(np.float32)
    grid = TileGrid.for_shape(frame.shape, tile=tile_size, overlap=overlap, align=4)
    np.testing.assert_array_equal(grid.tiles(frame, grid.origins), cut_tiles(grid, pad_frame(grid, frame), grid.origins))
    result, expected, stitcher = stitch_copy(
        frame, overlap=overlap, scale=scale, tile_size=tile_size, align=4, torch_backend=backend == "torch", channels=2
    )
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)
    assert float(stitcher._weight.min()) > 0
    if scale == 1:
        np.testing.assert_allclose(result[0], frame, rtol=1e-5, atol=1e-6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    height=st.integers(1, 2600),
    width=st.integers(1, 2600),
    window=st.sampled_from([0, 224, 256, 300, 512, 1024]),
    overlap=st.sampled_from([0, 32, 96]),
)
def test_windows_cover_a_frame_with_the_fewest_windows(height, width, window, overlap):
    """Windows are at least the model's tile and at most the window, multiples
    of the tile's power-of-two factor (32 for 224), as few per axis as can
    cover it with the overlap, and stitch back to the frame."""
    sides = window_sides((height, width), tile=TILE_SIZE, window=window, overlap=overlap, align=OUTPUT_STRIDE)
    step = window_step(TILE_SIZE, OUTPUT_STRIDE)
    assert step == 32
    grid = TileGrid.for_shape((height, width), tile=sides, overlap=overlap, align=OUTPUT_STRIDE)
    for side, length, starts in zip(sides, (height, width), (grid.starts_y, grid.starts_x)):
        if window <= TILE_SIZE:
            assert side == TILE_SIZE
            continue
        assert TILE_SIZE <= side <= max(TILE_SIZE, window) and side % step == 0
        largest = max(TILE_SIZE, window // step * step)
        fewest = 1 if length <= largest else math.ceil((length - overlap) / (largest - overlap))
        assert len(starts) == fewest
    if height * width <= 400_000:
        frame = np.random.default_rng(height + width).random((height, width)).astype(np.float32)
        result, expected, _ = stitch_copy(frame, overlap=overlap, scale=4, tile_size=sides, align=OUTPUT_STRIDE)
        np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)


def test_windows_waste_less_than_tiles():
    """A 4096² frame: 25 windows of 864 (11 percent more pixels than the frame)
    against 484 tiles of 224 (45 percent more)."""
    windows = TileGrid.for_shape((4096, 4096), tile=window_sides((4096, 4096), tile=224, window=1024, overlap=32, align=4), overlap=32, align=4)
    tiles = TileGrid.for_shape((4096, 4096), tile=224, overlap=32, align=4)
    assert (len(windows), windows.tile, len(tiles)) == (25, (864, 864), 484)
    assert len(windows) * 864**2 / 4096**2 < 1.12
    assert len(tiles) * 224**2 / 4096**2 > 1.4


def test_stitching_blends_overlaps():
    """Tiles predicting different constants: pure values where one tile covers,
    a blend that moves monotonically from one to the other across the overlap."""
    grid = TileGrid.for_shape((224, 416), tile=224, overlap=32, align=4)
    assert grid.starts_x == (0, 192)
    stitcher = Stitcher(grid, channels=1, scale=1)
    stitcher.add(np.zeros((1, 224, 224), np.float32), 0, 0)
    stitcher.add(np.ones((1, 224, 224), np.float32), 0, 192)
    row = stitcher.result()[0, 100]
    np.testing.assert_array_equal(row[:192], 0.0)
    np.testing.assert_array_equal(row[224:], 1.0)
    blend = row[192:224]
    assert np.all(np.diff(blend) > 0) and 0 < blend[0] < 0.1 and 0.9 < blend[-1] < 1
    np.testing.assert_allclose(blend + blend[::-1], 1.0, atol=1e-6)  # symmetric ramp
    # a linear cross-fade over the whole overlap
    np.testing.assert_allclose(blend, (np.arange(32) + 0.5) / 32, atol=1e-6)

    # the same at the model's output stride: the overlap is 8 output pixels
    stitcher = Stitcher(grid, channels=1, scale=4)
    stitcher.add(np.zeros((1, 56, 56), np.float32), 0, 0)
    stitcher.add(np.ones((1, 56, 56), np.float32), 0, 192)
    row = stitcher.result()[0, 20]
    assert row.shape == (104,)
    np.testing.assert_array_equal(row[:48], 0.0)
    np.testing.assert_array_equal(row[56:], 1.0)
    np.testing.assert_allclose(row[48:56], (np.arange(8) + 0.5) / 8, atol=1e-6)


def test_stitcher_rejects_bad_scale():
    grid = TileGrid.for_shape((300, 300), tile=224, overlap=32, align=4)
    with pytest.raises(ValueError, match="multiples of the scale"):
        Stitcher(grid, channels=2, scale=3)
    with pytest.raises(ValueError, match="multiples of the scale"):
        Stitcher(grid, channels=2, scale=8)
