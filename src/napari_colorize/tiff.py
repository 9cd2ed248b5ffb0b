"""Reading TIFFs strictly: corrupted or truncated files are refused (never
read as black pixels), colour becomes luminance, extra samples become a
frame axis, min-is-white and palette images come out bright-is-bright, and
:class:`TiffStack` reads a stack one page at a time."""

from __future__ import annotations

import logging
import re
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .color import to_luminance
from .formats import ImageFileError, check_suffix, sniff_format

logger = logging.getLogger(__name__)


class _TiffLog(logging.Handler):
    """Collects what tifffile logs while it parses a file.

    tifffile does not raise for a broken page chain or a page count that
    contradicts the file's own metadata: it logs an error and returns what it
    could find (e.g. 1 frame of a truncated 3-frame stack). Those errors are
    turned into exceptions; errors about one unreadable tag are not, since
    tifffile skips such a tag and the pixels are unaffected.
    """

    def __init__(self):
        super().__init__(logging.WARNING)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = re.sub(r"^(<[^>]*>\s*)+", "", record.getMessage())  # drop tifffile's object reprs
        if record.levelno >= logging.ERROR and "tag #" not in message and not message.startswith("<TiffTag"):
            self.errors.append(message)
        else:
            logger.debug("tifffile: %s", message)


@contextmanager
def _strict_tifffile(path: Path, what: str = "cannot read image"):
    """Raise :class:`ImageFileError` for tifffile's logged errors; keep its
    log off stderr (the command line prints exactly one error line)."""
    log = logging.getLogger("tifffile")
    handler = _TiffLog()
    propagate, level = log.propagate, log.level
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.WARNING)  # even if a user silenced tifffile
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.propagate = propagate
        log.setLevel(level)
    if handler.errors:
        raise ImageFileError(f"{path}: {what}: corrupted or truncated TIFF ({handler.errors[0]})")


def _check_pixel_data(path: Path, series, file_size: int) -> None:
    """Refuse pixel data that lies past the end of the file or is missing.

    For such strips and tiles tifffile (and a memory map) would hand back
    zeros or raise obscurely; a truncated file must never become black pixels.
    """
    if series.size == 0:
        raise ImageFileError(f"{path}: the image is empty (shape {tuple(series.shape)})")
    if series.dataoffset is not None:  # one contiguous block
        end = int(series.dataoffset) + int(series.size) * np.dtype(series.dtype).itemsize
        if end > file_size:
            raise ImageFileError(f"{path}: truncated TIFF: the pixel data end at byte {end}, but the file has {file_size} bytes")
        return
    for number, page in enumerate(series.pages):
        if page is None:
            raise ImageFileError(f"{path}: corrupted TIFF: page {number} of the image is missing")
        offsets = np.asarray(page.dataoffsets, dtype=np.int64)
        counts = np.asarray(page.databytecounts, dtype=np.int64)
        if offsets.size == 0 or offsets.shape != counts.shape or (offsets <= 0).any() or (counts <= 0).any():
            raise ImageFileError(f"{path}: incomplete TIFF: page {number} has missing pixel data (strip or tile offsets or sizes of 0)")
        end = int((offsets + counts).max())
        if end > file_size:
            raise ImageFileError(f"{path}: truncated TIFF: the pixel data of page {number} end at byte {end}, but the file has {file_size} bytes")


class _TiffLayout:
    """How the pages of a TIFF series map to grayscale frames.

    Colour (RGB samples) becomes luminance; other samples per pixel
    (e.g. 2 or 5 channels) become a leading frame axis; 'min-is-white'
    pixels are inverted and palette indices are looked up, so that larger
    always means brighter.
    """

    def __init__(self, path: Path, series):
        from tifffile import PHOTOMETRIC

        page = series.keyframe
        axes, shape = series.axes, tuple(series.shape)
        count = len(series.parent.series)
        if count > 1:
            warnings.warn(f"{path.name} holds {count} images (TIFF series): colorizing the first, of shape {shape}", stacklevel=4)
        photometric = page.photometric
        self.path = path
        self.sample_axis = axes.index("S") if "S" in axes else None
        samples = shape[self.sample_axis] if self.sample_axis is not None else 1
        self.is_colour = samples in (3, 4) and photometric in (PHOTOMETRIC.RGB, PHOTOMETRIC.YCBCR)
        self.inverted = photometric == PHOTOMETRIC.MINISWHITE
        self.palette = None
        if photometric == PHOTOMETRIC.PALETTE and page.colormap is not None and samples == 1:
            # Luminance of each palette entry: the indices themselves mean nothing.
            self.palette = to_luminance(np.asarray(page.colormap).T)
        self.planar = self.is_colour and self.sample_axis != len(axes) - 1
        if self.is_colour:
            self.shape = shape[: self.sample_axis] + shape[self.sample_axis + 1 :]
        elif self.sample_axis is not None:
            self.shape = (shape[self.sample_axis], *shape[: self.sample_axis], *shape[self.sample_axis + 1 :])
        else:
            self.shape = shape
        floaty = self.is_colour or self.palette is not None
        self.dtype = np.dtype(np.float32) if floaty else np.dtype(series.dtype)
        if self.palette is not None:
            warnings.warn(f"{path.name} is a palette (indexed colour) image: colorizing the luminance of its colours", stacklevel=4)

    def whole(self, data: np.ndarray) -> np.ndarray:
        """The series' array (its own axes) as grayscale frames."""
        if self.is_colour:
            return to_luminance(np.moveaxis(data, self.sample_axis, -1))
        if self.sample_axis is not None:
            data = np.moveaxis(data, self.sample_axis, 0)
        return self.grayscale(data)

    def grayscale(self, data: np.ndarray) -> np.ndarray:
        if self.palette is not None:
            if data.dtype.kind not in "ui" or data.max(initial=0) >= len(self.palette) or data.min(initial=0) < 0:
                raise ImageFileError(f"{self.path}: corrupted TIFF: palette indices beyond its {len(self.palette)} colours")
            return self.palette[data]
        if self.inverted:
            # ~ maps min..max onto max..min for every integer and bool dtype.
            return -data if data.dtype.kind == "f" else ~data
        return data


def read_tiff(path: Path) -> tuple[np.ndarray, bool]:
    """The first series of a TIFF as grayscale frames, and whether it was colour.

    Raises
    ------
    ImageFileError
        For a corrupted or truncated file (other exceptions of tifffile pass
        through, for the caller to word).
    """
    import tifffile

    with _strict_tifffile(path), tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        layout = _TiffLayout(path, series)
        _check_pixel_data(path, series, tif.filehandle.size)
        data = series.asarray()
    _check_tiff_shape(path, series, data)
    return layout.whole(data), layout.is_colour


def _check_tiff_shape(path: Path, series, data: np.ndarray) -> None:
    if tuple(data.shape) != tuple(series.shape):
        raise ImageFileError(f"{path}: corrupted TIFF: read shape {data.shape}, but the file declares {tuple(series.shape)}")


class TiffStack:
    """A TIFF image read lazily, one frame (page) at a time.

    Behaves enough like an array for :func:`napari_colorize.colorize`:
    ``shape``, ``dtype``, ``ndim``, and ``stack[i, j]`` for one frame reads
    just that page (memory-mapped when stored uncompressed), so stacks larger
    than memory stream through. Colour pages are reduced to their luminance.

    Raises
    ------
    ImageFileError
        If the file cannot be opened as a TIFF.
    """

    def __init__(self, path: str | Path):
        import tifffile

        self.path = Path(path)
        check_suffix(self.path)
        if sniff_format(self.path) != "tiff":
            raise ImageFileError(f"{self.path}: cannot read image: not a TIFF file")
        self._tif = None
        try:
            with _strict_tifffile(self.path):
                self._tif = tifffile.TiffFile(self.path)
                series = self._tif.series[0]
                self._pages = list(series.pages)
                self._layout = _TiffLayout(self.path, series)
                _check_pixel_data(self.path, series, self._tif.filehandle.size)
        except Exception as exc:
            self.close()
            if isinstance(exc, ImageFileError):
                raise
            raise ImageFileError(f"{self.path}: cannot read image ({type(exc).__name__}: {exc})") from None
        layout = self._layout
        self.is_colour = layout.is_colour
        self.shape = layout.shape
        self.dtype = layout.dtype
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape, dtype=np.int64))
        self._frames = int(np.prod(self.shape[:-2], dtype=np.int64))
        split_samples = layout.sample_axis is not None and not layout.is_colour
        if len(self._pages) != self._frames or self.ndim < 2 or split_samples:
            # Pages that are not one frame each (tiled volumes, channels as
            # samples of one page): read whole.
            self._pages = None

    def _page(self, number: int) -> np.ndarray:
        import tifffile

        page = self._pages[number]
        layout = self._layout
        try:
            with _strict_tifffile(self.path, f"cannot read frame {number}"):
                if page.is_contiguous and page.compression == 1 and not self.is_colour:
                    data = tifffile.memmap(self.path, page=page.index, mode="r")
                else:
                    data = page.asarray()
        except ImageFileError:
            raise
        except Exception as exc:
            raise ImageFileError(f"{self.path}: cannot read frame {number} ({type(exc).__name__}: {exc})") from None
        if tuple(data.shape[-2:]) != tuple(self.shape[-2:]) and not self.is_colour:
            raise ImageFileError(f"{self.path}: corrupted TIFF: frame {number} has shape {data.shape}, not {self.shape[-2:]}")
        if self.is_colour:
            return to_luminance(np.moveaxis(data, 0, -1) if layout.planar else data)  # a planar page is (S, Y, X)
        return layout.grayscale(data)

    def __getitem__(self, index):
        leading = self.shape[:-2]
        if self._pages is not None and isinstance(index, tuple) and len(index) == len(leading):
            if all(isinstance(i, (int, np.integer)) for i in index):
                return self._page(int(np.ravel_multi_index(index, leading)) if leading else 0)
        return np.asarray(self)[index]

    def __array__(self, dtype=None, copy=None):
        try:
            data, _ = read_tiff(self.path)
        except ImageFileError:
            raise
        except Exception as exc:
            raise ImageFileError(f"{self.path}: cannot read image ({type(exc).__name__}: {exc})") from None
        return data if dtype is None else data.astype(dtype)

    def close(self) -> None:
        if self._tif is not None:
            self._tif.close()

    def __enter__(self) -> "TiffStack":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
