"""Study net_survival on the demo cohort's planted mechanism (stand-in features)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines.utils import concordance_index

from oncoflow.demo.net_survival import NetSurvival
from oncoflow.errors import ModelError
from oncoflow.survival.apply import APPLY_SPLIT, apply_net_survival
from oncoflow.survival.protocol import (
    MODEL_SETS,
    PERMUTATION_COLUMN,
    PREDICTION_COLUMNS,
    ClinicalEncoder,
    run_net_survival,
)
from oncoflow.survival.summary import summarize


def demo_inputs(patients: int = 40, seed: int = 0):
    """Demo tables + stand-in features from the planted latents (no images needed).

    radiomics: log lesion volume and lesion HU sd (as measured on the CT, with noise) plus an
    uninformative mean HU; pathomics: nuclei density and fibre disorder (with noise) plus noise.
    """
    gen = NetSurvival(seed, patients)
    pats = gen.patients()
    tables = gen.tables(pats)
    rng = np.random.default_rng(1)
    ids = [p.patient_id for p in pats]
    n = len(ids)
    radiomics = pd.DataFrame(
        {
            "log_volume": [3 * np.log(p.latent["radius"]) + rng.normal(0, 0.1) for p in pats],
            "hu_sd": [6 + 28 * p.latent["texture"] + rng.normal(0, 2) for p in pats],
            "hu_mean": rng.normal(40, 5, n),
        },
        index=pd.Index(ids, name="patient_id"),
    )
    pathomics = pd.DataFrame(
        {
            "density": [p.latent["density"] + rng.normal(0, 0.05) for p in pats],
            "disorder": [p.latent["disorder"] + rng.normal(0, 0.05) for p in pats],
            "noise": rng.normal(size=n),
        },
        index=pd.Index(ids, name="patient_id"),
    )
    features = {
        "radiomics": radiomics,
        "pathomics": pathomics,
        "clinical": tables.clinical.set_index("patient_id"),
    }
    splits = tables.splits.set_index("patient_id")["split"]
    return features, tables.outcomes, splits, tables.oracle


@pytest.fixture(scope="module")
def demo():
    return demo_inputs()


@pytest.fixture(scope="module")
def predictions(demo):
    features, outcomes, splits, _ = demo
    return run_net_survival(features, outcomes, splits, repeats=5, seed=0)


def test_prediction_rows_follow_the_contract(demo, predictions):
    _, outcomes, splits, _ = demo
    assert list(predictions.columns) == list(PREDICTION_COLUMNS)
    assert set(predictions["model"]) == set(MODEL_SETS)
    assert set(predictions["target"]) == {"os", "pfs"}
    assert set(predictions["fold"]) == {"0", "1", "2", "3", "4", "final"}
    final = predictions[predictions["fold"] == "final"]
    test_ids = set(splits.index[splits != "train"])
    for (_, _), group in final.groupby(["model", "target"]):
        assert set(group["patient_id"]) == test_ids
        assert group["patient_id"].is_unique
        assert (group["split"] == splits[group["patient_id"]].to_numpy()).all()
    validation = predictions[predictions["split"] == "validation"]
    assert set(validation["patient_id"]) <= set(splits.index[splits == "train"])
    truth = outcomes.set_index("patient_id")
    os_rows = predictions[predictions["target"] == "os"]
    np.testing.assert_array_equal(os_rows["time"], truth.loc[os_rows["patient_id"], "os_time"])
    np.testing.assert_array_equal(os_rows["event"], truth.loc[os_rows["patient_id"], "os_event"])
    assert np.isfinite(predictions["risk"]).all()


def test_all_model_approaches_the_oracle(demo, predictions):
    oracle = demo[3]
    summary = summarize(predictions, oracle, n_boot=200)
    for target in ("os", "pfs"):
        test = summary["models"]["all"][target]["test"]
        assert abs(test["c_index"] - oracle[target]["value"]) < 0.1, (target, test)
        assert test["ci_low"] <= test["c_index"] <= test["ci_high"]
        for model in MODEL_SETS:
            for split in ("validation", "internal_test", "external_test", "test"):
                entry = summary["models"][model][target][split]
                assert entry["ci_low"] is not None, (model, target, split)
    assert summary["oracle"] == oracle


def test_permuted_outcomes_give_chance_level(demo):
    """Negative control: training outcomes permuted -> test C about 0.5 (mean of 5 draws)."""
    features, outcomes, splits, _ = demo
    pred = run_net_survival(
        features, outcomes, splits, repeats=1, permute=True, permutations=5, models=["all"]
    )
    assert sorted(pred[PERMUTATION_COLUMN].unique()) == [0, 1, 2, 3, 4]
    # every permutation predicts every test patient once per target
    final = pred[pred["fold"] == "final"]
    assert final.groupby([PERMUTATION_COLUMN, "target"]).size().nunique() == 1
    summary = summarize(pred, n_boot=20)
    for target in ("os", "pfs"):
        test = summary["models"]["all"][target]["test"]
        assert len(test["per_permutation"]) == 5
        assert test["c_index"] == pytest.approx(np.mean(test["per_permutation"]), abs=1e-6)
        assert abs(test["c_index"] - 0.5) < 0.12, (target, test)
        # n_events counts patients once, not once per permutation
        assert test["n_events"] <= test["n_patients"]
    with pytest.raises(ModelError, match="permutations"):
        run_net_survival(features, outcomes, splits, permute=True, permutations=0)


def test_worker_processes_give_the_same_predictions(demo):
    """n_jobs spreads (permutation, target) runs over processes; the rows are identical."""
    features, outcomes, splits, _ = demo
    options = {"repeats": 1, "permute": True, "permutations": 2, "models": ["radiomics"]}
    serial = run_net_survival(features, outcomes, splits, **options)
    parallel = run_net_survival(features, outcomes, splits, n_jobs=3, **options)
    assert len(serial) > 0
    pd.testing.assert_frame_equal(serial, parallel)


def test_test_patients_never_influence_the_models(demo):
    """Leakage test: test outcomes and another test patient's features change no risk."""
    features, outcomes, splits, _ = demo
    kwargs = {"repeats": 2, "models": ["clinical+radiomics"], "targets": ("os",)}
    ref = run_net_survival(features, outcomes, splits, **kwargs)
    test_ids = list(splits.index[splits != "train"])
    tampered_outcomes = outcomes.copy()
    is_test = tampered_outcomes["patient_id"].isin(test_ids)
    tampered_outcomes.loc[is_test, "os_time"] = 1
    tampered_outcomes.loc[is_test, "os_event"] = 1
    tampered_features = {k: v.copy() for k, v in features.items()}
    tampered_features["radiomics"].loc[test_ids[0]] = [100.0, 500.0, -900.0]
    tampered_features["clinical"].loc[test_ids[0], "smoking"] = "unheard-of"
    again = run_net_survival(tampered_features, tampered_outcomes, splits, **kwargs)
    others = again["patient_id"] != test_ids[0]
    np.testing.assert_array_equal(ref.loc[others, "risk"], again.loc[others, "risk"])
    assert (again.loc[~others, "risk"] != ref.loc[~others, "risk"]).all()


def test_clinical_encoder_is_fit_on_training_rows():
    train = pd.DataFrame(
        {"age": [50, 60, np.nan], "sex": ["F", "M", "F"], "smoking": ["never", "former", None]}
    )
    enc = ClinicalEncoder().fit(train)
    out = enc.transform(
        pd.DataFrame({"age": [np.nan, 70], "sex": ["M", "X"], "smoking": ["current", "former"]})
    )
    assert list(out.columns) == ["clinical:age", "clinical:sex=M", "clinical:smoking=never"]
    np.testing.assert_array_equal(out["clinical:age"], [55.0, 70.0])
    np.testing.assert_array_equal(out["clinical:sex=M"], [1.0, 0.0])
    np.testing.assert_array_equal(out["clinical:smoking=never"], [0.0, 0.0])


def test_input_errors(demo):
    features, outcomes, splits, _ = demo
    with pytest.raises(ModelError, match="unknown feature block"):
        run_net_survival({"genomics": features["radiomics"]}, outcomes, splits)
    with pytest.raises(ModelError, match="needs feature block"):
        run_net_survival({"radiomics": features["radiomics"]}, outcomes, splits, models=["all"])
    with pytest.raises(ModelError, match="dfs_time"):
        run_net_survival(features, outcomes, splits, targets=("dfs",), models=["radiomics"])
    bad = outcomes.assign(os_event=outcomes["os_event"] + 1)
    with pytest.raises(ModelError, match="event must be 0"):
        run_net_survival(features, bad, splits, models=["radiomics"])
    with pytest.raises(ModelError, match="unknown split"):
        run_net_survival(features, outcomes, splits.replace("train", "training"))


def test_given_folds_and_per_fold_features(demo):
    """Folds from folds.json and per-fold (e.g. ComBat-harmonized) tables are honoured."""
    features, outcomes, splits, _ = demo
    train = sorted(splits.index[splits == "train"])
    folds = {
        "a": {"fit": train[::2], "apply": train[1::2]},
        "final": {"fit": train, "apply": sorted(splits.index)},
    }
    kwargs = {"models": ["radiomics"], "targets": ("os",), "folds": folds}
    ref = run_net_survival(features, outcomes, splits, **kwargs)
    assert set(ref["fold"]) == {"a", "final"}
    assert sorted(ref.loc[ref["fold"] == "a", "patient_id"]) == train[1::2]
    shifted = features["radiomics"] * 2.0 + 1.0  # a per-fold affine 'harmonization'
    noisy = features["radiomics"].copy()
    noisy["hu_mean"] = np.random.default_rng(0).normal(size=len(noisy))
    again = run_net_survival(
        features, outcomes, splits, fold_features={"a": {"radiomics": noisy}}, **kwargs
    )
    final = ref["fold"] == "final"
    np.testing.assert_array_equal(ref.loc[final, "risk"], again.loc[final, "risk"])
    scaled = run_net_survival(
        features, outcomes, splits, fold_features={"final": {"radiomics": shifted}}, **kwargs
    )
    # scaling is undone by the in-fold standardization: same ranking of test patients
    np.testing.assert_allclose(
        np.argsort(scaled.loc[final, "risk"]), np.argsort(ref.loc[final, "risk"])
    )
    leaky = {"final": {"fit": [*train, next(iter(splits.index[splits != "train"]))], "apply": []}}
    with pytest.raises(ModelError, match="non-training patient"):
        run_net_survival(features, outcomes, splits, models=["radiomics"], folds=leaky)


@pytest.fixture(scope="module")
def trained(demo):
    features, outcomes, splits, _ = demo
    return run_net_survival(
        features,
        outcomes,
        splits,
        repeats=2,
        seed=3,
        models=["clinical", "all"],
        horizons=[365.0, 730.0],
        return_models=True,
    )


def test_frozen_models_reproduce_the_final_predictions(demo, trained):
    features, *_ = demo
    predictions, models = trained
    assert sorted((m.target, m.model) for m in models) == [
        ("os", "all"),
        ("os", "clinical"),
        ("pfs", "all"),
        ("pfs", "clinical"),
    ]
    final = predictions[predictions["fold"] == "final"]
    for fitted in models:
        rows = final[(final["target"] == fitted.target) & (final["model"] == fitted.model)]
        again = fitted.predict(features, rows["patient_id"].tolist())
        np.testing.assert_allclose(again["risk"], rows["risk"], rtol=1e-12)
        np.testing.assert_allclose(again["survival_730"], rows["survival_730"], rtol=1e-12)


def test_apply_to_a_new_cohort_scores_near_its_oracle(trained):
    _, models = trained
    features, outcomes, _, oracle = demo_inputs(patients=60, seed=11)
    applied, summary = apply_net_survival(models, features, outcomes)
    assert set(applied["split"]) == {APPLY_SPLIT}
    assert summary["n_patients"] == 60
    assert summary["outcomes_known"]
    assert applied.groupby(["model", "target"]).size().eq(60).all()
    rows = applied[(applied["model"] == "all") & (applied["target"] == "os")]
    c = concordance_index(rows["time"], -rows["risk"], rows["event"])
    assert c > oracle["os"]["value"] - 0.12, (c, oracle["os"])
    # same model, other patients only: the training patients' predictions are untouched
    assert not set(applied.columns) - {*PREDICTION_COLUMNS, "survival_365", "survival_730"}


def test_apply_refuses_missing_inputs(trained):
    _, models = trained
    features, outcomes, _, _ = demo_inputs(patients=20, seed=12)
    needed = next(m for m in models if m.model == "all").required_columns()
    lacking = dict(features, radiomics=features["radiomics"].drop(columns=needed["radiomics"][0]))
    with pytest.raises(ModelError, match=rf"radiomics column.*{needed['radiomics'][0]}"):
        apply_net_survival(models, lacking, outcomes)
    without = {k: v for k, v in features.items() if k != "pathomics"}
    with pytest.raises(ModelError, match="needs the pathomics features"):
        apply_net_survival(models, without, outcomes)
    clinical = features["clinical"].drop(columns="age")
    with pytest.raises(ModelError, match=r"clinical column.*age"):
        apply_net_survival(models, dict(features, clinical=clinical), outcomes)
    # no outcomes: predictions only
    applied, summary = apply_net_survival(models, features, None)
    assert applied["time"].isna().all()
    assert not summary["outcomes_known"]
    assert applied["risk"].notna().all()
