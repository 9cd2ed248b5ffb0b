"""Preview view in the widget: seconds from the button (or a hint edit) to
the preview layer, on a 1024 x 1024 view, without and with colour hints.

Run: xvfb-run -a python benchmarks/bench_preview.py [--side 1024] [--repeats 5] [--threads N]

Opens a hidden viewer with a side x side uint16 frame filling the canvas,
then times, median of ``--repeats`` after one warm-up:
- Preview view with no hints;
- Preview view with 10 hints on a hints layer (the default hint reach,
  near each hint: tiles a hint reaches run twice, with and without hints),
  and with the whole-frame reach;
- a hint moved while the preview is shown: the time from the edit until the
  refreshed preview is on screen (the widget waits for the edit to settle,
  hint_controls.SETTLE_MS, before it starts; that wait is included).
The model is loaded once before timing (as after a first use).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def frame(side: int) -> np.ndarray:
    yy, xx = np.mgrid[:side, :side].astype(np.float32)
    waves = np.sin(xx / 37.0) * np.cos(yy / 23.0) + 0.5 * np.sin((xx + yy) / 91.0)
    noise = np.random.default_rng(0).normal(0, 0.05, (side, side))
    return (20000 + 15000 * (waves + noise)).clip(0, 65535).astype(np.uint16)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    import napari
    import torch
    from qtpy.QtWidgets import QApplication

    from napari_colorize._widget import ColorizeWidget
    from napari_colorize.hint_controls import SETTLE_MS
    from napari_colorize.model import load_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    load_checkpoint("natural", device="cpu")  # cached: timing starts after the first load
    viewer = napari.Viewer(show=False)
    viewer.window._qt_window.resize(1400, 1100)
    layer = viewer.add_image(frame(args.side), name="frame")
    viewer.reset_view()
    widget = ColorizeWidget(viewer)
    widget.device.value = "cpu"
    app = QApplication.instance()

    def wait_idle():
        while widget.running:
            app.processEvents()
            time.sleep(0.002)

    def preview_seconds() -> float:
        start = time.perf_counter()
        widget.preview()
        wait_idle()
        return time.perf_counter() - start

    def median_preview() -> float:
        preview_seconds()  # warm-up
        return statistics.median(preview_seconds() for _ in range(args.repeats))

    results = {"no hints": median_preview()}
    points = widget.new_hints_layer()
    rng = np.random.default_rng(1)
    for _ in range(10):
        points.add(rng.uniform(0, args.side, 2))
    results["10 hints"] = median_preview()
    widget.hint_reach.value = "frame"  # refreshes the shown preview: let it finish first
    wait_idle()
    results["10 hints, whole-frame reach"] = median_preview()
    widget.hint_reach.value = "local"
    wait_idle()

    def shown_hints():
        preview = next(other for other in viewer.layers if other.name == "frame preview")
        return preview.metadata["napari_colorize"]

    def refreshed_after_edit() -> float:
        before = shown_hints()["hints"]
        start = time.perf_counter()
        data = np.array(points.data)
        data[0] = rng.uniform(0, args.side, 2)
        points.data = data
        while shown_hints()["hints"] == before or widget.running:
            app.processEvents()
            time.sleep(0.002)
        return time.perf_counter() - start

    results["hint moved, until refreshed"] = statistics.median(refreshed_after_edit() for _ in range(args.repeats))
    made = shown_hints()
    print(
        f"# python benchmarks/bench_preview.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip()
        + f"; torch {torch.__version__}, {torch.get_num_threads()} thread(s); view {args.side}x{args.side} of layer {layer.name!r},"
        f" preview read with step {made.get('preview_step', 1)} at scale {made['parameters']['scale']:.3f}; settle wait {SETTLE_MS} ms"
    )
    for case, seconds in results.items():
        print(f"{case}: median {seconds:.2f} s over {args.repeats}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
