"""Does a reference palette help? Scores without one, with the truth's own,
and with another image's.

For each evaluation image: drop its colour (``lightness_to_gray`` of the
true L, as ``napari-colorize evaluate`` does) and colorize it
(``normalize=(0, 1)``) three ways (``napari_colorize.evaluation.reference_scores``):
without a reference (the automatic result), with the image itself as the
reference (its true palette: an upper bound), and with the next image of
the same folder as the reference (what a user has: a picture of the same
kind). Reports, per folder, mean PSNR, rebalanced AuC and colourfulness,
beside the gray baseline's.

Run: python benchmarks/bench_reference.py [MODEL ...] [--folders DIR ...]
         [--limit N] [--threads 1] [--output PATH]

Default: `natural` over ../shared/data/eval/natural/{kodak24, mcmaster18}.
Writes benchmarks/RESULTS_reference.md (``--output`` elsewhere; with
``--limit`` only if ``--output`` is given).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench_uncertainty import folder_sets, models_report, parse_evaluation_arguments, write_report  # benchmarks/, beside this script

from napari_colorize.evaluation import reference_scores
from napari_colorize.model import load_checkpoint

HERE = Path(__file__).resolve().parent
FOLDERS = ("natural/kodak24", "natural/mcmaster18")
RESULTS = HERE / "RESULTS_reference.md"


def cell(row) -> str:
    return f"{row.psnr:.2f} dB / {row.auc_rebalanced:.1f} % / {row.colorfulness:.1f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args, folders = parse_evaluation_arguments(parser, argv, FOLDERS)
    if not folders:
        return 0
    started = time.perf_counter()
    colorizers = {model: load_checkpoint(model, device="cpu") for model in args.models}
    lines = [
        "| folder (images) | reference | " + " | ".join(f"`{model}`" for model in args.models) + " |",
        "|---|---|" + "---:|" * len(args.models),
    ]
    for name, paths, gray in folder_sets(folders, args.limit):
        scores = {model: reference_scores(colorizer, paths) for model, colorizer in colorizers.items()}
        lines.append(
            f"| {name} ({gray.images} images; the truth's colourfulness {gray.colorfulness_truth:.1f}) | gray (no colour) | "
            + " | ".join(cell(gray) for _ in args.models)
            + " |"
        )
        for kind, label in (("none", "none (automatic)"), ("own", "its own (upper bound)"), ("other", "another image of the folder")):
            lines.append(f"| | {label} | " + " | ".join(cell(scores[model][kind]) for model in args.models) + " |")
        print("\n".join(lines[-4:]), flush=True)
    minutes = (time.perf_counter() - started) / 60
    report = models_report(
        "Reference palettes: none, the truth's own, another image's",
        "bench_reference.py",
        argv,
        minutes,
        colorizers,
        "mean PSNR / rebalanced AuC / colourfulness.",
        lines,
    )
    write_report(report, args.output, limited=bool(args.limit), default=RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
