"""Convert one DICOM series (plus an optional RTSTRUCT or SEG mask) to NIfTI with a JSON sidecar."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import SimpleITK as sitk

import oncoflow
from oncoflow.convert.dicom import read_series_with_headers
from oncoflow.convert.masks import rasterize_dicom_mask
from oncoflow.convert.nifti import write_image, write_json
from oncoflow.convert.suv import suv_parameters
from oncoflow.errors import ConversionError

__all__ = ["convert_dicom_series", "dicom_to_image"]

log = logging.getLogger(__name__)


def dicom_to_image(
    series_dir: Path,
    *,
    suv: bool = False,
    tilt: str = "resample",
    uneven_spacing: str = "resample",
) -> tuple[sitk.Image, dict[str, Any], str | None]:
    """Read a DICOM series and, for PET with ``suv``, convert Bq/mL to SUVbw.

    Args:
        series_dir: Folder of one series.
        suv: Convert the PET activity concentration to SUVbw (see :mod:`oncoflow.convert.suv`);
            the series must be PET (Modality PT).
        tilt: Tilt policy (``"resample"`` or ``"refuse"``).
        uneven_spacing: Uneven slice spacing policy (``"resample"`` or ``"refuse"``).

    Returns:
        ``(image, info, frame_of_reference_uid)``; with ``suv`` the image is SUVbw (g/mL) and
        ``info["suv"]`` records every factor.

    Raises:
        ConversionError: See :func:`~oncoflow.convert.dicom.read_series` and
            :func:`~oncoflow.convert.suv.suv_parameters`.
    """
    series_dir = Path(series_dir)
    image, info, geom = read_series_with_headers(
        series_dir, tilt=tilt, uneven_spacing=uneven_spacing
    )
    first = geom.headers[0]
    info["values"] = _unit(str(first.get("Modality", "")))
    if suv:
        modality = str(first.get("Modality", ""))
        if modality != "PT":
            raise ConversionError(
                f"{series_dir}: SUV conversion asked for a {modality or 'non-PET'} series "
                "(Modality must be PT)"
            )
        params = suv_parameters(first, where=str(series_dir))
        image = sitk.Cast(image * params.factor, sitk.sitkFloat32)
        info["suv"] = params.as_dict()
        info["values"] = "SUVbw (g/mL)"
        info["warnings"].extend(params.warnings)
        for text in params.warnings:
            log.warning("%s: %s", series_dir.name, text)
    frame = first.get("FrameOfReferenceUID")
    return image, info, (str(frame) if frame else None)


def _unit(modality: str) -> str:
    return {"CT": "HU", "PT": "Bq/mL"}.get(modality, "stored values after rescale")


def convert_dicom_series(
    series_dir: Path,
    out_image: Path,
    sidecar: Path,
    *,
    dicom_mask: Path | None = None,
    roi_names: Sequence[str] = (),
    mask_out: Path | None = None,
    suv: bool = False,
    tilt: str = "resample",
    uneven_spacing: str = "resample",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Convert a DICOM series to ``out_image`` (float32 NIfTI) and write its JSON sidecar.

    Args:
        series_dir: Folder of one series.
        out_image: ``.nii.gz`` to write.
        sidecar: JSON sidecar to write (geometry, source, warnings, corrections, SUV factors,
            mask description; never PHI).
        dicom_mask: Optional RTSTRUCT or DICOM SEG file whose ROIs / segments ``roi_names`` are
            rasterised onto the converted image grid (labels 1..n in order) and written to
            ``mask_out`` (:func:`~oncoflow.convert.masks.rasterize_dicom_mask`).
        roi_names: ROI names, or segment labels / numbers (a SEG may be given none).
        mask_out: Mask ``.nii.gz`` (uint8) to write (with ``dicom_mask``).
        suv: Convert PET to SUVbw.
        tilt: Tilt policy.
        uneven_spacing: Uneven spacing policy.
        extra: Entries added at the top of the sidecar (e.g. patient, timepoint).

    Returns:
        The sidecar content.

    Raises:
        ConversionError: On any problem, naming the series folder or the mask file.
    """
    if dicom_mask is not None and mask_out is None:
        raise ConversionError(f"{dicom_mask}: a DICOM mask needs a mask output")
    image, info, frame = dicom_to_image(
        series_dir, suv=suv, tilt=tilt, uneven_spacing=uneven_spacing
    )
    mask_info = None
    mask_image = None
    if dicom_mask is not None:
        mask_image, mask_info = rasterize_dicom_mask(
            Path(dicom_mask), image, list(roi_names), frame_of_reference_uid=frame
        )
    write_image(image, out_image)
    sidecar_data: dict[str, Any] = {**(extra or {})}
    sidecar_data.update({"image": Path(out_image).name, **info})
    if mask_image is not None and mask_out is not None and mask_info is not None:
        write_image(mask_image, mask_out, mask=True)
        sidecar_data["mask"] = {"file": Path(mask_out).name, **mask_info}
    sidecar_data["converter"] = f"oncoflow {oncoflow.__version__}"
    write_json(sidecar_data, sidecar)
    return sidecar_data
