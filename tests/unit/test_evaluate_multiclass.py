"""Multi-class evaluation (y_true + y_score_<class>) against scikit-learn; binary curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from oncoflow.errors import ModelError
from oncoflow.evaluate.binary import curves
from oncoflow.evaluate.card import card_markdown, model_card
from oncoflow.evaluate.engine import compare_models, evaluate_predictions, prediction_kind
from oncoflow.evaluate.multiclass import evaluate_multiclass
from oncoflow.metrics.decision import macro_f1_weights

CLASSES = ("I", "II", "III")


def _predictions(seed: int, signal: float, n: int = 150) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + signal * np.eye(3)[y]
    logits += np.random.default_rng(seed).normal(0, 0.3, (n, 3))
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    frame = pd.DataFrame(
        {
            "patient_id": [f"S{i:03d}" for i in range(n)],
            "split": ["validation"] * 90 + ["internal_test"] * 30 + ["external_test"] * 30,
            "fold": [str(i % 3) for i in range(90)] + ["final"] * 60,
            "target": "stage",
            "y_true": [CLASSES[k] for k in y],
            "model": "fusion",
        }
    )
    for k, name in enumerate(CLASSES):
        frame[f"y_score_{name}"] = prob[:, k]
    return frame


def test_multiclass_metrics_equal_scikit_learn():
    preds = _predictions(1, 1.5)
    assert prediction_kind(preds.columns) == "multiclass"
    result = evaluate_predictions(preds, n_boot=100, seed=3)
    entry = result["models"]["fusion"]["stage"]
    assert result["kind"] == "multiclass"
    assert entry["classes"] == list(CLASSES)
    test = preds[preds["fold"] == "final"]
    y = test["y_true"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy()
    scores = test[[f"y_score_{c}" for c in CLASSES]].to_numpy()
    got = entry["test"]
    # the decision rule of the test rows: fitted on the pooled validation rows only
    validation = preds[preds["split"] == "validation"]
    weights = macro_f1_weights(
        validation["y_true"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy(),
        validation[[f"y_score_{c}" for c in CLASSES]].to_numpy(),
    )
    assert entry["decision"] == {
        "rule": "macro_f1",
        "weights": pytest.approx(weights.tolist()),
        "fitted_on": "validation",
    }
    predicted = (scores * weights).argmax(1)
    assert got["auc_macro"]["value"] == pytest.approx(roc_auc_score(y, scores, multi_class="ovr"))
    assert got["accuracy"]["value"] == pytest.approx(accuracy_score(y, predicted))
    assert got["f1_macro"]["value"] == pytest.approx(f1_score(y, predicted, average="macro"))
    assert got["brier"]["value"] == pytest.approx(np.mean(((scores - np.eye(3)[y]) ** 2).sum(1)))
    assert got["confusion"] == confusion_matrix(y, predicted).tolist()
    for name in ("auc_macro", "accuracy", "f1_macro", "brier"):
        assert got[name]["ci_low"] <= got[name]["value"] <= got[name]["ci_high"]
    assert set(entry) == {
        "classes",
        "decision",
        "validation",
        "internal_test",
        "external_test",
        "test",
    }
    assert set(entry["validation"]["per_fold"]) == {"0", "1", "2"}
    assert entry["test"]["n_patients"] == 60
    # reproducible for a seed, other intervals for another seed
    again = evaluate_predictions(preds, n_boot=100, seed=3)["models"]["fusion"]["stage"]["test"]
    other = evaluate_predictions(preds, n_boot=100, seed=4)["models"]["fusion"]["stage"]["test"]
    assert again == got
    assert other["auc_macro"]["ci_low"] != got["auc_macro"]["ci_low"]


def _imbalanced(n: int, seed: int) -> pd.DataFrame:
    """Calibrated posteriors of a 70 / 20 / 10 % problem: arg-max rarely names class III."""
    rng = np.random.default_rng(seed)
    prior = np.array([0.7, 0.2, 0.1])
    y = rng.choice(3, size=n, p=prior)
    x = rng.normal(np.array([0.0, 1.0, 2.0])[y], 1.0)
    log_post = -0.5 * (x[:, None] - np.array([0.0, 1.0, 2.0])[None, :]) ** 2 + np.log(prior)
    prob = np.exp(log_post) / np.exp(log_post).sum(axis=1, keepdims=True)
    frame = pd.DataFrame(
        {
            "patient_id": [f"P{seed}_{i:04d}" for i in range(n)],
            "split": ["validation"] * (n // 2) + ["internal_test"] * (n - n // 2),
            "fold": ["0"] * (n // 2) + ["final"] * (n - n // 2),
            "target": "grade",
            "y_true": [CLASSES[k] for k in y],
        }
    )
    for k, name in enumerate(CLASSES):
        frame[f"y_score_{name}"] = prob[:, k]
    return frame


def test_the_validation_fitted_rule_raises_test_macro_f1_and_never_reads_test_rows():
    frame = _imbalanced(4000, 1)
    fitted = evaluate_multiclass(frame, n_boot=20)["models"]["model"]["grade"]
    plain = evaluate_multiclass(frame, n_boot=20, decision="argmax")["models"]["model"]["grade"]
    assert plain["decision"]["rule"] == "argmax"
    assert fitted["decision"]["weights"][2] > 1.5  # the small class is predicted more often
    gain = fitted["test"]["f1_macro"]["value"] - plain["test"]["f1_macro"]["value"]
    assert gain > 0.03
    assert fitted["test"]["accuracy"]["value"] < plain["test"]["accuracy"]["value"]
    assert fitted["test"]["auc_macro"] == plain["test"]["auc_macro"]
    # validation rows keep the plain arg-max (a rule fitted on them would flatter them)
    assert fitted["validation"]["pooled"]["f1_macro"] == plain["validation"]["pooled"]["f1_macro"]
    # shuffling the test rows' scores moves their metrics, never the rule
    test = frame["split"] == "internal_test"
    shuffled = frame.copy()
    columns = [f"y_score_{c}" for c in CLASSES]
    shuffled.loc[test, columns] = frame.loc[test, columns].to_numpy()[::-1]
    moved = evaluate_multiclass(shuffled, n_boot=20)["models"]["model"]["grade"]
    assert moved["decision"] == fitted["decision"]
    with pytest.raises(ModelError, match="decision"):
        evaluate_multiclass(frame, decision="youden")


def test_multiclass_input_errors():
    preds = _predictions(1, 1.5)
    bad = preds.assign(y_true=preds["y_true"].replace("III", "IV"))
    with pytest.raises(ModelError, match="IV"):
        evaluate_predictions(bad, n_boot=10)
    with pytest.raises(ModelError, match=r"probabilities in \[0, 1\]"):
        evaluate_predictions(preds.assign(y_score_I=preds["y_score_I"] * 3), n_boot=10)


def test_multiclass_models_are_compared_by_paired_bootstrap():
    strong, weak = _predictions(1, 2.5), _predictions(2, 0.2)
    table = pd.concat([strong, weak.assign(model="clinical")], ignore_index=True)
    comparisons = compare_models({"raw": table}, n_boot=200, seed=0)["comparisons"]
    assert len(comparisons) == 1
    entry = comparisons[0]
    assert entry["test"] == "paired bootstrap of macro AUC difference"
    assert entry["b"] == "raw/fusion"  # the best validation model is the reference
    assert entry["estimate"] < -0.15
    assert entry["p_value"] < 0.05


def test_a_table_with_one_time_point_per_patient_pairs_with_one_without():
    # the nnU-Net's predictions name each case's time point, the baselines' do not
    model = _predictions(1, 2.5).assign(model="model", timepoint=0)
    baseline = _predictions(2, 0.2).assign(model="model")
    labelled = {"nnunet": model, "baseline_size": baseline}
    comparisons = compare_models(labelled, n_boot=200, seed=0)["comparisons"]
    entry = next(c for c in comparisons if c["reference"] == "baseline")
    assert (entry["a"], entry["b"]) == ("nnunet/model", "baseline_size/model")
    assert entry["n_patients"] == 60
    assert entry["estimate"] > 0.15


def test_binary_curves_equal_scikit_learn():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 80)
    p = np.clip(0.5 * y + rng.uniform(0, 0.5, 80), 0, 1)
    got = curves(y, p)
    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    np.testing.assert_allclose(got["roc"]["fpr"], fpr, atol=5e-5)
    np.testing.assert_allclose(got["roc"]["tpr"], tpr, atol=5e-5)
    np.testing.assert_allclose(got["pr"]["precision"], precision, atol=5e-5)
    np.testing.assert_allclose(got["pr"]["recall"], recall, atol=5e-5)
    assert sum(got["reliability"]["count"]) == 80
    assert curves(y, p * 4)["reliability"] is None  # not probabilities: no calibration curve


def test_multiclass_model_card():
    metrics = evaluate_predictions(_predictions(1, 1.5), n_boot=50)
    card = model_card(metrics, {"study": "nsclc_mmdls", "targets": ["stage"]})
    text = card_markdown(card)
    assert "auc_macro" in text
    assert "| test |" in text


def test_multiclass_negative_control_runs_averaged_inside_the_bootstrap():
    runs = [_predictions(seed=20 + k, signal=0.0) for k in range(3)]
    control = pd.concat([r.assign(permutation=k) for k, r in enumerate(runs)], ignore_index=True)
    out = evaluate_predictions(control, n_boot=60, seed=1)
    entry = next(iter(out["models"].values()))
    alone = [
        next(iter(evaluate_predictions(r, n_boot=60, seed=1)["models"].values())) for r in runs
    ]
    target = next(iter(entry))
    test, singles = entry[target]["test"], [a[target]["test"] for a in alone]
    assert test["n_runs"] == 3
    assert test["auc_macro"]["value"] == pytest.approx(
        np.mean([s["auc_macro"]["value"] for s in singles])
    )
    assert test["auc_macro"]["ci_low"] < test["auc_macro"]["value"] < test["auc_macro"]["ci_high"]
    width = test["auc_macro"]["ci_high"] - test["auc_macro"]["ci_low"]
    assert width < np.mean([s["auc_macro"]["ci_high"] - s["auc_macro"]["ci_low"] for s in singles])
    np.testing.assert_allclose(
        test["confusion"], np.mean([np.array(s["confusion"]) for s in singles], axis=0)
    )
    fold = next(iter(entry[target]["validation"]["per_fold"]))
    per_fold = [a[target]["validation"]["per_fold"][fold]["f1_macro"] for a in alone]
    assert entry[target]["validation"]["per_fold"][fold]["f1_macro"] == pytest.approx(
        np.mean(per_fold)
    )
