"""Evaluate survival predictions (the ``predictions.csv`` contract for survival models).

Rows: ``patient_id, split, fold, target, time, event, risk`` (risk: higher = earlier event), plus
optionally ``model`` (several models in one file), ``permutation`` (negative-control runs, see
:mod:`oncoflow.survival.protocol`) and ``survival_<t>`` columns: the predicted probability
``S(t | x)`` of being event-free at ``t`` (same unit as ``time``, days in oncoflow), needed for the
Brier score.

Per model x target, each split gets:

* ``harrell_c`` (:func:`~oncoflow.metrics.survival.concordance_index`) and ``uno_c``
  (:func:`~oncoflow.metrics.survival.uno_c`);
* ``td_auc@<t>`` at every horizon and ``mean_td_auc`` (cumulative/dynamic AUC,
  :func:`~oncoflow.metrics.survival.time_dependent_auc`);
* ``ibs`` (:func:`~oncoflow.metrics.survival.integrated_brier_score` over the horizons) when
  the rows carry ``survival_<t>`` for at least two horizons inside the follow-up;
* ``km``: two risk groups split at the median *validation* risk (never a test quantity) with
  the log-rank p-value (:func:`~oncoflow.metrics.survival.km_risk_groups`).

The IPCW metrics need the censoring distribution of the training patients; it is estimated from
the training patients' own outcomes, which the validation rows carry (every training patient is
a validation patient of some fold). Validation rows of several repeats (``fold``) or negative
control runs (``permutation``) are scored per run and averaged, the bootstrap resampling whole
patients with all their runs. Every metric has a patient-level percentile bootstrap CI, all
metrics of a split computed on the same resamples.
"""

from __future__ import annotations

import copy
import logging
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.errors import ModelError
from oncoflow.metrics.bootstrap import bootstrap_ci, run_mean
from oncoflow.metrics.survival import (
    brier_kernel,
    censoring_survival,
    check_survival,
    concordance_pair_sums,
    integrate_brier,
    km_risk_groups,
    td_auc_kernel,
    uno_c_kernel,
)

log = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = ("patient_id", "split", "fold", "target", "time", "event", "risk")
"""Columns a survival ``predictions.csv`` must have."""

TEST_SPLITS: tuple[str, ...] = ("internal_test", "external_test")

SURVIVAL_PREFIX = "survival_"
"""Prefix of the optional predicted-survival columns, ``survival_<t>``."""

DEFAULT_HORIZONS: tuple[float, ...] = (365.0, 730.0, 1095.0)
"""1, 2 and 3 years in days."""


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def _nan_on_error(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, or ``None`` where the metric is undefined (``ModelError``)."""
    try:
        return fn(*args, **kwargs)
    except ModelError:
        return None


def survival_columns(columns: Sequence[str], horizons: Sequence[float]) -> list[str | None]:
    """The ``survival_<t>`` column of each horizon (``None`` where the file has none)."""
    found: dict[float, str] = {}
    for name in columns:
        match = re.fullmatch(rf"{SURVIVAL_PREFIX}(\d+(?:\.\d+)?)", str(name))
        if match:
            found[float(match.group(1))] = str(name)
    return [found.get(float(h)) for h in horizons]


def metric_names(horizons: Sequence[float], *, brier: bool) -> list[str]:
    """Names of the scalar metrics, in the order of the statistics vector."""
    names = ["harrell_c", "uno_c"] + [f"td_auc@{h:g}" for h in horizons] + ["mean_td_auc"]
    return names + (["ibs"] if brier else [])


class _Scorer:
    """All survival metrics of one split as one vector (the bootstrap statistic).

    The censoring survival ``G`` (training patients) is estimated once; the time grid is the
    horizons clipped to the follow-up of the split's full data, kept fixed across resamples (a
    horizon without a case in a resample is NaN there).
    """

    def __init__(self, train_time: np.ndarray, train_event: np.ndarray) -> None:
        self.train_max = float(train_time.max())
        self.g = censoring_survival(train_time, train_event)

    def for_split(self, time: np.ndarray, horizons: Sequence[float]) -> _Scorer:
        """A copy whose grid is the horizons kept for a split with these times."""
        scorer = copy.copy(self)
        h = np.asarray(horizons, dtype=float)
        upper = min(float(time.max()), self.train_max)
        scorer.horizons = h
        scorer.keep = (h >= float(time.min())) & (h < upper)
        return scorer

    def one_run(
        self, t: np.ndarray, e: np.ndarray, r: np.ndarray, surv: np.ndarray | None
    ) -> np.ndarray:
        harrell = concordance_pair_sums(t, e, r, np.ones_like(t))
        values = [harrell[0] / harrell[1] if harrell[1] else np.nan]
        values.append(_nan_on_error(uno_c_kernel, self.g, self.train_max, t, e, r))
        grid = self.horizons[self.keep]
        auc = np.full(self.horizons.size, np.nan)
        mean_auc = np.nan
        if grid.size:
            td = td_auc_kernel(self.g, t, e, np.repeat(r[:, None], grid.size, axis=1), grid)
            auc[self.keep] = td.auc
            mean_auc = td.mean_auc if grid.size > 1 else np.nan
        values += [*auc, mean_auc]
        if surv is not None:
            ibs = np.nan
            if grid.size > 1:
                ibs = integrate_brier(grid, brier_kernel(self.g, t, e, surv[:, self.keep], grid))
            values.append(ibs)
        return np.array([np.nan if v is None else v for v in values], dtype=float)

    def __call__(
        self, time: np.ndarray, event: np.ndarray, risk: np.ndarray, run: np.ndarray, *surv: Any
    ) -> np.ndarray:
        """Mean over runs (repeats / permutations) of the per-run metrics."""
        matrix = np.column_stack(surv) if surv else None
        event = event.astype(int)

        def one(rows: np.ndarray) -> np.ndarray:
            surv_rows = None if matrix is None else matrix[rows]
            return self.one_run(time[rows], event[rows], risk[rows], surv_rows)

        return run_mean(one, run)


def _risk_groups(rows: pd.DataFrame, cutoff: float) -> dict[str, Any]:
    """Two KM groups at ``cutoff`` (first run of the rows), log-rank p and KM curves."""
    first = rows[rows["_run"] == rows["_run"].iloc[0]]
    t, e, r = (first[c].to_numpy(float) for c in ("time", "event", "risk"))
    groups = _nan_on_error(km_risk_groups, t, e.astype(int), r, cutoffs=[cutoff])
    if groups is None:
        return {"cutoff": _finite(cutoff), "p_value": None, "curves": {}}
    curves = {}
    for g, name in enumerate(("low", "high")):
        mask = groups.groups == g
        curves[name] = _km_curve(t[mask], e[mask])
    return {
        "cutoff": _finite(cutoff),
        "cutoff_from": "median validation risk",
        "statistic": _finite(groups.statistic),
        "p_value": float(groups.p_value) if math.isfinite(groups.p_value) else None,
        "curves": curves,
    }


def _km_curve(time: np.ndarray, event: np.ndarray) -> dict[str, list[float]]:
    """Kaplan-Meier step curve ``{"time": [0, t1, ...], "survival": [1, S(t1), ...], "n"}``."""
    if time.size == 0:
        return {"time": [], "survival": [], "n": 0}
    times = np.unique(time[event == 1])
    at_risk = np.array([(time >= u).sum() for u in times])
    deaths = np.array([((time == u) & (event == 1)).sum() for u in times])
    surv = np.cumprod(1.0 - deaths / at_risk) if times.size else np.array([])
    return {
        "time": [0.0, *map(float, times)],
        "survival": [1.0, *(round(float(s), 6) for s in surv)],
        "n": int(time.size),
    }


def score_rows(
    rows: pd.DataFrame,
    scorer: _Scorer,
    surv_columns: list[str],
    *,
    horizons: Sequence[float],
    n_boot: int,
    seed: int,
    alpha: float,
    resample_runs: bool = False,
) -> dict[str, Any]:
    """Every metric of one split with its bootstrap CI, plus patient and event counts.

    With ``resample_runs`` and several runs (negative-control permutations over the same
    patients) the bootstrap also draws the runs
    (two-stage, :func:`~oncoflow.metrics.bootstrap.bootstrap_replicates`).
    """
    names = metric_names(horizons, brier=bool(surv_columns))
    arrays = [rows[c].to_numpy(float) for c in ("time", "event", "risk")]
    scorer = scorer.for_split(arrays[0], horizons)
    run_at = len(arrays)  # the position of the run labels among the bootstrap's arrays
    arrays.append(rows["_run"].to_numpy())
    arrays += [rows[c].to_numpy(float) for c in surv_columns]
    runs = run_at if resample_runs and rows["_run"].nunique() > 1 else None
    estimate, low, high = bootstrap_ci(
        scorer,
        *arrays,
        n=n_boot,
        seed=seed,
        alpha=alpha,
        groups=rows["patient_id"].to_numpy(),
        runs=runs,
    )
    once = rows.drop_duplicates("patient_id")
    out: dict[str, Any] = {
        name: {"value": _finite(v), "ci_low": _finite(lo), "ci_high": _finite(hi)}
        for name, v, lo, hi in zip(names, estimate, low, high, strict=True)
    }
    out["n_patients"] = len(once)
    out["n_events"] = int(once["event"].sum())
    out["n_runs"] = int(rows["_run"].nunique())
    return out


def evaluate_survival(
    predictions: pd.DataFrame,
    *,
    horizons: Sequence[float] = DEFAULT_HORIZONS,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    test_splits: Sequence[str] = TEST_SPLITS,
) -> dict[str, Any]:
    """Survival metrics per model x target: per validation fold, pooled validation, each test split.

    Args:
        predictions: Rows of the survival contract (:data:`COLUMNS`; optional ``model``,
            ``permutation`` and ``survival_<t>`` columns).
        horizons: Times (days) of the time-dependent AUC and of the Brier score; points outside
            the follow-up are left out (``None``), as in :mod:`oncoflow.metrics.survival`.
        n_boot: Bootstrap replicates (all metrics of a split share them).
        seed: Bootstrap seed (the same seed gives the same intervals).
        alpha: 1 - confidence level.
        test_splits: The ``fold == "final"`` splits to score, each alone and pooled as ``test``
            (``("apply",)`` for a new cohort, :func:`~oncoflow.evaluate.applied.evaluate_applied`).

    Returns:
        JSON-ready ``{"kind": "survival", "n_boot", "alpha", "horizons", "models": {model:
        {target: {"validation": {"per_fold": {fold: {"harrell_c", "uno_c"}}, "pooled": {...}},
        "internal_test": {...}, "external_test": {...}, "test": {...}}}}}``; each split holds
        ``{metric: {"value", "ci_low", "ci_high"}, "n_patients", "n_events", "n_runs"}`` and the
        test splits ``"km"`` (risk groups, KM curves and log-rank p of the first run).

    Raises:
        ModelError: Missing columns, or a target without training (validation) patients.
    """
    missing = [c for c in COLUMNS if c not in predictions.columns]
    if missing:
        msg = f"predictions lack column(s) {', '.join(missing)}"
        raise ModelError(msg)
    frame = predictions.copy()
    frame["patient_id"] = frame["patient_id"].astype(str)
    frame["fold"] = frame["fold"].astype(str)
    if "model" not in frame.columns:
        frame["model"] = "model"
    run = frame["permutation"].astype(str) if "permutation" in frame.columns else ""
    frame["_run"] = run if isinstance(run, str) else run.to_numpy()
    horizons = sorted(float(h) for h in horizons)
    columns = survival_columns(list(frame.columns), horizons)
    surv_columns = [c for c in columns if c is not None] if all(columns) else []
    if any(columns) and not surv_columns:
        log.warning("survival_<t> columns do not cover every horizon %s: no Brier score", horizons)
    result: dict[str, Any] = {
        "kind": "survival",
        "n_boot": int(n_boot),
        "alpha": float(alpha),
        "horizons": horizons,
        "models": {},
    }
    options = {"horizons": horizons, "n_boot": n_boot, "seed": seed, "alpha": alpha}
    for (model, target), rows in frame.groupby(["model", "target"], sort=True):
        validation = rows[rows["split"] == "validation"].copy()
        if validation.empty:
            msg = f"model {model}, target {target}: no validation rows (training patients)"
            raise ModelError(msg)
        train = validation.drop_duplicates("patient_id")
        scorer = _Scorer(*check_survival(train["time"], train["event"], what="training outcomes"))
        per_fold = {}
        for fold, part in validation.groupby("fold", sort=True):
            arrays = [part[c].to_numpy(float) for c in ("time", "event", "risk")]
            values = scorer.for_split(arrays[0], horizons)(*arrays, part["_run"].to_numpy())
            per_fold[str(fold)] = {"harrell_c": _finite(values[0]), "uno_c": _finite(values[1])}
        validation["_run"] = validation["fold"] + "/" + validation["_run"].astype(str)
        pooled = score_rows(validation, scorer, surv_columns, **options)
        cutoff = float(np.median(validation["risk"]))
        entry: dict[str, Any] = {"validation": {"per_fold": per_fold, "pooled": pooled}}
        final = rows[(rows["fold"] == "final") & rows["split"].isin(test_splits)]
        splits = {name: final[final["split"] == name] for name in test_splits}
        splits["test"] = final
        for name, part in splits.items():
            if part.empty:
                continue
            entry[name] = score_rows(part, scorer, surv_columns, resample_runs=True, **options)
            entry[name]["km"] = _risk_groups(part, cutoff)
        result["models"].setdefault(str(model), {})[str(target)] = entry
    return result
