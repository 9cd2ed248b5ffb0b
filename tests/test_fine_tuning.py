"""Fine-tuning on a few colour references for a time budget (the library
behind the Train colorizer widget), with progress and cancel."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_color_folder, make_color_image

from napari_colorize import colorize
from napari_colorize.arrays import as_rgb8
from napari_colorize.checkpoint_files import checkpoint_metadata, resolve_model_path, user_models
from napari_colorize.fine_tuning import check_model_name, fine_tune

pytestmark = pytest.mark.usefixtures("private_settings")  # user models in tmp_path


def references(count=2, size=96):
    return [np.asarray(make_color_image(size, seed=s)) for s in range(count)]


def test_fine_tuned_model_is_saved_by_name_and_says_what_it_learned(tmp_path):
    seen = []
    model = fine_tune(references(), name="my-stain", minutes=0.03, reference_names=["slide A", "slide B"], domain="H&E", on_step=seen.append, device="cpu")
    path = resolve_model_path("my-stain")
    assert model.name == "my-stain" and model.path == str(path) and path.parent == tmp_path / "user-models"
    assert "my-stain" in user_models()
    assert not path.with_name(path.name + ".state.pt").exists()
    meta = checkpoint_metadata(path)
    assert meta["domain"] == "H&E" and "slide A, slide B" in meta["training_data"] and "from natural" in meta["description"]
    assert meta["training"]["steps"] == len(seen) >= 1 and meta["init"]["model"] == "natural"
    assert seen[-1].step == len(seen) and 0 < seen[-1].fraction <= 1 and seen[-1].remaining_s >= 0
    rgb = colorize(make_color_image(64, seed=9).convert("L"), model="my-stain", device="cpu")
    assert rgb.shape == (64, 64, 3)


def test_cancel_keeps_the_model_as_it_is_then(tmp_path):
    steps = []
    fine_tune(references(1), name="stopped", folder=make_color_folder(tmp_path / "refs", count=2), minutes=10, on_step=steps.append, cancel=lambda: len(steps) >= 1, device="cpu")
    meta = checkpoint_metadata(resolve_model_path("stopped"))
    assert meta["training"]["steps"] == 1 and "the colour images of" in meta["training_data"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "natural"}, "is a shipped model"),
        ({"name": "bad name/"}, "letters, digits"),
        ({"name": "ok", "minutes": 0}, "minutes must be > 0"),
        ({"name": "ok", "references": []}, "give colour references"),
        ({"name": "ok", "references": [np.zeros((8, 8))]}, "an RGB image"),
        ({"name": "ok", "references": [], "folder": "/no/such/folder"}, "not found"),
    ],
)
def test_refusals_before_any_work(kwargs, message):
    kwargs = {"references": references(1), **kwargs}
    with pytest.raises(ValueError, match=message):
        fine_tune(kwargs.pop("references"), **kwargs)
    assert user_models() == []


def test_an_existing_name_is_not_overwritten_unless_asked(tmp_path):
    (tmp_path / "user-models").mkdir()
    existing = tmp_path / "user-models" / "mine.safetensors"
    existing.write_bytes(b"keep me")
    with pytest.raises(ValueError, match="a model named 'mine' exists"):
        fine_tune(references(1), name="mine", minutes=0.01)
    assert existing.read_bytes() == b"keep me"


def test_references_of_any_type_become_rgb8():
    assert as_rgb8(np.full((4, 4, 4), 0.5)).tolist()[0][0] == [128, 128, 128]
    assert as_rgb8(np.full((4, 4, 3), 1000, np.uint16)).max() == 255
    assert check_model_name("  my.model_2 ") == "my.model_2"


def test_a_fine_tuned_model_gets_an_int8_companion_from_its_references(tmp_path):
    pytest.importorskip("onnx")
    from napari_colorize.int8_runtime import companion_path
    from napari_colorize.model import load_checkpoint
    from napari_colorize.prediction import resolve_precision

    fine_tune(references(2, size=256), name="fast", minutes=0.02, device="cpu")
    path = resolve_model_path("fast")
    assert companion_path(path).is_file()
    assert resolve_precision(load_checkpoint(path), "auto") == "int8"  # as fast on a CPU as the shipped models
    # references under a tile wide give none, and a companion of replaced weights is removed
    fine_tune(references(1), name="fast", minutes=0.02, device="cpu", overwrite=True)
    assert not companion_path(path).exists()
    assert resolve_precision(load_checkpoint(path), "auto") == "fp32"
