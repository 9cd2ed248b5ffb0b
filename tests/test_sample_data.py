"""Sample data: every entry of File > Open Sample > napari-colorize loads, offline."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from napari_colorize import _sample_data

SAMPLES = {
    "hubble_deep_field": ((872, 1000), "public domain"),
    "moon_drift_series": ((5, 384, 384), "BSD"),
    "cell_phase_image": ((660, 550), "CC0"),
    "simulated_em_frame": ((512, 512), "simulated"),
    "simulated_em_stack": ((8, 256, 256), "simulated"),
}


@pytest.fixture
def no_network(monkeypatch):
    """Fail any attempt to open a network connection (samples must never download)."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("a sample tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_sample_is_grayscale_and_names_its_source(key, no_network):
    ((data, kwargs, layer_type),) = getattr(_sample_data, key)()
    shape, terms = SAMPLES[key]
    assert layer_type == "image"
    assert data.shape == shape and data.dtype == np.uint8
    assert data.std() > 10, "a sample should have visible structure"
    assert kwargs["name"]
    assert terms in kwargs["metadata"]["sample_terms"]
    assert kwargs["metadata"]["sample_source"]
    if "scale" in kwargs:
        assert len(kwargs["scale"]) == data.ndim == len(kwargs["units"])


def test_simulated_em_is_reproducible_and_says_so():
    np.testing.assert_array_equal(_sample_data.simulated_em_volume((2, 64, 64)), _sample_data.simulated_em_volume((2, 64, 64)))
    assert not np.array_equal(_sample_data.simulated_em_volume((2, 64, 64), seed=1), _sample_data.simulated_em_volume((2, 64, 64), seed=2))
    for loader in (_sample_data.simulated_em_frame, _sample_data.simulated_em_stack):
        assert "simulated" in loader()[0][1]["name"]


def test_manifest_lists_every_sample():
    import npe2

    # Read through the installed package's entry point, as napari discovers it.
    manifest = npe2.PluginManifest.from_distribution("napari-colorize")
    assert {sample.key for sample in manifest.contributions.sample_data} == set(SAMPLES)


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_sample_opens_from_the_file_menu_entry(key, make_napari_viewer_proxy, no_network):
    pytest.importorskip("napari")
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-colorize", key)
    (layer,) = viewer.layers
    assert layer.data.shape == SAMPLES[key][0] and not layer.rgb
