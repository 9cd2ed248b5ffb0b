"""models/distill_lean.py: a lean twin cut from its teacher keeps the channels
that carry, and the distillation gives a loadable lean model that resumes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from helpers import make_color_folder, models_script, random_checkpoint

from napari_colorize.architectures import LEAN_SHARES, get_architecture
from napari_colorize.model import create_colorizer, load_checkpoint


@pytest.fixture(scope="module")
def script():
    return models_script("distill_lean")


def test_a_lean_twin_differs_from_its_full_twin_only_inside_the_cut_layers():
    full = create_colorizer(architecture="colornet-v2-antialiased-palette", width=8).network.state_dict()
    lean = create_colorizer(architecture="colornet-v2-antialiased-palette-lean", width=8).network.state_dict()
    assert set(full) == set(lean)
    changed = {key for key in full if full[key].shape != lean[key].shape}
    assert changed and all(".body." in key or key.startswith("head.") for key in changed)
    assert lean["down16.1.body.0.0.weight"].shape[0] == round(full["down16.1.body.0.0.weight"].shape[0] * LEAN_SHARES["residual_share"])
    assert lean["head.0.weight"].shape[0] == round(full["head.0.weight"].shape[0] * LEAN_SHARES.get("head_share", 1.0))
    assert get_architecture("colornet-v2-antialiased-lean").windowed


def test_the_cut_keeps_the_channels_that_carry_and_then_computes_what_the_teacher_did(script, tmp_path):
    teacher = load_checkpoint(random_checkpoint(tmp_path / "t.safetensors", 0, architecture="colornet-v2-antialiased", std=0.3)).network.eval()
    dropped = {}
    with torch.no_grad():
        # Half of each cut layer's inner channels, spread over it, read by nothing.
        for name, block in script.residual_blocks(teacher):
            dropped[name] = torch.arange(1, block.body[1].weight.shape[1], 2)
            block.body[1].weight[:, dropped[name]] = 0
        teacher.head[2].weight[:, 1::2] = 0
    generator = torch.Generator().manual_seed(1)
    lightness = torch.rand((2, 1, 64, 64), generator=generator) * 100
    inputs = {"hints": torch.zeros((2, 9, 64, 64)), "context": teacher.encode_context(lightness)}
    scores = script.channel_scores(teacher, [(lightness, inputs)])
    for name in dropped:
        assert torch.all(scores[name][dropped[name]] == 0) and torch.any(scores[name] > 0)
    student = create_colorizer(architecture="colornet-v2-antialiased-lean", width=8).network.eval()
    cut = script.cut_from(student, teacher, scores)
    assert "down16.3.body.1.weight" in cut and "down8.1.body.0.0.weight" in cut
    with torch.no_grad():
        expected = teacher(lightness, hints=inputs["hints"], context=teacher.encode_context(lightness))
        got = student(lightness, hints=inputs["hints"], context=student.encode_context(lightness))
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)


def test_distilling_gives_a_lean_model_that_resumes(script, tmp_path):
    teacher = random_checkpoint(tmp_path / "t.safetensors", 0, architecture="colornet-v2-antialiased", std=0.3)
    folder = make_color_folder(tmp_path / "photos", count=4, size=72)
    output = tmp_path / "lean.safetensors"
    arguments = [str(teacher), str(output), "--images", str(folder), "--batch-size", "2", "--crop-size", "64", "--minutes", "0.02"]
    assert script.main(arguments) == 0
    lean = load_checkpoint(output)
    assert lean.architecture == "colornet-v2-antialiased-lean"
    record = copy.deepcopy(lean.metadata["lean_distillation"])
    assert record["steps"] > 0 and record["cut"]
    assert lean.metadata["init"]["sha256"] == load_checkpoint(teacher).sha256
    frozen = {k: v for k, v in lean.network.state_dict().items() if k.startswith(("stem.", "down4.", "hint_path."))}
    teacher_weights = load_checkpoint(teacher).network.state_dict()
    assert all(torch.equal(value, teacher_weights[key]) for key, value in frozen.items())
    # resumed with half the crops cut gray from scientific frames
    frames = make_color_folder(tmp_path / "frames", count=2, size=80)
    assert script.main([*arguments, "--resume", "--frames", str(frames), "--frames-share", "0.5"]) == 0
    resumed = load_checkpoint(output).metadata["lean_distillation"]
    assert resumed["steps"] > record["steps"] and resumed["log"][: len(record["log"])] == record["log"]
    assert resumed["segments"][-1]["frames"] == [str(frames)] and resumed["segments"][-1]["frames_share"] == 0.5
    with pytest.raises(SystemExit):
        script.main([*arguments, "--frames", str(frames)])  # frames without a share

    # a new run takes the trained encoder of an earlier one, the rest cut anew from the teacher
    again = tmp_path / "again.safetensors"
    assert script.main([str(teacher), str(again), "--images", str(folder), "--minutes", "0", "--encoder-from", str(output)]) == 0
    earlier, taken = load_checkpoint(output).network.state_dict(), load_checkpoint(again).network.state_dict()
    assert all(torch.equal(taken[key], earlier[key]) for key in taken if key.startswith(script.ENCODER_MODULES))
    assert torch.equal(taken["head.2.weight"], teacher_weights["head.2.weight"])
    assert load_checkpoint(again).metadata["lean_distillation"]["encoder_from"]["weights"] > 0
