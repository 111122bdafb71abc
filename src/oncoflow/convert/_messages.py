"""Pieces of the error messages of the mask readers (RTSTRUCT, SEG)."""

from __future__ import annotations

import SimpleITK as sitk


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def z_extent(image: sitk.Image) -> str:
    """The physical extent of an image along its third axis, ``z = a to b mm``."""
    first = image.TransformIndexToPhysicalPoint((0, 0, 0))
    last = image.TransformIndexToPhysicalPoint((0, 0, image.GetSize()[2] - 1))
    return f"z = {min(first[2], last[2]):.1f} to {max(first[2], last[2]):.1f} mm"
