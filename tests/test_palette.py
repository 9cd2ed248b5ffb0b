"""Reference palettes: a colour image's distribution over the ab bins, the
palette-taking networks, and ``colorize(..., reference=)``."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import smooth_frame

from napari_colorize import colorize
from napari_colorize.color import ab_bins, rgb_to_lab
from napari_colorize.colornet import PALETTE_MODULES
from napari_colorize.model import copy_matching_weights, create_colorizer
from napari_colorize.palette import reference_palette

RED, BLUE = (210, 40, 40), (40, 60, 220)


def flat(colour, shape=(40, 50)):
    return np.broadcast_to(np.array(colour, np.uint8), (*shape, 3)).copy()


def colour_ab(colour):
    return rgb_to_lab(np.array([[colour]], np.uint8))[0, 0, 1:]


def test_a_palette_is_a_distribution_centred_on_the_reference_colours():
    bins = ab_bins()
    half = np.concatenate([flat(RED), flat(BLUE)], axis=1)
    palette = reference_palette(half, bins)
    assert palette.shape == (len(bins),) and palette.dtype == np.float32
    assert palette.min() >= 0 and palette.sum() == pytest.approx(1.0, abs=1e-5)
    # half the mass within 15 ab units of each colour, none far from both
    for colour in (RED, BLUE):
        near = np.linalg.norm(bins - colour_ab(colour), axis=1) < 15
        assert palette[near].sum() == pytest.approx(0.5, abs=0.05)
    # any dtype and size: uint16 (scaled from its largest value) and float give the same palette as uint8
    half[0, 0] = 255
    palette = reference_palette(half, bins)
    np.testing.assert_allclose(reference_palette(half.astype(np.uint16) * 257, bins), palette, atol=1e-4)
    np.testing.assert_allclose(reference_palette(half / 255.0, bins), palette, atol=1e-4)
    big = np.kron(half, np.ones((12, 12, 1), np.uint8))  # 480 x 1200: taken from a smaller view
    np.testing.assert_allclose(reference_palette(big, bins), palette, atol=0.02)
    # a lazy reference gives the same, read only every few pixels
    da = pytest.importorskip("dask.array")
    np.testing.assert_array_equal(reference_palette(da.from_array(big, chunks=(100, 100, 3)), bins), reference_palette(big, bins))


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        (np.full((20, 20, 3), 128, np.uint8), "gray"),
        (np.zeros((20, 20), np.uint8), "RGB image"),
        (np.zeros((2, 20, 20, 3), np.uint8), "RGB image"),
    ],
)
def test_a_reference_that_is_not_a_colour_image_is_refused(reference, message):
    with pytest.raises(ValueError, match=message):
        reference_palette(reference, ab_bins())


def palette_twin(width=8, seed=3):
    """A colornet-v2-antialiased-palette with the weights of a random
    colornet-v2-antialiased (its palette branches as they start: zero)."""
    import torch

    torch.manual_seed(seed)
    plain = create_colorizer(architecture="colornet-v2-antialiased", width=width)
    with torch.no_grad():
        for value in plain.network.parameters():
            value.add_(0.05 * torch.randn_like(value))
    twin = create_colorizer(architecture="colornet-v2-antialiased-palette", width=width)
    missing = copy_matching_weights(twin, plain)
    assert all(name.startswith(PALETTE_MODULES) for name in missing) and missing
    plain.network.eval(), twin.network.eval()
    return plain, twin


def test_without_a_palette_a_palette_network_computes_what_its_twin_does():
    import torch

    plain, twin = palette_twin()
    lightness = torch.rand(2, 1, 64, 64) * 100
    expected = plain.predict_ab(lightness, temperature=0.38)
    np.testing.assert_array_equal(twin.predict_ab(lightness, temperature=0.38).numpy(), expected.numpy())
    # an all-zero palette is no palette
    zeros = torch.zeros(1, twin.num_bins)
    np.testing.assert_array_equal(twin.predict_ab(lightness, temperature=0.38, palette=zeros).numpy(), expected.numpy())


def test_the_palette_prior_pulls_the_colours_toward_the_reference():
    import torch

    _, twin = palette_twin()
    with torch.no_grad():
        twin.network.palette_gain.bias.fill_(1.0)  # as if trained to trust the palette
    lightness = torch.rand(1, 1, 64, 64) * 100
    for colour in (RED, BLUE):
        palette = torch.from_numpy(reference_palette(flat(colour), twin.bins))[None]
        ab = twin.predict_ab(lightness, temperature=0.38, palette=palette)
        mean = ab.mean(dim=(2, 3))[0].numpy()
        assert np.linalg.norm(mean - colour_ab(colour)) < 20, (colour, mean)


def test_colorize_takes_a_reference_for_a_palette_model_only(natural, natural_v1):
    frame = smooth_frame((48, 64))
    if "palette" not in natural.input_names:
        pytest.skip("the shipped natural takes no palette")
    automatic = colorize(frame, model=natural, device="cpu")
    steered = {
        name: colorize(frame, model=natural, device="cpu", reference=flat(colour)) for name, colour in (("red", RED), ("blue", BLUE))
    }
    lab = {name: rgb_to_lab(rgb)[..., 1:].reshape(-1, 2).mean(0) for name, rgb in {"auto": automatic, **steered}.items()}
    # trained to follow it: each reference brings the colours nearer its own than the other reference does
    for own, other, colour in (("red", "blue", RED), ("blue", "red", BLUE)):
        target = colour_ab(colour)
        assert np.linalg.norm(lab[own] - target) < np.linalg.norm(lab[other] - target) - 10, lab
    with pytest.raises(ValueError, match="takes no reference palette"):
        colorize(frame, model=natural_v1, device="cpu", reference=flat(RED))
    with pytest.raises(ValueError, match="reference="):
        colorize(frame, model=natural, device="cpu", extra_inputs={"palette": np.zeros((natural.num_bins, 48, 64))})
    with pytest.raises(ValueError, match="gray"):
        colorize(frame, model=natural, device="cpu", reference=np.full((8, 8, 3), 90, np.uint8))


def test_training_gives_a_share_of_the_crops_their_image_palette():
    import torch

    from napari_colorize.training_inputs import sample_palettes

    bins = torch.as_tensor(ab_bins())
    ab = torch.zeros(6, 2, 32, 32)
    ab[:, 0] = 60.0  # every image red-ish: a* = 60
    none = sample_palettes(ab, bins, generator=torch.Generator().manual_seed(0), fraction=0.0)
    assert none.shape == (6, len(bins)) and not none.any()
    every = sample_palettes(ab, bins, generator=torch.Generator().manual_seed(0), fraction=1.0)
    np.testing.assert_allclose(every.sum(1).numpy(), 1.0, atol=1e-5)
    assert float(bins[every[0].argmax()][0]) == pytest.approx(60, abs=10)
    some = sample_palettes(ab, bins, generator=torch.Generator().manual_seed(0), fraction=0.5)
    given = some.sum(1) > 0
    assert 0 < int(given.sum()) < 6 and torch.allclose(some[given], every[given])


def test_learning_to_follow_a_palette_leaves_the_automatic_colours_alone(training_folder, tmp_path):
    import torch

    from napari_colorize.model import load_checkpoint
    from napari_colorize.training import TrainConfig, train

    base = load_checkpoint("natural").network.state_dict()
    modules = PALETTE_MODULES
    config = TrainConfig(
        steps=2,
        batch_size=4,
        crop_size=32,
        workers=0,
        learning_rate=1e-3,
        checkpoint_minutes=60,
        architecture="colornet-v2-antialiased-palette",
        palette_fraction=1.0,
        learn_only=modules,
    )
    trained = train([training_folder], output=tmp_path / "p.safetensors", config=config, device="cpu", init="natural", progress=False)
    state = trained.network.state_dict()
    learned = [name for name in state if name.startswith(modules)]
    assert learned and not all(torch.equal(state[name], torch.zeros_like(state[name])) for name in learned)
    assert all(torch.equal(state[name], base[name]) for name in state if name not in learned)
    saved = load_checkpoint(tmp_path / "p.safetensors")
    assert saved.metadata["training"]["config"]["palette_fraction"] == 1.0
    # the frozen layers saw natural's crops, not this run's 32 px ones: small frames are still enlarged to those
    assert saved.smallest_side == load_checkpoint("natural").smallest_side == 128


def test_a_palette_share_needs_a_palette_network(training_folder, tmp_path):
    from napari_colorize.training import TrainConfig, train

    for config, message in (
        (TrainConfig(steps=1, workers=0, crop_size=32, batch_size=2, palette_fraction=0.5), "palette-taking network"),
        (TrainConfig(steps=1, workers=0, crop_size=32, batch_size=2, palette_fraction=1.5), "0 to 1"),
    ):
        with pytest.raises(ValueError, match=message):
            train([training_folder], output=tmp_path / "m.safetensors", config=config, device="cpu", progress=False)
    assert not (tmp_path / "m.safetensors").exists()
