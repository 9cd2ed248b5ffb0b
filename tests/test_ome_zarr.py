"""OME-Zarr out: ``-o result.ome.zarr`` streams a multiscale pyramid with the
physical scale and the provenance; ``colorize(out=zarr_array)``; napari
opens the result (napari-ome-zarr) as a multiscale layer."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from helpers import assert_refused, run, smooth_frame

from napari_colorize import colorize

zarr = pytest.importorskip("zarr")
pytest.importorskip("ome_zarr")

STACK = np.stack([smooth_frame((300, 520), seed=s, low=100, high=50000) for s in range(2)]).astype(np.uint16)


@pytest.fixture
def imagej_stack(tmp_path):
    src = tmp_path / "em.tif"
    tifffile.imwrite(src, STACK, imagej=True, resolution=(4.0, 4.0), metadata={"axes": "ZYX", "spacing": 0.5, "unit": "micron"})
    return src


def test_a_stack_streams_into_a_multiscale_ome_zarr(capsys, tmp_path, imagej_stack):
    dst = tmp_path / "em.ome.zarr"
    code, out, err = run(capsys, "colorize", imagej_stack, "-o", dst, "--device", "cpu")
    assert code == 0, err
    assert "em.ome.zarr" in out and "2x300x520x3" in out
    assert "warning" not in err
    group = zarr.open_group(str(dst), mode="r")
    attrs = group.attrs.asdict()
    multiscales = attrs.get("ome", attrs)["multiscales"][0]
    assert [axis["name"] for axis in multiscales["axes"]] == ["c", "z", "y", "x"]  # NGFF order: t, c, z, y, x
    assert {axis["name"]: axis.get("unit") for axis in multiscales["axes"]}["x"] == "micrometer"
    scales = [d["coordinateTransformations"][0]["scale"] for d in multiscales["datasets"]]
    assert scales[0] == [1.0, 0.5, 0.25, 0.25] and scales[1] == [1.0, 0.5, 0.5, 0.5] and len(scales) == 3
    assert attrs["napari_colorize"]["note"] == "colours are predicted by a model, not measured"
    full = np.moveaxis(np.asarray(group["0"]), 0, -1)
    np.testing.assert_array_equal(full, colorize(STACK, device="cpu"))
    assert group["1"].shape == (3, 2, 150, 260) and group["2"].shape == (3, 2, 75, 130)
    half = full[:, ::2, ::2].astype(float)  # level 1 is the mean of 2 x 2 blocks: close to a subsample
    assert np.abs(np.moveaxis(np.asarray(group["1"]), 0, -1) - half).mean() < 12
    assert not list(tmp_path.glob(".*partial*")), "no temporary folder is left behind"


def test_refusals_and_overwrite(capsys, tmp_path, imagej_stack):
    dst = tmp_path / "x.ome.zarr"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    code, _, err = run(capsys, "colorize", imagej_stack, "-o", dst, "--device", "cpu")
    assert_refused(code, err, "exists; pass --overwrite")
    assert (dst / "keep.txt").exists()
    code, _, err = run(capsys, "colorize", imagej_stack, imagej_stack, "-o", dst, "--device", "cpu")
    assert_refused(code, err, "an OME-Zarr output holds one result")
    code, _, err = run(capsys, "colorize", imagej_stack, "-o", dst, "--device", "cpu", "--overwrite", "-q")
    assert code == 0, err
    assert not (dst / "keep.txt").exists() and zarr.open_group(str(dst), mode="r")["0"].shape == (3, 2, 300, 520)


def test_colorize_writes_into_a_zarr_array(tmp_path):
    frames = STACK[:, :64, :80]
    out = zarr.open_array(str(tmp_path / "out.zarr"), mode="w", shape=(*frames.shape, 3), chunks=(1, 32, 32, 3), dtype=np.uint8)
    colorize(frames, device="cpu", out=out)
    np.testing.assert_array_equal(out[:], colorize(frames, device="cpu"))


def test_napari_opens_the_result_as_a_multiscale_layer(capsys, tmp_path, imagej_stack, make_napari_viewer_proxy):
    pytest.importorskip("napari_ome_zarr")
    dst = tmp_path / "em.ome.zarr"
    code, _, err = run(capsys, "colorize", imagej_stack, "-o", dst, "--device", "cpu", "-q")
    assert code == 0, err
    viewer = make_napari_viewer_proxy()
    layers = viewer.open(str(dst), plugin="napari-ome-zarr")
    assert len(layers) == 3 and all(layer.multiscale for layer in layers)  # red, green and blue channels
    assert [layer.name for layer in layers] == ["em: red", "em: green", "em: blue"]
    np.testing.assert_allclose(layers[0].scale[-2:], [0.25, 0.25])
