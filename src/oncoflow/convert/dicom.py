"""Read one DICOM image series into a SimpleITK image with checked geometry.

Slices are sorted by their position along the slice normal ``n = row x col`` (the cross product
of the two ImageOrientationPatient direction cosines), never by file name or InstanceNumber. For a
clean series the result has the geometry SimpleITK's ``ImageSeriesReader`` gives: origin = position
of the first slice, spacing = ``(col spacing, row spacing, slice spacing)``, direction columns
``(row, col, n)``.

Two acquisition problems are detected and, depending on the policy, corrected or refused:

* **gantry tilt**: GantryDetectorTilt is not 0 and/or the slice positions are sheared, i.e.
  ``IPP_k - IPP_0`` has a component in the slice plane. Under ``"resample"`` the volume is resampled
  (linear) onto an orthogonal grid with directions ``(row, col, n)`` covering all sheared slices.
* **non-uniform slice spacing**: the spacings between consecutive slices deviate from their median
  by more than 1 %; gaps of about twice the spacing are reported as missing slices. Under
  ``"resample"`` the volume is resampled (linear along ``n``) to the median spacing.

Both corrections are recorded in the info dict's ``warnings`` and ``corrections``; nothing is
corrected silently. :func:`inspect_series` runs the same checks from the headers only and returns
the problems instead of raising.

The work is split by meaning: :mod:`~oncoflow.convert._dicom_headers` reads and groups the headers
of a folder, :mod:`~oncoflow.convert._dicom_geometry` checks the stack and measures its geometry
(:class:`SeriesGeometry`), :mod:`~oncoflow.convert._dicom_pixels` decodes and resamples the
pixels; this module applies the policies and assembles the image and its info dict.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from oncoflow.convert._dicom_geometry import (
    MAX_INTERPOLATED_SLICES,
    SeriesGeometry,
    _geometry,
    load_series,
    spacing_message,
    tilt_message,
)
from oncoflow.convert._dicom_headers import _scan, _unreadable_message, header_float
from oncoflow.convert._dicom_pixels import _resample, _slice_values
from oncoflow.convert.policy import POLICIES
from oncoflow.convert.suv import suv_problems
from oncoflow.errors import ConversionError

__all__ = [
    "POLICIES",
    "SeriesGeometry",
    "geometry_dict",
    "inspect_series",
    "load_series",
    "read_series",
    "read_series_with_headers",
]

log = logging.getLogger(__name__)


TILT_TOLERANCE_DEG = 0.01
"""|GantryDetectorTilt| (degrees) above which the tag counts as a tilt."""


# --------------------------------------------------------------------------------------------------
# policies


def _refuse_tilt(geom: SeriesGeometry) -> str:
    return (
        f"{geom.folder}: {tilt_message(geom)}; not converted because the tilt policy is "
        "'refuse'; set it to 'resample' (--tilt resample) to resample the series onto an "
        "orthogonal grid"
    )


def _refuse_spacing(geom: SeriesGeometry) -> str:
    return (
        f"{geom.folder}: {spacing_message(geom)}; not converted because the uneven-spacing "
        "policy is 'refuse'; set it to 'resample' (--uneven-spacing resample) to resample the "
        f"series to {geom.median_step:.3g} mm"
    )


def _refuse_gap(geom: SeriesGeometry) -> str:
    return (
        f"{geom.folder}: {spacing_message(geom)}; not converted: more than "
        f"{MAX_INTERPOLATED_SLICES} consecutive slices are missing, which no resampling can fill; "
        "export the complete series (or split the stacks into separate folders)"
    )


def _check_policy(name: str, value: str) -> None:
    if value not in POLICIES:
        raise ConversionError(f"{name} policy must be one of {', '.join(POLICIES)}, got {value!r}")


def _apply_policies(geom: SeriesGeometry, *, tilt: str, uneven_spacing: str) -> None:
    """Refuse a series the policies do not let through.

    Args:
        geom: The series geometry.
        tilt: Tilt policy; a tilted series is refused under ``"refuse"``.
        uneven_spacing: Spacing policy; uneven spacing is refused under ``"refuse"``.

    Raises:
        ConversionError: A tilt or uneven spacing under ``"refuse"``, or a gap of more than
            :data:`MAX_INTERPOLATED_SLICES` missing slices under any policy.
    """
    if geom.tilted and tilt == "refuse":
        raise ConversionError(_refuse_tilt(geom))
    if geom.wide_gaps:
        raise ConversionError(_refuse_gap(geom))
    if geom.uneven and uneven_spacing == "refuse":
        raise ConversionError(_refuse_spacing(geom))


# --------------------------------------------------------------------------------------------------
# inspection (headers only)


def inspect_series(
    folder: Path,
    *,
    suv: bool,
    tilt: str = "resample",
    uneven_spacing: str = "resample",
) -> list[str]:
    """Check a DICOM series folder from its headers only and list its problems (never raises).

    Args:
        folder: The series folder.
        suv: Also check the tags needed for SUVbw (PET).
        tilt: Tilt policy; a tilted series is a problem only under ``"refuse"``.
        uneven_spacing: Spacing policy; uneven spacing is a problem only under ``"refuse"``.

    Returns:
        Human-readable problems, each naming the folder; empty when the series converts.
    """
    folder = Path(folder)
    problems: list[str] = []
    try:
        _check_policy("tilt", tilt)
        _check_policy("uneven-spacing", uneven_spacing)
        scan = _scan(folder)
        if scan.unreadable:
            problems.append(_unreadable_message(folder, scan.unreadable))
        geom = _geometry(folder, scan)
    except ConversionError as exc:
        problems.append(str(exc))
        return problems
    except Exception as exc:
        problems.append(f"{folder}: cannot read the series: {type(exc).__name__}: {exc}")
        return problems
    if geom.tilted and tilt == "refuse":
        problems.append(_refuse_tilt(geom))
    if geom.wide_gaps:
        problems.append(_refuse_gap(geom))
    elif geom.uneven and uneven_spacing == "refuse":
        problems.append(_refuse_spacing(geom))
    if suv:
        modality = str(geom.headers[0].get("Modality", ""))
        if modality != "PT":
            problems.append(
                f"{folder}: expected a PET series (Modality PT) for SUV conversion, "
                f"found Modality {modality or 'missing'}"
            )
        else:
            problems.extend(suv_problems(geom.headers[0], where=str(folder)))
    return problems


# --------------------------------------------------------------------------------------------------
# reading


def geometry_dict(image: sitk.Image) -> dict[str, list[float] | list[int]]:
    """Return an image's geometry as JSON-ready lists (size, spacing, origin, direction)."""
    return {
        "size": [int(v) for v in image.GetSize()],
        "spacing": [float(v) for v in image.GetSpacing()],
        "origin": [float(v) for v in image.GetOrigin()],
        "direction": [float(v) for v in image.GetDirection()],
    }


def read_series(
    folder: Path,
    *,
    tilt: str = "resample",
    uneven_spacing: str = "resample",
) -> tuple[sitk.Image, dict[str, Any]]:
    """Read one DICOM image series into a float32 image of modality values (HU, Bq/mL, ...).

    Args:
        folder: Folder holding exactly one image series.
        tilt: ``"resample"`` (resample a tilted series onto an orthogonal grid, linear, and record
            a warning) or ``"refuse"`` (raise :class:`ConversionError`).
        uneven_spacing: ``"resample"`` (resample to the median slice spacing, linear, with a
            warning) or ``"refuse"``.

    Returns:
        ``(image, info)``; ``info`` has ``geometry``, ``source`` (folder name, file count, modality,
        SeriesDescription, Manufacturer, slice spacing statistics, never PHI), ``warnings`` and
        ``corrections``.

    Raises:
        ConversionError: Unreadable or inconsistent series, several series, or a tilt / uneven
            spacing under policy ``"refuse"``.
    """
    image, info, _ = read_series_with_headers(folder, tilt=tilt, uneven_spacing=uneven_spacing)
    return image, info


def _tilt_correction(geom: SeriesGeometry, fill: float, before: list[int]) -> dict[str, Any]:
    """The ``corrections`` entry of a gantry tilt resampled onto an orthogonal grid."""
    return {
        "correction": "gantry_tilt",
        "tilt_deg": round(geom.tilt_deg, 4),
        "max_shear_mm": round(geom.shear_mm, 4),
        "method": "linear resampling onto an orthogonal grid covering all slices",
        "fill_value": fill,
        "size_before": before,
    }


def _spacing_correction(geom: SeriesGeometry, before: list[int]) -> dict[str, Any]:
    """The ``corrections`` entry of an uneven slice spacing resampled to the median spacing."""
    return {
        "correction": "uneven_slice_spacing",
        "spacing_min_mm": float(geom.steps.min()),
        "spacing_max_mm": float(geom.steps.max()),
        "spacing_target_mm": geom.median_step,
        "missing_slices": [{"from_mm": a, "to_mm": b, "n_missing": k} for a, b, k in geom.gaps()],
        "method": "linear interpolation along the slice normal",
        "size_before": before,
    }


def _correct(
    volume: np.ndarray, geom: SeriesGeometry
) -> tuple[np.ndarray, np.ndarray, list[str], list[dict[str, Any]]]:
    """Resample a tilted or unevenly spaced stack and describe what was done.

    Args:
        volume: ``(n, rows, cols)`` modality values in slice order.
        geom: The series geometry.

    Returns:
        ``(volume, origin, warnings, corrections)``; ``volume`` and ``origin`` unchanged for a
        clean series.
    """
    warnings: list[str] = []
    corrections: list[dict[str, Any]] = []
    dz = geom.median_step
    origin = geom.positions[0]
    if not geom.tilted and abs(geom.tag_tilt_deg) > TILT_TOLERANCE_DEG:
        warnings.append(
            f"GantryDetectorTilt is {geom.tag_tilt_deg:g}° but the slice positions follow the "
            "slice normal (the tilt is already in ImageOrientationPatient); no resampling needed"
        )
    if geom.tilted or geom.uneven:
        fill = float(volume.min())
        span = float(geom.along[-1] - geom.along[0])
        n_target = int(np.floor(span / dz + 1e-6)) + 1
        target = geom.along[0] + dz * np.arange(n_target)
        before = [int(geom.size[0]), int(geom.size[1]), len(geom.along)]
        volume, origin, _ = _resample(
            volume, geom, target_along=target, extend_in_plane=geom.tilted, fill=fill
        )
        if geom.tilted:
            warnings.append(tilt_message(geom) + "; resampled (linear) onto an orthogonal grid")
            corrections.append(_tilt_correction(geom, fill, before))
        if geom.uneven:
            warnings.append(
                spacing_message(geom) + f"; resampled (linear) to {dz:.4g} mm slice spacing"
            )
            corrections.append(_spacing_correction(geom, before))
    return volume, origin, warnings, corrections


def _to_image(volume: np.ndarray, geom: SeriesGeometry, origin: np.ndarray) -> sitk.Image:
    """Float32 image of ``volume`` with directions ``(row, col, normal)`` and the median spacing."""
    image = sitk.GetImageFromArray(volume.astype(np.float32))
    image.SetSpacing((geom.pixel_spacing[0], geom.pixel_spacing[1], geom.median_step))
    image.SetOrigin(tuple(float(v) for v in origin))
    direction = np.column_stack([geom.row, geom.col, geom.normal])
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    return image


def _source_info(geom: SeriesGeometry) -> dict[str, Any]:
    """The info dict's ``source``: folder name, counts, scanner and spacing facts, never PHI."""
    first = geom.headers[0]
    steps = geom.steps
    dz = geom.median_step
    return {
        "format": "DICOM",
        "folder": geom.folder.name,
        "n_files": geom.n_files,
        "n_slices": len(geom.paths),
        "modality": str(first.get("Modality", "")),
        "series_description": str(first.get("SeriesDescription", "")),
        "manufacturer": str(first.get("Manufacturer", "")),
        "manufacturer_model": str(first.get("ManufacturerModelName", "")),
        "slice_thickness_mm": header_float(first, "SliceThickness"),
        "slice_spacing_mm": {
            "median": dz,
            "min": float(steps.min()) if steps.size else dz,
            "max": float(steps.max()) if steps.size else dz,
        },
        "gantry_tilt_deg": round(geom.tilt_deg, 4),
        "ignored_objects": geom.ignored,
    }


def read_series_with_headers(
    folder: Path,
    *,
    tilt: str = "resample",
    uneven_spacing: str = "resample",
) -> tuple[sitk.Image, dict[str, Any], SeriesGeometry]:
    """Like :func:`read_series`, also returning the sorted headers (for SUV and RTSTRUCT)."""
    _check_policy("tilt", tilt)
    _check_policy("uneven-spacing", uneven_spacing)
    geom = load_series(Path(folder))
    _apply_policies(geom, tilt=tilt, uneven_spacing=uneven_spacing)
    volume = np.stack([_slice_values(p, h) for p, h in zip(geom.paths, geom.headers, strict=True)])
    volume, origin, warnings, corrections = _correct(volume, geom)
    for text in warnings:
        log.warning("%s: %s", geom.folder.name, text)
    image = _to_image(volume, geom, origin)
    info: dict[str, Any] = {
        "geometry": geometry_dict(image),
        "source": _source_info(geom),
        "warnings": warnings,
        "corrections": corrections,
    }
    return image, info, geom
