"""``napari-colorize colorize --reference IMAGE``: a colour image's palette steers the result."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from helpers import assert_refused, run
from PIL import Image

from napari_colorize import colorize


@pytest.fixture
def reference_png(tmp_path):
    """A 40 x 60 colour PNG, half red, half blue, and its pixels."""
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, :30] = (210, 40, 40)
    rgb[:, 30:] = (40, 60, 220)
    path = tmp_path / "palette.png"
    Image.fromarray(rgb, "RGB").save(path)
    return path, rgb


def test_a_reference_file_steers_the_result_and_is_recorded(capsys, tmp_path, gray_png, reference_png, default_model):
    if "palette" not in default_model.input_names:
        pytest.skip("the default model takes no palette")
    src, frame = gray_png
    ref, rgb = reference_png
    dst = tmp_path / "out.tif"
    code, _, err = run(capsys, "colorize", src, "-o", dst, "--reference", ref, "--device", "cpu", "-q")
    assert code == 0, err
    with tifffile.TiffFile(dst) as tif:
        result = tif.asarray()
        record = json.loads(tif.pages[0].description)["napari_colorize"]
    assert record["reference_file"] == "palette.png"
    np.testing.assert_array_equal(result, colorize(frame, model=default_model, device="cpu", reference=rgb))
    assert not np.array_equal(result, colorize(frame, model=default_model, device="cpu"))
    assert Image.open(ref).tobytes() == rgb.tobytes()  # the reference is only read


def test_bad_references_are_refused_in_one_line_before_any_output(capsys, tmp_path, gray_png, reference_png):
    src, _ = gray_png
    ref, _ = reference_png
    dst = tmp_path / "out.png"
    cases = [
        (["--reference", tmp_path / "missing.png"], "reference image not found"),
        (["--reference", src], "is not a colour image"),
        (["--reference", ref, "--model", "natural-v1"], "takes no reference palette"),
    ]
    for extra, message in cases:
        code, _, err = run(capsys, "colorize", src, "-o", dst, *extra, "--device", "cpu")
        assert_refused(code, err, message, output=dst)
    # the reference is never the output, even with --overwrite
    code, _, err = run(capsys, "colorize", src, "-o", ref, "--reference", ref, "--overwrite", "--device", "cpu")
    assert_refused(code, err, "is the --reference image")
    assert Image.open(ref).mode == "RGB"
