"""Decide from the index of a DICOM tree which series fill which cohort slot, and what is skipped.

Nothing is read or written here: :func:`plan_import` works on the :class:`~.index.Record` list.

1. Files that are not DICOM, unreadable, or a second copy of an SOP instance already seen (the
   first path in sorted order is kept) are skipped.
2. The rest are grouped by SeriesInstanceUID. RTSTRUCT and SEG objects are masks; every other
   series is an image series, dropped by the first matching ``skip`` rule, when it has fewer than
   ``min_slices`` instances (or frames), or when no ``series`` rule classifies it
   (:mod:`~.rules`).
3. Time points per patient from study dates: the distinct dates of the patient's kept series in
   order, 0 = the earliest; with an anchor date (e.g. the treatment start of the clinical table)
   0 is the last date on or before it (the first after it when there is none), earlier dates are
   skipped as ``before_baseline``, later ones are 1, 2, ...
4. A slot (patient, time point, modality, series) with several candidate series is ambiguous:
   every candidate is skipped and listed, rather than one picked silently.
5. Each mask is linked to the image series it was drawn on: the series it references
   (``referenced_series``), else the series holding the instances its contours / frames
   reference (``referenced_instances``), else, for re-exported or cropped series whose UIDs
   changed, the one kept series of the patient in its frame of reference, CT before MR before
   PET (``frame_of_reference``). Its structure names give ``mask_roi`` by the ``masks`` rules;
   a mask that cannot be linked or labelled is skipped (its image stays, without a mask).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from oncoflow.convert.sop import RTSTRUCT_SOP_CLASS, SEG_SOP_CLASS
from oncoflow.importer.index import Record
from oncoflow.importer.rules import Rules

__all__ = ["FRAME_PREFERENCE", "ImportPlan", "Slot", "dicom_date", "plan_import"]

FRAME_PREFERENCE = ("CT", "MR", "PET")
"""Modalities a mask is linked to by frame of reference, most likely first."""


@dataclass
class Slot:
    """One image series that becomes one row of ``images.csv``.

    Attributes:
        patient: The original PatientID (pseudonymised when the cohort is written).
        timepoint: Time point (step 3 of the module docstring).
        modality, series: The cohort's modality and series names.
        series_uid: SeriesInstanceUID.
        files: Its files (one per SOP instance), relative to the tree, in instance order.
        institution: InstitutionName (the site is derived from it).
        frame_of_reference: FrameOfReferenceUID.
        mask: The linked mask file, ``None`` without one.
        mask_roi: Structure names of labels 1, 2, ... joined by ``+``.
        linked_by: How the mask was linked (step 5).
    """

    patient: str
    timepoint: int
    modality: str
    series: str
    series_uid: str
    files: list[str]
    institution: str
    frame_of_reference: str = ""
    mask: str | None = None
    mask_roi: str | None = None
    linked_by: str | None = None


@dataclass
class ImportPlan:
    """The slots of the cohort and every skipped object with its reason."""

    slots: list[Slot] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    masks: list[dict[str, Any]] = field(default_factory=list)

    def skip(self, reason: str, path: str, **extra: Any) -> None:
        """Record a skipped object (``path``: one of its files, relative to the tree)."""
        self.skipped.append({"reason": reason, "path": path, **extra})


@dataclass
class _Series:
    uid: str
    records: list[Record]

    @property
    def first(self) -> Record:
        return self.records[0]

    @property
    def kind(self) -> str:
        sop = self.first.tag("SOPClassUID")
        modality = self.first.tag("Modality")
        if sop == RTSTRUCT_SOP_CLASS or modality == "RTSTRUCT":
            return "RTSTRUCT"
        if sop == SEG_SOP_CLASS or modality == "SEG":
            return "SEG"
        return "image"

    @property
    def n_slices(self) -> int:
        frames = int(self.first.numbers.get("NumberOfFrames", 1))
        return max(len(self.records), frames)

    def values(self) -> dict[str, str | float]:
        """Header values the rules match on (ImageType joined by a backslash)."""
        out: dict[str, str | float] = {**self.first.tags, **self.first.numbers}
        out["ImageType"] = "\\".join(self.first.image_type)
        return out


def _unique_instances(records: list[Record], plan: ImportPlan) -> list[Record]:
    """DICOM records with one file per SOP instance; the rest skipped (step 1)."""
    seen: dict[str, str] = {}
    kept = []
    for record in records:
        if not record.dicom:
            reason = "unreadable" if record.error else "not_dicom"
            plan.skip(reason, record.path, **({"error": record.error} if record.error else {}))
            continue
        sop = record.tag("SOPInstanceUID")
        if sop and sop in seen:
            uid = record.tag("SeriesInstanceUID")
            plan.skip("duplicate", record.path, series_uid=uid, copy_of=seen[sop])
            continue
        seen[sop] = record.path
        kept.append(record)
    return kept


def _instance_order(record: Record) -> tuple[float, str]:
    """Sort key of an image series' files: position along z, then path."""
    return (record.position[2] if len(record.position) == 3 else 0.0, record.path)


def _timepoints(dates: list[str], anchor: str | None) -> dict[str, int | None]:
    """Time point of each study date (``None``: before the baseline), step 3."""
    ordered = sorted(set(dates))
    base = 0
    if anchor:
        before = [i for i, d in enumerate(ordered) if d <= anchor]
        base = before[-1] if before else 0
    return {d: (i - base if i >= base else None) for i, d in enumerate(ordered)}


def _image_slots(
    series: list[_Series], rules: Rules, plan: ImportPlan, anchors: Mapping[str, str]
) -> list[Slot]:
    """Steps 2-4 for the image series."""
    candidates = []
    for s in series:
        reason = rules.skip_reason(s.values())
        if reason is None and s.n_slices < rules.min_slices:
            reason = "too_few_slices"
        slot = None if reason else rules.classify(s.values())
        if reason or slot is None:
            plan.skip(
                reason or "unclassified", s.first.path, series_uid=s.uid, files=len(s.records)
            )
            continue
        candidates.append((s, slot))
    dates: dict[str, list[str]] = defaultdict(list)
    for s, _ in candidates:
        dates[s.first.tag("PatientID")].append(s.first.tag("StudyDate"))
    tps = {p: _timepoints(d, anchors.get(p)) for p, d in dates.items()}
    by_slot: dict[tuple[str, int, str, str], list[_Series]] = defaultdict(list)
    for s, (modality, name) in candidates:
        patient = s.first.tag("PatientID")
        tp = tps[patient][s.first.tag("StudyDate")]
        if tp is None:
            plan.skip("before_baseline", s.first.path, series_uid=s.uid)
            continue
        by_slot[(patient, tp, modality, name)].append(s)
    slots = []
    for (patient, tp, modality, name), found in sorted(by_slot.items()):
        if len(found) > 1:
            uids = [s.uid for s in found]
            for s in found:
                plan.skip(
                    "ambiguous",
                    s.first.path,
                    series_uid=s.uid,
                    slot=f"{modality} {name}",
                    timepoint=tp,
                    candidates=uids,
                )
            continue
        s = found[0]
        files = [r.path for r in sorted(s.records, key=_instance_order)]
        slots.append(
            Slot(
                patient,
                tp,
                modality,
                name,
                s.uid,
                files,
                s.first.tag("InstitutionName"),
                s.first.tag("FrameOfReferenceUID"),
            )
        )
    return slots


def _link(
    mask: Record, slots: list[Slot], sop_series: Mapping[str, str]
) -> tuple[Slot | None, str]:
    """The slot a mask was drawn on and how it was found (step 5); ``(None, why)`` if none."""
    by_uid = {s.series_uid: s for s in slots}
    for uid in mask.referenced_series:
        if uid in by_uid:
            return by_uid[uid], "referenced_series"
    via_instances = {sop_series[i] for i in mask.referenced_instances if i in sop_series}
    if len(via_instances) == 1 and next(iter(via_instances)) in by_uid:
        return by_uid[next(iter(via_instances))], "referenced_instances"
    frames = set(mask.referenced_frames) | {mask.tag("FrameOfReferenceUID")} - {""}
    patient = mask.tag("PatientID")
    same = [s for s in slots if s.patient == patient and s.frame_of_reference in frames]
    for modality in FRAME_PREFERENCE:
        found = [s for s in same if s.modality == modality]
        if len(found) == 1:
            return found[0], "frame_of_reference"
        if len(found) > 1:
            names = ", ".join(f"{s.modality} {s.series} tp {s.timepoint}" for s in found)
            return None, f"several {modality} series in its frame of reference ({names})"
    return None, "references no series of the tree and no kept series shares its frame of reference"


def plan_import(
    records: list[Record], rules: Rules, *, anchors: Mapping[str, str] | None = None
) -> ImportPlan:
    """The import plan of an indexed tree (module docstring).

    Args:
        records: :func:`~.index.index_tree` of the tree.
        rules: Series, skip and mask-label rules.
        anchors: Baseline anchor date (``YYYYMMDD``) by original PatientID, optional.

    Returns:
        The slots (one per cohort image row) and the skipped objects.
    """
    plan = ImportPlan()
    kept = _unique_instances(records, plan)
    groups: dict[str, list[Record]] = defaultdict(list)
    for record in kept:
        groups[record.tag("SeriesInstanceUID") or f"(no series uid) {record.path}"].append(record)
    series = [_Series(uid, recs) for uid, recs in groups.items()]
    images = [s for s in series if s.kind == "image"]
    slots = _image_slots(images, rules, plan, anchors or {})
    sop_series = {r.tag("SOPInstanceUID"): s.uid for s in images for r in s.records}
    masks_of: dict[str, list[tuple[Record, str, str]]] = defaultdict(list)
    for s in series:
        if s.kind == "image":
            continue
        for mask in s.records:
            slot, how = _link(mask, slots, sop_series)
            if slot is None:
                plan.skip("unlinked_mask", mask.path, format=s.kind, why=how)
                continue
            roi, problem = rules.mask_roi(mask.structures)
            if problem is None and not roi and s.kind == "RTSTRUCT":
                problem = "an RTSTRUCT needs mask label rules (masks.labels of the rule file)"
            if problem:
                plan.skip("unlabelled_mask", mask.path, format=s.kind, why=problem)
                continue
            masks_of[slot.series_uid].append((mask, roi or "", how))
    for slot in slots:
        found = masks_of.get(slot.series_uid, [])
        if len(found) > 1:
            for mask, _, _ in found:
                plan.skip("ambiguous_mask", mask.path, candidates=[m.path for m, _, _ in found])
            continue
        if found:
            mask, roi, how = found[0]
            slot.mask, slot.mask_roi, slot.linked_by = mask.path, roi or None, how
    plan.slots = slots
    return plan


def dicom_date(text: str) -> str:
    """A date as DICOM writes it (``YYYYMMDD``) from ``YYYY-MM-DD`` or ``YYYYMMDD`` text."""
    text = str(text).strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d", "%d.%m.%Y", "%Y/%m/%d"):
        try:
            return dt.datetime.strptime(text, fmt).strftime("%Y%m%d")
        except ValueError:
            continue
    msg = f"not a date: {text!r} (expected YYYY-MM-DD)"
    raise ValueError(msg)
