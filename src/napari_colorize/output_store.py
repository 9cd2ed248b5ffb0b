"""Where the widget's results live: in memory, or, when too large for it, in
a memory-mapped ``.npy`` file in the user cache folder (so colorizing a
stack larger than memory fills a file on disk, not RAM).

Also builds the lower levels of a multiscale output by nearest sampling, as
napari itself samples a level for display.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from pathlib import Path

import numpy as np

from .user_cache import user_cache_folder

logger = logging.getLogger(__name__)

#: Outputs up to this size are held in memory whatever memory is free.
MIN_IN_MEMORY_BYTES = 256 << 20
#: Outputs above this size always go to a file.
MAX_IN_MEMORY_BYTES = 4 << 30


def cache_folder() -> Path:
    """Folder of memory-mapped outputs (in the user cache directory)."""
    return user_cache_folder("outputs")


def in_memory_limit() -> int:
    """Bytes an output may take in memory: a quarter of the memory available now,
    within [MIN_IN_MEMORY_BYTES, MAX_IN_MEMORY_BYTES]."""
    try:
        import psutil

        available = psutil.virtual_memory().available
    except ImportError:  # psutil comes with napari; this is a fallback
        available = 4 * MIN_IN_MEMORY_BYTES
    return int(min(MAX_IN_MEMORY_BYTES, max(MIN_IN_MEMORY_BYTES, available // 4)))


def allocate(shape: tuple[int, ...], *, label: str, limit: int | None = None, folder: Path | None = None, dtype=np.uint8) -> np.ndarray:
    """A zeroed array of ``shape`` and ``dtype``: in memory up to ``limit`` bytes,
    else a memory-mapped ``.npy`` file named after ``label`` in ``folder``.

    Raises
    ------
    OSError
        If the folder has too little free space for the file.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes <= (in_memory_limit() if limit is None else limit):
        return np.zeros(shape, dtype=dtype)
    folder = cache_folder() if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < nbytes * 1.05:
        raise OSError(f"the result needs {nbytes / 2**30:.1f} GiB on disk but {folder} has {free / 2**30:.1f} GiB free")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_")[:60] or "output"
    path = folder / f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}-{time.perf_counter_ns() % 10**6:06d}.npy"
    logger.info("writing a %.1f GiB result to %s", nbytes / 2**30, path)
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=tuple(shape))


def file_of(array: np.ndarray) -> Path | None:
    """The file behind a memory-mapped output, or None for one in memory."""
    name = getattr(array, "filename", None)
    return Path(name) if name else None


def discard(array: np.ndarray | None) -> None:
    """Delete the file of an unfinished memory-mapped output (nothing for one in memory)."""
    path = file_of(array) if array is not None else None
    if path is None:
        return
    if hasattr(array, "_mmap") and array._mmap is not None:
        array._mmap.close()
    path.unlink(missing_ok=True)


def nearest_levels(full: np.ndarray, level_shapes: list[tuple[int, ...]], *, label: str, rows: int = 256) -> list[np.ndarray]:
    """Levels of a multiscale output: ``full`` first, then one array per shape
    in ``level_shapes[1:]`` sampled from it at nearest pixels.

    Level pixel ``i`` of a level ``d`` times smaller is full pixel
    ``round(i * d)``, napari's own placement of levels. Shapes give the
    (frames..., Y, X) axes; axes of ``full`` after those (the RGB channels)
    are kept whole. Strips of ``rows`` rows bound the memory.
    """
    levels = [full]
    try:
        for shape in level_shapes[1:]:
            levels.append(allocate((*shape, *full.shape[len(shape) :]), label=f"{label}-level{len(levels)}", dtype=full.dtype))
            picks = [np.minimum(np.round(np.arange(n) * (m / n)).astype(np.intp), m - 1) for n, m in zip(shape, full.shape)]
            for frame in np.ndindex(*shape[:-2]):
                source = full[tuple(p[i] for p, i in zip(picks, frame))]
                for r0 in range(0, shape[-2], rows):
                    levels[-1][frame][r0 : r0 + rows] = source[picks[-2][r0 : r0 + rows]][:, picks[-1]]
    except BaseException:
        for level in levels[1:]:
            discard(level)  # no orphaned level files; ``full`` is the caller's
        raise
    return levels
