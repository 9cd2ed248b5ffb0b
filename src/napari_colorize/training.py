"""Training: colour-image folders -> random L/ab crops -> rebalanced loss ->
a checkpoint the pipeline can load.

Runs on CPU, CUDA or MPS; periodic checkpoints and ``resume`` make long runs
safe to interrupt. Crops are made in DataLoader workers as uint8 RGB; the Lab
conversion, soft-encoding and weighting happen on the training device.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .color import DEFAULT_REBALANCE_LAMBDA, ab_bins, nearest_bin, rebalance_weights, rgb_to_lab, smoothed_prior
from .model import OUTPUT_STRIDE, Colorizer, create_colorizer, load_checkpoint, save_checkpoint

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})
# An image whose mean chroma (ab units) is below this counts as grayscale.
_GRAY_CHROMA = 2.0
_THUMBNAIL = 64
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


@dataclass
class TrainConfig:
    """Options of a training run (all recorded in the checkpoint)."""

    head: str = "classification"
    steps: int = 20000
    batch_size: int = 32
    crop_size: int = 128
    scale_jitter: tuple[float, float] = (0.6, 1.2)
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    width: int = 32
    rebalance_lambda: float = DEFAULT_REBALANCE_LAMBDA
    time_limit_minutes: float | None = None
    checkpoint_minutes: float = 5.0
    workers: int = field(default_factory=lambda: max(1, min(8, (os.cpu_count() or 2) - 1)))
    seed: int = 0


def find_images(folders: Sequence[str | Path]) -> list[Path]:
    """All JPEG/PNG/TIFF files under ``folders`` (recursively), sorted."""
    found = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            found.append(folder)
            continue
        if not folder.is_dir():
            raise FileNotFoundError(f"training folder not found: {folder}")
        found += [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(set(found))


def read_rgb(path: str | Path, *, max_side: int | None = None) -> np.ndarray | None:
    """An image as uint8 RGB (H, W, 3), or None if it is grayscale or unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode in _GRAY_MODES:
                return None
            if max_side is not None:
                im.draft("RGB", (max_side, max_side))  # fast JPEG downscale
            rgb = np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    if max_side is not None and max(rgb.shape[:2]) > max_side:
        factor = max_side / max(rgb.shape[:2])
        size = (max(1, round(rgb.shape[1] * factor)), max(1, round(rgb.shape[0] * factor)))
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
    return rgb


def _scan_one(args) -> np.ndarray | None:
    """Bin counts of a thumbnail of one image, or None for grayscale/unreadable."""
    path, bins = args
    thumb = read_rgb(path, max_side=_THUMBNAIL)
    if thumb is None:
        return None
    ab = rgb_to_lab(thumb)[..., 1:]
    if np.hypot(ab[..., 0], ab[..., 1]).mean() < _GRAY_CHROMA:
        return None
    return np.bincount(nearest_bin(ab, bins).ravel(), minlength=len(bins))


@dataclass
class ScanResult:
    colour_images: list[Path]
    skipped: int
    bin_counts: np.ndarray


def scan_images(paths: Sequence[Path], bins: np.ndarray, *, workers: int = 1, progress: bool = False) -> ScanResult:
    """Keep the colour images and count their ab bins (for the prior)."""
    from tqdm.auto import tqdm

    counts = np.zeros(len(bins), dtype=np.int64)
    kept = []
    jobs = ((p, bins) for p in paths)
    if workers > 1 and len(paths) > 64:
        with ProcessPoolExecutor(workers) as pool:
            results = list(tqdm(pool.map(_scan_one, jobs, chunksize=32), total=len(paths), desc="scanning", disable=not progress))
    else:
        results = [_scan_one(j) for j in tqdm(jobs, total=len(paths), desc="scanning", disable=not progress)]
    for path, result in zip(paths, results):
        if result is not None:
            kept.append(path)
            counts += result
    return ScanResult(kept, len(paths) - len(kept), counts)


class ColourCrops:
    """Random crops (flip and scale jitter) of colour images, as uint8 (3, c, c).

    A map-style dataset for torch's DataLoader; index i draws from image
    ``i % len(paths)`` with randomness seeded by i, so a run is repeatable.
    """

    def __init__(self, paths: Sequence[Path], *, crop_size: int, scale_jitter=(0.6, 1.2), seed: int = 0, length: int | None = None):
        self.paths = list(paths)
        self.crop_size = crop_size
        self.scale_jitter = scale_jitter
        self.seed = seed
        self.length = length or len(self.paths)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        import torch
        from PIL import Image

        rng = np.random.default_rng((self.seed, index))
        c = self.crop_size
        for _ in range(10):
            rgb = read_rgb(self.paths[rng.integers(len(self.paths))])
            if rgb is not None:
                break
        else:
            raise RuntimeError("could not read any training image")
        h, w = rgb.shape[:2]
        factor = rng.uniform(*self.scale_jitter)
        factor = max(factor, c / min(h, w))  # the crop must fit
        size = (max(c, round(w * factor)), max(c, round(h * factor)))
        if size != (w, h):
            rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
        y = rng.integers(rgb.shape[0] - c + 1)
        x = rng.integers(rgb.shape[1] - c + 1)
        crop = rgb[y : y + c, x : x + c]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))


def _lab_batch(batch, device):
    """uint8 RGB (N, 3, c, c) -> L (N, 1, c, c) and ab at 1/4 (N, 2, c/4, c/4)."""
    import torch

    from .color import rgb_to_lab_torch

    lab = rgb_to_lab_torch(batch.to(device, non_blocking=True).float() / 255.0)
    ab = torch.nn.functional.avg_pool2d(lab[:, 1:], OUTPUT_STRIDE)
    return lab[:, :1].contiguous(), ab


class Loss:
    """Soft-encoded, rebalanced cross-entropy (classification) or L2 on ab (regression)."""

    def __init__(self, colorizer: Colorizer, weights: np.ndarray, device):
        import torch

        self.head = colorizer.head
        self.bins = torch.as_tensor(colorizer.bins, device=device)
        self.weights = torch.as_tensor(weights, dtype=torch.float32, device=device)

    def __call__(self, output, ab):
        import torch

        from .color import soft_encode

        if self.head == "regression":
            return torch.nn.functional.mse_loss(output.float(), ab)
        target, nearest = soft_encode(ab, self.bins)
        log_p = torch.log_softmax(output.float(), dim=1)
        per_pixel = -(target * log_p).sum(dim=1)
        return (per_pixel * self.weights[nearest]).mean()


def _learning_rate(config: TrainConfig, step: int, elapsed: float) -> float:
    warmup = min(500, max(1, config.steps // 20))
    if step < warmup:
        return config.learning_rate * (step + 1) / warmup
    fraction = step / config.steps
    if config.time_limit_minutes:
        fraction = max(fraction, elapsed / (60.0 * config.time_limit_minutes))
    return config.learning_rate * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, fraction))))


def _state_path(output: Path) -> Path:
    return output.with_name(output.name + ".state.pt")


def _save_state(path: Path, colorizer, optimizer, *, step, elapsed, config, prior, data_summary) -> None:
    import torch

    state = {
        "network": colorizer.network.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "elapsed": elapsed,
        "prior": torch.as_tensor(prior),
        "bins": torch.as_tensor(colorizer.bins),
        "config": json.dumps(asdict(config)),
        "data": json.dumps(data_summary),
        "metadata": json.dumps(colorizer.metadata),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _package_version() -> str:
    from . import __version__

    return __version__


def train(
    folders: Sequence[str | Path],
    *,
    output: str | Path,
    config: TrainConfig | None = None,
    device: str = "auto",
    init: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> Colorizer:
    """Train a colorizer on folders of colour images and save it.

    Parameters
    ----------
    folders : sequence of path
        Folders searched recursively for JPEG/PNG/TIFF colour images
        (grayscale ones are skipped), or image files.
    output : path
        The ``.safetensors`` checkpoint to write. Training state for
        ``resume`` is kept beside it as ``<output>.state.pt``.
    config : TrainConfig, optional
    device : str
        'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.
    init : str or path, optional
        A shipped model name or checkpoint to fine-tune from.
    resume : bool
        Continue from ``<output>.state.pt`` if it exists.
    progress : bool
        Show a progress bar with the loss.

    Returns
    -------
    Colorizer
        The trained model, also written to ``output``.
    """
    import torch
    from tqdm.auto import tqdm

    from .pipeline import resolve_device

    config = config or TrainConfig()
    output = Path(output)
    if output.suffix != ".safetensors":
        raise ValueError(f"the output checkpoint must end in .safetensors, got {output}")
    if config.crop_size % 16 or config.crop_size < 32:
        raise ValueError(f"crop size must be a multiple of 16 and >= 32, got {config.crop_size}")
    torch_device = resolve_device(device)
    torch.manual_seed(config.seed)
    state_file = _state_path(output)
    state = torch.load(state_file, map_location="cpu", weights_only=True) if resume and state_file.exists() else None

    if init is not None and state is None:
        base = load_checkpoint(init)
        colorizer = create_colorizer(head=base.head, width=int(base.metadata["width"]), bins=base.bins)
        colorizer.network.load_state_dict(base.network.state_dict())
        if base.head != config.head:
            raise ValueError(f"--init model {base.name!r} has a {base.head} head, but training asks for {config.head}")
        colorizer.metadata["init"] = {"model": base.name, "sha256": base.sha256}
    elif state is not None:
        meta = json.loads(state["metadata"])
        colorizer = create_colorizer(head=meta["head"], width=int(meta["width"]), bins=state["bins"].numpy())
        colorizer.network.load_state_dict(state["network"])
        colorizer.metadata = meta
    else:
        colorizer = create_colorizer(head=config.head, width=config.width, bins=ab_bins())

    if state is not None:
        prior = state["prior"].numpy()
        data_summary = json.loads(state["data"])
        images = [Path(p) for p in data_summary.pop("_paths")]
    else:
        paths = find_images(folders)
        if not paths:
            raise ValueError(f"no JPEG/PNG/TIFF images found in {', '.join(map(str, folders))}")
        scan = scan_images(paths, colorizer.bins, workers=config.workers, progress=progress)
        if not scan.colour_images:
            raise ValueError(f"all {len(paths)} images are grayscale or unreadable: nothing to learn colours from")
        images = scan.colour_images
        prior = smoothed_prior(scan.bin_counts, colorizer.bins)
        data_summary = {
            "folders": [Path(f).name for f in folders],
            "images": len(images),
            "skipped_gray_or_unreadable": scan.skipped,
        }
    colorizer.prior = prior
    weights = rebalance_weights(prior, lam=config.rebalance_lambda)

    network = colorizer.network.to(torch_device).train()
    if torch_device.type == "cuda":
        network = network.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    step, elapsed_before = 0, 0.0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed_before = int(state["step"]), float(state["elapsed"])
    loss_fn = Loss(colorizer, weights, torch_device)

    dataset = ColourCrops(
        images,
        crop_size=config.crop_size,
        scale_jitter=config.scale_jitter,
        seed=config.seed,
        length=config.steps * config.batch_size,
    )
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, range(step * config.batch_size, len(dataset))),
        batch_size=config.batch_size,
        num_workers=config.workers,
        pin_memory=torch_device.type == "cuda",
        persistent_workers=config.workers > 0,
        prefetch_factor=4 if config.workers > 0 else None,
        drop_last=True,
    )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if torch_device.type == "cuda" else torch.autocast("cpu", enabled=False)

    def save(final: bool) -> None:
        elapsed = elapsed_before + time.monotonic() - start
        colorizer.metadata.update(
            training={
                "data": data_summary,
                "config": asdict(config),
                "steps": step,
                "wall_time_s": round(elapsed, 1),
                "device": str(torch_device) + (f" ({torch.cuda.get_device_name(torch_device)})" if torch_device.type == "cuda" else ""),
                "host": platform.machine(),
                "final_loss": round(smoothed_loss, 5) if smoothed_loss is not None else None,
                "finished": final,
            },
            normalisation="L = Lab lightness of the sRGB gray of the intensity normalised to [0, 1]",
            code_version=_package_version(),
            torch_version=torch.__version__,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        network.eval()
        save_checkpoint(colorizer, output)
        network.train()
        _save_state(
            state_file,
            colorizer,
            optimizer,
            step=step,
            elapsed=elapsed,
            config=config,
            prior=prior,
            data_summary={**data_summary, "_paths": [str(p) for p in images]},
        )

    start = time.monotonic()
    last_save = start
    smoothed_loss = None
    bar = tqdm(total=config.steps, initial=step, desc=f"training {colorizer.head}", disable=not progress, mininterval=2.0)
    time_limit = 60.0 * config.time_limit_minutes if config.time_limit_minutes else math.inf
    for batch in loader:
        elapsed = elapsed_before + time.monotonic() - start
        if step >= config.steps or elapsed >= time_limit:
            break
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, step, elapsed)
        lightness, ab = _lab_batch(batch, torch_device)
        if torch_device.type == "cuda":
            lightness = lightness.contiguous(memory_format=torch.channels_last)
        with autocast:
            output_ = network(lightness)
        loss = loss_fn(output_, ab)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        value = float(loss.detach()) if step % 10 == 0 or smoothed_loss is None else None
        if value is not None:
            if not math.isfinite(value):
                raise FloatingPointError(f"training diverged at step {step} (loss {value}); lower the learning rate")
            smoothed_loss = value if smoothed_loss is None else 0.9 * smoothed_loss + 0.1 * value
            bar.set_postfix(loss=f"{smoothed_loss:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}", refresh=False)
        bar.update(1)
        if time.monotonic() - last_save > 60.0 * config.checkpoint_minutes:
            save(final=False)
            last_save = time.monotonic()
    bar.close()
    save(final=True)
    network.eval()
    logger.info("wrote %s after %d steps", output, step)
    return colorizer
