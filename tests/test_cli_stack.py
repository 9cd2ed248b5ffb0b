"""``napari-colorize colorize A B C -o out.tif --stack``: same-sized 2-D
images colorized as one stack, in the order given."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from helpers import assert_refused, run, smooth_frame
from PIL import Image

from napari_colorize import colorize
from napari_colorize.io import read_image


@pytest.fixture
def pngs(tmp_path):
    paths = []
    for seed, name in [(1, "c.png"), (2, "a.png"), (3, "b.png")]:
        frame = smooth_frame((40, 56), seed=seed, low=0, high=255).round().astype(np.uint8)
        Image.fromarray(frame, "L").save(tmp_path / name)
        paths.append(tmp_path / name)
    return paths


def stacked(capsys, dst, pngs, *options):
    """Run ``colorize PNGS -o DST --stack OPTIONS``: the written stack and its provenance record."""
    code, _, err = run(capsys, "colorize", *pngs, "-o", dst, "--stack", *options, "--device", "cpu", "-q")
    assert code == 0, err
    with tifffile.TiffFile(dst) as tif:
        return tif.series[0].asarray(), json.loads(tif.pages[0].description)["napari_colorize"]


def test_inputs_become_one_stack_in_the_order_given(capsys, tmp_path, pngs):
    rgb, record = stacked(capsys, tmp_path / "stack.tif", pngs, "--context", "stack")
    assert record["source_files"] == ["c.png", "a.png", "b.png"] and "source_file" not in record
    stack = np.stack([read_image(p) for p in pngs])
    np.testing.assert_array_equal(rgb, colorize(stack, device="cpu", context="stack"))


def test_the_stack_consensus_is_an_option_of_the_command_line_and_is_recorded(capsys, tmp_path, pngs):
    rgb, record = stacked(capsys, tmp_path / "stack.tif", pngs, "--stack-consensus", "2")
    assert record["parameters"]["stack_consensus"] == 2
    np.testing.assert_array_equal(rgb, colorize(np.stack([read_image(p) for p in pngs]), device="cpu", stack_consensus=2))


def test_hints_and_uncertainty_follow_the_stack(capsys, tmp_path, pngs):
    hints = tmp_path / "hints.csv"
    hints.write_text("frame,y,x,r,g,b\n2,10,10,40,60,220\n", encoding="utf-8")
    dst, uncertain = tmp_path / "stack.tif", tmp_path / "uncertainty.tif"
    code, _, err = run(capsys, "colorize", *pngs, "-o", dst, "--stack", "--hints", hints, "--uncertainty", uncertain, "--device", "cpu", "-q")
    assert code == 0, err
    stack = np.stack([read_image(p) for p in pngs])
    expected, expected_uncertainty = colorize(stack, device="cpu", hints=[(2, 10, 10, 40, 60, 220)], uncertainty=True)
    np.testing.assert_array_equal(tifffile.imread(dst), expected)
    np.testing.assert_array_equal(tifffile.imread(uncertain), expected_uncertainty)


def test_refusals(capsys, tmp_path, pngs):
    code, _, err = run(capsys, "colorize", *pngs, "-o", tmp_path / "stack.png", "--stack", "--device", "cpu")
    assert_refused(code, err, "--stack writes one stack: name the output .tif")
    other = tmp_path / "other.png"
    Image.fromarray(np.zeros((30, 56), np.uint8), "L").save(other)
    code, _, err = run(capsys, "colorize", pngs[0], other, "-o", tmp_path / "s.tif", "--stack", "--device", "cpu")
    assert_refused(code, err, "other.png is 30 x 56 but c.png is 40 x 56: --stack needs images of one size", output=tmp_path / "s.tif")
    cube = tmp_path / "cube.tif"
    tifffile.imwrite(cube, np.zeros((2, 40, 56), np.uint16), photometric="minisblack")
    code, _, err = run(capsys, "colorize", pngs[0], cube, "-o", tmp_path / "s.tif", "--stack", "--device", "cpu")
    assert_refused(code, err, "cube.tif has 3 axes (2, 40, 56): --stack takes 2-D images", output=tmp_path / "s.tif")
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, np.zeros((40, 56), np.uint16), photometric="minisblack")
    code, _, err = run(capsys, "colorize", pngs[0], flat, "-o", flat, "--stack", "--overwrite", "--device", "cpu")
    assert_refused(code, err, "is the input")
    assert tifffile.imread(flat).shape == (40, 56)
