"""Colour hints and reference palettes, in one table: how much they help,
and how far hints reach.

For each evaluation image: drop its colour (``lightness_to_gray`` of the
true L, as ``napari-colorize evaluate`` does) and colorize it
(``normalize=(0, 1)``):

- with k = 0, 1, 5, 10, 20 hints taken from the truth at random pixels
  (``napari_colorize.evaluation.hint_scores``), with ``hint_reach="local"``
  (the default) and ``"frame"``; "far" is the mean ab change, against the
  automatic result, of the pixels over 64 px from every hint;
- with a reference palette (palette-taking models), the image's own (an
  upper bound) and the next image's of the folder
  (``napari_colorize.evaluation.reference_scores``);
- the bound on local hints (``local_hint_bound``): the automatic result
  with the true colour within 64 px of the 10 hints; and also with the
  farther pixels' largest errors cut down to one threshold, for a mean far
  change of 2 ab units (where it removes the most error). No hints that
  change far pixels by 2 ab units on average can do better.

The last rows compare k = 10 with k = 0 against issue 11's targets.

Run: python benchmarks/bench_hints.py [MODEL ...] [--folders DIR ...]
         [--limit N] [--threads 1] [--output PATH]

Default: `natural` over ../shared/data/eval/natural/{kodak24, mcmaster18}.
Writes benchmarks/RESULTS_hints.md (``--output`` elsewhere; with
``--limit`` only if ``--output`` is given).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from bench_uncertainty import folder_sets, models_report, parse_evaluation_arguments, write_report  # benchmarks/, beside this script

from napari_colorize.evaluation import FAR_CHANGE_LIMIT, hint_scores, local_hint_bound, reference_scores
from napari_colorize.hints import HINT_REACHES
from napari_colorize.model import load_checkpoint

HERE = Path(__file__).resolve().parent
FOLDERS = ("natural/kodak24", "natural/mcmaster18")
RESULTS = HERE / "RESULTS_hints.md"
COUNTS = (0, 1, 5, 10, 20)
COMPARED = 10


def cell(psnr: float, auc: float, far: float | None = None) -> str:
    return f"{psnr:.2f} dB / {auc:.1f} %" + ("" if far is None or math.isnan(far) else f" / far {far:.2f}")


def model_rows(colorizer, paths) -> dict[str, str]:
    """One model's cells over one folder, by row label (in table order)."""
    rows, gains = {}, {}  # gains: name -> (with k hints, automatic, far change)
    for reach in HINT_REACHES:
        scores = hint_scores(colorizer, paths, COUNTS, hint_reach=reach)
        for k, score in scores.items():
            if k or reach == HINT_REACHES[0]:
                rows["automatic (k = 0)" if k == 0 else f"{reach} reach, k = {k}"] = cell(*score)
        gains[f"{reach} reach"] = (scores[COMPARED], scores[0], f"{scores[COMPARED].far_change:.2f}")
    if "palette" in colorizer.input_names:
        references = reference_scores(colorizer, paths)
        for kind, label in (("own", "reference: its own palette (upper bound)"), ("other", "reference: another image's palette")):
            rows[label] = cell(references[kind].psnr, references[kind].auc_rebalanced)
    automatic = gains["local reach"][1]
    for bound in local_hint_bound(colorizer, paths, COMPARED).values():
        moved = bound.far_change > 0
        name = "truth within 64 px" + (f", largest far errors cut (mean change {FAR_CHANGE_LIMIT:g})" if moved else "")
        rows[f"bound on local hints, k = {COMPARED}: {name}"] = cell(bound.psnr, bound.auc_rebalanced)
        gains[f"bound, {name}"] = (bound, automatic, f"≤ {FAR_CHANGE_LIMIT:g}" if moved else "0")
    for name, (hinted, base, far) in gains.items():
        rows[f"k = {COMPARED} over k = 0, {name}: PSNR / AuC / far"] = (
            f"{hinted.psnr - base.psnr:+.2f} dB / {hinted.auc_rebalanced - base.auc_rebalanced:+.1f} / {far}"
        )
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args, folders = parse_evaluation_arguments(parser, argv, FOLDERS)
    if not folders:
        return 0
    started = time.perf_counter()
    colorizers = {model: load_checkpoint(model, device="cpu") for model in args.models}
    lines = [
        "| folder (images) | colorized with | target | " + " | ".join(f"`{model}`" for model in args.models) + " |",
        "|---|---|---|" + "---:|" * len(args.models),
    ]
    for name, paths, gray in folder_sets(folders, args.limit):
        cells = {model: model_rows(colorizer, paths) for model, colorizer in colorizers.items()}
        lines.append(
            f"| {name} ({gray.images} images) | gray (no colour) | | "
            + " | ".join(cell(gray.psnr, gray.auc_rebalanced) for _ in args.models)
            + " |"
        )
        for label in dict.fromkeys(label for rows in cells.values() for label in rows):
            target = "≥ +3 dB / ≥ +8 / ≤ 2" if label.startswith(f"k = {COMPARED} over") else ""
            lines.append(f"| | {label} | {target} | " + " | ".join(cells[model].get(label, "n/a") for model in args.models) + " |")
        print("\n".join(lines[2:]), flush=True)
    minutes = (time.perf_counter() - started) / 60
    report = models_report(
        "Colour hints and reference palettes: how much they help, how far hints reach",
        "bench_hints.py",
        argv,
        minutes,
        colorizers,
        "mean PSNR / rebalanced AuC / far (mean ab change over 64 px from every hint).",
        lines,
    )
    write_report(report, args.output, limited=bool(args.limit), default=RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
