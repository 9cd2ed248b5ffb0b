"""Restoration of the lightness before colour: hot-pixel removal, denoising
and local contrast, each scikit-image's (or SciPy's) implementation.

Restoration works on a frame already normalised to [0, 1] (see
:func:`napari_colorize.normalization.normalize_frame`) and returns it in
[0, 1]: the network then sees the restored frame, and the output is composed
on its lightness. It is off unless asked for; the steps always run in the
order of :data:`STEPS`, whatever order they are named in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .arrays import frame_indices, readable_frame

#: The restoration steps, in the order they run.
STEPS = ("hot-pixels", "denoise", "clahe")
#: scikit-image denoisers offered by the "denoise" step.
DENOISERS = ("wavelet", "tv", "nl-means")
#: Defaults of the restoration options (declared as options in :mod:`napari_colorize.options`).
DEFAULT_DENOISER = "wavelet"
DEFAULT_HOT_PIXEL_THRESHOLD = 5.0
DEFAULT_CLAHE_CLIP = 0.01
#: Side of the median filter that hot pixels and cosmic-ray hits are measured against.
HOT_PIXEL_WINDOW = 3
#: Smallest step (fraction of the range) a spike is measured in: an 8-bit level is 0.004.
MIN_SPIKE = 0.01
#: Frames whose noise levels are pooled (median) into a stack's.
STACK_NOISE_FRAMES = 8
#: Noise is estimated on at most this many pixels (a centred window): estimate_sigma reads the whole array.
NOISE_SAMPLE_PIXELS = 2048 * 2048


def check_steps(steps) -> tuple[str, ...]:
    """``steps`` (names, or one comma-separated text) as a tuple in the order they run.

    Raises
    ------
    ValueError
        For an unknown step, naming the known ones.
    """
    if steps is None:
        return ()
    names = [s.strip() for s in steps.split(",")] if isinstance(steps, str) else [str(s).strip() for s in steps]
    names = [n for n in names if n and n != "none"]
    unknown = sorted(set(names) - set(STEPS))
    if unknown:
        raise ValueError(f"unknown restoration step {', '.join(map(repr, unknown))}: choose from {', '.join(STEPS)} (comma-separated)")
    return tuple(step for step in STEPS if step in names)


def check_noise_sigma(value) -> str | float:
    """'frame', 'stack', or a noise level > 0 given as a fraction of the intensity range (numbers may come as text)."""
    if value in ("frame", "stack"):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"noise_sigma must be 'frame', 'stack' or a number > 0 (a fraction of the intensity range), got {value!r}") from None
    if not (np.isfinite(number) and 0 < number < 1):
        raise ValueError(f"noise_sigma as a number must be > 0 and < 1 (a fraction of the intensity range), got {value!r}")
    return number


@dataclass(frozen=True)
class Restoration:
    """What to do to a normalised frame before it is colorized.

    Attributes
    ----------
    steps : tuple of str
        Steps of :data:`STEPS` that run, in that order.
    denoiser : str
        One of :data:`DENOISERS`.
    strength : float
        Multiplies the noise level the denoiser is given.
    noise_sigma : 'frame', 'stack' or float
        The noise level: estimated on each frame
        (``skimage.restoration.estimate_sigma``), once for a stack, or given
        (a fraction of the intensity range).
    hot_pixel_threshold : float
        How far an isolated spike must stand out to be removed (see
        :func:`remove_hot_pixels`).
    clahe_clip : float
        ``clip_limit`` of ``skimage.exposure.equalize_adapthist``.
    """

    steps: tuple[str, ...] = ()
    denoiser: str = DEFAULT_DENOISER
    strength: float = 1.0
    noise_sigma: str | float = "frame"
    hot_pixel_threshold: float = DEFAULT_HOT_PIXEL_THRESHOLD
    clahe_clip: float = DEFAULT_CLAHE_CLIP

    @property
    def active(self) -> bool:
        return bool(self.steps)

    def describe(self) -> dict[str, Any]:
        """What ran, with its parameters and the implementation, for provenance."""
        record: dict[str, Any] = {"steps": list(self.steps), "note": "the output's lightness is the restored one, not the input's own"}
        if "hot-pixels" in self.steps:
            record["hot-pixels"] = {
                "method": "pixels above (below) all 8 neighbours by more than threshold x max(noise, 1 % of the range, "
                "the neighbours' spread) replaced by their 3x3 median (scipy.ndimage)",
                "threshold": self.hot_pixel_threshold,
            }
        if "denoise" in self.steps:
            record["denoise"] = {
                "method": _DENOISER_NAMES[self.denoiser],
                "noise_sigma": self.noise_sigma,
                "noise_estimate": "skimage.restoration.estimate_sigma",
                "strength": self.strength,
            }
        if "clahe" in self.steps:
            record["clahe"] = {"method": "skimage.exposure.equalize_adapthist", "clip_limit": self.clahe_clip}
        return record


_DENOISER_NAMES = {
    "wavelet": "skimage.restoration.denoise_wavelet (sym4, BayesShrink, soft)",
    "tv": "skimage.restoration.denoise_tv_chambolle (weight = sigma)",
    "nl-means": "skimage.restoration.denoise_nl_means (fast, 5x5 patches, h = 0.6 sigma)",
}


def estimate_noise(values: np.ndarray) -> float:
    """The standard deviation of the frame's Gaussian noise (same units as
    ``values``), by ``skimage.restoration.estimate_sigma``, on a centred
    window of a large frame."""
    from skimage.restoration import estimate_sigma

    side = int(np.sqrt(NOISE_SAMPLE_PIXELS))
    window = tuple(slice(max(0, (n - side) // 2), max(0, (n - side) // 2) + side) for n in values.shape)
    return float(estimate_sigma(np.asarray(values[window], dtype=np.float64)))


def stack_noise(image, ranges, *, frames: int = STACK_NOISE_FRAMES) -> float:
    """One noise level for a stack: the median over up to ``frames`` evenly
    spaced frames, each normalised with its own range."""
    from .normalization import normalize_frame

    indices = list(frame_indices(tuple(image.shape[:-2])))
    chosen = [indices[int(i)] for i in np.linspace(0, len(indices) - 1, min(frames, len(indices)))]
    levels = []
    for index in chosen:
        frame = readable_frame(image[index])
        levels.append(estimate_noise(normalize_frame(frame, *ranges.of(frame))))
    return float(np.median(levels))


class PreparedFrames:
    """Frames as the network and the output see them: each frame with the
    range that maps it to [0, 1], or, when ``restoration`` is active, the
    restored normalised frame with (0, 1).

    Parameters
    ----------
    image : array_like, shape (..., Y, X)
        The checked frames (for a stack's shared noise level).
    ranges : FixedRange or FrameRange
        Intensity ranges (see :func:`napari_colorize.normalization.range_for`).
    restoration : Restoration
    """

    def __init__(self, image, ranges, restoration: Restoration):
        self.ranges = ranges
        self.restoration = restoration
        shared = restoration.active and "denoise" in restoration.steps and restoration.noise_sigma == "stack"
        self.noise = stack_noise(image, ranges) if shared else None

    def __call__(self, frame) -> tuple[np.ndarray, float, float]:
        """``(values, low, high)`` for one readable frame."""
        from .normalization import normalize_frame

        low, high = self.ranges.of(frame)
        if not self.restoration.active:
            return frame, low, high
        return restore_frame(normalize_frame(frame, low, high), self.restoration, noise=self.noise), 0.0, 1.0


def restore_frame(values: np.ndarray, restoration: Restoration, *, noise: float | None = None) -> np.ndarray:
    """Restore one normalised frame.

    Parameters
    ----------
    values : ndarray, shape (Y, X)
        Intensities in [0, 1].
    restoration : Restoration
    noise : float, optional
        The noise level to denoise for when ``restoration.noise_sigma`` is
        'stack' (see :func:`stack_noise`); ignored otherwise.

    Returns
    -------
    ndarray of float32, shape (Y, X)
        In [0, 1]; ``values`` itself when no step runs. The input is never modified.
    """
    if not restoration.active:
        return values
    out = np.asarray(values, dtype=np.float32)
    if "hot-pixels" in restoration.steps:
        out = remove_hot_pixels(out, threshold=restoration.hot_pixel_threshold)
    if "denoise" in restoration.steps:
        if isinstance(restoration.noise_sigma, float):
            noise = restoration.noise_sigma
        elif restoration.noise_sigma == "frame" or noise is None:
            noise = estimate_noise(out)
        out = np.clip(denoise(out, restoration.denoiser, sigma=noise * restoration.strength), 0.0, 1.0)  # denoisers may overshoot
    if "clahe" in restoration.steps:
        from skimage.exposure import equalize_adapthist

        out = equalize_adapthist(out, clip_limit=restoration.clahe_clip)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def remove_hot_pixels(values: np.ndarray, *, threshold: float) -> np.ndarray:
    """``values`` with isolated spikes (hot pixels, cosmic-ray hits) and
    pits (dead pixels) replaced by the median of their 3x3 neighbourhood.

    A spike rises above every one of its 8 neighbours by more than
    ``threshold`` times the largest of the frame's noise level, 1 % of the
    range and the spread (standard deviation) of those neighbours: a pixel
    in texture or on an edge has spread around it and is kept, so is a star
    that covers more than one pixel.
    """
    from scipy.ndimage import maximum_filter, minimum_filter, uniform_filter

    ring = np.ones((HOT_PIXEL_WINDOW, HOT_PIXEL_WINDOW), dtype=bool)
    ring[HOT_PIXEL_WINDOW // 2, HOT_PIXEL_WINDOW // 2] = False
    count = ring.sum()
    # Mean and variance of the 8 neighbours, from the 3x3 sums minus the centre.
    total = uniform_filter(values, HOT_PIXEL_WINDOW, mode="nearest") * ring.size - values
    squares = uniform_filter(values * values, HOT_PIXEL_WINDOW, mode="nearest") * ring.size - values * values
    spread = np.sqrt(np.maximum(squares / count - (total / count) ** 2, 0.0))
    scale = threshold * np.maximum(spread, max(estimate_noise(values), MIN_SPIKE))
    spikes = (values - maximum_filter(values, footprint=ring, mode="nearest") > scale) | (
        minimum_filter(values, footprint=ring, mode="nearest") - values > scale
    )
    if not spikes.any():
        return values
    # The median only where it replaces a pixel: a whole-frame median filter costs half the step.
    rows, columns = np.nonzero(spikes)
    padded = np.pad(values, HOT_PIXEL_WINDOW // 2, mode="edge")
    neighbourhoods = np.lib.stride_tricks.sliding_window_view(padded, (HOT_PIXEL_WINDOW, HOT_PIXEL_WINDOW))[rows, columns]
    out = values.copy()
    out[rows, columns] = np.median(neighbourhoods, axis=(1, 2))
    return out


def denoise(values: np.ndarray, denoiser: str, *, sigma: float) -> np.ndarray:
    """``values`` denoised by a scikit-image denoiser for Gaussian noise of ``sigma``."""
    if sigma <= 0:
        return values
    from skimage import restoration as sk

    if denoiser == "wavelet":
        return sk.denoise_wavelet(values, sigma=sigma, wavelet="sym4", method="BayesShrink", mode="soft", rescale_sigma=True)
    if denoiser == "tv":
        return sk.denoise_tv_chambolle(values, weight=sigma)
    if denoiser == "nl-means":
        return sk.denoise_nl_means(values, h=0.6 * sigma, sigma=sigma, fast_mode=True, patch_size=5, patch_distance=6)
    raise ValueError(f"unknown denoiser {denoiser!r}: choose from {', '.join(DENOISERS)}")
