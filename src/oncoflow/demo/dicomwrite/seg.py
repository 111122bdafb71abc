"""DICOM Segmentation (SEG) objects made from a label map, referencing an image series beside them.

Written with highdicom (:class:`highdicom.seg.Segmentation`), the library oncoflow also reads SEG
with (:mod:`oncoflow.convert.seg`): one segment per label, frames only where a segment has
voxels, patient / study / frame-of-reference taken from the source series.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from oncoflow.demo.dicomwrite._dataset import _uid

__all__ = ["write_seg"]

# SNOMED CT codes of the segmented property (category, type) by role of the segment
_TISSUE = ("85756007", "Tissue")
_ORGAN = ("123037004", "Anatomical Structure")
_ALTERED = ("49755003", "Morphologically Altered Structure")
_NEOPLASM = ("108369006", "Neoplasm")
_LUNG = ("39607008", "Lung")


def _property(name: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """(category, type) codes for a segment named ``name`` (lesion words: a neoplasm)."""
    upper = name.upper()
    if any(word in upper for word in ("GTV", "LESION", "TUMOR", "TUMOUR", "NODULE")):
        return _ALTERED, _NEOPLASM
    if "LUNG" in upper:
        return _ORGAN, _LUNG
    return _TISSUE, _ORGAN


def _source_images(series_dir: Path, rng: np.random.Generator) -> list[pydicom.Dataset]:
    """The image files of ``series_dir`` in shuffled order (the SEG's frames follow it)."""
    images = []
    for path in sorted(p for p in series_dir.iterdir() if p.is_file()):
        try:
            ds = pydicom.dcmread(path)
        except pydicom.errors.InvalidDicomError:
            continue
        if "ImagePositionPatient" in ds:
            images.append(ds)
    if not images:
        raise ValueError(f"{series_dir}: no DICOM image files")
    return [images[i] for i in rng.permutation(len(images))]


def write_seg(
    labels: sitk.Image,
    series_dir: Path,
    out_file: Path,
    *,
    segment_names: Mapping[int, str],
    seed: int = 0,
    fractional: bool = False,
) -> Path:
    """Write a DICOM SEG with one segment per label of ``labels``.

    Args:
        labels: Integer label map on the grid of the series in ``series_dir``.
        series_dir: Folder of the referenced image series.
        out_file: SEG file to write.
        segment_names: Label value -> SegmentLabel; SegmentNumber follows the order of this
            mapping (1, 2, ...).
        seed: Makes the UIDs and the (shuffled) frame order deterministic.
        fractional: Write a FRACTIONAL (probability, 0..255) SEG instead of a BINARY one; the
            voxels of a label are stored as 1.0.

    Returns:
        ``out_file``.
    """
    import highdicom as hd

    rng = np.random.default_rng(seed)
    sources = _source_images(Path(series_dir), rng)
    array = sitk.GetArrayFromImage(labels)
    # the label-map slice of each source image, by its position on the label map's grid
    to_index = labels.TransformPhysicalPointToContinuousIndex
    slices = [round(to_index([float(v) for v in ds.ImagePositionPatient])[2]) for ds in sources]
    frames = np.stack([array[k] for k in slices])
    stacked = np.stack([frames == value for value in segment_names], axis=-1)
    descriptions = []
    for number, name in enumerate(segment_names.values(), start=1):
        category, kind = _property(name)
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=name,
                segmented_property_category=hd.sr.CodedConcept(category[0], "SCT", category[1]),
                segmented_property_type=hd.sr.CodedConcept(kind[0], "SCT", kind[1]),
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            )
        )
    first = sources[0]
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=stacked.astype(np.float32 if fractional else np.uint8),
        segmentation_type="FRACTIONAL" if fractional else "BINARY",
        segment_descriptions=descriptions,
        series_instance_uid=_uid("seg-series", seed, first.SeriesInstanceUID),
        series_number=900,
        sop_instance_uid=_uid("seg", seed, first.SeriesInstanceUID),
        instance_number=1,
        manufacturer="OncoflowSim",
        manufacturer_model_name="Virtual Contouring 1",
        software_versions="oncoflow-0.1",
        device_serial_number="SIM-SEG-01",
        series_description="Segmentation",
    )
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(out_file)
    return out_file
