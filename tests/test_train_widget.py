"""The Train colorizer dock widget: fine-tune on RGB layers open in napari,
in a worker thread, with progress, Cancel, and the result offered by the
Colorize widget's Model chooser (under Xvfb, on CPU)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from helpers import make_color_image
from test_widget import RUN_TIMEOUT_MS

from napari_colorize.checkpoint_files import checkpoint_metadata, resolve_model_path
from napari_colorize.train_widget import TrainWidget, minutes_text

pytestmark = pytest.mark.usefixtures("private_settings")  # settings and user models in tmp_path


@pytest.fixture
def trainer(viewer) -> TrainWidget:
    """The Train colorizer widget, opened from the plugin manifest."""
    _dock, plugin_widget = viewer.window.add_plugin_dock_widget("napari-colorize", "Train colorizer")
    return plugin_widget


def add_references(viewer, count=2):
    return [viewer.add_image(np.asarray(make_color_image(96, seed=s)), rgb=True, name=f"stain {s}") for s in range(count)]


def test_fine_tuning_on_layers_adds_a_model_to_the_colorize_chooser(qtbot, viewer, widget, trainer):
    layers = add_references(viewer)
    assert sorted(layer.name for layer in trainer.references.choices) == ["stain 0", "stain 1"]
    trainer.references.value = layers
    trainer.model_name.value = "stains"
    trainer.minutes.value = 0.1
    trainer.domain.value = "H&E sections"
    assert "stains" not in widget.model.choices
    trainer.train()
    assert trainer.running and not trainer.train_button.enabled
    qtbot.waitUntil(lambda: not trainer.running, timeout=RUN_TIMEOUT_MS)
    assert trainer.status.value.startswith("Saved 'stains' after"), trainer.status.value
    assert trainer.progress_bar.value == trainer.progress_bar.max
    assert "stains" in widget.model.choices
    widget.model.value = "stains"
    assert "H&E sections" in widget.model_info.value
    meta = checkpoint_metadata(resolve_model_path("stains"))
    assert "stain 0, stain 1" in meta["training_data"]


def test_cancel_keeps_the_model_trained_so_far(qtbot, viewer, trainer):
    trainer.references.value = add_references(viewer, 1)
    trainer.model_name.value = "cancelled"
    trainer.minutes.value = 30
    trainer.train()
    qtbot.waitUntil(lambda: trainer.progress_bar.value > 0 or "Step" in trainer.status.value, timeout=RUN_TIMEOUT_MS)
    trainer.cancel()
    qtbot.waitUntil(lambda: not trainer.running, timeout=RUN_TIMEOUT_MS)
    assert "(stopped early)" in trainer.status.value
    assert checkpoint_metadata(resolve_model_path("cancelled"))["training"]["steps"] >= 1


def test_bad_choices_are_reported_not_raised(qtbot, viewer, trainer, monkeypatch):
    import napari.utils.notifications as notes

    shown = []
    monkeypatch.setattr(notes, "show_error", shown.append)
    trainer.model_name.value = "natural"
    trainer.train()
    qtbot.waitUntil(lambda: not trainer.running, timeout=RUN_TIMEOUT_MS)
    assert "is a shipped model" in shown[0] and trainer.status.value.startswith("Not trained.")


def test_minutes_text():
    assert minutes_text(40.2) == "40 s" and minutes_text(125) == "2 min 05 s"
