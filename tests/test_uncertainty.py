"""Per-pixel uncertainty: the normalised entropy of the predicted ab
distribution, from the function through ``colorize()`` and its strips to the
command line's ``--uncertainty FILE``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tifffile
import torch
from helpers import assert_refused, run, smooth_frame
from PIL import Image

from napari_colorize import colorize
from napari_colorize.color import normalized_entropy
from napari_colorize.engine import colorize_strips
from napari_colorize.model import Colorizer
from napari_colorize.provenance import UNCERTAINTY_NOTE


@pytest.fixture(scope="module")
def regression():
    from napari_colorize.model import load_checkpoint

    return load_checkpoint("natural-regression", device="cpu")


def gray_stack(frames=2, shape=(70, 90)) -> np.ndarray:
    return np.stack([smooth_frame(shape, seed=s, low=100, high=30000) for s in range(frames)]).astype(np.uint16)


def assert_is_uncertainty(values, shape):
    assert values.shape == shape and values.dtype == np.float32
    assert np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 1.0
    assert values.std() > 0, "a map, not a constant"


# --------------------------------------------------------------------------
# the function
# --------------------------------------------------------------------------
@pytest.mark.parametrize("bins", [2, 4, 313])
def test_entropy_is_0_for_a_one_hot_distribution_and_1_for_a_uniform_one(bins):
    one_hot = torch.full((1, bins, 2, 3), -math.inf)
    one_hot[:, 1] = 0.0  # all the probability in one bin (its neighbours exactly 0)
    peaked = torch.zeros(1, bins, 2, 3)
    peaked[:, 0] = 100.0  # nearly all of it
    uniform = torch.full((1, bins, 2, 3), 7.0)  # equal logits, whatever their value
    assert normalized_entropy(one_hot).shape == (1, 1, 2, 3)
    assert torch.equal(normalized_entropy(one_hot), torch.zeros(1, 1, 2, 3))  # no NaN from 0 log 0
    torch.testing.assert_close(normalized_entropy(peaked), torch.zeros(1, 1, 2, 3), rtol=0, atol=1e-6)
    torch.testing.assert_close(normalized_entropy(uniform), torch.ones(1, 1, 2, 3), rtol=0, atol=1e-6)


def test_entropy_lies_between_for_other_distributions_and_grows_with_the_spread():
    logits = torch.randn(4, 313, 5, 5, generator=torch.Generator().manual_seed(0))
    spreads = [normalized_entropy(logits * sharpness) for sharpness in (8.0, 2.0, 0.5)]
    for spread in spreads:
        assert spread.dtype == torch.float32 and ((spread > 0) & (spread < 1)).all()
    assert (spreads[0] < spreads[1]).all() and (spreads[1] < spreads[2]).all()


def test_entropy_needs_two_bins():
    with pytest.raises(ValueError, match="at least 2 bins"):
        normalized_entropy(torch.zeros(1, 1, 2, 2))


# --------------------------------------------------------------------------
# colorize() and its strips
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "options"),
    [((2, 70, 90), {}), ((75, 61), {"scale": 0.5, "chroma_upsampling": "guided"})],
    ids=["stack", "frame-half-scale-guided"],
)
def test_colorize_returns_the_uncertainty_beside_the_same_rgb(natural, shape, options):
    image = gray_stack(int(np.prod(shape[:-2])), shape=shape[-2:]).reshape(shape)
    rgb, uncertainty = colorize(image, model=natural, device="cpu", uncertainty=True, **options)
    np.testing.assert_array_equal(rgb, colorize(image, model=natural, device="cpu", **options))
    assert_is_uncertainty(uncertainty, shape)


def test_strips_carry_the_uncertainty_rows_only_when_asked(natural):
    stack = gray_stack(2, shape=(50, 60))
    rgb, uncertainty = colorize(stack, model=natural, device="cpu", uncertainty=True)
    plain = list(colorize_strips(stack, model=natural, device="cpu", strip_rows=16))
    assert {len(strip) for strip in plain} == {4}, "the default strips are unchanged"
    rows = np.full(stack.shape, np.nan, np.float32)
    for index, r0, r1, rgb_rows, uncertain_rows in colorize_strips(stack, model=natural, device="cpu", strip_rows=16, uncertainty=True):
        np.testing.assert_array_equal(rgb_rows, rgb[index][r0:r1])
        assert uncertain_rows.shape == (r1 - r0, 60) and uncertain_rows.dtype == np.float32
        rows[index][r0:r1] = uncertain_rows
    np.testing.assert_array_equal(rows, uncertainty)


def test_uncertainty_is_written_into_the_arrays_given(natural):
    frame = gray_stack(1, shape=(40, 50))[0]
    out, uncertainty_out = np.zeros((40, 50, 3), np.uint8), np.zeros((40, 50), np.float32)
    rgb, uncertainty = colorize(frame, model=natural, device="cpu", out=out, uncertainty=True, uncertainty_out=uncertainty_out)
    assert rgb is out and uncertainty is uncertainty_out
    assert_is_uncertainty(uncertainty, (40, 50))
    with pytest.raises(ValueError, match="float32 array of shape"):
        colorize(frame, model=natural, device="cpu", uncertainty=True, uncertainty_out=np.zeros((40, 50), np.float64))
    with pytest.raises(ValueError, match="only with uncertainty=True"):
        colorize(frame, model=natural, device="cpu", uncertainty_out=uncertainty_out)


def test_a_dask_input_gives_the_uncertainty_as_arrays(natural):
    import dask.array as da

    stack = gray_stack(2, shape=(40, 50))
    rgb, uncertainty = colorize(da.from_array(stack, chunks=(1, 40, 50)), model=natural, device="cpu", uncertainty=True)
    expected_rgb, expected = colorize(stack, model=natural, device="cpu", uncertainty=True)
    assert isinstance(uncertainty, np.ndarray)
    np.testing.assert_array_equal(rgb, expected_rgb)
    np.testing.assert_array_equal(uncertainty, expected)


def test_a_regression_model_has_no_uncertainty_and_refuses_before_any_work(regression, monkeypatch):
    calls = []
    monkeypatch.setattr(Colorizer, "predict_ab", lambda self, *args, **kwargs: calls.append(1))
    frame = gray_stack(1, shape=(40, 50))[0]
    with pytest.raises(ValueError, match="regression model.*no distribution"):
        colorize(frame, model=regression, device="cpu", uncertainty=True)
    with pytest.raises(ValueError, match="no distribution"):
        colorize_strips(frame, model=regression, device="cpu", uncertainty=True)  # when called, not at the first strip
    assert calls == []


def test_uncertainty_is_not_computed_on_a_scheduler(natural):
    with pytest.raises(ValueError, match="scheduler"):
        colorize(gray_stack(1, shape=(40, 50))[0], model=natural, device="cpu", uncertainty=True, scheduler="tcp://127.0.0.1:1")


# --------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------
@pytest.fixture
def stack_tif(tmp_path):
    stack = gray_stack(3, shape=(60, 70))
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    return path, stack


def read_uncertainty(path):
    with tifffile.TiffFile(path) as tif:
        return tif.series[0].asarray(), json.loads(tif.pages[0].description)["napari_colorize"], len(tif.pages)


def test_cli_streams_the_uncertainty_of_a_stack_to_a_float32_tiff(capsys, tmp_path, stack_tif, default_model):
    src, stack = stack_tif
    dst, spread = tmp_path / "out.tif", tmp_path / "uncertainty.tif"
    code, out, err = run(capsys, "colorize", src, "-o", dst, "--uncertainty", spread, "--device", "cpu")
    assert code == 0, err
    assert "uncertainty.tif" in out

    values, record, pages = read_uncertainty(spread)
    expected_rgb, expected = colorize(stack, model=default_model, device="cpu", uncertainty=True)
    assert pages == 3, "laid out like the output: a page per frame"
    np.testing.assert_array_equal(values, expected)
    np.testing.assert_array_equal(tifffile.imread(dst), expected_rgb)
    assert record["shows"] == "uncertainty" and record["uncertainty"] == UNCERTAINTY_NOTE
    assert record["model"] == default_model.name and record["model_sha256"] == default_model.sha256 and record["bins"] == default_model.num_bins
    assert record["source_file"] == "stack.tif" and record["predicted"] is True
    assert not list(tmp_path.glob(".*partial*"))


def test_cli_streams_the_uncertainty_of_a_frame_taller_than_a_strip(capsys, tmp_path, default_model):
    """530 rows: three strips of the streamed writer, the last one partial."""
    frame = gray_stack(1, shape=(530, 150))[0]
    src, spread = tmp_path / "tall.tif", tmp_path / "tall uncertainty.tif"
    tifffile.imwrite(src, frame, photometric="minisblack")
    code, _, err = run(capsys, "colorize", src, "-o", tmp_path / "tall colorized.tif", "--uncertainty", spread, "--device", "cpu", "-q")
    assert code == 0, err
    np.testing.assert_array_equal(read_uncertainty(spread)[0], colorize(frame, model=default_model, device="cpu", uncertainty=True)[1])


def test_cli_writes_the_uncertainty_of_a_picture(capsys, tmp_path, default_model):
    frame = smooth_frame((50, 64), seed=7, low=0, high=255).round().astype(np.uint8)
    src = tmp_path / "gray.png"
    Image.fromarray(frame, "L").save(src)
    spread = tmp_path / "gray uncertainty.tiff"
    code, _, err = run(capsys, "colorize", src, "-o", tmp_path / "out.png", "--uncertainty", spread, "--device", "cpu", "-q")
    assert code == 0, err
    values, record, _ = read_uncertainty(spread)
    np.testing.assert_array_equal(values, colorize(frame, model=default_model, device="cpu", uncertainty=True)[1])
    assert record["shows"] == "uncertainty"


def test_cli_never_overwrites_an_uncertainty_file_without_overwrite(capsys, tmp_path, stack_tif):
    src, _ = stack_tif
    dst, spread = tmp_path / "out.tif", tmp_path / "uncertainty.tif"
    spread.write_bytes(b"precious")
    code, _, err = run(capsys, "colorize", src, "-o", dst, "--uncertainty", spread, "--device", "cpu", "-q")
    assert_refused(code, err, "uncertainty.tif exists", "--overwrite", output=dst)  # checked before any work
    assert spread.read_bytes() == b"precious"

    code, _, err = run(capsys, "colorize", src, "-o", dst, "--uncertainty", spread, "--device", "cpu", "-q", "--overwrite")
    assert code == 0, err
    assert read_uncertainty(spread)[0].shape == (3, 60, 70)


def test_cli_names_the_uncertainty_files_of_several_inputs_in_a_folder(capsys, tmp_path, stack_tif):
    src, _ = stack_tif
    other = tmp_path / "other.tif"
    tifffile.imwrite(other, gray_stack(1, shape=(40, 50))[0], photometric="minisblack")
    results = tmp_path / "results"
    code, _, err = run(capsys, "colorize", src, other, "-o", results, "--uncertainty", results, "--device", "cpu", "-q")
    assert code == 0, err
    assert sorted(p.name for p in results.iterdir()) == [
        "other_colorized.tif",
        "other_uncertainty.tif",
        "stack_colorized.tif",
        "stack_uncertainty.tif",
    ]
    assert read_uncertainty(results / "other_uncertainty.tif")[0].shape == (40, 50)

    (tmp_path / "one.tif").write_bytes(b"a file")
    code, _, err = run(capsys, "colorize", src, other, "-o", tmp_path / "again", "--uncertainty", tmp_path / "one.tif", "--device", "cpu")
    assert_refused(code, err, "one.tif is a file, but several inputs need an uncertainty folder")
    assert not (tmp_path / "again").exists()


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--model", "natural-regression"], ["natural-regression", "regression model", "no distribution"]),
        (["--uncertainty-name", "u.png"], ["float32 TIFF", "u.png"]),
        (["--uncertainty-name", "out.tif"], ["the output and the uncertainty of", "out.tif"]),
        (["--scheduler", "tcp://127.0.0.1:1"], ["--scheduler"]),
    ],
    ids=["regression", "not-a-tiff", "same-as-output", "scheduler"],
)
def test_cli_refuses_an_uncertainty_it_cannot_write_before_any_work(capsys, tmp_path, stack_tif, extra, fragments):
    src, _ = stack_tif
    dst = tmp_path / "out.tif"
    spread = tmp_path / "uncertainty.tif"
    if extra[0] == "--uncertainty-name":
        spread, extra = tmp_path / extra[1], []
    code, _, err = run(capsys, "colorize", src, "-o", dst, "--uncertainty", spread, "--device", "cpu", "-q", *extra)
    assert_refused(code, err, *fragments, output=dst)
    assert not spread.exists()
