"""What a second-generation network is fed in training besides the lightness:
colour hints sampled from the truth (Zhang et al. 2017), the context of the
whole image a crop came from (Iizuka et al. 2016) and, for a palette-taking
network, that whole image's palette (the global hints of Zhang et al. 2017)."""

from __future__ import annotations

import math

from .colornet import AB_SCALE, HINT_CHANNELS
from .hints import spread_hints
from .palette import ab_palette

#: The palette of a training image is taken from its whole-image view
#: averaged over blocks of this side (as the ab targets are): fewer pixels
#: to soft-encode, the same distribution.
PALETTE_POOLING = 4

#: Side of the largest hint patch, in crop pixels (patches are 1 to 9 wide).
MAX_HINT_PATCH = 9


def sample_hints(ab, *, generator, fraction: float, max_hints: int):
    """Hint inputs (N, HINT_CHANNELS, c, c) sampled from full-resolution truth ab (N, 2, c, c).

    A ``fraction`` of the crops get hints, the rest none (so one network
    serves automatic and guided colorization). A crop with hints gets
    between 1 and ``max_hints`` of them (geometric, p = 1/8, as Zhang et al.
    2017), each a square patch 1 to 9 pixels wide at a random place, holding
    the patch's mean truth ab (divided by AB_SCALE) and a mask of 1; then
    spread over the crop as :func:`napari_colorize.hints.spread_hints` does
    over a frame.
    """
    import torch

    count, _, height, width = ab.shape
    hints = ab.new_zeros((count, HINT_CHANNELS, height, width))
    with_hints = torch.rand(count, generator=generator) < fraction
    for n in torch.nonzero(with_hints).flatten().tolist():
        uniform = float(torch.rand(1, generator=generator).clamp_min(1e-12))
        k = min(max_hints, 1 + int(math.log(uniform) / math.log(1 - 0.125)))  # geometric, p = 1/8
        for _ in range(k):
            size = int(torch.randint(1, MAX_HINT_PATCH + 1, (1,), generator=generator))
            y = int(torch.randint(0, height - size + 1, (1,), generator=generator))
            x = int(torch.randint(0, width - size + 1, (1,), generator=generator))
            mean = ab[n, :, y : y + size, x : x + size].mean(dim=(1, 2)) / AB_SCALE
            hints[n, :2, y : y + size, x : x + size] = mean[:, None, None]
            hints[n, 2, y : y + size, x : x + size] = 1.0
        hints[n] = torch.from_numpy(spread_hints(hints[n, :3].numpy()))
    return hints


def sample_palettes(ab, bins, *, generator, fraction: float):
    """Palette inputs (N, Q) from the truth ab (N, 2, S, S) of the images the
    crops were cut from: for a ``fraction`` of the crops, drawn at random,
    their image's palette (:func:`napari_colorize.palette.ab_palette`); zeros
    (no palette) for the rest, so one network serves both."""
    import torch

    chosen = torch.rand(ab.shape[0], generator=generator) < fraction
    palettes = ab.new_zeros((ab.shape[0], bins.shape[0]))
    if torch.any(chosen):
        pooled = torch.nn.functional.avg_pool2d(ab[chosen], PALETTE_POOLING) if min(ab.shape[-2:]) >= 4 * PALETTE_POOLING else ab[chosen]
        palettes[chosen] = ab_palette(pooled, bins.to(ab.device)).to(palettes.dtype)
    return palettes


def network_inputs(colorizer, lab, context, *, generator, fraction: float, max_hints: int, whole_lab=None, palette_fraction: float = 0.0) -> dict:
    """The extra inputs of ``colorizer``'s network for one training batch.

    Parameters
    ----------
    colorizer : Colorizer
    lab : Tensor (N, 3, c, c)
        The crops in Lab, on the training device.
    context : Tensor (N, D) or None
        Each crop's frame descriptor, as the network's ``encode_context``
        gives it in training (so the network learns through it).
    generator : torch.Generator
        Draws the hints (CPU), so a run is repeatable.
    whole_lab : Tensor (N, 3, S, S), optional
        Views of the whole images the crops were cut from, in Lab: where a
        palette-taking network's palettes come from (the crops themselves
        when not given).
    palette_fraction : float
        Share of the crops given their image's palette.

    Returns
    -------
    dict
        Keyword arguments for the network: nothing for colornet-v1; hints
        and context for colornet-v2, and a palette for its -palette families.
    """
    inputs = {}
    names = colorizer.input_names
    if "hints" in names:
        inputs["hints"] = sample_hints(lab[:, 1:].cpu(), generator=generator, fraction=fraction, max_hints=max_hints).to(lab.device)
    if "context" in names:
        inputs["context"] = context
    if "palette" in names:
        import torch

        source = lab if whole_lab is None else whole_lab
        bins = torch.as_tensor(colorizer.bins, dtype=torch.float32, device=lab.device)
        inputs["palette"] = sample_palettes(source[:, 1:].float(), bins, generator=generator, fraction=palette_fraction)
    return inputs


def chosen_contexts(contexts, share: float, *, generator):
    """Each crop's context: the whole image's (``contexts[0]``), or for
    ``share`` of the crops, drawn at random, the cut-out's (``contexts[1]``);
    descriptors (N, D) or views (N, 1, S, S) alike. None when there are none."""
    import torch

    if not contexts:
        return None
    whole = contexts[0]
    if not share or len(contexts) < 2:
        return whole
    chosen = torch.rand(whole.shape[0], generator=generator) < share
    return torch.where(chosen.to(whole.device).view(-1, *[1] * (whole.ndim - 1)), contexts[1], whole)
