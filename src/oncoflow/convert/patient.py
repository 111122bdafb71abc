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
    modality = str(row["modality"]).strip()
    series = str(row["series"]).strip()
    timepoint = int(row["timepoint"])
    stem = converted_stem(modality, series)
    tp_dir = out_dir / str(timepoint)
    image_out = tp_dir / f"{stem}.nii.gz"
    sidecar = tp_dir / f"{stem}.json"
    mask_out = tp_dir / f"{stem}_mask.nii.gz"
    source = resolve(cohort_dir, str(row["path"]))
    mask_text = _text(row.get("mask_path"))
    mask_src = resolve(cohort_dir, mask_text) if mask_text else None
    roi_text = _text(row.get("mask_roi"))
    rois = [r.strip() for r in roi_text.split("+")] if roi_text else []
    extra = {
        "patient_id": str(row["patient_id"]),
        "timepoint": timepoint,
        "modality": modality,
        "series": series,
        "site": _text(row.get("site")),
    }
    if provenance is not None:
        extra["provenance"] = dict(provenance)
    if mask_src is not None and not mask_src.exists():
        raise ConversionError(f"{mask_src}: mask file does not exist")
    mask_is_nifti = mask_src is not None and is_nifti(mask_src)
    if mask_src is not None and not mask_is_nifti and not rois:
        raise ConversionError(
            f"{mask_src}: mask_path is an RTSTRUCT but mask_roi is empty "
            "(name the ROI(s) to rasterise, joined by '+')"
        )

    written: list[Path] = []
    if not source.exists():
        raise ConversionError(f"{source}: file or folder does not exist")
    if source.is_dir():
        from oncoflow.convert.series import convert_dicom_series  # pydicom only for DICOM rows

        data = convert_dicom_series(
            source,
            image_out,
            sidecar,
            rtstruct=None if (mask_src is None or mask_is_nifti) else mask_src,
            roi_names=rois,
            mask_out=mask_out,
            suv=modality == "PET",
            tilt=tilt,
            uneven_spacing=uneven_spacing,
            extra=extra,
        )
        written += [image_out, sidecar]
        if "mask" in data:
            written.append(mask_out)
        elif mask_src is not None:  # NIfTI mask for a DICOM image
            image = sitk.ReadImage(str(image_out))
            data["mask"] = {"file": mask_out.name, **standardise_mask(mask_src, mask_out, image)}
            write_json(data, sidecar)
            written.append(mask_out)
    elif is_nifti(source):
        image, info = standardise_image(source, image_out)
        data = {**extra, "image": image_out.name, **info}
        if modality == "PET":
            data["values"] = "SUVbw (g/mL), assumed: a PET given as NIfTI must already be SUVbw"
        else:
            data["values"] = "as stored in the NIfTI file"
        written.append(image_out)
        if mask_src is not None:
            if mask_is_nifti:
                mask_info = standardise_mask(mask_src, mask_out, image)
            else:
                from oncoflow.convert.rtstruct import rasterize_with_info

                labels, mask_info = rasterize_with_info(mask_src, image, rois)
                data["warnings"].append(
                    "RTSTRUCT rasterised onto a NIfTI image: its frame of reference cannot be "
                    "checked"
                )
                write_image(labels, mask_out, mask=True)
            data["mask"] = {"file": mask_out.name, **mask_info}
            written.append(mask_out)
        data["converter"] = f"oncoflow {oncoflow.__version__}"
        write_json(data, sidecar)
        written.append(sidecar)
    else:
        raise ConversionError(
            f"{source}: expected a DICOM series folder or a NIfTI file (.nii / .nii.gz)"
        )
    entry = {
        "timepoint": timepoint,
        "modality": modality,
        "series": series,
        "site": extra["site"],
        "source": str(row["path"]),
        "image": image_out.relative_to(out_dir).as_posix(),
        "sidecar": sidecar.relative_to(out_dir).as_posix(),
        "mask": mask_out.relative_to(out_dir).as_posix() if mask_out in written else None,
        "warnings": list(data.get("warnings", [])),
    }
    return entry, written


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
    outputs: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    written: list[Path] = []
    for _, row in mine.iterrows():
        modality = str(row["modality"]).strip()
        if modality == "WSI":
            skipped.append(
                {
                    "timepoint": int(row["timepoint"]),
                    "modality": modality,
                    "series": str(row["series"]),
                    "source": str(row["path"]),
                    "reason": "whole-slide images are not converted; the pathomics stage reads "
                    "the slide file directly",
                }
            )
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
