"""The napari dock widget, driven as a user would (under Xvfb, model on CPU).

Images are small so the model runs in well under a second per run. Each run
happens in a worker thread; tests wait for it with ``qtbot.waitUntil``.
"""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("napari")

from helpers import recording_dask

from napari_colorize import __version__, colorize
from napari_colorize._widget import CHECKPOINT_FILE_CHOICE, METADATA_KEY, PREVIEW_WORKING_PIXELS, ColorizeWidget
from napari_colorize.checkpoint_files import DEFAULT_MODEL
from napari_colorize.color import to_luminance

RUN_TIMEOUT_MS = 120_000


pytestmark = pytest.mark.usefixtures("private_settings")


@pytest.fixture
def notifications(monkeypatch):
    """Collect napari notifications shown by the widget: {'error': [...], 'warning': [...], 'info': [...]}."""
    import napari.utils.notifications as notes

    shown = {"error": [], "warning": [], "info": []}
    for kind in shown:
        monkeypatch.setattr(notes, f"show_{kind}", lambda message, kind=kind: shown[kind].append(message))
    return shown


@pytest.fixture
def first_batch_gate(monkeypatch):
    """Hold the worker inside its first batch of tiles until the test sets
    ``release``: ``reached`` is set once it is there, ``tiles`` counts the
    tiles of every batch predicted. Makes cancel tests independent of how
    fast the worker runs and when the GUI thread gets to run."""
    from napari_colorize.model import Colorizer

    gate = SimpleNamespace(reached=threading.Event(), release=threading.Event(), tiles=[])
    predict = Colorizer.predict_ab

    def held(self, lightness, *args, **kwargs):
        gate.tiles.append(int(lightness.shape[0]))
        if len(gate.tiles) == 1:
            gate.reached.set()
            if not gate.release.wait(RUN_TIMEOUT_MS / 1000):
                raise RuntimeError("the test never released the worker")
        return predict(self, lightness, *args, **kwargs)

    monkeypatch.setattr(Colorizer, "predict_ab", held)
    yield gate
    gate.release.set()  # never leave a worker waiting


def notices(shown) -> list[str]:
    return shown["info"] + shown["warning"] + shown["error"]


def smooth_image(shape, *, seed=0, dtype=np.uint16) -> np.ndarray:
    """Smooth blobs on a gradient, scaled to 0..4000."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij")
    image = 0.3 * grid[-1]
    for _ in range(6):
        centre = rng.uniform(0, 1, len(shape))
        image = image + np.exp(-sum((g - c) ** 2 for g, c in zip(grid, centre)) / 0.02)
    return (4000 * image / image.max()).astype(dtype)


def run_and_wait(qtbot, widget: ColorizeWidget, action: str = "run") -> None:
    getattr(widget, action)()
    qtbot.waitUntil(lambda: not widget.running, timeout=RUN_TIMEOUT_MS)


def outputs(viewer, kind="result"):
    return [layer for layer in viewer.layers if layer.metadata.get(METADATA_KEY, {}).get("kind") == kind]


def assert_same_world_position(output, source, output_points, source_points):
    for out_point, src_point in zip(output_points, source_points):
        np.testing.assert_allclose(output.data_to_world(out_point), source.data_to_world(src_point), atol=1e-9)


# ---------------------------------------------------------------- opening and choices


def test_widget_opens_from_manifest_and_sits_in_the_visualize_menu(viewer, widget):
    import npe2

    assert isinstance(widget, ColorizeWidget)
    manifest = npe2.PluginManager.instance().get_manifest("napari-colorize")
    # napari's menu guidance: Layers > Visualize makes a view of a layer without changing its data
    commands = {item.command for item in manifest.contributions.menus["napari/layers/visualize"]}
    assert "napari-colorize.make_colorize_widget" in commands
    assert widget.run_button.enabled and not widget.cancel_button.enabled


def test_the_widget_runs_on_the_qt_binding_asked_for(widget):
    """tox's qt5 and qt6 environments name a binding; the widget must run on
    that one, not on another that happens to be installed beside it."""
    import os

    import qtpy

    asked = os.environ.get("QT_API")
    if not asked:
        pytest.skip("no QT_API named")
    assert qtpy.API_NAME.lower() == asked.lower()


def test_only_image_layers_are_offered(viewer, widget):
    gray = viewer.add_image(smooth_image((40, 50)), name="gray")
    rgb = viewer.add_image(np.zeros((40, 50, 3), np.uint8), name="rgb", rgb=True)
    viewer.add_labels(np.zeros((40, 50), int), name="labels")
    viewer.add_points(np.zeros((2, 2)), name="points")
    viewer.add_shapes([np.array([[0, 0], [5, 5], [0, 5]])], shape_type="polygon", name="shapes")
    viewer.add_image(np.zeros((40, 50, 3), np.uint8), name="made", rgb=True, metadata={METADATA_KEY: {"kind": "result"}})
    offered = [layer.name for layer in widget.input_layer.choices]
    assert sorted(offered) == sorted([gray.name, rgb.name])
    viewer.layers.remove("gray")
    assert [layer.name for layer in widget.input_layer.choices] == ["rgb"]


def test_device_chooser_offers_auto_and_cpu_and_says_what_runs(widget):
    assert {"auto", "cpu"} <= set(widget.device.choices)
    widget.device.value = "auto"
    assert widget.device_info.value.startswith("runs on ")
    widget.device.value = "cpu"
    assert widget.device_info.value == "runs on cpu"


# ---------------------------------------------------------------- runs


def test_run_on_2d_layer_adds_a_faithful_rgb_layer(qtbot, viewer, widget):
    image = smooth_image((150, 130))
    source = viewer.add_image(image, name="frame", scale=(0.5, 0.25), translate=(10, -5), units=("µm", "µm"), axis_labels=("row", "col"))
    widget.temperature.value = 0.3
    run_and_wait(qtbot, widget)

    (output,) = outputs(viewer)
    assert output.name == "frame colorized"
    assert output.rgb and output.data.shape == (150, 130, 3) and output.data.dtype == np.uint8
    np.testing.assert_allclose(output.scale, source.scale)
    np.testing.assert_allclose(output.translate, source.translate)
    assert output.units == source.units and output.axis_labels == source.axis_labels
    np.testing.assert_array_equal(output.data, colorize(image, temperature=0.3, device="cpu"))

    made = output.metadata[METADATA_KEY]
    assert made["predicted"] is True and "predicted" in made["note"] and "not measured" in made["note"]
    assert made["model"] == DEFAULT_MODEL and len(made["model_sha256"]) == 64
    assert made["napari_colorize_version"] == __version__
    assert made["parameters"]["temperature"] == pytest.approx(0.3)
    assert {"scale", "overlap", "normalize", "percentiles", "batch_size", "device"} <= set(made["parameters"])
    assert made["device_used"] == "cpu" and made["precision_used"] == "int8"  # the default model's int8 companion, on a CPU
    assert "Done" in widget.status.value and "on cpu (int8)" in widget.status.value and widget.run_button.enabled


def test_every_frame_of_a_stack_lands_on_the_same_slider(qtbot, viewer, widget):
    stack = smooth_image((3, 64, 72), dtype=np.float32)
    source = viewer.add_image(stack, name="stack", scale=(2.0, 0.5, 0.5), translate=(1.0, 10.0, 20.0))
    widget.frames.value = "all"
    steps = []
    show_progress = widget._show_progress

    def record_progress(done, total):
        show_progress(done, total)
        steps.append(widget.status.value)

    widget._show_progress = record_progress
    run_and_wait(qtbot, widget)

    (output,) = outputs(viewer)
    assert output.data.shape == (3, 64, 72, 3) and output.ndim == source.ndim == 3
    np.testing.assert_allclose(output.scale, source.scale)
    np.testing.assert_allclose(output.translate, source.translate)
    np.testing.assert_allclose(output.extent.world, source.extent.world)
    assert viewer.dims.nsteps[0] == 3
    assert steps == ["frame 1/3, tile 1/1", "frame 2/3, tile 1/1", "frame 3/3, tile 1/1"]


def test_current_slice_lands_on_its_own_frame_even_when_rotated(qtbot, viewer, widget):
    stack = smooth_image((4, 48, 56))
    source = viewer.add_image(stack, name="turned", scale=(3.0, 0.5, 0.7), translate=(2.0, 5.0, -4.0), rotate=30)
    viewer.dims.set_point(0, source.data_to_world((2, 0, 0))[0])
    widget.frames.value = "current"
    run_and_wait(qtbot, widget)

    (output,) = outputs(viewer)
    assert output.data.shape == (1, 48, 56, 3)
    assert_same_world_position(output, source, [(0, 0, 0), (0, 47, 55), (0, 10, 3)], [(2, 0, 0), (2, 47, 55), (2, 10, 3)])
    np.testing.assert_array_equal(output.rotate, source.rotate)
    np.testing.assert_array_equal(output.data[0], colorize(stack[2], device="cpu"))


def test_rgb_layer_is_colorized_from_its_luminance(qtbot, viewer, widget):
    rgb = np.stack([smooth_image((60, 70), seed=s, dtype=np.float32) / 4000 * 255 for s in range(3)], axis=-1).astype(np.uint8)
    viewer.add_image(rgb, name="photo", rgb=True)
    run_and_wait(qtbot, widget)

    (output,) = outputs(viewer)
    assert output.data.shape == (60, 70, 3)
    assert output.metadata[METADATA_KEY]["input"] == "luminance of an RGB layer"
    np.testing.assert_array_equal(output.data, colorize(to_luminance(rgb), device="cpu"))


def test_rerun_replaces_the_output_unless_copies_are_kept(qtbot, viewer, widget):
    viewer.add_image(smooth_image((50, 60)), name="img")
    run_and_wait(qtbot, widget)
    first = outputs(viewer)[0]
    first.opacity = 0.5
    before = np.array(first.data)
    widget.temperature.value = 0.2
    run_and_wait(qtbot, widget)
    (replaced,) = outputs(viewer)  # the new result, shown as the earlier one was
    assert replaced.opacity == 0.5 and not np.array_equal(replaced.data, before)
    assert replaced.metadata["napari_colorize"]["parameters"]["temperature"] == 0.2
    widget.keep_copies.value = True
    run_and_wait(qtbot, widget)
    assert len(outputs(viewer)) == 2


def test_a_second_run_is_refused_while_one_is_running(qtbot, viewer, widget, notifications):
    viewer.add_image(smooth_image((2, 300, 300)), name="big")
    widget.frames.value = "all"
    widget.run()
    assert widget.running and not widget.run_button.enabled and not widget.preview_button.enabled
    assert widget.cancel_button.enabled
    widget.run()
    assert any("already running" in message for message in notifications["info"])
    qtbot.waitUntil(lambda: not widget.running, timeout=RUN_TIMEOUT_MS)
    assert len(outputs(viewer)) == 1 and widget.run_button.enabled


# ---------------------------------------------------------------- cancel and errors


def test_cancel_stops_within_a_batch_and_adds_nothing(qtbot, viewer, widget, notifications, first_batch_gate):
    """Cancel pressed while the worker is inside its first batch: that batch
    ends, no other starts, and nothing is added. The worker is held there by
    the gate, so this does not depend on timing."""
    from qtpy.QtCore import QTimer

    viewer.add_image(smooth_image((3, 700, 700)), name="large")  # 3 frames of 16 tiles
    widget.frames.value = "all"
    widget.run()
    qtbot.waitUntil(first_batch_gate.reached.is_set, timeout=RUN_TIMEOUT_MS)
    # the GUI event loop runs while the worker computes
    ticked = []
    QTimer.singleShot(0, lambda: ticked.append(True))
    qtbot.waitUntil(lambda: bool(ticked), timeout=5000)
    assert widget.running and widget.cancel_button.enabled and not widget.run_button.enabled

    widget.cancel()
    first_batch_gate.release.set()
    qtbot.waitUntil(lambda: not widget.running, timeout=RUN_TIMEOUT_MS)

    assert len(first_batch_gate.tiles) == 1, f"batches after the cancel: {first_batch_gate.tiles}"
    assert first_batch_gate.tiles[0] <= widget.colorize_options().batch_size
    assert outputs(viewer) == []
    assert widget.status.value.startswith("Cancelled")
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    assert any("cancelled" in message for message in notifications["info"])
    assert notifications["error"] == []


def test_bad_checkpoint_is_reported_and_the_widget_stays_usable(qtbot, viewer, widget, notifications, tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"this is not a checkpoint")
    viewer.add_image(smooth_image((40, 40)), name="img")
    assert widget.checkpoint.native.isHidden()
    widget.model.value = CHECKPOINT_FILE_CHOICE
    assert not widget.checkpoint.native.isHidden()
    widget.checkpoint.value = broken
    run_and_wait(qtbot, widget)

    assert outputs(viewer) == []
    assert len(notifications["error"]) == 1 and "CheckpointError" in notifications["error"][0]
    assert widget.status.value.startswith("Failed") and widget.run_button.enabled

    widget.model.value = "natural"
    run_and_wait(qtbot, widget)
    assert len(outputs(viewer)) == 1


def test_choosing_checkpoint_file_without_a_file_is_reported(viewer, widget, notifications):
    viewer.add_image(smooth_image((40, 40)), name="img")
    widget.model.value = CHECKPOINT_FILE_CHOICE
    widget.run()
    assert not widget.running
    assert any("checkpoint" in message for message in notifications["error"])


def test_run_without_input_is_reported(widget, notifications):
    widget.run()
    assert not widget.running and "no input" in notifications["error"][0]


# ---------------------------------------------------------------- settings and preview


def test_settings_are_remembered_between_runs(qtbot, viewer, widget, private_settings):
    viewer.add_image(smooth_image((40, 40)), name="img")
    widget.scale.value = 0.5
    widget.overlap.value = 48
    widget.temperature.value = 0.2
    widget.normalize.value = "stack"
    widget.frames.value = "all"
    widget.keep_copies.value = True
    run_and_wait(qtbot, widget)
    assert private_settings.is_file()

    again = ColorizeWidget(viewer)
    assert (again.scale.value, again.overlap.value, again.temperature.value) == (0.5, 48, pytest.approx(0.2))
    assert (again.normalize.value, again.frames.value, again.keep_copies.value, again.device.value) == ("stack", "all", True, "cpu")


def write_settings(path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")


@pytest.fixture
def default_settings(viewer, notifications):
    """What a widget starts with when nothing is remembered (and no notice then)."""
    values = ColorizeWidget(viewer).settings()
    assert notices(notifications) == [], "a missing settings file is normal: no notice"
    return values


@pytest.mark.parametrize(
    "content",
    ["{not json", "", "[1, 2, 3]", '"scale"', "null", b"\xff\xfe\x00\x81 not text"],
    ids=["bad-json", "empty", "a-list", "a-string", "null", "not-utf8"],
)
def test_an_unusable_settings_file_is_ignored_with_a_notice(viewer, notifications, private_settings, default_settings, content):
    write_settings(private_settings, content)
    widget = ColorizeWidget(viewer)  # does not raise
    assert widget.settings() == default_settings
    assert any("widget.json" in message for message in notices(notifications)), notifications


def test_remembered_values_of_the_wrong_type_are_ignored_with_a_notice(viewer, notifications, private_settings, default_settings):
    bad = {"scale": "abc", "device": 5, "keep_copies": "yes", "frames": 3, "normalize": ["stack"], "model": None, "overlap": 4.5}
    write_settings(private_settings, {**bad, "temperature": 0.2})
    widget = ColorizeWidget(viewer)

    current = widget.settings()
    for name in bad:
        assert current[name] == default_settings[name], name
    assert current["temperature"] == pytest.approx(0.2)  # a good value next to bad ones still counts
    (message,) = notices(notifications)
    assert "widget.json" in message
    for name in bad:
        assert name in message


@pytest.mark.parametrize(
    "bad",
    [
        {"scale": 1e9},
        {"scale": -1.0},
        {"overlap": -5},
        {"overlap": 10_000},
        {"temperature": 0},
        {"temperature": float("nan")},
        {"device": "cuda:7"},
    ],
    ids=["huge-scale", "negative-scale", "negative-overlap", "huge-overlap", "zero-temperature", "nan-temperature", "gone-gpu"],
)
def test_remembered_values_out_of_range_are_ignored_with_a_notice(viewer, notifications, private_settings, default_settings, bad):
    write_settings(private_settings, json.dumps(bad))  # NaN written as json writes it
    widget = ColorizeWidget(viewer)
    ((name, _),) = bad.items()
    assert widget.settings()[name] == default_settings[name]
    assert any(name in message and "widget.json" in message for message in notices(notifications)), notifications


def test_a_remembered_checkpoint_that_is_gone_is_ignored_with_a_notice(viewer, notifications, private_settings, default_settings, tmp_path):
    kept = tmp_path / "kept.safetensors"
    kept.write_bytes(b"whatever: only its existence is checked when settings are restored")
    write_settings(private_settings, {"model": CHECKPOINT_FILE_CHOICE, "checkpoint": str(kept)})
    assert str(ColorizeWidget(viewer).checkpoint.value) == str(kept)  # an existing file is restored
    assert notices(notifications) == []

    gone = tmp_path / "deleted since" / "gone.safetensors"
    write_settings(private_settings, {"model": CHECKPOINT_FILE_CHOICE, "checkpoint": str(gone)})
    widget = ColorizeWidget(viewer)
    assert widget.settings()["checkpoint"] == default_settings["checkpoint"]
    assert any("gone.safetensors" in message for message in notices(notifications)), notifications


def test_unknown_remembered_names_are_skipped_quietly(viewer, notifications, private_settings, default_settings):
    """Settings of another version of the plugin: no notice for names it does not know."""
    write_settings(private_settings, {"an_option_from_the_future": 3, "overlap": 48})
    widget = ColorizeWidget(viewer)
    assert widget.settings() == {**default_settings, "overlap": 48}
    assert notices(notifications) == []


def test_settings_saved_by_the_widget_restore_without_a_notice_again_and_again(viewer, notifications, private_settings):
    from napari_colorize.settings import save_settings

    for _ in range(3):  # no drift: e.g. an empty checkpoint chooser must not become the current folder
        save_settings(ColorizeWidget(viewer).settings())
    assert ColorizeWidget(viewer).settings()["checkpoint"] == ""
    assert notices(notifications) == []


def test_preview_colorizes_only_the_region_in_view(qtbot, viewer, widget):
    image = smooth_image((400, 500))
    source = viewer.add_image(image, name="wide", scale=(2.0, 2.0), translate=(100.0, -50.0))
    viewer.scene.camera.zoom = 4.0
    viewer.scene.camera.center = tuple(source.data_to_world((200, 250)))
    run_and_wait(qtbot, widget, "preview")

    (preview,) = outputs(viewer, "preview")
    assert outputs(viewer) == [] and preview.name == "wide preview"
    rows, cols = preview.metadata[METADATA_KEY]["region"]
    assert 0 < rows[0] < 200 < rows[1] < 400 and 0 < cols[0] < 250 < cols[1] < 500
    assert preview.data.shape == (rows[1] - rows[0], cols[1] - cols[0], 3)
    assert_same_world_position(preview, source, [(0, 0), (5, 7)], [(rows[0], cols[0]), (rows[0] + 5, cols[0] + 7)])
    # the canvas shows height x width screen pixels at 4 screen pixels per world unit
    height, width = viewer.canvas.size
    assert abs((rows[1] - rows[0]) - height / 4 / 2) <= 2 and abs((cols[1] - cols[0]) - width / 4 / 2) <= 2

    run_and_wait(qtbot, widget, "preview")
    assert len(outputs(viewer, "preview")) == 1


def test_preview_of_a_large_view_caps_the_working_size(qtbot, viewer, widget):
    image = smooth_image((1024, 1024), dtype=np.uint8)
    source = viewer.add_image(image, name="large", scale=(0.5, 0.5))
    viewer.reset_view()
    run_and_wait(qtbot, widget, "preview")

    (preview,) = outputs(viewer, "preview")
    made = preview.metadata[METADATA_KEY]
    # 416^2 working pixels of a 1024^2 view: every 2nd pixel, at 0.81 of that
    assert made["preview_step"] == 2 and preview.data.shape == (512, 512, 3)
    assert made["parameters"]["scale"] == pytest.approx(2 * np.sqrt(PREVIEW_WORKING_PIXELS / 1024**2))
    assert made["preview_scale_reduced_from"] == 1.0
    assert_same_world_position(preview, source, [(0, 0), (100, 7)], [(0, 0), (200, 14)])
    np.testing.assert_array_equal(preview.data, colorize(image[::2, ::2], scale=made["parameters"]["scale"], device="cpu"))


def test_preview_when_the_layer_is_out_of_view(viewer, widget, notifications):
    viewer.add_image(smooth_image((50, 50)), name="small")
    viewer.scene.camera.center = (0.0, 5000.0, 5000.0)
    viewer.scene.camera.zoom = 10.0
    widget.preview()
    assert not widget.running and any("not in view" in message for message in notifications["info"])


# ---------------------------------------------------------------- lazy, multiscale and huge layers


def test_every_frame_of_a_dask_stack_is_read_one_frame_at_a_time(qtbot, viewer, widget):
    stack = smooth_image((5, 64, 72))
    reads = []
    viewer.add_image(recording_dask(stack, reads), name="lazy")
    widget.frames.value = "all"
    reads.clear()  # napari's own reads for display
    run_and_wait(qtbot, widget)

    (output,) = outputs(viewer)
    assert isinstance(output.data, np.ndarray) and output.data.shape == (5, 64, 72, 3)
    np.testing.assert_array_equal(output.data, colorize(stack, device="cpu"))
    # five computations of one frame each: the stack is never read whole
    assert sorted(shape for _, shape in reads) == [(1, 64, 72)] * 5
    assert len({computation for computation, _ in reads}) == 5


def test_a_result_too_large_for_memory_is_kept_in_a_file(qtbot, viewer, widget, monkeypatch, tmp_path):
    from napari_colorize import output_store

    monkeypatch.setattr(output_store, "in_memory_limit", lambda: 1000)
    monkeypatch.setattr(output_store, "cache_folder", lambda: tmp_path / "cache")
    stack = smooth_image((3, 40, 50))
    viewer.add_image(stack, name="big")
    widget.frames.value = "all"
    run_and_wait(qtbot, widget)

    (output,) = outputs(viewer)
    stored = output.metadata[METADATA_KEY]["stored_in"]
    assert isinstance(output.data, np.memmap) and stored.startswith(str(tmp_path / "cache"))
    np.testing.assert_array_equal(np.load(stored, mmap_mode="r"), colorize(stack, device="cpu"))
    assert "kept in" in widget.status.value


def test_cancelled_run_leaves_no_file_behind(qtbot, viewer, widget, monkeypatch, tmp_path, first_batch_gate):
    from napari_colorize import output_store

    monkeypatch.setattr(output_store, "in_memory_limit", lambda: 1000)
    monkeypatch.setattr(output_store, "cache_folder", lambda: tmp_path / "cache")
    viewer.add_image(smooth_image((6, 300, 300)), name="big")
    widget.frames.value = "all"
    widget.run()
    qtbot.waitUntil(first_batch_gate.reached.is_set, timeout=RUN_TIMEOUT_MS)
    assert list((tmp_path / "cache").glob("*")), "the result file is made before the first batch"
    widget.cancel()
    first_batch_gate.release.set()
    qtbot.waitUntil(lambda: not widget.running, timeout=RUN_TIMEOUT_MS)

    assert outputs(viewer) == [] and "Cancelled" in widget.status.value
    assert list((tmp_path / "cache").glob("*")) == []


def test_multiscale_layer_gives_a_multiscale_result(qtbot, viewer, widget):
    full = smooth_image((300, 260))
    pyramid = [full, full[::2, ::2], full[::4, ::4]]
    source = viewer.add_image(pyramid, name="pyramid", multiscale=True, scale=(0.5, 0.5), translate=(3.0, 4.0))
    run_and_wait(qtbot, widget)

    (output,) = outputs(viewer)
    assert output.multiscale and [level.shape[:2] for level in output.data] == [level.shape for level in pyramid]
    np.testing.assert_array_equal(output.data[0], colorize(full, device="cpu"))
    np.testing.assert_array_equal(output.data[2], output.data[0][::4, ::4])
    np.testing.assert_allclose(output.extent.world, source.extent.world)
    assert "2 levels" not in widget.input_info.value and "3 levels" in widget.input_info.value


def test_preview_of_a_zoomed_out_multiscale_layer_reads_a_coarse_level(qtbot, viewer, widget):
    full = smooth_image((2048, 2048), dtype=np.uint8)
    reads = []
    pyramid = [recording_dask(full, reads)] + [full[:: 2**k, :: 2**k] for k in range(1, 5)]
    source = viewer.add_image(pyramid, name="pyramid", multiscale=True)
    viewer.reset_view()
    reads.clear()
    run_and_wait(qtbot, widget, "preview")

    (preview,) = outputs(viewer, "preview")
    made = preview.metadata[METADATA_KEY]
    assert reads == [] and made["multiscale_level"] >= 2  # full resolution never read
    level = made["multiscale_level"]
    assert preview.data.shape == (*pyramid[level].shape, 3)
    np.testing.assert_allclose(preview.extent.world, source.extent.world, atol=2 ** level)


def test_a_lazy_layer_that_fails_to_read_is_reported_and_leaves_no_file(qtbot, viewer, widget, notifications, monkeypatch, tmp_path):
    """A dask frame that cannot be read (a file gone from a network share...)
    mid-run: one notification, no layer, no half-written result file."""
    import dask.array as da

    from napari_colorize import output_store

    monkeypatch.setattr(output_store, "in_memory_limit", lambda: 0)
    monkeypatch.setattr(output_store, "cache_folder", lambda: tmp_path / "cache")
    stack = smooth_image((3, 40, 50))

    def read(block, block_info=None):
        if block_info[0]["chunk-location"][0] == 2 and widget.running:  # napari may show it; the run may not read it
            raise OSError("share unavailable")
        return block

    viewer.add_image(da.from_array(stack, chunks=(1, 40, 50)).map_blocks(read, dtype=stack.dtype), name="remote")
    widget.frames.value = "all"
    run_and_wait(qtbot, widget)

    assert outputs(viewer) == [] and widget.run_button.enabled
    assert len(notifications["error"]) == 1 and "share unavailable" in notifications["error"][0]
    assert list((tmp_path / "cache").glob("*")) == []


def test_the_chosen_model_is_described_under_the_chooser(widget, tmp_path, tiny_file):
    from napari_colorize.model_info import describe_model

    controls = list(widget)
    assert controls.index(widget.model_info) == controls.index(widget.checkpoint) + 1 == controls.index(widget.model) + 2
    assert widget.model_info.value == describe_model(widget.model.value).summary()
    widget.model.value = "natural-v1"
    text = widget.model_info.value
    assert text == describe_model("natural-v1").summary()
    assert "Domain: " in text and "Trained on: " in text and "Terms: " in text and "first generation" in text
    widget.model.value = CHECKPOINT_FILE_CHOICE
    assert widget.model_info.value == "Choose a .safetensors checkpoint file, or pick a shipped model."
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"this is not a checkpoint")
    widget.checkpoint.value = broken
    assert widget.model_info.value.startswith("Cannot read checkpoint") and "Traceback" not in widget.model_info.value
    widget.checkpoint.value = tiny_file  # a file that records nothing says so
    assert widget.model_info.value.startswith("No description recorded.\nDomain: not recorded.")


# ---------------------------------------------------------------- uncertainty layer


def uncertainty_outputs(viewer, kind="result"):
    return [layer for layer in outputs(viewer, kind) if layer.metadata[METADATA_KEY].get("shows") == "uncertainty"]


def test_uncertainty_layer_sits_exactly_on_the_result(qtbot, viewer, widget, private_settings):
    stack = smooth_image((3, 64, 72), dtype=np.float32)
    viewer.add_image(stack, name="stack", scale=(2.0, 0.5, 0.25), translate=(1.0, 10.0, -5.0), units=("s", "µm", "µm"))
    viewer.dims.set_point(0, 1.0 + 2.0 * 2)  # the third frame
    assert not widget.uncertainty_layer.value, "off by default"
    widget.uncertainty_layer.value = True
    run_and_wait(qtbot, widget)

    (uncertainty,) = uncertainty_outputs(viewer)
    (result,) = [layer for layer in outputs(viewer) if layer is not uncertainty]
    assert uncertainty.name == "stack uncertainty" and not uncertainty.rgb
    assert uncertainty.data.shape == (1, 64, 72) and uncertainty.data.dtype == np.float32
    rgb, expected = colorize(stack[2], device="cpu", uncertainty=True)
    np.testing.assert_array_equal(result.data[0], rgb)
    np.testing.assert_array_equal(uncertainty.data[0], expected)
    assert uncertainty.colormap.name == "magma" and tuple(uncertainty.contrast_limits) == (0.0, 1.0)
    np.testing.assert_allclose(uncertainty.scale, result.scale)
    np.testing.assert_allclose(uncertainty.translate, result.translate)
    assert uncertainty.units == result.units
    made = uncertainty.metadata[METADATA_KEY]
    assert "normalised entropy" in made["uncertainty"] and "0 certain" in made["uncertainty"] and made["model"] == DEFAULT_MODEL

    run_and_wait(qtbot, widget)  # a rerun replaces both layers
    assert len(uncertainty_outputs(viewer)) == 1 and len(outputs(viewer)) == 2
    assert ColorizeWidget(viewer).uncertainty_layer.value, "the choice is remembered"


def test_a_preview_gets_its_own_uncertainty_layer_on_the_preview(qtbot, viewer, widget):
    viewer.add_image(smooth_image((400, 500)), name="big", scale=(0.5, 0.5), translate=(7.0, -3.0))
    viewer.scene.camera.center = (60.0, 80.0)
    viewer.scene.camera.zoom = 8.0
    widget.uncertainty_layer.value = True
    run_and_wait(qtbot, widget, "preview")

    (uncertainty,) = uncertainty_outputs(viewer, "preview")
    (preview,) = [layer for layer in outputs(viewer, "preview") if layer is not uncertainty]
    assert uncertainty.name == "big preview uncertainty" and uncertainty.data.shape == preview.data.shape[:-1]
    np.testing.assert_allclose(uncertainty.scale, preview.scale)
    np.testing.assert_allclose(uncertainty.translate, preview.translate)
    assert outputs(viewer) == [], "a preview is not a result"


def test_multiscale_result_gets_a_multiscale_uncertainty(qtbot, viewer, widget):
    full = smooth_image((300, 260))
    viewer.add_image([full, full[::2, ::2]], name="pyramid", multiscale=True, scale=(0.5, 0.5))
    widget.uncertainty_layer.value = True
    run_and_wait(qtbot, widget)

    (uncertainty,) = uncertainty_outputs(viewer)
    assert uncertainty.multiscale and [level.shape for level in uncertainty.data] == [(300, 260), (150, 130)]
    np.testing.assert_array_equal(uncertainty.data[1], uncertainty.data[0][::2, ::2])


def test_a_regression_model_offers_no_uncertainty_layer_and_says_why(qtbot, viewer, widget, notifications):
    viewer.add_image(smooth_image((40, 50)), name="frame")
    widget.uncertainty_layer.value = True
    widget.model.value = "natural-regression"
    assert not widget.uncertainty_layer.enabled
    assert "natural-regression is a regression model" in widget.uncertainty_info.value
    run_and_wait(qtbot, widget)
    assert uncertainty_outputs(viewer) == [] and len(outputs(viewer)) == 1
    assert notifications["error"] == []

    widget.model.value = "natural"
    assert widget.uncertainty_layer.enabled and widget.uncertainty_info.value == ""

