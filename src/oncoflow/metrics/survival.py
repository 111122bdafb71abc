"""Survival metrics: Harrell's and Uno's C, time-dependent AUC, Brier / integrated Brier, KM groups.

Conventions (all functions):

* ``event = 1`` means the event happened (death, progression) at ``time``; ``event = 0`` means
  the patient was censored (alive / progression-free) at ``time``. Nothing else is accepted.
* ``risk`` is a risk score: a *higher* risk means an *earlier* event (e.g. a Cox linear
  predictor). Ties in risk count one half.
* Times are non-negative, in any unit (days in oncoflow); no NaN anywhere. Every metric is
  unitless (a C-index, an AUC or a Brier score in [0, 1]).

The IPCW metrics (Uno's C, time-dependent AUC, Brier score) weight test patients by the inverse
of the censoring survival function ``G(t) = P(C > t)``, a reverse Kaplan-Meier estimate on the
*training* patients (as scikit-survival does). ``G`` is only known up to the last training time,
so these metrics are restricted to the follow-up both sets allow (*clipping rule*):

* time grids (time-dependent AUC, Brier score) keep the points ``t`` with
  ``min(test time) <= t < max(test time)`` and ``t < max(train time)``; dropped points are
  logged, an empty grid is a :class:`~oncoflow.errors.ModelError`;
* Uno's C gives weight 0 to test events after the last training time (or where ``G = 0``), in
  addition to the events at or after ``tau``.

Why not call lifelines / scikit-survival: the bootstrap evaluates these metrics thousands of
times against one training set, so each one is split into a validating front end and a *kernel*
on validated arrays with a precomputed ``G`` (:func:`uno_c_kernel`, :func:`td_auc_kernel`,
:func:`brier_kernel`, :func:`concordance_pair_sums`); and scikit-survival raises where test times
exceed the training follow-up, where these functions clip instead. Where scikit-survival runs at
all, the numbers are identical to its ``concordance_index_censored``, ``concordance_index_ipcw``,
``cumulative_dynamic_auc``, ``brier_score`` and ``integrated_brier_score``, and Harrell's C to
``lifelines.utils.concordance_index`` (``tests/unit/test_metrics.py``,
``tests/unit/test_metrics_survival.py``). The log-rank test of :func:`km_risk_groups` is
lifelines'.

The metrics live in :mod:`~oncoflow.metrics.survival_data` (validation, censoring survival,
clipping), :mod:`~oncoflow.metrics.concordance`, :mod:`~oncoflow.metrics.td_auc` and
:mod:`~oncoflow.metrics.brier`; this module gathers them under one name and adds the KM risk
groups.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from oncoflow.errors import ModelError
from oncoflow.metrics.brier import (
    brier_kernel,
    brier_scores,
    integrate_brier,
    integrated_brier_score,
)
from oncoflow.metrics.concordance import (
    concordance_index,
    concordance_pair_sums,
    safe_concordance_index,
    uno_c,
    uno_c_kernel,
)
from oncoflow.metrics.survival_data import (
    censoring_survival,
    check_risk,
    check_survival,
    clip_times,
)
from oncoflow.metrics.td_auc import TimeDependentAUC, td_auc_kernel, time_dependent_auc

__all__ = [
    "RiskGroups",
    "TimeDependentAUC",
    "brier_kernel",
    "brier_scores",
    "censoring_survival",
    "check_survival",
    "clip_times",
    "concordance_index",
    "concordance_pair_sums",
    "integrate_brier",
    "integrated_brier_score",
    "km_risk_groups",
    "safe_concordance_index",
    "td_auc_kernel",
    "time_dependent_auc",
    "uno_c",
    "uno_c_kernel",
]


class RiskGroups(NamedTuple):
    """Result of :func:`km_risk_groups`."""

    groups: np.ndarray
    """Group per patient: 0 = lowest risk ... n_groups - 1 = highest risk."""
    cutoffs: np.ndarray
    """Risk cut-offs (ascending); a risk equal to a cut-off goes to the higher group."""
    statistic: float
    """Log-rank chi-square statistic (n_groups - 1 degrees of freedom)."""
    p_value: float
    """Log-rank p-value (NaN when fewer than two groups are populated)."""


def km_risk_groups(
    time: ArrayLike,
    event: ArrayLike,
    risk: ArrayLike,
    *,
    n_groups: int = 2,
    cutoffs: ArrayLike | None = None,
) -> RiskGroups:
    """Split patients into risk groups and compare their Kaplan-Meier curves (log-rank test).

    Without ``cutoffs`` the groups are risk quantiles of these patients (median for 2 groups,
    tertiles for 3). To apply cut-offs learnt on training patients to test patients, pass the
    training ``cutoffs`` (then ``n_groups = len(cutoffs) + 1``).

    Args:
        time: Follow-up times.
        event: 1 = event happened, 0 = censored.
        risk: Risk scores (higher = earlier event).
        n_groups: 2 or 3 (ignored when ``cutoffs`` is given).
        cutoffs: Ascending risk cut-offs.

    Returns:
        :class:`RiskGroups` with the groups, cut-offs and the multivariate log-rank test
        (``lifelines.statistics.multivariate_logrank_test``).

    Raises:
        ModelError: Invalid inputs or ``n_groups`` not in {2, 3}.
    """
    from lifelines.statistics import multivariate_logrank_test

    t, e = check_survival(time, event)
    r = check_risk(risk, t.size)
    if cutoffs is None:
        if n_groups not in (2, 3):
            msg = f"n_groups must be 2 or 3, got {n_groups}"
            raise ModelError(msg)
        cuts = np.quantile(r, np.arange(1, n_groups) / n_groups)
    else:
        cuts = np.atleast_1d(np.asarray(cutoffs, dtype=float))
        if cuts.size == 0 or np.any(np.diff(cuts) < 0) or not np.isfinite(cuts).all():
            msg = f"cutoffs must be finite and ascending, got {cuts}"
            raise ModelError(msg)
    groups = np.searchsorted(cuts, r, side="right")
    if np.unique(groups).size < 2:
        return RiskGroups(groups, cuts, float("nan"), float("nan"))
    result = multivariate_logrank_test(t, groups, e)
    return RiskGroups(groups, cuts, float(result.test_statistic), float(result.p_value))
