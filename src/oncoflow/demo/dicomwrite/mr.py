"""MR image series: one file per slice with the acquisition tags of a clinical sequence.

The sequences are those a routine oncology MR protocol holds: ``T1`` (spin echo), ``T2`` (turbo
spin echo), ``T1C`` (the T1 after a gadolinium bolus: ContrastBolusAgent written), ``FLAIR``
(turbo inversion recovery: InversionTime written) and ``DWI`` (echo planar diffusion, b = 1000
trace). Each has realistic ScanningSequence, SequenceVariant, SequenceName, RepetitionTime,
EchoTime, FlipAngle, EchoTrainLength and MRAcquisitionType values.

Stored values are the image's values rounded and clipped to 0..4095 (unsigned, 12 bits stored in
16, no rescale, as most MR scanners write them). Geometry as for CT (:mod:`.series`). The series
shares the StudyInstanceUID of a CT written with the same ``seed`` and ``phi``; MR series of one
``seed`` share their own FrameOfReferenceUID (one session on the MR scanner).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.uid import MRImageStorage

from oncoflow.demo.dicomwrite._dataset import (
    FakePHI,
    _add_slice,
    _base_dataset,
    _ds,
    _file_names,
    _geometry,
    _save,
    _uid,
)
from oncoflow.demo.dicomwrite.series import _slice_positions

__all__ = ["MR_SEQUENCES", "write_mr_series"]

_MAX_STORED = 4095
_LARMOR_MHZ_PER_T = 42.577


@dataclass(frozen=True)
class _Sequence:
    """Acquisition parameters of one clinical MR sequence (times in ms, angle in degrees)."""

    scanning: tuple[str, ...]
    variant: tuple[str, ...]
    name: str
    tr: float
    te: float
    flip: float
    echo_train: int = 1
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "M", "ND", "NORM")
    ti: float | None = None
    contrast: bool = False
    b_value: float | None = None


_T1 = _Sequence(("SE",), ("SP", "OSP"), "*se2d1", 550.0, 12.0, 90.0)
_SEQUENCES: dict[str, _Sequence] = {
    "T1": _T1,
    "T1C": replace(_T1, contrast=True),
    "T2": _Sequence(("SE",), ("SK", "SP", "OSP"), "*tse2d1_17", 4200.0, 98.0, 150.0, echo_train=17),
    "FLAIR": _Sequence(
        ("SE", "IR"), ("SK", "SP", "MP", "OSP"), "*tir2d1_16", 9000.0, 89.0, 150.0, 16, ti=2500.0
    ),
    "DWI": _Sequence(
        ("EP",),
        ("SK", "SP"),
        "*ep_b1000t",
        5200.0,
        72.0,
        90.0,
        image_type=("DERIVED", "PRIMARY", "DIFFUSION", "TRACEW", "ND", "NORM"),
        b_value=1000.0,
    ),
}
_SERIES_NUMBERS = {"T1": 3, "T2": 4, "FLAIR": 5, "DWI": 6, "T1C": 9}

MR_SEQUENCES: tuple[str, ...] = tuple(_SEQUENCES)
"""The sequences :func:`write_mr_series` knows."""

CONTRAST_AGENT = "Gadobutrol (Gadovist)"
"""ContrastBolusAgent of the ``T1C`` sequence."""


def write_mr_series(
    image: sitk.Image,
    out_dir: Path,
    *,
    phi: FakePHI,
    seed: int,
    sequence: str,
    series_description: str,
    study_date: str | None = None,
    series_number: int | None = None,
    protocol_name: str | None = None,
    field_strength_t: float = 1.5,
) -> Path:
    """Write a 3D MR image as an MR Image Storage series, one file per slice.

    Args:
        image: 3D image (arbitrary signal units, 0..4095 after rounding); its geometry is written
            to ImagePositionPatient / PixelSpacing / ImageOrientationPatient.
        out_dir: Folder to create the files in (created if needed); other series may share it.
        phi: Fake identifying values for the patient / study headers.
        seed: Makes the study and frame of reference UIDs, the file names and the write order
            deterministic (the study is that of a CT or PET written with the same ``seed``).
        sequence: One of :data:`MR_SEQUENCES` (``T1``, ``T2``, ``T1C``, ``FLAIR``, ``DWI``).
        series_description: SeriesDescription, e.g. ``"t2_tse_tra"``.
        study_date: StudyDate / SeriesDate / ContentDate (``YYYYMMDD``); by default derived from
            ``seed``.
        series_number: SeriesNumber; by default one per sequence (T1 3, T2 4, FLAIR 5, DWI 6,
            T1C 9). Two series of one sequence in one study need different numbers or
            descriptions (both go into the SeriesInstanceUID).
        protocol_name: ProtocolName; by default ``series_description``.
        field_strength_t: MagneticFieldStrength (T); ImagingFrequency follows (1H).

    Returns:
        ``out_dir``.

    Raises:
        ValueError: Unknown ``sequence``.
    """
    if sequence not in _SEQUENCES:
        raise ValueError(f"unknown MR sequence {sequence!r}; known: {', '.join(MR_SEQUENCES)}")
    params = _SEQUENCES[sequence]
    number = _SERIES_NUMBERS[sequence] if series_number is None else int(series_number)
    out_dir = Path(out_dir)
    origin, spacing, direction = _geometry(image)
    n_cols, n_rows, n_slices = image.GetSize()
    positions = _slice_positions(origin, spacing, direction, n_slices, None)
    signal = sitk.GetArrayFromImage(image).astype(np.float64)
    stored = np.clip(np.rint(signal), 0, _MAX_STORED).astype(np.uint16)

    frame_uid = _uid("frame-of-reference", seed, phi.patient_id, "MR")
    series_uid = _uid(
        "series", seed, phi.patient_id, "MR", sequence, series_description, number, image.GetSize()
    )
    rng = np.random.default_rng([int(seed), 0x3E, zlib.crc32(series_uid.encode())])
    names = _file_names(rng, n_slices)
    series_time = _clock(10 * 3600 + 20 * 60 + 240 * number)
    window = _window(stored)

    for k in rng.permutation(n_slices):
        ds = _base_dataset(
            sop_class=MRImageStorage,
            sop_instance=_uid("sop", series_uid, int(k)),
            modality="MR",
            phi=phi,
            seed=seed,
            study_time="101500.000",
            study_date=study_date,
        )
        ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = series_time
        ds.SeriesDescription = series_description
        ds.ProtocolName = series_description if protocol_name is None else protocol_name
        _add_mr_acquisition(ds, params, field_strength_t=field_strength_t)
        _add_slice(
            ds,
            series_uid=series_uid,
            series_number=number,
            index=int(k),
            frame_uid=frame_uid,
            position=positions[k],
            direction=direction,
            spacing=spacing,
            shape=(n_rows, n_cols),
            thickness=spacing[2],
        )
        ds.SpacingBetweenSlices = _ds(spacing[2])
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.WindowCenter, ds.WindowWidth = window
        ds.PixelData = stored[k].tobytes()
        _save(ds, out_dir / names[k])
    return out_dir


def _add_mr_acquisition(ds: Dataset, params: _Sequence, *, field_strength_t: float) -> None:
    """Fill the MR image module and the acquisition attributes of one slice."""
    ds.ImageType = list(params.image_type)
    ds.ScanningSequence = list(params.scanning)
    ds.SequenceVariant = list(params.variant)
    ds.ScanOptions = ["PFP", "FS"] if params.b_value is not None else "PFP"
    ds.MRAcquisitionType = "2D"
    ds.SequenceName = params.name
    ds.AngioFlag = "N"
    ds.RepetitionTime = _ds(params.tr)
    ds.EchoTime = _ds(params.te)
    if params.ti is not None:
        ds.InversionTime = _ds(params.ti)
    ds.NumberOfAverages = "1"
    ds.ImagingFrequency = _ds(round(_LARMOR_MHZ_PER_T * field_strength_t, 6))
    ds.ImagedNucleus = "1H"
    ds.EchoNumbers = "1"
    ds.MagneticFieldStrength = _ds(field_strength_t)
    ds.EchoTrainLength = params.echo_train
    ds.PercentSampling = "100"
    ds.PercentPhaseFieldOfView = "100"
    ds.PixelBandwidth = "130" if params.b_value is None else "1502"
    ds.ReceiveCoilName = "Body"
    ds.TransmitCoilName = "Body"
    ds.FlipAngle = _ds(params.flip)
    ds.PatientPosition = "HFS"
    ds.BodyPartExamined = "ABDOMEN"
    if params.b_value is not None:
        ds.DiffusionBValue = float(params.b_value)
        ds.DiffusionDirectionality = "ISOTROPIC"
    if params.contrast:
        ds.ContrastBolusAgent = CONTRAST_AGENT
        ds.ContrastBolusRoute = "IV"
        ds.ContrastBolusVolume = "7.5"


def _clock(seconds: int) -> str:
    """Return a DICOM TM ``HHMMSS.000`` for ``seconds`` after midnight (within one day)."""
    seconds = int(seconds) % 86400
    return f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}.000"


def _window(stored: np.ndarray) -> tuple[str, str]:
    """Return (WindowCenter, WindowWidth) covering the stored values' 1st to 99th percentile."""
    low, high = np.percentile(stored, [1.0, 99.0]) if stored.size else (0.0, 1.0)
    width = max(float(high - low), 1.0)
    return _ds(round(low + width / 2.0)), _ds(round(width))
