"""GPU throughput of colorize(): tiles per second and megapixels per second.

Run: python benchmarks/bench_gpu.py [MODEL]   (needs a CUDA device)

One line per precision and batch size (medians of 3 runs after a warm-up),
printed and appended to benchmarks/results_gpu.txt with the device's name,
so every GPU the project gets leaves its figures behind.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).with_name("results_gpu.txt")


def main(model: str = "natural") -> None:
    import torch

    from napari_colorize import __version__, colorize
    from napari_colorize.model import load_checkpoint
    from napari_colorize.tiling import TileGrid

    if not torch.cuda.is_available():
        sys.exit("bench_gpu: no CUDA device here")
    frame = np.random.default_rng(0).integers(0, 65535, (4096, 4096), dtype=np.uint16)
    colorizer = load_checkpoint(model)  # its architecture sets the tile and the stride
    tiles = len(TileGrid.for_shape(frame.shape, tile=colorizer.tile_size, overlap=32, align=colorizer.output_stride))
    lines = [
        f"# {time.strftime('%Y-%m-%d')} napari-colorize {__version__}, torch {torch.__version__}, "
        f"{torch.cuda.get_device_name()}, frame 4096x4096 uint16, {tiles} tiles, model {model}"
    ]
    print(lines[0], flush=True)
    for precision in ("fp32", "bf16", "fp16"):
        for batch in (8, 32, 128):
            options = dict(model=model, device="cuda", batch_size=batch, precision=precision)
            colorize(frame, **options)
            times = []
            for _ in range(3):
                torch.cuda.synchronize()
                start = time.perf_counter()
                colorize(frame, **options)
                torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
            t = statistics.median(times)
            lines.append(f"{precision} batch {batch:4d}: {t:.3f} s/frame, {tiles / t:.0f} tiles/s, {frame.size / t / 1e6:.1f} Mpx/s")
            print(lines[-1], flush=True)
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
