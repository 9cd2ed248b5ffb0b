"""Physical pixel size kept from input TIFF to output TIFF, in the input's
convention (ImageJ hyperstack, OME-TIFF, resolution tags), with the provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from helpers import run

from napari_colorize.physical import read_physical

STACK = (np.random.default_rng(0).random((3, 48, 64)) * 4000).astype(np.uint16)


def colorize_file(capsys, tmp_path, src, *extra):
    dst = tmp_path / "out.tif"
    code, _, err = run(capsys, "colorize", src, "-o", dst, "--device", "cpu", "-q", *extra)
    assert code == 0, err
    return dst


def test_an_imagej_hyperstack_gives_an_imagej_hyperstack(capsys, tmp_path):
    src = tmp_path / "ij.tif"
    tifffile.imwrite(src, STACK, imagej=True, resolution=(4.0, 4.0), metadata={"axes": "ZYX", "spacing": 0.5, "unit": "micron"})
    dst = colorize_file(capsys, tmp_path, src)
    with tifffile.TiffFile(dst) as tif:
        assert tif.is_imagej and tif.series[0].axes == "ZYXS" and tif.series[0].shape == (3, 48, 64, 3)
        meta = tif.imagej_metadata
        record = json.loads(meta["Info"])["napari_colorize"]
    assert meta["unit"] == "micron" and meta["spacing"] == 0.5
    assert record["note"] == "colours are predicted by a model, not measured" and record["physical_scale"]["pixel_size_yx"] == [0.25, 0.25]
    assert read_physical(dst) == read_physical(src)


@pytest.mark.parametrize("convention", ["imagej", "ome"])
def test_the_uncertainty_tiff_keeps_the_scale_too(capsys, tmp_path, convention):
    src = tmp_path / "in.tif"
    if convention == "imagej":
        tifffile.imwrite(src, STACK, imagej=True, resolution=(4.0, 4.0), metadata={"axes": "ZYX", "spacing": 0.5, "unit": "micron"})
    else:
        tifffile.imwrite(src, STACK, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3, "PhysicalSizeZ": 2.0})
    uncertainty = tmp_path / "uncertainty.tif"
    colorize_file(capsys, tmp_path, src, "--uncertainty", uncertainty)
    kept = read_physical(uncertainty)
    assert kept == read_physical(src) and kept.convention == convention
    values = tifffile.imread(uncertainty)
    assert values.shape == STACK.shape and values.dtype == np.float32 and 0 <= values.min() <= values.max() <= 1


def test_an_ome_tiff_gives_an_ome_tiff(capsys, tmp_path):
    src = tmp_path / "in.ome.tif"
    physical = {"PhysicalSizeX": 0.1, "PhysicalSizeY": 0.2, "PhysicalSizeXUnit": "nm", "PhysicalSizeYUnit": "nm", "TimeIncrement": 2.0}
    tifffile.imwrite(src, STACK, ome=True, metadata={"axes": "TYX", **physical})
    dst = colorize_file(capsys, tmp_path, src)
    with tifffile.TiffFile(dst) as tif:
        assert tif.is_ome and tif.series[0].axes == "TYXS"
        xml = tif.ome_metadata
    assert "colours are predicted by a model, not measured" in xml
    out = read_physical(dst)
    assert out.pixel_size == pytest.approx((0.2, 0.1)) and out.unit == "nm" and out.frame_interval == 2.0
    assert out == read_physical(src)


def test_resolution_tags_are_kept(capsys, tmp_path):
    src = tmp_path / "plain.tif"
    tifffile.imwrite(src, STACK[0], resolution=(100, 50), resolutionunit="CENTIMETER")
    dst = colorize_file(capsys, tmp_path, src)
    with tifffile.TiffFile(dst) as tif:
        assert json.loads(tif.pages[0].description)["napari_colorize"]["physical_scale"]["unit"] == "cm"
    assert read_physical(dst) == read_physical(src) and read_physical(src).pixel_size == (0.02, 0.01)


def test_no_physical_scale_is_invented(capsys, tmp_path):
    src = tmp_path / "bare.tif"
    tifffile.imwrite(src, STACK, photometric="minisblack")
    assert read_physical(src) is None
    dst = colorize_file(capsys, tmp_path, src)
    assert read_physical(dst) is None
    with tifffile.TiffFile(dst) as tif:
        assert "physical_scale" not in json.loads(tif.pages[0].description)["napari_colorize"]


def test_whole_array_writes_keep_the_convention_too(tmp_path):
    from napari_colorize.io import write_rgb

    src = tmp_path / "ij.tif"
    tifffile.imwrite(src, STACK, imagej=True, resolution=(4.0, 4.0), metadata={"axes": "TYX", "finterval": 1.5, "unit": "micron"})
    rgb = np.zeros((*STACK.shape, 3), np.uint8)
    dst = write_rgb(tmp_path / "out.tif", rgb, metadata={"napari_colorize": {"note": "x"}}, physical=read_physical(src))
    assert read_physical(dst) == read_physical(src) and read_physical(dst).frame_interval == 1.5
    np.testing.assert_array_equal(tifffile.imread(dst), rgb)
