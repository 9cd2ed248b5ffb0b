"""Colours shared along a stack where its frames agree.

A network colours each frame on its own, and noise (or a slice's small
changes) sways it a little differently each time, so a stack flickers even
with one context for all its frames. Here, after a frame's chroma is stitched
(at the network's output stride, before it is upsampled), the frame takes the
mean of its own chroma and that of up to ``radius`` frames on each side along
the stack's last frame axis, each neighbour weighed at every chroma cell by
how closely its lightness there agrees with the frame's own (a Gaussian of
the difference, :data:`CONSENSUS_LIGHTNESS` L units wide): where a structure
stays put the stack gets one colour; where the slices differ, each keeps
its own. This is the lightness-guided temporal filter of video
colorization, applied to the predicted chroma.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

#: Difference of a chroma cell's mean lightness (L units, 0..100) at which a
#: neighbour's chroma counts e^-1/2 as much as at none: noise of a few percent
#: of a frame's spread moves a 4x4 cell's mean by well under 1; a membrane or
#: an edge that moved, by tens.
CONSENSUS_LIGHTNESS = 4.0
#: Working rows converted to lightness at once for the cell means (bounds memory on huge frames).
BAND_ROWS = 1024


@dataclass
class FrameChroma:
    """One frame's stitched chroma on its way to the consensus.

    Attributes
    ----------
    group : tuple
        The frame's index without its last axis: frames share colours only
        with neighbours of the same group (along the stack's last frame axis).
    chroma : Tensor (C, hc, wc)
        Stitched ab (and any channels that travel with it).
    lightness : Tensor (hc, wc) or None
        Mean lightness of each chroma cell (:func:`cell_lightness`); None
        when no consensus is asked.
    payload : object
        What the caller needs to finish the frame; handed back untouched.
    """

    group: tuple
    chroma: torch.Tensor
    lightness: torch.Tensor | None
    payload: Any


def cell_lightness(source, to_lightness: Callable, chroma_shape: tuple[int, int], stride: int, device) -> torch.Tensor:
    """Mean lightness (hc, wc) of each ``stride`` x ``stride`` cell of the
    working frame ``source`` (read in bands of rows, converted by
    ``to_lightness``; a tensor ``source`` is the lightness itself), on the
    stitched chroma grid of ``chroma_shape``, whose padding beyond the frame
    takes the nearest cell's value."""
    import torch

    height, width = source.shape
    rows = max(stride, BAND_ROWS // stride * stride)
    means = []
    for r0 in range(0, height, rows):
        if torch.is_tensor(source):
            band = source[r0 : min(height, r0 + rows)].float().cpu().numpy()
        else:
            band = np.asarray(to_lightness(np.asarray(source[r0 : min(height, r0 + rows)], dtype=np.float32)), dtype=np.float32)
        # Edge rows and columns repeated to whole cells: a partial cell is the mean of what it holds, nearly.
        band = np.pad(band, ((0, -band.shape[0] % stride), (0, -width % stride)), mode="edge")
        means.append(band.reshape(band.shape[0] // stride, stride, band.shape[1] // stride, stride).mean(axis=(1, 3)))
    cells = np.concatenate(means)
    hc, wc = chroma_shape
    cells = np.pad(cells, ((0, max(0, hc - cells.shape[0])), (0, max(0, wc - cells.shape[1]))), mode="edge")[:hc, :wc]
    return torch.from_numpy(np.ascontiguousarray(cells)).to(device)


def agreed_chroma(own: FrameChroma, neighbours: Iterable[FrameChroma]) -> torch.Tensor:
    """``own``'s chroma averaged with its ``neighbours``', each weighed per cell by
    how closely its lightness agrees with ``own``'s (own weight 1)."""
    total = own.chroma.clone()
    weight = own.chroma.new_ones(own.chroma.shape[1:])
    for other in neighbours:
        agreement = (-0.5 * ((other.lightness - own.lightness) / CONSENSUS_LIGHTNESS) ** 2).exp()
        total += agreement * other.chroma
        weight += agreement
    return total / weight


def shared_along_stack(frames: Iterable[FrameChroma], radius: int) -> Iterator[tuple[Any, torch.Tensor]]:
    """``(payload, chroma)`` of each frame, in order, its chroma agreed with up
    to ``radius`` frames on each side of its group (:func:`agreed_chroma`);
    with ``radius`` 0 each frame's own. Reads at most ``radius`` frames ahead
    of the one it yields, and keeps at most ``2 * radius + 1``."""
    if radius <= 0:
        for frame in frames:
            yield frame.payload, frame.chroma
        return
    window: deque[FrameChroma] = deque()
    next_out = 0  # position in the window of the next frame to yield

    def finish(position: int):
        own = window[position]
        lo, hi = max(0, position - radius), min(len(window), position + radius + 1)
        chroma = agreed_chroma(own, (window[i] for i in range(lo, hi) if i != position))
        payload, own.payload = own.payload, None  # only its chroma is needed after this
        return payload, chroma

    for frame in frames:
        if window and window[-1].group != frame.group:
            while next_out < len(window):
                yield finish(next_out)
                next_out += 1
            window.clear()
            next_out = 0
        window.append(frame)
        while len(window) - 1 - next_out >= radius:
            yield finish(next_out)
            next_out += 1
        while next_out > radius:
            window.popleft()
            next_out -= 1
    while next_out < len(window):
        yield finish(next_out)
        next_out += 1
