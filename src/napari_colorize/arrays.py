"""The one home of input checks: what counts as an image, how eager inputs
become NumPy, how lazy ones (dask, zarr, TiffStack...) stay lazy, and how
frames are walked. Every public entry point checks its input here, once."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import numpy as np

from .color import to_luminance

# Lazy frames up to this size are read whole: cheaper than many small reads.
EAGER_FRAME_BYTES = 1 << 28


def is_dask_array(image) -> bool:
    """True for a dask array (told by its module: dask need not be installed)."""
    return type(image).__module__.startswith("dask.")


def is_torch_tensor(image) -> bool:
    """True for a torch tensor (told by its module: torch is imported lazily)."""
    return type(image).__module__.split(".")[0] == "torch" and hasattr(image, "detach")


def as_numpy(image):
    """A NumPy view or copy of an eager input: arrays, lists, torch tensors,
    masked arrays (masked pixels become NaN, so they are ignored by the
    intensity range and shown black, like NaN)."""
    if is_torch_tensor(image):
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
            return np.asarray(image.data)  # refused by dtype in check_image
        work = np.float64 if image.dtype.itemsize > 4 else np.float32
        return image.astype(work).filled(np.nan)
    try:
        return np.asarray(image)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"cannot make an image array of the input ({type(image).__name__}): {exc}") from None


def check_image(image):
    """Validate an input; NumPy-convert it unless it is a lazy array (shape and
    dtype without data, e.g. dask or TiffStack), which is read frame by frame.

    Raises TypeError or ValueError, with a message fit for a user, for
    anything that is not a non-empty, real-valued array of 2 or more axes.
    """
    kind = type(image).__name__
    lazy = hasattr(image, "shape") and hasattr(image, "dtype") and hasattr(image, "__getitem__")
    if isinstance(image, np.ndarray) or is_torch_tensor(image) or not lazy:
        image = as_numpy(image)
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


def grayscale_frames(image, *, rgb: bool | None):
    """A checked input as grayscale frames (..., Y, X).

    RGB(A) input (last axis of 3 or 4; guessed as napari does when ``rgb``
    is None) becomes its luminance, with a warning.
    """
    image = check_image(image)
    shape = tuple(image.shape)
    if rgb is None:
        rgb = len(shape) >= 3 and shape[-1] in (3, 4)
    if not rgb:
        return image
    if len(shape) < 3 or shape[-1] not in (3, 4):
        raise ValueError(f"rgb=True needs a last axis of 3 or 4 channels, got shape {shape}")
    warnings.warn(f"the input of shape {shape} is RGB/RGBA: colorizing its luminance (pass rgb=False if the last axis is X)", UserWarning, stacklevel=3)
    return to_luminance(image)


def array_size(array) -> int:
    """Number of elements, for NumPy and lazy arrays alike."""
    return int(np.prod(array.shape, dtype=np.int64))


def frame_indices(leading_shape: tuple[int, ...]) -> Iterator[tuple]:
    """Indices of the frames along the leading axes, in C order (one () for a 2D frame)."""
    return iter(np.ndindex(*leading_shape)) if leading_shape else iter([()])


def readable_frame(frame):
    """NumPy frames (memory maps included) as they are; a lazy frame is read
    whole when it is small, and otherwise left lazy to be read tile by tile
    and strip by strip (reading a huge frame whole would exhaust memory)."""
    if isinstance(frame, np.ndarray):
        return frame
    if array_size(frame) * np.dtype(frame.dtype).itemsize <= EAGER_FRAME_BYTES:
        return np.asarray(frame)
    return frame


def has_finite_pixel(frame) -> bool:
    """Whether a frame has any finite value: integer frames always do; a
    float frame is looked at on a strided sample first, and whole (if it is
    in memory) only when the sample finds none."""
    if np.dtype(frame.dtype).kind not in "fc":
        return True
    if strided_sample(frame, limit=4096).size:
        return True
    return isinstance(frame, np.ndarray) and bool(np.isfinite(frame).any())


#: Types of few enough values to be handled value by value: their samples
#: keep their own type and are counted (:func:`napari_colorize.normalization.intensity_range`),
#: their lightness is looked up in a table of every value
#: (:func:`napari_colorize.normalization.value_tables`).
PER_VALUE_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))


def strided_sample(values, *, limit: int) -> np.ndarray:
    """Up to about ``limit`` evenly spaced finite values, as float64 (8- and
    16-bit unsigned values in their own type: :data:`PER_VALUE_DTYPES`).

    A lazy frame (dask, zarr...) is sampled on a strided grid, so only the
    sample is read.
    """
    if isinstance(values, np.ndarray):
        flat = values.reshape(-1)
        sample = flat[:: max(1, flat.size // limit)]
    else:
        step = max(1, math.isqrt(max(1, array_size(values) // limit)))
        sample = np.asarray(values[..., ::step, ::step]).reshape(-1)
    if sample.dtype in PER_VALUE_DTYPES:
        return sample
    sample = np.asarray(sample, dtype=np.float64)
    return sample[np.isfinite(sample)]


def as_rgb8(image: np.ndarray) -> np.ndarray:
    """A colour reference as (Y, X, 3) uint8: RGB or RGBA, any integer or float
    type (floats taken as 0..1, wider integers scaled from their largest value)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise ValueError(f"a colour reference is an RGB image (Y, X, 3), got shape {image.shape}")
    image = image[..., :3]
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind == "f":
        return (np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if image.dtype.kind in "ui":
        top = max(1, int(image.max()))
        return (np.clip(image, 0, None).astype(np.float64) * (255.0 / top) + 0.5).astype(np.uint8)
    raise ValueError(f"a colour reference holds numbers, got {image.dtype}")
