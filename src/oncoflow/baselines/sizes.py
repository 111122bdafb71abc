"""Mask sizes: the volume of every mask label per patient and time point, in millilitres.

The converted tree holds ``<patient>/<tp>/<stem>_mask.nii.gz``. At each time point the first
masked stem in alphabetical order is measured (the masks of a study's stems outline the same
structures, so one is enough), and each label ``l`` gives the column ``size_label<l>_ml``:

``volume_ml = n_voxels(mask == l) * sx * sy * sz / 1000`` with the voxel spacing in mm.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from oncoflow.errors import CohortError

log = logging.getLogger(__name__)

MASK_SUFFIX = "_mask.nii.gz"


def size_column(label: int) -> str:
    """The column name of a label's volume."""
    return f"size_label{label}_ml"


def mask_volumes(path: Path, labels: Sequence[int]) -> dict[str, float]:
    """Volume (mL) of each label of one mask file.

    Raises:
        CohortError: The file cannot be read (the message names it).
    """
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        msg = f"{path}: cannot read the mask ({str(exc).strip().splitlines()[-1]})"
        raise CohortError(msg) from exc
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    values = sitk.GetArrayViewFromImage(image)
    return {size_column(lab): float(np.count_nonzero(values == lab)) * voxel_ml for lab in labels}


def mask_sizes(converted: Path, patients: Iterable[str], labels: Sequence[int]) -> pd.DataFrame:
    """Label volumes of every patient and time point of the converted tree.

    Args:
        converted: The converted images' root (``results/converted``).
        patients: Patients to measure.
        labels: The mask labels (``studies.<s>.mask_labels``).

    Returns:
        One row per (patient_id, timepoint) with a mask, columns ``patient_id``, ``timepoint``
        and one ``size_label<l>_ml`` per label; sorted. A time point without any mask has no row.
    """
    rows = []
    for patient in sorted(set(patients)):
        folder = Path(converted) / patient
        if not folder.is_dir():
            msg = f"patient {patient}: no converted images in {folder}"
            raise CohortError(msg)
        for tp_dir in sorted(p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()):
            masks = sorted(tp_dir.glob(f"*{MASK_SUFFIX}"))
            if not masks:
                continue
            volumes = mask_volumes(masks[0], labels)
            rows.append({"patient_id": patient, "timepoint": int(tp_dir.name), **volumes})
    columns = ["patient_id", "timepoint", *(size_column(lab) for lab in labels)]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values(["patient_id", "timepoint"], ignore_index=True)
