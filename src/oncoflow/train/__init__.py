"""Training utilities shared by every deep model (see :mod:`oncoflow.train.engine`).

Device, seeding, EMA, resumable checkpoints and per-step history.
"""

from __future__ import annotations

from oncoflow.train.engine import (
    EMA,
    Checkpoint,
    History,
    config_hash,
    resolve_device,
    seed_everything,
)

__all__ = ["EMA", "Checkpoint", "History", "config_hash", "resolve_device", "seed_everything"]
