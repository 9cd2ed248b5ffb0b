"""CPU speed per 224x224 tile: our shipped network vs the Zhang et al. (2016) network.

Run: python benchmarks/bench_tile_speed.py [--reps 7] [--model natural] [--precision auto] [--json PATH]

Both networks run in this one process, eval mode, under
torch.inference_mode(), at the default torch thread count, with subnormals
flushed to zero (torch.set_flush_denormal(True), as Colorizer.predict_ab
does in colorize()). Ours runs as colorize() runs it on a CPU: with
``--precision auto`` (the default), the model's int8 companion in ONNX
Runtime where it has one, else fp32 (Colorizer.run_network: weights and
inputs channels-last), with a real frame context (the first tile's view);
its GFLOP are counted on the fp32 network. Zhang's, fp32, the fixed reference of the
ratios recorded since the start, in torch's default layout. The input tiles are the lightness of real image content
(scikit-image's 512x512 'camera' photograph, cut into 8 tiles), not noise. After a warm-up,
the measurements are interleaved: every repetition times ours and Zhang's at
batch 1 and batch 8 (alternating which network goes first), so drift in
machine load hits both alike. Reported figures are medians over the
repetitions of ms per tile, the ratio ours/zhang of those medians, and the
median of the per-repetition ratios (paired, the more robust of the two).

Only the network forward pass is timed (input tile (N, 1, 224, 224) of L in
[0, 100] -> logits (N, Q, 56, 56)); decoding to ab (annealed mean) is timed
separately for ours as an extra line (Colorizer.predict_ab, the call
colorize() makes). Zhang's network has random weights:
its speed does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

TILE = 224
BATCHES = (1, 8)
#: Issue 12's target: ours must take at most this fraction of Zhang's per-tile CPU time.
TARGET_RATIO = 0.05


def gflop_per_tile(network, torch) -> float:
    """Forward FLOPs of one tile (FlopCounterMode counts a multiply-add as 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 1, TILE, TILE) * 100
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        network(x)
    return counter.get_total_flops() / 1e9


def automatic_forward(colorizer, torch, *, int8=None, view=None):
    """The network as colorize() calls it per tile without hints: extra
    per-pixel inputs as zeros, a frame context computed once beforehand
    (from ``view``, a low-resolution view of the frame, or noise), or the
    model's ``int8`` companion (:func:`napari_colorize.int8_runtime.load_int8`)."""
    colorizer.network.float().eval()
    context = None
    if colorizer.frame_inputs:
        view = torch.rand(1, 1, colorizer.context_view, colorizer.context_view) * 100 if view is None else view
        with torch.inference_mode():
            context = colorizer.encode_context(view)
    if int8 is not None:
        return lambda x: int8(x, **({"context": context.expand(x.shape[0], -1)} if "context" in int8.input_names else {}))

    def forward(x):
        extras = {}
        for spec in colorizer.extra_inputs:
            if spec.kind == "frame":
                extras[spec.name] = context.expand(x.shape[0], -1)
            elif spec.kind == "pixels":  # a reference palette ('bins') is left out, as colorize() does without one
                extras[spec.name] = x.new_zeros((x.shape[0], spec.channels, *x.shape[-2:]))
        return colorizer.run_network(x, **extras)

    return forward


def real_tiles(torch):
    """(8, 1, 224, 224) L tiles in [0, 100] cut from a real photograph, and its name."""
    import numpy as np

    from napari_colorize.color import gray_to_lightness

    try:
        from skimage import data

        photo = data.camera().astype(np.float32) / 255.0
        name = "scikit-image 'camera' (512x512), 8 tiles"
    except Exception:  # noqa: BLE001 - any failure: fall back to noise
        photo = np.random.default_rng(0).random((512, 512), dtype=np.float32)
        name = "uniform noise (scikit-image 'camera' unavailable)"
    lightness = gray_to_lightness(photo)
    starts = [(y, x) for y in (0, 144, 288) for x in (0, 144, 288)][:8]
    tiles = np.stack([lightness[y : y + TILE, x : x + TILE] for y, x in starts])
    return torch.from_numpy(np.ascontiguousarray(tiles))[:, None], name


def time_forward(fn, x, *, min_seconds: float) -> float:
    """Seconds per call of fn(x): repeat until min_seconds have passed (at least once)."""
    import torch

    torch.set_flush_denormal(True)  # predict_ab resets it after each call
    calls, start = 0, time.perf_counter()
    while True:
        fn(x)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / calls


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7, help="interleaved repetitions (default 7)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="minimum time per measurement (default 1 s)")
    parser.add_argument("--model", default="natural", help="shipped model name or checkpoint (default natural)")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument("--precision", choices=("auto", "fp32", "int8"), default="auto", help="ours as colorize() runs it on a CPU (auto: int8 where the model has a companion)")
    args = parser.parse_args(argv)

    import torch
    from zhang2016 import build_zhang2016

    from napari_colorize.model import load_checkpoint

    torch.manual_seed(0)
    colorizer = load_checkpoint(args.model, device="cpu")
    zhang = build_zhang2016().float().eval()
    from napari_colorize.int8_runtime import load_int8
    from napari_colorize.prediction import resolve_precision

    precision = resolve_precision(colorizer, args.precision)
    int8 = load_int8(colorizer) if precision == "int8" else None
    tiles, tiles_name = real_tiles(torch)
    view = colorizer.view_of(tiles[:1])  # a real frame context: int8's ranges were calibrated on real ones
    nets = {"ours": automatic_forward(colorizer, torch, int8=int8, view=view), "zhang": zhang}
    fp32_nets = {"ours": automatic_forward(colorizer, torch, view=view), "zhang": zhang}  # FLOPs are counted on torch's
    params = {name: sum(p.numel() for p in net.parameters()) for name, net in (("ours", colorizer.network), ("zhang", zhang))}
    gflops = {name: gflop_per_tile(net, torch) for name, net in fp32_nets.items()}
    inputs = {b: tiles[:b].clone() for b in BATCHES}

    from napari_colorize.color import DEFAULT_TEMPERATURE

    given = {"network": int8} if int8 is not None else {}
    if "context" in colorizer.frame_inputs:  # the frame's context, computed once, as colorize() gives it
        with torch.inference_mode():
            given["context"] = colorizer.encode_context(view)

    def decode(x):
        return colorizer.predict_ab(x, temperature=DEFAULT_TEMPERATURE, **given)

    ftz = torch.set_flush_denormal(True)
    print(f"torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}, ours in {precision}, inference_mode, eval, "
          f"flush subnormals {'on' if ftz else 'unsupported here'}")
    print(f"input tiles: {tiles_name}")
    print(f"model {colorizer.name!r} (sha256 {colorizer.sha256[:12]}), Zhang 2016 from its layer table (random weights)")
    for name in nets:
        print(f"{name:6s}: {params[name] / 1e6:6.2f} M parameters, {gflops[name]:6.2f} GFLOP per 224x224 tile")
    print(f"FLOP ratio ours/zhang = {gflops['ours'] / gflops['zhang']:.3f}")

    samples = {(name, b): [] for name in nets for b in BATCHES}
    samples.update({("ours+decode", b): [] for b in BATCHES})
    with torch.inference_mode():
        # Warm-up: every (network, batch) shape once or twice, untimed.
        for net in nets.values():
            for b in BATCHES:
                for _ in range(2 if b == 1 else 1):
                    net(inputs[b])
        for b in BATCHES:
            decode(inputs[b])
        for rep in range(args.reps):
            order = list(nets) if rep % 2 == 0 else list(reversed(nets))
            for b in BATCHES:
                for name in order:
                    sec = time_forward(nets[name], inputs[b], min_seconds=args.min_seconds)
                    samples[(name, b)].append(sec * 1000 / b)
                sec = time_forward(decode, inputs[b], min_seconds=args.min_seconds / 2)
                samples[("ours+decode", b)].append(sec * 1000 / b)
            done = ", ".join(f"b{b}: {samples[('ours', b)][-1]:.1f} vs {samples[('zhang', b)][-1]:.1f}" for b in BATCHES)
            print(f"  rep {rep + 1}/{args.reps}: ms/tile ours vs zhang  {done}", flush=True)

    results = {
        "torch_version": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "model": colorizer.name,
        "model_sha256": colorizer.sha256,
        "precision": precision,
        "reps": args.reps,
        "input_tiles": tiles_name,
        "flush_denormal": bool(ftz),
        "params": params,
        "gflop_per_tile": gflops,
        "target_ratio": TARGET_RATIO,
        "batches": {},
    }
    print()
    print(f"{'batch':>5}  {'ours ms/tile':>12}  {'zhang ms/tile':>13}  {'ratio of medians':>16}  {'median paired ratio':>19}  {'ours+decode':>11}")
    for b in BATCHES:
        ours, zhang = samples[("ours", b)], samples[("zhang", b)]
        med_ours, med_zhang = statistics.median(ours), statistics.median(zhang)
        paired = statistics.median(o / z for o, z in zip(ours, zhang))
        med_decode = statistics.median(samples[("ours+decode", b)])
        results["batches"][str(b)] = {
            "ours_ms_per_tile": med_ours,
            "zhang_ms_per_tile": med_zhang,
            "ratio_of_medians": med_ours / med_zhang,
            "median_paired_ratio": paired,
            "ours_with_decode_ms_per_tile": med_decode,
            "samples_ms_per_tile": {"ours": ours, "zhang": zhang, "ours+decode": samples[("ours+decode", b)]},
        }
        print(f"{b:5d}  {med_ours:12.2f}  {med_zhang:13.1f}  {med_ours / med_zhang:16.3f}  {paired:19.3f}  {med_decode:11.2f}")
    worst = max(r["ratio_of_medians"] for r in results["batches"].values())
    verdict = "meets" if worst <= TARGET_RATIO else "MISSES"
    results["meets_target"] = worst <= TARGET_RATIO
    print(f"\nworst ratio ours/zhang = {worst:.3f} (1/{1 / worst:.1f}); target <= {TARGET_RATIO} -> {verdict} the target")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
