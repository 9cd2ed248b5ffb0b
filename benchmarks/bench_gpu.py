"""GPU throughput of colorize() end to end: tiles per second and megapixels per second.

Run: python benchmarks/bench_gpu.py [--models default natural] [--batch-sizes 64 256] [--profile]
     python benchmarks/bench_gpu.py --quick --device cpu     (a smoke run here; figures meaningless)

With ``--profile``, one run of a held 128-frame 512² stack is then profiled
(torch.profiler): the operations that took the most device and host time,
and the share of the time the device was busy.

Issue 12, point 3: a 16384² uint16 frame and a 1000-frame 512² uint16
stack, each through ``colorize`` (normalisation, Lab, tiles, the network in
bf16, the annealed mean, stitching, upsampling and RGB, with the RGB back
in host memory), timed two ways in the same process:

- ``held``: the frames held on the device (the engine's path on CUDA,
  :mod:`napari_colorize.resident`): the raw frame uploaded a frame ahead
  on a side stream, everything after it on the GPU;
- ``host``: tiles cut and normalised on the host, as on a CPU (the path the
  H200 ran at 576 tiles/s before, ``results_gpu_h200.txt``).

Tiles are counted as the 224 tiles of the Zhang grid (overlap 32) over
each frame, whatever windows the model runs in, so that figures compare
across models. Each line is a median of 3 after a warm-up; the lines,
with the device, versions and command, are appended to
``benchmarks/results_gpu.txt`` (not with --quick).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).with_name("results_gpu.txt")


@contextmanager
def frames_held(held: bool):
    """The engine holds frames on the device (``held``) or cuts tiles on the host, whatever the device."""
    import napari_colorize.engine as engine

    chosen = engine.holds_frames_on
    engine.holds_frames_on = lambda device: held
    try:
        yield
    finally:
        engine.holds_frames_on = chosen


def zhang_tiles(shape: tuple[int, ...]) -> int:
    """224 tiles (overlap 32) over every frame of ``shape`` (..., Y, X)."""
    from napari_colorize.tiling import TileGrid

    frames = int(np.prod(shape[:-2], dtype=np.int64))
    return frames * len(TileGrid.for_shape(shape[-2:], tile=224, overlap=32, align=4))


def timed(run, device: str, repeats: int) -> tuple[float, float]:
    """Median seconds of ``repeats`` runs after a warm-up, and the peak device memory (GB) they took."""
    import torch

    cuda = device.startswith("cuda")
    run()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), (torch.cuda.max_memory_allocated() / 1e9 if cuda else float("nan"))


def profiled(run, device: str) -> list[str]:
    """One run of ``run`` under torch's profiler: the operations that took the
    most device time and host time, and the share of the wall time the
    device was busy (what to make faster when a target is missed)."""
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    start = time.perf_counter()
    with profile(activities=activities) as profiler:
        run()
        if cuda:
            torch.cuda.synchronize()
    wall = time.perf_counter() - start
    averages = profiler.key_averages()
    # The kernels and copies themselves: an operation's own device time counts those it launched again.
    busy = sum(event.device_time_total for event in averages if event.device_type != DeviceType.CPU) / 1e6
    lines = [f"profiled: {wall:.2f} s wall (under the profiler), the device busy {busy:.2f} s ({busy / wall:.0%})"]
    lines.append(averages.table(sort_by="self_device_time_total" if cuda else "self_cpu_time_total", row_limit=15))
    if cuda:
        lines.append(averages.table(sort_by="self_cpu_time_total", row_limit=15))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["default"], help="shipped model names or checkpoint files (default: the default model)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[64, 256], help="batch sizes of the held path (224 tiles' worth of pixels)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="auto", help="auto is bf16 on CUDA")
    parser.add_argument("--quick", action="store_true", help="small frames, one timed run, nothing appended")
    parser.add_argument("--profile", action="store_true", help="then profile one run of a held stack of 128 such frames (batch: the last size), printed")
    args = parser.parse_args(argv)

    import torch

    from napari_colorize import __version__, colorize
    from napari_colorize.checkpoint_files import DEFAULT_MODEL

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("bench_gpu: no CUDA device here (--device cpu --quick runs a smoke test)")
    rng = np.random.default_rng(0)
    side, frames = (1024, 12) if args.quick else (16384, 1000)
    cases = {
        f"{side}² uint16 frame": rng.integers(0, 65535, (side, side), dtype=np.uint16),
        f"{frames}×512² uint16 stack": rng.integers(0, 65535, (frames, 512, 512), dtype=np.uint16),
    }
    repeats = 1 if args.quick else 3
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    lines = [
        f"# {time.strftime('%Y-%m-%d')} napari-colorize {__version__}, torch {torch.__version__}, {name}, precision {args.precision}",
        f"# python benchmarks/bench_gpu.py {' '.join(argv if argv is not None else sys.argv[1:])}",
    ]
    print("\n".join(lines), flush=True)
    for model in args.models:
        model = DEFAULT_MODEL if model == "default" else model
        for label, data in cases.items():
            tiles, pixels = zhang_tiles(data.shape), data.size
            runs = [("held", batch) for batch in args.batch_sizes] + [("host", max(args.batch_sizes))]
            for path, batch in runs:
                options = {"model": model, "device": args.device, "precision": args.precision, "batch_size": batch}
                with frames_held(path == "held"):
                    seconds, peak = timed(lambda options=options, data=data: colorize(data, **options), args.device, repeats)
                lines.append(
                    f"{model}, {label}, {path} batch {batch}: {seconds:.2f} s, {tiles / seconds:.0f} tiles/s, "
                    f"{pixels / seconds / 1e6:.0f} Mpx/s, peak {peak:.1f} GB on the device"
                )
                print(lines[-1], flush=True)
    if not args.quick:
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
    if args.profile:
        stack = rng.integers(0, 65535, (128, 512, 512), dtype=np.uint16)
        options = {"model": DEFAULT_MODEL if args.models[0] == "default" else args.models[0], "device": args.device, "precision": args.precision, "batch_size": args.batch_sizes[-1]}
        with frames_held(True):
            colorize(stack, **options)  # warm
            print(f"\n# held, 128×512² uint16 stack, batch {options['batch_size']}", flush=True)
            print("\n".join(profiled(lambda: colorize(stack, **options), args.device)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
