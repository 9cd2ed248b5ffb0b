"""Training data: the scan of a folder of colour references (gray and
unreadable files skipped, colour prior counted) and repeatable random crops."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_colorize.color import ab_bins
from napari_colorize.io import find_images
from napari_colorize.training_data import ColorCrops, cut_out_span, on_dark_sky, scan_images


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


def test_a_dark_sky_view_shows_the_image_small_on_a_colourless_dark_background():
    import numpy as np

    rng = np.random.default_rng(0)
    image = np.full((60, 80, 3), (200, 40, 40), dtype=np.uint8)
    for _ in range(20):
        framed = on_dark_sky(image, rng)
        height, width = framed.shape[:2]
        assert framed.dtype == np.uint8 and 75 <= height <= 200 and 100 <= width <= 267
        chroma = framed.astype(int).max(axis=2) - framed.astype(int).min(axis=2)
        coloured = chroma > 20
        # the image is there, whole and at its size, and fills 30 % to 80 % of each side
        rows, cols = np.nonzero(coloured)
        assert rows.max() - rows.min() < 60 and cols.max() - cols.min() < 80 and coloured.sum() > 0.3 * 60 * 80
        assert (framed[coloured][:, 0] > framed[coloured][:, 1]).all()
        # around it the frame is gray and mostly dark (stars are the only bright pixels)
        sky = framed[~coloured]
        assert (chroma[~coloured] <= 20).all()
        assert np.median(sky) <= 0.12 * 255


def test_dark_sky_views_replace_the_whole_images_view_for_a_share_of_the_crops(training_folder):
    paths = find_images([training_folder])[:6]
    plain = ColorCrops(paths, crop_size=32, seed=5, length=16, view_size=24, region_views=True)
    dark = ColorCrops(paths, crop_size=32, seed=5, length=16, view_size=24, region_views=True, dark_sky=0.5)
    changed = 0
    for index in range(16):
        crop, view, region = plain[index]
        crop_dark, view_dark, region_dark, on_dark = dark[index]
        # the crop (its truth) and the cut-out are untouched; only the whole image's view moves into the dark
        assert torch.equal(crop, crop_dark) and torch.equal(region, region_dark)
        # and the item says which views it moved, for the penalties that weigh those crops apart
        assert bool(on_dark) == (not torch.equal(view, view_dark))
        if on_dark:
            changed += 1
            assert view_dark.float().mean() < view.float().mean()
    assert 3 <= changed <= 13


def test_a_share_of_the_crops_comes_gray_from_the_frames(training_folder, tmp_path):
    from PIL import Image

    frames = tmp_path / "frames"
    frames.mkdir()
    Image.fromarray(np.full((64, 64, 3), (200, 40, 40), dtype=np.uint8)).save(frames / "red.png")  # colour that must not be learned
    paths = find_images([training_folder])[:6]
    plain = ColorCrops(paths, crop_size=32, seed=5, length=24, view_size=24, region_views=True, dark_sky=0.5)
    mixed = ColorCrops(paths, crop_size=32, seed=5, length=24, view_size=24, region_views=True, dark_sky=0.5, frames=[frames / "red.png"], frames_share=0.5)
    from_frames = 0
    for index in range(24):
        *_, on_dark, from_frame = mixed[index]
        crop = mixed[index][0]
        if from_frame:
            from_frames += 1
            assert not on_dark  # a frame is a real frame: never put on a made-up sky
            assert torch.equal(crop[0], crop[1]) and torch.equal(crop[1], crop[2])  # gray
        else:  # the other crops are those a run without frames sees
            assert all(torch.equal(a, b) for a, b in zip(mixed[index][:-1], plain[index]))
    assert 4 <= from_frames <= 20


def test_frames_can_be_enlarged_apart_from_the_colour_images(training_folder, tmp_path):
    from PIL import Image

    frames = tmp_path / "frames"
    frames.mkdir()
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(frames / "noise.png")
    paths = find_images([training_folder])[:6]
    common = {"crop_size": 32, "seed": 5, "length": 24, "frames": [frames / "noise.png"], "frames_share": 0.5}
    as_is = ColorCrops(paths, frames_scale_jitter=(1.0, 1.0), **common)
    enlarged = ColorCrops(paths, frames_scale_jitter=(4.0, 4.0), **common)

    def roughness(crop):  # mean step between neighbouring pixels: 4x enlarged noise is smooth
        return float(crop[0].float().diff(dim=1).abs().mean())

    seen = 0
    for index in range(24):
        (crop, from_frame), (big, _) = as_is[index], enlarged[index]
        if from_frame:
            seen += 1
            assert roughness(big) < 0.4 * roughness(crop)
        else:  # the colour images keep their own scale jitter
            assert torch.equal(crop, big)
    assert seen >= 4


def _flat_image(path, rgb, size=48):
    from PIL import Image

    Image.fromarray(np.full((size, size, 3), rgb, np.uint8)).save(path)
    return path


def test_images_of_rare_colours_are_drawn_more_often(tmp_path):
    from napari_colorize.color import rebalance_weights, smoothed_prior
    from napari_colorize.training_data import rare_colour_draws

    bins = ab_bins()
    # Three larger muted beige images (colour enough to be kept by the scan)
    # and one small saturated red: red is the rare colour.
    paths = [_flat_image(tmp_path / f"beige{i}.png", (120 + i, 105, 85), size=64) for i in range(3)]
    paths.append(_flat_image(tmp_path / "red.png", (220, 20, 30), size=32))
    scan = scan_images(paths, bins, per_image=True)
    weights = rebalance_weights(smoothed_prior(scan.bin_counts, bins))
    counts = scan.image_bin_counts
    uniform = rare_colour_draws(counts, weights, share=0.0)
    np.testing.assert_allclose(uniform, 0.25)
    by_rarity = rare_colour_draws(counts, weights, share=1.0)
    assert by_rarity.sum() == pytest.approx(1.0)
    assert by_rarity[3] > 0.5 and by_rarity[3] > 3 * by_rarity[:3].max()
    half = rare_colour_draws(counts, weights, share=0.5)
    np.testing.assert_allclose(half, (uniform + by_rarity) / 2)
    with pytest.raises(ValueError, match="0 to 1"):
        rare_colour_draws(counts, weights, share=1.5)


def test_crops_follow_the_draws(tmp_path):
    paths = [_flat_image(tmp_path / "blue.png", (20, 40, 200)), _flat_image(tmp_path / "red.png", (220, 20, 30))]
    only_red = ColorCrops(paths, crop_size=32, seed=3, length=12, draws=[0.0, 1.0])
    assert all(int(only_red[i][0].float().mean()) > 150 for i in range(12))
    only_blue = ColorCrops(paths, crop_size=32, seed=3, length=12, draws=[1.0, 0.0])
    assert all(int(only_blue[i][2].float().mean()) > 150 for i in range(12))


def test_resumed_data_keeps_its_draws(training_folder):
    from napari_colorize.training_data import TrainingData

    data = TrainingData.scan([training_folder], ab_bins())
    data.draws = np.linspace(1, 2, len(data.images)) / np.linspace(1, 2, len(data.images)).sum()
    state = {"data": json.dumps(data.state_entries()), "prior": torch.as_tensor(data.prior)}
    again = TrainingData.from_state(state)
    np.testing.assert_allclose(again.draws, data.draws)
    assert again.summary == data.summary
