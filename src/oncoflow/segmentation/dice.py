"""Per-case Dice of predicted against reference label maps (NIfTI): the rows of ``dice.csv``.

The nnU-Net stage writes ``dice.csv`` (:func:`oncoflow.segmentation.workflow.collect`) and the
evaluate stage only reads and summarises it (:mod:`oncoflow.evaluate.segmentation`), so the table is
built here, on the segmentation side of the layers (``docs/design.md``, "Layers"). The coefficient
and its empty-mask conventions (both empty: 1, one empty: 0) are
:func:`oncoflow.metrics.segmentation.dice`; a *region* is a set of label values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from oncoflow.errors import ModelError
from oncoflow.metrics.segmentation import dice

SPACING_TOLERANCE_MM = 1e-3
"""Largest difference (mm) of voxel axes or origin at which two masks count as on one grid."""


def read_label_map(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A NIfTI label map as int32 voxels, and its affine.

    Raises:
        ModelError: The file cannot be read as NIfTI (the path is named).
    """
    import nibabel as nib

    try:
        image = nib.load(str(path))
    except (OSError, ValueError, nib.filebasedimages.ImageFileError) as exc:
        msg = f"{path}: cannot read the mask ({exc})"
        raise ModelError(msg) from exc
    return np.asarray(image.dataobj).astype(np.int32), np.asarray(image.affine)


def _same_grid(a: np.ndarray, affine_a: np.ndarray, b: np.ndarray, affine_b: np.ndarray) -> bool:
    """Same shape, and voxel axes and origin equal within :data:`SPACING_TOLERANCE_MM`."""
    if a.shape != b.shape:
        return False
    axes = np.allclose(affine_a[:3, :3], affine_b[:3, :3], atol=SPACING_TOLERANCE_MM)
    return axes and np.allclose(affine_a[:3, 3], affine_b[:3, 3], atol=SPACING_TOLERANCE_MM)


def dice_table(
    cases: Iterable[tuple[str, Path | str, Path | str]],
    regions: Mapping[str, Sequence[int]],
) -> pd.DataFrame:
    """Dice of every region for every case, with the voxel counts behind it.

    Args:
        cases: ``(case_id, predicted mask, reference mask)``. A case id is a patient or
            ``<patient>_<timepoint>``; ``patient_id`` is the part before the first ``_``.
        regions: Region name -> the label values it is made of.

    Returns:
        One row per case and region: ``case, patient_id, region, dice, reference_voxels,
        predicted_voxels``.

    Raises:
        ModelError: A mask cannot be read, or the two masks of a case are not on one voxel grid
            (the case and both files are named).
    """
    rows = []
    for case, predicted_path, reference_path in cases:
        predicted, predicted_affine = read_label_map(Path(predicted_path))
        reference, reference_affine = read_label_map(Path(reference_path))
        if not _same_grid(predicted, predicted_affine, reference, reference_affine):
            msg = f"case {case}: {predicted_path} and {reference_path} are not on one voxel grid"
            raise ModelError(msg)
        for region, labels in regions.items():
            inside_predicted = np.isin(predicted, list(labels))
            inside_reference = np.isin(reference, list(labels))
            rows.append(
                {
                    "case": str(case),
                    "patient_id": str(case).split("_", 1)[0],
                    "region": region,
                    "dice": dice(inside_predicted, inside_reference),
                    "reference_voxels": int(inside_reference.sum()),
                    "predicted_voxels": int(inside_predicted.sum()),
                }
            )
    return pd.DataFrame(rows)
