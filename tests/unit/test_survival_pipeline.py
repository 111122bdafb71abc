"""In-fold feature pipeline, cross-validated Cox, folds and the bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oncoflow.errors import ModelError
from oncoflow.metrics.bootstrap import bootstrap_ci
from oncoflow.metrics.survival import concordance_index
from oncoflow.survival import (
    CoxPipelineCV,
    SurvivalFeaturePipeline,
    stratified_folds,
)


def _cohort(n=120, seed=0):
    """Synthetic cohort: f0, f1 drive the hazard; f0_copy ~ f0; noise; a constant column."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"f{i}" for i in range(6)])
    X.index = [f"P{i:03d}" for i in range(n)]
    X["f0_copy"] = 0.8 * X["f0"] + 0.2 * rng.normal(size=n)  # |r| > 0.9, weaker signal
    X["const"] = 5.0
    eta = 1.0 * X["f0"] + 0.7 * X["f1"]
    death = rng.exponential(size=n) * np.exp(-eta)
    censor = rng.exponential(size=n) * 1.5
    time = np.minimum(death, censor).to_numpy()
    event = (death <= censor).astype(int).to_numpy()
    return X, time, event, eta.to_numpy()


def test_pipeline_filters_ranks_and_scales():
    X, time, event, _ = _cohort()
    pipe = SurvivalFeaturePipeline(k=3).fit(X, time, event)
    assert pipe.dropped_["const"] == "near-constant"
    # of the correlated pair, the one with the higher univariate C stays
    assert np.corrcoef(X["f0"], X["f0_copy"])[0, 1] > 0.9
    assert pipe.dropped_["f0_copy"] == "correlated with f0"
    strength = (pipe.univariate_c_ - 0.5).abs()
    assert strength["f0"] > strength["f0_copy"]
    assert set(pipe.selected_[:2]) == {"f0", "f1"}
    assert pipe.selected_ == pipe.ranking_[:3]
    assert len(pipe.selected_) == 3
    z = pipe.transform(X)
    assert list(z.columns) == pipe.selected_
    np.testing.assert_allclose(z.mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(ddof=0), 1.0, atol=1e-12)
    assert pipe.with_k(1).selected_ == pipe.ranking_[:1]


def test_correlation_filter_respects_censoring():
    """Seed 002 kept the feature more correlated with the time column, ignoring censoring.

    Here ``early`` predicts death well but correlates with time only through events, while
    ``late`` tracks the censoring times: the C-index keeps ``early``.
    """
    rng = np.random.default_rng(3)
    n = 200
    early = rng.normal(size=n)
    death = rng.exponential(size=n) * np.exp(-1.5 * early)
    censor = rng.uniform(0.05, 3.0, size=n)
    time = np.minimum(death, censor)
    event = (death <= censor).astype(int)
    late = 0.93 * early + 0.37 * rng.normal(size=n) - 0.6 * (time - time.mean()) * (1 - event)
    X = pd.DataFrame({"early": early, "late": late})
    assert abs(np.corrcoef(early, late)[0, 1]) > 0.9
    assert abs(np.corrcoef(late, time)[0, 1]) > abs(np.corrcoef(early, time)[0, 1])
    pipe = SurvivalFeaturePipeline().fit(X, time, event)
    assert pipe.selected_ == ["early"]
    assert pipe.dropped_ == {"late": "correlated with early"}


def test_keep_columns_and_missing_values():
    X, time, event, _ = _cohort()
    X = X.assign(age=np.linspace(40, 80, len(X)))
    X.iloc[0, 0] = np.nan
    X["empty"] = np.nan
    pipe = SurvivalFeaturePipeline(k=1, keep=["age"]).fit(X, time, event)
    assert pipe.selected_ == ["age", pipe.ranking_[0]]
    assert pipe.ranking_[0] in {"f0", "f1"}
    assert pipe.dropped_["empty"] == "all missing"
    z = pipe.transform(X)
    assert np.isfinite(z.to_numpy()).all()
    with pytest.raises(ModelError, match="kept column"):
        SurvivalFeaturePipeline(keep=["nope"]).fit(X, time, event)
    with pytest.raises(ModelError, match="missing at transform"):
        pipe.transform(X.drop(columns=[pipe.ranking_[0]]))


def test_test_rows_never_influence_fitted_state():
    """Leakage test: changing test patients' features changes nothing fitted on train."""
    X, time, event, _ = _cohort()
    train, test = X.index[:80], X.index[80:]
    ref = CoxPipelineCV(seed=1).fit(X.loc[train], time[:80], event[:80])
    tampered = X.copy()
    tampered.loc[test] = tampered.loc[test] * 100.0 + 7.0
    again = CoxPipelineCV(seed=1).fit(tampered.loc[train], time[:80], event[:80])
    pd.testing.assert_series_equal(ref.model_.coef_, again.model_.coef_)
    assert ref.best_ == again.best_
    np.testing.assert_array_equal(ref.predict_risk(X.loc[test]), again.predict_risk(X.loc[test]))
    pd.testing.assert_series_equal(ref.pipeline_.mean_, again.pipeline_.mean_)
    # predicting one patient does not depend on the others
    one = ref.predict_risk(X.loc[test[:1]])
    assert one[0] == ref.predict_risk(X.loc[test])[0]


def test_cv_model_recovers_the_signal():
    X, time, event, eta = _cohort(n=200, seed=5)
    cv = CoxPipelineCV(k_grid=(1, 2, 4), seed=0).fit(X.iloc[:140], time[:140], event[:140])
    assert {r.k for r in cv.cv_results_} == {1, 2, 4}
    assert len(cv.cv_results_) == 3 * 3 * 2
    assert "f0" in cv.pipeline_.selected_
    c_test = concordance_index(time[140:], event[140:], cv.predict_risk(X.iloc[140:]))
    c_oracle = concordance_index(time[140:], event[140:], eta[140:])
    assert c_test > c_oracle - 0.05
    surv = cv.predict_survival(X.iloc[140:], [0.5, 1.0])
    assert surv.shape == (60, 2)


def test_stratified_folds_are_balanced_and_order_free():
    ids = [f"P{i:02d}" for i in range(30)]
    event = np.array([1] * 12 + [0] * 18)
    folds = stratified_folds(ids, event, 3, seed=4)
    for f in range(3):
        assert (folds == f).sum() == 10
        assert event[folds == f].sum() == 4
    order = np.random.default_rng(0).permutation(30)
    shuffled = stratified_folds([ids[i] for i in order], event[order], 3, seed=4)
    np.testing.assert_array_equal(shuffled, folds[order])


def test_bootstrap_ci():
    rng = np.random.default_rng(0)
    x = rng.normal(10.0, 2.0, 400)
    est, low, high = bootstrap_ci(np.mean, x, n=2000, seed=1)
    assert est == pytest.approx(x.mean())
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert low == pytest.approx(est - half, abs=0.05)
    assert high == pytest.approx(est + half, abs=0.05)
    assert bootstrap_ci(np.mean, x, n=200, seed=3) == bootstrap_ci(np.mean, x, n=200, seed=3)
    # C-index with undefined replicates skipped
    time = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    event = np.array([1, 0, 1, 0, 1, 0])
    risk = np.array([6.0, 5.0, 4.0, 3.0, 1.0, 2.0])
    est, low, high = bootstrap_ci(concordance_index, time, event, risk, n=300)
    assert low <= est <= high
    # patient-level resampling keeps a patient's rows together
    groups = np.repeat(np.arange(50), 3)
    values = np.repeat(rng.normal(size=50), 3)
    est, low, high = bootstrap_ci(np.mean, values, n=500, groups=groups)
    assert low < est < high
    with pytest.raises(ModelError, match="different lengths"):
        bootstrap_ci(np.mean, x, x[:3])
