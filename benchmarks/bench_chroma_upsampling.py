"""Guided-filter upsampling of chroma vs bilinear: quality and cost.

The network predicts ab at 1/4 resolution; the engine upsamples it
bilinearly. This benchmark colorizes each evaluation image once (bilinear,
exactly what ``colorize()`` returns today), keeps the stitched chroma it
produced, and composes it again with :func:`napari_colorize.chroma_upsampling.guided_ab`
(guided filter, full-resolution L as guide) for each (radius, eps) setting,
strip by strip with the halo contract, as the engine would. Each variant is
scored like :mod:`napari_colorize.evaluation`: colour dropped
(``lightness_to_gray`` of the true L), colorized with ``normalize=(0, 1)``,
AuC and rebalanced AuC of the ab error (``ABErrorCMF`` with ``ab_bins()``,
rebalanced within each folder) and mean PSNR of the uint8 RGB result.

Run: python benchmarks/bench_chroma_upsampling.py [MODEL ...] [--sets NAME ...]
         [--bsds-limit 50] [--radii 4 8 16] [--eps 1e-4 1e-3 1e-2]
         [--limit N] [--threads 1] [--strip-rows N] [--output PATH]

Default models: natural natural-regression. Writes a Markdown report to
benchmarks/RESULTS_chroma_upsampling.md (``--output`` elsewhere; with
``--limit`` only if ``--output`` is given).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from napari_colorize import colorize, engine
from napari_colorize.chroma_upsampling import guided_ab, strip_bounds
from napari_colorize.color import ab_bins, gray_to_lightness, lab_to_rgb_torch, rgb_to_lab
from napari_colorize.evaluation import colour_truths
from napari_colorize.io import find_images
from napari_colorize.metrics import ABErrorCMF, colorfulness, psnr
from napari_colorize.model import load_checkpoint
from napari_colorize.normalization import normalize_frame

HERE = Path(__file__).resolve().parent
EVAL = HERE.parents[1] / "shared" / "data" / "eval" / "natural"
RESULTS = HERE / "RESULTS_chroma_upsampling.md"
SETS = ("kodak24", "mcmaster18", "bsds500-test")
BILINEAR = "bilinear"
NO_REFINEMENT = (0, 0.0, 0.0)
NO_GUIDE_EPS = 1e6  # an eps this large ignores L
EDGE_FRACTION = 0.1
EDGE_DILATION = 2


def compose_strips_guided(frame, low, high, chroma, working, *, output_stride, rows, radius, eps, guide_blur=0.0, timer=None):
    """:func:`napari_colorize.composing.compose_strips` with the bilinear ab refined
    by :func:`guided_ab` strip by strip (halo rows above and below each strip).

    ``radius=0`` is the engine's bilinear composition. ``timer`` (a one-item
    list) accumulates the seconds spent in :func:`guided_ab`.
    """
    import torch

    height, width = frame.shape
    device = chroma.device
    canvas = chroma[None]
    hc, wc = canvas.shape[-2:]
    ys = ((torch.arange(height, device=device) + 0.5) * (working[0] / height) / output_stride) / hc * 2 - 1
    xs = ((torch.arange(width, device=device) + 0.5) * (working[1] / width) / output_stride) / wc * 2 - 1
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        e0, e1, halo = strip_bounds(r0, r1, height, radius, guide_blur) if radius > 0 else (r0, r1, (0, 0))
        values = normalize_frame(frame[e0:e1], low, high)
        grid_y, grid_x = torch.meshgrid(ys[e0:e1], xs, indexing="ij")
        sample_at = torch.stack([grid_x, grid_y], dim=-1)[None].float()
        ab = torch.nn.functional.grid_sample(canvas, sample_at, mode="bilinear", padding_mode="border", align_corners=False)
        lightness = torch.from_numpy(gray_to_lightness(values)).to(device)[None, None]
        if radius > 0:
            start = time.perf_counter()
            ab = guided_ab(ab, lightness, radius=radius, eps=eps, halo=halo, guide_blur=guide_blur)
            if timer is not None:
                timer[0] += time.perf_counter() - start
        inner = slice(r0 - e0, r0 - e0 + (r1 - r0))
        values, lightness = values[inner], lightness[..., inner, :]
        extreme = torch.from_numpy((values <= 0.0) | (values >= 1.0)).to(device)
        ab = ab.masked_fill(extreme[None, None], 0.0)
        rgb = lab_to_rgb_torch(torch.cat([lightness, ab], dim=1))[0]
        yield r0, r1, (rgb * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


class Recorder:
    """Stands in for ``engine.compose_strips``: records its arguments, then delegates."""

    def __init__(self, original):
        self.original = original
        self.calls = []

    def __call__(self, frame, low, high, chroma, working, *, output_stride, rows, guided=False):
        self.calls.append((frame, low, high, chroma.detach().clone(), working, output_stride, rows))
        return self.original(frame, low, high, chroma, working, output_stride=output_stride, rows=rows, guided=guided)


def compose(call, setting, timer=None) -> np.ndarray:
    frame, low, high, chroma, working, output_stride, rows = call
    radius, eps, guide_blur = setting
    out = np.empty((*frame.shape, 3), np.uint8)
    strips = compose_strips_guided(
        frame,
        low,
        high,
        chroma,
        working,
        output_stride=output_stride,
        rows=rows,
        radius=radius,
        eps=eps,
        guide_blur=guide_blur,
        timer=timer,
    )
    for r0, r1, rgb in strips:
        out[r0:r1] = rgb
    return out


def edge_mask(lightness: np.ndarray) -> np.ndarray:
    """Pixels within EDGE_DILATION px of the EDGE_FRACTION strongest gradients
    of the true L: where bilinear chroma bleeds across edges, if anywhere."""
    from scipy.ndimage import binary_dilation, sobel

    magnitude = np.hypot(sobel(lightness, 0), sobel(lightness, 1))
    strong = magnitude >= np.quantile(magnitude, 1.0 - EDGE_FRACTION)
    return binary_dilation(strong, iterations=EDGE_DILATION)


class Scores:
    def __init__(self, bins):
        self.cmf = ABErrorCMF(bins)
        self.psnr, self.colorfulness = [], []
        self.edge_error, self.edge_pixels = 0.0, 0

    def add(self, truth_rgb, truth_lab, result_rgb, edges):
        result_ab = rgb_to_lab(result_rgb)[..., 1:]
        self.cmf.add(truth_lab[..., 1:], result_ab)
        self.psnr.append(psnr(truth_rgb, result_rgb))
        self.colorfulness.append(colorfulness(result_rgb))
        self.edge_error += float(np.linalg.norm(truth_lab[..., 1:][edges] - result_ab[edges], axis=-1).sum())
        self.edge_pixels += int(edges.sum())

    def summary(self):
        finite = [p for p in self.psnr if np.isfinite(p)]
        return (
            self.cmf.auc(),
            self.cmf.auc(rebalanced=True),
            float(np.mean(finite)),
            float(np.mean(self.colorfulness)),
            self.edge_error / max(1, self.edge_pixels),
        )


def setting_name(radius, eps, guide_blur):
    if radius == 0:
        return BILINEAR
    if eps >= NO_GUIDE_EPS:
        # a = cov / (var + eps) -> 0: the guided filter degenerates to box(box(ab)),
        # plain smoothing with the same windows: the control for edge-awareness.
        return f"box smoothing r={radius} (control, L unused)"
    return f"guided r={radius} eps={eps:g}" + (f" blur={guide_blur:g}" if guide_blur else "")


def run(models, sets, settings, *, bsds_limit, bsds_offset, limit, strip_rows, log=print):
    """Scores[(model, set, setting)], per-image PSNR, timings."""
    import torch

    bins = ab_bins()
    scores, timing = {}, {"colorize_s": 0.0, "pixels": 0, "refine_s": {}, "refine_pixels": {}}
    original = engine.compose_strips
    for model_name in models:
        colorizer = load_checkpoint(model_name, device="cpu")
        for set_name in sets:
            paths = find_images([EVAL / set_name])
            if set_name.startswith("bsds500"):
                paths = paths[bsds_offset : bsds_offset + bsds_limit]
            paths = paths[:limit]
            for setting in settings:
                scores[(colorizer.name, set_name, setting)] = Scores(bins)
            used = 0
            start_set = time.perf_counter()
            for path, truth, lab, gray in colour_truths(paths):
                used += 1
                edges = edge_mask(lab[..., 0])
                recorder = Recorder(original)
                engine.compose_strips = recorder
                try:
                    start = time.perf_counter()
                    result = colorize(gray, model=colorizer, normalize=(0.0, 1.0), device="cpu")
                    elapsed = time.perf_counter() - start
                finally:
                    engine.compose_strips = original
                timing["colorize_s"] += elapsed
                timing["pixels"] += gray.size
                (call,) = recorder.calls
                if strip_rows is not None:
                    call = (*call[:-1], strip_rows)
                for setting in settings:
                    radius = setting[0]
                    timer = [0.0]
                    with torch.inference_mode():
                        rgb = compose(call, setting, timer)
                    if radius == 0:
                        # The re-composition must be exactly what colorize() returned.
                        assert np.array_equal(rgb, result), f"bilinear re-composition differs from colorize() on {path.name}"
                    else:
                        key = (radius, setting[2])
                        timing["refine_s"][key] = timing["refine_s"].get(key, 0.0) + timer[0]
                        timing["refine_pixels"][key] = timing["refine_pixels"].get(key, 0) + gray.size
                    scores[(colorizer.name, set_name, setting)].add(truth, lab, rgb, edges)
            log(f"{colorizer.name} {set_name}: {used} images in {time.perf_counter() - start_set:.0f} s")
    return scores, timing


def markdown(scores, timing, models, sets, settings, args) -> str:
    lines = []
    for model in models:
        for set_name in sets:
            base = scores.get((model, set_name, NO_REFINEMENT))
            if base is None:
                continue
            auc0, rb0, p0, _, _ = base.summary()
            lines += [
                f"**{model}, {set_name}** ({len(base.psnr)} images)",
                "",
                "| upsampling | AuC | AuC rebalanced | PSNR (dB) | colourfulness | \\|Δab\\| near edges | Δ AuC | Δ AuC reb. | Δ PSNR | images with higher PSNR |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for setting in settings:
                s = scores[(model, set_name, setting)]
                auc, rb, p, cf, e = s.summary()
                better = sum(a > b for a, b in zip(s.psnr, base.psnr))
                lines.append(
                    f"| {setting_name(*setting)} | {auc:.2f} | {rb:.2f} | {p:.3f} | {cf:.1f} | {e:.2f} | {auc - auc0:+.2f} | {rb - rb0:+.2f} | {p - p0:+.3f} | "
                    f"{'—' if setting == NO_REFINEMENT else f'{better}/{len(s.psnr)}'} |"
                )
            lines.append("")
    mp = timing["pixels"] / 1e6
    lines += [
        "**Cost** (CPU, one torch thread, shared machine)",
        "",
        "| | s per megapixel |",
        "|---|---:|",
        f"| whole `colorize()` (bilinear), mean over all images and models | {timing['colorize_s'] / mp:.2f} |",
    ]
    for key in sorted(timing["refine_s"]):
        radius, blur = key
        lines.append(
            f"| `guided_ab` alone, radius {radius}, guide_blur {blur:g} | {timing['refine_s'][key] / (timing['refine_pixels'][key] / 1e6):.3f} |"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=["natural", "natural-regression"])
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--bsds-limit", type=int, default=50)
    parser.add_argument("--bsds-offset", type=int, default=0, help="skip this many bsds500 images first (tuning on images not reported)")
    parser.add_argument("--limit", type=int, default=None, help="images per set (smoke runs)")
    parser.add_argument("--radii", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--eps", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2])
    parser.add_argument(
        "--guide-blur", type=float, nargs="+", default=[0.0, 2.0, 3.0], help="0: plain guided filter; >0: guided upsampling"
    )
    parser.add_argument(
        "--settings",
        nargs="+",
        default=None,
        metavar="R,EPS,BLUR",
        help="explicit settings instead of the grid of --radii/--eps/--guide-blur",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--strip-rows", type=int, default=None, help="compose in strips of this many rows (default: the engine's)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if args.settings:
        grid = [(int(r), float(e), float(b)) for r, e, b in (item.split(",") for item in args.settings)]
    else:
        grid = [(r, e, b) for b in args.guide_blur for r in args.radii for e in args.eps]
    settings = [NO_REFINEMENT] + grid
    started = time.perf_counter()
    scores, timing = run(
        args.models,
        args.sets,
        settings,
        bsds_limit=args.bsds_limit,
        bsds_offset=args.bsds_offset,
        limit=args.limit,
        strip_rows=args.strip_rows,
    )
    models = list(dict.fromkeys(m for m, _, _ in scores))
    table = markdown(scores, timing, models, args.sets, settings, args)
    print(table)
    output = args.output if args.output is not None else (None if args.limit else RESULTS)
    if output is not None:
        header = [
            "# Chroma upsampling: bilinear vs guided filter (L as guide)",
            "",
            f"`python benchmarks/bench_chroma_upsampling.py {' '.join(sys.argv[1:] if argv is None else argv)}`".replace("  ", " "),
            "",
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {platform.python_version()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s), run took {time.perf_counter() - started:.0f} s. Images: "
            + ", ".join(
                f"{s}{f' (images {args.bsds_offset + 1}-{args.bsds_offset + args.bsds_limit})' if s.startswith('bsds500') else ''}"
                for s in args.sets
            )
            + f" from `{EVAL}`. Rebalanced AuC is rebalanced within each folder; Δ columns are against bilinear (what `colorize()` returns today, checked pixel for pixel).",
            "",
        ]
        output.write_text("\n".join(header) + table + "\n")
        print(f"written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
