"""Radiomics features of one ROI with pyradiomics, settings only from a versioned params YAML.

The extraction is a plain :class:`radiomics.featureextractor.RadiomicsFeatureExtractor` call on
the image and mask as read by SimpleITK, with the settings of a params file from
``params/radiomics/`` (``ct_default_v1.yaml``, ``net_seed002_v1.yaml``); nothing is overridden
except the ROI ``label``. The result therefore equals a direct pyradiomics call with the same
file, bit for bit. Around that call oncoflow adds:

* a geometry check of image against mask (size exact; spacing and origin within 1e-3 mm,
  direction within 1e-6) that fails with one line naming both files. pyradiomics'
  ``geometryTolerance`` / ``correctMask`` are never used; note that pyradiomics itself would
  silently resample the image onto the mask grid whenever resampling is on, whatever the
  mismatch. A mask within tolerance gets the image geometry copied (float32 header rounding);
* a check that the label is present in the mask;
* a tidy long table (one row per feature) with the settings hash (``sha256(params bytes)[:16]``)
  and the pyradiomics version, so features computed with different settings never get mixed;
* the ``diagnostics_*`` entries of pyradiomics kept apart (provenance, not features).

The demo images have 4-5.6 mm voxels. Both params files produce every image type on them: the
default file resamples to 1 mm before filtering (so LoG sigma 1-3 mm is well defined) and the
seed-002 file resamples in-plane to 1 mm and keeps the 4-5 mm slices, which pyradiomics accepts
for LoG as long as the cropped ROI has at least ``ceil(sigma / spacing) + 1`` voxels per axis.
No demo-specific params file is needed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from oncoflow.errors import FeatureError

log = logging.getLogger(__name__)

FEATURE_COLUMNS: tuple[str, ...] = (
    "feature",
    "value",
    "image_type",
    "feature_class",
    "label",
    "settings_hash",
    "params_file",
    "pyradiomics_version",
)
"""Columns of the tidy table returned by :func:`extract_radiomics`, in this order."""

SPACING_TOLERANCE_MM = 1e-3
"""Largest accepted difference of voxel spacing and origin between image and mask (mm)."""

DIRECTION_TOLERANCE = 1e-6
"""Largest accepted difference of a direction-cosine entry between image and mask."""


@dataclass(frozen=True)
class RadiomicsResult:
    """Features of one ROI plus what pyradiomics reported about the extraction.

    Attributes:
        features: Tidy table with :data:`FEATURE_COLUMNS`, one row per feature.
        diagnostics: The ``diagnostics_*`` entries of pyradiomics (versions, settings, image and
            mask statistics), as JSON-serialisable values.
    """

    features: pd.DataFrame
    diagnostics: dict[str, Any] = field(default_factory=dict)


def quiet_pyradiomics(*, verbose: bool = False) -> None:
    """Limit pyradiomics' logging to errors (or INFO with ``verbose``); for command-line use.

    pyradiomics logs every filter and feature class at INFO and repeats some warnings for each
    image type (e.g. "GLCM is symmetrical ..."), both through its own stderr handler and through
    the root logger. Feature values are unaffected.
    """
    import radiomics

    level = logging.INFO if verbose else logging.ERROR
    radiomics.setVerbosity(level)
    logging.getLogger("radiomics").setLevel(level)
    logging.getLogger("pykwalify").setLevel(max(level, logging.WARNING))


def settings_hash(params: Path) -> str:
    """Return the settings hash of a params file: ``sha256(file bytes)``, first 16 hex digits."""
    return hashlib.sha256(Path(params).read_bytes()).hexdigest()[:16]


def pyradiomics_version() -> str:
    """Return the installed pyradiomics version string (e.g. ``"v3.1.4"``)."""
    import radiomics

    return str(radiomics.__version__)


def check_geometry(
    image: sitk.Image,
    mask: sitk.Image,
    *,
    image_path: str | Path,
    mask_path: str | Path,
) -> None:
    """Raise :class:`FeatureError` unless ``mask`` lies on the voxel grid of ``image``.

    Size must be identical; spacing and origin may differ by at most
    :data:`SPACING_TOLERANCE_MM` mm per axis, direction cosines by :data:`DIRECTION_TOLERANCE`.

    Args:
        image: The intensity image.
        mask: The label map.
        image_path: Image file, named in the message.
        mask_path: Mask file, named in the message.

    Raises:
        FeatureError: One line naming both files and every geometry property that differs.
    """
    problems: list[str] = []
    if image.GetDimension() != mask.GetDimension():
        problems.append(f"dimension {image.GetDimension()} vs {mask.GetDimension()}")
    else:
        if image.GetSize() != mask.GetSize():
            problems.append(f"size {image.GetSize()} vs {mask.GetSize()}")
        for name, a, b, tol in (
            ("spacing", image.GetSpacing(), mask.GetSpacing(), SPACING_TOLERANCE_MM),
            ("origin", image.GetOrigin(), mask.GetOrigin(), SPACING_TOLERANCE_MM),
            ("direction", image.GetDirection(), mask.GetDirection(), DIRECTION_TOLERANCE),
        ):
            if np.max(np.abs(np.subtract(a, b))) > tol:
                problems.append(f"{name} {_fmt(a)} vs {_fmt(b)}")
    if problems:
        raise FeatureError(
            f"{image_path}: mask {mask_path} is not on the image grid: {'; '.join(problems)}"
            " (resample the mask onto the image first)"
        )


def align_mask(
    image: sitk.Image,
    mask: sitk.Image,
    *,
    image_path: str | Path,
    mask_path: str | Path,
) -> sitk.Image:
    """Return ``mask`` on the grid of ``image`` after :func:`check_geometry`.

    A mask within the tolerances of :func:`check_geometry` but not bit-identical in geometry
    (typically float32 rounding of a NIfTI header, < 1e-3 mm) gets the image's spacing, origin
    and direction copied over (same voxels, no interpolation; a warning is logged). Otherwise
    pyradiomics would reject it without resampling (SimpleITK's tolerance is 1e-6 x spacing)
    and silently resample the image onto the mask grid with resampling.
    """
    check_geometry(image, mask, image_path=image_path, mask_path=mask_path)
    same = (
        image.GetSpacing() == mask.GetSpacing()
        and image.GetOrigin() == mask.GetOrigin()
        and image.GetDirection() == mask.GetDirection()
    )
    if same:
        return mask
    log.warning(
        "%s: geometry of mask %s differs from the image by < %g mm; image geometry copied",
        image_path,
        mask_path,
        SPACING_TOLERANCE_MM,
    )
    aligned = sitk.Image(mask)
    aligned.CopyInformation(image)
    return aligned


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def read_image(path: Path, *, what: str) -> sitk.Image:
    """Read an image with SimpleITK; a missing or unreadable file raises :class:`FeatureError`."""
    path = Path(path)
    if not path.is_file():
        raise FeatureError(f"{path}: {what} file does not exist")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FeatureError(f"{path}: cannot read {what}: {first}") from exc


def _check_label(mask: sitk.Image, label: int, *, mask_path: Path, image_path: Path) -> int:
    """Return the voxel count of ``label`` in ``mask``; raise if it is absent."""
    counts = np.bincount(sitk.GetArrayViewFromImage(mask).ravel().astype(np.int64, copy=False))
    present = [int(v) for v in np.flatnonzero(counts)]
    n = int(counts[label]) if 0 <= label < counts.size else 0
    if n == 0:
        raise FeatureError(
            f"{mask_path}: label {label} is empty (labels present: {present}); "
            f"no radiomics for image {image_path}"
        )
    return n


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def run_extraction(image: Path, mask: Path, *, params: Path, label: int = 1) -> RadiomicsResult:
    """Extract the features of one ROI and keep pyradiomics' diagnostics apart.

    Args:
        image: Intensity image (NIfTI or anything SimpleITK reads).
        mask: Label map on the same voxel grid.
        params: pyradiomics params YAML (e.g. ``params/radiomics/ct_default_v1.yaml``).
        label: ROI label in the mask; overrides the ``label`` setting of the params file.

    Returns:
        The tidy feature table and the diagnostics.

    Raises:
        FeatureError: Missing/unreadable files, invalid params file, geometry mismatch, an
            empty label, or pyradiomics refusing the ROI (e.g. too small).
    """
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    image, mask, params = Path(image), Path(mask), Path(params)
    if not params.is_file():
        raise FeatureError(f"{params}: radiomics params file does not exist")
    img = read_image(image, what="image")
    msk = read_image(mask, what="mask")
    msk = align_mask(img, msk, image_path=image, mask_path=mask)
    n_voxels = _check_label(msk, label, mask_path=mask, image_path=image)
    try:
        extractor = RadiomicsFeatureExtractor(str(params))
    except Exception as exc:  # pyradiomics raises pykwalify / yaml errors of many types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise FeatureError(f"{params}: invalid radiomics params file: {first}") from exc
    log.info("radiomics: %s label %d (%d voxels) with %s", image, label, n_voxels, params.name)
    try:
        result = extractor.execute(img, msk, label=label)
    except (ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise FeatureError(
            f"{image}: pyradiomics refused mask {mask} label {label}: {first}"
        ) from exc
    return RadiomicsResult(
        features=_tidy(result, label=label, params=params),
        diagnostics={k: _jsonable(v) for k, v in result.items() if k.startswith("diagnostics_")},
    )


def _tidy(result: Mapping[str, Any], *, label: int, params: Path) -> pd.DataFrame:
    names = [k for k in result if not k.startswith("diagnostics_")]
    parts = [name.split("_", 2) for name in names]
    return pd.DataFrame(
        {
            "feature": names,
            "value": np.array([float(result[k]) for k in names], dtype=np.float64),
            "image_type": [p[0] for p in parts],
            "feature_class": [p[1] if len(p) > 1 else "" for p in parts],
            "label": label,
            "settings_hash": settings_hash(params),
            "params_file": params.as_posix(),
            "pyradiomics_version": pyradiomics_version(),
        },
        columns=list(FEATURE_COLUMNS),
    )


def extract_radiomics(image: Path, mask: Path, *, params: Path, label: int = 1) -> pd.DataFrame:
    """Radiomics features of one ROI as a tidy long table.

    Equivalent to ``RadiomicsFeatureExtractor(params).execute(image, mask, label=label)`` with
    the ``diagnostics_*`` entries dropped (see :func:`run_extraction` to keep them).

    Args:
        image: Intensity image (NIfTI or anything SimpleITK reads).
        mask: Label map on the same voxel grid.
        params: pyradiomics params YAML (e.g. ``params/radiomics/ct_default_v1.yaml``).
        label: ROI label in the mask.

    Returns:
        One row per feature with :data:`FEATURE_COLUMNS`: ``feature`` (pyradiomics name, e.g.
        ``original_firstorder_Mean``), ``value`` (float64, in the feature's pyradiomics unit:
        HU for CT first-order intensities, mm / mm² / mm³ for shape), ``image_type``
        (``original``, ``log-sigma-1-0-mm-3D``, ``wavelet-LLH``, ...), ``feature_class``,
        ``label``, ``settings_hash``, ``params_file``, ``pyradiomics_version``.

    Raises:
        FeatureError: See :func:`run_extraction`.
    """
    return run_extraction(image, mask, params=params, label=label).features


def write_features(
    table: pd.DataFrame,
    out: Path,
    *,
    patient_id: str | None = None,
    timepoint: int | None = None,
) -> Path:
    """Write a tidy feature table as CSV (floats in round-trip precision).

    Args:
        table: A tidy table (``feature``, ``value``, provenance columns).
        out: Output CSV path; parent folders are created.
        patient_id: Written as a leading ``patient_id`` column when given.
        timepoint: Written as a ``timepoint`` column (after ``patient_id``) when given.

    Returns:
        ``out``.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = table.copy()
    if timepoint is not None:
        table.insert(0, "timepoint", int(timepoint))
    if patient_id is not None:
        table.insert(0, "patient_id", str(patient_id))
    table.to_csv(out, index=False, float_format=None)
    return out


def write_diagnostics(diagnostics: Mapping[str, Any], out: Path) -> Path:
    """Write pyradiomics' diagnostics as an indented JSON file (provenance next to the CSV)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(diagnostics), indent=1, sort_keys=True, default=str) + "\n")
    return out


def read_features(path: Path) -> pd.DataFrame:
    """Read a tidy feature CSV back with round-trip float precision."""
    return pd.read_csv(path, float_precision="round_trip", dtype={"patient_id": str})
