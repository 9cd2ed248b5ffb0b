"""``colorize()``: grayscale frames in, predicted-colour RGB out.

Data flows one way: frames -> normalise (whole frame, never per tile) ->
resample to working size -> tiles -> batched model -> ab (annealed mean) ->
stitched ab (taper-weighted) -> upsampled ab -> Lab with the input's own L ->
sRGB.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Union

import numpy as np

from .color import DEFAULT_TEMPERATURE, gray_to_lightness, to_luminance
from .model import DEFAULT_MODEL, OUTPUT_STRIDE, TILE_SIZE, Colorizer, load_checkpoint
from .tiling import Stitcher, TileGrid

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

#: Default percentiles of the robust intensity range.
DEFAULT_PERCENTILES = (0.5, 99.5)
#: Default overlap between neighbouring tiles, in working-resolution pixels.
DEFAULT_OVERLAP = 32
DEFAULT_BATCH_SIZE = 8
DEVICES = ("auto", "cpu", "cuda", "mps")
# Pixels converted to RGB at once: bounds memory on huge frames.
_CHUNK_PIXELS = 1 << 21
# Pixels sampled to estimate intensity percentiles.
_PERCENTILE_SAMPLES = 1 << 22
# Lazy frames up to this size are read whole: cheaper than many small reads.
_EAGER_FRAME_BYTES = 1 << 28

Normalize = Union[str, tuple[float, float]]


class ColorizeCancelled(Exception):
    """Raised by :func:`colorize` when its ``cancel`` callback returns True."""


def resolve_device(device: str = "auto"):
    """Pick and probe a torch device: 'auto' takes CUDA, then MPS, then CPU.

    Parameters
    ----------
    device : str
        'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.

    Raises
    ------
    ValueError
        If the requested device is not available here.
    """
    import torch

    name = str(device)
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    elif name.split(":")[0] not in DEVICES[1:]:
        raise ValueError(f"device must be one of {', '.join(DEVICES)} or cuda:N, got {device!r}")
    try:
        torch_device = torch.device(name)
        torch.zeros(1, device=torch_device)  # probe: fails early if unusable
    except (RuntimeError, AssertionError, AttributeError) as exc:
        raise ValueError(f"device {name!r} is not available here: {exc}") from None
    return torch_device


def is_dask_array(image) -> bool:
    """True for a dask array (told by its module: dask need not be installed)."""
    return type(image).__module__.startswith("dask.")


def _is_torch(image) -> bool:
    return type(image).__module__.split(".")[0] == "torch" and hasattr(image, "detach")


def _as_numpy(image):
    """A NumPy view or copy of an eager input: arrays, lists, torch tensors,
    masked arrays (masked pixels become NaN, so they are ignored by the
    intensity range and shown black, like NaN)."""
    if _is_torch(image):
        import torch

        tensor = image.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()  # NumPy has no bfloat16
        return tensor.numpy()
    if isinstance(image, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(image)
        if not mask.any():
            return np.asarray(image.data)
        if image.dtype.kind not in "biuf":
            return np.asarray(image.data)  # refused by dtype below
        work = np.float64 if image.dtype.itemsize > 4 else np.float32
        return image.astype(work).filled(np.nan)
    try:
        return np.asarray(image)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"cannot make an image array of the input ({type(image).__name__}): {exc}") from None


def _check_image(image):
    """Validate an input; NumPy-convert it unless it is a lazy array (shape and
    dtype without data, e.g. dask or TiffStack), which is read frame by frame.

    Raises TypeError or ValueError, with a message fit for a user, for
    anything that is not a non-empty, real-valued array of 2 or more axes.
    """
    kind = type(image).__name__
    lazy = hasattr(image, "shape") and hasattr(image, "dtype") and hasattr(image, "__getitem__")
    if isinstance(image, np.ndarray) or _is_torch(image) or not lazy:
        image = _as_numpy(image)
    try:
        dtype = np.dtype(image.dtype)
    except TypeError:
        raise TypeError(f"unsupported image dtype {image.dtype!r} of a {kind}: convert it with np.asarray first") from None
    if np.issubdtype(dtype, np.complexfloating):
        raise TypeError("complex images are not supported: take the magnitude or real part first")
    # timedelta64 counts as an integer to NumPy, but its values depend on a unit.
    if not (dtype == bool or (np.issubdtype(dtype, np.integer) and dtype.kind != "m") or np.issubdtype(dtype, np.floating)):
        raise TypeError(f"unsupported image dtype {dtype} (of a {kind}): need integers, floats or bool")
    if len(image.shape) < 2:
        raise ValueError(f"need at least a 2D frame (..., Y, X), got shape {tuple(image.shape)}")
    if any(not isinstance(n, (int, np.integer)) for n in image.shape):
        # e.g. a dask array filtered by a boolean mask: sizes known only when computed
        raise ValueError(f"the image's shape {tuple(image.shape)} is not known; for dask, call x.compute_chunk_sizes() first")
    if 0 in tuple(image.shape):
        raise ValueError(f"the image is empty (shape {tuple(image.shape)})")
    return image


def _finite_sample(values, *, limit: int = _PERCENTILE_SAMPLES) -> np.ndarray:
    """Up to about ``limit`` evenly spaced finite values, as float64.

    A lazy frame (dask, zarr...) is sampled on a strided grid, so only the
    sample is read.
    """
    if isinstance(values, np.ndarray):
        flat = values.reshape(-1)
        sample = flat[:: max(1, flat.size // limit)]
    else:
        step = max(1, math.isqrt(max(1, _size(values) // limit)))
        sample = np.asarray(values[..., ::step, ::step]).reshape(-1)
    sample = np.asarray(sample, dtype=np.float64)
    return sample[np.isfinite(sample)]


def _size(array) -> int:
    return int(np.prod(array.shape, dtype=np.int64))


def _readable_frame(frame):
    """NumPy frames (memory maps included) as they are; a lazy frame is read
    whole when it is small, and otherwise left lazy to be read tile by tile
    and strip by strip (reading a huge frame whole would exhaust memory)."""
    if isinstance(frame, np.ndarray):
        return frame
    if _size(frame) * np.dtype(frame.dtype).itemsize <= _EAGER_FRAME_BYTES:
        return np.asarray(frame)
    return frame


def intensity_range(values: np.ndarray, *, percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> tuple[float, float]:
    """Robust (low, high) intensity range of ``values``, ignoring NaN and Inf.

    Falls back to the finite min and max when the percentiles coincide (sparse
    images), and to (v, v + 1) for a constant image.
    """
    sample = _finite_sample(values)
    if sample.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(sample, percentiles)
    if high <= low:
        low, high = sample.min(), sample.max()
    if high <= low:
        high = low + 1.0
    return float(low), float(high)


def normalize_frame(frame: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map intensities to [0, 1] (clipped), float32; NaN and -Inf become 0, +Inf 1."""
    frame = np.asarray(frame)
    # 64-bit data is scaled in float64: values beyond float32's range stay finite.
    work = np.float64 if frame.dtype.itemsize > 4 else np.float32
    v = (frame.astype(work) - work(low)) * work(1.0 / (high - low))
    v = np.nan_to_num(np.clip(v, 0.0, 1.0), nan=0.0, posinf=1.0, neginf=0.0, copy=False)
    return v.astype(np.float32, copy=False)


def _luminance_if_rgb(image, rgb: bool | None):
    """RGB(A) input (last axis of 3 or 4; guessed as napari does when
    ``rgb`` is None) becomes its luminance, with a warning."""
    shape = tuple(image.shape)
    if rgb is None:
        rgb = len(shape) >= 3 and shape[-1] in (3, 4)
    if not rgb:
        return image
    if len(shape) < 3 or shape[-1] not in (3, 4):
        raise ValueError(f"rgb=True needs a last axis of 3 or 4 channels, got shape {shape}")
    warnings.warn(f"the input of shape {shape} is RGB/RGBA: colorizing its luminance (pass rgb=False if the last axis is X)", UserWarning, stacklevel=3)
    return to_luminance(image)


def _stack_range(image, percentiles) -> tuple[float, float]:
    if isinstance(image, np.ndarray):
        return intensity_range(image, percentiles=percentiles)
    # Lazy stack: a sample of up to 32 evenly spaced frames.
    indices = list(_frame_indices(tuple(image.shape[:-2])))
    chosen = [indices[int(i)] for i in np.linspace(0, len(indices) - 1, min(32, len(indices)))]
    per_frame = max(1, _PERCENTILE_SAMPLES // len(chosen))
    samples = [_finite_sample(image[i], limit=per_frame) for i in chosen]
    return intensity_range(np.concatenate(samples), percentiles=percentiles)


def _explicit_range(normalize: Normalize) -> tuple[float, float] | None:
    """(low, high) of an explicit range, None for 'frame' and 'stack'; refuses anything else."""
    if isinstance(normalize, str):
        if normalize in ("frame", "stack"):
            return None
        raise ValueError(f"normalize must be 'frame', 'stack' or (low, high), got {normalize!r}")
    try:
        low, high = (float(v) for v in normalize)
    except (TypeError, ValueError):
        raise ValueError(f"normalize must be 'frame', 'stack' or (low, high), got {normalize!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise ValueError(f"intensity range must be finite with high > low, got {normalize!r}")
    return low, high


def _frame_ranges(image, normalize: Normalize, percentiles) -> Callable[[tuple, np.ndarray], tuple[float, float]]:
    """A function (frame index, frame) -> (low, high) for the chosen normalisation."""
    explicit = _explicit_range(normalize)
    if explicit is not None:
        return lambda index, frame: explicit
    if normalize == "stack":
        whole = _stack_range(image, percentiles)
        return lambda index, frame: whole
    return lambda index, frame: intensity_range(frame, percentiles=percentiles)


def _resize(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if tuple(values.shape) == tuple(shape):
        return values
    import torch

    t = torch.from_numpy(np.ascontiguousarray(values))[None, None]
    antialias = shape[0] < values.shape[0] or shape[1] < values.shape[1]
    return torch.nn.functional.interpolate(t, size=shape, mode="bilinear", align_corners=False, antialias=antialias)[0, 0].numpy()


def _resample_frame(frame, low: float, high: float, shape: tuple[int, int]) -> np.ndarray:
    """The frame normalised and resampled to the working ``shape``, float32.

    Resampling is separable: along X strip by strip as the frame is read
    (so a huge or lazy frame is never held whole as floats), then along Y.
    """
    height, width = frame.shape
    across = np.empty((height, shape[1]), dtype=np.float32)
    rows = max(1, _CHUNK_PIXELS // width)
    for r0 in range(0, height, rows):
        block = normalize_frame(frame[r0 : r0 + rows], low, high)
        across[r0 : r0 + rows] = _resize(block, (block.shape[0], shape[1]))
    return _resize(across, shape)


def _working_shape(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    return tuple(max(1, int(round(n * scale))) for n in shape)


def _autocast(device, precision: str):
    import torch

    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


class _Predictor:
    """Runs tile batches, halving the batch on CUDA out-of-memory and retrying."""

    def __init__(self, colorizer: Colorizer, *, temperature: float, batch_size: int, precision: str):
        self.colorizer = colorizer
        self.temperature = temperature
        self.batch_size = batch_size
        self.autocast = _autocast(colorizer.device, precision)

    def __call__(self, tiles):
        import torch

        parts, start = [], 0
        while start < len(tiles):
            size = min(self.batch_size, len(tiles) - start)
            try:
                with self.autocast:
                    parts.append(self.colorizer.predict_ab(tiles[start : start + size], temperature=self.temperature))
            except torch.cuda.OutOfMemoryError:
                if size == 1:
                    raise MemoryError("the GPU ran out of memory on a single tile; use device='cpu'") from None
                torch.cuda.empty_cache()
                self.batch_size = max(1, size // 2)
                logger.warning("GPU out of memory: retrying with batches of %d tiles", self.batch_size)
                continue
            start += size
        return torch.cat(parts)


def _predict_chroma(source, to_lightness, grid: TileGrid, predict: _Predictor, *, batch_size: int, on_batch) -> "torch.Tensor":
    """Stitched ab (2, Hp/4, Wp/4) of a working-resolution frame, read tile by tile."""
    import torch

    device = predict.colorizer.device
    stitcher = Stitcher(grid, channels=2, scale=OUTPUT_STRIDE, like=torch.empty(0, device=device))
    origins = grid.origins
    for start in range(0, len(origins), batch_size):
        batch = origins[start : start + batch_size]
        on_batch(0)  # cancel point before the work
        tiles = torch.from_numpy(to_lightness(grid.tiles(source, batch))).to(device)[:, None]
        for tile_ab, (y, x) in zip(predict(tiles), batch):
            stitcher.add(tile_ab.float(), y, x)
        on_batch(len(batch))
    return stitcher.result(crop=False)


def _compose_strips(frame, low: float, high: float, chroma, working_shape, *, rows: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Upsample stitched ab to full resolution strip by strip: yields (r0, r1, rgb)."""
    import torch

    from .color import lab_to_rgb_torch

    height, width = frame.shape
    device = chroma.device
    canvas = chroma[None]  # (1, 2, hc, wc), covers the padded working frame
    # Exact pixel-centre mapping: full-res pixel -> working frame -> chroma grid.
    hc, wc = canvas.shape[-2:]
    ys = ((torch.arange(height, device=device) + 0.5) * (working_shape[0] / height) / OUTPUT_STRIDE) / hc * 2 - 1
    xs = ((torch.arange(width, device=device) + 0.5) * (working_shape[1] / width) / OUTPUT_STRIDE) / wc * 2 - 1
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        values = normalize_frame(frame[r0:r1], low, high)
        grid_y, grid_x = torch.meshgrid(ys[r0:r1], xs, indexing="ij")
        sample_at = torch.stack([grid_x, grid_y], dim=-1)[None].float()
        ab = torch.nn.functional.grid_sample(canvas, sample_at, mode="bilinear", padding_mode="border", align_corners=False)
        lightness = torch.from_numpy(gray_to_lightness(values)).to(device)[None, None]
        # Pixels at black or white (clipped, NaN, +-Inf) stay black and white:
        # Lab with L = 0 or 100 but nonzero chroma is neither.
        extreme = torch.from_numpy((values <= 0.0) | (values >= 1.0)).to(device)
        ab = ab.masked_fill(extreme[None, None], 0.0)
        rgb = lab_to_rgb_torch(torch.cat([lightness, ab], dim=1))[0]
        yield r0, r1, (rgb * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _frame_indices(leading_shape: tuple[int, ...]) -> Iterator[tuple]:
    return iter(np.ndindex(*leading_shape)) if leading_shape else iter([()])


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _validate(*, scale, overlap, batch_size, temperature, percentiles, precision, normalize) -> None:
    """Refuse bad options up front (also before a lazy graph is built)."""
    _explicit_range(normalize)
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    if not 0 <= int(overlap) < TILE_SIZE:
        raise ValueError(f"overlap must be in [0, {TILE_SIZE}), got {overlap!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    try:
        low, high = (float(v) for v in percentiles)
    except (TypeError, ValueError):
        low, high = math.nan, math.nan
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentiles must be (low, high) with 0 <= low < high <= 100, got {percentiles!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def colorize_strips(
    image,
    *,
    model: Union[str, Colorizer] = DEFAULT_MODEL,
    temperature: float = DEFAULT_TEMPERATURE,
    normalize: Normalize = "frame",
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    scale: float = 1.0,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str = "auto",
    precision: str = "auto",
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    rgb: bool | None = None,
    strip_rows: int = 256,
) -> Iterator[tuple[tuple, int, int, np.ndarray]]:
    """Colorize frame by frame, yielding the result in horizontal strips.

    Takes the options of :func:`colorize`; yields ``(frame_index, row_start,
    row_stop, rgb_rows)`` in order, so a writer can stream huge frames and
    long stacks to disk with bounded memory: frames are read one at a time
    (tile by tile at ``scale=1``, strip by strip at other scales), never
    the whole input. The input, options and model are checked when it is
    called, before the first strip is asked for.
    """
    image = _luminance_if_rgb(_check_image(image), rgb)
    _validate(scale=scale, overlap=overlap, batch_size=batch_size, temperature=temperature, percentiles=percentiles, precision=precision, normalize=normalize)
    torch_device = resolve_device(device)
    colorizer = model if isinstance(model, Colorizer) else load_checkpoint(model, device=str(torch_device))
    if colorizer.device != torch_device:
        # A copy: the caller's model stays where it is.
        import copy
        import dataclasses

        colorizer = dataclasses.replace(colorizer, network=copy.deepcopy(colorizer.network).to(torch_device))
    logger.info("colorizing %s with %s on %s", image.shape, colorizer.name, torch_device)
    predict = _Predictor(colorizer, temperature=temperature, batch_size=int(batch_size), precision=precision)
    range_of = _frame_ranges(image, normalize, tuple(percentiles))
    return _strips(image, predict, range_of, scale=scale, overlap=int(overlap), batch_size=int(batch_size), progress=progress, cancel=cancel, rows=max(1, int(strip_rows)))


def _strips(image, predict: _Predictor, range_of, *, scale, overlap, batch_size, progress, cancel, rows) -> Iterator[tuple[tuple, int, int, np.ndarray]]:
    """The work of :func:`colorize_strips`, frame by frame, on checked inputs."""
    leading = image.shape[:-2]
    working = _working_shape(image.shape[-2:], scale)
    grid = TileGrid.for_shape(working, tile=TILE_SIZE, overlap=overlap, align=OUTPUT_STRIDE)
    total = len(grid) * int(np.prod(leading, dtype=np.int64))
    done = 0

    def on_batch(count: int) -> None:
        nonlocal done
        if count == 0:
            if cancel is not None and cancel():
                raise ColorizeCancelled("colorization was cancelled")
            return
        done += count
        if progress is not None:
            progress(done, total)

    for index in _frame_indices(leading):
        frame = _readable_frame(image[index])
        low, high = range_of(index, frame)
        if tuple(working) == tuple(frame.shape):
            source, to_lightness = frame, lambda tiles: gray_to_lightness(normalize_frame(tiles, low, high))
        else:
            source, to_lightness = _resample_frame(frame, low, high, working), gray_to_lightness
        chroma = _predict_chroma(source, to_lightness, grid, predict, batch_size=batch_size, on_batch=on_batch)
        for r0, r1, rgb in _compose_strips(frame, low, high, chroma, working, rows=rows):
            yield index, r0, r1, rgb


def colorize(
    image,
    *,
    model: Union[str, Colorizer] = DEFAULT_MODEL,
    temperature: float = DEFAULT_TEMPERATURE,
    normalize: Normalize = "frame",
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    scale: float = 1.0,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str = "auto",
    precision: str = "auto",
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    rgb: bool | None = None,
    scheduler=None,
    out: np.ndarray | None = None,
):
    """Colorize grayscale frames with a trained colorizer.

    The network sees the lightness L of each frame (cut into overlapping
    224x224 tiles) and predicts its chroma; the output keeps the input's own
    full-resolution lightness, so no detail is lost. Colours are predicted,
    not measured.

    Parameters
    ----------
    image : array_like, shape (..., Y, X)
        A 2D frame or a stack whose leading axes are frames. Any integer,
        float or bool dtype; NaN and -Inf map to black, +Inf to white.
        NumPy arrays (memory maps included), dask arrays, torch tensors and
        nested lists are accepted; masked pixels of a masked array are
        treated like NaN (black, ignored by the intensity range). The input
        is never modified.
    model : str or Colorizer, optional
        A shipped model name ('natural', 'natural-regression'), a path to a
        ``.safetensors`` checkpoint, or a loaded :class:`Colorizer`.
    temperature : float, optional
        Annealed-mean temperature T > 0 (classification models): lower is
        more saturated, 1 is the plain mean.
    normalize : {'frame', 'stack'} or (low, high), optional
        Intensity range mapped to black..white: robust percentiles of each
        frame, of the whole stack, or an explicit range.
    percentiles : (float, float), optional
        Percentiles used by 'frame' and 'stack' normalisation.
    scale : float, optional
        Working resolution relative to the input (0.5 halves it): resample so
        that objects appear at a size the model knows. The output is always at
        the input's full resolution.
    overlap : int, optional
        Minimum overlap of neighbouring tiles in working pixels, [0, 224).
    batch_size : int, optional
        Tiles per forward pass.
    device : {'auto', 'cpu', 'cuda', 'cuda:N', 'mps'}, optional
    precision : {'auto', 'fp32', 'bf16', 'fp16'}, optional
        Arithmetic of the network: 'auto' is bf16 autocast on CUDA (results
        within a few levels of fp32), fp32 elsewhere. On a CUDA out-of-memory
        error the batch is halved and retried.
    progress : callable(done, total), optional
        Called after each batch with the number of tiles done and in total.
    cancel : callable() -> bool, optional
        Polled before each batch; returning True raises
        :class:`ColorizeCancelled`.
    rgb : bool, optional
        Whether the last axis holds RGB(A) channels, whose luminance is then
        colorized (with a warning). By default guessed as napari does: a last
        axis of 3 or 4 on an array of 3 or more dimensions.
    scheduler : str or distributed.Client, optional
        A dask.distributed scheduler address (or client): frames are
        colorized on the cluster's workers, each loading the model once, and
        gathered into a NumPy array. Workers run torch on as many threads as
        the calling process, since CPU kernels round differently with other
        thread counts: on the same hardware the result is bit-identical to
        the single-process run.
    out : ndarray of uint8, shape (..., Y, X, 3), optional
        Where to write the result (a memory map, say, for a result larger
        than memory). With ``out``, a lazy input is read and colorized frame
        by frame into it, not returned lazily.

    Returns
    -------
    rgb : ndarray of uint8, shape (..., Y, X, 3)
        ``out`` if given. For a dask array input (and no ``scheduler`` or
        ``out``): a lazy dask array of that shape, computed frame by frame
        (progress and cancel unused).

    Raises
    ------
    TypeError, ValueError
        For unsupported inputs or options.
    ColorizeCancelled
        If ``cancel`` asked to stop.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_colorize import colorize
    >>> frame = np.random.default_rng(0).integers(0, 4096, (300, 200), dtype=np.uint16)
    >>> rgb = colorize(frame, device="cpu")
    >>> rgb.shape, rgb.dtype
    ((300, 200, 3), dtype('uint8'))
    """
    options = dict(
        model=model,
        temperature=temperature,
        normalize=normalize,
        percentiles=percentiles,
        scale=scale,
        overlap=overlap,
        batch_size=batch_size,
        device=device,
        precision=precision,
        rgb=False,
    )
    # Checked first: masked arrays, tensors and lists become arrays, bad input
    # and options are refused now, not when a lazy result is computed.
    image = _luminance_if_rgb(_check_image(image), rgb)
    _validate(scale=scale, overlap=overlap, batch_size=batch_size, temperature=temperature, percentiles=percentiles, precision=precision, normalize=normalize)
    shape = (*image.shape, 3)
    if out is not None and (tuple(out.shape) != shape or out.dtype != np.uint8):
        raise ValueError(f"out must be a uint8 array of shape {shape}, got {out.dtype} {tuple(out.shape)}")
    if scheduler is not None or (is_dask_array(image) and out is None):
        from ._distributed import colorize_lazy

        result = colorize_lazy(image, scheduler=scheduler, **options)
        if out is None:
            return result
        out[...] = result
        return out
    out = np.empty(shape, dtype=np.uint8) if out is None else out
    strips = colorize_strips(image, progress=progress, cancel=cancel, strip_rows=max(1, _CHUNK_PIXELS // image.shape[-1]), **options)
    for index, r0, r1, rgb in strips:
        out[index][r0:r1] = rgb
    return out
