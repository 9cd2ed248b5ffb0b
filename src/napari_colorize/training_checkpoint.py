"""Saving a training run: the checkpoint, with what made it in its metadata,
and the state to resume from beside it."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from .model import Colorizer, save_checkpoint


def state_path(output: Path) -> Path:
    """Where the state to resume from is kept: beside the checkpoint."""
    return output.with_name(output.name + ".state.pt")


def _package_version() -> str:
    from . import __version__

    return __version__


def _describe_device(device) -> str:
    import torch

    return str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")


class Checkpointer:
    """Saves the model, and the state to resume from, now and then and at the end.

    Parameters
    ----------
    output : Path
        The ``.safetensors`` checkpoint to write.
    colorizer : Colorizer
        The model being trained.
    optimizer : torch.optim.Optimizer
    config : TrainConfig
    data : TrainingData
        The images and prior; its summary goes into the checkpoint.
    device : torch.device
    elapsed_before : float
        Training seconds spent before this run resumed.

    Attributes
    ----------
    output, state_path : Path
        The checkpoint, and the state for ``resume`` beside it.
    start : float
        ``time.monotonic()`` when this run (or its resumption) started.
    """

    def __init__(
        self, output: Path, *, colorizer: Colorizer, optimizer, config, data, device, elapsed_before: float = 0.0
    ):
        self.output = output
        self.state_path = state_path(output)
        self.colorizer = colorizer
        self.optimizer = optimizer
        self.config = config
        self.data = data
        self.device = device
        self.elapsed_before = elapsed_before
        self.start = time.monotonic()
        self._last_save = self.start

    def elapsed(self) -> float:
        """Training seconds so far, over all the resumptions of the run."""
        return self.elapsed_before + time.monotonic() - self.start

    def due(self) -> bool:
        """Whether ``config.checkpoint_minutes`` have passed since the last save."""
        return time.monotonic() - self._last_save > 60.0 * self.config.checkpoint_minutes

    def save(self, step: int, loss: float | None, final: bool) -> None:
        """Write the checkpoint (with the training summary in its metadata), then the state.

        Parameters
        ----------
        step : int
            Optimiser steps done.
        loss : float or None
            The smoothed training loss (None before the first step).
        final : bool
            Whether the run is over (recorded as ``finished``).
        """
        import torch

        elapsed = self.elapsed()
        self.colorizer.metadata.update(
            training={
                "data": self.data.summary,
                "config": asdict(self.config),
                "steps": step,
                "wall_time_s": round(elapsed, 1),
                "device": _describe_device(self.device),
                "host": platform.machine(),
                "final_loss": round(loss, 5) if loss is not None else None,
                "finished": final,
            },
            normalisation="L = Lab lightness of the sRGB gray of the intensity normalised to [0, 1]",
            code_version=_package_version(),
            torch_version=torch.__version__,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        network = self.colorizer.network
        network.eval()  # saved as used: no batch statistics
        save_checkpoint(self.colorizer, self.output)
        self.config.enter_training_mode(self.colorizer)
        self._save_state(step, elapsed)
        self._last_save = time.monotonic()

    def _save_state(self, step: int, elapsed: float) -> None:
        """Everything ``resume`` needs, written atomically (a crash mid-write keeps the last one)."""
        import torch

        state = {
            "network": self.colorizer.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": step,
            "elapsed": elapsed,
            "prior": torch.as_tensor(self.data.prior),
            "bins": torch.as_tensor(self.colorizer.bins),
            "config": json.dumps(asdict(self.config)),
            "data": json.dumps(self.data.state_entries()),
            "metadata": json.dumps(self.colorizer.metadata),
        }
        tmp = self.state_path.with_name(f".{self.state_path.name}.tmp")
        torch.save(state, tmp)
        tmp.replace(self.state_path)
