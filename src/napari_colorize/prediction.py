"""Tiles to stitched chroma: the network run over a frame's tiles (or
windows) in batches, on the device and in the arithmetic asked for, and its
ab (annealed mean) stitched with taper weights.

Part of the engine's flow (:mod:`napari_colorize.engine`): tiles -> batched
model -> ab -> stitched ab. Windows of several frames of one grid may share
a batch, each frame with its own descriptors (its context), so a stack of
small frames fills a GPU's batches.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .hints import local_reach
from .int8_runtime import companion_path, int8_unavailable, load_int8
from .model import Colorizer
from .tiling import Stitcher, TileGrid

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("napari_colorize.engine")  # where its messages have always been logged


def resolve_precision(colorizer: Colorizer, precision: str) -> str:
    """The arithmetic a precision name means for ``colorizer`` here: 'auto'
    is bf16 on CUDA, int8 on a CPU where the model has an int8 companion
    that an int8 engine here can run (:mod:`napari_colorize.int8_runtime`),
    fp32 otherwise; any other name is itself."""
    if precision != "auto":
        return precision
    if colorizer.device.type == "cuda":
        return "bf16"
    reason = int8_unavailable(colorizer)
    if reason is not None and colorizer.device.type == "cpu" and colorizer.path and companion_path(colorizer.path).is_file():
        warnings.warn(f"running in fp32: {reason}", stacklevel=2)  # a companion is there but cannot serve: say why
    return "int8" if reason is None else "fp32"


def autocast(device, precision: str):
    """The autocast context of a precision name on ``device`` (int8's
    fp32 parts, hinted tiles, run in fp32)."""
    import torch

    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision in ("fp32", "int8"):
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


class Predictor:
    """Runs tile batches, halving the batch on CUDA out-of-memory and retrying.

    With ``uncertainty`` (classification models only), each prediction
    carries a third channel after ab: the normalised entropy of the
    predicted distribution. With ``hint_reach="local"``, tiles that hints
    reach are predicted with and without them and the two blended by
    :func:`napari_colorize.hints.local_reach`, so that beyond a hint's
    reach the result is exactly the automatic one.
    """

    def __init__(
        self,
        colorizer: Colorizer,
        *,
        temperature: float,
        batch_size: int,
        precision: str,
        uncertainty: bool = False,
        hint_reach: str = "local",
    ):
        if uncertainty:
            colorizer.check_uncertainty()
        self.colorizer = colorizer
        self.temperature = temperature
        self.batch_size = batch_size
        self.uncertainty = uncertainty
        self.hint_reach = hint_reach
        self.precision = resolve_precision(colorizer, precision)
        self.autocast = autocast(colorizer.device, self.precision)
        self.int8 = load_int8(colorizer) if self.precision == "int8" else None

    @property
    def channels(self) -> int:
        """Channels of each prediction: ab, then the uncertainty if asked for."""
        return 3 if self.uncertainty else 2

    def __call__(self, tiles, per_tile: Mapping[str, "torch.Tensor"] | None = None, per_frame: Mapping[str, "torch.Tensor"] | None = None):
        """ab of ``tiles`` (N, 1, H, W), (N, :attr:`channels`, h, w); ``per_tile``
        inputs are cut with the batches, ``per_frame`` ones (a frame's
        context) go to every batch."""
        import torch

        per_tile, per_frame = per_tile or {}, per_frame or {}
        parts, start = [], 0
        while start < len(tiles):
            size = min(self.batch_size, len(tiles) - start)
            batch = slice(start, start + size)
            try:
                with self.autocast:
                    parts.append(self.predict_batch(tiles[batch], {name: values[batch] for name, values in per_tile.items()}, per_frame))
            except torch.cuda.OutOfMemoryError:
                if size == 1:
                    raise MemoryError("the GPU ran out of memory on a single tile (or window): use a smaller window, or device='cpu'") from None
                torch.cuda.empty_cache()
                self.batch_size = max(1, size // 2)
                logger.warning("GPU out of memory: retrying with batches of %d tiles", self.batch_size)
                continue
            start += size
        return torch.cat(parts)

    def predict_batch(self, tiles, per_tile: Mapping, per_frame: Mapping):
        """One batch's predictions, hints blended in by their reach."""
        import torch

        hints = per_tile.get("hints")
        if hints is None or self.hint_reach == "frame":
            return self.network_ab(tiles, {**per_tile, **per_frame})
        unhinted = {name: values for name, values in per_tile.items() if name != "hints"}
        out = self.network_ab(tiles, {**unhinted, **per_frame})
        reach = local_reach(hints, self.colorizer.output_stride)
        reached = torch.nonzero(reach.flatten(1).amax(dim=1) > 0).flatten()
        if len(reached) == 0:
            return out
        hinted = self.network_ab(tiles[reached], {**{name: values[reached] for name, values in per_tile.items()}, **per_frame})
        automatic, weight = out[reached], reach[reached].to(out.dtype)
        # where, not a lerp: beyond the reach the automatic result is kept bit for bit.
        blended = torch.where(weight > 0, automatic + weight * (hinted - automatic), automatic)
        return out.index_copy(0, reached, blended)

    def network_ab(self, tiles, extras: Mapping):
        """The model's ab (and uncertainty, when asked) for ``tiles`` given ``extras``."""
        import torch

        asked = {"uncertainty": True} if self.uncertainty else {}
        if self.int8 is not None and "hints" not in extras and "palette" not in extras:
            asked["network"] = self.int8
        predicted = self.colorizer.predict_ab(tiles, temperature=self.temperature, **asked, **extras)
        return torch.cat(predicted, dim=1) if self.uncertainty else predicted


@dataclasses.dataclass(frozen=True)
class FrameTiles:
    """Where :func:`predict_chroma` reads one frame's tiles: ``source``, the
    frame at working resolution, converted by ``to_lightness`` as its tiles
    are read, or its lightness as a tensor (``to_lightness`` None), whose
    tiles are gathered where it lies (:mod:`napari_colorize.resident`);
    ``extras``, extra inputs by name as (channels, Y, X) arrays cut into the
    same tiles; ``descriptors``, the frame's own descriptors by name (its
    context, (1, D)), given to all its tiles."""

    source: object
    to_lightness: Callable | None = None
    extras: Mapping = dataclasses.field(default_factory=dict)
    descriptors: Mapping = dataclasses.field(default_factory=dict)

    def lightness_tiles(self, grid: TileGrid, origins: list, device) -> "torch.Tensor":
        """L tiles (n, 1, h, w) at ``origins``, on ``device``."""
        import torch

        if self.to_lightness is None:
            return grid.gathered_tiles(self.source, origins).to(device)[:, None]
        return torch.from_numpy(self.to_lightness(grid.tiles(self.source, origins))).to(device)[:, None]

    def extra_tiles(self, grid: TileGrid, origins: list, device) -> dict:
        """Each extra input's tiles (n, channels, h, w) at ``origins``, on ``device``."""
        import torch

        return {name: torch.from_numpy(np.stack([grid.tiles(c, origins) for c in values], axis=1)).to(device) for name, values in self.extras.items()}


def predict_chroma(frames: Sequence[FrameTiles], grid: TileGrid, predict: Predictor, *, batch_size: int, on_batch, shared=None) -> list:
    """Stitched ab (2, Hp/stride, Wp/stride) of each of ``frames`` (working
    resolution, all of ``grid``'s shape), their tiles read batch by batch.

    A batch of ``batch_size`` tiles may hold tiles of several frames (their
    extra inputs must then have the same names): each frame's descriptors
    go with its own tiles. ``shared`` maps names to descriptors every tile
    is given (a reference palette). With an uncertainty-carrying
    ``predict``, the uncertainty follows the ab as a third channel, stitched
    with the same taper weights.
    """
    import torch

    device = predict.colorizer.device
    stitchers = [Stitcher(grid, channels=predict.channels, scale=predict.colorizer.output_stride, like=torch.empty(0, device=device)) for _ in frames]
    windows = [(number, origin) for number in range(len(frames)) for origin in grid.origins]
    for start in range(0, len(windows), batch_size):
        batch = windows[start : start + batch_size]
        on_batch(0)  # cancel point before the work
        parts = {number: [origin for n, origin in batch if n == number] for number, _ in batch}  # frame -> its origins, in order
        tiles = torch.cat([frames[n].lightness_tiles(grid, origins, device) for n, origins in parts.items()])
        per_tile = [frames[n].extra_tiles(grid, origins, device) for n, origins in parts.items()]
        per_tile = {name: torch.cat([extra[name] for extra in per_tile]) for name in per_tile[0]}
        per_frame = dict(shared or {})
        if len(parts) == 1:
            per_frame.update(frames[next(iter(parts))].descriptors)
        else:  # each tile its own frame's descriptors
            for name in frames[0].descriptors:
                per_tile[name] = torch.cat([frames[n].descriptors[name].expand(len(origins), -1) for n, origins in parts.items()])
        for tile_ab, (number, (y, x)) in zip(predict(tiles, per_tile, per_frame), batch):
            stitchers[number].add(tile_ab.float(), y, x)
        on_batch(len(batch))
    return [stitcher.result(crop=False) for stitcher in stitchers]
