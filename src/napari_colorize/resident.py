"""Frames held on the compute device: normalised and turned into Lab
lightness where the network runs.

On a GPU the engine colours frames through this (:func:`holds_frames_on`):
only the raw frame crosses to the device (2 bytes a pixel for uint16), from
pinned memory, and only RGB comes back. A thread reads and uploads the next
frame, on a stream of its own, while the current one is coloured, so host
reads and device work overlap. The lightness is looked up in the host
path's own tables (8- and 16-bit frames: the same values) or computed the
host path's way; tiles are then gathered on the device
(:meth:`napari_colorize.tiling.TileGrid.gathered_tiles`) and strips composed
there (:func:`napari_colorize.composing.compose_strips`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from .color import gray_to_lightness_torch
from .normalization import tables_for
from .prefetch import prefetched

if TYPE_CHECKING:
    import torch


def holds_frames_on(device: "torch.device") -> bool:
    """Whether the engine holds frames on ``device`` rather than cutting tiles
    on the host: on a CUDA device, where host work would starve it."""
    return device.type == "cuda"


@dataclasses.dataclass(frozen=True)
class ResidentFrame:
    """A frame's Lab lightness (Y, X) and where it normalises to black or
    white (bool, Y, X), and its lightness at working resolution (the same
    tensor at scale 1), all on the device; ``ready`` is the CUDA event its
    upload's work ends with (None elsewhere)."""

    lightness: "torch.Tensor"
    extreme: "torch.Tensor"
    working: "torch.Tensor"
    ready: object = None

    def wait(self) -> "ResidentFrame":
        """Make the current stream wait for the upload's work; returns self."""
        if self.ready is not None:
            import torch

            torch.cuda.current_stream(self.lightness.device).wait_event(self.ready)
        return self


def resized(values: "torch.Tensor", shape: tuple[int, int]) -> "torch.Tensor":
    """Bilinear resize of a 2D float tensor, antialiased when shrinking,
    along X then along Y (as the engine resamples a frame strip by strip)."""
    import torch

    def along(t, size):
        if tuple(t.shape) == tuple(size):
            return t
        antialias = size[0] < t.shape[0] or size[1] < t.shape[1]
        return torch.nn.functional.interpolate(t[None, None], size=size, mode="bilinear", align_corners=False, antialias=antialias)[0, 0]

    return along(along(values, (values.shape[0], shape[1])), shape)


def upload(frame: np.ndarray, device: "torch.device") -> "torch.Tensor":
    """``frame`` (8- to 32-bit unsigned, signed or float) on ``device`` as it
    is, unsigned integers as the signed type of their size, which torch moves
    everywhere (see :func:`as_unsigned`); from pinned memory on CUDA."""
    import torch

    frame = np.ascontiguousarray(frame)
    if frame.dtype.kind == "u" and frame.dtype.itemsize > 1:
        frame = frame.view(frame.dtype.str.replace("u", "i"))
    host = torch.from_numpy(frame)
    if device.type == "cuda":
        return host.pin_memory().to(device, non_blocking=True)
    return host.to(device)


def as_unsigned(raw: "torch.Tensor", dtype: np.dtype) -> "torch.Tensor":
    """The values of an uploaded frame of NumPy type ``dtype`` (unsigned
    integers: their signed view put back, in int32 for 16 bits, int64 for 32)."""
    import torch

    if dtype.kind != "u" or dtype.itemsize == 1:
        return raw
    wide = raw.to(torch.int32 if dtype.itemsize == 2 else torch.int64)
    return wide.bitwise_and_((1 << (8 * dtype.itemsize)) - 1)  # in place: a 16384² frame holds no second copy


def normalized(raw: "torch.Tensor", dtype: np.dtype, low: float, high: float) -> "torch.Tensor":
    """:func:`napari_colorize.normalization.normalize_frame` on the device:
    intensities to [0, 1], clipped; NaN and -Inf 0, +Inf 1; float32."""
    import torch

    host_work = np.float64 if dtype.itemsize > 4 else np.float32
    values = as_unsigned(raw, dtype).to(torch.float64 if host_work is np.float64 else torch.float32)
    # The host's arithmetic in its precision: the same values.
    values = (values - float(host_work(low))) * float(host_work(1.0 / (high - low)))
    values = torch.nan_to_num(values.clamp(0.0, 1.0), nan=0.0, posinf=1.0, neginf=0.0)
    return values.to(torch.float32)


def resident_frame(frame: np.ndarray, low: float, high: float, working: tuple[int, int], device: "torch.device") -> ResidentFrame:
    """``frame`` (Y, X) normalised by (``low``, ``high``) and turned into Lab
    lightness on ``device``, with its lightness at ``working`` resolution."""
    import torch

    frame = np.asarray(frame)
    if frame.dtype.kind not in "uif" or frame.dtype == np.uint64:
        frame = frame.astype(np.float64)  # as the host path computes such frames
    raw = upload(frame, device)
    tables = tables_for(frame, low, high)
    values = None
    if tables is not None:
        index = as_unsigned(raw, frame.dtype).to(torch.int32)  # never uint8, which would index as a mask
        lightness, extreme = (torch.tensor(table, device=device)[index] for table in tables)
    else:
        values = normalized(raw, frame.dtype, low, high)
        lightness, extreme = gray_to_lightness_torch(values), (values <= 0.0) | (values >= 1.0)
    if tuple(working) == tuple(frame.shape):
        return ResidentFrame(lightness, extreme, lightness)
    values = normalized(raw, frame.dtype, low, high) if values is None else values
    return ResidentFrame(lightness, extreme, gray_to_lightness_torch(resized(values, working)))


def uploaded(frames: Iterable[tuple], working: tuple[int, int], device: "torch.device") -> Iterator[tuple]:
    """Items ``(..., frame, low, high)`` of ``frames`` with their
    :class:`ResidentFrame` appended, made a frame ahead in a thread (on CUDA,
    on a stream of its own: call :meth:`ResidentFrame.wait` before use)."""
    import torch

    if device.type != "cuda":
        return prefetched((*item, resident_frame(*item[-3:], working, device)) for item in frames)
    consumer, side = torch.cuda.current_stream(device), torch.cuda.Stream(device)

    def made():
        for item in frames:
            with torch.cuda.stream(side):
                held = resident_frame(*item[-3:], working, device)
                ready = torch.cuda.Event()
                ready.record(side)
            for tensor in {id(t): t for t in (held.lightness, held.extreme, held.working)}.values():
                tensor.record_stream(consumer)  # the allocator keeps them until the consumer is done
            yield (*item, dataclasses.replace(held, ready=ready))

    return prefetched(made(), ahead=1)
