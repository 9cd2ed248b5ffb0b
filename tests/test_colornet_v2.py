"""colornet-v2: the second generation takes colour hints and a context of the
whole frame (or stack). These tests pin the mechanism on small networks;
what the trained weights achieve is measured by benchmarks/bench_consistency.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import smooth_frame

from napari_colorize import colorize
from napari_colorize.color import rgb_to_lab
from napari_colorize.model import copy_matching_weights, create_colorizer, load_checkpoint, save_checkpoint


def randomise(colorizer, seed=0):
    """Non-zero weights everywhere, the zero-initialised branches included,
    rounded to half precision as checkpoints store them."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in colorizer.network.state_dict().items():
            if tensor.is_floating_point():
                noise = torch.rand(tensor.shape, generator=generator)
                tensor.copy_(0.5 + noise if name.endswith("running_var") else tensor + 0.2 * (noise - 0.5))
                tensor.copy_(tensor.half().float())  # what a checkpoint stores
    colorizer.network.eval()
    return colorizer


@pytest.fixture(scope="module")
def v2():
    torch.manual_seed(7)
    model = randomise(create_colorizer(architecture="colornet-v2", width=8), seed=3)
    with torch.no_grad():  # hints and context strong enough to see
        for branch, gain in ((model.network.hint_path[-1], 512.0), (model.network.context_path[-1], 64.0)):
            branch.weight.mul_(gain)
            branch.weight.copy_(branch.weight.half().float())
    return model


def chroma(rgb):
    return rgb_to_lab(rgb)[..., 1:]


def test_warm_started_from_v1_it_colours_exactly_as_v1(natural_v1):
    """Its new branches start at zero, so training starts from v1's colours."""
    model = create_colorizer(architecture="colornet-v2", width=32, bins=natural_v1.bins)
    assert sorted({k.split(".")[0] for k in copy_matching_weights(model, natural_v1)}) == ["context_path", "hint_gain", "hint_path"]
    model.network.eval()
    frame = smooth_frame((240, 260), seed=4)
    np.testing.assert_array_equal(colorize(frame, model=model, device="cpu"), colorize(frame, model=natural_v1, device="cpu"))


def test_with_replicated_edges_a_tile_cannot_tell_where_its_window_ends():
    """Zero padding lets a network paint by position in the window (tile-period
    bands); edge-replicating padding does not: a uniform tile stays uniform."""
    uniform = torch.full((1, 1, 224, 224), 40.0)
    spread = {}
    for architecture in ("colornet-v2", "colornet-v2-replicate"):
        model = randomise(create_colorizer(architecture=architecture, width=8), seed=3)
        with torch.no_grad():
            context = model.network.encode_context(torch.full((1, 1, 128, 128), 40.0))
            logits = model.network(uniform, hints=torch.zeros(1, 9, 224, 224), context=context)
        spread[architecture] = float((logits - logits[..., 28:29, 28:29]).abs().max())
    assert spread["colornet-v2-replicate"] < 1e-4 < spread["colornet-v2"]


def test_antialiased_strides_do_not_alias_the_finest_pattern():
    """A stride-2 layer samples every other pixel: a pattern at the pixel pitch
    reaches it as a coarse false pattern that flips when the input moves by
    one pixel (the grid's phase recolours a structure). Low-passed first, the
    pattern does not reach it, wherever the grid falls."""
    columns = torch.tensor([1.0, -1.0]).repeat(16)
    stripes = 50.0 + 20.0 * columns.expand(1, 1, 32, 32)
    moved = stripes.roll(1, dims=-1)
    change = {}
    for architecture in ("colornet-v2-replicate", "colornet-v2-antialiased"):
        model = randomise(create_colorizer(architecture=architecture, width=8), seed=3)
        with torch.no_grad():
            stem = model.network.stem
            interior = (..., slice(2, -2), slice(2, -2))
            change[architecture] = float((stem(moved / 50.0 - 1.0) - stem(stripes / 50.0 - 1.0))[interior].abs().max())
    assert change["colornet-v2-antialiased"] < 1e-5 < change["colornet-v2-replicate"]


def test_antialiased_warm_starts_from_replicate_with_every_weight():
    """The low-pass has no weights: the network takes colornet-v2-replicate's, all of them, under the same names."""
    replicate = randomise(create_colorizer(architecture="colornet-v2-replicate", width=8), seed=5)
    antialiased = create_colorizer(architecture="colornet-v2-antialiased", width=8)
    assert copy_matching_weights(antialiased, replicate) == []
    assert antialiased.network.state_dict().keys() == replicate.network.state_dict().keys()


def test_it_declares_its_inputs_and_loads_back(v2, tmp_path):
    assert v2.input_names == ("hints", "context") and v2.frame_inputs == ("context",)
    assert v2.metadata["inputs"] == ["lightness", "hints", "context"] and v2.metadata["context_view"] == 128
    path = tmp_path / "v2.safetensors"
    save_checkpoint(v2, path)
    loaded = load_checkpoint(path)
    frame = smooth_frame((100, 120), seed=1)
    np.testing.assert_array_equal(colorize(frame, model=loaded, device="cpu"), colorize(frame, model=v2, device="cpu"))


def test_one_context_per_frame_not_per_tile(v2, monkeypatch):
    calls = []
    real = type(v2).encode_context

    def spy(self, view):
        calls.append(tuple(view.shape))
        return real(self, view)

    monkeypatch.setattr(type(v2), "encode_context", spy)
    stack = np.stack([smooth_frame((300, 500), seed=s) for s in range(3)])  # 2 x 3 tiles a frame
    colorize(stack, model=v2, device="cpu", context="frame")
    assert calls == [(1, 1, 128, 128)] * 3
    calls.clear()
    colorize(stack, model=v2, device="cpu", context="stack")
    assert calls == [(1, 1, 128, 128)] * 3  # the stack's frames, pooled once before any tile
    assert len(calls) == 3


def test_the_context_comes_from_the_whole_frame(v2):
    """A region is coloured from the whole frame's context: the same 224 tile
    inside two different frames gets different colours, and a stack context
    gives identical frames identical colours whatever their neighbours
    (the model's own tiles, window 224, so that only the context links them)."""
    frame = smooth_frame((224, 448), seed=2)
    other = frame.copy()
    other[:, 224:] = frame.max() - frame[:, 224:]  # the right half differs
    tiles = {"overlap": 0, "window": 224, "normalize": (float(frame.min()), float(frame.max()))}
    both = colorize(np.stack([frame, other]), model=v2, device="cpu", **tiles)
    assert np.abs(chroma(both[0][:, :200]) - chroma(both[1][:, :200])).mean() > 0.05
    twins = np.stack([frame, other, frame])
    shared = colorize(twins, model=v2, device="cpu", context="stack", **tiles)
    np.testing.assert_array_equal(shared[0], shared[2])
    assert np.abs(chroma(shared[0][:, :200]) - chroma(shared[1][:, :200])).mean() < 1e-3  # one palette


def test_an_empty_hint_set_is_the_automatic_result(v2):
    frame = smooth_frame((150, 170), seed=5)
    automatic = colorize(frame, model=v2, device="cpu")
    np.testing.assert_array_equal(colorize(frame, model=v2, device="cpu", hints=[]), automatic)
    np.testing.assert_array_equal(colorize(frame, model=v2, device="cpu", hints=np.zeros((0, 6))), automatic)


def test_hints_change_the_colour_near_them_and_not_far_away(v2):
    frame = smooth_frame((224, 1400), seed=6)  # tiles far beyond the hint's reach
    automatic = colorize(frame, model=v2, device="cpu", overlap=0, context="frame")
    hinted = colorize(frame, model=v2, device="cpu", overlap=0, context="frame", hints=[(100, 60, 250, 20, 20)])
    change = np.abs(chroma(hinted) - chroma(automatic)).sum(axis=-1)
    assert change[60:140, 20:100].mean() > 0.2 and change[90:110, 50:70].mean() > 1.0
    np.testing.assert_array_equal(change[:, 1100:], 0)  # tiles beyond the far spread (4 x 128 px)


def test_hints_go_to_their_own_frame(v2):
    stack = np.stack([smooth_frame((120, 140), seed=s) for s in (1, 1)])
    out = colorize(stack, model=v2, device="cpu", hints=[(1, 60, 70, 0, 200, 0)])
    assert np.abs(chroma(out[0]) - chroma(out[1])).max() > 0.5
    np.testing.assert_array_equal(out[0], colorize(stack[0], model=v2, device="cpu", normalize="frame"))


@pytest.mark.parametrize(
    ("hints", "message"),
    [
        ([(0, 10, 10, 255)], r"rows of \(frame, y, x, r, g, b\)"),
        ([(10, 10, 255, 0, 0)], "has 2 frames: give each hint row as"),
        ([(2, 10, 10, 255, 0, 0)], "hint row 0: frame 2 is not a frame index in 0..1"),
        ([(0, 10, 10, 255, 0, 0), (1, 500, 10, 255, 0, 0)], r"hint row 1: \(y, x\) = \(500, 10\) is outside the 60 x 70 frame"),
        ([(0, 10, 10, 300, 0, 0)], r"hint row 0: colour \(300, 0, 0\) is not r, g, b in 0..255"),
        ([(0, np.nan, 10, 3, 0, 0)], "hint row 0: a value is not a finite number"),
    ],
)
def test_bad_hint_rows_are_named(v2, hints, message):
    with pytest.raises(ValueError, match=message):
        colorize(np.zeros((2, 60, 70)), model=v2, device="cpu", hints=hints)


def test_models_without_hint_inputs_refuse_hints_but_take_an_empty_set(natural_v1):
    frame = smooth_frame((60, 70))
    with pytest.raises(ValueError, match="takes only the lightness; it cannot use hints"):
        colorize(frame, model=natural_v1, device="cpu", hints=[(10, 10, 255, 0, 0)])
    np.testing.assert_array_equal(colorize(frame, model=natural_v1, device="cpu", hints=[]), colorize(frame, model=natural_v1, device="cpu"))
    # and v1 models ignore the context option
    np.testing.assert_array_equal(colorize(frame, model=natural_v1, device="cpu", context="stack"), colorize(frame, model=natural_v1, device="cpu"))


def test_hint_colours_are_spread_over_the_frame_near_and_far():
    """Each tile learns of the hints in other tiles: the network's hint input
    holds the hint colours spread at each distance, with their confidence."""
    from napari_colorize.colornet import AB_SCALE, HINT_CHANNELS, HINT_SPREAD_SIGMAS
    from napari_colorize.hints import hint_map

    rows = np.array([[0, 100, 100, 255, 0, 0], [0, 100, 500, 0, 0, 255]], dtype=float)  # red, blue
    maps = hint_map(rows, (200, 1400), (200, 1400))
    assert maps.shape == (HINT_CHANNELS, 200, 1400) and maps.dtype == np.float32
    red, blue = rgb_to_lab(np.array([[[255, 0, 0], [0, 0, 255]]], dtype=np.uint8))[0, :, 1:] / AB_SCALE
    np.testing.assert_allclose(maps[:2, 100, 100], red, atol=1e-6)  # the sparse map
    assert maps[2].sum() == 18 and maps[2, 100, 100] == 1  # two 3 x 3 patches
    for index, sigma in enumerate(HINT_SPREAD_SIGMAS):
        a, b, confidence = maps[3 + 3 * index : 6 + 3 * index]
        near_red = 100 + int(sigma)
        assert confidence[100, near_red] > 0.99
        np.testing.assert_allclose([a[100, near_red], b[100, near_red]], red, atol=0.05 if sigma < 100 else 0.35)
        assert confidence[100, 1399] == 0 and a[100, 1399] == 0  # out of reach
    far_a, far_b, far_confidence = maps[6:9]  # the far spread mixes both, the near one keeps them apart
    assert 0.2 < far_confidence[100, 300] and abs(far_a[100, 300] - (red[0] + blue[0]) / 2) < 0.05
    assert maps[5, 100, 300] < 0.5 * maps[5, 100, 100]
