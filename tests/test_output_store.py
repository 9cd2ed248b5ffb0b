"""Where the widget keeps results: memory, or a memory-mapped file when large."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

from napari_colorize import output_store


def test_small_results_stay_in_memory(tmp_path):
    out = output_store.allocate((2, 10, 12, 3), label="small", limit=10_000, folder=tmp_path)
    assert type(out) is np.ndarray and out.dtype == np.uint8 and not out.any()
    assert output_store.file_of(out) is None and list(tmp_path.iterdir()) == []


def test_large_results_go_to_a_memory_mapped_file_that_reopens(tmp_path):
    out = output_store.allocate((2, 10, 12, 3), label="big stack / frames", limit=100, folder=tmp_path)
    assert isinstance(out, np.memmap)
    out[1, 2, 3] = (1, 2, 3)
    out.flush()
    path = output_store.file_of(out)
    assert path.parent == tmp_path and path.name.startswith("big_stack_frames-") and path.suffix == ".npy"
    np.testing.assert_array_equal(np.load(path), out)
    output_store.discard(out)
    assert not path.exists()


def test_too_little_disk_space_is_refused_before_writing(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(output_store.shutil, "disk_usage", lambda _: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(OSError, match="GiB free"):
        output_store.allocate((100, 100, 3), label="x", limit=0, folder=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_in_memory_limit_is_bounded():
    assert output_store.MIN_IN_MEMORY_BYTES <= output_store.in_memory_limit() <= output_store.MAX_IN_MEMORY_BYTES


@pytest.mark.parametrize("shapes", [[(2, 64, 48), (2, 32, 24), (2, 16, 12)], [(1, 101, 77), (1, 51, 39), (1, 26, 20)]])
def test_nearest_levels_sample_like_napari(shapes):
    full = np.random.default_rng(0).integers(0, 255, (*shapes[0], 3), dtype=np.uint8)
    levels = output_store.nearest_levels(full, shapes, label="pyramid", rows=7)
    assert levels[0] is full and [level.shape for level in levels] == [(*s, 3) for s in shapes]
    for level, shape in zip(levels[1:], shapes[1:]):
        # napari places pixel i of a level d times smaller at full pixel i * d
        rows = np.minimum(np.round(np.arange(shape[1]) * shapes[0][1] / shape[1]).astype(int), shapes[0][1] - 1)
        cols = np.minimum(np.round(np.arange(shape[2]) * shapes[0][2] / shape[2]).astype(int), shapes[0][2] - 1)
        np.testing.assert_array_equal(level, full[:, rows][:, :, cols])
    if shapes[0][1] == 2 * shapes[1][1]:  # a power-of-two pyramid is plain striding
        np.testing.assert_array_equal(levels[1], full[:, ::2, ::2])
