"""Helpers shared by the tests: small images made in the test, a dask array
that records what a lazy reader really read, small TIFFs and command-line
runs. Imported by the tests as ``from helpers import ...``; fixtures live in
conftest.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def smooth_frame(shape=(96, 112), *, seed=0, low=200.0, high=3800.0) -> np.ndarray:
    """A float32 frame with smooth structure (blobs and a gradient) plus a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    frame = 0.3 * xx / max(1, shape[1] - 1)
    for _ in range(5):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        radius = rng.uniform(5, 25)
        frame += rng.uniform(0.3, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
    frame += rng.normal(0, 0.01, shape)
    frame = (frame - frame.min()) / (frame.max() - frame.min())
    return (low + (high - low) * frame).astype(np.float32)


def make_color_image(size=96, *, seed=0):
    """A PIL RGB image: a colour gradient with a few coloured discs and boxes."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / (size - 1)
    base = np.stack([xx, yy, 1 - 0.5 * (xx + yy)], axis=-1) * 255
    image = Image.fromarray(base.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for k in range(5):
        x0, y0 = (int(v) for v in rng.integers(0, size - size // 3, 2))
        extent = int(rng.integers(size // 6, size // 3))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if k % 2 else draw.rectangle)([x0, y0, x0 + extent, y0 + extent], fill=fill)
    return image


def make_color_folder(folder: Path, *, count=6, size=96, gray=0) -> Path:
    """Write ``count`` colour PNG/JPEG images (and ``gray`` grayscale ones) into ``folder``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        suffix = ".jpg" if i % 3 == 2 else ".png"
        make_color_image(size, seed=i).save(folder / f"colour_{i}{suffix}")
    for i in range(gray):
        ramp = np.tile(np.linspace(0, 255, size, dtype=np.float32), (size, 1))
        Image.fromarray(ramp.astype(np.uint8), "L").save(folder / f"gray_{i}.png")
    return folder


_dask_computations = {"count": 0, "counter": None}


def recording_dask(array: np.ndarray, reads: list, *, rows: int = 128, cols: int | None = None):
    """``array`` as a dask array of one frame (or one band of ``rows`` x
    ``cols``) per chunk that records (number of the dask computation, chunk
    shape) for every chunk it computes: what a lazy reader really read."""
    import dask.array as da
    from dask.callbacks import Callback

    if _dask_computations["counter"] is None:

        class CountComputations(Callback):
            def _start(self, dsk):
                _dask_computations["count"] += 1

        _dask_computations["counter"] = CountComputations()
        _dask_computations["counter"].register()  # once per session: cheap
    chunks = (1,) * (array.ndim - 2) + (min(rows, array.shape[-2]), min(cols or array.shape[-1], array.shape[-1]))

    def read(block):
        reads.append((_dask_computations["count"], block.shape))
        return block

    return da.from_array(array, chunks=chunks).map_blocks(read, dtype=array.dtype)


def pad_frame(grid, frame: np.ndarray) -> np.ndarray:
    """The reference padding of a whole frame to ``grid.padded_shape``: mirrored
    (edge-extended for 1-pixel axes). The pipeline never pads a whole frame;
    ``TileGrid.tiles`` pads each tile on its own and must agree with this."""
    frame = np.asarray(frame)
    extra = [(0, p - n) for p, n in zip(grid.padded_shape, frame.shape)]
    if all(after == 0 for _, after in extra):
        return frame
    mode = "symmetric" if min(frame.shape) > 1 else "edge"
    return np.pad(frame, extra, mode=mode)


def cut_tiles(grid, padded: np.ndarray, origins) -> np.ndarray:
    """The tiles at ``origins`` cut from a padded frame: (n, height, width)."""
    th, tw = grid.tile
    return np.stack([padded[y : y + th, x : x + tw] for y, x in origins])


# --------------------------------------------------------------------------
# small TIFFs and the command line, for the tests of reading, outputs and checkpoints
# --------------------------------------------------------------------------
#: three uint16 frames of 40 x 50: the small stack of the reading and command-line tests
STACK = np.random.default_rng(11).integers(0, 4000, (3, 40, 50)).astype(np.uint16)


def write_tiff(path, data, **options):
    import tifffile

    options.setdefault("photometric", "minisblack")
    tifffile.imwrite(path, data, **options)
    return path


def run(capsys, *argv):
    """Run ``napari-colorize ARGV`` in this process: (exit status, stdout, stderr)."""
    from napari_colorize.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err, *fragments):
    assert "Traceback" not in err
    assert err.startswith("napari-colorize: error: ")
    assert err.strip().count("\n") == 0, err
    for fragment in fragments:
        assert fragment in err


def cli(tiny_file, src, dst, *extra):
    """Run ``colorize SRC -o DST`` in this process: (exit status, stderr)."""
    return cli_args(tiny_file, src, "-o", dst, *extra)


def cli_args(tiny_file, *argv):
    import contextlib
    import io
    import warnings

    from napari_colorize.cli import main

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


def models_script(name: str):
    """One of the scripts in models/ (``models/<name>.py``), imported as a module."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "models" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_checkpoint(path, seed: int, *, architecture: str = "colornet-v2", std: float = 1.0, metadata: dict | None = None):
    """A small (width 8) checkpoint at ``path`` whose every weight is random,
    the zero-started branches too, so that every tensor differs between seeds."""
    import torch

    from napari_colorize.model import create_colorizer, save_checkpoint

    torch.manual_seed(seed)
    colorizer = create_colorizer(architecture=architecture, width=8)
    with torch.no_grad():
        for value in colorizer.network.parameters():
            value.normal_(std=std)
    save_checkpoint(colorizer, path, extra_metadata=metadata)
    return path
