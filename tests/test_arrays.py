"""Input checks through ``colorize()``: arrays users feed a tool (colour
input, huge values, many axes, memory maps, odd dtypes, masks, NaN, tiny and
constant frames) are colorized correctly or refused clearly, and the input is
never modified."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_colorize import colorize
from napari_colorize.color import gray_to_lightness, rgb_to_lab
from napari_colorize.normalization import intensity_range, normalize_frame

RNG = np.random.default_rng(11)
RNG.integers(0, 4000, (3, 40, 50))  # past the draw of helpers.STACK, as where these tests came from: the same frames


# --------------------------------------------------------------------------
# inputs users feed a tool
# --------------------------------------------------------------------------
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


# --------------------------------------------------------------------------
# unsupported, equivalent, extreme, masked and NaN arrays
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("image", "error", "match"),
    [
        (np.array(3.0), ValueError, "2D"),
        (np.arange(5.0), ValueError, "2D"),
        (np.zeros((4, 0)), ValueError, "empty"),
        (np.ones((4, 5), dtype=object), TypeError, "dtype object"),
        (np.full((4, 5), "a"), TypeError, "dtype <U1"),
        (np.zeros((4, 5), dtype=[("a", "f4"), ("b", "i2")]), TypeError, "unsupported image dtype"),
        (np.zeros((4, 5), dtype="datetime64[s]"), TypeError, "datetime64"),
        (np.zeros((4, 5), dtype="timedelta64[s]"), TypeError, "timedelta64"),
        (np.zeros((4, 5), dtype=np.complex128), TypeError, "complex"),
        (torch.zeros(4, 5, dtype=torch.complex64), TypeError, "complex"),
        (None, TypeError, "NoneType"),
        ({"a": 1}, TypeError, "dict"),
    ],
    ids=["0d", "1d", "zero-size", "object", "str", "structured", "datetime", "timedelta", "complex", "torch-complex", "None", "dict"],
)
def test_unsupported_arrays_are_refused(tiny_model, image, error, match):
    with pytest.raises(error, match=match):
        colorize(image, model=tiny_model, device="cpu")


def test_equivalent_arrays_give_the_same_result(tiny_model):
    frame = RNG.random((40, 50))
    expected = colorize(frame, model=tiny_model, device="cpu")

    def check(image, reference=frame):
        want = expected if reference is frame else colorize(reference, model=tiny_model, device="cpu")
        np.testing.assert_array_equal(colorize(image, model=tiny_model, device="cpu"), want)

    check(frame.tolist())
    check(frame.astype(">f8"))
    check(np.asfortranarray(frame))
    check(frame[::-1, ::-1], np.ascontiguousarray(frame[::-1, ::-1]))
    check(frame.astype(np.float16), frame.astype(np.float16).astype(np.float32))
    check(torch.from_numpy(frame))
    check(torch.from_numpy(frame.astype(np.float32)).requires_grad_(), frame.astype(np.float32))
    as_bf16 = torch.from_numpy(frame.astype(np.float32)).bfloat16()
    check(as_bf16, as_bf16.float().numpy())
    counts = (frame * 4000).astype(">u2")
    check(counts, counts.astype(np.uint16))


def test_integer_extremes(tiny_model):
    for dtype in (np.int64, np.uint64):
        info = np.iinfo(dtype)
        frame = np.where(np.arange(40 * 50).reshape(40, 50) % 2, info.max, info.min).astype(dtype)
        out = colorize(frame, model=tiny_model, device="cpu")
        assert set(np.unique(out)) <= {0, 255}  # exactly black and white
        assert (out[0, 1] == 255).all() and (out[0, 0] == 0).all()


def test_masked_pixels_are_treated_as_nan(tiny_model):
    frame = RNG.random((40, 50)).astype(np.float32)
    mask = np.zeros(frame.shape, bool)
    mask[5:10, 5:20] = True
    masked = np.ma.masked_array(frame.copy(), mask=mask)
    masked.data[mask] = 1e9  # what lies under the mask must not matter
    with_nan = np.where(mask, np.nan, frame).astype(np.float32)
    out = colorize(masked, model=tiny_model, device="cpu")
    np.testing.assert_array_equal(out, colorize(with_nan, model=tiny_model, device="cpu"))
    assert (out[mask] == 0).all()
    assert masked.data[5, 5] == 1e9 and masked.mask[5, 5]  # input untouched
    unmasked = np.ma.masked_array(frame)  # nothing masked: just the data
    np.testing.assert_array_equal(colorize(unmasked, model=tiny_model, device="cpu"), colorize(frame, model=tiny_model, device="cpu"))


def test_nan_frames(tiny_model):
    assert (colorize(np.full((30, 40), np.nan), model=tiny_model, device="cpu") == 0).all()
    single = np.full((30, 40), np.nan)
    single[3, 4] = 7.0
    out = colorize(single, model=tiny_model, device="cpu")
    assert out.shape == (30, 40, 3)
    assert (np.delete(out.reshape(-1, 3), 3 * 40 + 4, axis=0) == 0).all()


def test_a_dask_array_of_unknown_shape_is_refused_clearly(tiny_model):
    da = pytest.importorskip("dask.array")
    stack = da.from_array(np.random.default_rng(0).random((3, 16, 16)), chunks=(1, 16, 16))
    filtered = stack[stack[:, 0, 0] >= 0]  # how many frames remain is known only when computed
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        colorize(filtered, model=tiny_model, device="cpu")
