"""IPCW Brier scores over a time grid and the integrated Brier score.

Conventions and the clipping rule of the time grid: :mod:`oncoflow.metrics.survival`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from oncoflow.errors import ModelError
from oncoflow.metrics.survival_data import censoring_survival, check_survival, clip_times


def _survival_matrix(
    surv_fn_or_matrix: Callable[[np.ndarray], ArrayLike] | ArrayLike,
    n: int,
    grid: np.ndarray,
    keep: np.ndarray,
    n_requested: int,
) -> np.ndarray:
    """Predicted survival probabilities as a patients x kept-grid matrix in [0, 1]."""
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

    The grid is clipped (:mod:`oncoflow.metrics.survival`) and must keep at least two points.
    Equal to ``sksurv.metrics.integrated_brier_score`` on the kept grid. Lower is better; 0.25 is
    the score of predicting 0.5 for everyone.

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
