"""Distil a lean twin of a second-generation model (issue 12: a leaner network).

The lean architectures (``colornet-v2-antialiased[-palette]-lean``,
:data:`napari_colorize.architectures.LEAN_SHARES`) keep half of the channels
inside each residual block: about 0.82 of the full network's int8 time.
Every block's inputs and outputs are those of the
full network, so the student starts as the teacher with the weakest inner
channels cut away, and learns to give the teacher's answers:

- the channels kept are those that carry most: the mean activation of each
  inner channel on real crops times the norm of the weights that read it;
- every weight outside the cut layers is copied; the layers before 1/8
  resolution (stem, down4, hint path) are the teacher's and stay frozen;
- the loss is the KL divergence of the student's bin distribution from the
  teacher's, as it is and as the annealed mean re-weights it (the
  distribution at the temperature T, which alone sets the colours), plus
  the distance of the two annealed means (ab units), plus the relative
  squared distance of the 1/8 and 1/16 features (the frame context is
  pooled from the latter), each weighted by its option;
- the crops carry hints and palettes as training gives them, so the hint
  and palette paths keep their answers too;
- with ``--frames``, a share of the crops (``--frames-share``) is cut from
  scientific frames (their lightness only: the answers are the teacher's),
  so the student learns the teacher's answers where the tool is used, not
  only on photographs;
- the batch norms keep their running statistics (``--norm-statistics``),
  so the student is trained as it runs.

Run from the repository root (checkpoints every few minutes; ``--resume``
continues from OUT's weights, with a fresh optimiser):

    python models/distill_lean.py natural models/runs/natural-lean.safetensors \\
        --images ../shared/data/train/natural [--minutes 60] [--batch-size 12] [--crop-size 160]

A log line every 20 steps (step, losses, elapsed minutes) goes to stdout.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import numpy as np


def residual_blocks(network):
    """(name, block) of every residual block with an inner layer."""
    return [(name, module) for name, module in network.named_modules() if hasattr(module, "body")]


def channel_scores(teacher, batches) -> dict:
    """How much each inner channel of the teacher carries, per cut place."""
    import torch

    activity: dict[str, torch.Tensor] = {}
    hooks = []

    def record(name):
        def hook(_module, _inputs, output):
            activity[name] = activity.get(name, 0) + output.detach().clamp_min(0).mean(dim=(0, 2, 3))

        return hook

    for name, block in residual_blocks(teacher):
        hooks.append(block.body[0].register_forward_hook(record(name)))
    hooks.append(teacher.head[1].register_forward_hook(record("head")))
    with torch.no_grad():
        for lightness, inputs in batches:
            teacher(lightness, **inputs)
    for hook in hooks:
        hook.remove()
    scores = {}
    for name, block in residual_blocks(teacher):
        scores[name] = activity[name] * block.body[1].weight.detach().flatten(2).norm(dim=(0, 2))
    scores["head"] = activity["head"] * teacher.head[2].weight.detach().flatten(1).norm(dim=0)
    return scores


def cut_from(student, teacher, scores) -> list[str]:
    """Copy the teacher into the student, keeping the best-scored inner
    channels where the student has fewer; return what was cut, for the record."""
    import torch

    own = student.state_dict()
    theirs = teacher.state_dict()
    kept = {}  # tensor name -> (axis of the inner channels, their scores, how many the student keeps)
    for name, block in residual_blocks(student):
        inner = (scores[name], block.body[0][0].out_channels)
        kept[f"{name}.body.0.0.weight"] = (0, *inner)
        kept.update({f"{name}.body.0.1.{part}": (0, *inner) for part in ("weight", "bias", "running_mean", "running_var")})
        kept[f"{name}.body.1.weight"] = (1, *inner)
    hidden = (scores["head"], student.head[0].out_channels)
    kept.update({"head.0.weight": (0, *hidden), "head.0.bias": (0, *hidden), "head.2.weight": (1, *hidden)})
    loaded, cut = {}, []
    for key, value in theirs.items():
        if key in kept and own[key].shape != value.shape:
            axis, score, count = kept[key]
            loaded[key] = value.index_select(axis, torch.sort(torch.topk(score, count).indices).values)
            cut.append(key)
        elif key in own and own[key].shape == value.shape:
            loaded[key] = value
    student.load_state_dict(loaded, strict=True)
    return cut


def divergence(student_logits, teacher_logits):
    """KL(teacher || student) over the bins, per output pixel, averaged."""
    import torch

    log_q, log_p = torch.log_softmax(student_logits, 1), torch.log_softmax(teacher_logits, 1)
    return torch.nn.functional.kl_div(log_q, log_p, log_target=True, reduction="none").sum(1).mean()


ENCODER_MODULES = ("down8.", "down16.", "context_path.", "palette_path.")


def take_encoder(student, path: Path) -> int:
    """Load the student's :data:`ENCODER_MODULES` from the checkpoint file
    ``path`` where their shapes match; return how many tensors were taken.
    The file is read as tensors, so an earlier lean twin of other shares serves."""
    from safetensors.torch import load_file

    own = student.state_dict()
    stored = {key.removeprefix("network."): value for key, value in load_file(str(path)).items() if key.startswith("network.")}
    taken = {k: v.to(own[k].dtype) for k, v in stored.items() if k.startswith(ENCODER_MODULES) and k in own and own[k].shape == v.shape}
    if not taken:
        raise ValueError(f"{path} holds no encoder weights of this network's shapes")
    student.load_state_dict(taken, strict=False)
    return len(taken)


def frozen_modules(network):
    """The layers before 1/8 resolution, which the student shares with the teacher."""
    return [network.stem, network.down4, network.hint_path]


def features_hooked(network, store: dict):
    """Keep the 1/8 and 1/16 features of each pass in ``store``."""
    network.down8.register_forward_hook(lambda _m, _i, out: store.__setitem__("x8", out))
    network.down16.register_forward_hook(lambda _m, _i, out: store.__setitem__("x16", out))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher")
    parser.add_argument("output", type=Path)
    parser.add_argument("--images", nargs="+", required=True)
    parser.add_argument("--frames", nargs="+", default=[], help="folders of scientific frames, cut gray for a share of the crops")
    parser.add_argument("--frames-share", type=float, default=0.0, help="share of the crops cut from --frames (0 to 1; default 0)")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--crop-size", type=int, default=160)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--hint-fraction", type=float, default=0.3)
    parser.add_argument("--palette-fraction", type=float, default=0.2)
    parser.add_argument("--annealed-kl-weight", type=float, default=1.0, help="weight of the KL divergence at the temperature T")
    parser.add_argument("--ab-weight", type=float, default=0.5, help="weight of the annealed means' distance, per ab unit")
    parser.add_argument("--feature-weight", type=float, default=0.3, help="weight of the 1/8 and 1/16 features' distance")
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--norm-statistics", choices=("frozen", "batch"), default="frozen",
        help="frozen (default): batch norms keep their running statistics, as the teacher's and as in use; batch: each batch's own",
    )
    parser.add_argument(
        "--encoder-from", type=Path, default=None,
        help="a checkpoint of an earlier lean distillation: its 1/8 and 1/16 encoder and context and palette paths replace the cut ones",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.frames_share <= 1 or bool(args.frames) != bool(args.frames_share):
        parser.error("--frames and a --frames-share between 0 and 1 go together")

    import torch

    from napari_colorize.checkpoint_files import file_sha256
    from napari_colorize.color import DEFAULT_TEMPERATURE, annealed_mean
    from napari_colorize.io import find_images
    from napari_colorize.model import create_colorizer, load_checkpoint, save_checkpoint
    from napari_colorize.training_data import ColorCrops
    from napari_colorize.training_inputs import network_inputs
    from napari_colorize.training_loss import lab_of

    torch.manual_seed(args.seed)
    teacher_model = load_checkpoint(args.teacher, device="cpu")
    teacher = teacher_model.network.eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    lean = f"{teacher_model.architecture}-lean"
    student_model = create_colorizer(architecture=lean, head=teacher_model.head, width=int(teacher_model.metadata["width"]), bins=teacher_model.bins)
    student_model.prior = teacher_model.prior
    student = student_model.network
    temperature = DEFAULT_TEMPERATURE
    bins = torch.as_tensor(teacher_model.bins, dtype=torch.float32)

    images = find_images(args.images)
    crops = ColorCrops(
        images, crop_size=args.crop_size, seed=args.seed, length=10**7, view_size=teacher_model.context_view, any_orientation=True,
        frames=find_images(args.frames), frames_share=args.frames_share,
    )
    loader = iter(torch.utils.data.DataLoader(crops, batch_size=args.batch_size, num_workers=1, shuffle=False, persistent_workers=True))
    generator = torch.Generator()

    def batch_inputs(step):
        crop, view = next(loader)[:2]  # a frames mark may follow
        lab, view_lab = lab_of(crop, "cpu"), lab_of(view, "cpu")
        generator.manual_seed(args.seed * 1_000_003 + step)
        inputs = network_inputs(
            student_model, lab, None, generator=generator, fraction=args.hint_fraction, max_hints=10,
            whole_lab=view_lab, palette_fraction=args.palette_fraction,
        )
        inputs.pop("context", None)  # each network's own, from the view
        return lab[:, :1].contiguous(), view_lab[:, :1].contiguous(), inputs

    record = {"teacher": teacher_model.name, "teacher_sha256": teacher_model.sha256, "images": [Path(f).name for f in args.images]}
    start_step = 0
    if args.resume and args.output.is_file():
        previous = load_checkpoint(args.output, device="cpu")
        student.load_state_dict(previous.network.state_dict())
        record = copy.deepcopy(previous.metadata["lean_distillation"])  # not the cached model's own
        start_step = int(record["steps"])
        print(f"resumed at step {start_step}", flush=True)
    else:
        with torch.no_grad():
            warm = []
            for step in range(8):
                lightness, view, inputs = batch_inputs(-1 - step)
                warm.append((lightness, {**inputs, "context": teacher.encode_context(view)}))
        record["cut"] = cut_from(student, teacher, channel_scores(teacher, warm))
        record.update(steps=0, minutes=0.0, log=[])
        if args.encoder_from:
            record["encoder_from"] = {"file": args.encoder_from.name, "sha256": file_sha256(args.encoder_from), "weights": take_encoder(student, args.encoder_from)}

    for module in frozen_modules(student):
        module.eval()
        for parameter in module.parameters():
            parameter.requires_grad_(False)
    trainable = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=args.lr)
    teacher_features, student_features = {}, {}
    features_hooked(teacher, teacher_features)
    features_hooked(student, student_features)

    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    record.setdefault("segments", []).append({"from_step": start_step, **settings})

    teachers_own = ("created", "earlier_sha256", "training", "description", "init", "sha256")  # not the student's
    student_model.metadata.update({k: v for k, v in teacher_model.metadata.items() if k not in student_model.metadata and k not in teachers_own})

    def save(step, minutes):
        record.update(steps=step, minutes=round(minutes, 1))
        save_checkpoint(student_model, args.output, extra_metadata={"lean_distillation": record, "init": {"model": teacher_model.name, "sha256": teacher_model.sha256, "cut": record["cut"]}})

    began = time.monotonic()
    before = float(record.get("minutes", 0.0))
    last_save = began
    smoothed = None
    step = start_step
    limit = 60 * args.minutes
    while time.monotonic() - began < limit:
        # Cosine over the run's own minutes, from lr to lr / 20.
        progress = (time.monotonic() - began) / limit
        for group in optimizer.param_groups:
            group["lr"] = args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))
        # Frozen statistics: the student colours a crop in training as it will in use, and
        # the teacher's; a batch of 12 crops gives noisy statistics at 1/16 resolution.
        student.train(args.norm_statistics == "batch")
        for module in frozen_modules(student):
            module.eval()
        lightness, view, inputs = batch_inputs(step)
        with torch.no_grad():
            target = teacher(lightness, **inputs, context=teacher.encode_context(view))
            target_ab = annealed_mean(target, bins, temperature=temperature)
            target_x8, target_x16 = teacher_features["x8"], teacher_features["x16"]
        output = student(lightness, **inputs, context=student.encode_context(view))
        x8, x16 = student_features["x8"], student_features["x16"]
        kl = divergence(output, target)
        annealed_kl = divergence(output / temperature, target / temperature)
        ab = annealed_mean(output, bins, temperature=temperature)
        ab_distance = (ab - target_ab).norm(dim=1).mean()
        feature = sum(((s - t) ** 2).mean() / t.var() for s, t in ((x8, target_x8), (x16, target_x16)))
        loss = kl + args.annealed_kl_weight * annealed_kl + args.ab_weight * ab_distance + args.feature_weight * feature
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        values = np.array([float(v.detach()) for v in (loss, kl, annealed_kl, ab_distance, feature)])
        smoothed = values if smoothed is None else 0.95 * smoothed + 0.05 * values
        minutes = before + (time.monotonic() - began) / 60
        if step % 20 == 0:
            line = {"step": step, "minutes": round(minutes, 1), "loss": round(smoothed[0], 4), "kl": round(smoothed[1], 4), "annealed_kl": round(smoothed[2], 4), "ab": round(smoothed[3], 3), "features": round(smoothed[4], 4)}
            record["log"].append(line)
            print(json.dumps(line), flush=True)
        if time.monotonic() - last_save > 60 * args.checkpoint_minutes:
            save(step, minutes)
            last_save = time.monotonic()
    save(step, before + (time.monotonic() - began) / 60)
    print(f"saved {args.output} at step {step}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
