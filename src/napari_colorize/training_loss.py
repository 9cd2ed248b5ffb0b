"""What a network is trained to predict, and how it is scored: colour crops
become Lab on the training device (the lightness in, ab averaged over the
output stride as the target), and the loss is the rebalanced, soft-encoded
cross-entropy of Zhang et al. 2016 (classification) or L2 on ab (regression)."""

from __future__ import annotations

import numpy as np

from .color import rgb_to_lab_torch
from .model import Colorizer


def lab_batch(batch, device, stride: int):
    """Training crops -> the network's input and the ab it should predict.

    Parameters
    ----------
    batch : Tensor of uint8, shape (N, 3, c, c)
        RGB crops.
    device : torch.device
        Where to convert them.
    stride : int
        The model's output stride: ab is averaged over stride x stride blocks.

    Returns
    -------
    lightness : Tensor, shape (N, 1, c, c)
    ab : Tensor, shape (N, 2, c / stride, c / stride)
    """
    return split_lab(lab_of(batch, device), stride)


def lab_of(batch, device):
    """uint8 RGB (N, 3, H, W) -> Lab (N, 3, H, W) float32 on ``device``."""
    return rgb_to_lab_torch(batch.to(device, non_blocking=True).float() / 255.0)


def split_lab(lab, stride: int):
    """Lab (N, 3, c, c) -> lightness (N, 1, c, c) and ab averaged over stride x stride blocks."""
    import torch

    return lab[:, :1].contiguous(), torch.nn.functional.avg_pool2d(lab[:, 1:], stride)


class Loss:
    """Soft-encoded, rebalanced cross-entropy (classification) or L2 on ab (regression).

    Parameters
    ----------
    colorizer : Colorizer
        Gives the head and the ab bins.
    weights : ndarray, shape (Q,)
        Rebalancing weight of each bin (see :func:`napari_colorize.color.rebalance_weights`);
        a pixel's cross-entropy is weighted by that of its nearest bin.
    device : torch.device
    """

    def __init__(self, colorizer: Colorizer, weights: np.ndarray, device):
        import torch

        self.head = colorizer.head
        self.bins = torch.as_tensor(colorizer.bins, device=device)
        self.weights = torch.as_tensor(weights, dtype=torch.float32, device=device)

    def __call__(self, output, ab, crop_weights=None):
        """Mean loss of the network's ``output`` (N, Q or 2, h, w) against the
        true ``ab`` (N, 2, h, w); with ``crop_weights`` (N,), the mean of the
        crops' means weighted by them (a crop of weight 0 teaches no colour)."""
        import torch

        from .color import soft_encode

        if self.head == "regression":
            if crop_weights is None:
                return torch.nn.functional.mse_loss(output.float(), ab)
            per_pixel = (output.float() - ab).pow(2).mean(dim=1)
        else:
            target, nearest = soft_encode(ab, self.bins)
            log_p = torch.log_softmax(output.float(), dim=1)
            per_pixel = -(target * log_p).sum(dim=1) * self.weights[nearest]
        if crop_weights is None:
            return per_pixel.mean()
        crop_weights = crop_weights.to(per_pixel)
        return (per_pixel.mean(dim=(1, 2)) * crop_weights).sum() / crop_weights.sum().clamp_min(1.0)
