"""What every file of :mod:`oncoflow.demo.dicomwrite` shares: fake PHI, UIDs, common modules.

The series / image-plane attributes of one slice are filled by :func:`_add_slice`. UIDs are
derived from ``seed`` and ``phi.patient_id`` only (plus modality / description for the series),
so a CT and a PET written with the same ``seed`` and ``phi`` share their StudyInstanceUID and
FrameOfReferenceUID, as a PET/CT acquisition does.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

_STUDY_ROOT = "oncoflow-dicomwrite"
"""UID entropy root; unchanged since the module moved, so the demo's UIDs stay the same."""


@dataclass(frozen=True)
class FakePHI:
    """Fake identifying header values; tests grep every converted output for each of them.

    Attributes:
        patient_name: PatientName (0010,0010).
        patient_birth_date: PatientBirthDate (0010,0030), ``YYYYMMDD``.
        patient_id: PatientID (0010,0020), a hospital MRN (never the pseudonymous cohort ID).
        accession_number: AccessionNumber (0008,0050).
        institution_name: InstitutionName (0008,0080).
        referring_physician: ReferringPhysicianName (0008,0090).
        operator_name: OperatorsName (0008,1070).
    """

    patient_name: str = "DOE^JANE"
    patient_birth_date: str = "19580314"
    patient_id: str = "MRN0012345"
    accession_number: str = "ACC998877"
    institution_name: str = "Saint Example Hospital"
    referring_physician: str = "HOUSE^GREGORY"
    operator_name: str = "SMITH^JOHN"

    def values(self) -> tuple[str, ...]:
        """Return every fake value (for PHI grep tests)."""
        return (
            self.patient_name,
            self.patient_birth_date,
            self.patient_id,
            self.accession_number,
            self.institution_name,
            self.referring_physician,
            self.operator_name,
        )


# --------------------------------------------------------------------------------------------------
# helpers


def _ds(value: float) -> str:
    """Format a number as a DICOM Decimal String (at most 16 characters)."""
    return format_number_as_ds(float(value))


def _uid(*parts: object) -> str:
    """Return a deterministic UID from ``parts``."""
    return generate_uid(entropy_srcs=[_STUDY_ROOT, *(str(p) for p in parts)])


def _study_uids(phi: FakePHI, seed: int) -> tuple[str, str]:
    """Return (StudyInstanceUID, FrameOfReferenceUID) for a patient and seed."""
    return _uid("study", seed, phi.patient_id), _uid("frame-of-reference", seed, phi.patient_id)


def _study_date(seed: int) -> str:
    """Return a deterministic study date ``YYYYMMDD`` for ``seed``."""
    day = _dt.date(2023, 1, 2) + _dt.timedelta(days=int(seed) % 700)
    return day.strftime("%Y%m%d")


def _file_names(rng: np.random.Generator, n: int) -> list[str]:
    """Return ``n`` distinct, non-sequential file names (like an unordered PACS export)."""
    names: set[str] = set()
    while len(names) < n:
        names.add(f"{int(rng.integers(0, 2**32)):08X}.dcm")
    ordered = sorted(names)
    return [ordered[i] for i in rng.permutation(n)]


def _base_dataset(
    *,
    sop_class: str,
    sop_instance: str,
    modality: str,
    phi: FakePHI,
    seed: int,
    study_time: str,
    study_date: str | None = None,
) -> Dataset:
    """Return a dataset with file meta, SOP common, patient, study and equipment modules filled.

    Study, series and content dates are ``study_date`` (``YYYYMMDD``), by default the date derived
    from ``seed``.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "ONCOFLOW_0_1"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    study_uid, _ = _study_uids(phi, seed)
    date = _study_date(seed) if study_date is None else study_date
    ds.StudyDate = date
    ds.SeriesDate = date
    ds.ContentDate = date
    ds.StudyTime = study_time
    ds.AccessionNumber = phi.accession_number
    ds.Modality = modality
    ds.Manufacturer = "OncoflowSim"
    ds.InstitutionName = phi.institution_name
    ds.ReferringPhysicianName = phi.referring_physician
    ds.StationName = "SIM01"
    ds.StudyDescription = "Oncology staging"
    ds.OperatorsName = phi.operator_name
    ds.ManufacturerModelName = "Virtual Scanner 1"
    ds.SoftwareVersions = "oncoflow-0.1"
    ds.PatientName = phi.patient_name
    ds.PatientID = phi.patient_id
    ds.PatientBirthDate = phi.patient_birth_date
    ds.PatientSex = "F"
    ds.StudyInstanceUID = study_uid
    ds.StudyID = "1"
    return ds


def _save(ds: Dataset, path: Path) -> None:
    """Write ``ds`` as a DICOM Part 10 file (preamble + file meta)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _geometry(image: sitk.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (origin (3,), spacing (3,), direction (3, 3) with axes as columns) of a 3D image."""
    if image.GetDimension() != 3:
        raise ValueError(f"expected a 3D image, got {image.GetDimension()}D")
    origin = np.asarray(image.GetOrigin(), dtype=float)
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    return origin, spacing, direction


def _add_image_plane(
    ds: Dataset,
    *,
    position: np.ndarray,
    direction: np.ndarray,
    spacing: np.ndarray,
    rows: int,
    columns: int,
    thickness: float,
) -> None:
    """Fill the image plane and image pixel description attributes of one slice."""
    ds.ImagePositionPatient = [_ds(v) for v in position]
    ds.ImageOrientationPatient = [_ds(v) for v in (*direction[:, 0], *direction[:, 1])]
    ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]
    ds.SliceThickness = _ds(thickness)
    normal = np.cross(direction[:, 0], direction[:, 1])
    ds.SliceLocation = _ds(float(np.dot(position, normal)))
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1


def _add_series(
    ds: Dataset, *, series_uid: str, series_number: int, instance: int, frame_uid: str
) -> None:
    """Fill the series, instance and frame of reference attributes of one slice."""
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = instance
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""


def _add_slice(
    ds: Dataset,
    *,
    series_uid: str,
    series_number: int,
    index: int,
    frame_uid: str,
    position: np.ndarray,
    direction: np.ndarray,
    spacing: np.ndarray,
    shape: tuple[int, int],
    thickness: float,
) -> None:
    """Series, instance (``index + 1``), frame of reference and image plane of one slice.

    ``shape`` is ``(rows, columns)``; every image writer (CT, PET, MR) fills a slice with it.
    """
    _add_series(
        ds,
        series_uid=series_uid,
        series_number=series_number,
        instance=index + 1,
        frame_uid=frame_uid,
    )
    _add_image_plane(
        ds,
        position=position,
        direction=direction,
        spacing=spacing,
        rows=shape[0],
        columns=shape[1],
        thickness=thickness,
    )
