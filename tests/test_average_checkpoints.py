"""models/average_checkpoints.py: the mean of a run's late checkpoints, as shipped."""

from __future__ import annotations

import pytest
import torch
from helpers import models_script, random_checkpoint

from napari_colorize.model import load_checkpoint


@pytest.fixture(scope="module")
def script():
    return models_script("average_checkpoints")


def saved(path, seed, architecture="colornet-v2"):
    return random_checkpoint(path, seed, architecture=architecture, metadata={"training": {"steps": 100 * seed}})


def test_the_output_holds_the_mean_of_the_weights_and_names_its_sources(script, tmp_path):
    paths = [saved(tmp_path / f"step{seed}.safetensors", seed) for seed in (1, 2, 3)]
    out = tmp_path / "mean.safetensors"
    assert script.main([str(out), *map(str, paths)]) == 0
    states = [load_checkpoint(path).network.state_dict() for path in paths]
    averaged = load_checkpoint(out)
    for name, value in averaged.network.state_dict().items():
        if value.is_floating_point():
            expected = sum(state[name] for state in states) / 3
            # stored in float16, as every shipped checkpoint
            torch.testing.assert_close(value, expected.half().float(), rtol=2e-3, atol=2e-3)
    sources = averaged.metadata["averaged_from"]
    assert [source["file"] for source in sources] == [path.name for path in paths]
    assert [source["steps"] for source in sources] == [100, 200, 300]
    assert all(len(source["sha256"]) == 64 for source in sources)


def test_it_refuses_to_overwrite_an_input_or_to_mix_networks(script, tmp_path):
    first = saved(tmp_path / "a.safetensors", 1)
    before = first.read_bytes()
    with pytest.raises(SystemExit):
        script.main([str(first), str(first), str(saved(tmp_path / "b.safetensors", 2))])
    assert first.read_bytes() == before
    with pytest.raises(SystemExit):
        script.main([str(tmp_path / "c.safetensors"), str(first), str(saved(tmp_path / "v1.safetensors", 3, "colornet-v1"))])
    assert not (tmp_path / "c.safetensors").exists()
