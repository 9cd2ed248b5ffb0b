"""Colour hints in the dock widget: a Points layer over the input, whose
points' face colours are the hints (under Xvfb, model on CPU)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from test_widget import RUN_TIMEOUT_MS, outputs, run_and_wait, smooth_image

from napari_colorize import colorize
from napari_colorize._widget import METADATA_KEY
from napari_colorize.color import rgb_to_lab
from napari_colorize.hint_points import image_hint_rows
from napari_colorize.layer_geometry import request_hints

pytestmark = pytest.mark.usefixtures("private_settings")

BLUE = np.array([40, 60, 220])


def blue_distance(rgb: np.ndarray) -> float:
    """Mean ab distance of an RGB patch to BLUE's."""
    target = rgb_to_lab(BLUE.astype(np.uint8)[None, None])[0, 0, 1:]
    return float(np.linalg.norm(rgb_to_lab(rgb)[..., 1:] - target, axis=-1).mean())


def add_hint(points, data_point, colour=BLUE):
    points.add(np.asarray(data_point, dtype=float))
    colours = np.array(points.face_color)
    colours[-1, :3] = np.asarray(colour) / 255.0
    points.face_color = colours


def test_a_new_hints_layer_sits_over_the_input_and_its_points_steer_run(qtbot, viewer, widget):
    image = smooth_image((64, 80), seed=2)
    source = viewer.add_image(image, name="em", scale=(2.0, 0.5), translate=(10.0, -4.0))
    widget.input_layer.value = source
    points = widget.new_hints_layer()
    assert widget.hints_layer.value.name == points.name == "em hints" and points.mode == "add"
    np.testing.assert_allclose(points.scale, source.scale)
    np.testing.assert_allclose(points.translate, source.translate)
    add_hint(points, (30, 20))
    run_and_wait(qtbot, widget)
    (result,) = outputs(viewer)
    record = result.metadata[METADATA_KEY]
    np.testing.assert_allclose(record["hints"], [[0, 30, 20, *BLUE]], atol=0.01)
    np.testing.assert_array_equal(result.data, colorize(image, device="cpu", hints=[(30, 20, *BLUE)]))
    automatic = colorize(image, device="cpu")
    near = (slice(26, 35), slice(16, 25))
    assert blue_distance(result.data[near]) < blue_distance(automatic[near]) - 10


def test_hints_of_a_stack_stay_on_their_frame_unless_every_frame(viewer, widget):
    stack = np.stack([smooth_image((40, 48), seed=s) for s in range(3)])
    source = viewer.add_image(stack, name="stack")
    widget.input_layer.value = source
    points = widget.new_hints_layer()
    add_hint(points, (1, 10, 12))
    np.testing.assert_allclose(image_hint_rows(points, source), [[1, 10, 12, *BLUE]], atol=0.01)
    widget.hints_every_frame.value = True
    rows = widget.hint_controls.rows(source)
    np.testing.assert_allclose(rows[:, :3], [[0, 10, 12], [1, 10, 12], [2, 10, 12]], atol=0.01)
    # a 2D hints layer over a stack gives each hint to every frame
    flat = viewer.add_points(np.array([[5.0, 6.0]]), face_color="red")
    assert len(image_hint_rows(flat, source)) == 3
    # points off the image are left out
    add_hint(points, (1, 100, 12))
    widget.hints_every_frame.value = False
    assert len(widget.hint_controls.rows(source)) == 1


def test_request_hints_follow_the_region_level_and_stride():
    rows = np.array([[4, 40.0, 60.0, 1, 2, 3], [2, 40.0, 60.0, 4, 5, 6], [4, 2.0, 2.0, 7, 8, 9]])
    # frames (2, 3): flat frame 4 is (1, 1); a request on frame (1, 1), rows 20.., cols 40.., stride 2, level x2
    index = (slice(1, 2), slice(1, 2), slice(10, 30, 2), slice(20, 40, 2))
    request_rows, kept = request_hints(rows, index, np.array([1, 1, 2, 2.0]), (2, 3))
    np.testing.assert_allclose(request_rows, [[0, 5, 5, 1, 2, 3]])
    np.testing.assert_array_equal(kept, rows[:1])


def test_editing_hints_refreshes_an_open_preview(qtbot, viewer, widget):
    image = smooth_image((64, 80), seed=4)
    source = viewer.add_image(image, name="em")
    widget.input_layer.value = source
    points = widget.new_hints_layer()
    run_and_wait(qtbot, widget, "preview")
    (before,) = outputs(viewer, "preview")
    assert "hints" not in before.metadata[METADATA_KEY]
    add_hint(points, (30, 20))

    def refreshed():
        shown = outputs(viewer, "preview")
        return not widget.running and shown and "hints" in shown[0].metadata[METADATA_KEY]

    qtbot.waitUntil(refreshed, timeout=RUN_TIMEOUT_MS)
    (after,) = outputs(viewer, "preview")
    np.testing.assert_allclose(after.metadata[METADATA_KEY]["hints"], [[0, 30, 20, *BLUE]], atol=0.01)


def test_hint_reach_sits_with_the_hints_refreshes_the_preview_and_is_recorded(qtbot, viewer, widget):
    image = smooth_image((48, 260), seed=5)  # wide enough for a far side
    source = viewer.add_image(image, name="em")
    widget.input_layer.value = source
    layout = [w for w in widget]
    assert layout.index(widget.hint_reach) == layout.index(widget.hints_layer) + 2  # after the hints row
    points = widget.new_hints_layer()
    add_hint(points, (24, 20))
    run_and_wait(qtbot, widget, "preview")
    (local,) = outputs(viewer, "preview")
    assert local.metadata[METADATA_KEY]["parameters"]["hint_reach"] == "local"
    local_far = np.array(local.data[:, 160:])
    widget.hint_reach.value = "frame"

    def refreshed():
        shown = outputs(viewer, "preview")
        return not widget.running and shown and shown[0].metadata[METADATA_KEY]["parameters"]["hint_reach"] == "frame"

    qtbot.waitUntil(refreshed, timeout=RUN_TIMEOUT_MS)
    (whole,) = outputs(viewer, "preview")
    np.testing.assert_array_equal(whole.data, colorize(image, device="cpu", hints=[(24, 20, *BLUE)], hint_reach="frame"))
    np.testing.assert_array_equal(local_far, colorize(image, device="cpu")[:, 160:])  # beyond a local hint's reach


def test_hints_with_a_model_that_takes_none_are_reported(qtbot, viewer, widget):
    source = viewer.add_image(smooth_image((40, 48), seed=1), name="em")
    widget.input_layer.value = source
    add_hint(widget.new_hints_layer(), (10, 10))
    widget.model.value = "natural-v1"
    run_and_wait(qtbot, widget)
    assert outputs(viewer) == []
    assert "cannot use hints" in widget.status.value


def test_new_hints_layer_without_an_input_says_so(viewer, widget, monkeypatch):
    import napari.utils.notifications as notes

    shown = []
    monkeypatch.setattr(notes, "show_error", shown.append)
    assert widget.new_hints_layer() is None
    assert "no input" in shown[0] and len(viewer.layers) == 0
