"""The architecture registry: a new network family, with an extra input
channel, is one registration, and colorize() runs it through the same
pipeline (tiles of its own size, its own output stride, its extra input)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_colorize import colorize
from napari_colorize.architectures import Architecture, InputSpec, architectures, get_architecture, register_architecture, unregister_architecture
from napari_colorize.color import rgb_to_lab
from napari_colorize.model import CheckpointError, create_colorizer, load_checkpoint, save_checkpoint


def build_toy(*, head, bins, width):
    """A regression net on 64-pixel tiles at stride 2 whose a* is the extra
    'tint' input (pooled) and b* is 0: what goes in must come out."""

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gain = torch.nn.Parameter(torch.ones(1))

        def forward(self, lightness, *, tint):
            a = torch.nn.functional.avg_pool2d(tint, 2) * self.gain
            return torch.cat([a, torch.zeros_like(a)], dim=1)

    return Toy()


@pytest.fixture
def toy():
    architecture = register_architecture(
        Architecture(name="toy-tint", build=build_toy, tile_size=64, output_stride=2, extra_inputs=(InputSpec("tint", 1, "a* to paint"),))
    )
    yield architecture
    unregister_architecture("toy-tint")


def test_a_registered_architecture_with_an_extra_input_runs_through_colorize(toy, tmp_path):
    assert "toy-tint" in architectures() and get_architecture("toy-tint") is toy
    model = create_colorizer(architecture="toy-tint", head="regression", width=1)
    assert (model.tile_size, model.output_stride, model.input_names) == (64, 2, ("tint",))
    assert model.metadata["inputs"] == ["lightness", "tint"]
    # the checkpoint declares it, and loads back as the same family
    path = tmp_path / "toy.safetensors"
    save_checkpoint(model, path)
    loaded = load_checkpoint(path)
    assert (loaded.architecture, loaded.tile_size, loaded.output_stride, loaded.input_names) == ("toy-tint", 64, 2, ("tint",))

    frames = np.full((2, 150, 170), 0.5, dtype=np.float32)
    tint = np.zeros((2, 1, 150, 170), dtype=np.float32)
    tint[0, 0, :, :85] = 30.0  # frame 0: left half red-ish
    tint[1, 0, 75:] = -30.0  # frame 1: bottom half green-ish
    rgb = colorize(frames, model=loaded, device="cpu", normalize=(0, 1), overlap=8, extra_inputs={"tint": tint})
    a = rgb_to_lab(rgb)[..., 1]
    assert a[0, :, :75].mean() > 20 and abs(a[0, :, 95:]).max() < 2
    assert a[1, 85:].mean() < -20 and abs(a[1, :65]).max() < 2
    # without the input the network sees zeros: gray
    plain = colorize(frames, model=loaded, device="cpu", normalize=(0, 1), overlap=8)
    assert np.abs(rgb_to_lab(plain)[..., 1:]).max() < 1


def test_inputs_a_model_does_not_take_are_refused_with_what_it_takes(natural_v1, toy):
    with pytest.raises(ValueError, match="takes only the lightness; it cannot use hints"):
        colorize(np.zeros((40, 40)), model=natural_v1, device="cpu", extra_inputs={"hints": np.zeros((3, 40, 40))})
    model = create_colorizer(architecture="toy-tint", head="regression", width=1)
    with pytest.raises(ValueError, match=r"must have shape \(1, 40, 40\)"):
        colorize(np.zeros((40, 40)), model=model, device="cpu", extra_inputs={"tint": np.zeros((40, 40))})
    with pytest.raises(ValueError, match="takes tint; it cannot use context"):
        model.predict_ab(torch.zeros(1, 1, 64, 64), temperature=0.38, context=torch.zeros(1, 4))


def test_overlap_is_checked_against_the_models_own_tile(toy):
    model = create_colorizer(architecture="toy-tint", head="regression", width=1)
    with pytest.raises(ValueError, match=r"overlap must be in \[0, 64\)"):
        colorize(np.zeros((100, 100)), model=model, device="cpu", overlap=64)


def test_unknown_and_clashing_architectures(toy, tmp_path):
    with pytest.raises(KeyError, match="unknown architecture 'nope'; known: colornet-v1"):
        create_colorizer(architecture="nope")
    with pytest.raises(ValueError, match="already registered"):
        register_architecture(Architecture(name="toy-tint", build=build_toy))
    with pytest.raises(ValueError, match="not a multiple of the output stride"):
        register_architecture(Architecture(name="odd", build=build_toy, tile_size=65, output_stride=2))
    model = create_colorizer(architecture="toy-tint", head="regression", width=1)
    path = tmp_path / "toy.safetensors"
    save_checkpoint(model, path)
    unregister_architecture("toy-tint")
    with pytest.raises(CheckpointError, match="unsupported architecture 'toy-tint'"):
        load_checkpoint(path)


def test_only_edge_replicating_networks_run_in_windows():
    """A network that pads with zeros knows where its tile ends (the first
    generation was trained and is kept so); one that repeats the edge does
    not, and may colour larger windows in one pass."""
    windowed = {name: get_architecture(name).windowed for name in architectures()}
    assert windowed["colornet-v1"] is False and windowed["colornet-v2"] is False
    for name in ("colornet-v2-replicate", "colornet-v2-antialiased", "colornet-v2-replicate-palette", "colornet-v2-antialiased-palette"):
        assert windowed[name] is True, name
