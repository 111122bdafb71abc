"""Patient-level percentile bootstrap confidence intervals."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from oncoflow.errors import ModelError

log = logging.getLogger(__name__)


def bootstrap_replicates(
    fn: Callable[..., float],
    *arrays: ArrayLike,
    n: int = 1000,
    seed: int = 0,
    groups: ArrayLike | None = None,
) -> tuple[float, np.ndarray]:
    """The statistic on the data and on ``n`` patient-level bootstrap resamples.

    Each replicate draws patients with replacement (``numpy.random.default_rng(seed)``) and
    recomputes ``fn`` on their rows; a replicate where ``fn`` is undefined (raises
    :class:`~oncoflow.errors.OncoflowError` or returns NaN) is NaN. ``fn`` may return a vector
    of ``k`` statistics (one resample serves them all); then the replicates are ``(n, k)``.

    Args:
        fn: Statistic of the arrays, e.g. :func:`~oncoflow.survival.concordance_index`.
        *arrays: Row-aligned arrays (same length), e.g. ``time, event, risk``.
        n: Number of bootstrap replicates.
        seed: Seed of the resampling.
        groups: Patient id per row when a patient has several rows (e.g. one per repeat): whole
            patients are resampled with all their rows. ``None`` = one row per patient.

    Returns:
        ``(estimate, replicates)`` with ``replicates`` of shape ``(n,)`` (``(n, k)`` for a
        vector statistic, whose estimate is then an array).

    Raises:
        ModelError: No arrays, arrays of different lengths, or ``n < 1``.
    """
    if not arrays:
        msg = "bootstrap needs at least one array"
        raise ModelError(msg)
    data = [np.asarray(a) for a in arrays]
    size = len(data[0])
    if any(len(a) != size for a in data):
        msg = f"bootstrap: arrays of different lengths {[len(a) for a in data]}"
        raise ModelError(msg)
    if n < 1:
        msg = f"bootstrap: need n >= 1, got n={n}"
        raise ModelError(msg)
    estimate = _safe(fn, data, None)
    rng = np.random.default_rng(seed)
    if groups is None:
        members = [np.array([i]) for i in range(size)]
    else:
        labels = np.asarray(groups)
        if len(labels) != size:
            msg = f"bootstrap: groups has {len(labels)} rows, arrays {size}"
            raise ModelError(msg)
        _, inverse = np.unique(labels, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse))[:-1]
        members = np.split(order, bounds)
    stats = np.empty((n, *np.shape(estimate)))
    for b in range(n):
        pick = rng.integers(0, len(members), len(members))
        rows = np.concatenate([members[i] for i in pick]) if groups is not None else pick
        stats[b] = _safe(fn, [a[rows] for a in data], np.shape(estimate))
    return (float(estimate) if np.ndim(estimate) == 0 else estimate), stats


def bootstrap_ci(
    fn: Callable[..., float],
    *arrays: ArrayLike,
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    groups: ArrayLike | None = None,
) -> tuple[float, float, float]:
    """Percentile bootstrap CI of a statistic, resampling patients with replacement.

    ``estimate = fn(*arrays)`` on the data as given; the interval is the ``alpha / 2`` and
    ``1 - alpha / 2`` quantiles of the :func:`bootstrap_replicates` (undefined replicates, e.g. a
    resample without comparable pairs, are skipped and counted in the log).

    Args:
        fn: Statistic of the arrays, e.g. :func:`~oncoflow.survival.concordance_index`.
        *arrays: Row-aligned arrays (same length), e.g. ``time, event, risk``.
        n: Number of bootstrap replicates.
        seed: Seed of the resampling.
        alpha: 1 - confidence level (0.05 = 95 % interval).
        groups: Patient id per row when a patient has several rows (whole patients resampled).

    Returns:
        ``(estimate, low, high)``; ``low = high = NaN`` when no replicate is defined. For a
        vector statistic (``fn`` returns ``k`` values from one resample) each is an array of
        ``k``, every interval taken over that statistic's defined replicates.

    Raises:
        ModelError: No arrays, arrays of different lengths, or invalid ``n`` / ``alpha``.
    """
    if not 0.0 < alpha < 1.0:
        msg = f"bootstrap_ci: need 0 < alpha < 1, got alpha={alpha}"
        raise ModelError(msg)
    estimate, stats = bootstrap_replicates(fn, *arrays, n=n, seed=seed, groups=groups)
    if np.ndim(estimate):
        columns = [_interval(column, alpha) for column in stats.reshape(n, -1).T]
        low, high = (np.reshape(part, np.shape(estimate)) for part in zip(*columns, strict=True))
        return estimate, low, high
    return (estimate, *_interval(stats, alpha))


def _interval(stats: np.ndarray, alpha: float) -> tuple[float, float]:
    """Percentile interval of the defined replicates (NaN, NaN when none is defined)."""
    ok = np.isfinite(stats)
    if not ok.all():
        log.debug("bootstrap: %d of %d replicates undefined", int((~ok).sum()), stats.size)
    if not ok.any():
        return float("nan"), float("nan")
    low, high = np.quantile(stats[ok], [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def _safe(
    fn: Callable[..., Any], data: list[np.ndarray], shape: tuple[int, ...] | None
) -> np.ndarray:
    """``fn(*data)`` as a float array; NaN (of ``shape``, when known) where it is undefined."""
    from oncoflow.errors import OncoflowError

    try:
        return np.asarray(fn(*data), dtype=float)
    except OncoflowError:
        return np.full(shape if shape is not None else (), np.nan)


def named_intervals(
    fn: Callable[..., dict[str, Any]],
    names: tuple[str, ...],
    *arrays: ArrayLike,
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    groups: ArrayLike | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, float | None]]]:
    """Point values and bootstrap CIs of several named metrics computed by one function.

    ``fn(*arrays)`` returns a dict holding (at least) ``names``; all of them are scored on the same
    resamples (:func:`bootstrap_ci` with a vector statistic).

    Returns:
        ``(fn(*arrays), {name: {"value", "ci_low", "ci_high"}})`` with non-finite values as
        ``None``.
    """
    point = fn(*arrays)

    def statistics(*resampled: np.ndarray) -> np.ndarray:
        values = fn(*resampled)
        return np.array([values[name] for name in names], dtype=float)

    _, low, high = bootstrap_ci(statistics, *arrays, n=n, seed=seed, alpha=alpha, groups=groups)

    def finite(value: float) -> float | None:
        return float(value) if np.isfinite(value) else None

    cells = {
        name: {"value": finite(point[name]), "ci_low": finite(lo), "ci_high": finite(hi)}
        for name, lo, hi in zip(names, low, high, strict=True)
    }
    return point, cells
