"""Segmentation evaluation: per-case Dice tables summarised with patient-level bootstrap CIs.

The Dice coefficient itself is :func:`oncoflow.metrics.segmentation.dice`; the per-case table
(``dice.csv``) is written by the segmentation family
(:func:`oncoflow.segmentation.dice.dice_table`). A *region* is a set of label values (nnU-Net's
region-based training: the whole pancreas is ``{1, 2}`` = pancreas + lesion, the lesion is
``{2}``). For binary masks ``A`` (prediction) and ``B`` (reference) of one region,

    Dice = 2 |A ∩ B| / (|A| + |B|)

with two explicit empty cases: both masks empty -> 1 (the model correctly finds nothing), exactly
one empty -> 0. nnU-Net's own summary leaves the both-empty case out (NaN); we count it, so a
model that never hallucinates a lesion in lesion-free cases gets credit; ``empty_reference``
counts those cases so a reader can discount them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.errors import ModelError
from oncoflow.metrics.bootstrap import bootstrap_ci


def summarize_dice(
    table: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict[str, Any]:
    """Mean Dice per region (and split, if the table has a ``split`` column) with CIs.

    Args:
        table: :func:`oncoflow.segmentation.dice.dice_table` rows (``patient_id``,
            ``region``, ``dice``, optional ``split``, ``reference_voxels``).
        n_boot: Bootstrap replicates (whole patients resampled).
        seed: Bootstrap seed.
        alpha: 1 - confidence level.

    Returns:
        JSON-ready ``{"kind": "segmentation", "n_boot", "alpha", "regions": {region: {split:
        {"dice": {"value", "ci_low", "ci_high"}, "median", "n_cases", "n_patients",
        "empty_reference", "per_case": [...]}}}}`` (split ``all`` without a ``split`` column).

    Raises:
        ModelError: Missing columns.
    """
    missing = [c for c in ("patient_id", "region", "dice") if c not in table.columns]
    if missing:
        msg = f"Dice table lacks column(s) {', '.join(missing)}"
        raise ModelError(msg)
    frame = table.copy()
    if "split" not in frame.columns:
        frame["split"] = "all"
    result: dict[str, Any] = {"kind": "segmentation", "n_boot": n_boot, "alpha": alpha}
    result["regions"] = {}
    for (region, split), rows in frame.groupby(["region", "split"], sort=True):
        values = rows["dice"].to_numpy(float)
        estimate, low, high = bootstrap_ci(
            np.mean, values, n=n_boot, seed=seed, alpha=alpha, groups=rows["patient_id"]
        )
        empty = int((rows["reference_voxels"] == 0).sum()) if "reference_voxels" in rows else 0
        result["regions"].setdefault(str(region), {})[str(split)] = {
            "dice": {"value": float(estimate), "ci_low": float(low), "ci_high": float(high)},
            "median": float(np.median(values)),
            "n_cases": len(rows),
            "n_patients": int(rows["patient_id"].nunique()),
            "empty_reference": empty,
            "per_case": [round(float(v), 4) for v in values],
        }
    return result


def read_dice_table(path: Path) -> pd.DataFrame:
    """A per-case Dice CSV (``dice_table`` columns, optional ``split``), ids as text.

    Raises:
        ModelError: Missing or unreadable file, or missing columns (the file is named).
    """
    try:
        table = pd.read_csv(path, dtype={"case": str, "patient_id": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        msg = f"{path}: cannot read the Dice table ({exc})"
        raise ModelError(msg) from exc
    missing = [c for c in ("case", "patient_id", "region", "dice") if c not in table.columns]
    if missing:
        msg = f"{path}: Dice table lacks column(s) {', '.join(missing)}"
        raise ModelError(msg)
    return table
