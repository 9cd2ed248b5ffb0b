"""Edge-aware refinement of upsampled chroma, guided by the full-resolution L.

The network predicts ab at 1/4 of the working resolution; bilinear
upsampling smears colour across edges that the full-resolution lightness
shows sharply. :func:`guided_ab` is a guided filter (He, Sun & Tang, "Guided
Image Filtering", ECCV 2010 / TPAMI 2013) with L as the guide and the
bilinearly upsampled ab as the input: inside each (2r+1)² window it fits
``ab ≈ a·L' + b`` and applies the averaged ``a, b`` to the sharp L, so where
L steps, the colour steps with it, and where L is flat the ab is only
box-smoothed. With ``guide_blur = 0``, ``L' = L`` (the plain guided filter);
with ``guide_blur > 0``, ``L'`` is L blurred about as much as the upsampled
chroma is, so a ramp of ab across an edge is explained by the ramp of
``L'`` and comes out a step (guided upsampling).

Measured on the public evaluation folders (benchmarks/RESULTS_chroma_upsampling.md):
most of its PSNR gain is the smoothing, which also lowers colourfulness;
the L guidance is what makes the rebalanced AuC go up rather than down.

Streaming contract
------------------
The output at a pixel depends on the inputs within
``h = halo_rows(radius, guide_blur) = 2 * radius + ceil(3 * guide_blur)``
rows and columns of it (Gaussian of the guide, then two box filters of
radius ``radius``). To refine rows ``[r0, r1)`` of a frame of ``height``
rows, pass the inputs of rows ``[e0, e1)``, ``e0 = max(0, r0 - h)``,
``e1 = min(height, r1 + h)``, with ``halo=(r0 - e0, e1 - r1)``:
:func:`strip_bounds` computes ``(e0, e1, halo)``. The function returns rows
``[r0, r1)`` only, equal to the same rows of the whole frame refined at once
(bit for bit on CPU in the tests). Columns are always whole rows. Means are
normalised by the pixels inside the frame, so the frame's own borders need
no padding.

Everything is torch, on the inputs' device (CPU or GPU), float32.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: Defaults (the setting recommended by benchmarks/bench_chroma_upsampling.py):
#: window radius in full-resolution pixels, regularisation on the L / 100
#: scale (a variance of lightness in [0, 1] units), and the sigma (full-res
#: pixels) of the Gaussian that blurs the fitting guide (0: plain guided filter).
DEFAULT_RADIUS = 8
DEFAULT_EPS = 1e-3
DEFAULT_GUIDE_BLUR = 2.0


def blur_reach(guide_blur: float) -> int:
    """Pixels either side that the Gaussian of sigma ``guide_blur`` reads (3 sigma)."""
    return math.ceil(3.0 * float(guide_blur)) if guide_blur > 0 else 0


def halo_rows(radius: int, guide_blur: float = DEFAULT_GUIDE_BLUR) -> int:
    """Rows of context a strip needs above and below for :func:`guided_ab`
    to give the whole-frame result: ``2 * radius + blur_reach(guide_blur)``."""
    return 2 * int(radius) + blur_reach(guide_blur) if radius > 0 else 0


def strip_bounds(
    r0: int, r1: int, height: int, radius: int = DEFAULT_RADIUS, guide_blur: float = DEFAULT_GUIDE_BLUR
) -> tuple[int, int, tuple[int, int]]:
    """``(e0, e1, halo)``: the rows ``[e0, e1)`` to pass for output rows ``[r0, r1)``
    of a frame of ``height`` rows, and the ``halo`` argument of :func:`guided_ab`."""
    h = halo_rows(radius, guide_blur)
    e0, e1 = max(0, r0 - h), min(height, r1 + h)
    return e0, e1, (r0 - e0, e1 - r1)


def box_mean(values: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the (2r+1)² window around each pixel of (N, C, H, W) values,
    counting only pixels inside the array (separable, O(r) per pixel)."""
    import torch.nn.functional as F

    if radius <= 0:
        return values
    k = 2 * radius + 1
    values = F.avg_pool2d(values, (k, 1), stride=1, padding=(radius, 0), count_include_pad=False)
    return F.avg_pool2d(values, (1, k), stride=1, padding=(0, radius), count_include_pad=False)


def gaussian_blur(values: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (truncated at 3 sigma) of (N, C, H, W) values,
    normalised by the weights inside the array (no padding values)."""
    import torch
    import torch.nn.functional as F

    reach = blur_reach(sigma)
    if reach == 0:
        return values
    x = torch.arange(-reach, reach + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / float(sigma)) ** 2)
    weights = (kernel / kernel.sum()).tolist()

    # Shifted copies summed in a fixed order, not a convolution: each pixel's
    # sum is then the same however many rows are passed (a convolution picks
    # its kernel by the array's shape, and rounds differently), so strips
    # with their halo equal the whole frame exactly.
    def along(t, dim):
        size = t.shape[dim]
        pad = (0, 0, reach, reach) if dim == 2 else (reach, reach)
        padded = F.pad(t, pad)
        total = weights[0] * padded.narrow(dim, 0, size)
        for i in range(1, 2 * reach + 1):
            total = total + weights[i] * padded.narrow(dim, i, size)
        return total

    def separable(t):
        return along(along(t, 2), 3)

    return separable(values) / separable(torch.ones_like(values[:1, :1]))


def guided_ab(
    ab: torch.Tensor,
    lightness: torch.Tensor,
    *,
    radius: int = DEFAULT_RADIUS,
    eps: float = DEFAULT_EPS,
    halo: tuple[int, int] = (0, 0),
    guide_blur: float = DEFAULT_GUIDE_BLUR,
) -> torch.Tensor:
    """Refine upsampled chroma with a guided filter whose guide is the lightness.

    Parameters
    ----------
    ab : torch.Tensor, shape (2, H, W) or (N, 2, H, W)
        Chroma already upsampled (bilinearly) to full resolution, including
        the halo rows.
    lightness : torch.Tensor, shape (H, W), (1, H, W) or (N, 1, H, W)
        Lab lightness L in [0, 100] of the same rows (halo included); used
        as the guide on the scale L / 100.
    radius : int
        Window radius in full-resolution pixels (window 2r+1 wide); 0 returns
        ``ab`` unchanged (halo rows dropped).
    eps : float
        Regularisation on the L / 100 scale: windows whose lightness variance
        is well below ``eps`` are only smoothed; well above it, the colour
        follows the lightness edges.
    halo : (int, int)
        Context rows at the top and bottom of the inputs, dropped from the
        result. See the module's streaming contract: with
        ``halo_rows(radius, guide_blur)`` rows (fewer only at the frame's own
        edges) the strips equal the whole-frame result.
    guide_blur : float
        0: the plain guided filter (the linear model is fitted against L
        itself). Above 0: *guided upsampling*: the model ``ab ≈ a·L' + b`` is
        fitted against ``L'``, L blurred by a Gaussian of this sigma (full-res
        pixels) to look as blurred as the upsampled chroma, and applied to the
        sharp L; an edge that is a ramp in both ab and L' comes out a step.
        2 px suits the shipped models at scale 1 (stride-4 chroma); scale
        it with the full-resolution size of a chroma cell at other scales.

    Returns
    -------
    torch.Tensor
        The refined ab, shaped like ``ab`` without the halo rows, float32.

    Notes
    -----
    Pixels with L = 0 or 100 still get a refined ab here; the caller sets
    their ab to 0 afterwards, as it does for bilinear chroma. They act as
    ordinary guide values.
    """
    import torch

    top, bottom = (int(h) for h in halo)
    squeeze = ab.dim() == 3
    p = (ab[None] if squeeze else ab).float()
    guide = lightness.float()
    while guide.dim() < 4:
        guide = guide[None]
    if p.shape[1] != 2 or guide.shape[1] != 1 or p.shape[-2:] != guide.shape[-2:]:
        raise ValueError(
            f"ab must be (N, 2, H, W) and lightness (N, 1, H, W) of the same H, W; got {tuple(ab.shape)} and {tuple(lightness.shape)}"
        )
    height = p.shape[-2]
    if top < 0 or bottom < 0 or top + bottom >= height:
        raise ValueError(f"halo {halo} leaves no rows of {height}")
    radius = int(radius)
    if radius > 0:
        guide = guide.expand(p.shape[0], -1, -1, -1) / 100.0
        fit = gaussian_blur(guide, guide_blur)
        # One pass of box means over [I, I², p_a, p_b, I·p_a, I·p_b] (I: the fitting guide).
        means = box_mean(torch.cat([fit, fit * fit, p, fit * p], dim=1), radius)
        mean_i, mean_ii, mean_p, mean_ip = means[:, :1], means[:, 1:2], means[:, 2:4], means[:, 4:6]
        var_i = (mean_ii - mean_i * mean_i).clamp_min(0.0)
        a = (mean_ip - mean_i * mean_p) / (var_i + float(eps))
        b = mean_p - a * mean_i
        # The second box mean only matters on the rows that are returned,
        # but needs their r neighbours: cut the coefficients to those.
        lo, hi = max(0, top - radius), height - max(0, bottom - radius)
        coefficients = box_mean(torch.cat([a, b], dim=1)[..., lo:hi, :], radius)[..., top - lo : top - lo + height - top - bottom, :]
        p = coefficients[:, :2] * guide[..., top : height - bottom, :] + coefficients[:, 2:]
    else:
        p = p[..., top : height - bottom, :]
    return p[0] if squeeze else p
