"""Making a colorizer's int8 companion, for fast inference on a CPU.

A model's int8 companion is a file beside its checkpoint,
``<name>.int8.onnx``: the network's pass without hints or palette
(``automatic``, what colorizing a frame runs for every window that no hint
reaches) exported to ONNX and statically quantized, by
:func:`quantize_colorizer`: int8 weights per output channel, uint8
activations whose ranges were calibrated on the model's own kind of
images and on noisy copies of them. On a CPU with int8 dot-product
instructions (AVX-512 VNNI, AVX-VNNI, Arm dot-product) it runs several
times faster than the fp32 network (:mod:`napari_colorize.int8_runtime`
runs it).

The companion records the sha256 of the checkpoint it was made from, and is
used only with those very weights: retrained weights need a new one.
Windows that hints reach, and runs with a reference palette, take the fp32
network (those inputs are not in the int8 graph).

Making one needs ``onnx`` and ``onnxruntime`` (the ``quantize`` extra).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .int8_runtime import CHECKPOINT_SHA_KEY, companion_path, forget_companions

logger = logging.getLogger(__name__)

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
    forget_companions()
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
