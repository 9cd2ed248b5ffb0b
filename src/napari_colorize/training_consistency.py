"""Training for colours that do not depend on where a tile falls.

A network with zero padding knows where the edges of its window are, and can
learn a colour prior by position in the window: at inference that paints
bands at the tile period and changes a structure's colour when the grid
moves. Here each crop is seen through two windows, one shifted against the
other (and the second with a little sensor noise, and, for a network that
takes the frame's context, the context of a random cut-out of the image,
from a window of the crop to the whole image, instead of the whole image's),
and the network is penalised for disagreeing with itself where they
overlap: a structure keeps its colour when the grid moves, when the frame
is noisy and when the image is cropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from .color import annealed_mean

#: Largest shift between the two windows, in crop pixels (half of it for crops under 128).
MAX_SHIFT = 32
#: Largest noise added to the second window's lightness, as a fraction of
#: the crop's standard deviation (the stack benchmark uses 3 % of the frame's).
MAX_NOISE = 0.04
#: The standard deviation (L units) below which a crop's noise is measured
#: against this one instead: a flat crop of a contrasty frame (sky, background)
#: is as noisy as the rest of the frame, and that is where noise sways colour.
MIN_NOISE_SPREAD = 20.0
#: ab difference that costs as much as a unit of divergence in the decoded-colour penalty.
DECODED_SCALE = 10.0
#: Squared length of a context's contribution to the features that costs one
#: unit in the context penalty (the shipped `natural` gives about 130 on photographs).
CONTEXT_SCALE = 100.0


def context_disagreement(context_path, whole, cut_out, weights=None):
    """How differently a network's context path answers the context of a whole
    image and of a cut-out of it: the mean squared distance of its two
    outputs (divided by CONTEXT_SCALE), each crop's distance times its
    weight in ``weights`` when given.

    The descriptors are detached: only the context path learns from this, to
    carry what a cut-out still tells about its image (what kind of scene,
    what material) and to drop what it does not (how much of the frame is
    sky); the tile features that give the colour are left to the colour loss.
    """
    difference = context_path(whole.detach()) - context_path(cut_out.detach())
    distance = difference.float().pow(2).sum(dim=1)
    if weights is not None:
        distance = distance * weights.to(distance)
    return distance.mean() / CONTEXT_SCALE


@dataclass(frozen=True)
class ShiftedPair:
    """Two windows of side ``side`` in a crop: at (0, 0) and at (dy, dx)."""

    side: int
    dy: int
    dx: int
    stride: int

    @classmethod
    def draw(cls, crop_size: int, stride: int, *, generator) -> ShiftedPair:
        """A random pair, shifted by any whole number of input pixels (at
        least one of dy, dx non-zero): shifts that are not multiples of the
        output stride move the output grid against the image by a fraction
        of an output pixel, as a shifted or cropped frame does at inference."""
        import torch

        # Windows stay multiples of 16 and overlap by at least two thirds.
        reach = MAX_SHIFT if crop_size >= 4 * MAX_SHIFT else MAX_SHIFT // 2
        while True:
            dy, dx = (int(v) for v in torch.randint(0, reach + 1, (2,), generator=generator))
            if dy or dx:
                return cls(side=crop_size - reach, dy=dy, dx=dx, stride=stride)

    def windows(self, tensor):
        """(N, C, c, c) -> (2N, C, side, side): the first windows, then the shifted ones."""
        import torch

        first = tensor[..., : self.side, : self.side]
        second = tensor[..., self.dy : self.dy + self.side, self.dx : self.dx + self.side]
        return torch.cat([first, second])

    def inputs(self, inputs: dict, second: dict | None = None) -> dict:
        """The network's extra inputs for both windows: per-pixel ones cut,
        per-crop ones (the context) repeated, or for the second windows taken
        from ``second`` where it has them (the context of a cut-out)."""
        import torch

        second = second or {}
        return {
            name: self.windows(value) if value.ndim == 4 else torch.cat([value, second.get(name, value)]) for name, value in inputs.items()
        }

    def add_noise(self, lightness, *, generator):
        """Noise of up to MAX_NOISE of each crop's standard deviation (at
        least MIN_NOISE_SPREAD) on the second windows."""
        import torch

        count = lightness.shape[0] // 2
        second = lightness[count:]
        level = torch.rand((count, 1, 1, 1), generator=generator).to(lightness.device) * MAX_NOISE
        noise = torch.randn(second.shape, generator=generator).to(lightness.device)
        spread = second.flatten(1).std(dim=1).clamp_min(MIN_NOISE_SPREAD)[:, None, None, None]
        return torch.cat([lightness[:count], (second + level * spread * noise).clamp(0.0, 100.0)])

    def disagreement(self, output, *, regression: bool, bins=None, decoded_weight: float = 0.0, weights=None, anchored=None):
        """How much the two windows' outputs differ where they overlap.

        Classification: the symmetric Kullback-Leibler divergence of the two
        distributions over the bins, per pixel, plus ``decoded_weight`` times
        the squared difference of the colours the user sees (the annealed
        means at the default temperature, over ``bins``, divided by
        DECODED_SCALE squared): sharpening a broad distribution turns a
        small divergence into a visible change of colour. Regression: the
        squared ab difference (divided by 110 squared). Mean over the
        overlap, with the second window's output interpolated onto the
        first's grid; with ``weights`` (one per crop), the mean of each
        crop's mean times its weight. Where ``anchored`` (bool per crop) is
        True, the first window's output is held fixed: only the second
        learns to agree with it.
        """
        import torch

        count = output.shape[0] // 2
        first, second = output[:count].float(), output[count:].float()
        if anchored is not None:
            first = torch.where(anchored.to(first.device)[:, None, None, None], first.detach(), first)
        if regression:
            first, second = self._overlap(first, second)
            return _weighted_mean(((first - second) / 110.0).pow(2).sum(dim=1), weights)
        logits = (first, second)
        first, second = self._overlap(torch.softmax(first, dim=1), torch.softmax(second, dim=1))
        tiny = torch.finfo(first.dtype).tiny
        divergence = ((first - second) * (torch.log(first + tiny) - torch.log(second + tiny))).sum(dim=1)
        if decoded_weight:
            first, second = self._overlap(*(annealed_mean(value, bins) for value in logits))
            divergence = divergence + decoded_weight * ((first - second) / DECODED_SCALE).pow(2).sum(dim=1)
        return _weighted_mean(divergence, weights)

    def _overlap(self, first, second):
        """Both outputs cut (and the second interpolated) to where they see the same image."""
        first, second = self._aligned(first, second, self.dy, axis=2)
        return self._aligned(first, second, self.dx, axis=3)

    def _aligned(self, first, second, shift: int, *, axis: int):
        """The first and second outputs along ``axis`` where they see the same
        image. The second window's output pixel i lies ``shift / stride``
        output pixels after the first's pixel i; when that is not a whole
        number, the second output is interpolated linearly (as the chroma is
        upsampled at inference) to where the first's pixels lie."""
        whole, part = divmod(shift, self.stride)
        size = first.shape[axis]
        if not part:
            return first.narrow(axis, whole, size - whole), second.narrow(axis, 0, size - whole)
        fraction = part / self.stride
        length = size - whole - 1
        between = (1 - fraction) * second.narrow(axis, 1, length) + fraction * second.narrow(axis, 0, length)
        return first.narrow(axis, whole + 1, length), between


def _weighted_mean(per_pixel, weights):
    """The mean of (N, H, W) ``per_pixel``, or of each crop's mean times its weight."""
    if weights is None:
        return per_pixel.mean()
    return (per_pixel.mean(dim=(1, 2)) * weights.to(per_pixel)).mean()
