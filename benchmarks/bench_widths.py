"""What a narrower network would save: int8 time of a model's architecture at
other widths (issue 12, point 2: which lean network a distillation should aim at).

Run: python benchmarks/bench_widths.py [--model natural] [--widths 32 24 16] [--window 864]

Each width's network (random weights: the time does not depend on them;
the model's own width uses its shipped weights) is saved, given an int8
companion as the shipped models are (calibrated on 8 Kodak pictures when
../shared/data is here, else on skimage's astronaut), and timed with ONNX
Runtime on one window of ``--window`` px (the windows a 4096² frame is cut
into by default), 2 threads, median of 5 after one warm-up. Reported: ms
per 224-tile-equivalent (the window's time over its area in 224 tiles).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "eval" / "natural" / "kodak24"


def calibration_pictures() -> list[np.ndarray]:
    from napari_colorize.io import sample_pictures

    if KODAK.is_dir():
        return list(sample_pictures([KODAK], limit=8))
    from skimage.data import astronaut

    return [astronaut()]


def ms_per_tile(path: Path, window: int, threads: int) -> float:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {"lightness": (rng.random((1, 1, window, window)) * 100).astype(np.float32)}
    for spec in session.get_inputs():
        if spec.name != "lightness":
            feeds[spec.name] = (rng.random((1, spec.shape[1])) * 0.3).astype(np.float32)
    session.run(None, feeds)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    return statistics.median(times) / (window * window / 224**2) * 1000


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="natural")
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 24, 16])
    parser.add_argument("--window", type=int, default=864)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    import torch

    from napari_colorize.model import create_colorizer, load_checkpoint, save_checkpoint
    from napari_colorize.quantized import quantize_colorizer

    torch.set_num_threads(args.threads)
    model = load_checkpoint(args.model, device="cpu")
    own_width = int(model.metadata["width"])
    pictures = calibration_pictures()
    work = Path(tempfile.mkdtemp())
    print(f"# python benchmarks/bench_widths.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"# {model.name} ({model.architecture}, width {own_width}), int8, window {args.window}, {args.threads} threads")
    print("| width | ms per 224-tile-equivalent | share of the model's own |")
    print("|---:|---:|---:|")
    rows = {}
    for width in args.widths:
        if width == own_width:
            colorizer = model
        else:
            save_checkpoint(create_colorizer(architecture=model.architecture, head=model.head, width=width), work / f"w{width}.safetensors")
            colorizer = load_checkpoint(work / f"w{width}.safetensors", device="cpu")
        rows[width] = ms_per_tile(quantize_colorizer(colorizer, pictures, work / f"w{width}.int8.onnx"), args.window, args.threads)
    for width, ms in rows.items():
        share = f"{ms / rows[own_width]:.2f}" if own_width in rows else "-"
        print(f"| {width} | {ms:.2f} | {share} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
