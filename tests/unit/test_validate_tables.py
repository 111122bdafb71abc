"""Table-level cohort checks (oncoflow.validate.tables), each on a small in-memory table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oncoflow.validate import tables
from oncoflow.validate.report import WARNING, CohortReport, Problem


def _images(*rows: tuple) -> pd.DataFrame:
    columns = ["patient_id", "timepoint", "modality", "series", "path", "site"]
    return pd.DataFrame(list(rows), columns=columns)


def _messages(found: list[Problem]) -> list[str]:
    return [p.line() for p in found]


IMAGES = _images(
    ("A", 0, "CT", "venous", "a.nii.gz", "s1"),
    ("B", 0, "CT", "venous", "b.nii.gz", "s2"),
)


def test_problem_line_and_report_dict():
    p = Problem("P1", "images/P1/ct.nii.gz", "geometry", "mask geometry differs")
    assert p.line() == "patient P1: images/P1/ct.nii.gz: mask geometry differs"
    assert p.line(patient_label="subject").startswith("subject P1: ")
    assert Problem(None, "clinical.csv", "schema", "x").line() == "clinical.csv: x"
    assert Problem(None, None, "tables", "x").line() == "x"
    report = CohortReport("c")
    report.add([p, Problem("P2", None, "slides", "w", severity=WARNING)])
    assert not report.ok
    data = report.to_dict()
    assert data["ok"] is False
    assert data["problems"] == [
        {
            "patient_id": "P1",
            "file": "images/P1/ct.nii.gz",
            "check": "geometry",
            "message": "mask geometry differs",
        }
    ]
    assert len(data["warnings"]) == 1


def test_check_columns_unknown_missing_dependent():
    clinical = pd.DataFrame({"patient_id": ["A"], "bmi": [22.5]})
    found = tables.check_columns("clinical", clinical)
    assert len(found) == 1
    assert found[0].file == "clinical.csv"
    assert "unknown column 'bmi' (value 22.5 on line 2, patient A)" in found[0].message
    images = IMAGES.drop(columns=["site"])
    assert _messages(tables.check_columns("images", images)) == [
        "images.csv: missing required column 'site'"
    ]
    outcomes = pd.DataFrame({"patient_id": ["A"], "os_time": [3.0]})
    assert _messages(tables.check_columns("outcomes", outcomes)) == [
        "outcomes.csv: column 'os_time' needs column 'os_event' as well"
    ]


def test_check_schema_reports_line_column_and_value():
    images = _images(
        ("A", 0, "XR", "venous", "a.nii.gz", "s1"),
        ("B", "first", "CT", "venous", "b.nii.gz", None),
        ("bad id!", 0, "CT", "venous", "", "s1"),
    )
    found = tables.check_schema("images", images)
    lines = _messages(found)
    assert "patient A: images.csv: line 2: column 'modality': value 'XR' is not one of" in lines[0]
    assert (
        "patient B: images.csv: line 3: column 'timepoint': value 'first' is not of type integer"
        in lines
    )
    assert "patient B: images.csv: line 3: column 'site' is empty but a value is required" in lines
    assert any(
        "column 'patient_id': value 'bad id!' does not match the pattern" in x for x in lines
    )
    assert any("line 4: column 'path' is empty but a value is required" in x for x in lines)
    assert len(found) == 5
    assert all(p.check == "schema" for p in found)


def test_check_schema_minimum_and_enum_on_outcomes():
    outcomes = pd.DataFrame(
        {"patient_id": ["A", "B"], "os_time": [-3.0, 10.0], "os_event": pd.array([1, 2], "Int64")}
    )
    lines = _messages(tables.check_schema("outcomes", outcomes))
    assert lines == [
        "patient A: outcomes.csv: line 2: column 'os_time': value -3.0 is below the minimum 0 "
        "(negative)",
        "patient B: outcomes.csv: line 3: column 'os_event': value 2 is not one of 0, 1, empty",
    ]


def test_check_schema_valid_table_has_no_problem():
    assert tables.check_schema("images", IMAGES) == []


def test_check_unique_ids():
    images = _images(
        ("A", 0, "CT", "venous", "a.nii.gz", "s1"),
        ("A", 0, "CT", "venous", "a2.nii.gz", "s1"),
        ("A", 1, "CT", "venous", "a3.nii.gz", "s1"),
    )
    clinical = pd.DataFrame({"patient_id": ["A", "B", "A"]})
    outcomes = pd.DataFrame({"patient_id": ["A", "A"], "os_time": [1.0, 2.0]})
    lines = _messages(tables.check_unique_ids(images, clinical, outcomes))
    assert lines == [
        "patient A: clinical.csv: duplicate patient_id on lines 2, 4",
        "patient A: images.csv: duplicate image (timepoint 0, modality CT, series venous) "
        "on lines 2, 3",
        "patient A: outcomes.csv: duplicate outcome row on lines 2, 3 (one row per patient)",
    ]


def test_check_unique_ids_longitudinal_outcomes():
    outcomes = pd.DataFrame(
        {"patient_id": ["A", "A", "A"], "timepoint": pd.array([0, 1, 1], "Int64")}
    )
    found = tables.check_unique_ids(None, None, outcomes)
    assert len(found) == 1
    assert "duplicate outcome row at timepoint 1 on lines 3, 4" in found[0].message


def test_check_references_both_directions():
    clinical = pd.DataFrame({"patient_id": ["A", "C"]})
    outcomes = pd.DataFrame({"patient_id": ["A", "B"]})
    lines = _messages(tables.check_references(IMAGES, clinical, outcomes))
    assert lines == [
        "patient B: clinical.csv: patient has images but no row in clinical.csv",
        "patient C: clinical.csv: patient is in clinical.csv but has no image in images.csv",
    ]
    assert tables.check_references(None, clinical, outcomes) == []


def test_check_splits():
    splits = pd.DataFrame(
        {
            "patient_id": ["A", "A", "C", "C", "D"],
            "split": ["train", "internal_test", *["train"] * 3],
        }
    )
    images = _images(*IMAGES.itertuples(index=False), ("C", 0, "CT", "venous", "c", "s1"))
    found = tables.check_splits(splits, images)
    lines = _messages(found)
    assert lines == [
        "patient A: splits.csv: patient is in more than one split (internal_test, train; "
        "lines 2, 3)",
        "patient C: splits.csv: duplicate patient_id in splits.csv (lines 4, 5)",
        "patient B: splits.csv: patient has images but no row in splits.csv",
        "patient D: splits.csv: patient is in splits.csv but has no image in images.csv",
    ]
    assert [p.severity for p in found] == ["error", "error", "error", "warning"]
    assert tables.check_splits(None, images) == []


def test_check_outcomes_values():
    outcomes = pd.DataFrame(
        {
            "patient_id": ["A", "B", "C"],
            "os_time": [-1.0, np.nan, 5.0],
            "os_event": pd.array([1, 2, pd.NA], "Int64"),
            "pfs_time": ["x", None, None],
        }
    )
    lines = _messages(tables.check_outcomes(outcomes))
    assert lines == [
        "patient A: outcomes.csv: line 2: column 'os_time': time -1.0 is negative "
        "(must be ≥ 0 days)",
        "patient B: outcomes.csv: line 3: column 'os_event': event value 2 is not 0 or 1",
        "patient A: outcomes.csv: line 2: column 'pfs_time': time 'x' is not a number of days",
    ]


def test_check_outcomes_targets_and_partners():
    outcomes = pd.DataFrame(
        {
            "patient_id": ["A", "B"],
            "os_time": [10.0, np.nan],
            "os_event": pd.array([1, 0], "Int64"),
        }
    )
    found = tables.check_outcomes(outcomes, targets=["os_event", "subtype"])
    lines = _messages(found)
    # os_event's partner os_time is required as well; subtype is not a column
    assert lines == [
        "outcomes.csv: declared target 'subtype' is not a column of outcomes.csv",
        "patient B: outcomes.csv: line 3: declared target 'os_time' is missing (empty or NaN)",
    ]


def test_check_outcomes_longitudinal_last_timepoint_may_be_empty():
    outcomes = pd.DataFrame(
        {
            "patient_id": ["A", "A", "A", "B", "B"],
            "timepoint": pd.array([0, 1, 2, 0, 1], "Int64"),
            "progression_next": pd.array([0, 1, pd.NA, pd.NA, pd.NA], "Int64"),
        }
    )
    found = tables.check_outcomes(outcomes, targets=["progression_next"])
    assert _messages(found) == [
        "patient B: outcomes.csv: line 5: declared target 'progression_next' is missing at "
        "timepoint 0 (only the last may be empty)"
    ]


def test_check_clinical_required_fields():
    clinical = pd.DataFrame({"patient_id": ["A", "B"], "age": [60.0, np.nan], "sex": ["F", None]})
    lines = _messages(tables.check_clinical(clinical, required=["age", "sex", "ecog"]))
    assert lines == [
        "patient B: clinical.csv: line 3: required clinical field 'age' is missing (empty or NaN)",
        "patient B: clinical.csv: line 3: required clinical field 'sex' is missing (empty or NaN)",
        "clinical.csv: required clinical field 'ecog' is not a column of clinical.csv",
    ]
    assert tables.check_clinical(clinical) == []


@pytest.mark.parametrize("table", [None])
def test_checks_accept_absent_tables(table):
    assert tables.check_outcomes(table, targets=["os_time"]) == []
    assert tables.check_clinical(table, required=["age"]) == []
    assert tables.check_unique_ids(table, table, table) == []
