"""Training data: the scan of a folder of colour references (gray and
unreadable files skipped, colour prior counted) and repeatable random crops."""

from __future__ import annotations

import torch

from napari_colorize.color import ab_bins
from napari_colorize.io import find_images
from napari_colorize.training_data import ColorCrops, scan_images


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
