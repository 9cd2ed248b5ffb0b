"""Does a few minutes of fine-tuning on three images of a kind help on
other images of that kind? (The Train colorizer widget's promise.)

Takes the first ``--references`` images (sorted by name) of a held-out folder
(default ../shared/data/eval/micro/bccd, blood smears), fine-tunes ``--base``
on them for ``--minutes`` with :func:`napari_colorize.fine_tuning.fine_tune`
(the widget's own function, its own settings), then scores the gray
baseline, the base model and the fine-tuned one on the folder's other
images with ``napari-colorize evaluate``'s scoring. Writes a Markdown report.

Run: python benchmarks/bench_fine_tune.py [--folder DIR] [--base natural]
         [--minutes 5] [--references 3] [--threads N] [--output PATH]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from napari_colorize.evaluation import evaluate, format_table
from napari_colorize.fine_tuning import fine_tune
from napari_colorize.io import find_images

HERE = Path(__file__).resolve().parent
FOLDER = HERE.parents[1] / "shared" / "data" / "eval" / "micro" / "bccd"
RESULTS = HERE / "RESULTS_fine_tune.md"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=FOLDER)
    parser.add_argument("--base", default="natural")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--references", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"skipped: {args.folder} not found", file=sys.stderr)
        return 0
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    paths = find_images([args.folder])
    references, rest = paths[: args.references], paths[args.references :]
    with tempfile.TemporaryDirectory() as scratch:
        held_out = Path(scratch) / "held-out"
        held_out.mkdir()
        for path in rest:
            (held_out / path.name).symlink_to(path.resolve())
        start = time.perf_counter()
        model = fine_tune(
            [np.asarray(Image.open(p).convert("RGB")) for p in references],
            name="bench-fine-tune",
            base=args.base,
            minutes=args.minutes,
            reference_names=[p.name for p in references],
            output_dir=Path(scratch) / "models",
            device="cpu",
        )
        trained_s = time.perf_counter() - start
        steps = model.metadata["training"]["steps"]
        rows = evaluate([args.base, model.path], held_out, device="cpu")
    rows[-1].method = f"{args.base}, fine-tuned"
    report = [
        "# Fine-tuning on three images of a kind, scored on the others",
        "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Command: `python benchmarks/bench_fine_tune.py {' '.join(argv if argv is not None else sys.argv[1:])}`".rstrip(),
        f"- Machine: {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), CPU",
        f"- References: {', '.join(p.name for p in references)} (of {args.folder}); fine-tuned from `{args.base}` for "
        f"{args.minutes:g} min: {steps} steps, {trained_s / 60:.1f} min with loading",
        f"- Scored on the folder's other {len(rest)} images (gray in, colours compared with the truth).",
        "",
        format_table(rows, title=f"{args.folder.name}, held out"),
        "",
    ]
    text = "\n".join(report)
    print(text)
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
