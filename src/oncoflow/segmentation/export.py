"""Export converted images and masks to an nnU-Net v2 raw dataset, with our patient splits.

Layout written under ``nnUNet_raw`` (nnU-Net's documented format)::

    Dataset<NNN>_<Name>/
        dataset.json                   channels, labels (or regions), file ending, numTraining
        imagesTr/<case>_0000.nii.gz    one file per channel (_0000, _0001, ...)
        labelsTr/<case>.nii.gz         integer label map on the image grid
        imagesTs/<case>_0000.nii.gz    test patients (internal + external): never trained on
        cases.csv                      case -> patient, timepoint, split, class label, site

A *case* is one patient x time point: ``<patient>_tp<timepoint>``. ``splits_final.json`` (written
next to the preprocessed dataset) is derived from our ``folds.json`` by patient, so every time
point of a patient lands in the same fold and a test patient is never in any fold.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.errors import SegmentationError
from oncoflow.segmentation.calibrate import UNCALIBRATED, Calibration, write_calibrated

CHANNEL_NAMES: dict[str, str] = {"CT": "CT", "PET": "noNorm", "MR": "MRI"}
"""nnU-Net channel name per modality. nnU-Net picks the intensity normalisation from the name:
``CT`` -> global percentile clipping + z-score from the foreground of the whole dataset (HU are
comparable across patients); anything else -> per-image z-score (MRI); ``noNorm`` keeps SUV."""

LABEL_TOLERANCE = 1e-3
"""Largest distance of a stored mask value from an integer (masks saved as float carry 1.0003)."""


@dataclass(frozen=True)
class Case:
    """One nnU-Net case: a patient at one time point.

    Attributes:
        case_id: ``<patient>_tp<timepoint>`` (nnU-Net identifier; no channel suffix).
        patient_id: Patient of the case.
        timepoint: Time point (0 = baseline).
        split: ``train``, ``internal_test`` or ``external_test``.
        images: One converted NIfTI per channel, in channel order.
        label: Converted mask on the image grid, or ``None`` (no reference).
        target: Class label of the case (classification head), or ``None``.
        site: Acquisition site of the patient (``images.csv``), or ``""`` when not given.
    """

    case_id: str
    patient_id: str
    timepoint: int
    split: str
    images: tuple[Path, ...]
    label: Path | None = None
    target: str | None = None
    site: str = ""


def case_id(patient: str, timepoint: int) -> str:
    """nnU-Net case identifier of a patient's time point: ``<patient>_tp<timepoint>``."""
    return f"{patient}_tp{int(timepoint)}"


def channel_name(stem: str) -> str:
    """nnU-Net channel name of a converted image stem (``CT_venous`` -> ``CT``)."""
    return CHANNEL_NAMES.get(stem.split("_", 1)[0], stem)


def collect_cases(
    converted: Path,
    splits: Mapping[str, str],
    channels: Sequence[str],
    *,
    label_stem: str,
    targets: Mapping[str, Any] | None = None,
    sites: Mapping[str, str] | None = None,
) -> list[Case]:
    """Find every patient x time point with all channels (and its mask) in the converted tree.

    Args:
        converted: ``results/converted`` (``<patient>/<tp>/<stem>.nii.gz``, ``<stem>_mask.nii.gz``).
        splits: Patient -> split (``splits.csv``); only these patients are exported.
        channels: Image stems, one per nnU-Net channel (e.g. ``["CT_venous"]``).
        label_stem: Stem whose ``_mask`` is the reference label map.
        targets: Patient -> class label for the classification head (``None``: no head).
        sites: Patient -> acquisition site (``None``: not recorded).

    Returns:
        Cases sorted by case id.

    Raises:
        SegmentationError: A patient has no time point with every channel, or a training case has
            no mask or no class label (the patient and file are named).
    """
    cases = []
    for patient in sorted(splits):
        folder = Path(converted) / patient
        timepoints = sorted(int(p.name) for p in folder.glob("*") if p.name.isdigit())
        found = 0
        for tp in timepoints:
            images = tuple(folder / str(tp) / f"{stem}.nii.gz" for stem in channels)
            if not all(path.exists() for path in images):
                continue
            found += 1
            mask = folder / str(tp) / f"{label_stem}_mask.nii.gz"
            split = splits[patient]
            if split == "train" and not mask.exists():
                msg = f"patient {patient}, time point {tp}: training case without a mask ({mask})"
                raise SegmentationError(msg)
            target = None
            if targets is not None:
                if patient not in targets or targets[patient] is None:
                    msg = f"patient {patient}: no class label in outcomes.csv for the head"
                    raise SegmentationError(msg)
                target = str(targets[patient])
            cases.append(
                Case(
                    case_id(patient, tp),
                    patient,
                    tp,
                    split,
                    images,
                    mask if mask.exists() else None,
                    target,
                    str((sites or {}).get(patient, "")),
                )
            )
        if not found:
            msg = (
                f"patient {patient}: no time point under {folder} has every channel "
                f"({', '.join(f'{s}.nii.gz' for s in channels)})"
            )
            raise SegmentationError(msg)
    return cases


def label_values(regions: Mapping[str, Sequence[int]]) -> list[int]:
    """Every integer label a region uses, sorted."""
    return sorted({int(v) for labels in regions.values() for v in labels})


def dataset_json(
    channels: Sequence[str],
    regions: Mapping[str, Sequence[int]],
    n_training: int,
    *,
    classes: Sequence[str] = (),
    case_classes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """nnU-Net ``dataset.json`` with region-based labels.

    Regions (e.g. ``whole_pancreas: [1, 2]``, ``lesion: [2]``) are trained with sigmoid outputs
    and written back to a label map in ``regions_class_order`` (each region painted with its
    smallest label, later regions over earlier ones: whole pancreas -> 1, then lesion -> 2), so the
    order must go from the enclosing region to
    the enclosed one. A region of a single label is an ordinary class.

    The ``oncoflow`` block (ignored by nnU-Net) holds the class names and every training case's
    class for the multitask trainer.
    """
    labels: dict[str, Any] = {"background": 0}
    order = []
    for name, values in regions.items():
        values = sorted(int(v) for v in values)
        labels[name] = values if len(values) > 1 else values[0]
        order.append(min(values))
    payload: dict[str, Any] = {
        "channel_names": {str(i): channel_name(stem) for i, stem in enumerate(channels)},
        "labels": labels,
        "numTraining": int(n_training),
        "file_ending": ".nii.gz",
    }
    if any(isinstance(v, list) for v in labels.values()):
        payload["regions_class_order"] = order
    if classes:
        payload["oncoflow"] = {
            "classes": list(classes),
            "case_classes": dict(sorted((case_classes or {}).items())),
        }
    return payload


def _write_label(source: Path, target: Path, allowed: Sequence[int], case: str) -> None:
    """Write a mask as an integer label map, refusing values outside ``allowed``."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(source))
    values = sitk.GetArrayFromImage(image)
    rounded = np.rint(values)
    if np.abs(values - rounded).max(initial=0.0) > LABEL_TOLERANCE:
        msg = f"case {case}: {source} holds non-integer label values"
        raise SegmentationError(msg)
    unknown = sorted(set(np.unique(rounded).astype(int).tolist()) - {0, *allowed})
    if unknown:
        msg = f"case {case}: {source} has label(s) {unknown} outside {sorted(allowed)}"
        raise SegmentationError(msg)
    out = sitk.GetImageFromArray(rounded.astype(np.uint8))
    out.CopyInformation(image)
    sitk.WriteImage(out, str(target), useCompression=True)


def write_case_images(case: Case, folder: Path) -> list[Path]:
    """Write a case's channel images into ``folder`` as nnU-Net reads them.

    One file per channel, ``<case>_0000.nii.gz``, ``<case>_0001.nii.gz``, ... in channel order:
    the converted images unchanged (the export and the prediction of a new cohort both stage
    them here, so the predictor sees the inputs training saw).

    Returns:
        The written files, in channel order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, image in enumerate(case.images):
        target = folder / f"{case.case_id}_{i:04d}.nii.gz"
        shutil.copyfile(image, target)
        written.append(target)
    return written


def export_dataset(
    cases: Sequence[Case],
    out: Path,
    channels: Sequence[str],
    regions: Mapping[str, Sequence[int]],
    *,
    classes: Sequence[str] = (),
    calibration: Calibration | None = None,
) -> dict[str, Any]:
    """Write the raw dataset folder ``out`` (``Dataset<NNN>_<Name>``) for ``cases``.

    Training cases (split ``train``) go to ``imagesTr``/``labelsTr``; test cases to ``imagesTs``
    (their masks stay in the converted tree, used only to score the predictions). With a
    ``calibration`` the training cases' images in ``imagesTr`` are calibrated through their
    given masks and kept uncalibrated in :data:`~oncoflow.segmentation.calibrate.UNCALIBRATED`
    (the offsets in ``cases.csv``, column ``calibration_hu``); test cases stay uncalibrated.

    Returns:
        The ``dataset.json`` payload.
    """
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (out / sub).mkdir(parents=True)
    allowed = label_values(regions)
    train = [c for c in cases if c.split == "train"]
    if not train:
        msg = f"{out}: no training case to export"
        raise SegmentationError(msg)
    offsets: dict[str, float] = {}
    for case in cases:
        if case.split != "train":
            write_case_images(case, out / "imagesTs")
            continue
        assert case.label is not None  # collect_cases refuses unlabelled training cases
        label_file = out / "labelsTr" / f"{case.case_id}.nii.gz"
        _write_label(case.label, label_file, allowed, case.case_id)
        if calibration is None:
            write_case_images(case, out / "imagesTr")
            continue
        images = write_case_images(case, out / UNCALIBRATED)
        offsets[case.case_id] = write_calibrated(
            case.case_id, images, label_file, calibration, out / "imagesTr"
        )
    case_classes = {c.case_id: c.target for c in train if c.target is not None}
    payload = dataset_json(
        channels, regions, len(train), classes=classes, case_classes=case_classes
    )
    (out / "dataset.json").write_text(json.dumps(payload, indent=1) + "\n")
    table = pd.DataFrame(
        {
            "case_id": [c.case_id for c in cases],
            "patient_id": [c.patient_id for c in cases],
            "timepoint": [c.timepoint for c in cases],
            "split": [c.split for c in cases],
            "target": ["" if c.target is None else c.target for c in cases],
            "site": [c.site for c in cases],
        }
    )
    if calibration is not None:
        table["calibration_hu"] = [offsets.get(c.case_id) for c in cases]
    table.to_csv(out / "cases.csv", index=False)
    return payload


def nnunet_splits(
    folds: Mapping[str, Mapping[str, Sequence[str]]], cases: Sequence[Case]
) -> list[dict[str, list[str]]]:
    """nnU-Net ``splits_final.json`` entries from our patient folds (``folds.json``).

    Fold ``k`` of nnU-Net trains on the cases of our fold's ``fit`` patients and validates on
    those of its ``apply`` patients; the ``final`` fold (all training patients -> the tests) has
    no nnU-Net counterpart. Only training cases are used, so test patients are in no fold.

    Raises:
        SegmentationError: A fold names a patient that is not a training patient (a test patient
            in a fold would leak it into model selection), or there are no CV folds.
    """
    by_patient: dict[str, list[str]] = {}
    for case in cases:
        if case.split == "train":
            by_patient.setdefault(case.patient_id, []).append(case.case_id)
    numbered = sorted((k for k in folds if k.isdigit()), key=int)
    if not numbered:
        msg = "folds.json has no numbered cross-validation fold for nnU-Net"
        raise SegmentationError(msg)
    entries = []
    for key in numbered:
        entry = {}
        for part, name in (("fit", "train"), ("apply", "val")):
            patients = list(folds[key][part])
            stray = [p for p in patients if p not in by_patient]
            if stray:
                msg = (
                    f"fold {key}: patient(s) {', '.join(stray[:5])} are not training cases of "
                    "the export (test patient, or no image)"
                )
                raise SegmentationError(msg)
            entry[name] = sorted(c for p in patients for c in by_patient[p])
        entries.append(entry)
    return entries
