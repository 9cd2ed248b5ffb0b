"""Average the weights of several checkpoints of one training run.

Late checkpoints of a run, taken at a low learning rate, scatter around a
minimum; their mean (tail averaging, as in stochastic weight averaging) is
often steadier than any one of them. Every floating-point tensor of the
network is averaged, batch-norm statistics included; the metadata is the
last checkpoint's, plus ``averaged_from``: each input's file name, training
steps and sha256.

Usage, from the repository root:

    python models/average_checkpoints.py OUT.safetensors CKPT [CKPT ...]
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path)
    parser.add_argument(
        "checkpoints", type=Path, nargs="+", help="checkpoints of one architecture and head; the last one's metadata is kept"
    )
    args = parser.parse_args(argv)
    if args.output.suffix != ".safetensors":
        parser.error(f"the output must end in .safetensors, got {args.output}")
    if args.output.resolve() in {path.resolve() for path in args.checkpoints}:
        parser.error("the output would overwrite one of the checkpoints averaged")

    from napari_colorize.model import file_sha256, load_checkpoint, save_checkpoint

    models = [load_checkpoint(path) for path in args.checkpoints]
    kinds = {(model.architecture, model.head, model.metadata.get("width"), len(model.bins)) for model in models}
    if len(kinds) > 1:
        parser.error(f"the checkpoints are of different networks: {sorted(kinds)}")
    states = [model.network.state_dict() for model in models]
    mean = {
        name: sum(state[name].float() for state in states) / len(states) if value.is_floating_point() else value
        for name, value in states[-1].items()
    }
    result = copy.deepcopy(models[-1])  # loaded models are cached and shared: change a copy
    result.network.load_state_dict(mean)
    sources = [
        {
            "file": path.name,
            "steps": model.metadata.get("training", {}).get("steps"),
            "sha256": file_sha256(path),
        }
        for path, model in zip(args.checkpoints, models)
    ]
    save_checkpoint(result, args.output, extra_metadata={"averaged_from": sources})
    print(f"wrote {args.output}: the mean of {len(models)} checkpoints (steps {', '.join(str(s['steps']) for s in sources)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
