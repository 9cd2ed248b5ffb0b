"""Small shared fixtures for the core tests (no napari, no display, no network).

Images are made in the tests; models are either the shipped checkpoints or a
tiny untrained network (fast on CPU).
"""

from __future__ import annotations

import pytest

from helpers import make_color_folder


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Run torch on one intra-op thread: the small test networks gain nothing
    from more, and on a busy machine OpenMP threads waiting for each other made
    the training tests ~20x slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_model():
    """An untrained, narrow classification colorizer in eval mode (deterministic init)."""
    import torch

    from napari_colorize.model import create_colorizer

    torch.manual_seed(1234)
    colorizer = create_colorizer(width=8)
    colorizer.network.eval()
    return colorizer


@pytest.fixture(scope="session")
def natural():
    """The shipped default model."""
    from napari_colorize.model import load_checkpoint

    return load_checkpoint("natural", device="cpu")


@pytest.fixture
def colour_folder(tmp_path):
    """A folder of 3 small colour images."""
    return make_color_folder(tmp_path / "colour", count=3, size=64)
