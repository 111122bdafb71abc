"""Classification metrics against scikit-learn, and DeLong against its O(P N) definition."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from oncoflow.errors import ModelError
from oncoflow.evaluate.compare import paired_bootstrap
from oncoflow.metrics.classification import (
    auc,
    average_precision,
    binary_metrics,
    delong_test,
    multiclass_metrics,
    reliability,
    youden_threshold,
)
from oncoflow.metrics.survival import concordance_index


def _binary(seed: int, n: int = 200, signal: float = 1.0, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = 1.0 / (1.0 + np.exp(-(signal * (2 * y - 1) + rng.normal(0, 1.5, n))))
    if ties:
        score = np.round(score, 1)  # many ties
    return y, score


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_metrics_equal_sklearn(seed, ties):
    y, p = _binary(seed, ties=ties)
    threshold = 0.5
    ours = binary_metrics(y, p, threshold=threshold)
    predicted = (p >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, predicted).ravel()
    assert ours["auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert ours["ap"] == pytest.approx(skm.average_precision_score(y, p), abs=1e-12)
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert ours["sensitivity"] == pytest.approx(skm.recall_score(y, predicted))
    assert ours["specificity"] == pytest.approx(tn / (tn + fp))
    assert ours["f1"] == pytest.approx(skm.f1_score(y, predicted))
    assert ours["brier"] == pytest.approx(skm.brier_score_loss(y, p))
    assert ours["confusion"] == [[tn, fp], [fn, tp]]


def test_youden_threshold_maximises_j_on_the_roc_curve():
    y, p = _binary(3)
    fpr, tpr, thresholds = skm.roc_curve(y, p)
    best = thresholds[np.argmax(tpr - fpr)]
    assert youden_threshold(y, p) == pytest.approx(best)
    # separable data: the threshold is the lowest positive score
    assert youden_threshold([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9]) == pytest.approx(0.7)


def test_reliability_curve_and_ece():
    rng = np.random.default_rng(4)
    p = rng.uniform(0, 1, 20000)
    calibrated = (rng.uniform(0, 1, p.size) < p).astype(int)
    curve = reliability(calibrated, p, bins=10)
    assert curve.ece < 0.02
    assert curve.count.sum() == p.size
    # sklearn's calibration_curve (uniform bins) gives the same points
    observed, mean_score = calibration_curve(calibrated, p, n_bins=10)
    np.testing.assert_allclose(curve.observed, observed)
    np.testing.assert_allclose(curve.mean_score, mean_score)
    overconfident = reliability(calibrated, np.where(p > 0.5, 1.0, 0.0), bins=10)
    assert overconfident.ece == pytest.approx(0.25, abs=0.02)  # E|p - 1[p > .5]| = 1/4


def test_multiclass_metrics_equal_sklearn():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 300)
    logits = rng.normal(0, 1, (300, 3)) + 1.5 * np.eye(3)[y]
    s = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ours = multiclass_metrics(y, s)
    predicted = s.argmax(axis=1)
    assert ours["auc_macro"] == pytest.approx(
        skm.roc_auc_score(y, s, multi_class="ovr", average="macro")
    )
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert ours["f1_macro"] == pytest.approx(skm.f1_score(y, predicted, average="macro"))
    assert ours["confusion"] == skm.confusion_matrix(y, predicted).tolist()
    assert ours["brier"] == pytest.approx(np.mean(np.sum((s - np.eye(3)[y]) ** 2, axis=1)))


def _delong_by_definition(y, a, b):
    """Placement values from the pairwise kernel psi(x, y) = 1[x > y] + 1/2 1[x = y]."""
    pos, neg = y == 1, y == 0

    def components(s):
        psi = (s[pos][:, None] > s[neg][None, :]) + 0.5 * (s[pos][:, None] == s[neg][None, :])
        return psi.mean(), psi.mean(axis=1), psi.mean(axis=0)

    auc_a, v10_a, v01_a = components(a)
    auc_b, v10_b, v01_b = components(b)
    cov = np.cov([v10_a, v10_b]) / pos.sum() + np.cov([v01_a, v01_b]) / neg.sum()
    z = (auc_a - auc_b) / np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    return auc_a, auc_b, z, 2 * stats.norm.sf(abs(z))


@pytest.mark.parametrize("ties", [False, True])
def test_delong_equals_its_definition(ties):
    y, a = _binary(6, n=150, signal=1.2, ties=ties)
    rng = np.random.default_rng(7)
    b = np.clip(a + rng.normal(0, 0.2, a.size), 0, 1)
    if ties:
        b = np.round(b, 1)
    result = delong_test(y, a, b)
    expected = _delong_by_definition(y, a, b)
    np.testing.assert_allclose(tuple(result)[:4], expected, rtol=1e-10)
    assert result.auc_a == pytest.approx(auc(y, a))
    # the standard error of the difference: z = (auc_a - auc_b) / se
    assert result.se == pytest.approx((result.auc_a - result.auc_b) / result.z, rel=1e-10)


def test_delong_detects_a_better_model_and_not_an_equal_one():
    y, strong = _binary(8, n=300, signal=2.0)
    _, weak = _binary(9, n=300, signal=0.0)  # unrelated scores (independent draw)
    assert delong_test(y, strong, weak).p_value < 1e-6
    same = delong_test(y, strong, strong)
    assert same.z == 0.0
    assert same.p_value == 1.0


def test_errors_name_the_problem():
    with pytest.raises(ModelError, match="only one class"):
        auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ModelError, match="0/1"):
        auc([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ModelError, match="NaN"):
        average_precision([0, 1], [0.1, float("nan")])
    with pytest.raises(ModelError, match=r"\[0, 1\]"):
        reliability([0, 1], [0.5, 1.5])


def test_paired_bootstrap_of_c_index_difference():
    rng = np.random.default_rng(10)
    n = 150
    risk_true = rng.normal(0, 1, n)
    time = rng.exponential(np.exp(-risk_true))
    event = rng.uniform(0, 1, n) < 0.8
    noise = rng.normal(0, 1, n)
    better = paired_bootstrap(concordance_index, (time, event), risk_true, noise, n=300, seed=1)
    assert better.estimate == pytest.approx(
        concordance_index(time, event, risk_true) - concordance_index(time, event, noise)
    )
    assert 0.0 < better.low < better.estimate < better.high
    assert better.p_value < 0.01
    assert better.p_value == pytest.approx(2 / (better.n_valid + 1))  # no replicate crosses 0
    assert better == paired_bootstrap(
        concordance_index, (time, event), risk_true, noise, n=300, seed=1
    )  # reproducible for a seed
    same = paired_bootstrap(concordance_index, (time, event), noise, noise, n=100, seed=2)
    assert (same.estimate, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    # AUC works through the same interface (shared = (y_true,))
    y = (risk_true > 0).astype(int)
    assert paired_bootstrap(auc, (y,), risk_true, noise, n=200).p_value < 0.01
