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

#: Largest shift between the two windows, in crop pixels (half of it for crops under 128).
MAX_SHIFT = 32
#: Largest noise added to the second window's lightness, as a fraction of
#: the crop's standard deviation (the stack benchmark uses 3 %).
MAX_NOISE = 0.04


@dataclass(frozen=True)
class ShiftedPair:
    """Two windows of side ``side`` in a crop: at (0, 0) and at (dy, dx)."""

    side: int
    dy: int
    dx: int
    stride: int

    @classmethod
    def draw(cls, crop_size: int, stride: int, *, generator) -> ShiftedPair:
        """A random pair: shifts are multiples of the output stride (so the
        outputs overlap on whole pixels), at least one of them non-zero."""
        import torch

        # Windows stay multiples of 16 and overlap by at least two thirds.
        reach = MAX_SHIFT if crop_size >= 4 * MAX_SHIFT else MAX_SHIFT // 2
        steps = reach // stride
        while True:
            dy, dx = (int(v) * stride for v in torch.randint(0, steps + 1, (2,), generator=generator))
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
        """Noise of up to MAX_NOISE of each crop's standard deviation on the second windows."""
        import torch

        count = lightness.shape[0] // 2
        second = lightness[count:]
        level = torch.rand((count, 1, 1, 1), generator=generator).to(lightness.device) * MAX_NOISE
        noise = torch.randn(second.shape, generator=generator).to(lightness.device)
        spread = second.flatten(1).std(dim=1)[:, None, None, None]
        return torch.cat([lightness[:count], (second + level * spread * noise).clamp(0.0, 100.0)])

    def disagreement(self, output, *, regression: bool):
        """How much the two windows' outputs differ where they overlap.

        Classification: the symmetric Kullback-Leibler divergence of the two
        distributions over the bins, per pixel; regression: the squared ab
        difference (divided by 110 squared). Mean over the overlap.
        """
        import torch

        count = output.shape[0] // 2
        oy, ox = self.dy // self.stride, self.dx // self.stride
        size = self.side // self.stride
        first = output[:count, :, oy:, ox:].float()
        second = output[count:, :, : size - oy, : size - ox].float()
        if regression:
            return ((first - second) / 110.0).pow(2).sum(dim=1).mean()
        log_p, log_q = torch.log_softmax(first, dim=1), torch.log_softmax(second, dim=1)
        return ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(dim=1).mean()
