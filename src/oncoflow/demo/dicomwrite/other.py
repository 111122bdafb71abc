"""Objects an export holds beside the images, which an importer must recognise and skip.

* :func:`write_dose_report` - an X-Ray Radiation Dose SR (TID 10011, CT radiation dose) with the
  accumulated dose length product, as a CT scanner sends it with every study;
* :func:`write_secondary_capture` - a Secondary Capture image (a screen save, Modality ``OT``).

Both join the study of an image series written with the same ``seed`` and ``phi``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from oncoflow.demo.dicomwrite._dataset import FakePHI, _base_dataset, _ds, _save, _uid

__all__ = [
    "DOSE_REPORT_SOP_CLASS",
    "SECONDARY_CAPTURE_SOP_CLASS",
    "write_dose_report",
    "write_secondary_capture",
]

DOSE_REPORT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.67"
"""X-Ray Radiation Dose SR Storage."""

SECONDARY_CAPTURE_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7"
"""Secondary Capture Image Storage."""


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    """Return a code sequence item."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def write_dose_report(
    out_file: Path,
    *,
    phi: FakePHI,
    seed: int,
    study_date: str | None = None,
    dlp_mgy_cm: float = 412.5,
) -> str:
    """Write a CT X-Ray Radiation Dose SR (Modality ``SR``) with its total dose length product.

    Args:
        out_file: File to write.
        phi: Fake identifying values.
        seed: The study's seed (StudyInstanceUID) and the report's UIDs.
        study_date: StudyDate / SeriesDate / ContentDate; by default derived from ``seed``.
        dlp_mgy_cm: CT Dose Length Product Total (mGy.cm).

    Returns:
        The report's SeriesInstanceUID.
    """
    sop_uid = _uid("dose-report", seed, phi.patient_id)
    ds = _base_dataset(
        sop_class=DOSE_REPORT_SOP_CLASS,
        sop_instance=sop_uid,
        modality="SR",
        phi=phi,
        seed=seed,
        study_time="101500.000",
        study_date=study_date,
    )
    ds.SeriesInstanceUID = _uid("dose-report-series", seed, phi.patient_id)
    ds.SeriesNumber = 997
    ds.SeriesDescription = "Dose Report"
    ds.InstanceNumber = 1
    ds.ContentTime = "103100.000"
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = DicomSequence(
        [_code("113701", "DCM", "X-Ray Radiation Dose Report")]
    )
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "10011"
    ds.ContentTemplateSequence = DicomSequence([template])

    value = Dataset()
    value.NumericValue = _ds(dlp_mgy_cm)
    value.MeasurementUnitsCodeSequence = DicomSequence([_code("mGy.cm", "UCUM", "mGy.cm")])
    dlp = Dataset()
    dlp.RelationshipType = "CONTAINS"
    dlp.ValueType = "NUM"
    dlp.ConceptNameCodeSequence = DicomSequence(
        [_code("113813", "DCM", "CT Dose Length Product Total")]
    )
    dlp.MeasuredValueSequence = DicomSequence([value])
    ds.ContentSequence = DicomSequence([dlp])
    _save(ds, Path(out_file))
    return str(ds.SeriesInstanceUID)


def write_secondary_capture(
    out_file: Path,
    *,
    phi: FakePHI,
    seed: int,
    pixels: np.ndarray,
    study_date: str | None = None,
    description: str = "Screen Save",
) -> str:
    """Write a Secondary Capture image (Modality ``OT``, 8-bit grey, no patient geometry).

    Args:
        out_file: File to write.
        phi: Fake identifying values.
        seed: The study's seed (StudyInstanceUID) and the image's UIDs.
        pixels: 2D ``(rows, columns)`` array, written as uint8 (clipped to 0..255).
        study_date: StudyDate / SeriesDate / ContentDate; by default derived from ``seed``.
        description: SeriesDescription.

    Returns:
        The image's SeriesInstanceUID.
    """
    ds = _base_dataset(
        sop_class=SECONDARY_CAPTURE_SOP_CLASS,
        sop_instance=_uid("secondary-capture", seed, phi.patient_id, description),
        modality="OT",
        phi=phi,
        seed=seed,
        study_time="101500.000",
        study_date=study_date,
    )
    ds.SeriesInstanceUID = _uid("secondary-capture-series", seed, phi.patient_id, description)
    ds.SeriesNumber = 999
    ds.SeriesDescription = description
    ds.InstanceNumber = 1
    ds.ConversionType = "WSD"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.PatientOrientation = ""
    image = np.clip(np.rint(np.asarray(pixels, dtype=np.float64)), 0, 255).astype(np.uint8)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = image.shape
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = image.tobytes() + (b"\x00" if image.size % 2 else b"")
    _save(ds, Path(out_file))
    return str(ds.SeriesInstanceUID)
