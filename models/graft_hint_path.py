"""Give a second-generation model another model's response to colour hints,
keeping its own automatic result.

colornet-v2 adds the output of its hint path to the encoder's features at
1/4 resolution. With no hints the path's input is all zeros and, with
edge-replicating padding (colornet-v2-replicate and colornet-v2-antialiased,
which share its hint path), its output one constant
vector. This copies the donor's hint path and hint gains and shifts the bias
of the path's last 1x1 convolution by (the model's zero-hint output - the
donor's), so that with no hints the result is the model's own and with
hints the donor's learned response to them is added on top.

Why: a run trained for consistency (stage 5 of ``natural``) kept its
automatic colours but its hint response broke (10 true-colour hints took
PSNR from 19 dB to 9 dB); the shipped model's hint path, grafted this way,
gives it +6 dB with 10 hints. Recorded in the output's metadata
(``hint_path_grafted_from``).

Run from the repository root:

    python models/graft_hint_path.py MODEL DONOR OUT.safetensors
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

#: Side of the zero-hint probe: any size works, the output is constant.
PROBE_SIDE = 64
#: Architectures whose hint path pads by repeating edges (the same path in both).
REPLICATING = ("colornet-v2-replicate", "colornet-v2-antialiased", "colornet-v2-replicate-palette", "colornet-v2-antialiased-palette")


def zero_hint_output(colorizer):
    """The hint path's output (channels,) for no hints."""
    import torch

    from napari_colorize.colornet import HINT_CHANNELS

    network = colorizer.network.eval()
    with torch.no_grad():
        out = network.hint_path(torch.zeros(1, HINT_CHANNELS, PROBE_SIDE, PROBE_SIDE))
    return out[0, :, out.shape[-2] // 2, out.shape[-1] // 2].clone()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="checkpoint whose automatic result is kept")
    parser.add_argument("donor", type=Path, help="checkpoint whose hint response is taken")
    parser.add_argument("output", type=Path)
    args = parser.parse_args(argv)
    if args.output.suffix != ".safetensors":
        parser.error(f"the output must end in .safetensors, got {args.output}")
    if args.output.resolve() in (args.model.resolve(), args.donor.resolve()):
        parser.error("the output must be a new file, not one of the inputs")

    from napari_colorize.architectures import get_architecture
    from napari_colorize.model import file_sha256, load_checkpoint, save_checkpoint

    model, donor = load_checkpoint(args.model, device="cpu"), load_checkpoint(args.donor, device="cpu")
    for colorizer, path in ((model, args.model), (donor, args.donor)):
        if colorizer.architecture not in REPLICATING:
            parser.error(f"{path} is {colorizer.architecture}: only {' and '.join(REPLICATING)} keep a constant zero-hint output")
    widths = (model.metadata.get("width"), donor.metadata.get("width"))
    if widths[0] != widths[1]:
        parser.error(f"the networks differ in width {widths}")
    shift = zero_hint_output(model) - zero_hint_output(donor)
    model = copy.deepcopy(model)  # loaded models are cached and shared: change a copy
    state = model.network.state_dict()
    hint_modules = tuple(f"{module}." for module in get_architecture(model.architecture).hint_modules)
    for name, value in donor.network.state_dict().items():
        if name.startswith(hint_modules):
            state[name] = value.clone()
    last = f"hint_path.{len(model.network.hint_path) - 1}.bias"
    state[last] = state[last] + shift.to(state[last].dtype)
    model.network.load_state_dict(state)
    graft = {"file": args.donor.name, "sha256": file_sha256(args.donor), "zero_hint_shift_max": round(float(shift.abs().max()), 4)}
    save_checkpoint(model, args.output, extra_metadata={"hint_path_grafted_from": graft})
    print(f"wrote {args.output}: the hint path of {args.donor.name} on {args.model.name} (largest zero-hint shift {float(shift.abs().max()):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
