"""Physical pixel size, read from an input TIFF and written to the output in
the same convention, so that Fiji, napari and tifffile show the colorized
stack at the scale of its input.

Three conventions are read: an ImageJ hyperstack (``spacing``, ``unit``,
``finterval`` and the resolution tags), an OME-TIFF (``PhysicalSizeX/Y/Z``
with their units, ``TimeIncrement``) and plain TIFF resolution tags (pixels
per inch or centimetre). The output keeps the convention: ImageJ in, ImageJ
hyperstack out; OME in, OME-TIFF out, with the axes; resolution tags in,
resolution tags out. The provenance goes where that convention keeps free
text (ImageJ ``Info`` and a property, an OME description and map
annotation, or the TIFF description).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Axes of a grayscale input that the output keeps in the ImageJ and OME
#: conventions (each followed by the RGB samples, 'S').
FRAME_AXES = set("TZQIC")


@dataclass(frozen=True)
class PhysicalScale:
    """The physical meaning of an input's pixels and frames.

    Attributes
    ----------
    convention : {'imagej', 'ome', 'resolution'}
        Where it was found, and where the output writes it.
    axes : str
        The grayscale input's axes, its last two 'YX' (e.g. 'TZYX'); ''
        when they are not known.
    pixel_size : (float, float)
        Size of one pixel along y and x, in ``unit``.
    unit : str
        'micron', 'nm', 'cm', 'inch'... as the input says it.
    spacing : float or None
        Distance between z planes, in ``unit``.
    frame_interval : float or None
        Time between frames (seconds, or the input's time unit).
    extra : dict
        What the convention keeps besides (OME units of z and time).
    """

    convention: str
    axes: str
    pixel_size: tuple[float, float]
    unit: str
    spacing: float | None = None
    frame_interval: float | None = None
    extra: dict = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """JSON-ready, for the provenance."""
        entries = {"convention": self.convention, "axes": self.axes, "pixel_size_yx": list(self.pixel_size), "unit": self.unit}
        entries.update({k: v for k, v in (("spacing", self.spacing), ("frame_interval", self.frame_interval)) if v is not None})
        return entries

    def writer_options(self, shape: tuple[int, ...], provenance: dict, *, rgb: bool = True) -> dict[str, Any]:
        """Keyword arguments of ``tifffile.imwrite`` for an output of
        ``shape`` in this convention, carrying ``provenance``: RGB (..., Y,
        X, 3), or with ``rgb=False`` one value per pixel (..., Y, X)."""
        text = json.dumps(provenance)
        resolution = (1.0 / self.pixel_size[1], 1.0 / self.pixel_size[0])
        samples = "S" if rgb else ""
        axes = self.axes + samples if len(self.axes) == len(shape) - len(samples) else ""
        if self.convention == "imagej" and axes and set(axes[: len(axes) - 2 - len(samples)]) <= set("TZC"):
            metadata = {"axes": axes, "unit": self.unit, "Info": text, "Properties": {"napari_colorize": text}}
            metadata.update({k: v for k, v in (("spacing", self.spacing), ("finterval", self.frame_interval)) if v is not None})
            return {"imagej": True, "resolution": resolution, "metadata": metadata}
        if self.convention == "ome" and axes:
            metadata = {"axes": axes, "PhysicalSizeY": self.pixel_size[0], "PhysicalSizeX": self.pixel_size[1]}
            metadata.update({"PhysicalSizeYUnit": self.unit, "PhysicalSizeXUnit": self.unit, **self.extra})
            if self.spacing is not None:
                metadata["PhysicalSizeZ"] = self.spacing
            if self.frame_interval is not None:
                metadata["TimeIncrement"] = self.frame_interval
            metadata.update({"Description": text, "MapAnnotation": {"napari_colorize": text}})
            return {"ome": True, "metadata": metadata}
        unit = {"inch": "INCH", "cm": "CENTIMETER", "centimeter": "CENTIMETER"}.get(self.unit.lower())
        if unit is None:  # resolution tags know inches and centimetres only: say it in micrometres via ImageJ's unit
            return {"resolution": resolution, "metadata": provenance}
        return {"resolution": resolution, "resolutionunit": unit, "metadata": provenance}


def read_physical(path: str | Path) -> PhysicalScale | None:
    """The physical scale an input TIFF records, or None (not a TIFF, it
    records none, or it cannot be parsed: never raises)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            page = series.keyframe
            axes = "".join(a for a in series.axes if a != "S")
            if not axes.endswith("YX"):
                axes = ""
            if tif.is_ome:
                return _from_ome(tif.ome_metadata, axes)
            pixel_size = _pixel_size(page)
            if tif.is_imagej:
                meta = tif.imagej_metadata or {}
                unit = str(meta.get("unit", "")).replace("\\u00B5", "µ")
                if pixel_size is None and "spacing" not in meta:
                    return None
                return PhysicalScale(
                    "imagej", axes, pixel_size or (1.0, 1.0), unit or "pixel", _number(meta.get("spacing")), _number(meta.get("finterval"))
                )
            if pixel_size is None or page.tags.get("ResolutionUnit") is None:
                return None
            unit = {2: "inch", 3: "cm"}.get(int(page.tags["ResolutionUnit"].value))
            return None if unit is None else PhysicalScale("resolution", axes, pixel_size, unit)
    except Exception:  # a damaged file records nothing here; the strict reader says what is wrong with it
        return None


def _pixel_size(page) -> tuple[float, float] | None:
    """(y, x) pixel size from the resolution tags (pixels per unit), if set and not 1."""
    sizes = []
    for name in ("YResolution", "XResolution"):
        tag = page.tags.get(name)
        if tag is None:
            return None
        numerator, denominator = tag.value
        if not numerator or not denominator:
            return None
        sizes.append(denominator / numerator)
    return None if sizes == [1.0, 1.0] else (sizes[0], sizes[1])


def _from_ome(xml: str, axes: str) -> PhysicalScale | None:
    pixels = re.search(r"<Pixels\b([^>]*)>", xml or "")
    if pixels is None:
        return None
    attributes = dict(re.findall(r'(\w+)="([^"]*)"', pixels.group(1)))
    size_x, size_y = _number(attributes.get("PhysicalSizeX")), _number(attributes.get("PhysicalSizeY"))
    if size_x is None and size_y is None:
        return None
    unit = attributes.get("PhysicalSizeXUnit", "µm")
    extra = {key: attributes[key] for key in ("PhysicalSizeZUnit", "TimeIncrementUnit") if key in attributes}
    return PhysicalScale(
        "ome",
        axes,
        (size_y or size_x, size_x or size_y),
        unit,
        _number(attributes.get("PhysicalSizeZ")),
        _number(attributes.get("TimeIncrement")),
        extra,
    )


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None
