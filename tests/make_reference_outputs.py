"""Record digests of the shipped models' outputs on ../shared/data/gray.

Run once, deliberately, when a change of output is intended (a retrained
model, a new default); ``test_reference_outputs.py`` then checks that code
changes leave the outputs bit-identical. Torch runs on one thread, as in the
test suite, since CPU kernels round differently with other thread counts.
The network runs in fp32 unless a case asks otherwise: the int8 engine's
rounding is ONNX Runtime's for the CPU at hand (``test_quantized.py`` holds it
to fp32 within a tolerance).

    python tests/make_reference_outputs.py
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GRAY = HERE.parent.parent / "shared" / "data" / "gray"
REFERENCE = HERE / "data" / "reference_outputs.json"

#: Settings every recording was made with, beyond each case's options: the
#: fp32 network in the model's own 224 tiles (the defaults when the digests
#: were recorded; the int8 companions and the larger windows came later).
RECORDED_SETTINGS = {"precision": "fp32", "window": 224}

#: (file, model, options) whose outputs are recorded.
CASES = [
    ("em-isbi2012-stack.tif", "natural", {}),
    ("em-isbi2012-stack.tif", "natural-regression", {}),
    ("m51.tif", "natural", {}),
    ("m51.tif", "natural", {"scale": 0.5, "temperature": 0.2}),
    ("m67-palomar-dss.tif", "natural", {}),
    ("m67-palomar-dss.tif", "natural-regression", {"normalize": "stack", "overlap": 48}),
    ("spitzer-irac.tif", "natural", {}),
    ("em-isbi2012-stack.tif", "natural", {"context": "stack"}),
    ("m51.tif", "natural", {"hints": [[100, 150, 200, 120, 60], [400, 300, 80, 120, 220]]}),
    ("m51.tif", "natural", {"hints": [[100, 150, 200, 120, 60], [400, 300, 80, 120, 220]], "hint_reach": "frame"}),
    ("m51.tif", "astro", {}),
    ("m67-palomar-dss.tif", "astro", {}),
    ("spitzer-irac.tif", "astro", {}),
    ("m51.tif", "stained-microscopy", {}),
    # the first generation, kept: its outputs are those recorded for "natural" before v2 shipped
    ("em-isbi2012-stack.tif", "natural-v1", {}),
    ("m67-palomar-dss.tif", "natural-regression-v1", {"normalize": "stack", "overlap": 48}),
]


def machine() -> dict:
    """What the digests depend on: two AVX512 machines of other CPU models rounded differently (stop 18)."""
    import torch

    from napari_colorize.devices import cpu_model

    return {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
    }


def case_key(name: str, model: str, options: dict) -> str:
    return "|".join([name, model, json.dumps(options, sort_keys=True)])


def digest(rgb) -> str:
    return hashlib.sha256(rgb.tobytes()).hexdigest()


def main() -> int:
    import tifffile
    import torch

    from napari_colorize import colorize

    torch.set_num_threads(1)
    records = {}
    for name, model, options in CASES:
        image = tifffile.imread(GRAY / name)
        rgb = colorize(image, model=model, device="cpu", **{**RECORDED_SETTINGS, **options})
        records[case_key(name, model, options)] = {"shape": list(rgb.shape), "sha256": digest(rgb)}
        print(name, model, options, rgb.shape, records[case_key(name, model, options)]["sha256"][:12], flush=True)
    REFERENCE.write_text(json.dumps({"machine": machine(), "outputs": records}, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
