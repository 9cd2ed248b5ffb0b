"""Streaming through the command line: peak memory on a huge frame, and time
per frame as a stack grows.

Run: python benchmarks/bench_streaming.py [--huge-side 16384] [--frames 10 100 1000]
         [--outputs tif ome.zarr]

Each case runs `napari-colorize colorize IN.tif -o OUT.tif` (the huge frame
at --scale 1 and 0.5, into each output format of --outputs) in a fresh
subprocess on an uncompressed uint16 TIFF made here (memory-mapped input),
and reports wall time and the child's peak RSS (ru_maxrss). Peak RSS counts
the input pages the process touched, so "above input" subtracts the input's
own size, as the target (at most 3 GB above it) is stated.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _make_tiff(path: Path, shape: tuple[int, ...]) -> int:
    import tifffile

    data = tifffile.memmap(path, shape=shape, dtype=np.uint16, photometric="minisblack")
    rng = np.random.default_rng(0)
    yy = np.arange(shape[-2], dtype=np.float32)[:, None]
    for index in np.ndindex(*shape[:-2]) if len(shape) > 2 else [()]:
        for r0 in range(0, shape[-2], 1024):
            rows = yy[r0 : r0 + 1024]
            xx = np.arange(shape[-1], dtype=np.float32)[None, :]
            wave = 20000 + 15000 * np.sin(rows / 97.0) * np.cos(xx / 131.0)
            data[index][r0 : r0 + 1024] = (wave + rng.normal(0, 2000, wave.shape)).clip(0, 65535).astype(np.uint16)
    data.flush()
    del data
    return int(np.prod(shape)) * 2


def _run_cli(src: Path, dst: Path, *extra: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one CLI run in a fresh process."""
    command = [sys.executable, "-m", "napari_colorize.cli", "colorize", str(src), "-o", str(dst), "--device", "cpu", "-q", "--overwrite", *extra]
    start = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"CLI failed on {src}")
    return elapsed, usage.ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--huge-side", type=int, default=16384)
    parser.add_argument("--frames", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--side", type=int, default=512, help="frame side of the stacks")
    parser.add_argument("--huge-scales", type=float, nargs="+", default=[1.0, 0.5], help="--scale values for the huge frame")
    parser.add_argument("--outputs", nargs="+", default=["tif"], help="output formats of the huge frame: tif, ome.zarr")
    args = parser.parse_args()
    print(f"napari-colorize CLI streaming benchmark, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        per_frame = {}
        for frames in args.frames:
            src = tmp / f"stack{frames}.tif"
            _make_tiff(src, (frames, args.side, args.side))
            seconds, peak = _run_cli(src, tmp / f"out{frames}.tif")
            per_frame[frames] = seconds / frames
            print(f"stack {frames:4d} x {args.side}^2 uint16: {seconds:7.1f} s, {seconds / frames:.2f} s/frame, peak RSS {peak:.0f} MB")
        counts = sorted(per_frame)
        for small, large in zip(counts, counts[1:]):
            # The fixed start-up (imports, model load) is spread over more frames in
            # the long run; the marginal time per extra frame shows whether it stays flat.
            marginal = (per_frame[large] * large - per_frame[small] * small) / (large - small)
            print(
                f"time per frame, {large} vs {small} frames: ratio {per_frame[large] / per_frame[small]:.2f}; "
                f"marginal s/frame from {small} to {large} frames {marginal:.3f} vs {per_frame[small]:.3f} overall at {small}"
            )
        if args.huge_side:
            src = tmp / "huge.tif"
            size = _make_tiff(src, (args.huge_side, args.huge_side))
            for output in args.outputs:
                for scale in args.huge_scales:
                    seconds, peak = _run_cli(src, tmp / f"huge-out.{output}", "--scale", str(scale))
                    print(
                        f"frame {args.huge_side}^2 uint16 ({size / 2**20:.0f} MB) -> .{output}, --scale {scale:g}: {seconds:.1f} s, "
                        f"peak RSS {peak:.0f} MB, {peak - size / 2**20:.0f} MB above the input's size (target <= 3072)"
                    )

if __name__ == "__main__":
    main()
