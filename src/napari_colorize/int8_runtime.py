"""Running a model's int8 companion on the CPU.

A model's int8 companion is a file beside its checkpoint,
``<name>.int8.onnx`` (made by :func:`napari_colorize.quantized.quantize_colorizer`):
the network's pass without hints or palette, statically quantized. It
records the sha256 of the checkpoint it was made from and is used only with
those very weights.

Two engines can run it, the first one installed serving (:data:`INT8_ENGINES`):

- OpenVINO (the ``openvino`` extra), compiled for each input shape met
  (a frame's windows all share one), with the annealed mean appended to
  the graph: on this project's 2-core AMD EPYC about 1.6x ONNX Runtime's
  speed on the same graph, to the same colours within rounding;
- ONNX Runtime, a dependency; its logits are decoded by
  :func:`napari_colorize.color.annealed_mean`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

from .user_cache import user_cache_folder

logger = logging.getLogger(__name__)

#: Name ending of a checkpoint's int8 companion, in place of ``.safetensors``.
INT8_SUFFIX = ".int8.onnx"
#: Metadata key of the companion: the sha256 of the checkpoint it was made from.
CHECKPOINT_SHA_KEY = "napari_colorize.checkpoint_sha256"
#: Engines that can run a companion, in the order they are preferred.
INT8_ENGINES = ("openvino", "onnxruntime")
#: Input shapes an OpenVINO companion keeps compiled (about 0.2 s to compile one).
COMPILED_SHAPES = 4
#: Input of an OpenVINO graph with the annealed mean appended: 1 / temperature, shape (1,).
INVERSE_TEMPERATURE = "inverse_temperature"
#: Environment variable naming the engine to use instead of the first installed.
ENGINE_VARIABLE = "NAPARI_COLORIZE_INT8_ENGINE"
#: Environment variable naming the folder OpenVINO keeps compiled graphs in
#: between runs (see :func:`compiled_graph_cache`); empty for none.
CACHE_VARIABLE = "NAPARI_COLORIZE_OPENVINO_CACHE"
#: Compiled graphs the cache keeps, the most recently made (about 6 MB each).
CACHED_GRAPHS = 16


def companion_path(checkpoint: str | Path) -> Path:
    """Where the int8 companion of the checkpoint file ``checkpoint`` lives."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name.removesuffix(".safetensors") + INT8_SUFFIX)


def int8_engine() -> str | None:
    """The engine that runs int8 companions here: the one named by the
    environment variable :data:`ENGINE_VARIABLE` when set, else the first of
    :data:`INT8_ENGINES` installed; None when it is not installed.

    Raises
    ------
    ValueError
        If the variable names no engine of :data:`INT8_ENGINES`.
    """
    import importlib.util

    asked = os.environ.get(ENGINE_VARIABLE, "").strip()
    if asked and asked not in INT8_ENGINES:
        raise ValueError(f"{ENGINE_VARIABLE}={asked!r} names no int8 engine; use one of {', '.join(INT8_ENGINES)}")
    return next((name for name in ([asked] if asked else INT8_ENGINES) if importlib.util.find_spec(name) is not None), None)


def int8_unavailable(colorizer) -> str | None:
    """Why ``colorizer`` cannot run in int8 here, or None when it can."""
    try:
        load_int8(colorizer)
    except ValueError as exc:
        return str(exc)
    return None


def load_int8(colorizer):
    """The int8 companion of ``colorizer``, ready to run (loaded once per
    process): an :class:`OpenVinoNetwork` or an :class:`OnnxRuntimeNetwork`.

    Raises
    ------
    ValueError
        If the model is not on the CPU, has no companion, no engine is
        installed, or the companion is unreadable or was made from other
        weights than the checkpoint's.
    """
    if colorizer.device.type != "cpu":
        raise ValueError(f"int8 runs on the CPU; this model is on {colorizer.device.type}")
    if not colorizer.path or not companion_path(colorizer.path).is_file():
        raise ValueError(
            f"model {colorizer.name!r} has no int8 companion (a {INT8_SUFFIX} file beside its checkpoint); "
            "make one with 'napari-colorize quantize'"
        )
    engine = int8_engine()
    if engine is None:
        wanted = os.environ.get(ENGINE_VARIABLE, "").strip() or "onnxruntime"
        raise ValueError(f"int8 needs {wanted}: pip install {wanted}")
    import torch

    loaded = open_companion(str(companion_path(colorizer.path)), colorizer.sha256, torch.get_num_threads(), engine)
    if isinstance(loaded, str):
        raise ValueError(loaded)  # noqa: TRY004 - the reason it cannot serve, not a wrong type
    return loaded


def forget_companions() -> None:
    """Drop every companion loaded (after one is written anew)."""
    open_companion.cache_clear()


@lru_cache(maxsize=8)
def open_companion(path: str, sha256: str, threads: int, engine: str):
    """The companion at ``path`` for the checkpoint ``sha256``, run by
    ``engine``, or why it cannot serve: a refusal is kept too, so that a
    stale companion is read once per process, not at every run and record."""
    try:
        network = OpenVinoNetwork(path, threads) if engine == "openvino" else OnnxRuntimeNetwork(path, threads)
    except Exception as exc:  # noqa: BLE001 - each engine raises its own exception types
        return f"cannot read the int8 companion {path}: {exc}"
    if network.made_from != sha256:
        return (
            f"the int8 companion {path} was made from other weights (sha256 {str(network.made_from)[:12]}) than its checkpoint "
            f"({sha256[:12]}); make it again with 'napari-colorize quantize'"
        )
    return network


class OnnxRuntimeNetwork:
    """An int8 companion run by ONNX Runtime, as the network
    :meth:`Colorizer.predict_ab` runs: lightness tiles (N, 1, H, W), and the
    frame context when the model takes one, in; fp32 logits (or ab) out, as
    tensors. It has no hint or palette input: it computes what the network
    does with those all zeros."""

    name = "int8"
    engine = "onnxruntime"
    decodes = False  # see OpenVinoNetwork.annealed_mean

    def __init__(self, path: str, threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle threads spinning between runs would take the cores from the
        # decoding that follows each batch (4096²: 8.0 s spinning, 6.3 s not).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.made_from = self.session.get_modelmeta().custom_metadata_map.get(CHECKPOINT_SHA_KEY)
        self.input_names = tuple(arg.name for arg in self.session.get_inputs() if arg.name != "lightness")

    def __call__(self, lightness, **inputs):
        import torch

        return torch.from_numpy(self.session.run(None, as_feeds(lightness, inputs))[0])


class OpenVinoNetwork:
    """An int8 companion run by OpenVINO, called as :class:`OnnxRuntimeNetwork`.

    The graph is compiled for the shapes it is given, the last
    :data:`COMPILED_SHAPES` kept: OpenVINO 2026.4 compiled with dynamic
    shapes gives wrong colours on this graph (mean ab 16 units from fp32's
    on skimage's camera, against 0.7 with static shapes).

    OpenVINO's default inference precision is kept: on a CPU with bf16
    instructions (AVX-512 BF16, AMX) the layers the companion keeps in
    fp32 (context path, decoder, head) then run in bf16. On this project's
    AMD EPYC that is 5.9 ms per 224-tile-equivalent against 7.7 with them
    in fp32 (ONNX Runtime: 9.5), and the scores were measured that way
    (rebalanced AuC within 0.02 of ONNX Runtime's on every test folder).
    """

    name = "int8"
    engine = "openvino"
    decodes = True

    def __init__(self, path: str, threads: int):
        openvino = import_openvino()
        self.core = openvino.Core()
        self.model = self.core.read_model(path)
        self.threads = threads
        recorded = ["framework", CHECKPOINT_SHA_KEY]  # where OpenVINO keeps an ONNX file's metadata
        self.made_from = self.model.get_rt_info(recorded).astype(str) if self.model.has_rt_info(recorded) else None
        self.input_names = tuple(port.get_any_name() for port in self.model.inputs if port.get_any_name() != "lightness")
        self.compiled = OrderedDict()
        self.lock = threading.Lock()  # one compiled model runs one request at a time

    def compiled_for(self, shapes: dict, bins=None, *, with_logits: bool = False):
        """The graph compiled for input ``shapes`` (name -> shape), with the
        annealed mean over ``bins`` (Q, 2) appended when they are given (and
        the logits kept as a second output ``with_logits``)."""
        key = (tuple(sorted((name, tuple(shape)) for name, shape in shapes.items())), None if bins is None else bins.tobytes(), with_logits)
        if key not in self.compiled:
            model = self.model.clone()
            model.reshape({name: list(shape) for name, shape in shapes.items()})
            if bins is not None:
                append_annealed_mean(model, bins, keep_logits=with_logits)
            settings = {"INFERENCE_NUM_THREADS": self.threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
            cache = compiled_graph_cache()
            self.compiled[key] = self.core.compile_model(model, "CPU", settings | ({"CACHE_DIR": str(cache)} if cache else {}))
            if cache:
                prune_cache(cache)
            while len(self.compiled) > COMPILED_SHAPES:
                self.compiled.popitem(last=False)
        self.compiled.move_to_end(key)
        return self.compiled[key]

    def __call__(self, lightness, **inputs):
        return self.run(as_feeds(lightness, inputs))

    def annealed_mean(self, lightness, *, bins, temperature: float, with_logits: bool = False, **inputs):
        """ab (N, 2, h, w) of a classification companion, decoded in the graph
        as :func:`napari_colorize.color.annealed_mean` decodes its logits;
        ``with_logits``, (ab, logits), the ab the same as without.

        The 261-odd logits of each pixel then never leave OpenVINO's own
        layout: on a 864² window 94 ms against 121 for the logits and the
        decoding apart (mean ab 0.04 units from those, bf16 rounding).
        """
        import numpy as np

        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        bins = np.ascontiguousarray(bins, dtype=np.float32)
        feeds = as_feeds(lightness, inputs)
        return self.run({**feeds, INVERSE_TEMPERATURE: np.array([1.0 / temperature], np.float32)}, bins, with_logits=with_logits)

    def run(self, feeds: dict, bins=None, *, with_logits: bool = False):
        import torch

        shapes = {name: value.shape for name, value in feeds.items() if name != INVERSE_TEMPERATURE}
        with self.lock:
            outputs = self.compiled_for(shapes, bins, with_logits=with_logits)(feeds)
            return (torch.from_numpy(outputs[0]), torch.from_numpy(outputs[1])) if with_logits else torch.from_numpy(outputs[0])


def import_openvino():
    """The ``openvino`` package, imported without its model conversion tools.

    Importing ``openvino`` imports ``openvino.tools.ovc``, which sends a usage
    event to OpenVINO's telemetry unless the user opted out (and forks a
    process to do so): 0.18 s of every run, and a colorizer has no business
    reporting on its users. Inference needs none of it. ``openvino.convert_model``
    stays, importing the tools when it is first called, for other code in
    the process that converts models.
    """
    import sys

    if "openvino" not in sys.modules:
        blocked = sys.modules.setdefault("openvino.tools.ovc", None) is None  # its import fails, and openvino/__init__ skips it
        try:
            import openvino
        finally:
            if blocked and sys.modules.get("openvino.tools.ovc", False) is None:
                del sys.modules["openvino.tools.ovc"]
        if not hasattr(openvino, "convert_model"):
            openvino.convert_model = convert_model
    return sys.modules["openvino"]


def convert_model(*args, **kwargs):
    """``openvino.convert_model``, its tools imported when it is called (see :func:`import_openvino`)."""
    from openvino.tools.ovc import convert_model as convert

    return convert(*args, **kwargs)


def compiled_graph_cache() -> Path | None:
    """The folder OpenVINO keeps compiled graphs in between runs, made if
    need be: the one named by :data:`CACHE_VARIABLE` when set (none when
    it is empty), else ``openvino`` in the user cache folder; None when
    there is none or it cannot be made. A graph found there loads in about
    0.07 s instead of compiling in 0.2 (a 864² window here), at every run
    of the command and for every view size the widget met before."""
    asked = os.environ.get(CACHE_VARIABLE)
    folder = user_cache_folder("openvino") if asked is None else Path(asked) if asked.strip() else None
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        logger.info("not caching compiled graphs: %s", exc)
        return None
    return folder


def prune_cache(folder: Path, *, keep: int = CACHED_GRAPHS) -> None:
    """Delete all but the ``keep`` most recently made compiled graphs in ``folder``."""

    def made(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:  # deleted meanwhile, by another run
            return 0.0

    for old in sorted(folder.glob("*.blob"), key=made, reverse=True)[keep:]:
        try:
            old.unlink()
        except OSError:  # another run deleted it first, or is reading it (Windows)
            pass


def append_annealed_mean(model, bins, *, keep_logits: bool = False) -> None:
    """Make an OpenVINO ``model``'s output, logits (N, Q, h, w), the ab
    their annealed mean gives (:func:`napari_colorize.color.annealed_mean`),
    with 1 / temperature as the input :data:`INVERSE_TEMPERATURE`; with
    ``keep_logits``, the logits stay, as a second output.

    The weighted sums are a 1x1 convolution with three outputs, a, b and
    the normaliser, which OpenVINO runs in the channel-blocked layout the
    logits come in (a softmax over the bins needed a reorder first).
    """
    import numpy as np

    openvino = import_openvino()
    import openvino.opset13 as ops

    (result,) = model.get_results()
    logits = result.input_value(0)
    inverse_temperature = ops.parameter([1], openvino.Type.f32, name=INVERSE_TEMPERATURE)
    inverse_temperature.output(0).get_tensor().set_names({INVERSE_TEMPERATURE})
    scaled = ops.multiply(logits, ops.reshape(inverse_temperature, ops.constant(np.array([1, 1, 1, 1], np.int64)), False))
    bin_axis = ops.constant(np.array([1], np.int64))
    weights = ops.exp(ops.subtract(scaled, ops.reduce_max(scaled, bin_axis, True)))
    sums = np.concatenate([bins.T, np.ones((1, len(bins)), np.float32)]).reshape(3, len(bins), 1, 1)
    weighted = ops.convolution(weights, ops.constant(sums), [1, 1], [0, 0], [0, 0], [1, 1])
    ab_and_total = ops.variadic_split(weighted, ops.constant(np.int64(1)), ops.constant(np.array([2, 1], np.int64)))
    ab = ops.divide(ab_and_total.output(0), ab_and_total.output(1))
    ab.output(0).get_tensor().set_names({"ab"})
    model.remove_result(result)
    if keep_logits:
        model.add_results([ops.result(ab), ops.result(logits)])
    else:
        logits.get_tensor().set_names(set())  # OpenVINO's CPU plugin looks for an output by that name
        model.add_results([ops.result(ab)])
    model.add_parameters([inverse_temperature])


def as_feeds(lightness, inputs: dict) -> dict:
    """The network's inputs (tensors) as contiguous float32 NumPy arrays by name."""
    return {name: value.detach().float().contiguous().cpu().numpy() for name, value in {"lightness": lightness, **inputs}.items()}
