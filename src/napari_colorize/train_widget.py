"""The "Train colorizer" dock widget: fine-tune a model on colour references
open in napari (or a folder) for a time budget, in a worker thread.

A thin face over :func:`napari_colorize.fine_tuning.fine_tune`: the progress
bar shows how much of the budget is spent, the status line the loss and the
time left; Cancel stops at the next step and keeps the model as it is then.
The result is saved in the user data folder and offered by the Colorize
widget's Model chooser (which :data:`user_model_saved` tells).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, Label, LineEdit, ProgressBar, PushButton, Select
from psygnal import Signal

from . import checkpoint_files
from .checkpoint_files import shipped_models, user_models
from .fine_tuning import fine_tune
from .training import TrainingProgress

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)
PROGRESS_STEPS = 1000
DEFAULT_MINUTES = 5.0

TOOLTIPS = {
    "references": "RGB image layers whose colours the model should learn (ctrl-click for several).",
    "folder": "Optionally, a folder of colour images (searched recursively), with or instead of the layers.",
    "base": "The model to start from: it keeps what it knows and learns your references' colours.",
    "minutes": "Training time. On a CPU a few minutes already teach a palette; more helps.",
    "name": "The new model's name in the Model chooser (letters, digits, '.', '_', '-').",
    "domain": "The kind of images it is for, shown under the Model chooser (e.g. 'H&E sections, 20x').",
}


class _Events:
    """Holds the signal (psygnal signals live on a class)."""

    saved = Signal(str)


#: Emitted with the model's name when a model trained in napari is saved.
user_model_saved = _Events().saved


def minutes_text(seconds: float) -> str:
    """'2 min 05 s' or '40 s'."""
    seconds = max(0, round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def progress_text(progress: TrainingProgress) -> str:
    """The status line during training: step, loss and time left."""
    loss = f", loss {progress.loss:.3f}" if progress.loss is not None else ""
    return f"Step {progress.step}{loss}; about {minutes_text(progress.remaining_s)} left."


def _fine_tune_or_error(*args, **kwargs):
    """:func:`fine_tune` in the worker: (its model, None), or (None, the
    exception that stopped it), never raised into Qt (a worker that returns
    an exception raises it)."""
    try:
        return fine_tune(*args, **kwargs), None
    except Exception as exc:  # every failure must reach the user and free the widget
        logger.debug("fine-tuning failed", exc_info=True)
        return None, exc


class TrainWidget(Container):
    """Dock widget: fine-tune a colorizer on colour references, inside napari.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self._worker = None
        self._cancel_event = threading.Event()
        self.references = Select(label="Colour references", choices=self._reference_choices, tooltip=TOOLTIPS["references"])
        self.folder = FileEdit(label="Or a folder", mode="d", tooltip=TOOLTIPS["folder"])
        self.base = ComboBox(label="Start from", choices=self._base_choices, tooltip=TOOLTIPS["base"])
        self.minutes = FloatSpinBox(label="Minutes", value=DEFAULT_MINUTES, min=0.1, max=600.0, step=0.5, tooltip=TOOLTIPS["minutes"])
        self.model_name = LineEdit(label="Name", value="my-colorizer", tooltip=TOOLTIPS["name"])
        self.domain = LineEdit(label="Kind of images", value="", tooltip=TOOLTIPS["domain"])
        self.train_button = PushButton(text="Train")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress_bar = ProgressBar(label="Progress", value=0, min=0, max=PROGRESS_STEPS)
        self.status = Label(label="", value=f"Models are saved in {checkpoint_files.user_models_dir()}.")
        if hasattr(self.status.native, "setWordWrap"):
            self.status.native.setWordWrap(True)
        buttons = Container(widgets=[self.train_button, self.cancel_button], layout="horizontal", labels=False)
        controls = [self.references, self.folder, self.base, self.minutes, self.model_name, self.domain]
        super().__init__(widgets=[*controls, buttons, self.progress_bar, self.status], labels=True)
        self.train_button.changed.connect(self.train)
        self.cancel_button.changed.connect(self.cancel)
        viewer.layers.events.inserted.connect(self._refresh)
        viewer.layers.events.removed.connect(self._refresh)
        if hasattr(self.native, "destroyed"):  # closing the dock stops the run (keeping its model)
            cancel_event = self._cancel_event
            self.native.destroyed.connect(lambda *_: cancel_event.set())

    def _reference_choices(self, _widget=None) -> list:
        from napari.layers import Image

        return [(layer.name, layer) for layer in reversed(self._viewer.layers) if isinstance(layer, Image) and layer.rgb]

    def _base_choices(self, _widget=None) -> list[str]:
        return [*shipped_models(), *user_models()]

    def _refresh(self, *_args) -> None:
        self.references.reset_choices()

    @property
    def running(self) -> bool:
        """True while a fine-tuning run is busy."""
        return self._worker is not None

    def folder_value(self):
        """The chosen folder, or None when none is chosen."""
        folder = str(self.folder.value or "").strip()
        return None if folder in ("", ".") else folder

    def train(self, *_args) -> None:
        """Start fine-tuning in a worker thread (refused while one runs)."""
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error, show_info
        from superqt.utils import ensure_main_thread

        if self.running:
            show_info("napari-colorize is already training: wait for it or press Cancel.")
            return
        layers = list(self.references.value)
        # The coarsest level of a pyramid: references are a few images of a kind, not whole slides.
        images = [np.asarray(layer.data[-1] if layer.multiscale else layer.data) for layer in layers]
        images = [image[(0,) * (image.ndim - 3)] if image.ndim > 3 else image for image in images]  # a stack's first frame
        self._cancel_event.clear()
        self._worker = create_worker(
            _fine_tune_or_error,
            images,
            name=self.model_name.value,
            folder=self.folder_value(),
            base=self.base.value,
            minutes=float(self.minutes.value),
            domain=self.domain.value,
            reference_names=[layer.name for layer in layers],
            on_step=ensure_main_thread(self._show_progress),
            cancel=self._cancel_event.is_set,
        )
        self._worker.returned.connect(lambda outcome: self._on_returned(outcome, show_error))
        self._worker.finished.connect(self._on_finished)
        self._set_running(True)
        self.status.value = f"Preparing to fine-tune {self.base.value}..."
        self._worker.start()

    def cancel(self, *_args) -> None:
        """Stop at the next step; the model as it is then is saved."""
        if self.running:
            self._cancel_event.set()
            self.status.value = "Stopping after this step; the model so far is kept..."

    def _show_progress(self, progress: TrainingProgress) -> None:
        self.progress_bar.value = round(progress.fraction * PROGRESS_STEPS)
        self.status.value = progress_text(progress)

    def _on_returned(self, outcome, show_error) -> None:
        colorizer, error = outcome
        if error is not None:
            self.status.value = f"Not trained. {error}"
            show_error(f"napari-colorize could not fine-tune: {error}")
            return
        steps = colorizer.metadata.get("training", {}).get("steps", 0)
        stopped = " (stopped early)" if self._cancel_event.is_set() else ""
        self.status.value = f"Saved {colorizer.name!r} after {steps} steps{stopped}: {colorizer.path}. Choose it in the Colorize widget."
        self.progress_bar.value = PROGRESS_STEPS
        user_model_saved.emit(colorizer.name)

    def _on_finished(self) -> None:
        self._worker = None
        self._set_running(False)

    def _set_running(self, running: bool) -> None:
        self.train_button.enabled = not running
        self.cancel_button.enabled = running
