"""A colorization job of the widget, run and recorded without napari or Qt."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_colorize import __version__, colorize, output_store
from napari_colorize.jobs import ColorizeOutcome, ColorizeRequest, output_metadata, output_name, progress_text, run_request
from napari_colorize.model import CheckpointError
from napari_colorize.options import ColorizeOptions
from napari_colorize.provenance import METADATA_KEY, PREDICTED_NOTE, provenance

from helpers import smooth_frame


def request_for(data, options: ColorizeOptions, *, index=None, kind="result", **fields) -> ColorizeRequest:
    """A request on ``data`` as the widget would capture it (placement left out)."""
    index = index if index is not None else tuple(slice(0, n) for n in data.shape)
    values = dict(rgb_input=False, kind=kind, layer_name="cells", layer_id="id-1", placement={}, frames="all")
    return ColorizeRequest(data=data, index=index, options=options, **{**values, **fields})


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """Results go to memory-mapped files in a temporary folder."""
    folder = tmp_path / "cache"
    monkeypatch.setattr(output_store, "in_memory_limit", lambda: 0)
    monkeypatch.setattr(output_store, "cache_folder", lambda: folder)
    return folder


def never(*_args):
    return False


def test_a_request_runs_into_the_same_result_as_colorize(tiny_model, cache):
    stack = np.stack([smooth_frame((40, 48), seed=s) for s in range(2)])
    options = ColorizeOptions(model=tiny_model, device="cpu", temperature=0.3)
    steps = []
    outcome = run_request(request_for(stack, options), progress=lambda done, total: steps.append((done, total)), cancel=never)

    assert outcome.error is None and not outcome.cancelled
    assert isinstance(outcome.rgb, np.memmap) and outcome.stored_in.startswith(str(cache))
    np.testing.assert_array_equal(outcome.rgb, colorize(stack, model=tiny_model, device="cpu", temperature=0.3))
    assert outcome.colorizer is tiny_model and outcome.device == "cpu" and outcome.seconds > 0
    assert steps and steps[-1][0] == steps[-1][1]


def test_a_strided_rgb_request_colorizes_the_luminance_of_the_selected_pixels(tiny_model):
    from napari_colorize.color import to_luminance

    rgb = (np.stack([smooth_frame((60, 64), seed=s) for s in range(3)], axis=-1) / 16).astype(np.uint8)
    options = ColorizeOptions(model=tiny_model, device="cpu", rgb=False)
    request = request_for(rgb, options, index=(slice(4, 60, 2), slice(0, 64, 2)), rgb_input=True)
    outcome = run_request(request, progress=never, cancel=never)
    assert outcome.rgb.shape == (28, 32, 3) and outcome.stored_in == ""
    np.testing.assert_array_equal(outcome.rgb, colorize(to_luminance(rgb)[4:60:2, ::2], model=tiny_model, device="cpu"))


def test_a_broken_checkpoint_is_an_error_outcome_not_an_exception(tmp_path, cache):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"this is not a checkpoint")
    outcome = run_request(
        request_for(np.zeros((2, 20, 20)), ColorizeOptions(model=str(broken), device="cpu")), progress=never, cancel=never
    )
    assert isinstance(outcome.error, CheckpointError) and outcome.rgb is None and not outcome.cancelled
    assert not cache.exists() or list(cache.iterdir()) == []


def test_an_unavailable_device_is_an_error_outcome():
    outcome = run_request(request_for(np.zeros((20, 20)), ColorizeOptions(device="cuda:99")), progress=never, cancel=never)
    assert isinstance(outcome.error, ValueError) and "not available" in str(outcome.error)


def test_a_failure_while_reading_leaves_no_result_file(tiny_model, cache):
    class FailingStack:  # a lazy array whose second frame cannot be read
        shape, dtype, ndim = (3, 30, 30), np.dtype(np.float32), 3

        def __getitem__(self, index):
            frame = index[0].start or 0 if isinstance(index[0], slice) else int(index[0])
            if frame >= 1:
                raise OSError("share unavailable")
            return np.ones((3, 30, 30), np.float32)[index]

    import dask.array as da

    data = da.from_array(FailingStack(), chunks=(1, 30, 30))
    outcome = run_request(request_for(data, ColorizeOptions(model=tiny_model, device="cpu")), progress=never, cancel=never)
    assert isinstance(outcome.error, OSError) and "share unavailable" in str(outcome.error)
    assert list(cache.iterdir()) == []


def test_a_cancelled_request_returns_cancelled_and_leaves_no_file(tiny_model, cache):
    stack = np.stack([smooth_frame((40, 40), seed=s) for s in range(3)])
    outcome = run_request(request_for(stack, ColorizeOptions(model=tiny_model, device="cpu")), progress=never, cancel=lambda: True)
    assert outcome.cancelled and outcome.rgb is None and outcome.error is None
    assert list(cache.iterdir()) == []


def test_output_metadata_is_the_provenance_record_plus_what_the_widget_knows(tiny_model):
    options = ColorizeOptions(model="natural", device="auto", temperature=0.3, scale=0.5)
    index = (slice(1, 2), slice(0, 50), slice(10, 60, 2))
    request = request_for(np.zeros((3, 50, 60)), options, index=index, kind="preview", frames="current", notes={"preview_step": 2})
    outcome = ColorizeOutcome(rgb=np.zeros((1, 50, 25, 3), np.uint8), colorizer=tiny_model, device="cpu", seconds=1.23456)
    made = output_metadata(request, outcome)[METADATA_KEY]

    expected = provenance(options, tiny_model, device="cpu", frame_shape=(1, 50, 25))
    assert {key: made[key] for key in expected} == expected
    assert made["note"] == PREDICTED_NOTE and made["predicted"] is True and made["napari_colorize_version"] == __version__
    assert made["model"] == tiny_model.name and made["model_sha256"] == tiny_model.sha256 and made["model_source"] == "natural"
    assert made["parameters"]["temperature"] == 0.3 and made["parameters"]["scale"] == 0.5 and made["parameters"]["device"] == "auto"
    assert {"overlap", "normalize", "percentiles", "batch_size"} <= set(made["parameters"])
    assert made["device_used"] == "cpu" and made["kind"] == "preview" and made["frames"] == "current"
    assert made["region"] == [[1, 2], [0, 50], [10, 60]] and made["preview_step"] == 2
    assert made["working_shape"] == [25, 12]  # the 50 x 25 region read, at scale 0.5 (an untrained model enlarges nothing)
    assert made["source_layer"] == "cells" and made["source_layer_id"] == "id-1" and made["input"] == "grayscale layer"
    assert made["seconds"] == 1.235 and "stored_in" not in made
    json.dumps(made)  # layer metadata is saved with the layer: it must be plain JSON

    outcome.stored_in = "/tmp/x.npy"
    assert output_metadata(request, outcome)[METADATA_KEY]["stored_in"] == "/tmp/x.npy"


def test_output_names_and_progress_text():
    assert output_name("cells", "result") == "cells colorized" and output_name("cells", "preview") == "cells preview"
    request = request_for(np.zeros((3, 10, 10)), ColorizeOptions())
    assert progress_text(request, 1, 12) == "frame 1/3, tile 1/4"
    assert progress_text(request, 5, 12) == "frame 2/3, tile 1/4"
    assert progress_text(request, 12, 12) == "frame 3/3, tile 4/4"
