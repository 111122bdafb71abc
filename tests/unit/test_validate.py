"""validate_cohort end to end (in process) on the valid cohort and on every broken variant."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from broken_cohorts import (
    BROKEN,
    VALID_OPTIONS,
    build_broken_cohort,
    build_valid_cohort,
    edit_cell,
    read_csv,
    write_csv,
)

from oncoflow.validate import CHECKS, validate_cohort
from oncoflow.validate import core as validate_core
from oncoflow.validate.summary import merge_reports


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> Path:
    return build_valid_cohort(tmp_path_factory.mktemp("cohort") / "valid")


def test_valid_cohort_passes_with_counts(valid):
    report = validate_cohort(valid, **VALID_OPTIONS)
    assert report.ok, [p.line() for p in report.problems]
    assert report.problems == []
    assert report.warnings == []
    assert report.n_patients == 4
    assert report.n_images == 6
    assert report.per_site == {
        "A": {"patients": 2, "images": 3},
        "B": {"patients": 2, "images": 3},
    }
    assert report.per_split == {
        "external_test": {"patients": 1, "images": 1},
        "internal_test": {"patients": 1, "images": 2},
        "train": {"patients": 2, "images": 3},
    }
    assert report.excluded == []
    assert report.checks_run == list(CHECKS)
    data = report.to_dict()
    assert data["ok"] is True
    assert data["options"]["mask_labels"] == [1, 2]


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_broken_variant_gives_exactly_its_problem(valid, tmp_path, name):
    cohort, broken = build_broken_cohort(name, tmp_path / name, valid=valid)
    report = validate_cohort(cohort, **broken.all_options())
    assert not report.ok
    lines = [p.line() for p in report.problems]
    assert len(report.problems) == 1, lines
    problem = report.problems[0]
    assert problem.patient_id == broken.patient
    assert problem.file == broken.file
    assert broken.phrase in problem.message, lines
    assert report.excluded == ([broken.patient] if broken.patient else [])


def test_all_problems_are_collected_at_once(valid, tmp_path):
    cohort = tmp_path / "many"
    shutil.copytree(valid, cohort)
    for name in ("missing_image", "empty_mask", "negative_os_time", "two_splits", "unknown_column"):
        BROKEN[name].mutate(cohort)
    edit_cell(cohort, "images", "P003", "mask_roi", "")
    report = validate_cohort(cohort, **VALID_OPTIONS)
    checks = sorted(p.check for p in report.problems)
    # missing image: the mask of P004 is still checked (empty mask found as well)
    assert checks == ["masks", "paths", "schema", "schema", "splits"]
    assert report.excluded == ["P001", "P002", "P004"]


def test_missing_cohort_folder(tmp_path):
    report = validate_cohort(tmp_path / "nope")
    assert [p.line() for p in report.problems] == [
        f"{tmp_path / 'nope'}: cohort folder does not exist"
    ]


def test_policies_and_labels_change_the_verdict(valid, tmp_path):
    cohort, _ = build_broken_cohort("tilted_ct", tmp_path / "tilt", valid=valid)
    assert validate_cohort(cohort, tilt="resample").ok
    assert not validate_cohort(cohort, tilt="refuse").ok
    cohort, _ = build_broken_cohort("mask_undeclared_label", tmp_path / "lab", valid=valid)
    assert validate_cohort(cohort, mask_labels=None).ok
    assert not validate_cohort(cohort, mask_labels=[1, 2, 4]).ok
    with pytest.raises(ValueError, match="tilt must be one of resample, refuse"):
        validate_cohort(cohort, tilt="ignore")


def test_unexpected_error_in_a_check_becomes_a_problem(valid, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("library exploded\nsecond line")

    monkeypatch.setattr(validate_core.files, "check_slide", boom)
    report = validate_cohort(valid, **VALID_OPTIONS)
    assert [p.line() for p in report.problems] == [
        "patient P001: slides/P001.tif: slides check failed: RuntimeError: library exploded"
    ]


def test_schema_and_outcome_checks_do_not_report_twice(valid, tmp_path):
    cohort, _ = build_broken_cohort("negative_os_time", tmp_path / "neg", valid=valid)
    report = validate_cohort(cohort, **VALID_OPTIONS)
    assert [p.check for p in report.problems] == ["schema"]


def test_shared_mask_is_reported_once(valid, tmp_path):
    cohort, _ = build_broken_cohort("empty_mask", tmp_path / "shared", valid=valid)
    table = read_csv(cohort, "images")
    extra = table[table["patient_id"] == "P004"].assign(
        series="arterial", path="images/P004/a.nii.gz"
    )
    shutil.copy(cohort / "images" / "P004" / "ct.nii.gz", cohort / "images" / "P004" / "a.nii.gz")
    write_csv(cohort, "images", pd.concat([table, extra], ignore_index=True))
    report = validate_cohort(cohort, **VALID_OPTIONS)
    assert [p.line() for p in report.problems] == [
        "patient P004: images/P004/mask.nii.gz: mask is empty (no non-zero voxel)"
    ]
    assert report.n_images == 7


def test_outcomes_are_optional_for_a_cohort_that_is_only_predicted(valid, tmp_path):
    cohort = tmp_path / "new"
    shutil.copytree(valid, cohort)
    (cohort / "outcomes.csv").unlink()
    options = {k: v for k, v in VALID_OPTIONS.items() if k != "targets"}
    report = validate_cohort(cohort, **options)
    assert [p.line() for p in report.problems] == [
        "outcomes.csv: required table outcomes.csv does not exist in the cohort folder"
    ]
    assert validate_cohort(cohort, **options, outcomes_required=False).ok


def _decision(clinical: str, dropped: dict | None = None) -> dict:
    return {
        "policy": {"modalities": "drop_patient", "timepoints": "refuse", "clinical": clinical},
        "dropped": dropped or {},
        "imputed": {"age": ["P004"]} if clinical == "impute" else {},
        "partial": {},
    }


def test_an_imputed_clinical_value_is_a_warning_and_the_decision_is_recorded(valid, tmp_path):
    cohort, _ = build_broken_cohort("nan_clinical", tmp_path / "nan", valid=valid)
    refused = validate_cohort(cohort, **VALID_OPTIONS, missing=_decision("refuse"))
    assert [p.check for p in refused.problems] == ["clinical"]  # refuse: an error, as without
    report = validate_cohort(cohort, **VALID_OPTIONS, missing=_decision("impute"))
    assert report.ok, [p.line() for p in report.problems]
    assert report.excluded == []
    assert [p.line() for p in report.warnings] == [
        "patient P004: clinical.csv: line 5: required clinical field 'age' is missing (empty or "
        "NaN); it will be imputed with the median of each fold's training patients "
        "(missing.clinical: impute)"
    ]
    data = report.to_dict()
    assert data["missing"] == _decision("impute")
    assert data["options"]["missing"] == _decision("impute")["policy"]
    assert data["warnings"][0]["patient_id"] == "P004"
    assert "missing" not in validate_cohort(valid, **VALID_OPTIONS).to_dict()  # as before


def test_a_dropped_patient_is_recorded_not_an_error(valid, tmp_path):
    cohort, _ = build_broken_cohort("nan_clinical", tmp_path / "nan", valid=valid)
    decision = _decision("refuse", {"P004": ["MR_T2 at time point 0"]})
    report = validate_cohort(cohort, **VALID_OPTIONS, missing=decision)
    assert report.ok, [p.line() for p in report.problems]
    assert report.excluded == []
    assert [p.patient_id for p in report.warnings] == ["P004"]
    assert "left out for missing inputs" in report.warnings[0].message
    assert report.to_dict()["missing"]["dropped"] == {"P004": ["MR_T2 at time point 0"]}
    with pytest.raises(ValueError, match=r"missing\.dropped: expected an object of lists"):
        validate_cohort(valid, missing={"dropped": {"P004": "MR_T2"}})


def test_the_merged_report_keeps_each_studys_decision(valid, tmp_path):
    decision = _decision("refuse", {"P004": ["time point 1"]})
    paths = []
    for study, missing in (("a", decision), ("b", None)):
        path = tmp_path / study / "cohort_report.json"
        path.parent.mkdir()
        report = validate_cohort(valid, **VALID_OPTIONS, missing=missing)
        path.write_text(json.dumps(report.to_dict()))
        paths.append(path)
    merged = merge_reports(paths)
    assert merged["studies"]["a"]["missing"]["dropped"] == {"P004": ["time point 1"]}
    assert "missing" not in merged["studies"]["b"]
