"""The Colorize widget's "Reference palette": a colour layer whose palette
the result follows (under Xvfb, model on CPU)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from test_widget import outputs, run_and_wait, smooth_image

from napari_colorize import colorize
from napari_colorize._widget import METADATA_KEY

pytestmark = pytest.mark.usefixtures("private_settings")


def colour_reference():
    rgb = np.zeros((30, 40, 3), np.uint8)
    rgb[:, :20] = (210, 40, 40)
    rgb[:, 20:] = (40, 60, 220)
    return rgb


def test_the_chooser_offers_colour_layers_and_run_follows_the_chosen_one(qtbot, viewer, widget, natural):
    image = smooth_image((48, 64), seed=4)
    source = viewer.add_image(image, name="em")
    reference = viewer.add_image(colour_reference(), name="stain", rgb=True)
    viewer.add_image(image, name="other gray")
    assert [layer.name for layer in widget.reference_layer.choices if layer is not None] == ["stain"]
    widget.input_layer.value = source
    assert widget.reference_layer.value is None  # nothing is chosen for the user
    widget.reference_layer.value = reference
    if "palette" not in natural.input_names:
        pytest.skip("the shipped natural takes no palette")
    run_and_wait(qtbot, widget)
    (result,) = outputs(viewer)
    assert result.metadata[METADATA_KEY]["reference_layer"] == "stain"
    np.testing.assert_array_equal(result.data, colorize(image, device="cpu", reference=reference.data))
    np.testing.assert_array_equal(reference.data, colour_reference())  # the reference layer is only read


def test_a_model_without_a_palette_input_says_so_in_the_status(qtbot, viewer, widget):
    source = viewer.add_image(smooth_image((40, 48), seed=1), name="em")
    reference = viewer.add_image(colour_reference(), name="stain", rgb=True)
    widget.input_layer.value = source
    widget.reference_layer.value = reference
    widget.model.value = "natural-v1"
    run_and_wait(qtbot, widget)
    assert not outputs(viewer)
    assert "takes no reference palette" in widget.status.value
