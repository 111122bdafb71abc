"""Rasterise RTSTRUCT ROIs onto an image grid.

Each CLOSED_PLANAR contour (patient coordinates, mm) is mapped to continuous voxel indices of the
reference image (``index = (D diag(spacing))^-1 (p - origin)``); its slice is the rounded index
along the third axis, which must lie within half a slice of every contour point (contours must be
parallel to the image slices). The polygon is filled on that slice (voxel centres inside the
polygon), and the contours of one ROI in one plane are combined with the even-odd rule, so inner
contours cut holes and separate islands add up. Each image slice takes the nearest contour plane
within half a slice (so a mask can also be drawn on a grid resampled along the slice normal).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from skimage.draw import polygon as fill_polygon

from oncoflow.convert._messages import first_line, z_extent
from oncoflow.convert.sop import RTSTRUCT_SOP_CLASS
from oncoflow.errors import ConversionError

__all__ = ["rasterize", "rasterize_with_info", "read_rtstruct", "roi_names"]

log = logging.getLogger(__name__)


def read_rtstruct(path: Path) -> Dataset:
    """Read an RTSTRUCT file.

    Raises:
        ConversionError: The file is missing, not DICOM or not an RT Structure Set.
    """
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: RTSTRUCT file does not exist")
    try:
        ds = pydicom.dcmread(path)
    except pydicom.errors.InvalidDicomError:
        ds = None  # maybe a dataset without the 128-byte preamble: retry below
    except Exception as exc:
        raise ConversionError(f"{path}: not a readable DICOM file ({first_line(exc)})") from exc
    if ds is None:
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception as exc:
            raise ConversionError(f"{path}: not a readable DICOM file ({first_line(exc)})") from exc
        if "SOPClassUID" not in ds and "StructureSetROISequence" not in ds:
            raise ConversionError(f"{path}: not a readable DICOM file")
    if str(ds.get("SOPClassUID", "")) != RTSTRUCT_SOP_CLASS and ds.get("Modality") != "RTSTRUCT":
        raise ConversionError(
            f"{path}: not an RTSTRUCT (Modality {ds.get('Modality', '?')}); "
            "mask_path must be a NIfTI label map or an RT Structure Set"
        )
    return ds


def _rois(ds: Dataset) -> dict[str, tuple[int, str]]:
    """Return ROIName -> (ROINumber, ReferencedFrameOfReferenceUID)."""
    found: dict[str, tuple[int, str]] = {}
    for roi in ds.get("StructureSetROISequence", []):
        name = str(roi.get("ROIName", "")).strip()
        found[name] = (int(roi.ROINumber), str(roi.get("ReferencedFrameOfReferenceUID", "")))
    return found


def roi_names(rtstruct_file: Path) -> list[str]:
    """Return the ROI names of an RTSTRUCT file, in file order."""
    return list(_rois(read_rtstruct(rtstruct_file)))


def _frames(ds: Dataset) -> set[str]:
    """Frames of reference the structure set refers to."""
    uids = {
        str(item.FrameOfReferenceUID)
        for item in ds.get("ReferencedFrameOfReferenceSequence", [])
        if "FrameOfReferenceUID" in item
    }
    uids |= {ref for _, ref in _rois(ds).values() if ref}
    return uids


@dataclass(frozen=True)
class _Grid:
    """The reference image grid contours are drawn on.

    Attributes:
        size: ``(nx, ny, nz)`` of the reference image.
        origin: Its origin (mm).
        to_index: ``(D diag(spacing))^-1``: patient offset from the origin -> continuous index.
    """

    size: tuple[int, ...]
    origin: np.ndarray
    to_index: np.ndarray

    @classmethod
    def of(cls, path: Path, reference: sitk.Image) -> _Grid:
        """Return the grid of ``reference``.

        Raises:
            ConversionError: The reference image is not 3D.
        """
        size = reference.GetSize()
        if reference.GetDimension() != 3:
            raise ConversionError(f"{path}: the reference image must be 3D")
        origin = np.asarray(reference.GetOrigin(), dtype=float)
        spacing = np.asarray(reference.GetSpacing(), dtype=float)
        direction = np.asarray(reference.GetDirection(), dtype=float).reshape(3, 3)
        return cls(size, origin, np.linalg.inv(direction * spacing[None, :]))


def _check_frame(path: Path, ds: Dataset, frame_of_reference_uid: str) -> None:
    """Raise when the structure set names frames of reference and the image's is not one."""
    frames = _frames(ds)
    if frames and frame_of_reference_uid not in frames:
        raise ConversionError(
            f"{path}: the RTSTRUCT refers to another FrameOfReferenceUID than the image "
            "series (contours drawn on a different scan or registration)"
        )


def _roi_key(path: Path, name: str, available: dict[str, tuple[int, str]]) -> str:
    """Return the ROIName matching ``name`` (exact, else unambiguous case-insensitive).

    Raises:
        ConversionError: No ROI matches; the message lists the available ones.
    """
    key = name if name in available else _case_insensitive(name, available)
    if key is None:
        raise ConversionError(
            f"{path}: ROI '{name}' not found; available ROIs: "
            + (", ".join(f"'{n}'" for n in available) or "none")
        )
    return key


def _draw_planes(
    path: Path, key: str, contours: list[Dataset], grid: _Grid
) -> tuple[dict[float, np.ndarray], int, int, list[float]]:
    """Fill the closed planar contours of one ROI, combined per plane with the even-odd rule.

    Args:
        path: The RTSTRUCT file (for messages).
        key: The ROI name (for messages).
        contours: Its ContourSequence items.
        grid: The reference grid.

    Returns:
        ``(planes, drawn, skipped, z_range)``: a (ny, nx) bool mask per fractional slice index
        (rounded to 1e-3), the numbers of contours drawn and skipped (not closed planar, too few
        points, off the grid) and the z extent (mm) of the contours read.

    Raises:
        ConversionError: A contour is not parallel to the image slices.
    """
    size = grid.size
    planes: dict[float, np.ndarray] = {}
    drawn = skipped = 0
    z_range: list[float] = []
    for contour in contours:
        kind = str(contour.get("ContourGeometricType", "CLOSED_PLANAR")).upper()
        data = contour.get("ContourData")
        if kind != "CLOSED_PLANAR" or data is None or len(data) < 9:
            skipped += 1
            continue
        points = np.asarray([float(v) for v in data], dtype=float).reshape(-1, 3)
        index = (points - grid.origin[None, :]) @ grid.to_index.T
        z_range.extend([float(points[:, 2].min()), float(points[:, 2].max())])
        if np.ptp(index[:, 2]) > 1.0:
            raise ConversionError(
                f"{path}: ROI '{key}': a contour is not parallel to the image slices "
                f"(it spans {np.ptp(index[:, 2]):.1f} slices); the RTSTRUCT does not "
                "belong to this image grid"
            )
        k_plane = round(float(np.mean(index[:, 2])), 3)
        if k_plane < -0.5 - 1e-6 or k_plane > size[2] - 0.5 + 1e-6:
            skipped += 1
            continue
        rr, cc = fill_polygon(index[:, 1], index[:, 0], shape=(size[1], size[0]))
        plane = planes.setdefault(k_plane, np.zeros((size[1], size[0]), dtype=bool))
        plane[rr, cc] ^= True  # even-odd rule: inner contours are holes
        drawn += 1
    return planes, drawn, skipped, z_range


def _fill_slices(planes: dict[float, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """Give each image slice the nearest contour plane within half a slice; (nz, ny, nx) bool."""
    mask = np.zeros(shape, dtype=bool)
    if planes:
        plane_k = np.asarray(list(planes))
        plane_masks = list(planes.values())
        for k in range(shape[0]):
            dist = np.abs(plane_k - k)
            nearest = int(np.argmin(dist))
            if dist[nearest] <= 0.5 + 1e-6:
                mask[k] = plane_masks[nearest]
    return mask


def _off_grid_message(path: Path, key: str, z_range: list[float], reference: sitk.Image) -> str:
    """Message for an ROI that has no voxel on the image grid."""
    where = (
        f"its contours lie at z = {min(z_range):.1f} to {max(z_range):.1f} mm"
        if z_range
        else "it has no closed planar contour"
    )
    return (
        f"{path}: ROI '{key}' has no contour on the image grid ({where}; the image "
        f"covers {z_extent(reference)})"
    )


def rasterize_with_info(
    rtstruct_file: Path,
    reference: sitk.Image,
    roi_names: Sequence[str],
    *,
    frame_of_reference_uid: str | None = None,
) -> tuple[sitk.Image, dict[str, Any]]:
    """Rasterise ROIs and describe the result (see :func:`rasterize`).

    Returns:
        ``(labels, info)``; ``info`` lists per ROI its label, number of contours drawn and skipped
        (off the grid) and voxel count.
    """
    path = Path(rtstruct_file)
    ds = read_rtstruct(path)
    available = _rois(ds)
    if not roi_names:
        raise ConversionError(f"{path}: no ROI name given; available: {', '.join(available)}")
    if frame_of_reference_uid is not None:
        _check_frame(path, ds, frame_of_reference_uid)
    contours_by_number: dict[int, list[Dataset]] = {}
    for item in ds.get("ROIContourSequence", []):
        contours_by_number[int(item.ReferencedROINumber)] = list(item.get("ContourSequence", []))

    grid = _Grid.of(path, reference)
    size = grid.size
    labels = np.zeros((size[2], size[1], size[0]), dtype=np.uint8)
    info: dict[str, Any] = {"source": {"format": "RTSTRUCT", "file": path.name}, "rois": []}
    for label, name in enumerate(roi_names, start=1):
        key = _roi_key(path, name, available)
        contours = contours_by_number.get(available[key][0], [])
        planes, drawn, skipped, z_range = _draw_planes(path, key, contours, grid)
        mask = _fill_slices(planes, labels.shape)
        voxels = int(mask.sum())
        if voxels == 0:
            raise ConversionError(_off_grid_message(path, key, z_range, reference))
        labels[mask] = label
        info["rois"].append(
            {
                "label": label,
                "roi": key,
                "contours_drawn": drawn,
                "contours_skipped": skipped,
                "voxels": voxels,
            }
        )
        log.debug("%s: ROI %s -> label %d, %d voxels", path.name, key, label, voxels)
    out = sitk.GetImageFromArray(labels)
    out.CopyInformation(reference)
    return out, info


def rasterize(
    rtstruct_file: Path,
    reference: sitk.Image,
    roi_names: Sequence[str],
    *,
    frame_of_reference_uid: str | None = None,
) -> sitk.Image:
    """Rasterise RTSTRUCT ROIs onto the grid of ``reference``.

    Args:
        rtstruct_file: The RT Structure Set file.
        reference: Image whose grid the mask takes (size, spacing, origin, direction).
        roi_names: ROI names; the i-th gets label ``i`` (1-based); where ROIs overlap the later
            one wins (e.g. ``["Lung", "GTV"]``: lung = 1, tumour = 2 inside it). Matching is
            exact, else case-insensitive when unambiguous.
        frame_of_reference_uid: The image series' FrameOfReferenceUID; when given, the RTSTRUCT
            must refer to it.

    Returns:
        A uint8 label map with ``reference``'s geometry.

    Raises:
        ConversionError: Not an RTSTRUCT, unknown ROI name (the message lists the available
            ones), an ROI without any contour on the grid, contours not parallel to the slices,
            or a different frame of reference.
    """
    labels, _ = rasterize_with_info(
        rtstruct_file, reference, roi_names, frame_of_reference_uid=frame_of_reference_uid
    )
    return labels


def _case_insensitive(name: str, available: dict[str, tuple[int, str]]) -> str | None:
    matches = [n for n in available if n.casefold() == name.strip().casefold()]
    return matches[0] if len(matches) == 1 else None
