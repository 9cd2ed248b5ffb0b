"""Reading grayscale inputs and writing RGB outputs (TIFF, PNG, JPEG).

Outputs are written to a temporary name and renamed when complete, so an
interrupted run never leaves a file that looks finished.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

TIFF_SUFFIXES = frozenset({".tif", ".tiff"})
PICTURE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
SUFFIXES = TIFF_SUFFIXES | PICTURE_SUFFIXES


class ImageFileError(OSError):
    """An input cannot be read or an output cannot be written."""


def _check_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ImageFileError(f"{path}: unsupported file type {suffix or '(none)'}; use .tif, .tiff, .png, .jpg or .jpeg")
    return suffix


def to_luminance(rgb: np.ndarray) -> np.ndarray:
    """Luminance (Rec. 709 weights, as scikit-image's rgb2gray) of (..., 3|4) data, float32."""
    rgb = np.asarray(rgb)
    weights = np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)
    return (rgb[..., :3].astype(np.float32) @ weights).astype(np.float32)


def read_image(path: str | Path) -> np.ndarray:
    """Read a grayscale image or stack: (Y, X) or (frames..., Y, X).

    Multi-page TIFFs become stacks; colour files are reduced to their
    luminance with a warning.

    Raises
    ------
    ImageFileError
        For a missing, unsupported, corrupted or truncated file.
    """
    path = Path(path)
    suffix = _check_suffix(path)
    if not path.is_file():
        raise ImageFileError(f"{path}: no such file")
    try:
        if suffix in TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                data = series.asarray()
                axes = series.axes
            # samples last (contiguous) or first (planar RGB, axes 'SYX')
            is_colour = "S" in axes and data.shape[axes.index("S")] in (3, 4)
            if is_colour:
                data = np.moveaxis(data, axes.index("S"), -1)
        else:
            from PIL import Image

            with Image.open(path) as im:
                im.load()
                is_colour = im.mode not in ("1", "L", "I", "I;16", "F")
                data = np.asarray(im.convert("RGB") if is_colour else im)
    except ImageFileError:
        raise
    except Exception as exc:  # tifffile and PIL raise many kinds for broken files
        raise ImageFileError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from None
    if is_colour:
        warnings.warn(f"{path.name} is a colour image: colorizing its luminance", stacklevel=2)
        data = to_luminance(data)
    return data


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
        try:
            self._tif = tifffile.TiffFile(self.path)
            series = self._tif.series[0]
            self._pages = list(series.pages)
        except Exception as exc:
            raise ImageFileError(f"{self.path}: cannot read image ({type(exc).__name__}: {exc})") from None
        axes, shape = series.axes, tuple(series.shape)
        self.is_colour = "S" in axes and shape[axes.index("S")] in (3, 4)
        self._planar = self.is_colour and axes.index("S") != len(axes) - 1
        self.shape = tuple(n for i, n in enumerate(shape) if i != axes.index("S")) if self.is_colour else shape
        self.dtype = np.dtype(np.float32) if self.is_colour else np.dtype(series.dtype)
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape, dtype=np.int64))
        self._frames = int(np.prod(self.shape[:-2], dtype=np.int64))
        if len(self._pages) != self._frames or self.ndim < 2:
            # Pages that are not one frame each (e.g. tiled volumes): read whole.
            self._pages = None

    def _page(self, number: int) -> np.ndarray:
        import tifffile

        page = self._pages[number]
        try:
            if page.is_contiguous and page.compression == 1 and not self.is_colour:
                data = tifffile.memmap(self.path, page=page.index, mode="r")
            else:
                data = page.asarray()
        except Exception as exc:
            raise ImageFileError(f"{self.path}: cannot read frame {number} ({type(exc).__name__}: {exc})") from None
        if self._planar:
            data = np.moveaxis(data, 0, -1)  # a planar page is (S, Y, X)
        return to_luminance(data) if self.is_colour else data

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
        self._tif.close()

    def __enter__(self) -> "TiffStack":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
    suffix = _check_suffix(path)
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
            from PIL import Image

            options = {} if suffix == ".png" else {"quality": 95}
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
    if _check_suffix(path) not in TIFF_SUFFIXES:
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
