"""TIFF to TIFF through the command line streams frame by frame and strip by
strip into a tiled TIFF. Frames here are larger than 600 x 700, so each one is
written as several strips of several tiles, the last strip and the last
column of tiles partial: the file must hold exactly what ``colorize()`` gives
for the same array and options."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from helpers import smooth_frame

from napari_colorize import colorize
from napari_colorize.cli import main

SHAPE = (2, 610, 730)  # neither side a multiple of 4, of 224 or of 256


@pytest.fixture(scope="module")
def large_stack(tmp_path_factory):
    """Two uint16 frames of different brightness (so 'stack' and 'frame'
    normalisation differ), written page by page, uncompressed."""
    frames = [smooth_frame(SHAPE[1:], seed=s, low=100 + 900 * s, high=30000 + 20000 * s) for s in range(SHAPE[0])]
    stack = np.stack(frames).round().astype(np.uint16)
    path = tmp_path_factory.mktemp("large") / "large stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    return path, stack


@pytest.mark.parametrize(
    ("options", "library"),
    [
        ([], {}),
        (["--scale", "0.5"], {"scale": 0.5}),
        (["--normalize", "stack"], {"normalize": "stack"}),
    ],
    ids=["scale-1", "scale-0.5", "normalize-stack"],
)
def test_large_frames_stream_to_exactly_the_library_result(capsys, tmp_path, natural, large_stack, options, library):
    src, stack = large_stack
    dst = tmp_path / "out.tif"
    code = main(["colorize", str(src), "-o", str(dst), "--model", "natural", "--device", "cpu", "-q", *options])
    err = capsys.readouterr().err
    assert code == 0, err

    with tifffile.TiffFile(dst) as tif:
        page = tif.pages[0]
        # the streamed (tiled) writer ran, with more than one tile per row and per column
        assert page.is_tiled and page.tilewidth < SHAPE[2] and page.tilelength < SHAPE[1]
        assert len(tif.pages) == SHAPE[0]
        rgb = tif.series[0].asarray()
        description = json.loads(page.description)
    assert rgb.shape == (*SHAPE, 3) and rgb.dtype == np.uint8
    assert description["napari_colorize"]["model"] == "natural"
    assert not list(tmp_path.glob(".*partial*"))

    expected = colorize(stack, model=natural, device="cpu", **library)
    assert np.array_equal(rgb, expected), f"{np.count_nonzero((rgb != expected).any(-1))} pixels differ"
    # not trivially equal: the frames are coloured and differ from each other
    assert rgb.std(axis=-1).mean() > 1 and not np.array_equal(rgb[0], rgb[1])


def test_stack_normalisation_changes_the_streamed_result(tmp_path, natural, large_stack):
    """'stack' uses one range for both frames: the darker first frame comes out
    darker than with per-frame ranges (guards the parametrised test above
    against options that are silently dropped on the streamed path)."""
    src, _ = large_stack
    results = {}
    for mode in ("frame", "stack"):
        dst = tmp_path / f"{mode}.tif"
        assert main(["colorize", str(src), "-o", str(dst), "--device", "cpu", "-q", "--normalize", mode, "--scale", "0.5"]) == 0
        results[mode] = tifffile.imread(dst)
    assert results["stack"][0].mean() < results["frame"][0].mean() - 5


def test_cli_streams_tiff_to_the_same_result(tmp_path, stack, reference):
    src, dst = tmp_path / "in.tif", tmp_path / "out.tif"
    tifffile.imwrite(src, stack, compression="zlib", photometric="minisblack")
    assert main(["colorize", str(src), "-o", str(dst), "--device", "cpu", "-q", "--model", "natural"]) == 0
    np.testing.assert_array_equal(tifffile.imread(dst), reference)
    np.testing.assert_array_equal(tifffile.imread(src), stack)  # input untouched
