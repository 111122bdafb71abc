"""Survival predictions.csv evaluation: numbers equal lifelines / scikit-survival, seeded CIs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines.statistics import logrank_test
from lifelines.utils import concordance_index as lifelines_c
from sksurv.metrics import (
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.util import Surv

from oncoflow.errors import ModelError
from oncoflow.evaluate.survival import evaluate_survival, metric_names

HORIZONS = (365.0, 730.0, 1095.0)


def _patients(rng: np.random.Generator, n: int, prefix: str) -> pd.DataFrame:
    x = rng.normal(size=n)
    death = rng.exponential(1100.0 * np.exp(-0.9 * x))
    censor = rng.uniform(300.0, 2500.0, n)
    time = np.maximum(np.round(np.minimum(death, censor)), 1.0)
    risk = x + rng.normal(0, 0.6, n)
    frame = pd.DataFrame(
        {
            "patient_id": [f"{prefix}{i:03d}" for i in range(n)],
            "time": time,
            "event": (death <= censor).astype(int),
            "risk": risk,
        }
    )
    # a Breslow-like survival curve per patient: S(t) = exp(-t / 1100 * exp(0.9 risk))
    for h in HORIZONS:
        frame[f"survival_{h:g}"] = np.exp(-h / 1100.0 * np.exp(0.9 * risk))
    return frame


def _predictions(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    train = _patients(rng, 120, "T").assign(split="validation", target="os")
    train["fold"] = [str(i % 4) for i in range(len(train))]
    internal = _patients(rng, 50, "I").assign(split="internal_test", fold="final", target="os")
    external = _patients(rng, 40, "E").assign(split="external_test", fold="final", target="os")
    return pd.concat([train, internal, external], ignore_index=True)


def _value(entry: dict, name: str) -> float:
    return entry[name]["value"]


def test_metrics_equal_lifelines_and_sksurv():
    preds = _predictions()
    out = evaluate_survival(preds, horizons=HORIZONS, n_boot=20, seed=3)
    entry = out["models"]["model"]["os"]
    train = preds[preds["split"] == "validation"]
    y_train = Surv.from_arrays(train["event"].astype(bool), train["time"])
    for split in ("internal_test", "external_test", "test"):
        rows = preds[preds["fold"] == "final"]
        if split != "test":
            rows = rows[rows["split"] == split]
        got = entry[split]
        assert got["n_patients"] == len(rows)
        assert _value(got, "harrell_c") == pytest.approx(
            lifelines_c(rows["time"], -rows["risk"], rows["event"]), abs=1e-6
        )
        y_test = Surv.from_arrays(rows["event"].astype(bool), rows["time"])
        assert _value(got, "uno_c") == pytest.approx(
            concordance_index_ipcw(y_train, y_test, rows["risk"].to_numpy())[0], abs=1e-6
        )
        kept = [h for h in HORIZONS if rows["time"].min() <= h < rows["time"].max()]
        auc, mean_auc = cumulative_dynamic_auc(y_train, y_test, rows["risk"].to_numpy(), kept)
        for h, value in zip(kept, auc, strict=True):
            assert _value(got, f"td_auc@{h:g}") == pytest.approx(value, abs=1e-6)
        assert _value(got, "mean_td_auc") == pytest.approx(mean_auc, abs=1e-6)
        surv = rows[[f"survival_{h:g}" for h in kept]].to_numpy()
        assert _value(got, "ibs") == pytest.approx(
            integrated_brier_score(y_train, y_test, surv, kept), abs=1e-6
        )
        for name in metric_names(HORIZONS, brier=True):
            cell = got[name]
            if cell["value"] is not None:
                assert cell["ci_low"] <= cell["value"] <= cell["ci_high"], (split, name)
    # signal planted: the model beats chance clearly on 90 test patients
    assert _value(entry["test"], "harrell_c") > 0.65


def test_km_groups_use_the_validation_median_and_lifelines_logrank():
    preds = _predictions()
    entry = evaluate_survival(preds, horizons=HORIZONS, n_boot=5)["models"]["model"]["os"]
    validation = preds[preds["split"] == "validation"]
    cutoff = float(np.median(validation["risk"]))
    km = entry["test"]["km"]
    assert km["cutoff"] == pytest.approx(cutoff, abs=1e-6)
    test = preds[preds["fold"] == "final"]
    high = test["risk"] > cutoff
    expected = logrank_test(
        test["time"][high], test["time"][~high], test["event"][high], test["event"][~high]
    )
    assert km["p_value"] == pytest.approx(expected.p_value, rel=1e-4)
    assert km["curves"]["high"]["n"] + km["curves"]["low"]["n"] == len(test)
    assert km["curves"]["high"]["survival"][-1] < km["curves"]["low"]["survival"][-1]


def test_per_fold_and_pooled_validation():
    preds = _predictions()
    entry = evaluate_survival(preds, horizons=HORIZONS, n_boot=10)["models"]["model"]["os"]
    folds = entry["validation"]["per_fold"]
    assert sorted(folds) == ["0", "1", "2", "3"]
    validation = preds[preds["split"] == "validation"]
    for fold, part in validation.groupby("fold"):
        assert folds[fold]["harrell_c"] == pytest.approx(
            lifelines_c(part["time"], -part["risk"], part["event"]), abs=1e-6
        )
    pooled = entry["validation"]["pooled"]
    assert pooled["harrell_c"]["value"] == pytest.approx(
        np.mean([f["harrell_c"] for f in folds.values()]), abs=1e-6
    )
    assert pooled["n_runs"] == 4


def test_bootstrap_is_reproducible_for_a_seed():
    preds = _predictions()
    a = evaluate_survival(preds, n_boot=30, seed=11)
    b = evaluate_survival(preds, n_boot=30, seed=11)
    c = evaluate_survival(preds, n_boot=30, seed=12)
    assert a == b
    cell = ("models", "model", "os", "test", "uno_c")

    def pick(d: dict) -> dict:
        for key in cell:
            d = d[key]
        return d

    assert pick(a) != pick(c)
    assert pick(a)["value"] == pick(c)["value"]


def test_permuted_runs_average_per_permutation_and_sit_near_chance():
    rng = np.random.default_rng(5)
    base = _predictions()
    runs = []
    for p in range(4):
        run = base.copy()
        run["risk"] = rng.normal(size=len(run))  # a model that learnt nothing
        run["permutation"] = p
        runs.append(run)
    preds = pd.concat(runs, ignore_index=True)
    entry = evaluate_survival(preds, n_boot=20)["models"]["model"]["os"]
    test = entry["test"]
    assert test["n_runs"] == 4
    assert test["n_patients"] == 90
    per_run = [
        lifelines_c(part["time"], -part["risk"], part["event"])
        for _, part in preds[preds["fold"] == "final"].groupby("permutation")
    ]
    assert test["harrell_c"]["value"] == pytest.approx(np.mean(per_run), abs=1e-6)
    assert abs(test["harrell_c"]["value"] - 0.5) < 0.1


def test_missing_columns_and_missing_validation_are_errors():
    preds = _predictions()
    with pytest.raises(ModelError, match="risk"):
        evaluate_survival(preds.drop(columns="risk"))
    with pytest.raises(ModelError, match="no validation rows"):
        evaluate_survival(preds[preds["split"] != "validation"])
