"""The widget's Restore group: its options reach Run and the output's record,
and "Show restored lightness" shows the current frame's restored lightness
alone over the input (under Xvfb, model on CPU)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from test_widget import RUN_TIMEOUT_MS, outputs, run_and_wait, smooth_image

from napari_colorize import colorize, lightness
from napari_colorize._widget import METADATA_KEY
from napari_colorize.restore_controls import RESTORED_KIND

pytestmark = pytest.mark.usefixtures("private_settings")


def noisy_stack(frames=2, shape=(48, 56)) -> np.ndarray:
    rng = np.random.default_rng(0)
    clean = np.stack([smooth_image(shape, seed=s).astype(np.float32) for s in range(frames)])
    return clean + rng.normal(0, 150, clean.shape).astype(np.float32)


def show_restored(qtbot, widget) -> None:
    widget.restore_controls.preview()
    qtbot.waitUntil(lambda: not widget.restore_controls.running, timeout=RUN_TIMEOUT_MS)


def test_the_restore_group_is_off_by_default_and_run_uses_it(qtbot, viewer, widget):
    image = noisy_stack(1)[0]
    widget.input_layer.value = viewer.add_image(image, name="noisy")
    assert widget.restore.value == [] and widget.colorize_options().restore == ()
    widget.restore.value = ["clahe", "denoise"]
    widget.denoiser.value = "tv"
    run_and_wait(qtbot, widget)
    (result,) = outputs(viewer)
    record = result.metadata[METADATA_KEY]
    assert record["parameters"]["restore"] == ["denoise", "clahe"] and record["parameters"]["denoiser"] == "tv"
    assert record["restoration"]["steps"] == ["denoise", "clahe"]
    np.testing.assert_array_equal(result.data, colorize(image, device="cpu", restore="denoise,clahe", denoiser="tv"))


def test_show_restored_lightness_adds_one_gray_layer_of_the_current_frame_over_the_input(qtbot, viewer, widget):
    stack = noisy_stack(2)
    source = viewer.add_image(stack, name="em", scale=(1.0, 2.0, 0.5), translate=(0.0, 10.0, -4.0))
    widget.input_layer.value = source
    viewer.dims.set_point(0, 1)
    widget.restore.value = ["denoise"]
    show_restored(qtbot, widget)
    (layer,) = outputs(viewer, RESTORED_KIND)
    assert layer.name == "em restored lightness" and tuple(layer.contrast_limits) == (0.0, 100.0)
    np.testing.assert_allclose(layer.data, lightness(stack[1:2], restore="denoise"))
    np.testing.assert_allclose(layer.data_to_world((0, 5, 7)), source.data_to_world((1, 5, 7)))
    assert layer.metadata[METADATA_KEY]["restoration"]["steps"] == ["denoise"]
    spread = layer.data.std()
    # shown again with other settings: replaced in place, not added
    widget.denoise_strength.value = 3.0
    show_restored(qtbot, widget)
    (again,) = outputs(viewer, RESTORED_KIND)
    np.testing.assert_allclose(again.data, lightness(stack[1:2], restore="denoise", denoise_strength=3.0))
    assert again.data.std() < spread
    np.testing.assert_array_equal(source.data, stack)


def test_show_restored_lightness_without_an_input_says_so(qtbot, viewer, widget, monkeypatch):
    from napari.utils import notifications

    shown = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    widget.restore_controls.preview()
    assert shown and "no input" in shown[0]
    assert not widget.restore_controls.running


def test_the_restore_choices_are_remembered_and_a_bad_remembered_step_is_skipped(viewer, widget):
    from napari_colorize._widget import ColorizeWidget
    from napari_colorize.settings import save_settings

    widget.restore.value = ["hot-pixels", "denoise"]
    widget.noise_sigma.value = "stack"
    save_settings(widget.settings())
    again = ColorizeWidget(viewer)
    assert again.restore.value == ["hot-pixels", "denoise"] and again.noise_sigma.value == "stack"
    problems = again.apply_settings({"restore": ["denoise", "blur"], "denoise_strength": 2.0})
    assert len(problems) == 1 and "blur" in problems[0]
    assert again.restore.value == ["hot-pixels", "denoise"] and again.denoise_strength.value == 2.0
