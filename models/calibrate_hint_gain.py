"""Calibrate how far a trained second-generation model trusts colour hints.

colornet-v2 fuses the hint colours, spread near (sigma 16 px) and far
(sigma 128 px), into its output with a gain learned from its features
(``hint_gain``, zero at the start of training). Trained with the rebalanced
loss, which rewards rare saturated colours over matching a given one, the
gain stays small: ten true-colour hints then barely move PSNR. This script
adds a constant to each distance's gain, chosen on tuning images that are
not reported elsewhere, to maximise the mean PSNR with 1 and 10 hints,
provided the rebalanced AuC with 10 hints stays at least that without. The
automatic result (no hints) is untouched: with no hint within reach the
evidence is skipped.

Run from the repository root:

    python models/calibrate_hint_gain.py CHECKPOINT OUT --images FOLDER [--limit 8]

It prints every candidate's scores and records the choice, the candidates
and the images in OUT's metadata (``hint_gain_calibration``).
"""

from __future__ import annotations

import argparse
import sys
from itertools import product
from pathlib import Path

from napari_colorize.evaluation import hint_scores
from napari_colorize.io import find_images
from napari_colorize.model import load_checkpoint, save_checkpoint

#: Constants tried for the near and the far gain.
NEAR = (0.0, 1.0, 3.0)
FAR = (0.0, 0.1, 0.3, 1.0)
COUNTS = (0, 1, 10)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--images", type=Path, required=True, help="colour tuning images (not an evaluation folder you report)")
    parser.add_argument("--limit", type=int, default=8, help="use the last N images of the folder (default 8)")
    args = parser.parse_args(argv)
    import torch

    colorizer = load_checkpoint(args.checkpoint, device="cpu")
    if "hints" not in colorizer.input_names:
        parser.error(f"{args.checkpoint} takes no hints")
    paths = find_images([args.images])[-args.limit :]
    bias = colorizer.network.hint_gain.bias
    learned = bias.detach().clone()
    candidates = []
    for near, far in product(NEAR, FAR):
        with torch.no_grad():
            bias.copy_(learned + torch.tensor([near, far]))
        # The network's own answer to the hints, which the local reach only blends in near them.
        scores = hint_scores(colorizer, paths, COUNTS, hint_reach="frame")
        psnr_with = (scores[1].psnr + scores[10].psnr) / 2
        # Ten hints must not cost rare colours; the learned gain is always a candidate.
        allowed = scores[10].auc_rebalanced >= scores[0].auc_rebalanced or near == far == 0.0
        candidates.append(
            {
                "near": near,
                "far": far,
                "scores": {str(k): [round(v, 3) for v in s[:2]] for k, s in scores.items()},
                "allowed": allowed,
                "objective": round(psnr_with, 3),
            }
        )
        print(f"near +{near:g} far +{far:g}: " + ", ".join(f"k={k} {s.psnr:.2f} dB / {s.auc_rebalanced:.1f} %" for k, s in scores.items()) + ("" if allowed else "  (AuC with 10 hints below k=0: refused)"), flush=True)
    best = max((c for c in candidates if c["allowed"]), key=lambda c: c["objective"])
    with torch.no_grad():
        bias.copy_(learned + torch.tensor([best["near"], best["far"]]))
    calibration = {
        "added": [best["near"], best["far"]],
        "learned": [round(float(v), 5) for v in learned],
        "images": [str(p) for p in paths],
        "objective": "mean PSNR with 1 and 10 hints, provided rebalanced AuC with 10 hints >= without",
        "candidates": candidates,
    }
    save_checkpoint(colorizer, args.output, extra_metadata={"hint_gain_calibration": calibration})
    print(f"chose near +{best['near']:g}, far +{best['far']:g}; wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
