"""The widget's output layers: the colour result and, when asked for, the
model's uncertainty beside it.

Each is an Image layer placed exactly over the input pixels it was made
from (the request's placement: scale, translate, rotate, shear, affine,
units) and records in its metadata how it was made, so it is never
offered as an input itself (:func:`is_colorizable`). A rerun replaces the
earlier layer of the same kind and content in its place, keeping its
visibility, opacity and blending, unless copies are kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .jobs import ColorizeOutcome, ColorizeRequest, output_metadata, output_name
from .provenance import METADATA_KEY

if TYPE_CHECKING:
    import napari

#: Colormap of uncertainty layers: dark where the model is sure, bright where it is not.
UNCERTAINTY_COLORMAP = "magma"


def shows_uncertainty(layer) -> bool:
    """True for an uncertainty layer made by this plugin."""
    made = layer.metadata.get(METADATA_KEY) if isinstance(layer.metadata, dict) else None
    return bool(made) and made.get("shows") == "uncertainty"


def find_output(layers, request: ColorizeRequest, *, uncertainty: bool = False):
    """The earlier output of the same kind for the same input layer, if any:
    its colour layer, or with ``uncertainty`` its uncertainty layer."""
    return find_output_of(layers, request.layer_id, request.kind, uncertainty=uncertainty)


def find_output_of(layers, layer_id: str, kind: str, *, uncertainty: bool = False):
    """The output of ``kind`` ('result' or 'preview') made from the input
    layer with unique id ``layer_id``, if any (its uncertainty layer with ``uncertainty``)."""
    for layer in layers:
        made = layer.metadata.get(METADATA_KEY) if isinstance(layer.metadata, dict) else None
        same_request = made and made.get("source_layer_id") == layer_id and made.get("kind") == kind
        if same_request and shows_uncertainty(layer) == uncertainty:
            return layer
    return None


def colour_layer(request: ColorizeRequest, outcome: ColorizeOutcome):
    """The RGB result as an Image layer, placed over its input."""
    from napari.layers import Image

    return Image(
        outcome.rgb,
        rgb=True,
        multiscale=isinstance(outcome.rgb, list),
        name=output_name(request.layer_name, request.kind),
        metadata=output_metadata(request, outcome),
        **request.placement,
    )


def uncertainty_layer(request: ColorizeRequest, outcome: ColorizeOutcome):
    """The uncertainty (0 certain .. 1 uniform) as an Image layer with a
    fixed colormap and contrast limits, placed exactly like the colour layer."""
    from napari.layers import Image

    return Image(
        outcome.uncertainty,
        multiscale=isinstance(outcome.uncertainty, list),
        name=output_name(request.layer_name, request.kind, uncertainty=True),
        metadata=output_metadata(request, outcome, uncertainty=True),
        colormap=UNCERTAINTY_COLORMAP,
        contrast_limits=(0.0, 1.0),
        **request.placement,
    )


def add_outputs(viewer: napari.viewer.Viewer, request: ColorizeRequest, outcome: ColorizeOutcome, *, keep_copies: bool):
    """Add the colour layer, and the uncertainty layer above it when the
    outcome has one, each replacing its earlier one unless ``keep_copies``.

    Returns
    -------
    napari.layers.Image
        The colour layer.
    """
    made = [(colour_layer(request, outcome), False)]
    if outcome.uncertainty is not None:
        made.append((uncertainty_layer(request, outcome), True))
    for layer, uncertainty in made:
        earlier = None if keep_copies else find_output(viewer.layers, request, uncertainty=uncertainty)
        replace_layer(viewer, layer, earlier)
    return made[0][0]


#: What a layer made here carries over when it takes a new result in place.
TAKEN_OVER = ("data", "name", "metadata", "scale", "translate", "rotate", "shear", "affine", "units", "axis_labels")


def replace_layer(viewer, layer, earlier) -> None:
    """Add ``layer``, or, when ``earlier`` is a layer, show it where that was, as it was shown.

    Where the two are alike (both RGB or neither, both multiscale or
    neither, as many dimensions), ``earlier`` takes ``layer``'s data, name,
    metadata, placement and colours in place: removing a layer makes napari
    collect garbage, about 0.2 s with torch loaded, which was most of a
    Preview refresh.
    """
    if earlier is None:
        viewer.add_layer(layer)
        return
    if (earlier.rgb, earlier.multiscale, earlier.ndim) == (layer.rgb, layer.multiscale, layer.ndim):
        for name in TAKEN_OVER:
            if hasattr(layer, name):  # units and axis labels: napari >= 0.6
                setattr(earlier, name, getattr(layer, name))
        if not layer.rgb:
            earlier.colormap, earlier.contrast_limits = layer.colormap, layer.contrast_limits
        return
    position = viewer.layers.index(earlier)
    layer.visible, layer.opacity, layer.blending = earlier.visible, earlier.opacity, earlier.blending
    viewer.layers.remove(earlier)
    viewer.layers.insert(position, layer)


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
