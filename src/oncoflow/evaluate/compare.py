"""Paired comparison of two models scored on the same patients (patient-level bootstrap).

For any metric ``m`` (e.g. Harrell's C), the difference ``d = m(a) - m(b)`` is recomputed on
patient resamples shared by both models, so the correlation between the two models' scores is
kept. The interval is the percentile interval of the replicates and the two-sided p-value
``p = min(1, 2 min(P*(d <= 0), P*(d >= 0)))`` with ``P*`` the bootstrap distribution.

Example:
    >>> import numpy as np
    >>> from oncoflow.metrics.survival import concordance_index
    >>> t = np.arange(1.0, 41.0); e = np.ones(40)
    >>> r = paired_bootstrap(concordance_index, (t, e), -t, t, n=200)
    >>> r.estimate, r.p_value
    (1.0, 0.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from oncoflow.errors import ModelError
from oncoflow.metrics.bootstrap import bootstrap_replicates


class PairedDifference(NamedTuple):
    """``metric(a) - metric(b)`` with its bootstrap interval and two-sided p-value."""

    estimate: float
    low: float
    high: float
    p_value: float
    n_valid: int


def paired_bootstrap(
    metric: Callable[..., float],
    shared: Sequence[ArrayLike],
    score_a: ArrayLike,
    score_b: ArrayLike,
    *,
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    groups: ArrayLike | None = None,
) -> PairedDifference:
    """Bootstrap the difference of one metric between two models on the same patients.

    Args:
        metric: ``metric(*shared, score)``, e.g. ``concordance_index(time, event, risk)`` or
            ``auc(y_true, y_score)``.
        shared: The row-aligned arrays both models share (``(time, event)``, ``(y_true,)``).
        score_a: Scores of model a (same rows).
        score_b: Scores of model b.
        n: Bootstrap replicates.
        seed: Seed of the resampling (the same seed gives the same result).
        alpha: 1 - confidence level.
        groups: Patient id per row when a patient has several rows.

    Returns:
        :class:`PairedDifference`; ``n_valid`` replicates where both metrics were defined. The
        two-sided p-value is ``min(1, 2 (m + 1) / (n_valid + 1))`` with ``m`` the replicates on
        the smaller side of 0, so a difference no replicate crosses reads ``p < 2 / n``, not 0.

    Raises:
        ModelError: Arrays of different lengths, bad ``n`` or ``alpha``, or no defined replicate.
    """
    if not 0.0 < alpha < 1.0:
        msg = f"paired_bootstrap: need 0 < alpha < 1, got {alpha}"
        raise ModelError(msg)
    k = len(shared)

    def difference(*arrays: np.ndarray) -> float:
        common = arrays[:k]
        return metric(*common, arrays[k]) - metric(*common, arrays[k + 1])

    estimate, stats = bootstrap_replicates(
        difference, *shared, score_a, score_b, n=n, seed=seed, groups=groups
    )
    valid = stats[np.isfinite(stats)]
    if valid.size == 0:
        msg = "paired_bootstrap: the metric is undefined on every resample"
        raise ModelError(msg)
    low, high = np.quantile(valid, [alpha / 2.0, 1.0 - alpha / 2.0])
    # two-sided, with the observed sample counted among the replicates (Davison & Hinkley 1997,
    # eq. 4.11): never 0, at least 2 / (n_valid + 1)
    tail = min(int(np.sum(valid <= 0.0)), int(np.sum(valid >= 0.0)))
    p_value = min(1.0, 2.0 * (tail + 1) / (valid.size + 1))
    return PairedDifference(float(estimate), float(low), float(high), p_value, valid.size)
