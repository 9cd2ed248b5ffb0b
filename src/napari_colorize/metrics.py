"""Quality metrics of colorization: AuC of the ab-error CMF (plain and
class-rebalanced, as in Zhang et al. 2016), PSNR and colourfulness."""

from __future__ import annotations

import numpy as np

from .color import nearest_bin

#: Thresholds (ab units) of the cumulative mass function of ab errors.
MAX_THRESHOLD = 150


def colorfulness(rgb: np.ndarray) -> float:
    """Colourfulness of Hasler & Süsstrunk (2003) of uint8 RGB (..., 3).

    Parameters
    ----------
    rgb : ndarray, shape (..., 3)

    Returns
    -------
    float
        0 for gray; larger for more, and more varied, colour.

    Examples
    --------
    >>> colorfulness(np.full((4, 4, 3), 128, np.uint8))
    0.0
    """
    rgb = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)
    rg = rgb[:, 0] - rgb[:, 1]
    yb = 0.5 * (rgb[:, 0] + rgb[:, 1]) - rgb[:, 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def psnr(reference: np.ndarray, result: np.ndarray) -> float:
    """PSNR in dB of uint8 images (inf when identical)."""
    error = np.mean((np.asarray(reference, dtype=np.float64) - np.asarray(result, dtype=np.float64)) ** 2)
    return float("inf") if error == 0 else float(10.0 * np.log10(255.0**2 / error))


class ABErrorCMF:
    """Accumulates per-pixel ab errors, keyed by each pixel's true ab bin.

    The AuC is the mean over thresholds 0..150 of the fraction of pixels
    whose ab error is within the threshold, in percent. The rebalanced AuC
    weights each pixel by the inverse frequency of its true bin in the data
    seen, i.e. averages the per-bin curves uniformly.

    Parameters
    ----------
    bins : ndarray, shape (Q, 2)
        ab bin centres: each pixel counts in the bin nearest to its true ab.
    """

    def __init__(self, bins: np.ndarray):
        self.bins = np.asarray(bins, dtype=np.float32)
        # counts[bin, e]: pixels of that true bin whose error rounds up to e
        # (the last column collects errors above MAX_THRESHOLD).
        self.counts = np.zeros((len(self.bins), MAX_THRESHOLD + 2), dtype=np.int64)

    def add(self, true_ab: np.ndarray, predicted_ab: np.ndarray) -> None:
        """Add pixels: ab arrays of shape (..., 2)."""
        true_ab = np.asarray(true_ab, dtype=np.float32).reshape(-1, 2)
        error = np.hypot(*(true_ab - np.asarray(predicted_ab, dtype=np.float32).reshape(-1, 2)).T)
        # error <= t  <=>  ceil(error) <= t for integer thresholds t
        column = np.minimum(np.ceil(error - 1e-4).astype(np.int64), MAX_THRESHOLD + 1)
        np.add.at(self.counts, (nearest_bin(true_ab, self.bins), column), 1)

    @classmethod
    def pooled(cls, parts) -> ABErrorCMF:
        """One accumulator holding the pixels of all ``parts`` (accumulators on the same bins)."""
        parts = list(parts)
        pooled = cls(parts[0].bins)
        for part in parts:
            pooled.counts += part.counts
        return pooled

    def auc(self, *, rebalanced: bool = False) -> float:
        """Area under the CMF of the errors added so far, in percent (100: all exact)."""
        per_bin = self.counts.astype(np.float64)
        if rebalanced:
            totals = per_bin.sum(1, keepdims=True)
            per_bin = np.divide(per_bin, totals, out=np.zeros_like(per_bin), where=totals > 0)
        cmf = np.cumsum(per_bin.sum(0))[: MAX_THRESHOLD + 1] / per_bin.sum()
        return float(100.0 * cmf.mean())
