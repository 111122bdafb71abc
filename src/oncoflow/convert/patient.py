"""Convert every image of one patient (rows of ``images.csv``) to NIfTI + JSON sidecars.

Output layout (``out_dir`` is ``results/converted/<patient>``)::

    <tp>/<stem>.nii.gz         float32 image (CT in HU, PET in SUVbw, MR as stored)
    <tp>/<stem>.json           sidecar: row, geometry, source, warnings, corrections, SUV factors
    <tp>/<stem>_mask.nii.gz    uint8 mask on the image grid (when the row has a mask_path)
    manifest.json              every output and every skipped row (WSI) with the reason

with ``<stem>`` from :func:`converted_stem`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import SimpleITK as sitk

import oncoflow
from oncoflow.cohort import is_missing, resolve
from oncoflow.convert.nifti import (
    is_nifti,
    standardise_image,
    standardise_mask,
    write_image,
    write_json,
)
from oncoflow.errors import ConversionError

__all__ = ["MANIFEST", "convert_patient", "converted_stem"]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
"""Name of the per-patient manifest written next to the timepoint folders."""

NO_SERIES = "-"
"""The ``series`` value of images.csv meaning "the modality has a single series"."""


def converted_stem(modality: str, series: str) -> str:
    """Return the file stem of a converted image: ``<modality>`` or ``<modality>_<series>``.

    Examples:
        >>> converted_stem("CT", "venous")
        'CT_venous'
        >>> converted_stem("PET", "-")
        'PET'
    """
    modality = str(modality).strip()
    series = str(series).strip()
    if not modality:
        raise ValueError("modality must not be empty")
    return modality if series in ("", NO_SERIES) else f"{modality}_{series}"


def _text(value: Any) -> str | None:
    """Return a table cell as stripped text, ``None`` when missing (None, NaN, NA, blank)."""
    return None if is_missing(value) else str(value).strip()


@dataclass(frozen=True)
class _RowJob:
    """What converting one row of ``images.csv`` reads and writes.

    Attributes:
        modality: The row's modality (``CT``, ``PET``, ``MR``, ...).
        series: The row's series (``-`` for the modality's single series).
        timepoint: The row's timepoint.
        source: The image (DICOM series folder or NIfTI file).
        mask_src: The mask (NIfTI label map, RTSTRUCT or DICOM SEG), ``None`` without one.
        rois: RTSTRUCT ROI names or SEG segments (``mask_roi`` split on ``'+'``).
        image_out: The converted image.
        sidecar: Its JSON sidecar.
        mask_out: The converted mask.
        extra: Row values copied into the sidecar (and the provenance when given).
    """

    modality: str
    series: str
    timepoint: int
    source: Path
    mask_src: Path | None
    rois: list[str]
    image_out: Path
    sidecar: Path
    mask_out: Path
    extra: dict[str, Any]

    @property
    def mask_is_nifti(self) -> bool:
        """Whether the mask is a NIfTI label map (else an RTSTRUCT or a SEG, or no mask)."""
        return self.mask_src is not None and is_nifti(self.mask_src)


def _row_job(
    row: pd.Series,
    cohort_dir: Path,
    out_dir: Path,
    provenance: Mapping[str, Any] | None,
) -> _RowJob:
    """Resolve the inputs and outputs of one image row."""
    modality = str(row["modality"]).strip()
    series = str(row["series"]).strip()
    timepoint = int(row["timepoint"])
    stem = converted_stem(modality, series)
    tp_dir = out_dir / str(timepoint)
    mask_text = _text(row.get("mask_path"))
    roi_text = _text(row.get("mask_roi"))
    extra = {
        "patient_id": str(row["patient_id"]),
        "timepoint": timepoint,
        "modality": modality,
        "series": series,
        "site": _text(row.get("site")),
    }
    if provenance is not None:
        extra["provenance"] = dict(provenance)
    return _RowJob(
        modality=modality,
        series=series,
        timepoint=timepoint,
        source=resolve(cohort_dir, str(row["path"])),
        mask_src=resolve(cohort_dir, mask_text) if mask_text else None,
        rois=[r.strip() for r in roi_text.split("+")] if roi_text else [],
        image_out=tp_dir / f"{stem}.nii.gz",
        sidecar=tp_dir / f"{stem}.json",
        mask_out=tp_dir / f"{stem}_mask.nii.gz",
        extra=extra,
    )


def _check_inputs(job: _RowJob) -> None:
    """Raise when the mask or the image is missing, or an RTSTRUCT mask has no ROI name."""
    mask_src = job.mask_src
    if mask_src is not None and not mask_src.exists():
        raise ConversionError(f"{mask_src}: mask file does not exist")
    if mask_src is not None and not job.mask_is_nifti and not job.rois:
        from oncoflow.convert.masks import dicom_mask_format  # pydicom only for DICOM masks

        if dicom_mask_format(mask_src) == "RTSTRUCT":
            raise ConversionError(
                f"{mask_src}: mask_path is an RTSTRUCT but mask_roi is empty "
                "(name the ROI(s) to rasterise, joined by '+')"
            )
    if not job.source.exists():
        raise ConversionError(f"{job.source}: file or folder does not exist")


def _convert_dicom_row(
    job: _RowJob, *, tilt: str, uneven_spacing: str
) -> tuple[dict[str, Any], list[Path]]:
    """Convert a DICOM series row (and its RTSTRUCT, SEG or NIfTI mask); (sidecar, files)."""
    from oncoflow.convert.series import convert_dicom_series  # pydicom only for DICOM rows

    mask_src = job.mask_src
    data = convert_dicom_series(
        job.source,
        job.image_out,
        job.sidecar,
        dicom_mask=None if (mask_src is None or job.mask_is_nifti) else mask_src,
        roi_names=job.rois,
        mask_out=job.mask_out,
        suv=job.modality == "PET",
        tilt=tilt,
        uneven_spacing=uneven_spacing,
        extra=job.extra,
    )
    written = [job.image_out, job.sidecar]
    if "mask" in data:
        written.append(job.mask_out)
    elif mask_src is not None:  # NIfTI mask for a DICOM image
        image = sitk.ReadImage(str(job.image_out))
        data["mask"] = {
            "file": job.mask_out.name,
            **standardise_mask(mask_src, job.mask_out, image),
        }
        write_json(data, job.sidecar)
        written.append(job.mask_out)
    return data, written


def _convert_nifti_row(job: _RowJob) -> tuple[dict[str, Any], list[Path]]:
    """Convert a NIfTI image row (and its NIfTI, RTSTRUCT or SEG mask); returns (sidecar, files)."""
    image, info = standardise_image(job.source, job.image_out)
    data = {**job.extra, "image": job.image_out.name, **info}
    if job.modality == "PET":
        data["values"] = "SUVbw (g/mL), assumed: a PET given as NIfTI must already be SUVbw"
    else:
        data["values"] = "as stored in the NIfTI file"
    written = [job.image_out]
    if job.mask_src is not None:
        if job.mask_is_nifti:
            mask_info = standardise_mask(job.mask_src, job.mask_out, image)
        else:
            from oncoflow.convert.masks import rasterize_dicom_mask

            labels, mask_info = rasterize_dicom_mask(job.mask_src, image, job.rois)
            data["warnings"].append(
                f"{mask_info['source']['format']} rasterised onto a NIfTI image: its frame of "
                "reference cannot be checked"
            )
            write_image(labels, job.mask_out, mask=True)
        data["mask"] = {"file": job.mask_out.name, **mask_info}
        written.append(job.mask_out)
    data["converter"] = f"oncoflow {oncoflow.__version__}"
    write_json(data, job.sidecar)
    written.append(job.sidecar)
    return data, written


def _convert_row(
    row: pd.Series,
    cohort_dir: Path,
    out_dir: Path,
    *,
    tilt: str,
    uneven_spacing: str,
    provenance: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[Path]]:
    """Convert one image row; returns (manifest entry, written files)."""
    job = _row_job(row, cohort_dir, out_dir, provenance)
    _check_inputs(job)
    if job.source.is_dir():
        data, written = _convert_dicom_row(job, tilt=tilt, uneven_spacing=uneven_spacing)
    elif is_nifti(job.source):
        data, written = _convert_nifti_row(job)
    else:
        raise ConversionError(
            f"{job.source}: expected a DICOM series folder or a NIfTI file (.nii / .nii.gz)"
        )
    entry = {
        "timepoint": job.timepoint,
        "modality": job.modality,
        "series": job.series,
        "site": job.extra["site"],
        "source": str(row["path"]),
        "image": job.image_out.relative_to(out_dir).as_posix(),
        "sidecar": job.sidecar.relative_to(out_dir).as_posix(),
        "mask": job.mask_out.relative_to(out_dir).as_posix() if job.mask_out in written else None,
        "warnings": list(data.get("warnings", [])),
    }
    return entry, written


def _patient_rows(rows: pd.DataFrame, patient_id: str) -> pd.DataFrame:
    """Return the patient's rows with integer timepoints, sorted by timepoint, modality, series.

    Raises:
        ConversionError: No row, a timepoint that is not an integer, or two rows for the same
            timepoint / modality / series.
    """
    mine = rows[rows["patient_id"].astype(str) == str(patient_id)]
    if mine.empty:
        raise ConversionError(f"patient {patient_id}: no row in images.csv")
    try:
        mine = mine.assign(timepoint=[int(str(t).strip()) for t in mine["timepoint"]])
    except ValueError as exc:
        raise ConversionError(
            f"patient {patient_id}: images.csv: timepoint must be an integer ({exc})"
        ) from exc
    mine = mine.sort_values(["timepoint", "modality", "series"], kind="stable")
    keys = mine[["timepoint", "modality", "series"]].astype(str).agg("/".join, axis=1)
    duplicated = keys[keys.duplicated()].tolist()
    if duplicated:
        raise ConversionError(
            f"patient {patient_id}: images.csv has several rows for "
            f"timepoint/modality/series {', '.join(sorted(set(duplicated)))}"
        )
    return mine


def _skipped_slide(row: pd.Series) -> dict[str, Any]:
    """The manifest's ``skipped`` entry of a whole-slide image row."""
    return {
        "timepoint": int(row["timepoint"]),
        "modality": str(row["modality"]).strip(),
        "series": str(row["series"]),
        "source": str(row["path"]),
        "reason": "whole-slide images are not converted; the pathomics stage reads "
        "the slide file directly",
    }


def convert_patient(
    cohort_dir: Path,
    rows: pd.DataFrame,
    out_dir: Path,
    *,
    patient_id: str,
    tilt: str = "resample",
    uneven_spacing: str = "resample",
    provenance: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Convert every image row of one patient and write ``out_dir/manifest.json``.

    DICOM folders are read with :func:`~oncoflow.convert.dicom.read_series` (PET converted to
    SUVbw), NIfTI files are standardised (float32; PET taken as already SUVbw, said so in the
    sidecar); masks come from a NIfTI label map (checked against the image grid) or an RTSTRUCT
    (``mask_roi`` split on ``'+'`` gives labels 1, 2, ...). WSI rows are not converted and are
    listed in the manifest's ``skipped`` with the reason.

    Args:
        cohort_dir: The cohort folder (relative paths of the table are resolved against it).
        rows: Rows of ``images.csv`` (schema ``schemas/images.schema.yaml``); rows of other
            patients are ignored.
        out_dir: The patient's output folder.
        patient_id: The (pseudonymous) patient ID.
        tilt: Gantry tilt policy, ``"resample"`` or ``"refuse"``.
        uneven_spacing: Uneven slice spacing policy, ``"resample"`` or ``"refuse"``.
        provenance: The job's record (:class:`oncoflow.provenance.Provenance` ``as_dict()``),
            written into the manifest and every sidecar.

    Returns:
        Every file written (images, masks, sidecars, then the manifest).

    Raises:
        ConversionError: ``"patient <id>: <file>: <problem>"`` for the first row that fails.
    """
    cohort_dir = Path(cohort_dir)
    out_dir = Path(out_dir)
    mine = _patient_rows(rows, patient_id)
    outputs: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    written: list[Path] = []
    for _, row in mine.iterrows():
        if str(row["modality"]).strip() == "WSI":
            skipped.append(_skipped_slide(row))
            continue
        try:
            entry, files = _convert_row(
                row,
                cohort_dir,
                out_dir,
                tilt=tilt,
                uneven_spacing=uneven_spacing,
                provenance=provenance,
            )
        except ConversionError as exc:
            raise ConversionError(f"patient {patient_id}: {exc}") from exc
        log.info("patient %s: converted %s", patient_id, entry["image"])
        outputs.append(entry)
        written += files
    manifest = out_dir / MANIFEST
    write_json(
        {
            "patient_id": str(patient_id),
            "converter": f"oncoflow {oncoflow.__version__}",
            "policies": {"tilt": tilt, "uneven_spacing": uneven_spacing},
            "outputs": outputs,
            "skipped": skipped,
            **({"provenance": dict(provenance)} if provenance is not None else {}),
        },
        manifest,
    )
    written.append(manifest)
    return written
