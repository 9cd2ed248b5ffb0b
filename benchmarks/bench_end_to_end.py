"""End-to-end CPU time and peak memory of colorize() at default settings.

Run: python benchmarks/bench_end_to_end.py [--runs 3] [--cases 4096 em] [--json PATH]

Cases:
  224   a single 224x224 uint16 frame (one tile): the fixed cost of a call,
        to tell it apart from what grows with the image.
  4096  a 4096x4096 uint16 frame (seeded random intensities; speed does not
        depend on content).
  4096-fixed-mmap
        the 4096 case again with glibc's mmap threshold fixed at 1 MiB
        (MALLOC_MMAP_THRESHOLD_=1048576): a diagnostic that separates memory
        in use from freed heap memory glibc keeps (with its default dynamic
        threshold, freed large buffers stay in the process's RSS). One call
        only: its time is not a speed figure (every large buffer is then a
        fresh mmap, which is slower).
  em    the 30-frame ISBI 2012 EM stack, /work/shared/data/gray/em-isbi2012-stack.tif
        (skipped with a message if the file is absent; its read time is
        reported separately and not included).

Each case runs in a fresh Python subprocess that imports torch and
napari_colorize and loads the model (the baseline RSS is taken there), makes
or reads the input, then calls colorize(image, model=..., device='cpu') --
everything else at its defaults -- once cold and then --runs more times. The
time of each call covers the whole colorize() call (normalisation, tiling,
network, stitching, upsampling, Lab -> sRGB); the reported time is the median
of the warm calls. "tiles" counts the 224 tiles the input holds (tiles/s:
224-tile-equivalents per second), whatever windows colorize() runs in. Peak memory is the peak RSS (ru_maxrss) of that subprocess,
read by the parent from os.wait4(); "above baseline" subtracts the RSS after
imports and model load (before the input exists), so it includes the input
and output arrays.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EM_STACK = Path("/work/shared/data/gray/em-isbi2012-stack.tif")
CASES = ("224", "4096", "4096-fixed-mmap", "em")
#: Extra environment of a case's subprocess.
CASE_ENV = {"4096-fixed-mmap": {"MALLOC_MMAP_THRESHOLD_": "1048576"}}
#: Cases that only need their peak memory: one (cold) call, whatever --runs says.
MEMORY_ONLY = ("4096-fixed-mmap",)
MB = 1024 * 1024


def current_rss() -> int:
    """Resident set size of this process in bytes."""
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    return 0


def peak_rss_self() -> int:
    """Peak RSS of this process so far, in bytes (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(case: str, runs: int, model: str, out: Path) -> None:
    t0 = time.perf_counter()
    import numpy as np
    import torch

    from napari_colorize import colorize
    from napari_colorize.model import load_checkpoint
    from napari_colorize.options import DEFAULT_OVERLAP
    from napari_colorize.tiling import TileGrid

    colorizer = load_checkpoint(model, device="cpu")
    import_seconds = time.perf_counter() - t0
    rss_baseline = current_rss()
    peak_before_input = peak_rss_self()

    read_seconds = None
    if case in ("224", "4096", "4096-fixed-mmap"):
        side = int(case.split("-")[0])
        image = np.random.default_rng(0).integers(0, 65535, (side, side), dtype=np.uint16)
        source = f"synthetic {side}x{side} uint16 (seeded random)"
    elif case == "em":
        import tifffile

        t = time.perf_counter()
        image = tifffile.imread(EM_STACK)
        read_seconds = time.perf_counter() - t
        source = str(EM_STACK)
    else:
        raise SystemExit(f"unknown case {case!r}")
    rss_with_input = current_rss()
    frames = int(np.prod(image.shape[:-2], dtype=np.int64))
    # In the model's tiles, the unit of the Zhang comparison, whatever windows colorize() runs in.
    grid = TileGrid.for_shape(image.shape[-2:], tile=colorizer.tile_size, overlap=DEFAULT_OVERLAP, align=colorizer.output_stride)
    tiles = frames * len(grid)

    seconds, peaks = [], []
    for i in range(runs + 1):
        t = time.perf_counter()
        rgb = colorize(image, model=model, device="cpu")
        seconds.append(time.perf_counter() - t)
        peaks.append(peak_rss_self())
        label = "cold" if i == 0 else f"run {i}/{runs}"
        print(f"    [{case}] {label}: {seconds[-1]:.2f} s, peak RSS so far {peaks[-1] / MB:.0f} MB", flush=True)
        del rgb
    result = {
        "case": case,
        "env": CASE_ENV.get(case, {}),
        "source": source,
        "shape": list(image.shape),
        "dtype": str(image.dtype),
        "frames": frames,
        "tiles": tiles,
        "model": colorizer.name,
        "num_threads": torch.get_num_threads(),
        "import_and_load_seconds": import_seconds,
        "read_seconds": read_seconds,
        "input_mb": image.nbytes / MB,
        "output_mb": image.size * 3 / MB,
        "cold_seconds": seconds[0],
        "warm_seconds": seconds[1:],
        "median_seconds": statistics.median(seconds[1:]) if runs else None,
        "rss_baseline_mb": rss_baseline / MB,
        "peak_before_input_mb": peak_before_input / MB,
        "rss_with_input_mb": rss_with_input / MB,
        "peak_after_each_call_mb": [p / MB for p in peaks],
    }
    out.write_text(json.dumps(result))


def run_case(case: str, runs: int, model: str) -> dict:
    """Run one case in a fresh subprocess; return its figures plus its peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", case, "--runs", str(runs), "--model", model, "--out", str(out)]
        proc = subprocess.Popen(cmd, env={**os.environ, **CASE_ENV.get(case, {})})
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"case {case} failed with exit code {proc.returncode}")
        result = json.loads(out.read_text())
    result["peak_rss_mb"] = usage.ru_maxrss * 1024 / MB
    result["peak_above_baseline_mb"] = result["peak_rss_mb"] - result["rss_baseline_mb"]
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed warm calls per case, after one cold call (default 3)")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--model", default="natural")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.runs, args.model, args.out)
        return {}

    results = {"runs": args.runs, "model": args.model, "cases": {}, "skipped": {}}
    for case in args.cases:
        if case == "em" and not EM_STACK.is_file():
            msg = f"{EM_STACK} is absent"
            print(f"[em] skipped: {msg}")
            results["skipped"][case] = msg
            continue
        runs = 0 if case in MEMORY_ONLY else args.runs
        print(f"[{case}] fresh subprocess, 1 cold + {runs} timed calls of colorize(image, model={args.model!r}, device='cpu')", flush=True)
        r = run_case(case, runs, args.model)
        results["cases"][case] = r
        read = f", file read {r['read_seconds']:.2f} s (not included)" if r["read_seconds"] is not None else ""
        if r["median_seconds"] is None:
            timing = f"one call only (memory diagnostic): {r['cold_seconds']:.2f} s"
        else:
            timing = (
                f"median {r['median_seconds']:.2f} s over {runs} warm calls ({', '.join(f'{s:.2f}' for s in r['warm_seconds'])}), "
                f"cold {r['cold_seconds']:.2f} s; {r['tiles'] / r['median_seconds']:.1f} tiles/s"
            )
        print(
            f"[{case}] {'x'.join(map(str, r['shape']))} {r['dtype']}, {r['tiles']} tiles{read}\n"
            f"[{case}] time: {timing}\n"
            f"[{case}] memory: peak RSS {r['peak_rss_mb']:.0f} MB; baseline after imports+model {r['rss_baseline_mb']:.0f} MB; "
            f"peak above baseline {r['peak_above_baseline_mb']:.0f} MB (input {r['input_mb']:.0f} MB, output {r['output_mb']:.0f} MB)",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
