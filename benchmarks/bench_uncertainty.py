"""Does the uncertainty map mean something? Per-pixel ab error against it.

For each evaluation image: drop its colour (``lightness_to_gray`` of the
true L, as ``napari-colorize evaluate`` does), colorize it with
``uncertainty=True`` (``normalize=(0, 1)``), and pair, at a random sample
of pixels, the ab error of the result (Euclidean distance to the true ab)
with the uncertainty there (the normalised entropy of the predicted
distribution, 0 certain, 1 uniform). Reports, per folder and pooled over
all of them, Spearman's rank correlation of the two and the mean ab error
in each decile of uncertainty (each row's own deciles, so that a folder
whose uncertainties all lie high still fills ten cells); a map that means
something has a clearly positive correlation and errors that grow from the
first decile to the last.

Run: python benchmarks/bench_uncertainty.py [MODEL ...] [--folders DIR ...]
         [--limit N] [--pixels 4000] [--threads 1] [--output PATH]

Default: `natural` over ../shared/data/eval/natural/
{kodak24, mcmaster18, bsds500-test}, eval/astro and eval/micro (each with
its subfolders). Writes benchmarks/RESULTS_uncertainty.md (``--output``
elsewhere; with ``--limit`` only if ``--output`` is given).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from napari_colorize import colorize
from napari_colorize.color import rgb_to_lab
from napari_colorize.evaluation import colour_truths
from napari_colorize.io import find_images
from napari_colorize.model import load_checkpoint

HERE = Path(__file__).resolve().parent
EVAL = HERE.parents[1] / "shared" / "data" / "eval"
FOLDERS = ("natural/kodak24", "natural/mcmaster18", "natural/bsds500-test", "astro", "micro")
RESULTS = HERE / "RESULTS_uncertainty.md"
DECILES = 10


def sample_pairs(colorizer, paths, *, pixels: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(uncertainty, ab error) at ``pixels`` random pixels of each image, concatenated."""
    rng = np.random.default_rng(seed)
    uncertainties, errors = [], []
    for _, truth, lab, gray in colour_truths(paths):
        rgb, uncertainty = colorize(gray, model=colorizer, device="cpu", normalize=(0.0, 1.0), uncertainty=True)
        error = np.linalg.norm(rgb_to_lab(rgb)[..., 1:] - lab[..., 1:], axis=-1)
        chosen = rng.choice(error.size, size=min(pixels, error.size), replace=False)
        uncertainties.append(uncertainty.reshape(-1)[chosen])
        errors.append(error.reshape(-1)[chosen])
    return np.concatenate(uncertainties), np.concatenate(errors)


def evaluation_folders(given, defaults) -> list[Path]:
    """The folders ``given`` (or ``defaults``, under ../shared/data/eval) that
    exist; those missing are named on stderr and skipped."""
    folders = [Path(f).resolve() for f in given] if given else [EVAL / f for f in defaults]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        print(f"skipped: evaluation folders not found: {', '.join(missing)}", file=sys.stderr)
    return [f for f in folders if f.is_dir()]


def parse_evaluation_arguments(parser, argv, defaults: tuple[str, ...]):
    """``parser`` given the arguments every evaluation benchmark takes (models,
    ``--folders``, ``--limit``, ``--threads``, ``--output``), parsed; torch set
    to the threads asked for. Returns the arguments and the folders found."""
    parser.add_argument("models", nargs="*", default=["natural"])
    parser.add_argument(
        "--folders", nargs="+", default=None, help=f"evaluation folders (default: {', '.join(defaults)} under ../shared/data/eval)"
    )
    parser.add_argument("--limit", type=int, default=None, help="first N images of each folder")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    return args, evaluation_folders(args.folders, defaults)


def run_lines(script: str, argv, minutes: float) -> list[str]:
    """The report lines saying when, how (the command) and where a benchmark ran."""
    import torch

    return [
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; took {minutes:.1f} min",
        f"- Command: `python benchmarks/{script} {' '.join(sys.argv[1:] if argv is None else argv)}`",
        f"- Machine: {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), device cpu",
    ]


def folder_sets(folders, limit: int | None):
    """For each folder: its name (relative to ../shared/data/eval when under
    it), its first ``limit`` colour images, and the gray baseline's scores
    on them (``evaluation.evaluate`` with no model)."""
    from napari_colorize.evaluation import GRAY, evaluate

    for folder in folders:
        name = folder.relative_to(EVAL) if folder.is_relative_to(EVAL) else folder
        gray = next(row for row in evaluate([], folder, device="cpu", limit=limit) if row.method == GRAY)
        yield name, find_images([folder])[:limit], gray


def models_report(title: str, script: str, argv, minutes: float, colorizers: dict, cells: str, lines: list[str]) -> str:
    """A benchmark's report: its title, when and how it ran, the models'
    digests, what a cell holds, then its table ``lines``."""
    shas = ", ".join(f"`{model}` {colorizer.sha256[:16]}" for model, colorizer in colorizers.items())
    return "\n".join(
        [f"# {title}", "", *run_lines(script, argv, minutes), f"- Models (sha256): {shas}", f"- Cells: {cells} See the docstring of benchmarks/{script}.", "", *lines, ""]
    )


def write_report(report: str, output: Path | None, *, limited: bool, default: Path) -> None:
    """Write ``report`` to ``output``, or to ``default`` unless the run was limited (a partial run overwrites nothing by default)."""
    output = output or (None if limited else default)
    if output is not None:
        output.write_text(report, encoding="utf-8")
        print(f"wrote {output}")


def decile_means(uncertainty: np.ndarray, error: np.ndarray) -> list[float]:
    """Mean error in each decile of ``uncertainty`` (ranked, so ties cannot empty a decile)."""
    order = np.argsort(uncertainty, kind="stable")
    return [float(part.mean()) for part in np.array_split(error[order], DECILES)]


def rows_for(name: str, uncertainty: np.ndarray, error: np.ndarray) -> str:
    rho = spearmanr(uncertainty, error).statistic
    means = " | ".join(f"{m:.1f}" for m in decile_means(uncertainty, error))
    low, high = np.quantile(uncertainty, [0.1, 0.9])
    return f"| {name} | {len(error):,} | {rho:.3f} | {low:.2f} / {float(np.median(uncertainty)):.2f} / {high:.2f} | {means} |"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pixels", type=int, default=4000, help="pixels sampled per image")
    args, folders = parse_evaluation_arguments(parser, argv, FOLDERS)

    if not folders:
        return 0
    started = time.perf_counter()
    sections = []
    for model in args.models:
        colorizer = load_checkpoint(model)
        colorizer.check_uncertainty()
        samples = {}
        for folder in folders:
            paths = find_images([folder])[: args.limit]
            samples[folder.relative_to(EVAL) if folder.is_relative_to(EVAL) else folder] = sample_pairs(
                colorizer, paths, pixels=args.pixels
            )
        pooled = tuple(np.concatenate(parts) for parts in zip(*samples.values()))
        header = " | ".join(f"D{d + 1}" for d in range(DECILES))
        lines = [
            f"### `{model}` (sha256 {colorizer.sha256[:16]})",
            "",
            "Cells D1–D10: mean ab error in each decile of the row's uncertainty, most certain first.",
            "",
            f"| folder | pixels | Spearman ρ | uncertainty 10th / 50th / 90th percentile | {header} |",
            "|---|---:|---:|---:|" + "---:|" * DECILES,
            *(rows_for(str(name), *pair) for name, pair in samples.items()),
            rows_for("all (pooled)", *pooled),
        ]
        sections.append("\n".join(lines))
        print(sections[-1], flush=True)
    minutes = (time.perf_counter() - started) / 60
    report = "\n".join(
        [
            "# Uncertainty against error: is the entropy map worth looking at?",
            "",
            *run_lines("bench_uncertainty.py", argv, minutes),
            f"- {args.pixels} random pixels per image; folders with subfolders include them. See the docstring of benchmarks/bench_uncertainty.py.",
            "",
            *(section + "\n" for section in sections),
        ]
    )
    write_report(report, args.output, limited=bool(args.limit), default=RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
