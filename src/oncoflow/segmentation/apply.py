"""Score a new cohort with the frozen multitask nnU-Net of a study (nothing is trained).

The new cohort's cases (patient x time point, :func:`new_cohort_cases`) are staged exactly as the
export stages its test cases (:func:`~oncoflow.segmentation.export.write_case_images`) and
predicted by the ensemble of the study's trained folds. Layout of ``out_dir``::

    <case>.nii.gz                   predicted label map on the grid of the case's input image
    cases.csv                       case_id, fold, n_patches, y_score_<class>... (as predict)
    masks/<patient>_tp<tp>.nii.gz   the same masks, named as the lesion crops look them up
                                    (``extract_lesions.py --predicted-masks <out_dir>/masks``)

The label maps hold the dataset's labels (regions painted in ``regions_class_order``: for the
pancreas, 1 = pancreas outside the lesion, 2 = lesion), the values the lesion settings name
(``organ_labels: [1]``, ``lesion_labels: [2]``).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.cohort import is_missing
from oncoflow.errors import SegmentationError
from oncoflow.segmentation.export import (
    Case,
    case_id,
    channel_name,
    label_values,
    write_case_images,
)
from oncoflow.segmentation.predict import predict_files
from oncoflow.segmentation.workflow import (
    NnunetSettings,
    _label_text,
    patient_sites,
    reference_dice,
)
from oncoflow.splits import APPLY_SPLIT
from oncoflow.workflow.tables import stem

log = logging.getLogger(__name__)

STAGING = "imagesTs"
"""Folder of ``out_dir`` holding the staged channel files while the cases are predicted."""

MASKS = "masks"
"""Folder of ``out_dir`` holding the masks under the lesion crops' names."""

GRID_TOLERANCE = 1e-3
"""Largest difference (mm) of spacing or origin between a predicted mask and its image."""


def lesion_mask_name(patient: str, timepoint: int) -> str:
    """File name of a predicted mask in a ``--predicted-masks`` folder of the lesion crops."""
    return f"{patient}_tp{int(timepoint)}.nii.gz"


def new_cohort_cases(
    converted: Path,
    images: pd.DataFrame,
    channels: Sequence[str],
    *,
    label_stem: str,
) -> list[Case]:
    """Every patient x time point of a new cohort's ``images.csv`` with an image of a channel.

    A time point with an image of any of the ``channels`` is a case and needs all of them, in
    ``images.csv`` and in the converted tree; its reference mask is the converted
    ``<label_stem>_mask.nii.gz`` when the label stem's row has a ``mask_path``.

    Args:
        converted: Converted images of the new cohort (``<patient>/<tp>/<stem>.nii.gz``).
        images: The new cohort's ``images.csv`` rows.
        channels: The study's channel stems, in the model's channel order.
        label_stem: Stem whose mask is the reference label map.

    Returns:
        Cases (split ``apply``, no class label) sorted by case id.

    Raises:
        SegmentationError: No case at all, or a case misses a channel in ``images.csv`` or in
            the converted tree (patient, time point and stem are named).
    """
    rows = images.assign(
        stem=[
            stem(str(m), str(s)) for m, s in zip(images["modality"], images["series"], strict=True)
        ]
    )
    wanted = rows[rows["stem"].isin([*channels, label_stem])]
    cases = []
    for (patient, tp), group in wanted.groupby(["patient_id", "timepoint"], sort=True):
        patient, tp = str(patient), int(tp)
        present = set(group["stem"])
        if not present & set(channels):
            continue
        folder = Path(converted) / patient / str(tp)
        for name in channels:
            path = folder / f"{name}.nii.gz"
            if name not in present or not path.exists():
                where = "images.csv has no row" if name not in present else f"no file {path}"
                msg = (
                    f"patient {patient}, time point {tp}: no {name} image ({where}); the model "
                    f"needs every channel ({', '.join(channels)})"
                )
                raise SegmentationError(msg)
        labelled = (
            group.loc[group["stem"] == label_stem, "mask_path"] if "mask_path" in group else []
        )
        has_mask = any(not is_missing(v) for v in labelled)
        label = folder / f"{label_stem}_mask.nii.gz" if has_mask else None
        images_of = tuple(folder / f"{name}.nii.gz" for name in channels)
        cases.append(Case(case_id(patient, tp), patient, tp, APPLY_SPLIT, images_of, label))
    if not cases:
        msg = f"images.csv of the new cohort has no {' or '.join(channels)} image to predict"
        raise SegmentationError(msg)
    skipped = sorted(set(rows["patient_id"].astype(str)) - {c.patient_id for c in cases})
    if skipped:
        log.info("no %s image, not predicted: %s", "/".join(channels), ", ".join(skipped))
    return sorted(cases, key=lambda c: c.case_id)


def unmasked_timepoints(images: pd.DataFrame, label: str) -> pd.DataFrame:
    """The ``images.csv`` rows of the time points whose ``label`` image has no mask.

    A study whose lesion crops fall back on a frozen nnU-Net (``lesions.segmentor``) has only
    these time points segmented; the others keep their own masks.

    Args:
        images: ``images.csv`` rows (``modality``, ``series``, ``timepoint``, ``mask_path``).
        label: The stem whose mask is looked for (the nnU-Net's ``label`` channel).
    """
    rows = images.assign(
        _stem=[stem(m, s) for m, s in zip(images["modality"], images["series"], strict=True)]
    )
    mask = rows["mask_path"] if "mask_path" in rows else pd.Series(None, index=rows.index)
    unmasked = rows[(rows["_stem"] == label) & mask.map(is_missing)]
    keys = set(zip(unmasked["patient_id"], unmasked["timepoint"], strict=True))
    chosen = [k in keys for k in zip(rows["patient_id"], rows["timepoint"], strict=True)]
    return images[chosen]


def model_classes(model_dir: Path, channels: Sequence[str]) -> list[str]:
    """Class names of a trained model's head, after checking its channels match the study's.

    Args:
        model_dir: ``<trainer>__<plans>__<configuration>`` folder (its ``dataset.json`` and
            ``plans.json`` are those training used).
        channels: The study's channel stems.

    Raises:
        SegmentationError: The model folder has no ``dataset.json``, it was trained on other
            channels, or neither file names the head's classes.
    """
    path = Path(model_dir) / "dataset.json"
    if not path.is_file():
        msg = f"{model_dir}: no dataset.json (is the study's nnU-Net trained?)"
        raise SegmentationError(msg)
    dataset = json.loads(path.read_text())
    trained = [dataset.get("channel_names", {}).get(str(i)) for i in range(len(channels))]
    expected = [channel_name(s) for s in channels]
    if len(dataset.get("channel_names", {})) != len(channels) or trained != expected:
        msg = (
            f"{path}: the model was trained on channels {dataset.get('channel_names')}, the "
            f"settings name {list(channels)} ({expected})"
        )
        raise SegmentationError(msg)
    classes = dataset.get("oncoflow", {}).get("classes")
    plans = Path(model_dir) / "plans.json"
    if not classes and plans.is_file():
        classes = json.loads(plans.read_text()).get("oncoflow", {}).get("head", {}).get("classes")
    if not classes:
        msg = f"{model_dir}: neither dataset.json nor plans.json names the head's classes"
        raise SegmentationError(msg)
    return [str(c) for c in classes]


def check_mask(mask: Path, image: Path, allowed: Sequence[int], case: str) -> None:
    """Refuse a predicted mask off its image's grid or with labels outside ``allowed``.

    Raises:
        SegmentationError: Size, spacing, origin or direction differ, or a label value is not
            background or one of ``allowed`` (the case and files are named).
    """
    import SimpleITK as sitk

    predicted = sitk.ReadImage(str(mask))
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(image))
    reader.ReadImageInformation()
    same = predicted.GetSize() == reader.GetSize() and all(
        np.allclose(a, b, atol=GRID_TOLERANCE)
        for a, b in (
            (predicted.GetSpacing(), reader.GetSpacing()),
            (predicted.GetOrigin(), reader.GetOrigin()),
            (predicted.GetDirection(), reader.GetDirection()),
        )
    )
    if not same:
        msg = f"case {case}: the predicted mask {mask} is not on the grid of {image}"
        raise SegmentationError(msg)
    values = set(np.unique(sitk.GetArrayViewFromImage(predicted)).astype(int).tolist())
    unknown = sorted(values - {0, *allowed})
    if unknown:
        msg = f"case {case}: the predicted mask {mask} has label(s) {unknown} outside {allowed}"
        raise SegmentationError(msg)


def write_lesion_masks(
    cases: Sequence[Case], out_dir: Path, regions: Mapping[str, Sequence[int]], label_stem: str
) -> list[Path]:
    """Check every predicted ``<case>.nii.gz`` and copy it to ``masks/<patient>_tp<tp>.nii.gz``.

    A mask is checked against the case's image of ``label_stem`` (its first channel when the
    label stem is not a channel).

    Returns:
        The copies, in case order.
    """
    folder = Path(out_dir) / MASKS
    allowed = label_values(regions)
    written = []
    for case in cases:
        mask = Path(out_dir) / f"{case.case_id}.nii.gz"
        names = [p.name for p in case.images]
        label_image = f"{label_stem}.nii.gz"
        image = case.images[names.index(label_image)] if label_image in names else case.images[0]
        check_mask(mask, image, allowed, case.case_id)
        target = folder / lesion_mask_name(case.patient_id, case.timepoint)
        shutil.copyfile(mask, target)
        written.append(target)
    return written


def outcome_labels(outcomes: pd.DataFrame | None, column: str) -> dict[str, str | None]:
    """Patient -> observed class of ``column`` (empty when no outcomes or no such column)."""
    if outcomes is None:
        return {}
    if column not in outcomes.columns:
        log.warning("outcomes.csv of the new cohort has no %r: y_true left empty", column)
        return {}
    first = outcomes.groupby(outcomes["patient_id"].astype(str))[column].first()
    return {p: (None if is_missing(v) else _label_text(v)) for p, v in first.items()}


def predictions_table(
    cases: Sequence[Case], table: pd.DataFrame, target: str, labels: Mapping[str, Any]
) -> pd.DataFrame:
    """Rows of the predictions contract (``split`` apply, ``fold`` final) from ``cases.csv``."""
    by_id = {c.case_id: c for c in cases}
    ordered = [by_id[c] for c in table["case_id"]]
    predictions = pd.DataFrame(
        {
            "patient_id": [c.patient_id for c in ordered],
            "timepoint": [c.timepoint for c in ordered],
            "case_id": table["case_id"].to_numpy(),
            "split": APPLY_SPLIT,
            "fold": "final",
            "target": target,
            "y_true": [labels.get(c.patient_id) for c in ordered],
        }
    )
    for column in (c for c in table.columns if c.startswith("y_score_")):
        predictions[column] = table[column].to_numpy()
    return predictions.sort_values("case_id").reset_index(drop=True)


def predict_new_cohort(
    settings: NnunetSettings,
    *,
    converted: Path,
    images: pd.DataFrame,
    results: Path,
    out_dir: Path,
    device: str,
    outcomes: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Masks, class probabilities and Dice of a new cohort by the frozen fold ensemble.

    Args:
        settings: The study's nnU-Net settings (channels, label, regions, folds, checkpoint).
        converted: Converted images of the new cohort.
        images: The new cohort's ``images.csv`` rows.
        results: The study's ``nnUNet_results`` (the trained folds).
        out_dir: Folder of the masks, ``cases.csv`` and ``masks/`` (module docstring).
        device: ``cpu`` or ``cuda``.
        outcomes: The new cohort's ``outcomes.csv`` (``y_true`` from ``settings.classify``);
            ``None``: ``y_true`` empty.

    Returns:
        ``(predictions, dice)``: predictions rows as :func:`~oncoflow.segmentation.workflow.
        collect` writes them, with ``split`` apply and ``fold`` final; the per-case Dice of the
        cases with a reference mask (no rows when none has one).

    Raises:
        SegmentationError: A case misses a channel, a fold is not trained, the model was trained
            on other channels, or a predicted mask is off its image's grid or has unknown labels.
    """
    cases = new_cohort_cases(converted, images, settings.channels, label_stem=settings.label)
    model_dir = Path(results) / settings.dataset / settings.model_folder
    classes = model_classes(model_dir, settings.channels)
    out_dir = Path(out_dir)
    for sub in (STAGING, MASKS):
        shutil.rmtree(out_dir / sub, ignore_errors=True)
        (out_dir / sub).mkdir(parents=True)
    files = [(c.case_id, write_case_images(c, out_dir / STAGING)) for c in cases]
    sites = patient_sites(images)
    log.info(
        "predicting %d case(s) of the new cohort with fold(s) %s of %s",
        len(files),
        list(settings.folds),
        model_dir,
    )
    table = predict_files(
        settings,
        files,
        classes,
        folds=settings.folds,
        fold_label="final",
        results=results,
        out_dir=out_dir,
        device=device,
        sites=[sites.get(c.patient_id, "") for c in cases],
    )
    shutil.rmtree(out_dir / STAGING)
    write_lesion_masks(cases, out_dir, settings.regions, settings.label)
    labels = outcome_labels(outcomes, settings.classify)
    unknown = sorted({v for v in labels.values() if v is not None} - set(classes))
    if unknown:
        log.warning("outcome class(es) %s of the new cohort unknown to the model", unknown)
    predictions = predictions_table(cases, table, settings.classify, labels)
    info = pd.DataFrame(
        {"patient_id": c.patient_id, "timepoint": c.timepoint, "split": c.split} for c in cases
    ).set_index(pd.Index([c.case_id for c in cases]))
    masks = {c.case_id: out_dir / f"{c.case_id}.nii.gz" for c in cases if c.label is not None}
    dice = reference_dice(settings, info, masks, converted=converted)
    return predictions, dice
