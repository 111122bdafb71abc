"""Binary predictions.csv evaluation: validation-only threshold, per-fold and test metrics, CIs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from oncoflow.errors import ModelError
from oncoflow.evaluate.binary import SCALAR_METRICS, evaluate_binary
from oncoflow.evaluate.engine import compare_models, evaluate_predictions
from oncoflow.metrics.bootstrap import bootstrap_ci, mean_of_runs, run_mean


def _predictions(seed: int = 0) -> pd.DataFrame:
    """3 validation folds over 90 training patients, 40 internal + 30 external test patients."""
    rng = np.random.default_rng(seed)
    rows = []

    def score(y: int) -> float:
        return float(1 / (1 + np.exp(-(1.2 * (2 * y - 1) + rng.normal(0, 1.2)))))

    for i in range(90):
        y = int(rng.integers(0, 2))
        rows.append((f"T{i:03d}", "validation", str(i % 3), "response", y, score(y)))
    for i in range(70):
        y = int(rng.integers(0, 2))
        split = "internal_test" if i < 40 else "external_test"
        rows.append((f"X{i:03d}", split, "final", "response", y, score(y)))
    return pd.DataFrame(
        rows, columns=["patient_id", "split", "fold", "target", "y_true", "y_score"]
    )


def test_threshold_from_validation_and_test_metrics_equal_sklearn():
    preds = _predictions()
    out = evaluate_binary(preds, n_boot=50, seed=1)
    entry = out["models"]["model"]["response"]
    validation = preds[preds["split"] == "validation"]
    fpr, tpr, cuts = skm.roc_curve(validation["y_true"], validation["y_score"])
    assert entry["threshold"] == pytest.approx(cuts[np.argmax(tpr - fpr)])
    assert entry["threshold_from"].startswith("validation")
    test = preds[preds["fold"] == "final"]
    predicted = (test["y_score"] >= entry["threshold"]).astype(int)
    assert entry["test"]["auc"]["value"] == pytest.approx(
        skm.roc_auc_score(test["y_true"], test["y_score"])
    )
    assert entry["test"]["f1"]["value"] == pytest.approx(skm.f1_score(test["y_true"], predicted))
    assert entry["test"]["n_patients"] == 70
    assert entry["internal_test"]["n_patients"] == 40
    assert entry["external_test"]["n_patients"] == 30
    assert sorted(entry["validation"]["per_fold"]) == ["0", "1", "2"]
    for name in SCALAR_METRICS:
        cell = entry["test"][name]
        assert cell["ci_low"] <= cell["value"] <= cell["ci_high"], name


def test_test_scores_never_move_the_threshold():
    preds = _predictions()
    shuffled = preds.copy()
    final = shuffled["fold"] == "final"
    shuffled.loc[final, "y_score"] = np.random.default_rng(5).uniform(0, 1, int(final.sum()))
    a = evaluate_binary(preds, n_boot=10)["models"]["model"]["response"]
    b = evaluate_binary(shuffled, n_boot=10)["models"]["model"]["response"]
    assert a["threshold"] == b["threshold"]
    assert a["validation"] == b["validation"]
    assert a["test"]["auc"]["value"] != b["test"]["auc"]["value"]


def test_bootstrap_is_reproducible_for_a_seed():
    preds = _predictions()
    first = evaluate_binary(preds, n_boot=40, seed=3)
    assert first == evaluate_binary(preds, n_boot=40, seed=3)
    other = evaluate_binary(preds, n_boot=40, seed=4)
    assert first["models"] != other["models"]


def test_one_class_fold_and_fixed_threshold_do_not_crash():
    preds = _predictions()
    fold0 = preds["fold"] == "0"
    preds.loc[fold0, "y_true"] = 1  # a CV fold with positives only
    out = evaluate_binary(preds, threshold=0.5, n_boot=10)["models"]["model"]["response"]
    assert out["threshold"] == 0.5
    assert out["threshold_from"] == "fixed"
    assert out["validation"]["per_fold"]["0"]["auc"] is None
    assert out["validation"]["per_fold"]["1"]["auc"] is not None
    only_positive = preds[preds["patient_id"].isin(preds.loc[fold0, "patient_id"])]
    single = evaluate_binary(only_positive, threshold=0.5, n_boot=5)["models"]["model"]["response"]
    assert single["validation"]["pooled"]["note"].startswith("one class")


def test_errors():
    with pytest.raises(ModelError, match="y_score"):
        evaluate_binary(_predictions().drop(columns="y_score"))
    no_validation = _predictions().query("split != 'validation'")
    with pytest.raises(ModelError, match="no validation rows"):
        evaluate_binary(no_validation)


def _control(runs: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat([r.assign(permutation=k) for k, r in enumerate(runs)], ignore_index=True)


def test_permuted_runs_are_scored_each_and_averaged():
    # three negative-control runs: each its own threshold and metrics, the values their mean
    runs = [_predictions(seed=10 + k) for k in range(3)]
    out = evaluate_predictions(_control(runs), n_boot=60, seed=2)
    assert out["kind"] == "binary"
    alone = [evaluate_binary(run, n_boot=60, seed=2)["models"]["model"]["response"] for run in runs]
    entry = out["models"]["model"]["response"]
    for split in ("test", "internal_test", "validation"):
        part = entry[split]["pooled"] if split == "validation" else entry[split]
        values = [a[split]["pooled"] if split == "validation" else a[split] for a in alone]
        assert part["auc"]["value"] == pytest.approx(np.mean([v["auc"]["value"] for v in values]))
        assert part["n_runs"] == 3
        # the CI is that of the mean over runs (runs averaged inside each resample): it holds
        # the mean and is narrower than the runs' own intervals on average
        assert part["auc"]["ci_low"] < part["auc"]["value"] < part["auc"]["ci_high"]
        width = part["auc"]["ci_high"] - part["auc"]["ci_low"]
        assert width < np.mean([v["auc"]["ci_high"] - v["auc"]["ci_low"] for v in values])
    per_fold = [a["validation"]["per_fold"]["1"]["auc"] for a in alone]
    assert entry["validation"]["per_fold"]["1"]["auc"] == pytest.approx(np.mean(per_fold))
    assert entry["threshold"] == pytest.approx(np.mean([a["threshold"] for a in alone]))
    assert entry["test"]["n_patients"] == 70  # counts shared by every run stay counts
    confusion = np.mean([np.array(a["test"]["confusion"]) for a in alone], axis=0)
    np.testing.assert_allclose(entry["test"]["confusion"], confusion)


def test_identical_runs_give_the_single_run_values():
    # the mean over identical runs is that run: same values; the intervals differ only by the
    # random stream of the extra run draws
    run = _predictions(seed=4)
    once = evaluate_binary(run, n_boot=200, seed=3)["models"]["model"]["response"]
    twice = evaluate_binary(_control([run, run]), n_boot=200, seed=3)["models"]["model"]
    for split in ("internal_test", "test"):
        for metric in ("auc", "sensitivity", "brier"):
            got, expected = twice["response"][split][metric], once[split][metric]
            assert got["value"] == pytest.approx(expected["value"])
            for key in ("ci_low", "ci_high"):
                assert got[key] == pytest.approx(expected[key], abs=0.04)


def test_each_resampled_run_keeps_its_own_threshold():
    # run 0 separates the classes at scores ~0.05, run 1 at ~0.95: each is perfect at its own
    # Youden threshold, so every resample (runs drawn with replacement) stays perfect
    rows = []
    for run, (low, high) in enumerate([(0.01, 0.09), (0.91, 0.99)]):
        for i in range(60):
            y = i % 2
            score = high if y else low
            split, fold = ("validation", str(i % 3)) if i < 30 else ("internal_test", "final")
            rows.append((f"P{i:03d}", split, fold, "response", y, score, run))
    columns = ["patient_id", "split", "fold", "target", "y_true", "y_score", "permutation"]
    out = evaluate_binary(pd.DataFrame(rows, columns=columns), n_boot=100, seed=0)
    test = out["models"]["model"]["response"]["test"]
    for metric in ("sensitivity", "specificity"):
        assert test[metric]["value"] == 1.0
        assert test[metric]["ci_low"] == 1.0


def test_two_stage_bootstrap_covers_the_spread_between_runs():
    # 40 patients, two runs on them: run 0 scores 0 everywhere, run 1 scores 1. Resampling the
    # patients alone never moves the mean over runs (0.5); resampling the runs too does.
    patients = np.repeat(np.arange(40), 2)
    run = np.tile([0, 1], 40)
    value = run.astype(float)

    def mean_over_runs(v: np.ndarray, r: np.ndarray) -> float:
        return float(run_mean(lambda rows: np.array([v[rows].mean()]), r)[0])

    _, low, high = bootstrap_ci(mean_over_runs, value, run, n=200, seed=0, groups=patients)
    assert low == high == 0.5
    _, low, high = bootstrap_ci(mean_over_runs, value, run, n=200, seed=0, groups=patients, runs=1)
    assert low == 0.0
    assert high == 1.0


def test_mean_of_runs_keeps_text_and_unequal_lists_from_the_first_run():
    runs = [
        {"a": 1.0, "b": "x", "c": [1, 2], "d": None, "e": 3, "f": [1, 2, 3]},
        {"a": 3.0, "b": "y", "c": [3, 4], "d": None, "e": 4, "f": [1]},
    ]
    out = mean_of_runs(runs)
    assert out == {"a": 2.0, "b": "x", "c": [2.0, 3.0], "d": None, "e": 3.5, "f": [1, 2, 3]}
    assert mean_of_runs([{"v": float("nan")}, {"v": 0.6}]) == {"v": 0.6}


def test_compare_models_names_ladder_rungs_other_variants():
    strong, weak = _predictions(seed=1), _predictions(seed=1)
    rng = np.random.default_rng(0)
    weak["y_score"] = rng.uniform(size=len(weak))  # a rung that learnt nothing
    rungs = compare_models({"relation_net": strong, "resnet_single": weak}, n_boot=50)
    (entry,) = rungs["comparisons"]
    assert entry["reference"] == "other variant"
    assert entry["test"] == "DeLong AUC difference"
    assert {entry["a"], entry["b"]} == {"relation_net/model", "resnet_single/model"}
    features = compare_models(
        {"raw": strong.assign(model="lr"), "combat": weak.assign(model="lr")}, n_boot=50
    )
    assert features["comparisons"][0]["reference"] == "same model, other features"


def test_compare_models_with_one_test_positive_is_not_estimable_instead_of_failing():
    a, b = _predictions(seed=2), _predictions(seed=2)
    test = a["split"] != "validation"
    positives = a.index[test & (a["y_true"] == 1)]
    for table in (a, b):
        table.loc[positives[1:], "y_true"] = 0  # one positive left among the test patients
    b["y_score"] = 1 - b["y_score"]
    (entry,) = compare_models({"relation_net": a, "resnet_single": b}, n_boot=20)["comparisons"]
    assert entry["estimate"] is None
    assert entry["p_value"] is None
    assert "got 1 and" in entry["not_estimable"]
    assert entry["n_patients"] == 70


def test_every_model_is_paired_with_every_baseline_with_a_confidence_interval():
    model, clinical = _predictions(seed=3), _predictions(seed=3)
    rng = np.random.default_rng(1)
    clinical["y_score"] = rng.uniform(size=len(clinical))  # a baseline that carries nothing
    size = clinical.assign(y_score=rng.uniform(size=len(clinical)))
    tables = {"relation_net": model, "baseline_clinical": clinical, "baseline_clinical_size": size}
    entries = compare_models(tables, n_boot=50, alpha=0.05)["comparisons"]
    pairs = {(e["a"], e["b"]): e for e in entries}
    assert set(pairs) == {
        ("relation_net/model", "baseline_clinical/model"),
        ("relation_net/model", "baseline_clinical_size/model"),
        ("baseline_clinical_size/model", "baseline_clinical/model"),
    }
    entry = pairs["relation_net/model", "baseline_clinical/model"]
    assert entry["reference"] == "baseline"
    test = model[model["fold"] == "final"]
    expected = skm.roc_auc_score(test["y_true"], test["y_score"]) - skm.roc_auc_score(
        test["y_true"], clinical.loc[test.index, "y_score"]
    )
    assert entry["estimate"] == pytest.approx(expected)
    # the Wald interval of DeLong's difference: symmetric, z = estimate / se
    half = entry["estimate"] - entry["ci_low"]
    assert entry["ci_high"] - entry["estimate"] == pytest.approx(half)
    assert half == pytest.approx(1.959964 * entry["estimate"] / entry["z"], rel=1e-5)
    assert entry["p_value"] < 0.05
    assert pairs["baseline_clinical_size/model", "baseline_clinical/model"]["reference"] == (
        "other baseline"
    )


def test_per_timepoint_predictions_are_paired_on_patient_and_timepoint():
    model = _predictions(seed=4)
    model = pd.concat([model.assign(timepoint=0), model.assign(timepoint=1)], ignore_index=True)
    baseline = model.assign(y_score=model["y_score"][::-1].to_numpy())
    (entry,) = compare_models({"cnn_lstm": model, "baseline_clinical": baseline}, n_boot=20)[
        "comparisons"
    ]
    assert entry["n_patients"] == 70
    assert entry["n_rows"] == 140


def test_the_model_card_lists_the_baselines_test_scores():
    from oncoflow.evaluate.card import card_markdown, model_card

    model = evaluate_predictions(_predictions(seed=5), n_boot=20)
    baseline = evaluate_predictions(_predictions(seed=6), n_boot=20)
    info = {"study": "liver_response", "variant": "relation_net", "model": "m", "targets": []}
    card = model_card(model, info, {"baseline_clinical": baseline})
    entry = card["baselines"]["baseline_clinical/model"]["response"]
    assert entry["auc"] == baseline["models"]["model"]["response"]["test"]["auc"]
    assert entry["n_patients"] == 70
    text = card_markdown(card)
    assert "## Tabular baselines (pooled test patients)" in text
    row = next(line for line in text.splitlines() if line.startswith("| baseline_clinical/model"))
    assert f"{entry['auc']['value']:.3f}" in row
    assert "baselines" not in model_card(model, info) or not model_card(model, info)["baselines"]


def test_the_model_card_says_which_patients_were_dropped_and_what_was_imputed():
    from oncoflow.evaluate.card import card_markdown, model_card

    model = evaluate_predictions(_predictions(seed=5), n_boot=20)
    info = {"study": "pancreas", "variant": "raw", "model": "m", "targets": []}
    decision = {
        "policy": {"modalities": "drop_patient", "timepoints": "refuse", "clinical": "impute"},
        "dropped": {"P9": ["MR_T2 at time point 1"], "P3": ["a WSI image"]},
        "imputed": {"ca19_9": ["P1", "P4", "P5"]},
        "partial": {},
    }
    card = model_card(model, info, missing=decision)
    assert card["missing"]["dropped"]["n_patients"] == 2
    assert card["missing"]["dropped"]["patients"] == ["P3", "P9"]
    assert card["missing"]["imputed"]["ca19_9"]["n_patients"] == 3
    text = card_markdown(card)
    assert "## Missing inputs" in text
    assert "- **Policy**: modalities drop_patient, timepoints refuse, clinical impute" in text
    assert "- **Dropped patients** (2, left out of every step for missing inputs): P3, P9" in text
    assert (
        "- **Imputed clinical value** `ca19_9`: 3 patient(s) imputed with the median of each "
        "fold's training patients (never of validation or test patients)"
    ) in text
    assert text.index("## Missing inputs") < text.index("## Metrics")
    assert "## Missing inputs" not in card_markdown(model_card(model, info))
