"""Colour science of the method: CIE Lab (D65), ab bins, soft-encoding,
class rebalancing and annealed-mean decoding.

NumPy functions delegate to scikit-image; the torch functions are our own so
that conversion and decoding can run on the GPU, and are tested against
scikit-image.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

#: Grid spacing of the ab bins, as in Zhang et al. (2016).
AB_GRID = 10
#: Default annealed-mean temperature (the paper's value).
DEFAULT_TEMPERATURE = 0.38
#: Default rebalancing mix of the prior with the uniform distribution.
DEFAULT_REBALANCE_LAMBDA = 0.5
#: Sigma (in ab units) of the Gaussian used for soft-encoding and for
#: smoothing the empirical prior.
DEFAULT_SIGMA = 5.0
#: Number of nearest bins a ground-truth colour is soft-encoded over.
DEFAULT_NEIGHBOURS = 5

# D65 reference white and the sRGB -> XYZ matrix, as in scikit-image.
_WHITE_D65 = (0.95047, 1.0, 1.08883)
_RGB_TO_XYZ = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_EPSILON = (6.0 / 29.0) ** 3
_KAPPA_INV = 3 * (6.0 / 29.0) ** 2


# --------------------------------------------------------------------------
# NumPy conversions
# --------------------------------------------------------------------------
def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Convert sRGB in [0, 1] (or uint8) to CIE Lab (D65), float32.

    Parameters
    ----------
    rgb : ndarray, shape (..., 3)
        sRGB image, float in [0, 1] or any integer dtype (scaled by its max).

    Returns
    -------
    lab : ndarray of float32, shape (..., 3)
        L in [0, 100], a and b roughly in [-110, 110].

    Examples
    --------
    >>> rgb_to_lab(np.array([1.0, 1.0, 1.0])).round(2)
    array([100.,   0.,  -0.], dtype=float32)
    """
    from skimage.color import rgb2lab
    from skimage.util import img_as_float32

    return rgb2lab(img_as_float32(np.asarray(rgb))).astype(np.float32)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Convert CIE Lab (D65) to sRGB float32 in [0, 1], clipping out-of-gamut
    colours.

    Parameters
    ----------
    lab : ndarray, shape (..., 3)

    Returns
    -------
    rgb : ndarray of float32, shape (..., 3)
    """
    import warnings

    from skimage.color import lab2rgb

    with warnings.catch_warnings():
        # Clipping out-of-gamut predictions is expected, not a user error.
        warnings.simplefilter("ignore")
        return lab2rgb(np.asarray(lab, dtype=np.float64)).astype(np.float32)


def gray_to_lightness(value: np.ndarray) -> np.ndarray:
    """Lab lightness L of the sRGB gray (v, v, v), for v in [0, 1].

    Mapping normalised intensities through the sRGB curve makes an image
    colorized with zero chroma look exactly like the grayscale display.
    """
    v = np.clip(np.asarray(value, dtype=np.float32), 0.0, 1.0)
    y = np.where(v > 0.04045, ((v + 0.055) / 1.055) ** 2.4, v / 12.92)
    f = np.where(y > _EPSILON, np.cbrt(y), y / _KAPPA_INV + 4.0 / 29.0)
    return (116.0 * f - 16.0).astype(np.float32)


def lightness_to_gray(lightness: np.ndarray) -> np.ndarray:
    """Inverse of :func:`gray_to_lightness`: the sRGB gray value in [0, 1]
    whose Lab lightness is ``lightness`` (in [0, 100])."""
    f = (np.clip(np.asarray(lightness, dtype=np.float64), 0.0, 100.0) + 16.0) / 116.0
    y = np.where(f > 6.0 / 29.0, f**3, (f - 4.0 / 29.0) * _KAPPA_INV)
    v = np.where(y > 0.0031308, 1.055 * np.power(y, 1.0 / 2.4) - 0.055, 12.92 * y)
    return np.clip(v, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------
# Torch conversions (channel axis 1: (N, 3, H, W) or (N, 3, ...))
# --------------------------------------------------------------------------
def _matrix(m: np.ndarray, like: "torch.Tensor") -> "torch.Tensor":
    import torch

    return torch.as_tensor(m, dtype=like.dtype, device=like.device)


def _apply_matrix(m: "torch.Tensor", x: "torch.Tensor") -> "torch.Tensor":
    import torch

    return torch.einsum("ij,nj...->ni...", m, x)


def rgb_to_lab_torch(rgb: "torch.Tensor") -> "torch.Tensor":
    """Convert sRGB in [0, 1] to CIE Lab (D65) with torch.

    Parameters
    ----------
    rgb : Tensor, shape (N, 3, ...)
        Floating point sRGB in [0, 1].

    Returns
    -------
    lab : Tensor, shape (N, 3, ...)
    """
    import torch

    rgb = rgb.clamp(0.0, 1.0)
    xyz = _apply_matrix(_matrix(_RGB_TO_XYZ, rgb), _linear_torch(rgb))
    white = torch.as_tensor(_WHITE_D65, dtype=rgb.dtype, device=rgb.device)
    f = _lab_f_torch(xyz / white.view(1, 3, *([1] * (rgb.ndim - 2))))
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)


def gray_to_lightness_torch(value: "torch.Tensor") -> "torch.Tensor":
    """:func:`gray_to_lightness` with torch, where the tensor lies (a GPU frame stays there)."""
    return 116.0 * _lab_f_torch(_linear_torch(value.clamp(0.0, 1.0))) - 16.0


def _linear_torch(rgb: "torch.Tensor") -> "torch.Tensor":
    """Linear light of sRGB values in [0, 1]."""
    import torch

    return torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)


def _lab_f_torch(t: "torch.Tensor") -> "torch.Tensor":
    """CIE Lab's f(t) of white-relative XYZ values."""
    import torch

    return torch.where(t > _EPSILON, t.clamp_min(_EPSILON) ** (1.0 / 3.0), t / _KAPPA_INV + 4.0 / 29.0)


def lab_to_rgb_torch(lab: "torch.Tensor") -> "torch.Tensor":
    """Convert CIE Lab (D65) to sRGB in [0, 1] with torch, clipping to gamut.

    Parameters
    ----------
    lab : Tensor, shape (N, 3, ...)

    Returns
    -------
    rgb : Tensor, shape (N, 3, ...), values in [0, 1]
    """
    import torch

    L, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    fy = (L + 16.0) / 116.0
    f = torch.stack([fy + a / 500.0, fy, fy - b / 200.0], dim=1)
    xyz = torch.where(f > 6.0 / 29.0, f**3, (f - 4.0 / 29.0) * _KAPPA_INV)
    white = torch.as_tensor(_WHITE_D65, dtype=lab.dtype, device=lab.device)
    xyz = xyz * white.view(1, 3, *([1] * (lab.ndim - 2)))
    linear = _apply_matrix(_matrix(_XYZ_TO_RGB, lab), xyz).clamp(0.0, 1.0)
    rgb = torch.where(linear > 0.0031308, 1.055 * linear.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055, 12.92 * linear)
    return rgb.clamp(0.0, 1.0)


# --------------------------------------------------------------------------
# ab bins
# --------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _gamut_bins(grid: int) -> np.ndarray:
    # A dense sample of the sRGB cube, quantized to the nearest grid point.
    levels = np.linspace(0.0, 1.0, 129, dtype=np.float32)
    cube = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1)
    lab = rgb_to_lab(cube.reshape(-1, 1, 3)).reshape(-1, 3)
    cells = np.round(lab[:, 1:] / grid).astype(np.int64)
    # unique over one integer code per cell is far faster than unique(axis=0)
    offset, span = cells.min(), cells.max() - cells.min() + 1
    codes = np.unique((cells[:, 0] - offset) * span + (cells[:, 1] - offset))
    bins = (np.stack([codes // span + offset, codes % span + offset], axis=1) * grid).astype(np.float32)
    bins.setflags(write=False)
    return bins


def ab_bins(grid: int = AB_GRID) -> np.ndarray:
    """Centres of the quantized ab bins reachable in sRGB.

    Every sRGB colour is mapped to its nearest point of a ``grid``-spaced ab
    lattice; the bins are the lattice points that receive any colour. With
    ``grid=10`` this gives Q = 261 bins, a subset of the 313 Zhang et al.
    derived from ImageNet's (wider, camera-gamut) ab values.

    Parameters
    ----------
    grid : int
        Spacing of the lattice in ab units.

    Returns
    -------
    bins : ndarray of float32, shape (Q, 2)
        (a, b) of each bin centre, sorted by a then b.

    Examples
    --------
    >>> ab_bins().shape
    (261, 2)
    """
    return _gamut_bins(int(grid))


#: An image whose mean chroma (ab units) is below this counts as grayscale.
GRAY_CHROMA = 2.0


def looks_gray(ab: np.ndarray) -> bool:
    """Whether ab values (..., 2) count as grayscale: their mean chroma is
    under :data:`GRAY_CHROMA`: such an image has no colours to teach or to give as a palette."""
    ab = np.asarray(ab, dtype=np.float32)
    return bool(np.hypot(ab[..., 0], ab[..., 1]).mean() < GRAY_CHROMA)


def nearest_bin(ab: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Index of the nearest bin for every ab pair (``ab`` of shape (..., 2))."""
    ab = np.asarray(ab, dtype=np.float32)
    flat = ab.reshape(-1, 2)
    index = np.empty(len(flat), dtype=np.int64)
    bins = np.asarray(bins, dtype=np.float32)
    half_norms = 0.5 * (bins**2).sum(1)
    for start in range(0, len(flat), 1 << 16):  # bound the distance matrix
        chunk = flat[start : start + (1 << 16)]
        # argmin |x - b|^2 == argmin (|b|^2 / 2 - x.b): one matrix product
        index[start : start + len(chunk)] = (half_norms[None, :] - chunk @ bins.T).argmin(1)
    return index.reshape(ab.shape[:-1])


# --------------------------------------------------------------------------
# Training targets and class rebalancing (torch)
# --------------------------------------------------------------------------
def soft_encode(
    ab: "torch.Tensor",
    bins: "torch.Tensor",
    *,
    neighbours: int = DEFAULT_NEIGHBOURS,
    sigma: float = DEFAULT_SIGMA,
) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Soft-encode ab values over their nearest bins with a Gaussian kernel.

    Parameters
    ----------
    ab : Tensor, shape (N, 2, H, W)
    bins : Tensor, shape (Q, 2)
    neighbours : int
        Number of nearest bins that share each pixel's mass.
    sigma : float
        Width of the Gaussian, in ab units.

    Returns
    -------
    target : Tensor, shape (N, Q, H, W)
        A distribution over bins for each pixel (sums to 1).
    nearest : Tensor of int64, shape (N, H, W)
        Index of each pixel's nearest bin (for rebalancing weights).
    """
    import torch

    n, _, h, w = ab.shape
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 2).float()
    d2 = torch.cdist(flat, bins.float()).square()
    near_d2, near_idx = d2.topk(neighbours, dim=1, largest=False)
    weights = torch.softmax(-near_d2 / (2.0 * sigma**2), dim=1)
    target = torch.zeros(flat.shape[0], bins.shape[0], device=ab.device, dtype=torch.float32)
    target.scatter_(1, near_idx, weights)
    target = target.view(n, h, w, -1).permute(0, 3, 1, 2)
    nearest = near_idx[:, 0].view(n, h, w)
    return target, nearest


def smoothed_prior(counts: np.ndarray, bins: np.ndarray, *, sigma: float = DEFAULT_SIGMA) -> np.ndarray:
    """Empirical bin distribution smoothed by a Gaussian in the ab plane.

    Parameters
    ----------
    counts : ndarray, shape (Q,)
        How often each bin was the nearest one to a training pixel.
    bins : ndarray, shape (Q, 2)
    sigma : float
        Gaussian width in ab units.

    Returns
    -------
    prior : ndarray of float64, shape (Q,), sums to 1.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.sum() <= 0:
        raise ValueError("cannot compute a colour prior: no pixels were counted")
    p = counts / counts.sum()
    d2 = ((bins[:, None, :] - bins[None, :, :]) ** 2).sum(-1)
    kernel = np.exp(-d2 / (2.0 * sigma**2))
    smooth = kernel @ p
    return smooth / smooth.sum()


def rebalance_weights(prior: np.ndarray, *, lam: float = DEFAULT_REBALANCE_LAMBDA) -> np.ndarray:
    """Class-rebalancing weights w ∝ ((1 - λ) p̃ + λ / Q)^-1 with E_p̃[w] = 1.

    Parameters
    ----------
    prior : ndarray, shape (Q,)
        Smoothed empirical prior p̃ (sums to 1).
    lam : float
        Mix with the uniform distribution, 0 (full rebalancing) to 1 (none).

    Returns
    -------
    weights : ndarray of float64, shape (Q,)

    Examples
    --------
    >>> p = np.array([0.7, 0.2, 0.1])
    >>> w = rebalance_weights(p)
    >>> float((p * w).sum())
    1.0
    """
    prior = np.asarray(prior, dtype=np.float64)
    q = prior.size
    w = 1.0 / ((1.0 - lam) * prior + lam / q)
    return w / (prior * w).sum()


#: Floor of the exponents the annealed mean takes exp of (see :func:`annealed_mean`).
EXP_FLOOR = -80.0
#: Pixels (over the whole batch) of the slabs a CPU decodes at a time: about
#: 2 MB of logits, which stay in cache between the five passes over them;
#: 3-4x faster than one pass over a batch of 8 tiles or a 864² window.
ANNEALED_MEAN_SLAB = 2048


def annealed_mean(logits: "torch.Tensor", bins: "torch.Tensor", *, temperature: float = DEFAULT_TEMPERATURE) -> "torch.Tensor":
    """Decode a distribution over ab bins to ab values by the annealed mean.

    ``softmax(log p / T)`` re-weights the predicted distribution: T = 1 is
    the mean (desaturated), T -> 0 the mode (vivid, but patchy).

    Parameters
    ----------
    logits : Tensor, shape (N, Q, H, W)
    bins : Tensor, shape (Q, 2)
    temperature : float
        T > 0.

    Returns
    -------
    ab : Tensor, shape (N, 2, H, W)
    """
    import torch

    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    # softmax(log_softmax(z) / T) == softmax(z / T), normalised after the
    # weighted sum: one exp per bin and pixel, and the bin axis is the outer
    # one of each (Q, H*W) slab, so the sums run over contiguous rows (about
    # twice as fast on a CPU as a softmax over dim 1, then an einsum).
    # The exponents are floored at EXP_FLOOR: a weight of 2e-35 is nothing
    # beside the largest one's 1, and exp of a value that underflows takes
    # a slow path on CPUs (about 14x slower over a typical batch of logits).
    n, q, h, w = logits.shape
    flat = logits.float().reshape(n, q, h * w)
    to_ab = bins.to(flat).t()
    step = max(256, ANNEALED_MEAN_SLAB // n) if flat.device.type == "cpu" else h * w
    slabs = []
    for start in range(0, h * w, step):
        part = flat[:, :, start : start + step]
        weights = torch.exp(((part - part.amax(dim=1, keepdim=True)) / temperature).clamp_min_(EXP_FLOOR))
        slabs.append(torch.matmul(to_ab, weights) / weights.sum(dim=1, keepdim=True))
    return torch.cat(slabs, dim=2).reshape(n, 2, h, w)


def normalized_entropy(logits: "torch.Tensor") -> "torch.Tensor":
    """Per-pixel uncertainty of a distribution over ab bins: its entropy over log Q.

    The entropy ``-sum p log p`` of ``p = softmax(logits)`` (the predicted
    distribution itself, not the annealed one the colour is decoded from),
    divided by its largest possible value ``log Q``: 0 when all the
    probability sits in one bin, 1 when it is spread evenly over all Q.

    Parameters
    ----------
    logits : Tensor, shape (N, Q, H, W)
        Q >= 2.

    Returns
    -------
    uncertainty : Tensor of float32, shape (N, 1, H, W)
        In [0, 1].

    Examples
    --------
    >>> import torch
    >>> certain = torch.tensor([50.0, 0.0, 0.0, 0.0]).reshape(1, 4, 1, 1)
    >>> uniform = torch.zeros(1, 4, 1, 1)
    >>> round(float(normalized_entropy(certain)), 6), round(float(normalized_entropy(uniform)), 6)
    (0.0, 1.0)
    """
    import torch

    bins = logits.shape[1]
    if bins < 2:
        raise ValueError(f"a distribution needs at least 2 bins, got {bins}")
    probs = torch.softmax(logits.float(), dim=1)
    entropy = torch.special.entr(probs).sum(dim=1, keepdim=True)  # entr(0) = 0, not NaN
    return (entropy / math.log(bins)).clamp_(0.0, 1.0)


def to_luminance(rgb):
    """Luminance (Rec. 709 weights, as scikit-image's rgb2gray) of (..., 3|4) data, float32.

    Array-likes with a shape (NumPy, dask) keep their type: a lazy input
    gives a lazy result, computed chunk by chunk.
    """
    if not hasattr(rgb, "shape"):
        rgb = np.asarray(rgb)
    weights = np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)
    return (rgb[..., :3].astype(np.float32) @ weights).astype(np.float32)
