"""Read one DICOM image series into a SimpleITK image with checked geometry.

Slices are sorted by their position along the slice normal ``n = row x col`` (the cross product
of the two ImageOrientationPatient direction cosines), never by file name or InstanceNumber. For a
clean series the result has the geometry SimpleITK's ``ImageSeriesReader`` gives: origin = position
of the first slice, spacing = ``(col spacing, row spacing, slice spacing)``, direction columns
``(row, col, n)``.

Two acquisition problems are detected and, depending on the policy, corrected or refused:

* **gantry tilt**: GantryDetectorTilt is not 0 and/or the slice positions are sheared, i.e.
  ``IPP_k - IPP_0`` has a component in the slice plane. Under ``"resample"`` the volume is resampled
  (linear) onto an orthogonal grid with directions ``(row, col, n)`` covering all sheared slices.
* **non-uniform slice spacing**: the spacings between consecutive slices deviate from their median
  by more than 1 %; gaps of about twice the spacing are reported as missing slices. Under
  ``"resample"`` the volume is resampled (linear along ``n``) to the median spacing.

Both corrections are recorded in the info dict's ``warnings`` and ``corrections``; nothing is
corrected silently. :func:`inspect_series` runs the same checks from the headers only and returns
the problems instead of raising.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from scipy import ndimage

from oncoflow.convert.policy import POLICIES
from oncoflow.convert.suv import suv_problems
from oncoflow.errors import ConversionError

__all__ = [
    "POLICIES",
    "SeriesGeometry",
    "geometry_dict",
    "inspect_series",
    "load_series",
    "read_series",
    "read_series_with_headers",
]

log = logging.getLogger(__name__)


MAX_INTERPOLATED_SLICES = 2
"""Most consecutive missing slices that the ``resample`` policy fills by interpolation; a wider gap
(a partial export, or two stacks in one folder) is refused whatever the policy, since filling it
would invent anatomy."""

UNEVEN_TOLERANCE = 0.01
"""Largest allowed deviation of a slice spacing from the median, as a fraction of the median."""

SHEAR_TOLERANCE_MM = 0.01
"""In-plane offset (mm) between slice positions above which a series counts as sheared (tilted)."""

TILT_TOLERANCE_DEG = 0.01
"""|GantryDetectorTilt| (degrees) above which the tag counts as a tilt."""

_SKIP_NAMES = frozenset({"DICOMDIR"})
_NON_IMAGE_MODALITIES = frozenset(
    {"RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "SEG", "SR", "PR", "KO"}
)
_GEOMETRY_TAGS = (("ImagePositionPatient", 3), ("ImageOrientationPatient", 6), ("PixelSpacing", 2))


@dataclass
class SeriesGeometry:
    """Geometry of one series as found in its headers, slices sorted along the normal.

    Attributes:
        folder: The series folder.
        paths: Image files in slice order.
        headers: Their headers (no pixel data), same order.
        row: Unit row direction (ImageOrientationPatient[0:3]), i.e. the x axis of the image.
        col: Unit column direction (ImageOrientationPatient[3:6]), the y axis.
        normal: ``row x col``.
        pixel_spacing: ``(x, y)`` spacing in mm (PixelSpacing reversed).
        size: ``(columns, rows)``.
        positions: ``(n, 3)`` ImagePositionPatient, sorted.
        along: Position of each slice along ``normal`` (mm), ascending.
        offsets: ``(n, 2)`` in-plane offset of each slice from the first, along ``(row, col)`` (mm).
        tag_tilt_deg: GantryDetectorTilt of the first slice (0 when absent).
        n_files: Number of files in the folder (images and others).
        ignored: Descriptions of DICOM files of the folder that are not images of the series.
    """

    folder: Path
    paths: list[Path]
    headers: list[Dataset]
    row: np.ndarray
    col: np.ndarray
    normal: np.ndarray
    pixel_spacing: tuple[float, float]
    size: tuple[int, int]
    positions: np.ndarray
    along: np.ndarray
    offsets: np.ndarray
    tag_tilt_deg: float
    n_files: int
    ignored: list[str] = field(default_factory=list)

    @property
    def steps(self) -> np.ndarray:
        """Distances between consecutive slices along the normal (mm)."""
        return np.diff(self.along)

    @property
    def median_step(self) -> float:
        """Median slice spacing (mm); SliceThickness (or 1 mm) for a single slice."""
        if len(self.along) > 1:
            return float(np.median(self.steps))
        first = self.headers[0]
        for keyword in ("SpacingBetweenSlices", "SliceThickness"):
            value = _float(first, keyword)
            if value and value > 0:
                return value
        return 1.0

    @property
    def shear_mm(self) -> float:
        """Largest in-plane offset of a slice from the first (mm)."""
        return float(np.max(np.linalg.norm(self.offsets, axis=1))) if len(self.offsets) else 0.0

    @property
    def sheared(self) -> bool:
        """Whether the slice positions are sheared relative to the normal (a tilted stack)."""
        return self.shear_mm > SHEAR_TOLERANCE_MM

    @property
    def tilt_deg(self) -> float:
        """Tilt angle (degrees): from the shear when sheared, else from GantryDetectorTilt."""
        if self.sheared:
            span = float(self.along[-1] - self.along[0])
            offset = float(np.linalg.norm(self.offsets[-1]))
            angle = float(np.degrees(np.arctan2(offset, span)))
            return angle if self.tag_tilt_deg >= 0 else -angle
        return self.tag_tilt_deg

    @property
    def tilted(self) -> bool:
        """Whether the series needs a tilt correction (sheared slice positions)."""
        return self.sheared

    @property
    def uneven(self) -> bool:
        """Whether a slice spacing deviates from the median by more than 1 %."""
        if len(self.along) < 3:
            return False
        med = self.median_step
        return bool(np.max(np.abs(self.steps - med)) > UNEVEN_TOLERANCE * med)

    def gaps(self) -> list[tuple[float, float, int]]:
        """Return ``(start, end, n_missing)`` for each step of about 2x (or more) the median."""
        med = self.median_step
        found = []
        for k, step in enumerate(self.steps):
            if step > 1.5 * med:
                found.append(
                    (float(self.along[k]), float(self.along[k + 1]), round(step / med) - 1)
                )
        return found

    @property
    def wide_gaps(self) -> list[tuple[float, float, int]]:
        """Gaps of more than :data:`MAX_INTERPOLATED_SLICES` missing slices."""
        return [gap for gap in self.gaps() if gap[2] > MAX_INTERPOLATED_SLICES]


# --------------------------------------------------------------------------------------------------
# header reading


def _float(ds: Dataset, keyword: str) -> float | None:
    """Return a numeric attribute as float, ``None`` when absent or empty."""
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _candidate_files(folder: Path) -> list[Path]:
    """Return the regular files of ``folder`` (not hidden, not DICOMDIR), sorted by name."""
    if not folder.exists():
        raise ConversionError(f"{folder}: DICOM folder does not exist")
    if not folder.is_dir():
        raise ConversionError(f"{folder}: expected a folder holding one DICOM series")
    files = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.name.upper() not in _SKIP_NAMES
    ]
    if not files:
        raise ConversionError(f"{folder}: folder is empty (no DICOM files)")
    return files


def _read_header(path: Path) -> Dataset | None:
    """Read a DICOM header (no pixels); ``None`` when the file is not readable DICOM."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except pydicom.errors.InvalidDicomError:
        pass
    except (OSError, ValueError, EOFError, TypeError, AttributeError, KeyError):
        return None
    try:  # DICOM without the 128-byte preamble ("raw" datasets)
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:
        return None
    return ds if "SOPClassUID" in ds or "ImagePositionPatient" in ds else None


def _is_image(ds: Dataset) -> bool:
    """Whether ``ds`` looks like one image slice (has rows and columns, not an RT/SEG/SR object)."""
    return "Rows" in ds and "Columns" in ds and ds.get("Modality") not in _NON_IMAGE_MODALITIES


def _describe_series(uid: str, items: list[tuple[Path, Dataset]]) -> str:
    """One-line description of a series for error messages (no PHI)."""
    first = items[0][1]
    desc = str(first.get("SeriesDescription", "")).strip() or "no description"
    return (
        f"series {first.get('SeriesNumber', '?')} '{desc}' ({first.get('Modality', '?')}, "
        f"{len(items)} files, SeriesInstanceUID {uid})"
    )


@dataclass
class _Scan:
    """Result of reading every header of a folder."""

    files: list[Path]
    series: dict[str, list[tuple[Path, Dataset]]]
    unreadable: list[Path]
    others: list[str]


def _scan(folder: Path) -> _Scan:
    """Read all headers of ``folder`` and group the image files by SeriesInstanceUID."""
    files = _candidate_files(folder)
    series: dict[str, list[tuple[Path, Dataset]]] = {}
    unreadable: list[Path] = []
    others: list[str] = []
    for path in files:
        ds = _read_header(path)
        if ds is None:
            unreadable.append(path)
            continue
        if not _is_image(ds):
            others.append(f"a {ds.get('Modality', 'non-image')} object")
            continue
        uid = str(ds.get("SeriesInstanceUID", "unknown"))
        series.setdefault(uid, []).append((path, ds))
    return _Scan(files, series, unreadable, others)


def _unreadable_message(folder: Path, unreadable: list[Path]) -> str:
    """Message naming the files of a series folder that are not DICOM."""
    names = ", ".join(p.name for p in unreadable[:5])
    more = f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
    return f"{folder}: {len(unreadable)} file(s) are not readable DICOM: {names}{more}"


def _geometry(folder: Path, scan: _Scan) -> SeriesGeometry:
    """Check one-series consistency and compute the sorted slice geometry (raises on problems)."""
    if not scan.series:
        if scan.unreadable:
            raise ConversionError(_unreadable_message(folder, scan.unreadable))
        raise ConversionError(f"{folder}: no DICOM image files (found only {scan.others})")
    if len(scan.series) > 1:
        listed = "; ".join(_describe_series(uid, items) for uid, items in scan.series.items())
        raise ConversionError(
            f"{folder}: holds {len(scan.series)} series, expected one per folder: {listed}"
        )
    items = next(iter(scan.series.values()))
    for path, ds in items:
        for keyword, count in _GEOMETRY_TAGS:
            multiplicity = ds[keyword].VM if keyword in ds else 0
            if multiplicity < count:
                raise ConversionError(f"{folder}: {path.name}: missing {keyword}")
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise ConversionError(
                f"{folder}: {path.name}: multi-frame (enhanced) DICOM is not supported; "
                "export the series as one file per slice"
            )
    first = items[0][1]
    iop = np.asarray([float(v) for v in first.ImageOrientationPatient], dtype=float)
    spacing = (float(first.PixelSpacing[1]), float(first.PixelSpacing[0]))
    size = (int(first.Columns), int(first.Rows))
    for path, ds in items[1:]:
        other = np.asarray([float(v) for v in ds.ImageOrientationPatient], dtype=float)
        if np.max(np.abs(other - iop)) > 1e-4:
            raise ConversionError(
                f"{folder}: {path.name}: ImageOrientationPatient differs between slices "
                "(not one stack of parallel slices)"
            )
        if (int(ds.Columns), int(ds.Rows)) != size:
            raise ConversionError(f"{folder}: {path.name}: Rows/Columns differ between slices")
        other_sp = (float(ds.PixelSpacing[1]), float(ds.PixelSpacing[0]))
        if max(abs(a - b) for a, b in zip(other_sp, spacing, strict=True)) > 1e-4:
            raise ConversionError(f"{folder}: {path.name}: PixelSpacing differs between slices")
    row = iop[:3] / np.linalg.norm(iop[:3])
    col = iop[3:] / np.linalg.norm(iop[3:])
    if abs(float(np.dot(row, col))) > 1e-3:
        raise ConversionError(f"{folder}: ImageOrientationPatient rows are not orthogonal")
    col = col - np.dot(row, col) * row
    col /= np.linalg.norm(col)
    normal = np.cross(row, col)

    positions = np.asarray(
        [[float(v) for v in ds.ImagePositionPatient] for _, ds in items], dtype=float
    )
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    items = [items[i] for i in order]
    positions = positions[order]
    along = along[order]
    if len(along) > 1:
        steps = np.diff(along)
        dup = np.flatnonzero(steps < 1e-3)
        if dup.size:
            k = int(dup[0])
            raise ConversionError(
                f"{folder}: {items[k][0].name} and {items[k + 1][0].name} lie at the same slice "
                f"position ({along[k]:.2f} mm along the slice normal); the folder holds "
                "duplicate or overlapping slices"
            )
    delta = positions - positions[0]
    in_plane = delta - np.outer(delta @ normal, normal)
    offsets = np.column_stack([in_plane @ row, in_plane @ col])
    return SeriesGeometry(
        folder=folder,
        paths=[p for p, _ in items],
        headers=[ds for _, ds in items],
        row=row,
        col=col,
        normal=normal,
        pixel_spacing=spacing,
        size=size,
        positions=positions,
        along=along,
        offsets=offsets,
        tag_tilt_deg=_float(first, "GantryDetectorTilt") or 0.0,
        n_files=len(scan.files),
        ignored=list(scan.others),
    )


def load_series(folder: Path) -> SeriesGeometry:
    """Read and check the headers of a one-series folder.

    Args:
        folder: Folder holding the files of one DICOM image series (any file names; DICOMDIR,
            hidden files and non-image DICOM objects such as an RTSTRUCT are skipped).

    Returns:
        The sorted slice geometry.

    Raises:
        ConversionError: The folder is missing or empty, holds unreadable files or several
            series, or the slices are not one consistent stack.
    """
    folder = Path(folder)
    scan = _scan(folder)
    if scan.unreadable:
        raise ConversionError(_unreadable_message(folder, scan.unreadable))
    return _geometry(folder, scan)


# --------------------------------------------------------------------------------------------------
# messages


def tilt_message(geom: SeriesGeometry) -> str:
    """Describe the gantry tilt of a series (used for refusals and warnings), without location."""
    return (
        f"the series is acquired with a gantry tilt of {geom.tilt_deg:.1f}° "
        f"(GantryDetectorTilt {geom.tag_tilt_deg:g}°, slice positions sheared by up to "
        f"{geom.shear_mm:.1f} mm in the slice plane)"
    )


def spacing_message(geom: SeriesGeometry) -> str:
    """Describe the non-uniform slice spacing (and missing slices) of a series, without location."""
    steps = geom.steps
    text = (
        f"slice spacing is not uniform: {steps.min():.3g} to {steps.max():.3g} mm "
        f"(median {geom.median_step:.3g} mm)"
    )
    gaps = geom.gaps()
    if gaps:
        listed = ", ".join(
            f"{n} between {a:.1f} and {b:.1f} mm along the slice normal" for a, b, n in gaps
        )
        text += f"; missing slice(s): {listed}"
    return text


def _refuse_tilt(geom: SeriesGeometry) -> str:
    return (
        f"{geom.folder}: {tilt_message(geom)}; not converted because the tilt policy is "
        "'refuse'; set it to 'resample' (--tilt resample) to resample the series onto an "
        "orthogonal grid"
    )


def _refuse_spacing(geom: SeriesGeometry) -> str:
    return (
        f"{geom.folder}: {spacing_message(geom)}; not converted because the uneven-spacing "
        "policy is 'refuse'; set it to 'resample' (--uneven-spacing resample) to resample the "
        f"series to {geom.median_step:.3g} mm"
    )


def _refuse_gap(geom: SeriesGeometry) -> str:
    return (
        f"{geom.folder}: {spacing_message(geom)}; not converted: more than "
        f"{MAX_INTERPOLATED_SLICES} consecutive slices are missing, which no resampling can fill; "
        "export the complete series (or split the stacks into separate folders)"
    )


def _check_policy(name: str, value: str) -> None:
    if value not in POLICIES:
        raise ConversionError(f"{name} policy must be one of {', '.join(POLICIES)}, got {value!r}")


# --------------------------------------------------------------------------------------------------
# inspection (headers only)


def inspect_series(
    folder: Path,
    *,
    suv: bool,
    tilt: str = "resample",
    uneven_spacing: str = "resample",
) -> list[str]:
    """Check a DICOM series folder from its headers only and list its problems (never raises).

    Args:
        folder: The series folder.
        suv: Also check the tags needed for SUVbw (PET).
        tilt: Tilt policy; a tilted series is a problem only under ``"refuse"``.
        uneven_spacing: Spacing policy; uneven spacing is a problem only under ``"refuse"``.

    Returns:
        Human-readable problems, each naming the folder; empty when the series converts.
    """
    folder = Path(folder)
    problems: list[str] = []
    try:
        _check_policy("tilt", tilt)
        _check_policy("uneven-spacing", uneven_spacing)
        scan = _scan(folder)
        if scan.unreadable:
            problems.append(_unreadable_message(folder, scan.unreadable))
        geom = _geometry(folder, scan)
    except ConversionError as exc:
        problems.append(str(exc))
        return problems
    except Exception as exc:
        problems.append(f"{folder}: cannot read the series: {type(exc).__name__}: {exc}")
        return problems
    if geom.tilted and tilt == "refuse":
        problems.append(_refuse_tilt(geom))
    if geom.wide_gaps:
        problems.append(_refuse_gap(geom))
    elif geom.uneven and uneven_spacing == "refuse":
        problems.append(_refuse_spacing(geom))
    if suv:
        modality = str(geom.headers[0].get("Modality", ""))
        if modality != "PT":
            problems.append(
                f"{folder}: expected a PET series (Modality PT) for SUV conversion, "
                f"found Modality {modality or 'missing'}"
            )
        else:
            problems.extend(suv_problems(geom.headers[0], where=str(folder)))
    return problems


# --------------------------------------------------------------------------------------------------
# pixel data and resampling


def _slice_values(path: Path, header: Dataset) -> np.ndarray:
    """Return one slice's values ``stored * RescaleSlope + RescaleIntercept``, (rows, cols)."""
    try:
        ds = pydicom.dcmread(path, force=True)
        stored = ds.pixel_array.astype(np.float64)
    except Exception as exc:
        try:
            img = sitk.ReadImage(str(path), sitk.sitkFloat64)  # GDCM applies the rescale
        except RuntimeError:
            raise ConversionError(
                f"{path.parent}: {path.name}: cannot decode pixel data ({exc})"
            ) from exc
        return sitk.GetArrayFromImage(img).reshape(int(header.Rows), int(header.Columns))
    if stored.ndim != 2:
        raise ConversionError(
            f"{path.parent}: {path.name}: expected one grayscale slice, got pixel array "
            f"of shape {stored.shape}"
        )
    slope = _float(header, "RescaleSlope")
    intercept = _float(header, "RescaleIntercept")
    return stored * (1.0 if slope is None else slope) + (intercept or 0.0)


def _resample(
    volume: np.ndarray,
    geom: SeriesGeometry,
    *,
    target_along: np.ndarray,
    extend_in_plane: bool,
    fill: float,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Resample a (possibly sheared / unevenly spaced) stack onto an orthogonal grid.

    Target voxel ``(i, j, m)`` lies at ``IPP_0 + (u0 + i dx) row + (v0 + j dy) col +
    (target_along[m] - along_0) n``. Its fractional source slice is ``f = interp(s, along, k)``;
    the source slices' in-plane offsets are interpolated linearly at ``f``; the value is the
    trilinear interpolation ``(1 - w) B(k0) + w B(k0 + 1)`` of the bilinear samples ``B`` of the
    two neighbouring slices (``w = f - k0``). Points outside the acquired volume get ``fill``.

    Returns:
        ``(array (m, ny, nx), origin (3,), (nx, ny))``.
    """
    n = len(geom.along)
    dx, dy = geom.pixel_spacing
    nx, ny = geom.size
    u0 = v0 = 0.0
    out_nx, out_ny = nx, ny
    if extend_in_plane:
        u_lo, u_hi = float(geom.offsets[:, 0].min()), float(geom.offsets[:, 0].max())
        v_lo, v_hi = float(geom.offsets[:, 1].min()), float(geom.offsets[:, 1].max())
        u0, v0 = u_lo, v_lo
        out_nx = int(np.ceil((u_hi - u_lo) / dx - 1e-6)) + nx
        out_ny = int(np.ceil((v_hi - v_lo) / dy - 1e-6)) + ny
    index = np.arange(n, dtype=float)
    u = u0 + dx * np.arange(out_nx)
    v = v0 + dy * np.arange(out_ny)
    vv, uu = np.meshgrid(v, u, indexing="ij")
    out = np.full((len(target_along), out_ny, out_nx), fill, dtype=np.float64)
    tol = 1e-6 * max(1.0, geom.median_step)
    for m, s in enumerate(target_along):
        if s < geom.along[0] - tol or s > geom.along[-1] + tol:
            continue
        f = float(np.clip(np.interp(s, geom.along, index), 0.0, n - 1))
        k0 = min(int(np.floor(f)), n - 2) if n > 1 else 0
        w = f - k0
        off_u = float(np.interp(f, index, geom.offsets[:, 0]))
        off_v = float(np.interp(f, index, geom.offsets[:, 1]))
        a = (uu - off_u) / dx
        b = (vv - off_v) / dy
        inside = (a >= -1e-6) & (a <= nx - 1 + 1e-6) & (b >= -1e-6) & (b <= ny - 1 + 1e-6)
        coords = np.stack([np.clip(b, 0, ny - 1), np.clip(a, 0, nx - 1)])
        plane = ndimage.map_coordinates(volume[k0], coords, order=1, mode="nearest")
        if n > 1 and w > 0:
            upper = ndimage.map_coordinates(volume[k0 + 1], coords, order=1, mode="nearest")
            plane = (1.0 - w) * plane + w * upper
        out[m] = np.where(inside, plane, fill)
    origin = geom.positions[0] + u0 * geom.row + v0 * geom.col
    return out, origin, (out_nx, out_ny)


def geometry_dict(image: sitk.Image) -> dict[str, list[float] | list[int]]:
    """Return an image's geometry as JSON-ready lists (size, spacing, origin, direction)."""
    return {
        "size": [int(v) for v in image.GetSize()],
        "spacing": [float(v) for v in image.GetSpacing()],
        "origin": [float(v) for v in image.GetOrigin()],
        "direction": [float(v) for v in image.GetDirection()],
    }


def read_series(
    folder: Path,
    *,
    tilt: str = "resample",
    uneven_spacing: str = "resample",
) -> tuple[sitk.Image, dict[str, Any]]:
    """Read one DICOM image series into a float32 image of modality values (HU, Bq/mL, ...).

    Args:
        folder: Folder holding exactly one image series.
        tilt: ``"resample"`` (resample a tilted series onto an orthogonal grid, linear, and record
            a warning) or ``"refuse"`` (raise :class:`ConversionError`).
        uneven_spacing: ``"resample"`` (resample to the median slice spacing, linear, with a
            warning) or ``"refuse"``.

    Returns:
        ``(image, info)``; ``info`` has ``geometry``, ``source`` (folder name, file count, modality,
        SeriesDescription, Manufacturer, slice spacing statistics, never PHI), ``warnings`` and
        ``corrections``.

    Raises:
        ConversionError: Unreadable or inconsistent series, several series, or a tilt / uneven
            spacing under policy ``"refuse"``.
    """
    image, info, _ = read_series_with_headers(folder, tilt=tilt, uneven_spacing=uneven_spacing)
    return image, info


def read_series_with_headers(
    folder: Path,
    *,
    tilt: str = "resample",
    uneven_spacing: str = "resample",
) -> tuple[sitk.Image, dict[str, Any], SeriesGeometry]:
    """Like :func:`read_series`, also returning the sorted headers (for SUV and RTSTRUCT)."""
    _check_policy("tilt", tilt)
    _check_policy("uneven-spacing", uneven_spacing)
    geom = load_series(Path(folder))
    if geom.tilted and tilt == "refuse":
        raise ConversionError(_refuse_tilt(geom))
    if geom.wide_gaps:
        raise ConversionError(_refuse_gap(geom))
    if geom.uneven and uneven_spacing == "refuse":
        raise ConversionError(_refuse_spacing(geom))

    volume = np.stack([_slice_values(p, h) for p, h in zip(geom.paths, geom.headers, strict=True)])
    warnings: list[str] = []
    corrections: list[dict[str, Any]] = []
    dz = geom.median_step
    origin = geom.positions[0]
    if not geom.tilted and abs(geom.tag_tilt_deg) > TILT_TOLERANCE_DEG:
        warnings.append(
            f"GantryDetectorTilt is {geom.tag_tilt_deg:g}° but the slice positions follow the "
            "slice normal (the tilt is already in ImageOrientationPatient); no resampling needed"
        )
    if geom.tilted or geom.uneven:
        fill = float(volume.min())
        span = float(geom.along[-1] - geom.along[0])
        n_target = int(np.floor(span / dz + 1e-6)) + 1
        target = geom.along[0] + dz * np.arange(n_target)
        before = [int(geom.size[0]), int(geom.size[1]), len(geom.along)]
        volume, origin, _ = _resample(
            volume, geom, target_along=target, extend_in_plane=geom.tilted, fill=fill
        )
        if geom.tilted:
            warnings.append(tilt_message(geom) + "; resampled (linear) onto an orthogonal grid")
            corrections.append(
                {
                    "correction": "gantry_tilt",
                    "tilt_deg": round(geom.tilt_deg, 4),
                    "max_shear_mm": round(geom.shear_mm, 4),
                    "method": "linear resampling onto an orthogonal grid covering all slices",
                    "fill_value": fill,
                    "size_before": before,
                }
            )
        if geom.uneven:
            warnings.append(
                spacing_message(geom) + f"; resampled (linear) to {dz:.4g} mm slice spacing"
            )
            corrections.append(
                {
                    "correction": "uneven_slice_spacing",
                    "spacing_min_mm": float(geom.steps.min()),
                    "spacing_max_mm": float(geom.steps.max()),
                    "spacing_target_mm": dz,
                    "missing_slices": [
                        {"from_mm": a, "to_mm": b, "n_missing": k} for a, b, k in geom.gaps()
                    ],
                    "method": "linear interpolation along the slice normal",
                    "size_before": before,
                }
            )
    for text in warnings:
        log.warning("%s: %s", geom.folder.name, text)

    image = sitk.GetImageFromArray(volume.astype(np.float32))
    image.SetSpacing((geom.pixel_spacing[0], geom.pixel_spacing[1], dz))
    image.SetOrigin(tuple(float(v) for v in origin))
    direction = np.column_stack([geom.row, geom.col, geom.normal])
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    first = geom.headers[0]
    steps = geom.steps
    info: dict[str, Any] = {
        "geometry": geometry_dict(image),
        "source": {
            "format": "DICOM",
            "folder": geom.folder.name,
            "n_files": geom.n_files,
            "n_slices": len(geom.paths),
            "modality": str(first.get("Modality", "")),
            "series_description": str(first.get("SeriesDescription", "")),
            "manufacturer": str(first.get("Manufacturer", "")),
            "manufacturer_model": str(first.get("ManufacturerModelName", "")),
            "slice_thickness_mm": _float(first, "SliceThickness"),
            "slice_spacing_mm": {
                "median": dz,
                "min": float(steps.min()) if steps.size else dz,
                "max": float(steps.max()) if steps.size else dz,
            },
            "gantry_tilt_deg": round(geom.tilt_deg, 4),
            "ignored_objects": geom.ignored,
        },
        "warnings": warnings,
        "corrections": corrections,
    }
    return image, info, geom
