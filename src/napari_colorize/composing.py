"""Stitched chroma to full-resolution RGB, strip by strip: the last steps of
the engine's flow (upsampled ab -> Lab with the frame's own lightness ->
sRGB), and the uncertainty upsampled alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from .chroma_upsampling import guided_ab, strip_bounds
from .normalization import lightness_and_extremes

if TYPE_CHECKING:
    import torch


def sampling_grid(shape: tuple[int, int], working: tuple[int, int], output_stride: int, chroma_shape: tuple[int, int], device):
    """Where each full-resolution row and column of a frame of ``shape`` falls on
    the stitched chroma grid of ``chroma_shape``, in ``grid_sample``'s [-1, 1] coordinates.

    Exact pixel-centre mapping: full-resolution pixel -> working frame -> chroma grid.
    """
    import torch

    (height, width), (hc, wc) = shape, chroma_shape
    ys = ((torch.arange(height, device=device) + 0.5) * (working[0] / height) / output_stride) / hc * 2 - 1
    xs = ((torch.arange(width, device=device) + 0.5) * (working[1] / width) / output_stride) / wc * 2 - 1
    return ys, xs


def upsample_rows(canvas: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Bilinear samples (N, C, len(ys), len(xs)) of ``canvas`` (N, C, hc, wc) at the
    grid coordinates of :func:`sampling_grid`."""
    import torch

    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    sample_at = torch.stack([grid_x, grid_y], dim=-1)[None].float().expand(len(canvas), -1, -1, -1)
    return torch.nn.functional.grid_sample(canvas, sample_at, mode="bilinear", padding_mode="border", align_corners=False)


def compose_strips(
    frame,
    low: float,
    high: float,
    chroma,
    working: tuple[int, int],
    *,
    output_stride: int,
    rows: int,
    guided: bool = False,
    threads: int | None = None,
    resident=None,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Upsample stitched ab to full resolution strip by strip: yields (r0, r1, rgb).

    Bilinear, then, if ``guided``, refined by a guided filter on the frame's
    own lightness (each strip read with the filter's halo of rows, so the
    result does not depend on the strip height). On a CPU, ``threads``
    worker threads colour each strip, torch on one thread in each (None:
    this thread, torch on all it runs on); see :func:`slab_workers`. With ``resident`` (a
    :class:`napari_colorize.resident.ResidentFrame` of ``frame``), the
    lightness and extremes are its own, on the device, and ``frame`` is not read.
    """
    import torch

    def lightness_rows(e0: int, e1: int):
        if resident is not None:
            return resident.lightness[e0:e1], resident.extreme[e0:e1]
        return lightness_and_extremes(frame[e0:e1], low, high)

    height = frame.shape[0]
    device = chroma.device
    canvas = chroma[None]  # (1, 2, hc, wc), covers the padded working frame
    ys, xs = sampling_grid(frame.shape, working, output_stride, canvas.shape[-2:], device)
    # On a CPU, rows are coloured a slab at a time, small enough to stay in
    # cache across the dozen passes of upsampling and Lab -> sRGB (about 4x
    # faster than whole 256-row strips of a 4096-wide frame); the same values.
    slab = max(1, COMPOSE_SLAB_PIXELS // max(1, frame.shape[1])) if device.type == "cpu" else rows
    with slab_workers(threads, device) as run:
        for r0 in range(0, height, rows):
            r1 = min(height, r0 + rows)
            # The frame is read once per strip (a lazy frame: one read), then coloured slab by slab.
            e0, e1, halo = strip_bounds(r0, r1, height) if guided else (r0, r1, (0, 0))
            lightness, extreme = lightness_rows(e0, e1)
            if guided:
                lightness = torch.as_tensor(lightness, device=device)[None, None]
                ab = guided_ab(upsample_rows(canvas, ys[e0:e1], xs), lightness, halo=halo)
                inner = slice(r0 - e0, r1 - e0)
                extreme, lightness = extreme[inner], lightness[..., inner, :]

                def coloured_slab(a):
                    return colour_rows(extreme[a : a + slab], lightness[..., a : a + slab, :], ab[..., a : a + slab, :])  # noqa: B023 - used before the loop moves on
            else:
                rows_at = ys[r0:r1]

                def coloured_slab(a):
                    return colour_rows(*bilinear_rows(extreme[a : a + slab], lightness[a : a + slab], canvas, rows_at[a : a + slab], xs))  # noqa: B023 - used before the loop moves on

            yield r0, r1, np.concatenate(list(run(coloured_slab, range(0, r1 - r0, slab))))


#: Pixels a CPU colours at a time in :func:`compose_strips`.
COMPOSE_SLAB_PIXELS = 65536


@contextmanager
def slab_workers(threads: int | None, device):
    """A ``map`` over a strip's slabs: on a CPU with ``threads``, run on that
    many worker threads, torch on one thread in each; else the built-in map.

    Workers are how a strip is coloured beside another thread, as the
    command line's writer compressing the previous strip: between a slab's
    dozens of small operations a worker yields its core, where torch's own
    threads spin and took the writer's (4096² command: one thread colouring
    was 0.2-0.3 s faster than torch's two, two workers 0.07 s faster again).
    Every operation gives the same values on any number of threads.
    """
    if threads is None or device.type != "cpu":
        yield map
        return
    from concurrent.futures import ThreadPoolExecutor

    import torch

    with ThreadPoolExecutor(threads, thread_name_prefix="napari-colorize-compose", initializer=torch.set_num_threads, initargs=(1,)) as pool:
        yield pool.map


def bilinear_rows(extreme, lightness, canvas, ys, xs):
    """Rows' ``extreme`` pixels (n, X), their ``lightness`` (n, X) as a
    tensor (1, 1, n, X), and their bilinearly upsampled ab (1, 2, n, X),
    sampled at rows ``ys``."""
    import torch

    return extreme, torch.as_tensor(lightness, device=canvas.device)[None, None], upsample_rows(canvas, ys, xs)


def colour_rows(extreme, lightness, ab) -> np.ndarray:
    """uint8 sRGB rows (n, X, 3) of the lightness (1, 1, n, X) and ab (1, 2, n, X);
    ``extreme`` (n, X) pixels, normalised to black or white, keep no chroma."""
    return srgb8(extreme[None], lightness, ab)[0].cpu().numpy()


def srgb8(extreme, lightness, ab) -> torch.Tensor:
    """uint8 sRGB (N, n, X, 3), where ``ab`` lies, of the lightness (N, 1, n, X)
    and ab (N, 2, n, X); ``extreme`` (N, n, X) pixels keep no chroma."""
    import torch

    from .color import lab_to_rgb_torch

    # Pixels at black or white (clipped, NaN, +-Inf) stay black and white:
    # Lab with L = 0 or 100 but nonzero chroma is neither.
    extreme = torch.as_tensor(extreme, device=ab.device)
    rgb = lab_to_rgb_torch(torch.cat([lightness, ab.masked_fill(extreme[:, None], 0.0)], dim=1))
    return (rgb * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def compose_frames(held, chromas, working: tuple[int, int], *, output_stride: int) -> np.ndarray:
    """uint8 RGB (N, Y, X, 3) of N frames of one shape held on the device
    (:class:`napari_colorize.resident.ResidentFrame`), from their stitched ab
    (2, hc, wc) each, bilinear: what :func:`compose_strips` gives each, in
    one pass and one copy back for all (a GPU is otherwise kept waiting on
    the dozens of small operations and the copy of every frame's every
    strip). For small frames: all of them are held at once, in full.
    """
    import torch

    canvas = torch.stack(list(chromas))
    lightness = torch.stack([frame.lightness for frame in held])
    ys, xs = sampling_grid(tuple(lightness.shape[-2:]), working, output_stride, canvas.shape[-2:], canvas.device)
    extreme = torch.stack([frame.extreme for frame in held])
    return srgb8(extreme, lightness[:, None], upsample_rows(canvas, ys, xs)).cpu().numpy()


def uncertainty_strips(
    uncertainty, shape: tuple[int, int], working: tuple[int, int], *, output_stride: int, rows: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Upsample stitched uncertainty (hc, wc) bilinearly to a frame of ``shape``
    strip by strip, as :func:`compose_strips` does the ab: yields (r0, r1, float32 rows in [0, 1])."""
    canvas = uncertainty[None, None]
    ys, xs = sampling_grid(shape, working, output_stride, canvas.shape[-2:], uncertainty.device)
    for r0 in range(0, shape[0], rows):
        r1 = min(shape[0], r0 + rows)
        yield r0, r1, upsample_rows(canvas, ys[r0:r1], xs)[0, 0].clamp(0.0, 1.0).cpu().numpy()
