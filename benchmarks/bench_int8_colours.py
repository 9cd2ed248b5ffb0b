"""How far int8 moves the colours from fp32, per int8 engine: ``colorize()``
at defaults in fp32 and in int8 on the EM stack of ../shared/data/gray, and
on it with Gaussian noise of sigma 40 grey levels added; the per-pixel ab
change (CIELAB), its mean and 99th percentile.

Run: python benchmarks/bench_int8_colours.py [--model natural]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EM_STACK = Path(__file__).resolve().parents[2] / "shared" / "data" / "gray" / "em-isbi2012-stack.tif"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="natural")
    args = parser.parse_args(argv)
    if not EM_STACK.is_file():
        print(f"{EM_STACK} is not here: nothing to measure")
        return 0
    import numpy as np
    import tifffile
    from skimage.color import rgb2lab

    import napari_colorize as nc
    from napari_colorize.int8_runtime import ENGINE_VARIABLE, INT8_ENGINES, forget_companions

    em = tifffile.imread(EM_STACK)
    noisy = np.clip(em + np.random.default_rng(0).normal(0, 40, em.shape), 0, 255).astype(np.uint8)
    print(f"# python benchmarks/bench_int8_colours.py {' '.join(sys.argv[1:] if argv is None else argv)}; model {args.model}")
    for name, stack in (("EM stack", em), ("EM stack, noise sigma 40", noisy)):
        fp32 = rgb2lab(nc.colorize(stack, model=args.model, device="cpu", precision="fp32"))[..., 1:]
        for engine in INT8_ENGINES:
            os.environ[ENGINE_VARIABLE] = engine
            forget_companions()
            try:
                int8 = rgb2lab(nc.colorize(stack, model=args.model, device="cpu", precision="int8"))[..., 1:]
            except ValueError as exc:  # the engine is not installed
                print(f"{name}, {engine}: {exc}")
                continue
            change = np.linalg.norm(int8 - fp32, axis=-1)
            print(f"{name}, {engine}: ab change from fp32 mean {change.mean():.2f}, 99th percentile {np.percentile(change, 99):.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
