"""Writing a result as a multiscale OME-Zarr, strip by strip.

The community's format for images larger than memory: a chunked pyramid
that napari (with napari-ome-zarr), Fiji (MoBIE, BigDataViewer) and
OMERO read lazily, level by level. The RGB result is stored as three
channels (axis 'c', rendered red, green and blue through the 'omero'
metadata), in NGFF's axis order (t, c, z, y, x); the full-resolution level
is filled strip by strip as the colorizer yields them, and each coarser
level is made from the one before, strip by strip, so memory stays bounded
by a strip whatever the image size. The metadata is written with the
ome-zarr library; the provenance sits in the group's attributes under
"napari_colorize". Written under a temporary name, renamed when complete.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from .formats import ImageFileError
from .physical import PhysicalScale

ZARR_SUFFIX = ".zarr"
#: Chunk side in y and x; also the strip height the writer expects.
CHUNK = 256
#: Coarser levels are made until the image fits in one chunk (at most this many levels).
MAX_LEVELS = 8
#: NGFF unit names of the units inputs give.
NGFF_UNITS = {"micron": "micrometer", "µm": "micrometer", "um": "micrometer", "nm": "nanometer", "mm": "millimeter", "cm": "centimeter", "inch": "inch"}
RGB_CHANNELS = [("red", "FF0000"), ("green", "00FF00"), ("blue", "0000FF")]


def is_zarr_path(path: str | Path) -> bool:
    """Whether an output path asks for OME-Zarr (``NAME.zarr``, ``NAME.ome.zarr``)."""
    return Path(path).suffix.lower() == ZARR_SUFFIX


def frame_axes(count: int, physical: PhysicalScale | None) -> list[str]:
    """NGFF names of ``count`` leading frame axes: the input's own T and Z if
    it says them, else 'z' for one (a stack of sections) and 't', 'z' for two."""
    if physical is not None and len(physical.axes) == count + 2 and set(physical.axes[:count]) <= {"T", "Z"}:
        return [axis.lower() for axis in physical.axes[:count]]
    if count > 2:
        raise ImageFileError(f"OME-Zarr holds at most two frame axes (t, z), but the result has {count}: write a .tif")
    return ["t", "z"][2 - count :] if count == 2 else ["z"] * count


def level_shapes(height: int, width: int) -> list[tuple[int, int]]:
    """(Y, X) of each pyramid level, halving until one chunk holds it."""
    shapes = [(height, width)]
    while max(shapes[-1]) > CHUNK and len(shapes) < MAX_LEVELS:
        y, x = shapes[-1]
        shapes.append(((y + 1) // 2, (x + 1) // 2))
    return shapes


def write_rgb_ome_zarr_strips(
    path: str | Path,
    shape: tuple[int, ...],
    strips,
    *,
    overwrite: bool = False,
    metadata: dict | None = None,
    physical: PhysicalScale | None = None,
    name: str = "",
) -> Path:
    """Stream uint8 RGB of ``shape`` (..., Y, X, 3) into a multiscale OME-Zarr.

    Parameters
    ----------
    path : path
        The ``.zarr`` folder to write.
    shape : tuple of int
        The result's shape, (frames..., Y, X, 3), at most two frame axes.
    strips : iterable
        ``(frame_index, row_start, row_stop, rgb_rows)`` in order, as
        :func:`napari_colorize.engine.colorize_strips` yields them.
    overwrite : bool
        Replace an existing ``path`` (only once the new one is complete).
    metadata : dict, optional
        Stored in the group's attributes (the provenance).
    physical : PhysicalScale, optional
        The input's pixel size, unit and frame axes, for the scale transforms.
    name : str
        The image's name in the metadata.
    """
    import warnings

    import zarr

    with warnings.catch_warnings():  # ome-zarr's module defaults build its own deprecated Scaler: not the user's concern
        warnings.simplefilter("ignore", DeprecationWarning)
        from ome_zarr.writer import write_multiscales_metadata

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    *leading, height, width, _ = shape
    axes = frame_axes(len(leading), physical)
    layout = ZarrLayout(axes, tuple(leading))
    tmp = path.with_name(f".{path.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        group = zarr.open_group(str(tmp), mode="w")
        levels = [
            group.create_array(str(number), shape=layout.shape(y, x), chunks=layout.chunks(), dtype=np.uint8, fill_value=0)
            for number, (y, x) in enumerate(level_shapes(height, width))
        ]
        for index, r0, r1, rgb in strips:
            levels[0][layout.key(index, slice(r0, r1))] = np.moveaxis(rgb, -1, 0)
        for finer, coarser in zip(levels, levels[1:]):
            _downsample_level(finer, coarser, layout)
        write_multiscales_metadata(
            group,
            datasets=_datasets(len(levels), layout, physical),
            axes=layout.names,
            axes_units=_units(axes, physical),
            name=name or path.name.split(".")[0],
            metadata={"omero": _omero()},
        )
        group.attrs.update(dict(metadata or {}))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


class ZarrLayout:
    """Where the result's axes go in the NGFF order (t, c, z, y, x): the
    result is (frames..., Y, X, 3) with frame axes named ``axes``."""

    def __init__(self, axes: list[str], frames: tuple[int, ...]):
        self.axes, self.frames = axes, frames
        self.names = [*(a for a in axes if a == "t"), "c", *(a for a in axes if a == "z"), "y", "x"]

    def shape(self, y: int, x: int) -> tuple[int, ...]:
        sizes = dict(zip(self.axes, self.frames), c=3, y=y, x=x)
        return tuple(sizes[name] for name in self.names)

    def chunks(self) -> tuple[int, ...]:
        return tuple({"c": 3, "y": CHUNK, "x": CHUNK}.get(name, 1) for name in self.names)

    def key(self, index: tuple[int, ...], rows: slice) -> tuple:
        """The zarr index of frame ``index`` (in the result's order), rows ``rows``, as (3, rows, X)."""
        where = dict(zip(self.axes, index), c=slice(None), y=rows, x=slice(None))
        return tuple(where[name] for name in self.names)


def _downsample_level(finer, coarser, layout: ZarrLayout) -> None:
    """Fill ``coarser`` with 2 x 2 means of ``finer``, frame by frame, strip by strip."""
    height = finer.shape[-2]
    for index in np.ndindex(*layout.frames) if layout.frames else [()]:
        for r0 in range(0, height, 2 * CHUNK):
            rows = np.asarray(finer[layout.key(index, slice(r0, r0 + 2 * CHUNK))], dtype=np.float32)
            rows = np.pad(rows, ((0, 0), (0, rows.shape[1] % 2), (0, rows.shape[2] % 2)), mode="edge")
            means = rows.reshape(3, rows.shape[1] // 2, 2, rows.shape[2] // 2, 2).mean(axis=(2, 4))
            coarser[layout.key(index, slice(r0 // 2, r0 // 2 + means.shape[1]))] = (means + 0.5).astype(np.uint8)


def _datasets(count: int, layout: ZarrLayout, physical: PhysicalScale | None) -> list[dict]:
    """Each level's path and scale transform (pixel sizes times 2 ** level)."""
    pixel = physical.pixel_size if physical is not None else (1.0, 1.0)
    steps = {"z": physical.spacing, "t": physical.frame_interval} if physical is not None else {}
    datasets = []
    for level in range(count):
        scale = dict(c=1.0, y=pixel[0] * 2**level, x=pixel[1] * 2**level)
        scale.update({axis: float(steps.get(axis) or 1.0) for axis in layout.axes})
        datasets.append({"path": str(level), "coordinateTransformations": [{"type": "scale", "scale": [scale[n] for n in layout.names]}]})
    return datasets


def _units(axes: list[str], physical: PhysicalScale | None) -> dict[str, str] | None:
    unit = NGFF_UNITS.get((physical.unit if physical is not None else "").lower())
    if unit is None:
        return None
    units = {"y": unit, "x": unit}
    if "z" in axes and physical.spacing is not None:
        units["z"] = unit
    return units


def _omero() -> dict:
    """Render the three channels as red, green and blue, 0..255."""
    window = {"min": 0, "max": 255, "start": 0, "end": 255}
    channels = [{"label": label, "color": colour, "window": window, "active": True} for label, colour in RGB_CHANNELS]
    return {"channels": channels, "rdefs": {"model": "color"}}
