"""``colorize()``: shapes, dtypes, normalisation, fidelity of lightness, options."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers import smooth_frame

from napari_colorize import ColorizeCancelled, colorize
from napari_colorize.color import gray_to_lightness, rgb_to_lab
from napari_colorize.model import CheckpointError, save_checkpoint
from napari_colorize.normalization import intensity_range, normalize_frame


def chroma(rgb):
    ab = rgb_to_lab(rgb)[..., 1:]
    return np.hypot(ab[..., 0], ab[..., 1])


def expected_lightness(stack, normalize="frame"):
    stack = np.asarray(stack)
    if normalize == "stack":
        low, high = intensity_range(stack)
        return gray_to_lightness(normalize_frame(stack, low, high))
    frames = stack.reshape(-1, *stack.shape[-2:])
    return np.stack([gray_to_lightness(normalize_frame(f, *intensity_range(f))) for f in frames]).reshape(stack.shape)


# --------------------------------------------------------------------------
# shapes and the lightness contract
# --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(37, 53), (1, 1), (1, 40), (40, 1), (2, 40, 30), (3, 24, 33), (2, 2, 24, 20)])
def test_shapes(tiny_model, shape):
    image = np.random.default_rng(0).integers(0, 4096, shape).astype(np.uint16)
    out = colorize(image, model=tiny_model, device="cpu")
    assert out.shape == (*shape, 3)
    assert out.dtype == np.uint8


def test_stack_frames_are_independent_with_frame_normalisation(tiny_model):
    stack = np.stack([smooth_frame((48, 56), seed=s) for s in range(3)])
    out = colorize(stack, model=tiny_model, device="cpu")
    for i in range(3):
        np.testing.assert_array_equal(out[i], colorize(stack[i], model=tiny_model, device="cpu"))
    assert not np.array_equal(out[0], out[1])
    four = colorize(stack[:2].reshape(2, 1, 48, 56).repeat(2, axis=1), model=tiny_model, device="cpu")
    np.testing.assert_array_equal(four[1, 1], out[1])


def test_output_keeps_the_input_lightness(natural):
    stack = np.stack([smooth_frame((120, 140), seed=s) for s in range(3)]).astype(np.uint16)
    out = colorize(stack, model=natural, device="cpu")
    error = np.abs(rgb_to_lab(out)[..., 0] - expected_lightness(stack))
    assert error.mean() < 1.5
    assert np.percentile(error, 99) < 5
    # ... and adds colour: the model predicts some chroma
    assert chroma(out).mean() > 2.0


def test_deterministic(natural):
    frame = smooth_frame((150, 130), seed=3)
    first = colorize(frame, model=natural, device="cpu")
    second = colorize(frame.copy(), model=natural, device="cpu")
    np.testing.assert_array_equal(first, second)


def test_temperature_controls_saturation(natural):
    frame = smooth_frame((112, 112), seed=4)
    vivid = chroma(colorize(frame, model=natural, device="cpu", temperature=0.1)).mean()
    mean = chroma(colorize(frame, model=natural, device="cpu", temperature=1.0)).mean()
    assert vivid > mean
    # the regression head ignores the temperature
    from napari_colorize.model import load_checkpoint

    regression = load_checkpoint("natural-regression", device="cpu")
    np.testing.assert_array_equal(
        colorize(frame, model=regression, device="cpu", temperature=0.1),
        colorize(frame, model=regression, device="cpu", temperature=1.0),
    )


# --------------------------------------------------------------------------
# dtypes, NaN and Inf
# --------------------------------------------------------------------------
def base_image():
    return smooth_frame((72, 80), seed=5, low=0, high=255).round().astype(np.uint8)


@pytest.mark.parametrize(
    "convert",
    [
        lambda b: b.astype(np.uint16) * 200 + 7,
        lambda b: b.astype(np.int16) * 10 - 1000,  # negative values
        lambda b: b.astype(np.float32) / 255,
        lambda b: b.astype(np.float64) * 3.5 - 2,
        lambda b: b.astype(np.int32) - 100,
    ],
    ids=["uint16", "int16-negative", "float32", "float64", "int32"],
)
def test_dtypes_are_affine_invariant(natural, convert):
    base = base_image()
    reference = colorize(base, model=natural, device="cpu")
    image = convert(base)
    out = colorize(image, model=natural, device="cpu")
    assert out.shape == (*base.shape, 3) and out.dtype == np.uint8
    # robust normalisation makes the result independent of offset and gain
    # (up to float rounding where a pixel lands exactly on the clip limits)
    close = np.abs(out.astype(int) - reference).max(-1) <= 1
    assert close.mean() > 0.99
    # dark input stays dark, bright stays bright
    L = rgb_to_lab(out)[..., 0]
    assert L[base == base.min()].mean() < 5 and L[base == base.max()].mean() > 95


def test_bool_image(tiny_model):
    mask = np.zeros((60, 70), bool)
    mask[10:40, 20:50] = True
    out = colorize(mask, model=tiny_model, device="cpu")
    np.testing.assert_array_equal(out, colorize(mask.astype(np.float32), model=tiny_model, device="cpu"))
    np.testing.assert_array_equal(out[mask], 255)
    np.testing.assert_array_equal(out[~mask], 0)


def test_nan_and_inf(natural):
    frame = smooth_frame((96, 100), seed=6)
    frame[20:30, 20:30] = np.nan
    frame[50:55, 10:40] = -np.inf
    frame[70:75, 10:40] = np.inf
    out = colorize(frame, model=natural, device="cpu")
    assert out.shape == (96, 100, 3)
    np.testing.assert_array_equal(out[20:30, 20:30], 0)  # NaN -> black
    np.testing.assert_array_equal(out[50:55, 10:40], 0)  # -Inf -> black
    np.testing.assert_array_equal(out[70:75, 10:40], 255)  # +Inf -> white
    # the finite pixels are normalised as if the others were not there
    finite = np.isfinite(frame)
    expected = gray_to_lightness(normalize_frame(frame, *intensity_range(frame[finite])))
    assert np.abs(rgb_to_lab(out)[..., 0] - expected)[finite].mean() < 1.5
    # all-NaN frames in a stack are black, the others unaffected
    stack = np.stack([np.full((40, 40), np.nan, np.float32), smooth_frame((40, 40), seed=7)])
    out = colorize(stack, model=natural, device="cpu")
    np.testing.assert_array_equal(out[0], 0)
    np.testing.assert_array_equal(out[1], colorize(stack[1], model=natural, device="cpu"))


def test_constant_image(tiny_model):
    out = colorize(np.full((30, 40), 7, np.uint16), model=tiny_model, device="cpu")
    assert out.shape == (30, 40, 3)
    assert len(np.unique(out.reshape(-1, 3), axis=0)) == 1


# --------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------
def test_frame_and_stack_normalisation(natural):
    bright = smooth_frame((64, 72), seed=8, low=1000, high=3000)
    dim = 0.25 * bright + 100  # the same scene, dimmer
    stack = np.stack([bright, dim])
    per_frame = colorize(stack, model=natural, device="cpu", normalize="frame")
    whole = colorize(stack, model=natural, device="cpu", normalize="stack")
    L_frame, L_stack = rgb_to_lab(per_frame)[..., 0], rgb_to_lab(whole)[..., 0]
    # per frame: both look alike; over the stack: the dim frame stays dim
    assert np.abs(L_frame[0] - L_frame[1]).mean() < 1.0
    assert L_stack[0].mean() - L_stack[1].mean() > 20
    assert np.abs(L_stack - expected_lightness(stack, "stack")).mean() < 1.5
    # 'stack' on a single frame is 'frame'
    np.testing.assert_array_equal(colorize(bright, model=natural, device="cpu", normalize="stack"), per_frame[0])


def test_explicit_range(tiny_model):
    frame = smooth_frame((50, 60), seed=9, low=100, high=900)
    auto = colorize(frame, model=tiny_model, device="cpu")
    explicit = colorize(frame, model=tiny_model, device="cpu", normalize=intensity_range(frame))
    np.testing.assert_array_equal(auto, explicit)
    # a range wider than the data: the data maps to (0.05, 0.45), no black or white
    wide = colorize(frame, model=tiny_model, device="cpu", normalize=(0, 2000))
    L = rgb_to_lab(wide)[..., 0]
    assert np.abs(L - gray_to_lightness(frame / 2000)).mean() < 1.5
    assert L.max() < 80 and L.min() > 2
    # values outside the range clip to black and white
    clipped = colorize(frame, model=tiny_model, device="cpu", normalize=(400, 500))
    np.testing.assert_array_equal(clipped[frame <= 400], 0)
    np.testing.assert_array_equal(clipped[frame >= 500], 255)


@pytest.mark.parametrize("scale", [0.5, 0.37, 1.6])
def test_scale_returns_full_resolution(natural, scale):
    frame = smooth_frame((90, 70), seed=10)
    out = colorize(frame, model=natural, device="cpu", scale=scale)
    assert out.shape == (90, 70, 3)
    # the lightness still comes from the full-resolution input
    assert np.abs(rgb_to_lab(out)[..., 0] - expected_lightness(frame)).mean() < 1.5


def test_a_frame_smaller_than_the_training_crops_is_worked_at_their_size(natural):
    # natural was trained on 128 px crops, and training enlarged smaller images
    # until a crop fitted: a 64 x 80 frame is seen at twice its size, as at scale 2
    assert natural.smallest_side == 128
    frame = smooth_frame((64, 80), seed=11)
    out = colorize(frame, model=natural, device="cpu")
    assert out.shape == (64, 80, 3)
    np.testing.assert_array_equal(out, colorize(frame, model=natural, device="cpu", scale=2.0))
    assert np.abs(rgb_to_lab(out)[..., 0] - expected_lightness(frame)).mean() < 1.5


# --------------------------------------------------------------------------
# progress and cancel
# --------------------------------------------------------------------------
def test_progress_reaches_total(tiny_model):
    stack = np.stack([smooth_frame((260, 240), seed=s) for s in range(2)])  # 2 x 2 tiles per frame
    calls = []
    colorize(stack, model=tiny_model, device="cpu", batch_size=3, window=224, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(3, 8), (4, 8), (7, 8), (8, 8)]
    calls.clear()  # a windowed network, in the default windows: one per frame
    windowed = dataclasses.replace(tiny_model, windowed=True)
    colorize(stack, model=windowed, device="cpu", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]
    calls.clear()  # a network that is not (the first generation's): its tiles, whatever the window
    colorize(stack, model=tiny_model, device="cpu", window=1024, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (8, 8)


def test_cancel(tiny_model):
    stack = np.stack([smooth_frame((260, 240), seed=s) for s in range(2)])
    with pytest.raises(ColorizeCancelled):
        colorize(stack, model=tiny_model, device="cpu", cancel=lambda: True)
    calls = []
    with pytest.raises(ColorizeCancelled):
        colorize(
            stack,
            model=tiny_model,
            device="cpu",
            batch_size=2,
            window=224,
            progress=lambda done, total: calls.append(done),
            cancel=lambda: bool(calls) and calls[-1] >= 4,
        )
    assert calls == [2, 4]  # stopped before the second frame
    out = colorize(stack[0], model=tiny_model, device="cpu", cancel=lambda: False)
    assert out.shape == (260, 240, 3)


# --------------------------------------------------------------------------
# models given in different ways
# --------------------------------------------------------------------------
def test_model_as_name_path_or_object(tmp_path, tiny_model):
    frame = smooth_frame((40, 50), seed=11)
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(tiny_model, path)
    from_path = colorize(frame, model=path, device="cpu")
    from_str = colorize(frame, model=str(path), device="cpu")
    np.testing.assert_array_equal(from_path, from_str)
    # the saved weights are half precision: close to the in-memory model
    direct = colorize(frame, model=tiny_model, device="cpu")
    assert np.abs(from_path.astype(int) - direct).max() <= 3
    assert colorize(frame, model="natural", device="cpu").shape == (40, 50, 3)
    with pytest.raises(CheckpointError, match="unknown model"):
        colorize(frame, model="no-such-model", device="cpu")


# --------------------------------------------------------------------------
# invalid inputs and options
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("image", "kwargs", "error", "match"),
    [
        (np.ones((8, 8), np.complex64), {}, TypeError, "complex"),
        (np.ones(10), {}, ValueError, "2D"),
        (np.float32(3.0), {}, ValueError, "2D"),
        (np.ones((0, 10)), {}, ValueError, "empty"),
        (np.ones((2, 0, 10)), {}, ValueError, "empty"),
        (np.array([["a", "b"], ["c", "d"]]), {}, TypeError, "dtype"),
        (np.ones((8, 8), object), {}, TypeError, "dtype"),
        (np.ones((8, 8)), {"temperature": 0}, ValueError, "temperature"),
        (np.ones((8, 8)), {"temperature": -0.5}, ValueError, "temperature"),
        (np.ones((8, 8)), {"temperature": float("nan")}, ValueError, "temperature"),
        (np.ones((8, 8)), {"overlap": -1}, ValueError, "overlap"),
        (np.ones((8, 8)), {"overlap": 224}, ValueError, "overlap"),
        (np.ones((8, 8)), {"scale": 0}, ValueError, "scale"),
        (np.ones((8, 8)), {"scale": float("inf")}, ValueError, "scale"),
        (np.ones((8, 8)), {"batch_size": 0}, ValueError, "batch_size"),
        (np.ones((8, 8)), {"normalize": "global"}, ValueError, "normalize"),
        (np.ones((8, 8)), {"normalize": (5, 5)}, ValueError, "high > low"),
        (np.ones((8, 8)), {"normalize": (5, 1)}, ValueError, "high > low"),
        (np.ones((8, 8)), {"normalize": (0, float("nan"))}, ValueError, "finite"),
        (np.ones((8, 8)), {"percentiles": (50, 10)}, ValueError, "percentiles"),
        (np.ones((8, 8)), {"percentiles": (0, 101)}, ValueError, "percentiles"),
        (np.ones((8, 8)), {"percentiles": "ab"}, ValueError, "percentiles"),
        (np.ones((8, 8)), {"normalize": (1,)}, ValueError, "normalize must be"),
        (np.ones((8, 8)), {"normalize": None}, ValueError, "normalize must be"),
        (np.ones((8, 8)), {"device": "tpu"}, ValueError, "device"),
    ],
)
def test_invalid_inputs(tiny_model, image, kwargs, error, match):
    with pytest.raises(error, match=match):
        colorize(image, model=tiny_model, **{"device": "cpu", **kwargs})


@pytest.mark.parametrize("kwargs, match", [({"normalize": "frames"}, "normalize must be"), ({"percentiles": (9, 1)}, "percentiles"), ({"scale": 0}, "scale")])
def test_bad_options_for_a_dask_input_are_refused_before_any_work(tiny_model, kwargs, match):
    da = pytest.importorskip("dask.array")
    with pytest.raises(ValueError, match=match):
        colorize(da.zeros((2, 16, 16), chunks=(1, 16, 16)), model=tiny_model, device="cpu", **kwargs)


def test_a_window_colours_like_the_tiles_it_replaces(natural):
    """The default window runs the network once over a 512² frame instead of
    on 9 overlapping tiles, and the colours stay those of the tiles: the
    network is fully convolutional and sees each pixel's surroundings alike
    (measured on skimage's camera: mean ab change 0.4, 99th percentile 2.8, mean chroma 16)."""
    from skimage.data import camera

    frame = camera()
    totals = {}
    results = {}
    for window in (224, 1024):
        progress = []
        results[window] = rgb_to_lab(colorize(frame, model=natural, device="cpu", window=window, progress=lambda done, total, progress=progress: progress.append(total)))
        totals[window] = progress[-1]
    assert totals == {224: 9, 1024: 1}
    change = np.linalg.norm(results[1024][..., 1:] - results[224][..., 1:], axis=-1)
    assert change.mean() < 1.5 and np.percentile(change, 99) < 8
    assert np.hypot(results[1024][..., 1], results[1024][..., 2]).mean() > 8
