"""Image file formats: which suffixes we read and write, what a file really
is (told by its first bytes, not its name), and the error for files that
cannot be read or written."""

from __future__ import annotations

import warnings
from pathlib import Path

TIFF_SUFFIXES = frozenset({".tif", ".tiff"})
PICTURE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
#: Telescope frames: read, never written (the output is an RGB image).
FITS_SUFFIXES = frozenset({".fits", ".fit", ".fts"})
SUFFIXES = TIFF_SUFFIXES | PICTURE_SUFFIXES


class ImageFileError(OSError):
    """An input cannot be read or an output cannot be written."""


# First bytes of the formats we read: a file is read by what it is, not by
# what its name says (a renamed PNG is still a PNG).
_MAGIC = (
    (b"II*\0", "tiff"),
    (b"MM\0*", "tiff"),
    (b"II+\0", "tiff"),  # BigTIFF
    (b"MM\0+", "tiff"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"SIMPLE  ", "fits"),
)
_KIND_OF_SUFFIX = {".tif": "tiff", ".tiff": "tiff", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".fits": "fits", ".fit": "fits", ".fts": "fits"}


def sniff_format(path: str | Path) -> str:
    """'tiff', 'png', 'jpeg' or 'fits', from the first bytes of the file.

    Raises
    ------
    ImageFileError
        For a missing, unreadable or empty file, a folder, or other contents.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageFileError(f"{path}: is a folder, not an image file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except FileNotFoundError:
        raise ImageFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise ImageFileError(f"{path}: cannot open ({exc.strerror or exc})") from None
    if not head:
        raise ImageFileError(f"{path}: the file is empty")
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    raise ImageFileError(f"{path}: cannot read image: not a TIFF, PNG, JPEG or FITS file (it starts with {head!r})")


def format_of(path: Path) -> str:
    """The format to read ``path`` as, warning when its name says otherwise."""
    kind = sniff_format(path)
    named = _KIND_OF_SUFFIX[path.suffix.lower()]
    if kind != named:
        warnings.warn(f"{path.name} is a {kind.upper()} file despite its {path.suffix} name: reading it as {kind.upper()}", stacklevel=3)
    return kind


def check_suffix(path: Path, *, reading: bool = False) -> str:
    """The lower-case suffix of ``path`` if we write that kind of file (with
    ``reading``: read it; FITS is read only), else ImageFileError."""
    suffix = path.suffix.lower()
    if reading and suffix in FITS_SUFFIXES:
        return suffix
    if suffix in FITS_SUFFIXES:
        raise ImageFileError(f"{path}: FITS is read, not written (the result is an RGB image): use .tif, .tiff, .png, .jpg or .jpeg")
    if suffix not in SUFFIXES:
        also = ", or .fits to read" if reading else ""
        raise ImageFileError(f"{path}: unsupported file type {suffix or '(none)'}; use .tif, .tiff, .png, .jpg or .jpeg{also}")
    return suffix
