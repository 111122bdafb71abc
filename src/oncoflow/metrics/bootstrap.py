"""Patient-level percentile bootstrap confidence intervals, and means over runs.

Every interval of the evaluation stage is a percentile bootstrap over *patients*: a replicate
draws ``n_patients`` patients with replacement (``numpy.random.default_rng(seed)``), keeps all
their rows, recomputes the statistic, and the interval is the ``alpha / 2`` and
``1 - alpha / 2`` quantiles (numpy's default linear interpolation) of the defined replicates.
With several runs per patient (negative-control permutations, CV repeats), a replicate also
draws the runs (a two-stage bootstrap) and the statistic is the mean over runs (:func:`run_mean`).

Why not ``scipy.stats.bootstrap``: it neither resamples groups of rows (a patient's rows stay
together) nor runs, it cannot skip the replicates where a statistic is undefined (a resample
without a comparable pair), and one resample here serves a whole vector of metrics. The seeded
draws are part of the workflow's outputs, so their order must not change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
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
    runs: int | None = None,
) -> tuple[float, np.ndarray]:
    """The statistic on the data and on ``n`` patient-level bootstrap resamples.

    Each replicate draws patients with replacement (``numpy.random.default_rng(seed)``) and
    recomputes ``fn`` on their rows; a replicate where ``fn`` is undefined (raises
    :class:`~oncoflow.errors.OncoflowError` or returns NaN) is NaN. ``fn`` may return a vector
    of ``k`` statistics (one resample serves them all); then the replicates are ``(n, k)``.

    Args:
        fn: Statistic of the arrays, e.g. :func:`~oncoflow.metrics.survival.concordance_index`.
        *arrays: Row-aligned arrays (same length), e.g. ``time, event, risk``.
        n: Number of bootstrap replicates.
        seed: Seed of the resampling.
        groups: Patient id per row when a patient has several rows (e.g. one per repeat): whole
            patients are resampled with all their rows. ``None`` = one row per patient.
        runs: Position (in ``arrays``) of a run label per row: the permutations of a negative
            control or the repeats of a CV, each over the same patients. Each replicate then
            also draws the runs with replacement (a two-stage bootstrap: patients, then runs),
            and the ``j``-th drawn run gets the label ``j``. The interval then covers the
            run-to-run spread, not only the patients.

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
    keys = np.unique(data[runs]) if runs is not None else None
    for b in range(n):
        pick = rng.integers(0, len(members), len(members))
        rows = np.concatenate([members[i] for i in pick]) if groups is not None else pick
        sample = [a[rows] for a in data]
        if keys is not None and runs is not None:
            drawn = rng.integers(0, len(keys), len(keys))
            parts = [np.flatnonzero(sample[runs] == keys[k]) for k in drawn]
            order = np.concatenate(parts)
            sample = [a[order] for a in sample]
            sample[runs] = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
        stats[b] = _safe(fn, sample, np.shape(estimate))
    return (float(estimate) if np.ndim(estimate) == 0 else estimate), stats


def bootstrap_ci(
    fn: Callable[..., float],
    *arrays: ArrayLike,
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    groups: ArrayLike | None = None,
    runs: int | None = None,
) -> tuple[float, float, float]:
    """Percentile bootstrap CI of a statistic, resampling patients with replacement.

    ``estimate = fn(*arrays)`` on the data as given; the interval is the ``alpha / 2`` and
    ``1 - alpha / 2`` quantiles of the :func:`bootstrap_replicates` (undefined replicates, e.g. a
    resample without comparable pairs, are skipped and counted in the log).

    Args:
        fn: Statistic of the arrays, e.g. :func:`~oncoflow.metrics.survival.concordance_index`.
        *arrays: Row-aligned arrays (same length), e.g. ``time, event, risk``.
        n: Number of bootstrap replicates.
        seed: Seed of the resampling.
        alpha: 1 - confidence level (0.05 = 95 % interval).
        groups: Patient id per row when a patient has several rows (whole patients resampled).
        runs: Position of the run-label array, for a two-stage bootstrap over patients and runs
            (:func:`bootstrap_replicates`).

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
    estimate, stats = bootstrap_replicates(fn, *arrays, n=n, seed=seed, groups=groups, runs=runs)
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


def run_mean(values_of_run: Callable[[np.ndarray], np.ndarray], run: ArrayLike) -> np.ndarray:
    r"""Mean over runs of a vector of metrics (negative-control permutations, CV repeats).

    ``values_of_run(rows)`` gives the metrics of one run from its row mask ``rows``;
    a run where they are undefined (:class:`~oncoflow.errors.OncoflowError`) counts as NaN
    (:class:`~oncoflow.errors.ModelError` when no run defines them). Each
    metric is averaged over the runs where it is finite, ``NaN`` where no run defines it:
    :math:`\bar m_j = \frac{1}{|R_j|} \sum_{r \in R_j} m_{rj}`.
    """
    from oncoflow.errors import OncoflowError

    labels = np.asarray(run)
    rows = []
    for key in np.unique(labels):
        try:
            rows.append(np.asarray(values_of_run(labels == key), dtype=float))
        except OncoflowError:
            rows.append(None)
    if all(r is None for r in rows):
        msg = "no run defines the metrics"
        raise ModelError(msg)
    width = max(r.size for r in rows if r is not None)
    stacked = np.vstack([r if r is not None else np.full(width, np.nan) for r in rows])
    defined = np.isfinite(stacked).any(axis=0)
    out = np.full(stacked.shape[1], np.nan)
    out[defined] = np.nanmean(stacked[:, defined], axis=0)
    return out


def mean_of_runs(results: Sequence[Any]) -> Any:
    """Average the result dicts of several runs leaf by leaf (the point values of a control).

    Numbers become the mean of the runs' finite values (``None`` when none is finite); lists of
    numbers of equal length are averaged element-wise (confusion matrices); anything else (text,
    curves whose length differs between runs) is taken from the first run. Integers shared by
    every run (counts) stay integers.
    """
    first = results[0]
    if isinstance(first, dict):
        shared = {k for k in first if all(isinstance(r, dict) and k in r for r in results)}
        return {
            k: mean_of_runs([r[k] for r in results]) if k in shared else v for k, v in first.items()
        }
    numbers = [r for r in results if _is_number(r)]
    if numbers and len(numbers) + sum(r is None for r in results) == len(results):
        counts = all(isinstance(r, int) and not isinstance(r, bool) for r in results)
        if counts and len(set(results)) == 1:
            return first
        finite = [float(r) for r in numbers if np.isfinite(float(r))]
        return float(np.mean(finite)) if finite else None
    same_shape = all(isinstance(r, list) and len(r) == len(first) for r in results)
    if same_shape and all(_is_number(v) or isinstance(v, list) for r in results for v in r):
        return [mean_of_runs([r[i] for r in results]) for i in range(len(first))]
    return first


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def named_intervals(
    fn: Callable[..., dict[str, Any]],
    names: tuple[str, ...],
    *arrays: ArrayLike,
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    groups: ArrayLike | None = None,
    runs: ArrayLike | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, float | None]]]:
    """Point values and bootstrap CIs of several named metrics computed by one function.

    ``fn(*arrays)`` returns a dict holding (at least) ``names``; all of them are scored on the same
    resamples (:func:`bootstrap_ci` with a vector statistic).

    With ``runs`` (a run label per row: the permutations of a negative control, each holding the
    same patients), each run is scored alone, ``fn(*its rows)``, and the named
    values are averaged over the runs (:func:`run_mean`), on the data and in every resample.
    Each resample draws whole patients with their rows of every run (``groups`` is required),
    then the runs themselves (:func:`bootstrap_replicates`). The interval is that of the mean
    over runs and covers both the patients and the run-to-run spread; it is not a mean of
    per-run intervals. The point dict is
    then the leaf-wise :func:`mean_of_runs` of the runs' results (e.g. a mean confusion matrix).

    Returns:
        ``(fn(*arrays), {name: {"value", "ci_low", "ci_high"}})`` with non-finite values as
        ``None``.

    Raises:
        ModelError: ``runs`` without ``groups``, or of another length than the arrays.
    """

    def vector(*parts: np.ndarray) -> np.ndarray:
        values = fn(*parts)
        return np.array([values[name] for name in names], dtype=float)

    if runs is None:
        point = fn(*arrays)
        statistics = vector
        data: tuple[ArrayLike, ...] = arrays
    else:
        labels = np.asarray(runs)
        if groups is None or len(labels) != len(np.asarray(arrays[0])):
            msg = "named_intervals: runs need groups (patient ids) and one label per row"
            raise ModelError(msg)
        columns = [np.asarray(a) for a in arrays]
        point = mean_of_runs(
            [fn(*[c[labels == key] for c in columns]) for key in np.unique(labels)]
        )

        def statistics(*resampled: np.ndarray) -> np.ndarray:
            *parts, run = resampled
            return run_mean(lambda rows: vector(*[p[rows] for p in parts]), run)

        data = (*arrays, labels)
    at = None if runs is None else len(arrays)
    _, low, high = bootstrap_ci(
        statistics, *data, n=n, seed=seed, alpha=alpha, groups=groups, runs=at
    )

    def finite(value: float | None) -> float | None:
        return float(value) if value is not None and np.isfinite(value) else None

    cells = {
        name: {"value": finite(point[name]), "ci_low": finite(lo), "ci_high": finite(hi)}
        for name, lo, hi in zip(names, low, high, strict=True)
    }
    return point, cells
