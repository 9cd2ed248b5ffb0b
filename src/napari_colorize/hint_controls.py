"""The Colorize widget's "Colour hints" controls: a chooser of the Points
layer holding the hints, a button that makes one over the input layer, and
whether hints apply to every frame of a stack.

Changes to the chosen layer (a point added, moved, deleted or recoloured)
are reported, once the user pauses, to a callback: the widget uses it to
refresh its preview.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, PushButton

from .hint_points import hints_layer_kwargs, image_hint_rows, is_hints_layer

#: How long hints must stay unchanged before the callback runs (ms): a drag is one change.
SETTLE_MS = 300

TOOLTIPS = {
    "layer": "A Points layer whose points are colour hints: each point's face colour is the colour wanted there. "
    "Click to add (add mode), drag to move, Delete to remove; pick a colour in the layer controls.",
    "new": "Add an empty hints layer over the input layer, in add mode.",
    "every_frame": "Give every hint to every frame of a stack, not only to the frame it was placed on.",
}


class HintControls:
    """The hint controls of one widget over ``viewer``; ``on_change`` is
    called (on the GUI thread) once the chosen hints settle after a change."""

    def __init__(self, viewer, on_change: Callable[[], None]):
        self._viewer = viewer
        self._on_change = on_change
        self._watched = None
        self._debounced = None
        self.layer = ComboBox(label="Colour hints", choices=self._choices, nullable=True, value=None, tooltip=TOOLTIPS["layer"])
        self.new_button = PushButton(text="New hints layer", tooltip=TOOLTIPS["new"])
        self.every_frame = CheckBox(text="Hints on every frame", value=False, tooltip=TOOLTIPS["every_frame"])
        self.layer.changed.connect(self._watch)
        self.every_frame.changed.connect(self._changed)

    def widgets(self) -> list:
        """The controls, for the widget's layout."""
        row = Container(widgets=[self.new_button, self.every_frame], layout="horizontal", labels=False)
        return [self.layer, row]

    def _choices(self, _widget=None) -> list:
        return [(layer.name, layer) for layer in reversed(self._viewer.layers) if is_hints_layer(layer)]

    def refresh(self) -> None:
        """Re-read the layer list (keeps the chosen layer while it is there)."""
        self.layer.reset_choices()

    def new_layer(self, image_layer):
        """Add an empty hints layer over ``image_layer``, choose it, and put it in add mode."""
        if image_layer is None:
            raise ValueError("no input: add or open a grayscale image layer first")
        layer = self._viewer.add_points(**hints_layer_kwargs(image_layer))
        layer.mode = "add"
        self.refresh()
        self.layer.value = layer
        return layer

    def rows(self, image_layer) -> np.ndarray | None:
        """The chosen layer's hints over ``image_layer`` (full-resolution rows), or None."""
        points = self.layer.value
        if points is None or image_layer is None:
            return None
        return image_hint_rows(points, image_layer, every_frame=self.every_frame.value)

    def close(self) -> None:
        """Stop following the chosen layer and drop a pending callback (the widget is going)."""
        self._on_change = lambda: None
        if self._debounced is not None:
            self._debounced.cancel()
        for emitter in _edit_events(self._watched) if self._watched is not None else []:
            emitter.disconnect(self._changed)
        self._watched = None

    def _watch(self, *_args) -> None:
        """Follow the chosen layer's edits (and stop following the previous one)."""
        for layer in [self._watched] if self._watched is not None else []:
            for emitter in _edit_events(layer):
                emitter.disconnect(self._changed)
        self._watched = self.layer.value
        for emitter in _edit_events(self._watched) if self._watched is not None else []:
            emitter.connect(self._changed)
        self._changed()

    def _changed(self, *_args) -> None:
        if self._debounced is None:
            from superqt.utils import qdebounced

            self._debounced = qdebounced(lambda: self._on_change(), timeout=SETTLE_MS)
        self._debounced()


def _edit_events(layer) -> list:
    """The events of a Points layer that change its hints: points added,
    moved or deleted, and colours set (on the points, or as the current
    colour, which recolours the selected points)."""
    return [layer.events.data, layer.events.face_color, layer.events.current_face_color]
