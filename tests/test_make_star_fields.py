"""models/make_star_fields.py: synthetic telescope frames for ``train --frames``."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import models_script

from napari_colorize.training_data import read_gray_picture


@pytest.fixture(scope="module")
def script():
    return models_script("make_star_fields")


def test_a_star_field_is_a_dark_sky_with_point_sources(script):
    frame = script.star_field(np.random.default_rng(1))
    assert frame.dtype == np.float32 and 384 <= min(frame.shape) and max(frame.shape) <= 768
    sky, stars = np.percentile(frame, [50, 99.9])
    assert stars > sky + 0.2  # stars stand out of the sky
    assert np.mean(frame > sky + 0.2) < 0.2  # and cover a small part of it


def test_the_frames_are_written_readable_by_training_and_repeat_with_the_seed(script, tmp_path):
    tifffile = pytest.importorskip("tifffile")
    assert script.main([str(tmp_path / "a"), "--count", "2", "--seed", "5"]) == 0
    assert script.main([str(tmp_path / "b"), "--count", "2", "--seed", "5"]) == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["star-field-0000.tif", "star-field-0001.tif"]
    for name in names:
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "a" / name), tifffile.imread(tmp_path / "b" / name))
    picture = read_gray_picture(tmp_path / "a" / names[0])
    assert picture.dtype == np.uint8 and picture.shape[-1] == 3 and picture.max() == 255
