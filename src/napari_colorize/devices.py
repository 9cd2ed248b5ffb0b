"""Torch devices: which names are valid, which one runs, and what is here.

The one home of device choice: options validate a device name with
:func:`check_device_name`, the pipeline and training run on
:func:`resolve_device`, the widget lists :func:`available_devices`.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path

#: Device kinds a user may name ('cuda:N' picks one GPU).
DEVICES = ("auto", "cpu", "cuda", "mps")
_CUDA_INDEX = re.compile(r"cuda:\d+")


def check_device_name(device) -> str:
    """``device`` as a string if it names a device kind, else a ValueError.

    Availability is not checked here (see :func:`resolve_device`): a name
    is valid on any machine.
    """
    name = str(device)
    if name not in DEVICES and not _CUDA_INDEX.fullmatch(name):
        raise ValueError(f"device must be one of {', '.join(DEVICES)} or cuda:N, got {device!r}")
    return name


def resolve_device(device: str = "auto"):
    """Pick and probe a torch device: 'auto' takes CUDA, then MPS, then CPU.

    Parameters
    ----------
    device : str
        'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If the name is not a device or the device is not available here.
    """
    import torch

    name = check_device_name(device)
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif _mps_available():
            name = "mps"
        else:
            name = "cpu"
    try:
        torch_device = torch.device(name)
        torch.zeros(1, device=torch_device)  # probe: fails early if unusable
    except (RuntimeError, AssertionError, AttributeError) as exc:
        raise ValueError(f"device {name!r} is not available here: {exc}") from None
    return torch_device


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def available_devices() -> list[str]:
    """Device names worth offering here: auto, cpu, each cuda:N present, mps if present."""
    import torch

    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        devices.append("mps")
    return devices


def describe_device(device: str) -> str:
    """The device that will actually run for a device name, or why none can."""
    try:
        return f"runs on {resolve_device(device)}"
    except ValueError as exc:
        return f"unavailable: {exc}"


def cpu_model() -> str:
    """The processor's model name (from /proc/cpuinfo, else the platform's):
    benchmarks report it, and CPU kernels round differently between models."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
