"""Reading and writing image files (``io``, with ``formats`` telling what a
file is): files that are not images are refused in one line, files are read
by their content whatever their name, colour files give their luminance,
streamed writes leave nothing behind when interrupted, and colour references
are found and read for training."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from helpers import STACK, assert_one_line_error, assert_refused, cli, make_color_image, run, write_tiff
from PIL import Image

from napari_colorize import colorize
from napari_colorize.io import find_images, read_image, read_rgb, sample_pictures, write_rgb_tiff_strips


# --------------------------------------------------------------------------
# files that are not images, or not what their name says
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.tif", b"", "empty"),
        ("empty.png", b"", "empty"),
        ("noise.tif", bytes(range(256)) * 8, "not a TIFF, PNG, JPEG or FITS"),
        ("text.png", b"hello, I am not a picture", "not a TIFF, PNG, JPEG or FITS"),
        ("folder.tif", None, "folder"),
    ],
)
@pytest.mark.parametrize("out", ["out.tif", "out.png"])
def test_not_an_image(tmp_path, tiny_file, name, content, message, out):
    src = tmp_path / name
    src.mkdir() if content is None else src.write_bytes(content)
    code, err = cli(tiny_file, src, tmp_path / out)
    assert_refused(code, err, name, message, output=tmp_path / out)


def test_renamed_files_are_read_by_content(tmp_path, tiny_file):
    frame = STACK[0].astype(np.uint8)
    png_named_tif = tmp_path / "picture.tif"
    Image.fromarray(frame).save(png_named_tif, format="PNG")
    with pytest.warns(UserWarning, match="PNG file despite its .tif name"):
        np.testing.assert_array_equal(read_image(png_named_tif), frame)
    # a TIFF stack named .png keeps all its frames (PIL would read only one)
    tif_named_png = write_tiff(tmp_path / "stack.png", STACK)
    with pytest.warns(UserWarning, match="TIFF file despite"):
        np.testing.assert_array_equal(read_image(tif_named_png), STACK)
    code, err = cli(tiny_file, tif_named_png, tmp_path / "out.tif")
    assert code == 0, err
    assert tifffile.imread(tmp_path / "out.tif").shape == (3, 40, 50, 3)


def test_missing_and_corrupt_inputs(capsys, tmp_path):
    code, _, err = run(capsys, "colorize", tmp_path / "missing.tif", "-o", tmp_path / "out.tif", "--device", "cpu")
    assert code == 2
    assert_one_line_error(err, "missing.tif", "no such file")

    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    code, _, err = run(capsys, "colorize", corrupt, "-o", tmp_path / "out.tif", "--device", "cpu")
    assert code == 2
    assert_one_line_error(err, "corrupt.tif", "cannot read")

    truncated = tmp_path / "truncated.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64), dtype=np.uint8)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    code, _, err = run(capsys, "colorize", truncated, "-o", tmp_path / "out.tif", "--device", "cpu")
    assert code == 2
    assert_one_line_error(err, "truncated.png")

    unsupported = tmp_path / "image.bmp"
    unsupported.write_bytes(b"BM")
    code, _, err = run(capsys, "colorize", unsupported, "-o", tmp_path / "out.tif", "--device", "cpu")
    assert code == 2
    assert_one_line_error(err, "unsupported file type")
    assert not (tmp_path / "out.tif").exists()


@pytest.mark.parametrize("kind", ["png", "tiff-contiguous"])
def test_colour_input_is_reduced_to_luminance(capsys, tmp_path, kind):
    rgb = np.asarray(make_color_image(48))
    if kind == "png":
        src = tmp_path / "colour.png"
        Image.fromarray(rgb).save(src)
    else:
        src = tmp_path / "colour.tif"
        tifffile.imwrite(src, rgb, photometric="rgb")
    dst = tmp_path / "out.tif"
    code, _, err = run(capsys, "colorize", src, "-o", dst, "--device", "cpu", "-q")
    assert code == 0, err
    assert err.startswith("napari-colorize: warning: ") and "colour image" in err  # one line, no source location
    result = tifffile.imread(dst)
    assert result.shape == (48, 48, 3)
    # the luminance of the colour image was colorized: its lightness is kept
    luminance = rgb @ np.array([0.2125, 0.7154, 0.0721])
    expected = colorize(luminance, device="cpu")  # the default model
    assert np.abs(result.astype(int) - expected).max() <= 1  # float32 vs float64 luminance


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------
def test_interrupted_stream_leaves_no_file(tmp_path):
    def failing():
        yield (), 0, 256, np.zeros((256, 300, 3), np.uint8)
        raise KeyboardInterrupt

    dst = tmp_path / "out.tif"
    with pytest.raises(KeyboardInterrupt):
        write_rgb_tiff_strips(dst, (400, 300, 3), failing())
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------
# colour references, for training
# --------------------------------------------------------------------------
def test_find_images(training_folder, tmp_path):
    found = find_images([training_folder])
    assert found == sorted(found)
    names = [p.name for p in found]
    assert len(found) == 9 and "notes.txt" not in names and "gray_rgb.png" in names  # recursive
    assert find_images([training_folder, training_folder]) == found  # no duplicates
    other = tmp_path / "other"
    other.mkdir()
    make_color_image(32).save(other / "UPPER.PNG", format="PNG")  # suffixes in any case
    single = tmp_path / "single.jpg"
    make_color_image(32).save(single)
    assert find_images([other, single]) == [other / "UPPER.PNG", single]  # files are taken as given
    with pytest.raises(FileNotFoundError, match="not found"):
        find_images([tmp_path / "missing"])


def test_read_rgb(training_folder, tmp_path):
    rgb = read_rgb(training_folder / "colour_0.png")
    assert rgb.shape == (96, 96, 3) and rgb.dtype == np.uint8
    assert read_rgb(training_folder / "gray_0.png") is None
    assert read_rgb(training_folder / "broken.jpg") is None
    small = read_rgb(training_folder / "colour_0.png", max_side=40)
    assert max(small.shape[:2]) == 40 and small.shape[2] == 3
    rgba = tmp_path / "rgba.png"
    make_color_image(32).convert("RGBA").save(rgba)
    assert read_rgb(rgba).shape == (32, 32, 3)


def test_sample_pictures_spreads_over_the_folders_and_skips_what_has_no_colour(training_folder, tmp_path):
    every = list(sample_pictures([training_folder], limit=100))
    assert len(every) < len(find_images([training_folder]))  # the gray and broken files are skipped
    assert all(p.ndim == 3 and p.shape[2] == 3 and p.dtype == np.uint8 for p in every)
    assert len(list(sample_pictures([training_folder], limit=2))) <= 2
    assert max(max(p.shape[:2]) for p in sample_pictures([training_folder], limit=100, max_side=40)) <= 40
    with pytest.raises(ValueError, match="image folder not found"):
        sample_pictures([tmp_path / "missing"], limit=4)  # at once, not when first read
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no image files"):
        sample_pictures([empty], limit=4)
