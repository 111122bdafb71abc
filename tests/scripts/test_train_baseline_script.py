"""scripts/train_baseline.py: a clinical baseline in the folds of a small cohort, and its errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from conftest import load_script

from oncoflow.formats import read_predictions, write_folds
from oncoflow.metrics import auc

train_baseline = load_script("train_baseline")


def _cohort(root):
    rng = np.random.default_rng(5)
    ids = [f"P{i:02d}" for i in range(60)]
    marker = rng.normal(size=60)
    response = (marker + 0.5 * rng.normal(size=60) > 0).astype(int)
    cohort = root / "cohort"
    cohort.mkdir()
    pd.DataFrame({"patient_id": ids, "marker": marker.round(3)}).to_csv(
        cohort / "clinical.csv", index=False
    )
    pd.DataFrame({"patient_id": ids, "response": response}).to_csv(
        cohort / "outcomes.csv", index=False
    )
    split = ["train"] * 40 + ["internal_test"] * 20
    pd.DataFrame({"patient_id": ids, "split": split}).to_csv(root / "splits.csv", index=False)
    train = ids[:40]
    folds = {
        str(k): {
            "fit": [p for i, p in enumerate(train) if i % 2 != k],
            "apply": [p for i, p in enumerate(train) if i % 2 == k],
        }
        for k in range(2)
    }
    folds["final"] = {"fit": train, "apply": ids[40:]}
    write_folds(root / "folds.json", folds, seed=0, stratify=None)
    return cohort


def _argv(root, cohort, clinical):
    settings = json.dumps({"clinical": clinical, "targets": ["response"], "mask_labels": [1]})
    return [
        "--inputs", "clinical", "--cohort", str(cohort), "--splits", str(root / "splits.csv"),
        "--folds", str(root / "folds.json"), "--settings", settings, "--seed", "3",
        "--out", str(root / "out/predictions.csv"), "--summary", str(root / "out/baseline.json"),
    ]  # fmt: skip


def test_a_clinical_baseline_is_written_and_scores_its_marker(tmp_path):
    cohort = _cohort(tmp_path)
    assert train_baseline.main(_argv(tmp_path, cohort, ["marker"])) == 0
    predictions = read_predictions(tmp_path / "out/predictions.csv")
    test = predictions[predictions["fold"] == "final"]
    assert len(test) == 20
    assert auc(test["y_true"], test["y_score"]) > 0.8
    summary = json.loads((tmp_path / "out/baseline.json").read_text())
    assert summary["inputs"] == ["clinical"]
    assert summary["settings"]["clinical"] == ["marker"]
    assert [f["fold"] for f in summary["fits"]] == ["0", "1"]  # one fit scores validation and test
    assert "provenance" in summary


def test_a_missing_clinical_column_is_one_line_naming_it(tmp_path, capsys):
    cohort = _cohort(tmp_path)
    assert train_baseline.main(_argv(tmp_path, cohort, ["ldh"])) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: clinical.csv has no column(s) ldh (studies.<study>.clinical)"
    assert not (tmp_path / "out/predictions.csv").exists()
