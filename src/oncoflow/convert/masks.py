"""DICOM masks: an RT Structure Set or a DICOM Segmentation, told apart by their headers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from oncoflow.convert.rtstruct import rasterize_with_info
from oncoflow.convert.seg import is_seg, rasterize_seg_with_info

__all__ = ["dicom_mask_format", "rasterize_dicom_mask"]


def dicom_mask_format(path: Path) -> str:
    """``"SEG"`` for a DICOM Segmentation, else ``"RTSTRUCT"`` (checked when it is read)."""
    return "SEG" if is_seg(Path(path)) else "RTSTRUCT"


def rasterize_dicom_mask(
    path: Path,
    reference: sitk.Image,
    names: Sequence[str],
    *,
    frame_of_reference_uid: str | None = None,
) -> tuple[sitk.Image, dict[str, Any]]:
    """Rasterise the ROIs of an RTSTRUCT or the segments of a SEG onto ``reference``'s grid.

    Args:
        path: The RTSTRUCT or SEG file.
        reference: Image whose grid the label map takes.
        names: ``mask_roi`` split on ``+``: ROI names, or segment labels / numbers; the i-th
            gets label ``i``. A SEG may be given none (every segment, labelled by its number).
        frame_of_reference_uid: The image series' FrameOfReferenceUID, checked when given.

    Returns:
        ``(labels, info)`` (:func:`~oncoflow.convert.rtstruct.rasterize_with_info`,
        :func:`~oncoflow.convert.seg.rasterize_seg_with_info`).

    Raises:
        ConversionError: See those two functions.
    """
    if dicom_mask_format(path) == "SEG":
        return rasterize_seg_with_info(
            path, reference, names, frame_of_reference_uid=frame_of_reference_uid
        )
    return rasterize_with_info(
        path, reference, list(names), frame_of_reference_uid=frame_of_reference_uid
    )
