"""GPU throughput of colorize(): tiles per second and megapixels per second.

Run: python benchmarks/bench_gpu.py [MODEL]   (needs a CUDA device)
Prints one line per batch size; medians of 3 runs after a warm-up.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np


def main(model: str = "natural") -> None:
    import torch

    from napari_colorize import colorize
    from napari_colorize.model import OUTPUT_STRIDE, TILE_SIZE
    from napari_colorize.tiling import TileGrid

    if not torch.cuda.is_available():
        sys.exit("bench_gpu: no CUDA device here")
    frame = np.random.default_rng(0).integers(0, 65535, (4096, 4096), dtype=np.uint16)
    tiles = len(TileGrid.for_shape(frame.shape, tile=TILE_SIZE, overlap=32, align=OUTPUT_STRIDE))
    print(f"device: {torch.cuda.get_device_name()}, frame 4096x4096 uint16, {tiles} tiles")
    for batch in (8, 32, 128):
        colorize(frame, model=model, device="cuda", batch_size=batch)
        times = []
        for _ in range(3):
            torch.cuda.synchronize()
            start = time.perf_counter()
            colorize(frame, model=model, device="cuda", batch_size=batch)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        t = statistics.median(times)
        print(f"batch {batch:4d}: {t:.3f} s/frame, {tiles / t:.0f} tiles/s, {frame.size / t / 1e6:.1f} Mpx/s")


if __name__ == "__main__":
    main(*sys.argv[1:])
