"""The options of a training run: declared, checked and recorded in one place."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from .color import DEFAULT_REBALANCE_LAMBDA


@dataclass
class TrainConfig:
    """Options of a training run (all recorded in the checkpoint).

    Attributes
    ----------
    head : {'classification', 'regression'}
    steps : int
        Optimiser steps of the whole run.
    batch_size : int
    crop_size : int
        Side of the training crops: a multiple of 16, at least 32.
    scale_jitter : (float, float)
        Range of the random rescaling of the images before cropping.
    learning_rate : float
        Peak learning rate (linear warm-up, then cosine decay to 2 %).
    weight_decay : float
    width : int
        Channels of the network's first layer (a fresh model only).
    rebalance_lambda : float
        Mix of the prior with the uniform one for the class-rebalancing weights.
    rare_colour_sampling : float
        Share of the crops whose image is drawn by the rarity of its colours
        (see :func:`napari_colorize.training_data.rare_colour_draws`), 0 to 1;
        the rest are drawn uniformly.
    time_limit_minutes : float, optional
        Stop after this much training time (the schedule then follows time).
    checkpoint_minutes : float
        Save a checkpoint and the resume state this often.
    workers : int
        DataLoader worker processes (0: load in the training process).
    seed : int
        Seeds the initial weights and the crops.
    architecture : str, optional
        Network family of a fresh model, or of a model warm-started from
        ``init`` (whose matching weights it takes); default: the init
        model's, else colornet-v1.
    hint_fraction : float
        Share of the crops given hints sampled from the truth (networks that
        take hints).
    palette_fraction : float
        Share of the crops given the palette of the image they were cut
        from (palette-taking networks: the ``-palette`` architectures).
    max_hints : int
        Most hints in one crop.
    learn_only : tuple of str
        Names of the network's top-level modules whose weights learn (e.g.
        ``("hint_path", "hint_gain")``, its response to hints, or
        ``("context_path",)``, its use of the frame's context); every other
        weight, and every batch statistic, is frozen. Empty: everything
        learns. For retraining one input's branch of a model
        whose other layers have moved on since.
    fresh_lr_scale : float
        With ``init``, the weights it could not provide (a new branch) learn
        at this multiple of the learning rate.
    any_orientation : bool
        Augment with quarter turns and upside-down flips, so the network
        learns no up/down colour prior (natural photos have one; scientific
        images do not).
    shift_consistency : float
        Weight of the penalty for colouring a pixel differently when the
        window around it moves, or (for a network that takes the frame's
        context) when the frame is cropped around it (see
        :mod:`napari_colorize.training_consistency`); 0 trains on whole crops
        without it. Needs crops of at least 64.
    decoded_consistency : float
        With ``shift_consistency``, how much of that penalty (classification
        only) is also charged on the difference of the two windows' decoded
        colours, the annealed means the user sees, beside the divergence of
        their distributions; 0 charges the divergence alone.
    cut_out_context : float
        Share of the crops (0 to 1) whose context, for a network that takes
        the frame's context, is a random cut-out of the image around or
        inside the crop rather than the whole image, as when a user
        colorizes a crop: the network learns to colour a structure from the
        structure, not from what the rest of the frame happens to hold. 0
        always gives the whole image's.
    context_consistency : float
        Weight of the penalty for the frame-context path answering a random
        cut-out of the image differently from the whole image (see
        :func:`napari_colorize.training_consistency.context_disagreement`),
        so that a crop colorized alone gets the context its frame would give;
        0 for none. Networks that take the frame's context only.
    dark_sky : float
        Share of the crops (0 to 1) whose whole-image context shows their
        image small on a dark, noisy, starry background (see
        :func:`napari_colorize.training_data.on_dark_sky`), so the colours
        of a galaxy or a cell do not hang on how much of its frame is empty
        background. Networks that take the frame's context only; 0 for none.
    dark_sky_shift_consistency : float
        Extra weight of the shift penalty on the crops given a dark-sky
        context (beside ``shift_consistency`` on every crop): telescope-like
        frames, where a colour that moves with the grid is most visible,
        can be held harder than photographs, whose colours the penalty dulls.
    frames_share : float
        Share of the crops (0 to 1) cut from the run's ``frames`` (see
        :func:`napari_colorize.training.train`): images of the kind the
        model will colorize, gray or colour, whose colours are not learned
        (their crops are made gray and carry no colour loss). They are seen
        through the two shifted windows only, the first with the whole
        frame's context and held fixed, the second with a cut-out's taught
        to colour as the first does, so a structure of such a frame keeps
        its colour when the grid moves or the frame is cut around it.
    frames_shift_consistency : float
        Extra weight of the shift penalty on the crops cut from ``frames``
        (beside ``shift_consistency`` on every crop).
    frames_context_consistency : float
        Extra weight of the context penalty (see ``context_consistency``)
        on the crops cut from ``frames``: their contexts, whole and cut
        out, are drawn together while a photograph's context keeps what
        it tells about its colours.
    frames_scale_jitter : (float, float)
        ``scale_jitter`` of the crops cut from ``frames``: enlarging them
        (above 1) shows the network whole-frame views as reduced as those
        of frames larger than any it has.
    """

    head: str = "classification"
    steps: int = 20000
    batch_size: int = 32
    crop_size: int = 128
    scale_jitter: tuple[float, float] = (0.6, 1.2)
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    width: int = 32
    rebalance_lambda: float = DEFAULT_REBALANCE_LAMBDA
    rare_colour_sampling: float = 0.0
    time_limit_minutes: float | None = None
    checkpoint_minutes: float = 5.0
    workers: int = field(default_factory=lambda: max(1, min(8, (os.cpu_count() or 2) - 1)))
    seed: int = 0
    architecture: str | None = None
    hint_fraction: float = 0.5
    palette_fraction: float = 0.0
    max_hints: int = 20
    learn_only: tuple[str, ...] = ()
    any_orientation: bool = False
    fresh_lr_scale: float = 1.0
    shift_consistency: float = 0.0
    decoded_consistency: float = 0.0
    cut_out_context: float = 0.0
    context_consistency: float = 0.0
    dark_sky: float = 0.0
    dark_sky_shift_consistency: float = 0.0
    frames_share: float = 0.0
    frames_shift_consistency: float = 0.0
    frames_context_consistency: float = 0.0
    frames_scale_jitter: tuple[float, float] = (0.6, 1.2)

    def check(self, output: Path) -> None:
        """Refuse an output, a crop size or a weight the run could not use, before any work."""
        if output.suffix != ".safetensors":
            raise ValueError(f"the output checkpoint must end in .safetensors, got {output}")
        # The network downsamples 16 times; the ab target needs crops of whole blocks.
        if self.crop_size % 16 or self.crop_size < 32:
            raise ValueError(f"crop size must be a multiple of 16 and >= 32, got {self.crop_size}")
        weights = {
            "shift consistency": self.shift_consistency,
            "decoded consistency": self.decoded_consistency,
            "context consistency": self.context_consistency,
            "dark-sky shift consistency": self.dark_sky_shift_consistency,
            "frames shift consistency": self.frames_shift_consistency,
            "frames context consistency": self.frames_context_consistency,
        }
        for name, value in weights.items():
            if not value >= 0:
                raise ValueError(f"{name} is a weight >= 0, got {value}")
        for name, value in (("cut-out context", self.cut_out_context), ("dark sky", self.dark_sky), ("frames share", self.frames_share)):
            if not 0 <= value <= 1:
                raise ValueError(f"{name} is a share of the crops, 0 to 1, got {value}")
        if self.decoded_consistency and (not self.penalises_shift or self.head != "classification"):
            raise ValueError("decoded consistency needs --shift-consistency and a classification head")
        if self.dark_sky_shift_consistency and not self.dark_sky:
            raise ValueError("dark-sky shift consistency needs --dark-sky")
        if self.frames_share and not self.penalises_shift:
            raise ValueError("crops of --frames teach only the shift penalty: give --shift-consistency or --frames-shift-consistency")
        for name, value in (
            ("frames shift consistency", self.frames_shift_consistency),
            ("frames context consistency", self.frames_context_consistency),
        ):
            if value and not self.frames_share:
                raise ValueError(f"{name} needs a --frames-share above 0")
        if not 0 <= self.rebalance_lambda <= 1:
            raise ValueError(f"rebalance lambda mixes the prior with the uniform one, 0 to 1, got {self.rebalance_lambda}")
        if self.rebalance_lambda != DEFAULT_REBALANCE_LAMBDA and self.head != "classification":
            raise ValueError("rebalance lambda weighs the classification loss; a regression head has no bins to rebalance")
        if not 0 <= self.rare_colour_sampling <= 1:
            raise ValueError(f"rare-colour sampling is a share of the crops, 0 to 1, got {self.rare_colour_sampling}")
        if not 0 <= self.hint_fraction <= 1:
            raise ValueError(f"hint fraction is a share of the crops, 0 to 1, got {self.hint_fraction}")
        if not 0 <= self.palette_fraction <= 1:
            raise ValueError(f"palette fraction is a share of the crops, 0 to 1, got {self.palette_fraction}")
        low, high = self.frames_scale_jitter
        if not 0 < low <= high:
            raise ValueError(f"frames scale is a range LOW HIGH with 0 < LOW <= HIGH, got {low} {high}")
        if self.penalises_shift and self.crop_size < 64:
            raise ValueError(f"shift consistency needs crops of at least 64 (two shifted windows in each), got {self.crop_size}")

    def enter_training_mode(self, colorizer) -> None:
        """Put the model's network in training mode; with ``learn_only``,
        keep it in inference mode, every batch statistic frozen, and let only
        those modules' weights learn: the modules then learn to work as they
        will when colouring (batch statistics of a few changed inputs, such
        as sparse hints, differ from batch to batch and from the running
        ones).

        Raises
        ------
        ValueError
            If the network has no module of a name in ``learn_only``.
        """
        network = colorizer.network
        network.train(not self.learn_only)
        if not self.learn_only:
            return
        modules = dict(network.named_children())
        unknown = [name for name in self.learn_only if name not in modules]
        if unknown:
            raise ValueError(f"{colorizer.architecture} has no module {', '.join(unknown)}; its modules: {', '.join(modules)}")
        for parameter in network.parameters(recurse=False):
            parameter.requires_grad_(False)
        for name, module in modules.items():
            for parameter in module.parameters():
                parameter.requires_grad_(name in self.learn_only)

    def scheduled_learning_rate(self, step: int, elapsed: float) -> float:
        """Linear warm-up, then cosine decay over the steps (or the time limit, if sooner)."""
        warmup = min(500, max(1, self.steps // 20))
        if step < warmup:
            return self.learning_rate * (step + 1) / warmup
        fraction = step / self.steps
        if self.time_limit_minutes:
            fraction = max(fraction, elapsed / (60.0 * self.time_limit_minutes))
        return self.learning_rate * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, fraction))))

    @property
    def penalises_shift(self) -> bool:
        """Whether crops are seen through two shifted windows that must agree."""
        return bool(self.shift_consistency or self.dark_sky_shift_consistency or self.frames_shift_consistency)

    @property
    def penalises_context(self) -> bool:
        """Whether the context path is charged for answering a cut-out differently from its image."""
        return bool(self.context_consistency or self.frames_context_consistency)

    def context_weights(self, from_frames=None):
        """Each crop's weight of the context penalty: more where it was cut
        from the frames (``from_frames``, bool per crop), or one weight for all."""
        return _per_crop_weights(self.context_consistency, (self.frames_context_consistency, from_frames))

    def shift_weights(self, on_dark_sky=None, from_frames=None):
        """Each crop's weight of the shift penalty: more where its context is a
        dark sky (``on_dark_sky``, bool per crop) or where it was cut from
        the frames (``from_frames``), or one weight for all."""
        return _per_crop_weights(
            self.shift_consistency, (self.dark_sky_shift_consistency, on_dark_sky), (self.frames_shift_consistency, from_frames)
        )


def _per_crop_weights(base: float, *extras):
    """``base`` plus, for each ``(extra, marks)`` whose marks (bool per crop)
    are given, ``extra`` on the marked crops: a tensor (N,), or (1,) when no
    marks are given."""
    import torch

    weights = torch.tensor([base])
    for extra, marks in extras:
        if marks is not None:
            weights = weights + extra * marks.float()
    return weights
