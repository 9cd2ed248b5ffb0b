"""Compressed TIFFs of every common codec read (imagecodecs), through the
library and the streaming command line, strips and tiles; frames with no
finite pixel are named in a warning."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from helpers import run

from napari_colorize import colorize
from napari_colorize.io import read_image

pytest.importorskip("imagecodecs")

RNG = np.random.default_rng(0)
STACK8 = (RNG.random((2, 48, 64)) * 255).astype(np.uint8)
STACK16 = (RNG.random((2, 48, 64)) * 60000).astype(np.uint16)
# (codec, data, lossless, writer options)
CODECS = [
    ("lzw", STACK16, True, {}),
    ("jpeg", STACK8, False, {}),
    ("zstd", STACK16, True, {}),
    ("lzma", STACK16, True, {}),
    ("deflate", STACK16, True, {"predictor": True}),
    ("jpeg2000", STACK8, True, {}),
    ("jpegxl", STACK8, True, {}),
    ("packbits", STACK8, True, {}),
]


@pytest.mark.parametrize("tiled", [False, True], ids=["strips", "tiles"])
@pytest.mark.parametrize(("codec", "data", "lossless", "options"), CODECS, ids=[c[0] for c in CODECS])
def test_compressed_tiffs_read_and_stream(capsys, tmp_path, codec, data, lossless, options, tiled):
    src = tmp_path / f"{codec}.tif"
    tifffile.imwrite(src, data, compression=codec, photometric="minisblack", tile=(32, 32) if tiled else None, **options)
    image = read_image(src)
    assert image.shape == data.shape and image.dtype == data.dtype
    if lossless:
        np.testing.assert_array_equal(image, data)
    else:
        assert np.abs(image.astype(float) - data).mean() < 4
    dst = tmp_path / "out.tif"
    code, _, err = run(capsys, "colorize", src, "-o", dst, "--device", "cpu", "-q")
    assert code == 0, err
    np.testing.assert_array_equal(tifffile.imread(dst), colorize(image, device="cpu"))


def test_a_webp_colour_tiff_reads_as_its_luminance(capsys, tmp_path):
    rgb = (RNG.random((48, 64, 3)) * 255).astype(np.uint8)
    src = tmp_path / "webp.tif"
    tifffile.imwrite(src, rgb, compression="webp", photometric="rgb")
    code, _, err = run(capsys, "colorize", src, "-o", tmp_path / "out.tif", "--device", "cpu", "-q")
    assert code == 0, err
    assert "colour image: colorizing its luminance" in err
    assert tifffile.imread(tmp_path / "out.tif").shape == (48, 64, 3)


def test_a_frame_with_no_finite_pixel_is_named(capsys, tmp_path):
    stack = RNG.random((3, 40, 48)).astype(np.float32)
    stack[1] = np.nan
    with pytest.warns(UserWarning, match=r"frame 1 has no finite pixel \(all NaN or infinite\): its result is black"):
        rgb = colorize(stack, device="cpu")
    assert rgb[1].max() == 0 and rgb[0].max() > 0
    src = tmp_path / "nan.tif"
    tifffile.imwrite(src, stack, photometric="minisblack")
    code, _, err = run(capsys, "colorize", src, "-o", tmp_path / "out.tif", "--device", "cpu", "-q")
    assert code == 0 and "napari-colorize: warning: frame 1 has no finite pixel" in err
