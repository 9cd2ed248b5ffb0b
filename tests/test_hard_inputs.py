"""Inputs users feed a tool: each is colorized correctly or refused clearly."""

from __future__ import annotations

import numpy as np
import pytest

from napari_colorize import colorize
from napari_colorize.color import gray_to_lightness, rgb_to_lab
from napari_colorize.normalization import intensity_range, normalize_frame


def _lightness_error(rgb, values):
    return np.abs(rgb_to_lab(rgb)[..., 0] - gray_to_lightness(values)).mean()


def test_rgb_input_uses_its_luminance_with_a_warning(tiny_model):
    rgb = np.random.default_rng(0).integers(0, 255, (60, 70, 3), dtype=np.uint8)
    with pytest.warns(UserWarning, match="RGB/RGBA"):
        out = colorize(rgb, model=tiny_model, device="cpu")
    assert out.shape == (60, 70, 3)
    luminance = rgb.astype(np.float32) @ np.array([0.2125, 0.7154, 0.0721], np.float32)
    assert _lightness_error(out, normalize_frame(luminance, *intensity_range(luminance))) < 1.5


def test_rgba_stack_and_explicit_rgb_false(tiny_model):
    rgba = np.random.default_rng(1).integers(0, 255, (2, 40, 50, 4), dtype=np.uint8)
    with pytest.warns(UserWarning, match="RGB/RGBA"):
        assert colorize(rgba, model=tiny_model, device="cpu").shape == (2, 40, 50, 3)
    # rgb=False: a stack of 40 frames of 50 x 4 pixels, no warning
    assert colorize(rgba[0], model=tiny_model, device="cpu", rgb=False).shape == (40, 50, 4, 3)
    with pytest.raises(ValueError, match="3 or 4 channels"):
        colorize(np.zeros((20, 30)), model=tiny_model, device="cpu", rgb=True)


def test_huge_values_stay_finite(tiny_model):
    frame = np.linspace(-1e300, 1e300, 64 * 80).reshape(64, 80)
    out = colorize(frame, model=tiny_model, device="cpu", normalize=(-1e300, 1e300))
    values = (frame + 1e300) / 2e300
    assert _lightness_error(out, values) < 1.5


def test_six_dimensional_stack(tiny_model):
    stack = np.random.default_rng(2).random((1, 2, 1, 2, 30, 40))
    out = colorize(stack, model=tiny_model, device="cpu")
    assert out.shape == (1, 2, 1, 2, 30, 40, 3)


def test_non_contiguous_and_read_only_memmap(tmp_path, tiny_model):
    base = np.random.default_rng(3).integers(0, 4000, (80, 90), dtype=np.uint16)
    expected = colorize(base[:, ::2], model=tiny_model, device="cpu")
    np.testing.assert_array_equal(colorize(np.ascontiguousarray(base[:, ::2]), model=tiny_model, device="cpu"), expected)
    path = tmp_path / "frame.raw"
    base.tofile(path)
    mapped = np.memmap(path, dtype=np.uint16, mode="r", shape=base.shape)
    np.testing.assert_array_equal(colorize(mapped, model=tiny_model, device="cpu"), colorize(base, model=tiny_model, device="cpu"))
    np.testing.assert_array_equal(np.fromfile(path, dtype=np.uint16).reshape(base.shape), base)  # input untouched


def test_input_array_is_never_modified(tiny_model):
    frame = np.random.default_rng(4).random((50, 60)).astype(np.float32)
    frame[3, 4] = np.nan
    copy = frame.copy()
    colorize(frame, model=tiny_model, device="cpu")
    np.testing.assert_array_equal(frame, copy)


@pytest.mark.parametrize("frame", [np.zeros((1, 1)), np.full((1, 300), 7.0), np.full((5, 3), -2.0)])
def test_tiny_and_constant_frames(tiny_model, frame):
    out = colorize(frame, model=tiny_model, device="cpu")
    assert out.shape == (*frame.shape, 3) and out.dtype == np.uint8
