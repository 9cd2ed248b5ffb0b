"""``napari-colorize colorize``: image files in, colorized files out.

Every (input, output) pair is checked before any work is done; TIFF to TIFF
streams frame by frame, strip by strip; hints from a CSV file and the
uncertainty file are handled here. The arguments are built in
:mod:`napari_colorize.cli`.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from pathlib import Path

from .ome_zarr_out import is_zarr_path
from .options import ColorizeOptions


class CommandError(Exception):
    """A user error to report in one line, without a traceback."""


def progress_bar(quiet: bool, desc: str):
    from tqdm.auto import tqdm

    bar = tqdm(total=0, desc=desc, unit="window", disable=quiet, mininterval=0.5)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return bar, update


def run_colorize(args, options: ColorizeOptions) -> None:
    """``napari-colorize colorize``: ``options`` are those of the arguments,
    checked before this is called (and so before any path is touched)."""
    from .engine import prepare_model
    from .io import output_path_for
    from .palette import palette_input

    stacked = bool(getattr(args, "stack", False))
    many = len(args.inputs) > 1 and not stacked
    if is_zarr_path(args.output) and (many or args.scheduler):
        why = "several inputs go to a folder (or give --stack)" if many else "--scheduler writes TIFF, PNG or JPEG"
        raise CommandError(f"an OME-Zarr output holds one result: {why}")
    if many:
        _check_folder_for_many(args.output, "an output")
    if stacked:
        _check_stack_paths(args)
    jobs = [(src, output_path_for(src, args.output, many=many)) for src in args.inputs[: 1 if stacked else None]]
    hints = _read_hints(args, many=many)
    reference = _read_reference(args, [dst for _, dst in jobs])
    uncertainty_jobs = _uncertainty_jobs(args, many=many)[: 1 if stacked else None]
    new_folders = [folder for folder in (args.output, args.uncertainty) if many and folder is not None]
    _check_jobs(jobs + uncertainty_jobs, overwrite=args.overwrite, new_folders=new_folders)
    # Loaded once for all files; its name and digest go into each output.
    colorizer = prepare_model(options)
    if uncertainty_jobs:
        colorizer.check_uncertainty()  # a regression model has none: refused before any folder is made
    if hints is not None:
        colorizer.check_inputs(["hints"])
    if reference is not None:
        palette_input(colorizer, reference[0])  # a model that takes no palette is refused before any folder is made
    for folder in new_folders:
        folder.mkdir(parents=True, exist_ok=True)
    device = colorizer.device
    options = options.replace(model=colorizer, device=str(device))
    uncertainty_paths = dict(uncertainty_jobs)
    for src, dst in jobs:
        uncertainty_path = uncertainty_paths.get(src)
        sources = args.inputs if stacked else None
        shape = _colorize_file(src, dst, args, options, uncertainty_path=uncertainty_path, hints=hints, reference=reference, stack_of=sources)
        if not args.quiet:
            also = f" and {uncertainty_path}" if uncertainty_path else ""
            what = f"{len(sources)} inputs as one stack" if sources else str(src)
            print(f"{what} -> {dst}{also} ({'x'.join(map(str, shape))}, model {options.model.name}, {device})")


def _check_stack_paths(args) -> None:
    """``--stack``: one TIFF out, and no input that is the output (each one read before any work)."""
    from .io import TIFF_SUFFIXES, check_suffix, sniff_format

    if args.output.suffix.lower() not in TIFF_SUFFIXES and not is_zarr_path(args.output):
        raise CommandError(f"--stack writes one stack: name the output .tif, .tiff or .ome.zarr, got {args.output}")
    for src in args.inputs:
        check_suffix(src, reading=True)
        sniff_format(src)
        if args.output.exists() and os.path.samefile(src, args.output):
            raise CommandError(f"output {args.output} is the input {src}: choose another name")


def _read_stack(paths: list[Path]):
    """Same-shaped 2-D images as one (frames, Y, X) stack, in the order given."""
    import numpy as np

    from .io import read_image

    frames = []
    for path in paths:
        frame = read_image(path)
        if frame.ndim != 2:
            raise CommandError(f"{path.name} has {frame.ndim} axes {frame.shape}: --stack takes 2-D images (colorize a stack on its own)")
        if frames and frame.shape != frames[0].shape:
            raise CommandError(f"{path.name} is {frame.shape[0]} x {frame.shape[1]} but {paths[0].name} is {frames[0].shape[0]} x {frames[0].shape[1]}: --stack needs images of one size")
        frames.append(frame)
    return np.stack(frames)


def _check_folder_for_many(folder: Path, what: str) -> None:
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"{folder} is a file, but several inputs need {what} folder")


def _read_hints(args, *, many: bool):
    """The rows of ``--hints`` and their names ("FILE line N"), or None without it."""
    from .hints import read_hints_csv

    if args.hints is None:
        return None
    if many:
        raise CommandError("--hints are placed in one image's pixels: give one INPUT with them")
    if args.scheduler:
        raise CommandError("--hints are not used on a --scheduler yet: run without one")
    if not args.hints.is_file():
        raise CommandError(f"hints file not found: {args.hints}")
    return read_hints_csv(args.hints)


def _read_reference(args, outputs: list[Path]):
    """The colour image of ``--reference`` (uint8 RGB) and its file name, or None without it."""
    from .io import read_rgb

    path = args.reference
    if path is None:
        return None
    if args.scheduler:
        raise CommandError("--reference is not used on a --scheduler yet: run without one")
    if not path.is_file():
        raise CommandError(f"reference image not found: {path}")
    if any(out.exists() and os.path.samefile(path, out) for out in outputs):
        raise CommandError(f"output {path} is the --reference image: choose another name")
    rgb = read_rgb(path)
    if rgb is None:
        raise CommandError(f"--reference {path.name} is not a colour image (gray or unreadable): a palette comes from a colour image")
    return rgb, path.name


def _checked_hints(hints, shape: tuple[int, ...], src: Path, hints_file: Path):
    """The hint rows checked against the input's shape; None without hints."""
    from .hints import check_hints

    if hints is None:
        return None
    rows, names = hints
    frames = math.prod(shape[:-2])
    if rows.shape[1] == 5 and frames > 1:
        raise CommandError(f"{hints_file.name} has no frame column, but {src.name} has {frames} frames: add one (each hint's frame, from 0)")
    return check_hints(rows, shape, row_names=names)


def _uncertainty_jobs(args, *, many: bool) -> list[tuple[Path, Path]]:
    """(input, uncertainty file) pairs asked for by ``--uncertainty``: TIFF
    files, named like the outputs (``INPUT_uncertainty.tif`` in a folder for
    several inputs); none without it."""
    from .io import TIFF_SUFFIXES, output_path_for

    if args.uncertainty is None:
        return []
    if args.scheduler:
        raise CommandError("--uncertainty is not computed on a --scheduler yet: run without one")
    if many:
        _check_folder_for_many(args.uncertainty, "an uncertainty")
    jobs = [(src, output_path_for(src, args.uncertainty, many=many, shows="uncertainty")) for src in args.inputs]
    for _src, path in jobs:
        if path.suffix.lower() not in TIFF_SUFFIXES:
            raise CommandError(f"--uncertainty writes a float32 TIFF: name {path} .tif or .tiff")
    return jobs


def _check_jobs(jobs: list[tuple[Path, Path]], *, overwrite: bool, new_folders: list[Path] = ()) -> None:
    """Check every (input, output) path pair before any work is done (and
    before ``new_folders``, the output folders of several inputs, are made)."""
    from .io import check_suffix, sniff_format

    targets: dict[Path, Path] = {}
    for src, dst in jobs:
        check_suffix(src, reading=True)
        if not is_zarr_path(dst):
            check_suffix(dst)
        sniff_format(src)  # exists, is a file, readable, an image format
        resolved = dst.resolve()
        if resolved == src.resolve() or (dst.exists() and os.path.samefile(src, dst)):
            raise CommandError(f"output {dst} is the input: choose another name")
        if resolved in targets:
            first = targets[resolved]
            if first == src:
                raise CommandError(f"the output and the uncertainty of {src} would both be written to {dst}")
            raise CommandError(f"inputs {first} and {src} would both be written to {dst}")
        targets[resolved] = src
        if dst.is_dir() and not is_zarr_path(dst):
            raise CommandError(f"output {dst} is a folder")
        if dst.exists() and not overwrite:
            raise CommandError(f"{dst} exists; pass --overwrite to replace it")
        folder = dst.parent
        if folder in new_folders:
            while not folder.exists():
                folder = folder.parent  # to be made: its nearest existing parent must take it
        if not folder.is_dir():
            raise CommandError(f"output folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise CommandError(f"output folder {folder} is not writable")


def _colorize_file(
    src: Path,
    dst: Path,
    args,
    options: ColorizeOptions,
    *,
    uncertainty_path: Path | None = None,
    hints=None,
    reference=None,
    stack_of: list[Path] | None = None,
) -> tuple[int, ...]:
    """Colorize one file, or the 2-D files ``stack_of`` as one stack (and
    write its uncertainty to ``uncertainty_path``), with ``hints`` (rows and
    their names, from ``--hints``) and ``reference`` (an RGB image and its
    file name, from ``--reference``) if given; TIFF to TIFF streams frame
    by frame, strip by strip."""
    import threading
    from contextlib import nullcontext

    from .engine import colorize_strips
    from .fits import read_fits_header
    from .io import TIFF_SUFFIXES, TIFF_TILE, TiffStack, read_image, sniff_format, write_rgb, write_rgb_tiff_strips
    from .ome_zarr_out import write_rgb_ome_zarr_strips
    from .physical import read_physical
    from .pipeline import colorize
    from .prefetch import prefetched
    from .provenance import METADATA_KEY, provenance, uncertainty_details
    from .uncertainty_tiff import UncertaintyTiff, write_uncertainty

    # Files are read as their contents say; colour is already reduced to
    # luminance by the readers, so a last axis of 3 is never taken as RGB.
    options = options.replace(rgb=False)
    with_uncertainty = uncertainty_path is not None
    palette_source = None if reference is None else reference[0]
    tiff_in = sniff_format(src) == "tiff" and not stack_of
    to_zarr = is_zarr_path(dst)
    # TIFF to TIFF, and anything to OME-Zarr, stream strip by strip (from a TIFF, page by page too).
    streaming = not args.scheduler and (to_zarr or (tiff_in and dst.suffix.lower() in TIFF_SUFFIXES))
    name = f"the stack of {len(stack_of)} inputs" if stack_of else src.name
    source = {"source_files": [path.name for path in stack_of]} if stack_of else {"source_file": src.name}
    # The input's pixel size and axes go to a TIFF or OME-Zarr output, in the input's convention.
    physical = read_physical(src) if tiff_in and (to_zarr or dst.suffix.lower() in TIFF_SUFFIXES) else None
    source.update({"physical_scale": physical.record()} if physical is not None else {})
    source.update({"fits_header": read_fits_header(src)} if not stack_of and sniff_format(src) == "fits" else {})  # its WCS still holds

    def records(shape: tuple[int, ...]):
        """The guidance keywords (checked hint rows, reference), and the
        provenance of the output and of its uncertainty."""
        rows = _checked_hints(hints, shape, Path(name), args.hints)
        used = {} if rows is None else {"hints_file": args.hints.name, "hints": rows.tolist()}
        used.update({} if reference is None else {"reference_file": reference[1]})
        record = provenance(options, options.model, device=options.device, frame_shape=shape, **source, **used)
        guidance = {"hints": rows, "reference": palette_source}
        return guidance, {METADATA_KEY: record}, {METADATA_KEY: {**record, **uncertainty_details(options.model)}}

    if streaming:
        opened = TiffStack(src) if tiff_in else nullcontext(_read_stack(stack_of) if stack_of else read_image(src))
        with opened as image:
            guidance, meta, uncertainty_meta = records(tuple(image.shape))
            if getattr(image, "is_colour", False):
                warnings.warn(f"{src.name} is a colour image: colorizing its luminance", stacklevel=1)
            bar, update = progress_bar(args.quiet, name)
            sink = None
            if with_uncertainty:
                sink = UncertaintyTiff(uncertainty_path, image.shape, overwrite=args.overwrite, metadata=uncertainty_meta, physical=physical)
            with bar, sink or nullcontext():
                # The next strips are coloured in a thread (on workers, torch on one thread
                # in each: see compose_threads) while the writer compresses this one.
                # A failed write or Ctrl-C stops the colouring at its next window.
                import torch  # loaded with the model already

                stopped = threading.Event()
                strips = colorize_strips(
                    image,
                    options=options,
                    progress=update,
                    cancel=stopped.is_set,
                    strip_rows=TIFF_TILE,
                    uncertainty=with_uncertainty,
                    compose_threads=torch.get_num_threads(),
                    **guidance,
                )
                strips = prefetched(strips, stop=stopped)
                rgb_strips = sink.keep(strips) if sink else strips  # the uncertainty rows go to their file on the way
                write = functools.partial(write_rgb_ome_zarr_strips, name=Path(name).stem) if to_zarr else write_rgb_tiff_strips
                write(dst, (*image.shape, 3), rgb_strips, overwrite=args.overwrite, metadata=meta, physical=physical)
            return (*image.shape, 3)
    image = _read_stack(stack_of) if stack_of else read_image(src)
    guidance, meta, uncertainty_meta = records(tuple(image.shape))
    bar, update = progress_bar(args.quiet, name)
    with bar:
        result = colorize(image, options=options, progress=update, scheduler=args.scheduler, uncertainty=with_uncertainty, **guidance)
    rgb, uncertainty = result if with_uncertainty else (result, None)
    write_rgb(dst, rgb, overwrite=args.overwrite, metadata=meta, physical=physical)
    if with_uncertainty:
        write_uncertainty(uncertainty_path, uncertainty, overwrite=args.overwrite, metadata=uncertainty_meta, physical=physical)
    return rgb.shape
