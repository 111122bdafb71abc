"""DICOM import decisions on hand-made index records: rules, time points, ambiguity, links, keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from oncoflow.convert.sop import RTSTRUCT_SOP_CLASS, SEG_SOP_CLASS
from oncoflow.errors import ConfigError, OncoflowError
from oncoflow.importer import Record, load_key, load_rules, plan_import, pseudonym

CT_SOP = "1.2.840.10008.5.1.4.1.1.2"


def _series(
    patient: str,
    uid: str,
    date: str,
    *,
    n: int = 6,
    modality: str = "CT",
    description: str = "ABD VENOUS",
    frame: str = "F1",
    folder: str = "x",
    **numbers: float,
) -> list[Record]:
    records = []
    for i in range(n):
        tags = {
            "PatientID": patient,
            "StudyDate": date,
            "SeriesInstanceUID": uid,
            "SOPInstanceUID": f"{uid}.{i}",
            "SOPClassUID": CT_SOP,
            "Modality": modality,
            "SeriesDescription": description,
            "FrameOfReferenceUID": frame,
            "InstitutionName": "North",
        }
        records.append(
            Record(
                f"{folder}/{uid}_{i}", 1, 1, dicom=True, tags=tags, numbers=dict(numbers),
                image_type=["ORIGINAL", "PRIMARY", "AXIAL"], position=[0.0, 0.0, float(-i)],
            )
        )  # fmt: skip
    return records


def _mask(patient: str, kind: str, path: str, *, refs=(), frames=(), names=("GTV",)) -> Record:
    tags = {
        "PatientID": patient,
        "SeriesInstanceUID": f"mask-{path}",
        "SOPInstanceUID": f"sop-{path}",
        "SOPClassUID": RTSTRUCT_SOP_CLASS if kind == "RTSTRUCT" else SEG_SOP_CLASS,
        "Modality": kind,
    }
    if kind == "SEG" and frames:
        tags["FrameOfReferenceUID"] = frames[0]
    return Record(
        path, 1, 1, dicom=True, tags=tags, referenced_series=list(refs),
        referenced_frames=list(frames) if kind == "RTSTRUCT" else [], structures=list(names),
    )  # fmt: skip


@pytest.fixture(scope="module")
def rules():
    return load_rules()


def test_series_rules_read_descriptions_contrast_and_mr_parameters(rules):
    assert rules.classify({"Modality": "PT"}) == ("PET", "-")
    assert rules.classify({"Modality": "CT", "SeriesDescription": "ABD PORTAL 1.0"}) == (
        "CT",
        "venous",
    )
    assert rules.classify({"Modality": "CT", "ContrastBolusAgent": "Iomeron"}) == ("CT", "venous")
    assert rules.classify({"Modality": "CT", "SeriesDescription": "THORAX"}) == ("CT", "-")
    assert rules.classify({"Modality": "MR", "SeriesDescription": "t1_vibe_post_gd"}) == (
        "MR",
        "T1C",
    )
    # no telling description: the sequence parameters decide
    assert rules.classify({"Modality": "MR", "RepetitionTime": 4500, "EchoTime": 95}) == (
        "MR",
        "T2",
    )
    assert rules.classify({"Modality": "MR", "InversionTime": 2500}) == ("MR", "FLAIR")
    assert rules.classify({"Modality": "US"}) is None
    assert rules.skip_reason({"ImageType": "ORIGINAL\\PRIMARY\\LOCALIZER"}) == "localizer"
    assert rules.skip_reason({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}) == "secondary_capture"


def test_a_bad_rule_file_names_the_rule(tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text("series:\n  - {modality: CT, series: '-', match: {Modality: '(['}}\n")
    with pytest.raises(ConfigError, match="series rule 1: Modality: bad regular expression"):
        load_rules(bad)
    bad.write_text("skip:\n  - {match: {Modality: SR}}\n")
    with pytest.raises(ConfigError, match="skip rule 1: needs a 'reason'"):
        load_rules(bad)


def test_time_points_follow_study_dates_and_an_anchor(rules):
    records = _series("A", "s1", "20240301") + _series("A", "s2", "20240105")
    records += _series("A", "s3", "20240620", description="ABD ARTERIAL")
    plan = plan_import(records, rules)
    assert [(s.series_uid, s.timepoint) for s in plan.slots] == [("s2", 0), ("s1", 1), ("s3", 2)]
    anchored = plan_import(records, rules, anchors={"A": "20240310"})
    assert [(s.series_uid, s.timepoint) for s in anchored.slots] == [("s1", 0), ("s3", 1)]
    assert [(e["reason"], e["series_uid"]) for e in anchored.skipped] == [("before_baseline", "s2")]


def test_ambiguous_slots_short_series_and_copies_are_skipped_and_listed(rules):
    records = _series("A", "s1", "20240301") + _series("A", "s2", "20240301", folder="y")
    records += _series("A", "s3", "20240301", n=2, description="THORAX")
    records += [
        Record("again/0", 1, 1, dicom=True, tags=dict(records[0].tags)),
        Record("notes.txt", 1, 1),
    ]
    plan = plan_import(records, rules)
    assert plan.slots == []
    reasons = sorted((e["reason"], e["path"]) for e in plan.skipped)
    assert reasons == [
        ("ambiguous", "x/s1_0"),
        ("ambiguous", "y/s2_0"),
        ("duplicate", "again/0"),
        ("not_dicom", "notes.txt"),
        ("too_few_slices", "x/s3_0"),
    ]
    ambiguous = next(e for e in plan.skipped if e["reason"] == "ambiguous")
    assert ambiguous["candidates"] == ["s1", "s2"]


def test_masks_link_by_reference_else_by_frame_of_reference(rules):
    records = _series("A", "ct", "20240301", frame="F1")
    records += _series("A", "pet", "20240301", modality="PT", description="WB FDG", frame="F1")
    records += _series("B", "ct2", "20240301", frame="F2", folder="b")
    records += [
        _mask("A", "SEG", "seg.dcm", refs=["pet"], frames=["F1"], names=["Lesion 1"]),
        # re-exported image series: the RTSTRUCT references an UID not in the tree
        _mask("B", "RTSTRUCT", "rs.dcm", refs=["gone"], frames=["F2"], names=["Liver", "gtv"]),
    ]
    plan = plan_import(records, rules)
    linked = {s.series_uid: (s.mask, s.mask_roi, s.linked_by) for s in plan.slots}
    assert linked["pet"] == ("seg.dcm", "Lesion 1", "referenced_series")
    assert linked["ct2"] == ("rs.dcm", "gtv", "frame_of_reference")
    assert linked["ct"] == (None, None, None)


def test_a_mask_without_a_link_or_a_label_is_skipped_with_why(rules):
    records = _series("A", "ct", "20240301", frame="F1")
    records += [
        _mask("A", "RTSTRUCT", "elsewhere.dcm", refs=["gone"], frames=["F9"]),
        _mask("A", "RTSTRUCT", "two.dcm", refs=["ct"], names=["GTV", "Tumour"]),
    ]
    plan = plan_import(records, rules)
    why = {e["path"]: (e["reason"], e["why"]) for e in plan.skipped}
    assert why["elsewhere.dcm"][0] == "unlinked_mask"
    assert why["two.dcm"][0] == "unlabelled_mask"
    assert "several structures (GTV, Tumour)" in why["two.dcm"][1]
    assert plan.slots[0].mask is None


def test_pseudonyms_are_keyed_and_the_key_file_is_checked(tmp_path):
    key = load_key(tmp_path / "k.txt")  # created
    assert load_key(tmp_path / "k.txt") == key
    assert (tmp_path / "k.txt").stat().st_mode & 0o077 == 0
    assert pseudonym(key, "MRN001") == pseudonym(key, "MRN001")
    assert pseudonym(key, "MRN001") != pseudonym(b"another key 1234", "MRN001")
    assert pseudonym(key, "MRN001").startswith("P")
    assert len(pseudonym(key, "MRN001")) == 13
    (tmp_path / "bad.txt").write_text("not hex")
    with pytest.raises(OncoflowError, match="not a key file"):
        load_key(Path(tmp_path / "bad.txt"))
