"""The evaluation of models on a folder of colour images, and its table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_colorize.evaluation import GRAY, EvaluationRow, evaluate, format_table, hint_scores
from napari_colorize.io import find_images


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
    assert scores[0] == (pytest.approx(model.psnr), pytest.approx(model.auc_rebalanced))
    assert scores[20][0] > scores[0][0]  # twenty true colours bring the colours closer to the truth
