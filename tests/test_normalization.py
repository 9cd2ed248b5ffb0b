"""Normalisation: the robust intensity range of a frame (sampled sparsely
when lazy) and the mapping of a frame into [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest

from napari_colorize.normalization import intensity_range, normalize_frame


def test_intensity_range():
    values = np.arange(1001, dtype=np.float32)
    assert intensity_range(values) == pytest.approx((5.0, 995.0))
    assert intensity_range(values, percentiles=(0, 100)) == (0.0, 1000.0)
    with_bad = np.concatenate([values, [np.nan, np.inf, -np.inf]])
    assert intensity_range(with_bad) == pytest.approx((5.0, 995.0))
    assert intensity_range(np.full(10, 3.0)) == (3.0, 4.0)
    assert intensity_range(np.full(10, np.nan)) == (0.0, 1.0)
    sparse = np.zeros(10_000)
    sparse[:3] = 50.0
    assert intensity_range(sparse) == (0.0, 50.0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_the_range_of_an_8_or_16_bit_frame_is_np_percentile_of_its_sample(dtype):
    """8- and 16-bit frames take their range from the count of each value in
    the sample, not a sort of it: the very figures np.percentile gives, bit
    for bit (the colours do not move), sparse and constant frames included."""
    from napari_colorize.arrays import strided_sample
    from napari_colorize.normalization import PERCENTILE_SAMPLES, percentiles_of_counts

    rng = np.random.default_rng(3)
    top = np.iinfo(dtype).max
    frames = [
        rng.gamma(2.0, top / 20, (300, 170)).clip(0, top).astype(dtype),  # skewed, with ties
        rng.integers(0, top, (64, 65), endpoint=True, dtype=dtype),
        np.zeros((50, 50), dtype),  # constant
        np.where(rng.random((100, 100)) < 0.002, top // 3, 0).astype(dtype),  # sparse: falls back to min, max
        # Its 1.1125...th percentile has a last bit that only numpy's way of interpolating gets.
        np.array([[149] * 7 + [223] * 611], dtype),
    ]
    for frame in frames:
        sample = strided_sample(frame, limit=PERCENTILE_SAMPLES).astype(np.float64)
        counts = np.bincount(frame.ravel(), minlength=int(top) + 1)
        for percentiles in [(0.5, 99.5), (0, 100), (1.112549544773056, 99)] + [tuple(sorted(pair)) for pair in rng.uniform(0, 100, (40, 2))]:
            expected = np.percentile(sample, percentiles)
            np.testing.assert_array_equal(percentiles_of_counts(counts, percentiles), expected)
        expected = np.percentile(sample, (0.5, 99.5))
        low, high = expected if expected[1] > expected[0] else (sample.min(), sample.max())
        assert intensity_range(frame) == (float(low), float(high) if high > low else float(low) + 1)


def test_normalize_frame():
    frame = np.array([np.nan, -np.inf, np.inf, -5, 0, 5, 10, 20], dtype=np.float64)
    v = normalize_frame(frame, 0.0, 10.0)
    assert v.dtype == np.float32
    np.testing.assert_array_equal(v, [0, 0, 1, 0, 0, 0.5, 1, 1])
    np.testing.assert_allclose(normalize_frame(np.array([-3, 1], np.int16), -5, 3), [0.25, 0.75])


def test_a_lazy_frame_is_sampled_sparsely_for_its_intensity_range():
    da = pytest.importorskip("dask.array")
    from napari_colorize import arrays, normalization

    frame = np.random.default_rng(6).normal(1000, 100, (400, 400)).astype(np.float32)
    lazy = da.from_array(frame, chunks=(100, 400))
    assert 10_000 <= arrays.strided_sample(lazy, limit=10_000).size <= 2 * 10_000  # a strided grid, not all 160,000
    low, high = normalization.intensity_range(lazy)
    exact = np.percentile(frame, normalization.DEFAULT_PERCENTILES)
    assert abs(low - exact[0]) < 15 and abs(high - exact[1]) < 15


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64])
def test_lightness_looked_up_per_value_is_the_computed_lightness(dtype):
    """8- and 16-bit unsigned frames take their lightness from a table of
    every value: the same numbers, bit for bit, as computing it, and the same
    pixels kept black or white (clipped below and above the range, NaN, Inf)."""
    from napari_colorize.color import gray_to_lightness
    from napari_colorize.normalization import lightness_and_extremes, normalized_lightness, tables_for

    top = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 70000.0
    bottom = np.iinfo(dtype).min if np.issubdtype(dtype, np.integer) else -5.0
    frame = np.random.default_rng(0).uniform(bottom, top, (128, 160)).astype(dtype)  # large enough for a 16-bit table
    frame[0, :3] = [bottom, top, 7]
    if not np.issubdtype(dtype, np.integer):
        frame[1, :3] = [np.nan, np.inf, -np.inf]
    low, high = 7.0, float(top) * 0.6
    values = normalize_frame(frame, low, high)
    expected = gray_to_lightness(values)
    assert np.array_equal(normalized_lightness(frame, low, high), expected)
    lightness, extreme = lightness_and_extremes(frame, low, high)
    assert np.array_equal(lightness, expected) and lightness.dtype == np.float32
    assert np.array_equal(extreme, (values <= 0) | (values >= 1))
    assert extreme[0, :3].all() and not extreme.all()
    looked_up = dtype in (np.uint8, np.uint16)
    assert (tables_for(frame, low, high) is not None) == looked_up
    small = frame[:16, :16]  # too few pixels to repay a 16-bit table: computed, the same values
    assert np.array_equal(normalized_lightness(small, low, high), gray_to_lightness(normalize_frame(small, low, high)))
    assert (tables_for(small, low, high) is not None) == (dtype == np.uint8)
