"""FITS telescope frames in: the command line, the library reader and the
napari reader, with the WCS kept in the provenance and the layer metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from helpers import assert_refused, run, smooth_frame

from napari_colorize import colorize
from napari_colorize._reader import get_reader
from napari_colorize.io import read_image

fits = pytest.importorskip("astropy.io.fits")

WCS = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 202.47, "CRVAL2": 47.195, "CRPIX1": 32.0, "CRPIX2": 24.0, "CDELT1": -0.0003, "CDELT2": 0.0003}


def write_fits(path, data, *, extension=False):
    header = fits.Header(WCS)
    header["OBJECT"] = "M51"
    if extension:
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header=header)]).writeto(path)
    else:
        fits.PrimaryHDU(data, header=header).writeto(path)
    return path


@pytest.mark.parametrize("extension", [False, True], ids=["primary", "extension"])
def test_a_fits_frame_is_colorized_with_its_wcs_recorded(capsys, tmp_path, extension):
    frame = smooth_frame((48, 64), seed=5, low=-2.0, high=900.0).astype(">f4")  # FITS is big-endian
    frame[3, 4] = np.nan
    src = write_fits(tmp_path / "m51.fits", frame, extension=extension)
    data = read_image(src)
    assert data.dtype.isnative and np.array_equal(data, frame.astype(np.float32), equal_nan=True)
    dst = tmp_path / "m51.tif"
    code, _, err = run(capsys, "colorize", src, "-o", dst, "--device", "cpu", "-q")
    assert code == 0, err
    with tifffile.TiffFile(dst) as tif:
        rgb = tif.asarray()
        header = json.loads(tif.pages[0].description)["napari_colorize"]["fits_header"]
    assert header["CRVAL1"] == 202.47 and header["CTYPE2"] == "DEC--TAN" and header["OBJECT"] == "M51"
    assert header["hdu"] == (1 if extension else 0)
    np.testing.assert_array_equal(rgb, colorize(data, device="cpu"))


def test_fits_refusals(capsys, tmp_path):
    empty = tmp_path / "empty.fits"
    fits.PrimaryHDU().writeto(empty)
    code, _, err = run(capsys, "colorize", empty, "-o", tmp_path / "out.tif", "--device", "cpu")
    assert_refused(code, err, "holds no image")
    src = write_fits(tmp_path / "frame.fits", np.zeros((8, 8), np.float32))
    code, _, err = run(capsys, "colorize", src, "-o", tmp_path / "out.fits", "--device", "cpu")
    assert_refused(code, err, "FITS is read, not written")
    fake = tmp_path / "fake.fits"
    fake.write_bytes(b"SIMPLE  = nonsense" + b" " * 100)
    code, _, err = run(capsys, "colorize", fake, "-o", tmp_path / "out.tif", "--device", "cpu")
    assert_refused(code, err, "cannot read FITS")


def test_the_napari_reader_gives_one_image_layer_with_the_header(tmp_path):
    src = write_fits(tmp_path / "m51.fits", np.arange(48 * 64, dtype=np.float32).reshape(48, 64))
    assert get_reader(str(tmp_path / "m51.tif")) is None and get_reader([str(src)]) is None
    ((data, meta, kind),) = get_reader(str(src))(str(src))
    assert kind == "image" and data.shape == (48, 64) and meta["name"] == "m51"
    assert meta["metadata"]["fits_header"]["CRPIX1"] == 32.0


def test_napari_opens_fits_through_the_plugin(make_napari_viewer_proxy, tmp_path):
    pytest.importorskip("napari")
    src = write_fits(tmp_path / "m51.fits", np.ones((16, 24), np.float32))
    viewer = make_napari_viewer_proxy()
    (layer,) = viewer.open(str(src), plugin="napari-colorize")
    assert layer.data.shape == (16, 24) and layer.metadata["fits_header"]["CTYPE1"] == "RA---TAN"
