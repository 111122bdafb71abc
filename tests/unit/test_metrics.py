"""oncoflow.metrics: each metric against scikit-learn / scikit-survival / lifelines, shared cases.

The cases are small synthetic samples with and without ties (scores rounded to one decimal,
integer times); each metric of the package is checked equal (to 1e-12) to the library function
with the same definition. Library-free parts (DeLong, bootstrap) are checked against their
definitions written out naively.
"""

from __future__ import annotations

import numpy as np
import pytest
from lifelines.statistics import multivariate_logrank_test
from lifelines.utils import concordance_index as lifelines_c
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve
from sksurv.metrics import brier_score as sksurv_brier
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
)
from sksurv.metrics import integrated_brier_score as sksurv_ibs
from sksurv.nonparametric import CensoringDistributionEstimator
from sksurv.util import Surv

import oncoflow.metrics as metrics
from oncoflow.errors import ModelError
from oncoflow.metrics.bootstrap import bootstrap_ci, bootstrap_replicates
from oncoflow.metrics.classification import (
    auc,
    average_precision,
    binary_metrics,
    brier_score,
    macro_auc,
    macro_f1,
    multiclass_metrics,
    reliability,
    safe_auc,
    youden_threshold,
)
from oncoflow.metrics.segmentation import dice, region_dice
from oncoflow.metrics.survival import (
    brier_scores,
    censoring_survival,
    concordance_index,
    concordance_pair_sums,
    integrated_brier_score,
    km_risk_groups,
    safe_concordance_index,
    time_dependent_auc,
    uno_c,
)

BINARY_CASES = [(seed, ties) for seed in range(3) for ties in (False, True)]
SURVIVAL_CASES = [(seed, ties) for seed in range(3) for ties in (False, True)]


def _binary_case(seed: int, ties: bool, n: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """0/1 labels and probabilities with signal; ``ties``: scores rounded to one decimal."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = 1.0 / (1.0 + np.exp(-(1.2 * (2 * y - 1) + rng.normal(0, 1.5, n))))
    return y, np.round(p, 1) if ties else p


def _multiclass_case(seed: int, k: int = 4, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k)) + 1.2 * np.eye(k)[y]
    return y, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def _survival_case(seed: int, ties: bool, n: int = 160):
    """Train and test (time, event, risk); the training part holds the longest follow-up."""
    rng = np.random.default_rng(seed)
    risk = rng.normal(0, 1, n)
    time = rng.exponential(365.0 * np.exp(-0.8 * risk))
    censor = rng.uniform(30.0, 900.0, n)
    event = (time <= censor).astype(int)
    time = np.minimum(time, censor)
    if ties:
        time = np.ceil(time / 30.0) * 30.0  # months: many tied times
        risk = np.round(risk, 0)  # few distinct risks
    order = np.argsort(-time, kind="stable")
    train, test = order[::2], order[1::2]  # the longest time goes to training
    return (time[train], event[train]), (time[test], event[test], risk[test])


# ----------------------------------------------------------------------------- classification


@pytest.mark.parametrize(("seed", "ties"), BINARY_CASES)
def test_binary_ranking_metrics_equal_sklearn(seed, ties):
    y, p = _binary_case(seed, ties)
    assert auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert safe_auc(y, p) == auc(y, p)
    assert average_precision(y, p) == pytest.approx(skm.average_precision_score(y, p), abs=1e-12)
    fpr, tpr, thresholds = skm.roc_curve(y, p, drop_intermediate=False)
    assert youden_threshold(y, p) == thresholds[np.argmax(tpr - fpr)]


@pytest.mark.parametrize(("seed", "ties"), BINARY_CASES)
def test_binary_counting_metrics_brier_and_reliability_equal_sklearn(seed, ties):
    y, p = _binary_case(seed, ties)
    threshold = youden_threshold(y, p)
    predicted = (p >= threshold).astype(int)
    ours = binary_metrics(y, p, threshold=threshold)
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted), abs=1e-12)
    assert ours["sensitivity"] == pytest.approx(skm.recall_score(y, predicted), abs=1e-12)
    assert ours["specificity"] == pytest.approx(
        skm.recall_score(y, predicted, pos_label=0), abs=1e-12
    )
    assert ours["f1"] == pytest.approx(skm.f1_score(y, predicted), abs=1e-12)
    assert ours["confusion"] == skm.confusion_matrix(y, predicted).tolist()
    assert brier_score(y, p) == pytest.approx(skm.brier_score_loss(y, p), abs=1e-12)
    assert ours["brier"] == brier_score(y, p)
    if not ties:  # rounded scores sit on the bin edges, which the two bin differently
        curve = reliability(y, p, bins=5)
        observed, mean_score = calibration_curve(y, p, n_bins=5)
        np.testing.assert_allclose(curve.observed, observed, atol=1e-12)
        np.testing.assert_allclose(curve.mean_score, mean_score, atol=1e-12)
        expected_ece = np.sum(curve.count / y.size * np.abs(observed - mean_score))
        assert curve.ece == pytest.approx(expected_ece, abs=1e-12)


def test_safe_auc_only_for_one_class_samples():
    assert np.isnan(safe_auc([1, 1, 1], [0.2, 0.4, 0.9]))
    assert safe_auc([0, 0], [0.2, 0.4], undefined=0.5) == 0.5
    assert np.isnan(safe_auc([], []))
    assert safe_auc(np.array([True, False, True]), [0.9, 0.1, 0.2]) == 1.0
    with pytest.raises(ModelError, match="NaN"):
        safe_auc([0, 1], [0.1, float("nan")])
    with pytest.raises(ModelError, match="0/1"):
        safe_auc([0, 2], [0.1, 0.2])


@pytest.mark.parametrize("seed", range(3))
def test_macro_metrics_equal_sklearn(seed):
    y, s = _multiclass_case(seed)
    predicted = s.argmax(axis=1)
    expected_auc = skm.roc_auc_score(y, s, multi_class="ovr", average="macro")
    assert macro_auc(y, s) == pytest.approx(expected_auc, abs=1e-12)
    assert macro_f1(y, predicted) == pytest.approx(
        skm.f1_score(y, predicted, average="macro"), abs=1e-12
    )
    ours = multiclass_metrics(y, s)
    assert ours["auc_macro"] == macro_auc(y, s)
    assert ours["f1_macro"] == pytest.approx(
        skm.f1_score(y, predicted, average="macro", labels=range(4), zero_division=0), abs=1e-12
    )
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted), abs=1e-12)


def test_macro_f1_labels_and_class_names():
    y = np.array(["I", "II", "II", "III", "I"])
    predicted = np.array(["I", "II", "III", "III", "II"])
    assert macro_f1(y, predicted) == pytest.approx(skm.f1_score(y, predicted, average="macro"))
    labels = ["I", "II", "III", "IV"]
    expected = skm.f1_score(y, predicted, average="macro", labels=labels, zero_division=0)
    assert macro_f1(y, predicted, labels=labels) == pytest.approx(expected)
    assert np.isnan(macro_f1([], []))


def test_macro_auc_leaves_out_a_class_without_both_signs():
    y, s = _multiclass_case(4, k=3)
    keep = y != 2  # class 2 absent: sklearn refuses, we average the two others
    expected = np.mean([skm.roc_auc_score(y[keep] == c, s[keep, c]) for c in (0, 1)])
    assert macro_auc(y[keep], s[keep]) == pytest.approx(expected, abs=1e-12)


# ----------------------------------------------------------------------------- segmentation


@pytest.mark.parametrize("seed", range(3))
def test_dice_equals_f1_of_the_voxels(seed):
    rng = np.random.default_rng(seed)
    reference = rng.integers(0, 3, (6, 10, 10))
    prediction = np.where(rng.random(reference.shape) < 0.2, rng.integers(0, 3), reference)
    regions = {"any": [1, 2], "two": [2]}
    got = region_dice(prediction, reference, regions)
    for name, labels in regions.items():
        a, b = np.isin(prediction, labels), np.isin(reference, labels)
        assert dice(a, b) == pytest.approx(skm.f1_score(b.ravel(), a.ravel()), abs=1e-12)
        assert got[name] == dice(a, b)
    empty = np.zeros((3, 3), dtype=bool)
    assert dice(empty, empty) == 1.0  # sklearn: 0 (zero_division); both empty counts as 1 here


# ----------------------------------------------------------------------------- survival


@pytest.mark.parametrize(("seed", "ties"), SURVIVAL_CASES)
def test_harrell_c_equals_lifelines_and_sksurv(seed, ties):
    _, (t, e, r) = _survival_case(seed, ties)
    ours = concordance_index(t, e, r)
    assert ours == pytest.approx(lifelines_c(t, -r, e), abs=1e-12)
    assert ours == pytest.approx(concordance_index_censored(e.astype(bool), t, r)[0], abs=1e-12)
    assert safe_concordance_index(t, e, r) == ours
    num, den = concordance_pair_sums(t, e, r, np.ones_like(t))
    assert num / den == ours


def test_safe_concordance_index_without_comparable_pairs():
    assert np.isnan(safe_concordance_index([1.0, 2.0], [0, 0], [0.3, 0.1]))
    assert safe_concordance_index([1.0, 2.0], [0, 0], [0.3, 0.1], undefined=0.5) == 0.5
    with pytest.raises(ModelError, match="no comparable pairs"):
        concordance_index([1.0, 2.0], [0, 0], [0.3, 0.1])
    with pytest.raises(ModelError, match="event must be 0"):
        safe_concordance_index([1.0, 2.0], [0, 2], [0.3, 0.1])


@pytest.mark.parametrize(("seed", "ties"), SURVIVAL_CASES)
def test_ipcw_metrics_equal_sksurv(seed, ties):
    (tt, te), (t, e, r) = _survival_case(seed, ties)
    y_train, y_test = Surv.from_arrays(te.astype(bool), tt), Surv.from_arrays(e.astype(bool), t)
    times = np.unique(np.percentile(t[e == 1], [20, 40, 60, 80]))

    g = CensoringDistributionEstimator().fit(y_train)
    np.testing.assert_allclose(
        censoring_survival(tt, te)(times), g.predict_proba(times), atol=1e-12
    )

    assert uno_c(tt, te, t, e, r) == pytest.approx(
        concordance_index_ipcw(y_train, y_test, r)[0], abs=1e-12
    )
    tau = float(np.median(t))
    assert uno_c(tt, te, t, e, r, tau=tau) == pytest.approx(
        concordance_index_ipcw(y_train, y_test, r, tau=tau)[0], abs=1e-12
    )

    td = time_dependent_auc(tt, te, t, e, r, times)
    sk_auc, sk_mean = cumulative_dynamic_auc(y_train, y_test, r, times)
    np.testing.assert_allclose(td.auc, sk_auc, atol=1e-12)
    assert td.mean_auc == pytest.approx(sk_mean, abs=1e-12)

    surv = np.exp(-np.outer(np.exp(0.6 * r), times / 400.0))
    grid, scores = brier_scores(tt, te, t, e, surv, times)
    sk_times, sk_scores = sksurv_brier(y_train, y_test, surv, times)
    np.testing.assert_array_equal(grid, sk_times)
    np.testing.assert_allclose(scores, sk_scores, atol=1e-12)
    assert integrated_brier_score(tt, te, t, e, surv, times) == pytest.approx(
        sksurv_ibs(y_train, y_test, surv, times), abs=1e-12
    )


def test_km_risk_groups_use_the_lifelines_logrank_test():
    _, (t, e, r) = _survival_case(0, ties=False)
    groups = km_risk_groups(t, e, r, n_groups=3)
    expected = multivariate_logrank_test(t, groups.groups, e)
    assert groups.statistic == pytest.approx(expected.test_statistic, rel=1e-12)
    assert groups.p_value == pytest.approx(expected.p_value, rel=1e-12)
    np.testing.assert_allclose(groups.cutoffs, np.quantile(r, [1 / 3, 2 / 3]))


# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_replicates_are_the_statistic_on_seeded_patient_resamples():
    rng = np.random.default_rng(11)
    x = rng.normal(size=40)
    estimate, replicates = bootstrap_replicates(np.mean, x, n=50, seed=3)
    draws = np.random.default_rng(3)
    expected = [np.mean(x[draws.integers(0, x.size, x.size)]) for _ in range(50)]
    assert estimate == np.mean(x)
    np.testing.assert_array_equal(replicates, expected)
    _, low, high = bootstrap_ci(np.mean, x, n=50, seed=3, alpha=0.1)
    assert (low, high) == tuple(np.quantile(expected, [0.05, 0.95]))


def test_package_exports_every_metric_from_its_module():
    for name in metrics.__all__:
        value = getattr(metrics, name)
        assert value.__module__.startswith("oncoflow.metrics.")
    with pytest.raises(AttributeError):
        _ = metrics.no_such_metric
