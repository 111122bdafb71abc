"""MM-DLS inputs of a fold: crops, the tabular frame (features, lesion core, ComBat), targets.

Per patient: ``k`` lesion slices (CT + PET channels, the largest lesion areas) and ``k`` lung
context patches of the baseline time point (:func:`lesion_images`), and a tabular frame of the
clinical columns, the feature tables (PET metrics, radiomics; baseline time point) and, with the
converted images, the CT intensity percentiles of the lesion core (:func:`core_table`, mask
eroded by one voxel: the texture the resampled crops lose), harmonised across sites by ComBat
(:func:`fit_combat` on the training patients, kept as plain lists in ``model.pt`` by
:func:`combat_state`, applied frozen by :func:`combat_frames`). Targets (:func:`targets`):
histology (1 = the positive class, -1 unknown), stage index (-1 unknown), DFS and OS times
(days) and events.
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
    """ComBat of the image-derived columns across sites, fit on ``train`` + ``inner``.

    :func:`fit_combat`, then :func:`combat_frames` of every frame (the frames as they are when
    no ComBat is fit).
    """
    return combat_frames(fit_combat(inputs, frames, image_columns), inputs, frames)


def fit_combat(
    inputs: FoldInputs, frames: dict[str, pd.DataFrame], image_columns: Sequence[str]
) -> dict[str, Any] | None:
    """Fit ComBat of the image-derived columns (feature tables, lesion core) across sites.

    ``image_columns`` names them (every column of :func:`feature_frame` but the clinical ones);
    of these, the numeric, finite, non-constant ones (over every frame) are harmonised.

    Fit on the fold's ``train`` + ``inner`` patients (:class:`~oncoflow.harmonize.combat.ComBat`,
    parametric EB, no covariates) and returned as :func:`combat_state`: the other patients get
    the fitted adjustments (:func:`combat_frames`). Clinical columns, text columns and columns
    with a missing value stay as they are. Nothing is fit (``None``) with fewer than two
    training sites, without a site for every patient, or when a training site has fewer than
    two patients.

    Args:
        inputs: The fold (``sites``: patient -> site).
        frames: Group -> tabular frame (:func:`feature_frame`), with ``train`` and ``inner``.
        image_columns: The image-derived columns.

    Returns:
        The fitted ComBat as plain lists (:func:`combat_state`), or ``None``.
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
        return None
    sites = pd.Series([site_of[p] for p in fitted.index], index=fitted.index)
    counts = sites.value_counts()
    if len(counts) < 2 or counts.min() < 2:
        log.info("no ComBat: training sites %s", counts.to_dict())
        return None
    model = ComBat().fit(fitted[columns], sites.to_numpy())
    log.info(
        "ComBat over %d image-derived columns, training sites %s", len(columns), counts.to_dict()
    )
    return combat_state(model)


_COMBAT_ARRAYS: tuple[str, ...] = (
    "batch_counts_",
    "keep_",
    "grand_mean_",
    "var_pooled_",
    "gamma_hat_",
    "delta_hat_",
    "gamma_star_",
    "delta_star_",
    "gamma_bar_",
    "t2_",
    "a_prior_",
    "b_prior_",
    "n_iter_",
)
"""The fitted :class:`~oncoflow.harmonize.combat.ComBat` arrays :func:`combat_state` keeps."""


def combat_state(model: Any) -> dict[str, Any]:
    """A ComBat fitted without covariates as plain lists and numbers (``model.pt``).

    Keeps the options, the batches (sites), the feature columns and every fitted array of
    :data:`_COMBAT_ARRAYS` (``alpha_g``, ``sigma_g^2``, ``gamma*``, ``delta*`` ... in feature
    units), as Python floats: :func:`frozen_combat` rebuilds the same numbers bit for bit.
    """
    return {
        "options": {k: getattr(model, k) for k in ("parametric", "eb", "mean_only", "ref_batch")},
        "columns": [str(c) for c in model.feature_names_in_],
        "batches": [str(b) for b in model.batches_],
        "ref_index": model.ref_index_,
        "constant": [str(c) for c in model.constant_features_],
        **{name.rstrip("_"): np.asarray(getattr(model, name)).tolist() for name in _COMBAT_ARRAYS},
    }


def frozen_combat(state: dict[str, Any]) -> Any:
    """The :class:`~oncoflow.harmonize.table.FrozenComBat` of a :func:`combat_state`.

    Sites unseen at fit are estimated from their own patients (``unseen="estimate"``); a new
    site with one patient keeps the pooled training estimates (left as it is). Nothing is fit.
    """
    from oncoflow.harmonize.combat import ComBat
    from oncoflow.harmonize.inputs import _CovariateEncoder
    from oncoflow.harmonize.table import FrozenComBat

    model = ComBat(**state["options"])
    for name in _COMBAT_ARRAYS:
        kind = {"keep_": bool, "batch_counts_": int, "n_iter_": int}.get(name, float)
        setattr(model, name, np.asarray(state[name.rstrip("_")], dtype=kind))
    columns = list(state["columns"])
    model.batches_ = np.array(state["batches"], dtype=object)
    model.ref_index_ = state["ref_index"]
    model.n_features_in_ = len(columns)
    model.feature_names_in_ = pd.Index(columns)
    model.constant_features_ = list(state["constant"])
    model.encoder_, model.covariate_names_ = _CovariateEncoder(), []
    model.beta_ = np.zeros((0, len(columns)))
    return FrozenComBat(combat=model, features=columns, covariates=[], unseen="estimate")


def combat_frames(
    state: dict[str, Any] | None,
    inputs: FoldInputs,
    frames: dict[str, pd.DataFrame],
    notes: dict[str, Any] | None = None,
) -> dict[str, pd.DataFrame]:
    """Each frame's ComBat columns harmonised with the frozen estimates of ``state``.

    A patient of a site seen at fit gets that site's adjustment,
    ``y* = (z - gamma*_s) / sqrt(delta*_s) * sigma_g + alpha_g`` with
    ``z = (y - alpha_g) / sigma_g``; a site without training patients (the site-held-out
    external test, a new cohort's site) has ``gamma*``, ``delta*`` estimated from the frame's
    own patients of that site, never from outcomes; a new site with one patient keeps the pooled
    training estimates. ``state`` ``None``: frames as they are. ``notes``, when given, receives
    the sites ``estimated`` from the frames and those left ``pooled``.

    Raises:
        ModelError: A patient has no site (``images.csv`` column ``site``) though the model
            harmonises its features.
    """
    if state is None:
        return frames
    frozen, out = frozen_combat(state), {}
    for name, frame in frames.items():
        missing = [str(p) for p in frame.index if p not in inputs.sites]
        if missing:
            msg = (
                f"patient(s) {', '.join(missing[:10])}: no site in images.csv; the model "
                "harmonises its image features across sites (ComBat) and needs each one"
            )
            raise ModelError(msg)
        columns = frozen.features
        table = frame[columns].reset_index(drop=True)
        table.insert(0, "patient_id", [str(p) for p in frame.index])
        batches = pd.Series({str(p): inputs.sites[p] for p in frame.index}, dtype=object)
        result, stats = frozen.transform(table, batches, source=f"mm_dls {name} tabular frame")
        if notes is not None:
            for key, found in (("estimated", "estimated_batches"), ("pooled", "pooled_batches")):
                notes[key] = sorted({*notes.get(key, []), *stats.get(found, [])})
        frame = frame.copy()
        frame[columns] = result[columns].to_numpy()
        out[name] = frame
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


def outcome_columns(s: MMDLSSettings) -> list[str]:
    """The outcome columns :func:`targets` reads: histology, stage, ``<task>_time`` / ``_event``."""
    return [s.histology, s.stage, *(f"{n}_{k}" for n in SURVIVAL for k in ("time", "event"))]


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
