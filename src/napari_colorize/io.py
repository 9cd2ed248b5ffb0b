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
            is_colour = axes.endswith("S") and data.shape[-1] in (3, 4)
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
            import json

            import tifffile

            tifffile.imwrite(
                tmp,
                rgb,
                photometric="rgb",
                compression="zlib",
                bigtiff=rgb.nbytes > 2**31,
                description=json.dumps(metadata or {}),
                metadata=None,
            )
        else:
            from PIL import Image

            options = {} if suffix == ".png" else {"quality": 95}
            Image.fromarray(rgb).save(tmp, **options)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
