"""What users are told about a model: the description, domain, training data
and terms a checkpoint records (or what its training record shows when it
records none), `napari-colorize models` and `describe`, and the README's table
of the shipped models."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest
from helpers import assert_one_line_error, make_color_folder, run

from napari_colorize.io import TOP_LEVEL, find_images, group_by_subfolder
from napari_colorize.model import (
    CheckpointError,
    checkpoint_metadata,
    file_sha256,
    load_checkpoint,
    shipped_models,
    update_checkpoint_metadata,
)
from napari_colorize.model_info import (
    DESCRIPTION_FIELDS,
    NOT_RECORDED,
    ModelDescription,
    ModelInfo,
    describe_model,
    markdown_table,
    shipped_model_infos,
)
from napari_colorize.training import TrainConfig, train
from napari_colorize.training_data import FILES_GIVEN, images_per_subfolder

ROOT = Path(__file__).resolve().parents[1]
DESCRIPTIONS = json.loads((ROOT / "models" / "descriptions.json").read_text(encoding="utf-8"))
STAMP = "python models/describe_shipped.py"
FAST = {"batch_size": 2, "crop_size": 32, "workers": 0, "width": 8, "steps": 2}
HISTOLOGY = ModelDescription(description="Stains of my lab.", domain="H&E histology", terms="CC BY 4.0")


def tensor_bytes(path: Path) -> bytes:
    """The tensor data of a safetensors file: everything after its header."""
    data = path.read_bytes()
    return data[8 + int.from_bytes(data[:8], "little") :]


@pytest.fixture
def described_copy(tmp_path, tiny_file):
    """A copy of the tiny checkpoint, to be rewritten."""
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(tiny_file.read_bytes())
    return copy


# --------------------------------------------------------------------------
# the shipped models
# --------------------------------------------------------------------------
def test_every_shipped_model_records_its_description():
    assert sorted(DESCRIPTIONS) == sorted(shipped_models())
    for name, fields in DESCRIPTIONS.items():
        recorded = ModelDescription.recorded_in(checkpoint_metadata(name))
        assert recorded == ModelDescription(**fields), f"{name} does not record models/descriptions.json: run {STAMP}"
        # every shipped model's data carries non-commercial terms, and its card must say so
        assert fields["domain"] and "non-commercial" in fields["terms"].lower()
        assert describe_model(name).derived == ()
    assert DESCRIPTIONS["natural"]["domain"] == "natural photographs"
    assert "astronomy" in DESCRIPTIONS["astro"]["domain"]


def test_the_readme_table_is_that_of_the_shipped_metadata():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- shipped models:[^\n]*-->\n(.*?)\n<!-- end of shipped models -->", readme, re.DOTALL)
    assert found, "the README has lost its table of shipped models"
    assert found.group(1) == markdown_table(shipped_model_infos()), (
        f"regenerate it with `napari-colorize models --markdown` (after {STAMP})"
    )


def test_shipped_models_are_described_by_generation_head_and_inputs():
    info = describe_model("natural-lean")
    assert info.shipped and info.name == "natural-lean"
    assert info.network == "second generation (colornet-v2-antialiased-palette-lean), classification head; inputs: lightness, hints, context, palette"
    assert describe_model("natural").network == "second generation (colornet-v2-antialiased-palette), classification head; inputs: lightness, hints, context, palette"
    assert describe_model("natural-regression-v1").network == "first generation (colornet-v1), regression head; inputs: lightness"
    assert info.text().startswith("natural-lean (default)\n  network:")
    assert describe_model("natural").text().startswith("natural\n  network:")
    assert info.int8.endswith("natural-lean.int8.onnx") and info.text().endswith(f"int8 ({info.int8})")  # how it runs on a CPU
    assert "no int8 companion" in describe_model("natural-v1").text().splitlines()[-1]


# --------------------------------------------------------------------------
# what is said when nothing is recorded
# --------------------------------------------------------------------------
def test_without_a_description_the_training_record_is_said():
    metadata = {
        "architecture": "colornet-v1",
        "head": "classification",
        "training": {"data": {"folders": ["histology"], "images": 1200, "images_per_subfolder": {"histology": {TOP_LEVEL: 2, "he": 1198}}}},
        "init": {"model": "natural", "sha256": "ab" * 32, "terms": "research only"},
    }
    info = ModelInfo.of("runs/mine.safetensors", metadata)
    assert info.name == "mine" and not info.shipped and info.derived == DESCRIPTION_FIELDS
    assert (
        info.description
        == "Trained with napari-colorize train on histology (1,200 colour images), fine-tuned from natural; no description recorded."
    )
    assert info.training_data == f"1,200 colour images: histology ({TOP_LEVEL} 2, he 1,198); fine-tuned from natural."
    assert info.domain == NOT_RECORDED
    assert "natural, which it was fine-tuned from (research only)" in info.terms and info.terms.startswith(NOT_RECORDED)
    assert info.text().startswith("mine (runs/mine.safetensors)\n")
    # what is recorded is said as recorded, and only the rest is derived
    info = ModelInfo.of("mine.safetensors", {**metadata, **HISTOLOGY.entries()})
    assert (info.description, info.domain, info.terms) == ("Stains of my lab.", "H&E histology", "CC BY 4.0")
    assert info.derived == ("training_data",)
    # an untrained file records nothing at all
    bare = ModelInfo.of("bare.safetensors", {"architecture": "colornet-v1", "head": "regression"})
    assert bare.description == "No description recorded." and bare.training_data == f"{NOT_RECORDED}."


def test_descriptions_are_one_line_each():
    description = ModelDescription(description="two\nlines ", domain="  ", terms="x")
    assert description.entries() == {"description": "two lines", "terms": "x"}
    assert ModelDescription.recorded_in({"domain": "EM", "unrelated": 1}) == ModelDescription(domain="EM")


# --------------------------------------------------------------------------
# rewriting a checkpoint's metadata
# --------------------------------------------------------------------------
def test_describing_a_checkpoint_keeps_its_weights_byte_for_byte(described_copy, tmp_path):
    before = checkpoint_metadata(described_copy)
    digest_before = file_sha256(described_copy)
    output = tmp_path / "described.safetensors"
    digest = update_checkpoint_metadata(described_copy, HISTOLOGY.entries(), output=output)
    assert digest == file_sha256(output) != digest_before
    assert file_sha256(described_copy) == digest_before  # the source is left alone
    assert tensor_bytes(output) == tensor_bytes(described_copy)
    after = checkpoint_metadata(output)
    assert after == {**before, **HISTOLOGY.entries(), "earlier_sha256": [digest_before]}
    loaded = load_checkpoint(output)
    assert loaded.metadata["domain"] == "H&E histology" and loaded.sha256 == digest
    # in place, again: the earlier digests pile up, the weights stay
    update_checkpoint_metadata(output, {"domain": "H&E"})
    assert checkpoint_metadata(output)["earlier_sha256"] == [digest_before, digest]
    assert tensor_bytes(output) == tensor_bytes(described_copy)
    assert describe_model(output).domain == "H&E"


def test_unreadable_files_are_refused_in_one_line(tmp_path):
    text = tmp_path / "notes.safetensors"
    text.write_text("not a checkpoint")
    pickled = tmp_path / "model.safetensors"
    pickled.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    import numpy as np
    from safetensors.numpy import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": np.zeros(2, np.float32)}, str(foreign), metadata={"other": "tool"})
    for path, message in [
        (tmp_path / "missing.safetensors", "not found"),
        (tmp_path, "folder"),
        (text, "cannot read"),
        (pickled, "pickle"),
        (foreign, "not a napari-colorize checkpoint"),
    ]:
        with pytest.raises(CheckpointError, match=message):
            describe_model(path)
        with pytest.raises(CheckpointError, match=message):
            update_checkpoint_metadata(path, {"domain": "x"})


# --------------------------------------------------------------------------
# what training records
# --------------------------------------------------------------------------
def test_subfolders_are_grouped_with_the_top_level_first(tmp_path):
    make_color_folder(tmp_path / "data", count=2, size=32)
    make_color_folder(tmp_path / "data" / "b", count=1, size=32)
    make_color_folder(tmp_path / "data" / "a" / "deeper", count=3, size=32)
    groups = group_by_subfolder(find_images([tmp_path / "data"]), tmp_path / "data")
    assert {k: len(v) for k, v in groups.items()} == {TOP_LEVEL: 2, "a": 3, "b": 1}
    assert list(groups) == [TOP_LEVEL, "a", "b"]
    single = make_color_folder(tmp_path / "alone", count=1, size=32) / "colour_0.png"
    counts = images_per_subfolder([tmp_path / "data", single], find_images([tmp_path / "data", single]))
    assert counts == {"data": {TOP_LEVEL: 2, "a": 3, "b": 1}, FILES_GIVEN: {TOP_LEVEL: 1}}


def test_training_records_its_data_per_subfolder_and_the_description_given(tmp_path):
    data = tmp_path / "histology"
    make_color_folder(data / "he", count=2, size=48)
    make_color_folder(data / "ihc", count=1, size=48, gray=1)
    output = tmp_path / "histology.safetensors"
    trained = train([data], output=output, config=TrainConfig(**FAST), device="cpu", progress=False, description=HISTOLOGY)
    metadata = checkpoint_metadata(output)
    assert metadata["training"]["data"]["images_per_subfolder"] == {"histology": {"he": 2, "ihc": 1}}
    assert ModelDescription.recorded_in(metadata) == HISTOLOGY == ModelDescription.recorded_in(trained.metadata)
    info = describe_model(output)
    assert info.training_data == "3 colour images: histology (he 2, ihc 1)."
    assert info.derived == ("training_data",)
    # a model fine-tuned from it carries the data and terms of its start, not its description
    tuned = train(
        [data / "he"], output=tmp_path / "tuned.safetensors", config=TrainConfig(**FAST), device="cpu", init=output, progress=False
    )
    assert {k: tuned.metadata["init"][k] for k in ("model", "terms")} == {"model": "histology", "terms": "CC BY 4.0"}
    assert "description" not in tuned.metadata
    tuned_info = describe_model(tmp_path / "tuned.safetensors")
    assert tuned_info.description.startswith("Trained with napari-colorize train on he (2 colour images), fine-tuned from histology")
    assert "(CC BY 4.0)" in tuned_info.terms


# --------------------------------------------------------------------------
# the commands
# --------------------------------------------------------------------------
def test_models_command_lists_the_shipped_models_and_describes_files(capsys, tiny_file):
    code, out, err = run(capsys, "models")
    assert code == 0, err
    for name in shipped_models():
        assert re.search(rf"^{re.escape(name)}( \(default\))?$", out, re.MULTILINE)
    assert out.count("  terms:") == len(shipped_models()) and out.count("  training data:") == len(shipped_models())
    code, out, _ = run(capsys, "models", "--markdown")
    assert code == 0 and out.strip() == markdown_table(shipped_model_infos())
    code, out, _ = run(capsys, "models", tiny_file)
    assert code == 0
    assert out.splitlines()[0] == f"tiny ({tiny_file})"
    assert "description:   No description recorded." in out
    code, _, err = run(capsys, "models", tiny_file.parent / "missing.safetensors")
    assert code == 2
    assert_one_line_error(err, "not found")


def test_describe_command(capsys, described_copy, tmp_path):
    output = tmp_path / "out.safetensors"
    code, out, err = run(capsys, "describe", described_copy, "-o", output, "--domain", "electron micrographs", "--terms", "CC0")
    assert code == 0, err
    assert out.startswith(f"wrote {output} (sha256 {file_sha256(output)}; its weights unchanged)")
    assert "domain:        electron micrographs" in out
    assert tensor_bytes(output) == tensor_bytes(described_copy)
    code, _, err = run(capsys, "describe", described_copy, "-o", output, "--domain", "x")
    assert code == 2
    assert_one_line_error(err, "exists", "--overwrite")
    code, _, err = run(capsys, "describe", described_copy)
    assert code == 2
    assert_one_line_error(err, "nothing to record")
    code, _, err = run(capsys, "describe", described_copy, "-o", tmp_path / "out.pt", "--domain", "x")
    assert code == 2
    assert_one_line_error(err, ".safetensors")
    code, _, err = run(capsys, "describe", described_copy, "--description", "Mine.")  # in place
    assert code == 0, err
    assert checkpoint_metadata(described_copy)["description"] == "Mine."
