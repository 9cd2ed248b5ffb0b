"""Does restoring the lightness first help when the frame is noisy, and what
does it cost? (Issue "Restoration before colour".)

For each folder of colour images (default: ../shared/data/eval/natural/kodak24
with `natural`, and ../shared/data/eval/astro with `astro`), each image's
lightness gray (what `napari-colorize evaluate` colorizes) is corrupted with
Gaussian noise (sigma 0.05 and 0.10 of the range) and Poisson noise (50 and
10 photons at white), then colorized with and without ``restore`` (default:
"denoise", at default settings), and scored against the clean colour truth:
PSNR of the RGB and rebalanced AuC of the ab error, as the evaluation
scores them. The clean gray, colorized, is the reference row.

Then the time: a 2048x2048 uint16 frame colorized with and without each
restoration, medians of ``--repeats`` runs in this process, as ratios to the
run without.

Run: python benchmarks/bench_restoration.py [--limit 24] [--max-side 768]
         [--restore denoise] [--threads N] [--time-only] [--output PATH]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from napari_colorize import colorize
from napari_colorize.color import ab_bins, rgb_to_lab
from napari_colorize.evaluation import colour_truths
from napari_colorize.io import find_images
from napari_colorize.metrics import ABErrorCMF, psnr
from napari_colorize.model import load_checkpoint

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "eval"
RESULTS = HERE / "RESULTS_restoration.md"
#: (folder, model) pairs scored by default.
SETS = ((DATA / "natural" / "kodak24", "natural"), (DATA / "astro", "astro"))
#: name -> function(gray in [0, 1], rng) -> noisy gray in [0, 1]
NOISES = {
    "clean": lambda gray, rng: gray,
    "Gaussian sigma 0.05": lambda gray, rng: gray + rng.normal(0.0, 0.05, gray.shape),
    "Gaussian sigma 0.10": lambda gray, rng: gray + rng.normal(0.0, 0.10, gray.shape),
    "Poisson, 50 photons at white": lambda gray, rng: rng.poisson(gray * 50.0) / 50.0,
    "Poisson, 10 photons at white": lambda gray, rng: rng.poisson(gray * 10.0) / 10.0,
}
#: Restorations timed on the 2048x2048 frame (the first is the default "denoise").
TIMED = ("denoise", "hot-pixels", "clahe", "hot-pixels,denoise,clahe")


class Score:
    """PSNR and rebalanced AuC of one method over images, as `evaluate` scores them."""

    def __init__(self):
        self.cmf = ABErrorCMF(ab_bins())
        self.psnr = []

    def add(self, truth, lab, result):
        self.cmf.add(lab[..., 1:], rgb_to_lab(result)[..., 1:])
        self.psnr.append(psnr(truth, result))

    def cells(self) -> tuple[float, float]:
        return float(np.mean(self.psnr)), self.cmf.auc(rebalanced=True)


def score_folder(folder: Path, model, *, restore: str, limit: int, max_side: int, seed: int = 0) -> dict[str, tuple[Score, Score]]:
    """Per noise: the scores without and with restoration, over up to ``limit`` images (evenly spaced) of ``folder``."""
    paths = find_images([folder])
    if limit and len(paths) > limit:
        paths = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, limit)]
    scores = {noise: (Score(), Score()) for noise in NOISES}
    for number, (_, truth, lab, gray) in enumerate(colour_truths(paths, max_side=max_side)):
        for noise, corrupt in NOISES.items():
            noisy = np.clip(corrupt(gray, np.random.default_rng((seed, number))), 0.0, 1.0).astype(np.float32)
            plain, restored = scores[noise]
            # An explicit (0, 1) range keeps the (noisy) lightness exactly, as evaluate does.
            plain.add(truth, lab, colorize(noisy, model=model, device="cpu", normalize=(0.0, 1.0)))
            restored.add(truth, lab, colorize(noisy, model=model, device="cpu", normalize=(0.0, 1.0), restore=restore))
    return scores


def time_restorations(model, *, side: int, repeats: int) -> dict[str, float]:
    """Median seconds to colorize a noisy ``side``² uint16 frame, without ("none") and with each of TIMED."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:side, :side] / side
    frame = (20000 + 15000 * np.sin(9 * xx) * np.cos(7 * yy) + rng.normal(0, 1500, (side, side))).clip(0, 65535).astype(np.uint16)
    runs = {name: [] for name in ("none", *TIMED)}
    for _ in range(repeats):  # interleaved, so drifts of the machine's speed hit every row alike
        for name in runs:
            start = time.perf_counter()
            colorize(frame, model=model, device="cpu", restore=() if name == "none" else name)
            runs[name].append(time.perf_counter() - start)
    return {name: float(np.median(seconds)) for name, seconds in runs.items()}


def report(results, times, args, seconds, torch) -> str:
    lines = [
        "# Restoration before colour: noisy frames, with and without",
        "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; took {seconds / 60:.1f} min",
        f"- Command: `python benchmarks/bench_restoration.py {' '.join(sys.argv[1:])}`".rstrip(),
        f"- Machine: {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), CPU",
        f"- Restoration: `restore={args.restore!r}` at default settings; images: up to {args.limit} per folder "
        f"(evenly spaced), shrunk to a long side of {args.max_side}; noise added to the lightness gray in [0, 1], then clipped.",
        "",
    ]
    for (folder, model), scores in results.items():
        lines += [f"## {folder} (model `{model}`)", "", "| noise | PSNR without | PSNR with | gain | AuC reb. without | AuC reb. with | gain |", "|---|---:|---:|---:|---:|---:|---:|"]
        for noise, (plain, restored) in scores.items():
            (p0, a0), (p1, a1) = plain.cells(), restored.cells()
            lines.append(f"| {noise} | {p0:.2f} dB | {p1:.2f} dB | {p1 - p0:+.2f} dB | {a0:.1f} % | {a1:.1f} % | {a1 - a0:+.1f} |")
        lines.append("")
    base = times["none"]
    lines += [
        f"## Time: a {args.side}x{args.side} uint16 frame, `natural`, medians of {args.repeats}",
        "",
        "| restore | seconds | ratio to none |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {value:.2f} | {value / base:.2f} |" for name, value in times.items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=24, help="images per folder (evenly spaced; 0: all)")
    parser.add_argument("--max-side", type=int, default=768)
    parser.add_argument("--restore", default="denoise")
    parser.add_argument("--side", type=int, default=2048, help="side of the timed frame")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--time-only", action="store_true", help="only the timing (prints it; writes no file)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    if args.time_only:
        for name, seconds in time_restorations(load_checkpoint("natural", device="cpu"), side=args.side, repeats=args.repeats).items():
            print(f"{name}: {seconds:.2f} s")
        return 0
    results = {}
    for folder, name in SETS:
        if not folder.is_dir():
            print(f"skipped {folder}: not found", file=sys.stderr)
            continue
        model = load_checkpoint(name, device="cpu")
        results[(f"{folder.parent.name}/{folder.name}", name)] = score_folder(
            folder, model, restore=args.restore, limit=args.limit, max_side=args.max_side
        )
        print(f"scored {folder}", file=sys.stderr)
    times = time_restorations(load_checkpoint("natural", device="cpu"), side=args.side, repeats=args.repeats)
    text = report(results, times, args, time.perf_counter() - start, torch)
    args.output.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
