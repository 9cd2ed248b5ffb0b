"""ColorizeOptions: every option declared once (default, limits, help),
validated once, and the command line and provenance built from it."""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pytest

from napari_colorize import ColorizeOptions, colorize
from napari_colorize.cli import add_option_arguments, main, options_from_arguments
from napari_colorize.color import DEFAULT_TEMPERATURE
from napari_colorize.options import option, option_names, option_spec, option_specs
from napari_colorize.provenance import provenance


def test_defaults_are_the_documented_ones():
    options = ColorizeOptions()
    assert options.temperature == DEFAULT_TEMPERATURE == 0.38
    assert (options.model, options.normalize, options.percentiles, options.scale, options.overlap) == ("natural-lean", "frame", (0.5, 99.5), 1.0, 32)
    assert (options.batch_size, options.device, options.precision, options.rgb) == (8, "auto", "auto", None)
    assert [spec.default for spec in option_specs()] == [getattr(options, name) for name in option_names()]
    assert all(spec.help and spec.label for spec in option_specs())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"temperature": 0}, "temperature must be > 0"),
        ({"temperature": "warm"}, "temperature must be a finite number"),
        ({"scale": float("inf")}, "scale must be a finite number"),
        ({"scale": -1}, "scale must be > 0"),
        ({"overlap": -1}, "overlap must be >= 0"),
        ({"overlap": 2.5}, "overlap must be a whole number"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"batch_size": True}, "batch_size must be a finite number"),
        ({"normalize": "global"}, "normalize must be 'frame', 'stack' or"),
        ({"normalize": (5, 5)}, "high > low"),
        ({"percentiles": (90, 10)}, "percentiles must be"),
        ({"device": "tpu"}, "device must be one of auto, cpu, cuda, mps or cuda:N"),
        ({"precision": "fp8"}, "precision must be one of auto, fp32, bf16, fp16"),
        ({"model": ""}, "empty name"),
        ({"model": 3}, "got int"),
        ({"rgb": "yes"}, "rgb must be True, False or None"),
    ],
)
def test_bad_values_are_refused_on_construction(changes, message):
    with pytest.raises(ValueError, match=message):
        ColorizeOptions(**changes)
    with pytest.raises(ValueError, match=message):
        ColorizeOptions().replace(**changes)
    with pytest.raises(ValueError, match=message):  # before any work, whatever the input
        colorize(np.zeros((8, 8)), **changes)


def test_values_are_normalised_and_frozen():
    options = ColorizeOptions(temperature=1, overlap=16.0, normalize=[0, 255], percentiles=[1, 99], device="cuda:1")
    assert options.temperature == 1.0 and isinstance(options.temperature, float)
    assert options.overlap == 16 and isinstance(options.overlap, int)
    assert options.normalize == (0.0, 255.0) and options.percentiles == (1.0, 99.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.scale = 2.0
    assert hash(options) == hash(ColorizeOptions(temperature=1.0, overlap=16, normalize=(0, 255), percentiles=(1, 99), device="cuda:1"))


def test_unknown_keywords_are_a_type_error_naming_the_options():
    with pytest.raises(TypeError, match="unknown option temprature; options are model, device, scale"):
        colorize(np.zeros((8, 8)), temprature=0.3)


def test_keywords_and_an_options_object_give_the_same_result(tiny_model):
    frame = np.random.default_rng(0).random((60, 70)).astype(np.float32)
    options = ColorizeOptions(model=tiny_model, temperature=0.2, scale=0.5, device="cpu")
    by_object = colorize(frame, options=options)
    by_keywords = colorize(frame, model=tiny_model, temperature=0.2, scale=0.5, device="cpu")
    np.testing.assert_array_equal(by_object, by_keywords)
    # keywords replace single options of the object
    np.testing.assert_array_equal(colorize(frame, options=options.replace(temperature=1.0)), colorize(frame, options=options, temperature=1.0))


def test_the_command_line_is_built_from_the_declarations():
    parser = argparse.ArgumentParser()
    add_option_arguments(parser)
    for spec in option_specs():
        flag = "--" + spec.name.replace("_", "-")
        action = next((a for a in parser._actions if flag in a.option_strings), None)
        assert (action is not None) == spec.in_cli, spec.name
        if action is not None:
            assert spec.help in action.help
    defaults = options_from_arguments(parser.parse_args([]))
    assert defaults == ColorizeOptions()
    parsed = options_from_arguments(parser.parse_args(["--temperature", "0.2", "--range", "0", "4095", "--percentiles", "1", "99"]))
    assert parsed == ColorizeOptions(temperature=0.2, normalize=(0, 4095), percentiles=(1, 99))


def test_one_option_from_the_command_line_down_to_the_model(tmp_path, monkeypatch, natural):
    """--temperature reaches Colorizer.predict_ab unchanged, and the output file records it."""
    import json

    import tifffile

    from napari_colorize.model import Colorizer

    seen = []
    real = Colorizer.predict_ab

    def spy(self, lightness, *, temperature, **extra):
        seen.append(temperature)
        return real(self, lightness, temperature=temperature, **extra)

    monkeypatch.setattr(Colorizer, "predict_ab", spy)
    src, dst = tmp_path / "in.tif", tmp_path / "out.tif"
    tifffile.imwrite(src, np.random.default_rng(1).integers(0, 4000, (50, 60), dtype=np.uint16))
    assert main(["colorize", str(src), "-o", str(dst), "--device", "cpu", "--temperature", "0.27", "-q"]) == 0
    assert seen and set(seen) == {0.27}
    with tifffile.TiffFile(dst) as tif:
        record = json.loads(tif.pages[0].description)["napari_colorize"]
    assert record["parameters"]["temperature"] == 0.27 and record["predicted"] is True


def test_a_made_up_option_is_declared_in_one_place(tiny_model):
    """A new option is one field: it is validated, gets a command-line
    argument with its help and limits, and is recorded in provenance."""

    @dataclasses.dataclass(frozen=True)
    class WithSharpness(ColorizeOptions):
        sharpness: float = option(0.5, label="Sharpness", kind=float, minimum=0.0, maximum=1.0, help="how crisp the chroma edges are")

    assert WithSharpness().sharpness == 0.5
    with pytest.raises(ValueError, match="sharpness must be <= 1"):
        WithSharpness(sharpness=2)
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_option_arguments(parser, options_class=WithSharpness)
    assert "how crisp the chroma edges are (default 0.5)" in parser.format_help()
    with pytest.raises(argparse.ArgumentError, match="sharpness must be <= 1"):
        parser.parse_args(["--sharpness", "3"])
    options = options_from_arguments(parser.parse_args(["--sharpness", "0.25", "--temperature", "0.3"]), options_class=WithSharpness)
    assert options == WithSharpness(sharpness=0.25, temperature=0.3)
    record = provenance(options.replace(model=tiny_model), tiny_model, device="cpu")
    assert record["parameters"]["sharpness"] == 0.25 and record["parameters"]["temperature"] == 0.3


def test_option_spec_lookup():
    assert option_spec("overlap").gui_range == (0, 192, 8)
    with pytest.raises(KeyError, match="no option 'nope'"):
        option_spec("nope")
