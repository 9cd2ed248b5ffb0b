"""A registry of network families: an architecture name -> how to build it.

A checkpoint names its architecture; loading it looks the name up here. Each
entry declares the geometry the pipeline must respect (the tile it was
trained on, its output stride) and the inputs it takes, so a new network
family, or one with extra input channels, is one :func:`register_architecture`
call, not edits across the pipeline. Torch is imported when a network is
built, not when this module is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: Scale of the regression head's ab output.
AB_SCALE = 110.0
HEADS = ("classification", "regression")


@dataclass(frozen=True)
class InputSpec:
    """One input of a network besides the lightness.

    Attributes
    ----------
    name : str
        Keyword under which :meth:`Colorizer.predict_ab` and
        :func:`napari_colorize.colorize` take it.
    channels : int
        Channels per pixel: the input is (..., channels, Y, X), aligned with
        the frames, and cut into tiles with them.
    help : str
        One line for users: what it holds.

    A missing input is given to the network as zeros (e.g. "no hints").
    """

    name: str
    channels: int
    help: str = ""


@dataclass(frozen=True)
class Architecture:
    """How to build one family of networks, and what it needs.

    Attributes
    ----------
    name : str
        Stored in checkpoints as ``metadata["architecture"]``.
    build : callable(*, head, num_bins, width) -> torch.nn.Module
        The network maps lightness (N, 1, H, W) in [0, 100], plus one
        keyword tensor (N, channels, H, W) per extra input, to chroma at
        H/output_stride x W/output_stride: logits over the bins
        (classification) or ab (regression).
    tile_size : int
        Side of the tiles it was trained for and is run on.
    output_stride : int
        Input pixels per output pixel.
    extra_inputs : tuple of InputSpec
        Inputs besides the lightness, in the order the network takes them.
    """

    name: str
    build: Callable
    tile_size: int = 224
    output_stride: int = 4
    extra_inputs: tuple[InputSpec, ...] = ()


_REGISTRY: dict[str, Architecture] = {}


def register_architecture(architecture: Architecture, *, replace: bool = False) -> Architecture:
    """Make ``architecture`` loadable by name; refuses to shadow another unless ``replace``."""
    if architecture.tile_size % architecture.output_stride:
        raise ValueError(f"{architecture.name}: tile size {architecture.tile_size} is not a multiple of the output stride {architecture.output_stride}")
    if architecture.name in _REGISTRY and not replace and _REGISTRY[architecture.name] is not architecture:
        raise ValueError(f"architecture {architecture.name!r} is already registered")
    _REGISTRY[architecture.name] = architecture
    return architecture


def unregister_architecture(name: str) -> None:
    """Forget an architecture (tests register toy ones)."""
    _REGISTRY.pop(name, None)


def get_architecture(name: str) -> Architecture:
    """The registered architecture ``name``.

    Raises
    ------
    KeyError
        With the known names, if there is none of that name.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def architectures() -> list[str]:
    """Names of the registered architectures."""
    return sorted(_REGISTRY)


def build_colornet_v1(*, head: str, num_bins: int, width: int):
    """The first-generation network: lightness only.

    An encoder to 1/16 resolution with dilated residual blocks (the receptive
    field spans a whole 224 tile), then a light decoder with skips back to
    1/4; no pooling, fully convolutional.
    """
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
        """L (N, 1, H, W) in [0, 100] -> chroma at H/4 x W/4."""

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
            return y * AB_SCALE if self.is_regression else y

    return ColorNet()


#: The architecture of the shipped models and of new training runs.
COLORNET_V1 = register_architecture(Architecture(name="colornet-v1", build=build_colornet_v1))
DEFAULT_ARCHITECTURE = COLORNET_V1.name
