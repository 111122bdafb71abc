"""Write realistic, standard-conformant DICOM (CT, PET, RTSTRUCT) from SimpleITK images.

Used by the demo generator and by test fixtures to produce "real-world-shaped" data: one file per
slice, written in shuffled order under non-sequential names, stored integer values with a
rescale (CT: ``HU = stored + RescaleIntercept``; PET: ``Bq/mL = stored * RescaleSlope`` with a slope
that varies per slice), deterministic UIDs for a ``seed``, and fake identifying values
(:class:`FakePHI`) in the patient / study headers so that tests can check that none of them leaks
into converted outputs.

Geometry follows the DICOM patient coordinate system (LPS, mm), which is also SimpleITK's:
``ImageOrientationPatient`` holds the first two columns of the image direction matrix,
``ImagePositionPatient`` the physical position of the first voxel of each slice, ``PixelSpacing`` is
``[row spacing (y), column spacing (x)]``.

UIDs are derived from ``seed`` and ``phi.patient_id`` only (plus modality / description for the
series), so a CT and a PET written with the same ``seed`` and ``phi`` share their StudyInstanceUID
and FrameOfReferenceUID, as a PET/CT acquisition does.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    PositronEmissionTomographyImageStorage,
    RTStructureSetStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

__all__ = ["FakePHI", "write_ct_series", "write_pet_series", "write_rtstruct"]

_CT_INTERCEPT = -1024.0
_PET_MAX_STORED = 32000
_STUDY_ROOT = "oncoflow-dicomwrite"
_DETACHED_STUDY_MANAGEMENT = "1.2.840.10008.3.1.2.3.1"


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
) -> Dataset:
    """Return a dataset with file meta, SOP common, patient, study and equipment modules filled."""
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
    date = _study_date(seed)
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


def _slice_positions(
    origin: np.ndarray,
    spacing: np.ndarray,
    direction: np.ndarray,
    n_slices: int,
    slice_positions_mm: Sequence[float] | None,
) -> np.ndarray:
    """Return the (n, 3) ImagePositionPatient of each slice (before any gantry-tilt shear)."""
    normal = direction[:, 2]
    if slice_positions_mm is None:
        return origin[None, :] + np.arange(n_slices)[:, None] * spacing[2] * normal[None, :]
    positions = np.asarray(slice_positions_mm, dtype=float)
    if positions.shape != (n_slices,):
        raise ValueError(
            f"slice_positions_mm has {positions.size} values but the image has {n_slices} slices"
        )
    offset = positions - float(np.dot(origin, normal))
    return origin[None, :] + offset[:, None] * normal[None, :]


def _resample_at(
    image: sitk.Image, positions: np.ndarray, direction: np.ndarray, default: float
) -> np.ndarray:
    """Sample ``image`` (linear) on the slice planes starting at ``positions``; (z, y, x) array."""
    size = image.GetSize()
    spacing = image.GetSpacing()
    out = np.empty((len(positions), size[1], size[0]), dtype=np.float64)
    for k, pos in enumerate(positions):
        ref = sitk.Image([size[0], size[1], 1], sitk.sitkFloat64)
        ref.SetSpacing(spacing)
        ref.SetOrigin(tuple(float(v) for v in pos))
        ref.SetDirection(tuple(direction.ravel()))
        res = sitk.Resample(
            sitk.Cast(image, sitk.sitkFloat64),
            ref,
            sitk.Transform(),
            sitk.sitkLinear,
            default,
            sitk.sitkFloat64,
        )
        out[k] = sitk.GetArrayFromImage(res)[0]
    return out


# --------------------------------------------------------------------------------------------------
# CT


def write_ct_series(
    image: sitk.Image,
    out_dir: Path,
    *,
    phi: FakePHI,
    seed: int = 0,
    series_description: str = "CT",
    gantry_tilt_deg: float = 0.0,
    slice_positions_mm: Sequence[float] | None = None,
) -> list[Path]:
    """Write a 3D CT image (HU) as a CT Image Storage series, one file per slice.

    Stored values are int16 with ``HU = stored * RescaleSlope + RescaleIntercept`` (slope 1,
    intercept -1024); HU are rounded to integers and clipped to what int16 can hold.

    Args:
        image: 3D image in Hounsfield units; its geometry (origin, spacing, direction) is written to
            ImagePositionPatient / PixelSpacing / ImageOrientationPatient.
        out_dir: Folder to create the files in (created if needed).
        phi: Fake identifying values for the patient / study headers.
        seed: Makes the UIDs, study date, file names and write order deterministic.
        series_description: SeriesDescription (also part of the SeriesInstanceUID entropy).
        gantry_tilt_deg: When not 0, writes GantryDetectorTilt and shears the slices like a real
            tilted acquisition: slice ``k`` at normal position ``z_k`` is shifted along the column
            (y) axis by ``(z_k - z_0) * tan(tilt)`` while ImageOrientationPatient stays unchanged.
            The pixel data are sampled from ``image`` at the sheared positions (linear, -1024 HU
            outside), so the physical content stays that of ``image``.
        slice_positions_mm: Overrides the slice positions along the slice normal (for axial
            images: the z coordinate, mm), one per slice, e.g. to build non-uniform spacing.
            The pixel data of slice ``k`` are ``image``'s slice ``k`` unchanged.

    Returns:
        The written files, in slice order (the files themselves are written in shuffled order under
        random names).
    """
    out_dir = Path(out_dir)
    origin, spacing, direction = _geometry(image)
    n_cols, n_rows, n_slices = image.GetSize()
    positions = _slice_positions(origin, spacing, direction, n_slices, slice_positions_mm)
    hu = sitk.GetArrayFromImage(image).astype(np.float64)
    if gantry_tilt_deg:
        normal = direction[:, 2]
        along = (positions - positions[0]) @ normal
        shift = along * np.tan(np.deg2rad(gantry_tilt_deg))
        positions = positions + shift[:, None] * direction[:, 1][None, :]
        hu = _resample_at(image, positions, direction, _CT_INTERCEPT)

    stored = np.clip(np.rint(hu - _CT_INTERCEPT), -32768, 32767).astype(np.int16)
    _, frame_uid = _study_uids(phi, seed)
    series_uid = _uid("series", seed, phi.patient_id, "CT", series_description, image.GetSize())
    rng = np.random.default_rng([int(seed), 0xC7])
    names = _file_names(rng, n_slices)
    paths = [out_dir / names[k] for k in range(n_slices)]
    series_number = 2 + int(rng.integers(0, 7))

    for k in rng.permutation(n_slices):
        sop_uid = _uid("sop", series_uid, int(k))
        ds = _base_dataset(
            sop_class=CTImageStorage,
            sop_instance=sop_uid,
            modality="CT",
            phi=phi,
            seed=seed,
            study_time="101500.000",
        )
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SeriesTime = "102000.000"
        ds.AcquisitionTime = "102000.000"
        ds.ContentTime = "102000.000"
        ds.SeriesDescription = series_description
        ds.BodyPartExamined = "CHEST"
        ds.ScanOptions = "HELICAL MODE"
        ds.KVP = "120"
        ds.DataCollectionDiameter = "500"
        ds.ReconstructionDiameter = _ds(max(n_cols * spacing[0], n_rows * spacing[1]))
        ds.GantryDetectorTilt = _ds(gantry_tilt_deg)
        ds.TableHeight = "160"
        ds.RotationDirection = "CW"
        ds.ExposureTime = "500"
        ds.XRayTubeCurrent = "200"
        ds.ConvolutionKernel = "STANDARD"
        ds.PatientPosition = "HFS"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = series_number
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = int(k) + 1
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        _add_image_plane(
            ds,
            position=positions[k],
            direction=direction,
            spacing=spacing,
            rows=n_rows,
            columns=n_cols,
            thickness=spacing[2] if slice_positions_mm is None else _median_step(positions),
        )
        ds.RescaleIntercept = _ds(_CT_INTERCEPT)
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        ds.PixelData = stored[k].tobytes()
        _save(ds, paths[k])
    return paths


def _median_step(positions: np.ndarray) -> float:
    """Return the median distance between consecutive slice positions (mm)."""
    if len(positions) < 2:
        return 1.0
    return float(np.median(np.linalg.norm(np.diff(positions, axis=0), axis=1)))


# --------------------------------------------------------------------------------------------------
# PET


def _seconds(tm: str) -> float:
    """Return seconds after midnight of a DICOM TM string ``HHMMSS[.FFFFFF]``."""
    tm = tm.strip()
    return int(tm[0:2]) * 3600 + int(tm[2:4]) * 60 + float(tm[4:] or 0)


def write_pet_series(
    suv: sitk.Image,
    out_dir: Path,
    *,
    phi: FakePHI,
    seed: int = 0,
    weight_kg: float = 75.0,
    injected_dose_bq: float = 3.7e8,
    half_life_s: float = 6586.2,
    injection_time: str = "093000.00",
    series_time: str = "103000.00",
    omit_tags: Sequence[str] = (),
    start_datetime: bool = False,
) -> list[Path]:
    """Write an SUVbw image as a PET Image Storage series storing activity concentration (Bq/mL).

    The activity written is the inverse of the SUVbw conversion:
    ``A [Bq/mL] = SUV * D * 2^(-dt / T1/2) / (W * 1000 g/kg)`` with ``D`` the injected dose (Bq),
    ``T1/2`` the half-life (s), ``W`` the weight (kg) and ``dt = SeriesTime -
    RadiopharmaceuticalStartTime`` (s; when the series time is earlier in the day than the injection
    the acquisition is taken to be after midnight, the next day). Images are decay corrected to
    the series start (``DecayCorrection = START``, ``Units = BQML``). Stored values are int16 with a
    per-slice ``RescaleSlope`` (slice maximum / 32000), as real scanners write them.

    Args:
        suv: 3D SUVbw image (g/mL); geometry written as for CT.
        out_dir: Folder to create the files in.
        phi: Fake identifying values.
        seed: Makes UIDs, file names and write order deterministic; use the CT's seed to share
            the study and frame of reference with it.
        weight_kg: PatientWeight (kg).
        injected_dose_bq: RadionuclideTotalDose (Bq).
        half_life_s: RadionuclideHalfLife (s); 6586.2 s is F-18.
        injection_time: RadiopharmaceuticalStartTime (TM).
        series_time: SeriesTime and AcquisitionTime (TM).
        omit_tags: Keywords of attributes to leave out (in the dataset or in the
            RadiopharmaceuticalInformationSequence item), e.g. ``"PatientWeight"``,
            ``"RadionuclideTotalDose"``, ``"RadiopharmaceuticalStartTime"``, ``"Units"``, to build
            broken fixtures.
        start_datetime: Also write RadiopharmaceuticalStartDateTime (DT, with the injection date,
            the day before the series date when the injection was before midnight).

    Returns:
        The written files, in slice order.
    """
    out_dir = Path(out_dir)
    origin, spacing, direction = _geometry(suv)
    n_cols, n_rows, n_slices = suv.GetSize()
    positions = _slice_positions(origin, spacing, direction, n_slices, None)

    dt = _seconds(series_time) - _seconds(injection_time)
    after_midnight = dt < 0
    if after_midnight:
        dt += 86400.0
    decayed_dose = injected_dose_bq * 2.0 ** (-dt / half_life_s)
    activity = sitk.GetArrayFromImage(suv).astype(np.float64) * decayed_dose / (weight_kg * 1000.0)

    _, frame_uid = _study_uids(phi, seed)
    series_uid = _uid("series", seed, phi.patient_id, "PT", "PET", suv.GetSize())
    rng = np.random.default_rng([int(seed), 0x9E7])
    names = _file_names(rng, n_slices)
    paths = [out_dir / names[k] for k in range(n_slices)]
    series_date = _study_date(seed)
    omit = set(omit_tags)

    for k in rng.permutation(n_slices):
        peak = float(np.max(np.abs(activity[k])))
        slope_text = _ds(peak / _PET_MAX_STORED if peak > 0 else 1.0)
        slope = float(slope_text)
        stored = np.clip(np.rint(activity[k] / slope), -32768, 32767).astype(np.int16)

        ds = _base_dataset(
            sop_class=PositronEmissionTomographyImageStorage,
            sop_instance=_uid("sop", series_uid, int(k)),
            modality="PT",
            phi=phi,
            seed=seed,
            study_time="101500.000",
        )
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.SeriesTime = series_time
        ds.AcquisitionTime = series_time
        ds.ContentTime = series_time
        ds.SeriesDescription = "PET WB AC"
        ds.BodyPartExamined = "WHOLEBODY"
        ds.PatientWeight = _ds(weight_kg)
        ds.PatientSize = "1.68"
        ds.PatientPosition = "FFS"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 600
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = int(k) + 1
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        _add_image_plane(
            ds,
            position=positions[k],
            direction=direction,
            spacing=spacing,
            rows=n_rows,
            columns=n_cols,
            thickness=spacing[2],
        )
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = slope_text
        ds.RescaleType = "BQML"
        # PET series / isotope / image modules
        ds.SeriesType = ["WHOLE BODY", "IMAGE"]
        ds.Units = "BQML"
        ds.CountsSource = "EMISSION"
        ds.CorrectedImage = ["DECY", "ATTN", "SCAT", "DTIM", "RAN", "NORM"]
        ds.DecayCorrection = "START"
        ds.RandomsCorrectionMethod = "DLYD"
        ds.AttenuationCorrectionMethod = "CT"
        ds.ReconstructionMethod = "OSEM"
        ds.NumberOfSlices = n_slices
        ds.ImageIndex = int(k) + 1
        ds.FrameReferenceTime = "0"
        ds.ActualFrameDuration = 180000
        ds.DecayFactor = "1"
        ds.DoseCalibrationFactor = "1"
        item = Dataset()
        item.Radiopharmaceutical = "Fluorodeoxyglucose"
        item.RadiopharmaceuticalStartTime = injection_time
        if start_datetime:
            day = _dt.datetime.strptime(series_date, "%Y%m%d").date()
            if after_midnight:
                day -= _dt.timedelta(days=1)
            item.RadiopharmaceuticalStartDateTime = day.strftime("%Y%m%d") + injection_time
        item.RadionuclideTotalDose = _ds(injected_dose_bq)
        item.RadionuclideHalfLife = _ds(half_life_s)
        item.RadionuclidePositronFraction = "0.9673"
        code = Dataset()
        code.CodeValue = "C-111A1"
        code.CodingSchemeDesignator = "SRT"
        code.CodeMeaning = "^18^Fluorine"
        item.RadionuclideCodeSequence = DicomSequence([code])
        ds.RadiopharmaceuticalInformationSequence = DicomSequence([item])
        ds.AcquisitionDate = series_date
        for keyword in omit:
            if keyword in item:
                delattr(item, keyword)
            if keyword in ds:
                delattr(ds, keyword)
        ds.PixelData = stored.tobytes()
        _save(ds, paths[k])
    return paths


# --------------------------------------------------------------------------------------------------
# RTSTRUCT


_ROI_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0),
    (0, 200, 0),
    (0, 0, 255),
    (255, 200, 0),
    (200, 0, 255),
    (0, 200, 255),
)


def _interpreted_type(name: str) -> str:
    """Guess RTROIInterpretedType from an ROI name (GTV for lesions, ORGAN otherwise)."""
    upper = name.upper()
    if any(word in upper for word in ("GTV", "LESION", "TUMOR", "TUMOUR", "NODULE")):
        return "GTV"
    return "ORGAN"


def write_rtstruct(
    labels: sitk.Image,
    series_dir: Path,
    out_file: Path,
    *,
    roi_names: Mapping[int, str],
    phi: FakePHI,
    seed: int = 0,
) -> Path:
    """Write an RT Structure Set with one ROI per label, traced from a label map.

    Each label's mask is traced per slice with marching squares at level 0.5
    (``skimage.measure.find_contours`` on the zero-padded slice), which gives one closed
    polygon per island and per hole; the polygon vertices (continuous voxel indices) are mapped to
    patient coordinates (mm) with ``labels``' geometry and written as CLOSED_PLANAR contours. Each
    contour references the image of ``series_dir`` whose position along the slice normal is
    nearest; the structure set references the series' Study / Series / FrameOfReference UIDs.
    Filling the contours with the even-odd rule recovers the label map exactly.

    Args:
        labels: Integer label map on the grid of the series in ``series_dir``.
        series_dir: Folder of the referenced image series (headers are read from it).
        out_file: RTSTRUCT file to write.
        roi_names: Label value -> ROI name; ROINumber follows the order of this mapping (1, 2, ...).
        phi: Fake identifying values.
        seed: Makes the structure set's UIDs deterministic.

    Returns:
        ``out_file``.
    """
    from skimage.measure import find_contours  # local: heavy import, only needed here

    series = _read_series_headers(Path(series_dir))
    first = series[0]
    frame_uid = str(first.FrameOfReferenceUID)
    row = np.asarray([float(v) for v in first.ImageOrientationPatient[:3]])
    col = np.asarray([float(v) for v in first.ImageOrientationPatient[3:]])
    normal = np.cross(row, col)
    slice_pos = np.asarray(
        [np.dot([float(v) for v in ds.ImagePositionPatient], normal) for ds in series]
    )

    origin, spacing, direction = _geometry(labels)
    arr = sitk.GetArrayFromImage(labels)

    sop_uid = _uid("rtstruct", seed, phi.patient_id, str(first.SeriesInstanceUID))
    ds = _base_dataset(
        sop_class=RTStructureSetStorage,
        sop_instance=sop_uid,
        modality="RTSTRUCT",
        phi=phi,
        seed=seed,
        study_time=str(first.get("StudyTime", "101500.000")),
    )
    ds.StudyInstanceUID = str(first.StudyInstanceUID)
    ds.StudyDate = str(first.get("StudyDate", ds.StudyDate))
    ds.SeriesInstanceUID = _uid("rtstruct-series", seed, phi.patient_id, sop_uid)
    ds.SeriesNumber = 900
    ds.SeriesDescription = "RTSTRUCT"
    ds.InstanceNumber = 1
    ds.StructureSetLabel = "Contours"
    ds.StructureSetName = "Contours"
    ds.StructureSetDate = ds.StudyDate
    ds.StructureSetTime = "120000.000"
    ds.SeriesTime = "120000.000"

    contour_images = DicomSequence()
    for img in series:
        ref = Dataset()
        ref.ReferencedSOPClassUID = str(img.SOPClassUID)
        ref.ReferencedSOPInstanceUID = str(img.SOPInstanceUID)
        contour_images.append(ref)
    rt_series = Dataset()
    rt_series.SeriesInstanceUID = str(first.SeriesInstanceUID)
    rt_series.ContourImageSequence = contour_images
    rt_study = Dataset()
    rt_study.ReferencedSOPClassUID = _DETACHED_STUDY_MANAGEMENT
    rt_study.ReferencedSOPInstanceUID = str(first.StudyInstanceUID)
    rt_study.RTReferencedSeriesSequence = DicomSequence([rt_series])
    frame = Dataset()
    frame.FrameOfReferenceUID = frame_uid
    frame.RTReferencedStudySequence = DicomSequence([rt_study])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame])

    roi_seq = DicomSequence()
    contour_seq = DicomSequence()
    obs_seq = DicomSequence()
    for number, (value, name) in enumerate(roi_names.items(), start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = frame_uid
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = "MANUAL"
        roi_seq.append(roi)

        contours = DicomSequence()
        for k in range(arr.shape[0]):
            mask = arr[k] == value
            if not mask.any():
                continue
            padded = np.pad(mask.astype(np.float64), 1)
            z_pos = float(np.dot(origin + direction @ (spacing * np.array([0, 0, k])), normal))
            nearest = int(np.argmin(np.abs(slice_pos - z_pos)))
            for poly in find_contours(padded, 0.5):
                poly = poly[:-1] - 1.0  # closed: drop the repeated vertex; undo the padding
                index = np.column_stack([poly[:, 1], poly[:, 0], np.full(len(poly), k)])
                points = origin[None, :] + (index * spacing[None, :]) @ direction.T
                item = Dataset()
                img_ref = Dataset()
                img_ref.ReferencedSOPClassUID = str(series[nearest].SOPClassUID)
                img_ref.ReferencedSOPInstanceUID = str(series[nearest].SOPInstanceUID)
                item.ContourImageSequence = DicomSequence([img_ref])
                item.ContourGeometricType = "CLOSED_PLANAR"
                item.NumberOfContourPoints = len(points)
                item.ContourData = [f"{v:.4f}" for v in points.ravel()]
                contours.append(item)
        roi_contour = Dataset()
        roi_contour.ROIDisplayColor = list(_ROI_COLOURS[(number - 1) % len(_ROI_COLOURS)])
        roi_contour.ReferencedROINumber = number
        roi_contour.ContourSequence = contours
        contour_seq.append(roi_contour)

        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = _interpreted_type(name)
        obs.ROIInterpreter = ""
        obs_seq.append(obs)
    ds.StructureSetROISequence = roi_seq
    ds.ROIContourSequence = contour_seq
    ds.RTROIObservationsSequence = obs_seq
    ds.ApprovalStatus = "UNAPPROVED"

    out_file = Path(out_file)
    _save(ds, out_file)
    return out_file


def _read_series_headers(series_dir: Path) -> list[Dataset]:
    """Read the image headers of one series folder, sorted along the slice normal."""
    headers = []
    for path in sorted(p for p in series_dir.iterdir() if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:
            continue
        if "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds:
            headers.append(ds)
    if not headers:
        raise ValueError(f"{series_dir}: no DICOM image files")
    iop = [float(v) for v in headers[0].ImageOrientationPatient]
    normal = np.cross(iop[:3], iop[3:])
    headers.sort(key=lambda d: float(np.dot([float(v) for v in d.ImagePositionPatient], normal)))
    return headers
