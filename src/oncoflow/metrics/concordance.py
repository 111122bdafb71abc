"""Concordance indices: Harrell's C and Uno's IPCW C, on one shared pair-counting kernel.

Conventions (event coding, risk direction, censoring weights): :mod:`oncoflow.metrics.survival`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from oncoflow.errors import ModelError
from oncoflow.metrics.survival_data import censoring_survival, check_risk, check_survival

log = logging.getLogger("oncoflow.metrics.survival")  # log lines unchanged by the split

_PAIRS_PER_BLOCK = 1 << 22
"""Pairs per block in the O(n^2) pair counts (bounds the temporary arrays to a few 10 MB)."""


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
    r = check_risk(risk, t.size)
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
    r = check_risk(risk, t.size)
    num, den = concordance_pair_sums(t, e, r, np.ones_like(t))
    return num / den if den != 0 else float(undefined)


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
    unknown) get weight 0 (:mod:`oncoflow.metrics.survival`). Equal to
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
    r = check_risk(risk, t.size)
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
