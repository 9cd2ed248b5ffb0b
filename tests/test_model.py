"""The network, shipped checkpoints, and checkpoint files."""

from __future__ import annotations

import json
import math
import pickle
import shutil
import time

import numpy as np
import pytest
import torch
from helpers import STACK, assert_refused, cli, smooth_frame, write_tiff

from napari_colorize import colorize
from napari_colorize.color import ab_bins, rgb_to_lab
from napari_colorize.architectures import DEFAULT_ARCHITECTURE as ARCHITECTURE
from napari_colorize.model import (
    CheckpointError,
    create_colorizer,
    file_sha256,
    load_checkpoint,
    resolve_model_path,
    save_checkpoint,
    shipped_models,
    shipped_models_dir,
)


def test_shipped_models_are_listed():
    names = shipped_models()
    assert names[0] == "natural-lean"
    assert {"natural", "natural-regression", "natural-v1", "natural-regression-v1"} <= set(names)
    assert resolve_model_path("natural") == shipped_models_dir() / "natural.safetensors"


@pytest.mark.parametrize(
    ("name", "head", "architecture"),
    [
        ("natural", "classification", "colornet-v2-antialiased-palette"),
        ("natural-regression", "regression", "colornet-v2-replicate"),
        ("natural-v1", "classification", "colornet-v1"),
        ("natural-regression-v1", "regression", "colornet-v1"),
        ("astro", "classification", "colornet-v2-replicate-palette"),
        ("stained-microscopy", "classification", "colornet-v2-replicate"),
    ],
)
def test_shipped_checkpoint(name, head, architecture):
    model = load_checkpoint(name, device="cpu")
    assert model.head == head and model.name == name
    meta = model.metadata
    assert meta["architecture"] == architecture and meta["head"] == head
    assert meta["num_bins"] == 261 and model.num_bins == 261
    np.testing.assert_array_equal(model.bins, ab_bins())
    assert model.sha256 == file_sha256(shipped_models_dir() / f"{name}.safetensors")
    assert not model.network.training
    # training provenance
    training = meta["training"]
    assert training["steps"] > 0 and training["finished"] is True
    assert training["wall_time_s"] > 0
    assert math.isfinite(training["final_loss"])
    assert training["data"]["images"] > 0 and "skipped_gray_or_unreadable" in training["data"]
    assert training["config"]["head"] == head
    assert {"code_version", "torch_version", "created", "normalisation"} <= set(meta)
    # the colour prior of its training data
    assert model.prior is not None and model.prior.shape == (261,)
    assert model.prior.sum() == pytest.approx(1.0, abs=1e-6)
    # it colorizes a sample
    rgb = colorize(smooth_frame((64, 80), seed=1), model=model, device="cpu")
    assert rgb.shape == (64, 80, 3) and rgb.dtype == np.uint8
    ab = rgb_to_lab(rgb)[..., 1:]
    assert np.hypot(ab[..., 0], ab[..., 1]).mean() > 1.0


def test_loading_is_cached():
    assert load_checkpoint("natural", device="cpu") is load_checkpoint("natural")


def test_a_checkpoint_rewritten_within_one_timestamp_tick_is_not_loaded_stale(tmp_path):
    """The cache is keyed on content: same path, same size, same mtime, other weights."""
    import os

    path = tmp_path / "model.safetensors"
    first = randomised(create_colorizer(width=8), seed=1)
    save_checkpoint(first, path)
    stat = path.stat()
    loaded_first = load_checkpoint(path)
    second = randomised(create_colorizer(width=8), seed=2)
    save_checkpoint(second, path)
    assert path.stat().st_size == stat.st_size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same timestamp tick
    loaded_second = load_checkpoint(path)
    assert loaded_second.sha256 == second.sha256 != loaded_first.sha256
    for key, value in second.network.state_dict().items():
        torch.testing.assert_close(loaded_second.network.state_dict()[key], value, atol=0, rtol=0)


def test_a_checkpoint_written_before_geometry_was_declared_loads_with_its_architectures(tmp_path):
    """colornet-v1 files (the shipped ones, and those users trained) carry no
    tile size, stride or inputs: they take colornet-v1's."""
    path = tmp_path / "old.safetensors"
    colorizer = randomised(create_colorizer(width=8))
    for key in ("tile_size", "output_stride", "inputs"):
        colorizer.metadata.pop(key)
    save_checkpoint(colorizer, path)
    loaded = load_checkpoint(path)
    assert "tile_size" not in loaded.metadata
    assert (loaded.architecture, loaded.tile_size, loaded.output_stride, loaded.extra_inputs) == ("colornet-v1", 224, 4, ())
    shipped = load_checkpoint("natural-v1")
    assert "tile_size" not in shipped.metadata and shipped.tile_size == 224


@pytest.mark.parametrize("head", ["classification", "regression"])
def test_network_output_shapes(head):
    colorizer = create_colorizer(head=head, width=8)
    colorizer.network.eval()
    lightness = torch.rand(2, 1, 64, 96) * 100
    with torch.no_grad():
        out = colorizer.network(lightness)
    assert out.shape == (2, 261 if head == "classification" else 2, 16, 24)
    ab = colorizer.predict_ab(lightness, temperature=0.38)
    assert ab.shape == (2, 2, 16, 24) and ab.dtype == torch.float32
    assert colorizer.bins.flags.writeable  # its own copy, not the cached bins
    assert colorizer.metadata == {
        "architecture": ARCHITECTURE,
        "head": head,
        "width": 8,
        "num_bins": 261,
        "tile_size": 224,
        "output_stride": 4,
        "inputs": ["lightness"],
    }
    assert (colorizer.tile_size, colorizer.output_stride, colorizer.extra_inputs) == (224, 4, ())


def test_create_colorizer_rejects_unknown_head():
    with pytest.raises(ValueError, match="head must be one of"):
        create_colorizer(head="segmentation")


def randomised(colorizer, seed=0):
    """Give a fresh network non-trivial weights and batch-norm statistics,
    rounded to half precision (what the checkpoint stores)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in colorizer.network.state_dict().items():
            if tensor.is_floating_point():
                noise = torch.rand(tensor.shape, generator=generator)
                if name.endswith("running_var"):
                    tensor.copy_(0.5 + noise)
                else:
                    tensor.add_(0.1 * (noise - 0.5))
                tensor.copy_(tensor.half().float())
    colorizer.network.eval()
    return colorizer


def test_values_beyond_half_precision_are_kept_not_stored_as_infinity(tmp_path):
    """Weights are stored in float16, but a batch-norm variance that grew past
    its range (as one did in a training run) must not become inf: the file
    would be refused as corrupted."""
    colorizer = randomised(create_colorizer(width=8))
    with torch.no_grad():
        colorizer.network.stem[1].running_var[0] = 268_732.19
    save_checkpoint(colorizer, tmp_path / "wide.safetensors")
    loaded = load_checkpoint(tmp_path / "wide.safetensors")
    assert float(loaded.network.stem[1].running_var[0]) == pytest.approx(268_732.19)
    assert loaded.network.stem[0].weight.dtype == torch.float32


@pytest.mark.parametrize("head", ["classification", "regression"])
def test_save_load_round_trip(tmp_path, head):
    torch.manual_seed(0)
    colorizer = randomised(create_colorizer(head=head, width=8))
    colorizer.prior = np.full(261, 1 / 261)
    path = tmp_path / "sub" / "model.safetensors"
    digest = save_checkpoint(colorizer, path, extra_metadata={"note": "round trip"})
    assert digest == file_sha256(path) == colorizer.sha256
    assert [p.name for p in path.parent.iterdir()] == ["model.safetensors"]  # no temporary left
    loaded = load_checkpoint(path)
    assert loaded.name == "model" and loaded.sha256 == digest and loaded.head == head
    assert loaded.metadata["note"] == "round trip" and loaded.metadata["width"] == 8
    np.testing.assert_array_equal(loaded.bins, colorizer.bins)
    np.testing.assert_array_equal(loaded.prior, colorizer.prior)
    for key, value in colorizer.network.state_dict().items():
        torch.testing.assert_close(loaded.network.state_dict()[key], value, atol=0, rtol=0)
    lightness = torch.rand(1, 1, 64, 64) * 100
    torch.testing.assert_close(
        loaded.predict_ab(lightness, temperature=0.38), colorizer.predict_ab(lightness, temperature=0.38), atol=0, rtol=0
    )
    frame = smooth_frame((50, 60), seed=2)
    np.testing.assert_array_equal(colorize(frame, model=loaded, device="cpu"), colorize(frame, model=colorizer, device="cpu"))
    # saving the loaded model again gives the same file contents
    again = tmp_path / "again.safetensors"
    save_checkpoint(loaded, again)
    resaved = load_checkpoint(again)
    np.testing.assert_array_equal(colorize(frame, model=resaved, device="cpu"), colorize(frame, model=loaded, device="cpu"))


def test_reload_after_overwrite(tmp_path):
    path = tmp_path / "model.safetensors"
    first = randomised(create_colorizer(width=8), seed=1)
    save_checkpoint(first, path)
    a = load_checkpoint(path)
    time.sleep(0.05)  # a new modification time
    second = randomised(create_colorizer(width=8), seed=2)
    save_checkpoint(second, path)
    b = load_checkpoint(path)
    assert b is not a and b.sha256 != a.sha256
    key = "head.2.weight"
    torch.testing.assert_close(b.network.state_dict()[key], second.network.state_dict()[key])


# --------------------------------------------------------------------------
# broken checkpoints
# --------------------------------------------------------------------------
@pytest.fixture
def good_checkpoint(tmp_path):
    path = tmp_path / "good.safetensors"
    save_checkpoint(randomised(create_colorizer(width=8)), path)
    return path


def rewrite_header(path, edit):
    """Rewrite a safetensors file with its JSON header changed by ``edit``."""
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + size :])


def test_missing_files_and_names(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(str(tmp_path / "folder" / "model"))
    with pytest.raises(CheckpointError, match="natural"):  # lists what is shipped
        load_checkpoint("no-such-model")
    assert issubclass(CheckpointError, ValueError)


def test_truncated_checkpoint(tmp_path, good_checkpoint):
    raw = good_checkpoint.read_bytes()
    for i, length in enumerate([len(raw) // 2, len(raw) - 1, 100, 5, 0]):
        path = tmp_path / f"truncated{i}.safetensors"
        path.write_bytes(raw[:length])
        with pytest.raises(CheckpointError):
            load_checkpoint(path)


def test_truncated_shipped_checkpoint(tmp_path):
    path = tmp_path / "natural.safetensors"
    shutil.copyfile(shipped_models_dir() / "natural.safetensors", path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) * 3 // 4])
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.safetensors"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    text = tmp_path / "text.safetensors"
    text.write_text("this is not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(text)


def test_foreign_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3, 3)}, str(path))
    with pytest.raises(CheckpointError, match="not a napari-colorize checkpoint"):
        load_checkpoint(path)
    save_file({"weight": torch.zeros(3, 3)}, str(path), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not a napari-colorize checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda h: h["__metadata__"].update(napari_colorize="{not json"), "metadata is not valid JSON"),
        (lambda h: h["__metadata__"].update(napari_colorize=json.dumps({"architecture": "other-net"})), "unsupported architecture"),
        (lambda h: h["__metadata__"].update(napari_colorize=json.dumps({"architecture": ARCHITECTURE})), "does not match"),
        # claims a wider network than its tensors
        (
            lambda h: h["__metadata__"].update(
                napari_colorize=json.dumps({**json.loads(h["__metadata__"]["napari_colorize"]), "width": 16})
            ),
            "does not match",
        ),
        (
            lambda h: h["__metadata__"].update(
                napari_colorize=json.dumps({**json.loads(h["__metadata__"]["napari_colorize"]), "head": "regression"})
            ),
            "does not match",
        ),
        # declares a geometry its architecture does not have
        (
            lambda h: h["__metadata__"].update(
                napari_colorize=json.dumps({**json.loads(h["__metadata__"]["napari_colorize"]), "tile_size": 256})
            ),
            "declares tile_size 256",
        ),
        (lambda h: h.pop("colorizer.bins"), None),
        (lambda h: h.pop("network.head.2.weight"), None),
        # a tensor whose declared shape disagrees with its bytes
        (lambda h: h["network.head.2.bias"].update(shape=[7]), "cannot read"),
    ],
    ids=["bad-json", "architecture", "no-head", "width", "head", "tile-size", "no-bins", "missing-tensor", "bad-shape"],
)
def test_tampered_checkpoint(good_checkpoint, edit, match):
    rewrite_header(good_checkpoint, edit)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(good_checkpoint)


def test_header_rewrite_helper_keeps_a_valid_file(good_checkpoint):
    rewrite_header(good_checkpoint, lambda h: None)
    assert load_checkpoint(good_checkpoint).head == "classification"


class _Marker:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("kind", ["pickle", "torch-save"])
def test_pickled_checkpoints_are_never_unpickled(tmp_path, tiny_file, kind):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.safetensors"
    if kind == "pickle":
        path.write_bytes(pickle.dumps(_Marker(marker)))
    else:
        torch.save({"weights": torch.zeros(3), "payload": _Marker(marker)}, path)
        marker.unlink(missing_ok=True)  # torch.save does not run it; be sure
    with pytest.raises(CheckpointError, match="not loaded, since unpickling can run code"):
        load_checkpoint(path)
    src = write_tiff(tmp_path / "in.tif", STACK[0])
    code, err = cli(path, src, tmp_path / "out.tif")
    assert_refused(code, err, "evil.safetensors", "pickle", output=tmp_path / "out.tif")
    assert not marker.exists()


def test_checkpoint_folder_empty_and_non_finite(tmp_path):
    folder = tmp_path / "folder.safetensors"
    folder.mkdir()
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(folder)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(empty)
    model = create_colorizer(width=8)
    with torch.no_grad():
        model.network.head[2].bias[0] = float("nan")
    path = tmp_path / "nan.safetensors"
    save_checkpoint(model, path)
    with pytest.raises(CheckpointError, match="non-finite values in network.head.2.bias"):
        load_checkpoint(path)


def test_checkpoint_of_another_width_works(tmp_path):
    path = tmp_path / "wide.safetensors"
    save_checkpoint(create_colorizer(width=4), path)
    assert colorize(STACK[0], model=load_checkpoint(path), device="cpu").shape == (40, 50, 3)


def test_a_safetensors_header_of_128_bytes_modulo_256_is_not_taken_for_a_pickle(tmp_path):
    """A safetensors file starts with its header length (8 bytes, little-endian):
    when that is 128 modulo 256 its first byte is 0x80, as a pickle's is."""
    import struct

    path = tmp_path / "model.safetensors"
    colorizer = create_colorizer(width=8)
    for pad in range(256):
        colorizer.metadata["pad"] = "x" * pad
        save_checkpoint(colorizer, path)
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a header length of 128 modulo 256")
    assert struct.unpack("<Q", path.read_bytes()[:8])[0] % 256 == 128
    assert load_checkpoint(path).metadata["pad"] == "x" * pad


@pytest.mark.parametrize("name", ["natural", "natural-regression", "natural-v1"])
def test_the_fast_layout_colours_as_torch_s_default_layout_does(name):
    """Networks run channels-last (faster on CPU): the decoded ab must be the
    default layout's to within 0.05 ab units on real image content."""
    import copy

    from skimage import data

    from napari_colorize.color import DEFAULT_TEMPERATURE, annealed_mean, gray_to_lightness
    from napari_colorize.colornet import HINT_CHANNELS

    model = load_checkpoint(name, device="cpu")
    assert model.network.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    plain = copy.deepcopy(model.network).to(memory_format=torch.contiguous_format)
    lightness = torch.from_numpy(gray_to_lightness(data.camera()[100:324, 150:374].astype(np.float32) / 255))[None, None]
    lightness = torch.cat([lightness, lightness.flip(-1)])
    with torch.inference_mode():
        extras = {}
        if model.extra_inputs:
            extras = {"hints": torch.zeros(2, HINT_CHANNELS, 224, 224), "context": model.encode_context(model.view_of(lightness))}
        fast, default = model.run_network(lightness, **extras), plain(lightness, **extras)
    bins = torch.as_tensor(model.bins)
    if model.head == "classification":
        fast, default = (annealed_mean(out, bins, temperature=DEFAULT_TEMPERATURE) for out in (fast, default))
    assert float((fast - default).abs().max()) < 0.05
