"""How an output was made: one record, written by the command line into
files and by the widget into layer metadata."""

from __future__ import annotations

from typing import Any

from .engine import working_shape
from .int8_runtime import int8_engine
from .model import Colorizer
from .options import ColorizeOptions
from .prediction import resolve_precision

#: Key under which outputs record how they were made.
METADATA_KEY = "napari_colorize"
PREDICTED_NOTE = "colours are predicted by a model, not measured"
#: What an uncertainty output holds.
UNCERTAINTY_NOTE = (
    "per-pixel uncertainty of the predicted colour: the normalised entropy of the model's predicted distribution "
    "over the ab bins, 0 certain (one bin), 1 uniform over all bins"
)


def provenance(
    options: ColorizeOptions, colorizer: Colorizer, *, device: str, frame_shape: tuple[int, ...] | None = None, **details: Any
) -> dict[str, Any]:
    """The record of one colorization.

    Parameters
    ----------
    options : ColorizeOptions
        The options it ran with (recorded as ``parameters``).
    colorizer : Colorizer
        The model that ran: its name, checkpoint digest and architecture.
    device : str
        The device that actually ran (not 'auto').
    frame_shape : tuple of int, optional
        Shape of the input, (..., Y, X): the record then also gives
        ``working_shape``, the frame size the network worked at, which is
        not the one ``scale`` alone gives where a small frame was enlarged.
    **details
        What the face adds (the source layer, the region, timing...).

    Returns
    -------
    dict
        JSON-ready: the note that colours are predicted, the model, every
        parameter, the device and the arithmetic that ran, the package
        version, what restoration ran (only when one did), then ``details``.
    """
    from . import __version__

    precision = resolve_precision(colorizer, options.precision)
    return {
        "note": PREDICTED_NOTE,
        "predicted": True,
        "model": colorizer.name,
        "model_sha256": colorizer.sha256,
        "model_architecture": colorizer.architecture,
        "parameters": options.parameters(),
        **({"working_shape": list(working_shape(frame_shape[-2:], options.scale, smallest_side=colorizer.smallest_side))} if frame_shape else {}),
        "device_used": str(device),
        "precision_used": precision,
        **({"int8_engine": int8_engine()} if precision == "int8" else {}),
        "napari_colorize_version": __version__,
        **({"restoration": options.restoration.describe()} if options.restoration.active else {}),
        **details,
    }


def uncertainty_details(colorizer: Colorizer) -> dict[str, Any]:
    """What an uncertainty output adds to :func:`provenance`: what it shows and over how many bins."""
    return {"shows": "uncertainty", "uncertainty": UNCERTAINTY_NOTE, "bins": colorizer.num_bins, "value_range": [0.0, 1.0]}
