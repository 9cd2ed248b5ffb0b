"""Training: colour-image folders -> random L/ab crops -> rebalanced loss ->
a checkpoint the pipeline can load.

Runs on CPU, CUDA or MPS; periodic checkpoints and ``resume`` make long runs
safe to interrupt. :func:`train` is a sequence of steps: check the options,
build (or resume) the model, gather the data (see
:mod:`napari_colorize.training_data`), make the optimiser and the loader,
then loop, with a :class:`Checkpointer` saving along the way. Crops are made
in DataLoader workers as uint8 RGB; the Lab conversion, soft-encoding and
weighting happen on the training device.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .color import ab_bins, rebalance_weights
from .devices import resolve_device
from .model import Colorizer, copy_matching_weights, create_colorizer, load_checkpoint
from .model_info import ModelDescription
from .training_checkpoint import Checkpointer, state_path
from .training_config import TrainConfig
from .training_consistency import ShiftedPair, context_disagreement
from .training_data import ColorCrops, TrainingData
from .training_inputs import chosen_contexts, network_inputs
from .training_loss import Loss, lab_of, split_lab

logger = logging.getLogger(__name__)

# States saved before checkpoints could name another architecture are of the first one.
_FIRST_ARCHITECTURE = "colornet-v1"


@dataclass(frozen=True)
class TrainingProgress:
    """Where a training run stands, after a step.

    Attributes
    ----------
    step, steps : int
        Steps done (counting those before a resumption) and the budget.
    loss : float or None
        The smoothed loss so far.
    elapsed_s, time_limit_s : float
        Training time so far and its limit (inf without one).
    """

    step: int
    steps: int
    loss: float | None
    elapsed_s: float
    time_limit_s: float

    @property
    def remaining_s(self) -> float:
        """Seconds left: to the time limit, or to the step budget at the speed so far, whichever comes first."""
        by_steps = (self.steps - self.step) * self.elapsed_s / max(1, self.step)
        return max(0.0, min(self.time_limit_s - self.elapsed_s, by_steps))

    @property
    def fraction(self) -> float:
        """How much of the run is done, 0..1."""
        by_time = self.elapsed_s / self.time_limit_s if math.isfinite(self.time_limit_s) and self.time_limit_s > 0 else 0.0
        return min(1.0, max(self.step / max(1, self.steps), by_time))


# --------------------------------------------------------------------------
# The steps of train()
# --------------------------------------------------------------------------
def _load_state(output: Path, resume: bool) -> dict | None:
    """The saved state of an interrupted run to resume, if asked for and there is one."""
    import torch

    path = state_path(output)
    return torch.load(path, map_location="cpu", weights_only=True) if resume and path.exists() else None


def _build_model(config: TrainConfig, *, init: str | Path | None, state: dict | None) -> Colorizer:
    """The model to train: resumed from ``state``, fine-tuned from ``init``, or fresh.

    Draws the initial weights from torch's global generator, so the caller
    seeds it first. A resumed run takes the architecture, head and width
    it was started with; a fine-tuned one those of ``init``.
    """
    if state is not None:
        meta = json.loads(state["metadata"])
        colorizer = create_colorizer(
            architecture=meta.get("architecture", _FIRST_ARCHITECTURE),
            head=meta["head"],
            width=int(meta["width"]),
            bins=state["bins"].numpy(),
        )
        colorizer.network.load_state_dict(state["network"])
        colorizer.metadata = meta
        return colorizer
    if init is not None:
        base = load_checkpoint(init)
        if base.head != config.head:
            raise ValueError(f"--init model {base.name!r} has a {base.head} head, but training asks for {config.head}")
        architecture = config.architecture or base.architecture
        colorizer = create_colorizer(architecture=architecture, head=base.head, width=int(base.metadata["width"]), bins=base.bins)
        left = copy_matching_weights(colorizer, base)
        if left:
            logger.warning("%d weights are not in --init model %r and start untrained: %s", len(left), base.name, ", ".join(left))
        # What the init model learned from, and its terms, stay with what is made from it.
        inherited = {k: v for k, v in ModelDescription.recorded_in(base.metadata).entries().items() if k in ("training_data", "terms")}
        colorizer.metadata["init"] = {"model": base.name, "sha256": base.sha256, **inherited, **({"fresh_weights": left} if left else {})}
        if config.learn_only and base.smallest_side:
            # The frozen layers that see the image learned at the init's crops, whatever this run's are.
            colorizer.metadata["smallest_side"] = base.smallest_side
        return colorizer
    return create_colorizer(architecture=config.architecture or _FIRST_ARCHITECTURE, head=config.head, width=config.width, bins=ab_bins())


def _place_network(colorizer: Colorizer, device, config: TrainConfig) -> None:
    """Move the network to ``device`` and set what learns (:meth:`TrainConfig.enter_training_mode`)."""
    colorizer.network.to(device)
    config.enter_training_mode(colorizer)


def _make_optimizer(network, config: TrainConfig, state: dict | None, *, fresh: Sequence[str] = ()):
    """Adam over the network's parameters that learn, with its moments restored when resuming.

    The ``fresh`` parameters (those a warm start could not copy) learn at
    ``config.fresh_lr_scale`` times the rate of the others.
    """
    import torch

    named = {name: parameter for name, parameter in network.named_parameters() if parameter.requires_grad}
    fresh = [name for name in fresh if name in named] if config.fresh_lr_scale != 1.0 else []
    groups = [{"params": [p for n, p in named.items() if n not in fresh], "lr_scale": 1.0}]
    if fresh:
        groups.append({"params": [named[n] for n in fresh], "lr_scale": config.fresh_lr_scale})
    optimizer = torch.optim.Adam(groups, lr=config.learning_rate, weight_decay=config.weight_decay)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    return optimizer


def _make_loader(
    data: TrainingData, config: TrainConfig, *, first_step: int, device, view_size: int | None = None, region_views: bool = False
):
    """Batches of crops for the steps from ``first_step`` on.

    Crops are numbered over the whole run, so a resumed run skips those of
    the steps done and sees exactly the batches a straight run would.
    """
    import torch

    dataset = ColorCrops(
        data.images,
        crop_size=config.crop_size,
        scale_jitter=config.scale_jitter,
        seed=config.seed,
        length=config.steps * config.batch_size,
        view_size=view_size,
        any_orientation=config.any_orientation,
        region_views=region_views,
        dark_sky=config.dark_sky,
        frames=data.frames,
        frames_share=config.frames_share,
        frames_scale_jitter=config.frames_scale_jitter,
        draws=data.draws,
    )
    return torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, range(first_step * config.batch_size, len(dataset))),
        batch_size=config.batch_size,
        num_workers=config.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=config.workers > 0,
        prefetch_factor=4 if config.workers > 0 else None,
        drop_last=True,
    )


def _train_loop(
    colorizer: Colorizer,
    loader,
    optimizer,
    loss_fn: Loss,
    config: TrainConfig,
    checkpointer: Checkpointer,
    *,
    step: int,
    progress: bool,
    smoothed_loss: float | None = None,
    on_step: Callable[[TrainingProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> tuple[int, float | None]:
    """Optimiser steps until ``config.steps``, the time limit or ``cancel()``,
    saving when due and telling ``on_step`` after each; ``smoothed_loss`` is
    the loss a resumed run had reached.

    Returns
    -------
    step : int
        Steps done, counting those before a resumption.
    loss : float or None
        The smoothed loss (an exponential average, sampled every 10 steps).
    """
    import torch
    from tqdm.auto import tqdm

    device = checkpointer.device
    network = colorizer.network
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    time_limit = 60.0 * config.time_limit_minutes if config.time_limit_minutes else math.inf
    hints_generator = torch.Generator()
    with tqdm(total=config.steps, initial=step, desc=f"training {colorizer.head}", disable=not progress, mininterval=2.0) as bar:
        for batch in loader:
            batch, *views = batch if isinstance(batch, (list, tuple)) else (batch,)
            from_frames = views.pop() if config.frames_share else None  # the marks come last, in this order
            on_dark_sky = views.pop() if config.dark_sky else None
            elapsed = checkpointer.elapsed()
            if step >= config.steps or elapsed >= time_limit or (cancel is not None and cancel()):
                break
            for group in optimizer.param_groups:
                group["lr"] = config.scheduled_learning_rate(step, elapsed) * group.get("lr_scale", 1.0)  # states saved before lr_scale have none
            lab = lab_of(batch, device)  # once: the input, the target and the hints all come from it
            hints_generator.manual_seed(config.seed * 1_000_003 + step)
            inputs = {}
            # The whole image's view, then (for the consistency options) a cut-out's.
            views_lab = [lab_of(view, device) for view in views]
            views_lightness = [view[:, :1] for view in views_lab]
            with autocast:
                # Each view's descriptor once: the main loss, the shifted window and the context penalty share them.
                contexts = [network.encode_context(view) for view in views_lightness]
            if colorizer.extra_inputs:
                with autocast:
                    inputs = network_inputs(
                        colorizer,
                        lab,
                        chosen_contexts(contexts, config.cut_out_context, generator=hints_generator),
                        generator=hints_generator,
                        fraction=config.hint_fraction,
                        max_hints=config.max_hints,
                        whole_lab=views_lab[0] if views_lab else None,
                        palette_fraction=config.palette_fraction,
                    )
            pair = (
                ShiftedPair.draw(config.crop_size, colorizer.output_stride, generator=hints_generator) if config.penalises_shift else None
            )
            cut_out = {"context": contexts[1]} if len(contexts) > 1 else None
            lightness, ab = split_lab(lab if pair is None else pair.windows(lab), colorizer.output_stride)
            context_penalty = 0.0
            if config.penalises_context and cut_out is not None:
                with autocast:
                    context_penalty = context_disagreement(network.context_path, contexts[0], contexts[1], config.context_weights(from_frames))
            if pair is not None:
                lightness = pair.add_noise(lightness, generator=hints_generator)
                inputs = pair.inputs(inputs, cut_out)
            with autocast:
                output = colorizer.run_network(lightness, **inputs)
            # A frame's crop teaches no colour: only the shift penalty.
            colour_weights = None if from_frames is None else (~from_frames).float().repeat(output.shape[0] // len(from_frames))
            loss = loss_fn(output, ab, colour_weights) + context_penalty
            if pair is not None:
                loss = loss + pair.disagreement(
                    output,
                    regression=colorizer.head == "regression",
                    bins=loss_fn.bins,
                    decoded_weight=config.decoded_consistency,
                    weights=config.shift_weights(on_dark_sky, from_frames),
                    anchored=from_frames,
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            # Reading the loss syncs with the device: only every 10 steps.
            value = float(loss.detach()) if step % 10 == 0 or smoothed_loss is None else None
            if value is not None:
                if not math.isfinite(value):
                    raise FloatingPointError(f"training diverged at step {step} (loss {value}); lower the learning rate")
                smoothed_loss = value if smoothed_loss is None else 0.9 * smoothed_loss + 0.1 * value
                bar.set_postfix(loss=f"{smoothed_loss:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}", refresh=False)
            bar.update(1)
            if checkpointer.due():
                checkpointer.save(step, smoothed_loss, final=False)
            if on_step is not None:
                on_step(TrainingProgress(step, config.steps, smoothed_loss, checkpointer.elapsed(), time_limit))
    return step, smoothed_loss


def train(
    folders: Sequence[str | Path],
    *,
    output: str | Path,
    config: TrainConfig | None = None,
    device: str = "auto",
    init: str | Path | None = None,
    frames: Sequence[str | Path] = (),
    resume: bool = False,
    progress: bool = True,
    description: ModelDescription | None = None,
    on_step: Callable[[TrainingProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Colorizer:
    """Train a colorizer on folders of colour images and save it.

    Parameters
    ----------
    folders : sequence of path
        Folders searched recursively for JPEG/PNG/TIFF colour images
        (grayscale ones are skipped), or image files.
    output : path
        The ``.safetensors`` checkpoint to write. Training state for
        ``resume`` is kept beside it as ``<output>.state.pt``.
    config : TrainConfig, optional
    device : str
        'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.
    init : str or path, optional
        A shipped model name or checkpoint to fine-tune from; the model
        takes its architecture, head and width.
    frames : sequence of path
        Folders (or files) of images of the kind the model will colorize,
        gray or colour, whose colours are not learned: ``config.frames_share``
        of the crops are cut from them and teach only that a structure keeps
        its colour when the grid moves or the frame is cut around it.
    resume : bool
        Continue from ``<output>.state.pt`` if it exists (``folders`` and
        ``init`` are then not used).
    progress : bool
        Show a progress bar with the loss.
    description : ModelDescription, optional
        What the model is for, its domain, its training data and its terms,
        recorded in the checkpoint and shown to users (those not given are
        kept from the resumed run, or said from the training record: the
        folders and image counts, which are always recorded).
    on_step : callable(TrainingProgress), optional
        Called after each optimiser step (in the training thread).
    cancel : callable() -> bool, optional
        Polled before each step: True ends the run there, and the model as
        it is then is saved and returned, as at a time limit.

    Returns
    -------
    Colorizer
        The trained model, also written to ``output``.
    """
    import torch

    config = config or TrainConfig()
    output = Path(output)
    config.check(output)
    torch_device = resolve_device(device)
    torch.manual_seed(config.seed)  # before the model is built: seeds its initial weights
    state = _load_state(output, resume)
    if config.frames_share and not frames and state is None:
        raise ValueError("a frames share needs frames: the images to cut those crops from")
    colorizer = _build_model(config, init=init, state=state)
    for name, value in (("context consistency", config.penalises_context), ("dark sky", config.dark_sky)):
        if value and "context" not in colorizer.frame_inputs:
            raise ValueError(f"{name} needs a network that takes the frame's context; {colorizer.architecture} does not")
    if config.palette_fraction and "palette" not in colorizer.input_names:
        raise ValueError(f"a palette fraction needs a palette-taking network (a -palette architecture); {colorizer.architecture} takes none")
    _place_network(colorizer, torch_device, config)  # before the data scan: refuses modules to learn that the network lacks
    colorizer.metadata.update((description or ModelDescription()).entries())
    if state is not None:
        data = TrainingData.from_state(state)
    else:
        data = TrainingData.scan(
            folders,
            colorizer.bins,
            frames=frames,
            workers=config.workers,
            progress=progress,
            rare_colour_sampling=config.rare_colour_sampling,
            rebalance_lambda=config.rebalance_lambda,
        )
    colorizer.prior = data.prior
    weights = rebalance_weights(data.prior, lam=config.rebalance_lambda)

    fresh = colorizer.metadata.get("init", {}).get("fresh_weights", [])
    optimizer = _make_optimizer(colorizer.network, config, state, fresh=fresh)
    first_step, elapsed_before = (int(state["step"]), float(state["elapsed"])) if state is not None else (0, 0.0)
    loss_fn = Loss(colorizer, weights, torch_device)
    view_size = colorizer.context_view if colorizer.frame_inputs else None
    # Views of random cut-outs: for the shifted window's context, or for the main loss's.
    region_views = bool(config.penalises_shift or config.cut_out_context or config.penalises_context)
    loader = _make_loader(data, config, first_step=first_step, device=torch_device, view_size=view_size, region_views=region_views)

    checkpointer = Checkpointer(
        output, colorizer=colorizer, optimizer=optimizer, config=config, data=data, device=torch_device, elapsed_before=elapsed_before
    )
    # A resumed run that stops at once (its budget already spent) still records the loss it had reached.
    resumed_loss = json.loads(state["metadata"]).get("training", {}).get("final_loss") if state is not None else None
    step, loss = _train_loop(
        colorizer,
        loader,
        optimizer,
        loss_fn,
        config,
        checkpointer,
        step=first_step,
        progress=progress,
        smoothed_loss=resumed_loss,
        on_step=on_step,
        cancel=cancel,
    )
    checkpointer.save(step, loss, final=True)
    colorizer.network.eval()
    logger.info("wrote %s after %d steps", output, step)
    return colorizer
