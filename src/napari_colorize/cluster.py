"""Lazy and distributed colorization: dask arrays in, frame-by-frame work.

Each dask block is one whole frame, so normalisation and stitching see the
frame as a single-process run does. Workers load the model by path, once per
process (load_checkpoint caches it), and run torch on as many intra-op
threads as the process that built the graph: oneDNN and MKL kernels sum in
a thread-count-dependent order, and dask.distributed workers start with one
thread (OMP_NUM_THREADS=1), which moved about 1 pixel in 10^5-10^6 by one
level. With the thread count matched, results are bit-identical to the
single-process run on the same hardware.
"""

from __future__ import annotations

import numpy as np

from .arrays import is_dask_array
from .checkpoint_files import resolve_model_path
from .engine import fill_from_strips, strips_of_frames, whole_stack_context
from .model import Colorizer
from .normalization import range_for, stack_range
from .options import ColorizeOptions
from .restoration import stack_noise


def as_frame_blocks(image):
    """A dask array chunked one whole frame per block."""
    import dask.array as da

    if not is_dask_array(image):
        image = da.from_array(image, chunks=(1,) * (len(image.shape) - 2) + tuple(image.shape[-2:]))
    return image.rechunk((1,) * (image.ndim - 2) + (-1, -1))


def colorize_block(block: np.ndarray, *, options: ColorizeOptions, torch_threads: int, stack_context_of=None) -> np.ndarray:
    """Colorize one block (whole frames) in this process (with the whole stack's context, when given)."""
    import torch

    if torch.get_num_threads() != torch_threads:
        # Process-wide and never restored: every task of a graph asks for the
        # same count, so concurrent tasks cannot see it change under them.
        torch.set_num_threads(torch_threads)
    block = np.asarray(block)  # frames of an input checked when the graph was built
    out = np.empty((*block.shape, 3), dtype=np.uint8)
    return fill_from_strips(out, strips_of_frames(block, options, stack_context_of=stack_context_of))


def colorize_lazy(image, options: ColorizeOptions, *, scheduler=None):
    """Colorize a checked grayscale array (dask or any) frame by frame.

    Returns a lazy dask array, or, with ``scheduler`` (an address or a
    ``distributed.Client``), the NumPy result computed on that cluster.
    """
    model = options.model
    if not isinstance(model, Colorizer):
        # Blocks carry a path, not weights: each process loads it once.
        options = options.replace(model=str(resolve_model_path(model).resolve()))
    elif scheduler is not None:
        if not model.path:
            raise ValueError("an unsaved model cannot be sent to a cluster: save it and pass its path")
        options = options.replace(model=model.path)
    if options.normalize == "stack":
        whole = stack_range(image, percentiles=options.percentiles)
        options = options.replace(normalize=(whole.low, whole.high))
    if "denoise" in options.restore and options.noise_sigma == "stack":  # blocks are single frames: give them the stack's level
        options = options.replace(noise_sigma=stack_noise(image, range_for(image, options.normalize, options.percentiles)))
    import torch

    shared = whole_stack_context(image, options)  # blocks are single frames: give them the stack's context
    blocks = as_frame_blocks(image)
    result = blocks.map_blocks(
        colorize_block,
        dtype=np.uint8,
        new_axis=blocks.ndim,
        chunks=blocks.chunks + ((3,),),
        options=options,
        torch_threads=torch.get_num_threads(),
        stack_context_of=shared,
    )
    if scheduler is None:
        return result
    from distributed import Client

    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        return client.compute(result).result()
    finally:
        if client is not scheduler:
            client.close()
