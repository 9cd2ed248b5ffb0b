"""Choosing the torch device."""

from __future__ import annotations

import pytest
import torch

from napari_colorize.devices import resolve_device


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            resolve_device("cuda")
        with pytest.raises(ValueError, match="not available"):
            resolve_device("cuda:1")
