"""Conversion stage: DICOM / NIfTI / RTSTRUCT / SEG inputs to NIfTI images, masks and JSON sidecars.

Modules:
    dicom: read one DICOM series with checked geometry (:func:`read_series`), header-only
        checks (:func:`inspect_series`), gantry tilt and uneven spacing handling.
    suv: SUVbw factors from PET headers.
    rtstruct: rasterise RTSTRUCT ROIs onto an image grid.
    seg: rasterise DICOM SEG segments onto an image grid (read with highdicom).
    masks: either of the two, told apart by the file's headers.
    nifti: NIfTI standardisation and metadata-free writers.
    series: one DICOM series (+ RTSTRUCT or SEG) to NIfTI + sidecar (``scripts/convert_dicom.py``).
    patient: every image of one patient (``scripts/convert_patient.py``, one Snakemake job).
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use (PEP 562): a NIfTI-only conversion job never loads pydicom / scikit-image.
_EXPORTS = {
    "POLICIES": "oncoflow.convert.policy",
    "inspect_series": "oncoflow.convert.dicom",
    "read_series": "oncoflow.convert.dicom",
    "check_same_geometry": "oncoflow.convert.nifti",
    "standardise_image": "oncoflow.convert.nifti",
    "standardise_mask": "oncoflow.convert.nifti",
    "MANIFEST": "oncoflow.convert.patient",
    "convert_patient": "oncoflow.convert.patient",
    "converted_stem": "oncoflow.convert.patient",
    "rasterize": "oncoflow.convert.rtstruct",
    "rasterize_dicom_mask": "oncoflow.convert.masks",
    "rasterize_seg_with_info": "oncoflow.convert.seg",
    "roi_names": "oncoflow.convert.rtstruct",
    "convert_dicom_series": "oncoflow.convert.series",
    "SuvParameters": "oncoflow.convert.suv",
    "suv_parameters": "oncoflow.convert.suv",
    "suv_problems": "oncoflow.convert.suv",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = [
    "MANIFEST",
    "POLICIES",
    "SuvParameters",
    "check_same_geometry",
    "convert_dicom_series",
    "convert_patient",
    "converted_stem",
    "inspect_series",
    "rasterize",
    "rasterize_dicom_mask",
    "rasterize_seg_with_info",
    "read_series",
    "roi_names",
    "standardise_image",
    "standardise_mask",
    "suv_parameters",
    "suv_problems",
]
