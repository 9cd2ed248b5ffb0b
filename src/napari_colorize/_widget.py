"""The napari dock widget: a thin face over :func:`napari_colorize.colorize`.

The widget picks an input layer and the options, runs ``colorize`` in a worker
thread (so the viewer stays usable), bridges its progress and cancel
callbacks, and adds the result as an RGB layer that sits exactly where the
input sits and records in its metadata how it was made. Colours are
predicted by a model, not measured; the layer metadata says so.

Only the controls and their wiring live here. The option controls (labels,
tooltips, limits, defaults) are built from
:func:`napari_colorize.options.option_specs`; which pixels to colorize and
where the output goes is :mod:`napari_colorize.layer_geometry`, running a job
and recording it :mod:`napari_colorize.jobs`, remembered settings
:mod:`napari_colorize.settings`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
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

from . import layer_geometry
from . import settings as settings_store
from .devices import available_devices, describe_device
from .jobs import ColorizeOutcome, ColorizeRequest, output_metadata, output_name, progress_text, run_request
from .layer_geometry import (
    PREVIEW_WORKING_PIXELS,
    CanvasView,
    current_frame_index,
    full_resolution,
    lazy_data,
    placement_kwargs,
    preview_level,
    visible_region,
)
from .model import shipped_models
from .options import ColorizeOptions, OptionSpec, option_spec, option_specs
from .provenance import METADATA_KEY, PREDICTED_NOTE
from .settings import load_settings, save_settings, settings_file

if TYPE_CHECKING:
    import napari
    from magicgui.widgets.bases import ValueWidget

__all__ = [
    "CHECKPOINT_FILE_CHOICE",
    "METADATA_KEY",
    "PREDICTED_NOTE",
    "PREVIEW_WORKING_PIXELS",
    "CanvasView",
    "ColorizeOutcome",
    "ColorizeRequest",
    "ColorizeWidget",
    "available_devices",
    "current_frame_index",
    "describe_device",
    "is_colorizable",
    "is_colorize_output",
    "lazy_data",
    "load_settings",
    "output_metadata",
    "output_name",
    "placement_kwargs",
    "preview_level",
    "run_request",
    "save_settings",
    "settings_file",
    "visible_region",
]

logger = logging.getLogger(__name__)

#: Model-chooser entry that switches to a checkpoint file.
CHECKPOINT_FILE_CHOICE = "checkpoint file..."

_TOOLTIPS = {
    "input": "Grayscale image layer to colorize. RGB layers are offered too: their luminance is used.",
    "checkpoint": "A napari-colorize .safetensors checkpoint (see `napari-colorize train`).",
    "frames": "Colorize only the frame shown now, or every frame of the stack.",
    "keep": "Keep earlier results as separate layers instead of replacing them.",
    "preview": "Colorize just the part of the current slice in view, at a reduced working resolution if it is large.",
}


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


def option_control(spec: OptionSpec, choices: list | None = None) -> ValueWidget:
    """The control of one option, with its label, tooltip, limits and default from ``spec``.

    ``choices`` replaces the spec's own (for what depends on this machine:
    the models shipped, the devices present). Options with choices get a
    chooser, numbers a spin box over ``spec.gui_range``.
    """
    common = {"label": spec.label, "tooltip": spec.help[:1].upper() + spec.help[1:] + ".", "value": spec.default}
    if choices is None and spec.choices is not None:
        choices = list(zip(spec.choice_labels or [str(c) for c in spec.choices], spec.choices))
    if choices is not None:
        return ComboBox(choices=choices, **common)
    if spec.kind in (int, float) and spec.gui_range is not None:
        low, high, step = spec.gui_range
        if spec.kind is int:
            return SpinBox(min=int(low), max=int(high), step=int(step), **common)
        return FloatSpinBox(min=low, max=high, step=step, **common)
    raise TypeError(f"option {spec.name!r} has no widget control: give it choices or a gui_range, or in_widget=False")


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
    worker is busy; a second Run is refused until it ends. Each option shown
    (see ``OptionSpec.in_widget``) is an attribute named after it
    (``widget.temperature``...), and ``option_controls`` maps names to them.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self._worker = None
        self._request: ColorizeRequest | None = None
        self._cancel_event = threading.Event()
        self._make_controls()
        super().__init__(widgets=self._layout(), labels=True)
        self._restore_settings()
        self._connect_events()
        self._update_model_controls()
        self._update_device_info()
        self._update_input_info()
        self._set_running(False)

    # ---- construction

    def _make_controls(self) -> None:
        self.input_layer = ComboBox(label="Input layer", choices=self._input_choices, nullable=False, tooltip=_TOOLTIPS["input"])
        self.input_info = Label(label="", value="")
        # Choices that depend on this machine; every other detail comes from the option's spec.
        machine_choices = {"model": [*shipped_models(), CHECKPOINT_FILE_CHOICE], "device": available_devices()}
        self.option_controls: dict[str, ValueWidget] = {}
        for spec in option_specs():
            if spec.in_widget:
                self.option_controls[spec.name] = option_control(spec, machine_choices.get(spec.name))
                setattr(self, spec.name, self.option_controls[spec.name])
        self.checkpoint = FileEdit(label="Checkpoint", mode="r", filter="*.safetensors", tooltip=_TOOLTIPS["checkpoint"])
        self.device_info = Label(label="", value="")
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

    def _layout(self) -> list:
        """The controls top to bottom: options in their declared order, each
        followed by its companion (the checkpoint file after the model chooser...)."""
        companions = {"model": [self.checkpoint], "device": [self.device_info]}
        options = [widget for name, control in self.option_controls.items() for widget in (control, *companions.get(name, []))]
        buttons = Container(widgets=[self.run_button, self.preview_button, self.cancel_button], layout="horizontal", labels=False)
        return [self.input_layer, self.input_info, *options, self.frames, self.keep_copies, buttons, self.progress_bar, self.status]

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
        shape = full_resolution(layer).shape[: layer.ndim]
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

    def _remembered_controls(self) -> dict[str, ValueWidget]:
        """The controls whose values are remembered, by setting name."""
        return {**self.option_controls, "checkpoint": self.checkpoint, "frames": self.frames, "keep_copies": self.keep_copies}

    def _setting_checks(self) -> dict[str, settings_store.Check]:
        """How a remembered value is checked before it is applied, by setting name."""
        checks = {}
        for name, control in self.option_controls.items():
            offered = getattr(control, "choices", None)
            validate = option_spec(name).validate
            checks[name] = settings_store.chained(validate, settings_store.check_choice(offered)) if offered is not None else validate
        checks["checkpoint"] = settings_store.check_checkpoint_path
        checks["frames"] = settings_store.check_choice(self.frames.choices)
        checks["keep_copies"] = settings_store.check_flag
        return checks

    def settings(self) -> dict[str, Any]:
        """The current choices, as remembered between runs and sessions."""
        values = {name: control.value for name, control in self._remembered_controls().items()}
        checkpoint = str(values["checkpoint"] or "")
        values["checkpoint"] = "" if checkpoint == "." else checkpoint  # '.' is an empty file chooser
        return values

    def apply_settings(self, settings: Mapping[str, Any]) -> list[str]:
        """Restore remembered choices, each checked first.

        Returns
        -------
        list of str
            One line per value that was not applied: of the wrong type,
            outside an option's limits, not offered here (a GPU that is gone),
            a checkpoint file that no longer exists. Unknown names are skipped.
        """
        values, problems = settings_store.check_settings(settings, self._setting_checks())
        controls = self._remembered_controls()
        for name, value in values.items():
            if name == "checkpoint" and not value:
                continue  # an empty file chooser would take '' as the current folder
            try:
                controls[name].value = value
            except (ValueError, TypeError) as exc:  # e.g. within the option's limits but not the spin box's
                problems.append(settings_store.name_problem(name, exc))
        return problems

    def _restore_settings(self) -> None:
        """Apply the remembered settings; tell the user about any that were ignored."""
        from napari.utils.notifications import show_info

        settings, problems = settings_store.read_settings()
        problems += self.apply_settings(settings)
        if problems:
            where = settings_store.settings_file()
            message = (
                f"napari-colorize ignored remembered settings it cannot use (in {where}) and kept the defaults for them: "
                + "; ".join(problems)
            )
            logger.warning(message)
            show_info(message)

    # ---- building a request

    def _model_source(self) -> str:
        if self.model.value != CHECKPOINT_FILE_CHOICE:
            return self.model.value
        path = str(self.checkpoint.value or "").strip()
        if path in ("", "."):
            raise ValueError("choose a .safetensors checkpoint file, or pick a shipped model")
        return path

    def colorize_options(self) -> ColorizeOptions:
        """The options of :func:`colorize` set by the controls (the others at their defaults)."""
        values = {name: control.value for name, control in self.option_controls.items()}
        return ColorizeOptions(**{**values, "model": self._model_source()})

    def result_request(self) -> ColorizeRequest:
        """Request for Run: the current slice or every frame of the input layer."""
        layer = self._require_input()
        options = self.colorize_options()
        return layer_geometry.result_request(layer, options, frames=self.frames.value, world_point=self._viewer.dims.point)

    def preview_request(self) -> ColorizeRequest | None:
        """Request for Preview: the visible part of the current slice, capped in working size."""
        layer = self._require_input()
        return layer_geometry.preview_request(CanvasView.of(self._viewer), layer, self.colorize_options())

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
        self.progress_bar.max = total
        self.progress_bar.value = done
        self.status.value = progress_text(request, done, total)

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
            self.status.value = (
                f"Done in {outcome.seconds:.1f} s on {outcome.device}: {layer.name!r}.{stored} {PREDICTED_NOTE.capitalize()}."
            )

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
