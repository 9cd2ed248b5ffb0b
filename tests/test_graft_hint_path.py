"""models/graft_hint_path.py: another model's hint response, the model's own automatic result."""

from __future__ import annotations

import pytest
import torch
from helpers import models_script, random_checkpoint

from napari_colorize.colornet import HINT_CHANNELS
from napari_colorize.model import load_checkpoint


@pytest.fixture(scope="module")
def script():
    return models_script("graft_hint_path")


def saved(path, seed, architecture="colornet-v2-replicate"):
    return random_checkpoint(path, seed, architecture=architecture, std=0.3)


def outputs(path, hints):
    colorizer = load_checkpoint(path)
    network = colorizer.network.eval()
    torch.manual_seed(0)
    lightness = torch.rand(1, 1, 64, 64) * 100
    with torch.no_grad():
        context = network.encode_context(lightness)
        return network(lightness, hints=hints, context=context)


@pytest.mark.parametrize("architecture", ["colornet-v2-replicate", "colornet-v2-antialiased"])
def test_no_hints_give_the_models_result_and_hints_the_donors_response(script, tmp_path, architecture):
    model, donor = saved(tmp_path / "model.safetensors", 1, architecture), saved(tmp_path / "donor.safetensors", 2)
    out = tmp_path / "out.safetensors"
    assert script.main([str(model), str(donor), str(out)]) == 0
    none = torch.zeros(1, HINT_CHANNELS, 64, 64)
    own = outputs(model, none)
    # to float16 storage and float rounding, in a random network whose outputs reach hundreds
    torch.testing.assert_close(outputs(out, none), own, rtol=2e-3, atol=1e-3 * float(own.abs().max()))
    hints = none.clone()
    hints[:, :, 20:24, 30:34] = 0.5
    change = (outputs(out, hints) - outputs(model, hints)).abs().max() / own.abs().max()
    assert change > 0.05
    record = load_checkpoint(out).metadata["hint_path_grafted_from"]
    assert record["file"] == "donor.safetensors" and len(record["sha256"]) == 64


def test_it_refuses_zero_padded_networks_and_overwriting_an_input(script, tmp_path):
    model, donor = saved(tmp_path / "model.safetensors", 1), saved(tmp_path / "donor.safetensors", 2)
    before = model.read_bytes()
    with pytest.raises(SystemExit):
        script.main([str(model), str(donor), str(model)])
    assert model.read_bytes() == before
    zero_padded = saved(tmp_path / "v2.safetensors", 3, "colornet-v2")
    with pytest.raises(SystemExit):
        script.main([str(zero_padded), str(donor), str(tmp_path / "out.safetensors")])
    assert not (tmp_path / "out.safetensors").exists()
