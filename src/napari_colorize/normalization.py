"""Intensity normalisation: which raw values map to black and white.

Always decided per whole frame (or whole stack), never per tile, so tiles of
one frame agree. The choice is a small object with one method, ``of(frame)``
-> (low, high): :class:`FrameRange` (robust percentiles of each frame),
:class:`FixedRange` (explicit, or computed once over a stack by
:func:`stack_range`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple, Union

import numpy as np

from .arrays import PER_VALUE_DTYPES, frame_indices, strided_sample
from .color import gray_to_lightness

#: Default percentiles of the robust intensity range.
DEFAULT_PERCENTILES = (0.5, 99.5)
# Values sampled to estimate intensity percentiles.
PERCENTILE_SAMPLES = 1 << 22
# Frames sampled for the range of a lazy stack.
STACK_SAMPLE_FRAMES = 32

#: 'frame', 'stack', or an explicit (low, high).
Normalize = Union[str, tuple[float, float]]


def check_normalize(normalize) -> Normalize:
    """'frame', 'stack' or a finite (low, high) with high > low; anything else is a ValueError."""
    if isinstance(normalize, str):
        if normalize in ("frame", "stack"):
            return normalize
        raise ValueError(f"normalize must be 'frame', 'stack' or (low, high), got {normalize!r}")
    try:
        low, high = (float(v) for v in normalize)
    except (TypeError, ValueError):
        raise ValueError(f"normalize must be 'frame', 'stack' or (low, high), got {normalize!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise ValueError(f"intensity range must be finite with high > low, got {normalize!r}")
    return (low, high)


def check_percentiles(percentiles) -> tuple[float, float]:
    """A (low, high) pair with 0 <= low < high <= 100, else a ValueError."""
    try:
        low, high = (float(v) for v in percentiles)
    except (TypeError, ValueError):
        low, high = math.nan, math.nan
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentiles must be (low, high) with 0 <= low < high <= 100, got {percentiles!r}")
    return (low, high)


def intensity_range(values, *, percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> tuple[float, float]:
    """Robust (low, high) intensity range of ``values``, ignoring NaN and Inf.

    Falls back to the finite min and max when the percentiles coincide (sparse
    images), and to (v, v + 1) for a constant image.
    """
    sample = strided_sample(values, limit=PERCENTILE_SAMPLES)
    return _range_of_sample(sample, percentiles)


def _range_of_sample(sample: np.ndarray, percentiles) -> tuple[float, float]:
    if sample.size == 0:
        return 0.0, 1.0
    if sample.dtype in PER_VALUE_DTYPES:
        low, high = percentiles_of_counts(np.bincount(sample, minlength=np.iinfo(sample.dtype).max + 1), percentiles)
    else:
        low, high = np.percentile(sample, percentiles)
    if high <= low:
        low, high = sample.min(), sample.max()
    if high <= low:
        high = low + 1.0
    return float(low), float(high)


def percentiles_of_counts(counts: np.ndarray, percentiles) -> np.ndarray:
    """``np.percentile`` of a sample of the integers 0, 1, ... given as the
    count of each: the same figures (linear interpolation between order
    statistics), without sorting the sample (a 4096² uint16 frame: 0.01 s
    instead of 0.05)."""
    ends = np.cumsum(counts)  # ends[v]: how many values are <= v
    last = int(ends[-1]) - 1
    position = last * (np.asarray(percentiles, dtype=np.float64) / 100)
    below = np.floor(position)
    weight = position - below
    a, b = (np.searchsorted(ends, k, side="right").astype(np.float64) for k in (below, np.minimum(below + 1, last)))
    # Interpolated from the nearer end, as np.percentile does.
    return np.where(weight >= 0.5, b - (b - a) * (1 - weight), a + (b - a) * weight)


def normalize_frame(frame, low: float, high: float) -> np.ndarray:
    """Map intensities to [0, 1] (clipped), float32; NaN and -Inf become 0, +Inf 1."""
    frame = np.asarray(frame)
    # 64-bit data is scaled in float64: values beyond float32's range stay finite.
    work = np.float64 if frame.dtype.itemsize > 4 else np.float32
    v = (frame.astype(work) - work(low)) * work(1.0 / (high - low))
    v = np.nan_to_num(np.clip(v, 0.0, 1.0), nan=0.0, posinf=1.0, neginf=0.0, copy=False)
    return v.astype(np.float32, copy=False)


def normalized_lightness(frame, low: float, high: float) -> np.ndarray:
    """Lab lightness (float32) of ``frame`` normalised by (``low``, ``high``):
    ``gray_to_lightness(normalize_frame(frame, low, high))``, the same values,
    looked up per value for 8- and 16-bit unsigned frames (one pass instead
    of a dozen: 0.04 s instead of 0.24 on a 4096² uint16 frame) unless
    they are too small to repay the table (see :func:`tables_for`)."""
    frame = np.asarray(frame)
    tables = tables_for(frame, low, high)
    return gray_to_lightness(normalize_frame(frame, low, high)) if tables is None else np.take(tables.lightness, frame)


def lightness_and_extremes(frame, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`normalized_lightness` of ``frame``, and where it normalises to
    black or white (0 or 1: clipped, NaN, +-Inf)."""
    frame = np.asarray(frame)
    tables = tables_for(frame, low, high)
    if tables is not None:
        return np.take(tables.lightness, frame), np.take(tables.extreme, frame)
    values = normalize_frame(frame, low, high)
    return gray_to_lightness(values), (values <= 0.0) | (values >= 1.0)


def tables_for(frame: np.ndarray, low: float, high: float) -> ValueTables | None:
    """The :func:`value_tables` to look ``frame``'s values up in, or None where
    computing them is cheaper: another type, or a frame of fewer pixels than
    a quarter of the table's entries (a 16-bit frame under 128², whose table
    of 65,536 would cost more than its own pixels in its two passes)."""
    if frame.dtype not in PER_VALUE_DTYPES or 4 * frame.size < np.iinfo(frame.dtype).max + 1:
        return None
    return value_tables(frame.dtype, low, high)


class ValueTables(NamedTuple):
    """Per-value results for every value of a small integer type."""

    lightness: np.ndarray
    extreme: np.ndarray


@lru_cache(maxsize=8)
def value_tables(dtype: np.dtype, low: float, high: float) -> ValueTables | None:
    """:func:`normalized_lightness` and :func:`lightness_and_extremes` of
    every value of ``dtype`` (one of :data:`napari_colorize.arrays.PER_VALUE_DTYPES`), indexed by value;
    None for other types."""
    if dtype not in PER_VALUE_DTYPES:
        return None
    values = normalize_frame(np.arange(np.iinfo(dtype).max + 1, dtype=dtype), low, high)
    tables = ValueTables(gray_to_lightness(values), (values <= 0.0) | (values >= 1.0))
    for table in tables:
        table.setflags(write=False)  # shared by every caller of the cache
    return tables


@dataclass(frozen=True)
class FixedRange:
    """The same (low, high) for every frame."""

    low: float
    high: float

    def of(self, frame) -> tuple[float, float]:
        return self.low, self.high


@dataclass(frozen=True)
class FrameRange:
    """Robust percentiles of each frame."""

    percentiles: tuple[float, float] = DEFAULT_PERCENTILES

    def of(self, frame) -> tuple[float, float]:
        return intensity_range(frame, percentiles=self.percentiles)


def stack_range(image, *, percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> FixedRange:
    """One robust range over a whole stack (of a sample of frames, if lazy)."""
    if isinstance(image, np.ndarray):
        return FixedRange(*intensity_range(image, percentiles=percentiles))
    indices = list(frame_indices(tuple(image.shape[:-2])))
    chosen = [indices[int(i)] for i in np.linspace(0, len(indices) - 1, min(STACK_SAMPLE_FRAMES, len(indices)))]
    per_frame = max(1, PERCENTILE_SAMPLES // len(chosen))
    samples = [strided_sample(image[i], limit=per_frame) for i in chosen]
    return FixedRange(*_range_of_sample(np.concatenate(samples), percentiles))


def range_for(image, normalize: Normalize, percentiles: tuple[float, float]) -> FixedRange | FrameRange:
    """The range object for a checked input and a checked ``normalize``."""
    if normalize == "frame":
        return FrameRange(tuple(percentiles))
    if normalize == "stack":
        return stack_range(image, percentiles=tuple(percentiles))
    return FixedRange(*normalize)
