"""Evaluate colorizers on colour photographs: drop their colour, colorize the
lightness, and compare with the truth, beside the gray baseline; over a
folder, or over each of its subfolders and all of them pooled."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .color import ab_bins, lab_to_rgb, lightness_to_gray, rgb_to_lab
from .devices import resolve_device
from .io import find_images, group_by_subfolder, read_rgb
from .metrics import ABErrorCMF, colorfulness, psnr
from .model import load_checkpoint
from .pipeline import colorize

GRAY = "gray (no colour)"
#: The group of :func:`evaluate_by_subfolder` that holds every image of the folder.
POOLED = "all (pooled)"


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

    @classmethod
    def pooled(cls, parts):
        """The scores of the images of all ``parts`` together."""
        parts = list(parts)
        pooled = cls(parts[0].cmf.bins)
        pooled.cmf = ABErrorCMF.pooled(part.cmf for part in parts)
        for part in parts:
            pooled.psnr += part.psnr
            pooled.cf += part.cf
            pooled.cf_truth += part.cf_truth
        return pooled

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


#: Pixels farther than this (image pixels) from every hint are "far from the hints".
FAR_FROM_HINTS = 64


class HintScore(NamedTuple):
    """Scores with k hints: mean PSNR (dB), rebalanced AuC (%), and the mean
    ab distance (ab units) to the automatic result over the pixels farther
    than :data:`FAR_FROM_HINTS` from every hint, all images pooled (NaN for
    k = 0, or when no pixel is that far)."""

    psnr: float
    auc_rebalanced: float
    far_change: float


#: Hint pixels drawn per image: k hints are the first k of them.
HINT_DRAWS = 20


def hint_pixels(index: int, shape: tuple[int, int], count: int) -> tuple[np.ndarray, np.ndarray]:
    """The (ys, xs) of image number ``index``'s first ``count`` hints: of
    :data:`HINT_DRAWS` distinct random pixels (seeded by ``index``), so
    that every k, model and score sees the same pixels."""
    if count > HINT_DRAWS:
        raise ValueError(f"at most {HINT_DRAWS} hints per image, got {count}")
    flat = np.random.default_rng(index).choice(shape[0] * shape[1], size=HINT_DRAWS, replace=False)[:count]
    return np.unravel_index(flat, shape)


def hint_scores(
    colorizer, paths, counts, *, max_side: int | None = None, device: str = "cpu", hint_reach: str = "local"
) -> dict[int, HintScore]:
    """Scores with k colour hints from the truth, per k (see :class:`HintScore`).

    Each image's lightness gray is colorized with ``normalize=(0, 1)`` (as
    :func:`evaluate` does) and, as hints, the true colour at the first k of
    :data:`HINT_DRAWS` distinct random pixels (:func:`hint_pixels`).

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
    device : str
        Where the network runs.
    hint_reach : str
        How far the hints act (:func:`napari_colorize.colorize`'s option).
    """
    from scipy.ndimage import distance_transform_edt

    bins = ab_bins()
    cmfs = {k: ABErrorCMF(bins) for k in counts}
    psnrs = {k: [] for k in counts}
    far = {k: [0.0, 0] for k in counts}  # sum of ab changes, pixels
    for index, (_, truth, lab, gray) in enumerate(colour_truths(paths, skip_unreadable=False, max_side=max_side)):
        if truth is None:
            continue
        ys, xs = hint_pixels(index, gray.shape, max(counts))
        rows = np.column_stack([ys, xs, truth[ys, xs]]).astype(np.float64)
        automatic = None
        for k in sorted(counts):
            result = colorize(gray, model=colorizer, device=device, normalize=(0.0, 1.0), hints=rows[:k], hint_reach=hint_reach)
            ab = rgb_to_lab(result)[..., 1:]
            cmfs[k].add(lab[..., 1:], ab)
            psnrs[k].append(psnr(truth, result))
            if k == 0:
                automatic = ab
                continue
            if automatic is None:
                automatic = rgb_to_lab(colorize(gray, model=colorizer, device=device, normalize=(0.0, 1.0)))[..., 1:]
            unhinted = np.ones(gray.shape, dtype=bool)
            unhinted[ys[:k], xs[:k]] = False
            distant = distance_transform_edt(unhinted) > FAR_FROM_HINTS
            far[k][0] += float(np.linalg.norm(ab - automatic, axis=-1)[distant].sum())
            far[k][1] += int(distant.sum())
    return {
        k: HintScore(
            float(np.mean([p for p in psnrs[k] if np.isfinite(p)])),
            cmfs[k].auc(rebalanced=True),
            far[k][0] / far[k][1] if far[k][1] else float("nan"),
        )
        for k in counts
    }


#: The mean change :func:`local_hint_bound` allows far from every hint (ab
#: units): the far-change target of local hints.
FAR_CHANGE_LIMIT = 2.0


def local_hint_bound(colorizer, paths, count: int, *, max_side: int | None = None, device: str = "cpu") -> dict[str, HintScore]:
    """The best that hints acting near themselves could score.

    With ``count`` hints placed as in :func:`hint_scores`, each image's
    automatic result is given the true colour at every pixel within
    :data:`FAR_FROM_HINTS` of a hint ("near"); in a second score, the pixels
    beyond are also brought towards their true colours, spending a mean
    change of :data:`FAR_CHANGE_LIMIT` ab units where it removes the most
    squared error: every far error is cut to one threshold, chosen per image
    ("near, and far by the limit"). No colorizer that changes an image's far
    pixels by that much on average can have a smaller ab error, so these
    bound what local hints can give.

    Returns
    -------
    dict
        {"near": HintScore, "near, and far by the limit": HintScore}; their
        ``far_change`` is the mean change allowed (0 and the limit).
    """
    from scipy.ndimage import distance_transform_edt

    bounds = {"near": 0.0, "near, and far by the limit": FAR_CHANGE_LIMIT}
    cmfs = {name: ABErrorCMF(ab_bins()) for name in bounds}
    psnrs = {name: [] for name in bounds}
    for index, (_, truth, lab, gray) in enumerate(colour_truths(paths, skip_unreadable=False, max_side=max_side)):
        if truth is None:
            continue
        ys, xs = hint_pixels(index, gray.shape, count)
        automatic = rgb_to_lab(colorize(gray, model=colorizer, device=device, normalize=(0.0, 1.0)))[..., 1:]
        unhinted = np.ones(gray.shape, dtype=bool)
        unhinted[ys, xs] = False
        near = distance_transform_edt(unhinted) <= FAR_FROM_HINTS
        error = lab[..., 1:] - automatic
        length = np.linalg.norm(error, axis=-1)
        for name, limit in bounds.items():
            cap = error_cap(length[~near], limit)
            ab = lab[..., 1:] - error * np.minimum(1.0, cap / np.maximum(length, 1e-9))[..., None]
            ab[near] = lab[near, 1:]
            result = np.round(lab_to_rgb(np.concatenate([lab[..., :1], ab], axis=-1)) * 255).astype(np.uint8)
            cmfs[name].add(lab[..., 1:], rgb_to_lab(result)[..., 1:])
            psnrs[name].append(psnr(truth, result))
    return {
        name: HintScore(float(np.mean([p for p in psnrs[name] if np.isfinite(p)])), cmfs[name].auc(rebalanced=True), limit)
        for name, limit in bounds.items()
    }


def error_cap(errors: np.ndarray, mean_change: float) -> float:
    """The threshold t at which cutting every error above it down to it
    changes the errors by ``mean_change`` on average (inf for no change, 0
    when even removing every error changes them less)."""
    if mean_change <= 0 or errors.size == 0:
        return math.inf
    if errors.mean() <= mean_change:
        return 0.0
    ordered = np.sort(errors)[::-1]
    # Cutting the largest j errors to t changes them by sum(top j) - j t; find the j where t falls.
    excess = np.cumsum(ordered) - np.arange(1, ordered.size + 1) * np.append(ordered[1:], 0.0)
    j = int(np.searchsorted(excess, mean_change * errors.size)) + 1
    return float((ordered[:j].sum() - mean_change * errors.size) / j)


#: The reference palettes :func:`reference_scores` compares: none, the truth
#: itself (an upper bound), and another image of the same folder.
REFERENCE_KINDS = ("none", "own", "other")


def reference_scores(colorizer, paths, *, max_side: int | None = None, device: str = "cpu") -> dict[str, EvaluationRow]:
    """Scores with a reference palette, per kind of reference (:data:`REFERENCE_KINDS`).

    Each image's lightness gray is colorized with ``normalize=(0, 1)`` (as
    :func:`evaluate` does): without a reference, with the image itself as
    the reference (its true palette: an upper bound), and with the next
    image of ``paths`` (the first for the last) as the reference.

    Parameters
    ----------
    colorizer : Colorizer
        A palette-taking model (a ``-palette`` architecture).
    paths : sequence of path
        Colour images, at least two.
    max_side : int, optional
        Shrink larger images first.
    """
    truths = list(colour_truths(paths, max_side=max_side))
    if len(truths) < 2:
        raise ValueError(f"a reference from another image needs at least two colour images, got {len(truths)}")
    scores = {kind: _Scores(ab_bins()) for kind in REFERENCE_KINDS}
    for index, (_, truth, lab, gray) in enumerate(truths):
        references = {"none": None, "own": truth, "other": truths[(index + 1) % len(truths)][1]}
        for kind, reference in references.items():
            result = colorize(gray, model=colorizer, device=device, normalize=(0.0, 1.0), reference=reference)
            scores[kind].add(truth, lab, result)
    return {kind: score.row(f"reference: {kind}") for kind, score in scores.items()}


def evaluate(
    models: Sequence[str | Path],
    images: str | Path,
    *,
    temperature: float | None = None,
    device: str = "auto",
    precision: str = "auto",
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
    precision : str
        The network's arithmetic (``precision`` of :func:`napari_colorize.colorize`).
    limit : int, optional
        Use only the first ``limit`` images (sorted by path).
    progress : callable(done, total), optional

    Returns
    -------
    list of EvaluationRow
        The gray baseline first, then one row per model.

    Raises
    ------
    FileNotFoundError
        If ``images`` is not a folder.
    ValueError
        If it holds no colour image.
    """
    paths = find_images([_existing_folder(images)])[:limit]
    names, scores = _score_groups(models, {POOLED: paths}, temperature=temperature, device=device, precision=precision, progress=progress)
    if not scores:
        raise ValueError(f"no colour images found in {images}")
    return _rows(names, scores[POOLED])


def evaluate_by_subfolder(
    models: Sequence[str | Path],
    images: str | Path,
    *,
    temperature: float | None = None,
    device: str = "auto",
    precision: str = "auto",
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, list[EvaluationRow]]:
    """Score models and the gray baseline on each subfolder of a folder, and on all its images pooled.

    Each image is colorized once and counts in its subfolder's scores and in
    the pooled ones. Pooled means over the images: a large subfolder weighs
    more, and the rebalanced AuC weights each ab bin by its frequency over
    the whole folder.

    Parameters
    ----------
    models : sequence of str or path
        Shipped model names or checkpoint files.
    images : path
        A folder of colour JPEG/PNG/TIFF images, in subfolders (searched
        recursively; an image in a deeper folder counts in its first-level
        subfolder) and at its top level (their own group,
        :data:`napari_colorize.io.TOP_LEVEL`).
    temperature : float, optional
        Annealed-mean temperature (default: the pipeline's).
    device : str
    precision : str
        The network's arithmetic (``precision`` of :func:`napari_colorize.colorize`).
    limit : int, optional
        Use only the first ``limit`` images (sorted by path) of each subfolder.
    progress : callable(done, total), optional

    Returns
    -------
    dict of str to list of EvaluationRow
        For each group with colour images (the top level first, then the
        subfolders by name), then for :data:`POOLED` when there is more than
        one group: the gray baseline's row, then one per model.

    Raises
    ------
    FileNotFoundError
        If ``images`` is not a folder.
    ValueError
        If it holds no colour image.
    """
    folder = _existing_folder(images)
    groups = {group: paths[:limit] for group, paths in group_by_subfolder(find_images([folder]), folder).items()}
    names, scores = _score_groups(models, groups, temperature=temperature, device=device, precision=precision, progress=progress)
    if not scores:
        raise ValueError(f"no colour images found in {images}")
    if len(scores) > 1:
        scores[POOLED] = [_Scores.pooled(method) for method in zip(*scores.values())]
    return {group: _rows(names, method_scores) for group, method_scores in scores.items()}


def _existing_folder(images: str | Path) -> Path:
    if not Path(images).is_dir():
        raise FileNotFoundError(f"image folder not found: {images}")
    return Path(images)


def _rows(names: Sequence[str], scores: Sequence[_Scores]) -> list[EvaluationRow]:
    return [score.row(name) for name, score in zip(names, scores)]


def _score_groups(
    models: Sequence[str | Path],
    groups: Mapping[str, Sequence[Path]],
    *,
    temperature: float | None,
    device: str,
    precision: str,
    progress: Callable[[int, int], None] | None,
) -> tuple[list[str], dict[str, list[_Scores]]]:
    """Colorize the lightness of each image of each group with each model and score it.

    Returns
    -------
    names : list of str
        :data:`GRAY`, then the models' names.
    scores : dict of str to list of _Scores
        Per group with colour images (groups without are left out), the
        scores of each method, in the order of ``names``.
    """
    torch_device = resolve_device(device)
    colorizers = [load_checkpoint(m, device=str(torch_device)) for m in models]
    bins = ab_bins()
    options = {"precision": precision, **({} if temperature is None else {"temperature": temperature})}
    total = sum(len(paths) for paths in groups.values())
    done = 0
    scores = {}
    for group, paths in groups.items():
        gray_scores, *model_scores = (_Scores(bins) for _ in range(1 + len(colorizers)))
        for _, truth, lab, gray in colour_truths(paths, skip_unreadable=False):
            done += 1
            if truth is not None:
                gray_scores.add(truth, lab, np.repeat((gray * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=-1))
                for colorizer, method_scores in zip(colorizers, model_scores):
                    # An explicit (0, 1) range keeps the true lightness exactly.
                    result = colorize(gray, model=colorizer, normalize=(0.0, 1.0), device=str(torch_device), **options)
                    method_scores.add(truth, lab, result)
            if progress is not None:
                progress(done, total)
        if gray_scores.cf:
            scores[group] = [gray_scores, *model_scores]
    return [GRAY, *(c.name for c in colorizers)], scores


def format_table(rows: Sequence[EvaluationRow], *, title: str = "") -> str:
    """A Markdown table of evaluation rows."""
    lines = [f"**{title}** ({rows[0].images} images)", ""] if title else []
    lines += [f"| method | {_METRICS} |", "|---|" + _METRIC_ALIGNMENT]
    lines += [f"| {r.method} | {_metric_cells(r)} |" for r in rows]
    return "\n".join(lines)


def format_grouped_table(groups: Mapping[str, Sequence[EvaluationRow]], *, title: str = "") -> str:
    """One Markdown table of the rows of several groups (from :func:`evaluate_by_subfolder`),
    each row naming its group and the group's number of images."""
    lines = []
    if title:
        total = max(rows[0].images for rows in groups.values())
        count = sum(group != POOLED for group in groups)
        pooled = " and all pooled" if POOLED in groups else ""
        lines += [f"**{title}** ({total} images; {count} group{'s' if count != 1 else ''}{pooled})", ""]
    lines += [f"| subfolder | images | method | {_METRICS} |", "|---|---:|---|" + _METRIC_ALIGNMENT]
    for group, rows in groups.items():
        lines += [f"| {group} | {r.images} | {r.method} | {_metric_cells(r)} |" for r in rows]
    return "\n".join(lines)


_METRICS = "AuC | AuC rebalanced | PSNR (dB) | colourfulness | colourfulness of truth"
_METRIC_ALIGNMENT = "---:|---:|---:|---:|---:|"


def _metric_cells(row: EvaluationRow) -> str:
    return f"{row.auc:.1f} | {row.auc_rebalanced:.1f} | {row.psnr:.2f} | {row.colorfulness:.1f} | {row.colorfulness_truth:.1f}"
