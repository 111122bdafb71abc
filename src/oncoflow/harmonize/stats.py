"""Per-feature site (batch) effect statistics, for before/after-harmonisation tables.

For every feature the samples are grouped by batch and compared with

* the Kruskal-Wallis H test (rank based, all batch levels at once), and
* the one-way ANOVA F test (means, all batch levels at once).

A feature that is constant within the compared samples has no test (NaN statistic and p-value) and
counts as not significant in the summary.

Example:
    >>> table = site_effect(features, sites)  # doctest: +SKIP
    >>> table.attrs["summary"]["kruskal_fraction_significant"]  # doctest: +SKIP
    0.42
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from oncoflow.errors import HarmonizationError

log = logging.getLogger(__name__)

ALPHA = 0.05
"""Default significance level of the summaries."""

COLUMNS: tuple[str, ...] = ("kruskal_h", "kruskal_p", "anova_f", "anova_p")
"""Columns of :func:`site_effect`'s table, in order."""


def group_tests(values: np.ndarray, codes: np.ndarray) -> dict[str, np.ndarray]:
    """Kruskal-Wallis and one-way ANOVA of every column of ``values`` across groups ``codes``.

    Args:
        values: Samples x features, finite.
        codes: Integer group of each sample (at least 2 distinct groups).

    Returns:
        ``{"kruskal_h", "kruskal_p", "anova_f", "anova_p"}``, one value per feature (NaN where the
        feature is constant, so that no test is defined).
    """
    groups = [values[codes == code] for code in np.unique(codes)]
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        kruskal = stats.kruskal(*groups, axis=0)
        anova = stats.f_oneway(*groups, axis=0)
    n_features = values.shape[1]

    def per_feature(value: Any) -> np.ndarray:
        # scipy returns one NaN, not one per column, when no group has two samples
        flat = np.asarray(value, dtype=float).reshape(-1)
        return np.broadcast_to(flat, (n_features,)).copy()

    result = {
        "kruskal_h": per_feature(kruskal.statistic),
        "kruskal_p": per_feature(kruskal.pvalue),
        "anova_f": per_feature(anova.statistic),
        "anova_p": per_feature(anova.pvalue),
    }
    constant = np.ptp(values, axis=0) == 0 if len(values) else np.ones(values.shape[1], bool)
    for key in result:
        result[key][constant] = np.nan
    return result


def site_effect(X: Any, batch: Any, *, alpha: float = ALPHA) -> pd.DataFrame:
    """Per-feature Kruskal-Wallis and ANOVA statistics by batch.

    Args:
        X: Samples x features (DataFrame or array), finite values.
        batch: One batch label per sample (Series aligned on ``X``'s index, or array-like).
        alpha: Significance level of the summary.

    Returns:
        A DataFrame indexed by feature (names, or 0..F-1 for arrays) with columns
        :data:`COLUMNS`; ``attrs["summary"]`` holds :func:`site_effect_summary` of it.

    Raises:
        HarmonizationError: NaN values, a length mismatch, or fewer than 2 batches.
    """
    if isinstance(X, pd.DataFrame):
        names = list(X.columns)
        rows = X.index
        values = X.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        values = np.asarray(X, dtype=np.float64)
        if values.ndim != 2:
            msg = f"X: expected a 2-D samples x features array, got shape {values.shape}"
            raise HarmonizationError(msg)
        names = list(range(values.shape[1]))
        rows = pd.RangeIndex(values.shape[0])
    if (
        isinstance(batch, pd.Series)
        and isinstance(X, pd.DataFrame)
        and rows.isin(batch.index).all()
    ):
        batch = batch.loc[rows]
    labels = np.asarray(batch, dtype=object).ravel()
    if labels.shape[0] != values.shape[0]:
        msg = f"batch has {labels.shape[0]} values but X has {values.shape[0]} samples"
        raise HarmonizationError(msg)
    bad = ~np.isfinite(values).all(axis=0)
    if bad.any():
        msg = f"X: NaN or infinite values in feature(s) {[names[i] for i in np.flatnonzero(bad)]}"
        raise HarmonizationError(msg)
    levels, codes = np.unique(labels.astype(str), return_inverse=True)
    if len(levels) < 2:
        msg = f"site effect needs at least 2 batches, got {list(levels)}"
        raise HarmonizationError(msg)
    table = pd.DataFrame(group_tests(values, codes), index=pd.Index(names, name="feature"))
    table = table[list(COLUMNS)]
    table.attrs["summary"] = site_effect_summary(table, alpha=alpha)
    table.attrs["summary"]["n_samples"] = int(values.shape[0])
    table.attrs["summary"]["n_batches"] = len(levels)
    return table


def site_effect_summary(table: pd.DataFrame, *, alpha: float = ALPHA) -> dict[str, Any]:
    """Summarise a :func:`site_effect` table: how many features still differ by batch.

    Args:
        table: Output of :func:`site_effect`.
        alpha: Significance level.

    Returns:
        ``{"alpha", "n_features", "n_tested", "kruskal_n_significant",
        "kruskal_fraction_significant", "anova_n_significant", "anova_fraction_significant",
        "kruskal_median_p", "anova_median_p"}``; fractions are over all features (untested
        constant features count as not significant); medians over tested features (``None`` when
        none was tested).
    """
    n_features = len(table)
    tested = table["kruskal_p"].notna()
    summary: dict[str, Any] = {
        "alpha": alpha,
        "n_features": n_features,
        "n_tested": int(tested.sum()),
    }
    for test in ("kruskal", "anova"):
        p = table[f"{test}_p"]
        significant = int((p < alpha).sum())
        summary[f"{test}_n_significant"] = significant
        summary[f"{test}_fraction_significant"] = significant / n_features if n_features else 0.0
        median = p.dropna().median() if p.notna().any() else None
        summary[f"{test}_median_p"] = None if median is None else float(median)
    return summary
