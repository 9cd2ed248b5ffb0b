"""Broken files, odd arrays and bad checkpoints: each is colorized correctly
or refused with one clear line; never a traceback, a silent wrong answer, a
modified input or a half-written output."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from napari_colorize import colorize
from napari_colorize.cli import main
from napari_colorize.io import ImageFileError, TiffStack, read_image
from napari_colorize.model import CheckpointError, create_colorizer, load_checkpoint, save_checkpoint

RNG = np.random.default_rng(11)
STACK = RNG.integers(0, 4000, (3, 40, 50)).astype(np.uint16)
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    """A tiny untrained checkpoint, for --model."""
    torch.manual_seed(5)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_checkpoint(create_colorizer(width=8), path)
    return path


def cli(tiny_file, src, dst, *extra):
    """Run ``colorize SRC -o DST`` in this process: (exit status, stderr)."""
    return cli_args(tiny_file, src, "-o", dst, *extra)


def cli_args(tiny_file, *argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["colorize", *map(str, argv), "--model", str(tiny_file), "--device", "cpu", "-q"])
    return code, err.getvalue()


def assert_refused(code, err, *fragments, output=None):
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("napari-colorize: error: "), err
    assert all(line.startswith("napari-colorize: warning: ") for line in lines[:-1]), err
    for fragment in fragments:
        assert fragment in lines[-1]
    if output is not None:
        assert not output.exists()
        assert not list(output.parent.glob(".*partial*"))


def write_tiff(path, data, **options):
    options.setdefault("photometric", "minisblack")
    tifffile.imwrite(path, data, **options)
    return path


# --------------------------------------------------------------------------
# files that are not images
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.tif", b"", "empty"),
        ("empty.png", b"", "empty"),
        ("noise.tif", bytes(range(256)) * 8, "not a TIFF, PNG or JPEG"),
        ("text.png", b"hello, I am not a picture", "not a TIFF, PNG or JPEG"),
        ("folder.tif", None, "folder"),
    ],
)
@pytest.mark.parametrize("out", ["out.tif", "out.png"])
def test_not_an_image(tmp_path, tiny_file, name, content, message, out):
    src = tmp_path / name
    src.mkdir() if content is None else src.write_bytes(content)
    code, err = cli(tiny_file, src, tmp_path / out)
    assert_refused(code, err, name, message, output=tmp_path / out)


def test_renamed_files_are_read_by_content(tmp_path, tiny_file):
    frame = STACK[0].astype(np.uint8)
    png_named_tif = tmp_path / "picture.tif"
    Image.fromarray(frame).save(png_named_tif, format="PNG")
    with pytest.warns(UserWarning, match="PNG file despite its .tif name"):
        np.testing.assert_array_equal(read_image(png_named_tif), frame)
    # a TIFF stack named .png keeps all its frames (PIL would read only one)
    tif_named_png = write_tiff(tmp_path / "stack.png", STACK)
    with pytest.warns(UserWarning, match="TIFF file despite"):
        np.testing.assert_array_equal(read_image(tif_named_png), STACK)
    code, err = cli(tiny_file, tif_named_png, tmp_path / "out.tif")
    assert code == 0, err
    assert tifffile.imread(tmp_path / "out.tif").shape == (3, 40, 50, 3)


# --------------------------------------------------------------------------
# truncated and corrupted TIFFs
# --------------------------------------------------------------------------
VARIANTS = {
    "plain": (STACK[0], {}),
    "zlib": (STACK[0], {"compression": "zlib"}),
    "tiled": (STACK[0], {"tile": (16, 16)}),
    "stack": (STACK, {}),
    "stack-zlib": (STACK, {"compression": "zlib"}),
    "stack-strips": (STACK, {"compression": "zlib", "rowsperstrip": 8}),
    "stack-tiled": (STACK, {"tile": (16, 16)}),
    "imagej": (STACK, {"imagej": True}),
    "bigtiff-big-endian": (STACK.astype(">u2"), {"bigtiff": True, "byteorder": ">"}),
}


def _read_lazily(path):
    with TiffStack(path) as lazy:
        frames = [lazy[index] for index in np.ndindex(*lazy.shape[:-2])]
        return np.stack(frames).reshape(lazy.shape)


@pytest.mark.parametrize("variant", VARIANTS)
def test_truncated_tiff_is_refused_or_exact(tmp_path, variant):
    """Cut anywhere, a TIFF reads as exactly its data or raises ImageFileError:
    never fewer frames, never zeros for the missing part."""
    data, options = VARIANTS[variant]
    raw = write_tiff(tmp_path / "full.tif", data, **options).read_bytes()
    path = tmp_path / "cut.tif"
    refused = 0
    for length in sorted({*range(0, len(raw), max(1, len(raw) // 60)), len(raw) - 1}):
        path.write_bytes(raw[:length])
        for reader in (read_image, _read_lazily):
            try:
                result = reader(path)
            except ImageFileError as exc:
                assert "cut.tif" in str(exc) and "\n" not in str(exc)
                refused += 1
            else:
                np.testing.assert_array_equal(result, data, err_msg=f"{variant} cut at {length} of {len(raw)} ({reader.__name__})")
    assert refused > 0


@pytest.mark.parametrize("variant", ["stack-zlib", "stack-tiled", "tiled", "imagej"])
@pytest.mark.parametrize("out", ["out.tif", "out.png"])
def test_truncated_stack_is_not_colorized(tmp_path, tiny_file, variant, out):
    """These cuts used to give exit 0 and 1 frame, or a frame with black tiles."""
    data, options = VARIANTS[variant]
    src = write_tiff(tmp_path / "in.tif", data, **options)
    raw = src.read_bytes()
    src.write_bytes(raw[: len(raw) // 2])
    before = src.read_bytes()
    code, err = cli(tiny_file, src, tmp_path / out)
    assert_refused(code, err, "in.tif", output=tmp_path / out)
    assert "TIFF" in err
    assert src.read_bytes() == before


def test_missing_strips_are_refused(tmp_path, tiny_file):
    """Strip byte counts of 0 (an interrupted writer): not read as zeros."""
    src = write_tiff(tmp_path / "in.tif", STACK[0], rowsperstrip=8)
    with tifffile.TiffFile(src, mode="r+") as tif:
        counts = list(tif.pages[0].tags["StripByteCounts"].value)
        counts[-1] = 0
        tif.pages[0].tags["StripByteCounts"].overwrite(counts)
    with pytest.raises(ImageFileError, match="missing pixel data"):
        read_image(src)
    code, err = cli(tiny_file, src, tmp_path / "out.tif")
    assert_refused(code, err, "in.tif", "missing pixel data", output=tmp_path / "out.tif")


def test_zero_size_tiff(tmp_path, tiny_file):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = write_tiff(tmp_path / "empty.tif", np.zeros((0, 50), np.uint16))
    for out in ("out.tif", "out.png"):
        code, err = cli(tiny_file, src, tmp_path / out)
        assert_refused(code, err, "empty.tif", "empty", output=tmp_path / out)


def test_tifffile_logging_settings_do_not_hide_corruption(tmp_path):
    import logging

    data, options = VARIANTS["stack-zlib"]
    src = write_tiff(tmp_path / "in.tif", data, **options)
    src.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    log = logging.getLogger("tifffile")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        with pytest.raises(ImageFileError, match="corrupted or truncated"):
            read_image(src)
    finally:
        log.setLevel(level)
    assert log.level == level and log.propagate


# --------------------------------------------------------------------------
# unusual but valid TIFFs
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        STACK[0].astype(np.float16),
        (STACK[0].astype(np.int32) - 2000).astype(np.int8),
        STACK[0].astype(np.int32) * 1000,
        STACK[0].astype(np.int64) * 10**12,
        STACK[0] / 7.0,
        STACK[0] > 2000,
        STACK[0].astype(">f8"),
    ],
    ids=["float16", "int8", "int32", "int64", "float64", "bool", "big-endian-f8"],
)
def test_tiff_dtypes(tmp_path, tiny_file, data):
    options = {"byteorder": ">"} if data.dtype.byteorder == ">" else {}
    src = write_tiff(tmp_path / "in.tif", data, **options)
    expected = colorize(data, model=load_checkpoint(tiny_file), device="cpu")
    for out in ("out.tif", "out.png"):
        code, err = cli(tiny_file, src, tmp_path / out)
        assert code == 0, err
        result = tifffile.imread(tmp_path / out) if out.endswith(".tif") else np.asarray(Image.open(tmp_path / out))
        np.testing.assert_array_equal(result, expected)


def test_complex_tiff_is_refused(tmp_path, tiny_file):
    src = write_tiff(tmp_path / "in.tif", STACK[0].astype(np.complex64))
    for out in ("out.tif", "out.png"):
        code, err = cli(tiny_file, src, tmp_path / out)
        assert_refused(code, err, "complex", output=tmp_path / out)


def test_samples_that_are_not_colour_become_frames(tmp_path, tiny_file):
    """2 samples per pixel are 2 channels, not 40 frames of 50 x 2 pixels."""
    data = np.stack([STACK[0], STACK[1]], axis=-1)  # (40, 50, 2)
    src = write_tiff(tmp_path / "two.tif", data, planarconfig="contig")
    np.testing.assert_array_equal(read_image(src), np.moveaxis(data, -1, 0))
    code, err = cli(tiny_file, src, tmp_path / "out.tif")
    assert code == 0, err
    expected = colorize(np.moveaxis(data, -1, 0), model=load_checkpoint(tiny_file), device="cpu")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), expected)


def test_gray_stack_with_three_columns_is_not_rgb(tmp_path, tiny_file):
    """6 grayscale pages of 40 x 3: the streamed run used to crash
    (RuntimeError from the TIFF writer), the other took them as RGB."""
    data = STACK[:, :6, :3].transpose(1, 2, 0).reshape(6, 3, 3).repeat(14, axis=1)[:, :40]
    src = write_tiff(tmp_path / "narrow.tif", data)
    code, err = cli(tiny_file, src, tmp_path / "out.tif")
    assert code == 0, err
    expected = colorize(data, model=load_checkpoint(tiny_file), device="cpu", rgb=False)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), expected)


def test_min_is_white_and_palette_tiffs(tmp_path):
    frame = STACK[0].astype(np.uint8)
    white = write_tiff(tmp_path / "white.tif", frame, photometric="miniswhite")
    np.testing.assert_array_equal(read_image(white), 255 - frame)  # larger is brighter
    with TiffStack(white) as lazy:
        np.testing.assert_array_equal(lazy[()], 255 - frame)
    colormap = np.stack([np.arange(256) * 256, np.zeros(256), 65535 - np.arange(256) * 256]).astype(np.uint16)
    palette = write_tiff(tmp_path / "palette.tif", frame, photometric="palette", colormap=colormap)
    with pytest.warns(UserWarning, match="palette"):
        values = read_image(palette)
    lut = colormap.T.astype(np.float32) @ np.array([0.2125, 0.7154, 0.0721], np.float32)
    np.testing.assert_allclose(values, lut[frame], rtol=1e-6)


def test_multi_series_tiff_warns(tmp_path, tiny_file):
    src = tmp_path / "two_series.tif"
    with tifffile.TiffWriter(src) as writer:
        writer.write(STACK[0], photometric="minisblack")
        writer.write(STACK[:, :20, :30], photometric="minisblack")
    with pytest.warns(UserWarning, match="2 images"):
        np.testing.assert_array_equal(read_image(src), STACK[0])


# --------------------------------------------------------------------------
# outputs
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
# hypothesis: cut or damaged TIFFs through the command line
# --------------------------------------------------------------------------
def _check_run(tiny_file, raw: bytes, shape) -> None:
    """Colorize ``raw`` (a damaged TIFF of ``shape``): either every frame
    comes back, whole, or the file is refused in one line and nothing is left."""
    with tempfile.TemporaryDirectory() as folder:
        src, dst = Path(folder) / "in.tif", Path(folder) / "out.tif"
        src.write_bytes(raw)
        code, err = cli(tiny_file, src, dst)
        assert src.read_bytes() == raw
        if code == 0:
            with tifffile.TiffFile(dst) as tif:
                assert tif.series[0].shape == (*shape, 3), "not every frame came back"
                assert tif.series[0].asarray().shape == (*shape, 3)
        else:
            assert_refused(code, err, "in.tif", output=dst)
        assert sorted(p.name for p in Path(folder).iterdir()) == (["in.tif", "out.tif"] if code == 0 else ["in.tif"])


DAMAGE_SETTINGS = settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


FUZZED = STACK[:2]  # the stack the fuzzers cut and damage


@pytest.fixture(scope="module")
def small_tiffs():
    out = {}
    for name, options in {"plain": {}, "zlib": {"compression": "zlib"}}.items():
        with tempfile.TemporaryDirectory() as folder:
            out[name] = write_tiff(Path(folder) / "x.tif", FUZZED, **options).read_bytes()
    return out


@DAMAGE_SETTINGS
@given(kind=st.sampled_from(["plain", "zlib"]), fraction=st.floats(0, 1, exclude_max=True))
def test_cut_tiff_through_the_cli(tiny_file, small_tiffs, kind, fraction):
    raw = small_tiffs[kind]
    _check_run(tiny_file, raw[: int(fraction * len(raw))], FUZZED.shape)


@DAMAGE_SETTINGS
@given(kind=st.sampled_from(["plain", "zlib"]), data=st.data())
def test_damaged_tiff_through_the_cli(tiny_file, small_tiffs, kind, data):
    raw = bytearray(small_tiffs[kind])
    # mostly the header and IFDs, where a flipped byte changes meaning
    positions = data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=4))
    for position in positions:
        raw[position] ^= data.draw(st.integers(1, 255))
    _check_run(tiny_file, bytes(raw), FUZZED.shape)


# --------------------------------------------------------------------------
# arrays given to colorize()
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("image", "error", "match"),
    [
        (np.array(3.0), ValueError, "2D"),
        (np.arange(5.0), ValueError, "2D"),
        (np.zeros((4, 0)), ValueError, "empty"),
        (np.ones((4, 5), dtype=object), TypeError, "dtype object"),
        (np.full((4, 5), "a"), TypeError, "dtype <U1"),
        (np.zeros((4, 5), dtype=[("a", "f4"), ("b", "i2")]), TypeError, "unsupported image dtype"),
        (np.zeros((4, 5), dtype="datetime64[s]"), TypeError, "datetime64"),
        (np.zeros((4, 5), dtype="timedelta64[s]"), TypeError, "timedelta64"),
        (np.zeros((4, 5), dtype=np.complex128), TypeError, "complex"),
        (torch.zeros(4, 5, dtype=torch.complex64), TypeError, "complex"),
        (None, TypeError, "NoneType"),
        ({"a": 1}, TypeError, "dict"),
    ],
    ids=["0d", "1d", "zero-size", "object", "str", "structured", "datetime", "timedelta", "complex", "torch-complex", "None", "dict"],
)
def test_unsupported_arrays_are_refused(tiny_model, image, error, match):
    with pytest.raises(error, match=match):
        colorize(image, model=tiny_model, device="cpu")


def test_equivalent_arrays_give_the_same_result(tiny_model):
    frame = RNG.random((40, 50))
    expected = colorize(frame, model=tiny_model, device="cpu")

    def check(image, reference=frame):
        want = expected if reference is frame else colorize(reference, model=tiny_model, device="cpu")
        np.testing.assert_array_equal(colorize(image, model=tiny_model, device="cpu"), want)

    check(frame.tolist())
    check(frame.astype(">f8"))
    check(np.asfortranarray(frame))
    check(frame[::-1, ::-1], np.ascontiguousarray(frame[::-1, ::-1]))
    check(frame.astype(np.float16), frame.astype(np.float16).astype(np.float32))
    check(torch.from_numpy(frame))
    check(torch.from_numpy(frame.astype(np.float32)).requires_grad_(), frame.astype(np.float32))
    as_bf16 = torch.from_numpy(frame.astype(np.float32)).bfloat16()
    check(as_bf16, as_bf16.float().numpy())
    counts = (frame * 4000).astype(">u2")
    check(counts, counts.astype(np.uint16))


def test_integer_extremes(tiny_model):
    for dtype in (np.int64, np.uint64):
        info = np.iinfo(dtype)
        frame = np.where(np.arange(40 * 50).reshape(40, 50) % 2, info.max, info.min).astype(dtype)
        out = colorize(frame, model=tiny_model, device="cpu")
        assert set(np.unique(out)) <= {0, 255}  # exactly black and white
        assert (out[0, 1] == 255).all() and (out[0, 0] == 0).all()


def test_masked_pixels_are_treated_as_nan(tiny_model):
    frame = RNG.random((40, 50)).astype(np.float32)
    mask = np.zeros(frame.shape, bool)
    mask[5:10, 5:20] = True
    masked = np.ma.masked_array(frame.copy(), mask=mask)
    masked.data[mask] = 1e9  # what lies under the mask must not matter
    with_nan = np.where(mask, np.nan, frame).astype(np.float32)
    out = colorize(masked, model=tiny_model, device="cpu")
    np.testing.assert_array_equal(out, colorize(with_nan, model=tiny_model, device="cpu"))
    assert (out[mask] == 0).all()
    assert masked.data[5, 5] == 1e9 and masked.mask[5, 5]  # input untouched
    unmasked = np.ma.masked_array(frame)  # nothing masked: just the data
    np.testing.assert_array_equal(colorize(unmasked, model=tiny_model, device="cpu"), colorize(frame, model=tiny_model, device="cpu"))


def test_nan_frames(tiny_model):
    assert (colorize(np.full((30, 40), np.nan), model=tiny_model, device="cpu") == 0).all()
    single = np.full((30, 40), np.nan)
    single[3, 4] = 7.0
    out = colorize(single, model=tiny_model, device="cpu")
    assert out.shape == (30, 40, 3)
    assert (np.delete(out.reshape(-1, 3), 3 * 40 + 4, axis=0) == 0).all()


# --------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------
class _Marker:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("kind", ["pickle", "torch-save"])
def test_pickled_checkpoints_are_never_unpickled(tmp_path, tiny_file, kind):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.safetensors"
    if kind == "pickle":
        path.write_bytes(pickle.dumps(_Marker(marker)))
    else:
        torch.save({"weights": torch.zeros(3), "payload": _Marker(marker)}, path)
        marker.unlink(missing_ok=True)  # torch.save does not run it; be sure
    with pytest.raises(CheckpointError, match="not loaded, since unpickling can run code"):
        load_checkpoint(path)
    src = write_tiff(tmp_path / "in.tif", STACK[0])
    code, err = cli(path, src, tmp_path / "out.tif")
    assert_refused(code, err, "evil.safetensors", "pickle", output=tmp_path / "out.tif")
    assert not marker.exists()


def test_checkpoint_folder_empty_and_non_finite(tmp_path):
    folder = tmp_path / "folder.safetensors"
    folder.mkdir()
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(folder)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(empty)
    model = create_colorizer(width=8)
    with torch.no_grad():
        model.network.head[2].bias[0] = float("nan")
    path = tmp_path / "nan.safetensors"
    save_checkpoint(model, path)
    with pytest.raises(CheckpointError, match="non-finite values in network.head.2.bias"):
        load_checkpoint(path)


def test_checkpoint_of_another_width_works(tmp_path):
    path = tmp_path / "wide.safetensors"
    save_checkpoint(create_colorizer(width=4), path)
    assert colorize(STACK[0], model=load_checkpoint(path), device="cpu").shape == (40, 50, 3)
