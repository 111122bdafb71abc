"""Image QC panels of the report from the converted images and the cohort's slides."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from oncoflow.report import figures

log = logging.getLogger(__name__)

THUMBNAIL_PX = 256
"""Longest side of a slide thumbnail (pixels)."""


def _baseline_mask(patient_dir: Path) -> tuple[Path, Path] | None:
    """``(image, mask)`` of the earliest timepoint's first masked image, or ``None``."""
    timepoints = sorted(
        (p for p in patient_dir.iterdir() if p.is_dir() and p.name.isdigit()),
        key=lambda p: int(p.name),
    )
    for tp in timepoints:
        for mask in sorted(tp.glob("*_mask.nii.gz")):
            image = mask.with_name(mask.name.replace("_mask.nii.gz", ".nii.gz"))
            if image.is_file():
                return image, mask
    return None


def mask_panels(converted: Path, patients: Sequence[str], title: str) -> bytes | None:
    """Montage of the mid-lesion slice with mask outline of each patient (converted NIfTI).

    Args:
        converted: ``results/converted`` (one folder per patient, one per timepoint).
        patients: Patients to show, in order.
        title: Figure title.

    Returns:
        PNG bytes, or ``None`` when no patient has a masked image.
    """
    import nibabel as nib

    panels = []
    for patient in patients:
        folder = Path(converted) / patient
        pair = _baseline_mask(folder) if folder.is_dir() else None
        if pair is None:
            continue
        image = np.asarray(nib.load(pair[0]).dataobj, dtype=np.float32)
        mask = np.asarray(nib.load(pair[1]).dataobj)
        if image.ndim != 3 or image.shape != mask.shape:
            log.warning("QC: %s: image %s and mask %s differ", patient, image.shape, mask.shape)
            continue
        plane, outline, k = figures.mid_lesion_slice(image, mask)
        stem = pair[0].name.removesuffix(".nii.gz")
        panels.append((f"{patient} {stem} z={k}", plane, outline))
    return figures.mask_montage(panels, title) if panels else None


def slide_panels(slides: Sequence[tuple[str, Path]], title: str) -> bytes | None:
    """Montage of slide thumbnails (openslide, lowest-resolution level) or ``None``."""
    import openslide

    panels = []
    for patient, path in slides:
        with openslide.OpenSlide(str(path)) as slide:
            thumb = slide.get_thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        panels.append((patient, np.asarray(thumb.convert("RGB"))))
    return figures.slide_montage(panels, title) if panels else None
