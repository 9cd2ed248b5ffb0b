"""Restoration of the lightness before colour (off by default): each step
brings a noisy frame closer to its clean version, bad settings are refused,
and the output says what ran."""

from __future__ import annotations

import numpy as np
import pytest

from napari_colorize import ColorizeOptions, colorize, lightness
from napari_colorize.normalization import FixedRange
from napari_colorize.provenance import provenance
from napari_colorize.restoration import Restoration, estimate_noise, remove_hot_pixels, restore_frame, stack_noise


def clean_frame(shape=(128, 128), seed=0) -> np.ndarray:
    """Smooth blobs and a sharp-edged square, in [0.1, 0.9]."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    frame = gaussian_filter(rng.random(shape), 6)
    frame = (frame - frame.min()) / np.ptp(frame)
    frame[40:80, 30:70] = 0.9
    return (0.1 + 0.8 * frame).astype(np.float32)


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, dtype=np.float64) - b) ** 2)))


@pytest.mark.parametrize("denoiser", ["wavelet", "tv", "nl-means"])
@pytest.mark.parametrize("noise", ["gaussian", "poisson"])
def test_each_denoiser_brings_a_noisy_frame_closer_to_the_clean_one(denoiser, noise):
    clean = clean_frame()
    rng = np.random.default_rng(1)
    noisy = clean + rng.normal(0, 0.06, clean.shape) if noise == "gaussian" else rng.poisson(clean * 40) / 40.0
    noisy = np.clip(noisy, 0, 1).astype(np.float32)
    restored = restore_frame(noisy, Restoration(steps=("denoise",), denoiser=denoiser))
    assert restored.dtype == np.float32 and restored.min() >= 0 and restored.max() <= 1
    assert rmse(restored, clean) < 0.75 * rmse(noisy, clean)


def test_the_noise_estimate_follows_the_noise_added():
    clean = clean_frame()
    rng = np.random.default_rng(2)
    for sigma in (0.02, 0.08):
        assert estimate_noise(clean + rng.normal(0, sigma, clean.shape)) == pytest.approx(sigma, rel=0.25)


def test_hot_pixels_are_removed_and_a_clean_frame_is_left_alone():
    clean = clean_frame()
    hot = clean.copy()
    rng = np.random.default_rng(3)
    where = rng.choice(clean.size, 40, replace=False)
    hot.flat[where] = 1.0
    hot.flat[where[:10]] = 0.0  # dead pixels too
    fixed = remove_hot_pixels(hot, threshold=5.0)
    assert rmse(fixed, clean) < 0.2 * rmse(hot, clean)
    untouched = remove_hot_pixels(clean, threshold=5.0)
    assert np.mean(untouched != clean) < 1e-3


def test_clahe_undoes_uneven_illumination():
    from scipy.ndimage import gaussian_filter
    from skimage.exposure import equalize_hist

    rng = np.random.default_rng(3)
    clean = equalize_hist(gaussian_filter(rng.random((192, 192)), 3)).astype(np.float32)  # evenly lit, full contrast
    shaded = clean * np.linspace(0.2, 1.0, 192, dtype=np.float32)  # light falling off across the frame
    restored = restore_frame(shaded, Restoration(steps=("clahe",)))
    assert np.abs(restored - clean).mean() < 0.5 * np.abs(shaded - clean).mean()


def test_restoration_off_is_bit_identical_and_the_input_is_not_modified(natural):
    rng = np.random.default_rng(4)
    frame = (clean_frame((96, 112)) * 4000 + rng.normal(0, 200, (96, 112))).astype(np.uint16)
    before = frame.copy()
    default = colorize(frame, model=natural, device="cpu")
    np.testing.assert_array_equal(colorize(frame, model=natural, device="cpu", restore=()), default)
    np.testing.assert_array_equal(colorize(frame, model=natural, device="cpu", restore="none"), default)
    restored = colorize(frame, model=natural, device="cpu", restore="denoise")
    assert not np.array_equal(restored, default)
    np.testing.assert_array_equal(frame, before)


def test_the_restored_lightness_alone_is_what_the_result_is_composed_on(natural):
    from napari_colorize.color import rgb_to_lab

    rng = np.random.default_rng(5)
    clean = clean_frame((96, 96))
    noisy = np.clip(clean + rng.normal(0, 0.05, clean.shape), 0, 1)
    own = colorize(noisy, lightness_only=True, normalize=(0.0, 1.0))
    smooth = lightness(noisy, restore="denoise", normalize=(0.0, 1.0))
    truth = lightness(clean, normalize=(0.0, 1.0))
    assert own.shape == noisy.shape and own.dtype == np.float32
    assert rmse(smooth, truth) < 0.75 * rmse(own, truth)
    rgb = colorize(noisy, model=natural, device="cpu", restore="denoise", normalize=(0.0, 1.0))
    assert np.abs(rgb_to_lab(rgb)[..., 0] - smooth).mean() < 1.0  # up to rounding to 8-bit RGB


def test_a_stack_can_share_one_noise_level():
    rng = np.random.default_rng(6)
    stack = np.stack([clean_frame(seed=s) + rng.normal(0, sigma, (128, 128)) for s, sigma in enumerate((0.02, 0.05, 0.08))])
    shared = stack_noise(stack, FixedRange(0.0, 1.0))
    levels = [estimate_noise(np.clip(frame, 0, 1)) for frame in stack]
    assert min(levels) < shared < max(levels)
    per_frame = lightness(stack, restore="denoise", normalize=(0.0, 1.0))
    alike = lightness(stack, restore="denoise", noise_sigma="stack", normalize=(0.0, 1.0))
    given = lightness(stack, restore="denoise", noise_sigma=shared, normalize=(0.0, 1.0))
    assert not np.allclose(per_frame[0], alike[0])
    np.testing.assert_allclose(alike, given, atol=1e-4)


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"restore": "denoise,blur"}, "unknown restoration step 'blur'"),
        ({"denoise_strength": 0}, "denoise_strength must be > 0"),
        ({"denoise_strength": float("nan")}, "denoise_strength must be a finite number"),
        ({"noise_sigma": "loud"}, "noise_sigma must be 'frame', 'stack' or a number"),
        ({"noise_sigma": 2.0}, "noise_sigma as a number must be > 0 and < 1"),
        ({"hot_pixel_threshold": 0.5}, "hot_pixel_threshold must be >= 1"),
        ({"clahe_clip": 0}, "clahe_clip must be > 0"),
        ({"denoiser": "bm3d"}, "denoiser must be one of wavelet, tv, nl-means"),
    ],
)
def test_bad_restoration_settings_are_refused_with_a_message(keywords, message):
    with pytest.raises(ValueError, match=message):
        ColorizeOptions(**keywords)


def test_steps_run_in_a_fixed_order_and_provenance_says_what_ran(natural):
    options = ColorizeOptions(restore=["clahe", "hot-pixels"], clahe_clip=0.02)
    assert options.restore == ("hot-pixels", "clahe")
    record = provenance(options, natural, device="cpu")
    assert record["parameters"]["restore"] == ["hot-pixels", "clahe"]
    assert record["restoration"]["steps"] == ["hot-pixels", "clahe"]
    assert record["restoration"]["clahe"] == {"method": "skimage.exposure.equalize_adapthist", "clip_limit": 0.02}
    assert "denoise" not in record["restoration"]
    assert "restoration" not in provenance(ColorizeOptions(), natural, device="cpu")
