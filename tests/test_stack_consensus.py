"""Colours shared along a stack where its frames agree (the stack_consensus option)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_colorize import colorize
from napari_colorize.color import rgb_to_lab
from napari_colorize.stack_consensus import CONSENSUS_LIGHTNESS, FrameChroma, agreed_chroma, cell_lightness, shared_along_stack


def frame_chroma(group, value, lightness, payload):
    return FrameChroma(group=group, chroma=torch.full((2, 3, 4), float(value)), lightness=torch.full((3, 4), float(lightness)), payload=payload)


def test_a_neighbour_counts_where_its_lightness_agrees_and_not_where_it_differs():
    own = frame_chroma((), 10.0, 50.0, None)
    same = frame_chroma((), 20.0, 50.0, None)
    far = frame_chroma((), -40.0, 50.0 + 10 * CONSENSUS_LIGHTNESS, None)
    assert torch.allclose(agreed_chroma(own, [same]), torch.full((2, 3, 4), 15.0))
    assert torch.allclose(agreed_chroma(own, [far]), own.chroma, atol=1e-9)
    # per cell: half the frame agrees, half does not
    mixed = frame_chroma((), 20.0, 50.0, None)
    mixed.lightness[:, 2:] = 90.0
    shared = agreed_chroma(own, [mixed])
    assert torch.allclose(shared[:, :, :2], torch.tensor(15.0)) and torch.allclose(shared[:, :, 2:], torch.tensor(10.0))


def two_groups():
    """Frames of two groups (the stack's other axes), five and three, whose lightness agrees everywhere."""
    frames = [frame_chroma((0,), value, 50.0, ("a", value)) for value in range(5)]
    return frames + [frame_chroma((1,), 100 + value, 50.0, ("b", value)) for value in range(3)]


def test_frames_come_out_in_order_once_each_shared_within_their_group_only():
    for radius in (0, 1, 2, 7):
        out = list(shared_along_stack(two_groups(), radius))
        assert [payload for payload, _ in out] == [frame.payload for frame in two_groups()]
        for (group, value), chroma in out:
            members, offset = (range(5), 0) if group == "a" else (range(3), 100)
            window = [v for v in members if abs(v - value) <= radius]
            assert torch.allclose(chroma, torch.tensor(float(offset + np.mean(window)))), (radius, group, value)


def test_frames_are_read_at_most_radius_ahead():
    read = []

    def frames():
        for value in range(6):
            read.append(value)
            yield frame_chroma((), value, 50.0, value)

    for payload, _ in shared_along_stack(frames(), 2):
        assert max(read) <= payload + 2


def test_cell_lightness_is_the_mean_of_each_cell_padded_by_the_edge():
    source = np.arange(10 * 9, dtype=np.float32).reshape(10, 9)
    cells = cell_lightness(source, lambda values: values, (4, 4), 4, "cpu").numpy()
    assert cells.shape == (4, 4)
    assert cells[0, 0] == pytest.approx(source[:4, :4].mean())
    assert cells[1, 1] == pytest.approx(source[4:8, 4:8].mean())
    assert np.array_equal(cells[3], cells[2]) and np.array_equal(cells[:, 3], cells[:, 2])  # beyond the frame: the edge


def noisy_copies(rng, count, level=0.03):
    """``count`` copies of one textured frame with independent noise (``level`` of its spread)."""
    yy, xx = np.mgrid[:96, :128]
    frame = (2000 + 800 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + 300 * (xx > 64)).astype(np.float32)
    return np.stack([frame + rng.normal(0.0, level * frame.std(), frame.shape) for _ in range(count)]).astype(np.float32)


def ab_spread(rgb):
    """Mean over frame pairs of the mean |Δab| of 8-bit results."""
    ab = rgb_to_lab(rgb.astype(np.float32) / 255.0)[..., 1:]
    return np.mean([np.abs(ab[i] - ab[j]).sum(-1).mean() for i in range(len(ab)) for j in range(i)])


def test_noisy_copies_of_one_frame_get_one_colour_and_a_changed_frame_keeps_its_own(natural):
    # (an untrained network barely answers noise: the trained one does)
    copies = noisy_copies(np.random.default_rng(0), 4, level=0.1)
    alone = colorize(copies, model=natural, device="cpu", normalize="stack")
    agreed = colorize(copies, model=natural, device="cpu", normalize="stack", stack_consensus=3)
    assert ab_spread(agreed) < 0.5 * ab_spread(alone)
    assert np.array_equal(agreed[..., 0] > 0, alone[..., 0] > 0) and agreed.shape == alone.shape

    # a frame whose every cell is far brighter than its neighbours' shares nothing with them
    different = copies.copy()
    different[2] = copies[2] * 0.1 + 9000.0
    kept = colorize(different, model=natural, device="cpu", normalize=(0.0, 10000.0), stack_consensus=3)
    own = colorize(different[2], model=natural, device="cpu", normalize=(0.0, 10000.0))
    assert np.abs(kept[2].astype(int) - own.astype(int)).max() <= 1


def test_a_single_frame_and_radius_zero_are_the_plain_result(tiny_model):
    copies = noisy_copies(np.random.default_rng(1), 2)
    assert np.array_equal(colorize(copies[0], model=tiny_model, device="cpu", stack_consensus=4), colorize(copies[0], model=tiny_model, device="cpu"))
    assert np.array_equal(colorize(copies, model=tiny_model, device="cpu", stack_consensus=0), colorize(copies, model=tiny_model, device="cpu"))


def test_the_consensus_is_refused_where_frames_are_colorized_apart(tiny_model):
    da = pytest.importorskip("dask.array")
    copies = da.from_array(noisy_copies(np.random.default_rng(2), 2), chunks=(1, 96, 128))
    with pytest.raises(ValueError, match="stack_consensus"):
        colorize(copies, model=tiny_model, device="cpu", stack_consensus=1)
    with pytest.raises(ValueError, match="stack_consensus"):
        colorize(copies, model=tiny_model, device="cpu", stack_consensus=-1)
    out = np.empty((*copies.shape, 3), dtype=np.uint8)  # into an array: frame by frame, with the consensus
    colorize(copies, model=tiny_model, device="cpu", stack_consensus=1, out=out)
    assert np.array_equal(out, colorize(np.asarray(copies), model=tiny_model, device="cpu", stack_consensus=1))
