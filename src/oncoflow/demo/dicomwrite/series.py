"""CT and PET image series: one file per slice, as a scanner exports them.

Stored integer values with a rescale (CT: ``HU = stored + RescaleIntercept``; PET:
``Bq/mL = stored * RescaleSlope`` with a slope that varies per slice), written in shuffled order
under non-sequential names.

Geometry follows the DICOM patient coordinate system (LPS, mm), which is also SimpleITK's:
``ImageOrientationPatient`` holds the first two columns of the image direction matrix,
``ImagePositionPatient`` the physical position of the first voxel of each slice, ``PixelSpacing`` is
``[row spacing (y), column spacing (x)]``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import CTImageStorage, PositronEmissionTomographyImageStorage

from oncoflow.demo.dicomwrite._dataset import (
    FakePHI,
    _add_slice,
    _base_dataset,
    _ds,
    _file_names,
    _geometry,
    _save,
    _study_date,
    _study_uids,
    _uid,
)

__all__ = ["write_ct_series", "write_pet_series"]

_CT_INTERCEPT = -1024.0
_PET_MAX_STORED = 32000


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
    study_date: str | None = None,
    series_number: int | None = None,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    contrast_agent: str | None = None,
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
        study_date: StudyDate / SeriesDate / ContentDate (``YYYYMMDD``); by default derived from
            ``seed``. The StudyInstanceUID stays that of ``seed``: give a second study another seed.
        series_number: SeriesNumber; by default drawn from ``seed`` (2 to 8).
        image_type: ImageType, e.g. ``("ORIGINAL", "PRIMARY", "LOCALIZER")`` for a scout.
        contrast_agent: When given, ContrastBolusAgent (and ContrastBolusRoute ``IV``) of an
            enhanced acquisition.

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
        positions = _tilt_positions(positions, direction, gantry_tilt_deg)
        hu = _resample_at(image, positions, direction, _CT_INTERCEPT)

    stored = np.clip(np.rint(hu - _CT_INTERCEPT), -32768, 32767).astype(np.int16)
    _, frame_uid = _study_uids(phi, seed)
    series_uid = _uid("series", seed, phi.patient_id, "CT", series_description, image.GetSize())
    rng = np.random.default_rng([int(seed), 0xC7])
    names = _file_names(rng, n_slices)
    paths = [out_dir / names[k] for k in range(n_slices)]
    drawn_number = 2 + int(rng.integers(0, 7))
    series_number = drawn_number if series_number is None else int(series_number)
    thickness = spacing[2] if slice_positions_mm is None else _median_step(positions)

    for k in rng.permutation(n_slices):
        ds = _base_dataset(
            sop_class=CTImageStorage,
            sop_instance=_uid("sop", series_uid, int(k)),
            modality="CT",
            phi=phi,
            seed=seed,
            study_time="101500.000",
            study_date=study_date,
        )
        _add_ct_acquisition(
            ds,
            series_description=series_description,
            gantry_tilt_deg=gantry_tilt_deg,
            field_of_view_mm=max(n_cols * spacing[0], n_rows * spacing[1]),
            image_type=image_type,
        )
        if contrast_agent is not None:
            ds.ContrastBolusAgent = contrast_agent
            ds.ContrastBolusRoute = "IV"
        _add_slice(
            ds,
            series_uid=series_uid,
            series_number=series_number,
            index=int(k),
            frame_uid=frame_uid,
            position=positions[k],
            direction=direction,
            spacing=spacing,
            shape=(n_rows, n_cols),
            thickness=thickness,
        )
        ds.RescaleIntercept = _ds(_CT_INTERCEPT)
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        ds.PixelData = stored[k].tobytes()
        _save(ds, paths[k])
    return paths


def _tilt_positions(positions: np.ndarray, direction: np.ndarray, tilt_deg: float) -> np.ndarray:
    """Shear slice positions like a tilted gantry: shift along y by ``(z_k - z_0) tan(tilt)``."""
    normal = direction[:, 2]
    along = (positions - positions[0]) @ normal
    shift = along * np.tan(np.deg2rad(tilt_deg))
    return positions + shift[:, None] * direction[:, 1][None, :]


def _add_ct_acquisition(
    ds: Dataset,
    *,
    series_description: str,
    gantry_tilt_deg: float,
    field_of_view_mm: float,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
) -> None:
    """Fill the CT series and acquisition attributes of one slice (times, scanner settings)."""
    ds.ImageType = list(image_type)
    ds.SeriesTime = "102000.000"
    ds.AcquisitionTime = "102000.000"
    ds.ContentTime = "102000.000"
    ds.SeriesDescription = series_description
    ds.BodyPartExamined = "CHEST"
    ds.ScanOptions = "HELICAL MODE"
    ds.KVP = "120"
    ds.DataCollectionDiameter = "500"
    ds.ReconstructionDiameter = _ds(field_of_view_mm)
    ds.GantryDetectorTilt = _ds(gantry_tilt_deg)
    ds.TableHeight = "160"
    ds.RotationDirection = "CW"
    ds.ExposureTime = "500"
    ds.XRayTubeCurrent = "200"
    ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = "HFS"


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
    study_date: str | None = None,
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
        study_date: StudyDate / SeriesDate / AcquisitionDate (``YYYYMMDD``); by default derived
            from ``seed`` (the StudyInstanceUID stays that of ``seed``).

    Returns:
        The written files, in slice order.
    """
    out_dir = Path(out_dir)
    origin, spacing, direction = _geometry(suv)
    n_cols, n_rows, n_slices = suv.GetSize()
    positions = _slice_positions(origin, spacing, direction, n_slices, None)
    dt, after_midnight = _uptake_time(injection_time, series_time)
    decayed_dose = injected_dose_bq * 2.0 ** (-dt / half_life_s)
    activity = sitk.GetArrayFromImage(suv).astype(np.float64) * decayed_dose / (weight_kg * 1000.0)

    _, frame_uid = _study_uids(phi, seed)
    series_uid = _uid("series", seed, phi.patient_id, "PT", "PET", suv.GetSize())
    rng = np.random.default_rng([int(seed), 0x9E7])
    names = _file_names(rng, n_slices)
    paths = [out_dir / names[k] for k in range(n_slices)]
    series_date = _study_date(seed) if study_date is None else study_date
    injection_date = _injection_date(series_date, after_midnight) if start_datetime else None
    omit = set(omit_tags)

    for k in rng.permutation(n_slices):
        stored, slope_text = _stored_pet_slice(activity[k])
        ds = _base_dataset(
            sop_class=PositronEmissionTomographyImageStorage,
            sop_instance=_uid("sop", series_uid, int(k)),
            modality="PT",
            phi=phi,
            seed=seed,
            study_time="101500.000",
            study_date=study_date,
        )
        _add_pet_acquisition(ds, series_time=series_time, weight_kg=weight_kg)
        _add_slice(
            ds,
            series_uid=series_uid,
            series_number=600,
            index=int(k),
            frame_uid=frame_uid,
            position=positions[k],
            direction=direction,
            spacing=spacing,
            shape=(n_rows, n_cols),
            thickness=spacing[2],
        )
        _add_pet_image(ds, slope_text=slope_text, n_slices=n_slices, index=int(k) + 1)
        item = _radiopharmaceutical(
            injection_time=injection_time,
            injection_date=injection_date,
            injected_dose_bq=injected_dose_bq,
            half_life_s=half_life_s,
        )
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


def _uptake_time(injection_time: str, series_time: str) -> tuple[float, bool]:
    """Return ``(dt, after_midnight)``, the seconds from injection to series start.

    A series time earlier in the day than the injection is taken to be on the next day.
    """
    dt = _seconds(series_time) - _seconds(injection_time)
    after_midnight = dt < 0
    if after_midnight:
        dt += 86400.0
    return dt, after_midnight


def _injection_date(series_date: str, after_midnight: bool) -> str:
    """Return the injection date ``YYYYMMDD``: the series date, or the day before it."""
    day = _dt.datetime.strptime(series_date, "%Y%m%d").date()
    if after_midnight:
        day -= _dt.timedelta(days=1)
    return day.strftime("%Y%m%d")


def _stored_pet_slice(activity: np.ndarray) -> tuple[np.ndarray, str]:
    """Return one slice as int16 and its RescaleSlope text (slice maximum / 32000)."""
    peak = float(np.max(np.abs(activity)))
    slope_text = _ds(peak / _PET_MAX_STORED if peak > 0 else 1.0)
    slope = float(slope_text)
    stored = np.clip(np.rint(activity / slope), -32768, 32767).astype(np.int16)
    return stored, slope_text


def _add_pet_acquisition(ds: Dataset, *, series_time: str, weight_kg: float) -> None:
    """Fill the PET series, acquisition and patient study attributes of one slice."""
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SeriesTime = series_time
    ds.AcquisitionTime = series_time
    ds.ContentTime = series_time
    ds.SeriesDescription = "PET WB AC"
    ds.BodyPartExamined = "WHOLEBODY"
    ds.PatientWeight = _ds(weight_kg)
    ds.PatientSize = "1.68"
    ds.PatientPosition = "FFS"


def _add_pet_image(ds: Dataset, *, slope_text: str, n_slices: int, index: int) -> None:
    """Fill the rescale and the PET series / image module attributes (BQML, decay to START)."""
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = slope_text
    ds.RescaleType = "BQML"
    ds.SeriesType = ["WHOLE BODY", "IMAGE"]
    ds.Units = "BQML"
    ds.CountsSource = "EMISSION"
    ds.CorrectedImage = ["DECY", "ATTN", "SCAT", "DTIM", "RAN", "NORM"]
    ds.DecayCorrection = "START"
    ds.RandomsCorrectionMethod = "DLYD"
    ds.AttenuationCorrectionMethod = "CT"
    ds.ReconstructionMethod = "OSEM"
    ds.NumberOfSlices = n_slices
    ds.ImageIndex = index
    ds.FrameReferenceTime = "0"
    ds.ActualFrameDuration = 180000
    ds.DecayFactor = "1"
    ds.DoseCalibrationFactor = "1"


def _radiopharmaceutical(
    *,
    injection_time: str,
    injection_date: str | None,
    injected_dose_bq: float,
    half_life_s: float,
) -> Dataset:
    """Return the RadiopharmaceuticalInformationSequence item (F-18 FDG).

    Args:
        injection_time: RadiopharmaceuticalStartTime (TM).
        injection_date: With it, RadiopharmaceuticalStartDateTime is also written.
        injected_dose_bq: RadionuclideTotalDose (Bq).
        half_life_s: RadionuclideHalfLife (s).
    """
    item = Dataset()
    item.Radiopharmaceutical = "Fluorodeoxyglucose"
    item.RadiopharmaceuticalStartTime = injection_time
    if injection_date is not None:
        item.RadiopharmaceuticalStartDateTime = injection_date + injection_time
    item.RadionuclideTotalDose = _ds(injected_dose_bq)
    item.RadionuclideHalfLife = _ds(half_life_s)
    item.RadionuclidePositronFraction = "0.9673"
    code = Dataset()
    code.CodeValue = "C-111A1"
    code.CodingSchemeDesignator = "SRT"
    code.CodeMeaning = "^18^Fluorine"
    item.RadionuclideCodeSequence = DicomSequence([code])
    return item
