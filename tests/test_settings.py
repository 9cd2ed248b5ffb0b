"""The widget's remembered settings: read, checked value by value, written,
and never applied as garbage (no napari, no Qt)."""

from __future__ import annotations

import json
import logging

import pytest

from napari_colorize import settings
from napari_colorize.options import option_spec


@pytest.fixture
def path(tmp_path, monkeypatch):
    """The settings file, in a temporary folder (never the user's config)."""
    file = tmp_path / "config" / "widget.json"
    monkeypatch.setattr(settings, "settings_file", lambda: file)
    return file


OPTION_CHECKS = {name: option_spec(name).validate for name in ("scale", "overlap", "temperature", "normalize", "device")}


def test_settings_are_written_and_read_back(path):
    remembered = {"scale": 0.5, "overlap": 48, "frames": "all", "keep_copies": True, "checkpoint": ""}
    settings.save_settings(remembered)
    assert json.loads(path.read_text()) == remembered
    assert settings.read_settings() == (remembered, []) and settings.load_settings() == remembered


def test_no_file_is_no_settings_and_no_problem(path):
    assert settings.read_settings() == ({}, []) and settings.load_settings() == {}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b'["scale", 0.5]', "holds a list, not a JSON object"),
        (b"0.5", "holds a number, not a JSON object"),
        (b"null", "holds null, not a JSON object"),
        (b"\xff\xfe\x00garbage", "cannot be read"),
        (b"", "not valid JSON"),
    ],
)
def test_an_unusable_file_is_ignored_with_a_reason(path, caplog, content, problem):
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    values, problems = settings.read_settings()
    assert values == {} and len(problems) == 1 and problem in problems[0]
    with caplog.at_level(logging.WARNING, logger="napari_colorize.settings"):
        assert settings.load_settings() == {}
    assert problem in caplog.text and str(path) in caplog.text


def test_a_failure_to_write_is_logged_not_raised(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setattr(settings, "settings_file", lambda: blocker / "widget.json")
    with caplog.at_level(logging.WARNING, logger="napari_colorize.settings"):
        settings.save_settings({"scale": 0.5})
    assert "cannot save" in caplog.text


def test_option_values_are_checked_by_their_spec_one_by_one():
    remembered = {
        "scale": -1.0,  # outside the option's limits
        "overlap": 48.0,  # a whole number: normalised to int
        "temperature": "hot",  # wrong type
        "normalize": "stack",
        "device": "gpu0",  # not a device name
        "from_a_newer_version": 1,  # unknown: skipped silently
    }
    values, problems = settings.check_settings(remembered, OPTION_CHECKS)
    assert values == {"overlap": 48, "normalize": "stack"} and type(values["overlap"]) is int
    assert len(problems) == 3
    assert "scale must be > 0, got -1.0" in problems  # the spec's own message, not 'scale: scale ...'
    assert any(p.startswith("temperature ") and "number" in p for p in problems)
    assert any(p.startswith("device ") for p in problems)


@pytest.mark.parametrize("value", [True, None, float("nan"), [1, 2], {"a": 1}])
def test_no_garbage_passes_a_numeric_option(value):
    values, problems = settings.check_settings({"overlap": value}, OPTION_CHECKS)
    assert values == {} and len(problems) == 1


def test_a_checkpoint_that_no_longer_exists_is_not_restored(tmp_path):
    kept = tmp_path / "mine.safetensors"
    kept.write_bytes(b"")
    assert settings.check_checkpoint_path(str(kept)) == str(kept)
    assert settings.check_checkpoint_path("") == settings.check_checkpoint_path(".") == ""
    with pytest.raises(ValueError, match="no longer exists"):
        settings.check_checkpoint_path(str(tmp_path / "gone.safetensors"))
    with pytest.raises(TypeError, match="file path"):
        settings.check_checkpoint_path(3)


def test_flags_choices_and_chained_checks():
    assert settings.check_flag(False) is False
    with pytest.raises(TypeError):
        settings.check_flag("yes")
    offered = settings.check_choice(["auto", "cpu"])
    assert offered("cpu") == "cpu"
    with pytest.raises(ValueError, match="not offered here"):
        offered("cuda:3")  # a valid name, but no such GPU here
    device = settings.chained(option_spec("device").validate, offered)
    values, problems = settings.check_settings({"device": "cuda:3"}, {"device": device})
    assert values == {} and "not offered here" in problems[0]
