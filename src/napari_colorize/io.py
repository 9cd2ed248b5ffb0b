"""Reading grayscale inputs and writing RGB outputs (TIFF, PNG, JPEG); finding
and reading the colour pictures that training and evaluation learn from.

Outputs are written to a temporary name and renamed when complete, so an
interrupted run never leaves a file that looks finished.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .color import to_luminance

TIFF_SUFFIXES = frozenset({".tif", ".tiff"})
PICTURE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
SUFFIXES = TIFF_SUFFIXES | PICTURE_SUFFIXES


class ImageFileError(OSError):
    """An input cannot be read or an output cannot be written."""


logger = logging.getLogger(__name__)

# First bytes of the formats we read: a file is read by what it is, not by
# what its name says (a renamed PNG is still a PNG).
_MAGIC = (
    (b"II*\0", "tiff"),
    (b"MM\0*", "tiff"),
    (b"II+\0", "tiff"),  # BigTIFF
    (b"MM\0+", "tiff"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
)
_KIND_OF_SUFFIX = {".tif": "tiff", ".tiff": "tiff", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}


def sniff_format(path: str | Path) -> str:
    """'tiff', 'png' or 'jpeg', from the first bytes of the file.

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
    raise ImageFileError(f"{path}: cannot read image: not a TIFF, PNG or JPEG file (it starts with {head!r})")


def _format_of(path: Path) -> str:
    """The format to read ``path`` as, warning when its name says otherwise."""
    kind = sniff_format(path)
    named = _KIND_OF_SUFFIX[path.suffix.lower()]
    if kind != named:
        warnings.warn(f"{path.name} is a {kind.upper()} file despite its {path.suffix} name: reading it as {kind.upper()}", stacklevel=3)
    return kind


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


def check_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ImageFileError(f"{path}: unsupported file type {suffix or '(none)'}; use .tif, .tiff, .png, .jpg or .jpeg")
    return suffix


def read_image(path: str | Path) -> np.ndarray:
    """Read a grayscale image or stack: (Y, X) or (frames..., Y, X).

    Files are read as what their contents are (a PNG named .tif is read as a
    PNG, with a warning). Multi-page TIFFs become stacks; colour files are
    reduced to their luminance with a warning; non-colour samples of a TIFF
    (e.g. 2 channels per pixel) become the first frame axis; 'min-is-white'
    TIFFs are inverted so that larger is brighter. Truncated or corrupted
    files are refused, never padded with zeros.

    Raises
    ------
    ImageFileError
        For a missing, unsupported, corrupted or truncated file.
    """
    path = Path(path)
    check_suffix(path)
    kind = _format_of(path)
    try:
        if kind == "tiff":
            import tifffile

            with _strict_tifffile(path), tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                layout = _TiffLayout(path, series)
                _check_pixel_data(path, series, tif.filehandle.size)
                data = series.asarray()
            _check_tiff_shape(path, series, data)
            if layout.is_colour:
                warnings.warn(f"{path.name} is a colour image: colorizing its luminance", stacklevel=2)
            return layout.whole(data)
        data, is_colour = _read_picture(path)
    except ImageFileError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # tifffile and PIL raise many kinds for broken files
        raise ImageFileError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from None
    if is_colour:
        warnings.warn(f"{path.name} is a colour image: colorizing its luminance", stacklevel=2)
        data = to_luminance(data)
    return data


def _check_tiff_shape(path: Path, series, data: np.ndarray) -> None:
    if tuple(data.shape) != tuple(series.shape):
        raise ImageFileError(f"{path}: corrupted TIFF: read shape {data.shape}, but the file declares {tuple(series.shape)}")


def _read_picture(path: Path) -> tuple[np.ndarray, bool]:
    """(pixels, is_colour) of a PNG or JPEG (its first frame, if animated)."""
    from PIL import Image

    with Image.open(path) as im:
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
            warnings.warn(f"{path.name} is animated ({frames} frames): colorizing its first frame", stacklevel=4)
        im.load()
        if im.mode in ("LA", "La"):
            im = im.convert("L")  # gray plus alpha: the gray
        is_colour = im.mode not in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F")
        return np.asarray(im.convert("RGB") if is_colour else im), is_colour


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
        data = read_image(self.path)
        return data if dtype is None else data.astype(dtype)

    def close(self) -> None:
        if self._tif is not None:
            self._tif.close()

    def __enter__(self) -> "TiffStack":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: Suffixes (any case) of the colour pictures that training and evaluation read.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})
# PIL modes without colour: such a picture has nothing to learn colours from.
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


def find_images(folders: Sequence[str | Path]) -> list[Path]:
    """All JPEG/PNG/TIFF files under ``folders`` (recursively), sorted.

    Parameters
    ----------
    folders : sequence of path
        Folders to search, or image files, which are taken as given.

    Returns
    -------
    list of Path
        Sorted, without duplicates.

    Raises
    ------
    FileNotFoundError
        If an entry is neither a file nor a folder.
    """
    found = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            found.append(folder)
            continue
        if not folder.is_dir():
            raise FileNotFoundError(f"training folder not found: {folder}")
        found += [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(set(found))


def read_rgb(path: str | Path, *, max_side: int | None = None) -> np.ndarray | None:
    """A colour picture as uint8 RGB (H, W, 3).

    Parameters
    ----------
    path : path
    max_side : int, optional
        Downscale (bilinear) so that the longer side is at most this.

    Returns
    -------
    ndarray or None
        None if the file is grayscale (by its mode) or unreadable: callers
        skip such files rather than fail.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode in _GRAY_MODES:
                return None
            if max_side is not None:
                im.draft("RGB", (max_side, max_side))  # fast JPEG downscale
            rgb = np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    if max_side is not None and max(rgb.shape[:2]) > max_side:
        factor = max_side / max(rgb.shape[:2])
        size = (max(1, round(rgb.shape[1] * factor)), max(1, round(rgb.shape[0] * factor)))
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
    return rgb


def output_path_for(input_path: Path, output: Path, *, many: bool) -> Path:
    """Where the result of ``input_path`` goes: ``output`` itself, or a file in
    the folder ``output`` when several inputs are given."""
    if many or output.is_dir():
        return output / f"{input_path.stem}_colorized.tif"
    return output


def write_rgb(path: str | Path, rgb: np.ndarray, *, overwrite: bool = False, metadata: dict | None = None) -> Path:
    """Write uint8 RGB (..., Y, X, 3): TIFF keeps the frame axes, PNG/JPEG take one frame.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    suffix = check_suffix(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    if suffix in PICTURE_SUFFIXES and rgb.ndim != 3:
        raise ImageFileError(f"{path}: {suffix} holds one frame, but the result has {rgb.ndim - 3} frame axes; write a .tif")
    tmp = path.with_name(f".{path.name}.partial{suffix}")
    try:
        if suffix in TIFF_SUFFIXES:
            import tifffile

            # tifffile's JSON description records the shape (so that frame
            # axes beyond the first survive a round trip) and our metadata.
            tifffile.imwrite(
                tmp,
                rgb,
                photometric="rgb",
                compression="zlib",
                bigtiff=rgb.nbytes > 2**31,
                metadata=dict(metadata or {}),
            )
        else:
            import json

            from PIL import Image, PngImagePlugin

            options = {} if suffix == ".png" else {"quality": 95}
            if metadata:
                # The same JSON as a TIFF's description (ASCII: json escapes
                # the rest): a PNG tEXt chunk "napari_colorize"; a JPEG
                # comment (COM) and EXIF ImageDescription, whose segments
                # hold at most 64 kB.
                text = json.dumps(metadata, default=str)
                if suffix == ".png":
                    info = PngImagePlugin.PngInfo()
                    info.add_text("napari_colorize", text)
                    options["pnginfo"] = info
                elif len(text) > 60000:
                    raise ImageFileError(f"{path}: metadata of {len(text)} characters do not fit in a JPEG; write a .png or .tif")
                else:
                    exif = Image.Exif()
                    exif[0x010E] = text  # ImageDescription
                    options.update(comment=text.encode("ascii"), exif=exif.tobytes())
            Image.fromarray(rgb).save(tmp, **options)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


#: Side of the tiles of streamed TIFF outputs.
TIFF_TILE = 256


def write_rgb_tiff_strips(path: str | Path, shape: tuple[int, ...], strips, *, overwrite: bool = False, metadata: dict | None = None) -> Path:
    """Stream uint8 RGB of ``shape`` (..., Y, X, 3) into a tiled TIFF.

    ``strips`` yields ``(frame_index, row_start, row_stop, rgb_rows)`` in
    order with ``TIFF_TILE`` rows per strip (fewer at a frame's end), as
    :func:`napari_colorize.pipeline.colorize_strips` does: nothing larger
    than one strip is held, so huge frames and long stacks write with
    bounded memory. Written under a temporary name, renamed when complete.
    """
    import tifffile

    path = Path(path)
    if check_suffix(path) not in TIFF_SUFFIXES:
        raise ImageFileError(f"{path}: streaming writes TIFF only")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    t = TIFF_TILE

    def tiles():
        for _index, _r0, _r1, rgb in strips:
            rows = np.zeros((t, rgb.shape[1], 3), np.uint8)
            rows[: rgb.shape[0]] = rgb
            for x in range(0, rgb.shape[1], t):
                tile = np.zeros((t, t, 3), np.uint8)
                part = rows[:, x : x + t]
                tile[:, : part.shape[1]] = part
                yield tile

    tmp = path.with_name(f".{path.name}.partial{path.suffix}")
    try:
        nbytes = int(np.prod(shape, dtype=np.int64))
        tifffile.imwrite(
            tmp,
            data=tiles(),
            shape=tuple(shape),
            dtype=np.uint8,
            photometric="rgb",
            tile=(t, t),
            compression="zlib",
            bigtiff=nbytes > 2**31,
            metadata=dict(metadata or {}),
        )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
