"""Checkpoint files: where the shipped ones live, and reading or rewriting a
file's metadata without loading its weights (quick, and never unpickling).

A checkpoint is a safetensors file: tensors plus a JSON metadata string
under METADATA_KEY.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib import resources
from pathlib import Path

METADATA_KEY = "napari_colorize"
DEFAULT_MODEL = "natural-lean"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not a colorizer."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def shipped_models_dir() -> Path:
    """Folder holding the shipped checkpoints (in the wheel, or the repo's models/)."""
    packaged = resources.files("napari_colorize") / "models"
    if packaged.is_dir():
        return Path(str(packaged))
    # Editable / source checkout: the repository's top-level models/.
    return Path(__file__).resolve().parents[2] / "models"


def user_models_dir() -> Path:
    """Folder of the models a user trained in napari (the Train colorizer widget), in the user data folder."""
    try:
        from platformdirs import user_data_dir

        folder = Path(user_data_dir("napari-colorize", appauthor=False))
    except ImportError:  # platformdirs comes with napari; this is a fallback
        folder = Path.home() / ".local" / "share" / "napari-colorize"
    return folder / "models"


def user_models() -> list[str]:
    """Names of the models in :func:`user_models_dir`, sorted; shipped names are left out."""
    folder = user_models_dir()
    shipped = set(shipped_models())
    names = sorted(p.stem for p in folder.glob("*.safetensors")) if folder.is_dir() else []
    return [name for name in names if name not in shipped]


def shipped_models() -> list[str]:
    """Names of the shipped models, the default first."""
    folder = shipped_models_dir()
    names = sorted(p.stem for p in folder.glob("*.safetensors")) if folder.is_dir() else []
    return sorted(names, key=lambda n: (n != DEFAULT_MODEL, n))


def resolve_model_path(model: str | Path) -> Path:
    """Path of a shipped model name, a model trained in napari (see
    :func:`user_models_dir`) or a checkpoint file."""
    candidate = Path(model)
    if candidate.suffix == ".safetensors" or candidate.exists() or len(candidate.parts) > 1:
        if candidate.is_dir():
            raise CheckpointError(f"{candidate} is a folder, not a checkpoint file")
        if not candidate.is_file():
            raise CheckpointError(f"checkpoint file not found: {candidate}")
        return candidate
    shipped = shipped_models_dir() / f"{model}.safetensors"
    if shipped.is_file():
        return shipped
    trained = user_models_dir() / f"{model}.safetensors"
    if trained.is_file():
        return trained
    names = ", ".join(shipped_models() + user_models()) or "none installed"
    raise CheckpointError(f"unknown model {str(model)!r}: give a .safetensors file or one of: {names}")


def check_not_pickle(path: str) -> None:
    """Name what a non-safetensors checkpoint is, without ever unpickling it."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if not head:
        raise CheckpointError(f"cannot read checkpoint {path}: the file is empty")
    # safetensors: an 8-byte little-endian header length, then the JSON header.
    # Its first byte is 0x80 for a header of 128 bytes modulo 256, so a pickle
    # is only named when the file does not look like safetensors.
    if len(head) == 9 and head[8:9] == b"{":
        return
    # A pickle (protocol 2+) or torch.save's zip archive: loading those can run code.
    if (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")) or head[:4] == b"PK\x03\x04":
        raise CheckpointError(
            f"{path} is a pickle / PyTorch (.pt) file, not a safetensors checkpoint; it is not loaded, since unpickling can run code"
        )


def checkpoint_metadata(model: str | Path) -> dict:
    """The metadata of a shipped model or checkpoint file, without loading its weights.

    Reads the file's header only: quick enough to call whenever a model is chosen.

    Raises
    ------
    CheckpointError
        If the file is missing, unreadable, or not a napari-colorize checkpoint.
    """
    path = str(resolve_model_path(model))
    check_not_pickle(path)
    return parse_metadata(path, read_metadata_string(path))


def read_metadata_string(path: str) -> str:
    """The napari-colorize metadata of a safetensors file, as stored (JSON)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt") as fh:
            raw_meta = (fh.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    if raw_meta is None:
        raise CheckpointError(f"{path} is a safetensors file but not a napari-colorize checkpoint")
    return raw_meta


def parse_metadata(path: str, raw_meta: str) -> dict:
    """The metadata JSON of ``path`` as a dict, or a CheckpointError naming what is wrong."""
    try:
        meta = json.loads(raw_meta)
    except ValueError as exc:
        raise CheckpointError(f"{path}: its metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: its metadata is not a JSON object")
    return meta


def update_checkpoint_metadata(model: str | Path, updates: dict, *, output: str | Path | None = None) -> str:
    """Write ``updates`` into a checkpoint's metadata, leaving its weights byte for byte as they are.

    Only the file's header is rewritten; every other metadata entry is kept.
    The digest the file had before is appended to ``metadata["earlier_sha256"]``,
    so records made with the earlier file (an output's ``model_sha256``, a
    warm start's ``init``) still name it.

    Parameters
    ----------
    model : str or path
        A shipped model name or a checkpoint file.
    updates : dict
        Metadata entries to set (JSON-serialisable).
    output : path, optional
        Where to write the result (default: replace ``model``'s file, atomically).

    Returns
    -------
    str
        The sha256 of the file written.

    Raises
    ------
    CheckpointError
        If ``model`` is not a readable napari-colorize checkpoint.
    """
    source = resolve_model_path(model)
    meta = checkpoint_metadata(source)
    earlier = [*meta.get("earlier_sha256", []), file_sha256(source)]
    meta.update(updates, earlier_sha256=earlier)
    target = Path(output) if output is not None else source
    tmp = target.with_name(f".{target.name}.tmp")
    with open(source, "rb") as src:
        header_size = int.from_bytes(src.read(8), "little")
        header = json.loads(src.read(header_size))
        header["__metadata__"][METADATA_KEY] = json.dumps(meta, sort_keys=True)
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)  # safetensors keeps the tensor data 8-byte aligned
        with open(tmp, "wb") as dst:
            dst.write(len(text).to_bytes(8, "little"))
            dst.write(text)
            shutil.copyfileobj(src, dst)  # the tensors, untouched (their offsets count from here)
    tmp.replace(target)
    return file_sha256(target)
