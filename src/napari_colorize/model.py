"""The colorization network, its heads, and checkpoint files.

A checkpoint is a safetensors file: tensors plus a JSON metadata string.
Loading one never executes code from the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

#: Side of the L tile the network is trained and run on.
TILE_SIZE = 224
#: The network predicts chroma at 1/4 of the input resolution.
OUTPUT_STRIDE = 4
#: Architecture identifier stored in checkpoints.
ARCHITECTURE = "colornet-v1"
HEADS = ("classification", "regression")
#: Scale of the regression head's ab output.
_AB_SCALE = 110.0
_METADATA_KEY = "napari_colorize"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not a colorizer."""


def _build_network(*, head: str, num_bins: int, width: int):
    """Return the torch module (imported lazily, like torch itself)."""
    import torch
    from torch import nn

    def conv(cin, cout, *, stride=1, dilation=1):
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    class Residual(nn.Module):
        def __init__(self, channels, dilation=1):
            super().__init__()
            self.body = nn.Sequential(
                conv(channels, channels, dilation=dilation),
                nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False),
                nn.BatchNorm2d(channels),
            )

        def forward(self, x):
            return torch.relu(x + self.body(x))

    class Up(nn.Module):
        """Upsample the coarse path, add the skip, then refine."""

        def __init__(self, cin, cout):
            super().__init__()
            self.reduce = nn.Conv2d(cin, cout, 1, bias=False)
            self.refine = conv(cout, cout)

        def forward(self, coarse, skip):
            up = nn.functional.interpolate(self.reduce(coarse), size=skip.shape[-2:], mode="bilinear", align_corners=False)
            return self.refine(up + skip)

    class ColorNet(nn.Module):
        """L (N, 1, H, W) in [0, 100] -> chroma at H/4 x W/4.

        Encoder to 1/16 resolution with dilated residual blocks for context
        (the receptive field spans a whole 224 tile), then a light decoder
        with skips back to 1/4; no pooling, fully convolutional.
        """

        def __init__(self):
            super().__init__()
            w = width
            self.stem = conv(1, w, stride=2)  # 1/2
            self.down4 = nn.Sequential(conv(w, 2 * w, stride=2), conv(2 * w, 2 * w))  # 1/4
            self.down8 = nn.Sequential(conv(2 * w, 4 * w, stride=2), Residual(4 * w))  # 1/8
            self.down16 = nn.Sequential(
                conv(4 * w, 8 * w, stride=2),
                Residual(8 * w, dilation=1),
                Residual(8 * w, dilation=2),
                Residual(8 * w, dilation=4),
            )  # 1/16
            self.up8 = Up(8 * w, 4 * w)
            self.up4 = Up(4 * w, 2 * w)
            out = num_bins if head == "classification" else 2
            self.head = nn.Sequential(nn.Conv2d(2 * w, 4 * w, 1), nn.ReLU(inplace=True), nn.Conv2d(4 * w, out, 1))
            self.is_regression = head == "regression"

        def forward(self, lightness):
            x = lightness / 50.0 - 1.0
            x4 = self.down4(self.stem(x))
            x8 = self.down8(x4)
            x16 = self.down16(x8)
            y = self.up4(self.up8(x16, x8), x4)
            y = self.head(y)
            return y * _AB_SCALE if self.is_regression else y

    return ColorNet()


@dataclass
class Colorizer:
    """A network together with everything needed to use it.

    Attributes
    ----------
    network : torch.nn.Module
    head : {'classification', 'regression'}
    bins : ndarray, shape (Q, 2)
        ab bin centres (classification); kept for regression too, for metrics.
    prior : ndarray, shape (Q,) or None
        Smoothed empirical bin prior of the training data.
    metadata : dict
        Architecture, training summary, versions...
    name : str
        Shipped model name or file stem.
    sha256 : str
        Digest of the checkpoint file ('' for an unsaved model).
    path : str
        The checkpoint file it was loaded from ('' for an unsaved model).
    """

    network: Any
    head: str
    bins: np.ndarray
    prior: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)
    name: str = "unsaved"
    sha256: str = ""
    path: str = ""

    @property
    def num_bins(self) -> int:
        return int(self.bins.shape[0])

    @property
    def device(self):
        return next(self.network.parameters()).device

    def predict_ab(self, lightness, *, temperature: float):
        """ab at 1/4 resolution for a batch of L tiles (N, 1, H, W), as a tensor."""
        import torch

        from .color import annealed_mean

        # Trained weights drive some activations subnormal, which x86 CPUs
        # compute several times slower; flushing them to zero changes nothing
        # visible. The flag is process-wide, so it is only held for this call.
        torch.set_flush_denormal(True)
        try:
            with torch.inference_mode():
                out = self.network(lightness)
                if self.head == "regression":
                    return out.float()
                bins = torch.as_tensor(self.bins, device=out.device)
                return annealed_mean(out, bins, temperature=temperature)
        finally:
            torch.set_flush_denormal(False)


def create_colorizer(*, head: str = "classification", width: int = 32, bins: np.ndarray | None = None) -> Colorizer:
    """Make a freshly initialised (untrained) colorizer.

    Parameters
    ----------
    head : {'classification', 'regression'}
    width : int
        Channels of the first layer; the rest scale with it.
    bins : ndarray, optional
        ab bin centres; defaults to :func:`napari_colorize.color.ab_bins`.
    """
    from .color import ab_bins

    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    bins = np.array(ab_bins() if bins is None else bins, dtype=np.float32)  # own, writable copy
    network = _build_network(head=head, num_bins=len(bins), width=width)
    metadata = {"architecture": ARCHITECTURE, "head": head, "width": width, "num_bins": len(bins)}
    return Colorizer(network=network, head=head, bins=bins, metadata=metadata)


def save_checkpoint(colorizer: Colorizer, path: str | Path, *, extra_metadata: dict | None = None) -> str:
    """Write ``colorizer`` to a safetensors file atomically; return its sha256."""
    from safetensors.torch import save_file

    path = Path(path)
    meta = {**colorizer.metadata, **(extra_metadata or {})}
    colorizer.metadata = meta
    import torch

    # Half precision halves the file; inference is unaffected at this scale.
    tensors = {
        f"network.{k}": (v.half() if v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in colorizer.network.state_dict().items()
    }

    tensors["colorizer.bins"] = torch.as_tensor(colorizer.bins, dtype=torch.float32)
    if colorizer.prior is not None:
        tensors["colorizer.prior"] = torch.as_tensor(colorizer.prior, dtype=torch.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata={_METADATA_KEY: json.dumps(meta, sort_keys=True)})
    tmp.replace(path)
    colorizer.sha256 = file_sha256(path)
    return colorizer.sha256


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def shipped_models_dir() -> Path:
    """Folder holding the shipped checkpoints (in the wheel, or the repo's models/)."""
    packaged = resources.files("napari_colorize") / "models"
    if packaged.is_dir():
        return Path(str(packaged))
    # Editable / source checkout: the repository's top-level models/.
    return Path(__file__).resolve().parents[2] / "models"


def shipped_models() -> list[str]:
    """Names of the shipped models, the default first."""
    folder = shipped_models_dir()
    names = sorted(p.stem for p in folder.glob("*.safetensors")) if folder.is_dir() else []
    return sorted(names, key=lambda n: (n != DEFAULT_MODEL, n))


DEFAULT_MODEL = "natural"


def resolve_model_path(model: str | Path) -> Path:
    """Path of a shipped model name or a checkpoint file."""
    candidate = Path(model)
    if candidate.suffix == ".safetensors" or candidate.exists() or len(candidate.parts) > 1:
        if candidate.is_dir():
            raise CheckpointError(f"{candidate} is a folder, not a checkpoint file")
        if not candidate.is_file():
            raise CheckpointError(f"checkpoint file not found: {candidate}")
        return candidate
    shipped = shipped_models_dir() / f"{model}.safetensors"
    if not shipped.is_file():
        names = ", ".join(shipped_models()) or "none installed"
        raise CheckpointError(f"unknown model {str(model)!r}: give a .safetensors file or one of: {names}")
    return shipped


def load_checkpoint(model: str | Path, *, device: str | None = None) -> Colorizer:
    """Load a colorizer from a shipped model name or a safetensors file.

    Parameters
    ----------
    model : str or Path
        A shipped model name (see :func:`shipped_models`) or a path.
    device : str, optional
        Torch device to move the network to (default: CPU).

    Raises
    ------
    CheckpointError
        If the file is missing, corrupt, or not a napari-colorize checkpoint.
    """
    path = resolve_model_path(model)
    stat = path.stat()
    return _load_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size, device or "cpu")


def _check_not_pickle(path: str) -> None:
    """Name what a non-safetensors checkpoint is, without ever unpickling it."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if not head:
        raise CheckpointError(f"cannot read checkpoint {path}: the file is empty")
    # A pickle (protocol 2+) or torch.save's zip archive: loading those can run code.
    if head[:1] == b"\x80" or head == b"PK\x03\x04":
        raise CheckpointError(
            f"{path} is a pickle / PyTorch (.pt) file, not a safetensors checkpoint; it is not loaded, since unpickling can run code"
        )


@lru_cache(maxsize=4)
def _load_cached(path: str, _mtime: int, _size: int, device: str) -> Colorizer:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    _check_not_pickle(path)
    try:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as fh:
            raw_meta = (fh.metadata() or {}).get(_METADATA_KEY)
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    if raw_meta is None:
        raise CheckpointError(f"{path} is a safetensors file but not a napari-colorize checkpoint")
    # NaN or Inf weights would colour every pixel with garbage, silently.
    broken = sorted(k for k, v in tensors.items() if v.is_floating_point() and not v.isfinite().all())
    if broken:
        raise CheckpointError(f"{path} is corrupted: non-finite values in {', '.join(broken[:3])}")
    try:
        meta = json.loads(raw_meta)
        if meta.get("architecture") != ARCHITECTURE:
            raise CheckpointError(f"{path}: unsupported architecture {meta.get('architecture')!r}")
        bins = tensors.pop("colorizer.bins").numpy()
        prior = tensors.pop("colorizer.prior").numpy() if "colorizer.prior" in tensors else None
        colorizer = create_colorizer(head=meta["head"], width=int(meta["width"]), bins=bins)
        state = {k.removeprefix("network."): v.float() if v.is_floating_point() else v for k, v in tensors.items()}
        colorizer.network.load_state_dict(state, strict=True)
    except CheckpointError:
        raise
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} does not match its declared architecture: {exc}") from None
    colorizer.network.eval().to(device)
    colorizer.prior = prior
    colorizer.metadata = meta
    colorizer.name = Path(path).stem
    colorizer.path = path
    colorizer.sha256 = file_sha256(path)
    return colorizer
