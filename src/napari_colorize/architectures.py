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
from functools import partial

from .colornet import (
    HINT_CHANNELS,
    HINT_MODULES,
    build_colornet_v1,
    build_colornet_v2,
    build_colornet_v2_antialiased,
    build_colornet_v2_replicate,
)

HEADS = ("classification", "regression")
#: Kinds of extra input: per-pixel channels cut into tiles with the frame,
#: one descriptor per frame that the network computes from a view of it, or
#: one distribution over the model's ab bins given for the whole call.
INPUT_KINDS = ("pixels", "frame", "bins")


@dataclass(frozen=True)
class InputSpec:
    """One input of a network besides the lightness.

    Attributes
    ----------
    name : str
        Keyword under which :meth:`Colorizer.predict_ab` and
        :func:`napari_colorize.colorize` take it.
    channels : int
        For 'pixels': channels per pixel; the input is (..., channels, Y, X),
        aligned with the frames, and cut into tiles with them. For 'frame':
        0 (the network's ``encode_context`` decides the descriptor's size).
        For 'bins': 0 (one value per ab bin of the model).
    help : str
        One line for users: what it holds.
    kind : {'pixels', 'frame', 'bins'}
        'pixels' inputs missing from a call are zeros (e.g. "no hints");
        a 'frame' input is computed by the network from a low-resolution
        view of the whole frame (or of a few frames of a stack), and from
        the tile itself when a tile is colorized alone; a 'bins' input is
        (N or 1, Q), a distribution over the model's Q ab bins, zeros when
        not given.
    """

    name: str
    channels: int
    help: str = ""
    kind: str = "pixels"

    def __post_init__(self):
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"input kind must be one of {INPUT_KINDS}, got {self.kind!r}")


@dataclass(frozen=True)
class Architecture:
    """How to build one family of networks, and what it needs.

    Attributes
    ----------
    name : str
        Stored in checkpoints as ``metadata["architecture"]``.
    build : callable(*, head, bins, width) -> torch.nn.Module
        ``bins`` are the ab bin centres (Q, 2). The network maps lightness (N, 1, H, W) in [0, 100], plus one
        keyword tensor (N, channels, H, W) per extra input, to chroma at
        H/output_stride x W/output_stride: logits over the bins
        (classification) or ab (regression).
    tile_size : int
        Side of the tiles it was trained for and is run on.
    output_stride : int
        Input pixels per output pixel.
    extra_inputs : tuple of InputSpec
        Inputs besides the lightness, given to the network by name.
    context_view : int
        Side of the square low-resolution view of a whole frame from which
        a 'frame' input is computed.
    generation : int, optional
        Which generation of this project's networks it belongs to (1: each
        tile coloured from its own lightness; 2: with hints and the frame's
        context), as users are told; None for other families.
    hint_modules : tuple of str
        Names of the network's submodules that turn the hints into colour
        and do nothing else: what a hint-path graft copies from one model
        to another (and what ``TrainConfig.learn_only`` names to retrain).
    windowed : bool
        Whether it may colour a window larger than its tile in one pass
        (the ``window`` option): a fully convolutional network that pads
        by repeating the edge, so that it cannot tell where its window
        ends, colours a pixel alike in a tile or a window. Otherwise it
        always runs in its tiles, as it was trained.
    """

    name: str
    build: Callable
    tile_size: int = 224
    output_stride: int = 4
    extra_inputs: tuple[InputSpec, ...] = ()
    context_view: int = 128
    generation: int | None = None
    hint_modules: tuple[str, ...] = ()
    windowed: bool = False


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


#: The first generation: each tile coloured from its own lightness alone.
COLORNET_V1 = register_architecture(Architecture(name="colornet-v1", build=build_colornet_v1, generation=1))
#: The second generation's inputs besides the lightness.
V2_INPUTS = (
    InputSpec(
        "hints",
        HINT_CHANNELS,
        "colour hints: sparse a and b (divided by 110) where the mask, the third channel, is 1; then, per spread distance, spread a, b and confidence",
    ),
    InputSpec("context", 0, "descriptor of the whole frame (or stack), from a low-resolution view of it", kind="frame"),
)
#: The second generation: colour hints, and a context shared by a frame's tiles.
COLORNET_V2 = register_architecture(Architecture(name="colornet-v2", build=build_colornet_v2, extra_inputs=V2_INPUTS, generation=2, hint_modules=HINT_MODULES))
#: The second generation padding by edge replication: no sense of where the window ends.
COLORNET_V2_REPLICATE = register_architecture(
    Architecture(
        name="colornet-v2-replicate", build=build_colornet_v2_replicate, extra_inputs=V2_INPUTS, generation=2, hint_modules=HINT_MODULES, windowed=True
    )
)
#: ... and low-passing before its first two strides: no recolouring when the grid moves by a pixel.
COLORNET_V2_ANTIALIASED = register_architecture(
    Architecture(
        name="colornet-v2-antialiased", build=build_colornet_v2_antialiased, extra_inputs=V2_INPUTS, generation=2, hint_modules=HINT_MODULES, windowed=True
    )
)
#: A reference palette besides: a distribution over the ab bins (the global hints of Zhang et al. 2017).
PALETTE_INPUT = InputSpec("palette", 0, "reference palette: the distribution of a colour image over the model's ab bins (zeros: none)", kind="bins")
#: colornet-v2-replicate and -antialiased with a reference-palette input; the
#: same weights under the same names plus the palette's, so either warm-starts
#: from its palette-less twin and computes what it did until the palette moves it.
PALETTE_ARCHITECTURES = tuple(
    register_architecture(
        Architecture(
            name=f"{twin.name}-palette",
            build=partial(twin.build, palette=True),
            extra_inputs=(*V2_INPUTS, PALETTE_INPUT),
            generation=2,
            hint_modules=HINT_MODULES,
            windowed=twin.windowed,
        )
    )
    for twin in (COLORNET_V2_REPLICATE, COLORNET_V2_ANTIALIASED)
)
DEFAULT_ARCHITECTURE = COLORNET_V1.name
#: Shares of colornet-v2-antialiased's channels a lean twin keeps inside its
#: residual blocks (about 0.82 of its int8 time on a CPU); the blocks' inputs
#: and outputs are the same, so a lean network is distilled from its full
#: twin with every other weight copied. (Halving the head's hidden layer
#: too, 0.75 of the time, moved the colours of the cut network, untrained,
#: 10.9 ab units from the full one's instead of 6.2, and its distillation
#: stalled 4 units away.)
LEAN_SHARES = {"residual_share": 0.5}
#: colornet-v2-antialiased(-palette) made lean (see ``models/distill_lean.py``).
LEAN_ARCHITECTURES = tuple(
    register_architecture(
        Architecture(
            name=f"{twin.name}-lean",
            build=partial(twin.build, **LEAN_SHARES),
            extra_inputs=twin.extra_inputs,
            generation=2,
            hint_modules=HINT_MODULES,
            windowed=True,
        )
    )
    for twin in (COLORNET_V2_ANTIALIASED, PALETTE_ARCHITECTURES[1])
)
