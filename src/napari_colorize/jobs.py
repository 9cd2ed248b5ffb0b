"""One colorization job of the widget, without napari or Qt.

A :class:`ColorizeRequest` is captured on the GUI thread (see
:mod:`napari_colorize.layer_geometry`), :func:`run_request` runs it in a
worker thread into the output store and hands back a
:class:`ColorizeOutcome`, and :func:`output_metadata` records how the result
was made, through the same :func:`napari_colorize.provenance.provenance` as
the command line.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .engine import ColorizeCancelled
from .model import Colorizer
from .options import ColorizeOptions
from .provenance import METADATA_KEY, provenance, uncertainty_details

logger = logging.getLogger(__name__)


@dataclass
class ColorizeRequest:
    """Everything a worker needs, captured on the GUI thread when Run is pressed.

    Attributes
    ----------
    data : array_like
        The input layer's data (one level of a multiscale layer), not yet
        read: NumPy or dask (see :func:`napari_colorize.layer_geometry.lazy_data`),
        so that slicing it reads only the slice, frame by frame.
    index : tuple of slice
        Part of ``data`` to colorize; slices keep every axis, so the output
        has the input layer's dimensionality.
    rgb_input : bool
        The layer is RGB: colorize its luminance.
    options : ColorizeOptions
        The options to colorize with; ``model`` is a shipped name or a
        checkpoint path, loaded by the worker.
    kind : {'result', 'preview'}
    layer_name, layer_id : str
        The input layer, to name the output and find an earlier one.
    placement : dict
        scale, translate, rotate... for the output layer.
    frames : str
        'current' or 'all' (recorded in metadata).
    notes : dict
        Anything else to record in the metadata (e.g. how a preview was reduced).
    level_shapes : list of tuple, optional
        For a multiscale input, the (frames..., Y, X) shapes of its levels:
        the output gets the same levels.
    uncertainty : bool
        Also compute the model's per-pixel uncertainty, for a second layer.
    hints : ndarray, optional
        Colour hints, (frame, y, x, r, g, b) rows in the pixels of the
        selected part (see :func:`napari_colorize.layer_geometry.request_hints`).
    reference : array_like, optional
        A colour image (Y, X, 3) whose palette the result follows.
    """

    data: Any
    index: tuple
    rgb_input: bool
    options: ColorizeOptions
    kind: str
    layer_name: str
    layer_id: str
    placement: dict
    frames: str
    notes: dict = field(default_factory=dict)
    level_shapes: list | None = None
    uncertainty: bool = False
    hints: np.ndarray | None = None
    reference: Any = None

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the selected part, grayscale: (frames..., Y, X)."""
        return tuple(len(range(s.start, s.stop, s.step or 1)) for s in self.index)

    @property
    def frame_count(self) -> int:
        """Number of frames in the selected part (1 for a single Y, X frame)."""
        return max(1, int(np.prod(self.shape[:-2], dtype=np.int64)))

    def source(self):
        """The selected part of the input as grayscale frames, not yet read
        when the data is lazy (the luminance of an RGB layer)."""
        from .color import to_luminance

        if self.rgb_input:
            return to_luminance(self.data[(*self.index, slice(None))])
        return self.data[self.index]


@dataclass
class ColorizeOutcome:
    """What a worker hands back: an image, a cancellation, or an error.

    Attributes
    ----------
    rgb : ndarray or list of ndarray, optional
        The result (uint8, (..., Y, X, 3)); a list of levels for a multiscale one.
    colorizer : Colorizer, optional
        The model that ran, for the record.
    device : str
        The device that actually ran.
    seconds : float
    cancelled : bool
    error : Exception, optional
    stored_in : str
        The memory-mapped file holding a result too large for memory, or ''.
    uncertainty : ndarray or list of ndarray, optional
        The model's per-pixel uncertainty (float32, (..., Y, X), in [0, 1]),
        levels like ``rgb``, when the request asked for it.
    uncertainty_stored_in : str
        As ``stored_in``, for the uncertainty.
    """

    rgb: np.ndarray | list[np.ndarray] | None = None
    colorizer: Colorizer | None = None
    device: str = ""
    seconds: float = 0.0
    cancelled: bool = False
    error: Exception | None = None
    stored_in: str = ""
    uncertainty: np.ndarray | list[np.ndarray] | None = None
    uncertainty_stored_in: str = ""


def run_request(request: ColorizeRequest, *, progress: Callable[[int, int], None], cancel: Callable[[], bool]) -> ColorizeOutcome:
    """Run one request (in a worker thread); never raises, errors are returned.

    The checkpoint is loaded first so its name and sha256 can be recorded.
    The input is read frame by frame (tile by tile for huge frames) and the
    result written strip by strip into memory, or into a memory-mapped file
    when it is too large for memory (see :mod:`napari_colorize.output_store`).

    Parameters
    ----------
    request : ColorizeRequest
    progress : callable(done, total)
        Called after each batch of tiles.
    cancel : callable() -> bool
        Polled before each batch; True stops the run.

    Returns
    -------
    ColorizeOutcome
        With ``rgb`` (and ``uncertainty`` if asked for) on success,
        ``cancelled`` or ``error`` otherwise; no result file is left behind
        by a run that did not finish.
    """
    from . import output_store
    from .engine import prepare_model
    from .pipeline import colorize

    start = time.perf_counter()
    made: list[np.ndarray] = []  # every array allocated: none is kept by a run that does not finish

    def allocated(array: np.ndarray) -> np.ndarray:
        made.append(array)
        return array

    def with_levels(full: np.ndarray, label: str):
        if not request.level_shapes:
            return full
        levels = output_store.nearest_levels(full, request.level_shapes, label=label)
        made.extend(levels[1:])
        return levels

    try:
        colorizer = prepare_model(request.options)  # loaded first: its name and sha256 go into the metadata
        if request.uncertainty:
            colorizer.check_uncertainty()  # before any output is allocated
        device = str(colorizer.device)
        out = allocated(output_store.allocate((*request.shape, 3), label=request.layer_name))
        uncertainty_label = f"{request.layer_name}-uncertainty"
        uncertain = None
        if request.uncertainty:
            uncertain = allocated(output_store.allocate(request.shape, label=uncertainty_label, dtype=np.float32))
        # The source is grayscale already (an RGB layer's luminance): never guess again.
        options = request.options.replace(model=colorizer, device=device, rgb=False)
        colorize(
            request.source(),
            options=options,
            progress=progress,
            cancel=cancel,
            out=out,
            uncertainty=request.uncertainty,
            uncertainty_out=uncertain,
            hints=request.hints,
            reference=request.reference,
        )
        rgb = with_levels(out, request.layer_name)
        uncertainty = with_levels(uncertain, uncertainty_label) if uncertain is not None else None
    except ColorizeCancelled:
        for array in made:
            output_store.discard(array)
        return ColorizeOutcome(cancelled=True)
    except Exception as exc:  # every failure must reach the user and free the widget
        logger.debug("colorize failed", exc_info=True)
        for array in made:
            output_store.discard(array)
        return ColorizeOutcome(error=exc)
    return ColorizeOutcome(
        rgb=rgb,
        colorizer=colorizer,
        stored_in=str(output_store.file_of(out) or ""),
        device=device,
        seconds=time.perf_counter() - start,
        uncertainty=uncertainty,
        uncertainty_stored_in=str(output_store.file_of(uncertain) or "") if uncertain is not None else "",
    )


def output_metadata(request: ColorizeRequest, outcome: ColorizeOutcome, *, uncertainty: bool = False) -> dict[str, Any]:
    """How an output was made, for its layer metadata: ``{METADATA_KEY: record}``.

    The record is :func:`napari_colorize.provenance.provenance` (the note
    that colours are predicted, the model, every parameter, the device, the
    package version) plus what the widget knows: the kind of output, the
    model as chosen, the frames and region read, the source layer, the time
    taken, the file of a result kept on disk and the request's notes. With
    ``uncertainty``, the record of the uncertainty layer: it also says what
    the values are (:func:`napari_colorize.provenance.uncertainty_details`).
    """
    model = request.options.model
    stored_in = outcome.uncertainty_stored_in if uncertainty else outcome.stored_in
    details = {
        "kind": request.kind,
        "model_source": model.name if isinstance(model, Colorizer) else str(model),
        "frames": request.frames,
        "region": [[s.start, s.stop] for s in request.index],  # in the read level's pixels
        "source_layer": request.layer_name,
        "source_layer_id": request.layer_id,
        "input": "luminance of an RGB layer" if request.rgb_input else "grayscale layer",
        "seconds": round(outcome.seconds, 3),
        **({"stored_in": stored_in} if stored_in else {}),
        **request.notes,
        **(uncertainty_details(outcome.colorizer) if uncertainty else {}),
    }
    return {METADATA_KEY: provenance(request.options, outcome.colorizer, device=outcome.device, frame_shape=request.shape, **details)}


def output_name(layer_name: str, kind: str, *, uncertainty: bool = False) -> str:
    """Name of the output layer for an input layer ('<input> colorized',
    '<input> uncertainty', and 'preview' in place of 'colorized' for a preview)."""
    if uncertainty:
        return f"{layer_name} {'uncertainty' if kind == 'result' else 'preview uncertainty'}"
    return f"{layer_name} {'colorized' if kind == 'result' else 'preview'}"


def progress_text(request: ColorizeRequest, done: int, total: int) -> str:
    """'frame f/F, tile t/T' for ``done`` of ``total`` tiles of ``request``.

    Every frame of a request has the same size, so it has the same number of tiles.
    """
    frames = request.frame_count
    per_frame = max(1, total // frames)
    frame = min(frames, max(1, math.ceil(done / per_frame)))
    return f"frame {frame}/{frames}, tile {done - (frame - 1) * per_frame}/{per_frame}"
