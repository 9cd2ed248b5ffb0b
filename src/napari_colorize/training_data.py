"""The data of a training run: which colour images to learn from, the prior
of their ab bins, and random crops of them.

Crops are made in DataLoader workers as uint8 RGB; their Lab conversion
happens on the training device (see :func:`napari_colorize.training_loss.lab_batch`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .color import DEFAULT_REBALANCE_LAMBDA, looks_gray, nearest_bin, rebalance_weights, rgb_to_lab, smoothed_prior
from .formats import FITS_SUFFIXES
from .io import IMAGE_SUFFIXES, TOP_LEVEL, find_images, group_by_subfolder, read_image, read_rgb
from .normalization import intensity_range, normalize_frame

# Side of the thumbnails the bins are counted on: the prior needs no detail.
_THUMBNAIL = 64


def _scan_one(args) -> np.ndarray | None:
    """Bin counts of a thumbnail of one image, or None for grayscale/unreadable."""
    path, bins = args
    thumb = read_rgb(path, max_side=_THUMBNAIL)
    if thumb is None:
        return None
    ab = rgb_to_lab(thumb)[..., 1:]
    if looks_gray(ab):
        return None
    return np.bincount(nearest_bin(ab, bins).ravel(), minlength=len(bins))


@dataclass
class ScanResult:
    """What :func:`scan_images` found.

    Attributes
    ----------
    color_images : list of Path
        The images with colour, in the order given.
    skipped : int
        Images left out: grayscale or unreadable.
    bin_counts : ndarray, shape (Q,)
        Pixels of the colour images' thumbnails nearest to each ab bin.
    image_bin_counts : list of ndarray, optional
        The same per colour image (when asked for).
    """

    color_images: list[Path]
    skipped: int
    bin_counts: np.ndarray
    image_bin_counts: list[np.ndarray] | None = None


def scan_images(
    paths: Sequence[Path], bins: np.ndarray, *, workers: int = 1, progress: bool = False, per_image: bool = False
) -> ScanResult:
    """Keep the colour images and count their ab bins (for the prior).

    Parameters
    ----------
    paths : sequence of Path
    bins : ndarray, shape (Q, 2)
        ab bin centres.
    workers : int
        Processes to scan with (used for more than 64 images).
    progress : bool
        Show a progress bar.
    per_image : bool
        Also keep each colour image's counts (for :func:`rare_colour_draws`).

    Returns
    -------
    ScanResult
    """
    from tqdm.auto import tqdm

    counts = np.zeros(len(bins), dtype=np.int64)
    kept, kept_counts = [], []
    jobs = ((p, bins) for p in paths)
    if workers > 1 and len(paths) > 64:
        with ProcessPoolExecutor(workers) as pool:
            results = list(tqdm(pool.map(_scan_one, jobs, chunksize=32), total=len(paths), desc="scanning", disable=not progress))
    else:
        results = [_scan_one(j) for j in tqdm(jobs, total=len(paths), desc="scanning", disable=not progress)]
    for path, result in zip(paths, results):
        if result is not None:
            kept.append(path)
            kept_counts.append(result)
            counts += result
    return ScanResult(kept, len(paths) - len(kept), counts, kept_counts if per_image else None)


def rare_colour_draws(image_bin_counts: Sequence[np.ndarray], bin_weights: np.ndarray, *, share: float) -> np.ndarray:
    """How often to draw each image so that rare colours are seen more often.

    An image's rarity is the mean class-rebalancing weight of its pixels'
    ab bins (on a thumbnail): high for an image full of colours the prior
    makes rare (a saturated nebula), low for gray sky. A ``share`` of the
    draws follows the rarity, the rest are uniform.

    Parameters
    ----------
    image_bin_counts : sequence of ndarray, shape (Q,)
        Each image's thumbnail pixels per ab bin (:func:`scan_images` with ``per_image``).
    bin_weights : ndarray, shape (Q,)
        The run's rebalancing weights (:func:`napari_colorize.color.rebalance_weights`).
    share : float
        0 (every image equally often) to 1 (in proportion to rarity).

    Returns
    -------
    ndarray of float64, shape (len(image_bin_counts),)
        Draw probabilities, summing to 1.
    """
    if not 0 <= share <= 1:
        raise ValueError(f"rare-colour sampling is a share of the crops, 0 to 1, got {share}")
    counts = np.asarray(image_bin_counts, dtype=np.float64)
    rarity = counts @ np.asarray(bin_weights, dtype=np.float64) / counts.sum(axis=1)
    uniform = np.full(len(counts), 1.0 / len(counts))
    return (1.0 - share) * uniform + share * rarity / rarity.sum()


@dataclass
class TrainingData:
    """The images a run learns from, their prior, and a summary for the checkpoint.

    Attributes
    ----------
    images : list of Path
        The colour images.
    prior : ndarray, shape (Q,)
        Smoothed empirical prior of their ab bins.
    summary : dict
        Recorded in the checkpoint's metadata: folder names, image counts.
    frames : list of Path
        Images whose colours are not learned, for the shift penalty only
        (see ``TrainConfig.frames_share``).
    draws : ndarray, optional
        How often each image is drawn (:func:`rare_colour_draws`); None:
        every image equally often.
    """

    images: list[Path]
    prior: np.ndarray
    summary: dict
    frames: list[Path] = field(default_factory=list)
    draws: np.ndarray | None = None

    @classmethod
    def scan(
        cls,
        folders: Sequence[str | Path],
        bins: np.ndarray,
        *,
        frames: Sequence[str | Path] = (),
        workers: int = 1,
        progress: bool = False,
        rare_colour_sampling: float = 0.0,
        rebalance_lambda: float = DEFAULT_REBALANCE_LAMBDA,
    ) -> TrainingData:
        """Find the colour images under ``folders`` and their prior, and the
        images under ``frames`` (any, gray or colour: only their lightness is used).
        With ``rare_colour_sampling``, also how often to draw each image
        (:func:`rare_colour_draws`, with the rebalancing of ``rebalance_lambda``).

        Raises
        ------
        ValueError
            If there are no images, or none with colour, or ``frames`` holds no image.
        FileNotFoundError
            If a folder does not exist.
        """
        paths = find_images(folders)
        if not paths:
            raise ValueError(f"no JPEG/PNG/TIFF images found in {', '.join(map(str, folders))}")
        scan = scan_images(paths, bins, workers=workers, progress=progress, per_image=bool(rare_colour_sampling))
        if not scan.color_images:
            raise ValueError(f"all {len(paths)} images are grayscale or unreadable: nothing to learn colours from")
        summary = {
            "folders": [Path(f).name for f in folders],
            "images": len(scan.color_images),
            "skipped_gray_or_unreadable": scan.skipped,
            "images_per_subfolder": images_per_subfolder(folders, scan.color_images),
        }
        frame_paths = find_images(frames, suffixes=IMAGE_SUFFIXES | FITS_SUFFIXES) if frames else []
        if frames and not frame_paths:
            raise ValueError(f"no JPEG/PNG/TIFF/FITS images found in the frames {', '.join(map(str, frames))}")
        if frame_paths:  # recorded only when given, so other runs' records stay as they were
            summary["frames"] = {"folders": [Path(f).name for f in frames], "images": len(frame_paths)}
        prior = smoothed_prior(scan.bin_counts, bins)
        draws = None
        if rare_colour_sampling:
            weights = rebalance_weights(prior, lam=rebalance_lambda)
            draws = rare_colour_draws(scan.image_bin_counts, weights, share=rare_colour_sampling)
        return cls(scan.color_images, prior, summary, frame_paths, draws)

    @classmethod
    def from_state(cls, state: dict) -> TrainingData:
        """The data of an interrupted run, from its saved state (no rescan)."""
        summary = json.loads(state["data"])
        images = [Path(p) for p in summary.pop("_paths")]
        frames = [Path(p) for p in summary.pop("_frame_paths", [])]
        draws = summary.pop("_draws", None)
        return cls(images, state["prior"].numpy(), summary, frames, None if draws is None else np.asarray(draws))

    def state_entries(self) -> dict:
        """The saved-state form (the summary plus the image paths) that :meth:`from_state` reads."""
        entries = {**self.summary, "_paths": [str(p) for p in self.images], "_frame_paths": [str(p) for p in self.frames]}
        if self.draws is not None:
            entries["_draws"] = self.draws.tolist()
        return entries


#: Where :func:`images_per_subfolder` counts images given as files, not folders.
FILES_GIVEN = "(files given)"


def images_per_subfolder(folders: Sequence[str | Path], images: Sequence[Path]) -> dict[str, dict[str, int]]:
    """How many of ``images`` each of ``folders`` holds, per first-level subfolder.

    Parameters
    ----------
    folders : sequence of path
        The folders (or image files) a run was given.
    images : sequence of Path
        The images it used, found under ``folders``.

    Returns
    -------
    dict
        ``{folder name: {subfolder: count}}``, as recorded in a checkpoint;
        images directly in a folder count under
        :data:`napari_colorize.io.TOP_LEVEL`, and images given as files
        under ``{FILES_GIVEN: {TOP_LEVEL: count}}``.
    """
    counts: dict[str, dict[str, int]] = {}
    given_files = 0
    for folder in map(Path, folders):
        if not folder.is_dir():
            given_files += sum(1 for image in images if image == folder)
            continue
        inside = [image for image in images if image.is_relative_to(folder)]
        counts[folder.name] = {group: len(paths) for group, paths in group_by_subfolder(inside, folder).items()}
    if given_files:
        counts[FILES_GIVEN] = {TOP_LEVEL: given_files}
    return counts


class ColorCrops:
    """Random crops (flip and scale jitter) of colour images, as uint8 (3, c, c).

    A map-style dataset for torch's DataLoader: item i picks its image and
    its crop with randomness seeded by ``(seed, i)``, so a run is repeatable
    whatever the workers and the order they fetch in.

    Parameters
    ----------
    paths : sequence of Path
        Colour images.
    crop_size : int
        Side c of the crops.
    scale_jitter : (float, float)
        Range of the random rescaling applied before cropping.
    seed : int
    length : int, optional
        Number of crops (default: one per image).
    any_orientation : bool
        Also turn crops by random quarter turns and flip them upside down
        (the view with them), so the network learns no up or down: scientific
        images have none, and a tile's top is not the image's top.
    view_size : int, optional
        Also return the whole (rescaled, flipped) image the crop came from,
        resized to view_size x view_size: the context of a context-taking
        network. Items are then (crop, view).
    region_views : bool
        With ``view_size``, also return the view of a random cut-out of the
        image, as a user who colorizes a cut-out gives the network: each side
        drawn between 3/4 of the crop's (a training window, inside the crop)
        and the image's (around the crop). Items are then (crop, view, region view).
    dark_sky : float
        With ``view_size``, the share of items (0 to 1) whose whole-image
        view shows the image small, fading into a dark, noisy, starry
        background (see :func:`on_dark_sky`), as a telescope frame shows a
        galaxy: the crop's colours stay its own, so the network learns not
        to read a mostly empty frame as a night scene. Items then end with
        a bool tensor that is True where the view is such a frame.
    frames : sequence of Path
        Images whose colours are not learned (see ``TrainConfig.frames_share``).
    frames_share : float
        The share of items (0 to 1) cut from ``frames``, made gray (their
        lightness kept) and never put on a dark sky. Items then end with a
        bool tensor that is True for those.
    frames_scale_jitter : (float, float), optional
        ``scale_jitter`` of the crops cut from ``frames`` (default: ``scale_jitter``).
    draws : array of float, optional
        Probability of drawing each of ``paths`` (default: all equal).
    """

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        crop_size: int,
        scale_jitter=(0.6, 1.2),
        seed: int = 0,
        length: int | None = None,
        view_size: int | None = None,
        any_orientation: bool = False,
        region_views: bool = False,
        dark_sky: float = 0.0,
        frames: Sequence[Path] = (),
        frames_share: float = 0.0,
        frames_scale_jitter=None,
        draws=None,
    ):
        self.paths = list(paths)
        self.draws = None if draws is None else np.asarray(draws, dtype=np.float64)
        self.crop_size = crop_size
        self.scale_jitter = scale_jitter
        self.seed = seed
        self.length = length or len(self.paths)
        self.view_size = view_size
        self.any_orientation = any_orientation
        self.region_views = region_views and view_size is not None
        self.dark_sky = dark_sky
        self.frames = list(frames)
        self.frames_share = frames_share if self.frames else 0.0
        self.frames_scale_jitter = frames_scale_jitter or scale_jitter

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        import torch
        from PIL import Image

        rng = np.random.default_rng((self.seed, index))
        # Its own stream: a run without frames sees the crops it saw before.
        from_frames = bool(self.frames_share) and np.random.default_rng((self.seed, index, 1)).random() < self.frames_share
        paths, read = (self.frames, read_gray_picture) if from_frames else (self.paths, read_rgb)
        c = self.crop_size
        draws = None if from_frames else self.draws
        for _ in range(10):
            # Drawn from the same stream either way, so uniform runs see the crops they saw before.
            rgb = read(paths[rng.integers(len(paths)) if draws is None else rng.choice(len(paths), p=draws)])
            if rgb is not None:
                break
        else:
            raise RuntimeError("could not read any training image")
        h, w = rgb.shape[:2]
        factor = rng.uniform(*(self.frames_scale_jitter if from_frames else self.scale_jitter))
        factor = max(factor, c / min(h, w))  # the crop must fit
        size = (max(c, round(w * factor)), max(c, round(h * factor)))
        if size != (w, h):
            rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
        y = rng.integers(rgb.shape[0] - c + 1)
        x = rng.integers(rgb.shape[1] - c + 1)
        crop = rgb[y : y + c, x : x + c]
        flip = rng.random() < 0.5
        if flip:
            crop = crop[:, ::-1]
        turns, upside_down = (int(rng.integers(4)), rng.random() < 0.5) if self.any_orientation else (0, False)
        crop = _oriented(crop, turns, upside_down)
        crop = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))
        if self.view_size is None:
            return (crop, torch.tensor(from_frames)) if self.frames_share else crop
        # The whole image the crop came from, as a context-taking network sees a frame.
        views = [rgb]
        if self.region_views:
            (top, bottom), (left, right) = (cut_out_span(start, c, n, rng) for start, n in ((y, rgb.shape[0]), (x, rgb.shape[1])))
            views.append(rgb[top:bottom, left:right])
        # Drawn last, and only when asked, so runs without it see the same crops as before.
        on_dark = bool(self.dark_sky) and rng.random() < self.dark_sky and not from_frames
        if on_dark:
            views[0] = on_dark_sky(rgb, rng)
        item = (crop, *(self._as_view(view, flip, turns, upside_down) for view in views))
        marks = ([torch.tensor(on_dark)] if self.dark_sky else []) + ([torch.tensor(from_frames)] if self.frames_share else [])
        return (*item, *marks)

    def _as_view(self, rgb: np.ndarray, flip: bool, turns: int, upside_down: bool):
        """``rgb`` resized to the context view, oriented as the crop was."""
        import torch
        from PIL import Image

        view = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize((self.view_size, self.view_size), Image.BILINEAR))
        if flip:
            view = view[:, ::-1]
        view = _oriented(view, turns, upside_down)
        return torch.from_numpy(np.ascontiguousarray(view.transpose(2, 0, 1)))


def read_gray_picture(path: Path) -> np.ndarray | None:
    """The first frame of an image of any kind (gray or colour, any dtype) as
    a gray uint8 picture (H, W, 3), its intensity range stretched as
    colorize does by default; None if it cannot be read. Nothing of a
    colour image's colour is kept: frames teach no colours."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 'colorizing its luminance' is what is wanted here
            image = read_image(path)
    except OSError:
        return None
    frame = image.reshape(-1, *image.shape[-2:])[0]
    gray = np.round(normalize_frame(frame, *intensity_range(frame)) * 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def on_dark_sky(rgb: np.ndarray, rng) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 shrunk into the middle of a dark frame, as a
    galaxy or a cell sits in a telescope or fluorescence frame.

    The image fills 30 % to 80 % of each side, at a random place, and fades
    into the background over its outer fifth (its corners into the dark), so
    no hard rectangle tells the frame apart. The background is gray (no
    colour), 0 to 8 % of full scale, with sensor noise up to 2 % and up to
    one star in 2,000 pixels.
    """
    height, width = rgb.shape[:2]
    share = rng.uniform(0.3, 0.8)
    canvas_h, canvas_w = round(height / share), round(width / share)
    level = rng.uniform(0.0, 0.08) * 255
    sky = level + rng.normal(0.0, rng.uniform(0.0, 0.02) * 255, (canvas_h, canvas_w))
    stars = rng.random((canvas_h, canvas_w)) < rng.uniform(0.0, 5e-4)
    sky[stars] = rng.uniform(128, 255, int(stars.sum()))
    canvas = np.repeat(sky[..., None], 3, axis=2)
    # Weight 1 inside, falling smoothly to 0 at the image's border over its outer fifth.
    ramps = [np.clip(np.minimum(np.arange(n) + 0.5, n - np.arange(n) - 0.5) / (0.2 * n), 0.0, 1.0) for n in (height, width)]
    fade = np.outer(*ramps)[..., None]
    fade = fade * fade * (3 - 2 * fade)
    top, left = int(rng.integers(canvas_h - height + 1)), int(rng.integers(canvas_w - width + 1))
    window = canvas[top : top + height, left : left + width]
    canvas[top : top + height, left : left + width] = fade * rgb + (1 - fade) * window
    return np.clip(canvas, 0, 255).round().astype(np.uint8)


def cut_out_span(start: int, size: int, length: int, rng) -> tuple[int, int]:
    """A random interval of ``[0, length)`` from 3/4 of ``size`` long to all of
    it: inside ``[start, start + size)`` when shorter than that, around it
    when longer. (Training images are often barely larger than the crop, so
    cut-outs that only grew from the crop would nearly always be the whole image.)"""
    extent = int(rng.integers(3 * size // 4, length + 1))
    if extent <= size:
        first = start + int(rng.integers(0, size - extent + 1))
    else:
        first = int(rng.integers(max(0, start + size - extent), min(start, length - extent) + 1))
    return first, first + extent


def _oriented(image: np.ndarray, turns: int, upside_down: bool) -> np.ndarray:
    """``image`` (H, W, C) turned by ``turns`` quarter turns, then flipped upside down."""
    image = np.rot90(image, turns) if turns else image
    return image[::-1] if upside_down else image
