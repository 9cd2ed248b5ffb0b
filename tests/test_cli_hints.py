"""``napari-colorize colorize --hints HINTS.csv``: colour hints from a file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from helpers import assert_refused, run, smooth_frame, write_tiff

from napari_colorize import colorize
from napari_colorize.color import rgb_to_lab
from napari_colorize.hints import read_hints_csv

#: A saturated blue, far from any colour the model gives the gray test frames.
BLUE = (40, 60, 220)


def write_csv(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_hints_from_a_file_colour_their_neighbourhood_and_are_recorded(capsys, tmp_path, gray_png, default_model):
    src, frame = gray_png
    hints = write_csv(tmp_path / "hints.csv", "x,y,r,g,b\n20,30,{},{},{}\n".format(*BLUE))
    dst = tmp_path / "out.tif"
    code, _, err = run(capsys, "colorize", src, "-o", dst, "--hints", hints, "--device", "cpu", "-q")
    assert code == 0, err
    with tifffile.TiffFile(dst) as tif:
        rgb = tif.asarray()
        record = json.loads(tif.pages[0].description)["napari_colorize"]
    assert record["hints_file"] == "hints.csv" and record["hints"] == [[0.0, 30.0, 20.0, *map(float, BLUE)]]
    # the same as the library with those rows (x and y taken by the header, not the order)
    np.testing.assert_array_equal(rgb, colorize(frame, model=default_model, device="cpu", hints=[(30, 20, *BLUE)]))
    automatic = colorize(frame, model=default_model, device="cpu")
    target = rgb_to_lab(np.array([[BLUE]], np.uint8))[0, 0, 1:]
    near = slice(26, 35), slice(16, 25)
    distance = {name: np.linalg.norm(rgb_to_lab(out)[near][..., 1:] - target, axis=-1).mean() for name, out in [("hinted", rgb), ("automatic", automatic)]}
    assert distance["hinted"] < distance["automatic"] - 10


def test_hint_reach_frame_is_taken_and_recorded(capsys, tmp_path, gray_png, default_model):
    src, frame = gray_png
    hints = write_csv(tmp_path / "hints.csv", "y,x,r,g,b\n30,20,{},{},{}\n".format(*BLUE))
    dst = tmp_path / "out.tif"
    code, _, err = run(capsys, "colorize", src, "-o", dst, "--hints", hints, "--hint-reach", "frame", "--device", "cpu", "-q")
    assert code == 0, err
    with tifffile.TiffFile(dst) as tif:
        rgb = tif.asarray()
        record = json.loads(tif.pages[0].description)["napari_colorize"]
    assert record["parameters"]["hint_reach"] == "frame"
    np.testing.assert_array_equal(rgb, colorize(frame, model=default_model, device="cpu", hints=[(30, 20, *BLUE)], hint_reach="frame"))
    assert not np.array_equal(rgb, colorize(frame, model=default_model, device="cpu", hints=[(30, 20, *BLUE)]))  # local, the default, differs


def test_a_stack_takes_hints_by_frame_and_needs_the_frame_column(capsys, tmp_path, default_model):
    stack = np.stack([smooth_frame((48, 56), seed=s, low=100, high=50000) for s in range(2)]).astype(np.uint16)
    src = write_tiff(tmp_path / "stack.tif", stack)
    with_frames = write_csv(tmp_path / "framed.csv", "frame,y,x,r,g,b\n1,10,12,{},{},{}\n".format(*BLUE))
    dst = tmp_path / "out.tif"
    code, _, err = run(capsys, "colorize", src, "-o", dst, "--hints", with_frames, "--device", "cpu", "-q")
    assert code == 0, err
    expected = colorize(stack, model=default_model, device="cpu", hints=[(1, 10, 12, *BLUE)])
    np.testing.assert_array_equal(tifffile.imread(dst), expected)
    # frame 0 has no hint: its automatic colours
    np.testing.assert_array_equal(expected[0], colorize(stack, model=default_model, device="cpu")[0])
    without = write_csv(tmp_path / "plain.csv", "y,x,r,g,b\n10,12,1,2,3\n")
    code, _, err = run(capsys, "colorize", src, "-o", tmp_path / "other.tif", "--hints", without, "--device", "cpu")
    assert_refused(code, err, "plain.csv has no frame column", "stack.tif has 2 frames", output=tmp_path / "other.tif")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "hints.csv is empty"),
        ("y,x,r,g\n1,2,3,4\n", "hints.csv line 1: the header must name the columns y,x,r,g,b (and optionally frame): missing b"),
        ("y,x,r,g,b,colour\n", "unknown colour"),
        ("y,x,r,g,b\n1,2,3,4,5\n1,2,3,4\n", "hints.csv line 3: 4 values for the 5 columns y,x,r,g,b"),
        ("y,x,r,g,b\n\n1,2,red,4,5\n", "hints.csv line 3: not all numbers: 1,2,red,4,5"),
        ("y,x,r,g,b\n1,2,3,4,5\n100,2,3,4,5\n", "hints.csv line 3: (y, x) = (100, 2) is outside the 50 x 64 frame"),
        ("y,x,r,g,b\n1,2,3,4,300\n", "hints.csv line 2: colour (3, 4, 300) is not r, g, b in 0..255"),
    ],
)
def test_bad_hint_files_are_refused_naming_the_line(capsys, tmp_path, gray_png, text, message):
    src, _ = gray_png
    hints = write_csv(tmp_path / "hints.csv", text)
    dst = tmp_path / "out.png"
    code, _, err = run(capsys, "colorize", src, "-o", dst, "--hints", hints, "--device", "cpu")
    assert_refused(code, err, message, output=dst)


def test_hints_are_refused_where_they_cannot_apply(capsys, tmp_path, gray_png):
    src, _ = gray_png
    hints = write_csv(tmp_path / "hints.csv", "y,x,r,g,b\n1,2,3,4,5\n")
    code, _, err = run(capsys, "colorize", src, "-o", tmp_path / "v1.png", "--hints", hints, "--model", "natural-v1", "--device", "cpu")
    assert_refused(code, err, "cannot use hints", output=tmp_path / "v1.png")
    code, _, err = run(capsys, "colorize", src, src, "-o", tmp_path / "many", "--hints", hints, "--device", "cpu")
    assert_refused(code, err, "give one INPUT")
    assert not (tmp_path / "many").exists()
    code, _, err = run(capsys, "colorize", src, "-o", tmp_path / "x.png", "--hints", tmp_path / "missing.csv", "--device", "cpu")
    assert_refused(code, err, "hints file not found")


def test_a_header_only_file_is_the_automatic_result(tmp_path):
    rows, names = read_hints_csv(write_csv(tmp_path / "h.csv", "\ufeffY, X, R, G, B\n"))
    assert rows.shape == (0, 5) and names == []
    frame = smooth_frame((40, 48), seed=1)
    np.testing.assert_array_equal(colorize(frame, device="cpu", hints=rows), colorize(frame, device="cpu"))
