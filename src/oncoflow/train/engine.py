"""Pieces of a resumable, reproducible training loop.

* :func:`resolve_device` - ``auto`` = CUDA when present, else CPU (the workflow's ``device``).
* :func:`seed_everything` - Python, NumPy and torch seeds, deterministic CPU kernels.
* :class:`EMA` - exponential moving average of the weights,
  ``w_ema <- d w_ema + (1 - d) w`` every ``every`` steps from step ``start`` (copied before).
* :class:`Checkpoint` - one resume file written atomically (temporary name + rename) holding the
  step, model, EMA, optimiser and random-generator states and the hash of the settings; a file
  whose hash differs (other settings) is ignored, never resumed from. Keep it outside the
  rule's declared outputs: Snakemake deletes those when a job fails, the resume file must stay.
* :class:`History` - ``history.csv``, one row per logged step, rewritten on resume so the file
  holds exactly the steps of the final run.

A run that is killed and restarted from its last checkpoint continues the same random streams,
so on CPU it ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from oncoflow.errors import ModelError


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cpu``, ``cuda``, ``cuda:N`` as given.

    Raises:
        ModelError: CUDA asked for but not available.
    """
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        msg = f"device {spec!r} asked for, but torch sees no CUDA device (use device: auto)"
        raise ModelError(msg)
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; deterministic algorithms where torch has them.

    Returns:
        A CPU :class:`torch.Generator` seeded with ``seed`` for the loop's own draws.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - libraries that draw from the global state
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def config_hash(settings: Mapping[str, Any]) -> str:
    """16 hex digits of SHA-256 over the settings as sorted JSON."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class EMA:
    """Exponential moving average of a model's parameters and buffers.

    Args:
        model: The trained model (its state is copied).
        decay: ``d`` of the update.
        start: Steps before which the average is a plain copy of the weights.
        every: Update interval in steps.
    """

    def __init__(
        self, model: torch.nn.Module, decay: float = 0.995, start: int = 0, every: int = 1
    ):
        self.decay, self.start, self.every = float(decay), int(start), int(every)
        self.model = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        """Update after optimiser step ``step`` (1-based)."""
        if step % self.every:
            return
        if step < self.start:
            self.model.load_state_dict(model.state_dict())
            return
        current = model.state_dict()
        for name, value in self.model.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(self.decay).add_(current[name].detach(), alpha=1 - self.decay)
            else:
                value.copy_(current[name])


class Checkpoint:
    """A resume file (module docstring) for the run with settings hash ``key``."""

    def __init__(self, path: Path | str, key: str) -> None:
        self.path = Path(path)
        self.key = key

    def save(self, state: Mapping[str, Any]) -> None:
        """Write ``state`` (+ the key) atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.partial")
        torch.save({**state, "key": self.key}, partial)
        os.replace(partial, self.path)

    def load(self) -> dict[str, Any] | None:
        """The saved state, or ``None`` when there is none or it belongs to other settings."""
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=False)
        except (OSError, RuntimeError, EOFError) as exc:
            msg = f"{self.path}: unreadable resume file ({exc}); delete it to start over"
            raise ModelError(msg) from exc
        return state if state.get("key") == self.key else None


class History:
    """``history.csv`` rows, kept in memory and rewritten whole (small: one row per log step)."""

    def __init__(self, path: Path | str, rows: list[dict[str, Any]] | None = None) -> None:
        self.path = Path(path)
        self.rows = list(rows or [])

    def log(self, **values: Any) -> None:
        """Add one row."""
        self.rows.append(values)

    def write(self) -> None:
        """Write every row to :attr:`path`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(self.rows).to_csv(self.path, index=False)
