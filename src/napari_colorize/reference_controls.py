"""The Colorize widget's "Reference palette" chooser: a colour (RGB) image
layer whose palette the result follows (the global hints of Zhang et al.
2017; see :func:`napari_colorize.palette.reference_palette`)."""

from __future__ import annotations

import dataclasses

from magicgui.widgets import ComboBox

from .jobs import ColorizeRequest

TOOLTIP = (
    "A colour image layer (RGB) whose palette the result follows: a Hubble composite, a stained slide, a photograph. "
    "Its distribution of colours is given to a model trained to take it (natural-lean, natural); other models refuse it."
)


class ReferenceControls:
    """The reference chooser of one widget over ``viewer``."""

    def __init__(self, viewer):
        self._viewer = viewer
        self.layer = ComboBox(label="Reference palette", choices=self._choices, nullable=True, value=None, tooltip=TOOLTIP)

    def widgets(self) -> list:
        """The controls, for the widget's layout."""
        return [self.layer]

    def _choices(self, _widget=None) -> list:
        return [(layer.name, layer) for layer in reversed(self._viewer.layers) if getattr(layer, "rgb", False)]

    def refresh(self) -> None:
        """Re-read the layer list (keeps the chosen layer while it is there)."""
        self.layer.reset_choices()

    def applied(self, request: ColorizeRequest | None) -> ColorizeRequest | None:
        """``request`` with the chosen layer's image as its reference, and its
        name in the notes the output records; unchanged with none chosen."""
        layer = self.layer.value
        if request is None or layer is None:
            return request
        data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
        if data.ndim != 3:
            raise ValueError(f"reference layer {layer.name!r} has {data.ndim - 1} axes besides its colours: choose a single RGB image")
        notes = {**request.notes, "reference_layer": layer.name}
        return dataclasses.replace(request, reference=data, notes=notes)
