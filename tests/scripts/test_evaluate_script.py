"""scripts/evaluate.py and scripts/compare_models.py on small survival and binary predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import load_script
from lifelines.utils import concordance_index as lifelines_c
from sklearn.metrics import roc_auc_score

evaluate = load_script("evaluate")
compare = load_script("compare_models")


def _survival(seed: int, noise: float) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 150
    x = rng.normal(size=n)
    death = rng.exponential(900.0 * np.exp(-x))
    censor = rng.uniform(200.0, 2000.0, n)
    split = ["validation"] * 90 + ["internal_test"] * 30 + ["external_test"] * 30
    risk = x + np.random.default_rng(seed).normal(0, noise, n)
    return pd.DataFrame(
        {
            "patient_id": [f"P{i:03d}" for i in range(n)],
            "split": split,
            "fold": [str(i % 3) for i in range(90)] + ["final"] * 60,
            "target": "os",
            "time": np.maximum(np.round(np.minimum(death, censor)), 1),
            "event": (death <= censor).astype(int),
            "risk": risk,
            "model": "all",
        }
    )


def _binary(seed: int, noise: float) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 120
    y = rng.integers(0, 2, n)
    score = 1 / (1 + np.exp(-(2 * y - 1 + np.random.default_rng(seed).normal(0, noise, n))))
    return pd.DataFrame(
        {
            "patient_id": [f"B{i:03d}" for i in range(n)],
            "split": ["validation"] * 80 + ["internal_test"] * 40,
            "fold": [str(i % 4) for i in range(80)] + ["final"] * 40,
            "target": "response",
            "y_true": y,
            "y_score": score,
        }
    )


def test_survival_metrics_and_model_card(tmp_path):
    preds = _survival(1, 0.5)
    preds.to_csv(tmp_path / "predictions.csv", index=False)
    out, card = tmp_path / "ev" / "metrics.json", tmp_path / "ev" / "model_card.md"
    code = evaluate.main(
        [
            "--predictions", str(tmp_path / "predictions.csv"), "--out", str(out),
            "--card", str(card), "--study", "net_survival", "--variant", "raw",
            "--model", "cox", "--n-boot", "30", "--horizons", "365,730",
        ]
    )  # fmt: skip
    assert code == 0
    metrics = json.loads(out.read_text())
    assert metrics["kind"] == "survival"
    assert len(metrics["provenance"]["config_hash"]) == 16
    test = preds[preds["fold"] == "final"]
    expected = lifelines_c(test["time"], -test["risk"], test["event"])
    got = metrics["models"]["all"]["os"]["test"]["harrell_c"]["value"]
    assert got == pytest.approx(expected, abs=1e-6)
    text = card.read_text()
    assert "# Model card: net_survival / raw" in text
    assert f"{got:.3f} [" in text  # the test C-index with its CI
    assert json.loads(card.with_suffix(".json").read_text())["study"] == "net_survival"


def test_the_missing_input_decision_is_shown_in_the_model_card(tmp_path):
    _survival(1, 0.5).to_csv(tmp_path / "predictions.csv", index=False)
    out, card = tmp_path / "ev" / "metrics.json", tmp_path / "ev" / "model_card.md"
    decision = {
        "policy": {"modalities": "drop_patient", "timepoints": "refuse", "clinical": "impute"},
        "dropped": {"P900": ["CT at time point 0"]},
        "imputed": {"age": ["P001", "P002"]},
    }
    argv = [
        "--predictions", str(tmp_path / "predictions.csv"), "--out", str(out),
        "--card", str(card), "--study", "net_survival", "--n-boot", "10",
    ]  # fmt: skip
    assert evaluate.main([*argv, "--card-missing", json.dumps(decision)]) == 0
    text = card.read_text()
    assert "- **Dropped patients** (1, left out of every step for missing inputs): P900" in text
    assert "`age`: 2 patient(s) imputed with the median of each fold's training patients" in text
    saved = json.loads(card.with_suffix(".json").read_text())["missing"]
    assert saved["dropped"]["reasons"] == {"P900": ["CT at time point 0"]}
    with pytest.raises(SystemExit):
        evaluate.main([*argv, "--card-missing", '{"dropped": ["P900"]}'])


def test_binary_predictions_are_detected(tmp_path):
    preds = _binary(1, 0.8)
    preds.to_csv(tmp_path / "p.csv", index=False)
    out = tmp_path / "m.json"
    args = ["--predictions", str(tmp_path / "p.csv"), "--out", str(out), "--n-boot", "20"]
    assert evaluate.main(args) == 0
    metrics = json.loads(out.read_text())
    assert metrics["kind"] == "binary"
    test = preds[preds["fold"] == "final"]
    auc = metrics["models"]["model"]["response"]["test"]["auc"]["value"]
    assert auc == pytest.approx(roc_auc_score(test["y_true"], test["y_score"]))


def test_a_patient_in_two_splits_is_refused(tmp_path, capsys):
    preds = _survival(1, 0.5)
    preds.loc[preds.index[-1], "patient_id"] = "P000"  # a training patient also in the test
    preds.to_csv(tmp_path / "p.csv", index=False)
    code = evaluate.main(["--predictions", str(tmp_path / "p.csv"), "--out", str(tmp_path / "m")])
    assert code == 1
    err = capsys.readouterr().err
    assert "P000" in err
    assert "more than one split" in err
    assert "p.csv" in err
    assert not (tmp_path / "m").exists()


def test_compare_models_survival_and_binary(tmp_path):
    good, bad = _survival(1, 0.3), _survival(2, 50.0).assign(model="clinical")
    pd.concat([good, bad]).to_csv(tmp_path / "raw.csv", index=False)
    _survival(3, 0.3).to_csv(tmp_path / "combat.csv", index=False)
    out = tmp_path / "comparisons.json"
    args = [
        "--predictions", f"raw={tmp_path / 'raw.csv'}", f"combat={tmp_path / 'combat.csv'}",
        "--out", str(out), "--n-boot", "200",
    ]  # fmt: skip
    assert compare.main(args) == 0
    rows = json.loads(out.read_text())["comparisons"]
    pair = next(r for r in rows if r["a"] == "raw/clinical")
    assert pair["b"] == "raw/all"  # the better validation model is the reference
    test_good, test_bad = good[good["fold"] == "final"], bad[bad["fold"] == "final"]
    c_good = lifelines_c(test_good["time"], -test_good["risk"], test_good["event"])
    c_bad = lifelines_c(test_bad["time"], -test_bad["risk"], test_bad["event"])
    assert pair["estimate"] == pytest.approx(c_bad - c_good, abs=1e-9)
    assert pair["ci_high"] < 0
    assert pair["p_value"] < 0.05
    assert any(r["a"] == "combat/all" and r["b"] == "raw/all" for r in rows)
    # binary: DeLong
    _binary(1, 0.5).to_csv(tmp_path / "a.csv", index=False)
    _binary(2, 5.0).to_csv(tmp_path / "b.csv", index=False)
    args = [
        "--predictions", f"a={tmp_path / 'a.csv'}", f"b={tmp_path / 'b.csv'}",
        "--out", str(out),
    ]  # fmt: skip
    assert compare.main(args) == 0
    (row,) = json.loads(out.read_text())["comparisons"]
    assert row["test"] == "DeLong AUC difference"
    assert row["p_value"] < 0.05


def test_new_cohort_scored_against_the_training_run(tmp_path):
    training = _survival(1, 0.5)
    training.to_csv(tmp_path / "training.csv", index=False)
    # a new cohort whose ids repeat training ids: renamed internally, never mixed up
    applied = training[training["fold"] == "final"].copy()
    applied["split"] = "apply"
    applied["patient_id"] = [f"P{i:03d}" for i in range(len(applied))]
    applied["risk"] = applied["risk"] * 2.0 + 1.0  # same ranking, other scale
    applied.to_csv(tmp_path / "applied.csv", index=False)
    out = tmp_path / "ev" / "metrics.json"
    card = tmp_path / "ev" / "model_card.md"
    common = ["--out", str(out), "--card", str(card), "--n-boot", "100", "--seed", "4"]
    args = ["--predictions", str(tmp_path / "applied.csv"), *common]
    assert evaluate.main([*args, "--training", str(tmp_path / "training.csv")]) == 0
    metrics = json.loads(out.read_text())
    entry = metrics["models"]["all"]["os"]
    assert metrics["outcomes_known"]
    assert set(entry) == {"validation", "apply", "test"}
    expected = lifelines_c(applied["time"], -applied["risk"], applied["event"])
    assert entry["apply"]["harrell_c"]["value"] == pytest.approx(expected, abs=1e-6)
    assert entry["apply"]["n_patients"] == 60
    # KM groups split at the median validation risk of training (1 x risk), not of the new cohort
    cutoff = float(np.median(training.loc[training["split"] == "validation", "risk"]))
    assert entry["apply"]["km"]["cutoff"] == pytest.approx(cutoff, abs=1e-6)
    high = int((applied["risk"] > cutoff).sum())
    assert entry["apply"]["km"]["curves"]["high"]["n"] == high
    assert "| apply |" in card.read_text()
    # no outcomes: predictions only, no metric
    applied[["time", "event"]] = np.nan
    applied.to_csv(tmp_path / "applied.csv", index=False)
    assert evaluate.main([*args, "--training", str(tmp_path / "training.csv")]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["outcomes_known"] is False
    assert metrics["n_patients"] == 60
