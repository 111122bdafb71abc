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
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from oncoflow.errors import ModelError

log = logging.getLogger(__name__)

_PAIRS_PER_BLOCK = 1 << 22
"""Pairs per block in the O(n^2) pair counts (bounds the temporary arrays to a few 10 MB)."""


def check_survival(
    time: ArrayLike, event: ArrayLike, *, what: str = "survival data"
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert a (time, event) pair.

    Args:
        time: Follow-up times, >= 0, no NaN.
        event: Event indicators in {0, 1} (1 = the event happened); booleans are accepted.
        what: Name of the data for error messages (e.g. ``"training outcomes"``).

    Returns:
        ``(time as float64, event as int64)``.

    Raises:
        ModelError: Shapes differ, NaN or negative times, or events outside {0, 1}.
    """
    t = np.asarray(time, dtype=float).ravel()
    e_raw = np.asarray(event)
    if e_raw.dtype == bool:
        e_raw = e_raw.astype(int)
    try:
        e = np.asarray(e_raw, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        msg = f"{what}: event must be 0 (censored) or 1 (event happened), got {e_raw[:5]!r}"
        raise ModelError(msg) from exc
    if t.shape != e.shape:
        msg = f"{what}: time has {t.size} values but event has {e.size}"
        raise ModelError(msg)
    if t.size == 0:
        msg = f"{what}: no patients"
        raise ModelError(msg)
    if np.isnan(t).any():
        msg = f"{what}: {int(np.isnan(t).sum())} missing (NaN) times"
        raise ModelError(msg)
    if (t < 0).any():
        msg = f"{what}: negative times (min {t.min():g}); times must be >= 0"
        raise ModelError(msg)
    bad = ~np.isin(e, (0.0, 1.0))
    if bad.any():
        values = sorted({str(v) for v in e[bad]})[:5]
        msg = (
            f"{what}: event must be 0 (censored) or 1 (event happened), got {', '.join(values)}"
            " (is the event coded as 'alive'?)"
        )
        raise ModelError(msg)
    return t, e.astype(np.int64)


def _check_risk(risk: ArrayLike, n: int, *, what: str = "risk") -> np.ndarray:
    r = np.asarray(risk, dtype=float)
    if r.ndim != 1 or r.size != n:
        msg = f"{what} must be a vector of {n} values (one per patient), got shape {r.shape}"
        raise ModelError(msg)
    if not np.isfinite(r).all():
        msg = f"{what}: {int((~np.isfinite(r)).sum())} NaN or infinite values"
        raise ModelError(msg)
    return r


def concordance_pair_sums(
    time: np.ndarray, event: np.ndarray, risk: np.ndarray, weight: np.ndarray
) -> tuple[float, float]:
    """Weighted concordant and comparable pair sums, Harrell's definition (the C-index kernel).

    A pair ``(i, j)`` is comparable when ``event_i = 1`` and ``T_j > T_i``, or ``T_j = T_i`` and
    ``event_j = 0`` (a censoring at the event time is assumed to come after it). It is
    concordant when ``risk_i > risk_j`` and counts 1/2 when ``risk_i = risk_j``. Pairs are
    weighted by ``weight_i``:

    ``num = sum_ij w_i c_ij [1(r_i > r_j) + 1/2 1(r_i = r_j)]``, ``den = sum_ij w_i c_ij``.

    Harrell's C is ``num / den`` with ``w = 1``, Uno's C with ``w_i = G(T_i)^-2``. Own kernel
    rather than lifelines' or scikit-survival's: one vectorised O(n^2) pass (in blocks of
    ``2^22`` pairs) on arrays that are already validated, shared by both C-indices, by the
    univariate screening of the Cox pipeline and by the bootstrap, with no per-call checks.

    Args:
        time: Follow-up times (float, validated by :func:`check_survival`).
        event: Event indicators (0/1).
        risk: Risk scores (higher = earlier event), finite.
        weight: Weight per patient (only patients with ``event = 1`` and ``weight > 0`` count
            as the first member of a pair).

    Returns:
        ``(sum of w_i * concordance, sum of w_i over comparable pairs)``.
    """
    idx = np.flatnonzero((event == 1) & (weight > 0))
    num = 0.0
    den = 0.0
    chunk = max(1, _PAIRS_PER_BLOCK // max(time.size, 1))
    for start in range(0, idx.size, chunk):
        rows = idx[start : start + chunk]
        ti = time[rows, None]
        comparable = (time[None, :] > ti) | ((time[None, :] == ti) & (event[None, :] == 0))
        ri = risk[rows, None]
        score = (ri > risk[None, :]) + 0.5 * (ri == risk[None, :])
        w = weight[rows]
        num += float(w @ (score * comparable).sum(axis=1))
        den += float(w @ comparable.sum(axis=1))
    return num, den


def concordance_index(time: ArrayLike, event: ArrayLike, risk: ArrayLike) -> float:
    """Harrell's concordance index; a higher risk means an earlier event.

    ``C = sum_{comparable (i, j)} [1(r_i > r_j) + 1/2 1(r_i = r_j)] / #comparable``, where
    ``(i, j)`` is comparable when patient ``i`` had the event and ``j`` was still at risk after
    ``T_i`` (``T_j > T_i``, or ``T_j = T_i`` and ``j`` censored). Tied event times of two events
    are not comparable. Equal to ``lifelines.utils.concordance_index(time, -risk, event)`` and
    to scikit-survival's ``concordance_index_censored`` (same tie handling); computed by
    :func:`concordance_pair_sums`, the kernel Uno's C and the bootstrap share.

    Args:
        time: Follow-up times (>= 0).
        event: 1 = event happened, 0 = censored.
        risk: Risk scores (higher = worse prognosis).

    Returns:
        C in [0, 1]; 0.5 is chance, 1 a perfect ranking.

    Raises:
        ModelError: Invalid inputs or no comparable pair (e.g. no events).
    """
    t, e = check_survival(time, event)
    r = _check_risk(risk, t.size)
    num, den = concordance_pair_sums(t, e, r, np.ones_like(t))
    if den == 0:
        msg = f"no comparable pairs among {t.size} patients ({int(e.sum())} events): C undefined"
        raise ModelError(msg)
    return num / den


def safe_concordance_index(
    time: ArrayLike, event: ArrayLike, risk: ArrayLike, *, undefined: float = float("nan")
) -> float:
    """:func:`concordance_index`, or ``undefined`` when no pair is comparable (e.g. no event).

    For reports that must not stop on a degenerate sample; invalid inputs still raise.

    Args:
        time: Follow-up times (>= 0).
        event: 1 = event happened, 0 = censored.
        risk: Risk scores (higher = worse prognosis).
        undefined: Value returned when C is undefined (NaN by default).

    Returns:
        Harrell's C in [0, 1], or ``undefined``.

    Raises:
        ModelError: Invalid inputs.
    """
    t, e = check_survival(time, event)
    r = _check_risk(risk, t.size)
    num, den = concordance_pair_sums(t, e, r, np.ones_like(t))
    return num / den if den != 0 else float(undefined)


def censoring_survival(
    train_time: ArrayLike, train_event: ArrayLike
) -> Callable[[np.ndarray], np.ndarray]:
    """Reverse Kaplan-Meier estimate ``G(t) = P(C > t)`` of the censoring distribution.

    At each distinct time ``u``: ``G`` drops by the factor ``1 - c_u / (n_u - d_u)``, with
    ``c_u`` censorings, ``d_u`` events and ``n_u`` patients with time >= u (events at ``u`` are
    taken to happen before the censorings at ``u``). ``G(t)`` is right-continuous, 1 before the
    first time and held at its last value after the last time. Equal to scikit-survival's
    ``CensoringDistributionEstimator``; written out so that the IPCW kernels get a plain
    function of time (no scikit-survival import, no structured arrays).

    Args:
        train_time: Training follow-up times.
        train_event: Training event indicators.

    Returns:
        A function mapping an array of times to ``G`` at those times.
    """
    t, e = check_survival(train_time, train_event, what="training outcomes")
    uniq, inverse = np.unique(t, return_inverse=True)
    total = np.bincount(inverse, minlength=uniq.size)
    events = np.bincount(inverse, weights=e, minlength=uniq.size)
    censored = total - events
    at_risk = t.size - np.concatenate(([0], np.cumsum(total)[:-1])) - events
    factor = np.ones(uniq.size)
    nz = censored > 0
    factor[nz] = 1.0 - censored[nz] / at_risk[nz]
    prob = np.cumprod(factor)

    def g(times: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(uniq, np.asarray(times, dtype=float), side="right") - 1
        out = np.ones(idx.shape)
        inside = idx >= 0
        out[inside] = prob[idx[inside]]
        return out

    return g


def uno_c(
    train_time: ArrayLike,
    train_event: ArrayLike,
    time: ArrayLike,
    event: ArrayLike,
    risk: ArrayLike,
    tau: float | None = None,
) -> float:
    """Uno's IPCW concordance index (censoring-independent Harrell C, truncated at ``tau``).

    ``C_tau = sum_ij w_i c_ij [1(r_i > r_j) + 1/2 1(r_i = r_j)] / sum_ij w_i c_ij`` (``c_ij`` = 1
    for a comparable pair, as in :func:`concordance_index`) with ``w_i = G(T_i)^-2`` for test
    events with ``T_i < tau``, ``G`` the censoring survival estimated on the training patients
    (:func:`censoring_survival`). Test events after the last training time (where ``G`` is
    unknown) get weight 0 (module docstring). Equal to
    ``sksurv.metrics.concordance_index_ipcw(..., tau)[0]`` whenever that one runs.

    Args:
        train_time: Training follow-up times (for the censoring distribution).
        train_event: Training event indicators.
        time: Test follow-up times.
        event: Test event indicators.
        risk: Test risk scores (higher = earlier event).
        tau: Truncation time (same unit as ``time``); ``None`` = no truncation beyond the
            training follow-up.

    Returns:
        Uno's C in [0, 1].

    Raises:
        ModelError: Invalid inputs or no comparable pair with positive weight.
    """
    tt, te = check_survival(train_time, train_event, what="training outcomes")
    t, e = check_survival(time, event, what="test outcomes")
    r = _check_risk(risk, t.size)
    return uno_c_kernel(censoring_survival(tt, te), float(tt.max()), t, e, r, tau)


def uno_c_kernel(
    g: Callable[[np.ndarray], np.ndarray],
    train_max: float,
    t: np.ndarray,
    e: np.ndarray,
    r: np.ndarray,
    tau: float | None = None,
) -> float:
    """:func:`uno_c` on validated arrays with a precomputed censoring survival ``g``.

    For repeated evaluation (bootstrap) against one training set: ``g`` from
    :func:`censoring_survival`, ``train_max`` the last training time.

    Args:
        g: Censoring survival ``G`` of the training patients (:func:`censoring_survival`).
        train_max: Last training follow-up time (same unit as ``t``).
        t: Test times (validated, float).
        e: Test event indicators (0/1).
        r: Test risk scores (finite).
        tau: Truncation time, or ``None``.

    Returns:
        Uno's C in [0, 1].

    Raises:
        ModelError: No comparable pair with positive weight.
    """
    g_at = g(t)
    usable = (t <= train_max) & (g_at > 0)
    if tau is not None:
        usable &= t < float(tau)
    dropped = int(((e == 1) & ((t > train_max) | (g_at <= 0))).sum())
    if dropped:
        log.debug("uno_c: %d test events after the training follow-up get weight 0", dropped)
    w = np.zeros_like(t)
    w[usable] = 1.0 / np.square(g_at[usable])
    num, den = concordance_pair_sums(t, e, r, w)
    if den == 0:
        msg = "uno_c: no comparable pairs with a test event inside the training follow-up"
        raise ModelError(msg)
    return num / den


def clip_times(
    train_time: ArrayLike, time: ArrayLike, times: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the clipping rule of the module docstring to a time grid.

    Args:
        train_time: Training follow-up times.
        time: Test follow-up times.
        times: Requested grid (any order, no duplicates).

    Returns:
        ``(kept times sorted ascending, their positions in the requested grid)``.

    Raises:
        ModelError: Duplicated grid points, or no grid point inside the allowed range.
    """
    grid = np.atleast_1d(np.asarray(times, dtype=float))
    if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all():
        msg = f"times must be a non-empty vector of finite values, got {grid!r}"
        raise ModelError(msg)
    if np.unique(grid).size != grid.size:
        msg = "times must not contain duplicates"
        raise ModelError(msg)
    tt = np.asarray(train_time, dtype=float)
    t = np.asarray(time, dtype=float)
    upper = min(t.max(), tt.max())
    order = np.argsort(grid, kind="stable")
    keep = order[(grid[order] >= t.min()) & (grid[order] < upper)]
    if keep.size < grid.size:
        log.info(
            "time grid clipped to [%g, %g): %d of %d points kept",
            t.min(),
            upper,
            keep.size,
            grid.size,
        )
    if keep.size == 0:
        msg = (
            f"no time point inside the follow-up of test [{t.min():g}, {t.max():g}) and "
            f"training (< {tt.max():g}) data; requested {grid.min():g}..{grid.max():g}"
        )
        raise ModelError(msg)
    return grid[keep], keep


def _km(time: np.ndarray, event: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Kaplan-Meier survival of ``(time, event)`` evaluated at ``at`` (right-continuous)."""
    uniq, inverse = np.unique(time, return_inverse=True)
    total = np.bincount(inverse, minlength=uniq.size)
    events = np.bincount(inverse, weights=event, minlength=uniq.size)
    at_risk = time.size - np.concatenate(([0], np.cumsum(total)[:-1]))
    prob = np.cumprod(1.0 - events / at_risk)
    idx = np.searchsorted(uniq, at, side="right") - 1
    out = np.ones(at.shape)
    out[idx >= 0] = prob[idx[idx >= 0]]
    return out


class TimeDependentAUC(NamedTuple):
    """Result of :func:`time_dependent_auc`."""

    times: np.ndarray
    """The grid after clipping (ascending)."""
    auc: np.ndarray
    """Cumulative/dynamic AUC at each kept time."""
    mean_auc: float
    """AUC averaged over the grid, weighted by the drop of the test Kaplan-Meier curve."""


def time_dependent_auc(
    train_time: ArrayLike,
    train_event: ArrayLike,
    time: ArrayLike,
    event: ArrayLike,
    risk: ArrayLike,
    times: ArrayLike,
) -> TimeDependentAUC:
    """Cumulative/dynamic time-dependent AUC with IPCW (Uno 2007, Hung & Chiang 2010).

    Cases at ``t``: test events with ``T_i <= t``, weight ``1 / G(T_i)``; controls: ``T_j > t``.
    ``AUC(t) = sum_ij w_i [1(r_i > r_j) + 1/2 1(r_i = r_j)] / (sum_i w_i * #controls)``.
    ``mean_auc = sum_k AUC(t_k) (S(t_{k-1}) - S(t_k)) / (1 - S(t_last))`` with ``S`` the test
    Kaplan-Meier curve and ``S(t_0) = 1``. The grid is clipped (module docstring). Equal to
    ``sksurv.metrics.cumulative_dynamic_auc`` on the kept grid.

    Args:
        train_time: Training follow-up times (censoring distribution).
        train_event: Training event indicators.
        time: Test follow-up times.
        event: Test event indicators.
        risk: Test risk scores: a vector, or a matrix (patients x len(times)) of
            time-dependent risks whose columns follow ``times``.
        times: Evaluation times.

    Returns:
        :class:`TimeDependentAUC` (kept times, AUC per time, mean AUC). AUC is NaN at a time
        with no case or no control.

    Raises:
        ModelError: Invalid inputs or an empty clipped grid.
    """
    tt, te = check_survival(train_time, train_event, what="training outcomes")
    t, e = check_survival(time, event, what="test outcomes")
    grid, keep = clip_times(tt, t, times)
    r = np.asarray(risk, dtype=float)
    if r.ndim == 1:
        r = _check_risk(r, t.size)[:, None].repeat(grid.size, axis=1)
    else:
        if r.shape[0] != t.size or r.shape[1] != np.atleast_1d(times).size:
            msg = f"risk matrix must be {t.size} x {np.atleast_1d(times).size}, got {r.shape}"
            raise ModelError(msg)
        r = r[:, keep]
    return td_auc_kernel(censoring_survival(tt, te), t, e, r, grid)


def td_auc_kernel(
    g: Callable[[np.ndarray], np.ndarray],
    t: np.ndarray,
    e: np.ndarray,
    r: np.ndarray,
    grid: np.ndarray,
) -> TimeDependentAUC:
    """:func:`time_dependent_auc` on validated arrays, a clipped ``grid`` and a precomputed ``g``.

    Args:
        g: Censoring survival ``G`` of the training patients (:func:`censoring_survival`).
        t: Test times (validated, float).
        e: Test event indicators (0/1).
        r: Risks, patients x ``grid.size`` (a risk vector repeated per time point for static
            risks).
        grid: Clipped, ascending evaluation times (:func:`clip_times`).

    Returns:
        :class:`TimeDependentAUC` on ``grid``.
    """
    auc = np.full(grid.size, np.nan)
    for k, tk in enumerate(grid):
        cases = np.flatnonzero((t <= tk) & (e == 1))
        controls = t > tk
        if cases.size == 0 or not controls.any():
            continue
        w = 1.0 / g(t[cases])
        rc = r[cases, k][:, None]
        rj = r[controls, k][None, :]
        score = ((rc > rj) + 0.5 * (rc == rj)).sum(axis=1)
        auc[k] = float(w @ score) / (w.sum() * controls.sum())
    if grid.size == 1:
        return TimeDependentAUC(grid, auc, float(auc[0]))
    s = _km(t, e.astype(float), grid)
    drop = -np.diff(np.concatenate(([1.0], s)))
    mean = float(np.nansum(auc * drop) / (1.0 - s[-1])) if s[-1] < 1 else float("nan")
    return TimeDependentAUC(grid, auc, mean)


def _survival_matrix(
    surv_fn_or_matrix: Callable[[np.ndarray], ArrayLike] | ArrayLike,
    n: int,
    grid: np.ndarray,
    keep: np.ndarray,
    n_requested: int,
) -> np.ndarray:
    if callable(surv_fn_or_matrix):
        s = np.asarray(surv_fn_or_matrix(grid), dtype=float)
        expected = (n, grid.size)
    else:
        s = np.asarray(surv_fn_or_matrix, dtype=float)
        expected = (n, n_requested)
    if s.shape != expected:
        msg = f"survival estimate must be patients x times {expected}, got {s.shape}"
        raise ModelError(msg)
    if not callable(surv_fn_or_matrix):
        s = s[:, keep]
    if not np.isfinite(s).all() or (s < 0).any() or (s > 1).any():
        msg = "survival probabilities must be finite and within [0, 1]"
        raise ModelError(msg)
    return s


def brier_scores(
    train_time: ArrayLike,
    train_event: ArrayLike,
    time: ArrayLike,
    event: ArrayLike,
    surv_fn_or_matrix: Callable[[np.ndarray], ArrayLike] | ArrayLike,
    times: ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:
    """IPCW Brier score at each time of a (clipped) grid (Graf et al. 1999).

    ``BS(t) = mean_i [S_i(t)^2 1(T_i <= t, event_i) / G(T_i) + (1 - S_i(t))^2 1(T_i > t) / G(t)]``.

    Args:
        train_time: Training follow-up times (censoring distribution).
        train_event: Training event indicators.
        time: Test follow-up times.
        event: Test event indicators.
        surv_fn_or_matrix: Predicted survival probabilities: a function ``f(times) -> array
            (patients x len(times))`` called with the clipped grid, or such a matrix whose columns
            follow the requested ``times``.
        times: Evaluation times.

    Returns:
        ``(kept times ascending, Brier score per kept time)``.

    Raises:
        ModelError: Invalid inputs or an empty clipped grid.
    """
    tt, te = check_survival(train_time, train_event, what="training outcomes")
    t, e = check_survival(time, event, what="test outcomes")
    grid, keep = clip_times(tt, t, times)
    s = _survival_matrix(surv_fn_or_matrix, t.size, grid, keep, np.atleast_1d(times).size)
    return grid, brier_kernel(censoring_survival(tt, te), t, e, s, grid)


def brier_kernel(
    g: Callable[[np.ndarray], np.ndarray],
    t: np.ndarray,
    e: np.ndarray,
    s: np.ndarray,
    grid: np.ndarray,
) -> np.ndarray:
    """:func:`brier_scores` on validated arrays, a clipped ``grid`` and a precomputed ``g``.

    Args:
        g: Censoring survival ``G`` of the training patients (:func:`censoring_survival`).
        t: Test times (validated, float).
        e: Test event indicators (0/1).
        s: Survival probabilities in [0, 1], patients x ``grid.size``.
        grid: Clipped, ascending evaluation times (:func:`clip_times`).

    Returns:
        The Brier score ``BS(t_k)`` at each grid time (squared probability, unitless).
    """
    g_grid = g(grid)
    scores = np.empty(grid.size)
    for k, tk in enumerate(grid):
        cases = (t <= tk) & (e == 1)
        controls = t > tk
        term = np.zeros(t.size)
        term[cases] = np.square(s[cases, k]) / g(t[cases])
        term[controls] = np.square(1.0 - s[controls, k]) / g_grid[k]
        scores[k] = term.mean()
    return scores


def integrate_brier(grid: np.ndarray, scores: np.ndarray) -> float:
    """Trapezoid integral of Brier scores over ``grid`` divided by its span.

    ``IBS = sum_k (t_{k+1} - t_k) (BS_k + BS_{k+1}) / 2 / (t_last - t_first)``; the time unit
    cancels, the result is unitless.

    Args:
        grid: Ascending times (at least two).
        scores: Brier score at each time of ``grid``.

    Returns:
        The integrated Brier score.
    """
    area = float(np.sum(np.diff(grid) * (scores[1:] + scores[:-1]) / 2.0))
    return area / float(grid[-1] - grid[0])


def integrated_brier_score(
    train_time: ArrayLike,
    train_event: ArrayLike,
    time: ArrayLike,
    event: ArrayLike,
    surv_fn_or_matrix: Callable[[np.ndarray], ArrayLike] | ArrayLike,
    times: ArrayLike,
) -> float:
    """Integrated Brier score: trapezoid integral of :func:`brier_scores` / (t_last - t_first).

    The grid is clipped (module docstring) and must keep at least two points. Equal to
    ``sksurv.metrics.integrated_brier_score`` on the kept grid. Lower is better; 0.25 is the
    score of predicting 0.5 for everyone.

    Args:
        train_time: Training follow-up times (censoring distribution).
        train_event: Training event indicators.
        time: Test follow-up times.
        event: Test event indicators.
        surv_fn_or_matrix: Survival function or matrix, as in :func:`brier_scores`.
        times: Evaluation times.

    Returns:
        The integrated Brier score.

    Raises:
        ModelError: Invalid inputs or fewer than two grid points after clipping.
    """
    grid, scores = brier_scores(train_time, train_event, time, event, surv_fn_or_matrix, times)
    if grid.size < 2:
        msg = f"integrated Brier score needs >= 2 time points inside the follow-up, got {grid}"
        raise ModelError(msg)
    return integrate_brier(grid, scores)


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
    r = _check_risk(risk, t.size)
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
