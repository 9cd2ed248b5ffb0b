"""Small shared fixtures for the core tests (no napari, no display, no network).

Images are made in the tests; models are either the shipped checkpoints or a
tiny untrained network (fast on CPU).
"""

from __future__ import annotations

import pytest

from helpers import make_color_folder


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Run torch on one intra-op thread: the small test networks gain nothing
    from more, and on a busy machine OpenMP threads waiting for each other made
    the training tests ~20x slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session", autouse=True)
def _graph_cache_in_a_temporary_folder(tmp_path_factory):
    """OpenVINO's compiled graphs go to a folder of the test run, not the user's
    cache (the variable reaches the commands the tests run in subprocesses too)."""
    import os

    from napari_colorize.int8_runtime import CACHE_VARIABLE

    previous = os.environ.get(CACHE_VARIABLE)
    os.environ[CACHE_VARIABLE] = str(tmp_path_factory.mktemp("openvino-cache"))
    yield
    if previous is None:
        os.environ.pop(CACHE_VARIABLE)
    else:
        os.environ[CACHE_VARIABLE] = previous


@pytest.fixture(scope="session")
def tiny_model():
    """An untrained, narrow classification colorizer in eval mode (deterministic init)."""
    import torch

    from napari_colorize.model import create_colorizer

    torch.manual_seed(1234)
    colorizer = create_colorizer(width=8)
    colorizer.network.eval()
    return colorizer


@pytest.fixture(scope="session")
def natural():
    """The shipped ``natural``, the full network the default is distilled from."""
    from napari_colorize.model import load_checkpoint

    return load_checkpoint("natural", device="cpu")


@pytest.fixture(scope="session")
def natural_v1():
    """The shipped first-generation model: lightness in, nothing else."""
    from napari_colorize.model import load_checkpoint

    return load_checkpoint("natural-v1", device="cpu")


@pytest.fixture
def colour_folder(tmp_path):
    """A folder of 3 small colour images."""
    return make_color_folder(tmp_path / "colour", count=3, size=64)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    """A tiny untrained checkpoint, for --model."""
    import torch

    from napari_colorize.model import create_colorizer, save_checkpoint

    torch.manual_seed(5)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_checkpoint(create_colorizer(width=8), path)
    return path


@pytest.fixture(scope="module")
def stack():
    """Three uint16 frames of 150 x 230: a stack for lazy, streamed and distributed runs."""
    import numpy as np

    rng = np.random.default_rng(3)
    base = rng.integers(0, 4000, (3, 150, 230)).astype(np.uint16)
    return base


@pytest.fixture(scope="session")
def default_model():
    """The shipped default model (``natural-lean``)."""
    from napari_colorize.checkpoint_files import DEFAULT_MODEL
    from napari_colorize.model import load_checkpoint

    return load_checkpoint(DEFAULT_MODEL, device="cpu")


@pytest.fixture(scope="module")
def reference(stack, natural):
    """``stack`` colorized in memory by ``natural``."""
    from napari_colorize import colorize

    return colorize(stack, model=natural, device="cpu")


@pytest.fixture(scope="module")
def training_folder(tmp_path_factory):
    """6 colour images, plus 3 that must be skipped: grayscale (mode L), an RGB
    file holding a gray picture, and a corrupt file; and a non-image file."""
    import numpy as np
    from PIL import Image

    folder = make_color_folder(tmp_path_factory.mktemp("train") / "images", count=6, size=96, gray=1)
    gray_rgb = np.repeat(np.linspace(0, 255, 96 * 96).reshape(96, 96, 1), 3, axis=2).astype(np.uint8)
    (folder / "nested").mkdir()
    Image.fromarray(gray_rgb, "RGB").save(folder / "nested" / "gray_rgb.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture
def private_settings(tmp_path, monkeypatch):
    """Keep the widget's remembered settings, and the models trained in
    napari, in a temporary folder, never the user's."""
    from napari_colorize import checkpoint_files, settings

    path = tmp_path / "config" / "widget.json"
    monkeypatch.setattr(settings, "settings_file", lambda: path)
    monkeypatch.setattr(checkpoint_files, "user_models_dir", lambda: tmp_path / "user-models")
    return path


@pytest.fixture
def viewer(make_napari_viewer_proxy):
    return make_napari_viewer_proxy()


@pytest.fixture
def widget(viewer):
    """The Colorize dock widget, opened the way napari opens it: from the plugin manifest."""
    _dock, plugin_widget = viewer.window.add_plugin_dock_widget("napari-colorize", "Colorize")
    plugin_widget.device.value = "cpu"
    return plugin_widget


@pytest.fixture
def gray_png(tmp_path):
    """A 50 x 64 grayscale PNG with smooth structure, and its pixels."""
    import numpy as np
    from helpers import smooth_frame
    from PIL import Image

    frame = smooth_frame((50, 64), seed=7, low=0, high=255).round().astype(np.uint8)
    path = tmp_path / "gray.png"
    Image.fromarray(frame, "L").save(path)
    return path, frame
