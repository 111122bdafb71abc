"""Cumulative/dynamic time-dependent AUC with inverse-probability-of-censoring weights.

Conventions and the clipping rule of the time grid: :mod:`oncoflow.metrics.survival`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from oncoflow.errors import ModelError
from oncoflow.metrics.survival_data import (
    censoring_survival,
    check_risk,
    check_survival,
    clip_times,
    km_survival,
)


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
    Kaplan-Meier curve and ``S(t_0) = 1``. The grid is clipped (:mod:`oncoflow.metrics.survival`).
    Equal to ``sksurv.metrics.cumulative_dynamic_auc`` on the kept grid.

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
        r = check_risk(r, t.size)[:, None].repeat(grid.size, axis=1)
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
    s = km_survival(t, e.astype(float), grid)
    drop = -np.diff(np.concatenate(([1.0], s)))
    mean = float(np.nansum(auc * drop) / (1.0 - s[-1])) if s[-1] < 1 else float("nan")
    return TimeDependentAUC(grid, auc, mean)
