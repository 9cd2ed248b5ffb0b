"""How far colour hints act: near each hint (the default), or over the whole
frame, with the shipped natural model."""

from __future__ import annotations

import numpy as np
import pytest

from napari_colorize import colorize
from napari_colorize.color import rgb_to_lab
from napari_colorize.hints import local_reach, spread_hints

HINT = (120, 60, 40, 200, 40)  # y, x and a green
FAR_X = 60 + 80  # columns beyond the near spread's reach (about 62 px)


def scene(shape=(240, 420)):
    """A smooth scene with structure, so the network has something to colour."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (0.5 + 0.25 * np.sin(yy / 17.0) * np.cos(xx / 23.0) + 0.15 * np.sin(xx / 7.0 + yy / 11.0)).astype(np.float32)


@pytest.fixture(scope="module")
def results(natural):
    frame = scene()
    kwargs = {"model": natural, "device": "cpu", "normalize": (0.0, 1.0)}
    return {
        "automatic": colorize(frame, **kwargs),
        "local": colorize(frame, hints=[HINT], **kwargs),
        "frame": colorize(frame, hints=[HINT], hint_reach="frame", **kwargs),
    }


def ab(rgb):
    return rgb_to_lab(rgb)[..., 1:]


def test_a_local_hint_leaves_the_far_side_of_the_frame_exactly_as_without_it(results):
    np.testing.assert_array_equal(results["local"][:, FAR_X:], results["automatic"][:, FAR_X:])
    # as the network learned them, hints reach the whole frame
    assert np.linalg.norm(ab(results["frame"][:, FAR_X:]) - ab(results["automatic"][:, FAR_X:]), axis=-1).mean() > 1.0


def test_near_a_hint_its_colour_is_taken_whole(results):
    near = (slice(105, 136), slice(45, 76))
    np.testing.assert_allclose(results["local"][near].astype(int), results["frame"][near].astype(int), atol=1)
    green = ab(np.array([[HINT[2:]]], dtype=np.uint8))[0, 0]
    before = np.linalg.norm(ab(results["automatic"][near]) - green, axis=-1).mean()
    after = np.linalg.norm(ab(results["local"][near]) - green, axis=-1).mean()
    assert after < before - 10


def test_the_reach_fades_and_ends():
    sparse = np.zeros((3, 224, 224), dtype=np.float32)
    sparse[:, 111:114, 111:114] = [[[0.2]], [[-0.3]], [[1.0]]]
    import torch

    reach = local_reach(torch.from_numpy(spread_hints(sparse))[None], 4)[0, 0].numpy()
    centre = reach[28]
    assert centre[28] == 1.0 and centre[28 + 6] == 1.0  # 24 px away: whole
    assert 0 < centre[28 + 10] < 1  # 40 px: fading
    assert centre[28 + 17] == 0.0  # 68 px: nothing


def test_an_unknown_reach_is_refused(natural):
    with pytest.raises(ValueError, match="hint_reach must be one of local, frame"):
        colorize(np.zeros((32, 32)), model=natural, hints=[(5, 5, 1, 2, 3)], hint_reach="everywhere")
