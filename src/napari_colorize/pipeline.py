"""``colorize()``: grayscale frames in, predicted-colour RGB out.

Data flows one way: frames -> normalise (whole frame, never per tile) ->
resample to working size -> tiles -> batched model -> ab (annealed mean) ->
stitched ab (taper-weighted) -> upsampled ab -> Lab with the input's own L ->
sRGB.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from typing import Union

import numpy as np

from .color import DEFAULT_TEMPERATURE, gray_to_lightness
from .model import DEFAULT_MODEL, OUTPUT_STRIDE, TILE_SIZE, Colorizer, load_checkpoint
from .tiling import Stitcher, TileGrid

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


def _check_image(image) -> np.ndarray:
    if np.iscomplexobj(image):
        raise TypeError("complex images are not supported: take the magnitude or real part first")
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.float32)
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise TypeError(f"unsupported image dtype {image.dtype}: need integers, floats or bool")
    if image.ndim < 2:
        raise ValueError(f"need at least a 2D frame (..., Y, X), got shape {image.shape}")
    if image.size == 0:
        raise ValueError(f"the image is empty (shape {image.shape})")
    return image


def _finite_sample(values: np.ndarray) -> np.ndarray:
    flat = values.reshape(-1)
    step = max(1, flat.size // _PERCENTILE_SAMPLES)
    sample = np.asarray(flat[::step], dtype=np.float64)
    return sample[np.isfinite(sample)]


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
    """Map intensities to [0, 1] (clipped); NaN and -Inf become 0, +Inf 1."""
    frame = np.asarray(frame)
    v = (frame.astype(np.float32) - np.float32(low)) * np.float32(1.0 / (high - low))
    return np.nan_to_num(np.clip(v, 0.0, 1.0), nan=0.0, posinf=1.0, neginf=0.0, copy=False)


def _frame_ranges(image: np.ndarray, normalize: Normalize, percentiles) -> Callable[[tuple], tuple[float, float]]:
    if isinstance(normalize, str):
        if normalize == "frame":
            return lambda index: intensity_range(image[index], percentiles=percentiles)
        if normalize == "stack":
            whole = intensity_range(image, percentiles=percentiles)
            return lambda index: whole
        raise ValueError(f"normalize must be 'frame', 'stack' or (low, high), got {normalize!r}")
    low, high = (float(v) for v in normalize)
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise ValueError(f"intensity range must be finite with high > low, got {normalize!r}")
    return lambda index: (low, high)


def _resize(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if tuple(values.shape) == tuple(shape):
        return values
    import torch

    t = torch.from_numpy(np.ascontiguousarray(values))[None, None]
    antialias = shape[0] < values.shape[0] or shape[1] < values.shape[1]
    return torch.nn.functional.interpolate(t, size=shape, mode="bilinear", align_corners=False, antialias=antialias)[0, 0].numpy()


def _working_shape(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    return tuple(max(1, int(round(n * scale))) for n in shape)


def _predict_chroma(lightness: np.ndarray, colorizer: Colorizer, *, temperature, overlap, batch_size, on_batch) -> "torch.Tensor":
    """Stitched ab (2, Hp/4, Wp/4) of a working-resolution L frame."""
    import torch

    device = colorizer.device
    grid = TileGrid.for_shape(lightness.shape, tile=TILE_SIZE, overlap=overlap, align=OUTPUT_STRIDE)
    padded = grid.pad(lightness)
    stitcher = Stitcher(grid, channels=2, scale=OUTPUT_STRIDE, like=torch.empty(0, device=device))
    origins = grid.origins
    for start in range(0, len(origins), batch_size):
        batch = origins[start : start + batch_size]
        on_batch(0)  # cancel point before the work
        tiles = torch.from_numpy(grid.extract(padded, batch)).to(device)[:, None]
        ab = colorizer.predict_ab(tiles, temperature=temperature)
        for tile_ab, (y, x) in zip(ab, batch):
            stitcher.add(tile_ab, y, x)
        on_batch(len(batch))
    return stitcher.result(crop=False)


def _compose_rgb(values: np.ndarray, chroma, working_shape: tuple[int, int], out: np.ndarray) -> None:
    """Upsample stitched ab to full resolution and write sRGB uint8 into ``out``."""
    import torch

    from .color import lab_to_rgb_torch

    height, width = values.shape
    device = chroma.device
    canvas = chroma[None]  # (1, 2, hc, wc), covers the padded working frame
    # Exact pixel-centre mapping: full-res pixel -> working frame -> chroma grid.
    hc, wc = canvas.shape[-2:]
    ys = ((torch.arange(height, device=device) + 0.5) * (working_shape[0] / height) / OUTPUT_STRIDE) / hc * 2 - 1
    xs = ((torch.arange(width, device=device) + 0.5) * (working_shape[1] / width) / OUTPUT_STRIDE) / wc * 2 - 1
    rows = max(1, _CHUNK_PIXELS // width)
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        grid_y, grid_x = torch.meshgrid(ys[r0:r1], xs, indexing="ij")
        sample_at = torch.stack([grid_x, grid_y], dim=-1)[None].float()
        ab = torch.nn.functional.grid_sample(canvas, sample_at, mode="bilinear", padding_mode="border", align_corners=False)
        lightness = torch.from_numpy(gray_to_lightness(values[r0:r1])).to(device)[None, None]
        # Pixels at black or white (clipped, NaN, +-Inf) stay black and white:
        # Lab with L = 0 or 100 but nonzero chroma is neither.
        extreme = torch.from_numpy((values[r0:r1] <= 0.0) | (values[r0:r1] >= 1.0)).to(device)
        ab = ab.masked_fill(extreme[None, None], 0.0)
        rgb = lab_to_rgb_torch(torch.cat([lightness, ab], dim=1))[0]
        out[r0:r1] = (rgb * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _frame_indices(leading_shape: tuple[int, ...]) -> Iterator[tuple]:
    return iter(np.ndindex(*leading_shape)) if leading_shape else iter([()])


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
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> np.ndarray:
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
    progress : callable(done, total), optional
        Called after each batch with the number of tiles done and in total.
    cancel : callable() -> bool, optional
        Polled before each batch; returning True raises
        :class:`ColorizeCancelled`.

    Returns
    -------
    rgb : ndarray of uint8, shape (..., Y, X, 3)

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
    image = _check_image(image)
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    if not 0 <= int(overlap) < TILE_SIZE:
        raise ValueError(f"overlap must be in [0, {TILE_SIZE}), got {overlap!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if len(percentiles) != 2 or not 0 <= percentiles[0] < percentiles[1] <= 100:
        raise ValueError(f"percentiles must be (low, high) with 0 <= low < high <= 100, got {percentiles!r}")
    torch_device = resolve_device(device)
    colorizer = model if isinstance(model, Colorizer) else load_checkpoint(model, device=str(torch_device))
    if colorizer.device != torch_device:
        colorizer.network.to(torch_device)
    logger.info("colorizing %s with %s on %s", image.shape, colorizer.name, torch_device)

    frame_shape = image.shape[-2:]
    leading = image.shape[:-2]
    working = _working_shape(frame_shape, scale)
    tiles_per_frame = len(TileGrid.for_shape(working, tile=TILE_SIZE, overlap=int(overlap), align=OUTPUT_STRIDE))
    total = tiles_per_frame * int(np.prod(leading, dtype=np.int64))
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

    range_of = _frame_ranges(image, normalize, tuple(percentiles))
    out = np.empty((*image.shape, 3), dtype=np.uint8)
    for index in _frame_indices(leading):
        values = normalize_frame(image[index], *range_of(index))
        lightness = gray_to_lightness(_resize(values, working))
        chroma = _predict_chroma(
            lightness, colorizer, temperature=temperature, overlap=int(overlap), batch_size=int(batch_size), on_batch=on_batch
        )
        _compose_rgb(values, chroma, working, out[index])
    return out
