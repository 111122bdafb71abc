"""Site-effect statistics: per-feature Kruskal-Wallis / ANOVA by batch, and their summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from oncoflow.errors import HarmonizationError
from oncoflow.harmonize import site_effect, site_effect_summary


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    batch = pd.Series(np.repeat(["a", "b", "c"], [10, 15, 20]), index=[f"P{i}" for i in range(45)])
    X = pd.DataFrame(rng.normal(size=(45, 4)), index=batch.index, columns=["w", "x", "y", "z"])
    X["x"] += (batch == "c").to_numpy() * 3.0  # strong site effect in one level only
    X["z"] = 1.0  # constant: no test
    return X, batch


def test_matches_scipy_per_feature(data):
    X, batch = data
    table = site_effect(X, batch)
    assert list(table.columns) == ["kruskal_h", "kruskal_p", "anova_f", "anova_p"]
    assert list(table.index) == ["w", "x", "y", "z"]
    for feature in ["w", "x", "y"]:
        groups = [X.loc[batch == level, feature] for level in ["a", "b", "c"]]
        kw = stats.kruskal(*groups)
        f = stats.f_oneway(*groups)
        assert table.loc[feature, "kruskal_h"] == pytest.approx(kw.statistic, rel=1e-12)
        assert table.loc[feature, "kruskal_p"] == pytest.approx(kw.pvalue, rel=1e-12)
        assert table.loc[feature, "anova_f"] == pytest.approx(f.statistic, rel=1e-12)
        assert table.loc[feature, "anova_p"] == pytest.approx(f.pvalue, rel=1e-12)
    assert table.loc["z"].isna().all()
    assert table.loc["x", "kruskal_p"] < 1e-5


def test_summary(data):
    X, batch = data
    table = site_effect(X, batch)
    summary = table.attrs["summary"]
    assert summary == site_effect_summary(table) | {"n_samples": 45, "n_batches": 3}
    assert summary["n_features"] == 4
    assert summary["n_tested"] == 3
    n_sig = int((table["kruskal_p"] < 0.05).sum())
    assert summary["kruskal_n_significant"] == n_sig
    assert summary["kruskal_fraction_significant"] == pytest.approx(n_sig / 4)
    assert summary["anova_median_p"] == pytest.approx(table["anova_p"].dropna().median())
    strict = site_effect_summary(table, alpha=1e-10)
    assert strict["kruskal_n_significant"] == 0


def test_array_input_and_errors(data):
    X, batch = data
    table = site_effect(X.to_numpy(), batch.to_numpy())
    assert list(table.index) == [0, 1, 2, 3]
    np.testing.assert_allclose(table["anova_p"].to_numpy(), site_effect(X, batch)["anova_p"])
    with pytest.raises(HarmonizationError, match="at least 2 batches"):
        site_effect(X, pd.Series("a", index=X.index))
    broken = X.assign(w=np.nan)
    with pytest.raises(HarmonizationError, match="'w'"):
        site_effect(broken, batch)
    with pytest.raises(HarmonizationError, match="44 values"):
        site_effect(X, batch.to_numpy()[:-1])
