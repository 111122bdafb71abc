"""C-index summary of the net_survival predictions, with patient-level bootstrap intervals.

:func:`summarize` scores the rows :func:`oncoflow.survival.protocol.run_net_survival` writes
(Harrell's C per model x target x split) and is what ``summary.json`` of the training stage holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.errors import ModelError
from oncoflow.metrics.bootstrap import bootstrap_ci
from oncoflow.metrics.survival import concordance_pair_sums
from oncoflow.survival.protocol import PERMUTATION_COLUMN, PREDICTION_COLUMNS


def _c_or_nan(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C (unit-weight concordant / comparable pair sums); NaN without comparable pairs."""
    num, den = concordance_pair_sums(
        np.asarray(time, float), np.asarray(event, int), np.asarray(risk, float), np.ones(len(time))
    )
    return num / den if den > 0 else float("nan")


def _mean_fold_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray, fold: np.ndarray) -> float:
    """Mean over the runs ``fold`` of the per-run Harrell C (runs with an undefined C skipped)."""
    values = [_c_or_nan(time[fold == f], event[fold == f], risk[fold == f]) for f in set(fold)]
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _json_float(value: float) -> float | None:
    """``value`` rounded to 6 decimals, ``None`` for NaN / infinite / missing."""
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


def _split_rows(group: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Rows of one model x target per scored split (``test`` pools both test splits)."""
    return {
        "validation": group[group["split"] == "validation"],
        "internal_test": group[group["split"] == "internal_test"],
        "external_test": group[group["split"] == "external_test"],
        "test": group[group["split"].isin(["internal_test", "external_test"])],
    }


def _score_split(
    rows: pd.DataFrame,
    key: pd.Series,
    *,
    runs: bool,
    permuted: bool,
    n_boot: int,
    seed: int,
    alpha: float,
) -> dict[str, Any]:
    """C-index entry of one model x target x split.

    Args:
        rows: Prediction rows of the split.
        key: Run of each row (repeat and / or permutation): one C per run, then their mean.
        runs: Score the mean over runs (validation or negative control) rather than one C.
        permuted: Negative-control rows: also list the C of each permutation.
        n_boot: Bootstrap replicates (patients resampled with all their runs).
        seed: Bootstrap seed.
        alpha: 1 - confidence level.

    Returns:
        ``{"c_index", "ci_low", "ci_high", "n_patients", "n_events"[, "per_permutation"]}``.
    """
    t = rows["time"].to_numpy(float)
    e = rows["event"].to_numpy(int)
    r = rows["risk"].to_numpy(float)
    if runs:
        est, low, high = bootstrap_ci(
            _mean_fold_c,
            t,
            e,
            r,
            key.to_numpy(),
            n=n_boot,
            seed=seed,
            alpha=alpha,
            groups=rows["patient_id"].to_numpy(),
        )
    else:
        est, low, high = bootstrap_ci(_c_or_nan, t, e, r, n=n_boot, seed=seed, alpha=alpha)
    once = rows.drop_duplicates("patient_id")
    entry: dict[str, Any] = {
        "c_index": _json_float(est),
        "ci_low": _json_float(low),
        "ci_high": _json_float(high),
        "n_patients": len(once),
        "n_events": int(once["event"].sum()),
    }
    if permuted:
        entry["per_permutation"] = [
            _json_float(
                _mean_fold_c(
                    part["time"].to_numpy(float),
                    part["event"].to_numpy(int),
                    part["risk"].to_numpy(float),
                    key.loc[part.index].to_numpy(),
                )
            )
            for _, part in rows.groupby(PERMUTATION_COLUMN, sort=True)
        ]
    return entry


def summarize(
    predictions: pd.DataFrame,
    oracle: Mapping[str, Any] | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Harrell C-index with a patient-level bootstrap CI per model x target x split.

    Splits: ``validation`` (mean over the repeats of the per-repeat C; the bootstrap resamples
    patients with all their repeats), ``internal_test``, ``external_test`` and ``test`` (both
    test splits pooled, as the demo oracle is defined). Negative-control predictions (with a
    :data:`PERMUTATION_COLUMN`) score the mean over permutations of the per-permutation C (the
    bootstrap again resamples whole patients) and list the per-permutation values.

    Args:
        predictions: Output of :func:`run_net_survival` (or the same columns from a CSV).
        oracle: ``oracle.json`` content (``{"os": {"metric": "c_index", "value": ...}}``).
        n_boot: Bootstrap replicates.
        seed: Bootstrap seed.
        alpha: 1 - confidence level.

    Returns:
        JSON-ready ``{"metric", "n_boot", "alpha", "oracle", "models": {model: {target: {split:
        {"c_index", "ci_low", "ci_high", "n_patients", "n_events"[, "per_permutation"]}}}}}``
        (NaN -> ``None``; ``n_events`` counts patients, once each).
    """
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        msg = f"predictions lack column(s) {', '.join(missing)}"
        raise ModelError(msg)
    result: dict[str, Any] = {
        "metric": "c_index",
        "n_boot": int(n_boot),
        "alpha": float(alpha),
        "oracle": dict(oracle or {}),
        "models": {},
    }
    preds = predictions.copy()
    preds["fold"] = preds["fold"].astype(str)
    permuted = PERMUTATION_COLUMN in preds.columns and preds[PERMUTATION_COLUMN].notna().any()
    run = preds[PERMUTATION_COLUMN].astype(str) if permuted else pd.Series("", index=preds.index)
    for (model, target), group in preds.groupby(["model", "target"], sort=True):
        entry: dict[str, Any] = {}
        for name, rows in _split_rows(group).items():
            if rows.empty:
                continue
            # one C per model run: repeat (validation) x permutation (negative control)
            key = run.loc[rows.index]
            if name == "validation":
                key = rows["fold"] + "/" + key
            entry[name] = _score_split(
                rows,
                key,
                runs=name == "validation" or permuted,
                permuted=permuted,
                n_boot=n_boot,
                seed=seed,
                alpha=alpha,
            )
        result["models"].setdefault(str(model), {})[str(target)] = entry
    return result
