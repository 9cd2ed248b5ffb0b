"""Lazy, streamed and distributed runs give exactly the in-memory result."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_colorize import colorize
from napari_colorize.cli import main
from napari_colorize.io import TiffStack, write_rgb_tiff_strips
from napari_colorize.engine import colorize_strips

da = pytest.importorskip("dask.array")


@pytest.fixture(scope="module")
def stack():
    rng = np.random.default_rng(3)
    base = rng.integers(0, 4000, (3, 150, 230)).astype(np.uint16)
    return base


@pytest.fixture(scope="module")
def reference(stack, natural):
    return colorize(stack, model=natural, device="cpu")


def test_dask_input_gives_a_lazy_array_equal_to_numpy(stack, reference, natural):
    lazy = colorize(da.from_array(stack, chunks=(2, 64, 64)), model=natural, device="cpu")
    assert isinstance(lazy, da.Array)
    assert lazy.shape == reference.shape and lazy.dtype == np.uint8
    assert lazy.numblocks[:3] == (3, 1, 1), "one block per whole frame"
    np.testing.assert_array_equal(lazy[1].compute(), reference[1])
    np.testing.assert_array_equal(lazy.compute(), reference)


def test_dask_stack_normalisation_matches(stack, natural):
    expected = colorize(stack, model=natural, device="cpu", normalize="stack")
    lazy = colorize(da.from_array(stack), model=natural, device="cpu", normalize="stack")
    np.testing.assert_array_equal(lazy.compute(), expected)


def test_local_cluster_matches_single_process(stack, reference):
    distributed = pytest.importorskip("distributed")
    # Threads in this process: same torch settings, so bit-identical output.
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            out = colorize(stack, model="natural", device="cpu", scheduler=client)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, reference)


def test_strips_cover_every_row_in_order(stack, reference, natural):
    seen = []
    for index, r0, r1, rgb in colorize_strips(stack, model=natural, device="cpu", strip_rows=64):
        np.testing.assert_array_equal(rgb, reference[index][r0:r1])
        seen.append((index, r0, r1))
    assert seen[:3] == [((0,), 0, 64), ((0,), 64, 128), ((0,), 128, 150)]
    assert len(seen) == 9


def test_tiff_stack_reads_one_page_at_a_time(tmp_path, stack):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    with TiffStack(path) as lazy:
        assert lazy.shape == stack.shape and lazy.dtype == stack.dtype
        np.testing.assert_array_equal(lazy[(2,)], stack[2])
        np.testing.assert_array_equal(np.asarray(lazy), stack)


def test_cli_streams_tiff_to_the_same_result(tmp_path, stack, reference):
    src, dst = tmp_path / "in.tif", tmp_path / "out.tif"
    tifffile.imwrite(src, stack, compression="zlib", photometric="minisblack")
    assert main(["colorize", str(src), "-o", str(dst), "--device", "cpu", "-q"]) == 0
    np.testing.assert_array_equal(tifffile.imread(dst), reference)
    np.testing.assert_array_equal(tifffile.imread(src), stack)  # input untouched


def test_interrupted_stream_leaves_no_file(tmp_path):
    def failing():
        yield (), 0, 256, np.zeros((256, 300, 3), np.uint8)
        raise KeyboardInterrupt

    dst = tmp_path / "out.tif"
    with pytest.raises(KeyboardInterrupt):
        write_rgb_tiff_strips(dst, (400, 300, 3), failing())
    assert list(tmp_path.iterdir()) == []


def test_planar_rgb_tiff_is_read_as_luminance(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (3, 40, 50), dtype=np.uint8)
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, rgb, photometric="rgb", planarconfig="separate")
    with TiffStack(path) as lazy:
        assert lazy.is_colour and lazy.shape == (40, 50)
        expected = rgb.transpose(1, 2, 0).astype(np.float32) @ np.array([0.2125, 0.7154, 0.0721], np.float32)
        np.testing.assert_allclose(lazy[()], expected, rtol=1e-5)


def test_a_huge_lazy_frame_is_read_tile_by_tile_and_strip_by_strip(monkeypatch, natural):
    """A lazy frame too large to read whole is read a tile, a strip or a
    sparse sample at a time, and gives the in-memory result."""
    from helpers import recording_dask

    from napari_colorize import arrays

    frame = np.random.default_rng(5).integers(0, 4000, (300, 520)).astype(np.uint16)
    monkeypatch.setattr(arrays, "EAGER_FRAME_BYTES", 1000)
    reads = []
    strips = colorize_strips(recording_dask(frame, reads, rows=50, cols=130), model=natural, device="cpu", normalize=(0, 4000), strip_rows=40)
    result = np.concatenate([rgb for _, _, _, rgb in strips])
    np.testing.assert_array_equal(result, colorize(frame, model=natural, device="cpu", normalize=(0, 4000)))
    pixels_per_computation = {}
    for computation, shape in reads:
        pixels_per_computation[computation] = pixels_per_computation.get(computation, 0) + int(np.prod(shape))
    # a 224 x 224 tile spans at most 6 x 3 chunks of 50 x 130; a strip of 40 rows 2 x 4
    assert max(pixels_per_computation.values()) <= 6 * 3 * 50 * 130 < frame.size


def test_a_lazy_frame_is_sampled_sparsely_for_its_intensity_range():
    from napari_colorize import arrays, normalization

    frame = np.random.default_rng(6).normal(1000, 100, (400, 400)).astype(np.float32)
    lazy = da.from_array(frame, chunks=(100, 400))
    assert 10_000 <= arrays.strided_sample(lazy, limit=10_000).size <= 2 * 10_000  # a strided grid, not all 160,000
    low, high = normalization.intensity_range(lazy)
    exact = np.percentile(frame, normalization.DEFAULT_PERCENTILES)
    assert abs(low - exact[0]) < 15 and abs(high - exact[1]) < 15


def _checkpoint_loads() -> int:
    from napari_colorize.model import model_cache_misses

    return model_cache_misses()


def test_local_cluster_of_processes_matches_a_multithreaded_run():
    """Separate worker processes (dask starts them with one torch thread)
    match a run with another thread count bit for bit, and load the model
    once each."""
    import torch

    distributed = pytest.importorskip("distributed")
    stack = np.stack([np.random.default_rng(s).integers(0, 4000, (320, 320)) for s in range(4)]).astype(np.uint16)
    torch.set_num_threads(2)  # the session runs on 1 thread (conftest); workers start on 1
    try:
        reference = colorize(stack, model="natural", device="cpu")
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            with distributed.Client(cluster) as client:
                out = colorize(stack, model="natural", device="cpu", scheduler=client)
                loads = client.run(_checkpoint_loads)
    finally:
        torch.set_num_threads(1)
    np.testing.assert_array_equal(out, reference)
    assert sorted(loads.values()) == [1, 1]


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


def test_a_dask_rgb_input_stays_lazy(natural):
    rgb = np.random.default_rng(9).integers(0, 255, (2, 40, 50, 3), dtype=np.uint8)
    with pytest.warns(UserWarning, match="RGB/RGBA"):
        lazy = colorize(da.from_array(rgb, chunks=(1, 40, 50, 3)), model=natural, device="cpu")
    assert isinstance(lazy, da.Array) and lazy.shape == (2, 40, 50, 3)
    with pytest.warns(UserWarning, match="RGB/RGBA"):
        np.testing.assert_array_equal(lazy.compute(), colorize(rgb, model=natural, device="cpu"))


def test_out_takes_a_dask_input_frame_by_frame_into_a_memory_map(tmp_path, stack, reference, natural):
    from helpers import recording_dask

    reads = []
    out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.uint8, shape=(*stack.shape, 3))
    assert colorize(recording_dask(stack, reads, rows=150), model=natural, device="cpu", out=out) is out
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), reference)
    frames_read = [computation for computation, shape in reads if np.prod(shape)]  # dask's own zero-size probe aside
    assert len(set(frames_read)) == len(frames_read) == len(stack)  # one computation per frame
    with pytest.raises(ValueError, match="out must be a uint8 array of shape"):
        colorize(stack, model=natural, device="cpu", out=np.zeros((*stack.shape, 3), np.float32))


def test_colorize_strips_refuses_bad_input_when_called():
    with pytest.raises(TypeError, match="complex"):
        colorize_strips(np.zeros((8, 8), complex), device="cpu")  # not only at the first strip
