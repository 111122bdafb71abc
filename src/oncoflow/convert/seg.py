"""Rasterise DICOM Segmentation (SEG) segments onto an image grid.

A DICOM SEG stores each segment as frames of a pixel array with their own plane positions,
binary (0 / 1) or fractional (a probability or occupancy in ``[0, 1]``, stored as integers up to
MaximumFractionalValue), in any frame order, empty frames often left out. highdicom reads and
places the frames (:meth:`highdicom.seg.Segmentation.get_volume` sorts them along the slice
normal and gives the affine of the regular volume they span); each segment is then resampled
onto the reference image with nearest-neighbour interpolation (patient coordinates, mm), so a
SEG drawn on the image's own grid is reproduced voxel for voxel and one drawn on another grid of
the same frame of reference is mapped by position. A fractional segment counts a voxel in when
its value is at least 0.5.

Segments are chosen as ``mask_roi`` chooses RTSTRUCT ROIs: by SegmentLabel (exact, else
case-insensitive when unambiguous) or by SegmentNumber, several joined by ``+``; the i-th gets
label ``i`` and where segments overlap the later one wins. With none named, every segment is
rasterised with its SegmentNumber as label.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk

from oncoflow.convert._messages import first_line, z_extent
from oncoflow.convert.sop import SEG_SOP_CLASS
from oncoflow.errors import ConversionError

__all__ = [
    "SEG_SOP_CLASS",
    "is_seg",
    "rasterize_seg_with_info",
    "read_seg",
    "segment_labels",
    "segment_number",
]

log = logging.getLogger(__name__)


def is_seg(path: Path) -> bool:
    """Whether ``path`` is a DICOM Segmentation (reads headers only; unreadable: ``False``)."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # any unreadable file is simply not a SEG
        return False
    return str(ds.get("SOPClassUID", "")) == SEG_SOP_CLASS or ds.get("Modality") == "SEG"


def read_seg(path: Path) -> Any:
    """Read a DICOM SEG file as a :class:`highdicom.seg.Segmentation`.

    Raises:
        ConversionError: The file is missing, not DICOM, or not a Segmentation.
    """
    import highdicom as hd

    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: DICOM SEG file does not exist")
    if not is_seg(path):
        raise ConversionError(
            f"{path}: not a DICOM Segmentation; mask_path must be a NIfTI label map, an RT "
            "Structure Set or a DICOM SEG"
        )
    try:
        return hd.seg.segread(path)
    except Exception as exc:
        raise ConversionError(f"{path}: cannot read the DICOM SEG ({first_line(exc)})") from exc


def segment_labels(seg: Any) -> dict[int, str]:
    """``{SegmentNumber: SegmentLabel}`` of a SEG (highdicom or pydicom dataset), in file order."""
    return {
        int(item.SegmentNumber): str(item.get("SegmentLabel", "")).strip()
        for item in getattr(seg, "SegmentSequence", [])
    }


def segment_number(path: Path, wanted: str, available: dict[int, str]) -> int:
    """The SegmentNumber that ``wanted`` (a label or a number) names.

    Raises:
        ConversionError: No segment matches; the message lists the available ones.
    """
    text = wanted.strip()
    exact = [n for n, label in available.items() if label == text]
    folded = [n for n, label in available.items() if label.casefold() == text.casefold()]
    if len(exact) == 1:
        return exact[0]
    if not exact and len(folded) == 1:
        return folded[0]
    if text.isdigit() and int(text) in available:
        return int(text)
    listing = ", ".join(f"{n} '{label}'" for n, label in available.items()) or "none"
    reason = "is ambiguous" if len(exact) > 1 or len(folded) > 1 else "not found"
    msg = f"{path}: segment '{text}' {reason}; segments (number 'label'): {listing}"
    raise ConversionError(msg)


def _segment_image(path: Path, seg: Any, number: int, label: str) -> sitk.Image:
    """One segment as a float image (1 / 0, or the fractional value) on the grid its frames span."""
    try:
        volume = seg.get_volume(segment_numbers=[number], combine_segments=False)
    except Exception as exc:
        msg = (
            f"{path}: segment {number} '{label}': its frames do not form a regular volume "
            f"({first_line(exc)})"
        )
        raise ConversionError(msg) from exc
    return volume.squeeze_channel().astype(np.float32).to_simpleitk()


def rasterize_seg_with_info(
    seg_file: Path,
    reference: sitk.Image,
    segments: Sequence[str] = (),
    *,
    frame_of_reference_uid: str | None = None,
) -> tuple[sitk.Image, dict[str, Any]]:
    """Rasterise segments of a DICOM SEG onto the grid of ``reference`` (module docstring).

    Args:
        seg_file: The DICOM SEG file.
        reference: Image whose grid the mask takes (size, spacing, origin, direction).
        segments: Segment labels or numbers; the i-th gets label ``i``. Empty: every segment,
            labelled by its SegmentNumber.
        frame_of_reference_uid: The image series' FrameOfReferenceUID; when given, the SEG must
            have the same.

    Returns:
        ``(labels, info)``: a uint8 label map with ``reference``'s geometry; ``info`` lists per
        segment its label, number, SegmentLabel and voxel count, and the SEG type.

    Raises:
        ConversionError: Not a SEG, an unknown segment (the message lists the available ones),
            a segment with no voxel on the grid, frames that do not form a regular volume, or
            another frame of reference.
    """
    path = Path(seg_file)
    seg = read_seg(path)
    available = segment_labels(seg)
    own_frame = str(seg.get("FrameOfReferenceUID", "") or "")
    if frame_of_reference_uid is not None and own_frame and own_frame != frame_of_reference_uid:
        raise ConversionError(
            f"{path}: the SEG refers to another FrameOfReferenceUID than the image series "
            "(segmented on a different scan or registration)"
        )
    if segments:
        chosen = [(i, segment_number(path, s, available)) for i, s in enumerate(segments, 1)]
    else:
        chosen = [(n, n) for n in available]
    kind = str(seg.SegmentationType)
    size = reference.GetSize()
    labels = np.zeros((size[2], size[1], size[0]), dtype=np.uint8)
    info: dict[str, Any] = {
        "source": {"format": "SEG", "file": path.name, "segmentation_type": kind},
        "segments": [],
    }
    for label, number in chosen:
        image = _segment_image(path, seg, number, available[number])
        on_grid = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0)
        mask = sitk.GetArrayFromImage(on_grid) >= 0.5
        voxels = int(mask.sum())
        if voxels == 0:
            msg = (
                f"{path}: segment {number} '{available[number]}' has no voxel on the image grid "
                f"(empty, or drawn outside it: {z_extent(reference)})"
            )
            raise ConversionError(msg)
        labels[mask] = label
        info["segments"].append(
            {"label": label, "segment": number, "name": available[number], "voxels": voxels}
        )
        log.debug("%s: segment %d -> label %d, %d voxels", path.name, number, label, voxels)
    out = sitk.GetImageFromArray(labels)
    out.CopyInformation(reference)
    return out, info
