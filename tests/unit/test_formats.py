"""folds.json and predictions.csv: one reader and one writer each, checked against the schemas."""

from __future__ import annotations

import json
import math

import jsonschema
import numpy as np
import pandas as pd
import pytest

from oncoflow.errors import FormatError
from oncoflow.formats import (
    FoldPatients,
    read_fold,
    read_folds,
    read_predictions,
    write_folds,
    write_predictions,
)
from oncoflow.schemas import load_schema
from oncoflow.splits import make_folds, make_splits


def _sites(n: int = 24) -> dict[str, str]:
    return {f"P{i:03d}": ("site_a", "site_b", "site_c")[i % 3] for i in range(n)}


def _folds(**options):
    splits = make_splits(_sites(), external_sites=["site_c"], seed=0)
    strata = {p: i % 2 for i, p in enumerate(sorted(_sites()))}
    return make_folds(splits, strata=strata, seed=0, **options)


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON records: empty cells dropped is not JSON's null, so they become None."""
    out = []
    for record in frame.to_dict(orient="records"):
        row = {}
        for key, value in record.items():
            if isinstance(value, float) and math.isnan(value):
                value = None
            elif isinstance(value, np.generic):
                value = value.item()
            if key in ("timepoint", "permutation", "event") and isinstance(value, float):
                value = int(value)
            row[key] = value
        out.append(row)
    return out


# ------------------------------------------------------------------------------------------
# folds.json


@pytest.mark.parametrize("options", [{"repeats": 3}, {"k": 4}])
def test_folds_round_trip_and_layout(tmp_path, options):
    folds = _folds(**options)
    path = tmp_path / "folds.json"
    provenance = {"config_hash": "abc", "settings": {"k": options.get("k")}, "versions": {}}
    write_folds(path, folds, stratify="os_event", seed=0, provenance=provenance)
    assert read_folds(path) == folds
    document = json.loads(path.read_text())
    # the layout of make_folds since the first release: indent 1, sorted keys, a final newline
    assert path.read_text() == json.dumps(document, indent=1, sort_keys=True) + "\n"
    assert list(document) == ["folds", "provenance", "seed", "stratify"]
    assert list(_validator("folds").iter_errors(document)) == []
    fold = read_fold(path, 0)
    assert isinstance(fold, FoldPatients)
    assert (fold.fit, fold.apply, fold.test) == (
        folds["0"]["fit"],
        folds["0"]["apply"],
        folds["final"]["apply"],
    )
    assert read_fold(path, "final").apply == fold.test


def test_make_folds_script_output_is_valid(tmp_path):
    from conftest import load_script

    from oncoflow.demo import write_cohort

    write_cohort(tmp_path / "demo", "net_survival", seed=0, patients=12)
    out = tmp_path / "folds.json"
    code = load_script("make_folds").main(
        [
            "--cohort", str(tmp_path / "demo" / "net_survival"), "--stratify", "os_event",
            "--splits-out", str(tmp_path / "splits.csv"), "--folds-out", str(out), "--k", "2",
        ]
    )  # fmt: skip
    assert code == 0
    document = json.loads(out.read_text())
    assert list(_validator("folds").iter_errors(document)) == []
    assert set(read_folds(out)) == {"0", "1", "final"}


def _write(tmp_path, document) -> str:
    path = tmp_path / "folds.json"
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return str(path)


def _good() -> dict:
    return {
        "seed": 0,
        "folds": {
            "0": {"fit": ["A", "B"], "apply": ["C"]},
            "1": {"fit": ["B", "C"], "apply": ["A"]},
            "final": {"fit": ["A", "B", "C"], "apply": ["D"]},
        },
    }


def _changed(change) -> dict:
    document = _good()
    change(document)
    return document


BAD_FOLDS = {
    "not JSON": ("{", "not valid JSON"),
    "no folds": ({"seed": 0}, "no 'folds' mapping"),
    "unknown key": ({**_good(), "target": "os"}, "unknown key(s) target"),
    "no final": (_changed(lambda d: d["folds"].pop("final")), "no 'final' fold"),
    "bad name": (_changed(lambda d: d["folds"].update(x=d["folds"]["0"])), "fold name(s) 'x'"),
    "gap": (_changed(lambda d: d["folds"].update({"3": d["folds"]["0"]})), "without gaps"),
    "no apply": (_changed(lambda d: d["folds"]["0"].pop("apply")), "fold '0' has no 'apply'"),
    "empty fit": (_changed(lambda d: d["folds"]["1"].update(fit=[])), "fold '1' 'fit' is empty"),
    "number id": (_changed(lambda d: d["folds"]["0"]["fit"].append(7)), "not a patient id: 7"),
    "twice": (_changed(lambda d: d["folds"]["0"]["fit"].append("A")), "listed twice: A"),
    "fit and apply": (
        _changed(lambda d: d["folds"]["0"]["apply"].append("A")),
        "fold '0': patient(s) A are in both 'fit' and 'apply'",
    ),
    "test patient in a fold": (
        _changed(lambda d: d["folds"]["1"]["apply"].append("D")),
        "fold '1': patient(s) D are not training patients",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FOLDS))
def test_folds_errors_name_the_file_and_problem(tmp_path, case):
    document, problem = BAD_FOLDS[case]
    path = _write(tmp_path, document)
    with pytest.raises(FormatError) as info:
        read_folds(path)
    assert str(info.value).startswith(f"{path}: ")
    assert problem in str(info.value)
    beyond_the_schema = {"gap", "fit and apply", "test patient in a fold"}
    if not isinstance(document, str) and case not in beyond_the_schema:
        # the rules the schema can state: jsonschema refuses the same documents
        assert list(_validator("folds").iter_errors(document))


def test_missing_folds_file_and_unknown_fold(tmp_path):
    with pytest.raises(FormatError, match=r"nope\.json: folds file does not exist"):
        read_folds(tmp_path / "nope.json")
    path = _write(tmp_path, _good())
    with pytest.raises(FormatError, match=r"folds\.json: no fold '5' \(folds there: 0, 1, final\)"):
        read_fold(path, 5)


def test_bad_folds_are_not_written(tmp_path):
    path = tmp_path / "out" / "folds.json"
    document = _changed(lambda d: d["folds"]["0"]["apply"].append("A"))
    with pytest.raises(FormatError, match="in both 'fit' and 'apply'"):
        write_folds(path, document["folds"], seed=0)
    assert not path.exists()


# ------------------------------------------------------------------------------------------
# predictions.csv


def _survival_rows() -> pd.DataFrame:
    """Rows as the net_survival protocol writes them (one model, two horizons, permutations)."""
    rng = np.random.default_rng(0)
    n = 12
    split = ["validation"] * 8 + ["internal_test"] * 2 + ["external_test"] * 2
    fold = ["0"] * 4 + ["1"] * 4 + ["final"] * 4
    frame = pd.DataFrame(
        {
            "patient_id": [f"P{i:03d}" for i in range(n)],
            "split": split,
            "fold": fold,
            "target": "os",
            "time": rng.uniform(30, 2000, n).round(1),
            "event": rng.integers(0, 2, n),
            "risk": rng.normal(size=n),
            "model": "clinical+radiomics",
            "survival_365": rng.uniform(0, 1, n),
            "survival_730": rng.uniform(0, 1, n),
        }
    )
    return pd.concat([frame.assign(permutation=k) for k in range(2)], ignore_index=True)


def _deep_rows() -> pd.DataFrame:
    """Rows as the deep models' prediction_rows make them: MM-DLS's mix of three tasks."""
    from oncoflow.deep.common import prediction_rows

    class Inputs:
        fold = "1"

        @staticmethod
        def split_of(patient: str) -> str:
            return "validation" if patient < "P004" else "internal_test"

    patients = [f"P{i:03d}" for i in range(6)]
    rng = np.random.default_rng(1)
    binary = prediction_rows(
        Inputs, patients, "histology", {"y_true": [0, 1] * 3, "y_score": rng.uniform(size=6)}
    )
    stages = prediction_rows(
        Inputs,
        patients,
        "stage",
        {
            "y_true": ["I", "II", "III"] * 2,
            **{f"y_score_{c}": rng.uniform(size=6) for c in ("I", "II", "III")},
        },
    )
    survival = prediction_rows(
        Inputs,
        patients,
        "os",
        {"time": rng.uniform(10, 900, 6), "event": [1, 0] * 3, "risk": rng.normal(size=6)},
    )
    return pd.concat([binary, stages, survival], ignore_index=True)


def _nnunet_rows() -> pd.DataFrame:
    """Rows of the nnU-Net collect step: multi-class subtype per case."""
    return pd.DataFrame(
        {
            "patient_id": ["P000", "P000", "P001"],
            "timepoint": [0, 1, 0],
            "case_id": ["P000_0", "P000_1", "P001_0"],
            "split": ["validation", "validation", "external_test"],
            "fold": ["0", "0", "final"],
            "target": "subtype",
            "y_true": ["a", "b", "a"],
            "y_score_a": [0.7, 0.4, 0.9],
            "y_score_b": [0.3, 0.6, 0.1],
        }
    )


TABLES = {"survival": _survival_rows, "nnunet": _nnunet_rows}


@pytest.mark.parametrize("name", ["survival", "nnunet", "deep"])
def test_predictions_round_trip_byte_identical(tmp_path, name):
    frame = _deep_rows() if name == "deep" else TABLES[name]()
    path = tmp_path / "out" / "predictions.csv"
    write_predictions(path, frame)
    frame.to_csv(tmp_path / "plain.csv", index=False)  # what every writer did before
    assert path.read_bytes() == (tmp_path / "plain.csv").read_bytes()
    back = read_predictions(path)
    expected = pd.read_csv(tmp_path / "plain.csv", dtype={"patient_id": str, "fold": str})
    pd.testing.assert_frame_equal(back, expected)
    errors = [e.message for r in _records(back) for e in _validator("predictions").iter_errors(r)]
    assert errors == []


def test_deep_ensemble_output_is_valid(tmp_path):
    from oncoflow.deep.ensemble import collect_folds

    fold0 = _nnunet_rows().drop(columns=["case_id", "timepoint"]).iloc[[0, 2]].assign(fold="0")
    fold1 = fold0.assign(patient_id=["P002", "P001"], fold="1")
    fold0.to_csv(tmp_path / "f0.csv", index=False)
    fold1.to_csv(tmp_path / "f1.csv", index=False)
    frame = collect_folds([tmp_path / "f0.csv", tmp_path / "f1.csv"], tmp_path / "p.csv")
    assert set(frame["fold"]) == {"0", "1", "final"}
    assert read_predictions(tmp_path / "p.csv")["fold"].tolist() == frame["fold"].tolist()


BAD_PREDICTIONS = {
    "missing column": (lambda f: f.drop(columns=["fold"]), "predictions lack column(s) fold"),
    "unknown column": (lambda f: f.assign(score=1.0), "unknown column 'score'"),
    "unknown split": (
        lambda f: f.assign(split=f["split"].replace("validation", "train")),
        "line 2: column 'split': value 'train' is not one of validation",
    ),
    "unknown fold": (
        lambda f: f.assign(fold=f["fold"].replace("1", "one")),
        "line 6: column 'fold': value 'one' does not match",
    ),
    "bad event": (
        lambda f: f.assign(event=2),
        "line 2: column 'event': value 2 is not one of 0, 1",
    ),
    "text risk": (
        lambda f: f.assign(risk=["high"] + [0.0] * (len(f) - 1)),
        "line 2: column 'risk': value 'high' is not of type number",
    ),
    "empty patient": (
        lambda f: f.assign(patient_id=[None] + list(f["patient_id"][1:])),
        "line 2: column 'patient_id' is empty",
    ),
    "survival above 1": (
        lambda f: f.assign(survival_365=1.5),
        "column 'survival_365': value 1.5 is above 1",
    ),
    "no risk": (
        lambda f: f.assign(risk=[np.nan] + [0.0] * (len(f) - 1)),
        "line 2: target 'os': empty score (risk)",
    ),
    "no score at all": (
        lambda f: f.drop(columns=["risk", "time", "event"]),
        "target 'os': no score column with values",
    ),
    "risk without time": (lambda f: f.drop(columns=["time"]), "'risk' needs column(s) time"),
    "two splits": (
        lambda f: f.assign(patient_id=f["patient_id"].replace("P011", "P000")),
        "patient(s) in more than one split: P000",
    ),
}


@pytest.mark.parametrize("case", list(BAD_PREDICTIONS))
def test_prediction_errors_name_the_file_and_problem(tmp_path, case):
    change, problem = BAD_PREDICTIONS[case]
    frame = change(_survival_rows())
    path = tmp_path / "predictions.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(FormatError) as info:
        read_predictions(path)
    assert str(info.value).startswith(f"{path}: ")
    assert problem in str(info.value)
    out = tmp_path / "out" / "predictions.csv"
    with pytest.raises(FormatError) as info:
        write_predictions(out, frame)  # the same check refuses before anything is written
    assert str(info.value).startswith(f"{out}: ")
    assert problem in str(info.value)
    assert not out.exists()


def test_missing_and_unreadable_predictions(tmp_path):
    with pytest.raises(FormatError, match=r"nope\.csv: predictions file does not exist"):
        read_predictions(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(FormatError, match=r"empty\.csv: cannot read predictions CSV"):
        read_predictions(tmp_path / "empty.csv")


def test_apply_rows_may_lack_outcomes(tmp_path):
    frame = _survival_rows().assign(split="apply", fold="final", time=np.nan, event=np.nan)
    write_predictions(tmp_path / "p.csv", frame)
    assert len(read_predictions(tmp_path / "p.csv")) == len(frame)
