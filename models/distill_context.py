"""Teach a second-generation model's context path that a cut-out of a frame
is the same frame.

colornet-v2 colours every tile of a frame with one descriptor of the whole
frame (:mod:`napari_colorize.context`). Colorize a 300 px cut-out of a star
cluster alone and the descriptor comes from the cut-out instead, a view of
the dense core in place of a dark sky with a small cluster: the context path
answers the two views differently, and the cut-out's colours shift
(``benchmarks/bench_consistency.py``, "crop 300²"). Training the whole
network against that costs colour on photographs (models/runs/README.md,
stop 22), so this script trains the context path alone, on descriptors
computed once by the model's own frozen encoder:

- for each scientific frame (``--frames``: telescope and microscope images,
  synthetic star fields; only their lightness is used), the views of random
  cut-outs (from 96 px to the whole frame, with the whole frame's intensity
  range, as ``colorize`` gives a crop) are taught the answer the shipped
  path gives the whole frame;
- for each photograph (``--photos``), its own views keep the answers the
  shipped path gives them, weighted by ``--photo-weight``, so the colours of
  photographs stay as they were.

Nothing else in the network changes. A tenth of the images of each kind is
held out and reported: how much of the frames' disagreement is left, and
how far the photographs' answers moved.

Run from the repository root:

    python models/distill_context.py CHECKPOINT OUT --frames FOLDER... --photos FOLDER... \\
        [--photo-limit 1600] [--photo-weight 3] [--steps 3000] [--seed 0]

OUT's metadata records the folders, the settings and the held-out figures
(``context_distillation``).
"""

from __future__ import annotations

import argparse
import copy
import sys
import warnings
from pathlib import Path

import numpy as np

from napari_colorize.context import frame_view
from napari_colorize.evaluation import colour_truths
from napari_colorize.io import find_images, read_image
from napari_colorize.model import load_checkpoint, save_checkpoint
from napari_colorize.normalization import intensity_range

#: Cut-outs drawn per frame and per photograph, besides the whole image.
FRAME_CUT_OUTS = 6
PHOTO_CUT_OUTS = 3
#: Smallest side of a cut-out (px), and the share of images held out.
SMALLEST_CUT_OUT = 96
HELD_OUT = 0.1
BATCH = 1024


def cut_outs(shape: tuple[int, int], count: int, rng) -> list[tuple[slice, slice]]:
    """The whole image, then ``count`` random rectangles of it, each side
    from 96 px (or the image's side) to the whole, aspect up to about 2:1."""
    h, w = shape
    regions = [(slice(0, h), slice(0, w))]
    for _ in range(count):
        side = rng.uniform(min(SMALLEST_CUT_OUT, h, w), min(h, w))
        rows, cols = (int(np.clip(side * rng.uniform(0.7, 1.4), min(SMALLEST_CUT_OUT, n), n)) for n in (h, w))
        top, left = int(rng.integers(h - rows + 1)), int(rng.integers(w - cols + 1))
        regions.append((slice(top, top + rows), slice(left, left + cols)))
    return regions


def frame_grays(paths):
    """The first frame of each readable image as (values, low, high), with
    ``colorize``'s default intensity range."""
    for path in paths:
        try:
            image = read_image(path)
        except (OSError, ValueError) as error:
            print(f"skipped {path}: {error}", file=sys.stderr)
            continue
        frame = np.asarray(image.reshape(-1, *image.shape[-2:])[0], dtype=np.float32)
        yield (frame, *intensity_range(frame))


def photo_grays(paths):
    """Each readable colour photograph as the gray evaluation colorizes, with its range (0, 1)."""
    for _, _, _, gray in colour_truths(paths):
        yield gray, 0.0, 1.0


def descriptors(colorizer, grays, count: int, rng) -> list:
    """For each (values, low, high) of ``grays``, the descriptors (1 + count, D)
    of its whole view and of ``count`` cut-outs."""
    import torch

    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # colour frames: 'colorizing its luminance' is what is wanted
        for gray, low, high in grays:
            views = [frame_view(colorizer, gray[region], low, high) for region in cut_outs(gray.shape, count, rng)]
            # A clone outside inference mode, so that training may use it.
            found.append(colorizer.encode_context(torch.cat(views)).cpu().clone())
    return found


def limited(folders, limit: int | None, rng) -> list[Path]:
    """The images of each folder, at most ``limit`` of each (a random choice)."""
    chosen = []
    for folder in folders:
        paths = find_images([folder])
        if limit is not None and len(paths) > limit:
            paths = [paths[i] for i in sorted(rng.choice(len(paths), limit, replace=False))]
        chosen += paths
    return chosen


def split(sets: list, rng):
    """(training, held out) rows: every view of an image goes to one side."""
    held = rng.random(len(sets)) < HELD_OUT

    def rows(side):
        return [s for s, h in zip(sets, held) if h == side]

    return rows(False), rows(True)


def with_targets(context_path, sets, *, whole: bool):
    """(views, answers): each view's target is ``context_path``'s answer to the
    image's whole view (``whole``) or to the view itself."""
    import torch

    with torch.no_grad():
        views = torch.cat(sets)
        if whole:
            return views, torch.cat([context_path(s[:1]).expand(len(s), -1) for s in sets])
        return views, context_path(views)


def distill(network, frame_sets, photo_sets, *, photo_weight: float, steps: int, seed: int) -> dict:
    """Train ``network.context_path`` in place; return the held-out figures."""
    import torch

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    teacher = copy.deepcopy(network.context_path).eval()
    (frames, frames_held), (photos, photos_held) = split(frame_sets, rng), split(photo_sets, rng)
    if not frames or not photos:
        raise ValueError("need frames and photographs left for training after holding out a tenth")
    frame_x, frame_y = with_targets(teacher, frames, whole=True)
    photo_x, photo_y = with_targets(teacher, photos, whole=False)
    student = network.context_path.train()
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        f, p = torch.randint(len(frame_x), (BATCH,)), torch.randint(len(photo_x), (BATCH,))
        loss = ((student(frame_x[f]) - frame_y[f]) ** 2).sum(1).mean()
        loss = loss + photo_weight * ((student(photo_x[p]) - photo_y[p]) ** 2).sum(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    student.eval()
    return held_out_figures(teacher, student, frames_held, photos_held)


def held_out_figures(teacher, student, frames, photos) -> dict:
    """Mean distance of held-out frames' views from their whole frame's shipped
    answer, before and after; and how far the photographs' answers moved,
    relative to their length."""
    import torch

    figures = {"frames held out": len(frames), "photos held out": len(photos)}
    with torch.no_grad():
        if frames:
            x, y = with_targets(teacher, frames, whole=True)
            figures["frame disagreement before"] = round(float((teacher(x) - y).norm(dim=1).mean()), 4)
            figures["frame disagreement after"] = round(float((student(x) - y).norm(dim=1).mean()), 4)
        if photos:
            x, y = with_targets(teacher, photos, whole=False)
            figures["photo answers moved"] = round(float((student(x) - y).norm(dim=1).mean() / y.norm(dim=1).mean()), 4)
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--frames", type=Path, nargs="+", required=True, help="folders of scientific frames (gray or colour)")
    parser.add_argument("--photos", type=Path, nargs="+", required=True, help="folders of colour photographs")
    parser.add_argument("--photo-limit", type=int, default=1600, help="photographs taken from each --photos folder at most (default 1600)")
    parser.add_argument("--photo-weight", type=float, default=3.0, help="weight of keeping the photographs' answers (default 3)")
    parser.add_argument("--steps", type=int, default=3000, help="optimiser steps (default 3000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.output.resolve() == args.checkpoint.resolve():
        parser.error("OUT must not be the input checkpoint")
    if args.steps < 1 or args.photo_weight < 0 or args.photo_limit < 1:
        parser.error("--steps and --photo-limit must be at least 1, --photo-weight not negative")
    # A copy: loaded models are cached, and this one is about to change.
    colorizer = copy.deepcopy(load_checkpoint(args.checkpoint, device="cpu"))
    if "context" not in colorizer.input_names:
        parser.error(f"{args.checkpoint} takes no frame context")
    rng = np.random.default_rng(args.seed)
    frame_paths = find_images(args.frames)
    photo_paths = limited(args.photos, args.photo_limit, rng)
    if not frame_paths or not photo_paths:
        parser.error("found no frames" if not frame_paths else "found no photographs")
    print(f"descriptors of {len(frame_paths)} frames and {len(photo_paths)} photographs ...", flush=True)
    frame_sets = descriptors(colorizer, frame_grays(frame_paths), FRAME_CUT_OUTS, rng)
    photo_sets = descriptors(colorizer, photo_grays(photo_paths), PHOTO_CUT_OUTS, rng)
    try:
        figures = distill(colorizer.network, frame_sets, photo_sets, photo_weight=args.photo_weight, steps=args.steps, seed=args.seed)
    except ValueError as error:
        parser.error(str(error))
    print(", ".join(f"{k} {v}" for k, v in figures.items()))
    record = {
        "from": {"file": args.checkpoint.name, "sha256": colorizer.sha256},
        "frames": [str(f) for f in args.frames],
        "photos": [str(p) for p in args.photos],
        "images": {"frames": len(frame_sets), "photos": len(photo_sets)},
        "photo limit": args.photo_limit,
        "photo weight": args.photo_weight,
        "steps": args.steps,
        "seed": args.seed,
        "held out": figures,
    }
    # Its weights differ now: digests of the input no longer name this file.
    colorizer.metadata.pop("earlier_sha256", None)
    save_checkpoint(colorizer, args.output, extra_metadata={"context_distillation": record})
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
