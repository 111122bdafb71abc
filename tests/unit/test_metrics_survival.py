"""oncoflow.metrics.survival against lifelines and scikit-survival on their bundled datasets."""

from __future__ import annotations

import numpy as np
import pytest
from lifelines.datasets import load_rossi, load_waltons
from lifelines.statistics import logrank_test, multivariate_logrank_test
from lifelines.utils import concordance_index as lifelines_c
from sksurv.datasets import load_gbsg2, load_whas500
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
)
from sksurv.metrics import integrated_brier_score as sksurv_ibs

from oncoflow.errors import ModelError, OncoflowError
from oncoflow.metrics.survival import (
    concordance_index,
    integrated_brier_score,
    km_risk_groups,
    time_dependent_auc,
    uno_c,
)


@pytest.mark.parametrize("column", ["prio", "age", "fin", "race", "wexp", "mar", "paro"])
def test_harrell_c_equals_lifelines_on_rossi(column):
    rossi = load_rossi()
    risk = rossi[column].to_numpy(dtype=float)
    ours = concordance_index(rossi["week"], rossi["arrest"], risk)
    assert ours == pytest.approx(lifelines_c(rossi["week"], -risk, rossi["arrest"]), abs=1e-12)


def test_harrell_c_equals_lifelines_on_waltons():
    waltons = load_waltons()
    risk = (waltons["group"] == "miR-137").to_numpy(dtype=float)
    ours = concordance_index(waltons["T"], waltons["E"], risk)
    assert ours == pytest.approx(lifelines_c(waltons["T"], -risk, waltons["E"]), abs=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_harrell_c_with_ties_in_time_and_risk(seed):
    rng = np.random.default_rng(seed)
    n = 80
    time = rng.integers(1, 12, n).astype(float)  # many tied times
    event = rng.integers(0, 2, n)
    risk = rng.integers(0, 4, n).astype(float)  # many tied risks
    ours = concordance_index(time, event, risk)
    assert ours == pytest.approx(lifelines_c(time, -risk, event), abs=1e-12)
    sk = concordance_index_censored(event.astype(bool), time, risk)[0]
    assert ours == pytest.approx(sk, abs=1e-12)


def test_harrell_c_direction_and_ties():
    time = np.array([1.0, 2.0, 3.0, 4.0])
    event = np.array([1, 1, 1, 0])
    assert concordance_index(time, event, np.array([4.0, 3.0, 2.0, 1.0])) == 1.0
    assert concordance_index(time, event, np.array([1.0, 2.0, 3.0, 4.0])) == 0.0
    assert concordance_index(time, event, np.ones(4)) == 0.5


@pytest.mark.parametrize(
    ("event", "match"),
    [
        ([1, 2, 0], "event must be 0"),
        ([1, np.nan, 0], "event must be 0"),
    ],
)
def test_bad_event_coding_is_rejected(event, match):
    with pytest.raises(ModelError, match=match):
        concordance_index([1.0, 2.0, 3.0], event, [1.0, 2.0, 3.0])


def test_bad_times_and_shapes_are_rejected():
    with pytest.raises(ModelError, match="negative times"):
        concordance_index([-1.0, 2.0], [1, 0], [1.0, 2.0])
    with pytest.raises(ModelError, match="NaN"):
        concordance_index([np.nan, 2.0], [1, 0], [1.0, 2.0])
    with pytest.raises(ModelError, match="NaN or infinite"):
        concordance_index([1.0, 2.0], [1, 0], [np.nan, 2.0])
    with pytest.raises(ModelError, match="2 values"):
        concordance_index([1.0, 2.0], [1, 0], [1.0, 2.0, 3.0])
    with pytest.raises(ModelError, match="no comparable pairs"):
        concordance_index([1.0, 2.0], [0, 0], [1.0, 2.0])
    assert issubclass(ModelError, OncoflowError)


def _sksurv_split(loader, time_col, event_col, risk_col, seed=0):
    """Train/test split of a sksurv dataset whose training part holds the longest follow-up."""
    X, y = loader()
    time, event = y[time_col], y[event_col]
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(time))
    longest = int(np.argmax(time))
    idx = np.r_[longest, idx[idx != longest]]
    n_train = len(idx) // 2
    tr, te = idx[:n_train], idx[n_train:]
    risk = X[risk_col].to_numpy(dtype=float)
    return y[tr], y[te], time, event, risk, tr, te


DATASETS = [
    (load_whas500, "lenfol", "fstat", "age"),
    (load_whas500, "lenfol", "fstat", "bmi"),
    (load_gbsg2, "time", "cens", "tsize"),
    (load_gbsg2, "time", "cens", "pnodes"),
]


@pytest.mark.parametrize(("loader", "tcol", "ecol", "rcol"), DATASETS)
def test_uno_c_equals_sksurv(loader, tcol, ecol, rcol):
    y_tr, y_te, time, event, risk, tr, te = _sksurv_split(loader, tcol, ecol, rcol)
    args = (time[tr], event[tr], time[te], event[te], risk[te])
    assert uno_c(*args) == pytest.approx(concordance_index_ipcw(y_tr, y_te, risk[te])[0], abs=1e-12)
    tau = float(np.median(time))
    expected = concordance_index_ipcw(y_tr, y_te, risk[te], tau=tau)[0]
    assert uno_c(*args, tau=tau) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("loader", "tcol", "ecol", "rcol"), DATASETS)
def test_time_dependent_auc_equals_sksurv(loader, tcol, ecol, rcol):
    y_tr, y_te, time, event, risk, tr, te = _sksurv_split(loader, tcol, ecol, rcol)
    times = np.percentile(time[te][event[te]], [10, 25, 50, 75, 90])
    ours = time_dependent_auc(time[tr], event[tr], time[te], event[te], risk[te], times)
    auc, mean_auc = cumulative_dynamic_auc(y_tr, y_te, risk[te], times)
    np.testing.assert_allclose(ours.auc, auc, atol=1e-12)
    assert ours.mean_auc == pytest.approx(mean_auc, abs=1e-12)
    np.testing.assert_array_equal(ours.times, times)


@pytest.mark.parametrize(("loader", "tcol", "ecol", "rcol"), DATASETS)
def test_integrated_brier_score_equals_sksurv(loader, tcol, ecol, rcol):
    y_tr, y_te, time, event, risk, tr, te = _sksurv_split(loader, tcol, ecol, rcol)
    times = np.percentile(time[te][event[te]], [10, 25, 50, 75, 90])
    z = (risk[te] - risk.mean()) / risk.std()
    surv = np.exp(-np.outer(np.exp(0.5 * z), times / np.median(time)))
    ours = integrated_brier_score(time[tr], event[tr], time[te], event[te], surv, times)
    assert ours == pytest.approx(sksurv_ibs(y_tr, y_te, surv, times), abs=1e-12)

    def surv_fn(grid):
        return np.exp(-np.outer(np.exp(0.5 * z), grid / np.median(time)))

    from_fn = integrated_brier_score(time[tr], event[tr], time[te], event[te], surv_fn, times)
    assert from_fn == pytest.approx(ours, abs=1e-12)


def test_grid_is_clipped_when_test_follow_up_exceeds_training():
    """sksurv raises here; we clip the grid to the shared follow-up and say so."""
    _, _, time, event, risk, tr, te = _sksurv_split(load_whas500, "lenfol", "fstat", "age")
    short = tr[time[tr] < 1000]  # training follow-up ends before 1000 days
    times = np.array([100.0, 500.0, 900.0, 1500.0, 2000.0])
    res = time_dependent_auc(time[short], event[short], time[te], event[te], risk[te], times)
    assert res.times.max() < time[short].max()
    np.testing.assert_array_equal(res.times, [100.0, 500.0, 900.0])
    assert np.all((res.auc > 0.5) & (res.auc < 1.0))
    surv = np.full((te.size, times.size), 0.7)
    ibs = integrated_brier_score(time[short], event[short], time[te], event[te], surv, times)
    assert 0.0 < ibs < 0.5
    c = uno_c(time[short], event[short], time[te], event[te], risk[te])
    assert 0.5 < c < 1.0
    with pytest.raises(ModelError, match="no time point"):
        time_dependent_auc(time[short], event[short], time[te], event[te], risk[te], [5000.0])
    with pytest.raises(ModelError, match=">= 2 time points"):
        integrated_brier_score(
            time[short], event[short], time[te], event[te], surv[:, 2:], times[2:]
        )


def test_km_risk_groups_matches_lifelines_logrank():
    rossi = load_rossi()
    t, e, risk = rossi["week"], rossi["arrest"], rossi["prio"].to_numpy(dtype=float)
    res = km_risk_groups(t, e, risk, n_groups=2)
    assert res.cutoffs == pytest.approx([np.median(risk)])
    np.testing.assert_array_equal(res.groups, (risk >= np.median(risk)).astype(int))
    expected = logrank_test(
        t[res.groups == 0], t[res.groups == 1], e[res.groups == 0], e[res.groups == 1]
    )
    assert res.p_value == pytest.approx(expected.p_value, rel=1e-10)
    res3 = km_risk_groups(t, e, risk + 0.001 * rossi["age"].to_numpy(), n_groups=3)
    assert set(np.unique(res3.groups)) == {0, 1, 2}
    expected3 = multivariate_logrank_test(t, res3.groups, e)
    assert res3.p_value == pytest.approx(expected3.p_value, rel=1e-10)
    # cut-offs learnt elsewhere are applied as given
    applied = km_risk_groups(t, e, risk, cutoffs=[2.0, 5.0])
    np.testing.assert_array_equal(applied.groups, np.searchsorted([2.0, 5.0], risk, side="right"))
    with pytest.raises(ModelError, match="n_groups"):
        km_risk_groups(t, e, risk, n_groups=4)
