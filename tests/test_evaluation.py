"""The evaluation of models on a folder of colour images (whole, or per subfolder and pooled), and its tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import make_color_folder, run

from napari_colorize.evaluation import (
    GRAY,
    POOLED,
    EvaluationRow,
    error_cap,
    evaluate,
    evaluate_by_subfolder,
    format_grouped_table,
    format_table,
    hint_scores,
    local_hint_bound,
)
from napari_colorize.io import TOP_LEVEL, find_images


def test_format_table():
    rows = [
        EvaluationRow(GRAY, 3, 88.04, 70.0, 27.5, 0.0, 40.0),
        EvaluationRow("natural", 3, 90.0, 75.54, 28.126, 20.04, 40.0),
    ]
    text = format_table(rows, title="kodak")
    lines = text.splitlines()
    assert lines[0] == "**kodak** (3 images)"
    assert lines[3] == "|---|---:|---:|---:|---:|---:|"
    assert lines[4] == f"| {GRAY} | 88.0 | 70.0 | 27.50 | 0.0 | 40.0 |"
    assert lines[5] == "| natural | 90.0 | 75.5 | 28.13 | 20.0 | 40.0 |"
    assert "kodak" not in format_table(rows)


def test_evaluate(colour_folder, tmp_path):
    rows = evaluate(["natural"], colour_folder, device="cpu")
    assert [r.method for r in rows] == [GRAY, "natural"]
    gray, model = rows
    assert gray.images == model.images == 3
    # the baseline keeps the lightness and has no colour
    assert gray.colorfulness == pytest.approx(0.0, abs=0.5)
    assert gray.colorfulness_truth == model.colorfulness_truth > 10
    assert 0 < gray.auc < 100 and 0 < model.auc < 100
    assert math.isfinite(gray.psnr) and gray.psnr > 10
    assert model.colorfulness > 1
    assert len(evaluate(["natural"], colour_folder, device="cpu", limit=1)) == 2
    gray_only = tmp_path / "gray"
    gray_only.mkdir()
    from PIL import Image

    Image.fromarray(np.full((32, 32), 90, np.uint8), "L").save(gray_only / "g.png")
    with pytest.raises(ValueError, match="no colour images"):
        evaluate(["natural"], gray_only, device="cpu")
    with pytest.raises(FileNotFoundError):
        evaluate(["natural"], tmp_path / "missing", device="cpu")


def test_hint_scores_without_hints_are_the_evaluation_s_and_true_hints_help(colour_folder, natural):
    scores = hint_scores(natural, find_images([colour_folder]), (0, 20))
    model = evaluate(["natural"], colour_folder, device="cpu")[1]
    assert (scores[0].psnr, scores[0].auc_rebalanced) == (pytest.approx(model.psnr), pytest.approx(model.auc_rebalanced))
    assert np.isnan(scores[0].far_change)
    assert scores[20].psnr > scores[0].psnr  # twenty true colours bring the colours closer to the truth


def test_hint_scores_measure_the_change_far_from_every_hint(natural, tmp_path):
    from PIL import Image

    from napari_colorize.evaluation import FAR_FROM_HINTS

    rng = np.random.default_rng(0)
    photo = (rng.random((4, 5, 3)) * 255).astype(np.uint8)
    path = tmp_path / "wide.png"
    Image.fromarray(photo).resize((3 * FAR_FROM_HINTS + 40, 3 * FAR_FROM_HINTS), Image.BICUBIC).save(path)
    local = hint_scores(natural, [path], (0, 1, 5))
    assert local[1].far_change < 0.1 and local[5].far_change < 0.1  # the default reach: near each hint
    whole = hint_scores(natural, [path], (0, 1, 5), hint_reach="frame")
    assert whole[1].far_change > 0.5 and whole[5].far_change > 0.5  # the whole-frame reach moves them
    bound = local_hint_bound(natural, [path], 5)
    near, far = bound.values()
    # the truth near the hints beats any hint result there, and more so with far errors cut too
    assert whole[0].psnr < near.psnr < far.psnr and local[5].psnr < near.psnr and near.far_change == 0


# --------------------------------------------------------------------------
# per subfolder, and pooled
# --------------------------------------------------------------------------
@pytest.fixture
def folder_of_sources(tmp_path):
    """A held-out folder laid out as ../shared/data/eval/astro: images at its top
    level and in subfolders (one of them deeper down, one with gray images only)."""
    from helpers import make_color_image

    root = tmp_path / "astro"
    layout = {root: 2, root / "galaxies": 3, root / "nebulae" / "deep": 1}
    for seed, (folder, count) in enumerate(layout.items()):
        folder.mkdir(parents=True)
        for i in range(count):
            make_color_image(48, seed=10 * seed + i).save(folder / f"image_{i}.png")
    make_color_folder(root / "plates", count=0, size=48, gray=1)
    return root


def test_evaluate_by_subfolder_reports_each_subfolder_and_all_pooled(folder_of_sources):
    groups = evaluate_by_subfolder(["natural"], folder_of_sources, device="cpu")
    assert list(groups) == [TOP_LEVEL, "galaxies", "nebulae", POOLED]  # the gray-only subfolder has nothing to score
    assert [[r.method for r in rows] for rows in groups.values()] == [[GRAY, "natural"]] * 4
    assert [rows[0].images for rows in groups.values()] == [2, 3, 1, 6]
    # pooled is the whole folder as one: what evaluate() gives
    for pooled, whole in zip(groups[POOLED], evaluate(["natural"], folder_of_sources, device="cpu")):
        assert pooled.method == whole.method and pooled.images == whole.images
        assert pooled.auc == whole.auc and pooled.auc_rebalanced == whole.auc_rebalanced  # the same pixel counts
        assert (pooled.psnr, pooled.colorfulness, pooled.colorfulness_truth) == pytest.approx(
            (whole.psnr, whole.colorfulness, whole.colorfulness_truth)
        )
    # its means are over the images, so the subfolders weigh by their size
    sizes = [rows[0].images for group, rows in groups.items() if group != POOLED]
    truths = [rows[0].colorfulness_truth for group, rows in groups.items() if group != POOLED]
    assert groups[POOLED][0].colorfulness_truth == pytest.approx(np.average(truths, weights=sizes))
    # --limit takes the first images of each subfolder
    limited = evaluate_by_subfolder(["natural"], folder_of_sources, device="cpu", limit=1)
    assert [rows[0].images for rows in limited.values()] == [1, 1, 1, 3]
    with pytest.raises(ValueError, match="no colour images"):
        evaluate_by_subfolder(["natural"], folder_of_sources / "plates", device="cpu")
    with pytest.raises(FileNotFoundError):
        evaluate_by_subfolder(["natural"], folder_of_sources / "missing", device="cpu")


def test_a_folder_without_subfolders_is_one_group(colour_folder):
    groups = evaluate_by_subfolder(["natural"], colour_folder, device="cpu", limit=1)
    assert list(groups) == [TOP_LEVEL]


def test_format_grouped_table():
    gray, model = EvaluationRow(GRAY, 2, 88.04, 70.0, 27.5, 0.0, 40.0), EvaluationRow("natural", 2, 90.0, 75.54, 28.126, 20.04, 40.0)
    pooled = EvaluationRow(GRAY, 5, 87.0, 69.0, 27.0, 0.0, 41.0)
    lines = format_grouped_table({TOP_LEVEL: [gray, model], POOLED: [pooled]}, title="astro").splitlines()
    assert lines[0] == "**astro** (5 images; 1 group and all pooled)"
    assert lines[2] == "| subfolder | images | method | AuC | AuC rebalanced | PSNR (dB) | colourfulness | colourfulness of truth |"
    assert lines[3] == "|---|---:|---|---:|---:|---:|---:|---:|"
    assert lines[4] == f"| {TOP_LEVEL} | 2 | {GRAY} | 88.0 | 70.0 | 27.50 | 0.0 | 40.0 |"
    assert lines[5] == f"| {TOP_LEVEL} | 2 | natural | 90.0 | 75.5 | 28.13 | 20.0 | 40.0 |"
    assert lines[6] == f"| {POOLED} | 5 | {GRAY} | 87.0 | 69.0 | 27.00 | 0.0 | 41.0 |"
    assert format_grouped_table({TOP_LEVEL: [gray, model]}, title="kodak").splitlines()[0] == "**kodak** (2 images; 1 group)"


def test_evaluate_command_by_subfolder(capsys, folder_of_sources):
    code, out, err = run(
        capsys, "evaluate", "natural", "--images", folder_of_sources, "--by-subfolder", "--limit", "2", "--device", "cpu", "-q"
    )
    assert code == 0, err
    assert f"**{folder_of_sources}** (5 images; 3 groups and all pooled)" in out
    rows = [line.strip("|").split("|") for line in out.splitlines() if line.startswith("| ") and not line.startswith("| subfolder")]
    assert [(cells[0].strip(), int(cells[1]), cells[2].strip()) for cells in rows] == [
        (group, images, method)
        for group, images in [(TOP_LEVEL, 2), ("galaxies", 2), ("nebulae", 1), (POOLED, 5)]
        for method in (GRAY, "natural")
    ]
    assert all(np.isfinite([float(c) for c in cells[3:]]).all() for cells in rows)


def test_error_cap_spends_the_mean_change_on_the_largest_errors():
    errors = np.array([9.0, 5.0, 1.0, 1.0])
    assert error_cap(errors, 2.0) == pytest.approx(3.0)  # 9 and 5 cut to 3: a change of 8 over 4 errors
    assert error_cap(errors, 0.0) == np.inf and error_cap(errors, 10.0) == 0.0
