"""MM-DLS inputs of a fold: crops, the tabular frame (features, lesion core, ComBat), targets.

Per patient: ``k`` lesion slices (CT + PET channels, the largest lesion areas) and ``k`` lung
context patches of the baseline time point (:func:`lesion_images`), and a tabular frame of the
clinical columns, the feature tables (PET metrics, radiomics; baseline time point) and, with the
converted images, the CT intensity percentiles of the lesion core (:func:`core_table`, mask
eroded by one voxel: the texture the resampled crops lose), harmonised across sites by ComBat
(:func:`harmonized`). Targets (:func:`targets`): histology (1 = the positive class, -1 unknown),
stage index (-1 unknown), DFS and OS times (days) and events.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from oncoflow.deep.common import FoldInputs, permuted
from oncoflow.deep.data import downsample, lesion_core_statistics, select_slices
from oncoflow.deep.mmdls_settings import MMDLSSettings
from oncoflow.errors import ModelError

log = logging.getLogger(__name__)

SURVIVAL: tuple[str, ...] = ("dfs", "os")
"""The survival tasks (columns ``<task>_time`` in days and ``<task>_event``)."""

LESION_LABELS: tuple[int, ...] = (2,)
"""Lesion labels of the converted CT masks (the cohort's convention: lung 1, lesion 2)."""


def converted_baseline(converted: Path, patient: str, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """Baseline ``<stem>.nii.gz`` and ``<stem>_mask.nii.gz`` of a patient (z, y, x), from convert.

    Raises:
        ModelError: The image or its mask is missing (patient and folder named).
    """
    import SimpleITK as sitk

    folder = Path(converted) / patient / "0"
    image_path, mask_path = folder / f"{stem}.nii.gz", folder / f"{stem}_mask.nii.gz"
    if not image_path.is_file() or not mask_path.is_file():
        msg = f"patient {patient}: no converted {stem} image + mask in {folder}"
        raise ModelError(msg)
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(image_path)))
    return image, sitk.GetArrayFromImage(sitk.ReadImage(str(mask_path)))


def lesion_images(
    inputs: FoldInputs, patients: list[str], s: MMDLSSettings
) -> tuple[torch.Tensor, ...]:
    """Lesion ``(n, k, 2, S, S)`` (CT, PET) and context ``(n, k, 1, S, S)`` crops, baseline.

    ``k`` = ``s.slices`` slices of the largest lesion areas, resized to ``S = s.input_size``.
    """
    lesion, context = [], []
    ct, pet = s.stems
    for p in patients:
        tp = min(inputs.lesions[p])
        crops = inputs.lesions[p][tp]
        lesion.append(
            np.stack([select_slices(crops[ct], s.slices), select_slices(crops[pet], s.slices)], 1)
        )
        context.append(select_slices(crops[ct], s.slices, what="context")[:, None])
    return (
        downsample(torch.from_numpy(np.stack(lesion)), s.input_size),
        downsample(torch.from_numpy(np.stack(context)), s.input_size),
    )


def feature_frame(
    inputs: FoldInputs, patients: list[str], s: MMDLSSettings, core: pd.DataFrame | None
) -> pd.DataFrame:
    """The patients' tabular frame, before encoding.

    Columns: the clinical columns, ``<table>:<column>`` of each feature table (its first time
    point when it has several) and ``core:<statistic>`` of ``core`` when given.

    Raises:
        ModelError: A feature table lacks a row for a patient (named).
    """
    parts = [inputs.clinical.loc[patients, s.clinical]]
    for name, table in inputs.features.items():
        if "timepoint" in table.columns:
            table = table.sort_values("timepoint").groupby(level=0).first()
            table = table.drop(columns="timepoint")
        missing = [p for p in patients if p not in table.index]
        if missing:
            msg = f"feature table {name}: no row for patient(s) {', '.join(missing[:10])}"
            raise ModelError(msg)
        parts.append(table.loc[patients].add_prefix(f"{name}:"))
    if core is not None:
        parts.append(core.loc[patients].add_prefix("core:"))
    return pd.concat(parts, axis=1)


def harmonized(
    inputs: FoldInputs, frames: dict[str, pd.DataFrame], image_columns: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """ComBat of the image-derived columns (feature tables, lesion core) across sites.

    ``image_columns`` names them (every column of :func:`feature_frame` but the clinical ones);
    of these, the numeric, finite, non-constant ones are harmonised.

    Fit on the fold's ``train`` + ``inner`` patients (:class:`~oncoflow.harmonize.combat.ComBat`,
    parametric EB); the other patients get the fitted adjustments, and a site without training
    patients (the site-held-out external test) has its location and scale estimated from its
    own patients' features, never from outcomes (``unseen="estimate"``, as the harmonize stage
    does). Clinical columns, text columns and columns with a missing value stay as they are.
    Nothing happens with fewer than two training sites, without sites, or when a training
    site has fewer than two patients.
    """
    from oncoflow.harmonize.combat import ComBat

    fitted = pd.concat([frames["train"], frames["inner"]])
    everyone = pd.concat(list(frames.values()))
    columns = [
        c
        for c in image_columns
        if pd.api.types.is_numeric_dtype(everyone[c])
        and np.isfinite(everyone[c].to_numpy(float)).all()
        and everyone[c].std() > 0
    ]
    site_of = inputs.sites
    if not columns or any(p not in site_of for p in everyone.index):
        return frames
    sites = pd.Series([site_of[p] for p in fitted.index], index=fitted.index)
    counts = sites.value_counts()
    if len(counts) < 2 or counts.min() < 2:
        log.info("no ComBat: training sites %s", counts.to_dict())
        return frames
    model = ComBat().fit(fitted[columns], sites.to_numpy())
    out = {}
    for name, frame in frames.items():
        frame = frame.copy()
        batch = [site_of[p] for p in frame.index]
        frame[columns] = model.transform(frame[columns], batch, unseen="estimate")
        out[name] = frame
    log.info(
        "ComBat over %d image-derived columns, training sites %s", len(columns), counts.to_dict()
    )
    return out


_CORE_CACHE: dict[tuple[str, str, str], dict[str, float]] = {}


def core_table(inputs: FoldInputs, s: MMDLSSettings) -> pd.DataFrame:
    """:func:`lesion_core_statistics` of every patient's baseline CT (read once per process)."""
    stem = s.stems[0]
    rows = {}
    for patient in inputs.lesions:
        key = (str(inputs.converted), patient, stem)
        if key not in _CORE_CACHE:
            image, mask = converted_baseline(Path(str(inputs.converted)), patient, stem)
            lesion = np.isin(mask, LESION_LABELS)
            _CORE_CACHE[key] = lesion_core_statistics(image, lesion)
        rows[patient] = _CORE_CACHE[key]
    return pd.DataFrame.from_dict(rows, orient="index")


def targets(
    outcomes: pd.DataFrame, patients: list[str], s: MMDLSSettings, stages: list[str]
) -> dict[str, np.ndarray]:
    """The four tasks' targets of the patients (module docstring; ``stages``: class order).

    Args:
        outcomes: Outcomes indexed by patient.
        patients: Patients, in row order.
        s: Settings (histology / stage columns, positive class).
        stages: The stage classes; a value outside them is -1.

    Returns:
        ``histology`` (float: 1, 0 or -1), ``stage`` (int64 index or -1) and
        ``<task>_time`` / ``<task>_event`` (float, NaN when missing) for ``dfs`` and ``os``.
    """
    rows = outcomes.loc[patients]
    hist = rows[s.histology].astype(object)
    stage = rows[s.stage].astype(object)
    out: dict[str, Any] = {
        "histology": np.where(hist.isna(), -1.0, (hist == s.positive).astype(float)),
        "stage": np.array([stages.index(v) if v in stages else -1 for v in stage], dtype=np.int64),
    }
    for name in SURVIVAL:
        out[f"{name}_time"] = pd.to_numeric(rows[f"{name}_time"], errors="coerce").to_numpy(float)
        out[f"{name}_event"] = pd.to_numeric(rows[f"{name}_event"], errors="coerce").to_numpy(float)
    return out


def permute_targets(targets: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Negative control: every task's labels permuted across patients (time with its event).

    Task ``i`` (histology, stage, DFS, OS) is permuted with seed ``seed + i``.
    """
    out = dict(targets)
    for i, group in enumerate(
        (("histology",), ("stage",), ("dfs_time", "dfs_event"), ("os_time", "os_event"))
    ):
        order = permuted(np.arange(len(targets["stage"])), seed + i)
        for name in group:
            out[name] = targets[name][order]
    return out
