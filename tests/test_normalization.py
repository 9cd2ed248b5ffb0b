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
