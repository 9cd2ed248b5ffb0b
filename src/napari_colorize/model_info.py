"""What users are told about a model: what it is for, its domain, what it
learned from and on what terms.

A checkpoint carries these as four metadata entries (``description``,
``domain``, ``training_data``, ``terms``; see :class:`ModelDescription`),
written by ``napari-colorize train --description ...`` or afterwards by
``napari-colorize describe``. For a checkpoint without them,
:func:`describe_model` says what its training record shows (the folders and
images it was trained on, the model it was fine-tuned from) and that the
rest was not recorded. Only the file's header is read, never its weights,
and torch is not imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from .architectures import get_architecture
from .checkpoint_files import DEFAULT_MODEL, checkpoint_metadata, resolve_model_path, shipped_models, shipped_models_dir
from .int8_runtime import companion_path
from .io import TOP_LEVEL

#: Metadata entries that describe a model, in the order users read them.
DESCRIPTION_FIELDS = ("description", "domain", "training_data", "terms")
NOT_RECORDED = "not recorded"
_GENERATIONS = {1: "first generation", 2: "second generation"}


def _one_line(text) -> str:
    return " ".join(str(text or "").split())


@dataclass(frozen=True)
class ModelDescription:
    """The description a checkpoint records of itself ('' where it records none).

    Attributes
    ----------
    description : str
        One line: what the model does and when to choose it.
    domain : str
        The kind of images it knows (e.g. 'natural photographs').
    training_data : str
        The images it learned from, with their sources.
    terms : str
        The terms of use it inherits from its training data.
    """

    description: str = ""
    domain: str = ""
    training_data: str = ""
    terms: str = ""

    def __post_init__(self):
        for field in fields(self):  # one line each, as shown in tables and beside the chooser
            object.__setattr__(self, field.name, _one_line(getattr(self, field.name)))

    @classmethod
    def recorded_in(cls, metadata: Mapping) -> ModelDescription:
        """The description recorded in a checkpoint's ``metadata``."""
        return cls(**{name: metadata.get(name, "") for name in DESCRIPTION_FIELDS})

    def entries(self) -> dict[str, str]:
        """The fields given, as checkpoint metadata entries (empty ones left out)."""
        return {name: getattr(self, name) for name in DESCRIPTION_FIELDS if getattr(self, name)}


@dataclass(frozen=True)
class ModelInfo:
    """Everything users are told about one model.

    Attributes
    ----------
    name : str
        Shipped model name, or the checkpoint file's stem.
    path : str
        The checkpoint file.
    shipped : bool
        Whether it is one of the shipped models.
    network : str
        Generation, architecture, head and inputs, in words.
    description, domain, training_data, terms : str
        As recorded in the checkpoint, or said from its training record
        where not recorded (see ``derived``).
    derived : tuple of str
        The description fields the checkpoint does not record.
    int8 : str
        Its int8 companion beside it (see :mod:`napari_colorize.int8_runtime`), or ''.
    """

    name: str
    path: str
    shipped: bool
    network: str
    description: str
    domain: str
    training_data: str
    terms: str
    derived: tuple[str, ...] = ()
    int8: str = ""

    @classmethod
    def of(cls, path: str | Path, metadata: Mapping, *, shipped: bool = False) -> ModelInfo:
        """The information on the model in the checkpoint file ``path``, which records ``metadata``."""
        recorded = ModelDescription.recorded_in(metadata)
        said = {
            "description": _description_from_record(metadata),
            "domain": NOT_RECORDED,
            "training_data": _training_data_from_record(metadata),
            "terms": _terms_from_record(metadata),
        }
        derived = tuple(f for f in DESCRIPTION_FIELDS if not getattr(recorded, f))
        values = {f: getattr(recorded, f) or said[f] for f in DESCRIPTION_FIELDS}
        companion = companion_path(path)
        int8 = str(companion) if companion.is_file() else ""
        return cls(name=Path(path).stem, path=str(path), shipped=shipped, network=_network(metadata), derived=derived, int8=int8, **values)

    def lines(self) -> list[tuple[str, str]]:
        """(label, text) pairs, the network first, how it runs on a CPU last."""
        on_cpu = f"int8 ({self.int8})" if self.int8 else "fp32: it has no int8 companion (make one with 'napari-colorize quantize')"
        return [("network", self.network), *((f.replace("_", " "), getattr(self, f)) for f in DESCRIPTION_FIELDS), ("on a CPU", on_cpu)]

    def text(self) -> str:
        """A few lines for a terminal: the name (and file, or whether it is the
        default), then one labelled line per field."""
        width = max(len(label) for label, _ in self.lines()) + 1
        if self.shipped:
            heading = self.name + (" (default)" if self.name == DEFAULT_MODEL else "")
        else:
            heading = f"{self.name} ({self.path})"
        return "\n".join([heading, *(f"  {label + ':':<{width}} {value}" for label, value in self.lines())])

    def summary(self) -> str:
        """The description, then its domain, data, terms and network: what is shown beside a model chooser."""
        fields = [f"Domain: {self.domain}.", f"Trained on: {self.training_data}", f"Terms: {self.terms}", f"Network: {self.network}."]
        return "\n".join([self.description, *fields])


def describe_model(model: str | Path) -> ModelInfo:
    """What users are told about a shipped model or a checkpoint file.

    Reads the file's header only (not its weights).

    Raises
    ------
    CheckpointError
        If the file is missing, unreadable, or not a napari-colorize checkpoint.
    """
    path = resolve_model_path(model)
    shipped = path.resolve().parent == shipped_models_dir().resolve()
    return ModelInfo.of(path, checkpoint_metadata(path), shipped=shipped)


def shipped_model_infos() -> list[ModelInfo]:
    """:func:`describe_model` of each shipped model, the default first."""
    return [describe_model(name) for name in shipped_models()]


def markdown_table(infos: Sequence[ModelInfo]) -> str:
    """A Markdown table of models: name, network, domain, description, terms."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| model | network | domain | description | terms |", "|---|---|---|---|---|"]
    lines += [f"| `{i.name}` | {cell(i.network)} | {cell(i.domain)} | {cell(i.description)} | {cell(i.terms)} |" for i in infos]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# What a checkpoint's own record says, where it has no description
# --------------------------------------------------------------------------
def _network(metadata: Mapping) -> str:
    """'second generation (colornet-v2-replicate), classification head; inputs: lightness, hints, context'."""
    name = str(metadata.get("architecture", "unknown architecture"))
    try:
        architecture = get_architecture(name)
    except KeyError:
        architecture = None
    generation = _GENERATIONS.get(architecture.generation) if architecture is not None else None
    inputs = metadata.get("inputs") or (["lightness", *(i.name for i in architecture.extra_inputs)] if architecture else [])
    text = f"{generation} ({name})" if generation else name
    text += f", {metadata.get('head', 'unknown')} head"
    return text + (f"; inputs: {', '.join(map(str, inputs))}" if inputs else "")


def _training_record(metadata: Mapping) -> Mapping:
    data = metadata.get("training", {}).get("data") if isinstance(metadata.get("training"), Mapping) else None
    return data if isinstance(data, Mapping) else {}


def _fine_tuned_from(metadata: Mapping) -> Mapping:
    init = metadata.get("init")
    return init if isinstance(init, Mapping) and init.get("model") else {}


def _count(number) -> str:
    return f"{number:,}" if isinstance(number, int) else "?"


def _description_from_record(metadata: Mapping) -> str:
    data = _training_record(metadata)
    if not data:
        return "No description recorded."
    text = f"Trained with napari-colorize train on {', '.join(data.get('folders', [])) or 'images'} ({_count(data.get('images'))} colour images)"
    init = _fine_tuned_from(metadata)
    if init:
        text += f", fine-tuned from {init['model']}"
    return text + "; no description recorded."


def _training_data_from_record(metadata: Mapping) -> str:
    data = _training_record(metadata)
    if not data:
        return f"{NOT_RECORDED}."
    per_folder = data.get("images_per_subfolder")
    if isinstance(per_folder, Mapping) and per_folder:
        parts = []
        for folder, groups in per_folder.items():
            if list(groups) == [TOP_LEVEL]:
                parts.append(f"{folder} {_count(groups[TOP_LEVEL])}")
            else:
                parts.append(f"{folder} ({', '.join(f'{group} {_count(n)}' for group, n in groups.items())})")
        text = f"{_count(data.get('images'))} colour images: {'; '.join(parts)}"
    else:
        text = f"{_count(data.get('images'))} colour images in {', '.join(data.get('folders', [])) or 'folders not recorded'}"
    init = _fine_tuned_from(metadata)
    if init:
        text += f"; fine-tuned from {init['model']}" + (f" (trained on: {init['training_data']})" if init.get("training_data") else "")
    return text + "."


def _terms_from_record(metadata: Mapping) -> str:
    text = f"{NOT_RECORDED}: a model inherits the terms of the images it learned from"
    init = _fine_tuned_from(metadata)
    if init:
        text += f", and those of {init['model']}, which it was fine-tuned from" + (f" ({init['terms']})" if init.get("terms") else "")
    return text + "."
