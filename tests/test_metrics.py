"""Quality metrics: colorfulness, PSNR and the AB error CMF."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_colorize.color import ab_bins
from napari_colorize.metrics import MAX_THRESHOLD, ABErrorCMF, colorfulness, psnr

THRESHOLDS = MAX_THRESHOLD + 1  # 0, 1, ..., 150


# --------------------------------------------------------------------------
# colorfulness and PSNR
# --------------------------------------------------------------------------
def test_colorfulness_of_gray_is_zero():
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    assert colorfulness(np.repeat(levels[..., None], 3, axis=-1)) == 0.0
    assert colorfulness(np.full((4, 4, 3), 128, np.uint8)) == 0.0


def test_colorfulness_hand_computed():
    # two pixels, red and blue:
    #   rg = R - G          -> [255, 0]:      mean 127.5,  std 127.5
    #   yb = (R + G)/2 - B  -> [127.5, -255]: mean -63.75, std 191.25
    image = np.array([[[255, 0, 0], [0, 0, 255]]], np.uint8)
    expected = math.hypot(127.5, 191.25) + 0.3 * math.hypot(127.5, 63.75)
    assert colorfulness(image) == pytest.approx(expected, rel=1e-12)
    # a uniform red: no spread, only the mean term
    assert colorfulness(np.full((3, 3, 3), [255, 0, 0], np.uint8)) == pytest.approx(0.3 * math.hypot(255, 127.5))
    # more colour scores higher
    faded = (0.5 * image + 64).astype(np.uint8)
    assert colorfulness(faded) < colorfulness(image)


def test_psnr():
    a = np.zeros((10, 10, 3), np.uint8)
    with np.errstate(divide="ignore"):
        assert psnr(a, a) == math.inf
    b = a.copy()
    b[0, 0, 0] = 255  # one of 300 values off by 255: MSE = 255^2 / 300
    assert psnr(a, b) == pytest.approx(10 * math.log10(300))


# --------------------------------------------------------------------------
# AuC of the ab-error CMF
# --------------------------------------------------------------------------
def random_ab(n, seed=0):
    from napari_colorize.color import rgb_to_lab

    return rgb_to_lab(np.random.default_rng(seed).random((n, 3)))[:, 1:]


def test_perfect_prediction_scores_100():
    cmf = ABErrorCMF(ab_bins())
    ab = random_ab(5000)
    cmf.add(ab, ab)
    assert cmf.auc() == pytest.approx(100.0)
    assert cmf.auc(rebalanced=True) == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (200.0, 0.0),
        (151.0, 0.0),
        (150.0, 100 / THRESHOLDS),  # counts at the last threshold only
        (10.0, 100 * (THRESHOLDS - 10) / THRESHOLDS),
        (10.5, 100 * (THRESHOLDS - 11) / THRESHOLDS),
        (0.0, 100.0),
    ],
)
def test_constant_error(error, expected):
    cmf = ABErrorCMF(ab_bins())
    ab = random_ab(1000, seed=1)
    angle = np.random.default_rng(2).uniform(0, 2 * np.pi, len(ab))
    predicted = ab + error * np.column_stack([np.cos(angle), np.sin(angle)])
    cmf.add(ab.reshape(10, 100, 2), predicted.reshape(10, 100, 2))  # any (..., 2) shape
    assert cmf.auc() == pytest.approx(expected, abs=1e-9)
    assert cmf.auc(rebalanced=True) == pytest.approx(expected, abs=1e-9)


def test_rebalanced_is_a_per_bin_average():
    bins = ab_bins()
    common, rare = bins[100], bins[200]
    cmf = ABErrorCMF(bins)
    cmf.add(np.tile(common, (90, 1)), np.tile(common, (90, 1)))  # 90 perfect pixels
    cmf.add(np.tile(rare, (10, 1)), np.tile(rare + [200, 0], (10, 1)))  # 10 hopeless ones
    assert cmf.auc() == pytest.approx(90.0)
    assert cmf.auc(rebalanced=True) == pytest.approx(50.0)

    # in general: the mean of the per-bin AuCs
    ab = random_ab(3000, seed=3)
    predicted = ab + np.random.default_rng(4).normal(0, 15, ab.shape)
    whole = ABErrorCMF(bins)
    whole.add(ab, predicted)
    from napari_colorize.color import nearest_bin

    index = nearest_bin(ab, bins)
    per_bin = []
    for b in np.unique(index):
        single = ABErrorCMF(bins)
        single.add(ab[index == b], predicted[index == b])
        per_bin.append(single.auc())
    assert whole.auc(rebalanced=True) == pytest.approx(np.mean(per_bin))
    assert whole.auc(rebalanced=True) != pytest.approx(whole.auc())

    # accumulating in parts is the same as at once
    parts = ABErrorCMF(bins)
    parts.add(ab[:1000], predicted[:1000])
    parts.add(ab[1000:], predicted[1000:])
    np.testing.assert_array_equal(parts.counts, whole.counts)
