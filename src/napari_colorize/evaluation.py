"""Evaluate colorizers on colour photographs: drop their colour, colorize the
lightness, and compare with the truth, beside the gray baseline."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .color import ab_bins, lightness_to_gray, rgb_to_lab
from .devices import resolve_device
from .io import find_images, read_rgb
from .metrics import ABErrorCMF, colorfulness, psnr
from .model import load_checkpoint
from .pipeline import colorize

GRAY = "gray (no colour)"


@dataclass
class EvaluationRow:
    """The scores of one method over the images of an evaluation.

    Attributes
    ----------
    method : str
        A model name, or :data:`GRAY` for the gray baseline.
    images : int
        Colour images scored.
    auc, auc_rebalanced : float
        Area under the CMF of the ab error, in percent, plain and
        class-rebalanced (see :class:`napari_colorize.metrics.ABErrorCMF`).
    psnr : float
        Mean PSNR (dB) of the RGB results over the images.
    colorfulness, colorfulness_truth : float
        Mean colourfulness of the results, and of the true images.
    """

    method: str
    images: int
    auc: float
    auc_rebalanced: float
    psnr: float
    colorfulness: float
    colorfulness_truth: float


class _Scores:
    """Accumulates one method's scores, image by image."""

    def __init__(self, bins):
        self.cmf = ABErrorCMF(bins)
        self.psnr, self.cf, self.cf_truth = [], [], []

    def add(self, truth_rgb, truth_lab, result_rgb):
        self.cmf.add(truth_lab[..., 1:], rgb_to_lab(result_rgb)[..., 1:])
        self.psnr.append(psnr(truth_rgb, result_rgb))
        self.cf.append(colorfulness(result_rgb))
        self.cf_truth.append(colorfulness(truth_rgb))

    def row(self, method):
        finite = [p for p in self.psnr if np.isfinite(p)]
        return EvaluationRow(
            method=method,
            images=len(self.cf),
            auc=self.cmf.auc(),
            auc_rebalanced=self.cmf.auc(rebalanced=True),
            psnr=float(np.mean(finite)) if finite else float("inf"),
            colorfulness=float(np.mean(self.cf)),
            colorfulness_truth=float(np.mean(self.cf_truth)),
        )


def colour_truths(paths, *, skip_unreadable: bool = True, max_side: int | None = None):
    """For each colour image: its path, its RGB (uint8), its Lab, and the gray
    whose lightness is exactly its L (what a colorizer is given); the path
    and three Nones for an unreadable or grayscale file when not
    ``skip_unreadable``. ``max_side`` shrinks larger images first."""
    for path in paths:
        truth = read_rgb(path, max_side=max_side)
        if truth is None:
            if not skip_unreadable:
                yield path, None, None, None
            continue
        lab = rgb_to_lab(truth)
        yield path, truth, lab, lightness_to_gray(lab[..., 0])


def hint_scores(colorizer, paths, counts, *, max_side: int | None = None, device: str = "cpu") -> dict[int, tuple[float, float]]:
    """Mean PSNR (dB) and rebalanced AuC (%) with k colour hints from the truth, per k.

    Each image's lightness gray is colorized with ``normalize=(0, 1)`` (as
    :func:`evaluate` does) and, as hints, the true colour at the first k of
    max(counts) distinct random pixels (seeded by the image's index, so every
    model and every k sees the same pixels).

    Parameters
    ----------
    colorizer : Colorizer
        A model that takes hints (or any model, for ``counts == (0,)``).
    paths : sequence of path
        Colour images.
    counts : sequence of int
        Numbers of hints, e.g. ``(0, 1, 5, 10, 20)``.
    max_side : int, optional
        Shrink larger images first.
    """
    bins = ab_bins()
    cmfs = {k: ABErrorCMF(bins) for k in counts}
    psnrs = {k: [] for k in counts}
    for index, (_, truth, lab, gray) in enumerate(colour_truths(paths, skip_unreadable=False, max_side=max_side)):
        if truth is None:
            continue
        flat = np.random.default_rng(index).choice(gray.size, size=max(counts), replace=False)
        ys, xs = np.unravel_index(flat, gray.shape)
        rows = np.column_stack([ys, xs, truth[ys, xs]]).astype(np.float64)
        for k in counts:
            result = colorize(gray, model=colorizer, device=device, normalize=(0.0, 1.0), hints=rows[:k])
            cmfs[k].add(lab[..., 1:], rgb_to_lab(result)[..., 1:])
            psnrs[k].append(psnr(truth, result))
    return {k: (float(np.mean([p for p in psnrs[k] if np.isfinite(p)])), cmfs[k].auc(rebalanced=True)) for k in counts}


def evaluate(
    models: Sequence[str | Path],
    images: str | Path,
    *,
    temperature: float | None = None,
    device: str = "auto",
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[EvaluationRow]:
    """Score models and the gray baseline on a folder of colour images.

    Parameters
    ----------
    models : sequence of str or path
        Shipped model names or checkpoint files.
    images : path
        Folder searched recursively for colour JPEG/PNG/TIFF images.
    temperature : float, optional
        Annealed-mean temperature (default: the pipeline's).
    device : str
    limit : int, optional
        Use only the first ``limit`` images (sorted by path).
    progress : callable(done, total), optional

    Returns
    -------
    list of EvaluationRow
        The gray baseline first, then one row per model.
    """
    if not Path(images).is_dir():
        raise FileNotFoundError(f"image folder not found: {images}")
    paths = find_images([images])[:limit]
    torch_device = resolve_device(device)
    colorizers = [load_checkpoint(m, device=str(torch_device)) for m in models]
    bins = ab_bins()
    gray_scores = _Scores(bins)
    model_scores = [_Scores(bins) for _ in colorizers]
    options = {} if temperature is None else {"temperature": temperature}
    used = 0
    for i, (_, truth, lab, gray) in enumerate(colour_truths(paths, skip_unreadable=False)):
        if truth is None:
            continue
        used += 1
        gray_scores.add(truth, lab, np.repeat((gray * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=-1))
        for colorizer, scores in zip(colorizers, model_scores):
            # An explicit (0, 1) range keeps the true lightness exactly.
            result = colorize(gray, model=colorizer, normalize=(0.0, 1.0), device=str(torch_device), **options)
            scores.add(truth, lab, result)
        if progress is not None:
            progress(i + 1, len(paths))
    if used == 0:
        raise ValueError(f"no colour images found in {images}")
    names = [c.name for c in colorizers]
    return [gray_scores.row(GRAY)] + [s.row(n) for s, n in zip(model_scores, names)]


def format_table(rows: Sequence[EvaluationRow], *, title: str = "") -> str:
    """A Markdown table of evaluation rows."""
    lines = [f"**{title}** ({rows[0].images} images)", ""] if title else []
    lines += [
        "| method | AuC | AuC rebalanced | PSNR (dB) | colourfulness | colourfulness of truth |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.method} | {r.auc:.1f} | {r.auc_rebalanced:.1f} | {r.psnr:.2f} | {r.colorfulness:.1f} | {r.colorfulness_truth:.1f} |"
        )
    return "\n".join(lines)
