"""Tiles of several frames in one batch (napari_colorize.prediction): each
frame keeps its own context, and its chroma is what it gets alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import smooth_frame

from napari_colorize.context import frame_context, lightness_context
from napari_colorize.engine import frame_grid
from napari_colorize.normalization import normalized_lightness
from napari_colorize.options import ColorizeOptions
from napari_colorize.prediction import FrameTiles, Predictor, predict_chroma

TEMPERATURE = 0.38


def test_frames_sharing_batches_each_get_their_own_chroma(natural):
    frames = [smooth_frame((300, 360), seed=s, low=0.0, high=1.0) for s in (4, 5, 6)]
    lightnesses = [torch.from_numpy(normalized_lightness(f, 0.0, 1.0)) for f in frames]
    grid = frame_grid((300, 360), natural, ColorizeOptions(window=128, overlap=32))
    assert len(grid) % 3  # so that batches of 3 tiles cut across frames
    contexts = lightness_context(natural, *lightnesses)
    predict = Predictor(natural, temperature=TEMPERATURE, batch_size=64, precision="fp32")
    tiles = [FrameTiles(lightness, descriptors={"context": context[None]}) for lightness, context in zip(lightnesses, contexts)]
    together = predict_chroma(tiles, grid, predict, batch_size=3, on_batch=lambda count: None)
    for frame, frame_tiles, chroma in zip(frames, tiles, together):
        alone = predict_chroma([frame_tiles], grid, predict, batch_size=3, on_batch=lambda count: None)[0]
        torch.testing.assert_close(chroma, alone, rtol=0, atol=1e-3)
    # and frames read on the host, each with its own context, give the same
    for frame, chroma in zip(frames, together):
        host = FrameTiles(frame, lambda tiles: normalized_lightness(tiles, 0.0, 1.0), descriptors={"context": frame_context(natural, frame, 0.0, 1.0)})
        torch.testing.assert_close(predict_chroma([host], grid, predict, batch_size=3, on_batch=lambda count: None)[0], chroma, rtol=0, atol=1e-2)
    assert not torch.allclose(together[0], together[1], atol=1.0)  # the frames differ, and so do their colours


def test_a_stack_held_on_the_device_is_coloured_in_shared_batches_as_frame_by_frame(natural, monkeypatch):
    import napari_colorize.engine as engine
    from napari_colorize import colorize

    stack = np.stack([smooth_frame((120, 140), seed=s) for s in range(5)]).astype(np.uint16)
    run = {"model": natural, "device": "cpu", "precision": "fp32"}
    frame_by_frame = np.stack([colorize(frame, **run) for frame in stack])
    calls = []
    monkeypatch.setattr(engine, "holds_frames_on", lambda device: True)
    original = engine.predict_chroma
    monkeypatch.setattr(engine, "predict_chroma", lambda frames, *a, **k: calls.append(len(frames)) or original(frames, *a, **k))
    held = colorize(stack, **run)
    assert calls and max(calls) > 1 and sum(calls) == len(stack)
    assert np.abs(held.astype(np.int16) - frame_by_frame.astype(np.int16)).max() <= 1


@pytest.mark.parametrize("options", [{}, {"uncertainty": True}, {"stack_consensus": 1}], ids=["plain", "uncertainty", "consensus"])
def test_small_held_frames_composed_together_are_composed_as_one_by_one(natural, monkeypatch, options):
    """Held small frames are composed a group at a time, each whole, with one
    copy back: the very bytes of composing each strip by strip."""
    import napari_colorize.engine as engine
    from napari_colorize import colorize

    stack = np.stack([smooth_frame((300, 110), seed=s) for s in range(5)]).astype(np.uint16)  # two strips each
    run = {"model": natural, "device": "cpu", "precision": "fp32", **options}
    monkeypatch.setattr(engine, "holds_frames_on", lambda device: True)
    groups = []
    original = engine.compose_frames
    monkeypatch.setattr(engine, "compose_frames", lambda held, *a, **k: groups.append(len(held)) or original(held, *a, **k))
    together = colorize(stack, **run)
    assert groups and max(groups) > 1 and sum(groups) == len(stack)
    monkeypatch.setattr(engine, "COMPOSE_GROUP_PIXELS", 1)  # one frame at a time, strip by strip
    one_by_one = colorize(stack, **run)
    for a, b in zip(*(result if isinstance(result, tuple) else (result,) for result in (together, one_by_one))):
        np.testing.assert_array_equal(a, b)
