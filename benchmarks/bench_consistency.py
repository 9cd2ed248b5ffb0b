"""Consistency of colorize(): the same pixels should get the same colour
whatever the tile grid, the crop or the noise, without visible tile banding.
Models side by side. (Colour hints: benchmarks/bench_hints.py.)

Run: python benchmarks/bench_consistency.py [MODEL ...] [--quick] [--threads N]
         [--window PX] [--data DIR] [--output PATH]

MODEL is a shipped model name or a .safetensors checkpoint (default:
natural). Figures are printed as a Markdown table and written to
benchmarks/RESULTS_consistency.md (with --quick, a smoke run on small crops
whose figures mean nothing, only if --output is given). What each figure
means: benchmarks/README.md, "Consistency".
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path

import numpy as np

from napari_colorize import colorize
from napari_colorize.color import rgb_to_lab
from napari_colorize.engine import frame_grid
from napari_colorize.io import read_image
from napari_colorize.model import load_checkpoint
from napari_colorize.normalization import intensity_range, normalize_frame
from napari_colorize.options import DEFAULT_WINDOW, ColorizeOptions

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data"
RESULTS = HERE / "RESULTS_consistency.md"
SHIFT = 37  # px, both axes
NOISE = 0.03  # noise sigma / frame standard deviation
STACK_FRAMES = 4
NEIGHBOURS = 6  # frequency bins each side of the tile frequency
GRAY_FRAMES = {"EM frame 0": "em-isbi2012-stack.tif", "m51": "m51.tif", "m67": "m67-palomar-dss.tif"}


def ab_of(rgb: np.ndarray) -> np.ndarray:
    """The a*b* channels (..., 2) of uint8 RGB."""
    return rgb_to_lab(rgb)[..., 1:]


def chroma(ab: np.ndarray) -> float:
    """Mean chroma sqrt(a² + b²) of ab (..., 2)."""
    return float(np.hypot(ab[..., 0], ab[..., 1]).mean())


def ab_change(ab1: np.ndarray, ab2: np.ndarray) -> float:
    """Mean Euclidean ab distance |Δab| between two aligned ab arrays."""
    return float(np.linalg.norm(ab1 - ab2, axis=-1).mean())


def cell(ratio: float, mean_chroma: float) -> str:
    """A table cell: the ratio and, beside it, the mean chroma it is relative to."""
    return f"{ratio:.3f} (C {mean_chroma:.1f})"


def centre_crop(frame: np.ndarray, side: int | None) -> tuple[slice, slice]:
    """Slices of the ``side`` x ``side`` square at the centre of ``frame`` (all of it for None)."""
    if side is None:
        return slice(None), slice(None)
    y, x = ((n - min(side, n)) // 2 for n in frame.shape)
    return slice(y, y + side), slice(x, x + side)


def grid_consistency(colorizer, frame: np.ndarray, crop: int, window: int) -> tuple[dict, np.ndarray]:
    """Shift and crop consistency of one frame, with the whole frame's intensity range.

    Parameters
    ----------
    colorizer : Colorizer
    frame : ndarray, shape (Y, X)
    crop : int
        Side of the centre crop colorized alone.
    window : int
        The window option of every run.

    Returns
    -------
    cells : dict
        'shift' and 'crop': mean |Δab| on the overlap / mean chroma of the
        whole-frame result there, as table cells; 'upside down': the same for
        the frame colorized upside down and turned back (a colour prior tied
        to up and down in a tile shows here).
    whole_ab : ndarray, shape (Y, X, 2)
        ab of the whole-frame result.
    """
    options = {"model": colorizer, "device": "cpu", "normalize": intensity_range(frame), "window": window}
    whole = ab_of(colorize(frame, **options))
    region = centre_crop(frame, crop)
    cells = {}
    for name, part in (("shift", (slice(SHIFT, None), slice(SHIFT, None))), ("crop", region)):
        alone = ab_of(colorize(frame[part], **options))
        reference = whole[part]
        cells[name] = cell(ab_change(reference, alone) / chroma(reference), chroma(reference))
    turned_back = ab_of(colorize(frame[::-1], **options))[::-1]
    cells["upside down"] = cell(ab_change(whole, turned_back) / chroma(whole), chroma(whole))
    return cells, whole


def stack_consistency(colorizer, frame: np.ndarray, window: int, context: str = "stack", consensus: int = 0) -> str:
    """Mean over frame pairs of mean |Δab| / mean chroma, for noisy copies of ``frame``
    colorized as one stack (stack normalisation and, for a model that takes it,
    ``context``; colours shared with ``consensus`` frames on each side)."""
    sigma = NOISE * float(frame.std())
    stack = np.stack([frame + np.random.default_rng(seed).normal(0.0, sigma, frame.shape) for seed in range(STACK_FRAMES)])
    options = {"normalize": "stack", "context": context, "stack_consensus": consensus, "window": window}
    ab = ab_of(colorize(stack.astype(np.float32), model=colorizer, device="cpu", **options))
    mean_chroma = chroma(ab)
    changes = [ab_change(ab[i], ab[j]) for i, j in combinations(range(STACK_FRAMES), 2)]
    return cell(float(np.mean(changes)) / mean_chroma, mean_chroma)


def tile_period(starts: tuple[int, ...]) -> float | None:
    """Mean spacing of tile (or window) starts (None for a single one)."""
    return (starts[-1] - starts[0]) / (len(starts) - 1) if len(starts) > 1 else None


def peak_ratio(profile: np.ndarray, period: float) -> float:
    """Fourier amplitude of ``profile`` at ``period`` over the median amplitude of
    the NEIGHBOURS frequencies each side (1/len apart, at least one cycle per
    profile), after removing a linear trend; NaN entries count as 0."""
    n = len(profile)
    t = np.arange(n)
    valid = np.isfinite(profile)
    residual = np.where(valid, profile - np.polyval(np.polyfit(t[valid], profile[valid], 1), t), 0.0)
    offsets = np.arange(-NEIGHBOURS, NEIGHBOURS + 1)
    cycles = n / period + offsets
    keep = cycles >= 1
    amplitude = np.abs(np.exp(-2j * np.pi * np.outer(cycles[keep], t) / n) @ residual)
    return float(amplitude[offsets[keep] == 0][0] / np.median(amplitude[offsets[keep] != 0]))


def banding_ratios(ab: np.ndarray, background: np.ndarray, periods: tuple[float, float]) -> dict[str, float]:
    """Peak ratios (see :func:`peak_ratio`) of the background's a* and b* row
    means (a profile along y) at ``periods[0]`` and column means at ``periods[1]``."""
    ratios = {}
    for axis, name, period in ((1, "rows", periods[0]), (0, "cols", periods[1])):
        with np.errstate(invalid="ignore"):
            means = (ab * background[..., None]).sum(axis) / background.sum(axis)[..., None]
        for channel, letter in enumerate("ab"):
            ratios[f"{letter} {name}"] = peak_ratio(means[:, channel], period)
    return ratios


def banding(ab: np.ndarray, frame: np.ndarray, colorizer, window: int) -> str:
    """Tile-period banding of the background's a* and b* row and column means.

    Background: pixels below the median normalised intensity. The row means
    (a profile along y) are tested at the spacing of the rows of tiles (or
    windows) colorize() cut the frame into, the column means at that of
    their columns. The cell gives the largest of the four peak ratios, then
    each of them. For windows larger than the model's tile it also gives
    the largest for the frame coloured in one window (no seam anywhere):
    what the frame's own content gives at that period, which dominates when
    there are only a few windows (a period of a few hundred pixels, a
    couple of cycles); and how far the windows' colours and the tiles' are
    from that seamless result.
    """
    intensity = normalize_frame(frame, *intensity_range(frame))
    background = intensity < np.percentile(intensity, 50)
    grid = frame_grid(frame.shape, colorizer, ColorizeOptions(model=colorizer, window=window))
    periods = tuple(tile_period(starts) for starts in (grid.starts_y, grid.starts_x))
    if None in periods:
        return "single window: no period"
    ratios = banding_ratios(ab, background, periods)
    detail = ", ".join(f"{k} {v:.2f}" for k, v in ratios.items())
    shown = "/".join(f"{p:.0f}" for p in periods)
    cell = f"{max(ratios.values()):.2f} ({detail}; background C {chroma(ab[background]):.1f}; period {shown} px"
    if not colorizer.windowed or window <= colorizer.tile_size:
        return cell + ")"
    options = {"model": colorizer, "device": "cpu", "normalize": intensity_range(frame)}
    one_window = ab_of(colorize(frame, window=max(frame.shape) + colorizer.tile_size, **options))
    tiles = ab_of(colorize(frame, window=colorizer.tile_size, **options))
    seamless = max(banding_ratios(one_window, background, periods).values())
    away = {name: ab_change(result, one_window) / chroma(one_window) for name, result in (("windows", ab), ("tiles", tiles))}
    return cell + (
        f"; the frame in one window, where no seam can be: {seamless:.2f}; mean \\|Δab\\| from it over its mean chroma: "
        f"{away['windows']:.3f} in these windows, {away['tiles']:.3f} in {colorizer.tile_size} tiles)"
    )


def load_inputs(data: Path, quick: bool, notes: list[str]) -> dict[str, np.ndarray]:
    """The gray frames by label (EM frame 0, m51, m67, camera), float32; a note for each missing file."""
    frames = {}
    for label, name in GRAY_FRAMES.items():
        path = data / "gray" / name
        if path.is_file():
            image = read_image(path)
            frames[label] = image.reshape(-1, *image.shape[-2:])[0]
        else:
            notes.append(f"{label}: {path} missing, its measurements skipped.")
    from skimage.data import camera

    frames["camera"] = camera()
    side = 320 if quick else None
    return {k: np.asarray(v[centre_crop(v, side)], dtype=np.float32) for k, v in frames.items()}


def measure(colorizer, frames, args) -> dict[tuple[str, str], str]:
    """Every figure of one model: {(measurement, target): cell}."""
    crop = 128 if args.quick else 300
    out = {}
    for label in ("EM frame 0", "m51", "m67"):
        if label not in frames:
            continue
        cells, whole_ab = grid_consistency(colorizer, frames[label], crop, args.window)
        out[(f"shift {SHIFT} px: {label}", "≤ 0.15")] = cells["shift"]
        out[(f"crop {crop}²: {label}", "≤ 0.15")] = cells["crop"]
        out[(f"upside down and back: {label}", "")] = cells["upside down"]
        if label == "m67":
            out[("banding at tile period: m67", "≤ 2")] = banding(whole_ab, frames[label], colorizer, args.window)
    for label in ("EM frame 0", "camera"):
        if label in frames:
            out[(f"stack of {STACK_FRAMES} noisy copies, stack consensus {STACK_FRAMES - 1}: {label}", "≤ 0.02")] = stack_consistency(
                colorizer, frames[label], args.window, consensus=STACK_FRAMES - 1
            )
            out[(f"stack of {STACK_FRAMES} noisy copies, no consensus: {label}", "")] = stack_consistency(colorizer, frames[label], args.window)
            if "context" in colorizer.frame_inputs:  # is the stack context worth being the default?
                out[(f"stack of {STACK_FRAMES} noisy copies, context per frame: {label}", "")] = stack_consistency(colorizer, frames[label], args.window, "frame")
    return out


def table(results: dict[str, dict], models: list[str]) -> str:
    """A Markdown table: one row per measurement, one column per model."""
    rows = list(dict.fromkeys(key for figures in results.values() for key in figures))
    lines = ["| measurement | target | " + " | ".join(models) + " |", "|---|---|" + "---:|" * len(models)]
    for label, target in rows:
        values = (results[m].get((label, target), "-") for m in models)
        lines.append(f"| {label} | {target} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def report(table_text, models, colorizers, seconds, notes, torch, window) -> str:
    """The results file: when, how, on what, the table and the notes."""
    from napari_colorize.int8_runtime import int8_engine
    from napari_colorize.prediction import resolve_precision

    def arithmetic(colorizer) -> str:
        precision = resolve_precision(colorizer, "auto")
        return f"{precision}, {int8_engine()}" if precision == "int8" else precision

    sums = ", ".join(f"`{m}` sha256 {c.sha256[:16]} ({arithmetic(c)})" for m, c in zip(models, colorizers))
    lines = [
        "# Consistency of colorize(): tile grid, crop, stack, banding",
        "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; took {seconds / 60:.1f} min",
        f"- Command: `python benchmarks/bench_consistency.py {' '.join(sys.argv[1:])}`",
        f"- Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), device cpu",
        f"- Models, each with the arithmetic colorize() ran it in (its default, precision='auto'): {sums}",
        f"- Window option: {window} px (at or below a model's tile size: its tiles)",
        '- Cells: ratio (C = the mean chroma it is relative to); banding: largest peak ratio (each one). See benchmarks/README.md, "Consistency".',
        "",
        table_text,
    ]
    return "\n".join(lines + [""] + [f"Note: {n}" for n in notes] + [""])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=["natural"], help="shipped model names or .safetensors checkpoints")
    parser.add_argument("--quick", action="store_true", help="smoke run on small crops; figures meaningless")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW, help=f"colorize()'s window option (default {DEFAULT_WINDOW}; 224: the model's tiles)")
    parser.add_argument("--data", type=Path, default=DATA, help=f"shared data folder (default {DATA})")
    parser.add_argument("--output", type=Path, default=None, help=f"results file (default {RESULTS}; none with --quick)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    notes = ["--quick: small crops and few images, figures meaningless."] if args.quick else []
    colorizers = [load_checkpoint(m, device="cpu") for m in args.models]
    frames = load_inputs(args.data, args.quick, notes)
    results = {}
    for model, colorizer in zip(args.models, colorizers):
        t0 = time.perf_counter()
        results[model] = measure(colorizer, frames, args)
        print(f"{model}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    text = table(results, args.models)
    print(text)
    for note in notes:
        print(f"Note: {note}")
    output = args.output if args.output is not None or args.quick else RESULTS
    if output is not None:
        output.write_text(report(text, args.models, colorizers, time.perf_counter() - start, notes, torch, args.window))
        print(f"written: {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
