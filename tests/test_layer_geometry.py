"""Which pixels of a layer the widget colorizes and where the output lands,
driven with plain napari layers and a CanvasView: no Qt, no viewer, no model."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from napari.layers import Image

from napari_colorize.layer_geometry import (
    PREVIEW_WORKING_PIXELS,
    CanvasView,
    current_frame_index,
    lazy_data,
    level_slice,
    make_request,
    placement_kwargs,
    preview_level,
    preview_request,
    result_request,
    visible_region,
)
from napari_colorize.options import ColorizeOptions

OPTIONS = ColorizeOptions(device="cpu")


def flat_view(center, zoom, *, canvas=(600.0, 800.0), point=None, ndisplay=2) -> CanvasView:
    """A 2D view of a 2D world centred on ``center`` (world Y, X)."""
    point = tuple(point) if point is not None else tuple(center)
    ndim = len(point)
    return CanvasView(point=point, displayed=(ndim - 2, ndim - 1), ndisplay=ndisplay, center=tuple(center), zoom=zoom, canvas_size=canvas)


def output_layer(request) -> Image:
    """The layer the widget would add for ``request`` (zeros of the output's shape)."""
    return Image(np.zeros((*request.shape, 3), np.uint8), rgb=True, **request.placement)


def pyramid(full: np.ndarray, levels: int) -> list[np.ndarray]:
    return [full[:: 2**k, :: 2**k] for k in range(levels)]


def assert_lands_on(output, source, pairs):
    for out_point, src_point in pairs:
        np.testing.assert_allclose(output.data_to_world(out_point), source.data_to_world(src_point), atol=1e-9)


# ---------------------------------------------------------------- placement


def test_a_cropped_strided_region_lands_on_its_input_pixels_even_rotated_and_sheared():
    source = Image(np.zeros((3, 80, 90)), scale=(2.0, 0.5, 0.7), translate=(1.0, 5.0, -4.0), rotate=25, shear=[0.0, 0.0, 0.1])
    index = (slice(1, 2), slice(10, 50, 2), slice(5, 47, 3))
    request = make_request(source, index, kind="preview", frames="current", options=OPTIONS)
    output = output_layer(request)

    assert request.shape == (1, 20, 14)
    assert_lands_on(output, source, [((0, 0, 0), (1, 10, 5)), ((0, 19, 13), (1, 48, 44)), ((0, 3, 7), (1, 16, 26))])
    assert output.units == source.units and output.axis_labels == source.axis_labels


def test_placement_carries_the_offset_through_the_layer_transform():
    source = Image(np.zeros((40, 50)), scale=(0.5, 0.25), translate=(10.0, -5.0), units=("µm", "µm"), axis_labels=("row", "col"))
    placement = placement_kwargs(source, (4, 8))
    np.testing.assert_allclose(placement["translate"], (12.0, -3.0))
    assert placement["scale"] == (0.5, 0.25) and placement["units"] == ("micrometer", "micrometer")
    assert placement["axis_labels"] == ("row", "col")


# ---------------------------------------------------------------- Run


def test_result_of_the_current_frame_keeps_the_axis_and_reads_that_frame():
    stack = np.arange(4 * 6 * 5, dtype=np.uint16).reshape(4, 6, 5)
    source = Image(stack, scale=(3.0, 1.0, 1.0), translate=(2.0, 0.0, 0.0))
    assert current_frame_index(source, (2.0 + 3.0 * 2.2, 0, 0)) == (2,)
    assert current_frame_index(source, (1000.0, 0, 0)) == (3,)  # past the end: the last frame

    request = result_request(source, OPTIONS, frames="current", world_point=(2.0 + 3.0 * 2, 0, 0))
    assert request.index == (slice(2, 3), slice(0, 6), slice(0, 5)) and request.kind == "result"
    np.testing.assert_array_equal(request.source(), stack[2:3])
    assert_lands_on(output_layer(request), source, [((0, 0, 0), (2, 0, 0))])

    every = result_request(source, OPTIONS, frames="all", world_point=(0, 0, 0))
    assert every.shape == (4, 6, 5) and every.placement["translate"] == pytest.approx((2.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="frames"):
        result_request(source, OPTIONS, frames="some", world_point=(0, 0, 0))


def test_a_multiscale_result_gets_the_levels_of_its_input():
    full = np.zeros((300, 260), np.uint16)
    source = Image(pyramid(full, 3), multiscale=True)
    request = result_request(source, OPTIONS, frames="all", world_point=(0, 0))
    assert request.level_shapes == [(300, 260), (150, 130), (75, 65)]


def test_an_rgb_layer_is_read_as_its_luminance_and_never_guessed_again():
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 1] = 200
    request = result_request(Image(rgb, rgb=True), OPTIONS, frames="current", world_point=(0, 0))
    assert request.rgb_input and request.options.rgb is False
    source = np.asarray(request.source())
    assert source.shape == (20, 30) and np.ptp(source) == 0 and source.max() > 0


def test_lazy_data_wraps_other_arrays_in_dask_and_keeps_numpy_and_dask():
    import dask.array as da

    class Store:  # a zarr-like array: shape, dtype, chunks and slicing
        shape, dtype, ndim, chunks = (4, 8, 8), np.dtype(np.uint8), 3, (1, 8, 8)

        def __getitem__(self, index):
            return np.ones(self.shape, self.dtype)[index]

    numpy = np.zeros((2, 2))
    assert lazy_data(numpy) is numpy
    wrapped = lazy_data(Store())
    assert isinstance(wrapped, da.Array) and wrapped.chunks == ((1, 1, 1, 1), (8,), (8,))
    assert lazy_data(wrapped) is wrapped


# ---------------------------------------------------------------- Preview


def test_visible_region_is_what_the_canvas_shows():
    source = Image(np.zeros((400, 500)), scale=(2.0, 2.0), translate=(100.0, -50.0))
    centre = source.data_to_world((200, 250))
    rows, cols = visible_region(flat_view(centre, 4.0), source)
    # 600 x 800 screen pixels at 4 per world unit: 150 x 200 world units, 75 x 100 data pixels
    assert (rows.start, rows.stop) == (162, 239) and (cols.start, cols.stop) == (200, 301)


def test_visible_region_is_none_out_of_view_and_the_whole_frame_in_3d():
    source = Image(np.zeros((50, 60)))
    assert visible_region(flat_view((5000.0, 5000.0), 10.0), source) is None
    assert visible_region(flat_view((25.0, 30.0), 10.0, ndisplay=3), source) == (slice(0, 50), slice(0, 60))


def test_preview_of_a_large_view_strides_and_caps_the_working_size():
    source = Image(np.zeros((1024, 1024), np.uint8))
    request = preview_request(flat_view((512.0, 512.0), 0.1), source, OPTIONS)
    assert request.kind == "preview" and request.notes == {"preview_scale_reduced_from": 1.0, "preview_step": 2}
    assert request.shape == (512, 512)
    assert request.options.scale == pytest.approx(2 * np.sqrt(PREVIEW_WORKING_PIXELS / 1024**2))
    assert_lands_on(output_layer(request), source, [((0, 0), (0, 0)), ((100, 7), (200, 14))])


def test_preview_of_a_small_view_at_half_resolution_reads_every_second_pixel():
    source = Image(np.zeros((100, 120)))
    request = preview_request(flat_view((50.0, 60.0), 1.0), source, OPTIONS.replace(scale=0.5))
    # the same working resolution as scale 0.5 of the whole, from a quarter of the pixels
    assert request.notes == {"preview_step": 2} and request.options.scale == 1.0 and request.shape == (50, 60)
    unreduced = preview_request(flat_view((50.0, 60.0), 1.0), source, OPTIONS)
    assert unreduced.notes == {} and unreduced.options.scale == 1.0 and unreduced.shape == (100, 120)


@pytest.mark.parametrize(("scale", "level"), [(1.0, 0), (0.5, 1), (0.3, 1), (0.25, 2), (0.1, 3), (0.01, 3)])
def test_preview_level_is_the_coarsest_with_the_working_resolution(scale, level):
    source = Image(pyramid(np.zeros((512, 512)), 4), multiscale=True)
    assert preview_level(source, scale) == level
    assert preview_level(Image(np.zeros((512, 512))), scale) == 0


def test_preview_of_a_zoomed_out_pyramid_reads_a_coarse_level_only():
    levels = [level.copy() for level in pyramid(np.zeros((2048, 2048), np.uint8), 5)]  # apart in memory
    source = Image(levels, multiscale=True)
    request = preview_request(flat_view((1024.0, 1024.0), 0.2), source, OPTIONS)
    level = request.notes["multiscale_level"]
    assert level >= 2 and request.shape == levels[level].shape
    assert np.shares_memory(request.data, levels[level]) and not np.shares_memory(request.data, levels[0])
    output = output_layer(request)
    np.testing.assert_allclose(output.extent.world, source.extent.world, atol=2**level)


def test_level_slice_never_empties_a_region():
    assert level_slice(slice(10, 30), 4.0, 100) == slice(2, 8)
    assert level_slice(slice(99, 100), 8.0, 13) == slice(12, 13)
    assert level_slice(slice(5, 6), 16.0, 10) == slice(0, 1)
