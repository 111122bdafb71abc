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
    :class:`~oncoflow.errors.OncoflowError` or returns NaN) is NaN.

    Args:
        fn: Statistic of the arrays, e.g. :func:`~oncoflow.survival.concordance_index`.
        *arrays: Row-aligned arrays (same length), e.g. ``time, event, risk``.
        n: Number of bootstrap replicates.
        seed: Seed of the resampling.
        groups: Patient id per row when a patient has several rows (e.g. one per repeat): whole
            patients are resampled with all their rows. ``None`` = one row per patient.

    Returns:
        ``(estimate, replicates)`` with ``replicates`` of shape ``(n,)``.

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
    estimate = _safe(fn, data)
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
    stats = np.empty(n)
    for b in range(n):
        pick = rng.integers(0, len(members), len(members))
        rows = np.concatenate([members[i] for i in pick]) if groups is not None else pick
        stats[b] = _safe(fn, [a[rows] for a in data])
    return estimate, stats


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
        ``(estimate, low, high)``; ``low = high = NaN`` when no replicate is defined.

    Raises:
        ModelError: No arrays, arrays of different lengths, or invalid ``n`` / ``alpha``.
    """
    if not 0.0 < alpha < 1.0:
        msg = f"bootstrap_ci: need 0 < alpha < 1, got alpha={alpha}"
        raise ModelError(msg)
    estimate, stats = bootstrap_replicates(fn, *arrays, n=n, seed=seed, groups=groups)
    ok = np.isfinite(stats)
    if not ok.all():
        log.debug("bootstrap: %d of %d replicates undefined", int((~ok).sum()), n)
    if not ok.any():
        return estimate, float("nan"), float("nan")
    low, high = np.quantile(stats[ok], [alpha / 2.0, 1.0 - alpha / 2.0])
    return estimate, float(low), float(high)


def _safe(fn: Callable[..., Any], data: list[np.ndarray]) -> float:
    from oncoflow.errors import OncoflowError

    try:
        value = float(fn(*data))
    except OncoflowError:
        return float("nan")
    return value
