"""Header reading for :mod:`oncoflow.convert.dicom`.

Lists a series folder, reads every header (no pixel data) and groups the image files by
SeriesInstanceUID.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from oncoflow.errors import ConversionError

_SKIP_NAMES = frozenset({"DICOMDIR"})
_NON_IMAGE_MODALITIES = frozenset(
    {"RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "SEG", "SR", "PR", "KO"}
)


def header_float(ds: Dataset, keyword: str) -> float | None:
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
