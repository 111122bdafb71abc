"""Run every cohort check and collect the problems into one :class:`CohortReport`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from oncoflow.cohort import REQUIRED_TABLES, is_missing, read_table, resolve, table_path
from oncoflow.convert.policy import POLICIES
from oncoflow.errors import CohortError
from oncoflow.schemas import TABLES
from oncoflow.validate import files, tables
from oncoflow.validate.report import WARNING, CohortReport, Problem
from oncoflow.workflow.missing import missing_record

log = logging.getLogger(__name__)


CHECKS: tuple[str, ...] = (
    "tables",
    "schema",
    "unique_ids",
    "references",
    "splits",
    "outcomes",
    "clinical",
    "paths",
    "readable",
    "geometry",
    "masks",
    "rtstruct",
    "seg",
    "dicom",
    "slides",
)
"""Names of the checks, in the order they run (``Problem.check`` is one of them)."""


def _guarded(
    check: str,
    patient_id: str | None,
    file: str,
    func: Callable[..., list[Problem]],
    /,
    *args: Any,
    **kw: Any,
) -> list[Problem]:
    """Call a file check; an unexpected exception becomes a problem instead of a traceback."""
    try:
        return func(*args, **kw)
    except Exception as exc:
        log.debug("check %s failed on %s", check, file, exc_info=True)
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        message = f"{check} check failed: {type(exc).__name__}" + (f": {text}" if text else "")
        return [Problem(patient_id, file, check, message)]


def _counts(images: pd.DataFrame, by: pd.Series) -> dict[str, dict[str, int]]:
    frame = pd.DataFrame({"group": by, "patient_id": images["patient_id"]}).dropna()
    out: dict[str, dict[str, int]] = {}
    for group, rows in frame.groupby("group", sort=True):
        out[str(group)] = {
            "patients": int(rows["patient_id"].nunique()),
            "images": len(rows),
        }
    return out


def _summarise(
    report: CohortReport, images: pd.DataFrame | None, splits: pd.DataFrame | None
) -> None:
    if images is None or "patient_id" not in images:
        return
    report.n_images = len(images)
    report.n_patients = int(images["patient_id"].dropna().nunique())
    if "site" in images:
        report.per_site = _counts(images, images["site"])
    if splits is not None and {"patient_id", "split"} <= set(splits.columns):
        first = splits.dropna(subset=["patient_id"]).drop_duplicates("patient_id")
        mapping = dict(zip(first["patient_id"], first["split"], strict=True))
        report.per_split = _counts(images, images["patient_id"].map(mapping))


def _merge_duplicates(found: list[Problem]) -> list[Problem]:
    """Drop repeated findings and outcome values the schema check already reported.

    A negative ``os_time`` violates both the schema (``minimum: 0``) and :func:`check_outcomes`;
    the user should read it once. Findings about declared targets are never dropped.
    """
    seen = {(p.patient_id, p.file, p.column) for p in found if p.check == "schema" and p.column}

    def duplicate(p: Problem) -> bool:
        return (
            p.check == "outcomes"
            and "declared target" not in p.message
            and (p.patient_id, p.file, p.column) in seen
        )

    unique: dict[tuple[Any, ...], Problem] = {}
    for p in found:  # identical findings (a mask shared by several images) are listed once
        if not duplicate(p):
            unique.setdefault((p.patient_id, p.file, p.check, p.message, p.severity), p)
    return list(unique.values())


def _check_image_file(
    path: Path,
    *,
    label: str,
    pid: str | None,
    modality: str,
    tilt: str,
    uneven_spacing: str,
) -> tuple[list[Problem], Any]:
    """Check the image (or slide) of one row: path, then slide, DICOM series or volume header.

    Args:
        path: The resolved image path.
        label: The path as written in ``images.csv`` (reported as the file).
        pid: The row's patient ID.
        modality: The row's modality (``WSI`` rows are slides).
        tilt: Gantry tilt policy for DICOM series.
        uneven_spacing: Uneven slice spacing policy for DICOM series.

    Returns:
        ``(problems, geometry)``; ``geometry`` is the volume header's geometry for a readable
        image file, else ``None``.
    """
    is_slide = modality == "WSI"
    what = "slide" if is_slide else "image"
    found = files.check_path(path, label=label, patient_id=pid, what=what, folder_ok=not is_slide)
    geometry = None
    if not found:
        if is_slide:
            found += _guarded(
                "slides", pid, label, files.check_slide, path, label=label, patient_id=pid
            )
        elif path.is_dir():
            found += _guarded(
                "dicom",
                pid,
                label,
                files.check_dicom_series,
                path,
                modality=modality,
                label=label,
                patient_id=pid,
                tilt=tilt,
                uneven_spacing=uneven_spacing,
            )
        else:
            geometry, header = files.check_volume_header(path, label=label, patient_id=pid)
            found += header
    return found, geometry


def _check_label_map(
    mask: Path,
    *,
    mask_label: str,
    label: str,
    pid: str | None,
    roi: Any,
    geometry: Any,
    mask_labels: Sequence[int] | None,
    mask_cache: dict[Path, list[Problem]],
) -> list[Problem]:
    """Check a label-map mask: header, grid against the image, values (once per mask file)."""
    mask_geometry, found = files.check_volume_header(
        mask, label=mask_label, patient_id=pid, what="mask"
    )
    if mask_geometry is None:
        return found
    if not is_missing(roi):
        message = f"mask_roi {roi!r} is ignored: the mask is a label map, not an RTSTRUCT or SEG"
        found.append(Problem(pid, mask_label, "masks", message, severity=WARNING))
    if geometry is not None:
        found += files.check_geometry(
            geometry, mask_geometry, label=label, mask_label=mask_label, patient_id=pid
        )
    key = mask.resolve()
    if key not in mask_cache:  # a mask shared by several images is checked (and reported) once
        mask_cache[key] = _guarded(
            "masks",
            pid,
            mask_label,
            files.check_mask_values,
            mask,
            label=mask_label,
            patient_id=pid,
            labels=mask_labels,
        )
        found += mask_cache[key]
    return found


def _check_image_row(
    root: Path,
    row: dict[str, Any],
    *,
    mask_labels: Sequence[int] | None,
    tilt: str,
    uneven_spacing: str,
    mask_cache: dict[Path, list[Problem]],
) -> list[Problem]:
    """All file checks for one row of ``images.csv``."""
    pid = None if is_missing(row.get("patient_id")) else str(row["patient_id"])
    path_text = row.get("path")
    if is_missing(path_text):
        return []  # reported by the schema check
    label = str(path_text).strip()
    found, geometry = _check_image_file(
        resolve(root, label),
        label=label,
        pid=pid,
        modality=str(row.get("modality") or ""),
        tilt=tilt,
        uneven_spacing=uneven_spacing,
    )
    mask_text = row.get("mask_path")
    roi = row.get("mask_roi")
    if is_missing(mask_text):
        if not is_missing(roi):
            message = f"mask_roi {roi!r} is given but mask_path is empty"
            found.append(Problem(pid, label, "rtstruct", message))
        return found
    mask_label = str(mask_text).strip()
    mask = resolve(root, mask_label)
    mask_found = files.check_path(mask, label=mask_label, patient_id=pid, what="mask")
    if mask_found:
        return found + mask_found
    if files.is_volume_file(mask):
        return found + _check_label_map(
            mask,
            mask_label=mask_label,
            label=label,
            pid=pid,
            roi=roi,
            geometry=geometry,
            mask_labels=mask_labels,
            mask_cache=mask_cache,
        )
    return found + _guarded(
        "rtstruct",
        pid,
        mask_label,
        files.check_dicom_mask,
        mask,
        roi=None if is_missing(roi) else str(roi),
        label=mask_label,
        patient_id=pid,
    )


def _check_policies(tilt: str, uneven_spacing: str) -> None:
    """Raise ``ValueError`` when a policy is not one of :data:`POLICIES`."""
    for name, value in (("tilt", tilt), ("uneven_spacing", uneven_spacing)):
        if value not in POLICIES:
            msg = f"{name} must be one of {', '.join(POLICIES)}, got {value!r}"
            raise ValueError(msg)


def _load_tables(
    root: Path, cohort_dir: Path | str, *, outcomes_required: bool
) -> tuple[dict[str, pd.DataFrame | None], list[Problem]]:
    """Read every table of the cohort (the ``tables`` check).

    Returns:
        ``(tables, problems)``; a table that is missing or unreadable is ``None``.
    """
    found: list[Problem] = []
    loaded: dict[str, pd.DataFrame | None] = {}
    if not root.is_dir():
        found.append(Problem(None, str(cohort_dir), "tables", "cohort folder does not exist"))
    for name in TABLES:
        file = f"{name}.csv"
        if not table_path(root, name).exists():
            loaded[name] = None
            required = name in REQUIRED_TABLES and (outcomes_required or name != "outcomes")
            if required and root.is_dir():
                message = f"required table {file} does not exist in the cohort folder"
                found.append(Problem(None, file, "tables", message))
            continue
        try:
            loaded[name] = read_table(root, name)
        except CohortError as exc:
            loaded[name] = None
            message = str(exc).split(": ", 1)[-1]
            found.append(Problem(None, file, "tables", message))
    return loaded, found


def _check_table_contents(
    report: CohortReport,
    loaded: dict[str, pd.DataFrame | None],
    *,
    clinical: Sequence[str],
    targets: Sequence[str],
) -> list[Problem]:
    """Run the table checks (schema to clinical), recording each in ``report.checks_run``.

    The clinical check follows ``report.missing`` (the study's missing-input decision), when
    there is one: empty values are warnings when imputed or of a dropped patient.
    """
    found: list[Problem] = []
    for name, table in loaded.items():
        if table is not None:
            found += tables.check_schema(name, table)
    report.checks_run.append("schema")
    images, clin, outcomes, splits = (
        loaded[n] for n in ("images", "clinical", "outcomes", "splits")
    )
    found += tables.check_unique_ids(images, clin, outcomes)
    report.checks_run.append("unique_ids")
    found += tables.check_references(images, clin, outcomes)
    report.checks_run.append("references")
    found += tables.check_splits(splits, images)
    report.checks_run.append("splits")
    found += tables.check_outcomes(outcomes, targets=targets)
    report.checks_run.append("outcomes")
    missing = report.missing or {}
    found += tables.check_clinical(
        clin,
        required=clinical,
        impute=(missing.get("policy") or {}).get("clinical") == "impute",
        dropped=list(missing.get("dropped") or {}),
    )
    report.checks_run.append("clinical")
    return found


def _check_image_files(
    report: CohortReport,
    root: Path,
    images: pd.DataFrame | None,
    *,
    mask_labels: Sequence[int] | None,
    tilt: str,
    uneven_spacing: str,
) -> list[Problem]:
    """Run the file checks of every row of ``images.csv`` (when it has a ``path`` column)."""
    found: list[Problem] = []
    if images is None or "path" not in images:
        return found
    mask_cache: dict[Path, list[Problem]] = {}
    for _, series in images.iterrows():
        row = series.to_dict()
        found += _guarded(
            "paths",
            None if is_missing(row.get("patient_id")) else str(row["patient_id"]),
            str(row.get("path")),
            _check_image_row,
            root,
            row,
            mask_labels=mask_labels,
            tilt=tilt,
            uneven_spacing=uneven_spacing,
            mask_cache=mask_cache,
        )
    checks = ["paths", "readable", "geometry", "masks", "rtstruct", "seg", "dicom", "slides"]
    report.checks_run += checks
    return found


def validate_cohort(
    cohort_dir: Path | str,
    *,
    clinical: Sequence[str] = (),
    targets: Sequence[str] = (),
    mask_labels: Sequence[int] | None = None,
    tilt: str = "resample",
    uneven_spacing: str = "resample",
    outcomes_required: bool = True,
    missing: Mapping[str, Any] | None = None,
) -> CohortReport:
    """Check one cohort folder against the data model and return every problem found.

    All checks run, whatever fails first: tables present and valid against their schemas, unique
    IDs, references between tables, splits, outcome values and targets, required clinical fields,
    then for every row of ``images.csv`` the file checks (path exists and is readable, NIfTI
    header readable, mask on the image grid within 1e-3 mm, mask integer-valued with declared
    labels and non-empty, RTSTRUCT ROIs present, DICOM series via
    :func:`oncoflow.convert.dicom.inspect_series`, slides open with openslide). Images are read
    from their headers only; masks are read in full.

    Args:
        cohort_dir: The cohort folder (holding ``images.csv`` etc.).
        clinical: Clinical fields the study needs; missing values in them are errors (but see
            ``missing``).
        targets: Outcome columns the study predicts; must be filled for every patient.
        mask_labels: Foreground labels masks may hold; ``None`` accepts any positive integer.
        tilt: ``"resample"`` (a gantry-tilted CT is corrected at conversion) or ``"refuse"``
            (it is a problem).
        uneven_spacing: Same choice for DICOM series with non-uniform slice spacing.
        outcomes_required: ``outcomes.csv`` must exist; ``False`` for a cohort that is only
            predicted (the ``apply`` target), whose outcomes may be unknown.
        missing: The study's missing-input decision as the workflow passes it to jobs
            (:func:`~oncoflow.workflow.missing.missing_record`), or ``None`` (every empty
            required clinical value is an error). With it, an empty required clinical value is
            a warning when the policy is ``clinical: impute`` (the encoders fill it with the
            median of each fold's training patients) or when its patient is dropped; the
            decision is recorded in ``report.missing``. Dropped patients are not errors.

    Returns:
        The :class:`CohortReport`; ``report.ok`` is False when any error was found.

    Raises:
        ValueError: When ``tilt`` or ``uneven_spacing`` is not one of :data:`POLICIES`, or
            ``missing`` is not of the decision's shape.
    """
    _check_policies(tilt, uneven_spacing)
    start = time.perf_counter()
    root = Path(cohort_dir)
    report = CohortReport(
        cohort=str(cohort_dir),
        options={
            "clinical": list(clinical),
            "targets": list(targets),
            "mask_labels": None if mask_labels is None else [int(v) for v in mask_labels],
            "tilt": tilt,
            "uneven_spacing": uneven_spacing,
        },
        missing=None if missing is None else missing_record(missing),
    )
    if report.missing is not None:
        report.options["missing"] = report.missing["policy"]
    loaded, found = _load_tables(root, cohort_dir, outcomes_required=outcomes_required)
    report.checks_run.append("tables")
    found += _check_table_contents(report, loaded, clinical=clinical, targets=targets)
    images, splits = loaded["images"], loaded["splits"]
    found += _check_image_files(
        report,
        root,
        images,
        mask_labels=mask_labels,
        tilt=tilt,
        uneven_spacing=uneven_spacing,
    )
    report.add(_merge_duplicates(found))
    _summarise(report, images, splits)
    report.excluded = sorted({p.patient_id for p in report.problems if p.patient_id is not None})
    log.info(
        "validated %s: %d patients, %d images, %d problems, %d warnings in %.2f s",
        cohort_dir,
        report.n_patients,
        report.n_images,
        len(report.problems),
        len(report.warnings),
        time.perf_counter() - start,
    )
    return report
