"""CUDA checks, run on a GPU machine: bf16/fp16 autocast against fp32, the
out-of-memory fallback (batch halving), and throughput.

Run: python benchmarks/gpu_check.py  (prints a report; exits 1 on a failed check)
"""

from __future__ import annotations

import sys

import numpy as np


def main() -> int:
    import torch

    from napari_colorize import colorize
    from napari_colorize.pipeline import _Predictor
    from napari_colorize.model import load_checkpoint

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device")
        return 1
    failed = 0
    frame = np.random.default_rng(0).integers(0, 65535, (1024, 1024), dtype=np.uint16)
    fp32 = colorize(frame, device="cuda", precision="fp32")
    cpu = colorize(frame, device="cpu")
    print(f"cuda fp32 vs cpu: max |diff| {np.abs(fp32.astype(int) - cpu).max()} levels, mean {np.abs(fp32.astype(int) - cpu).mean():.4f}")
    for precision in ("bf16", "fp16"):
        out = colorize(frame, device="cuda", precision=precision)
        diff = np.abs(out.astype(int) - fp32)
        ok = diff.mean() < 1.0 and np.percentile(diff, 99.9) <= 8
        failed += not ok
        print(f"{precision} vs fp32: mean {diff.mean():.3f}, p99.9 {np.percentile(diff, 99.9):.0f}, max {diff.max()} levels -> {'ok' if ok else 'FAIL'}")

    # Out-of-memory fallback: a predictor whose first big batches fail.
    colorizer = load_checkpoint("natural", device="cuda")
    predictor = _Predictor(colorizer, temperature=0.38, batch_size=64, precision="fp32")
    real = colorizer.predict_ab
    calls = []

    def flaky(tiles, *, temperature):
        calls.append(len(tiles))
        if len(tiles) > 16:
            raise torch.cuda.OutOfMemoryError("simulated")
        return real(tiles, temperature=temperature)

    colorizer.predict_ab = flaky
    tiles = torch.rand(64, 1, 224, 224, device="cuda") * 100
    out = predictor(tiles)
    colorizer.predict_ab = real
    expected = real(tiles, temperature=0.38)
    ok = out.shape == expected.shape and torch.allclose(out, expected, atol=1e-3) and predictor.batch_size == 16
    failed += not ok
    print(f"OOM fallback: batch sizes tried {calls[:4]}..., final {predictor.batch_size} -> {'ok' if ok else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
