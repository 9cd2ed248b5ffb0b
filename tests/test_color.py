"""Colour science: Lab conversions, ab bins, soft-encoding, rebalancing, decoding."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from skimage.color import lab2rgb, rgb2lab

from napari_colorize.color import (
    AB_GRID,
    ab_bins,
    annealed_mean,
    gray_to_lightness,
    lab_to_rgb,
    lab_to_rgb_torch,
    lightness_to_gray,
    nearest_bin,
    rebalance_weights,
    rgb_to_lab,
    rgb_to_lab_torch,
    smoothed_prior,
    soft_encode,
)

HALF_DIAGONAL = AB_GRID / 2 * math.sqrt(2)  # 7.07: farthest point of a grid cell from its centre

# sRGB -> Lab (D65) reference values, checked by hand against published tables.
REFERENCE = [
    ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((1.0, 0.0, 0.0), (53.24, 80.09, 67.20)),
    ((0.0, 1.0, 0.0), (87.73, -86.18, 83.18)),
    ((0.0, 0.0, 1.0), (32.30, 79.19, -107.86)),
]


def random_rgb(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.random((n, 3))
    # include the corners and edges of the cube, where the curves bend
    corners = np.array(np.meshgrid([0, 1], [0, 1], [0, 1], indexing="ij")).reshape(3, -1).T
    return np.concatenate([rgb, corners, [[0.04045, 0.5, 0.001], [0.01, 0.01, 0.01]]])


def to_nchw(array):
    """(P, 3) numpy -> (1, 3, P, 1) float64 tensor."""
    return torch.from_numpy(np.ascontiguousarray(array.T[None, :, :, None]))


def from_nchw(tensor):
    return tensor[0, :, :, 0].T.numpy()


# --------------------------------------------------------------------------
# conversions
# --------------------------------------------------------------------------
@pytest.mark.parametrize(("rgb", "lab"), REFERENCE)
def test_reference_values_numpy_and_torch(rgb, lab):
    np.testing.assert_allclose(rgb_to_lab(np.array(rgb)), lab, atol=0.01)
    got = from_nchw(rgb_to_lab_torch(to_nchw(np.array([rgb]))))[0]
    np.testing.assert_allclose(got, lab, atol=0.01)
    # and back
    # the table is rounded to 0.01, so allow half a uint8 level back
    np.testing.assert_allclose(lab_to_rgb(np.array(lab)), rgb, atol=2e-3)
    back = from_nchw(lab_to_rgb_torch(to_nchw(np.array([lab]))))[0]
    np.testing.assert_allclose(back, rgb, atol=2e-3)


def test_numpy_conversion_matches_skimage():
    rgb = random_rgb()
    np.testing.assert_allclose(rgb_to_lab(rgb), rgb2lab(rgb), atol=1e-3)
    lab = rgb2lab(rgb)
    np.testing.assert_allclose(lab_to_rgb(lab), lab2rgb(lab), atol=1e-5)
    # uint8 input is scaled by its maximum
    u8 = (rgb * 255).round().astype(np.uint8)
    np.testing.assert_allclose(rgb_to_lab(u8), rgb2lab(u8 / 255.0), atol=1e-3)
    assert rgb_to_lab(rgb).dtype == np.float32 and lab_to_rgb(lab).dtype == np.float32


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-3), (torch.float32, 1e-2)])
def test_torch_rgb_to_lab_matches_skimage(dtype, tol):
    rgb = random_rgb(seed=1)
    got = from_nchw(rgb_to_lab_torch(to_nchw(rgb).to(dtype)).double())
    np.testing.assert_allclose(got, rgb2lab(rgb), atol=tol)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-4), (torch.float32, 1e-3)])
def test_torch_lab_to_rgb_matches_skimage(dtype, tol):
    rng = np.random.default_rng(2)
    in_gamut = rgb2lab(random_rgb(seed=2))
    # random Lab, including out-of-gamut colours (clipped the same way); skimage
    # clamps negative Z before its conversion, so keep fz = fy - b/200 >= 0
    lab = np.column_stack([rng.uniform(0, 100, 3000), rng.uniform(-100, 100, 3000), rng.uniform(-100, 100, 3000)])
    lab = lab[(lab[:, 0] + 16) / 116 - lab[:, 2] / 200 >= 0]
    lab = np.concatenate([in_gamut, lab])
    got = from_nchw(lab_to_rgb_torch(to_nchw(lab).to(dtype)).double())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage warns about clipping
        expected = lab2rgb(lab)
    np.testing.assert_allclose(got, expected, atol=tol)
    assert got.min() >= 0 and got.max() <= 1


def test_round_trips_numpy_and_torch():
    rgb = random_rgb(seed=3)
    np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-4)
    t = to_nchw(rgb)
    np.testing.assert_allclose(from_nchw(lab_to_rgb_torch(rgb_to_lab_torch(t))), rgb, atol=1e-6)
    # (N, 3, H, W) images and a batch of several
    image = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    assert rgb_to_lab_torch(image).shape == (2, 3, 5, 7)
    torch.testing.assert_close(lab_to_rgb_torch(rgb_to_lab_torch(image)), image, atol=1e-6, rtol=0)


def test_torch_conversion_clips_inputs():
    rgb = torch.tensor([[[[-0.5]], [[1.5]], [[0.5]]]], dtype=torch.float64)
    clipped = torch.tensor([[[[0.0]], [[1.0]], [[0.5]]]], dtype=torch.float64)
    torch.testing.assert_close(rgb_to_lab_torch(rgb), rgb_to_lab_torch(clipped))
    far = torch.tensor([[[[50.0]], [[300.0]], [[-300.0]]]], dtype=torch.float64)
    out = lab_to_rgb_torch(far)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_gray_to_lightness_matches_lab_of_gray():
    v = np.linspace(0, 1, 257)
    gray = np.repeat(v[:, None], 3, axis=1)
    np.testing.assert_allclose(gray_to_lightness(v), rgb2lab(gray)[:, 0], atol=1e-3)
    assert gray_to_lightness(0.0) == 0.0
    assert gray_to_lightness(1.0) == pytest.approx(100.0, abs=1e-4)
    assert np.all(np.diff(gray_to_lightness(v)) > 0)
    # clipped outside [0, 1]
    np.testing.assert_array_equal(gray_to_lightness(np.array([-1.0, 2.0])), gray_to_lightness(np.array([0.0, 1.0])))


def test_lightness_to_gray_inverts_gray_to_lightness():
    v = np.random.default_rng(4).random(5000)
    np.testing.assert_allclose(lightness_to_gray(gray_to_lightness(v)), v, atol=1e-5)
    L = np.linspace(0, 100, 1001)
    np.testing.assert_allclose(gray_to_lightness(lightness_to_gray(L)), L, atol=1e-3)
    np.testing.assert_array_equal(lightness_to_gray(np.array([-5.0, 150.0])), [0.0, 1.0])


# --------------------------------------------------------------------------
# bins
# --------------------------------------------------------------------------
def test_ab_bins_grid():
    bins = ab_bins()
    assert bins.shape == (261, 2) and bins.dtype == np.float32
    assert len(np.unique(bins, axis=0)) == 261
    np.testing.assert_array_equal(bins % AB_GRID, 0)
    assert [0.0, 0.0] in bins.tolist()
    # lattice spacing 10 along both axes
    assert set(np.diff(np.unique(bins[:, 0]))) == {10.0}
    assert set(np.diff(np.unique(bins[:, 1]))) == {10.0}
    # sorted by a then b
    order = np.lexsort((bins[:, 1], bins[:, 0]))
    np.testing.assert_array_equal(order, np.arange(len(bins)))
    # cached and protected against accidental edits
    assert ab_bins() is bins
    assert not bins.flags.writeable


def test_every_srgb_colour_is_near_a_bin():
    bins = ab_bins()
    rng = np.random.default_rng(5)
    levels = np.linspace(0, 1, 33)
    cube = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    rgb = np.concatenate([cube, rng.random((100_000, 3))])
    ab = rgb_to_lab(rgb)[:, 1:]
    index = nearest_bin(ab, bins)
    distance = np.hypot(*(ab - bins[index]).T)
    assert distance.max() <= HALF_DIAGONAL + 1e-3
    # and every bin is the nearest one of some sRGB colour
    assert len(np.unique(index)) > 0.95 * len(bins)


def test_nearest_bin_is_the_argmin():
    bins = ab_bins()
    ab = np.random.default_rng(6).uniform(-120, 120, (4, 50, 2)).astype(np.float32)
    index = nearest_bin(ab, bins)
    assert index.shape == (4, 50) and index.dtype == np.int64
    brute = ((ab[..., None, :] - bins) ** 2).sum(-1)
    chosen = np.take_along_axis(brute, index[..., None], -1)[..., 0]
    np.testing.assert_allclose(chosen, brute.min(-1), rtol=1e-4, atol=1e-2)
    # bin centres map to themselves
    np.testing.assert_array_equal(nearest_bin(bins, bins), np.arange(len(bins)))


# --------------------------------------------------------------------------
# soft-encoding
# --------------------------------------------------------------------------
def test_soft_encode_distribution():
    bins_np = ab_bins()
    bins = torch.from_numpy(bins_np.copy())
    rng = np.random.default_rng(7)
    ab_np = rgb_to_lab(rng.random((2, 5, 6, 3)))[..., 1:]  # (N, H, W, 2)
    ab = torch.from_numpy(ab_np).permute(0, 3, 1, 2).contiguous()
    target, nearest = soft_encode(ab, bins, neighbours=5, sigma=5.0)
    assert target.shape == (2, 261, 5, 6) and nearest.shape == (2, 5, 6)
    torch.testing.assert_close(target.sum(1), torch.ones(2, 5, 6))
    assert (target >= 0).all()
    # the mass sits on exactly the 5 nearest bins, the most on the nearest one
    assert ((target > 0).sum(1) == 5).all()
    np.testing.assert_array_equal(nearest.numpy(), nearest_bin(ab_np, bins_np))
    np.testing.assert_array_equal(target.argmax(1).numpy(), nearest.numpy())
    d2 = ((ab_np[..., None, :] - bins_np) ** 2).sum(-1)  # (N, H, W, Q)
    five = np.sort(np.argsort(d2, axis=-1)[..., :5], axis=-1)
    support = np.sort(np.argsort(-target.permute(0, 2, 3, 1).numpy(), axis=-1)[..., :5], axis=-1)
    np.testing.assert_array_equal(support, five)


def test_soft_encode_hand_value_at_a_bin_centre():
    bins = torch.from_numpy(ab_bins().copy())
    ab = torch.zeros(1, 2, 1, 1)
    target, nearest = soft_encode(ab, bins, neighbours=5, sigma=5.0)
    centre = int(np.flatnonzero((ab_bins() == 0).all(1))[0])
    assert int(nearest) == centre
    # itself at distance 0 and four neighbours at distance 10: exp(-100 / 50) = e^-2
    expected = 1.0 / (1.0 + 4.0 * math.exp(-2.0))
    assert float(target[0, centre, 0, 0]) == pytest.approx(expected, rel=1e-5)
    assert float(target[0, :, 0, 0].sort().values[-2]) == pytest.approx(math.exp(-2.0) * expected, rel=1e-5)
    # one neighbour: a one-hot target
    onehot, _ = soft_encode(ab, bins, neighbours=1)
    assert float(onehot[0, centre, 0, 0]) == 1.0 and float(onehot.sum()) == 1.0


# --------------------------------------------------------------------------
# prior and rebalancing
# --------------------------------------------------------------------------
def test_smoothed_prior():
    bins = ab_bins()
    counts = np.random.default_rng(8).integers(0, 1000, len(bins))
    prior = smoothed_prior(counts, bins)
    assert prior.shape == (261,) and prior.dtype == np.float64
    assert prior.sum() == pytest.approx(1.0, abs=1e-12)
    assert (prior > 0).all()
    # a single populated bin spreads to its neighbours, decreasing with distance
    centre = int(np.flatnonzero((bins == 0).all(1))[0])
    delta = np.zeros(len(bins))
    delta[centre] = 7
    spread = smoothed_prior(delta, bins)
    assert spread.argmax() == centre
    distance = np.hypot(*(bins - bins[centre]).T)
    order = np.argsort(distance, kind="stable")
    assert np.all(np.diff(spread[order]) <= 1e-15)
    # a tiny sigma leaves the empirical distribution as it is
    np.testing.assert_allclose(smoothed_prior(counts, bins, sigma=0.01), counts / counts.sum(), atol=1e-12)
    with pytest.raises(ValueError, match="no pixels"):
        smoothed_prior(np.zeros(len(bins)), bins)


def test_rebalance_weights():
    rng = np.random.default_rng(9)
    prior = rng.random(261) ** 4
    prior /= prior.sum()
    for lam in (0.0, 0.25, 0.5, 0.9):
        w = rebalance_weights(prior, lam=lam)
        assert (prior * w).sum() == pytest.approx(1.0, abs=1e-12)
        # rarer bins weigh more
        order = np.argsort(prior)
        assert np.all(np.diff(w[order]) <= 1e-12)
        assert w[prior.argmin()] > w[prior.argmax()]
    np.testing.assert_allclose(rebalance_weights(prior, lam=1.0), np.ones(261))
    # lam = 0 is full rebalancing: w proportional to 1 / p
    np.testing.assert_allclose(rebalance_weights(prior, lam=0.0), 1.0 / (261 * prior), rtol=1e-9)
    # the docstring example
    p = np.array([0.7, 0.2, 0.1])
    w = rebalance_weights(p)
    assert float((p * w).sum()) == pytest.approx(1.0)
    assert w[2] > w[1] > w[0]


# --------------------------------------------------------------------------
# annealed mean
# --------------------------------------------------------------------------
def test_annealed_mean():
    bins = torch.from_numpy(ab_bins().copy())
    torch.manual_seed(0)
    logits = 3 * torch.randn(2, 261, 3, 4)
    # T -> 0: the mode's bin centre
    mode = annealed_mean(logits, bins, temperature=1e-3)
    expected_mode = bins[logits.argmax(1)].permute(0, 3, 1, 2)
    torch.testing.assert_close(mode, expected_mode, atol=1e-3, rtol=0)
    # T = 1: the plain mean of the predicted distribution
    mean = annealed_mean(logits, bins, temperature=1.0)
    expected_mean = torch.einsum("nqhw,qc->nchw", torch.softmax(logits, 1), bins)
    torch.testing.assert_close(mean, expected_mean, atol=1e-4, rtol=0)  # float32 sums in another order; ab units
    assert mean.shape == (2, 2, 3, 4)
    # a confident distribution decodes to its bin at any temperature
    onehot = torch.full((1, 261, 1, 1), -50.0)
    onehot[0, 17] = 50.0
    torch.testing.assert_close(annealed_mean(onehot, bins, temperature=0.38)[0, :, 0, 0], bins[17])
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            annealed_mean(logits, bins, temperature=bad)
