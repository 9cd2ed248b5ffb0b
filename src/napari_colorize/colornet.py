"""The colorization networks (torch is imported when one is built).

``colornet-v1`` sees the lightness of one tile. ``colornet-v2`` keeps v1's
layers, under the same names, and adds two inputs, each entering through a
branch whose last layer starts at zero, so a v2 warm-started from v1
weights computes exactly what v1 did until training moves it:

- hints: a sparse ab map and its mask (Zhang et al. 2017), with the hint
  colours spread over the frame at two distances (:mod:`napari_colorize.hints`),
  added to the features at 1/4 resolution and, as evidence for the colour
  they give, to the output (log-probabilities of the bins near the hint
  colour, or a pull towards it for regression), weighted by a learned gain;
- context: a descriptor of the whole frame, the encoder's pooled features of
  a low-resolution view of it (Iizuka et al. 2016), fused into the features
  at 1/16 resolution, so that the tiles of a frame (or of a stack) agree;
- palette (the ``-palette`` families only): a reference image's distribution
  over the ab bins (the global hints of Zhang et al. 2017), fused into the
  features at 1/16 resolution and, as a prior over the bins weighted by a
  learned gain, into the output. All zeros means no palette: both branches
  are bias-free or gated, so the network then computes what it did without
  them.

``colornet-v2-replicate`` is colornet-v2 with edge-replicating padding, and
``colornet-v2-antialiased`` that network with its first two stride-2 layers
low-passing their input first.
"""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace

#: Scale of the regression head's ab output, and of hint ab values at the input.
AB_SCALE = 110.0
#: Distances (Gaussian sigma, in working pixels) over which hint colours are
#: spread: near (one object) and far (the frame's palette).
HINT_SPREAD_SIGMAS = (16.0, 128.0)
#: Channels of the hint input: the sparse a, b (divided by AB_SCALE) and mask,
#: then for each spread distance the spread a, b and their confidence in 0..1.
HINT_CHANNELS = 3 + 3 * len(HINT_SPREAD_SIGMAS)
#: Submodules of colornet-v2 that turn hints into colour, and nothing else.
HINT_MODULES = ("hint_path", "hint_gain")
#: Spread of the evidence a hint colour gives over the ab bins (ab units).
HINT_EVIDENCE_SIGMA = 10.0
#: Submodules that turn a reference palette into colour, and nothing else.
PALETTE_MODULES = ("palette_path", "palette_gain")
#: Floor of a palette's bin probabilities before its log is taken as a prior.
PALETTE_FLOOR = 1e-4
#: Binomial low-pass taken before a stride-2 layer of colornet-v2-antialiased.
ANTIALIAS_TAPS = (1.0, 2.0, 1.0)


@lru_cache(maxsize=1)
def _blocks() -> SimpleNamespace:
    """The building blocks, defined once torch is imported."""
    import torch
    from torch import nn

    def conv(cin, cout, *, stride=1, dilation=1):
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    class Residual(nn.Module):
        def __init__(self, channels, dilation=1, *, middle=None):
            super().__init__()
            middle = middle or channels
            self.body = nn.Sequential(
                conv(channels, middle, dilation=dilation),
                nn.Conv2d(middle, channels, 3, padding=dilation, dilation=dilation, bias=False),
                nn.BatchNorm2d(channels),
            )

        def forward(self, x):
            return torch.relu(x + self.body(x))

    class Up(nn.Module):
        """Upsample the coarse path, add the skip, then refine."""

        def __init__(self, cin, cout):
            super().__init__()
            self.reduce = nn.Conv2d(cin, cout, 1, bias=False)
            self.refine = conv(cout, cout)

        def forward(self, coarse, skip):
            up = nn.functional.interpolate(self.reduce(coarse), size=skip.shape[-2:], mode="bilinear", align_corners=False)
            return self.refine(up + skip)

    class ColorNet(nn.Module):
        """colornet-v1: L (N, 1, H, W) in [0, 100] -> chroma at H/4 x W/4.

        An encoder to 1/16 resolution with dilated residual blocks (the
        receptive field spans a whole 224 tile), then a light decoder with
        skips back to 1/4; no pooling, fully convolutional.
        """

        def __init__(self, *, head: str, bins, width: int, residual_share: float = 1.0, head_share: float = 1.0):
            super().__init__()
            w = width

            def residual(channels, dilation=1):
                return Residual(channels, dilation, middle=max(1, round(channels * residual_share)))

            self.stem = conv(1, w, stride=2)  # 1/2
            self.down4 = nn.Sequential(conv(w, 2 * w, stride=2), conv(2 * w, 2 * w))  # 1/4
            self.down8 = nn.Sequential(conv(2 * w, 4 * w, stride=2), residual(4 * w))  # 1/8
            self.down16 = nn.Sequential(
                conv(4 * w, 8 * w, stride=2),
                residual(8 * w, dilation=1),
                residual(8 * w, dilation=2),
                residual(8 * w, dilation=4),
            )  # 1/16
            self.up8 = Up(8 * w, 4 * w)
            self.up4 = Up(4 * w, 2 * w)
            out = len(bins) if head == "classification" else 2
            hidden = round(4 * w * head_share)
            self.head = nn.Sequential(nn.Conv2d(2 * w, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, out, 1))
            self.is_regression = head == "regression"

        def decode(self, x16, x8, x4):
            return self.output(self.up4(self.up8(x16, x8), x4))

        def output(self, y4):
            y = self.head(y4)
            return y * AB_SCALE if self.is_regression else y

        def automatic(self, lightness, context=None):
            """The pass without hints or palette (all of v1's)."""
            return self.forward(lightness)

        def forward(self, lightness):
            x4 = self.down4(self.stem(lightness / 50.0 - 1.0))
            x8 = self.down8(x4)
            return self.decode(self.down16(x8), x8, x4)

    class ColorNetV2(ColorNet):
        """colornet-v2: v1 plus hint and frame-context inputs, and with
        ``palette`` a reference-palette input (see the module)."""

        def __init__(self, *, head: str, bins, width: int, palette: bool = False, **shares):
            super().__init__(head=head, bins=bins, width=width, **shares)
            w = width
            if palette:
                # Bias-free, so that no palette (zeros) adds nothing.
                self.palette_path = nn.Sequential(nn.Linear(len(bins), 8 * w, bias=False), nn.ReLU(inplace=True), nn.Linear(8 * w, 8 * w, bias=False))
                self.palette_gain = nn.Conv2d(2 * w, 1, 1)
                for last in (self.palette_path[-1], self.palette_gain):
                    nn.init.zeros_(last.weight)
                nn.init.zeros_(self.palette_gain.bias)
            self.hint_path = nn.Sequential(conv(HINT_CHANNELS, w, stride=2), conv(w, 2 * w, stride=2), nn.Conv2d(2 * w, 2 * w, 1))
            # How far to trust each spread hint colour, per pixel, from the features there.
            self.hint_gain = nn.Conv2d(2 * w + HINT_CHANNELS, len(HINT_SPREAD_SIGMAS), 1)
            self.context_path = nn.Sequential(nn.Linear(8 * w, 8 * w), nn.ReLU(inplace=True), nn.Linear(8 * w, 8 * w))
            self.register_buffer("bin_ab", torch.as_tensor(bins, dtype=torch.float32) / AB_SCALE, persistent=False)
            for last in (self.hint_path[-1], self.hint_gain, self.context_path[-1]):
                nn.init.zeros_(last.weight)
                if last.bias is not None:
                    nn.init.zeros_(last.bias)

        def features(self, lightness, hints):
            x4 = self.down4(self.stem(lightness / 50.0 - 1.0)) + self.hint_path(hints)
            x8 = self.down8(x4)
            return self.down16(x8), x8, x4

        def encode_context(self, view):
            """The frame descriptor (N, 8w) of low-resolution views (N, 1, S, S) of L."""
            hints = view.new_zeros((view.shape[0], HINT_CHANNELS, *view.shape[-2:]))
            x16, _, _ = self.features(view, hints)
            return x16.mean(dim=(2, 3))

        def forward(self, lightness, *, hints, context, palette=None):
            x16, x8, x4 = self.features(lightness, hints)
            x16 = x16 + self.context_path(context)[:, :, None, None]
            if palette is not None:
                # The square roots: a vector of unit length for any palette.
                x16 = x16 + self.palette_path(palette.clamp_min(0).sqrt())[:, :, None, None]
            y4 = self.up4(self.up8(x16, x8), x4)
            out = self.add_hint_evidence(self.output(y4), y4, hints)
            return out if palette is None else self.add_palette_prior(out, y4, palette)

        def automatic(self, lightness, context):
            """What :meth:`forward` computes with no hints and no palette: the
            pass that an int8 engine runs (:mod:`napari_colorize.quantized`).
            With edge-replicating padding the hint path maps zero hints to
            one vector, computed on a single pixel instead of the tile."""
            replicate = self.hint_path[0][0].padding_mode == "replicate"
            shape = (1, HINT_CHANNELS, 1, 1) if replicate else (lightness.shape[0], HINT_CHANNELS, *lightness.shape[-2:])
            x4 = self.down4(self.stem(lightness / 50.0 - 1.0)) + self.hint_path(lightness.new_zeros(shape))
            x8 = self.down8(x4)
            x16 = self.down16(x8) + self.context_path(context)[:, :, None, None]
            return self.output(self.up4(self.up8(x16, x8), x4))

        def add_palette_prior(self, out, y4, palette):
            """Add the log of the reference palette's bin probabilities to the
            logits, weighted by a gain learned from the features (zero at
            start), where a palette is given (classification only: a
            regression output has no bins to weigh)."""
            given = palette.sum(dim=1) > 0
            if self.is_regression or not torch.any(given):
                return out
            prior = torch.log(palette.clamp_min(PALETTE_FLOOR))[:, :, None, None]
            return out + self.palette_gain(y4) * prior * given[:, None, None, None].to(out.dtype)

        def add_hint_evidence(self, out, y4, hints):
            """Fuse the spread hint colours into the output: for classification
            the log-likelihood of each bin under a Gaussian around the hint
            colour, for regression a pull towards it; each weighted by its
            confidence times a gain learned from the features (zero at start)."""
            if not torch.any(hints[:, 5::3]):  # the confidences
                return out  # no hint within reach: every weight would be zero
            coarse = nn.functional.adaptive_avg_pool2d(hints, out.shape[-2:])
            gains = self.hint_gain(torch.cat([y4, coarse], dim=1))
            # Per spread distance: its a, b and its weight, the confidence times the gain.
            pulls = [
                (coarse[:, 3 + 3 * index : 5 + 3 * index], gains[:, index : index + 1] * coarse[:, 5 + 3 * index : 6 + 3 * index])
                for index in range(len(HINT_SPREAD_SIGMAS))
            ]
            if self.is_regression:
                for spread, weight in pulls:
                    out = out + weight * (spread * AB_SCALE - out)
                return out
            return out - self.weighted_distance2(pulls) * (AB_SCALE / HINT_EVIDENCE_SIGMA) ** 2 / 2

        def weighted_distance2(self, pulls):
            """sum_i w_i |s_i - bin|^2 for every bin, (N, Q, h, w), of the
            (spread s_i, weight w_i) pairs, as sum_i w_i |s_i|^2 -
            2 (sum_i w_i s_i) . bin + (sum_i w_i) |bin|^2: one 1x1
            convolution instead of an (N, Q, 2, h, w) tensor per spread, in
            float32 whatever the autocast."""
            with torch.autocast(pulls[0][0].device.type, enabled=False):
                pulls = [(s.float(), w.float()) for s, w in pulls]
                total = sum(w for _, w in pulls)
                pulled = sum(w * s for s, w in pulls)
                squares = sum(w * (s**2).sum(dim=1, keepdim=True) for s, w in pulls)
                bins = self.bin_ab.float()
                cross = nn.functional.conv2d(pulled, bins[:, :, None, None])
                return squares - 2 * cross + total * (bins**2).sum(dim=1)[None, :, None, None]

    class BlurredConv2d(nn.Conv2d):
        """A strided convolution that low-passes its input with a binomial
        filter first (edge-replicating), so that what it samples holds
        little above the new Nyquist frequency: moving the input by a pixel
        then moves its output by half a pixel instead of changing it
        (Zhang 2019, "Making convolutional networks shift-invariant again").
        Same parameters, same names as the Conv2d it replaces."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            taps = torch.as_tensor(ANTIALIAS_TAPS)
            kernel = torch.outer(taps, taps) / taps.sum() ** 2
            self.register_buffer("low_pass", kernel.expand(self.in_channels, 1, *kernel.shape).clone(), persistent=False)

        def forward(self, x):
            reach = self.low_pass.shape[-1] // 2
            padded = nn.functional.pad(x, (reach,) * 4, mode="replicate")
            return super().forward(nn.functional.conv2d(padded, self.low_pass.to(x.dtype), groups=self.in_channels))

    return SimpleNamespace(ColorNet=ColorNet, ColorNetV2=ColorNetV2, BlurredConv2d=BlurredConv2d)


def build_colornet_v1(*, head: str, bins, width: int):
    """The first-generation network: lightness only."""
    return _blocks().ColorNet(head=head, bins=bins, width=width)


def build_colornet_v2(*, head: str, bins, width: int, palette: bool = False, **shares):
    """The second generation: lightness, hints and frame context (and with
    ``palette``, a reference palette). ``shares`` (``residual_share``,
    ``head_share``, each 1 by default) make a leaner network: the share of a
    residual block's channels its inner layer keeps, and of the head's
    hidden channels; the inputs and outputs of every block stay as they are."""
    return _blocks().ColorNetV2(head=head, bins=bins, width=width, palette=palette, **shares)


def build_colornet_v2_replicate(*, head: str, bins, width: int, palette: bool = False, **shares):
    """colornet-v2 whose convolutions pad by repeating the edge pixels, not
    with zeros: the network then cannot tell where its window ends, the
    cause of colour bands at the tile period (same weights, same names)."""
    from torch import nn

    network = build_colornet_v2(head=head, bins=bins, width=width, palette=palette, **shares)
    for layer in network.modules():
        if isinstance(layer, nn.Conv2d) and any(layer.padding):
            layer.padding_mode = "replicate"
    return network


def build_colornet_v2_antialiased(*, head: str, bins, width: int, palette: bool = False, **shares):
    """colornet-v2-replicate whose two stride-2 layers to the output's 1/4
    resolution low-pass their input first: a shift of the input by a
    fraction of the output stride then moves the features, not recolours
    them (same weights, same names; warm-starts from colornet-v2-replicate)."""
    network = build_colornet_v2_replicate(head=head, bins=bins, width=width, palette=palette, **shares)
    blurred = _blocks().BlurredConv2d
    for block in (network.stem, network.down4[0]):
        plain = block[0]
        block[0] = blurred(
            plain.in_channels, plain.out_channels, plain.kernel_size, stride=plain.stride,
            padding=plain.padding, bias=plain.bias is not None, padding_mode=plain.padding_mode,
        )
    return network
