"""The napari widget on lazy data: peak memory and time on dask-backed and
multiscale layers larger than what the widget may read at once.

Run: python benchmarks/bench_widget_lazy.py [--side 8192] [--frames 40]
(needs a display: under a headless machine prefix it with `xvfb-run -a`).

Each case runs in a fresh subprocess (so ru_maxrss is its own) that opens a
hidden viewer, adds a dask-backed layer generated chunk by chunk (never held
whole anywhere), presses the widget's Run or Preview and waits for it:

- huge frame: one side x side uint16 frame, "current slice";
- long stack: frames x 512 x 512 uint16, "every frame", the result forced
  into a memory-mapped file (as for a stack larger than memory);
- pyramid preview: a zoomed-out side x side pyramid, "Preview view".

Peak RSS is reported above the process's RSS just before the run, next to
the sizes of the lazy input and of the result.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def _lazy_image(shape, chunks):
    """A uint16 dask array whose chunks are computed on demand (waves plus noise)."""
    import dask.array as da
    import numpy as np

    def block(block_info=None):
        info = block_info[None]
        (y0, y1), (x0, x1) = info["array-location"][-2:]
        yy = np.arange(y0, y1, dtype=np.float32)[:, None]
        xx = np.arange(x0, x1, dtype=np.float32)[None, :]
        seed = hash(tuple(info["chunk-location"])) % 2**32
        wave = 20000 + 15000 * np.sin(yy / 97.0) * np.cos(xx / 131.0)
        wave = wave + np.random.default_rng(seed).normal(0, 2000, wave.shape)
        return wave.clip(0, 65535).astype(np.uint16).reshape(info["chunk-shape"])

    return da.map_blocks(block, dtype=np.uint16, chunks=da.core.normalize_chunks(chunks, shape))


def _case(name: str, side: int, frames: int) -> dict:
    """Run one case in this process (a fresh subprocess) and return its figures."""
    import napari
    import numpy as np
    from qtpy.QtWidgets import QApplication

    from napari_colorize import output_store
    from napari_colorize._widget import ColorizeWidget

    viewer = napari.Viewer(show=False)
    widget = ColorizeWidget(viewer)
    widget.device.value = "cpu"
    if name == "huge frame":
        data = _lazy_image((side, side), (1024, 1024))
        viewer.add_image(data, name="huge", contrast_limits=(0, 65535))
        action, nbytes_in = widget.run, data.nbytes
    elif name == "long stack":
        data = _lazy_image((frames, 512, 512), (1, 512, 512))
        viewer.add_image(data, name="stack", contrast_limits=(0, 65535))
        widget.frames.value = "all"
        output_store.in_memory_limit = lambda: 0  # as if larger than memory
        output_store.cache_folder = lambda: __import__("pathlib").Path(tempfile.mkdtemp())
        action, nbytes_in = widget.run, data.nbytes
    else:
        levels = [_lazy_image((side // 2**k, side // 2**k), (1024, 1024)) for k in range(0, 6)]
        viewer.add_image(levels, name="pyramid", multiscale=True, contrast_limits=(0, 65535))
        viewer.reset_view()
        action, nbytes_in = widget.preview, levels[0].nbytes
    app = QApplication.instance()
    for _ in range(20):
        app.processEvents()
    before = _rss_mb()
    start = time.perf_counter()
    action()
    while widget.running:
        app.processEvents()
        time.sleep(0.01)
    seconds = time.perf_counter() - start
    (output,) = [layer for layer in viewer.layers if "napari_colorize" in layer.metadata]
    data = output.data[0] if output.multiscale else output.data
    made = output.metadata["napari_colorize"]
    return {
        "case": name,
        "seconds": round(seconds, 1),
        "input_MB": round(nbytes_in / 2**20),
        "output_MB": round(np.asarray(data.shape).prod() / 2**20),
        "output_shape": list(data.shape),
        "peak_rss_above_start_MB": round(_peak_mb() - before),
        "stored_in_file": "stored_in" in made,
        "level_read": made.get("multiscale_level", 0),
    }


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=8192)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(_case(args.case, args.side, args.frames)))
        return
    for case in ("pyramid preview", "long stack", "huge frame"):
        command = [sys.executable, __file__, "--case", case, "--side", str(args.side), "--frames", str(args.frames)]
        result = subprocess.run(command, capture_output=True, text=True)
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        if result.returncode or not lines:
            raise SystemExit(f"{case} failed:\n{result.stderr[-3000:]}")
        print(lines[-1], flush=True)


if __name__ == "__main__":
    main()
