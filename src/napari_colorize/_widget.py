"""The napari dock widget: a thin face over :func:`napari_colorize.colorize`.

The widget picks an input layer and the options, runs ``colorize`` in a worker
thread (so the viewer stays usable), bridges its progress and cancel
callbacks, and adds the result as an RGB layer that sits exactly where the
input sits and records in its metadata how it was made (and, if asked, the
model's per-pixel uncertainty as a second layer beside it, see
:mod:`napari_colorize.output_layers`). Colours are predicted by a model, not
measured; the layer metadata says so.

Only the controls and their wiring live here. The option controls (labels,
tooltips, limits, defaults) are built from
:func:`napari_colorize.options.option_specs`; which pixels to colorize and
where the output goes is :mod:`napari_colorize.layer_geometry`, running a job
and recording it :mod:`napari_colorize.jobs`, remembered settings
:mod:`napari_colorize.settings`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    ProgressBar,
    PushButton,
    RadioButtons,
)

from . import layer_geometry
from . import settings as settings_store
from .checkpoint_files import checkpoint_metadata, shipped_models, user_models
from .compare_view import CompareView
from .devices import available_devices, describe_device
from .hint_controls import HintControls
from .jobs import ColorizeOutcome, ColorizeRequest, progress_text, run_request
from .layer_geometry import PREVIEW_WORKING_PIXELS, CanvasView, full_resolution
from .model_info import describe_model
from .option_controls import option_control
from .options import ColorizeOptions, option_spec, option_specs
from .output_layers import add_outputs, find_output, find_output_of, is_colorizable, is_colorize_output
from .provenance import METADATA_KEY, PREDICTED_NOTE
from .reference_controls import ReferenceControls
from .restore_controls import RestoreControls
from .settings import save_settings
from .train_widget import user_model_saved

if TYPE_CHECKING:
    import napari
    from magicgui.widgets.bases import ValueWidget

__all__ = ["CHECKPOINT_FILE_CHOICE", "METADATA_KEY", "PREDICTED_NOTE", "PREVIEW_WORKING_PIXELS", "ColorizeWidget", "is_colorizable", "is_colorize_output"]

logger = logging.getLogger(__name__)

#: Model-chooser entry that switches to a checkpoint file.
CHECKPOINT_FILE_CHOICE = "checkpoint file..."

_TOOLTIPS = {
    "input": "Grayscale image layer to colorize. RGB layers are offered too: their luminance is used.",
    "every_selected": "Run colorizes every image layer selected in the layer list, one after another, instead of the input layer.",
    "checkpoint": "A napari-colorize .safetensors checkpoint (see `napari-colorize train`).",
    "frames": "Colorize only the frame shown now, or every frame of the stack.",
    "keep": "Keep earlier results as separate layers instead of replacing them.",
    "compare": "Show the input and its result side by side (napari's grid, one camera), and back.",
    "preview": "Colorize just the part of the current slice in view, at a reduced working resolution if it is large.",
    "uncertainty": "Also add a layer showing how unsure the model is at each pixel: the normalised entropy of its predicted "
    "colour distribution, 0 (dark) certain, 1 (bright) spread evenly over all colours. Classification models only.",
}


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
        self._preview_again = False
        self._comparison: CompareView | None = None
        self._queue: list[Callable[[], ColorizeRequest]] = []  # Run on every selected layer: those still to do
        self._make_controls()
        super().__init__(widgets=self._layout(), labels=True)
        self._restore_settings()
        self._connect_events()
        self._update_model_controls()
        self._update_device_info()
        self._update_uncertainty_control()
        self._update_input_info()
        self._set_running(False)

    # ---- construction

    def _make_controls(self) -> None:
        self.input_layer = ComboBox(label="Input layer", choices=self._input_choices, nullable=False, tooltip=_TOOLTIPS["input"])
        self.input_info = Label(label="", value="")
        self.every_selected = CheckBox(label="Every selected layer", value=False, tooltip=_TOOLTIPS["every_selected"])
        # Choices that depend on this machine; every other detail comes from the option's spec.
        machine_choices = {"model": self._model_choices, "device": available_devices()}
        self.option_controls: dict[str, ValueWidget] = {}
        for spec in option_specs():
            if spec.in_widget:
                self.option_controls[spec.name] = option_control(spec, machine_choices.get(spec.name))
                setattr(self, spec.name, self.option_controls[spec.name])
        grouped = {spec.name for spec in option_specs() if spec.group}
        restore = {name: control for name, control in self.option_controls.items() if name in grouped}
        self.restore_controls = RestoreControls(self._viewer, restore, self.current_frame_request)
        self.checkpoint = FileEdit(label="Checkpoint", mode="r", filter="*.safetensors", tooltip=_TOOLTIPS["checkpoint"])
        self.model_info = Label(label="", value="")
        self.device_info = Label(label="", value="")
        self.frames = RadioButtons(
            label="Frames",
            choices=[("current slice", "current"), ("every frame", "all")],
            value="current",
            orientation="horizontal",
            tooltip=_TOOLTIPS["frames"],
        )
        self.hint_controls = HintControls(self._viewer, on_change=self._on_guidance_changed)
        self.hints_layer, self.hints_every_frame = self.hint_controls.layer, self.hint_controls.every_frame
        self.new_hints_button = self.hint_controls.new_button
        self.reference_controls = ReferenceControls(self._viewer)
        self.reference_layer = self.reference_controls.layer
        self.keep_copies = CheckBox(label="Keep earlier results", value=False, tooltip=_TOOLTIPS["keep"])
        self.uncertainty_layer = CheckBox(label="Uncertainty layer", value=False, tooltip=_TOOLTIPS["uncertainty"])
        self.uncertainty_info = Label(label="", value="", visible=False)
        self.run_button = PushButton(text="Run")
        self.preview_button = PushButton(text="Preview view", tooltip=_TOOLTIPS["preview"])
        self.cancel_button = PushButton(text="Cancel")
        self.compare_button = PushButton(text="Compare", tooltip=_TOOLTIPS["compare"])
        self.progress_bar = ProgressBar(label="Progress", value=0, min=0, max=1)
        self.status = Label(label="", value="Ready. " + PREDICTED_NOTE.capitalize() + ".")
        for label in (self.input_info, self.model_info, self.device_info, self.uncertainty_info, self.status):
            if hasattr(label.native, "setWordWrap"):  # a long message wraps instead of widening the dock
                label.native.setWordWrap(True)

    def _layout(self) -> list:
        """The controls top to bottom: options in their declared order, each
        followed by its companion (the checkpoint file after the model chooser...)."""
        companions = {"model": [self.checkpoint, self.model_info], "device": [self.device_info]}
        # Hint reach sits with the hints it governs.
        main = {name: control for name, control in self.option_controls.items() if name not in {*self.restore_controls.names, "hint_reach"}}
        options = [widget for name, control in main.items() for widget in (control, *companions.get(name, []))]
        buttons = Container(
            widgets=[self.run_button, self.preview_button, self.cancel_button, self.compare_button], layout="horizontal", labels=False
        )
        outputs = [self.frames, self.keep_copies, self.uncertainty_layer, self.uncertainty_info]
        hints = [*self.hint_controls.widgets(), self.hint_reach, *self.reference_controls.widgets()]
        restore = self.restore_controls.widgets()
        return [self.input_layer, self.input_info, self.every_selected, *options, *hints, *restore, *outputs, buttons, self.progress_bar, self.status]

    def _connect_events(self) -> None:
        layers = self._viewer.layers
        layers.events.inserted.connect(self._on_layer_inserted)
        layers.events.removed.connect(self.refresh_inputs)
        layers.events.moved.connect(self.refresh_inputs)
        for layer in layers:
            layer.events.name.connect(self.refresh_inputs)
        self.input_layer.changed.connect(self._update_input_info)
        self.model.changed.connect(self._update_model_controls)
        self.checkpoint.changed.connect(self._update_model_info)
        self.device.changed.connect(self._update_device_info)
        self.model.changed.connect(self._update_uncertainty_control)
        self.checkpoint.changed.connect(self._update_uncertainty_control)
        self.run_button.changed.connect(self.run)
        self.preview_button.changed.connect(self.preview)
        self.cancel_button.changed.connect(self.cancel)
        self.compare_button.changed.connect(self.compare)
        self.new_hints_button.changed.connect(self.new_hints_layer)
        self.reference_layer.changed.connect(self._on_guidance_changed)
        self.hint_reach.changed.connect(self._on_guidance_changed)
        user_model_saved.connect(self.model.reset_choices)  # a model trained in napari joins the chooser
        if hasattr(self.native, "destroyed"):  # closing the dock stops a running worker
            cancel_event, hints, models = self._cancel_event, self.hint_controls, self.model  # not self: it may be half torn down by then
            self.native.destroyed.connect(lambda *_: (cancel_event.set(), hints.close(), user_model_saved.disconnect(models.reset_choices)))

    # ---- choices and info

    @staticmethod
    def _model_choices(_widget=None) -> list[str]:
        """The shipped models, those trained in napari (Train colorizer), and the file choice."""
        return [*shipped_models(), *user_models(), CHECKPOINT_FILE_CHOICE]

    def _input_choices(self, _widget=None) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in reversed(self._viewer.layers) if is_colorizable(layer)]

    def _on_layer_inserted(self, event) -> None:
        event.value.events.name.connect(self.refresh_inputs)
        self.refresh_inputs()

    def refresh_inputs(self, *_args) -> None:
        """Re-read the layer list into the input chooser (keeps the choice if it is still there)."""
        self.input_layer.reset_choices()
        self.hint_controls.refresh()
        self.reference_controls.refresh()
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
        self._update_model_info()

    def _update_model_info(self, *_args) -> None:
        """Describe the chosen model: what it is for, its domain, its training data and terms."""
        try:
            self.model_info.value = describe_model(self._model_source()).summary()
        except Exception as exc:  # no file chosen, or one that cannot be read: said, never raised into Qt
            message = (str(exc) or type(exc).__name__).rstrip(".")
            self.model_info.value = message[:1].upper() + message[1:] + "."

    def _update_device_info(self, *_args) -> None:
        self.device_info.value = describe_device(self.device.value)

    def _update_uncertainty_control(self, *_args) -> None:
        """Offer the uncertainty layer only for models that predict a distribution;
        say why it is off for a regression model."""
        source, head = None, None
        try:
            source = self._model_source()
            head = checkpoint_metadata(source).get("head")
        except (ValueError, OSError):  # no file chosen, or one that cannot be read (CheckpointError): the model info says so
            pass
        regression = head == "regression"
        self.uncertainty_layer.enabled, self.uncertainty_info.visible = not regression, regression
        why = f"{Path(str(source)).stem} is a regression model, which predicts colours without a distribution over them"
        self.uncertainty_info.value = f"No uncertainty layer: {why}." if regression else ""

    # ---- settings

    def _remembered(self) -> settings_store.RememberedControls:
        """The controls whose values are remembered, and how each remembered value is checked."""
        flags = {"keep_copies": self.keep_copies, "uncertainty_layer": self.uncertainty_layer, "every_selected": self.every_selected}
        controls = {**self.option_controls, "checkpoint": self.checkpoint, "frames": self.frames, **flags}
        checks = {name: settings_store.check_flag for name in flags}
        for name, control in self.option_controls.items():
            offered, spec = getattr(control, "choices", None), option_spec(name)
            choice = settings_store.check_subset if spec.multiple else settings_store.check_choice
            checks[name] = settings_store.chained(spec.validate, choice(offered)) if offered is not None else spec.validate
        checks.update(checkpoint=settings_store.check_checkpoint_path, frames=settings_store.check_choice(self.frames.choices))
        return settings_store.RememberedControls(controls, checks)

    def settings(self) -> dict[str, Any]:
        """The current choices, as remembered between runs and sessions."""
        return self._remembered().values()

    def apply_settings(self, settings: Mapping[str, Any]) -> list[str]:
        """Restore remembered choices, each checked first; one line per value
        not applied: of the wrong type, outside an option's limits, not offered
        here (a GPU that is gone), a checkpoint file that no longer exists."""
        return self._remembered().apply(settings)

    def _restore_settings(self) -> None:
        """Apply the remembered settings; tell the user about any that were ignored."""
        from napari.utils.notifications import show_info

        problems = self._remembered().restore()
        if problems:
            where = settings_store.settings_file()
            show_info(f"napari-colorize ignored remembered settings it cannot use (in {where}) and kept the defaults for them: " + "; ".join(problems))

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

    def result_request(self, layer=None) -> ColorizeRequest:
        """Request for Run: the current slice or every frame of ``layer`` (default: the input layer)."""
        layer = layer if layer is not None else self._require_input()
        options = self.colorize_options()
        hints = self.hint_controls.rows(layer)
        request = layer_geometry.result_request(layer, options, frames=self.frames.value, world_point=self._viewer.dims.point, hints=hints)
        return self.reference_controls.applied(self._with_uncertainty(request))

    def current_frame_request(self) -> ColorizeRequest:
        """The input layer's current frame with the widget's options (for the restored lightness)."""
        return layer_geometry.result_request(self._require_input(), self.colorize_options(), frames="current", world_point=self._viewer.dims.point)

    def preview_request(self) -> ColorizeRequest | None:
        """Request for Preview: the visible part of the current slice, capped in working size."""
        layer = self._require_input()
        hints = self.hint_controls.rows(layer)
        request = layer_geometry.preview_request(CanvasView.of(self._viewer), layer, self.colorize_options(), hints=hints)
        return None if request is None else self.reference_controls.applied(self._with_uncertainty(request))

    def _with_uncertainty(self, request: ColorizeRequest) -> ColorizeRequest:
        """``request`` asking for the uncertainty layer when it is ticked (and offered)."""
        return dataclasses.replace(request, uncertainty=bool(self.uncertainty_layer.value and self.uncertainty_layer.enabled))

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
        """Colorize the input layer, or every selected image layer one after
        another (current slice or every frame), in a worker thread."""
        if not self.every_selected.value:
            self._start(self.result_request)
            return
        from napari.utils.notifications import show_error

        layers = [layer for layer in self._viewer.layers if layer in self._viewer.layers.selection and is_colorizable(layer)]
        if not layers:
            show_error("napari-colorize: select one or more grayscale image layers in the layer list (or untick Every selected layer)")
            return
        if not self.running:
            self._queue = [functools.partial(self.result_request, layer) for layer in layers[1:]]
        self._start(functools.partial(self.result_request, layers[0]))

    def preview(self) -> None:
        """Colorize the part of the current slice in view, quickly, into a preview layer."""
        self._start(self.preview_request)

    def new_hints_layer(self, *_args):
        """Add an empty hints layer over the input layer and choose it; the layer, or None if there is no input."""
        from napari.utils.notifications import show_error

        try:
            return self.hint_controls.new_layer(self.input_layer.value)
        except ValueError as exc:
            show_error(f"napari-colorize: {exc}")
            return None

    def compare(self, *_args) -> None:
        """Show the input and its result (or preview) side by side; pressed again, put the view back."""
        from napari.utils.notifications import show_info

        if self._comparison is not None:
            self._comparison.restore(self._viewer)
            self._comparison, self.compare_button.text = None, "Compare"
            return
        layer = self.input_layer.value
        layer_id = str(layer.unique_id) if layer is not None else ""
        result = find_output_of(self._viewer.layers, layer_id, "result") or find_output_of(self._viewer.layers, layer_id, "preview")
        if result is None:
            show_info("napari-colorize: nothing to compare yet: Run or Preview view first.")
            return
        self._comparison = CompareView.show(self._viewer, layer, result)
        self.compare_button.text = "Back"

    def _on_guidance_changed(self, *_args) -> None:
        """Hints edited, their reach changed or another reference chosen: refresh the preview, if
        this input has one (after the running job, if any)."""
        layer = self.input_layer.value
        if layer is None or find_output_of(self._viewer.layers, str(layer.unique_id), "preview") is None:
            return
        if self.running:
            self._preview_again = True
        else:
            self.preview()

    def cancel(self) -> None:
        """Ask the running worker to stop; it does so before its next batch of tiles."""
        if self.running:
            self._queue.clear()
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
        self.progress_bar.value = 0
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
            self.status.value, self.progress_bar.value = "Cancelled: no layer was added.", 0
            show_info("napari-colorize: cancelled.")
        elif outcome.error is not None:
            message = f"{type(outcome.error).__name__}: {outcome.error}"
            self.status.value, self.progress_bar.value = f"Failed. {message}", 0
            show_error(f"napari-colorize could not colorize {request.layer_name!r}: {message}")
        else:
            layer = self.add_output(request, outcome)
            self.progress_bar.value = self.progress_bar.max  # a finished run shows 100 %
            stored = f" Too large for memory: kept in {outcome.stored_in}." if outcome.stored_in else ""
            arithmetic = layer.metadata[METADATA_KEY]["precision_used"]
            self.status.value = (
                f"Done in {outcome.seconds:.1f} s on {outcome.device} ({arithmetic}): {layer.name!r}.{stored} {PREDICTED_NOTE.capitalize()}."
            )

    def _on_finished(self) -> None:
        self._worker = None
        self._request = None
        self._set_running(False)
        if self._queue:  # Run on every selected layer: the next one
            self._start(self._queue.pop(0))
        elif self._preview_again:  # hints changed while it ran
            self._preview_again = False
            self.preview()

    def _set_running(self, running: bool) -> None:
        for control in (self.run_button, self.preview_button):
            control.enabled = not running
        self.cancel_button.enabled = running

    # ---- output

    def find_output(self, request: ColorizeRequest, *, uncertainty: bool = False):
        """The earlier output of the same kind for the same input layer, if any
        (its uncertainty layer with ``uncertainty``)."""
        return find_output(self._viewer.layers, request, uncertainty=uncertainty)

    def add_output(self, request: ColorizeRequest, outcome: ColorizeOutcome):
        """Add the RGB output layer (and the uncertainty layer, if asked for),
        replacing the earlier ones unless copies are kept; returns the RGB layer."""
        return add_outputs(self._viewer, request, outcome, keep_copies=self.keep_copies.value)
