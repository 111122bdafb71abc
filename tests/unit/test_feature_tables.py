"""merge_features: per-patient tidy CSVs -> one wide table, settings checked."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from oncoflow.errors import FeatureError
from oncoflow.features.tables import merge_features

FEATURES = ["original_shape_VoxelVolume", "original_firstorder_Mean", "wavelet-LLH_glcm_Idm"]


def _tidy(
    path: Path,
    patient: str,
    values: list[float],
    *,
    timepoint: int | None = 0,
    settings: str = "aaaa111122223333",
    features: list[str] = FEATURES,
) -> Path:
    table = pd.DataFrame(
        {
            "feature": features,
            "value": values,
            "image_type": [f.split("_")[0] for f in features],
            "feature_class": [f.split("_")[1] for f in features],
            "label": 1,
            "settings_hash": settings,
            "params_file": "params/radiomics/ct_default_v1.yaml",
            "pyradiomics_version": "v3.1.4",
        }
    )
    if timepoint is not None:
        table.insert(0, "timepoint", timepoint)
    table.insert(0, "patient_id", patient)
    table.to_csv(path, index=False)
    return path


def test_wide_table_with_timepoints(tmp_path):
    paths = [
        _tidy(tmp_path / "b0.csv", "NET002", [10.0, 0.1 + 0.2, 1 / 3]),
        _tidy(tmp_path / "a1.csv", "NET001", [30.5, -5.25, 0.75], timepoint=1),
        _tidy(tmp_path / "a0.csv", "NET001", [20.0, 1e-300, 2.0 / 7.0]),
    ]
    out = tmp_path / "merged" / "radiomics.csv"
    wide = merge_features(paths, out=out)
    assert list(wide.columns) == [
        "patient_id",
        "timepoint",
        *(f"radiomics__{f}" for f in FEATURES),
    ]
    assert wide[["patient_id", "timepoint"]].values.tolist() == [
        ["NET001", 0],
        ["NET001", 1],
        ["NET002", 0],
    ]
    assert wide["radiomics__original_firstorder_Mean"].tolist() == [1e-300, -5.25, 0.1 + 0.2]
    assert wide["radiomics__wavelet-LLH_glcm_Idm"].iloc[2] == 1 / 3
    back = pd.read_csv(out, float_precision="round_trip", dtype={"patient_id": str})
    pd.testing.assert_frame_equal(back, wide)


def test_without_timepoint_and_custom_prefix(tmp_path):
    paths = [_tidy(tmp_path / f"{p}.csv", p, [1.0, 2.0, 3.0], timepoint=None) for p in ("P2", "P1")]
    wide = merge_features(paths, prefix="pet")
    assert list(wide.columns[:2]) == ["patient_id", "pet__original_shape_VoxelVolume"]
    assert wide["patient_id"].tolist() == ["P1", "P2"]


def test_patient_ids_stay_strings(tmp_path):
    paths = [_tidy(tmp_path / "a.csv", "007", [1.0, 2.0, 3.0], timepoint=None)]
    assert merge_features(paths)["patient_id"].tolist() == ["007"]


def test_mismatched_settings_hash_is_an_error(tmp_path):
    a = _tidy(tmp_path / "a.csv", "P1", [1.0, 2.0, 3.0])
    b = _tidy(tmp_path / "b.csv", "P2", [1.0, 2.0, 3.0], settings="bbbb111122223333")
    with pytest.raises(FeatureError) as err:
        merge_features([a, b])
    message = str(err.value)
    assert "b.csv" in message
    assert "a.csv" in message
    assert "bbbb111122223333" in message
    assert "aaaa111122223333" in message


def test_duplicate_feature_is_an_error(tmp_path):
    a = _tidy(tmp_path / "a.csv", "P1", [1.0, 2.0, 3.0])
    b = _tidy(tmp_path / "b.csv", "P1", [1.0, 2.0, 3.0])
    with pytest.raises(FeatureError, match=r"given twice for patient_id P1, timepoint 0"):
        merge_features([a, b])


def test_missing_feature_becomes_nan(tmp_path):
    a = _tidy(tmp_path / "a.csv", "P1", [1.0, 2.0, 3.0])
    b = _tidy(tmp_path / "b.csv", "P2", [4.0, 5.0], features=FEATURES[:2])
    wide = merge_features([a, b])
    assert math.isnan(wide["radiomics__wavelet-LLH_glcm_Idm"].iloc[1])


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda d: d / "nope.csv", "nope.csv: feature table does not exist"),
        (
            lambda d: (d / "x.csv").write_text("feature,value\na,1\n") and d / "x.csv",
            "lacks column.*patient_id",
        ),
        (lambda d: (d / "e.csv").write_text("") or d / "e.csv", "not a readable feature CSV"),
    ],
    ids=["missing", "no-patient", "empty"],
)
def test_bad_inputs(tmp_path, make, match):
    with pytest.raises(FeatureError, match=match):
        merge_features([make(tmp_path)])


def test_timepoint_in_some_inputs_only(tmp_path):
    a = _tidy(tmp_path / "a.csv", "P1", [1.0, 2.0, 3.0])
    b = _tidy(tmp_path / "b.csv", "P2", [1.0, 2.0, 3.0], timepoint=None)
    with pytest.raises(FeatureError, match=r"b\.csv: no timepoint column"):
        merge_features([a, b])


def test_no_inputs_and_bad_prefix(tmp_path):
    with pytest.raises(FeatureError, match="no feature tables"):
        merge_features([])
    a = _tidy(tmp_path / "a.csv", "P1", [1.0, 2.0, 3.0])
    with pytest.raises(FeatureError, match="invalid feature prefix"):
        merge_features([a], prefix="a__b")
