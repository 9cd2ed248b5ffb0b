"""Reading FITS telescope frames (astropy), and keeping their WCS.

The pixels are those of the first header-data unit holding an image (the
primary one, or the first image extension), scaled by BSCALE/BZERO as
astropy reads them; blank pixels are NaN. Arrays keep FITS's own order, as
astropy gives them (row 0 first), so the result lines up with the input
pixel for pixel. The world coordinate system of the header (and the few
keywords that say what was observed) are kept for the provenance and the
napari layer's metadata: colour does not move a pixel, so it still holds.
"""

from __future__ import annotations

import re
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .formats import ImageFileError

#: Header keywords kept: the WCS, and what was observed.
WCS_KEYWORD = re.compile(
    r"^(WCSAXES|CTYPE\d|CRVAL\d|CRPIX\d|CDELT\d|CUNIT\d|CROTA\d|CD\d_\d|PC\d_\d|PV\d_\d+|RADESYSa?|RADESYS|EQUINOX|EPOCH|LONPOLE|LATPOLE|"
    r"MJD-OBS|DATE-OBS|TELESCOP|INSTRUME|FILTER|OBJECT|BUNIT)$"
)


def _holds_image(hdu) -> bool:
    """Whether a header-data unit holds 2-D (or more) image data, from its header alone."""
    return getattr(hdu, "is_image", False) and int(hdu.header.get("NAXIS", 0)) >= 2


def _image_hdu(hdus, path: Path):
    for index, hdu in enumerate(hdus):
        if _holds_image(hdu):
            if sum(1 for other in hdus if _holds_image(other)) > 1:
                warnings.warn(f"{path.name} holds several images (FITS extensions): colorizing HDU {index}", stacklevel=4)
            return index, hdu
    raise ImageFileError(f"{path}: the FITS file holds no image (no header-data unit with 2-D data)")


def _kept_keywords(hdu) -> dict:
    return {key: value for key, value in hdu.header.items() if WCS_KEYWORD.match(key) and isinstance(value, (int, float, str))}


def read_fits_header(path: str | Path) -> dict:
    """The kept header keywords of a FITS file's image (its WCS...), without reading its pixels."""
    path = Path(path)
    with warnings.catch_warnings(), _opened(path) as hdus:  # the image's own warnings come with read_fits
        warnings.simplefilter("ignore")
        index, hdu = _image_hdu(hdus, path)
        return {"hdu": index, **_kept_keywords(hdu)}


@contextmanager
def _opened(path: Path):
    """The file's header-data units; astropy's many errors become one ImageFileError."""
    try:
        from astropy.io import fits
    except ImportError:  # a dependency; said plainly if a trimmed install lacks it
        raise ImageFileError(f"{path}: reading FITS needs astropy (pip install astropy)") from None
    try:
        with fits.open(path, memmap=False) as hdus:
            yield hdus
    except ImageFileError:
        raise
    except Exception as exc:  # astropy raises many kinds for broken files
        raise ImageFileError(f"{path}: cannot read FITS ({type(exc).__name__}: {exc})") from None


def read_fits(path: str | Path) -> tuple[np.ndarray, dict]:
    """The image of a FITS file, (Y, X) or (frames..., Y, X), and its kept header keywords.

    Raises
    ------
    ImageFileError
        No astropy, a file astropy cannot read, or no image in it.
    """
    path = Path(path)
    with _opened(path) as hdus:
        index, hdu = _image_hdu(hdus, path)
        data = np.asarray(hdu.data)
        header = _kept_keywords(hdu)
    if data.dtype.kind not in "biuf":
        raise ImageFileError(f"{path}: FITS image of {data.dtype} values: cannot colorize")
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))  # FITS is big-endian: torch and numpy ops want native
    return data, {"hdu": index, **header}
