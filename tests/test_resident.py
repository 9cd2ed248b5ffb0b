"""Frames held on the compute device (napari_colorize.resident): the same
lightness, tiles and colours as the host path, checked here on the CPU (the
engine holds frames on CUDA devices; test_engine checks those)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import smooth_frame

import napari_colorize.engine as engine
from napari_colorize import colorize
from napari_colorize.normalization import lightness_and_extremes
from napari_colorize.resident import holds_frames_on, resident_frame
from napari_colorize.tiling import TileGrid

CPU = torch.device("cpu")


def frame_of(dtype, shape=(150, 130), seed=0) -> np.ndarray:
    values = np.random.default_rng(seed).uniform(0, 1000, shape)
    frame = values.astype(dtype)
    if np.dtype(dtype).kind == "f":
        frame[0, :3] = (np.nan, np.inf, -np.inf)
    return frame


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.uint32, np.float32, np.float64, np.int64, np.uint64])
def test_a_frame_held_on_the_device_has_the_hosts_lightness_and_extremes(dtype):
    frame = frame_of(dtype)
    held = resident_frame(frame, 5.0, 700.0, frame.shape, CPU)
    lightness, extreme = lightness_and_extremes(frame, 5.0, 700.0)
    assert held.working is held.lightness
    np.testing.assert_array_equal(held.extreme.numpy(), extreme)
    if np.dtype(dtype) in (np.uint8, np.uint16):  # looked up in the host's own tables (a frame this size has them)
        np.testing.assert_array_equal(held.lightness.numpy(), lightness)
    else:
        np.testing.assert_allclose(held.lightness.numpy(), lightness, rtol=0, atol=1e-4)


@pytest.mark.parametrize("working", [(45, 61), (180, 300)])
def test_its_working_lightness_is_the_hosts_resampled_frame(working):
    from napari_colorize.color import gray_to_lightness

    frame = frame_of(np.uint16)
    held = resident_frame(frame, 5.0, 700.0, working, CPU)
    expected = gray_to_lightness(engine.resample_frame(frame, 5.0, 700.0, working))
    assert tuple(held.working.shape) == working
    np.testing.assert_allclose(held.working.numpy(), expected, rtol=0, atol=1e-3)


@pytest.mark.parametrize("shape", [(1, 50), (5, 3), (37, 224), (224, 224), (300, 500)])
@pytest.mark.parametrize("tile", [224, (224, 448)])
def test_tiles_gathered_on_the_device_are_the_hosts_mirrored_tiles(shape, tile):
    frame = np.random.default_rng(1).random(shape).astype(np.float32)
    grid = TileGrid.for_shape(shape, tile=tile, overlap=32, align=4)
    gathered = grid.gathered_tiles(torch.from_numpy(frame), grid.origins)
    np.testing.assert_array_equal(gathered.numpy(), grid.tiles(frame, grid.origins))


def test_only_cuda_devices_hold_frames():
    assert holds_frames_on(torch.device("cuda")) and not holds_frames_on(CPU)


@pytest.mark.parametrize(
    "options",
    [{}, {"scale": 0.6}, {"chroma_upsampling": "guided"}, {"stack_consensus": 1}, {"context": "stack"}],
    ids=["plain", "scale", "guided", "consensus", "stack-context"],
)
def test_colours_with_frames_held_on_the_device_are_the_host_paths(natural, monkeypatch, options):
    stack = np.stack([smooth_frame((150, 170), seed=s) for s in (1, 2)]).astype(np.uint16)
    run = {"model": natural, "device": "cpu", "precision": "fp32", **options}
    on_host = colorize(stack, **run)
    monkeypatch.setattr(engine, "holds_frames_on", lambda device: True)
    held = colorize(stack, **run)
    difference = np.abs(held.astype(np.int16) - on_host.astype(np.int16))
    assert difference.max() <= 1 and difference.mean() < 0.01


def test_uncertainty_and_hints_with_frames_held_on_the_device(natural, monkeypatch):
    frame = smooth_frame((160, 200), seed=3)
    run = {"model": natural, "device": "cpu", "precision": "fp32", "uncertainty": True, "hints": [[0, 80, 100, 200, 40, 40]]}
    rgb, spread = colorize(frame, **run)
    monkeypatch.setattr(engine, "holds_frames_on", lambda device: True)
    held_rgb, held_spread = colorize(frame, **run)
    assert np.abs(held_rgb.astype(np.int16) - rgb.astype(np.int16)).max() <= 1
    np.testing.assert_allclose(held_spread, spread, rtol=0, atol=1e-3)
