"""Survival data of the metrics: validated (time, event, risk), censoring survival, time grids.

The conventions and the clipping rule are those of :mod:`oncoflow.metrics.survival`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from oncoflow.errors import ModelError

log = logging.getLogger("oncoflow.metrics.survival")  # log lines unchanged by the split


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


def check_risk(risk: ArrayLike, n: int, *, what: str = "risk") -> np.ndarray:
    """Risk scores as a finite float vector of ``n`` values (one per patient)."""
    r = np.asarray(risk, dtype=float)
    if r.ndim != 1 or r.size != n:
        msg = f"{what} must be a vector of {n} values (one per patient), got shape {r.shape}"
        raise ModelError(msg)
    if not np.isfinite(r).all():
        msg = f"{what}: {int((~np.isfinite(r)).sum())} NaN or infinite values"
        raise ModelError(msg)
    return r


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


def clip_times(
    train_time: ArrayLike, time: ArrayLike, times: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the clipping rule of :mod:`oncoflow.metrics.survival` to a time grid.

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


def km_survival(time: np.ndarray, event: np.ndarray, at: np.ndarray) -> np.ndarray:
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
