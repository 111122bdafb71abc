"""Segmentation evaluation: Dice per region and case, summarised with patient-level bootstrap CIs.

The Dice coefficient itself is :func:`oncoflow.metrics.segmentation.dice`. A *region* is a set of
label values (nnU-Net's region-based training: the whole pancreas is ``{1, 2}`` = pancreas +
lesion, the lesion is ``{2}``). For binary masks ``A`` (prediction) and ``B`` (reference) of one
region,

    Dice = 2 |A ∩ B| / (|A| + |B|)

with two explicit empty cases: both masks empty -> 1 (the model correctly finds nothing), exactly
one empty -> 0. nnU-Net's own summary leaves the both-empty case out (NaN); we count it, so a
model that never hallucinates a lesion in lesion-free cases gets credit; ``empty_reference``
counts those cases so a reader can discount them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.errors import ModelError
from oncoflow.metrics.bootstrap import bootstrap_ci
from oncoflow.metrics.segmentation import dice

SPACING_TOLERANCE_MM = 1e-3
"""Largest spacing / origin difference (mm) at which two masks count as on the same grid."""


def _read_mask(path: Path) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    import nibabel as nib

    try:
        image = nib.load(str(path))
    except (OSError, ValueError, nib.filebasedimages.ImageFileError) as exc:
        msg = f"{path}: cannot read the mask ({exc})"
        raise ModelError(msg) from exc
    affine = image.affine
    return np.asarray(image.dataobj).astype(np.int32), (affine[:3, :3], affine[:3, 3])


def dice_table(
    cases: Iterable[tuple[str, Path | str, Path | str]],
    regions: Mapping[str, Sequence[int]],
) -> pd.DataFrame:
    """Per-case Dice of every region from predicted and reference label maps (NIfTI).

    Args:
        cases: ``(case_id, predicted mask, reference mask)``; a case id is a patient (or
            ``<patient>_<timepoint>``; :func:`summarize_dice` resamples by the ``patient_id``
            column, which is the part before the first ``_`` of ``case`` unless given).
        regions: Region name -> label values.

    Returns:
        ``case, patient_id, region, dice, reference_voxels, predicted_voxels``, one row per case
        x region.

    Raises:
        ModelError: An unreadable mask, or two masks not on one grid (the case is named).
    """
    rows = []
    for case, predicted_path, reference_path in cases:
        predicted, grid_a = _read_mask(Path(predicted_path))
        reference, grid_b = _read_mask(Path(reference_path))
        same = predicted.shape == reference.shape and all(
            np.allclose(x, y, atol=SPACING_TOLERANCE_MM)
            for x, y in zip(grid_a, grid_b, strict=True)
        )
        if not same:
            msg = f"case {case}: {predicted_path} and {reference_path} are not on one voxel grid"
            raise ModelError(msg)
        for name, labels in regions.items():
            a, b = np.isin(predicted, list(labels)), np.isin(reference, list(labels))
            rows.append(
                {
                    "case": str(case),
                    "patient_id": str(case).split("_", 1)[0],
                    "region": name,
                    "dice": dice(a, b),
                    "reference_voxels": int(b.sum()),
                    "predicted_voxels": int(a.sum()),
                }
            )
    return pd.DataFrame(rows)


def summarize_dice(
    table: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict[str, Any]:
    """Mean Dice per region (and split, if the table has a ``split`` column) with CIs.

    Args:
        table: :func:`dice_table` rows (``patient_id``, ``region``, ``dice``, optional
            ``split``, ``reference_voxels``).
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
    """A per-case Dice CSV (:func:`dice_table` columns, optional ``split``), ids as text.

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
