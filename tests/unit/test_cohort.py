"""Typed reading of cohort tables, path resolution and row coercion (oncoflow.cohort)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from oncoflow.cohort import (
    Cohort,
    is_missing,
    load_cohort,
    read_table,
    resolve,
    row_to_record,
)
from oncoflow.errors import CohortError
from oncoflow.schemas import load_schema


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.csv").write_text(text)


def _minimal(folder: Path, *, splits: bool = True) -> Path:
    _write(
        folder,
        "images",
        "patient_id,timepoint,modality,series,path,mask_path,mask_roi,site\n"
        "007,0,CT,venous,img/007.nii.gz,,,A\n"
        "007,1,CT,venous,img/007_1.nii.gz,img/m.nii.gz,,A\n",
    )
    _write(folder, "clinical", "patient_id,age,sex,ecog\n007,61.5,F,\n")
    _write(folder, "outcomes", "patient_id,os_time,os_event\n007,100,1\n")
    if splits:
        _write(folder, "splits", "patient_id,split\n007,train\n")
    return folder


def test_read_table_keeps_ids_as_text_and_types_columns(tmp_path):
    root = _minimal(tmp_path)
    images = read_table(root, "images")
    assert images["patient_id"].tolist() == ["007", "007"]
    assert str(images["timepoint"].dtype) == "Int64"
    assert images["timepoint"].tolist() == [0, 1]
    assert images["mask_path"].tolist() == [None, "img/m.nii.gz"]
    clinical = read_table(root, "clinical")
    assert clinical["age"].dtype == np.float64
    assert clinical.at[0, "age"] == pytest.approx(61.5)
    assert str(clinical["ecog"].dtype) == "Int64"
    assert clinical["ecog"].isna().all()
    outcomes = read_table(root, "outcomes")
    assert str(outcomes["os_event"].dtype) == "Int64"
    # os_time is a "number" column: all values integral, but kept as float
    assert outcomes["os_time"].dtype == np.float64


def test_read_table_ints_with_gaps_stay_ints(tmp_path):
    _write(tmp_path, "outcomes", "patient_id,timepoint,progression_next\nA,0,1\nA,1,\nA,2,0\n")
    table = read_table(tmp_path, "outcomes")
    assert str(table["progression_next"].dtype) == "Int64"
    assert table["progression_next"].iloc[0] == 1
    assert table["progression_next"].isna().tolist() == [False, True, False]


def test_read_table_missing_tokens_and_bad_values(tmp_path):
    _write(tmp_path, "clinical", "patient_id,age,sex,bmi\nNA,NaN, M ,22.5\nB,abc,,x\n")
    table = read_table(tmp_path, "clinical")
    # patient_id is never parsed as missing, other columns are
    assert table["patient_id"].tolist() == ["NA", "B"]
    # a non-numeric value keeps the column as text so validation can show it verbatim
    assert table["age"].tolist() == [None, "abc"]
    assert table["sex"].tolist() == ["M", None]
    # unknown column: inferred (here text, because of "x")
    assert table["bmi"].tolist() == ["22.5", "x"]


def test_read_table_unknown_numeric_column_inferred(tmp_path):
    _write(tmp_path, "clinical", "patient_id,bmi,visits\nA,22.5,3\nB,,4\n")
    table = read_table(tmp_path, "clinical")
    assert table["bmi"].dtype == np.float64
    assert math.isnan(table.at[1, "bmi"])
    assert str(table["visits"].dtype) == "Int64"


def test_read_table_errors_name_the_file(tmp_path):
    with pytest.raises(CohortError, match=r"clinical\.csv does not exist"):
        read_table(tmp_path, "clinical")
    (tmp_path / "images.csv").write_text("")
    with pytest.raises(CohortError, match=r"cannot read images\.csv"):
        read_table(tmp_path, "images")


def test_resolve_relative_and_absolute(tmp_path):
    assert resolve(tmp_path, "images/a.nii.gz") == tmp_path / "images" / "a.nii.gz"
    assert resolve(tmp_path, " images/a.nii.gz ") == tmp_path / "images" / "a.nii.gz"
    absolute = tmp_path / "elsewhere" / "b.nii.gz"
    assert resolve(Path("/some/cohort"), str(absolute)) == absolute


def test_load_cohort_with_and_without_splits(tmp_path):
    cohort = load_cohort(_minimal(tmp_path / "a"))
    assert isinstance(cohort, Cohort)
    assert len(cohort.images) == 2
    assert cohort.splits is not None
    assert cohort.table("splits") is cohort.splits
    assert load_cohort(_minimal(tmp_path / "b", splits=False)).splits is None
    with pytest.raises(KeyError):
        cohort.table("nope")


def test_load_cohort_lists_every_missing_table(tmp_path):
    _write(tmp_path, "images", "patient_id\n")
    with pytest.raises(CohortError) as info:
        load_cohort(tmp_path)
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert "clinical.csv" in lines[0]
    assert "outcomes.csv" in lines[1]


def test_row_to_record_coerces_to_schema_types():
    schema = load_schema("images")
    row = pd.Series(
        {
            "patient_id": 7,
            "timepoint": np.float64(2.0),
            "modality": "CT",
            "series": "-",
            "path": "a.nii.gz",
            "mask_path": np.nan,
            "mask_roi": None,
            "site": "A",
            "extra": np.int64(3),
        }
    )
    record = row_to_record(row, schema)
    assert record == {
        "patient_id": "7",
        "timepoint": 2,
        "modality": "CT",
        "series": "-",
        "path": "a.nii.gz",
        "mask_path": None,
        "mask_roi": None,
        "site": "A",
        "extra": 3,
    }
    assert type(record["timepoint"]) is int
    assert type(record["extra"]) is int


def test_row_to_record_leaves_unfit_values_for_the_validator():
    schema = load_schema("outcomes")
    record = row_to_record(
        {"patient_id": "A", "os_time": "soon", "os_event": 1.5, "timepoint": "3"}, schema
    )
    assert record["os_time"] == "soon"
    assert record["os_event"] == 1.5
    assert record["timepoint"] == 3
    # "number" columns accept integers unchanged
    assert row_to_record({"os_time": 5}, schema)["os_time"] == 5


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, True), (float("nan"), True), (pd.NA, True), ("  ", True), (0, False), ("x", False)],
)
def test_is_missing(value, expected):
    assert is_missing(value) is expected


def test_read_table_strips_excel_bom(tmp_path):
    (tmp_path / "splits.csv").write_bytes("patient_id,split\nA,train\n".encode("utf-8-sig"))
    assert list(read_table(tmp_path, "splits").columns) == ["patient_id", "split"]
