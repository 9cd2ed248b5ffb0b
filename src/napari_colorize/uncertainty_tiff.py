"""Writing the model's per-pixel uncertainty as a float32 TIFF.

The file is laid out like the RGB output (frame axes as pages, the shape in
tifffile's JSON description next to the provenance record) and filled strip
by strip through a memory map, so an uncertainty as large as the RGB output
streams to disk with bounded memory. Like the RGB writers it is written
under a temporary name and renamed when complete: an interrupted run never
leaves a file that looks finished.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .formats import TIFF_SUFFIXES, ImageFileError, check_suffix
from .physical import PhysicalScale


class UncertaintyTiff:
    """A float32 TIFF of shape (..., Y, X), filled row strip by row strip.

    Use it as a context manager: the file appears under ``path`` only when
    the ``with`` block completes; on an error the partial file is deleted.
    Uncompressed, so that it can be filled in place.

    Parameters
    ----------
    path : path
        A .tif or .tiff file.
    shape : tuple of int
        (frames..., Y, X), the grayscale input's shape.
    overwrite : bool
        Replace an existing file.
    metadata : dict, optional
        Recorded in the JSON image description (as the RGB output's provenance).

    Raises
    ------
    ImageFileError
        If ``path`` is not a TIFF.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "uncertainty.tif"
    >>> with UncertaintyTiff(path, (2, 3)) as sink:
    ...     sink.write((), 0, 2, np.full((2, 3), 0.5, np.float32))
    >>> import tifffile
    >>> tifffile.imread(path).tolist()
    [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]
    """

    def __init__(
        self, path: str | Path, shape: tuple[int, ...], *, overwrite: bool = False, metadata: dict | None = None, physical: PhysicalScale | None = None
    ):
        self.path = Path(path)
        if check_suffix(self.path) not in TIFF_SUFFIXES:
            raise ImageFileError(f"{self.path}: the uncertainty is written as a float32 TIFF: name it .tif or .tiff")
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path} exists; pass --overwrite to replace it")
        self.shape = tuple(int(n) for n in shape)
        self.metadata = dict(metadata or {})
        self.physical = physical
        self._partial = self.path.with_name(f".{self.path.name}.partial{self.path.suffix}")
        self._values = None

    def __enter__(self) -> UncertaintyTiff:
        import tifffile

        nbytes = 4 * int(np.prod(self.shape, dtype=np.int64))
        self._values = tifffile.memmap(
            self._partial,
            shape=self.shape,
            dtype=np.float32,
            photometric="minisblack",
            bigtiff=nbytes > 2**31,
            # The input's pixel size in its convention (ImageJ, OME, resolution tags), like the RGB output.
            **(self.physical.writer_options(self.shape, self.metadata, rgb=False) if self.physical else {"metadata": self.metadata}),
        )
        return self

    def write(self, index: tuple, row_start: int, row_stop: int, rows: np.ndarray) -> None:
        """Rows ``row_start:row_stop`` of frame ``index`` (a tuple over the leading axes)."""
        self._values[index][row_start:row_stop] = rows

    def keep(self, strips: Iterable[tuple]) -> Iterator[tuple]:
        """Pass on the RGB strips of uncertainty-carrying strips (see
        :func:`napari_colorize.engine.colorize_strips`), writing their
        uncertainty rows here on the way: ``(index, r0, r1, rgb, rows)`` in,
        ``(index, r0, r1, rgb)`` out, for an RGB writer to stream."""
        for index, r0, r1, rgb, rows in strips:
            self.write(index, r0, r1, rows)
            yield index, r0, r1, rgb

    def __exit__(self, exc_type, exc, traceback) -> None:
        values, self._values = self._values, None
        try:
            if values is not None:
                values.flush()
                try:
                    values._mmap.close()  # before the rename: Windows cannot rename a mapped file
                except (AttributeError, BufferError):  # no mapping, or a view still held: closed when collected
                    pass
                del values
            if exc_type is None:
                os.replace(self._partial, self.path)
        finally:
            self._partial.unlink(missing_ok=True)


def write_uncertainty(
    path: str | Path, uncertainty: np.ndarray, *, overwrite: bool = False, metadata: dict | None = None, physical: PhysicalScale | None = None
) -> Path:
    """Write a whole uncertainty array (..., Y, X) as a float32 TIFF (see :class:`UncertaintyTiff`)."""
    uncertainty = np.asarray(uncertainty, dtype=np.float32)
    with UncertaintyTiff(path, uncertainty.shape, overwrite=overwrite, metadata=metadata, physical=physical) as sink:
        for index in np.ndindex(*uncertainty.shape[:-2]):
            sink.write(index, 0, uncertainty.shape[-2], uncertainty[index])
    return Path(path)
