"""Mask sizes and lesion statistics per patient and time point, read off the masks.

The converted tree holds ``<patient>/<tp>/<stem>_mask.nii.gz``. At each time point the first
masked stem in alphabetical order is measured (the masks of a study's stems outline the same
structures, so one is enough), and each label ``l`` gives the column ``size_label<l>_ml``:

``volume_ml = n_voxels(mask == l) * sx * sy * sz / 1000`` with the voxel spacing in mm.

The ``lesion`` statistics (:func:`mask_statistics`, what a reader measures on a mask without any
model) add per label the mean and SD of the image inside it (``lesion_label<l>_mean`` /
``_sd``, in the image's units: HU for CT) and its elongation ``sqrt(lambda_max / lambda_min)``
of the covariance of its voxel positions in mm (``lesion_label<l>_elongation``; 1 for a sphere,
empty below 4 voxels).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from oncoflow.errors import CohortError
from oncoflow.lesions.statistics import region_statistics

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
    return _volumes(_read(path, "mask"), labels)


def _volumes(mask: sitk.Image, labels: Sequence[int]) -> dict[str, float]:
    voxel_ml = float(np.prod(mask.GetSpacing())) / 1000.0
    values = sitk.GetArrayViewFromImage(mask)
    return {size_column(lab): float(np.count_nonzero(values == lab)) * voxel_ml for lab in labels}


def _read(path: Path, what: str) -> sitk.Image:
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        msg = f"{path}: cannot read the {what} ({str(exc).strip().splitlines()[-1]})"
        raise CohortError(msg) from exc


def label_statistics(mask_path: Path, labels: Sequence[int]) -> dict[str, float]:
    """Volume, image mean / SD inside and elongation of each label of one mask (module docstring).

    The image is the mask's stem: ``<stem>_mask.nii.gz`` -> ``<stem>.nii.gz`` (same grid).

    Raises:
        CohortError: The mask or its image cannot be read, or they differ in shape.
    """
    mask = _read(mask_path, "mask")
    image_path = mask_path.with_name(mask_path.name.removesuffix(MASK_SUFFIX) + ".nii.gz")
    # a copy: a view of a temporary image points at freed memory once the image is collected
    # (it gave SDs of 1e34 in about one process in five)
    image = sitk.GetArrayFromImage(_read(image_path, "image")).astype(np.float64)
    values = sitk.GetArrayViewFromImage(mask)
    if image.shape != values.shape:
        msg = f"{mask_path}: not on the grid of {image_path.name} ({values.shape} vs {image.shape})"
        raise CohortError(msg)
    spacing = np.array(mask.GetSpacing()[::-1], dtype=float)  # (z, y, x) mm
    out = _volumes(mask, labels)
    for lab in labels:
        mean, sd, elongation = region_statistics(image, values == lab, spacing)
        out[f"lesion_label{lab}_mean"] = mean
        out[f"lesion_label{lab}_sd"] = sd
        out[f"lesion_label{lab}_elongation"] = elongation
    return out


def mask_statistics(
    converted: Path, patients: Iterable[str], labels: Sequence[int]
) -> pd.DataFrame:
    """:func:`mask_sizes` plus the lesion statistics of every label (module docstring)."""
    columns = [size_column(lab) for lab in labels] + [
        f"lesion_label{lab}_{what}" for lab in labels for what in ("mean", "sd", "elongation")
    ]
    return _measure(converted, patients, labels, label_statistics, columns)


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
    columns = [size_column(lab) for lab in labels]
    return _measure(converted, patients, labels, mask_volumes, columns)


def _measure(
    converted: Path,
    patients: Iterable[str],
    labels: Sequence[int],
    measure: Callable[[Path, Sequence[int]], dict[str, float]],
    columns: Sequence[str],
) -> pd.DataFrame:
    """``measure`` of the first mask of every patient's time points, one row each, sorted."""
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
            values = measure(masks[0], labels)
            rows.append({"patient_id": patient, "timepoint": int(tp_dir.name), **values})
    table = pd.DataFrame(rows, columns=["patient_id", "timepoint", *columns])
    return table.sort_values(["patient_id", "timepoint"], ignore_index=True)
