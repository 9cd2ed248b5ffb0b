"""The options of a colorization, declared once.

:class:`ColorizeOptions` is a frozen dataclass: each field carries its
default, its limits and one line of help (an :class:`OptionSpec` in the
field's metadata), and the whole is validated once, on construction. The
core takes it (:func:`napari_colorize.colorize`, ``colorize_strips``), the
command line builds its arguments from :func:`option_specs`, the widget its
controls, tooltips and remembered settings, and :mod:`napari_colorize.provenance`
records :meth:`ColorizeOptions.parameters`. Adding an option means adding a
field here plus the code that uses it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoint_files import DEFAULT_MODEL
from .color import DEFAULT_TEMPERATURE
from .devices import check_device_name
from .hints import HINT_REACHES
from .model import Colorizer
from .normalization import DEFAULT_PERCENTILES, Normalize, check_normalize, check_percentiles
from .restoration import (
    DEFAULT_CLAHE_CLIP,
    DEFAULT_DENOISER,
    DEFAULT_HOT_PIXEL_THRESHOLD,
    DENOISERS,
    STEPS,
    Restoration,
    check_noise_sigma,
    check_steps,
)

DEFAULT_OVERLAP = 32
#: Largest side of the windows the network colours a frame in (see ColorizeOptions.window).
DEFAULT_WINDOW = 1024
#: Largest window allowed: one window's logits (Q bins at 1/4 of its side) stay near 1 GB.
MAX_WINDOW = 4096
DEFAULT_BATCH_SIZE = 8
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")


@dataclass(frozen=True)
class OptionSpec:
    """What one option is: its default, limits and help, for every face.

    Attributes
    ----------
    name : str
        Keyword of :func:`napari_colorize.colorize`; ``--name`` (with dashes) on
        the command line.
    default : object
    help : str
        One line, shown by ``--help`` and as the widget's tooltip.
    label : str
        The widget's label.
    kind : type
        float, int, str, tuple (of two floats) or object (checked by ``check``).
    minimum, maximum : float, optional
        Limits; ``minimum`` is exclusive when ``exclusive_minimum``.
    choices : tuple, optional
        Allowed values, with ``choice_labels`` for the widget.
    gui_range : (low, high, step), optional
        The range a spin box offers (within the limits).
    check : callable, optional
        Validates and normalises a value, raising ValueError with a message
        for users; runs after the kind, limit and choice checks.
    in_widget, in_cli : bool
        Whether the widget shows a control / the command line an argument.
    explicit_range : bool
        The option also takes an explicit (low, high) (``--range`` on the
        command line).
    other_values : bool
        Besides ``choices``, ``check`` accepts other values (a number, say):
        the widget offers the choices, the command line and Python take any.
    multiple : bool
        The value is a tuple of any of ``choices`` (comma-separated on the
        command line, a multiple selection in the widget).
    group : str
        The widget shows the option in this titled group, not among the main ones.
    """

    name: str
    default: Any
    help: str
    label: str
    kind: type = object
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple | None = None
    choice_labels: tuple | None = None
    gui_range: tuple[float, float, float] | None = None
    check: Callable[[Any], Any] | None = None
    in_widget: bool = True
    in_cli: bool = True
    explicit_range: bool = False
    other_values: bool = False
    multiple: bool = False
    group: str = ""

    def validate(self, value):
        """``value`` checked and normalised (e.g. 1 -> 1.0 for a float), or a ValueError."""
        if self.kind in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{self.name} must be a finite number, got {value!r}")
            if self.kind is int:
                if value != int(value):
                    raise ValueError(f"{self.name} must be a whole number, got {value!r}")
                value = int(value)
            else:
                value = float(value)
            low = self.minimum
            if low is not None and (value <= low if self.exclusive_minimum else value < low):
                raise ValueError(f"{self.name} must be {'>' if self.exclusive_minimum else '>='} {low:g}, got {value!r}")
            if self.maximum is not None and value > self.maximum:
                raise ValueError(f"{self.name} must be <= {self.maximum:g}, got {value!r}")
        elif self.choices is not None and not (self.explicit_range or self.other_values or self.multiple) and value not in self.choices:
            raise ValueError(f"{self.name} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        return self.check(value) if self.check is not None else value

    def describe(self) -> str:
        """The help line with the default, as ``--help`` shows it."""
        if self.multiple:
            default = ",".join(self.default) or "none"
        else:
            default = " ".join(map(str, self.default)) if isinstance(self.default, tuple) else self.default
        return f"{self.help} (default {default})"


def option(default, *, help: str, label: str, kind: type = object, **spec) -> Any:
    """Declare an option: a dataclass field carrying its :class:`OptionSpec`
    (the name is the field's)."""
    return field(default=default, metadata={"spec": dict(default=default, help=help, label=label, kind=kind, **spec)})


def _check_model(model):
    if isinstance(model, (str, Path)):
        if not str(model).strip():
            raise ValueError("model must name a shipped model or a .safetensors checkpoint, got an empty name")
        return str(model)
    if isinstance(model, Colorizer):
        return model
    raise ValueError(f"model must be a shipped model name, a .safetensors path or a Colorizer, got {type(model).__name__}")


def _check_rgb(rgb):
    if rgb is not None and not isinstance(rgb, bool):
        raise ValueError(f"rgb must be True, False or None, got {rgb!r}")
    return rgb


@dataclass(frozen=True)
class ColorizeOptions:
    """How to colorize: every option of :func:`napari_colorize.colorize`, checked once.

    Examples
    --------
    >>> options = ColorizeOptions(temperature=0.3, normalize="stack")
    >>> options.replace(scale=0.5).scale
    0.5
    >>> ColorizeOptions(overlap=-1)
    Traceback (most recent call last):
    ...
    ValueError: overlap must be >= 0, got -1
    """

    model: Any = option(
        DEFAULT_MODEL,
        label="Model",
        check=_check_model,
        help="a shipped model name (natural-lean, the default; natural, the full network it is distilled from; natural-regression; natural-v1, natural-regression-v1: the first generation) or a .safetensors checkpoint you trained",
    )
    device: str = option(
        "auto",
        label="Device",
        check=check_device_name,
        kind=str,
        help="where the network runs: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps",
    )
    scale: float = option(
        1.0,
        label="Working resolution",
        kind=float,
        minimum=0.0,
        exclusive_minimum=True,
        gui_range=(0.05, 4.0, 0.05),
        help="working resolution relative to the input (0.5 halves it), so that objects appear at a size the model knows; the output keeps full resolution. A frame whose short side would fall under the model's training crops (128 px for the shipped models) is enlarged to them (at most 4x), as training enlarged such small images",
    )
    overlap: int = option(
        DEFAULT_OVERLAP,
        label="Tile overlap (px)",
        kind=int,
        minimum=0,
        # A 224 tile then still brings 32 new pixels; the model's tile size is the hard limit.
        gui_range=(0, 192, 8),
        help="minimum overlap of neighbouring tiles in working pixels, below the model's tile size: more overlap, smoother seams, more tiles",
    )
    window: int = option(
        DEFAULT_WINDOW,
        label="Network window (px)",
        kind=int,
        minimum=0,
        maximum=MAX_WINDOW,
        in_widget=False,
        help="largest side, in working pixels, of the pieces the network colours in one pass: a frame is cut into as few equal windows as cover it, "
        "so less of the work goes to their overlaps (a 4096² frame: 25 windows of 864 px, 7 percent of each overlapping its neighbours, against 484 tiles of 224 px, 27 percent). "
        "At or below the model's tile size (224 for the shipped models), the frame is cut into the model's tiles, "
        "as it always is for a model whose network is not fit for windows (the first generation: natural-v1, natural-regression-v1)",
    )
    temperature: float = option(
        DEFAULT_TEMPERATURE,
        label="Saturation (temperature T)",
        kind=float,
        minimum=0.0,
        exclusive_minimum=True,
        gui_range=(0.01, 1.0, 0.01),
        help="annealed-mean temperature T > 0: lower is bolder, more saturated colour, 1 the plain mean (muted on photographs; on near-gray frames such as the Moon it can give more colour than 0.38); 0.38 is the paper's; regression models ignore it",
    )
    normalize: Normalize = option(
        "frame",
        label="Contrast from",
        choices=("frame", "stack"),
        choice_labels=("each frame", "whole stack"),
        explicit_range=True,
        check=check_normalize,
        help="intensity range mapped to black..white: robust percentiles of each frame, of the whole stack, or an explicit (low, high)",
    )
    context: str = option(
        "frame",
        label="Colour context from",
        choices=("frame", "stack"),
        choice_labels=("each frame", "whole stack"),
        help="what a context-taking (second-generation) model sees as the whole: each frame, or a few frames of the stack pooled so the stack keeps one palette; other models ignore it",
    )
    stack_consensus: int = option(
        0,
        label="Stack consensus (frames)",
        kind=int,
        minimum=0,
        maximum=16,
        gui_range=(0, 8, 1),
        help="frames on each side along a stack whose colours a frame shares wherever their lightness agrees with its own (0: off): a structure that stays put keeps one colour instead of flickering, one that moves keeps its own; not for lazy results or a scheduler",
    )
    chroma_upsampling: str = option(
        "bilinear",
        label="Chroma upsampling",
        choices=("bilinear", "guided"),
        choice_labels=("bilinear", "guided by the lightness"),
        help="how the 1/4-resolution chroma reaches full resolution: bilinear, or refined by a guided filter on the image's lightness (for natural: rebalanced AuC +0.04 to +0.32, PSNR +0.12 to +0.20 dB, 3 to 4 percent less colourful, about 20 percent more time)",
    )
    hint_reach: str = option(
        "local",
        label="Hint reach",
        choices=HINT_REACHES,
        choice_labels=("near each hint", "whole frame"),
        help="how far colour hints act: near each hint (their colour fades out by about 60 working pixels, and beyond that the result is exactly the automatic one), or over the whole frame, as the network learned them (for natural, 10 hints then give +4.9 dB PSNR on Kodak instead of +0.7, but move the colours far from every hint by about 20 ab units)",
    )
    restore: tuple[str, ...] = option(
        (),
        label="Restore",
        choices=STEPS,
        multiple=True,
        check=check_steps,
        group="Restore",
        help="restore the lightness before colour (off by default: the input's own lightness is kept): hot-pixels (isolated spikes: hot pixels, cosmic rays), "
        "denoise, clahe (local contrast); they run in that order",
    )
    denoiser: str = option(
        DEFAULT_DENOISER,
        label="Denoiser",
        choices=DENOISERS,
        choice_labels=("wavelet (fast)", "total variation", "non-local means (slow)"),
        group="Restore",
        help="scikit-image denoiser of the denoise step: wavelet (sym4, BayesShrink), tv (total variation, Chambolle) or nl-means (non-local means: best on texture, several times slower)",
    )
    denoise_strength: float = option(
        1.0,
        label="Denoise strength",
        kind=float,
        minimum=0.0,
        exclusive_minimum=True,
        maximum=10.0,
        gui_range=(0.1, 5.0, 0.1),
        group="Restore",
        help="multiplies the noise level the denoiser removes: above 1 smoother, below 1 gentler",
    )
    noise_sigma: str | float = option(
        "frame",
        label="Noise level from",
        choices=("frame", "stack"),
        choice_labels=("each frame", "whole stack"),
        other_values=True,
        check=check_noise_sigma,
        group="Restore",
        help="noise level of the denoise step: estimated on each frame (skimage estimate_sigma), once for the stack (median of a few frames, so frames are denoised alike), "
        "or given as a number (a fraction of the intensity range, e.g. 0.02)",
    )
    hot_pixel_threshold: float = option(
        DEFAULT_HOT_PIXEL_THRESHOLD,
        label="Hot-pixel threshold",
        kind=float,
        minimum=1.0,
        maximum=100.0,
        gui_range=(1.0, 50.0, 0.5),
        group="Restore",
        help="how far a pixel must rise above (or fall below) all 8 neighbours to be removed, in units of the largest of the noise level, 1 percent of the range and the neighbours' spread",
    )
    clahe_clip: float = option(
        DEFAULT_CLAHE_CLIP,
        label="CLAHE clip limit",
        kind=float,
        minimum=0.0,
        exclusive_minimum=True,
        maximum=1.0,
        gui_range=(0.001, 1.0, 0.005),
        group="Restore",
        help="clip limit of the local contrast step (skimage equalize_adapthist): higher is stronger contrast",
    )
    percentiles: tuple[float, float] = option(
        DEFAULT_PERCENTILES,
        label="Percentiles",
        kind=tuple,
        check=check_percentiles,
        in_widget=False,
        help="percentiles (low, high) of the robust intensity range used by frame and stack normalisation",
    )
    batch_size: int = option(
        DEFAULT_BATCH_SIZE,
        label="Batch size",
        kind=int,
        minimum=1,
        in_widget=False,
        help="tiles per forward pass of the network",
    )
    precision: str = option(
        "auto",
        label="Precision",
        kind=str,
        choices=PRECISIONS,
        in_widget=False,
        help=(
            "network arithmetic: auto is bf16 autocast on CUDA, int8 on a CPU where the model has an int8 companion "
            "(run by OpenVINO when installed, else ONNX Runtime; windows that hints reach, and runs with a reference palette, take fp32), fp32 otherwise; "
            "on CUDA out-of-memory the batch is halved"
        ),
    )
    rgb: bool | None = option(
        None,
        label="RGB input",
        check=_check_rgb,
        in_widget=False,
        in_cli=False,
        help="whether the last axis holds RGB(A) channels, whose luminance is colorized; None guesses as napari does",
    )


    def __post_init__(self):
        for spec in option_specs(type(self)):
            object.__setattr__(self, spec.name, spec.validate(getattr(self, spec.name)))

    @classmethod
    def from_keywords(cls, options: ColorizeOptions | None = None, **keywords) -> ColorizeOptions:
        """``options`` (or the defaults) with ``keywords`` replaced; unknown names are a TypeError."""
        names = option_names(cls)
        unknown = sorted(set(keywords) - set(names))
        if unknown:
            raise TypeError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; options are {', '.join(names)}")
        base = options if options is not None else cls()
        if not isinstance(base, cls):
            raise TypeError(f"options must be a {cls.__name__}, got {type(base).__name__}")
        return dataclasses.replace(base, **keywords) if keywords else base

    def replace(self, **changes) -> ColorizeOptions:
        """A copy with ``changes``, validated."""
        return type(self).from_keywords(self, **changes)

    @property
    def restoration(self) -> Restoration:
        """The restoration these options ask for (inactive unless ``restore`` names a step)."""
        return Restoration(
            steps=self.restore,
            denoiser=self.denoiser,
            strength=self.denoise_strength,
            noise_sigma=self.noise_sigma,
            hot_pixel_threshold=self.hot_pixel_threshold,
            clahe_clip=self.clahe_clip,
        )

    def parameters(self) -> dict[str, Any]:
        """The options as JSON-ready values, for provenance (the model is recorded apart)."""
        values = {}
        for spec in option_specs(type(self)):
            if spec.name == "model":
                continue
            value = getattr(self, spec.name)
            values[spec.name] = list(value) if isinstance(value, tuple) else value
        return values


def option_specs(options_class: type = None) -> list[OptionSpec]:
    """The declaration of every option of ``options_class`` (default
    :class:`ColorizeOptions`, or a subclass that adds options), in order."""
    return [OptionSpec(name=f.name, **f.metadata["spec"]) for f in dataclasses.fields(options_class or ColorizeOptions)]


def option_spec(name: str, options_class: type = None) -> OptionSpec:
    """The declaration of the option ``name``."""
    for spec in option_specs(options_class):
        if spec.name == name:
            return spec
    raise KeyError(f"no option {name!r}")


def option_names(options_class: type = None) -> tuple[str, ...]:
    """Names of the options, in order."""
    return tuple(f.name for f in dataclasses.fields(options_class or ColorizeOptions))


def options_docstring(indent: str = "    ") -> str:
    """numpydoc lines for the options, for the docstrings of the functions that take them."""
    lines = []
    for spec in option_specs():
        lines.append(f"{indent}{spec.name} : optional")
        lines.append(f"{indent}    {spec.help[0].upper()}{spec.help[1:]}. Default {spec.default!r}.")
    return "\n".join(lines)
