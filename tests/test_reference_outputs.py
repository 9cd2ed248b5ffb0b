"""The shipped models' outputs on the real gray samples stay bit-identical
to those recorded by tests/make_reference_outputs.py: reshaping code must not
move a single pixel. Skips when ../shared/data is absent, or on a machine
whose torch or CPU kernels differ from the recording's (CPU kernels round
differently there; re-record deliberately with the script)."""

from __future__ import annotations

import json

import pytest
from make_reference_outputs import CASES, GRAY, RECORDED_SETTINGS, REFERENCE, case_key, digest, machine

from napari_colorize import colorize

RECORDED = json.loads(REFERENCE.read_text())

pytestmark = [
    pytest.mark.skipif(not GRAY.is_dir(), reason="../shared/data/gray is not here"),
    pytest.mark.skipif(machine() != RECORDED["machine"], reason=f"recorded on {RECORDED['machine']}, this is {machine()}"),
]


@pytest.mark.parametrize(("name", "model", "options"), CASES, ids=[case_key(*case) for case in CASES])
def test_output_is_bit_identical_to_the_recording(name, model, options):
    import tifffile

    image = tifffile.imread(GRAY / name)
    rgb = colorize(image, model=model, device="cpu", **{**RECORDED_SETTINGS, **options})
    expected = RECORDED["outputs"][case_key(name, model, options)]
    assert list(rgb.shape) == expected["shape"]
    assert digest(rgb) == expected["sha256"]
