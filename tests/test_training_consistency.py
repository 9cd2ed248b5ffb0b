"""Training against the tile grid: two shifted windows of each crop must agree."""

from __future__ import annotations

import pytest
import torch

from napari_colorize.model import load_checkpoint
from napari_colorize.training import TrainConfig, train
from napari_colorize.training_consistency import MAX_NOISE, MAX_SHIFT, MIN_NOISE_SPREAD, ShiftedPair, context_disagreement

FAST = {"batch_size": 4, "crop_size": 64, "workers": 0, "width": 8, "learning_rate": 1e-2}


def pooled(lightness):
    """A network that is exactly shift-equivariant (on the output grid): no padding, no position."""
    return torch.nn.functional.avg_pool2d(lightness, 4).repeat(1, 2, 1, 1)


def test_the_windows_cover_the_same_pixels_where_they_overlap():
    crops = torch.rand(3, 1, 96, 96) * 100
    pair = ShiftedPair(side=96 - MAX_SHIFT, dy=8, dx=20, stride=4)
    windows = pair.windows(crops)
    assert windows.shape == (6, 1, 64, 64)
    assert torch.equal(windows[:3, :, 8:, 20:], windows[3:, :, :56, :44])
    assert pair.disagreement(pooled(windows), regression=True) == 0
    # a network that knows where its window is disagrees with itself
    rows = torch.arange(16.0)[None, None, :, None]
    assert pair.disagreement(pooled(windows) + rows, regression=True) > 0
    logits = torch.randn(6, 5, 16, 16)
    assert pair.disagreement(logits, regression=False) > 0
    same = torch.cat([logits[:3], torch.roll(logits[:3], shifts=(-2, -5), dims=(2, 3))])
    assert pair.disagreement(same, regression=False) == pytest.approx(0.0, abs=1e-6)


def test_windows_shifted_by_a_fraction_of_an_output_pixel_are_compared_where_they_see_the_same_place():
    # Outputs that are a linear function of the image position (as an exactly
    # shift-equivariant network would give on a ramp) agree after interpolation.
    stride, size = 4, 16
    for dy, dx in [(1, 0), (6, 3), (0, 13), (32, 31)]:
        pair = ShiftedPair(side=stride * size, dy=dy, dx=dx, stride=stride)
        rows, columns = (stride * torch.arange(float(size)))[:, None], (stride * torch.arange(float(size)))[None, :]
        first = torch.stack([rows + 0 * columns, 2 * columns - rows])[None]
        second = torch.stack([rows + dy + 0 * columns, 2 * (columns + dx) - (rows + dy)])[None]
        assert pair.disagreement(torch.cat([first, second]), regression=True) == pytest.approx(0.0, abs=1e-9)
        # the same outputs, taken as if the windows were shifted by whole output pixels, disagree
        assert (
            ShiftedPair(side=stride * size, dy=dy // stride * stride, dx=dx // stride * stride, stride=stride).disagreement(
                torch.cat([first, second]), regression=True
            )
            > 1e-6
        )


def test_weights_charge_each_crops_disagreement_by_its_own_weight():
    pair = ShiftedPair(side=64, dy=8, dx=4, stride=4)
    logits = torch.randn(6, 5, 16, 16)
    each = torch.stack([pair.disagreement(torch.cat([logits[i : i + 1], logits[3 + i : 4 + i]]), regression=False) for i in range(3)])
    assert pair.disagreement(logits, regression=False, weights=torch.ones(3)) == pytest.approx(float(each.mean()), rel=1e-5)
    # a crop weighted 0 costs nothing, one weighted 4 four times its own disagreement
    weighted = pair.disagreement(logits, regression=False, weights=torch.tensor([0.0, 4.0, 0.0]))
    assert weighted == pytest.approx(float(4 * each[1] / 3), rel=1e-5)


def test_the_decoded_penalty_charges_a_change_of_the_colour_seen_that_the_divergence_barely_sees():
    # Two bins, at -50 and +50 in a: a nearly even split that tips one way or
    # the other is a small divergence but, sharpened by the annealed mean, a
    # large change of colour.
    bins = torch.tensor([[-50.0, 0.0], [50.0, 0.0]])
    pair = ShiftedPair(side=16, dy=4, dx=0, stride=4)
    first = torch.zeros(1, 2, 4, 4)
    second = first.clone()
    second[:, 1] = 0.2  # logits 0 and 0.2: probabilities 0.45 and 0.55
    output = torch.cat([first, second])
    divergence = pair.disagreement(output, regression=False)
    with_decoded = pair.disagreement(output, regression=False, bins=bins, decoded_weight=1.0)
    assert divergence < 0.02
    assert with_decoded - divergence > 5 * divergence  # about a 25-unit change of a*, sharpened at T 0.38
    assert pair.disagreement(output, regression=False, bins=bins, decoded_weight=2.0) - divergence == pytest.approx(
        2 * (with_decoded - divergence)
    )
    same = torch.cat([second, second])
    assert pair.disagreement(same, regression=False, bins=bins, decoded_weight=1.0) == pytest.approx(0.0, abs=1e-7)


def test_pairs_are_shifted_by_any_whole_input_pixels_and_noise_is_bounded():
    generator = torch.Generator().manual_seed(0)
    pairs = [ShiftedPair.draw(128, 4, generator=generator) for _ in range(200)]
    assert all((p.dy or p.dx) and max(p.dy, p.dx) <= MAX_SHIFT and p.side == 96 for p in pairs)
    assert len({(p.dy, p.dx) for p in pairs}) > 100
    assert {p.dy % 4 for p in pairs} == {0, 1, 2, 3}  # sub-stride phases too
    small = [ShiftedPair.draw(64, 4, generator=generator) for _ in range(50)]
    assert all(p.side == 48 and max(p.dy, p.dx) <= 16 for p in small)  # still two thirds in common
    lightness = torch.full((4, 1, 32, 32), 50.0)
    lightness[:, :, :16] = 10.0  # standard deviation 20
    noisy = pairs[0].add_noise(lightness, generator=generator)
    assert torch.equal(noisy[:2], lightness[:2]) and not torch.equal(noisy[2:], lightness[2:])
    assert (noisy[2:] - lightness[2:]).abs().max() < 20 * MAX_NOISE * 6


def test_a_flat_window_gets_the_noise_of_a_contrasty_frame():
    generator = torch.Generator().manual_seed(3)
    pair = ShiftedPair(side=32, dy=4, dx=0, stride=4)
    flat = torch.full((64, 1, 32, 32), 50.0)  # sky: no contrast of its own
    noise = pair.add_noise(flat, generator=generator)[32:] - 50.0
    spread = noise.flatten(1).std(dim=1)
    assert spread.max() <= MAX_NOISE * MIN_NOISE_SPREAD * 1.1
    assert spread.mean() > 0.3 * MAX_NOISE * MIN_NOISE_SPREAD  # levels are uniform in 0..MAX_NOISE


def test_the_context_penalty_trains_the_context_path_alone_and_is_zero_when_the_contexts_agree():
    path = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8))
    whole = torch.rand(4, 8, requires_grad=True)
    cut_out = torch.rand(4, 8, requires_grad=True)
    assert float(context_disagreement(path, whole, whole)) == pytest.approx(0.0)
    penalty = context_disagreement(path, whole, cut_out)
    assert penalty > 0
    penalty.backward()
    assert whole.grad is None and cut_out.grad is None  # the descriptors (the encoder) do not learn from it
    assert path[0].weight.grad is not None and path[0].weight.grad.abs().sum() > 0


def test_the_context_penalty_charges_each_crop_by_its_weight_so_frames_alone_can_be_held():
    path = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8))
    whole, cut_out = torch.rand(4, 8), torch.rand(4, 8)
    from_frames = torch.tensor([True, False, True, False])
    config = TrainConfig(frames_share=0.5, frames_shift_consistency=1.0, frames_context_consistency=3.0)
    weights = config.context_weights(from_frames)
    assert weights.tolist() == [3.0, 0.0, 3.0, 0.0] and config.penalises_context
    assert config.context_weights().tolist() == [0.0]  # no frames in the batch: photographs are not charged
    frames_only = context_disagreement(path, whole, cut_out, weights)
    on_frames = context_disagreement(path, whole[from_frames], cut_out[from_frames])
    assert float(frames_only) == pytest.approx(3.0 * float(on_frames) / 2, rel=1e-5)  # the mean is over all four crops
    moved = cut_out.clone()
    moved[~from_frames] += 5.0  # a photograph's cut-out answering differently costs nothing
    assert float(context_disagreement(path, whole, moved, weights)) == pytest.approx(float(frames_only), rel=1e-5)


def test_the_second_windows_take_the_cut_out_context_and_the_first_the_whole_frame_s():
    pair = ShiftedPair(side=32, dy=4, dx=0, stride=4)
    whole, cut_out = torch.zeros(3, 8), torch.ones(3, 8)
    hints = torch.rand(3, 9, 64, 64)
    inputs = pair.inputs({"context": whole, "hints": hints}, {"context": cut_out})
    assert torch.equal(inputs["context"], torch.cat([whole, cut_out]))
    assert torch.equal(inputs["hints"], pair.windows(hints))
    assert torch.equal(pair.inputs({"context": whole})["context"], torch.cat([whole, whole]))


def test_a_run_with_shift_consistency_trains_and_records_it(training_folder, tmp_path):
    config = TrainConfig(steps=2, architecture="colornet-v2", shift_consistency=1.0, any_orientation=True, **FAST)
    train([training_folder], output=tmp_path / "v2.safetensors", config=config, device="cpu", progress=False)
    loaded = load_checkpoint(tmp_path / "v2.safetensors")
    assert loaded.metadata["training"]["config"]["shift_consistency"] == 1.0


def test_a_run_with_the_context_penalty_trains_and_records_it(training_folder, tmp_path):
    config = TrainConfig(steps=2, architecture="colornet-v2", context_consistency=1.0, **FAST)
    train([training_folder], output=tmp_path / "v2.safetensors", config=config, device="cpu", progress=False)
    assert load_checkpoint(tmp_path / "v2.safetensors").metadata["training"]["config"]["context_consistency"] == 1.0
    with pytest.raises(ValueError, match="takes the frame's context"):
        train([training_folder], output=tmp_path / "v1.safetensors", config=TrainConfig(steps=2, architecture="colornet-v1", context_consistency=1.0, **FAST), device="cpu", progress=False)


def test_a_run_with_dark_sky_contexts_trains_and_records_it(training_folder, tmp_path):
    config = TrainConfig(steps=2, architecture="colornet-v2", shift_consistency=1.0, dark_sky=0.5, **FAST)
    train([training_folder], output=tmp_path / "v2.safetensors", config=config, device="cpu", progress=False)
    assert load_checkpoint(tmp_path / "v2.safetensors").metadata["training"]["config"]["dark_sky"] == 0.5
    with pytest.raises(ValueError, match="takes the frame's context"):
        train([training_folder], output=tmp_path / "v1.safetensors", config=TrainConfig(steps=2, architecture="colornet-v1", dark_sky=0.5, **FAST), device="cpu", progress=False)


def test_a_run_that_holds_dark_sky_crops_harder_trains_and_records_it(training_folder, tmp_path):
    config = TrainConfig(steps=2, architecture="colornet-v2", shift_consistency=0.5, dark_sky=0.5, dark_sky_shift_consistency=3.0, **FAST)
    train([training_folder], output=tmp_path / "v2.safetensors", config=config, device="cpu", progress=False)
    assert load_checkpoint(tmp_path / "v2.safetensors").metadata["training"]["config"]["dark_sky_shift_consistency"] == 3.0


def test_an_anchored_crop_teaches_only_its_second_window():
    """A frame's crop: the window with the whole frame's context is held
    fixed, the cut-out's window learns to colour as it does."""
    pair = ShiftedPair(side=64, dy=0, dx=4, stride=4)
    logits = torch.randn(4, 5, 16, 16, requires_grad=True)  # two crops, two windows each
    pair.disagreement(logits, regression=False, anchored=torch.tensor([True, False])).backward()
    gradient = logits.grad.flatten(1).abs().sum(dim=1)
    assert gradient[0] == 0 and gradient[1] > 0  # first windows: the anchored crop's is left alone
    assert gradient[2] > 0 and gradient[3] > 0  # second windows: both learn


def test_a_run_with_frames_learns_no_colour_from_them_and_records_them(training_folder, tmp_path):
    import numpy as np
    from PIL import Image

    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):  # a gray frame (which a colour folder would skip) and a 16-bit one
        Image.fromarray((rng.random((80, 90)) * 255).astype(np.uint8)).save(frames / f"gray{i}.png")
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(frames / "deep.tif", (rng.random((70, 100)) * 40000).astype(np.uint16))
    config = TrainConfig(
        steps=2, architecture="colornet-v2", shift_consistency=1.0, frames_share=0.5, frames_shift_consistency=2.0, frames_context_consistency=4.0,
        frames_scale_jitter=(1.5, 2.0), **FAST
    )
    train([training_folder], output=tmp_path / "v2.safetensors", config=config, frames=[frames], device="cpu", progress=False)
    training = load_checkpoint(tmp_path / "v2.safetensors").metadata["training"]
    assert training["config"]["frames_share"] == 0.5 and training["config"]["frames_shift_consistency"] == 2.0
    assert training["config"]["frames_context_consistency"] == 4.0
    assert list(training["config"]["frames_scale_jitter"]) == [1.5, 2.0]
    assert training["data"]["frames"] == {"folders": ["frames"], "images": 3}
    with pytest.raises(ValueError, match="needs frames"):
        train([training_folder], output=tmp_path / "none.safetensors", config=config, device="cpu", progress=False)


def test_the_colour_loss_skips_crops_of_weight_zero():
    from napari_colorize.model import create_colorizer
    from napari_colorize.training_loss import Loss

    colorizer = create_colorizer(architecture="colornet-v1", width=8)
    loss = Loss(colorizer, torch.ones(len(colorizer.bins)).numpy(), torch.device("cpu"))
    output, ab = torch.randn(2, len(colorizer.bins), 4, 4), torch.rand(2, 2, 4, 4) * 60 - 30
    first_only = loss(output, ab, torch.tensor([1.0, 0.0]))
    assert first_only == pytest.approx(float(loss(output[:1], ab[:1])), rel=1e-5)
    assert float(loss(output, ab, torch.tensor([1.0, 1.0]))) == pytest.approx(float(loss(output, ab)), rel=1e-5)


def test_a_run_with_the_decoded_penalty_trains_and_records_it(training_folder, tmp_path):
    config = TrainConfig(steps=2, architecture="colornet-v2", shift_consistency=1.0, decoded_consistency=0.5, **FAST)
    train([training_folder], output=tmp_path / "v2.safetensors", config=config, device="cpu", progress=False)
    assert load_checkpoint(tmp_path / "v2.safetensors").metadata["training"]["config"]["decoded_consistency"] == 0.5


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"shift_consistency": -1.0}, "a weight >= 0"),
        ({"shift_consistency": 1.0, "crop_size": 48}, "at least 64"),
        ({"decoded_consistency": 1.0}, "needs --shift-consistency"),
        ({"shift_consistency": 1.0, "decoded_consistency": 1.0, "head": "regression"}, "classification head"),
        ({"shift_consistency": 1.0, "decoded_consistency": -0.5}, "a weight >= 0"),
        ({"context_consistency": -1.0}, "a weight >= 0"),
        ({"dark_sky": 1.5}, "0 to 1"),
        ({"dark_sky": 0.5, "dark_sky_shift_consistency": -1.0}, "a weight >= 0"),
        ({"dark_sky_shift_consistency": 2.0}, "needs --dark-sky"),
        ({"frames_share": 1.5, "shift_consistency": 1.0}, "0 to 1"),
        ({"frames_share": 0.5}, "teach only the shift penalty"),
        ({"frames_shift_consistency": 2.0}, "needs a --frames-share"),
        ({"frames_context_consistency": 2.0}, "frames context consistency needs a --frames-share"),
        ({"frames_share": 0.5, "shift_consistency": 1.0, "frames_context_consistency": -1.0}, "a weight >= 0"),
        ({"frames_scale_jitter": (2.0, 1.0)}, "0 < LOW <= HIGH"),
        ({"frames_scale_jitter": (0.0, 1.0)}, "0 < LOW <= HIGH"),
    ],
)
def test_bad_shift_consistency_settings_are_refused_before_any_work(training_folder, tmp_path, changes, message):
    config = TrainConfig(steps=2, **{**FAST, **changes})
    with pytest.raises(ValueError, match=message):
        train([training_folder], output=tmp_path / "m.safetensors", config=config, device="cpu", progress=False)
    assert not (tmp_path / "m.safetensors").exists()
