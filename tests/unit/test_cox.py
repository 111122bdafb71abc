"""CoxModel against lifelines' CoxPHFitter on the rossi data."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from lifelines.datasets import load_rossi

from oncoflow.errors import ModelError
from oncoflow.metrics.survival import concordance_index
from oncoflow.survival import CoxModel


@pytest.fixture(scope="module")
def rossi():
    data = load_rossi()
    return data.drop(columns=["week", "arrest"]), data["week"], data["arrest"], data


def _lifelines(data, penalizer, l1_ratio):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CoxPHFitter(penalizer=penalizer, l1_ratio=l1_ratio).fit(data, "week", "arrest")


@pytest.mark.parametrize(
    ("penalizer", "l1_ratio", "tol"),
    [(0.0, 0.0, 1e-6), (0.1, 0.0, 1e-4), (0.5, 0.0, 1e-4), (0.1, 0.5, 1e-4), (0.05, 1.0, 1e-4)],
)
def test_coefficients_match_lifelines(rossi, penalizer, l1_ratio, tol):
    X, time, event, data = rossi
    model = CoxModel(penalizer, l1_ratio).fit(X, time, event)
    reference = _lifelines(data, penalizer, l1_ratio).params_[X.columns]
    assert isinstance(model.coef_, pd.Series)
    assert list(model.coef_.index) == list(X.columns)
    np.testing.assert_allclose(model.coef_.to_numpy(), reference.to_numpy(), atol=tol)
    assert model.converged_


def test_lifelines_backend_is_lifelines(rossi):
    X, time, event, data = rossi
    model = CoxModel(0.1, backend="lifelines").fit(X, time, event)
    reference = _lifelines(data, 0.1, 0.0).params_[X.columns]
    np.testing.assert_allclose(model.coef_.to_numpy(), reference.to_numpy(), atol=1e-10)


def test_risk_and_breslow_survival_match_lifelines(rossi):
    X, time, event, data = rossi
    model = CoxModel(0.1).fit(X, time, event)
    reference = _lifelines(data, 0.1, 0.0)
    risk = model.predict_risk(X)
    np.testing.assert_allclose(risk, X.to_numpy() @ model.coef_.to_numpy())
    # lifelines' log partial hazard is the same linear predictor, centred
    log_ph = reference.predict_log_partial_hazard(X).to_numpy()
    np.testing.assert_allclose(risk - risk.mean(), log_ph - log_ph.mean(), atol=1e-4)
    times = [5.0, 20.0, 40.0, 52.0]
    surv = model.predict_survival(X.iloc[:20], times)
    expected = reference.predict_survival_function(X.iloc[:20], times=times).T.to_numpy()
    assert surv.shape == (20, 4)
    np.testing.assert_allclose(surv, expected, atol=1e-5)
    assert np.all(np.diff(surv, axis=1) <= 0)
    assert concordance_index(time, event, risk) > 0.6


def test_lasso_gives_exact_zeros_and_constant_columns_get_zero(rossi):
    X, time, event, _ = rossi
    Xc = X.assign(constant=3.0)
    model = CoxModel(0.05, 1.0).fit(Xc, time, event)
    assert model.coef_["constant"] == 0.0
    assert (model.coef_ == 0.0).sum() >= 3
    strong = CoxModel(10.0, 1.0).fit(X, time, event)
    assert (strong.coef_ == 0.0).all()


def test_arrays_without_names_and_errors(rossi):
    X, time, event, _ = rossi
    unnamed = CoxModel().fit(X.to_numpy(), time.to_numpy(), event.to_numpy())
    assert list(unnamed.coef_.index) == [f"x{i}" for i in range(X.shape[1])]
    model = CoxModel().fit(X, time, event)
    with pytest.raises(ModelError, match="no events"):
        CoxModel().fit(X, time, np.zeros(len(time), dtype=int))
    with pytest.raises(ModelError, match="NaN"):
        CoxModel().fit(X.assign(age=np.nan), time, event)
    with pytest.raises(ModelError, match="event must be 0"):
        CoxModel().fit(X, time, event + 1)
    with pytest.raises(ModelError, match="not fitted"):
        CoxModel().predict_risk(X)
    with pytest.raises(ModelError, match="lacks fitted feature"):
        model.predict_risk(X.rename(columns={"age": "AGE"}))
    with pytest.raises(ModelError, match="penalizer"):
        CoxModel(-1.0)
