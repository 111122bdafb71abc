"""Index every file of a DICOM tree of any layout by its headers (no pixel data is read).

Each file becomes one :class:`Record`: where it is, and the header values the importer decides on
(patient, study, series, SOP instance, SOP class, modality, descriptions, image type, contrast,
MR sequence parameters, frame of reference, slice position, and for RTSTRUCT / SEG the series and
instances they reference and their ROI / segment names). Files that are not DICOM get a record
with ``dicom = False`` so that the import report can list them.

Reading stops before the pixel data and runs in ``workers`` processes. An index cache (a JSON
file, one entry per file keyed by its path relative to the tree, its size and its modification
time in ns) makes a second run over an unchanged tree read no file at all. The cache holds the
headers' identifying values (patient names and IDs): keep it beside the DICOM data, never under
``results/``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset

from oncoflow.convert.sop import RTSTRUCT_SOP_CLASS, SEG_SOP_CLASS
from oncoflow.progress import Progress

log = logging.getLogger(__name__)

__all__ = ["CACHE_FORMAT", "Record", "index_tree", "read_record"]

CACHE_FORMAT = 2
"""Layout version of the index cache; a cache of another version is ignored."""

_TEXT_TAGS = (
    "PatientID",
    "PatientName",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "SOPClassUID",
    "Modality",
    "SeriesDescription",
    "ProtocolName",
    "ContrastBolusAgent",
    "BodyPartExamined",
    "FrameOfReferenceUID",
    "InstitutionName",
    "Manufacturer",
    "Units",
    "ScanningSequence",
    "SequenceVariant",
)
_NUMBER_TAGS = ("SeriesNumber", "RepetitionTime", "EchoTime", "InversionTime", "NumberOfFrames")


@dataclass
class Record:
    """What the importer knows of one file (header values as text; numbers as floats).

    Attributes:
        path: Path relative to the tree root (POSIX).
        size: File size (bytes).
        mtime_ns: Modification time (ns).
        dicom: Whether the file is DICOM; the other fields are empty when not.
        tags: Text header values by keyword (:data:`_TEXT_TAGS`; ``PatientName`` as text).
        numbers: Numeric header values by keyword (:data:`_NUMBER_TAGS`).
        image_type: ImageType values, upper case.
        position: ImagePositionPatient (mm) of a single-frame image, else empty.
        referenced_series: SeriesInstanceUIDs an RTSTRUCT or SEG references.
        referenced_instances: SOPInstanceUIDs an RTSTRUCT's contours or a SEG's frames derive
            from.
        referenced_frames: FrameOfReferenceUIDs an RTSTRUCT references.
        structures: ROI names (RTSTRUCT) or segment labels (SEG), in file order.
        error: Why a file that looked like DICOM could not be read.
    """

    path: str
    size: int
    mtime_ns: int
    dicom: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    numbers: dict[str, float] = field(default_factory=dict)
    image_type: list[str] = field(default_factory=list)
    position: list[float] = field(default_factory=list)
    referenced_series: list[str] = field(default_factory=list)
    referenced_instances: list[str] = field(default_factory=list)
    referenced_frames: list[str] = field(default_factory=list)
    structures: list[str] = field(default_factory=list)
    error: str | None = None

    def tag(self, keyword: str) -> str:
        """A text header value, ``""`` when absent."""
        return self.tags.get(keyword, "")


def _walk(root: Path) -> Iterator[Path]:
    """Every regular file under ``root`` (hidden folders included), in sorted order."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            yield Path(folder) / name


def _items(ds: Dataset, *path: str) -> Iterator[Dataset]:
    """The items reached by following sequence keywords ``path`` from ``ds``."""
    if not path:
        yield ds
        return
    for item in ds.get(path[0], []) or []:
        yield from _items(item, *path[1:])


def _references(ds: Dataset, record: Record) -> None:
    """Fill the referenced series / instances / frames and the structure names."""
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class == RTSTRUCT_SOP_CLASS or ds.get("Modality") == "RTSTRUCT":
        frames = list(_items(ds, "ReferencedFrameOfReferenceSequence"))
        record.referenced_frames = [
            str(f.FrameOfReferenceUID) for f in frames if "FrameOfReferenceUID" in f
        ]
        series = _items(
            ds,
            "ReferencedFrameOfReferenceSequence",
            "RTReferencedStudySequence",
            "RTReferencedSeriesSequence",
        )
        record.referenced_series = [
            str(s.SeriesInstanceUID) for s in series if "SeriesInstanceUID" in s
        ]
        images = _items(ds, "ROIContourSequence", "ContourSequence", "ContourImageSequence")
        record.referenced_instances = sorted(
            {str(i.ReferencedSOPInstanceUID) for i in images if "ReferencedSOPInstanceUID" in i}
        )
        record.structures = [
            str(r.get("ROIName", "")).strip() for r in _items(ds, "StructureSetROISequence")
        ]
    elif sop_class == SEG_SOP_CLASS or ds.get("Modality") == "SEG":
        series = _items(ds, "ReferencedSeriesSequence")
        record.referenced_series = [
            str(s.SeriesInstanceUID) for s in series if "SeriesInstanceUID" in s
        ]
        sources = _items(
            ds, "PerFrameFunctionalGroupsSequence", "DerivationImageSequence", "SourceImageSequence"
        )
        record.referenced_instances = sorted(
            {str(i.ReferencedSOPInstanceUID) for i in sources if "ReferencedSOPInstanceUID" in i}
        )
        record.structures = [
            str(s.get("SegmentLabel", "")).strip() for s in _items(ds, "SegmentSequence")
        ]


def read_record(root: Path, path: Path) -> Record:
    """The :class:`Record` of one file (headers only)."""
    stat = path.stat()
    record = Record(path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns)
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except pydicom.errors.InvalidDicomError:
        return record  # not DICOM (no preamble and no DICOM prefix)
    except Exception as exc:  # a truncated or corrupt file that claims to be DICOM
        record.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return record
    record.dicom = True
    for keyword in _TEXT_TAGS:
        value = ds.get(keyword)
        if value is not None and str(value).strip():
            record.tags[keyword] = str(value).strip()
    for keyword in _NUMBER_TAGS:
        value = ds.get(keyword)
        try:
            record.numbers[keyword] = float(value)
        except (TypeError, ValueError):
            continue
    record.image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    if "ImagePositionPatient" in ds:
        record.position = [float(v) for v in ds.ImagePositionPatient]
    _references(ds, record)
    return record


def _read_many(root: Path, paths: list[Path]) -> list[Record]:
    return [read_record(root, p) for p in paths]


def _load_cache(cache: Path | None) -> dict[str, dict[str, Any]]:
    if cache is None or not cache.is_file():
        return {}
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        log.warning("%s: unreadable index cache, indexing again", cache)
        return {}
    if data.get("format") != CACHE_FORMAT:
        return {}
    return {entry["path"]: entry for entry in data.get("records", [])}


def index_tree(root: Path, *, cache: Path | None = None, workers: int = 1) -> list[Record]:
    """Index every file under ``root`` (module docstring).

    Args:
        root: The DICOM tree.
        cache: Index cache file (read when present, written after indexing); ``None``: none.
        workers: Processes reading headers (1: in this process).

    Returns:
        One record per file, in sorted path order.
    """
    root = Path(root)
    cached = _load_cache(cache)
    records: dict[str, Record] = {}
    todo: list[Path] = []
    for path in _walk(root):
        rel = path.relative_to(root).as_posix()
        if cache is not None and path.resolve() == Path(cache).resolve():
            continue
        entry = cached.get(rel)
        stat = path.stat()
        if entry and entry["size"] == stat.st_size and entry["mtime_ns"] == stat.st_mtime_ns:
            records[rel] = Record(**entry)
        else:
            todo.append(path)
    chunks = [todo[i : i + 64] for i in range(0, len(todo), 64)]
    progress = Progress(len(todo), "reading DICOM headers: file", logger=log)
    fresh: list[Record] = []
    if workers > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for chunk in pool.map(_read_many, [root] * len(chunks), chunks):
                fresh += chunk
                progress.update(len(fresh))
    else:
        for chunk in chunks:
            fresh += _read_many(root, chunk)
            progress.update(len(fresh))
    for record in fresh:
        records[record.path] = record
    log.info("indexed %d files (%d from the cache)", len(records), len(records) - len(fresh))
    if cache is not None and (fresh or set(cached) != set(records)):
        payload = {"format": CACHE_FORMAT, "records": [vars(r) for r in records.values()]}
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        Path(cache).write_text(json.dumps(payload))
    return [records[k] for k in sorted(records)]
