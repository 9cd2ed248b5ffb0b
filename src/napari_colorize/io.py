"""Reading grayscale inputs and writing RGB outputs (TIFF, PNG, JPEG); finding
and reading the colour pictures that training and evaluation learn from.

Outputs are written to a temporary name and renamed when complete, so an
interrupted run never leaves a file that looks finished.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .color import to_luminance
from .formats import PICTURE_SUFFIXES, SUFFIXES, TIFF_SUFFIXES, ImageFileError, check_suffix, format_of, sniff_format
from .fits import read_fits
from .ome_zarr_out import ZARR_SUFFIX
from .physical import PhysicalScale
from .tiff import TiffStack, read_tiff

__all__ = [
    "PICTURE_SUFFIXES",
    "SUFFIXES",
    "TIFF_SUFFIXES",
    "TOP_LEVEL",
    "ImageFileError",
    "TiffStack",
    "check_suffix",
    "find_images",
    "group_by_subfolder",
    "output_path_for",
    "read_image",
    "read_rgb",
    "sniff_format",
    "write_rgb",
    "write_rgb_tiff_strips",
]

logger = logging.getLogger(__name__)


def read_image(path: str | Path) -> np.ndarray:
    """Read a grayscale image or stack: (Y, X) or (frames..., Y, X), from a
    TIFF, PNG, JPEG or FITS file.

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
    check_suffix(path, reading=True)
    kind = format_of(path)
    if kind == "fits":
        return read_fits(path)[0]
    try:
        if kind == "tiff":
            data, is_colour = read_tiff(path)
            if is_colour:
                warnings.warn(f"{path.name} is a colour image: colorizing its luminance", stacklevel=2)
            return data
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


#: Suffixes (any case) of the colour pictures that training and evaluation read.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})
# PIL modes without colour: such a picture has nothing to learn colours from.
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


def find_images(folders: Sequence[str | Path], *, suffixes: frozenset[str] = IMAGE_SUFFIXES) -> list[Path]:
    """All JPEG/PNG/TIFF files (or those of other ``suffixes``) under ``folders`` (recursively), sorted.

    Parameters
    ----------
    folders : sequence of path
        Folders to search, or image files, which are taken as given.
    suffixes : frozenset of str
        Lower-case file suffixes searched for in folders.

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
        found += [p for p in folder.rglob("*") if p.suffix.lower() in suffixes and p.is_file()]
    return sorted(set(found))


#: The group of the images that sit directly in a folder, not in a subfolder of it.
TOP_LEVEL = "(top level)"


def group_by_subfolder(paths: Sequence[str | Path], folder: str | Path) -> dict[str, list[Path]]:
    """Images under ``folder`` grouped by the subfolder of ``folder`` that holds them.

    An image in a deeper folder counts in its first-level subfolder
    (``astro/jwst/nebulae/x.png`` in ``jwst``); one directly in ``folder``
    in :data:`TOP_LEVEL`.

    Parameters
    ----------
    paths : sequence of path
        Images inside ``folder`` (e.g. from :func:`find_images`).
    folder : path

    Returns
    -------
    dict of str to list of Path
        :data:`TOP_LEVEL` first (when it has images), then the subfolders by
        name; the paths of each group sorted.

    Raises
    ------
    ValueError
        If a path is not inside ``folder``.
    """
    folder = Path(folder)
    groups: dict[str, list[Path]] = {}
    for path in sorted(Path(p) for p in paths):
        parts = path.relative_to(folder).parts
        groups.setdefault(parts[0] if len(parts) > 1 else TOP_LEVEL, []).append(path)
    return dict(sorted(groups.items(), key=lambda item: (item[0] != TOP_LEVEL, item[0])))


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


def output_path_for(input_path: Path, output: Path, *, many: bool, shows: str = "colorized") -> Path:
    """Where the result of ``input_path`` goes: ``output`` itself, or a file
    ``<input stem>_<shows>.tif`` in the folder ``output`` when several inputs
    are given (``shows``: 'colorized' for the RGB, 'uncertainty' for the
    uncertainty)."""
    if many or (output.is_dir() and output.suffix.lower() != ZARR_SUFFIX):  # an existing OME-Zarr is a file to replace
        return output / f"{input_path.stem}_{shows}.tif"
    return output


#: How outputs are compressed in TIFF: zlib at its fastest level with
#: horizontal differencing (the TIFF predictor every reader knows), lossless.
#: A colorized 4096² frame: 15 MB in 0.24 s, against 34 MB in 0.59 s at
#: zlib's default level without the predictor. In one thread: with several,
#: tifffile reads ahead of a streamed output (a 300-frame stack peaked at
#: 700 MB instead of 423).
TIFF_COMPRESSION = {"compression": "zlib", "compressionargs": {"level": 1}, "predictor": True}


def _tiff_options(shape: tuple[int, ...], metadata: dict | None, physical: PhysicalScale | None) -> dict:
    """tifffile.imwrite keywords for an RGB TIFF of ``shape``: our metadata in
    tifffile's JSON description, or, with ``physical``, the input's convention
    (ImageJ or OME with its physical sizes, or resolution tags) carrying it."""
    if physical is None:
        # tifffile's JSON description records the shape (so that frame axes
        # beyond the first survive a round trip) and our metadata.
        return {"metadata": dict(metadata or {}), **TIFF_COMPRESSION}
    options = physical.writer_options(tuple(shape), dict(metadata or {}))
    return options if options.get("imagej") else {**options, **TIFF_COMPRESSION}  # ImageJ reads uncompressed hyperstacks


def write_rgb(
    path: str | Path, rgb: np.ndarray, *, overwrite: bool = False, metadata: dict | None = None, physical: PhysicalScale | None = None
) -> Path:
    """Write uint8 RGB (..., Y, X, 3): TIFF keeps the frame axes (and, with
    ``physical``, the input's pixel size in its convention), PNG/JPEG take one frame.

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

            tifffile.imwrite(tmp, rgb, photometric="rgb", bigtiff=rgb.nbytes > 2**31, **_tiff_options(rgb.shape, metadata, physical))
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


def write_rgb_tiff_strips(
    path: str | Path, shape: tuple[int, ...], strips, *, overwrite: bool = False, metadata: dict | None = None, physical: PhysicalScale | None = None
) -> Path:
    """Stream uint8 RGB of ``shape`` (..., Y, X, 3) into a tiled TIFF (an
    ImageJ hyperstack in strips, with ``physical`` from an ImageJ input).

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
            for x in range(0, rgb.shape[1], t):
                part = rgb[:, x : x + t]
                if part.shape[:2] == (t, t):
                    yield np.ascontiguousarray(part)
                    continue
                tile = np.zeros((t, t, 3), np.uint8)  # the frame's last row or column of tiles, zero-padded
                tile[: part.shape[0], : part.shape[1]] = part
                yield tile

    tmp = path.with_name(f".{path.name}.partial{path.suffix}")
    options = _tiff_options(shape, metadata, physical)
    # ImageJ reads strips, not tiles: uncompressed strips of t rows, as bytes.
    layout = {"rowsperstrip": t} if options.get("imagej") else {"tile": (t, t)}
    data = (rgb.tobytes() for *_, rgb in strips) if options.get("imagej") else tiles()
    try:
        nbytes = int(np.prod(shape, dtype=np.int64))
        tifffile.imwrite(tmp, data=data, shape=tuple(shape), dtype=np.uint8, photometric="rgb", bigtiff=nbytes > 2**31, **layout, **options)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def sample_pictures(folders, *, limit: int, max_side: int = 512) -> Iterator[np.ndarray]:
    """Up to ``limit`` RGB pictures from image ``folders``, spread evenly
    over them (sorted paths), each at most ``max_side`` px on its longer
    side; grayscale and unreadable files are skipped.

    Raises
    ------
    ValueError
        If the folders hold no image files.
    """
    for folder in folders:
        if not Path(folder).is_dir():
            raise ValueError(f"image folder not found: {folder}")
    paths = find_images(folders)
    if not paths:
        raise ValueError(f"no image files in {', '.join(map(str, folders))}")
    chosen = sorted({int(i) for i in np.linspace(0, len(paths) - 1, min(limit, len(paths)))})
    # Checked now, read as they are used: a few dozen pictures need not be held at once.
    pictures = (read_rgb(paths[index], max_side=max_side) for index in chosen)
    return (picture for picture in pictures if picture is not None)
