"""Training utilities shared by every deep model.

Device, seeding, EMA, resumable checkpoints and per-step history (:mod:`oncoflow.train.engine`);
the epoch loop with validation-only selection and early stopping (:mod:`oncoflow.train.loop`);
the models are built by ``oncoflow.models.create_model(name, **cfg)``.
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
