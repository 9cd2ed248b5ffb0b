"""Lazy (dask) and distributed runs give exactly the in-memory result."""

from __future__ import annotations

import numpy as np
import pytest

from napari_colorize import colorize

da = pytest.importorskip("dask.array")


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


def test_dask_stack_context_is_the_whole_stack_s(stack, natural):
    unlike = stack * np.array([0.2, 1.0, 3.0], dtype=np.float32)[:, None, None] + np.linspace(0, 3000, stack.shape[-1], dtype=np.float32)
    expected = colorize(unlike, model=natural, device="cpu", context="stack", normalize="stack")
    lazy = colorize(da.from_array(unlike, chunks=(1, 150, 230)), model=natural, device="cpu", context="stack", normalize="stack")
    np.testing.assert_array_equal(lazy.compute(), expected)


def test_dask_restoration_with_a_stack_noise_level_matches(stack, natural):
    from scipy.ndimage import gaussian_filter

    smooth = gaussian_filter(stack.astype(np.float32), (0, 4, 4))
    sigmas = np.array([5.0, 20.0, 40.0], dtype=np.float32)[:, None, None]  # frames unlike: their noise levels differ
    noisy = smooth + np.random.default_rng(0).normal(0, 1, stack.shape).astype(np.float32) * sigmas
    keywords = {"model": natural, "device": "cpu", "restore": "denoise", "noise_sigma": "stack"}
    expected = colorize(noisy, **keywords)
    np.testing.assert_array_equal(colorize(da.from_array(noisy, chunks=(1, 64, 64)), **keywords).compute(), expected)


def test_local_cluster_matches_single_process(stack, reference):
    distributed = pytest.importorskip("distributed")
    # Threads in this process: same torch settings, so bit-identical output.
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            out = colorize(stack, model="natural", device="cpu", scheduler=client)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, reference)


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
