"""The colorization network, its heads, saving and loading it (the files themselves: checkpoint_files).

A checkpoint is a safetensors file: tensors plus a JSON metadata string.
Loading one never executes code from the file.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .architectures import DEFAULT_ARCHITECTURE, HEADS, InputSpec, get_architecture
from .checkpoint_files import (  # noqa: F401  (re-exported: the names users and tools import from here)
    DEFAULT_MODEL,
    METADATA_KEY,
    CheckpointError,
    check_not_pickle,
    checkpoint_metadata,
    file_sha256,
    parse_metadata,
    read_metadata_string,
    resolve_model_path,
    shipped_models,
    shipped_models_dir,
    update_checkpoint_metadata,
)


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
    architecture : str
        Registered architecture name (see :mod:`napari_colorize.architectures`).
    tile_size : int
        Side of the tiles the network was trained on (and is run on, unless ``windowed``).
    output_stride : int
        Input pixels per predicted chroma pixel.
    extra_inputs : tuple of InputSpec
        Inputs the network takes besides the lightness.
    context_view : int
        Side of the low-resolution view from which a 'frame' input is computed.
    windowed : bool
        Whether it may colour windows larger than its tile (see
        :class:`napari_colorize.architectures.Architecture`).
    """

    network: Any
    head: str
    bins: np.ndarray
    prior: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)
    name: str = "unsaved"
    sha256: str = ""
    path: str = ""
    architecture: str = DEFAULT_ARCHITECTURE
    tile_size: int = 224
    output_stride: int = 4
    extra_inputs: tuple[InputSpec, ...] = ()
    context_view: int = 128
    windowed: bool = False

    @property
    def num_bins(self) -> int:
        return int(self.bins.shape[0])

    @property
    def device(self):
        return next(self.network.parameters()).device

    @property
    def input_names(self) -> tuple[str, ...]:
        """Names of the extra inputs the network takes (besides the lightness)."""
        return tuple(spec.name for spec in self.extra_inputs)

    def check_inputs(self, names) -> None:
        """Refuse extra inputs this model does not take, naming those it does."""
        unknown = sorted(set(names) - set(self.input_names))
        if unknown:
            takes = ", ".join(self.input_names) or "only the lightness"
            raise ValueError(f"model {self.name!r} ({self.architecture}) takes {takes}; it cannot use {', '.join(unknown)}")

    def check_uncertainty(self) -> None:
        """Refuse to report uncertainty for a model that predicts no distribution.

        Raises
        ------
        ValueError
            For a regression model: it predicts ab directly, with no
            distribution over colours whose spread could be measured.
        """
        if self.head != "classification":
            raise ValueError(
                f"model {self.name!r} is a {self.head} model: it predicts colours directly, with no distribution "
                "over them, so it has no uncertainty to show; use a classification model such as 'natural'"
            )

    @property
    def smallest_side(self) -> int:
        """Short side, in pixels, of the smallest images the network was
        trained on: its training crops, from the checkpoint's training record
        (0 when it has none), or the ``smallest_side`` it declares (a run
        that trained only some modules keeps its init's: the frozen layers
        that see the image learned at those crops). Training enlarges every
        image whose short side is under the crop until the crop fits, so the
        network has seen smaller images only enlarged."""
        declared = self.metadata.get("smallest_side")
        if isinstance(declared, int) and declared > 0:
            return declared
        training = self.metadata.get("training")
        config = training.get("config") if isinstance(training, dict) else None
        return int(config.get("crop_size") or 0) if isinstance(config, dict) else 0

    @property
    def frame_inputs(self) -> tuple[str, ...]:
        """Names of the inputs computed from a view of the whole frame."""
        return tuple(spec.name for spec in self.extra_inputs if spec.kind == "frame")

    def encode_context(self, view):
        """The frame descriptor (N, D) of low-resolution views (N, 1, S, S) of L in [0, 100]."""
        import torch

        with _fast_inference(), torch.inference_mode():
            return self.network.encode_context(_in_fast_layout(view.to(self.device))).float()

    def view_of(self, lightness):
        """A tile (or frame) of L (N, 1, H, W) resized to the context view."""
        import torch

        size = (self.context_view, self.context_view)
        return torch.nn.functional.interpolate(lightness, size=size, mode="bilinear", align_corners=False, antialias=True)

    def run_network(self, lightness, **inputs):
        """The network's raw output, logits over the bins or ab, for L tiles
        (N, 1, H, W) and every one of its extra inputs, given in the layout
        it runs fastest in (:meth:`predict_ab` makes the inputs and decodes)."""
        return self.network(_in_fast_layout(lightness), **{name: _in_fast_layout(value) for name, value in inputs.items()})

    def predict_ab(self, lightness, *, temperature: float, uncertainty: bool = False, network=None, **extra_inputs):
        """ab at 1/``output_stride`` resolution for a batch of L tiles (N, 1, H, W), as a tensor.

        Extra inputs are given by name: 'pixels' ones as (N, channels, H, W),
        zeros when not given; 'frame' ones as a descriptor (N or 1, D) from
        :meth:`encode_context`, computed from each tile alone when not
        given; 'bins' ones as (N or 1, Q) (a reference palette:
        :func:`napari_colorize.palette.reference_palette`), zeros when not
        given. An input the network does not take is refused with a
        ValueError. With ``uncertainty`` (classification models only, see
        :meth:`check_uncertainty`), returns ``(ab, uncertainty)``, the second
        (N, 1, h, w): the normalised entropy of the predicted distribution
        (:func:`napari_colorize.color.normalized_entropy`). ``network``, when
        given, runs in place of the colorizer's own (an int8 companion:
        :func:`napari_colorize.int8_runtime.load_int8`); it is given only the
        inputs named in its ``input_names``, and the others must not be;
        one that ``decodes`` computes the annealed mean itself.
        """
        import torch

        from .color import annealed_mean, normalized_entropy

        if uncertainty:
            self.check_uncertainty()

        self.check_inputs(extra_inputs)
        if network is not None:
            refused = sorted(set(extra_inputs) - set(network.input_names))
            if refused:
                raise ValueError(f"the {network.name} network takes no {', '.join(refused)}")
        extras = {}
        for spec in self.extra_inputs:
            if network is not None and spec.name not in network.input_names:
                continue  # the network runs as if it were all zeros
            given = extra_inputs.get(spec.name)
            if spec.kind == "frame":
                given = self.encode_context(self.view_of(lightness)) if given is None else given.to(lightness.device, lightness.dtype)
                extras[spec.name] = given.expand(lightness.shape[0], -1)
            elif spec.kind == "bins":
                given = lightness.new_zeros((1, self.num_bins)) if given is None else given.to(lightness.device, lightness.dtype)
                extras[spec.name] = given.reshape(-1, self.num_bins).expand(lightness.shape[0], -1)
            else:
                shape = (lightness.shape[0], spec.channels, *lightness.shape[-2:])
                extras[spec.name] = lightness.new_zeros(shape) if given is None else given.to(lightness.device, lightness.dtype)
        with _fast_inference(), torch.inference_mode():
            if self.head == "classification" and network is not None and network.decodes:
                decoded = network.annealed_mean(lightness, bins=self.bins, temperature=temperature, with_logits=uncertainty, **extras)
                return (decoded[0].contiguous(), normalized_entropy(decoded[1]).contiguous()) if uncertainty else decoded
            out = (network or self.run_network)(lightness, **extras)
            if self.head == "regression":
                return out.float().contiguous()
            bins = torch.as_tensor(self.bins).to(out.device, non_blocking=True)  # on a GPU, no wait for the batch before it
            ab = annealed_mean(out, bins, temperature=temperature).contiguous()
            return (ab, normalized_entropy(out).contiguous()) if uncertainty else ab


def _in_fast_layout(tensor):
    """An image batch (N, C, H, W) in the layout every network's weights are
    kept in (channels-last: the convolutions run about 1.4x faster on CPU
    than in torch's default layout, to the same values up to float
    rounding); descriptors (N, D) as they are."""
    import torch

    return tensor.contiguous(memory_format=torch.channels_last) if tensor.ndim == 4 else tensor


@contextmanager
def _fast_inference():
    """Flush subnormal floats to zero while the network runs.

    Trained weights drive some activations subnormal, which x86 CPUs compute
    several times slower; flushing them to zero changes nothing visible. The
    flag is process-wide, so it is only held for the call.
    """
    import torch

    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def create_colorizer(
    *, architecture: str = DEFAULT_ARCHITECTURE, head: str = "classification", width: int = 32, bins: np.ndarray | None = None
) -> Colorizer:
    """Make a freshly initialised (untrained) colorizer.

    Parameters
    ----------
    architecture : str
        A registered architecture name (see :func:`napari_colorize.architectures.architectures`).
    head : {'classification', 'regression'}
    width : int
        Channels of the first layer; the rest scale with it.
    bins : ndarray, optional
        ab bin centres; defaults to :func:`napari_colorize.color.ab_bins`.
    """
    from .color import ab_bins

    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    spec = get_architecture(architecture)
    bins = np.array(ab_bins() if bins is None else bins, dtype=np.float32)  # own, writable copy
    import torch

    network = spec.build(head=head, bins=bins, width=width).to(memory_format=torch.channels_last)  # see _in_fast_layout
    metadata = {
        "architecture": spec.name,
        "head": head,
        "width": width,
        "num_bins": len(bins),
        "tile_size": spec.tile_size,
        "output_stride": spec.output_stride,
        "inputs": ["lightness", *(i.name for i in spec.extra_inputs)],
    }
    if any(i.kind == "frame" for i in spec.extra_inputs):
        metadata["context_view"] = spec.context_view
    return Colorizer(
        network=network,
        head=head,
        bins=bins,
        metadata=metadata,
        architecture=spec.name,
        tile_size=spec.tile_size,
        output_stride=spec.output_stride,
        extra_inputs=spec.extra_inputs,
        context_view=spec.context_view,
        windowed=spec.windowed,
    )


def copy_matching_weights(target: Colorizer, source: Colorizer) -> list[str]:
    """Warm-start ``target`` from ``source``: copy every weight whose name and
    shape match; return the names of the target's weights left as they were."""
    own = target.network.state_dict()
    theirs = source.network.state_dict()
    matching = {k: v for k, v in theirs.items() if k in own and own[k].shape == v.shape}
    target.network.load_state_dict(matching, strict=False)
    return sorted(set(own) - set(matching))


def save_checkpoint(colorizer: Colorizer, path: str | Path, *, extra_metadata: dict | None = None) -> str:
    """Write ``colorizer`` to a safetensors file atomically; return its sha256."""
    from safetensors.torch import save_file

    path = Path(path)
    meta = {**colorizer.metadata, **(extra_metadata or {})}
    colorizer.metadata = meta
    import torch

    tensors = {f"network.{k}": _storable(v) for k, v in colorizer.network.state_dict().items()}

    tensors["colorizer.bins"] = torch.as_tensor(colorizer.bins, dtype=torch.float32)
    if colorizer.prior is not None:
        tensors["colorizer.prior"] = torch.as_tensor(colorizer.prior, dtype=torch.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)})
    tmp.replace(path)
    colorizer.sha256 = file_sha256(path)
    return colorizer.sha256


def _storable(tensor):
    """``tensor`` as stored: half precision halves the file and leaves
    inference unaffected at this scale, but a value beyond float16's range
    (a batch-norm variance of a few hundred thousand, say) keeps float32."""
    import torch

    tensor = tensor.detach().cpu().contiguous()
    if not tensor.is_floating_point():
        return tensor
    half = tensor.half()
    if bool(torch.isfinite(tensor).all()) and not bool(torch.isfinite(half).all()):
        return tensor.float()
    return half


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
    # Keyed on content: a checkpoint rewritten within one timestamp tick
    # (same size, same mtime) must not load stale.
    return _load_cached(str(path.resolve()), file_sha256(path), device or "cpu")


def clear_model_cache() -> None:
    """Forget loaded checkpoints (each load then reads its file again)."""
    _load_cached.cache_clear()


def model_cache_misses() -> int:
    """How many loads read a file so far (for checking that a process loads a model once)."""
    return _load_cached.cache_info().misses


@lru_cache(maxsize=4)
def _load_cached(path: str, sha256: str, device: str) -> Colorizer:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    check_not_pickle(path)
    raw_meta = read_metadata_string(path)
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    # NaN or Inf weights would colour every pixel with garbage, silently.
    broken = sorted(k for k, v in tensors.items() if v.is_floating_point() and not v.isfinite().all())
    if broken:
        raise CheckpointError(f"{path} is corrupted: non-finite values in {', '.join(broken[:3])}")
    try:
        meta = parse_metadata(path, raw_meta)
        architecture = meta.get("architecture")
        try:
            get_architecture(str(architecture))
        except KeyError as exc:
            raise CheckpointError(f"{path}: unsupported architecture {architecture!r} ({exc.args[0]})") from None
        bins = tensors.pop("colorizer.bins").numpy()
        prior = tensors.pop("colorizer.prior").numpy() if "colorizer.prior" in tensors else None
        colorizer = create_colorizer(architecture=architecture, head=meta["head"], width=int(meta["width"]), bins=bins)
        _check_declared_geometry(path, meta, colorizer)
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
    colorizer.sha256 = sha256
    return colorizer


def _check_declared_geometry(path: str, meta: dict, colorizer: Colorizer) -> None:
    """A checkpoint's declared tile, stride and inputs must be its architecture's
    (checkpoints written before they were declared take the architecture's)."""
    declared = {
        key: meta.get(key, colorizer.metadata[key])
        for key in ("tile_size", "output_stride", "inputs", "context_view")
        if key in colorizer.metadata
    }
    declared["inputs"] = list(declared["inputs"])
    for key, value in declared.items():
        if value != colorizer.metadata[key]:
            raise CheckpointError(
                f"{path} declares {key} {value!r}, but its architecture {colorizer.architecture!r} has {colorizer.metadata[key]!r}"
            )
