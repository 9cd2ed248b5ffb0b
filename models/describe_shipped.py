"""Record the shipped models' descriptions in their checkpoints.

Each model's description, domain, training data and terms come from
models/descriptions.json, which keeps the texts under review with the code.
Only the metadata of each file is rewritten: its weights stay byte for byte
as they are, and the digest the file had before is kept in
``metadata["earlier_sha256"]``. A file that already records its texts is left
alone, so running this twice changes nothing.

Run from the repository root: python models/describe_shipped.py [NAME ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from napari_colorize.model import checkpoint_metadata, update_checkpoint_metadata
from napari_colorize.model_info import ModelDescription

MODELS = Path(__file__).resolve().parent
DESCRIPTIONS = MODELS / "descriptions.json"


def shipped_descriptions() -> dict[str, ModelDescription]:
    """The description of each shipped model, by name, as models/descriptions.json gives it."""
    return {name: ModelDescription(**fields) for name, fields in json.loads(DESCRIPTIONS.read_text(encoding="utf-8")).items()}


def main(names: list[str]) -> None:
    descriptions = shipped_descriptions()
    for name in names or list(descriptions):
        path = MODELS / f"{name}.safetensors"
        wanted = descriptions[name]
        if ModelDescription.recorded_in(checkpoint_metadata(path)) == wanted:
            print(f"{path.name}: already described")
            continue
        digest = update_checkpoint_metadata(path, wanted.entries())
        print(f"{path.name}: described, sha256 now {digest}")


if __name__ == "__main__":
    main(sys.argv[1:])
