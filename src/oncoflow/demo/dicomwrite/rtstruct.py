"""RT Structure Sets traced from a label map, referencing an image series written beside them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import RTStructureSetStorage

from oncoflow.demo.dicomwrite._dataset import FakePHI, _base_dataset, _geometry, _save, _uid

__all__ = ["write_rtstruct"]

_DETACHED_STUDY_MANAGEMENT = "1.2.840.10008.3.1.2.3.1"


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
    series = _read_series_headers(Path(series_dir))
    first = series[0]
    frame_uid = str(first.FrameOfReferenceUID)
    row = np.asarray([float(v) for v in first.ImageOrientationPatient[:3]])
    col = np.asarray([float(v) for v in first.ImageOrientationPatient[3:]])
    normal = np.cross(row, col)
    slice_pos = np.asarray(
        [np.dot([float(v) for v in ds.ImagePositionPatient], normal) for ds in series]
    )
    arr = sitk.GetArrayFromImage(labels)

    ds = _structure_set(first, phi=phi, seed=seed)
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([_referenced_frame(series)])
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

        roi_contour = Dataset()
        roi_contour.ROIDisplayColor = list(_ROI_COLOURS[(number - 1) % len(_ROI_COLOURS)])
        roi_contour.ReferencedROINumber = number
        roi_contour.ContourSequence = _trace(arr == value, labels, series, normal, slice_pos)
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


def _structure_set(first: Dataset, *, phi: FakePHI, seed: int) -> Dataset:
    """Return the structure set's dataset with its study, series and structure set attributes.

    Args:
        first: Header of the first image of the referenced series (study UID, date and time).
        phi: Fake identifying values.
        seed: Makes the UIDs deterministic.
    """
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
    return ds


def _image_reference(image: Dataset) -> Dataset:
    """Return a reference (SOP class and instance UIDs) to one image of the series."""
    ref = Dataset()
    ref.ReferencedSOPClassUID = str(image.SOPClassUID)
    ref.ReferencedSOPInstanceUID = str(image.SOPInstanceUID)
    return ref


def _referenced_frame(series: list[Dataset]) -> Dataset:
    """Return the ReferencedFrameOfReferenceSequence item: frame -> study -> series -> images."""
    first = series[0]
    rt_series = Dataset()
    rt_series.SeriesInstanceUID = str(first.SeriesInstanceUID)
    rt_series.ContourImageSequence = DicomSequence([_image_reference(img) for img in series])
    rt_study = Dataset()
    rt_study.ReferencedSOPClassUID = _DETACHED_STUDY_MANAGEMENT
    rt_study.ReferencedSOPInstanceUID = str(first.StudyInstanceUID)
    rt_study.RTReferencedSeriesSequence = DicomSequence([rt_series])
    frame = Dataset()
    frame.FrameOfReferenceUID = str(first.FrameOfReferenceUID)
    frame.RTReferencedStudySequence = DicomSequence([rt_study])
    return frame


def _trace(
    mask: np.ndarray,
    labels: sitk.Image,
    series: list[Dataset],
    normal: np.ndarray,
    slice_pos: np.ndarray,
) -> DicomSequence:
    """Trace one ROI's mask into CLOSED_PLANAR contours, slice by slice.

    Args:
        mask: ``(z, y, x)`` bool mask of the ROI on the grid of ``labels``.
        labels: The label map (its geometry maps voxel indices to patient coordinates).
        series: The referenced image headers, sorted along the slice normal.
        normal: The slice normal of the series.
        slice_pos: Position of each image of ``series`` along ``normal`` (mm).

    Returns:
        The ContourSequence: one item per island and per hole of each slice, each referencing
        the image nearest to its slice.
    """
    from skimage.measure import find_contours  # local: heavy import, only needed here

    origin, spacing, direction = _geometry(labels)
    contours = DicomSequence()
    for k in range(mask.shape[0]):
        if not mask[k].any():
            continue
        padded = np.pad(mask[k].astype(np.float64), 1)
        z_pos = float(np.dot(origin + direction @ (spacing * np.array([0, 0, k])), normal))
        nearest = int(np.argmin(np.abs(slice_pos - z_pos)))
        for poly in find_contours(padded, 0.5):
            poly = poly[:-1] - 1.0  # closed: drop the repeated vertex; undo the padding
            index = np.column_stack([poly[:, 1], poly[:, 0], np.full(len(poly), k)])
            points = origin[None, :] + (index * spacing[None, :]) @ direction.T
            item = Dataset()
            item.ContourImageSequence = DicomSequence([_image_reference(series[nearest])])
            item.ContourGeometricType = "CLOSED_PLANAR"
            item.NumberOfContourPoints = len(points)
            item.ContourData = [f"{v:.4f}" for v in points.ravel()]
            contours.append(item)
    return contours


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
