"""models/distill_context.py: a frame's cut-outs answer as the frame does; photographs keep their answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import make_color_folder, models_script, random_checkpoint, smooth_frame, write_tiff

from napari_colorize.checkpoint_files import checkpoint_metadata, file_sha256
from napari_colorize.model import load_checkpoint


@pytest.fixture(scope="module")
def script():
    return models_script("distill_context")


def test_cut_outs_start_with_the_whole_image_and_stay_inside_it(script):
    regions = script.cut_outs((300, 200), 20, np.random.default_rng(0))
    assert regions[0] == (slice(0, 300), slice(0, 200))
    for rows, cols in regions[1:]:
        assert 0 <= rows.start < rows.stop <= 300 and 0 <= cols.start < cols.stop <= 200
        assert rows.stop - rows.start >= 96 and cols.stop - cols.start >= 96


def test_distill_pulls_cut_outs_to_the_whole_frame_and_keeps_photographs(script, tmp_path):
    network = load_checkpoint(random_checkpoint(tmp_path / "m.safetensors", 0, std=0.3)).network
    teacher = {k: v.clone() for k, v in network.context_path.state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    # A frame's cut-outs: its whole view's descriptor moved along a few directions only.
    directions = torch.randn(3, 64, generator=generator)
    frames = []
    for _ in range(300):
        whole = torch.randn(1, 64, generator=generator)
        frames.append(torch.cat([whole, whole + torch.randn(6, 3, generator=generator) @ directions]))
    photos = [torch.randn(4, 64, generator=generator) for _ in range(300)]
    figures = script.distill(network, frames, photos, photo_weight=3.0, steps=300, seed=0)
    assert figures["frames held out"] > 0 and figures["photos held out"] > 0
    assert figures["frame disagreement after"] < 0.5 * figures["frame disagreement before"]
    assert figures["photo answers moved"] < 0.2
    # Only the context path was trained.
    assert any(not torch.equal(teacher[k], v) for k, v in network.context_path.state_dict().items())


def test_the_script_writes_a_model_that_differs_only_in_its_context_path(script, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for seed in range(10):
        write_tiff(frames / f"f{seed}.tif", smooth_frame((160, 176), seed=seed).astype(np.uint16))
    photos = make_color_folder(tmp_path / "photos", count=10, size=128)
    model, out = random_checkpoint(tmp_path / "m.safetensors", 1, std=0.3), tmp_path / "out.safetensors"
    before = {k: v.clone() for k, v in load_checkpoint(model).network.state_dict().items()}
    args = [str(model), str(out), "--frames", str(frames), "--photos", str(photos), "--steps", "20"]
    assert script.main(args) == 0
    after = load_checkpoint(out).network.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("context_path.") for k in changed)
    record = checkpoint_metadata(out)["context_distillation"]
    assert record["images"] == {"frames": 10, "photos": 10} and record["steps"] == 20
    assert record["from"]["sha256"] == file_sha256(model) and "earlier_sha256" not in checkpoint_metadata(out)


def test_refuses_a_model_without_frame_context_and_overwriting_its_input(script, tmp_path, capsys):
    v1 = random_checkpoint(tmp_path / "v1.safetensors", 0, architecture="colornet-v1")
    folder = str(tmp_path)
    with pytest.raises(SystemExit):
        script.main([str(v1), str(tmp_path / "o.safetensors"), "--frames", folder, "--photos", folder])
    assert "takes no frame context" in capsys.readouterr().err
    v2 = random_checkpoint(tmp_path / "v2.safetensors", 0)
    with pytest.raises(SystemExit):
        script.main([str(v2), str(v2), "--frames", folder, "--photos", folder])
    assert "must not be the input" in capsys.readouterr().err
