"""The ``napari-colorize`` command line, end to end into tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import tifffile
from helpers import STACK, assert_one_line_error, assert_refused, cli, cli_args, make_color_folder, run, smooth_frame, write_tiff
from PIL import Image

from napari_colorize import colorize
from napari_colorize.checkpoint_files import DEFAULT_MODEL
from napari_colorize.cli import main
from napari_colorize.color import gray_to_lightness, rgb_to_lab
from napari_colorize.model import load_checkpoint

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def stack_tif(tmp_path):
    stack = np.stack([smooth_frame((60, 70), seed=s, low=100, high=50000) for s in range(3)]).astype(np.uint16)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")  # three pages
    return path, stack


# --------------------------------------------------------------------------
# colorize
# --------------------------------------------------------------------------
def test_colorize_tiff_stack(capsys, tmp_path, stack_tif):
    src, stack = stack_tif
    dst = tmp_path / "out.tif"
    code, out, err = run(capsys, "colorize", src, "-o", dst, "--device", "cpu", "--range", 0, 65535)
    assert code == 0, err
    assert "out.tif" in out and "3x60x70x3" in out
    with tifffile.TiffFile(dst) as tif:
        rgb = tif.series[0].asarray()
        description = json.loads(tif.pages[0].description)
    assert rgb.shape == (3, 60, 70, 3) and rgb.dtype == np.uint8
    assert description["napari_colorize"]["model"] == DEFAULT_MODEL
    assert description["napari_colorize"]["model_sha256"] == load_checkpoint(DEFAULT_MODEL).sha256
    assert description["napari_colorize"]["parameters"]["normalize"] == [0.0, 65535.0]
    assert description["napari_colorize"]["note"] == "colours are predicted by a model, not measured"
    # frames under the model's 128 px training crops are worked enlarged to them, and the record says so
    assert description["napari_colorize"]["parameters"]["scale"] == 1.0 and description["napari_colorize"]["working_shape"] == [128, 149]
    # the same as the library, and the lightness of the explicit range
    np.testing.assert_array_equal(rgb, colorize(stack, model=DEFAULT_MODEL, normalize=(0, 65535), device="cpu"))
    assert np.abs(rgb_to_lab(rgb)[..., 0] - gray_to_lightness(stack / 65535)).mean() < 1.5
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_colorize_png(capsys, tmp_path, gray_png, suffix):
    src, frame = gray_png
    dst = tmp_path / f"out{suffix}"
    code, out, err = run(capsys, "colorize", src, "-o", dst, "--device", "cpu", "-q")
    assert code == 0, err
    assert out == ""  # quiet
    with Image.open(dst) as im:
        assert im.mode == "RGB" and im.size == (64, 50)
        rgb = np.asarray(im)
    expected = colorize(frame, model=DEFAULT_MODEL, device="cpu")
    if suffix == ".png":
        np.testing.assert_array_equal(rgb, expected)
    else:  # JPEG is lossy
        assert np.abs(rgb.astype(int) - expected).mean() < 3


def test_several_inputs_go_to_a_folder(capsys, tmp_path, stack_tif, gray_png):
    folder = tmp_path / "results"
    code, _, err = run(capsys, "colorize", stack_tif[0], gray_png[0], "-o", folder, "--device", "cpu", "-q", "--normalize", "stack")
    assert code == 0, err
    assert sorted(p.name for p in folder.iterdir()) == ["gray_colorized.tif", "stack_colorized.tif"]
    assert tifffile.imread(folder / "gray_colorized.tif").shape == (50, 64, 3)
    # an existing file cannot take several outputs
    code, _, err = run(capsys, "colorize", stack_tif[0], gray_png[0], "-o", gray_png[0], "--device", "cpu")
    assert code == 2
    assert_one_line_error(err, "output folder")


def test_refuses_to_overwrite(capsys, tmp_path, gray_png):
    src, _ = gray_png
    dst = tmp_path / "existing.png"
    dst.write_bytes(b"precious")
    before = src.read_bytes()
    code, _, err = run(capsys, "colorize", src, "-o", dst, "--device", "cpu")
    assert code == 2
    assert_one_line_error(err, "exists", "--overwrite")
    assert dst.read_bytes() == b"precious" and src.read_bytes() == before
    code, _, err = run(capsys, "colorize", src, "-o", dst, "--device", "cpu", "--overwrite", "-q")
    assert code == 0, err
    with Image.open(dst) as im:
        assert im.size == (64, 50)


def test_refuses_to_overwrite_in_a_subprocess(tmp_path, gray_png):
    """The real command: exit status 2, one line on stderr, no traceback."""
    src, _ = gray_png
    dst = tmp_path / "existing.tif"
    dst.write_bytes(b"precious")
    result = subprocess.run(
        [sys.executable, "-m", "napari_colorize.cli", "colorize", str(src), "-o", str(dst)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "exists")
    assert dst.read_bytes() == b"precious"


@pytest.mark.parametrize("same", ["identical", "spelled-differently"])
def test_output_may_not_be_the_input(capsys, tmp_path, gray_png, same):
    src, _ = gray_png
    before = src.read_bytes()
    dst = src if same == "identical" else tmp_path / "." / "sub" / ".." / src.name
    (tmp_path / "sub").mkdir(exist_ok=True)
    for extra in ([], ["--overwrite"]):
        code, _, err = run(capsys, "colorize", src, "-o", dst, "--device", "cpu", *extra)
        assert code == 2
        assert_one_line_error(err, "is the input")
        assert src.read_bytes() == before


def test_stack_cannot_go_to_a_png(capsys, tmp_path, stack_tif):
    code, _, err = run(capsys, "colorize", stack_tif[0], "-o", tmp_path / "out.png", "--device", "cpu", "-q")
    assert code == 2
    assert_one_line_error(err, "one frame")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.tif"]


@pytest.mark.parametrize(
    "options",
    [
        ["--temperature", "0"],
        ["--temperature", "-1"],
        ["--temperature", "warm"],
        ["--scale", "0"],
        ["--batch-size", "0"],  # every declared limit is checked as the arguments are parsed
        ["--overlap", "-1"],
        ["--stack-consensus", "-1"],
        ["--device", "tpu"],
        ["--normalize", "global"],
        ["--range", "1"],
        ["--normalize", "stack", "--range", "0", "1"],
    ],
)
def test_bad_option_values_are_usage_errors(capsys, tmp_path, gray_png, options):
    with pytest.raises(SystemExit) as exit_info:
        main(["colorize", str(gray_png[0]), "-o", str(tmp_path / "out.png"), *options])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "Traceback" not in err
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--overlap", "500"], "overlap"),
        (["--range", "5", "5"], "high > low"),
        (["--percentiles", "90", "10"], "percentiles"),
        (["--model", "no-such-model"], "unknown model"),
        (["--model", "missing/model.safetensors"], "not found"),
    ],
)
def test_bad_values_found_later_exit_2(capsys, tmp_path, gray_png, options, message):
    code, _, err = run(capsys, "colorize", gray_png[0], "-o", tmp_path / "out.png", "--device", "cpu", "-q", *options)
    assert code == 2
    assert_one_line_error(err, message)
    assert not (tmp_path / "out.png").exists()


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(command in out for command in ("colorize", "train", "evaluate"))
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2


# --------------------------------------------------------------------------
# evaluate and train
# --------------------------------------------------------------------------
def test_evaluate(capsys, colour_folder):
    code, out, err = run(capsys, "evaluate", "natural", "natural-regression", "--images", colour_folder, "--device", "cpu", "-q")
    assert code == 0, err
    assert f"**{colour_folder}** (3 images)" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| method")]
    assert [row.split("|")[1].strip() for row in rows] == ["gray (no colour)", "natural", "natural-regression"]
    for row in rows:
        numbers = [float(cell) for cell in row.strip("|").split("|")[1:]]
        assert len(numbers) == 5 and all(np.isfinite(numbers))
        assert 0 <= numbers[0] <= 100 and 0 <= numbers[1] <= 100


def test_evaluate_missing_folder(capsys, tmp_path):
    code, _, err = run(capsys, "evaluate", "natural", "--images", tmp_path / "missing", "--device", "cpu", "-q")
    assert code == 2
    assert_one_line_error(err, "image folder not found")


def test_train(capsys, tmp_path):
    folder = make_color_folder(tmp_path / "images", count=3, size=64, gray=1)
    output = tmp_path / "model.safetensors"
    code, out, err = run(
        capsys,
        "train",
        folder,
        "-o",
        output,
        "--steps",
        5,
        "--batch-size",
        2,
        "--crop-size",
        64,
        "--workers",
        0,
        "--device",
        "cpu",
        "--width",
        8,
        "--rebalance-lambda",
        0.8,
        "--rare-colour-sampling",
        0.5,
        "-q",
    )
    assert code == 0, err
    assert out.startswith(f"wrote {output}: 5 steps")
    model = load_checkpoint(output)
    assert model.head == "classification" and model.metadata["width"] == 8
    info = model.metadata["training"]
    assert info["steps"] == 5 and info["data"]["images"] == 3 and info["data"]["skipped_gray_or_unreadable"] == 1
    assert info["config"]["batch_size"] == 2 and info["config"]["workers"] == 0 and info["config"]["rebalance_lambda"] == 0.8
    assert info["config"]["rare_colour_sampling"] == 0.5
    # and the new model colorizes from the command line
    src = tmp_path / "gray.png"
    Image.fromarray(np.full((40, 40), 128, np.uint8)).save(src)
    code, _, err = run(capsys, "colorize", src, "-o", tmp_path / "out.tif", "--model", output, "--device", "cpu", "-q")
    assert code == 0, err
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert json.loads(tif.pages[0].description)["napari_colorize"]["model"] == "model"


def test_train_refusals(capsys, tmp_path):
    gray = make_color_folder(tmp_path / "gray", count=0, size=48, gray=2)
    code, _, err = run(capsys, "train", gray, "-o", tmp_path / "m.safetensors", "--device", "cpu", "--workers", 0, "-q")
    assert code == 2
    assert_one_line_error(err, "grayscale")
    code, _, err = run(capsys, "train", gray, "-o", tmp_path / "m.pt", "--device", "cpu", "-q")
    assert code == 2
    assert_one_line_error(err, ".safetensors")
    code, _, err = run(capsys, "train", tmp_path / "missing", "-o", tmp_path / "m.safetensors", "--device", "cpu", "-q")
    assert code == 2
    assert_one_line_error(err, "not found")
    colour = make_color_folder(tmp_path / "colour", count=2, size=48)
    code, _, err = run(capsys, "train", colour, "-o", tmp_path / "m.safetensors", "--frames-scale", 2, 1, "--device", "cpu", "-q")
    assert code == 2
    assert_one_line_error(err, "0 < LOW <= HIGH")
    assert not (tmp_path / "m.safetensors").exists()
    code, _, err = run(capsys, "train", colour, "-o", tmp_path / "m.safetensors", "--learn-only", "hint_paths", "--device", "cpu", "-q")
    assert code == 2
    assert_one_line_error(err, "no module hint_paths")
    assert not (tmp_path / "m.safetensors").exists()
    code, _, err = run(capsys, "train", colour, "-o", tmp_path / "m.safetensors", "--frames-context-consistency", 2, "--device", "cpu", "-q")
    assert code == 2
    assert_one_line_error(err, "frames context consistency needs a --frames-share")
    assert not (tmp_path / "m.safetensors").exists()
    code, _, err = run(capsys, "train", colour, "-o", tmp_path / "m.safetensors", "--rebalance-lambda", 1.5, "--device", "cpu", "-q")
    assert code == 2
    assert_one_line_error(err, "rebalance lambda", "0 to 1")
    assert not (tmp_path / "m.safetensors").exists()
    code, _, err = run(capsys, "train", colour, "-o", tmp_path / "m.safetensors", "--head", "regression", "--rebalance-lambda", 0.8, "--device", "cpu", "-q")
    assert code == 2
    assert_one_line_error(err, "regression head has no bins")
    assert not (tmp_path / "m.safetensors").exists()
    code, _, err = run(capsys, "train", colour, "-o", tmp_path / "m.safetensors", "--rare-colour-sampling", -0.1, "--device", "cpu", "-q")
    assert code == 2
    assert_one_line_error(err, "rare-colour sampling", "0 to 1")
    assert not (tmp_path / "m.safetensors").exists()


def test_main_leaves_the_warning_machinery_as_it_found_it(capsys, tmp_path, gray_png):
    before = (warnings.showwarning, warnings.formatwarning, list(warnings.filters))
    assert main(["colorize", str(gray_png[0]), "-o", str(tmp_path / "out.png"), "--device", "cpu", "-q"]) == 0
    assert (warnings.showwarning, warnings.formatwarning, list(warnings.filters)) == before


# --------------------------------------------------------------------------
# outputs: problems found before any work, never the input, one line for the unexpected
# --------------------------------------------------------------------------
def test_output_problems_are_found_before_work(tmp_path, tiny_file):
    src = write_tiff(tmp_path / "in.tif", STACK[0])
    code, err = cli(tiny_file, src, tmp_path / "missing" / "out.tif")
    assert_refused(code, err, "missing", "does not exist")
    (tmp_path / "sub").mkdir()
    twin = write_tiff(tmp_path / "sub" / "in.tif", STACK[1])
    code, err = cli_args(tiny_file, src, twin, "-o", tmp_path / "results")  # two "in_colorized.tif"
    assert_refused(code, err, "both be written")
    assert not (tmp_path / "results").exists()  # nothing made before the refusal


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_output_linked_to_the_input(tmp_path, tiny_file, link):
    src = write_tiff(tmp_path / "in.tif", STACK[0])
    before = src.read_bytes()
    dst = tmp_path / "out.tif"
    (os.symlink if link == "symlink" else os.link)(src, dst)
    code, err = cli(tiny_file, src, dst, "--overwrite")
    assert_refused(code, err, "is the input")
    assert src.read_bytes() == before


@pytest.mark.skipif(ROOT or os.name == "nt", reason="root ignores permissions")
def test_unreadable_input_and_read_only_folder(tmp_path, tiny_file):
    src = write_tiff(tmp_path / "in.tif", STACK[0])
    src.chmod(0)
    try:
        code, err = cli(tiny_file, src, tmp_path / "out.tif")
        assert_refused(code, err, "in.tif")
    finally:
        src.chmod(0o644)
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        code, err = cli(tiny_file, src, folder / "out.tif")
        assert_refused(code, err, "not writable")
    finally:
        folder.chmod(0o755)


def test_unexpected_failure_is_one_line_exit_1(tmp_path, tiny_file, monkeypatch):
    import napari_colorize.engine

    def broken(*args, **kwargs):
        raise RuntimeError("something deep\nwent wrong")

    monkeypatch.setattr(napari_colorize.engine, "colorize_strips", broken)
    src = write_tiff(tmp_path / "in.tif", STACK[0])
    code, err = cli(tiny_file, src, tmp_path / "out.tif")
    assert code == 1
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert "RuntimeError: something deep went wrong" in err and "-v" in err
    assert not (tmp_path / "out.tif").exists()


# --------------------------------------------------------------------------
# what every output records; failures that must not cost earlier results
# --------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_png_and_jpeg_outputs_record_that_colours_are_predicted(capsys, tmp_path, gray_png, default_model, suffix):
    """The README: every output records that its colours are predicted. A
    PNG keeps the record in a text chunk 'napari_colorize', a JPEG in its
    comment and its EXIF ImageDescription: the same JSON as a TIFF's."""
    src, _ = gray_png
    dst = tmp_path / f"out{suffix}"
    for out in (dst, tmp_path / "out.tif"):
        code, _, err = run(capsys, "colorize", src, "-o", out, "--device", "cpu", "-q", "--temperature", "0.3")
        assert code == 0, err
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        in_tiff = json.loads(tif.pages[0].description)
    in_tiff.pop("shape", None)  # tifffile's own entry
    with Image.open(dst) as im:
        records = [im.text["napari_colorize"]] if suffix == ".png" else [im.info["comment"].decode("ascii"), im.getexif()[0x010E]]
        assert im.mode == "RGB" and im.size == (64, 50)
    for text in records:
        record = json.loads(text)
        assert record == in_tiff
        made = record["napari_colorize"]
        assert made["model"] == DEFAULT_MODEL and made["model_sha256"] == default_model.sha256
        assert "predicted" in made["note"] and "not measured" in made["note"]
        assert made["parameters"]["temperature"] == pytest.approx(0.3)


def corrupt_frame(path, frame: int) -> None:
    """Overwrite the compressed data of one page of a zlib TIFF with noise,
    leaving its offsets and sizes (and so every check before reading) intact."""
    with tifffile.TiffFile(path) as tif:
        offset, count = int(tif.pages[frame].dataoffsets[0]), int(tif.pages[frame].databytecounts[0])
    raw = bytearray(path.read_bytes())
    raw[offset + 2 : offset + count - 4] = np.random.default_rng(0).integers(0, 256, count - 6, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(raw))


def broken_tiff(path, kind: str, *, frames: int = 3):
    """A zlib TIFF broken so that only reading it finds out: cut in half
    ('truncated'), or with the data of its last frame garbled
    ('bad-last-frame', found when that frame is read, after the others
    have been colorized)."""
    stack = np.stack([smooth_frame((60, 70), seed=s, low=100, high=50000) for s in range(frames)]).astype(np.uint16)
    tifffile.imwrite(path, stack, photometric="minisblack", compression="zlib")
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        corrupt_frame(path, frames - 1)
    return path


@pytest.mark.parametrize("suffix", [".tif", ".png"])
@pytest.mark.parametrize("failure", ["truncated", "bad-last-frame", "broken-checkpoint"])
def test_overwrite_keeps_the_old_output_when_the_run_fails(capsys, tmp_path, gray_png, failure, suffix):
    dst = tmp_path / f"previous{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(dst, np.full((4, 5, 3), 7, np.uint8), photometric="rgb")
    else:
        Image.fromarray(np.full((4, 5, 3), 7, np.uint8)).save(dst)
    before = dst.read_bytes()
    model = []
    if failure == "broken-checkpoint":
        src, blamed = gray_png[0], tmp_path / "broken.safetensors"
        blamed.write_bytes(b"not a checkpoint at all")
        model = ["--model", blamed]
    else:
        # a PNG takes one frame: a one-frame TIFF for it (read whole), a stack streamed into a TIFF
        src = blamed = broken_tiff(tmp_path / "input.tif", failure, frames=3 if suffix == ".tif" else 1)
    code, _, err = run(capsys, "colorize", src, "-o", dst, "--device", "cpu", "-q", "--overwrite", *model)
    assert code == 2
    assert_one_line_error(err, blamed.name)
    assert dst.read_bytes() == before, "the old output was damaged by a failed run"
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize("kind", ["truncated", "bad-last-frame"])
def test_a_broken_later_input_stops_the_run_and_keeps_earlier_results_whole(capsys, tmp_path, stack_tif, gray_png, kind):
    """Paths are checked before any work, but a damaged TIFF with a sound
    header is found out only when it is read. The run then stops with one
    line naming the file; outputs of earlier inputs are complete files (or
    absent), never partial; nothing is left of the broken one."""
    broken = broken_tiff(tmp_path / "broken.tif", kind)
    folder = tmp_path / "results"
    code, _, err = run(capsys, "colorize", stack_tif[0], broken, gray_png[0], "-o", folder, "--device", "cpu", "-q")
    assert code == 2
    assert_one_line_error(err, "broken.tif")
    assert not (folder / "broken_colorized.tif").exists()
    assert not list(folder.glob(".*")), "temporary files left behind"
    for src, data in (stack_tif, gray_png):
        out = folder / f"{src.stem}_colorized.tif"
        if out.exists():
            np.testing.assert_array_equal(tifffile.imread(out), colorize(data, model=DEFAULT_MODEL, device="cpu"))
    assert {p.name for p in folder.iterdir()} <= {"stack_colorized.tif", "gray_colorized.tif"}


def test_non_ascii_and_spaces_in_paths(capsys, tmp_path):
    folder = tmp_path / "données d'essai"
    folder.mkdir()
    stack = np.stack([smooth_frame((40, 50), seed=s) for s in range(2)]).astype(np.uint16)
    tif = folder / "été 1.tif"
    tifffile.imwrite(tif, stack, photometric="minisblack")
    frame = smooth_frame((40, 50), seed=3, low=0, high=255).round().astype(np.uint8)
    png = folder / "hiver №2 (copie).png"
    Image.fromarray(frame, "L").save(png)
    expected_stack, expected_frame = (colorize(data, model=DEFAULT_MODEL, device="cpu") for data in (stack, frame))

    # one input to a named file, the stack streamed TIFF to TIFF
    out = folder / "sortie été.tif"
    code, printed, err = run(capsys, "colorize", tif, "-o", out, "--device", "cpu")
    assert code == 0, err
    assert str(tif) in printed and str(out) in printed
    np.testing.assert_array_equal(tifffile.imread(out), expected_stack)
    code, _, err = run(capsys, "colorize", png, "-o", folder / "sortie ß.png", "--device", "cpu", "-q")
    assert code == 0, err
    np.testing.assert_array_equal(np.asarray(Image.open(folder / "sortie ß.png")), expected_frame)

    # several inputs into a new folder
    results = tmp_path / "résultats 日本"
    code, _, err = run(capsys, "colorize", tif, png, "-o", results, "--device", "cpu", "-q")
    assert code == 0, err
    assert sorted(p.name for p in results.iterdir()) == ["hiver №2 (copie)_colorized.tif", "été 1_colorized.tif"]
    np.testing.assert_array_equal(tifffile.imread(results / "été 1_colorized.tif"), expected_stack)

    # an error names the file as it is spelled
    code, _, err = run(capsys, "colorize", folder / "où est-il.tif", "-o", folder / "x.tif", "--device", "cpu")
    assert code == 2
    assert_one_line_error(err, "où est-il.tif")


def test_non_ascii_paths_in_a_subprocess(tmp_path):
    """The real command, its arguments decoded by the interpreter."""
    folder = tmp_path / "données d'essai"
    folder.mkdir()
    src = folder / "été 1.png"
    Image.fromarray(smooth_frame((30, 40), seed=1, low=0, high=255).round().astype(np.uint8), "L").save(src)
    dst = folder / "sortie été.png"
    result = subprocess.run(
        [sys.executable, "-m", "napari_colorize.cli", "colorize", str(src), "-o", str(dst), "--device", "cpu", "-q"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    with Image.open(dst) as im:
        assert im.size == (40, 30) and "napari_colorize" in im.text


def test_python_dash_m_is_the_command():
    done = subprocess.run([sys.executable, "-m", "napari_colorize", "models", "natural"], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("natural")
    failed = subprocess.run([sys.executable, "-m", "napari_colorize", "models", "no-such-model"], check=False, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2 and "error" in failed.stderr  # the status survives the exit path
