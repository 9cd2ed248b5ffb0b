"""Ways to run the network on a CPU, side by side: per-tile time against the
Zhang et al. (2016) network in the same process, and how far each one's
colours move from the plain run's.

Run: python benchmarks/bench_backends.py [--model natural] [--reps 5] [--min-seconds 1]

Each backend runs the shipped network as ``colorize()`` does without hints
(zero hints, a frame context computed beforehand) on 8 real 224 x 224 tiles at once, fp32:

- eager, torch's default layout (NCHW);
- eager, channels-last: what ``colorize()`` ran on a CPU before stop 27;
- ``torch.jit.freeze`` of a trace: weights folded in, batch norms fused into
  the convolutions (oneDNN);
- the model's int8 companion (:mod:`napari_colorize.quantized`) in each
  int8 engine installed (:mod:`napari_colorize.int8_runtime`: OpenVINO,
  ONNX Runtime), what ``colorize()`` runs on a CPU with ``precision="auto"``
  since stop 27 (ONNX Runtime) and stop 28 (OpenVINO, when installed);
- the fp32 network in ONNX Runtime (CPU execution provider), exported here
  (needs ``onnx``, the ``quantize`` extra).

The repetitions are interleaved (every backend once per repetition, Zhang's
too), medians reported as ms per tile and as a ratio of Zhang's median (the
issue's target: at most 1/20), with the largest difference of each
backend's decoded ab (annealed mean, T = 0.38) from the fp32 channels-last run.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_tile_speed import real_tiles, time_forward

from napari_colorize.colornet import HINT_CHANNELS

TARGET_RATIO = 1 / 20


def positional(network, context):
    """``network`` as a module of positional tensors (for tracing and export),
    without hints' keywords and with the frame context fixed."""
    import torch

    class Positional(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.network = network

        def forward(self, lightness, hints):
            return self.network(lightness, hints=hints, context=context.expand(lightness.shape[0], -1))

    return Positional().eval()


def backends(colorizer, tiles, torch) -> dict:
    """{name: callable(tiles) -> logits} for every backend available here."""
    colorizer.network.float().eval()
    hints = tiles.new_zeros((tiles.shape[0], HINT_CHANNELS, *tiles.shape[-2:]))
    with torch.inference_mode():
        context = colorizer.encode_context(colorizer.view_of(tiles[:1]))  # a real frame context: the int8 ranges were calibrated on real ones
    module = positional(colorizer.network, context)
    found = {
        "eager fp32, channels-last (colorize() before stop 27)": lambda x: colorizer.run_network(
            x, hints=hints[: len(x)], context=context.expand(len(x), -1)
        )
    }
    nchw = positional(copy.deepcopy(colorizer.network).to(memory_format=torch.contiguous_format), context)
    found["eager, default layout"] = lambda x: nchw(x, hints[: len(x)])
    from napari_colorize.int8_runtime import INT8_ENGINES, OnnxRuntimeNetwork, OpenVinoNetwork, companion_path, int8_engine

    if colorizer.path and companion_path(colorizer.path).is_file():
        runners = {"openvino": OpenVinoNetwork, "onnxruntime": OnnxRuntimeNetwork}
        for engine in INT8_ENGINES:
            try:
                int8 = runners[engine](str(companion_path(colorizer.path)), torch.get_num_threads())
            except ImportError:
                continue
            serving = " (colorize() on a CPU here)" if engine == int8_engine() else ""
            found[f"int8 companion, {engine}{serving}"] = lambda x, int8=int8: int8(x, context=context.expand(len(x), -1))
    with torch.inference_mode():
        last = torch.channels_last
        frozen = torch.jit.freeze(torch.jit.trace(module, (tiles.contiguous(memory_format=last), hints.contiguous(memory_format=last))))
    found["torch.jit.freeze"] = lambda x: frozen(x, hints[: len(x)])
    try:
        import onnxruntime
    except ImportError:
        return found
    path = Path(tempfile.mkdtemp()) / "network.onnx"
    with torch.no_grad():
        torch.onnx.export(module, (tiles, hints), str(path), input_names=["lightness", "hints"], dynamo=False, opset_version=17)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    found[f"ONNX Runtime {onnxruntime.__version__}"] = lambda x: torch.from_numpy(
        session.run(None, {"lightness": x.numpy(), "hints": hints[: len(x)].numpy()})[0]
    )
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="natural")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    import torch
    from zhang2016 import build_zhang2016

    from napari_colorize.color import DEFAULT_TEMPERATURE, annealed_mean
    from napari_colorize.model import load_checkpoint

    torch.manual_seed(0)
    colorizer = load_checkpoint(args.model, device="cpu")
    tiles, tiles_name = real_tiles(torch)
    runs = backends(colorizer, tiles, torch)
    zhang = build_zhang2016().float().eval()
    bins = torch.as_tensor(colorizer.bins)
    with torch.inference_mode():
        plain = annealed_mean(next(iter(runs.values()))(tiles), bins, temperature=DEFAULT_TEMPERATURE)
        moved = {}
        for name, run in runs.items():
            change = (annealed_mean(run(tiles).float(), bins, temperature=DEFAULT_TEMPERATURE) - plain).norm(dim=1)
            moved[name] = f"{float(change.max()):.1e} / {float(change.mean()):.1e}"
        samples = {name: [] for name in [*runs, "Zhang et al. 2016"]}
        for rep in range(args.reps):
            for name, run in [*runs.items(), ("Zhang et al. 2016", zhang)]:
                samples[name].append(time_forward(run, tiles, min_seconds=args.min_seconds) * 1000 / len(tiles))
            print(f"  rep {rep + 1}/{args.reps}", file=sys.stderr, flush=True)
    reference = statistics.median(samples["Zhang et al. 2016"])
    print(f"# python benchmarks/bench_backends.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(
        f"# torch {torch.__version__}, {torch.get_num_threads()} thread(s); model {colorizer.name} ({colorizer.sha256[:12]}); {tiles_name}, batch {len(tiles)}; medians of {args.reps}"
    )
    print("| backend | ms / tile | / Zhang's | ab change from eager fp32: largest / mean |")
    print("|---|---:|---:|---:|")
    for name, times in samples.items():
        median = statistics.median(times)
        moved_cell = moved.get(name, "")
        print(f"| {name} | {median:.1f} | 1/{reference / median:.1f} | {moved_cell} |")
    print(f"target: at most 1/{1 / TARGET_RATIO:.0f} of Zhang's time per tile")
    return 0


if __name__ == "__main__":
    sys.exit(main())
