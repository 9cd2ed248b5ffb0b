"""Frame context: a low-resolution view of a whole frame, from which a
context-taking network computes one descriptor shared by all the frame's
tiles, or by all the frames of a stack, so that they agree on colour."""

from __future__ import annotations

import numpy as np

from .arrays import frame_indices, readable_frame
from .normalization import normalized_lightness

#: Frames whose views are pooled into a stack's context.
STACK_CONTEXT_FRAMES = 8


def frame_view(colorizer, frame, low: float, high: float):
    """The lightness of a whole frame as the model's context view: a tensor
    (1, 1, S, S) resized by :meth:`Colorizer.view_of`.

    A large frame is read on a strided grid first (every k-th pixel), so a
    lazy or memory-mapped frame is never read whole for its view.
    """
    import torch

    step_y, step_x = view_steps(colorizer, frame.shape[-2:])
    sampled = normalized_lightness(np.asarray(frame[::step_y, ::step_x]), low, high)
    return colorizer.view_of(torch.from_numpy(np.ascontiguousarray(sampled))[None, None])


def view_steps(colorizer, shape: tuple[int, int]) -> tuple[int, int]:
    """The strides (every k-th row and column) a frame of ``shape`` is read at for its view."""
    return tuple(max(1, n // (4 * colorizer.context_view)) for n in shape)


def frame_context(colorizer, frame, low: float, high: float):
    """The descriptor (1, D) of one frame, as a tensor on the model's device."""
    return colorizer.encode_context(frame_view(colorizer, frame, low, high))


def lightness_context(colorizer, *lightnesses):
    """The descriptors (N, D) of N frames whose lightness (Y, X) is a tensor
    already (on the device: :mod:`napari_colorize.resident`), each read on
    :func:`frame_view`'s grid, encoded in one call."""
    import torch

    views = []
    for lightness in lightnesses:
        step_y, step_x = view_steps(colorizer, tuple(lightness.shape))
        views.append(colorizer.view_of(lightness[::step_y, ::step_x].contiguous()[None, None]))
    return colorizer.encode_context(torch.cat(views))


def stack_context(colorizer, image, prepare, *, frames: int = STACK_CONTEXT_FRAMES):
    """One descriptor (1, D) for a whole stack: the mean over up to ``frames``
    evenly spaced frames, each as ``prepare(frame)`` gives it: ``(values, low,
    high)``, its intensity range (and restoration, see
    :class:`napari_colorize.restoration.PreparedFrames`)."""
    indices = list(frame_indices(tuple(image.shape[:-2])))
    count = min(frames, len(indices))
    chosen = [indices[int(i)] for i in np.linspace(0, len(indices) - 1, count)] if count > 1 else indices[:1]
    import torch

    descriptors = []
    for index in chosen:
        frame = readable_frame(image[index])
        descriptors.append(frame_context(colorizer, *prepare(frame)))
    return torch.cat(descriptors).mean(dim=0, keepdim=True)
