"""Colour hints drawn on a napari Points layer, without Qt.

Each point of a hints layer is one hint: where it sits is the pixel, its face
colour the colour (Zhang et al. 2017: a few user colours steer the whole
result). A hints layer is placed exactly over its image layer (same scale,
translate, rotation), so a point's data coordinates are the image's; points
are nevertheless mapped through world coordinates, so a layer the user moved
or made by hand still lands on the right pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .hints import HINT_COLUMNS
from .layer_geometry import full_resolution, placement_kwargs

#: Face colour of a new hint until the user picks one: a clear green.
DEFAULT_HINT_COLOUR = "#2ecc40"
#: A hint point's size on screen, in the image's pixels.
HINT_POINT_SIZE = 9


def hints_layer_kwargs(image_layer) -> dict[str, Any]:
    """Keyword arguments of ``viewer.add_points`` for an empty hints layer over ``image_layer``."""
    placement = placement_kwargs(image_layer, np.zeros(image_layer.ndim))
    placement.pop("affine", None)  # the composed placement already carries it; napari wants one or the other
    return {
        "data": np.zeros((0, image_layer.ndim)),
        "ndim": image_layer.ndim,
        "name": f"{image_layer.name} hints",
        "face_color": DEFAULT_HINT_COLOUR,
        "border_color": "white",
        "size": HINT_POINT_SIZE,
        **{key: value for key, value in placement.items() if key in ("scale", "translate", "rotate", "shear", "units", "axis_labels")},
    }


def is_hints_layer(layer) -> bool:
    """True for Points layers (any of them may hold hints)."""
    from napari.layers import Points

    return isinstance(layer, Points)


def image_hint_rows(points_layer, image_layer, *, every_frame: bool = False) -> np.ndarray:
    """The points of ``points_layer`` as hint rows over ``image_layer``.

    Parameters
    ----------
    points_layer : napari.layers.Points
    image_layer : napari.layers.Image
        The layer being colorized (its full resolution).
    every_frame : bool
        Give every hint to every frame of a stack, not only to the frame it
        was placed on. A 2D hints layer over a stack always does.

    Returns
    -------
    ndarray, shape (n, 6)
        (frame, y, x, r, g, b) in the image's full-resolution pixels, frame
        the flat index over its leading axes, colours 0..255 (the face
        colour, alpha ignored). Points off the image are left out.
    """
    shape = full_resolution(image_layer).shape[: image_layer.ndim]
    frames_shape = shape[:-2]
    count = len(points_layer.data)
    if count == 0:
        return np.zeros((0, len(HINT_COLUMNS)))
    world = np.array([points_layer.data_to_world(point) for point in np.asarray(points_layer.data, dtype=float)])
    world = _with_world_ndim(world, image_layer)
    data = np.array([image_layer.world_to_data(point) for point in world], dtype=float)
    yx = data[:, -2:]
    colours = np.asarray(points_layer.face_color, dtype=float)[:, :3] * 255.0
    inside = (yx >= -0.5).all(axis=1) & (yx[:, 0] < shape[-2] - 0.5) & (yx[:, 1] < shape[-1] - 0.5)
    yx = np.clip(yx, 0, np.array(shape[-2:]) - 1)
    frames_total = int(np.prod(frames_shape, dtype=np.int64))
    placed_per_frame = points_layer.ndim >= image_layer.ndim and frames_shape and not every_frame
    if placed_per_frame:
        leading = np.round(data[:, : len(frames_shape)]).astype(int)
        inside &= ((leading >= 0) & (leading < np.array(frames_shape))).all(axis=1)
        frame = np.zeros(count, dtype=int)
        frame[inside] = np.ravel_multi_index(tuple(leading[inside].T), frames_shape)
        rows = np.column_stack([frame, yx, colours])[inside]
    else:
        single = np.column_stack([np.zeros(count), yx, colours])[inside]
        rows = np.concatenate([np.column_stack([np.full(len(single), f), single[:, 1:]]) for f in range(frames_total)])
    return np.round(rows, 3)


def _with_world_ndim(world: np.ndarray, image_layer) -> np.ndarray:
    """World points of a layer with fewer (or more) axes than the image's
    world: missing leading axes at the image's first frame, extra ones dropped."""
    ndim = image_layer.ndim
    if world.shape[1] == ndim:
        return world
    if world.shape[1] > ndim:
        return world[:, -ndim:]
    first = np.asarray(image_layer.data_to_world(np.zeros(ndim)), dtype=float)
    return np.column_stack([np.tile(first[: ndim - world.shape[1]], (len(world), 1)), world])
