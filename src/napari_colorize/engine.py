"""The colorization engine: checked frames in, RGB strips out.

Data flows one way: frame -> normalise (whole frame, never per tile) ->
restore (only when asked) -> resample to working size -> tiles -> batched model -> ab (annealed mean) ->
stitched ab (taper-weighted) -> ab shared along a stack where the frames
agree (only when asked) -> upsampled ab -> Lab with the input's own L
(the restored one with restoration) ->
sRGB, yielded strip by strip so that writers can stream. When asked, the
normalised entropy of each predicted distribution (the model's uncertainty)
travels beside the ab: stitched, upsampled bilinearly, and yielded with the
RGB rows.

On a GPU the frames are held there (:mod:`napari_colorize.resident`): each
raw frame is uploaded a frame ahead and normalised, resampled, tiled and
composed on the device; the windows of small frames share batches
(:mod:`napari_colorize.prediction`).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping

import numpy as np

from .arrays import frame_indices, grayscale_frames, has_finite_pixel, readable_frame
from .color import gray_to_lightness
from .composing import compose_frames, compose_strips, uncertainty_strips
from .context import frame_context, lightness_context, stack_context
from .devices import resolve_device
from .hints import check_hints, hint_map
from .model import Colorizer, load_checkpoint
from .normalization import normalize_frame, normalized_lightness, range_for
from .options import ColorizeOptions, options_docstring
from .palette import palette_input
from .prediction import FrameTiles, Predictor, predict_chroma
from .resident import holds_frames_on, resized, uploaded
from .restoration import PreparedFrames
from .stack_consensus import FrameChroma, cell_lightness, shared_along_stack
from .tiling import TileGrid, window_sides

logger = logging.getLogger(__name__)

# Pixels converted to RGB at once: bounds memory on huge frames.
CHUNK_PIXELS = 1 << 21
#: Most pixels of the held frames composed at once (64 frames of 512²).
COMPOSE_GROUP_PIXELS = 1 << 24


class ColorizeCancelled(Exception):
    """Raised by :func:`napari_colorize.colorize` when its ``cancel`` callback returns True."""


def resize(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2D float32 array (antialiased when shrinking):
    :func:`napari_colorize.resident.resized` on the host."""
    if tuple(values.shape) == tuple(shape):
        return values
    import torch

    return resized(torch.from_numpy(np.ascontiguousarray(values)), shape).numpy()


def resample_frame(frame, low: float, high: float, shape: tuple[int, int]) -> np.ndarray:
    """The frame normalised and resampled to the working ``shape``, float32.

    Resampling is separable: along X strip by strip as the frame is read
    (so a huge or lazy frame is never held whole as floats), then along Y.
    """
    height, width = frame.shape
    across = np.empty((height, shape[1]), dtype=np.float32)
    rows = max(1, CHUNK_PIXELS // width)
    for r0 in range(0, height, rows):
        block = normalize_frame(frame[r0 : r0 + rows], low, high)
        across[r0 : r0 + rows] = resize(block, (block.shape[0], shape[1]))
    return resize(across, shape)


#: Most a frame is enlarged to reach a model's smallest side (a long thin strip stays thin).
MAX_ENLARGEMENT = 4.0


def working_shape(shape: tuple[int, int], scale: float, *, smallest_side: int = 0) -> tuple[int, int]:
    """The frame shape at working resolution ``scale``, enlarged where that
    leaves its short side under ``smallest_side`` (a model's training crops,
    :attr:`Colorizer.smallest_side`) until it reaches it, by at most
    MAX_ENLARGEMENT: the network has seen such small images only enlarged,
    and at their own size it leaves them nearly gray."""
    short = min(shape) * scale
    if 0 < short < smallest_side:
        scale *= min(smallest_side / short, MAX_ENLARGEMENT)
    return tuple(max(1, int(round(n * scale))) for n in shape)


def prepare_model(options: ColorizeOptions) -> Colorizer:
    """The options' model, loaded (or copied) onto the options' device, with the
    overlap checked against its tile size."""
    torch_device = resolve_device(options.device)
    model = options.model
    colorizer = model if isinstance(model, Colorizer) else load_checkpoint(model, device=str(torch_device))
    if colorizer.device != torch_device:
        # A copy: the caller's model stays where it is.
        colorizer = dataclasses.replace(colorizer, network=copy.deepcopy(colorizer.network).to(torch_device))
    if options.overlap >= colorizer.tile_size:
        raise ValueError(f"overlap must be in [0, {colorizer.tile_size}) for model {colorizer.name!r}, got {options.overlap}")
    return colorizer


def frame_grid(working: tuple[int, int], colorizer: Colorizer, options: ColorizeOptions) -> TileGrid:
    """The windows the network colours a frame of ``working`` shape in (see
    the window option): the model's tiles for a model that is not windowed."""
    align, tile = colorizer.output_stride, colorizer.tile_size
    window = options.window if colorizer.windowed else tile
    sides = window_sides(working, tile=tile, window=window, overlap=options.overlap, align=align)
    return TileGrid.for_shape(working, tile=sides, overlap=options.overlap, align=align)


def windows_per_batch(grid: TileGrid, colorizer: Colorizer, options: ColorizeOptions) -> int:
    """Windows of ``grid`` per forward pass: as many pixels as ``batch_size``
    model tiles, and at least one window."""
    return max(1, options.batch_size * colorizer.tile_size**2 // (grid.tile[0] * grid.tile[1]))


def check_extra_inputs(extra_inputs: Mapping | None, frames_shape: tuple[int, ...], colorizer: Colorizer) -> dict[str, np.ndarray]:
    """Extra inputs as NumPy arrays (..., channels, Y, X) aligned with the frames, checked against the model."""
    extra_inputs = dict(extra_inputs or {})
    colorizer.check_inputs(extra_inputs)
    channels = {spec.name: spec.channels for spec in colorizer.extra_inputs}
    computed = sorted(set(extra_inputs) & set(colorizer.frame_inputs))
    if computed:
        raise ValueError(f"{', '.join(computed)} is computed from the frame itself (see the context option), not given")
    if "palette" in extra_inputs:
        raise ValueError("give a reference palette as reference= (a colour image), not as an extra input")
    checked = {}
    for name, values in extra_inputs.items():
        values = np.asarray(values, dtype=np.float32)
        expected = (*frames_shape[:-2], channels[name], *frames_shape[-2:])
        if values.shape != expected:
            raise ValueError(f"extra input {name!r} must have shape {expected} (frames..., channels, Y, X), got {values.shape}")
        checked[name] = values
    return checked


def colorize_strips(
    image,
    *,
    options: ColorizeOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    extra_inputs: Mapping | None = None,
    hints=None,
    reference=None,
    strip_rows: int = 256,
    uncertainty: bool = False,
    compose_threads: int | None = None,
    **option_keywords,
) -> Iterator[tuple]:
    """Colorize frame by frame, yielding the result in horizontal strips.

    Takes the options of :func:`napari_colorize.colorize` (as ``options`` or
    keywords); yields ``(frame_index, row_start, row_stop, rgb_rows)`` in
    order, so a writer can stream huge frames and long stacks to disk with
    bounded memory: frames are read one at a time (tile by tile at
    ``scale=1``, strip by strip at other scales), never the whole input.
    The input, options and model are checked when it is called, before the
    first strip is asked for.

    Parameters
    ----------
    image : array_like, shape (..., Y, X)
    options : ColorizeOptions, optional
    progress, cancel : callable, optional
        As for :func:`napari_colorize.colorize`.
    extra_inputs : mapping of str to array_like, optional
        Inputs the model takes besides the lightness, by name, each of shape
        (..., channels, Y, X) aligned with the frames.
    hints : array_like of (frame, y, x, r, g, b) rows, optional
        Colour hints, as for :func:`napari_colorize.colorize`.
    reference : array_like, shape (Y, X, 3), optional
        A colour image whose palette the colours follow, as for
        :func:`napari_colorize.colorize`.
    strip_rows : int
        Rows per yielded strip.
    uncertainty : bool
        Also yield each strip's uncertainty: strips become
        ``(frame_index, row_start, row_stop, rgb_rows, uncertainty_rows)``,
        the last float32 (rows, X) in [0, 1], as for
        :func:`napari_colorize.colorize`. A regression model refuses.
    compose_threads : int, optional
        Worker threads each strip's RGB is composed on, torch on one thread
        in each (default: the calling thread, torch on all it runs on); as
        many as torch's threads when the strips are written by another
        thread as they come, as the command line does (see
        :func:`napari_colorize.composing.slab_workers`).
{options}
    """
    options = ColorizeOptions.from_keywords(options, **option_keywords)
    frames = grayscale_frames(image, rgb=options.rgb)
    return strips_of_frames(
        frames,
        options,
        progress=progress,
        cancel=cancel,
        extra_inputs=extra_inputs,
        hints=hints,
        reference=reference,
        strip_rows=strip_rows,
        uncertainty=uncertainty,
        compose_threads=compose_threads,
    )


colorize_strips.__doc__ = colorize_strips.__doc__.replace("{options}", options_docstring())


def strips_of_frames(
    image,
    options: ColorizeOptions,
    *,
    progress=None,
    cancel=None,
    extra_inputs: Mapping | None = None,
    hints=None,
    reference=None,
    strip_rows: int = 256,
    uncertainty: bool = False,
    stack_context_of: np.ndarray | None = None,
    compose_threads: int | None = None,
) -> Iterator[tuple]:
    """:func:`colorize_strips` of frames already checked by
    :func:`napari_colorize.arrays.grayscale_frames` (so an input is checked
    once, wherever it enters); the model and extra inputs are checked here,
    before the first strip is asked for. ``stack_context_of`` is the stack
    context (1, D) of the whole stack these frames are part of, for
    ``context="stack"`` when they are only some of its frames (a block of a
    lazy run)."""
    colorizer = prepare_model(options)
    if uncertainty:
        colorizer.check_uncertainty()
    extras = check_extra_inputs(extra_inputs, tuple(image.shape), colorizer)
    hint_rows = check_hints(hints, tuple(image.shape))
    if len(hint_rows):
        colorizer.check_inputs(["hints"])
        if "hints" in extras:
            raise ValueError("give hints either as hint rows or as the 'hints' extra input, not both")
    palette = palette_input(colorizer, reference)
    logger.info("colorizing %s with %s on %s", image.shape, colorizer.name, colorizer.device)
    predict = Predictor(
        colorizer,
        temperature=options.temperature,
        batch_size=options.batch_size,
        precision=options.precision,
        uncertainty=uncertainty,
        hint_reach=options.hint_reach,
    )
    prepare = prepared_frames(image, options)
    inputs = StripInputs(extras, hint_rows, palette)
    rows = max(1, int(strip_rows))
    return _strips(image, inputs, predict, prepare, options, progress=progress, cancel=cancel, rows=rows, threads=compose_threads, shared=stack_context_of)


def whole_stack_context(image, options: ColorizeOptions) -> np.ndarray | None:
    """The stack context (1, D) of checked frames ``image`` under ``options``
    (see :func:`napari_colorize.context.stack_context`), or None when the
    model takes no context or ``options.context`` is not 'stack'."""
    if options.context != "stack":  # asked first: no model is loaded for nothing
        return None
    colorizer = prepare_model(options)
    if "context" not in colorizer.frame_inputs:
        return None
    return stack_context(colorizer, image, prepared_frames(image, options)).cpu().numpy()


def prepared_frames(image, options: ColorizeOptions) -> PreparedFrames:
    """The frames of checked ``image`` as the network sees them under
    ``options``: each with its intensity range, restored when asked."""
    return PreparedFrames(image, range_for(image, options.normalize, options.percentiles), options.restoration)


@dataclasses.dataclass(frozen=True)
class StripInputs:
    """What a colorization is given besides the frames, checked: extra
    inputs by name, hint rows, and the reference palette (1, Q) or None."""

    extras: dict
    hint_rows: np.ndarray
    palette: object = None


def _strips(
    image, inputs: StripInputs, predict: Predictor, prepare: PreparedFrames, options: ColorizeOptions, *, progress, cancel, rows, threads, shared=None
) -> Iterator[tuple]:
    """The work of :func:`colorize_strips`, frame by frame, on checked inputs
    (with the uncertainty rows when ``predict`` carries them), ``rows`` per
    strip composed on ``threads`` CPU threads (None: all torch runs on)."""
    extras, hint_rows = inputs.extras, inputs.hint_rows
    colorizer = predict.colorizer
    leading = image.shape[:-2]
    working = working_shape(image.shape[-2:], options.scale, smallest_side=colorizer.smallest_side)
    grid = frame_grid(working, colorizer, options)
    batch_size = windows_per_batch(grid, colorizer, options)
    total = len(grid) * int(np.prod(leading, dtype=np.int64))
    done = 0

    def on_batch(count: int) -> None:
        nonlocal done
        if count == 0:
            if cancel is not None and cancel():
                raise ColorizeCancelled("colorization was cancelled")
            return
        done += count
        if progress is not None:
            progress(done, total)

    uses_context = "context" in colorizer.frame_inputs
    if uses_context and options.context == "stack":
        import torch

        shared = stack_context(colorizer, image, prepare) if shared is None else torch.as_tensor(shared, device=colorizer.device)
    else:
        shared = None
    radius = options.stack_consensus if len(leading) else 0
    guided = options.chroma_upsampling == "guided"
    stride = colorizer.output_stride

    def read_frames() -> Iterator[tuple]:
        for number, index in enumerate(frame_indices(leading)):
            frame = readable_frame(image[index])
            if not has_finite_pixel(frame):
                where = f"frame {number}" + (f" (index {tuple(int(i) for i in index)})" if len(index) > 1 else "")
                warnings.warn(f"{where} has no finite pixel (all NaN or infinite): its result is black", stacklevel=2)
            yield (number, index, *prepare(frame))  # restored (and normalised to 0..1) when asked

    holds = holds_frames_on(colorizer.device)
    if holds:
        frames = uploaded(read_frames(), working, colorizer.device)  # the next frame read and uploaded meanwhile
    else:
        frames = ((*item, None) for item in read_frames())

    # Frames held on the device share batches where their windows are few (a stack of
    # small frames): a network call per frame would leave a GPU waiting on the host.
    together = max(1, batch_size // len(grid)) if holds and not extras and not len(hint_rows) else 1
    shared_descriptors = {} if inputs.palette is None else {"palette": inputs.palette}
    if uses_context and shared is not None:
        shared_descriptors["context"] = shared

    def frame_tiles(number, index, frame, low, high, held, descriptors) -> FrameTiles:
        at_scale = tuple(working) == tuple(frame.shape)
        if held is not None:
            source, to_lightness = held.working, None
        elif at_scale:
            source, to_lightness = frame, lambda tiles, low=low, high=high: normalized_lightness(tiles, low, high)
        else:
            source, to_lightness = resample_frame(frame, low, high, working), gray_to_lightness
        frame_extras = {name: values[index] if at_scale else np.stack([resize(c, working) for c in values[index]]) for name, values in extras.items()}
        own_hints = hint_rows[hint_rows[:, 0] == number]
        if len(own_hints):  # a frame without hints is the automatic result: the network's zeros
            frame_extras["hints"] = hint_map(own_hints, frame.shape, working)
        return FrameTiles(source, to_lightness, frame_extras, descriptors)

    def own_contexts(chunk) -> list[dict]:
        """Each frame's own descriptors: its context, unless the stack shares one."""
        if not uses_context or shared is not None:
            return [{} for _ in chunk]
        if chunk[0][-1] is not None:  # held frames: their views encoded in one call
            return [{"context": c[None]} for c in lightness_context(colorizer, *(item[-1].lightness for item in chunk))]
        return [{"context": frame_context(colorizer, frame, low, high)} for _, _, frame, low, high, _ in chunk]

    def predicted() -> Iterator[FrameChroma]:
        for chunk in in_groups(frames, together):
            chunk = [(*item[:-1], item[-1] and item[-1].wait()) for item in chunk]
            tiles = [frame_tiles(*item, descriptors) for item, descriptors in zip(chunk, own_contexts(chunk))]
            chromas = predict_chroma(tiles, grid, predict, batch_size=batch_size, on_batch=on_batch, shared=shared_descriptors)
            for (_, index, frame, low, high, held), frame_tile, chroma in zip(chunk, tiles, chromas):
                cells = cell_lightness(frame_tile.source, frame_tile.to_lightness, chroma.shape[-2:], stride, chroma.device) if radius else None
                yield FrameChroma(group=index[:-1], chroma=chroma, lightness=cells, payload=(index, frame, low, high, held))

    # Held small frames are composed a group at a time (compose_frames), each whole;
    # other frames strip by strip, so that a huge frame is never held whole as RGB.
    composed_together = min(together, max(1, COMPOSE_GROUP_PIXELS // int(np.prod(image.shape[-2:])))) if not guided else 1
    for group in in_groups(shared_along_stack(predicted(), radius), composed_together):
        if len(group) > 1:
            rgbs = compose_frames([payload[-1] for payload, _ in group], [chroma[:2] for _, chroma in group], working, output_stride=stride)
            colours = [in_strips(rgb, rows) for rgb in rgbs]
        else:
            [((_, frame, low, high, held), chroma)] = group
            colours = [compose_strips(frame, low, high, chroma[:2], working, output_stride=stride, rows=rows, guided=guided, threads=threads, resident=held)]
        for ((index, frame, *_), chroma), colour in zip(group, colours):
            if not predict.uncertainty:
                for r0, r1, rgb in colour:
                    yield index, r0, r1, rgb
                continue
            spread = uncertainty_strips(chroma[2], frame.shape, working, output_stride=stride, rows=rows)
            for (r0, r1, rgb), (_, _, uncertain) in zip(colour, spread):
                yield index, r0, r1, rgb, uncertain


def in_strips(rgb: np.ndarray, rows: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """A frame's RGB (Y, X, 3) as ``(r0, r1, rows)`` strips of ``rows`` rows."""
    for r0 in range(0, len(rgb), rows):
        yield r0, min(len(rgb), r0 + rows), rgb[r0 : r0 + rows]


def in_groups(items, size: int) -> Iterator[list]:
    """The items in lists of ``size`` (the last may be shorter)."""
    group = []
    for item in items:
        group.append(item)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def fill_from_strips(out: np.ndarray, strips, uncertainty_out: np.ndarray | None = None) -> np.ndarray:
    """Write the strips of :func:`colorize_strips` into ``out`` (..., Y, X, 3),
    and, for strips that carry it, their uncertainty into ``uncertainty_out`` (..., Y, X)."""
    for index, r0, r1, rgb, *uncertain in strips:
        # One index, not out[index][r0:r1]: a zarr (or h5py) array returns a copy for out[index].
        out[(*index, slice(r0, r1))] = rgb
        if uncertain and uncertainty_out is not None:
            uncertainty_out[(*index, slice(r0, r1))] = uncertain[0]
    return out
