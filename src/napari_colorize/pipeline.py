"""``colorize()``: grayscale frames in, predicted-colour RGB out.

The entry point of the core. It checks the input and the options once, then
runs the engine (:mod:`napari_colorize.engine`) frame by frame into an
array, or hands a lazy input to :mod:`napari_colorize.cluster` for a lazy
(or cluster-computed) result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from .arrays import frame_indices, grayscale_frames, is_dask_array, readable_frame
from .engine import CHUNK_PIXELS, ColorizeCancelled, colorize_strips, fill_from_strips, prepared_frames, strips_of_frames
from .normalization import normalized_lightness
from .options import ColorizeOptions, options_docstring

# colorize_strips is re-exported: it lived here before the engine had a module of its own.
__all__ = ["ColorizeCancelled", "colorize", "colorize_strips", "lightness"]


def colorize(
    image,
    *,
    options: ColorizeOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    scheduler=None,
    out: np.ndarray | None = None,
    extra_inputs: Mapping | None = None,
    hints=None,
    reference=None,
    uncertainty: bool = False,
    uncertainty_out: np.ndarray | None = None,
    lightness_only: bool = False,
    **option_keywords,
):
    """Colorize grayscale frames with a trained colorizer.

    The network sees the lightness L of each frame (cut into overlapping
    tiles of the model's size, 224x224 for the shipped models) and predicts
    its chroma; the output keeps the input's own full-resolution lightness,
    so no detail is lost. Colours are predicted, not measured.

    Parameters
    ----------
    image : array_like, shape (..., Y, X)
        A 2D frame or a stack whose leading axes are frames. Any integer,
        float or bool dtype; NaN and -Inf map to black, +Inf to white.
        NumPy arrays (memory maps included), dask arrays, torch tensors and
        nested lists are accepted; masked pixels of a masked array are
        treated like NaN (black, ignored by the intensity range). The input
        is never modified.
    options : ColorizeOptions, optional
        All options at once; keywords (below) replace single ones, e.g.
        ``colorize(image, temperature=0.3)``.
    progress : callable(done, total), optional
        Called after each batch with the number of tiles done and in total.
    cancel : callable() -> bool, optional
        Polled before each batch; returning True raises
        :class:`ColorizeCancelled`.
    scheduler : str or distributed.Client, optional
        A dask.distributed scheduler address (or client): frames are
        colorized on the cluster's workers, each loading the model once, and
        gathered into a NumPy array. Workers run torch on as many threads as
        the calling process, since CPU kernels round differently with other
        thread counts: on the same hardware the result is bit-identical to
        the single-process run.
    out : array of uint8, shape (..., Y, X, 3), optional
        Where to write the result (a memory map or a zarr array, say, for a
        result larger than memory). With ``out``, a lazy input is read and colorized frame
        by frame into it, not returned lazily.
    extra_inputs : mapping of str to array_like, optional
        Inputs the model takes besides the lightness (see
        ``Colorizer.extra_inputs``), by name, each (..., channels, Y, X)
        aligned with the frames; a model refuses inputs it does not take.
    hints : array_like of (frame, y, x, r, g, b) rows, optional
        Colour hints for a hint-taking (second-generation) model: at image pixel
        (y, x) of frame ``frame`` (the flat index over the leading axes;
        rows of (y, x, r, g, b) for a single frame), the colour r, g, b in
        0..255 (sRGB, converted to ab). None or no rows gives the automatic
        result. A model that takes no hints refuses them.
    reference : array_like, shape (Y, X, 3) or (Y, X, 4), optional
        A colour image whose palette the whole result follows (the global
        hints of Zhang et al. 2017): its distribution over the model's ab
        bins is given to a network trained to take it (a ``-palette``
        architecture, such as the shipped ``natural``), not painted on
        afterwards. RGB(A), uint8, wider integers or floats in 0..1; it
        need not show the same scene or have the image's size. A model
        that takes no palette refuses it.
    uncertainty : bool
        Also return how uncertain the model is at each pixel: the
        normalised entropy of its predicted distribution over the ab bins
        (0: all of it in one bin, 1: spread evenly over all of them),
        stitched and upsampled like the chroma. Only classification models
        predict a distribution: a regression model refuses with a
        ValueError before any work. Not computed on a ``scheduler``; a dask
        input is then colorized frame by frame into arrays, not lazily.
    uncertainty_out : ndarray of float32, shape (..., Y, X), optional
        Where to write the uncertainty (with ``uncertainty=True``).
    lightness_only : bool
        Return only the lightness the colours would sit on, with no model
        run: the input's own, or the restored one when ``restore`` names
        steps, to compare the two (see :func:`lightness`).
{options}

    Returns
    -------
    rgb : ndarray of uint8, shape (..., Y, X, 3)
        ``out`` if given. For a dask array input (and no ``scheduler`` or
        ``out``): a lazy dask array of that shape, computed frame by frame
        (progress and cancel unused).
    uncertainty : ndarray of float32, shape (..., Y, X)
        Only with ``uncertainty=True``, which returns ``(rgb, uncertainty)``:
        values in [0, 1], ``uncertainty_out`` if given.
    lightness : ndarray of float32, shape (..., Y, X)
        Only with ``lightness_only=True``, instead of the rgb: L* in 0..100.

    Raises
    ------
    TypeError, ValueError
        For unsupported inputs or options.
    ColorizeCancelled
        If ``cancel`` asked to stop.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_colorize import colorize
    >>> frame = np.random.default_rng(0).integers(0, 4096, (300, 200), dtype=np.uint16)
    >>> rgb = colorize(frame, device="cpu")
    >>> rgb.shape, rgb.dtype
    ((300, 200, 3), dtype('uint8'))
    >>> rgb, uncertainty = colorize(frame, device="cpu", uncertainty=True)
    >>> uncertainty.shape, uncertainty.dtype, bool(0 <= uncertainty.min() <= uncertainty.max() <= 1)
    ((300, 200), dtype('float32'), True)
    """
    # Checked first: masked arrays, tensors and lists become arrays, bad input
    # and options are refused now, not when a lazy result is computed.
    options = ColorizeOptions.from_keywords(options, **option_keywords)
    if lightness_only:
        return lightness(image, options=options)
    image = grayscale_frames(image, rgb=options.rgb)
    options = options.replace(rgb=False)  # luminance taken: never guess again
    shape = (*image.shape, 3)
    if out is not None and (tuple(out.shape) != shape or out.dtype != np.uint8):
        raise ValueError(f"out must be a uint8 array of shape {shape}, got {out.dtype} {tuple(out.shape)}")
    if uncertainty_out is not None:
        if not uncertainty:
            raise ValueError("uncertainty_out is filled only with uncertainty=True")
        if tuple(uncertainty_out.shape) != tuple(image.shape) or uncertainty_out.dtype != np.float32:
            got = f"{uncertainty_out.dtype} {tuple(uncertainty_out.shape)}"
            raise ValueError(f"uncertainty_out must be a float32 array of shape {tuple(image.shape)}, got {got}")
    if uncertainty and scheduler is not None:
        raise ValueError("uncertainty is not computed on a scheduler yet: run without one")
    if scheduler is not None or (is_dask_array(image) and out is None and not uncertainty):
        if extra_inputs or (hints is not None and len(hints)) or reference is not None:
            raise ValueError("extra inputs, hints and a reference palette are not supported for dask inputs or a scheduler yet: pass a NumPy image")
        if options.stack_consensus and image.ndim > 2:
            # Blocks are single frames there: no frame would see its neighbours.
            raise ValueError("stack_consensus shares colours between the frames of one run: not for a lazy result or a scheduler yet (pass a NumPy image, or out=)")
        from .cluster import colorize_lazy

        result = colorize_lazy(image, options, scheduler=scheduler)
        if out is None:
            return result
        out[...] = result
        return out
    rows = max(1, CHUNK_PIXELS // image.shape[-1])
    # Asked first: the model and inputs are checked before the outputs are allocated.
    strips = strips_of_frames(
        image,
        options,
        progress=progress,
        cancel=cancel,
        extra_inputs=extra_inputs,
        hints=hints,
        reference=reference,
        strip_rows=rows,
        uncertainty=uncertainty,
    )
    out = np.empty(shape, dtype=np.uint8) if out is None else out
    if not uncertainty:
        return fill_from_strips(out, strips)
    uncertainty_out = np.empty(image.shape, dtype=np.float32) if uncertainty_out is None else uncertainty_out
    return fill_from_strips(out, strips, uncertainty_out), uncertainty_out


colorize.__doc__ = colorize.__doc__.replace("{options}", options_docstring())


def lightness(image, *, options: ColorizeOptions | None = None, **option_keywords) -> np.ndarray:
    """The lightness a colorization composes its output on, with no model run.

    The input's own lightness (its intensities mapped to black..white as
    ``normalize`` says), or, when the ``restore`` option names steps, the
    restored one: what the network would see and the result would keep.
    Takes the options of :func:`colorize`; those of the model are unused.

    Parameters
    ----------
    image : array_like, shape (..., Y, X)
        As for :func:`colorize` (read whole: a lazy input is computed).
    options : ColorizeOptions, optional

    Returns
    -------
    ndarray of float32, shape (..., Y, X)
        CIE L* in 0..100.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_colorize import lightness
    >>> frame = np.random.default_rng(0).normal(100, 10, (64, 64))
    >>> own = lightness(frame)
    >>> smooth = lightness(frame, restore="denoise")
    >>> bool(smooth.std() < own.std())
    True
    """
    options = ColorizeOptions.from_keywords(options, **option_keywords)
    frames = grayscale_frames(image, rgb=options.rgb)
    prepare = prepared_frames(frames, options)
    out = np.empty(frames.shape, dtype=np.float32)
    for index in frame_indices(tuple(frames.shape[:-2])):
        values, low, high = prepare(readable_frame(frames[index]))
        out[index] = normalized_lightness(values, low, high)
    return out
