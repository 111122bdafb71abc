"""The fold ensemble of a deep model: the folds' ``predictions.csv`` joined into the study's.

Pandas only (no torch), so the ``collect_model`` job starts in well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from oncoflow.errors import ModelError
from oncoflow.formats import read_predictions, write_predictions
from oncoflow.splits import APPLY_SPLIT, TEST_SPLITS


def ensemble_predictions(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Join the folds' ``predictions.csv``: validation rows as they are, test rows averaged.

    Each fold model predicts every test patient (and every patient of a new cohort, split
    ``apply``); the ``final`` row of such a patient holds the mean over the folds of every score
    column (``y_score*``, ``risk``, ``survival_*``).

    Raises:
        ModelError: A patient appears as validation in two folds, or folds disagree on a label.
    """
    frame = pd.concat(tables, ignore_index=True)
    frame["fold"] = frame["fold"].astype(str)
    validation = frame[frame["split"] == "validation"]
    keys = ["patient_id", "target"] + [c for c in ("timepoint", "permutation") if c in frame]
    twice = validation[validation.duplicated(keys, keep=False)]
    if len(twice):
        msg = f"patients validated in two folds: {', '.join(sorted(set(twice['patient_id'])))}"
        raise ModelError(msg)
    test = frame[frame["split"].isin((*TEST_SPLITS, APPLY_SPLIT))]
    scores = [c for c in frame.columns if c.startswith(("y_score", "risk", "survival_"))]
    labels = [c for c in frame.columns if c not in {*scores, *keys, "fold"}]
    grouped = test.groupby(keys, sort=True, dropna=False)
    if (grouped[labels].nunique(dropna=False) > 1).any().any():
        msg = "fold predictions disagree on the labels of a test patient"
        raise ModelError(msg)
    final = grouped[labels].first().join(grouped[scores].mean()).reset_index()
    final["fold"] = "final"
    out = pd.concat([validation, final[validation.columns]], ignore_index=True)
    return out


def collect_folds(paths: Sequence[Path], out: Path) -> pd.DataFrame:
    """Join fold ``predictions.csv`` files into the study's (module docstring)."""
    frame = ensemble_predictions([read_predictions(p) for p in paths])
    write_predictions(out, frame)
    return frame
