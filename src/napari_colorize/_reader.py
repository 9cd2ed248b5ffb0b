"""napari reader for FITS telescope frames (a plain napari install opens none)."""

from __future__ import annotations

from pathlib import Path

from .fits import read_fits
from .formats import FITS_SUFFIXES


def get_reader(path):
    """The FITS reader for one .fits/.fit/.fts path, else None (napari asks other readers)."""
    if isinstance(path, (list, tuple)) or Path(str(path)).suffix.lower() not in FITS_SUFFIXES:
        return None
    return read_fits_layers


def read_fits_layers(path) -> list[tuple]:
    """One Image layer: the FITS image, its header's WCS keywords in ``metadata["fits_header"]``."""
    data, header = read_fits(path)
    return [(data, {"name": Path(str(path)).stem, "metadata": {"fits_header": header}}, "image")]
