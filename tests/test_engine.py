"""The engine: tiles through the model into stitched chroma and RGB strips.

GPU-side logic: the CUDA out-of-memory fallback (``Predictor`` halving its
batch) and reduced-precision autocast. Both are testable on CPU:
out-of-memory is simulated by a ``predict_ab`` that raises
``torch.cuda.OutOfMemoryError`` above a tile count, and CPU autocast runs
bfloat16 and float16. Then streaming: ``colorize_strips`` covers every row,
reads a lazy frame a tile or a strip at a time and resamples strip by strip.
The CUDA variants at the end run only where ``torch.cuda.is_available()``.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import logging

import numpy as np
import pytest
import torch
from helpers import smooth_frame

from napari_colorize import colorize
from napari_colorize.engine import MAX_ENLARGEMENT, colorize_strips, working_shape
from napari_colorize.prediction import Predictor, autocast

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
needs_dask = pytest.mark.skipif(importlib.util.find_spec("dask") is None, reason="needs dask")

TEMPERATURE = 0.38
LOGGER = "napari_colorize.engine"


def test_the_working_shape_reaches_the_models_smallest_side_and_no_further():
    assert working_shape((300, 200), 1.0, smallest_side=128) == (300, 200)
    assert working_shape((300, 200), 0.5, smallest_side=0) == (150, 100)
    # a small frame, or a scale that would make it small, is enlarged until its short side is 128
    assert working_shape((64, 80), 1.0, smallest_side=128) == (128, 160)
    assert working_shape((300, 200), 0.5, smallest_side=128) == (192, 128)
    # a thin strip by at most MAX_ENLARGEMENT
    assert working_shape((10, 1000), 1.0, smallest_side=128) == (round(10 * MAX_ENLARGEMENT), round(1000 * MAX_ENLARGEMENT))


def short_of_memory(colorizer, limit: int, calls: list):
    """A copy of ``colorizer`` (sharing its network) whose ``predict_ab`` raises
    CUDA out-of-memory when given more than ``limit`` tiles; ``calls`` records
    the batch size of every call."""
    predict_ab = colorizer.predict_ab

    def limited(lightness, *, temperature):
        calls.append(len(lightness))
        if len(lightness) > limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (simulated: {len(lightness)} tiles > {limit})")
        return predict_ab(lightness, temperature=temperature)

    short = dataclasses.replace(colorizer)
    short.predict_ab = limited
    return short


def lightness_tiles(count: int, *, size: int = 64, device="cpu") -> torch.Tensor:
    """Smooth L tiles (count, 1, size, size) in [0, 100], each different."""
    frames = [smooth_frame((size, size), seed=s, low=0.0, high=100.0) for s in range(count)]
    return torch.from_numpy(np.stack(frames))[:, None].to(device)


def oom_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def level_differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


# --------------------------------------------------------------------------
# out-of-memory fallback (simulated; runs on CPU)
# --------------------------------------------------------------------------
def test_out_of_memory_halves_the_batch_until_it_fits(tiny_model, caplog):
    tiles = lightness_tiles(11)
    calls = []
    predict = Predictor(short_of_memory(tiny_model, 2, calls), temperature=TEMPERATURE, batch_size=8, precision="fp32")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        out = predict(tiles)
    # 8 fails, 4 fails, then batches of 2 (and the 1 left over) all fit
    assert calls == [8, 4, 2, 2, 2, 2, 2, 1]
    assert predict.batch_size == 2, "the working batch size is kept for later frames"
    expected = Predictor(tiny_model, temperature=TEMPERATURE, batch_size=8, precision="fp32")(tiles)
    assert out.shape == expected.shape == (11, 2, 16, 16)
    # same tiles, same order; only the float summation may differ with the batch size
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-4)
    messages = oom_warnings(caplog)
    assert len(messages) == 2
    assert all("out of memory" in m for m in messages)
    assert "batches of 4 " in messages[0] and "batches of 2 " in messages[1]


def test_out_of_memory_in_colorize_gives_the_normal_result(tiny_model, caplog):
    stack = np.stack([smooth_frame((300, 420), seed=s) for s in range(2)])  # 2 x 6 tiles
    expected = colorize(stack, model=tiny_model, device="cpu", batch_size=8, window=224)
    calls, progress = [], []
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        out = colorize(
            stack,
            model=short_of_memory(tiny_model, 2, calls),
            device="cpu",
            batch_size=8,
            window=224,
            progress=lambda done, total: progress.append((done, total)),
        )
    failed = [n for n in calls if n > 2]
    assert failed == [6, 3], "halved on the first frame only: the smaller batch is remembered"
    assert sum(n for n in calls if n <= 2) == 12, "every tile predicted exactly once"
    assert len(oom_warnings(caplog)) == 2
    assert progress[-1] == (12, 12)
    assert out.shape == expected.shape and out.dtype == np.uint8
    assert level_differences(out, expected).max() <= 1


def test_a_single_tile_that_does_not_fit_raises_memory_error(tiny_model):
    calls = []
    predict = Predictor(short_of_memory(tiny_model, 0, calls), temperature=TEMPERATURE, batch_size=8, precision="fp32")
    with pytest.raises(MemoryError, match="single tile.*device='cpu'") as info:
        predict(lightness_tiles(5))
    assert calls == [5, 2, 1]
    assert not isinstance(info.value, RuntimeError), "a clear MemoryError, not torch's OutOfMemoryError"
    assert info.value.__suppress_context__
    # ... and through colorize(), with batch_size=1 from the start: no retries
    calls.clear()
    with pytest.raises(MemoryError, match="single tile"):
        colorize(smooth_frame((64, 64)), model=short_of_memory(tiny_model, 0, calls), device="cpu", batch_size=1)
    assert calls == [1]


def test_other_errors_are_not_retried(tiny_model, caplog):
    calls = []

    def broken(lightness, *, temperature):
        calls.append(len(lightness))
        raise RuntimeError("not a memory problem")

    model = dataclasses.replace(tiny_model)
    model.predict_ab = broken
    predict = Predictor(model, temperature=TEMPERATURE, batch_size=8, precision="fp32")
    with caplog.at_level(logging.WARNING, logger=LOGGER), pytest.raises(RuntimeError, match="not a memory problem"):
        predict(lightness_tiles(5))
    assert calls == [5]
    assert predict.batch_size == 8
    assert oom_warnings(caplog) == []


# --------------------------------------------------------------------------
# autocast precision (CPU)
# --------------------------------------------------------------------------
# Measured (scratch, torch 2.13 CPU, 'natural', seven smooth frames of 96x112 to
# 300x300, uint8 levels of the RGB output): bf16 vs fp32 mean 0.24-0.43,
# 99th percentile 2-5, max 4-23 (a few pixels where the annealed mean is
# ambiguous); fp16 vs fp32 mean 0.01, max 1. bf16 keeps 8 significant bits,
# so the logits move by ~0.4 %, and T = 0.38 sharpens that; the bounds below
# leave a margin of 2x over the worst frame measured.
MEAN_LEVELS = 1.0
P99_LEVELS = 8


@pytest.mark.parametrize(
    "precision, dtype",
    [("fp32", torch.float32), ("auto", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)],
)
def test_autocast_runs_the_network_in_the_requested_precision(precision, dtype):
    x, weight = torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3)
    with autocast(torch.device("cpu"), precision):
        assert torch.nn.functional.conv2d(x, weight).dtype == dtype
    assert not torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_is_close_to_fp32_on_cpu(natural, precision):
    frame = smooth_frame((224, 224), seed=0)  # one tile: bf16 runs ~15x slower than fp32 on CPUs without bf16 units
    reference = colorize(frame, model=natural, device="cpu", precision="fp32")
    diff = level_differences(colorize(frame, model=natural, device="cpu", precision=precision), reference)
    assert diff.any(), "autocast had no effect"
    assert diff.mean() < MEAN_LEVELS
    assert np.percentile(diff, 99) < P99_LEVELS


@pytest.mark.parametrize("precision", ["fp64", "FP32", "half", "float16", "bfloat16", "", None])
def test_invalid_precision_is_refused(tiny_model, precision):
    frame = np.zeros((16, 16), np.float32)
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, fp16"):
        colorize(frame, model=tiny_model, device="cpu", precision=precision)
    with pytest.raises(ValueError, match="precision must be one of"):
        next(colorize_strips(frame, model=tiny_model, device="cpu", precision=precision))


def test_invalid_precision_is_refused_for_a_dask_input_at_once(tiny_model):
    da = pytest.importorskip("dask.array")
    with pytest.raises(ValueError, match="precision must be one of"):
        colorize(da.zeros((2, 16, 16), chunks=(1, 16, 16)), model=tiny_model, device="cpu", precision="fp8")


# --------------------------------------------------------------------------
# strips: every row, a lazy frame a tile or a strip at a time
# --------------------------------------------------------------------------
def test_strips_cover_every_row_in_order(stack, reference, natural):
    seen = []
    for index, r0, r1, rgb in colorize_strips(stack, model=natural, device="cpu", strip_rows=64):
        np.testing.assert_array_equal(rgb, reference[index][r0:r1])
        seen.append((index, r0, r1))
    assert seen[:3] == [((0,), 0, 64), ((0,), 64, 128), ((0,), 128, 150)]
    assert len(seen) == 9


@needs_dask
def test_a_huge_lazy_frame_is_read_tile_by_tile_and_strip_by_strip(monkeypatch, natural_v1):
    """A lazy frame too large to read whole is read a window (here the
    model's tiles) or a strip at a time, and gives the in-memory result.
    (A context-taking model also reads
    a strided sample of the frame, under 1024 x 1024 pixels, for its view:
    all of a frame as small as this one; see ``context.frame_view``.)"""
    from helpers import recording_dask

    from napari_colorize import arrays

    frame = np.random.default_rng(5).integers(0, 4000, (300, 520)).astype(np.uint16)
    monkeypatch.setattr(arrays, "EAGER_FRAME_BYTES", 1000)
    reads = []
    options = {"model": natural_v1, "device": "cpu", "normalize": (0, 4000), "window": 224}
    strips = colorize_strips(recording_dask(frame, reads, rows=50, cols=130), strip_rows=40, **options)
    result = np.concatenate([rgb for _, _, _, rgb in strips])
    np.testing.assert_array_equal(result, colorize(frame, **options))
    pixels_per_computation = {}
    for computation, shape in reads:
        pixels_per_computation[computation] = pixels_per_computation.get(computation, 0) + int(np.prod(shape))
    # a 224 x 224 tile spans at most 6 x 3 chunks of 50 x 130; a strip of 40 rows 2 x 4
    assert max(pixels_per_computation.values()) <= 6 * 3 * 50 * 130 < frame.size


@needs_dask
def test_colouring_in_slabs_reads_a_lazy_frame_once_per_strip(monkeypatch, natural_v1):
    """Strips are coloured a few rows at a time on a CPU (for the cache);
    a lazy frame is still read once per strip, not once per slab, and the
    colours do not depend on the slab height."""
    from helpers import recording_dask

    from napari_colorize import arrays, composing

    frame = np.random.default_rng(6).integers(0, 4000, (300, 520)).astype(np.uint16)
    monkeypatch.setattr(arrays, "EAGER_FRAME_BYTES", 1000)
    options = {"model": natural_v1, "device": "cpu", "normalize": (0, 4000), "window": 224, "strip_rows": 40}
    results, pixels_read = [], []
    for slab_pixels in (composing.COMPOSE_SLAB_PIXELS, 520 * 4):
        monkeypatch.setattr(composing, "COMPOSE_SLAB_PIXELS", slab_pixels)
        reads = []
        results.append(np.concatenate([rgb for _, _, _, rgb in colorize_strips(recording_dask(frame, reads, rows=50, cols=130), **options)]))
        pixels_read.append(sum(int(np.prod(shape)) for _, shape in reads))
    np.testing.assert_array_equal(results[1], results[0])
    assert pixels_read[1] == pixels_read[0]


@pytest.mark.parametrize("working", [(150, 260), (431, 97), (600, 1040)])
def test_resampling_strip_by_strip_equals_resampling_the_whole_frame(monkeypatch, working):
    """At scale != 1 a frame is normalised and resampled along X in strips as
    it is read, then along Y: the whole-frame resampling to float32 rounding
    (SIMD paths differ with a strip's length by a few units in the last place)."""
    from napari_colorize import engine
    from napari_colorize.normalization import normalize_frame

    frame = np.random.default_rng(7).integers(0, 4000, (300, 520)).astype(np.uint16)
    whole = engine.resize(normalize_frame(frame, 100, 3900), working)
    monkeypatch.setattr(engine, "CHUNK_PIXELS", 520 * 7)  # strips of 7 rows
    np.testing.assert_allclose(engine.resample_frame(frame, 100, 3900, working), whole, rtol=0, atol=1e-5)


@needs_dask
def test_a_huge_lazy_frame_at_half_scale_is_read_strip_by_strip(monkeypatch, natural):
    from helpers import recording_dask

    from napari_colorize import arrays, engine

    frame = np.random.default_rng(8).integers(0, 4000, (300, 520)).astype(np.uint16)
    expected = colorize(frame, model=natural, device="cpu", normalize=(0, 4000), scale=0.5)
    monkeypatch.setattr(arrays, "EAGER_FRAME_BYTES", 1000)
    monkeypatch.setattr(engine, "CHUNK_PIXELS", 520 * 40)
    reads = []
    strips = colorize_strips(recording_dask(frame, reads, rows=40), model=natural, device="cpu", normalize=(0, 4000), scale=0.5)
    np.testing.assert_array_equal(np.concatenate([rgb for _, _, _, rgb in strips]), expected)
    assert max(int(np.prod(shape)) for _, shape in reads) <= 40 * 520 < frame.size


def test_colorize_strips_refuses_bad_input_when_called():
    with pytest.raises(TypeError, match="complex"):
        colorize_strips(np.zeros((8, 8), complex), device="cpu")  # not only at the first strip


# --------------------------------------------------------------------------
# the same on a real CUDA device
# --------------------------------------------------------------------------
def on_cuda(colorizer):
    """A CUDA copy of a model: the session fixtures stay on the CPU."""
    return dataclasses.replace(colorizer, network=copy.deepcopy(colorizer.network).to("cuda"))


@pytest.fixture(scope="module")
def natural_cuda(natural):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    return on_cuda(natural)


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_out_of_memory_fallback_on_cuda(tiny_model, caplog, precision):
    model = on_cuda(tiny_model)
    tiles = lightness_tiles(11, device="cuda")
    calls = []
    predict = Predictor(short_of_memory(model, 2, calls), temperature=TEMPERATURE, batch_size=8, precision=precision)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        out = predict(tiles)  # torch.cuda.empty_cache() really runs here
    assert calls == [8, 4, 2, 2, 2, 2, 2, 1]
    assert len(oom_warnings(caplog)) == 2
    expected = Predictor(model, temperature=TEMPERATURE, batch_size=8, precision=precision)(tiles)
    assert out.device.type == "cuda" and out.shape == expected.shape
    if precision == "fp32":
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-3)
    else:  # bf16 sums may round differently with the batch size
        assert torch.isfinite(out).all() and (out.float() - expected.float()).abs().mean() < 0.5
    with pytest.raises(MemoryError, match="single tile"):
        Predictor(short_of_memory(model, 0, []), temperature=TEMPERATURE, batch_size=4, precision=precision)(tiles[:3])


@needs_cuda
def test_auto_precision_is_bf16_on_cuda():
    x, weight = torch.randn(1, 3, 8, 8, device="cuda"), torch.randn(4, 3, 3, 3, device="cuda")
    with autocast(torch.device("cuda"), "auto"):
        assert torch.nn.functional.conv2d(x, weight).dtype == torch.bfloat16
    with autocast(torch.device("cuda"), "fp16"):
        assert torch.nn.functional.conv2d(x, weight).dtype == torch.float16
    with autocast(torch.device("cuda"), "fp32"):
        assert torch.nn.functional.conv2d(x, weight).dtype == torch.float32


@needs_cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16", "auto"])
def test_reduced_precision_is_close_to_fp32_on_cuda(natural_cuda, precision):
    frame = smooth_frame((300, 300), seed=6)
    reference = colorize(frame, model=natural_cuda, device="cuda", precision="fp32")
    diff = level_differences(colorize(frame, model=natural_cuda, device="cuda", precision=precision), reference)
    assert diff.mean() < MEAN_LEVELS
    assert np.percentile(diff, 99) < P99_LEVELS


@needs_cuda
def test_cuda_fp32_is_close_to_cpu(natural, natural_cuda):
    # CUDA convolutions may use TF32 (10-bit mantissa): close, not identical
    frame = smooth_frame((300, 300), seed=6)
    cpu = colorize(frame, model=natural, device="cpu", precision="fp32")
    diff = level_differences(colorize(frame, model=natural_cuda, device="cuda", precision="fp32"), cpu)
    assert diff.mean() < MEAN_LEVELS
    assert np.percentile(diff, 99) < P99_LEVELS


@needs_cuda
@pytest.mark.parametrize("options", [{}, {"scale": 0.6, "chroma_upsampling": "guided"}, {"stack_consensus": 1}])
def test_a_stack_held_on_cuda_in_bf16_is_close_to_the_cpu(natural, natural_cuda, options):
    # on CUDA the frames are uploaded a frame ahead on a side stream and coloured there (napari_colorize.resident)
    stack = np.stack([smooth_frame((300, 340), seed=s) for s in range(3)]).astype(np.uint16)
    cpu = colorize(stack, model=natural, device="cpu", precision="fp32", **options)
    diff = level_differences(colorize(stack, model=natural_cuda, device="cuda", precision="bf16", **options), cpu)
    assert diff.mean() < MEAN_LEVELS
    assert np.percentile(diff, 99) < P99_LEVELS


@pytest.mark.parametrize("upsampling", ["bilinear", "guided"])
def test_strips_composed_on_workers_are_the_same_and_the_threads_come_back(natural, upsampling):
    """compose_threads (the command line, which writes the strips from
    another thread) gives the strips bit for bit on one worker or several,
    leaves torch on the threads it had, also when the strips are abandoned
    half way, and leaves no worker behind."""
    import threading

    frame = smooth_frame((300, 520))
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        options = {"model": natural, "device": "cpu", "strip_rows": 64, "chroma_upsampling": upsampling}
        default = [rgb for *_, rgb in colorize_strips(frame, **options)]
        for workers in (1, 3):
            on_workers = [rgb for *_, rgb in colorize_strips(frame, compose_threads=workers, **options)]
            assert len(default) == len(on_workers) == 5 and all(np.array_equal(a, b) for a, b in zip(default, on_workers))
            assert torch.get_num_threads() == 2
        abandoned = colorize_strips(frame, compose_threads=2, **options)
        next(abandoned)
        abandoned.close()
        assert torch.get_num_threads() == 2
        assert not [t for t in threading.enumerate() if t.name.startswith("napari-colorize-compose")]
    finally:
        torch.set_num_threads(previous)
