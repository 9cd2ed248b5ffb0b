"""Where a layer's pixels are and which of them to colorize, without Qt.

Reads napari image layers (their data, pyramid levels and data-to-world
transform) and the view (the dims point, the camera, the canvas size) to
build :class:`~napari_colorize.jobs.ColorizeRequest` objects: the current
frame or every frame for Run, the visible part at a capped working size for
Preview, and the placement that puts the output exactly over its input
pixels. Nothing here draws or needs a display, so it can be driven by
tests and scripts with plain layers and a :class:`CanvasView`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .arrays import is_dask_array
from .jobs import ColorizeRequest
from .options import ColorizeOptions

#: Working pixels a preview may use: 416 x 416 is 2 x 2 tiles at the default
#: overlap, about a second on a laptop CPU for any view size.
PREVIEW_WORKING_PIXELS = 416 * 416


@dataclass(frozen=True)
class CanvasView:
    """What the canvas shows: the state of the viewer that decides the visible region.

    Attributes
    ----------
    point : tuple of float
        The world point of the dims sliders (all world axes).
    displayed : tuple of int
        The world axes on screen.
    ndisplay : int
        2 or 3.
    center : tuple of float
        The camera centre (world coordinates of the displayed axes; the last
        two are Y, X).
    zoom : float
        Screen pixels per world unit.
    canvas_size : (float, float)
        The canvas height and width in screen pixels.
    """

    point: tuple[float, ...]
    displayed: tuple[int, ...]
    ndisplay: int
    center: tuple[float, ...]
    zoom: float
    canvas_size: tuple[float, float]

    @classmethod
    def of(cls, viewer) -> CanvasView:
        """The view of a napari viewer, across napari versions."""
        scene = getattr(viewer, "scene", None)
        camera = scene.camera if scene is not None else viewer.camera  # napari < 0.9 has viewer.camera
        canvas = getattr(viewer, "canvas", None)
        size = canvas.size if canvas is not None and hasattr(canvas, "size") else viewer._canvas_size
        return cls(
            point=tuple(float(v) for v in viewer.dims.point),
            displayed=tuple(int(axis) for axis in viewer.dims.displayed),
            ndisplay=int(viewer.dims.ndisplay),
            center=tuple(float(v) for v in camera.center),
            zoom=float(camera.zoom),
            canvas_size=tuple(float(n) for n in size),
        )


def full_resolution(layer) -> Any:
    """The layer's data at full resolution (level 0 of a multiscale layer)."""
    return layer.data[0] if layer.multiscale else layer.data


def lazy_data(data) -> Any:
    """``data`` as an array whose slices are read only when computed: NumPy
    arrays as they are, dask as it is, anything else (zarr, h5py...) wrapped
    in dask, so slicing a frame or a view never reads the whole array."""
    if isinstance(data, np.ndarray) or is_dask_array(data):
        return data
    import dask.array as da

    chunks = getattr(data, "chunks", None)
    return da.from_array(data, chunks=chunks if isinstance(chunks, tuple) else "auto")


def preview_level(layer, scale: float) -> int:
    """The coarsest level of a multiscale layer that still has the working
    resolution ``scale`` (relative to full resolution); 0 for other layers."""
    if not layer.multiscale:
        return 0
    factors = np.asarray(layer.downsample_factors)[:, layer.ndim - 2 : layer.ndim]
    level = 0
    for number, (fy, fx) in enumerate(factors):
        if max(fy, fx) <= 1.0 / scale + 1e-9:
            level = number
    return level


def current_frame_index(layer, world_point) -> tuple[int, ...]:
    """Index of the frame shown at ``world_point`` along the layer's leading (non-Y, X) axes."""
    data_point = np.asarray(layer.world_to_data(world_point), dtype=float)
    shape = full_resolution(layer).shape[: layer.ndim]
    leading = data_point[: layer.ndim - 2]
    return tuple(int(np.clip(round(v), 0, n - 1)) for v, n in zip(leading, shape[:-2]))


def frame_slices(layer, world_point) -> tuple[slice, ...]:
    """Slices of the frame shown at ``world_point`` along the leading axes
    (one long, so the axes are kept)."""
    return tuple(slice(i, i + 1) for i in current_frame_index(layer, world_point))


def visible_region(view: CanvasView, layer) -> tuple[slice, slice] | None:
    """Rows and columns of the layer's current Y, X frame visible on the canvas.

    Returns None when the layer is out of view. Falls back to the whole frame
    in 3D view or when the canvas shows other axes than the layer's last two.
    """
    height, width = full_resolution(layer).shape[layer.ndim - 2 : layer.ndim]
    whole = (slice(0, height), slice(0, width))
    world_ndim = len(view.point)
    if view.ndisplay != 2 or list(view.displayed) != [world_ndim - 2, world_ndim - 1]:
        return whole
    center = np.asarray(view.center, dtype=float)[-2:]
    half = np.asarray(view.canvas_size, dtype=float) / (2.0 * view.zoom)
    point = np.asarray(view.point, dtype=float)
    corners = []
    for dy in (-1, 1):
        for dx in (-1, 1):
            point[-2:] = center + half * (dy, dx)
            corners.append(np.asarray(layer.world_to_data(point), dtype=float)[-2:])
    corners = np.array(corners)
    low = np.floor(corners.min(axis=0)).astype(int)
    high = np.ceil(corners.max(axis=0)).astype(int) + 1
    y0, x0 = np.maximum(low, 0)
    y1, x1 = np.minimum(high, (height, width))
    if y1 <= y0 or x1 <= x0:
        return None
    return slice(int(y0), int(y1)), slice(int(x0), int(x1))


def level_slice(full: slice, factor: float, size: int) -> slice:
    """A full-resolution slice in the coordinates of a level ``factor`` times
    smaller with ``size`` pixels along that axis (never empty)."""
    start = min(size - 1, math.floor(full.start / factor))
    return slice(start, max(start + 1, min(size, math.ceil(full.stop / factor))))


def placement_kwargs(layer, data_offset) -> dict[str, Any]:
    """Layer keyword arguments that put an output where the input sits.

    ``data_offset`` is the input data index of the output's first pixel; it is
    carried through the input's scale, rotation and shear into the translate,
    so a cropped or single-frame output lands on exactly its input pixels.
    """
    from napari.utils.transforms import CompositeAffine

    data2physical = CompositeAffine(scale=layer.scale, translate=layer.translate, rotate=layer.rotate, shear=layer.shear, ndim=layer.ndim)
    placement = {
        "scale": tuple(layer.scale),
        "translate": tuple(np.asarray(data2physical(np.asarray(data_offset, dtype=float)), dtype=float)),
        "rotate": np.asarray(layer.rotate),
        "shear": np.asarray(layer.shear),
        "affine": np.asarray(layer.affine.affine_matrix),
    }
    if hasattr(layer, "units"):  # napari >= 0.6
        placement["units"] = tuple(str(unit) for unit in layer.units)
        placement["axis_labels"] = tuple(layer.axis_labels)
    return placement


def _level_factors(layer, level: int) -> np.ndarray:
    """How many full-resolution pixels one pixel of ``level`` spans, per layer axis."""
    if not layer.multiscale:
        return np.ones(layer.ndim)
    return np.asarray(layer.downsample_factors[level], dtype=float)[: layer.ndim]


def request_hints(rows: np.ndarray, index: tuple, factors: np.ndarray, frames_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Hint rows of the full-resolution image, in the pixels of a request.

    Parameters
    ----------
    rows : ndarray, shape (n, 6)
        (frame, y, x, r, g, b): frame the flat index over ``frames_shape``,
        y, x full-resolution pixels.
    index : tuple of slice
        The request's slices of the level read.
    factors : ndarray
        Full-resolution pixels per pixel of that level, per axis.
    frames_shape : tuple of int
        The image's leading (frame) axes.

    Returns
    -------
    request_rows : ndarray, shape (m, 6)
        The rows that fall on the request's frames and region, with the
        frame a flat index over the request's frames and y, x its pixels.
    kept : ndarray, shape (m, 6)
        The same hints as given, to record.
    """
    if len(rows) == 0:
        return np.zeros((0, 6)), np.zeros((0, 6))
    leading = np.zeros((len(rows), 0), dtype=int)
    if frames_shape:
        leading = np.array(np.unravel_index(rows[:, 0].astype(int), frames_shape)).T
    request_leading = []
    keep = np.ones(len(rows), dtype=bool)
    for axis, part in enumerate(index[:-2]):
        step = part.step or 1
        position = (leading[:, axis] / factors[axis] - part.start) / step
        keep &= (position == np.round(position)) & (position >= 0) & (position < len(range(part.start, part.stop, step)))
        request_leading.append(np.round(position).astype(int))
    pixels = []
    for axis, part in zip((-2, -1), index[-2:]):
        step = part.step or 1
        position = (rows[:, 3 + axis] / factors[axis] - part.start) / step
        size = len(range(part.start, part.stop, step))
        keep &= (position >= -0.5) & (position < size - 0.5)
        pixels.append(np.clip(position, 0, size - 1))
    request_shape = tuple(len(range(p.start, p.stop, p.step or 1)) for p in index[:-2])
    frame = np.ravel_multi_index(tuple(np.array(request_leading)[:, keep]), request_shape) if request_shape else np.zeros(int(keep.sum()))
    request_rows = np.column_stack([frame, pixels[0][keep], pixels[1][keep], rows[keep, 3:]])
    return request_rows, rows[keep]


def make_request(
    layer,
    index: tuple,
    *,
    kind: str,
    frames: str,
    options: ColorizeOptions,
    notes: dict | None = None,
    level: int = 0,
    hints: np.ndarray | None = None,
) -> ColorizeRequest:
    """A request on ``index`` (slices, possibly strided) of pyramid level
    ``level`` of ``layer`` (0: full resolution), with the colour ``hints``
    (full-resolution rows, see :func:`request_hints`) that fall on it.

    The output is placed on the pixels it was read from: the offset of the
    first one goes into the translate, the level's downsampling and the
    slices' steps into the scale. A full-resolution result of a multiscale
    layer gets the same levels as its input. The hints used are recorded in
    the notes (``hints``, in the image's full-resolution pixels).
    """
    data = layer.data[level] if layer.multiscale else layer.data
    factors = _level_factors(layer, level)
    notes = dict(notes or {})
    request_rows = None
    if hints is not None and len(hints):
        frames_shape = full_resolution(layer).shape[: layer.ndim - 2]
        request_rows, kept = request_hints(np.asarray(hints, dtype=float), index, factors, frames_shape)
        notes["hints"] = kept.tolist()
    placement = placement_kwargs(layer, [s.start * f for s, f in zip(index, factors)])
    steps = np.array([s.step or 1 for s in index], dtype=float)
    placement["scale"] = tuple(np.asarray(placement["scale"], dtype=float) * factors * steps)
    level_shapes = None
    if layer.multiscale and kind == "result":
        shape = tuple(s.stop - s.start for s in index)
        level_shapes = [(*shape[:-2], *level_shape[layer.ndim - 2 : layer.ndim]) for level_shape in layer.level_shapes]
    return ColorizeRequest(
        data=lazy_data(data),
        index=index,
        rgb_input=bool(layer.rgb),
        # The worker gets grayscale frames (an RGB layer's luminance): never guess RGB again.
        options=options.replace(rgb=False),
        kind=kind,
        layer_name=layer.name,
        layer_id=str(layer.unique_id),
        placement=placement,
        frames=frames,
        notes=notes,
        level_shapes=level_shapes,
        hints=request_rows,
    )


def result_request(layer, options: ColorizeOptions, *, frames: str, world_point, hints: np.ndarray | None = None) -> ColorizeRequest:
    """Request for Run: the frame shown at ``world_point`` (``frames='current'``)
    or every frame (``frames='all'``) of ``layer``, at full resolution, with
    the ``hints`` on it (rows of :func:`request_hints`)."""
    if frames not in ("current", "all"):
        raise ValueError(f"frames must be 'current' or 'all', got {frames!r}")
    shape = full_resolution(layer).shape[: layer.ndim]
    leading = frame_slices(layer, world_point) if frames == "current" else tuple(slice(0, n) for n in shape[:-2])
    index = (*leading, slice(0, shape[-2]), slice(0, shape[-1]))
    return make_request(layer, index, kind="result", frames=frames, options=options, hints=hints)


def preview_request(
    view: CanvasView, layer, options: ColorizeOptions, *, working_pixels: int = PREVIEW_WORKING_PIXELS, hints: np.ndarray | None = None
) -> ColorizeRequest | None:
    """Request for Preview: the part of the current frame in ``view``, capped
    at about ``working_pixels`` working pixels; None when the layer is out of view.

    A zoomed-out view is read at the coarsest pyramid level that still has
    the working resolution, then strided like napari's own display of a large
    image: a preview never reads (or outputs) full resolution it would throw
    away. The notes record the reductions (``preview_scale_reduced_from``,
    ``multiscale_level``, ``preview_step``).
    """
    region = visible_region(view, layer)
    if region is None:
        return None
    rows, cols = region
    pixels = (rows.stop - rows.start) * (cols.stop - cols.start)
    capped = min(options.scale, math.sqrt(working_pixels / pixels))
    notes = {"preview_scale_reduced_from": options.scale} if capped < options.scale else {}
    level = preview_level(layer, capped)
    index = (*frame_slices(layer, view.point), rows, cols)
    if level:
        factors = _level_factors(layer, level)
        shape = np.asarray(layer.level_shapes[level])[: layer.ndim]
        index = tuple(level_slice(s, f, n) for s, f, n in zip(index, factors, shape))
        capped = min(1.0, capped * float(max(factors[-2:])))
        notes["multiscale_level"] = level
    step = max(1, int(1.0 / capped + 1e-9))
    if step > 1:
        index = (*index[:-2], *(slice(s.start, s.stop, step) for s in index[-2:]))
        capped = min(1.0, capped * step)
        notes["preview_step"] = step
    return make_request(
        layer, index, kind="preview", frames="current", options=options.replace(scale=capped), notes=notes, level=level, hints=hints
    )
