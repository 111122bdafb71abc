"""ComBat: numbers equal neuroCombat 0.2.12, fit/transform split, degenerate inputs."""

from __future__ import annotations

import contextlib
import copy
import io
import itertools

import numpy as np
import pandas as pd
import pytest

from oncoflow.errors import HarmonizationError, OncoflowError
from oncoflow.harmonize import ComBat, site_effect

SIZES = (12, 20, 30)
N_FEATURES = 40
SHIFT = {"s1": 0.0, "s2": 1.0, "s3": -0.7}
SCALE = {"s1": 1.0, "s2": 1.8, "s3": 0.6}

# every option combination neuroCombat supports: parametric x eb x mean_only x ref_batch
COMBINATIONS = list(itertools.product([True, False], [True, False], [False, True], [None, "s2"]))


def simulate(seed: int = 1, sizes: tuple[int, ...] = SIZES, n_features: int = N_FEATURES):
    """Three unequal batches with shift + scale, a categorical and a continuous covariate.

    Ages are multiples of 0.5 so that neuroCombat's float32 cast of continuous covariates is exact.
    """
    rng = np.random.default_rng(seed)
    names = [f"s{i + 1}" for i in range(len(sizes))]
    batch = np.repeat(names, sizes)
    n = batch.size
    sex = rng.choice(["F", "M"], n)
    age = np.round(rng.uniform(40, 80, n) * 2) / 2
    X = rng.normal(size=(n, n_features)) * rng.uniform(0.5, 3, n_features)
    for name in names:  # batch effect: scale the noise, shift the mean
        rows = batch == name
        X[rows] *= SCALE.get(name, 1.0)
        X[rows] += SHIFT.get(name, 0.5) * rng.uniform(0.5, 1.5, n_features)
    X += rng.uniform(-2, 5, n_features)
    X += (sex == "M")[:, None] * 0.8 + (age[:, None] - 60) * 0.05
    index = pd.Index([f"P{i:03d}" for i in range(n)], name="patient_id")
    features = pd.DataFrame(X, index=index, columns=[f"f{j}" for j in range(n_features)])
    covariates = pd.DataFrame({"sex": sex, "age": age}, index=index)
    return features, pd.Series(batch, index=index, name="site"), covariates


def run_neurocombat(features, batch, covariates, parametric, eb, mean_only, ref_batch, monkeypatch):
    neuro = pytest.importorskip("neuroCombat")
    # neuroCombat 0.2.12 still calls np.int (removed in numpy 1.24) when ref_batch is set
    monkeypatch.setattr(np, "int", int, raising=False)
    covars = pd.DataFrame(
        {"batch": batch.to_numpy(), "sex": covariates["sex"].to_numpy(), "age": covariates["age"]}
    ).reset_index(drop=True)
    with contextlib.redirect_stdout(io.StringIO()):
        out = neuro.neuroCombat(
            features.to_numpy().T.copy(),  # features x samples, float64 (a DataFrame -> float32)
            covars,
            "batch",
            categorical_cols=["sex"],
            continuous_cols=["age"],
            eb=eb,
            parametric=parametric,
            mean_only=mean_only,
            ref_batch=ref_batch,
        )
    return out["data"].T, out["estimates"]


@pytest.fixture(scope="module")
def data():
    return simulate()


@pytest.mark.parametrize(("parametric", "eb", "mean_only", "ref_batch"), COMBINATIONS)
def test_matches_neurocombat(data, parametric, eb, mean_only, ref_batch, monkeypatch):
    features, batch, covariates = data
    expected, estimates = run_neurocombat(
        features, batch, covariates, parametric, eb, mean_only, ref_batch, monkeypatch
    )
    combat = ComBat(parametric=parametric, eb=eb, mean_only=mean_only, ref_batch=ref_batch)
    result = combat.fit_transform(features, batch, covariates)
    assert isinstance(result, pd.DataFrame)
    assert result.index.equals(features.index)
    assert result.columns.equals(features.columns)
    np.testing.assert_allclose(result.to_numpy(), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(combat.gamma_star_, estimates["gamma.star"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(combat.delta_star_, estimates["delta.star"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(combat.var_pooled_, estimates["var.pooled"].ravel(), rtol=1e-9)
    # the harmonisation did something on the non-reference batches
    moved = ~batch.eq(ref_batch).to_numpy()
    assert np.abs(result.to_numpy()[moved] - features.to_numpy()[moved]).max() > 0.1
    assert combat.constant_features_ == []


def test_numpy_in_numpy_out(data):
    features, batch, covariates = data
    from_frame = ComBat().fit_transform(features, batch, covariates)
    from_array = ComBat().fit_transform(
        features.to_numpy(), batch.to_numpy(), covariates.reset_index(drop=True)
    )
    assert isinstance(from_array, np.ndarray)
    np.testing.assert_allclose(from_array, from_frame.to_numpy(), rtol=0, atol=1e-12)


def test_ref_batch_unchanged_and_reduces_site_effect(data):
    features, batch, covariates = data
    result = ComBat(ref_batch="s1").fit_transform(features, batch, covariates)
    ref = batch == "s1"
    pd.testing.assert_frame_equal(result[ref], features[ref])
    before = site_effect(features, batch).attrs["summary"]
    after = site_effect(result, batch).attrs["summary"]
    assert before["kruskal_fraction_significant"] > 0.5
    assert after["kruskal_fraction_significant"] < 0.15


def test_covariate_effect_preserved(data):
    features, batch, covariates = data
    combat = ComBat()
    result = combat.fit_transform(features, batch, covariates)
    # simulated effects: sex M +0.8, age +0.05 / year on every feature; the fit recovers them ...
    assert combat.covariate_names_ == ["sex[M]", "age"]
    np.testing.assert_allclose(combat.beta_.mean(axis=1), [0.8, 0.05], atol=0.25)
    # ... and the harmonised data keep them (OLS on [site | sex | age] after harmonisation)
    design = np.column_stack(
        [
            pd.get_dummies(batch).to_numpy(float),
            covariates["sex"].eq("M").astype(float),
            covariates["age"],
        ]
    )
    coef = np.linalg.lstsq(design, result.to_numpy(), rcond=None)[0]
    np.testing.assert_allclose(coef[-2:].mean(axis=1), [0.8, 0.05], atol=0.25)


# --- fit on train, transform anything ------------------------------------------------------------


def split(data, n_test: int = 15, seed: int = 3):
    features, batch, covariates = data
    rng = np.random.default_rng(seed)
    test = np.zeros(len(features), dtype=bool)
    test[rng.choice(len(features), n_test, replace=False)] = True
    return (features[~test], batch[~test], covariates[~test]), (
        features[test],
        batch[test],
        covariates[test],
    )


def fitted_state(combat: ComBat) -> dict:
    return {k: copy.deepcopy(v) for k, v in vars(combat).items() if k.endswith("_")}


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize(("parametric", "eb", "mean_only", "ref_batch"), COMBINATIONS[::3])
def test_fit_then_transform_reproduces_fit_transform(data, parametric, eb, mean_only, ref_batch):
    (X, b, c), _ = split(data)
    options = {"parametric": parametric, "eb": eb, "mean_only": mean_only, "ref_batch": ref_batch}
    combined = ComBat(**options).fit_transform(X, b, c)
    separate = ComBat(**options).fit(X, b, c).transform(X, b, c)
    np.testing.assert_allclose(separate.to_numpy(), combined.to_numpy(), rtol=0, atol=1e-12)


def test_transform_test_does_not_change_fitted_parameters(data):
    (X, b, c), (Xt, bt, ct) = split(data)
    combat = ComBat(parametric=False).fit(X, b, c)
    state = fitted_state(combat)
    train_before = combat.transform(X, b, c)
    combat.transform(Xt, bt, ct)
    assert_same_state(state, fitted_state(combat))
    pd.testing.assert_frame_equal(combat.transform(X, b, c), train_before)


def test_test_rows_never_influence_the_fit(data):
    (X, b, c), (Xt, bt, ct) = split(data)
    combat = ComBat()
    train_out = combat.fit_transform(X, b, c)
    test_out = combat.transform(Xt, bt, ct)
    # arbitrary test rows: other values, other covariates -> same training output, same params
    rng = np.random.default_rng(99)
    Xt2 = pd.DataFrame(rng.normal(100, 50, Xt.shape), index=Xt.index, columns=Xt.columns)
    ct2 = ct.assign(age=rng.uniform(20, 90, len(ct)), sex="F")
    combat2 = ComBat()
    train_out2 = combat2.fit_transform(X, b, c)
    combat2.transform(Xt2, bt, ct2)
    pd.testing.assert_frame_equal(train_out, train_out2)
    assert_same_state(fitted_state(combat), fitted_state(combat2))
    # each test row is harmonised on its own: row-by-row equals all at once
    for patient in Xt.index[:4]:
        one = combat.transform(Xt.loc[[patient]], bt.loc[[patient]], ct.loc[[patient]])
        np.testing.assert_allclose(one.to_numpy(), test_out.loc[[patient]].to_numpy(), atol=1e-12)


def test_transform_reorders_columns_and_aligns_by_index(data):
    features, batch, covariates = data
    combat = ComBat().fit(features, batch, covariates)
    expected = combat.transform(features, batch, covariates)
    shuffled = features[features.columns[::-1]].iloc[::-1]
    result = combat.transform(shuffled, batch, covariates)
    assert list(result.columns) == list(shuffled.columns)
    pd.testing.assert_frame_equal(result.loc[expected.index, expected.columns], expected)


# --- degenerate inputs ---------------------------------------------------------------------


def test_unseen_batch_is_named(data):
    features, batch, covariates = data
    combat = ComBat().fit(features, batch, covariates)
    new_batch = batch.replace({"s3": "scanner_X"})
    with pytest.raises(HarmonizationError, match="scanner_X"):
        combat.transform(features, new_batch, covariates)
    assert issubclass(HarmonizationError, OncoflowError)


def test_unseen_covariate_level_is_named(data):
    features, batch, covariates = data
    combat = ComBat().fit(features, batch, covariates)
    with pytest.raises(HarmonizationError, match=r"'sex'.*'X'|sex.*X"):
        combat.transform(features, batch, covariates.assign(sex="X"))
    with pytest.raises(HarmonizationError, match="covariates"):
        combat.transform(features, batch)


def test_single_sample_batch(data):
    features, batch, covariates = data
    lonely = batch.copy()
    lonely.iloc[0] = "solo"
    with pytest.raises(HarmonizationError, match="solo"):
        ComBat().fit(features, lonely, covariates)
    # mean-only needs no scale: allowed, finite
    result = ComBat(mean_only=True).fit_transform(features, lonely, covariates)
    assert np.isfinite(result.to_numpy()).all()
    with pytest.raises(HarmonizationError, match="solo"):
        ComBat(ref_batch="solo", mean_only=True).fit(features, lonely, covariates)


@pytest.mark.parametrize("parametric", [True, False])
def test_constant_features_pass_through(data, parametric):
    features, batch, covariates = data
    with_constant = features.assign(const=7.25, zero=0.0)
    combat = ComBat(parametric=parametric)
    result = combat.fit_transform(with_constant, batch, covariates)
    assert combat.constant_features_ == ["const", "zero"]
    assert np.isfinite(result.to_numpy()).all()
    assert (result["const"] == 7.25).all()
    assert (result["zero"] == 0.0).all()
    # they do not touch the other features (kept out of the priors)
    alone = ComBat(parametric=parametric).fit_transform(features, batch, covariates)
    np.testing.assert_allclose(result[features.columns].to_numpy(), alone.to_numpy(), atol=1e-12)


def test_nan_input_names_column(data):
    features, batch, covariates = data
    broken = features.copy()
    broken.loc["P005", "f7"] = np.nan
    with pytest.raises(HarmonizationError, match=r"f7.*P005"):
        ComBat().fit(broken, batch, covariates)
    combat = ComBat().fit(features, batch, covariates)
    with pytest.raises(HarmonizationError, match="f7"):
        combat.transform(broken, batch, covariates)
    with pytest.raises(HarmonizationError, match="age"):
        ComBat().fit(features, batch, covariates.assign(age=np.nan))


def test_other_errors(data):
    features, batch, covariates = data
    with pytest.raises(HarmonizationError, match="not fitted"):
        ComBat().transform(features, batch, covariates)
    with pytest.raises(HarmonizationError, match="at least 2 batches"):
        ComBat().fit(features, pd.Series("s1", index=features.index))
    with pytest.raises(HarmonizationError, match="nowhere"):
        ComBat(ref_batch="nowhere").fit(features, batch)
    confounded = covariates.assign(site_copy=batch.to_numpy())
    with pytest.raises(HarmonizationError, match="rank-deficient"):
        ComBat().fit(features, batch, confounded)
    rows = batch.groupby(batch).head(2).index  # 2 samples per batch: no residual left
    i = np.arange(len(rows), dtype=float)
    few = pd.DataFrame({"age": i**2, "x": i**0.5, "y": np.exp(i)})
    few.index = rows
    with pytest.raises(HarmonizationError, match=r"cannot fit \d+ design parameters"):
        ComBat().fit(features.loc[rows], batch.loc[rows], few)
    with pytest.raises(HarmonizationError, match="at least 2 non-constant"):
        ComBat().fit(features[["f0"]], batch)
    single = ComBat(eb=False).fit_transform(features[["f0"]], batch)
    assert np.isfinite(single.to_numpy()).all()
    combat = ComBat().fit(features, batch)
    with pytest.raises(HarmonizationError, match="missing f0"):
        combat.transform(features.drop(columns="f0"), batch)


def test_large_batch_nonparametric_stays_finite():
    # (2 pi delta)^(-n/2) underflows for n ~ 2000: the log-space integration must not give 0/0
    features, batch, _ = simulate(seed=5, sizes=(1500, 40), n_features=30)
    result = ComBat(parametric=False).fit_transform(features, batch)
    assert np.isfinite(result.to_numpy()).all()
    after = site_effect(result, batch).attrs["summary"]
    assert after["anova_fraction_significant"] < 0.2


def test_unseen_batch_estimated_from_its_own_samples_only():
    """A held-out site: training parameters stay frozen, its shift/scale come from its own rows."""
    rng = np.random.default_rng(7)
    n_features = 40
    base = rng.normal(size=(90, n_features))
    batch = np.repeat(["a", "b", "c"], 30)
    X = base.copy()
    X[batch == "b"] = X[batch == "b"] * 1.5 + 2.0
    X[batch == "c"] = X[batch == "c"] * 0.6 - 3.0
    train = batch != "c"
    combat = ComBat().fit(X[train], batch[train])
    with pytest.raises(HarmonizationError, match="c not seen"):
        combat.transform(X, batch)
    out = combat.transform(X, batch, unseen="estimate")
    np.testing.assert_allclose(out[train], combat.transform(X[train], batch[train]))
    pooled = out[train]
    assert abs(out[batch == "c"].mean() - pooled.mean()) < 0.15
    assert abs(out[batch == "c"].std() / pooled.std() - 1.0) < 0.15
    # the held-out rows do not change anything fitted
    before = combat.gamma_star_.copy()
    combat.transform(X * 10, batch, unseen="estimate")
    np.testing.assert_array_equal(before, combat.gamma_star_)
    with pytest.raises(HarmonizationError, match="1 sample"):
        combat.transform(X[[0, 89]], batch[[0, 89]], unseen="estimate")
