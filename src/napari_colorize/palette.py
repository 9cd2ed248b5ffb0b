"""Reference palettes: a colour image's distribution over a model's ab bins
(the global hints of Zhang et al. 2017), computed the same way in training
and in use, so that ``colorize(..., reference=image)`` steers the colours
toward that image's palette through a network trained to take it."""

from __future__ import annotations

import numpy as np

from .arrays import as_numpy, as_rgb8
from .color import looks_gray, rgb_to_lab, soft_encode

#: Longer side, in pixels, of the view of a reference its palette is taken from.
REFERENCE_SIDE = 256


def ab_palette(ab, bins):
    """The palettes (N, Q) of ab images (N, 2, H, W): each pixel soft-encoded
    over its nearest bins (as the training targets are), averaged; each row
    sums to 1.

    Parameters
    ----------
    ab : Tensor, shape (N, 2, H, W)
    bins : Tensor, shape (Q, 2)
    """
    target, _ = soft_encode(ab, bins)
    return target.mean(dim=(2, 3))


def reference_palette(reference, bins, *, max_side: int = REFERENCE_SIDE) -> np.ndarray:
    """The palette of a colour image over ``bins``, for a palette-taking model.

    Parameters
    ----------
    reference : array_like, shape (Y, X, 3) or (Y, X, 4)
        RGB(A) colour image: uint8, wider integers (scaled from their largest
        value) or floats in 0..1.
    bins : ndarray, shape (Q, 2)
        The model's ab bin centres (``Colorizer.bins``).
    max_side : int
        The palette is taken from a view of the image at most this large.

    Returns
    -------
    ndarray of float32, shape (Q,)
        The share of the image's pixels in each bin (soft-encoded); sums to 1.

    Raises
    ------
    ValueError
        If ``reference`` is not a colour image, or is gray: a gray image has
        no palette to give.
    """
    import torch
    from skimage.transform import resize

    shape = getattr(reference, "shape", ())
    if len(shape) == 3 and max(shape[:2]) > 2 * max_side:
        # Every few pixels first: a large or lazy (dask, zarr) reference is never read whole.
        step = max(shape[:2]) // (2 * max_side)
        reference = reference[::step, ::step]
    rgb = as_rgb8(as_numpy(reference))
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"a colour reference needs pixels, got shape {rgb.shape}")
    longer = max(rgb.shape[:2])
    if longer > max_side:
        shape = tuple(max(1, round(side * max_side / longer)) for side in rgb.shape[:2])
        rgb = resize(rgb, shape, order=1, anti_aliasing=True, preserve_range=True)
    lab = rgb_to_lab(np.asarray(rgb, dtype=np.float32) / 255.0)
    if looks_gray(lab[..., 1:]):
        raise ValueError("the colour reference is gray: it has no palette to give")
    ab = torch.from_numpy(np.ascontiguousarray(lab[..., 1:].transpose(2, 0, 1)[None], dtype=np.float32))
    return ab_palette(ab, torch.tensor(np.asarray(bins), dtype=torch.float32))[0].numpy()


def palette_input(colorizer, reference):
    """The palette input (1, Q) tensor of ``reference`` for ``colorizer``, on
    its device; None without a reference.

    Raises
    ------
    ValueError
        If the model takes no reference palette, or ``reference`` is not a
        colour image (see :func:`reference_palette`).
    """
    import torch

    if reference is None:
        return None
    if "palette" not in colorizer.input_names:
        raise ValueError(
            f"model {colorizer.name!r} ({colorizer.architecture}) takes no reference palette: "
            "use a model trained to follow one (a -palette architecture, such as the shipped natural-lean or natural)"
        )
    palette = reference_palette(reference, colorizer.bins)
    return torch.from_numpy(palette[None]).to(colorizer.device)
