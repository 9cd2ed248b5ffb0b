"""Training on tiny folders of colour images made in the tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import make_color_folder
from safetensors.torch import load_file

from napari_colorize import training
from napari_colorize.architectures import Architecture, register_architecture, unregister_architecture
from napari_colorize.color import ab_bins, rebalance_weights
from napari_colorize.io import TOP_LEVEL, find_images
from napari_colorize.model import create_colorizer, load_checkpoint, save_checkpoint
from napari_colorize.training import TrainConfig, train
from napari_colorize.training_loss import Loss, lab_batch
from napari_colorize.training_data import ColorCrops, scan_images

# Small and fast: a narrow network, few steps, a high learning rate so that a
# few steps visibly lower the loss.
FAST = {"batch_size": 4, "crop_size": 64, "workers": 0, "width": 8, "learning_rate": 1e-2}


def fixed_batch(paths, colorizer, lam=0.5):
    crops = ColorCrops(paths, crop_size=64, seed=123, length=8)
    batch = torch.stack([crops[i] for i in range(len(crops))])
    lightness, ab = lab_batch(batch, torch.device("cpu"), colorizer.output_stride)
    return lightness, ab, Loss(colorizer, rebalance_weights(colorizer.prior, lam=lam), torch.device("cpu"))


def untrained(head, width, seed=0):
    torch.manual_seed(seed)  # as train() does before creating its network
    colorizer = create_colorizer(head=head, width=width)
    colorizer.network.eval()
    return colorizer


# --------------------------------------------------------------------------
# the loss
# --------------------------------------------------------------------------
def test_loss_is_the_rebalanced_soft_cross_entropy():
    """Two pixels, seven bins, known logits and weights, computed by hand."""
    bins = np.array([[0, 0], [10, 0], [0, 10], [-10, 0], [0, -10], [10, 10], [30, 30]], np.float32)
    weights = np.array([0.5, 1.0, 2.0, 1.5, 0.8, 1.2, 3.0])
    # pixel 0 at ab (3, 2): squared distances 13, 53, 73, 173, 153, 113, 1513 -> nearest bin 0
    # pixel 1 at ab (12, 9): 225, 85, 145, 565, 505, 5, 765 -> nearest bin 5 (no ties among the 5 nearest)
    ab = np.array([[3.0, 2.0], [12.0, 9.0]])
    logits = np.array([[1.0, -0.5, 0.3, 2.0, 0.0, -1.0, 0.7], [0.2, 0.9, -0.3, -2.0, 1.5, 0.4, -0.1]])

    expected = []
    for pixel_ab, pixel_logits in zip(ab, logits):
        d2 = ((bins - pixel_ab) ** 2).sum(1)
        nearest5 = np.argsort(d2)[:5]
        target = np.zeros(len(bins))
        target[nearest5] = np.exp(-d2[nearest5] / (2 * 5.0**2))  # Gaussian, sigma 5 ab units
        target /= target.sum()
        log_p = pixel_logits - np.log(np.exp(pixel_logits).sum())
        expected.append(-(target * log_p).sum() * weights[np.argmin(d2)])
    expected = np.mean(expected)

    colorizer = create_colorizer(head="classification", width=4, bins=bins)
    loss = Loss(colorizer, weights, torch.device("cpu"))
    # network layout: (N, Q, H, W) logits and (N, 2, H, W) ab; the 2 pixels in a 1 x 2 image
    output = torch.tensor(logits.T[None, :, None, :], dtype=torch.float32)
    target_ab = torch.tensor(ab.T[None, :, None, :], dtype=torch.float32)
    assert float(loss(output, target_ab)) == pytest.approx(expected, rel=1e-5)

    # the regression head: plain mean squared error over both channels
    regression = Loss(create_colorizer(head="regression", width=4, bins=bins), weights, torch.device("cpu"))
    predicted = torch.tensor([[[[1.0, 10.0]], [[0.0, 5.0]]]])
    assert float(regression(predicted, target_ab)) == pytest.approx(((ab.T.ravel() - [1, 10, 0, 5]) ** 2).mean())


# --------------------------------------------------------------------------
# training runs
# --------------------------------------------------------------------------
def test_a_run_is_determined_by_its_seed(training_folder, tmp_path):
    config = TrainConfig(steps=3, **{**FAST, "crop_size": 32})
    runs = [
        train([training_folder], output=tmp_path / f"run{i}.safetensors", config=config, device="cpu", progress=False) for i in range(2)
    ]
    other_seed = TrainConfig(steps=3, seed=1, **{**FAST, "crop_size": 32})
    other = train([training_folder], output=tmp_path / "other.safetensors", config=other_seed, device="cpu", progress=False)
    first, second = (r.network.state_dict() for r in runs)
    for key, value in first.items():
        assert torch.equal(second[key], value), key  # bit for bit
    files = [load_file(tmp_path / f"run{i}.safetensors") for i in range(2)]
    assert all(torch.equal(files[1][key], value) for key, value in files[0].items())
    losses = [r.metadata["training"]["final_loss"] for r in runs]
    assert losses[0] == losses[1]
    assert not torch.equal(other.network.state_dict()["stem.0.weight"], first["stem.0.weight"])


def test_one_step_follows_the_recipe(training_folder, tmp_path):
    """A one-step run: seed, a fresh model, the first crops of the run, one Adam step at the peak rate."""
    config = TrainConfig(steps=1, **{**FAST, "crop_size": 32})
    trained = train([training_folder], output=tmp_path / "one.safetensors", config=config, device="cpu", progress=False)

    torch.manual_seed(config.seed)
    colorizer = create_colorizer(head=config.head, width=config.width)
    network = colorizer.network.train()
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    images = scan_images(find_images([training_folder]), colorizer.bins).color_images
    crops = ColorCrops(images, crop_size=config.crop_size, scale_jitter=config.scale_jitter, seed=config.seed, length=config.batch_size)
    lightness, ab = lab_batch(torch.stack([crops[i] for i in range(config.batch_size)]), torch.device("cpu"), colorizer.output_stride)
    loss = Loss(colorizer, rebalance_weights(trained.prior, lam=config.rebalance_lambda), torch.device("cpu"))
    optimizer.zero_grad()
    loss(network(lightness), ab).backward()
    optimizer.step()
    for key, value in network.state_dict().items():
        assert torch.equal(trained.network.state_dict()[key], value), key


def test_training_lowers_the_loss_and_writes_a_checkpoint(training_folder, tmp_path):
    output = tmp_path / "out" / "tiny.safetensors"
    config = TrainConfig(steps=30, **FAST)
    trained = train([training_folder], output=output, config=config, device="cpu", progress=False)
    assert output.is_file() and (output.parent / "tiny.safetensors.state.pt").is_file()
    assert not trained.network.training

    lightness, ab, loss = fixed_batch(find_images([training_folder])[:6], trained)
    with torch.no_grad():
        before = float(loss(untrained("classification", 8).network(lightness), ab))
        after = float(loss(trained.network(lightness), ab))
    assert before > 4.5  # about log(261) for an untrained network
    assert after < before - 0.5

    loaded = load_checkpoint(output)
    assert loaded.head == "classification" and loaded.sha256 == trained.sha256
    info = loaded.metadata["training"]
    assert info["steps"] == 30 and info["finished"] is True
    assert info["wall_time_s"] > 0
    assert math.isfinite(info["final_loss"])
    assert info["data"] == {
        "folders": ["images"],
        "images": 6,
        "skipped_gray_or_unreadable": 3,
        "images_per_subfolder": {"images": {TOP_LEVEL: 6}},
    }
    assert info["config"]["learning_rate"] == 1e-2 and info["config"]["steps"] == 30
    assert info["device"] == "cpu"
    assert loaded.prior is not None and loaded.prior.sum() == pytest.approx(1.0)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.predict_ab(lightness, temperature=0.38), trained.predict_ab(lightness, temperature=0.38), atol=1.0, rtol=0
        )

    # fine-tuning from it records where it started
    tuned = train(
        [training_folder],
        output=tmp_path / "tuned.safetensors",
        config=TrainConfig(steps=2, **{**FAST, "crop_size": 32}),
        device="cpu",
        init=output,
        progress=False,
    )
    assert tuned.metadata["init"] == {"model": "tiny", "sha256": trained.sha256}
    with pytest.raises(ValueError, match="regression"):
        train(
            [training_folder],
            output=tmp_path / "bad.safetensors",
            config=TrainConfig(steps=2, head="regression", **FAST),
            device="cpu",
            init=output,
            progress=False,
        )


def test_regression_head_trains(training_folder, tmp_path):
    output = tmp_path / "regression.safetensors"
    trained = train([training_folder], output=output, config=TrainConfig(steps=15, head="regression", **FAST), device="cpu", progress=False)
    lightness, ab, loss = fixed_batch(find_images([training_folder])[:6], trained)
    with torch.no_grad():
        before = float(loss(untrained("regression", 8).network(lightness), ab))
        after = float(loss(trained.network(lightness), ab))
    assert after < 0.7 * before
    loaded = load_checkpoint(output)
    assert loaded.head == "regression" and loaded.metadata["training"]["steps"] == 15


def test_resume_continues_where_it_stopped(training_folder, tmp_path, monkeypatch):
    config = TrainConfig(steps=8, checkpoint_minutes=1e-9, **{**FAST, "crop_size": 32})  # save after every step
    straight = train([training_folder], output=tmp_path / "straight.safetensors", config=config, device="cpu", progress=False)

    # the same run, interrupted during step 6 (after 5 saved steps) ...
    output = tmp_path / "resumed.safetensors"
    calls = []

    real_lab_of = training.lab_of

    def crashing_lab_of(*args):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return real_lab_of(*args)

    monkeypatch.setattr(training, "lab_of", crashing_lab_of)
    with pytest.raises(KeyboardInterrupt):
        train([training_folder], output=output, config=config, device="cpu", progress=False)
    monkeypatch.setattr(training, "lab_of", real_lab_of)
    assert load_checkpoint(output).metadata["training"]["steps"] == 5
    assert load_checkpoint(output).metadata["training"]["finished"] is False

    # ... then resumed: it needs no folders and ends where the straight run did
    resumed = train([], output=output, config=config, device="cpu", resume=True, progress=False)
    info = resumed.metadata["training"]
    assert info["steps"] == 8 and info["finished"] is True
    assert info["data"]["images"] == 6 and info["data"]["skipped_gray_or_unreadable"] == 3
    for key, value in straight.network.state_dict().items():
        torch.testing.assert_close(resumed.network.state_dict()[key], value, rtol=1e-5, atol=1e-6, msg=key)

    # resuming a finished run changes nothing; resume without a state file starts afresh
    again = train([], output=output, config=config, device="cpu", resume=True, progress=False)
    assert again.metadata["training"]["steps"] == 8
    assert again.metadata["training"]["final_loss"] == info["final_loss"] is not None  # the loss it had reached
    fresh = train(
        [training_folder],
        output=tmp_path / "fresh.safetensors",
        config=TrainConfig(steps=1, **{**FAST, "crop_size": 32}),
        device="cpu",
        resume=True,
        progress=False,
    )
    assert fresh.metadata["training"]["steps"] == 1


def _build_toy(*, head, bins, width):
    from torch import nn

    return nn.Sequential(nn.Conv2d(1, width, 2, stride=2), nn.ReLU(), nn.Conv2d(width, len(bins) if head == "classification" else 2, 1))


@pytest.fixture
def toy_architecture():
    """A registered architecture unlike the default one: chroma at 1/2, not 1/4."""
    register_architecture(Architecture(name="toy-stride2", build=_build_toy, tile_size=32, output_stride=2))
    yield "toy-stride2"
    unregister_architecture("toy-stride2")


def test_init_and_resume_keep_the_architecture(training_folder, tmp_path, toy_architecture, caplog):
    torch.manual_seed(7)
    base = create_colorizer(architecture=toy_architecture, width=4)
    save_checkpoint(base, tmp_path / "toy.safetensors")
    output = tmp_path / "tuned.safetensors"
    config = {**FAST, "crop_size": 32, "learning_rate": 0.0}  # a rate of 0: the weights stay those of --init
    with caplog.at_level("WARNING"):
        tuned = train(
            [training_folder],
            output=output,
            config=TrainConfig(steps=2, **config),
            device="cpu",
            init=tmp_path / "toy.safetensors",
            progress=False,
        )
    assert "start untrained" not in caplog.text  # every weight was copied
    assert tuned.architecture == toy_architecture and tuned.output_stride == 2 and tuned.metadata["width"] == 4
    for key, value in load_checkpoint(tmp_path / "toy.safetensors").network.state_dict().items():
        assert torch.equal(tuned.network.state_dict()[key], value), key
    assert load_checkpoint(output).architecture == toy_architecture

    resumed = train([], output=output, config=TrainConfig(steps=3, **config), device="cpu", resume=True, progress=False)
    assert resumed.architecture == toy_architecture and resumed.output_stride == 2
    assert resumed.metadata["training"]["steps"] == 3


# --------------------------------------------------------------------------
# refusals
# --------------------------------------------------------------------------
def test_only_grayscale_images(tmp_path):
    folder = make_color_folder(tmp_path / "gray", count=0, size=48, gray=2)
    with pytest.raises(ValueError, match="grayscale"):
        train([folder], output=tmp_path / "m.safetensors", config=TrainConfig(steps=2, **FAST), device="cpu", progress=False)
    assert not (tmp_path / "m.safetensors").exists()


def test_invalid_training_arguments(training_folder, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    config = TrainConfig(steps=2, **FAST)
    with pytest.raises(ValueError, match="no JPEG/PNG/TIFF"):
        train([empty], output=tmp_path / "m.safetensors", config=config, device="cpu", progress=False)
    with pytest.raises(FileNotFoundError):
        train([tmp_path / "missing"], output=tmp_path / "m.safetensors", config=config, device="cpu", progress=False)
    with pytest.raises(ValueError, match=".safetensors"):
        train([training_folder], output=tmp_path / "m.pt", config=config, device="cpu", progress=False)
    with pytest.raises(ValueError, match="crop size"):
        train(
            [training_folder],
            output=tmp_path / "m.safetensors",
            config=TrainConfig(steps=2, **{**FAST, "crop_size": 50}),
            device="cpu",
            progress=False,
        )
    with pytest.raises(ValueError, match="device"):
        train([training_folder], output=tmp_path / "m.safetensors", config=config, device="tpu", progress=False)
    with pytest.raises(ValueError, match="head must be one of"):
        train(
            [training_folder],
            output=tmp_path / "m.safetensors",
            config=TrainConfig(steps=2, head="other", **FAST),
            device="cpu",
            progress=False,
        )


def test_a_second_generation_network_trains_with_hints_and_context(training_folder, tmp_path, natural_v1):
    """colornet-v2 warm-started from a v1 model: crops come with the view of
    their whole image, hints are sampled from the truth, and the checkpoint
    declares its inputs."""
    from napari_colorize.training_inputs import sample_hints

    config = TrainConfig(steps=2, architecture="colornet-v2", any_orientation=True, **{**FAST, "crop_size": 32})
    trained = train([training_folder], output=tmp_path / "v2.safetensors", config=config, device="cpu", init="natural-v1", progress=False)
    loaded = load_checkpoint(tmp_path / "v2.safetensors")
    assert loaded.architecture == "colornet-v2" and loaded.input_names == ("hints", "context")
    assert loaded.metadata["init"]["model"] == "natural-v1" and loaded.metadata["training"]["config"]["any_orientation"] is True
    # only the new branches started from zero; the rest came from natural-v1
    assert not torch.equal(trained.network.state_dict()["stem.0.weight"], torch.zeros_like(natural_v1.network.state_dict()["stem.0.weight"]))
    # hints: about the asked share of crops, each hint a patch of its mean truth colour
    ab = torch.randn(64, 2, 32, 32) * 20
    hints = sample_hints(ab, generator=torch.Generator().manual_seed(0), fraction=0.5, max_hints=20)
    with_hints = hints[:, 2].flatten(1).amax(1) > 0
    assert 20 <= int(with_hints.sum()) <= 44
    assert torch.all(hints[~with_hints] == 0)
    marked = hints[:, 2] > 0
    assert torch.all(hints[:, :2].abs().sum(1)[~marked] == 0) and marked.sum() > 0


def test_any_orientation_turns_and_flips_crop_and_view_together(training_folder):
    images = scan_images(find_images([training_folder]), ab_bins()).color_images
    plain = ColorCrops(images, crop_size=32, seed=3, length=40, view_size=48)
    turned = ColorCrops(images, crop_size=32, seed=3, length=40, view_size=48, any_orientation=True)
    changed = 0
    for i in range(40):
        (crop, view), (crop_t, view_t) = plain[i], turned[i]
        variants = [torch.rot90(crop, k, dims=(1, 2)) for k in range(4)]
        variants += [torch.flip(v, dims=(1,)) for v in variants]
        match = [j for j, v in enumerate(variants) if torch.equal(v, crop_t)]
        assert match, i  # the same crop, in one of the 8 orientations
        view_variants = [torch.rot90(view, k, dims=(1, 2)) for k in range(4)]
        view_variants += [torch.flip(v, dims=(1,)) for v in view_variants]
        assert any(torch.equal(view_variants[j], view_t) for j in match)  # the view turned with it
        changed += match[0] != 0
    assert changed > 20


def test_fresh_branches_can_learn_faster(training_folder, tmp_path):
    """With --init, the weights the init model lacks get their own learning-rate multiple."""
    config = TrainConfig(steps=2, architecture="colornet-v2", fresh_lr_scale=10.0, **{**FAST, "crop_size": 32})
    trained = train([training_folder], output=tmp_path / "v2.safetensors", config=config, device="cpu", init="natural-v1", progress=False)
    fresh = trained.metadata["init"]["fresh_weights"]
    assert fresh and all(name.startswith(("hint_path", "hint_gain", "context_path")) for name in fresh)
    state = torch.load(tmp_path / "v2.safetensors.state.pt", weights_only=True)
    groups = state["optimizer"]["param_groups"]
    assert [g["lr_scale"] for g in groups] == [1.0, 10.0]
    assert groups[1]["lr"] == pytest.approx(10 * groups[0]["lr"])


def test_a_share_of_the_crops_take_their_context_from_a_cut_out(training_folder, tmp_path):
    """--cut-out-context: the context of some crops comes from a cut-out of
    their image, as when a user colorizes a crop; 0 keeps the whole image's."""
    from napari_colorize.training_inputs import chosen_contexts

    whole, cut_out = torch.zeros(200, 1, 4, 4), torch.ones(200, 1, 4, 4)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(chosen_contexts([whole, cut_out], 0.0, generator=generator), whole)
    assert torch.equal(chosen_contexts([whole, cut_out], 1.0, generator=generator), cut_out)
    mixed = chosen_contexts([whole, cut_out], 0.5, generator=generator)
    assert 70 <= int(mixed.flatten(1)[:, 0].sum()) <= 130
    assert chosen_contexts([whole], 0.5, generator=generator) is whole and chosen_contexts([], 0.5, generator=generator) is None
    config = TrainConfig(steps=2, architecture="colornet-v2", cut_out_context=0.5, **{**FAST, "crop_size": 32})
    train([training_folder], output=tmp_path / "cut.safetensors", config=config, device="cpu", progress=False)
    assert load_checkpoint(tmp_path / "cut.safetensors").metadata["training"]["config"]["cut_out_context"] == 0.5
    with pytest.raises(ValueError, match="share of the crops"):
        train([training_folder], output=tmp_path / "bad.safetensors", config=TrainConfig(steps=2, cut_out_context=1.5, **FAST), device="cpu", progress=False)


def test_a_run_can_learn_the_hint_response_and_nothing_else(training_folder, tmp_path):
    """Every weight outside the hint path and gains, and every batch
    statistic, stays as the init model had it: its automatic colours can be
    restored, and the hint path learns as it will work when colouring."""
    base = load_checkpoint("natural").network.state_dict()
    hint_modules = ("hint_path", "hint_gain")
    config = TrainConfig(steps=2, hint_fraction=1.0, learn_only=hint_modules, **{**FAST, "crop_size": 32, "learning_rate": 1e-3})
    trained = train([training_folder], output=tmp_path / "h.safetensors", config=config, device="cpu", init="natural", progress=False)
    state = trained.network.state_dict()
    learned = [name for name, _ in trained.network.named_parameters() if name.startswith(tuple(f"{module}." for module in hint_modules))]
    assert all(torch.equal(state[name], base[name]) for name in state if name not in learned)
    assert not all(torch.equal(state[name], base[name]) for name in learned)
    assert load_checkpoint(tmp_path / "h.safetensors").metadata["training"]["config"]["learn_only"] == list(hint_modules)


@pytest.mark.parametrize(
    ("changes", "init", "message"),
    [
        ({"learn_only": ("hint_path",), "architecture": "colornet-v1"}, None, "colornet-v1 has no module hint_path; its modules: stem, down4"),
        ({"learn_only": ("context", "hint_gain")}, "natural", "has no module context;"),
        ({"hint_fraction": 1.5}, None, "0 to 1"),
    ],
)
def test_bad_partial_training_settings_are_refused_before_any_work(training_folder, tmp_path, changes, init, message):
    with pytest.raises(ValueError, match=message):
        train([training_folder], output=tmp_path / "m.safetensors", config=TrainConfig(steps=2, **{**FAST, **changes}), device="cpu", init=init, progress=False)
    assert not (tmp_path / "m.safetensors").exists()
