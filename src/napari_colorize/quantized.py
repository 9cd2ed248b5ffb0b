"""Int8 inference of a colorizer on the CPU, with ONNX Runtime.

A model's int8 companion is a file beside its checkpoint,
``<name>.int8.onnx``: the network's pass without hints or palette
(``automatic``, what colorizing a frame runs for every tile that no hint
reaches) exported to ONNX and statically quantized, by
:func:`quantize_colorizer`: int8 weights per output channel, uint8
activations whose ranges were calibrated on the model's own kind of
images and on noisy copies of them. On a CPU with int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI,
Arm dot-product) it runs several times faster than the fp32 network.

The companion records the sha256 of the checkpoint it was made from, and is
used only with those very weights: retrained weights need a new one.
Tiles that hints reach, and runs with a reference palette, take the fp32
network (those inputs are not in the int8 graph).

Running a companion needs ``onnxruntime``; making one also needs ``onnx``
(the ``quantize`` extra).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: Name ending of a checkpoint's int8 companion, in place of ``.safetensors``.
INT8_SUFFIX = ".int8.onnx"
#: Metadata key of the companion: the sha256 of the checkpoint it was made from.
CHECKPOINT_SHA_KEY = "napari_colorize.checkpoint_sha256"
#: Calibration tiles cut from each image, at most.
CALIBRATION_TILES_PER_IMAGE = 2
#: Range of the standard deviation (L units) of the Gaussian noise added to
#: each image for one more calibration tile: noisy frames (low-dose EM,
#: faint telescope frames) drive activations beyond clean photographs'.
#: Without it, natural's int8 colours of a noisy EM frame moved 2.9 ab
#: units from fp32's on average; with it 0.2 (clean photographs: 0.7 -> 0.8).
CALIBRATION_NOISE = (2.0, 30.0)
#: Submodules kept in fp32: the context path (one vector per frame: nothing
#: to save) and the decoder and head, the last fifth of the work, whose
#: rounding reaches the logits unfiltered (and these are divided by the
#: temperature, 0.38, before the exponential). On the EM stack this cut the
#: mean ab change of natural's int8 colours from fp32's from 1.95 (all
#: int8) to 0.37, and kept its tile-grid and crop consistency at fp32's.
FP32_MODULES = ("context_path", "up8", "up4", "head")


def companion_path(checkpoint: str | Path) -> Path:
    """Where the int8 companion of the checkpoint file ``checkpoint`` lives."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name.removesuffix(".safetensors") + INT8_SUFFIX)


def int8_unavailable(colorizer) -> str | None:
    """Why ``colorizer`` cannot run in int8 here, or None when it can."""
    try:
        load_int8(colorizer)
    except ValueError as exc:
        return str(exc)
    return None


def load_int8(colorizer) -> Int8Network:
    """The int8 companion of ``colorizer``, ready to run (loaded once).

    Raises
    ------
    ValueError
        If the model is not on the CPU, has no companion, ONNX Runtime is
        missing, or the companion is unreadable or was made from other
        weights than the checkpoint's.
    """
    if colorizer.device.type != "cpu":
        raise ValueError(f"int8 runs on the CPU; this model is on {colorizer.device.type}")
    if not colorizer.path or not companion_path(colorizer.path).is_file():
        raise ValueError(
            f"model {colorizer.name!r} has no int8 companion (a {INT8_SUFFIX} file beside its checkpoint); "
            "make one with 'napari-colorize quantize'"
        )
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ValueError("int8 needs ONNX Runtime: pip install onnxruntime") from None
    import torch

    loaded = _load_session(str(companion_path(colorizer.path)), colorizer.sha256, torch.get_num_threads())
    if isinstance(loaded, str):
        raise ValueError(loaded)  # noqa: TRY004 - the reason it cannot serve, not a wrong type
    return loaded


@lru_cache(maxsize=8)
def _load_session(path: str, sha256: str, threads: int) -> Int8Network | str:
    """The companion at ``path`` for the checkpoint ``sha256``, or why it
    cannot serve: a refusal is kept too, so that a stale companion is read
    once per process, not at every run and record."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle threads spinning between runs would take the cores from the
    # decoding that follows each batch (4096²: 8.0 s spinning, 6.3 s not).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own exception types
        return f"cannot read the int8 companion {path}: {exc}"
    made_from = session.get_modelmeta().custom_metadata_map.get(CHECKPOINT_SHA_KEY)
    if made_from != sha256:
        return (
            f"the int8 companion {path} was made from other weights (sha256 {str(made_from)[:12]}) than its checkpoint "
            f"({sha256[:12]}); make it again with 'napari-colorize quantize'"
        )
    return Int8Network(session)


class Int8Network:
    """An int8 companion as the network :meth:`Colorizer.predict_ab` runs:
    lightness tiles (N, 1, H, W), and the frame context when the model
    takes one, in; fp32 logits (or ab) out, as tensors. It has no hint or
    palette input: it computes what the network does with those all zeros."""

    name = "int8"

    def __init__(self, session):
        self.session = session
        self.input_names = tuple(arg.name for arg in session.get_inputs() if arg.name != "lightness")

    def __call__(self, lightness, **inputs):
        import torch

        feeds = {"lightness": lightness, **inputs}
        return torch.from_numpy(
            self.session.run(None, {name: value.detach().float().contiguous().cpu().numpy() for name, value in feeds.items()})[0]
        )


def can_quantize() -> bool:
    """Whether :func:`quantize_colorizer` can run here (``onnx`` and ``onnxruntime`` installed)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime.quantization  # noqa: F401
    except ImportError:
        return False
    return True


def calibration_inputs(colorizer, pictures: Iterable[np.ndarray], *, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """ONNX feeds of real tiles for calibrating the int8 ranges: the
    lightness of up to :data:`CALIBRATION_TILES_PER_IMAGE` random tiles of
    each RGB picture at least a tile on its short side, and one of a noisy
    copy of it (:data:`CALIBRATION_NOISE`), each with its frame's context."""
    import torch

    from .color import rgb_to_lab

    rng = np.random.default_rng(seed)
    side = colorizer.tile_size
    feeds = []
    for picture in pictures:
        lightness = rgb_to_lab(picture)[..., 0]
        if min(lightness.shape) < side:
            continue
        noisy = (lightness + rng.normal(0.0, rng.uniform(*CALIBRATION_NOISE), lightness.shape)).clip(0, 100).astype(np.float32)
        for frame, tiles in ((lightness, CALIBRATION_TILES_PER_IMAGE), (noisy, 1)):
            context = (
                colorizer.encode_context(colorizer.view_of(torch.from_numpy(frame)[None, None])).numpy() if colorizer.frame_inputs else None
            )
            for _ in range(tiles):
                y, x = (int(rng.integers(0, n - side + 1)) for n in frame.shape)
                feed = {"lightness": np.ascontiguousarray(frame[None, None, y : y + side, x : x + side])}
                if context is not None:
                    feed["context"] = context
                feeds.append(feed)
    return feeds


def quantize_colorizer(colorizer, pictures: Iterable[np.ndarray], path: str | Path | None = None) -> Path:
    """Make the int8 companion of a saved colorizer.

    Parameters
    ----------
    colorizer : Colorizer
        Loaded from a checkpoint file (its sha256 is recorded).
    pictures : iterable of ndarray
        RGB pictures (H, W, 3) of the kind the model colours (its training
        images); those under a tile on their short side are skipped. A few
        dozen suffice.
    path : path, optional
        Where to write it; default :func:`companion_path` of the checkpoint.

    Returns
    -------
    Path
        The file written (atomically: a failed run leaves no half file).

    Raises
    ------
    ValueError
        If the colorizer is unsaved or no picture is a tile wide.
    ImportError
        If ``onnx`` or ``onnxruntime`` is missing (``pip install
        napari-colorize[quantize]``).
    """
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not colorizer.sha256:
        raise ValueError("only a saved model can be quantized: its companion records which checkpoint it belongs to")
    feeds = calibration_inputs(colorizer, pictures)
    if not feeds:
        raise ValueError(f"no colour picture of at least {colorizer.tile_size} px on its short side to calibrate on")
    path = Path(path) if path is not None else companion_path(colorizer.path)

    class Feeds(CalibrationDataReader):
        def __init__(self):
            self.remaining = iter(feeds)

        def get_next(self):
            return next(self.remaining, None)

    with tempfile.TemporaryDirectory() as work:
        exported, prepared, quantized = (Path(work) / name for name in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        export_automatic(colorizer, feeds[0], exported)
        quant_pre_process(str(exported), str(prepared))
        nodes = onnx.load(str(prepared)).graph.node
        kept = [node.name for node in nodes if node.name.startswith(tuple(f"/{module}/" for module in FP32_MODULES))]
        quantize_static(
            str(prepared),
            str(quantized),
            Feeds(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            # 7-bit weights: without int8 dot-product instructions (AVX2 alone) x86 CPUs add
            # pairs of uint8 x int8 products in 16 bits, which full-range weights can overflow.
            reduce_range=True,
            nodes_to_exclude=kept,
        )
        model = onnx.load(str(quantized))
        onnx.helper.set_model_props(model, {CHECKPOINT_SHA_KEY: colorizer.sha256, "napari_colorize.model": colorizer.name})
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.tmp")
        onnx.save(model, str(partial))
        partial.replace(path)
    _load_session.cache_clear()
    return path


def export_automatic(colorizer, example: dict[str, np.ndarray], path: Path) -> None:
    """Export the network's ``automatic`` pass to ONNX (fp32), any batch
    and tile size."""
    import copy

    import torch

    network = copy.deepcopy(colorizer.network).float().eval().to(memory_format=torch.contiguous_format)

    class Automatic(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.network = network

        def forward(self, *inputs):
            return self.network.automatic(*inputs)

    names = list(example)
    axes = {"lightness": {0: "tiles", 2: "height", 3: "width"}, "context": {0: "tiles"}, "logits": {0: "tiles", 2: "rows", 3: "columns"}}
    # torch's TorchScript exporter warns of its own deprecation and of
    # constant folds it skips: nothing a user can act on.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Automatic(),
            tuple(torch.from_numpy(example[name]) for name in names),
            str(path),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={name: axes[name] for name in [*names, "logits"]},
            dynamo=False,
            opset_version=17,
        )


def make_int8_companion(checkpoint: Path, folders) -> Path | None:
    """Make the int8 companion of a checkpoint just trained, calibrated on
    the images it learned from (image ``folders``), so that it runs as fast
    on a CPU as the shipped models; where it cannot be made (``onnx`` not
    installed, no image a tile wide), remove any earlier one, which belonged
    to the weights just replaced, and return None."""
    from .io import sample_pictures
    from .model import load_checkpoint

    if can_quantize():
        try:
            return quantize_colorizer(load_checkpoint(checkpoint, device="cpu"), sample_pictures(folders, limit=64))
        except ValueError as exc:
            logger.info("no int8 companion for %s: %s", checkpoint, exc)
    companion_path(checkpoint).unlink(missing_ok=True)
    return None
