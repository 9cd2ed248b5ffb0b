"""Strict TIFF reading (``read_image`` of a TIFF, ``TiffStack``): cut,
damaged and unusual TIFFs are read as exactly their data or refused with one
clear line, also through the command line; never fewer frames, zeros for
missing data, a modified input or a half-written output."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from helpers import STACK, assert_one_line_error, assert_refused, cli, make_color_image, run, write_tiff
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from napari_colorize import colorize
from napari_colorize.formats import ImageFileError
from napari_colorize.io import read_image
from napari_colorize.model import load_checkpoint
from napari_colorize.tiff import TiffStack

# --------------------------------------------------------------------------
# truncated and corrupted TIFFs
# --------------------------------------------------------------------------
VARIANTS = {
    "plain": (STACK[0], {}),
    "zlib": (STACK[0], {"compression": "zlib"}),
    "tiled": (STACK[0], {"tile": (16, 16)}),
    "stack": (STACK, {}),
    "stack-zlib": (STACK, {"compression": "zlib"}),
    "stack-strips": (STACK, {"compression": "zlib", "rowsperstrip": 8}),
    "stack-tiled": (STACK, {"tile": (16, 16)}),
    "imagej": (STACK, {"imagej": True}),
    "bigtiff-big-endian": (STACK.astype(">u2"), {"bigtiff": True, "byteorder": ">"}),
}


def _read_lazily(path):
    with TiffStack(path) as lazy:
        frames = [lazy[index] for index in np.ndindex(*lazy.shape[:-2])]
        return np.stack(frames).reshape(lazy.shape)


@pytest.mark.parametrize("variant", VARIANTS)
def test_truncated_tiff_is_refused_or_exact(tmp_path, variant):
    """Cut anywhere, a TIFF reads as exactly its data or raises ImageFileError:
    never fewer frames, never zeros for the missing part."""
    data, options = VARIANTS[variant]
    raw = write_tiff(tmp_path / "full.tif", data, **options).read_bytes()
    path = tmp_path / "cut.tif"
    refused = 0
    for length in sorted({*range(0, len(raw), max(1, len(raw) // 60)), len(raw) - 1}):
        path.write_bytes(raw[:length])
        for reader in (read_image, _read_lazily):
            try:
                result = reader(path)
            except ImageFileError as exc:
                assert "cut.tif" in str(exc) and "\n" not in str(exc)
                refused += 1
            else:
                np.testing.assert_array_equal(result, data, err_msg=f"{variant} cut at {length} of {len(raw)} ({reader.__name__})")
    assert refused > 0


@pytest.mark.parametrize("variant", ["stack-zlib", "stack-tiled", "tiled", "imagej"])
@pytest.mark.parametrize("out", ["out.tif", "out.png"])
def test_truncated_stack_is_not_colorized(tmp_path, tiny_file, variant, out):
    """These cuts used to give exit 0 and 1 frame, or a frame with black tiles."""
    data, options = VARIANTS[variant]
    src = write_tiff(tmp_path / "in.tif", data, **options)
    raw = src.read_bytes()
    src.write_bytes(raw[: len(raw) // 2])
    before = src.read_bytes()
    code, err = cli(tiny_file, src, tmp_path / out)
    assert_refused(code, err, "in.tif", output=tmp_path / out)
    assert "TIFF" in err
    assert src.read_bytes() == before


def test_missing_strips_are_refused(tmp_path, tiny_file):
    """Strip byte counts of 0 (an interrupted writer): not read as zeros."""
    src = write_tiff(tmp_path / "in.tif", STACK[0], rowsperstrip=8)
    with tifffile.TiffFile(src, mode="r+") as tif:
        counts = list(tif.pages[0].tags["StripByteCounts"].value)
        counts[-1] = 0
        tif.pages[0].tags["StripByteCounts"].overwrite(counts)
    with pytest.raises(ImageFileError, match="missing pixel data"):
        read_image(src)
    code, err = cli(tiny_file, src, tmp_path / "out.tif")
    assert_refused(code, err, "in.tif", "missing pixel data", output=tmp_path / "out.tif")


def test_zero_size_tiff(tmp_path, tiny_file):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = write_tiff(tmp_path / "empty.tif", np.zeros((0, 50), np.uint16))
    for out in ("out.tif", "out.png"):
        code, err = cli(tiny_file, src, tmp_path / out)
        assert_refused(code, err, "empty.tif", "empty", output=tmp_path / out)


def test_tifffile_logging_settings_do_not_hide_corruption(tmp_path):
    import logging

    data, options = VARIANTS["stack-zlib"]
    src = write_tiff(tmp_path / "in.tif", data, **options)
    src.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    log = logging.getLogger("tifffile")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        with pytest.raises(ImageFileError, match="corrupted or truncated"):
            read_image(src)
    finally:
        log.setLevel(level)
    assert log.level == level and log.propagate


# --------------------------------------------------------------------------
# unusual but valid TIFFs
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        STACK[0].astype(np.float16),
        (STACK[0].astype(np.int32) - 2000).astype(np.int8),
        STACK[0].astype(np.int32) * 1000,
        STACK[0].astype(np.int64) * 10**12,
        STACK[0] / 7.0,
        STACK[0] > 2000,
        STACK[0].astype(">f8"),
    ],
    ids=["float16", "int8", "int32", "int64", "float64", "bool", "big-endian-f8"],
)
def test_tiff_dtypes(tmp_path, tiny_file, data):
    options = {"byteorder": ">"} if data.dtype.byteorder == ">" else {}
    src = write_tiff(tmp_path / "in.tif", data, **options)
    expected = colorize(data, model=load_checkpoint(tiny_file), device="cpu")
    for out in ("out.tif", "out.png"):
        code, err = cli(tiny_file, src, tmp_path / out)
        assert code == 0, err
        result = tifffile.imread(tmp_path / out) if out.endswith(".tif") else np.asarray(Image.open(tmp_path / out))
        np.testing.assert_array_equal(result, expected)


def test_complex_tiff_is_refused(tmp_path, tiny_file):
    src = write_tiff(tmp_path / "in.tif", STACK[0].astype(np.complex64))
    for out in ("out.tif", "out.png"):
        code, err = cli(tiny_file, src, tmp_path / out)
        assert_refused(code, err, "complex", output=tmp_path / out)


def test_samples_that_are_not_colour_become_frames(tmp_path, tiny_file):
    """2 samples per pixel are 2 channels, not 40 frames of 50 x 2 pixels."""
    data = np.stack([STACK[0], STACK[1]], axis=-1)  # (40, 50, 2)
    src = write_tiff(tmp_path / "two.tif", data, planarconfig="contig")
    np.testing.assert_array_equal(read_image(src), np.moveaxis(data, -1, 0))
    code, err = cli(tiny_file, src, tmp_path / "out.tif")
    assert code == 0, err
    expected = colorize(np.moveaxis(data, -1, 0), model=load_checkpoint(tiny_file), device="cpu")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), expected)


def test_gray_stack_with_three_columns_is_not_rgb(tmp_path, tiny_file):
    """6 grayscale pages of 40 x 3: the streamed run used to crash
    (RuntimeError from the TIFF writer), the other took them as RGB."""
    data = STACK[:, :6, :3].transpose(1, 2, 0).reshape(6, 3, 3).repeat(14, axis=1)[:, :40]
    src = write_tiff(tmp_path / "narrow.tif", data)
    code, err = cli(tiny_file, src, tmp_path / "out.tif")
    assert code == 0, err
    expected = colorize(data, model=load_checkpoint(tiny_file), device="cpu", rgb=False)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), expected)


def test_min_is_white_and_palette_tiffs(tmp_path):
    frame = STACK[0].astype(np.uint8)
    white = write_tiff(tmp_path / "white.tif", frame, photometric="miniswhite")
    np.testing.assert_array_equal(read_image(white), 255 - frame)  # larger is brighter
    with TiffStack(white) as lazy:
        np.testing.assert_array_equal(lazy[()], 255 - frame)
    colormap = np.stack([np.arange(256) * 256, np.zeros(256), 65535 - np.arange(256) * 256]).astype(np.uint16)
    palette = write_tiff(tmp_path / "palette.tif", frame, photometric="palette", colormap=colormap)
    with pytest.warns(UserWarning, match="palette"):
        values = read_image(palette)
    lut = colormap.T.astype(np.float32) @ np.array([0.2125, 0.7154, 0.0721], np.float32)
    np.testing.assert_allclose(values, lut[frame], rtol=1e-6)


def test_multi_series_tiff_warns(tmp_path, tiny_file):
    src = tmp_path / "two_series.tif"
    with tifffile.TiffWriter(src) as writer:
        writer.write(STACK[0], photometric="minisblack")
        writer.write(STACK[:, :20, :30], photometric="minisblack")
    with pytest.warns(UserWarning, match="2 images"):
        np.testing.assert_array_equal(read_image(src), STACK[0])


def test_planar_colour_tiff_is_not_a_stack_of_planes(capsys, tmp_path):
    """A planar RGB TIFF (axes SYX) is one colour picture: colorize its
    luminance, or refuse it clearly; never treat R, G and B as three frames."""
    rgb = np.asarray(make_color_image(48))
    src = tmp_path / "planar.tif"
    tifffile.imwrite(src, np.moveaxis(rgb, -1, 0).copy(), photometric="rgb", planarconfig="separate")
    dst = tmp_path / "out.tif"
    with warnings.catch_warnings(record=True):  # the colour-image warning, if it is read
        code, _, err = run(capsys, "colorize", src, "-o", dst, "--device", "cpu", "-q")
    if code == 0:
        assert tifffile.imread(dst).shape == (48, 48, 3)
    else:
        assert code == 2
        assert_one_line_error(err, "planar")
        assert not dst.exists()


def test_four_dimensional_tiff(capsys, tmp_path):
    data = np.random.default_rng(3).integers(0, 4000, (2, 3, 24, 20)).astype(np.uint16)
    src = tmp_path / "tzyx.tif"
    tifffile.imwrite(src, data, photometric="minisblack")
    code, _, err = run(capsys, "colorize", src, "-o", tmp_path / "out.tif", "--device", "cpu", "-q")
    assert code == 0, err
    out = tifffile.imread(tmp_path / "out.tif")
    assert out.shape == (2, 3, 24, 20, 3)
    np.testing.assert_array_equal(out, colorize(data, device="cpu"))  # the default model


# --------------------------------------------------------------------------
# TiffStack: a page, a plane at a time
# --------------------------------------------------------------------------
def test_tiff_stack_reads_one_page_at_a_time(tmp_path, stack):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    with TiffStack(path) as lazy:
        assert lazy.shape == stack.shape and lazy.dtype == stack.dtype
        np.testing.assert_array_equal(lazy[(2,)], stack[2])
        np.testing.assert_array_equal(np.asarray(lazy), stack)


def test_planar_rgb_tiff_is_read_as_luminance(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (3, 40, 50), dtype=np.uint8)
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, rgb, photometric="rgb", planarconfig="separate")
    with TiffStack(path) as lazy:
        assert lazy.is_colour and lazy.shape == (40, 50)
        expected = rgb.transpose(1, 2, 0).astype(np.float32) @ np.array([0.2125, 0.7154, 0.0721], np.float32)
        np.testing.assert_allclose(lazy[()], expected, rtol=1e-5)


# --------------------------------------------------------------------------
# hypothesis: cut or damaged TIFFs through the command line
# --------------------------------------------------------------------------
def _check_run(tiny_file, raw: bytes, shape) -> None:
    """Colorize ``raw`` (a damaged TIFF of ``shape``): either every frame
    comes back, whole, or the file is refused in one line and nothing is left."""
    with tempfile.TemporaryDirectory() as folder:
        src, dst = Path(folder) / "in.tif", Path(folder) / "out.tif"
        src.write_bytes(raw)
        code, err = cli(tiny_file, src, dst)
        assert src.read_bytes() == raw
        if code == 0:
            with tifffile.TiffFile(dst) as tif:
                assert tif.series[0].shape == (*shape, 3), "not every frame came back"
                assert tif.series[0].asarray().shape == (*shape, 3)
        else:
            assert_refused(code, err, "in.tif", output=dst)
        assert sorted(p.name for p in Path(folder).iterdir()) == (["in.tif", "out.tif"] if code == 0 else ["in.tif"])


DAMAGE_SETTINGS = settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


FUZZED = STACK[:2]  # the stack the fuzzers cut and damage


@pytest.fixture(scope="module")
def small_tiffs():
    out = {}
    for name, options in {"plain": {}, "zlib": {"compression": "zlib"}}.items():
        with tempfile.TemporaryDirectory() as folder:
            out[name] = write_tiff(Path(folder) / "x.tif", FUZZED, **options).read_bytes()
    return out


@DAMAGE_SETTINGS
@given(kind=st.sampled_from(["plain", "zlib"]), fraction=st.floats(0, 1, exclude_max=True))
def test_cut_tiff_through_the_cli(tiny_file, small_tiffs, kind, fraction):
    raw = small_tiffs[kind]
    _check_run(tiny_file, raw[: int(fraction * len(raw))], FUZZED.shape)


@DAMAGE_SETTINGS
@given(kind=st.sampled_from(["plain", "zlib"]), data=st.data())
def test_damaged_tiff_through_the_cli(tiny_file, small_tiffs, kind, data):
    raw = bytearray(small_tiffs[kind])
    # mostly the header and IFDs, where a flipped byte changes meaning
    positions = data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=4))
    for position in positions:
        raw[position] ^= data.draw(st.integers(1, 255))
    _check_run(tiny_file, bytes(raw), FUZZED.shape)
