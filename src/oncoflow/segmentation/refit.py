"""The refit head of a trained fold on disk: ``fold_<k>/head_refit.pt`` (one reader, one writer).

The head is trained by :func:`oncoflow.segmentation.frozen_head.refit_head` and read at
prediction time (:func:`oncoflow.segmentation.workflow.predict_files`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from oncoflow.errors import SegmentationError
from oncoflow.segmentation.multitask import ClassificationHead

REFIT_FILE = "head_refit.pt"
"""The refit head of a fold, next to its checkpoint in nnU-Net's results layout."""


def save_refit_head(
    path: Path,
    head: ClassificationHead,
    classes: Sequence[str],
    *,
    training_cases: Sequence[str],
    steps: int,
) -> None:
    """Write a refit head: weights, widths, class names and the cases it was trained on."""
    linear = head.mlp[0]
    payload = {
        "state_dict": head.state_dict(),
        "in_features": int(linear.in_features),
        "hidden": int(linear.out_features),
        "dropout": float(head.mlp[2].p),
        "classes": list(classes),
        "training_cases": list(training_cases),
        "steps": int(steps),
    }
    torch.save(payload, path)


def load_refit_head(path: Path) -> tuple[ClassificationHead, list[str]]:
    """A stored refit head (eval mode) and its class names.

    Raises:
        SegmentationError: No such file.
    """
    if not Path(path).is_file():
        msg = f"{path}: no refit head (train it with the nnunet_refit_head rule)"
        raise SegmentationError(msg)
    payload = torch.load(path, map_location="cpu", weights_only=False)
    head = ClassificationHead(
        payload["in_features"], len(payload["classes"]), payload["hidden"], payload["dropout"]
    )
    head.load_state_dict(payload["state_dict"])
    return head.eval(), list(payload["classes"])
