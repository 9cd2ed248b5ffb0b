"""The napari dock widget: a thin face over :func:`napari_colorize.colorize`.

The widget picks an input layer and the options, runs ``colorize`` in a worker
thread (so the viewer stays usable), bridges its progress and cancel
callbacks, and adds the result as an RGB layer that sits exactly where the
input sits (same scale, translate, rotate, shear, affine, units and axis
labels) and records in its metadata how it was made. Colours are predicted by
a model, not measured; the layer metadata says so.

Nothing here knows how colour is predicted: all of that lives in the core.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    RadioButtons,
    SpinBox,
)

from . import __version__
from .model import shipped_models
from .engine import ColorizeCancelled
from .normalization import DEFAULT_PERCENTILES
from .options import DEFAULT_BATCH_SIZE, DEFAULT_OVERLAP

if TYPE_CHECKING:
    import napari
    import napari.layers

logger = logging.getLogger(__name__)

#: Metadata key under which output layers record how they were made.
METADATA_KEY = "napari_colorize"
#: Model-chooser entry that switches to a checkpoint file.
CHECKPOINT_FILE_CHOICE = "checkpoint file..."
#: Working pixels a preview may use: 416 x 416 is 2 x 2 tiles at the default
#: overlap, about a second on a laptop CPU for any view size.
PREVIEW_WORKING_PIXELS = 416 * 416
PREDICTED_NOTE = "colours are predicted by a model, not measured"

_TOOLTIPS = {
    "input": "Grayscale image layer to colorize. RGB layers are offered too: their luminance is used.",
    "model": "Shipped model, or 'checkpoint file...' to use a .safetensors checkpoint you trained.",
    "checkpoint": "A napari-colorize .safetensors checkpoint (see `napari-colorize train`).",
    "device": "Where the network runs. 'auto' takes a GPU (CUDA, then Apple MPS) when present, else the CPU.",
    "scale": (
        "Working resolution relative to the data: 0.5 halves it. Pick it so objects appear at the size the model "
        "knows (a few tens of pixels). The output always keeps the full resolution of the input."
    ),
    "overlap": "Overlap of neighbouring 224-px tiles, in working pixels. More overlap: smoother seams, more tiles.",
    "temperature": (
        "Annealed-mean temperature T: lower is bolder, more saturated colour; 1 is the plain mean (muted). "
        "The paper uses 0.38. Ignored by regression models."
    ),
    "normalize": "Intensity range mapped to black..white: robust percentiles of each frame, or of the whole stack.",
    "frames": "Colorize only the frame shown now, or every frame of the stack.",
    "keep": "Keep earlier results as separate layers instead of replacing them.",
    "preview": "Colorize just the part of the current slice in view, at a reduced working resolution if it is large.",
}


# ---------------------------------------------------------------- settings


def settings_file() -> Path:
    """Where the widget remembers its settings (a JSON file in the user config dir)."""
    try:
        from platformdirs import user_config_dir

        folder = Path(user_config_dir("napari-colorize", appauthor=False))
    except ImportError:  # platformdirs comes with napari; this is a fallback
        folder = Path.home() / ".config" / "napari-colorize"
    return folder / "widget.json"


def load_settings() -> dict[str, Any]:
    """The remembered settings, or {} when there are none or they are unreadable."""
    path = settings_file()
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return settings if isinstance(settings, dict) else {}


def save_settings(settings: dict[str, Any]) -> None:
    """Remember ``settings``; a failure to write is logged, never raised."""
    path = settings_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=2, sort_keys=True), encoding="utf-8")
    except OSError as exc:
        logger.warning("cannot save napari-colorize settings to %s: %s", path, exc)


# ---------------------------------------------------------------- layers and devices


def is_colorize_output(layer) -> bool:
    """True for layers this plugin made."""
    return isinstance(getattr(layer, "metadata", None), dict) and METADATA_KEY in layer.metadata


def is_colorizable(layer) -> bool:
    """True for Image layers the widget can take: grayscale, or RGB (as luminance).

    Labels, Points, Shapes... are not Image layers; complex-valued images and
    this plugin's own outputs are left out too.
    """
    from napari.layers import Image

    if not isinstance(layer, Image) or is_colorize_output(layer):
        return False
    return np.dtype(layer.dtype).kind in "biuf"


def available_devices() -> list[str]:
    """Devices offered in the chooser: auto, cpu, each cuda:N present, mps if present."""
    import torch

    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def describe_device(device: str) -> str:
    """The device that will actually run for a chooser entry, or why none can."""
    from .devices import resolve_device

    try:
        return f"runs on {resolve_device(device)}"
    except ValueError as exc:
        return f"unavailable: {exc}"


def _full_resolution(layer) -> Any:
    """The layer's data at full resolution (level 0 of a multiscale layer)."""
    return layer.data[0] if layer.multiscale else layer.data


def lazy_data(data) -> Any:
    """``data`` as an array whose slices are read only when computed: NumPy
    arrays as they are, dask as it is, anything else (zarr, h5py...) wrapped
    in dask, so slicing a frame or a view never reads the whole array."""
    from ._arrays import is_dask_array

    if isinstance(data, np.ndarray) or is_dask_array(data):
        return data
    import dask.array as da

    chunks = getattr(data, "chunks", None)
    return da.from_array(data, chunks=chunks if isinstance(chunks, tuple) else "auto")


def preview_level(layer, scale: float) -> int:
    """The coarsest level of a multiscale layer that still has the working
    resolution ``scale`` (relative to full resolution)."""
    if not layer.multiscale:
        return 0
    factors = np.asarray(layer.downsample_factors)[:, layer.ndim - 2 : layer.ndim]
    level = 0
    for number, (fy, fx) in enumerate(factors):
        if max(fy, fx) <= 1.0 / scale + 1e-9:
            level = number
    return level


def current_frame_index(layer, world_point) -> tuple[int, ...]:
    """Index of the frame shown now along the layer's leading (non-Y, X) axes."""
    data_point = np.asarray(layer.world_to_data(world_point), dtype=float)
    shape = _full_resolution(layer).shape[: layer.ndim]
    leading = data_point[: layer.ndim - 2]
    return tuple(int(np.clip(round(v), 0, n - 1)) for v, n in zip(leading, shape[:-2]))


def _camera_and_canvas_size(viewer) -> tuple[Any, tuple[float, float]]:
    """The 2D camera and the canvas (height, width) in screen pixels, across napari versions."""
    scene = getattr(viewer, "scene", None)
    camera = scene.camera if scene is not None else viewer.camera  # napari < 0.9 has viewer.camera
    canvas = getattr(viewer, "canvas", None)
    size = canvas.size if canvas is not None and hasattr(canvas, "size") else viewer._canvas_size
    return camera, tuple(float(n) for n in size)


def visible_region(viewer, layer) -> tuple[slice, slice] | None:
    """Rows and columns of the layer's current Y, X frame visible on the canvas.

    Returns None when the layer is out of view. Falls back to the whole frame
    in 3D view or when the canvas shows other axes than the layer's last two.
    """
    height, width = _full_resolution(layer).shape[layer.ndim - 2 : layer.ndim]
    whole = (slice(0, height), slice(0, width))
    displayed = list(viewer.dims.displayed)
    world_ndim = viewer.dims.ndim
    if viewer.dims.ndisplay != 2 or displayed != [world_ndim - 2, world_ndim - 1]:
        return whole
    camera, canvas_size = _camera_and_canvas_size(viewer)
    center = np.asarray(camera.center, dtype=float)[-2:]
    half = np.asarray(canvas_size) / (2.0 * camera.zoom)
    point = np.asarray(viewer.dims.point, dtype=float)
    corners = []
    for dy in (-1, 1):
        for dx in (-1, 1):
            point[-2:] = center + half * (dy, dx)
            corners.append(np.asarray(layer.world_to_data(point), dtype=float)[-2:])
    corners = np.array(corners)
    low = np.floor(corners.min(axis=0)).astype(int)
    high = np.ceil(corners.max(axis=0)).astype(int) + 1
    y0, x0 = np.maximum(low, 0)
    y1, x1 = np.minimum(high, (height, width))
    if y1 <= y0 or x1 <= x0:
        return None
    return slice(int(y0), int(y1)), slice(int(x0), int(x1))


def _level_slice(full: slice, factor: float, size: int) -> slice:
    """A full-resolution slice in the coordinates of a level ``factor`` times smaller."""
    start = min(size - 1, int(math.floor(full.start / factor)))
    return slice(start, max(start + 1, min(size, int(math.ceil(full.stop / factor)))))


def placement_kwargs(layer, data_offset) -> dict[str, Any]:
    """Layer keyword arguments that put an output where the input sits.

    ``data_offset`` is the input data index of the output's first pixel; it is
    carried through the input's scale, rotation and shear into the translate,
    so a cropped or single-frame output lands on exactly its input pixels.
    """
    from napari.utils.transforms import CompositeAffine

    data2physical = CompositeAffine(scale=layer.scale, translate=layer.translate, rotate=layer.rotate, shear=layer.shear, ndim=layer.ndim)
    placement = {
        "scale": tuple(layer.scale),
        "translate": tuple(np.asarray(data2physical(np.asarray(data_offset, dtype=float)), dtype=float)),
        "rotate": np.asarray(layer.rotate),
        "shear": np.asarray(layer.shear),
        "affine": np.asarray(layer.affine.affine_matrix),
    }
    if hasattr(layer, "units"):  # napari >= 0.6
        placement["units"] = tuple(str(unit) for unit in layer.units)
        placement["axis_labels"] = tuple(layer.axis_labels)
    return placement


# ---------------------------------------------------------------- the job


@dataclass
class ColorizeRequest:
    """Everything a worker needs, captured on the GUI thread when Run is pressed.

    Attributes
    ----------
    data : array_like
        The input layer's data (one level of a multiscale layer), not yet
        read: NumPy or lazy (dask).
    index : tuple of slice
        Part of ``data`` to colorize; slices keep every axis, so the output
        has the input layer's dimensionality.
    rgb_input : bool
        The layer is RGB: colorize its luminance.
    options : dict
        Keyword arguments for :func:`colorize` (without progress and cancel).
    kind : {'result', 'preview'}
    layer_name, layer_id : str
        The input layer, to name the output and find an earlier one.
    placement : dict
        scale, translate, rotate... for the output layer.
    frames : str
        'current' or 'all' (recorded in metadata).
    level_shapes : list of tuple, optional
        For a multiscale input, the (frames..., Y, X) shapes of its levels:
        the output gets the same levels.
    """

    data: Any
    index: tuple
    rgb_input: bool
    options: dict
    kind: str
    layer_name: str
    layer_id: str
    placement: dict
    frames: str
    notes: dict = field(default_factory=dict)
    level_shapes: list | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the selected part, grayscale: (frames..., Y, X)."""
        return tuple(len(range(s.start, s.stop, s.step or 1)) for s in self.index)

    def source(self):
        """The selected part of the input as grayscale frames, not yet read
        when the layer is lazy (the luminance of an RGB layer)."""
        from .color import to_luminance

        if self.rgb_input:
            return to_luminance(lazy_data(self.data)[(*self.index, slice(None))])
        return lazy_data(self.data)[self.index]


@dataclass
class ColorizeOutcome:
    """What a worker hands back: an image, a cancellation, or an error."""

    rgb: np.ndarray | list[np.ndarray] | None = None
    model_name: str = ""
    model_sha256: str = ""
    device: str = ""
    seconds: float = 0.0
    cancelled: bool = False
    error: Exception | None = None
    stored_in: str = ""


def run_request(request: ColorizeRequest, *, progress: Callable[[int, int], None], cancel: Callable[[], bool]) -> ColorizeOutcome:
    """Run one request (in a worker thread); never raises, errors are returned.

    The checkpoint is loaded first so its name and sha256 can be recorded.
    The input is read frame by frame (tile by tile for huge frames) and the
    result written strip by strip into memory, or into a memory-mapped file
    when it is too large for memory.
    """
    from . import _output_store
    from .model import load_checkpoint
    from .devices import resolve_device
    from .pipeline import colorize

    start = time.perf_counter()
    options = dict(request.options)
    out = None
    try:
        device = resolve_device(options.pop("device"))
        colorizer = load_checkpoint(options.pop("model"), device=str(device))
        out = _output_store.allocate((*request.shape, 3), label=request.layer_name)
        colorize(request.source(), model=colorizer, device=str(device), progress=progress, cancel=cancel, rgb=False, out=out, **options)
        rgb = _output_store.nearest_levels(out, request.level_shapes, label=request.layer_name) if request.level_shapes else out
    except ColorizeCancelled:
        _output_store.discard(out)
        return ColorizeOutcome(cancelled=True)
    except Exception as exc:  # every failure must reach the user and free the widget
        logger.debug("colorize failed", exc_info=True)
        _output_store.discard(out)
        return ColorizeOutcome(error=exc)
    return ColorizeOutcome(
        rgb=rgb,
        stored_in=str(_output_store.file_of(out) or ""),
        model_name=colorizer.name,
        model_sha256=colorizer.sha256,
        device=str(device),
        seconds=time.perf_counter() - start,
    )


def output_metadata(request: ColorizeRequest, outcome: ColorizeOutcome) -> dict[str, Any]:
    """How an output was made, for its layer metadata."""
    options = {k: (list(v) if isinstance(v, tuple) else v) for k, v in request.options.items()}
    options.pop("model", None)
    return {
        METADATA_KEY: {
            "note": PREDICTED_NOTE,
            "predicted": True,
            "kind": request.kind,
            "model": outcome.model_name,
            "model_sha256": outcome.model_sha256,
            "model_source": str(request.options.get("model")),
            "parameters": options,
            "device_used": outcome.device,
            "frames": request.frames,
            "region": [[s.start, s.stop] for s in request.index],  # in the read level's pixels
            "source_layer": request.layer_name,
            "source_layer_id": request.layer_id,
            "input": "luminance of an RGB layer" if request.rgb_input else "grayscale layer",
            "napari_colorize_version": __version__,
            "seconds": round(outcome.seconds, 3),
            **({"stored_in": outcome.stored_in} if outcome.stored_in else {}),
            **request.notes,
        }
    }


def output_name(layer_name: str, kind: str) -> str:
    """Name of the output layer for an input layer."""
    return f"{layer_name} {'colorized' if kind == 'result' else 'preview'}"


# ---------------------------------------------------------------- the widget


class ColorizeWidget(Container):
    """Dock widget: colorize a grayscale layer with a trained model.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose layers are offered and which receives the results.

    Notes
    -----
    Callbacks are public methods (``run``, ``preview``, ``cancel``...) so they
    can be called directly, in tests or scripts. ``running`` is True while a
    worker is busy; a second Run is refused until it ends.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self._worker = None
        self._request: ColorizeRequest | None = None
        self._cancel_event = threading.Event()
        self._make_controls()
        super().__init__(
            widgets=[
                self.input_layer,
                self.input_info,
                self.model,
                self.checkpoint,
                self.device,
                self.device_info,
                self.scale,
                self.overlap,
                self.temperature,
                self.normalize,
                self.frames,
                self.keep_copies,
                Container(widgets=[self.run_button, self.preview_button, self.cancel_button], layout="horizontal", labels=False),
                self.progress_bar,
                self.status,
            ],
            labels=True,
        )
        self.apply_settings(load_settings())
        self._connect_events()
        self._update_model_controls()
        self._update_device_info()
        self._update_input_info()
        self._set_running(False)

    # ---- construction

    def _make_controls(self) -> None:
        self.input_layer = ComboBox(label="Input layer", choices=self._input_choices, nullable=False, tooltip=_TOOLTIPS["input"])
        self.input_info = Label(label="", value="")
        self.model = ComboBox(label="Model", choices=[*shipped_models(), CHECKPOINT_FILE_CHOICE], tooltip=_TOOLTIPS["model"])
        self.checkpoint = FileEdit(label="Checkpoint", mode="r", filter="*.safetensors", tooltip=_TOOLTIPS["checkpoint"])
        self.device = ComboBox(label="Device", choices=available_devices(), value="auto", tooltip=_TOOLTIPS["device"])
        self.device_info = Label(label="", value="")
        self.scale = FloatSpinBox(label="Working resolution", value=1.0, min=0.05, max=4.0, step=0.05, tooltip=_TOOLTIPS["scale"])
        self.overlap = SpinBox(label="Tile overlap (px)", value=DEFAULT_OVERLAP, min=0, max=192, step=8, tooltip=_TOOLTIPS["overlap"])
        self.temperature = FloatSpinBox(
            label="Saturation (temperature T)", value=0.38, min=0.01, max=1.0, step=0.01, tooltip=_TOOLTIPS["temperature"]
        )
        self.normalize = ComboBox(
            label="Contrast from",
            choices=[("each frame", "frame"), ("whole stack", "stack")],
            value="frame",
            tooltip=_TOOLTIPS["normalize"],
        )
        self.frames = RadioButtons(
            label="Frames",
            choices=[("current slice", "current"), ("every frame", "all")],
            value="current",
            orientation="horizontal",
            tooltip=_TOOLTIPS["frames"],
        )
        self.keep_copies = CheckBox(label="Keep earlier results", value=False, tooltip=_TOOLTIPS["keep"])
        self.run_button = PushButton(text="Run")
        self.preview_button = PushButton(text="Preview view", tooltip=_TOOLTIPS["preview"])
        self.cancel_button = PushButton(text="Cancel")
        self.progress_bar = ProgressBar(label="Progress", value=0, min=0, max=1)
        self.status = Label(label="", value="Ready. " + PREDICTED_NOTE.capitalize() + ".")
        for label in (self.input_info, self.device_info, self.status):
            if hasattr(label.native, "setWordWrap"):  # a long message wraps instead of widening the dock
                label.native.setWordWrap(True)

    def _connect_events(self) -> None:
        layers = self._viewer.layers
        layers.events.inserted.connect(self._on_layer_inserted)
        layers.events.removed.connect(self.refresh_inputs)
        layers.events.moved.connect(self.refresh_inputs)
        for layer in layers:
            layer.events.name.connect(self.refresh_inputs)
        self.input_layer.changed.connect(self._update_input_info)
        self.model.changed.connect(self._update_model_controls)
        self.device.changed.connect(self._update_device_info)
        self.run_button.changed.connect(self.run)
        self.preview_button.changed.connect(self.preview)
        self.cancel_button.changed.connect(self.cancel)
        if hasattr(self.native, "destroyed"):  # closing the dock stops a running worker
            cancel_event = self._cancel_event  # not self: it may be half torn down by then
            self.native.destroyed.connect(lambda *_: cancel_event.set())

    # ---- choices and info

    def _input_choices(self, _widget=None) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in reversed(self._viewer.layers) if is_colorizable(layer)]

    def _on_layer_inserted(self, event) -> None:
        event.value.events.name.connect(self.refresh_inputs)
        self.refresh_inputs()

    def refresh_inputs(self, *_args) -> None:
        """Re-read the layer list into the input chooser (keeps the choice if it is still there)."""
        self.input_layer.reset_choices()
        self._update_input_info()

    def _update_input_info(self, *_args) -> None:
        layer = self.input_layer.value
        if layer is None:
            self.input_info.value = "Add or open a grayscale image layer."
            return
        shape = _full_resolution(layer).shape[: layer.ndim]
        frames = int(np.prod(shape[:-2], dtype=np.int64))
        kind = "RGB, luminance used" if layer.rgb else str(np.dtype(layer.dtype))
        if layer.multiscale:
            kind += f", {len(layer.data)} levels"
        self.input_info.value = f"{frames} frame{'s' if frames != 1 else ''} of {shape[-2]} x {shape[-1]} ({kind})"

    def _update_model_controls(self, *_args) -> None:
        self.checkpoint.visible = self.model.value == CHECKPOINT_FILE_CHOICE

    def _update_device_info(self, *_args) -> None:
        self.device_info.value = describe_device(self.device.value)

    # ---- settings

    def settings(self) -> dict[str, Any]:
        """The current choices, as remembered between runs and sessions."""
        return {
            "model": self.model.value,
            "checkpoint": str(self.checkpoint.value or ""),
            "device": self.device.value,
            "scale": self.scale.value,
            "overlap": self.overlap.value,
            "temperature": self.temperature.value,
            "normalize": self.normalize.value,
            "frames": self.frames.value,
            "keep_copies": self.keep_copies.value,
        }

    def apply_settings(self, settings: dict[str, Any]) -> None:
        """Restore remembered choices; values no longer valid here are skipped."""
        for name, value in settings.items():
            control = getattr(self, name, None)
            if name not in self.settings() or control is None:
                continue
            choices = getattr(control, "choices", None)
            if choices is not None and value not in choices:
                continue  # e.g. a GPU that is gone
            try:
                control.value = value
            except (ValueError, TypeError):
                logger.debug("ignoring remembered %s=%r", name, value)

    # ---- building a request

    def _model_source(self) -> str:
        if self.model.value != CHECKPOINT_FILE_CHOICE:
            return self.model.value
        path = str(self.checkpoint.value or "").strip()
        if path in ("", "."):
            raise ValueError("choose a .safetensors checkpoint file, or pick a shipped model")
        return path

    def colorize_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`colorize` from the controls."""
        return {
            "model": self._model_source(),
            "device": self.device.value,
            "scale": float(self.scale.value),
            "overlap": int(self.overlap.value),
            "temperature": float(self.temperature.value),
            "normalize": self.normalize.value,
            "percentiles": DEFAULT_PERCENTILES,
            "batch_size": DEFAULT_BATCH_SIZE,
        }

    def _make_request(self, layer, index: tuple, *, kind: str, frames: str, options: dict, notes=None, level: int = 0) -> ColorizeRequest:
        """A request on ``index`` (slices, possibly strided) of level ``level``
        (level 0 for full resolution)."""
        data = layer.data[level] if layer.multiscale else layer.data
        factors = np.asarray(layer.downsample_factors[level], dtype=float)[: layer.ndim] if layer.multiscale else np.ones(layer.ndim)
        placement = placement_kwargs(layer, [s.start * f for s, f in zip(index, factors)])
        steps = np.array([s.step or 1 for s in index], dtype=float)
        placement["scale"] = tuple(np.asarray(placement["scale"], dtype=float) * factors * steps)
        # A full-resolution result of a multiscale layer is multiscale too.
        level_shapes = None
        if layer.multiscale and kind == "result":
            shape = tuple(s.stop - s.start for s in index)
            level_shapes = [(*shape[:-2], *level_shape[layer.ndim - 2 : layer.ndim]) for level_shape in layer.level_shapes]
        return ColorizeRequest(
            data=data,
            index=index,
            rgb_input=bool(layer.rgb),
            options=options,
            kind=kind,
            layer_name=layer.name,
            layer_id=str(layer.unique_id),
            placement=placement,
            frames=frames,
            notes=notes or {},
            level_shapes=level_shapes,
        )

    def _frame_slices(self, layer) -> tuple[slice, ...]:
        """Slices of the current frame along the leading axes (one-long, so axes are kept)."""
        return tuple(slice(i, i + 1) for i in current_frame_index(layer, self._viewer.dims.point))

    def result_request(self) -> ColorizeRequest:
        """Request for Run: the current slice or every frame of the input layer."""
        layer = self._require_input()
        shape = _full_resolution(layer).shape[: layer.ndim]
        frames = self.frames.value
        leading = self._frame_slices(layer) if frames == "current" else tuple(slice(0, n) for n in shape[:-2])
        index = (*leading, slice(0, shape[-2]), slice(0, shape[-1]))
        return self._make_request(layer, index, kind="result", frames=frames, options=self.colorize_options())

    def preview_request(self) -> ColorizeRequest | None:
        """Request for Preview: the visible part of the current slice, capped in working size."""
        layer = self._require_input()
        region = visible_region(self._viewer, layer)
        if region is None:
            return None
        options = self.colorize_options()
        rows, cols = region
        pixels = (rows.stop - rows.start) * (cols.stop - cols.start)
        capped = min(options["scale"], math.sqrt(PREVIEW_WORKING_PIXELS / pixels))
        notes = {"preview_scale_reduced_from": options["scale"]} if capped < options["scale"] else {}
        # A zoomed-out view is read at the coarsest pyramid level that still
        # has the working resolution, then strided like napari's own display
        # of a large image: a preview never reads (or outputs) full
        # resolution it would throw away.
        level = preview_level(layer, capped)
        index = (*self._frame_slices(layer), rows, cols)
        if level:
            factors = np.asarray(layer.downsample_factors[level], dtype=float)[: layer.ndim]
            shape = np.asarray(layer.level_shapes[level])[: layer.ndim]
            index = tuple(_level_slice(s, f, n) for s, f, n in zip(index, factors, shape))
            capped = min(1.0, capped * float(max(factors[-2:])))
            notes["multiscale_level"] = level
        step = max(1, int(1.0 / capped + 1e-9))
        if step > 1:
            index = (*index[:-2], *(slice(s.start, s.stop, step) for s in index[-2:]))
            capped = min(1.0, capped * step)
            notes["preview_step"] = step
        options["scale"] = capped
        return self._make_request(layer, index, kind="preview", frames="current", options=options, notes=notes, level=level)

    def _require_input(self):
        layer = self.input_layer.value
        if layer is None:
            raise ValueError("no input: add or open a grayscale image layer first")
        return layer

    # ---- running

    @property
    def running(self) -> bool:
        """True while a worker is busy."""
        return self._worker is not None

    def run(self) -> None:
        """Colorize the input layer (current slice or every frame) in a worker thread."""
        self._start(self.result_request)

    def preview(self) -> None:
        """Colorize the part of the current slice in view, quickly, into a preview layer."""
        self._start(self.preview_request)

    def cancel(self) -> None:
        """Ask the running worker to stop; it does so before its next batch of tiles."""
        if self.running:
            self._cancel_event.set()
            self.status.value = "Cancelling..."

    def _start(self, make_request: Callable[[], ColorizeRequest | None]) -> None:
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error, show_info
        from superqt.utils import ensure_main_thread

        if self.running:
            show_info("napari-colorize is already running: wait for it or press Cancel.")
            return
        try:
            request = make_request()
        except Exception as exc:  # a bad choice is reported, never raised into Qt
            logger.debug("cannot start napari-colorize", exc_info=True)
            show_error(f"napari-colorize: {exc}")
            return
        if request is None:
            show_info("napari-colorize: the input layer is not in view; nothing to preview.")
            return
        save_settings(self.settings())
        self._request = request
        self._cancel_event.clear()
        self._worker = create_worker(
            run_request, request, progress=ensure_main_thread(self._show_progress), cancel=self._cancel_event.is_set
        )
        self._worker.returned.connect(self._on_returned)
        self._worker.finished.connect(self._on_finished)
        self._set_running(True)
        self.status.value = f"{'Previewing' if request.kind == 'preview' else 'Colorizing'} {request.layer_name}..."
        self._worker.start()

    def _show_progress(self, done: int, total: int) -> None:
        """Show frames and tiles done (called on the GUI thread)."""
        request = self._request
        if request is None or total <= 0:
            return
        frames = max(1, int(np.prod([s.stop - s.start for s in request.index[:-2]], dtype=np.int64)))
        per_frame = max(1, total // frames)
        frame = min(frames, max(1, math.ceil(done / per_frame)))
        self.progress_bar.max = total
        self.progress_bar.value = done
        self.status.value = f"frame {frame}/{frames}, tile {done - (frame - 1) * per_frame}/{per_frame}"

    def _on_returned(self, outcome: ColorizeOutcome) -> None:
        from napari.utils.notifications import show_error, show_info

        request = self._request
        if outcome.cancelled:
            self.status.value = "Cancelled: no layer was added."
            show_info("napari-colorize: cancelled.")
        elif outcome.error is not None:
            message = f"{type(outcome.error).__name__}: {outcome.error}"
            self.status.value = f"Failed. {message}"
            show_error(f"napari-colorize could not colorize {request.layer_name!r}: {message}")
        else:
            layer = self.add_output(request, outcome)
            stored = f" Too large for memory: kept in {outcome.stored_in}." if outcome.stored_in else ""
            self.status.value = f"Done in {outcome.seconds:.1f} s on {outcome.device}: {layer.name!r}.{stored} {PREDICTED_NOTE.capitalize()}."

    def _on_finished(self) -> None:
        self._worker = None
        self._request = None
        self._set_running(False)

    def _set_running(self, running: bool) -> None:
        for control in (self.run_button, self.preview_button):
            control.enabled = not running
        self.cancel_button.enabled = running
        if not running:
            self.progress_bar.value = 0

    # ---- output

    def find_output(self, request: ColorizeRequest):
        """The earlier output of the same kind for the same input layer, if any."""
        for layer in self._viewer.layers:
            made = layer.metadata.get(METADATA_KEY) if isinstance(layer.metadata, dict) else None
            if made and made.get("source_layer_id") == request.layer_id and made.get("kind") == request.kind:
                return layer
        return None

    def add_output(self, request: ColorizeRequest, outcome: ColorizeOutcome):
        """Add the RGB output layer, replacing the earlier one unless copies are kept."""
        from napari.layers import Image

        layer = Image(
            outcome.rgb,
            rgb=True,
            multiscale=isinstance(outcome.rgb, list),
            name=output_name(request.layer_name, request.kind),
            metadata=output_metadata(request, outcome),
            **request.placement,
        )
        earlier = None if self.keep_copies.value else self.find_output(request)
        if earlier is None:
            return self._viewer.add_layer(layer)
        position = self._viewer.layers.index(earlier)
        layer.visible, layer.opacity, layer.blending = earlier.visible, earlier.opacity, earlier.blending
        self._viewer.layers.remove(earlier)
        self._viewer.layers.insert(position, layer)
        return layer
