"""Input and result side by side, in napari's grid mode, and back (no Qt).

The grid shares one camera, so panning or zooming one side moves both. Only
the two layers are shown, the result left of its input; everything the view
changed (the grid, the layer order, which layers are visible) is put back
exactly by :meth:`CompareView.restore`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def grid_of(viewer):
    """The viewer's grid settings: ``viewer.canvas.grid`` since napari 0.9
    (``viewer.grid`` is deprecated there), ``viewer.grid`` before."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


@dataclass
class CompareView:
    """What a side-by-side comparison changed, to put it back."""

    grid: dict = field(default_factory=dict)
    order: list = field(default_factory=list)
    visible: dict = field(default_factory=dict)

    @classmethod
    def show(cls, viewer, source, result) -> CompareView:
        """Show ``source`` and ``result`` side by side; returns how to undo it."""
        grid = grid_of(viewer)
        saved = cls(
            grid={"enabled": grid.enabled, "shape": tuple(grid.shape), "stride": grid.stride},
            order=list(viewer.layers),
            visible={id(layer): layer.visible for layer in viewer.layers},
        )
        for layer in viewer.layers:
            layer.visible = layer is source or layer is result
        # The grid fills its cells from the top of the layer list: the result first, then its input.
        for layer in (source, result):
            viewer.layers.move(viewer.layers.index(layer), len(viewer.layers))
        grid.stride, grid.shape, grid.enabled = 1, (1, 2), True
        return saved

    def restore(self, viewer) -> None:
        """Put the grid, the layer order and the visibility back (layers removed meanwhile are skipped)."""
        present = [layer for layer in self.order if layer in viewer.layers]
        for position, layer in enumerate(present):
            viewer.layers.move(viewer.layers.index(layer), position)
        for layer in viewer.layers:
            layer.visible = self.visible.get(id(layer), layer.visible)
        grid = grid_of(viewer)
        grid.stride, grid.shape, grid.enabled = self.grid["stride"], self.grid["shape"], self.grid["enabled"]
