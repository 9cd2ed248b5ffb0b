"""Frame context: a low-resolution view of a whole frame, from which a
context-taking network computes one descriptor shared by all the frame's
tiles, or by all the frames of a stack, so that they agree on colour."""

from __future__ import annotations

import numpy as np

from .arrays import frame_indices, readable_frame
from .color import gray_to_lightness
from .normalization import normalize_frame

#: Frames whose views are pooled into a stack's context.
STACK_CONTEXT_FRAMES = 8


def frame_view(frame, low: float, high: float, size: int) -> np.ndarray:
    """The lightness of a whole frame resized to ``size`` x ``size`` (float32).

    A large frame is read on a strided grid first (every k-th pixel), so a
    lazy or memory-mapped frame is never read whole for its view.
    """
    import torch

    height, width = frame.shape[-2:]
    step_y, step_x = (max(1, n // (4 * size)) for n in (height, width))
    sampled = normalize_frame(np.asarray(frame[::step_y, ::step_x]), low, high)
    t = torch.from_numpy(np.ascontiguousarray(sampled))[None, None]
    view = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return gray_to_lightness(view[0, 0].numpy())


def frame_context(colorizer, frame, low: float, high: float):
    """The descriptor (1, D) of one frame, as a tensor on the model's device."""
    import torch

    view = torch.from_numpy(frame_view(frame, low, high, colorizer.context_view))[None, None]
    return colorizer.encode_context(view)


def stack_context(colorizer, image, ranges, *, frames: int = STACK_CONTEXT_FRAMES):
    """One descriptor (1, D) for a whole stack: the mean over up to ``frames``
    evenly spaced frames, each seen with its own intensity range."""
    indices = list(frame_indices(tuple(image.shape[:-2])))
    count = min(frames, len(indices))
    chosen = [indices[int(i)] for i in np.linspace(0, len(indices) - 1, count)] if count > 1 else indices[:1]
    descriptors = []
    for index in chosen:
        frame = readable_frame(image[index])
        descriptors.append(frame_context(colorizer, frame, *ranges.of(frame)))
    import torch

    return torch.cat(descriptors).mean(dim=0, keepdim=True)
