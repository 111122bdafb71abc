"""A new cohort (split ``apply``) scored by the training run's evaluators, every kind of table.

The ``apply`` rows are the test split; what a test split borrows from training (the binary
threshold, the survival censoring and risk cut-off) comes from the training run's validation rows.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import recall_score, roc_auc_score, roc_curve

from oncoflow.errors import ModelError
from oncoflow.evaluate.applied import evaluate_applied
from oncoflow.evaluate.card import card_markdown, model_card
from oncoflow.evaluate.engine import evaluate_predictions
from oncoflow.formats import read_predictions

CLASSES = ("I", "II", "III")
N_BOOT = 60


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _binary(
    rng: np.random.Generator,
    ids: list[str],
    split: str,
    *,
    timepoints: int = 1,
    target: str = "progression",
    shift: float = 0.0,
) -> pd.DataFrame:
    """Binary rows, one per patient x time point; validation rows get folds 0..2."""
    rows = []
    for i, patient in enumerate(ids):
        for t in range(timepoints):
            y = int(rng.integers(0, 2))
            score = float(_sigmoid(1.5 * (2 * y - 1) + rng.normal(0, 1.2) + shift))
            fold = str(i % 3) if split == "validation" else "final"
            rows.append((patient, t, split, fold, target, y, score))
    columns = ["patient_id", "timepoint", "split", "fold", "target", "y_true", "y_score"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame if timepoints > 1 else frame.drop(columns="timepoint")


def _multiclass(
    rng: np.random.Generator, ids: list[str], split: str, target: str = "stage"
) -> pd.DataFrame:
    y = rng.integers(0, 3, len(ids))
    logits = rng.normal(size=(len(ids), 3)) + 1.5 * np.eye(3)[y]
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    frame = pd.DataFrame(
        {
            "patient_id": ids,
            "split": split,
            "fold": [str(i % 3) for i in range(len(ids))] if split == "validation" else "final",
            "target": target,
            "y_true": [CLASSES[k] for k in y],
        }
    )
    for k, name in enumerate(CLASSES):
        frame[f"y_score_{name}"] = prob[:, k]
    return frame


def _survival(rng: np.random.Generator, ids: list[str], split: str, target: str) -> pd.DataFrame:
    risk = rng.normal(size=len(ids))
    time = rng.exponential(900.0 * np.exp(-0.8 * risk))
    censor = rng.uniform(200.0, 2500.0, len(ids))
    return pd.DataFrame(
        {
            "patient_id": ids,
            "split": split,
            "fold": [str(i % 3) for i in range(len(ids))] if split == "validation" else "final",
            "target": target,
            "time": np.round(np.minimum(time, censor), 1),
            "event": (time <= censor).astype(int),
            "risk": risk + rng.normal(0, 0.5, len(ids)),
        }
    )


def _ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(n)]


def _youden(rows: pd.DataFrame) -> float:
    fpr, tpr, cuts = roc_curve(rows["y_true"], rows["y_score"])
    return float(cuts[np.argmax(tpr - fpr)])


def _as_internal_test(training: pd.DataFrame, applied: pd.DataFrame) -> pd.DataFrame:
    """The training run's validation rows + the new rows as if they were its internal test."""
    validation = training[training["split"] == "validation"].copy()
    validation["patient_id"] = "training:" + validation["patient_id"]
    return pd.concat([validation, applied.assign(split="internal_test")], ignore_index=True)


def _without(entry: dict, *keys: str) -> dict:
    entry = copy.deepcopy(entry)
    for key in keys:
        entry.pop(key, None)
    return entry


def test_binary_per_timepoint_scored_like_a_test_split():
    rng = np.random.default_rng(0)
    training = _binary(rng, _ids("P", 90), "validation", timepoints=2)
    # the new cohort reuses the training ids: they must never be mixed up with training patients
    applied = _binary(rng, _ids("P", 50), "apply", timepoints=3, shift=0.7)
    result = evaluate_applied(applied, training, n_boot=N_BOOT, seed=2)
    assert result["kind"] == "binary"
    assert result["outcomes_known"] is True
    assert result["n_patients"] == 50
    assert result["unlabelled"] == {"n_rows": 0, "n_patients": 0}
    entry = result["models"]["model"]["progression"]
    assert set(entry) >= {"threshold", "validation", "apply", "test"}
    auc = entry["apply"]["auc"]
    assert auc["value"] == pytest.approx(roc_auc_score(applied["y_true"], applied["y_score"]))
    assert auc["ci_low"] <= auc["value"] <= auc["ci_high"]
    assert entry["apply"]["n_patients"] == 50  # the bootstrap resamples patients, not rows
    assert entry["apply"]["n_unlabelled"] == 0
    # the threshold is Youden's J of the training run's validation rows, applied unchanged
    assert entry["threshold"] == pytest.approx(_youden(training))
    assert entry["threshold_from"].startswith("validation")
    predicted = (applied["y_score"] >= entry["threshold"]).astype(int)
    sensitivity = recall_score(applied["y_true"], predicted)
    assert entry["apply"]["sensitivity"]["value"] == pytest.approx(sensitivity)
    # same numbers as the training run's evaluator on the same rows as its internal test
    same = evaluate_predictions(_as_internal_test(training, applied), n_boot=N_BOOT, seed=2)
    reference = same["models"]["model"]["progression"]
    assert _without(entry["apply"], "n_unlabelled") == reference["internal_test"]
    assert entry["validation"] == reference["validation"]
    assert entry["threshold"] == reference["threshold"]


def test_apply_scores_never_move_the_threshold():
    rng = np.random.default_rng(1)
    training = _binary(rng, _ids("T", 90), "validation", timepoints=2)
    applied = _binary(rng, _ids("A", 40), "apply", timepoints=2)
    first = evaluate_applied(applied, training, n_boot=20)["models"]["model"]["progression"]
    moved = applied.assign(y_score=_sigmoid(3.0 * applied["y_score"] - 2.5 + 0.4 * rng.normal()))
    moved.loc[moved.index[::3], "y_score"] = 0.01
    second = evaluate_applied(moved, training, n_boot=20)["models"]["model"]["progression"]
    assert second["threshold"] == first["threshold"] == pytest.approx(_youden(training))
    assert second["apply"]["auc"]["value"] != first["apply"]["auc"]["value"]
    # a fixed threshold is used as given
    fixed = evaluate_applied(applied, training, threshold=0.3, n_boot=20)
    assert fixed["models"]["model"]["progression"]["threshold"] == 0.3


def test_multiclass_nnunet_cases_macro_auc_equals_sklearn():
    rng = np.random.default_rng(2)
    training = _multiclass(rng, _ids("T", 90), "validation")
    applied = _multiclass(rng, _ids("N", 60), "apply")
    applied.insert(1, "case_id", [f"{p}_0000" for p in applied["patient_id"]])
    applied.insert(2, "timepoint", 0)
    result = evaluate_applied(applied, training, n_boot=N_BOOT, seed=5)
    assert result["kind"] == "multiclass"
    assert result["outcomes_known"] is True
    entry = result["models"]["model"]["stage"]
    columns = [f"y_score_{c}" for c in CLASSES]
    expected = roc_auc_score(
        applied["y_true"], applied[columns], multi_class="ovr", average="macro", labels=CLASSES
    )
    assert entry["apply"]["auc_macro"]["value"] == pytest.approx(expected)
    assert entry["apply"]["n_patients"] == 60
    same = evaluate_predictions(_as_internal_test(training, applied), n_boot=N_BOOT, seed=5)
    reference = same["models"]["model"]["stage"]["internal_test"]
    assert _without(entry["apply"], "n_unlabelled") == reference


def _mmdls(rng: np.random.Generator, ids: list[str], split: str) -> pd.DataFrame:
    parts = [
        _binary(rng, ids, split, target="histology"),
        _multiclass(rng, ids, split),
        _survival(rng, ids, split, "dfs"),
        _survival(rng, ids, split, "os"),
    ]
    return pd.concat(parts, ignore_index=True).assign(model="mm_dls")


def test_multitask_table_every_target_scored(tmp_path):
    rng = np.random.default_rng(3)
    training = _mmdls(rng, _ids("P", 120), "validation")
    applied = _mmdls(rng, _ids("P", 70), "apply")
    # through the files, as the workflow reads them: y_true is one text column of every task
    training.to_csv(tmp_path / "training.csv", index=False)
    applied.to_csv(tmp_path / "applied.csv", index=False)
    training = read_predictions(tmp_path / "training.csv")
    applied = read_predictions(tmp_path / "applied.csv")
    result = evaluate_applied(applied, training, n_boot=N_BOOT, seed=1)
    assert result["kind"] == "multitask"
    assert result["outcomes_known"] is True
    assert result["n_patients"] == 70
    assert set(result["tasks"]) == {"binary", "multiclass", "survival"}
    targets = result["models"]["mm_dls"]
    assert set(targets) == {"histology", "stage", "dfs", "os"}
    for entry in targets.values():
        assert entry["apply"]["n_patients"] == 70
    histology = applied[applied["target"] == "histology"]
    y = histology["y_true"].astype(int)
    auc = targets["histology"]["apply"]["auc"]["value"]
    assert auc == pytest.approx(roc_auc_score(y, histology["y_score"]))
    stage = applied[applied["target"] == "stage"]
    columns = [f"y_score_{c}" for c in CLASSES]
    macro = roc_auc_score(stage["y_true"], stage[columns], multi_class="ovr", labels=CLASSES)
    assert targets["stage"]["apply"]["auc_macro"]["value"] == pytest.approx(macro)
    # every task's numbers are those of the training run's evaluator (risk cut-off included)
    same = evaluate_predictions(_as_internal_test(training, applied), n_boot=N_BOOT, seed=1)
    assert same["kind"] == "multitask"
    for target, entry in targets.items():
        reference = same["models"]["mm_dls"][target]
        assert _without(entry["apply"], "n_unlabelled") == reference["internal_test"], target
    os_validation = training[(training["target"] == "os") & (training["split"] == "validation")]
    cutoff = float(np.median(os_validation["risk"]))
    assert targets["os"]["apply"]["km"]["cutoff"] == pytest.approx(cutoff, abs=1e-6)
    # the card lists every target's apply split
    card = card_markdown(model_card(result, {"study": "nsclc", "variant": "raw"}))
    for target in ("histology", "stage", "dfs", "os"):
        assert f"| mm_dls | {target} | apply |" in card


def test_negative_control_one_threshold_per_run():
    rng = np.random.default_rng(4)
    training = pd.concat(
        [_binary(rng, _ids("T", 80), "validation").assign(permutation=k) for k in range(3)],
        ignore_index=True,
    )
    applied = pd.concat(
        [_binary(rng, _ids("A", 40), "apply").assign(permutation=k) for k in range(3)],
        ignore_index=True,
    )
    result = evaluate_applied(applied, training, n_boot=N_BOOT, seed=3)
    entry = result["models"]["model"]["progression"]
    assert entry["apply"]["n_runs"] == 3
    assert entry["apply"]["n_patients"] == 40
    cuts = [_youden(part) for _, part in training.groupby("permutation")]
    assert entry["threshold"] == pytest.approx(np.mean(cuts))
    aucs = [roc_auc_score(p["y_true"], p["y_score"]) for _, p in applied.groupby("permutation")]
    assert entry["apply"]["auc"]["value"] == pytest.approx(np.mean(aucs))
    same = evaluate_predictions(_as_internal_test(training, applied), n_boot=N_BOOT, seed=3)
    reference = same["models"]["model"]["progression"]["internal_test"]
    assert _without(entry["apply"], "n_unlabelled") == reference
    # a run the training never had has no threshold
    extra = applied[applied["permutation"] == 0].assign(permutation=7)
    with pytest.raises(ModelError, match="run"):
        evaluate_applied(pd.concat([applied, extra]), training, n_boot=10)


def test_no_outcomes_predictions_only(tmp_path):
    rng = np.random.default_rng(5)
    training = _mmdls(rng, _ids("P", 90), "validation")
    applied = _mmdls(rng, _ids("N", 30), "apply")
    applied[["y_true", "time", "event"]] = np.nan
    applied.to_csv(tmp_path / "applied.csv", index=False)
    applied = read_predictions(tmp_path / "applied.csv")
    result = evaluate_applied(applied, training, n_boot=10)
    assert result["kind"] == "multitask"
    assert result["outcomes_known"] is False
    assert result["n_patients"] == 30
    assert result["models"] == {}
    assert result["unlabelled"] == {"n_rows": len(applied), "n_patients": 30}
    card = card_markdown(model_card(result, {"study": "nsclc", "variant": "raw"}))
    assert "30 patients without outcomes" in card
    # one kind alone: exactly the predictions-only result
    for kind, table in (
        ("binary", _binary(rng, _ids("N", 25), "apply", timepoints=2)),
        ("multiclass", _multiclass(rng, _ids("N", 25), "apply")),
        ("survival", _survival(rng, _ids("N", 25), "apply", "os")),
    ):
        table = table.copy()
        table[[c for c in ("y_true", "time", "event") if c in table.columns]] = np.nan
        expected = {"kind": kind, "outcomes_known": False, "n_patients": 25, "models": {}}
        assert evaluate_applied(table, training, n_boot=10) == expected
        card = card_markdown(model_card(expected, {"study": "s", "variant": "raw"}))
        assert "25 patients without outcomes" in card


def test_partial_outcomes_score_the_labelled_rows(tmp_path):
    rng = np.random.default_rng(6)
    training = _binary(rng, _ids("T", 90), "validation", timepoints=2)
    applied = _binary(rng, _ids("A", 50), "apply", timepoints=2)
    missing = applied.index[applied["patient_id"].isin(_ids("A", 8))]  # 8 patients, 16 rows
    applied.loc[missing[:-1], "y_true"] = np.nan  # A007 keeps one labelled time point
    applied.to_csv(tmp_path / "applied.csv", index=False)
    applied = read_predictions(tmp_path / "applied.csv")
    result = evaluate_applied(applied, training, n_boot=N_BOOT)
    assert result["outcomes_known"] is True
    assert result["n_patients"] == 50
    assert result["unlabelled"] == {"n_rows": 15, "n_patients": 8}
    entry = result["models"]["model"]["progression"]
    labelled = applied.dropna(subset=["y_true"])
    expected = roc_auc_score(labelled["y_true"].astype(int), labelled["y_score"])
    assert entry["apply"]["auc"]["value"] == pytest.approx(expected)
    assert entry["apply"]["n_patients"] == 43
    assert entry["apply"]["n_unlabelled"] == 15
    card = model_card(result, {"study": "pancreas", "variant": "raw"})
    assert card["models"]["model"]["progression"]["apply"]["n_unlabelled"] == 15
    text = card_markdown(card)
    assert "| model | progression | apply | 43 |" in text
    assert "15 prediction(s) of 8 patient(s) without outcome are not scored" in text


def test_partial_outcomes_multiclass_and_survival(tmp_path):
    rng = np.random.default_rng(7)
    # class names that look like numbers: read back as floats once a label is empty
    numbered = {name: str(k) for k, name in enumerate(CLASSES)}

    def renamed(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.assign(y_true=frame["y_true"].map(numbered))
        return frame.rename(columns={f"y_score_{c}": f"y_score_{k}" for c, k in numbered.items()})

    training = renamed(_multiclass(rng, _ids("T", 90), "validation"))
    applied = renamed(_multiclass(rng, _ids("A", 40), "apply"))
    applied.loc[applied.index[:5], "y_true"] = np.nan
    applied.to_csv(tmp_path / "applied.csv", index=False)
    training.to_csv(tmp_path / "training.csv", index=False)
    applied = read_predictions(tmp_path / "applied.csv")
    result = evaluate_applied(applied, read_predictions(tmp_path / "training.csv"), n_boot=20)
    entry = result["models"]["model"]["stage"]
    labelled = applied.dropna(subset=["y_true"])
    columns = [f"y_score_{k}" for k in range(3)]
    expected = roc_auc_score(labelled["y_true"].astype(int), labelled[columns], multi_class="ovr")
    assert entry["apply"]["auc_macro"]["value"] == pytest.approx(expected)
    assert entry["apply"]["n_patients"] == 35
    assert result["unlabelled"] == {"n_rows": 5, "n_patients": 5}
    # survival: patients without follow-up are left out, not an error
    training = _survival(rng, _ids("T", 90), "validation", "os")
    applied = _survival(rng, _ids("A", 40), "apply", "os")
    applied.loc[applied.index[:4], ["time", "event"]] = np.nan
    result = evaluate_applied(applied, training, n_boot=20)
    entry = result["models"]["model"]["os"]
    assert entry["apply"]["n_patients"] == 36
    assert entry["apply"]["n_unlabelled"] == 4
    assert result["unlabelled"] == {"n_rows": 4, "n_patients": 4}


def test_refusals():
    rng = np.random.default_rng(8)
    training = _binary(rng, _ids("T", 60), "validation")
    applied = _binary(rng, _ids("A", 30), "apply")
    with pytest.raises(ModelError, match="internal_test"):
        evaluate_applied(applied.assign(split="internal_test"), training, n_boot=10)
    # the threshold and the survival cut-offs need the training run's validation rows
    with pytest.raises(ModelError, match="no validation rows"):
        evaluate_applied(applied, training.iloc[:0], n_boot=10)
    survival = _survival(rng, _ids("A", 30), "apply", "os")
    with pytest.raises(ModelError, match="no validation rows"):
        evaluate_applied(survival, training, n_boot=10)
    # a fixed threshold borrows nothing; a multi-class model borrows nothing either
    assert evaluate_applied(applied, training.iloc[:0], threshold=0.5, n_boot=10)["models"]
    multiclass = _multiclass(rng, _ids("A", 30), "apply")
    assert evaluate_applied(multiclass, training.iloc[:0], n_boot=10)["models"]


def test_multitask_with_one_task_unlabelled():
    rng = np.random.default_rng(9)
    training = _mmdls(rng, _ids("P", 90), "validation")
    applied = _mmdls(rng, _ids("N", 40), "apply")
    survival = applied["target"].isin(["dfs", "os"])
    applied.loc[survival, ["time", "event"]] = np.nan  # no follow-up yet
    result = evaluate_applied(applied, training, n_boot=20)
    assert result["outcomes_known"] is True
    assert result["tasks"]["survival"] == {
        "kind": "survival",
        "outcomes_known": False,
        "n_patients": 40,
        "models": {},
    }
    assert set(result["models"]["mm_dls"]) == {"histology", "stage"}
    assert result["unlabelled"] == {"n_rows": 80, "n_patients": 40}
    card = card_markdown(model_card(result, {"study": "nsclc", "variant": "raw"}))
    assert "No outcomes for the survival targets" in card
    assert "| mm_dls | stage | apply | 40 |" in card
