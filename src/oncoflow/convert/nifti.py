"""NIfTI input standardisation and the writers every conversion output goes through.

Outputs are ``.nii.gz`` written by SimpleITK from a fresh image (pixel array + origin, spacing,
direction only), so no metadata (DICOM text, ``descrip``, ``aux_file``) is carried over: images are
float32, masks uint8.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from oncoflow.errors import ConversionError

__all__ = [
    "GEOMETRY_TOLERANCE",
    "check_same_geometry",
    "is_nifti",
    "read_nifti",
    "standardise_image",
    "standardise_mask",
    "write_image",
    "write_json",
]

GEOMETRY_TOLERANCE = 1e-3
"""Largest difference allowed between image and mask spacing (mm), origin (mm) and direction."""


def is_nifti(path: Path) -> bool:
    """Whether ``path`` names a NIfTI file (``.nii`` or ``.nii.gz``)."""
    name = Path(path).name.lower()
    return name.endswith((".nii", ".nii.gz"))


def read_nifti(path: Path) -> sitk.Image:
    """Read a 3D NIfTI image.

    Raises:
        ConversionError: Missing, unreadable, or not 3D (a trailing axis of length 1 is dropped).
    """
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: file does not exist")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        raise ConversionError(f"{path}: cannot read the NIfTI file ({first})") from exc
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ConversionError(f"{path}: expected a scalar image, got a vector image")
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    if image.GetDimension() != 3:
        raise ConversionError(
            f"{path}: expected a 3D image, got {image.GetDimension()}D of size {image.GetSize()}"
        )
    return image


def _fresh(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    """Return a new image from ``array`` with ``like``'s geometry and no metadata."""
    out = sitk.GetImageFromArray(array)
    out.SetOrigin(like.GetOrigin())
    out.SetSpacing(like.GetSpacing())
    out.SetDirection(like.GetDirection())
    return out


def write_image(image: sitk.Image, path: Path, *, mask: bool = False) -> Path:
    """Write ``image`` as ``.nii.gz`` (float32, or uint8 for a mask) without any metadata.

    Raises:
        ConversionError: A mask with values outside 0..255 or not integer.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = sitk.GetArrayFromImage(image)
    if mask:
        if array.size and (
            np.any(array < 0) or np.any(array > 255) or np.any(np.mod(array, 1) != 0)
        ):
            raise ConversionError(f"{path}: mask values must be integers 0..255")
        array = array.astype(np.uint8)
    else:
        array = array.astype(np.float32)
    sitk.WriteImage(_fresh(array, image), str(path), useCompression=True)
    return path


def write_json(data: dict[str, Any], path: Path) -> Path:
    """Write a sidecar / manifest as indented JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def check_same_geometry(image: sitk.Image, mask: sitk.Image, *, where: str) -> None:
    """Check that ``mask`` lies on ``image``'s grid.

    Same size; spacing and origin within :data:`GEOMETRY_TOLERANCE` mm; direction cosines within
    :data:`GEOMETRY_TOLERANCE`.

    Raises:
        ConversionError: Naming what differs, with both values.
    """
    if image.GetSize() != mask.GetSize():
        raise ConversionError(
            f"{where}: mask size {mask.GetSize()} differs from image size {image.GetSize()}"
        )
    checks = (
        ("spacing", image.GetSpacing(), mask.GetSpacing()),
        ("origin", image.GetOrigin(), mask.GetOrigin()),
        ("direction", image.GetDirection(), mask.GetDirection()),
    )
    for name, a, b in checks:
        if np.max(np.abs(np.subtract(a, b))) > GEOMETRY_TOLERANCE:
            fa = tuple(round(v, 4) for v in a)
            fb = tuple(round(v, 4) for v in b)
            raise ConversionError(f"{where}: mask {name} {fb} differs from image {name} {fa}")


def _nifti_source(path: Path, image: sitk.Image) -> dict[str, Any]:
    return {
        "format": "NIfTI",
        "file": Path(path).name,
        "pixel_type": image.GetPixelIDTypeAsString(),
    }


def standardise_image(src: Path, dst: Path) -> tuple[sitk.Image, dict[str, Any]]:
    """Copy a NIfTI image to ``dst`` as float32 ``.nii.gz`` with the same geometry.

    Returns:
        ``(image as written, info)`` with ``geometry``, ``source``, ``warnings``, ``corrections``.
    """
    from oncoflow.convert.dicom import geometry_dict  # DICOM stack only imported when needed

    image = read_nifti(src)
    written = sitk.Cast(image, sitk.sitkFloat32)
    write_image(written, dst)
    info = {
        "geometry": geometry_dict(written),
        "source": _nifti_source(src, image),
        "warnings": [],
        "corrections": [],
    }
    return written, info


def standardise_mask(src: Path, dst: Path, reference: sitk.Image) -> dict[str, Any]:
    """Copy a NIfTI label map to ``dst`` as uint8 on ``reference``'s exact grid.

    Raises:
        ConversionError: Geometry differs from ``reference`` (beyond the tolerance) or the values
            are not integer labels 0..255.

    Returns:
        Info with ``source`` and the label values present (``labels``).
    """
    mask = read_nifti(src)
    check_same_geometry(reference, mask, where=str(src))
    array = sitk.GetArrayFromImage(mask)
    if array.size and (np.any(array < 0) or np.any(array > 255) or np.any(np.mod(array, 1) != 0)):
        raise ConversionError(f"{src}: mask values must be integer labels 0..255")
    out = _fresh(array.astype(np.uint8), reference)
    write_image(out, dst, mask=True)
    values, counts = np.unique(array, return_counts=True)
    return {
        "source": _nifti_source(src, mask),
        "labels": {str(int(v)): int(n) for v, n in zip(values, counts, strict=True)},
    }
