"""The widget on every selected layer, its Compare button (input and result
side by side, and back) and its progress bar at the end of a run (under
Xvfb, on CPU)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from test_widget import outputs, run_and_wait, smooth_image
from napari_colorize.compare_view import grid_of

pytestmark = pytest.mark.usefixtures("private_settings")


def test_compare_shows_input_and_result_side_by_side_and_back(qtbot, viewer, widget, monkeypatch):
    import napari.utils.notifications as notes

    shown = []
    monkeypatch.setattr(notes, "show_info", shown.append)
    other = viewer.add_image(np.zeros((8, 8)), name="other")
    source = viewer.add_image(smooth_image((40, 48)), name="em")
    viewer.add_image(np.ones((8, 8)), name="hidden", visible=False)
    widget.input_layer.value = source
    widget.compare()
    assert "nothing to compare yet" in shown[0] and not grid_of(viewer).enabled
    run_and_wait(qtbot, widget)
    assert widget.progress_bar.value == widget.progress_bar.max, "a finished run shows 100 %"
    (result,) = outputs(viewer)
    order = [layer.name for layer in viewer.layers]
    widget.compare()
    assert grid_of(viewer).enabled and tuple(grid_of(viewer).shape) == (1, 2)
    assert [layer.name for layer in viewer.layers if layer.visible] == ["em", "em colorized"]
    assert [layer.name for layer in viewer.layers][-2:] == ["em", "em colorized"]
    assert widget.compare_button.text == "Back"
    widget.compare()
    assert not grid_of(viewer).enabled and widget.compare_button.text == "Compare"
    assert [layer.name for layer in viewer.layers] == order
    assert other.visible and result.visible and not viewer.layers["hidden"].visible


def test_run_on_every_selected_layer_one_after_another(qtbot, viewer, widget, monkeypatch):
    import napari.utils.notifications as notes

    shown = []
    monkeypatch.setattr(notes, "show_error", shown.append)
    first = viewer.add_image(smooth_image((40, 48), seed=1), name="first")
    viewer.add_image(smooth_image((40, 48), seed=2), name="skipped")
    third = viewer.add_image(smooth_image((32, 40), seed=3), name="third")
    viewer.add_points(np.zeros((1, 2)), name="points")
    widget.every_selected.value = True
    viewer.layers.selection.clear()
    widget.run()
    assert "select one or more grayscale image layers" in shown[0] and not widget.running
    viewer.layers.selection.update({first, third, viewer.layers["points"]})
    widget.run()
    qtbot.waitUntil(lambda: not widget.running and len(outputs(viewer)) == 2, timeout=120_000)
    made = {layer.name: layer for layer in outputs(viewer)}
    assert set(made) == {"first colorized", "third colorized"}
    assert made["third colorized"].data.shape == (32, 40, 3)
    assert widget.settings()["every_selected"] is True
