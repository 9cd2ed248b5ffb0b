"""Training data: the scan of a folder of colour references (gray and
unreadable files skipped, colour prior counted) and repeatable random crops."""

from __future__ import annotations

import torch

from napari_colorize.color import ab_bins
from napari_colorize.io import find_images
from napari_colorize.training_data import ColorCrops, cut_out_span, scan_images


def test_scan_images(training_folder):
    bins = ab_bins()
    paths = find_images([training_folder])
    scan = scan_images(paths, bins)
    assert len(scan.color_images) == 6 and scan.skipped == 3
    assert all(p.name.startswith("colour_") for p in scan.color_images)
    assert scan.bin_counts.shape == (261,)
    # one count per thumbnail pixel (96 px images are below the thumbnail size)
    assert scan.bin_counts.sum() == 6 * 64 * 64


def test_color_crops_are_repeatable(training_folder):
    paths = find_images([training_folder])[:6]
    crops = ColorCrops(paths, crop_size=32, seed=5, length=10)
    assert len(crops) == 10
    first = crops[3]
    assert first.shape == (3, 32, 32) and first.dtype == torch.uint8
    assert torch.equal(first, crops[3])
    assert not torch.equal(crops[3], crops[4])


def test_region_views_are_cut_outs_around_the_crop(training_folder):
    paths = find_images([training_folder])[:6]
    whole = ColorCrops(paths, crop_size=32, seed=5, length=12, view_size=24)
    cut = ColorCrops(paths, crop_size=32, seed=5, length=12, view_size=24, region_views=True)
    differ = 0
    for index in range(12):
        crop, view = whole[index]
        crop_again, view_again, region = cut[index]
        # the crop and the whole image's view are those a run without cut-outs sees
        assert torch.equal(crop, crop_again) and torch.equal(view, view_again)
        assert region.shape == view.shape == (3, 24, 24) and region.dtype == torch.uint8
        differ += not torch.equal(region, view)
    assert differ > 6  # most cut-outs are smaller than the image
    # a crop as large as its (unscaled) image still gets cut-outs: windows inside it
    tight = ColorCrops(paths, crop_size=96, seed=5, length=8, view_size=24, region_views=True, scale_jitter=(1.0, 1.0))
    assert sum(not torch.equal(view, region) for _, view, region in (tight[i] for i in range(8))) > 4


def test_cut_outs_reach_from_a_window_inside_the_crop_to_the_whole_image():
    import numpy as np

    rng = np.random.default_rng(0)
    for start, size, length in [(0, 128, 128), (40, 128, 300), (172, 128, 300)]:
        spans = [cut_out_span(start, size, length, rng) for _ in range(400)]
        assert all(0 <= a < b <= length and b - a >= 96 for a, b in spans)
        inside = [(a, b) for a, b in spans if b - a <= size]
        around = [(a, b) for a, b in spans if b - a > size]
        assert all(start <= a and b <= start + size for a, b in inside)  # a window of the crop
        assert all(a <= start and start + size <= b for a, b in around)  # the crop and more
        assert inside and (around or length == size)
