"""The Colorize widget's "Restore" group: the restoration options (built
from their declarations by the widget) and a button that shows the restored
lightness of the current frame alone, as an Image layer over the input, so
the user sees what restoration does before colorizing with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from magicgui.widgets import Container, Label, PushButton

from .jobs import ColorizeRequest
from .provenance import METADATA_KEY

logger = logging.getLogger(__name__)

#: The ``kind`` recorded in a restored-lightness layer's metadata.
RESTORED_KIND = "restored lightness"
TOOLTIP = (
    "Show the lightness of the current frame as the colorizer would use it, restored with these settings "
    "(or the input's own when no step is chosen), as a gray layer over the input: no model runs."
)


class RestoreControls:
    """The Restore group of one widget.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    controls : mapping of str to ValueWidget
        The restoration options' controls, in order.
    current_frame_request : callable() -> ColorizeRequest
        The current frame of the input layer with the widget's options;
        raises ValueError with a message for the user when there is none.
    """

    def __init__(self, viewer, controls: Mapping, current_frame_request: Callable[[], ColorizeRequest]):
        self._viewer = viewer
        self.names = tuple(controls)
        self.controls = list(controls.values())
        self._request = current_frame_request
        self._worker = None
        self.preview_button = PushButton(text="Show restored lightness", tooltip=TOOLTIP)
        self.preview_button.changed.connect(self.preview)

    def widgets(self) -> list:
        """The group, for the widget's layout: a heading, the options, the button."""
        heading = Label(value="Restore (before colour)")
        return [heading, *self.controls, Container(widgets=[self.preview_button], labels=False)]

    @property
    def running(self) -> bool:
        return self._worker is not None

    def preview(self, *_args) -> None:
        """Compute the restored lightness of the current frame in a worker thread, then show it."""
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        if self.running:
            return
        try:
            request = self._request()
        except Exception as exc:  # a bad choice is reported, never raised into Qt
            show_error(f"napari-colorize: {exc}")
            return
        self._worker = create_worker(restored_lightness, request)
        self._worker.returned.connect(lambda result: self._show(request, *result))
        self._worker.errored.connect(lambda exc: show_error(f"napari-colorize: restoration failed: {exc}"))
        self._worker.finished.connect(self._on_finished)
        self.preview_button.enabled = False
        self._worker.start()

    def _on_finished(self) -> None:
        self._worker = None
        self.preview_button.enabled = True

    def _show(self, request: ColorizeRequest, lightness, seconds: float) -> None:
        """Add the restored-lightness layer, or replace this input's earlier one in place."""
        from napari.layers import Image

        from .output_layers import find_output_of, replace_layer

        options = request.options
        record = {
            "kind": RESTORED_KIND,
            "shows": "CIE L* (0-100) the colours sit on",
            "restoration": options.restoration.describe() if options.restoration.active else "none: the input's own lightness",
            "parameters": options.parameters(),
            "source_layer": request.layer_name,
            "source_layer_id": request.layer_id,
            "region": [[s.start, s.stop] for s in request.index],
            "seconds": round(seconds, 3),
        }
        layer = Image(
            lightness,
            name=f"{request.layer_name} {RESTORED_KIND}",
            colormap="gray",
            contrast_limits=(0.0, 100.0),
            metadata={METADATA_KEY: record},
            **request.placement,
        )
        replace_layer(self._viewer, layer, find_output_of(self._viewer.layers, request.layer_id, RESTORED_KIND))


def restored_lightness(request: ColorizeRequest):
    """The request's frames' lightness as :func:`napari_colorize.lightness`
    gives it, and the seconds taken (run in a worker thread)."""
    from .pipeline import lightness

    start = time.perf_counter()
    result = lightness(request.source(), options=request.options)
    return result, time.perf_counter() - start
