"""Nested ComBat: order chosen on training data, Kruskal-Wallis over all levels, drop, splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import oncoflow.harmonize.nested as nested_module
from oncoflow.errors import HarmonizationError
from oncoflow.harmonize import ComBat, NestedComBat, site_effect

N_FEATURES = 24


def simulate(n: int = 120, seed: int = 0):
    """Three batch variables: scanner (3 levels, only C differs), kernel and slice thickness."""
    rng = np.random.default_rng(seed)
    index = pd.Index([f"P{i:03d}" for i in range(n)], name="patient_id")
    batches = pd.DataFrame(
        {
            "scanner": rng.choice(["A", "B", "C"], n, p=[0.4, 0.35, 0.25]),
            "kernel": rng.choice(["soft", "sharp"], n),
            "slice_thickness": rng.choice(["1mm", "2mm"], n, p=[0.3, 0.7]),
        },
        index=index,
    )
    covariates = pd.DataFrame(
        {"sex": rng.choice(["F", "M"], n), "age": rng.uniform(40, 80, n)}, index=index
    )
    X = rng.normal(size=(n, N_FEATURES)) * rng.uniform(0.5, 2, N_FEATURES)
    X += (batches["scanner"] == "C").to_numpy()[:, None] * 2.0  # C only: A vs B are equal
    X[:, :12] += (batches["kernel"] == "sharp").to_numpy()[:, None] * 1.5
    sharp = (batches["kernel"] == "sharp").to_numpy()
    X[sharp] *= 1.5
    X[:, ::2] += (batches["slice_thickness"] == "2mm").to_numpy()[:, None] * 1.0
    X += (covariates["sex"] == "M").to_numpy()[:, None] * 0.5
    features = pd.DataFrame(X, index=index, columns=[f"f{j}" for j in range(N_FEATURES)])
    return features, batches, covariates


@pytest.fixture(scope="module")
def data():
    return simulate()


class IdentityComBat(ComBat):
    """A ComBat that changes nothing, to test the order / drop logic on raw batch differences."""

    def transform(self, X, batch, covariates=None):
        return X.copy()


def test_order_follows_fewest_significant_and_harmonises_all(data):
    features, batches, covariates = data
    nested = NestedComBat(["scanner", "kernel", "slice_thickness"])
    result = nested.fit_transform(features, batches, covariates)
    assert sorted(nested.order_) == ["kernel", "scanner", "slice_thickness"]
    assert nested.skipped_ == []
    assert len(nested.rounds_) == 3
    assert [len(r) for r in nested.rounds_] == [3, 2, 1]
    # the first round's counts are those of single ComBat runs, and the minimum was applied
    for column, count in nested.rounds_[0].items():
        single = ComBat().fit_transform(features, batches[column], covariates)
        p = site_effect(single, batches[column])["kruskal_p"]
        assert count == int((p < 0.05).sum())
    first = min(nested.rounds_[0], key=nested.rounds_[0].get)
    assert nested.order_[0] == first
    for column in nested.batch_columns:
        before = site_effect(features, batches[column]).attrs["summary"]
        after = site_effect(result, batches[column]).attrs["summary"]
        assert after["kruskal_n_significant"] <= max(2, before["kruskal_n_significant"] // 4)
    assert list(result.columns) == list(features.columns)
    assert result.index.equals(features.index)


def test_kruskal_uses_all_levels(data, monkeypatch):
    # with no harmonisation, scanner differs only in level C: a test of levels A vs B (the seed's
    # 0-vs-1 KS test) finds nothing; Kruskal-Wallis over A, B, C finds every feature
    monkeypatch.setattr(nested_module, "ComBat", IdentityComBat)
    features, batches, _ = data
    nested = NestedComBat(["scanner"]).fit(features, batches)
    assert nested.rounds_ == [{"scanner": N_FEATURES}]


def test_drop_removes_features_still_significant(data, monkeypatch):
    monkeypatch.setattr(nested_module, "ComBat", IdentityComBat)
    _, batches, _ = data
    rng = np.random.default_rng(7)
    thick = (batches["slice_thickness"] == "2mm").to_numpy()
    values = rng.normal(size=(len(batches), N_FEATURES))
    values[:, ::2] += thick[:, None] * 2.0  # thickness shifts the even features only
    features = pd.DataFrame(
        values, index=batches.index, columns=[f"f{j}" for j in range(N_FEATURES)]
    )
    nested = NestedComBat(["slice_thickness"], drop=True).fit(features, batches)
    assert set(nested.dropped_features_) >= {f"f{j}" for j in range(0, N_FEATURES, 2)}
    assert len(nested.dropped_features_) <= N_FEATURES // 2 + 2
    out = nested.transform(features, batches)
    assert list(out.columns) == nested.feature_names_out_
    assert not set(out.columns) & set(nested.dropped_features_)


def test_drop_true_with_real_combat(data):
    features, batches, covariates = data
    kept = NestedComBat(list(batches.columns), drop=False).fit(features, batches, covariates)
    dropped = NestedComBat(list(batches.columns), drop=True).fit(features, batches, covariates)
    assert kept.dropped_features_ == []
    assert len(dropped.feature_names_out_) == N_FEATURES - len(dropped.dropped_features_)


def split(data, n_test=30):
    features, batches, covariates = data
    train = features.index[:-n_test]
    test = features.index[-n_test:]
    return (features.loc[train], batches.loc[train], covariates.loc[train]), (
        features.loc[test],
        batches.loc[test],
        covariates.loc[test],
    )


def test_fit_transform_split(data):
    (X, b, c), (Xt, bt, ct) = split(data)
    combined = NestedComBat(list(b.columns), parametric=False).fit_transform(X, b, c)
    nested = NestedComBat(list(b.columns), parametric=False).fit(X, b, c)
    np.testing.assert_allclose(
        nested.transform(X, b, c).to_numpy(), combined.to_numpy(), atol=1e-12
    )
    test_out = nested.transform(Xt, bt, ct)
    assert np.isfinite(test_out.to_numpy()).all()
    # arbitrary test rows change nothing of the fit: same order, same training output
    Xt2 = Xt * 0 + np.random.default_rng(1).normal(50, 20, Xt.shape)
    nested2 = NestedComBat(list(b.columns), parametric=False).fit(X, b, c)
    nested2.transform(Xt2, bt, ct)
    assert nested2.order_ == nested.order_
    pd.testing.assert_frame_equal(nested2.transform(X, b, c), nested.transform(X, b, c))


def test_single_sample_levels(data):
    features, batches, covariates = data
    odd = batches.copy()
    odd.loc[odd.index[0], "kernel"] = "experimental"  # one training sample
    odd["vendor"] = "X"
    odd.loc[odd.index[1], "vendor"] = "Y"  # one level with 2+ samples: nothing to harmonise
    nested = NestedComBat(["kernel", "scanner", "vendor"])
    result = nested.fit_transform(features, odd, covariates)
    assert nested.skipped_ == ["vendor"]
    step = next(s for s in nested.steps_ if s.column == "kernel")
    assert step.passthrough_levels == ["experimental"]
    assert np.isfinite(result.to_numpy()).all()
    new = odd.copy()
    new.loc[new.index[2], "kernel"] = "brand_new"
    with pytest.raises(HarmonizationError, match="brand_new"):
        nested.transform(features, new, covariates)


def test_array_input_and_errors(data):
    features, batches, _ = data
    out = NestedComBat(["kernel"]).fit_transform(features.to_numpy(), batches.reset_index())
    assert isinstance(out, np.ndarray)
    assert out.shape == features.shape
    with pytest.raises(HarmonizationError, match="not fitted"):
        NestedComBat(["kernel"]).transform(features, batches)
    with pytest.raises(HarmonizationError, match="gantry"):
        NestedComBat(["gantry"]).fit(features, batches)
