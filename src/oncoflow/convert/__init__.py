"""Conversion stage: DICOM / NIfTI / RTSTRUCT inputs to NIfTI images, masks and JSON sidecars.

Modules:
    dicom: read one DICOM series with checked geometry (:func:`read_series`), header-only
        checks (:func:`inspect_series`), gantry tilt and uneven spacing handling.
    suv: SUVbw factors from PET headers.
    rtstruct: rasterise RTSTRUCT ROIs onto an image grid.
    nifti: NIfTI standardisation and metadata-free writers.
    series: one DICOM series (+ RTSTRUCT) to NIfTI + sidecar (``scripts/convert_dicom.py``).
    patient: every image of one patient (``scripts/convert_patient.py``, one Snakemake job).
"""

from __future__ import annotations

from oncoflow.convert.dicom import POLICIES, inspect_series, read_series
from oncoflow.convert.nifti import check_same_geometry, standardise_image, standardise_mask
from oncoflow.convert.patient import MANIFEST, convert_patient, converted_stem
from oncoflow.convert.rtstruct import rasterize, roi_names
from oncoflow.convert.series import convert_dicom_series
from oncoflow.convert.suv import SuvParameters, suv_parameters, suv_problems

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
    "read_series",
    "roi_names",
    "standardise_image",
    "standardise_mask",
    "suv_parameters",
    "suv_problems",
]
