"""The int8 engines (OpenVINO when installed, ONNX Runtime): the shipped
model's int8 companion gives the fp32 network's colours within a stated
tolerance with each engine installed, is chosen by ``precision="auto"`` on
the CPU and recorded, keeps hints exact where they reach, and a companion is
made for a saved model and refused for other weights."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from napari_colorize import colorize
from napari_colorize.color import rgb_to_lab
from napari_colorize.int8_runtime import ENGINE_VARIABLE, INT8_ENGINES, companion_path, int8_engine, int8_unavailable, load_int8
from napari_colorize.model import load_checkpoint, save_checkpoint
from napari_colorize.quantized import quantize_colorizer

#: How far int8 colours may be from fp32 ones, in ab units: the mean over
#: pixels, and the 99th percentile. Measured on the sample below: 0.8 and 3.0.
MEAN_AB_TOLERANCE = 1.5
P99_AB_TOLERANCE = 8.0


#: The int8 engines installed here: each is held to the same tolerance.
ENGINES = [name for name in INT8_ENGINES if importlib.util.find_spec(name) is not None]


@pytest.fixture(params=ENGINES)
def engine(request, monkeypatch):
    """Each installed int8 engine in turn, chosen as a user would (the environment variable)."""
    monkeypatch.setenv(ENGINE_VARIABLE, request.param)
    return request.param


def photo_gray(side: int = 448) -> np.ndarray:
    from skimage import data

    return np.asarray(data.camera()[:side, :side])


def ab_change(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.linalg.norm(rgb_to_lab(first)[..., 1:] - rgb_to_lab(second)[..., 1:], axis=-1)


def test_shipped_int8_companion_matches_fp32_within_tolerance(engine):
    assert load_int8(load_checkpoint("natural", device="cpu")).engine == engine
    gray = photo_gray()
    fp32 = colorize(gray, model="natural", device="cpu", precision="fp32")
    int8 = colorize(gray, model="natural", device="cpu", precision="int8")
    change = ab_change(fp32, int8)
    assert 0 < change.mean() <= MEAN_AB_TOLERANCE
    assert np.percentile(change, 99) <= P99_AB_TOLERANCE
    assert np.abs(rgb_to_lab(fp32)[..., 0] - rgb_to_lab(int8)[..., 0]).max() < 1.0  # the lightness is the input's
    # noise, as in low-dose frames: its activations lie beyond clean photographs' (calibrated on noisy copies too)
    noise = np.random.default_rng(0).random((300, 300)).astype(np.float32)
    change = ab_change(
        colorize(noise, model="natural", device="cpu", precision="fp32"), colorize(noise, model="natural", device="cpu", precision="int8")
    )
    assert change.mean() <= MEAN_AB_TOLERANCE and np.percentile(change, 99) <= P99_AB_TOLERANCE


def test_auto_runs_int8_on_the_cpu_and_says_so(tmp_path, engine):
    from napari_colorize.options import ColorizeOptions
    from napari_colorize.prediction import resolve_precision
    from napari_colorize.provenance import provenance

    colorizer = load_checkpoint("natural", device="cpu")
    assert resolve_precision(colorizer, "auto") == "int8"
    assert resolve_precision(colorizer, "fp32") == "fp32"
    gray = photo_gray(256)
    assert np.array_equal(colorize(gray, model="natural", device="cpu"), colorize(gray, model="natural", device="cpu", precision="int8"))
    record = provenance(ColorizeOptions(), colorizer, device="cpu")
    assert record["precision_used"] == "int8" and record["int8_engine"] == engine
    assert record["parameters"]["precision"] == "auto"
    assert "int8_engine" not in provenance(ColorizeOptions(precision="fp32"), colorizer, device="cpu")


def test_an_engine_named_in_the_environment_is_checked(monkeypatch):
    monkeypatch.setenv(ENGINE_VARIABLE, "tensorrt")
    with pytest.raises(ValueError, match="names no int8 engine; use one of openvino, onnxruntime"):
        int8_engine()
    monkeypatch.setenv(ENGINE_VARIABLE, "onnxruntime")
    assert int8_engine() == "onnxruntime"
    monkeypatch.delenv(ENGINE_VARIABLE)
    assert int8_engine() == ENGINES[0]


@pytest.mark.skipif("openvino" not in ENGINES, reason="OpenVINO is not installed")
def test_openvino_compiles_once_per_shape_and_agrees_with_onnx_runtime(monkeypatch):
    """Windows of a new size are compiled anew (the last few kept), each run
    giving ONNX Runtime's logits within int8 rounding."""
    import torch

    from napari_colorize.int8_runtime import COMPILED_SHAPES, OnnxRuntimeNetwork

    monkeypatch.setenv(ENGINE_VARIABLE, "openvino")
    colorizer = load_checkpoint("natural", device="cpu")
    network = load_int8(colorizer)
    reference = OnnxRuntimeNetwork(str(companion_path(colorizer.path)), 1)
    context = torch.zeros((1, 256))
    for side in (224, 288, 224):
        lightness = torch.from_numpy(photo_gray(side).astype(np.float32) / 2.55)[None, None]
        logits = network(lightness, context=context)
        assert logits.shape == (1, colorizer.num_bins, side // 4, side // 4)
        assert float((logits - reference(lightness, context=context)).abs().mean()) < 0.2
    assert 2 <= len(network.compiled) <= COMPILED_SHAPES


@pytest.mark.skipif("openvino" not in ENGINES, reason="OpenVINO is not installed")
def test_openvino_decodes_the_annealed_mean_as_the_logits_give_it(monkeypatch):
    """The annealed mean appended to OpenVINO's graph gives the ab that
    decoding its logits gives, at every temperature (bf16 rounding apart)."""
    import torch

    from napari_colorize.color import annealed_mean

    monkeypatch.setenv(ENGINE_VARIABLE, "openvino")
    colorizer = load_checkpoint("natural", device="cpu")
    network = load_int8(colorizer)
    lightness = torch.from_numpy(photo_gray(256).astype(np.float32) / 2.55)[None, None]
    context = colorizer.encode_context(colorizer.view_of(lightness))
    logits = network(lightness, context=context)
    bins = torch.as_tensor(colorizer.bins)
    for temperature in (0.38, 1.0):
        decoded = network.annealed_mean(lightness, bins=colorizer.bins, temperature=temperature, context=context)
        expected = annealed_mean(logits, bins, temperature=temperature)
        assert decoded.shape == expected.shape == (1, 2, 64, 64)
        assert float((decoded - expected).abs().mean()) < 0.1 and float((decoded - expected).abs().max()) < 1.0
        same, its_logits = network.annealed_mean(lightness, bins=colorizer.bins, temperature=temperature, context=context, with_logits=True)
        assert torch.equal(same, decoded) and torch.equal(its_logits, logits)  # asking for the logits (uncertainty) changes no colour
    vivid, muted = (network.annealed_mean(lightness, bins=colorizer.bins, temperature=t, context=context) for t in (0.2, 1.0))
    assert float(vivid.norm(dim=1).mean()) > float(muted.norm(dim=1).mean()) + 1  # the temperature is an input, not baked in
    with pytest.raises(ValueError, match="temperature must be > 0"):
        network.annealed_mean(lightness, bins=colorizer.bins, temperature=0.0, context=context)


def test_int8_keeps_hints_exact_where_they_reach_and_automatic_beyond():
    gray = photo_gray()
    hint = (60, 60, 220, 40, 40)  # y, x and a red
    automatic = colorize(gray, model="natural", device="cpu", precision="int8")
    hinted = colorize(gray, model="natural", device="cpu", precision="int8", hints=[hint])
    fp32 = colorize(gray, model="natural", device="cpu", precision="fp32", hints=[hint])
    assert np.array_equal(hinted[:, 200:], automatic[:, 200:])  # beyond the hint's reach: int8, bit for bit
    near = (slice(50, 71), slice(50, 71))  # hinted tiles run in fp32, blended with int8's automatic result
    assert ab_change(hinted[near], fp32[near]).mean() <= MEAN_AB_TOLERANCE
    red = rgb_to_lab(np.array([[hint[2:]]], dtype=np.uint8))[0, 0, 1:]
    assert (
        np.linalg.norm(rgb_to_lab(hinted[near])[..., 1:] - red, axis=-1).mean()
        < np.linalg.norm(rgb_to_lab(automatic[near])[..., 1:] - red, axis=-1).mean() - 10
    )


def test_a_saved_model_gets_a_companion_and_another_weights_are_refused(tmp_path, tiny_model):
    pytest.importorskip("onnx")
    from napari_colorize.model import create_colorizer

    checkpoint = tmp_path / "tiny.safetensors"
    save_checkpoint(create_colorizer(architecture="colornet-v2-replicate", width=8), checkpoint)
    colorizer = load_checkpoint(checkpoint)
    assert "no int8 companion" in int8_unavailable(colorizer)
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, (256, 300, 3), dtype=np.uint8) for _ in range(3)]
    written = quantize_colorizer(colorizer, pictures)
    assert written == companion_path(checkpoint) == tmp_path / "tiny.int8.onnx"
    assert int8_unavailable(colorizer) is None
    gray = rng.random((240, 260)).astype(np.float32)
    fp32 = colorize(gray, model=checkpoint, device="cpu", precision="fp32")
    int8 = colorize(gray, model=checkpoint, device="cpu", precision="int8")
    assert int8.shape == fp32.shape and ab_change(fp32, int8).mean() <= MEAN_AB_TOLERANCE

    # Other weights under the same name: the companion is refused, auto falls back to fp32.
    retrained = tmp_path / "retrained.safetensors"
    save_checkpoint(create_colorizer(architecture="colornet-v2-replicate", width=8), retrained)
    shutil.copy(written, companion_path(retrained))
    other = load_checkpoint(retrained)
    with pytest.raises(ValueError, match="other weights"):
        load_int8(other)
    with pytest.raises(ValueError, match="other weights"):
        colorize(gray, model=retrained, device="cpu", precision="int8")
    with pytest.warns(UserWarning, match="running in fp32: the int8 companion .* other weights"):
        automatic = colorize(gray, model=retrained, device="cpu")
    assert np.array_equal(automatic, colorize(gray, model=retrained, device="cpu", precision="fp32"))


def test_cli_quantize_writes_the_companion_and_refuses_a_missing_folder(tmp_path, capsys):
    pytest.importorskip("onnx")
    from PIL import Image

    from napari_colorize.cli import main
    from napari_colorize.model import create_colorizer

    checkpoint = tmp_path / "tiny.safetensors"
    save_checkpoint(create_colorizer(architecture="colornet-v2-replicate", width=8), checkpoint)
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for index in range(3):
        Image.fromarray(rng.integers(0, 256, (240, 250, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    output = tmp_path / "out.tif"
    asked = ["colorize", str(folder / "0.png"), "-o", str(output), "--model", str(checkpoint), "--precision", "int8"]
    assert main(asked) == 2  # no companion yet: a clear refusal, no file
    assert "has no int8 companion" in capsys.readouterr().err and not output.exists()
    assert main(["quantize", str(checkpoint), "--images", str(tmp_path / "absent")]) == 2
    assert "image folder not found" in capsys.readouterr().err
    assert not companion_path(checkpoint).exists()
    assert main(["quantize", str(checkpoint), "--images", str(folder)]) == 0
    assert companion_path(checkpoint).is_file()
    assert main(asked) == 0
    import tifffile

    with tifffile.TiffFile(output) as tif:
        record = json.loads(tif.pages[0].description)["napari_colorize"]
    assert record["precision_used"] == "int8" and record["parameters"]["precision"] == "int8"


@pytest.mark.skipif("openvino" not in ENGINES, reason="OpenVINO is not installed")
def test_openvino_keeps_compiled_graphs_between_runs_and_only_the_newest(monkeypatch, tmp_path):
    """A graph compiled once is found in the cache folder by the next run
    (the same colours), the folder keeps only the newest graphs, and with
    the variable empty, or a folder that cannot be made, nothing is cached."""
    import os

    import torch

    from napari_colorize import int8_runtime
    from napari_colorize.int8_runtime import CACHE_VARIABLE, OpenVinoNetwork, compiled_graph_cache, prune_cache

    monkeypatch.setenv(ENGINE_VARIABLE, "openvino")
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path / "graphs"))
    colorizer = load_checkpoint("natural", device="cpu")
    path = str(companion_path(colorizer.path))
    lightness = torch.from_numpy(photo_gray(224).astype(np.float32) / 2.55)[None, None]
    context = torch.zeros((1, 256))
    first = OpenVinoNetwork(path, 1).annealed_mean(lightness, bins=colorizer.bins, temperature=0.38, context=context)
    (blob,) = (tmp_path / "graphs").glob("*.blob")
    again = OpenVinoNetwork(path, 1).annealed_mean(lightness, bins=colorizer.bins, temperature=0.38, context=context)
    assert torch.equal(first, again) and list((tmp_path / "graphs").glob("*.blob")) == [blob]

    for age in range(5):
        made = tmp_path / "graphs" / f"old{age}.blob"
        made.write_bytes(b"")
        os.utime(made, (1000 + age, 1000 + age))
    prune_cache(tmp_path / "graphs", keep=3)
    assert sorted(p.name for p in (tmp_path / "graphs").glob("*.blob")) == sorted([blob.name, "old4.blob", "old3.blob"])

    monkeypatch.setenv(CACHE_VARIABLE, "")
    assert compiled_graph_cache() is None
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path / "a-file" / "graphs"))
    assert compiled_graph_cache() is None
    monkeypatch.delenv(CACHE_VARIABLE)
    monkeypatch.setattr(int8_runtime, "user_cache_folder", lambda name: tmp_path / "user-cache" / name)
    assert compiled_graph_cache() == tmp_path / "user-cache" / "openvino"


@pytest.mark.skipif("openvino" not in ENGINES, reason="OpenVINO is not installed")
def test_openvino_runs_without_importing_its_telemetry_sending_tools():
    """Importing openvino.tools.ovc sends a usage event to OpenVINO's
    telemetry: running a companion leaves it unimported (a fresh process),
    and openvino.convert_model still works for other code."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from napari_colorize.model import load_checkpoint\n"
        "from napari_colorize.int8_runtime import load_int8\n"
        "network = load_int8(load_checkpoint('natural', device='cpu'))\n"
        "import openvino\n"
        "print(type(network).__name__, 'openvino.tools.ovc' in sys.modules, callable(openvino.convert_model))\n"
    )
    environment = {**os.environ, ENGINE_VARIABLE: "openvino"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False, env=environment)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["OpenVinoNetwork", "False", "True"]
