"""Slice geometry of one DICOM series for :mod:`oncoflow.convert.dicom`.

Checks that the image files of a folder form one stack of parallel slices, sorts them along the
slice normal ``n = row x col`` and measures what the corrections need: the position of each slice
along ``n``, its in-plane offset from the first slice (shear, i.e. gantry tilt) and the spacing
between slices (uneven spacing, missing slices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from oncoflow.convert._dicom_headers import (
    _describe_series,
    _Scan,
    _scan,
    _unreadable_message,
    header_float,
)
from oncoflow.errors import ConversionError

MAX_INTERPOLATED_SLICES = 2
"""Most consecutive missing slices that the ``resample`` policy fills by interpolation; a wider gap
(a partial export, or two stacks in one folder) is refused whatever the policy, since filling it
would invent anatomy."""

UNEVEN_TOLERANCE = 0.01
"""Largest allowed deviation of a slice spacing from the median, as a fraction of the median."""

SHEAR_TOLERANCE_MM = 0.01
"""In-plane offset (mm) between slice positions above which a series counts as sheared (tilted)."""

_GEOMETRY_TAGS = (("ImagePositionPatient", 3), ("ImageOrientationPatient", 6), ("PixelSpacing", 2))

_Items = list[tuple[Path, Dataset]]


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
            value = header_float(first, keyword)
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
# consistency checks


def _single_series(folder: Path, scan: _Scan) -> _Items:
    """Return the image files of the folder's only series.

    Args:
        folder: The series folder (for messages).
        scan: Its headers, grouped by SeriesInstanceUID.

    Returns:
        ``(path, header)`` of each image file, in file name order.

    Raises:
        ConversionError: No image file, or several series in the folder.
    """
    if not scan.series:
        if scan.unreadable:
            raise ConversionError(_unreadable_message(folder, scan.unreadable))
        raise ConversionError(f"{folder}: no DICOM image files (found only {scan.others})")
    if len(scan.series) > 1:
        listed = "; ".join(_describe_series(uid, items) for uid, items in scan.series.items())
        raise ConversionError(
            f"{folder}: holds {len(scan.series)} series, expected one per folder: {listed}"
        )
    return next(iter(scan.series.values()))


def _check_slice_tags(folder: Path, items: _Items) -> None:
    """Check that every file has the geometry tags and holds a single frame.

    Raises:
        ConversionError: A geometry tag is missing or a file is multi-frame.
    """
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


def _common_plane(
    folder: Path, items: _Items
) -> tuple[np.ndarray, tuple[float, float], tuple[int, int]]:
    """Check that all slices share orientation, size and pixel spacing.

    Returns:
        ``(ImageOrientationPatient (6,), (x, y) pixel spacing, (columns, rows))`` of the first.

    Raises:
        ConversionError: A slice differs from the first.
    """
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
    return iop, spacing, size


def _axes(folder: Path, iop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the unit ``(row, col, normal)`` of an ImageOrientationPatient (col orthogonalised).

    Raises:
        ConversionError: The row and column directions are not orthogonal.
    """
    row = iop[:3] / np.linalg.norm(iop[:3])
    col = iop[3:] / np.linalg.norm(iop[3:])
    if abs(float(np.dot(row, col))) > 1e-3:
        raise ConversionError(f"{folder}: ImageOrientationPatient rows are not orthogonal")
    col = col - np.dot(row, col) * row
    col /= np.linalg.norm(col)
    return row, col, np.cross(row, col)


def _sort_along(
    folder: Path, items: _Items, normal: np.ndarray
) -> tuple[_Items, np.ndarray, np.ndarray]:
    """Sort the slices by their position along ``normal`` (stable).

    Returns:
        ``(items, positions (n, 3), along (n,))``, all in slice order.

    Raises:
        ConversionError: Two slices lie at the same position.
    """
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
    return items, positions, along


def _geometry(folder: Path, scan: _Scan) -> SeriesGeometry:
    """Check one-series consistency and compute the sorted slice geometry (raises on problems)."""
    items = _single_series(folder, scan)
    _check_slice_tags(folder, items)
    iop, spacing, size = _common_plane(folder, items)
    row, col, normal = _axes(folder, iop)
    first = items[0][1]
    items, positions, along = _sort_along(folder, items, normal)
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
        tag_tilt_deg=header_float(first, "GantryDetectorTilt") or 0.0,
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
