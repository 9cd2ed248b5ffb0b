"""Fine-tune a model on a few colour references, for a time budget: the
library behind the Train colorizer widget (napari-free).

A scientist's own colour images (stained sections, composites of their
telescope's filters) teach a shipped model their palette in minutes. The
references may be arrays (the RGB layers open in napari) or a folder; the
result is a checkpoint like any other, recording what it learned from.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from . import checkpoint_files
from .arrays import as_rgb8
from .checkpoint_files import checkpoint_metadata, resolve_model_path, shipped_models
from .model_info import ModelDescription
from .quantized import make_int8_companion
from .training import TrainConfig, TrainingProgress, train
from .training_checkpoint import state_path

#: A fine-tuning run: small batches (a few images), every orientation
#: (scientific images have no up), a gentle learning rate (it starts from a
#: trained model), a checkpoint every minute (Cancel keeps the last one).
FINE_TUNE_CONFIG = {
    "batch_size": 16,
    "crop_size": 128,
    "learning_rate": 1e-4,
    "any_orientation": True,
    "checkpoint_minutes": 1.0,
    "workers": 0,
    "steps": 1_000_000,  # the time budget ends the run
}
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_model_name(name: str) -> str:
    """A name for a model trained in napari: letters, digits, '.', '_', '-',
    not a shipped model's name. Returns it stripped; raises ValueError otherwise."""
    name = str(name).strip()
    if not NAME_PATTERN.match(name):
        raise ValueError(f"name the model with letters, digits, '.', '_' or '-' (at most 64), got {name!r}")
    if name in shipped_models():
        raise ValueError(f"{name!r} is a shipped model: choose another name")
    return name


def fine_tune(
    references: Sequence[np.ndarray] = (),
    *,
    name: str,
    folder: str | Path | None = None,
    base: str | Path = "natural",
    minutes: float = 5.0,
    domain: str = "",
    reference_names: Sequence[str] = (),
    output_dir: str | Path | None = None,
    device: str = "auto",
    overwrite: bool = False,
    on_step: Callable[[TrainingProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
):
    """Fine-tune ``base`` on colour references for ``minutes`` and save it.

    Parameters
    ----------
    references : sequence of ndarray
        Colour images, (Y, X, 3) or (Y, X, 4), see :func:`as_rgb8`.
    name : str
        The new model's name (see :func:`check_model_name`); it is saved as
        ``NAME.safetensors`` in ``output_dir`` and then chosen by that name.
    folder : path, optional
        A folder of colour images (searched recursively), with or instead of ``references``.
    base : str or path
        The model to start from: a shipped name, a user model or a checkpoint.
    minutes : float
        Training time (> 0).
    domain : str
        The kind of images it is for, recorded and shown beside the chooser.
    reference_names : sequence of str
        What to call the references in the record (layer names, say).
    output_dir : path, optional
        Default :func:`napari_colorize.checkpoint_files.user_models_dir`.
    device : str
    overwrite : bool
        Replace a model of the same name (refused otherwise, before any work).
    on_step, cancel : callable, optional
        As for :func:`napari_colorize.training.train`: Cancel keeps the model as it is then.

    Returns
    -------
    Colorizer
        The fine-tuned model (``name`` its name, ``path`` the file written).
    """
    name = check_model_name(name)
    if not minutes > 0:
        raise ValueError(f"minutes must be > 0, got {minutes}")
    images = [as_rgb8(image) for image in references]
    if not images and folder is None:
        raise ValueError("give colour references: RGB images, a folder of colour images, or both")
    if folder is not None and not Path(folder).is_dir():
        raise ValueError(f"folder of colour references not found: {folder}")
    output = Path(output_dir or checkpoint_files.user_models_dir()) / f"{name}.safetensors"
    if output.exists() and not overwrite:
        raise ValueError(f"a model named {name!r} exists ({output}): choose another name")
    head = checkpoint_metadata(resolve_model_path(base)).get("head", "classification")
    output.parent.mkdir(parents=True, exist_ok=True)
    names = list(reference_names) or [f"image {i + 1}" for i in range(len(images))]
    what = [f"{len(images)} colour image{'s' if len(images) != 1 else ''} ({', '.join(names)})"] if images else []
    what += [f"the colour images of {folder}"] if folder is not None else []
    description = ModelDescription(
        description=f"Fine-tuned in napari from {Path(str(base)).stem} for {minutes:g} min on {' and '.join(what)}.",
        domain=domain,
        training_data=" and ".join(what),
        terms="those of the reference images it was fine-tuned on, and of its base model",
    )
    config = TrainConfig(head=head, time_limit_minutes=float(minutes), **FINE_TUNE_CONFIG)
    with tempfile.TemporaryDirectory(prefix="napari-colorize-references-") as staging:
        sources = [Path(folder)] if folder is not None else []
        if images:
            from PIL import Image

            for number, image in enumerate(images):
                Image.fromarray(image).save(Path(staging) / f"reference-{number:03d}.png")
            sources.append(Path(staging))
        try:
            colorizer = train(
                sources,
                output=output,
                config=config,
                device=device,
                init=base,
                progress=False,
                description=description,
                on_step=on_step,
                cancel=cancel,
            )
        finally:
            state_path(output).unlink(missing_ok=True)  # a fine-tune is not resumed: its optimiser state is 6x the model
        make_int8_companion(output, sources)
    colorizer.name, colorizer.path = name, str(output)
    return colorizer
