"""Make docs/images/hints-em.png: a screenshot of napari with colour hints on an electron micrograph.

Run from the repository root:
    xvfb-run -a python docs/make_hints_screenshot.py
(on a desktop, without xvfb-run).
Frame 0 of the ISBI 2012 neuron EM stack (../shared/data/gray), opened in
napari with the Colorize dock widget on 'natural'. Left: the automatic
result; right: the result with a few hints placed on a hints layer made by the
widget (mitochondria green, membranes amber, cytoplasm blue), the hint points
drawn over it, with the default hint reach (each colour within about 60 px). The colours are a user's choice steering the model, not stains.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from make_figure import DATA  # docs/, beside this script
from PIL import Image

from napari_colorize import colorize
from napari_colorize.compare_view import grid_of

HERE = Path(__file__).resolve().parent
STACK = DATA / "gray" / "em-isbi2012-stack.tif"
GREEN, AMBER, BLUE = (40, 200, 70), (250, 160, 30), (70, 150, 250)
#: (y, x, r, g, b) in the frame's pixels: two mitochondria, two membranes
#: (the dark lines between the neurites), two points in one cell's cytoplasm.
HINTS = (
    (185, 445, *GREEN),
    (270, 75, *GREEN),
    (173, 233, *AMBER),
    (352, 264, *AMBER),
    (175, 140, *BLUE),
    (235, 180, *BLUE),
)
WINDOW = (2300, 1000)  # the dock widget makes the window taller
MAX_BYTES = 1_500_000


def add_hint_points(points, hints) -> None:
    """Add ``hints`` to a hints layer the way a user does: a point, then its face colour."""
    for y, x, *rgb in hints:
        points.add(np.array([y, x], dtype=float))
        colours = np.array(points.face_color)
        colours[-1, :3] = np.array(rgb) / 255
        points.face_color = colours


def settle(app, rounds: int = 10) -> None:
    for _ in range(rounds):
        app.processEvents()


def save_small(rgba: np.ndarray, out: Path) -> None:
    """Save the screenshot as PNG, dropping the lowest bit of each channel
    while it is over MAX_BYTES (a 256-colour palette would wash out the hints)."""
    rgb = np.ascontiguousarray(rgba[..., :3])
    for bits in (8, 7, 6, 5):
        Image.fromarray(rgb & np.uint8(0xFF << (8 - bits) & 0xFF)).save(out, optimize=True)
        if out.stat().st_size <= MAX_BYTES:
            return


def main() -> None:
    # A fresh config folder: napari's and the widget's remembered settings do not change the picture.
    with tempfile.TemporaryDirectory() as config:
        os.environ["XDG_CONFIG_HOME"] = config
        os.environ["NAPARI_CONFIG"] = str(Path(config) / "napari.yaml")
        import napari
        from qtpy.QtWidgets import QApplication

        frame = tifffile.imread(STACK, key=0)  # frame 0 only: 512 x 512 uint8
        auto = colorize(frame, device="cpu")
        hinted = colorize(frame, device="cpu", hints=list(HINTS))

        viewer = napari.Viewer(title="napari-colorize: colour hints", show=True)
        app = QApplication.instance()
        viewer.window._qt_window.resize(*WINDOW)
        automatic = viewer.add_image(auto, name="automatic (no hints)", rgb=True)
        em = viewer.add_image(frame, name="EM (gray)")
        _dock, widget = viewer.window.add_plugin_dock_widget("napari-colorize", "Colorize")
        widget.model.value = "natural"
        widget.device.value = "cpu"
        widget.input_layer.value = em
        points = widget.new_hints_layer()
        points.current_size = 14
        add_hint_points(points, HINTS)
        points.size = 14
        points.border_width = 0.2
        points.border_color = "white"
        # The widget reads the same hints off the layer that the library call was given.
        rows = widget.hint_controls.rows(em)
        assert np.allclose(rows[:, 1:], np.array(HINTS, dtype=float), atol=0.5), rows
        with_hints = viewer.add_image(hinted, name=f"with {len(HINTS)} colour hints", rgb=True)
        viewer.layers.move(viewer.layers.index(points), len(viewer.layers))  # hint points on top
        em.visible = False  # hidden layers take no grid cell
        # Layers, bottom to top: automatic, EM (gray), hinted, hints; two to a grid
        # cell (stride 2): automatic on the left, hinted under its points on the right.
        grid = grid_of(viewer)
        grid.stride, grid.shape, grid.spacing, grid.enabled = 2, (1, 2), 20, True
        for layer in (automatic, with_hints):
            layer.name_overlay.visible = True
            layer.name_overlay.font_size = 14
        viewer.layers.selection.active = points
        points.mode = "pan_zoom"  # no add-mode cursor in the picture
        settle(app)
        viewer.reset_view()
        settle(app)
        out = HERE / "images" / "hints-em.png"
        save_small(viewer.screenshot(canvas_only=False, flash=False), out)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
        viewer.close()


if __name__ == "__main__":
    main()
