"""Evaluate binary classification predictions (the ``predictions.csv`` contract).

Rows: ``patient_id, split, fold, target, y_true, y_score`` (+ ``model`` when a study trains
several). Validation rows (``split == "validation"``, one fold each) choose the decision
threshold (Youden's J on the pooled validation predictions, or a fixed value); the test rows
(``fold == "final"``, ``split`` internal_test / external_test) are scored with that threshold
unchanged, so nothing about the test patients is fitted. Every metric comes with a
patient-level percentile bootstrap 95 % CI (:func:`oncoflow.metrics.bootstrap.bootstrap_ci`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve

from oncoflow.errors import ModelError
from oncoflow.formats import RUN_COLUMN
from oncoflow.metrics.bootstrap import mean_of_runs, named_intervals
from oncoflow.metrics.classification import binary_metrics, reliability, youden_threshold

COLUMNS: tuple[str, ...] = ("patient_id", "split", "fold", "target", "y_true", "y_score")
"""Columns a binary ``predictions.csv`` must have."""

SCALAR_METRICS: tuple[str, ...] = (
    "auc",
    "ap",
    "accuracy",
    "sensitivity",
    "specificity",
    "f1",
    "brier",
    "ece",
)
"""Metrics reported with a bootstrap CI."""

TEST_SPLITS: tuple[str, ...] = ("internal_test", "external_test")


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def score_split(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    threshold: float | Mapping[Any, float],
    groups: np.ndarray | None = None,
    runs: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Every binary metric at ``threshold`` with its bootstrap CI, plus counts and confusion.

    With ``runs`` (negative-control permutations; ``groups`` then required) each run is scored
    at its own threshold (``threshold[run]``) and the metrics are averaged over the runs in
    every resample (:func:`~oncoflow.metrics.bootstrap.named_intervals`); the confusion matrix
    is the runs' mean, the curves are the first run's.

    Returns:
        ``{metric: {"value", "ci_low", "ci_high"}, "confusion", "curves", "n_patients",
        "n_positive"}`` (``curves``: :func:`curves`; ``n_runs`` with ``runs``);
        undefined values are ``None``. A split holding one class only (possible in a small CV
        fold) gets ``None`` metrics and a ``note`` instead of an error.
    """
    patients = groups if groups is not None else np.arange(len(y_true))
    counts = {
        "n_patients": len(np.unique(patients)),
        "n_positive": int(pd.Series(y_true).groupby(np.asarray(patients)).max().sum()),
    }
    if runs is not None:
        counts["n_runs"] = len(np.unique(runs))
    if len(np.unique(y_true)) < 2:
        empty = {"value": None, "ci_low": None, "ci_high": None}
        note = "one class only: metrics undefined"
        return {**{name: dict(empty) for name in SCALAR_METRICS}, **counts, "note": note}

    if isinstance(threshold, Mapping):  # one threshold per run, carried row by row
        cuts = np.array([threshold[r] for r in np.asarray(runs)], dtype=float)
        arrays: tuple[np.ndarray, ...] = (y_true, y_score, cuts)
    else:
        arrays = (y_true, y_score, np.full(len(y_true), float(threshold)))

    def metrics(y: np.ndarray, score: np.ndarray, cut: np.ndarray) -> dict[str, Any]:
        return binary_metrics(y, score, threshold=float(cut[0]))  # constant within a run

    point, out = named_intervals(
        metrics,
        SCALAR_METRICS,
        *arrays,
        n=n_boot,
        seed=seed,
        alpha=alpha,
        groups=groups,
        runs=runs,
    )
    out["confusion"] = point["confusion"]
    first = slice(None) if runs is None else np.asarray(runs) == np.unique(runs)[0]
    out["curves"] = curves(np.asarray(y_true)[first], np.asarray(y_score)[first])
    return {**out, **counts}


def curves(y_true: np.ndarray, y_score: np.ndarray, *, bins: int = 10) -> dict[str, Any]:
    """ROC, precision-recall and reliability curves of one split (for the report's figures).

    ROC and PR come from scikit-learn (ROC without collinear intermediate points); the
    reliability curve is :func:`~oncoflow.metrics.classification.reliability` (left out when
    the scores are not probabilities). Values are rounded to 4 decimals.

    Returns:
        ``{"roc": {"fpr", "tpr"}, "pr": {"recall", "precision"}, "reliability": {"mean_score",
        "observed", "count"} | None}``.
    """
    fpr, tpr, _ = roc_curve(y_true, y_score)
    precision, recall, _ = precision_recall_curve(y_true, y_score)
    scores = np.asarray(y_score, dtype=float)
    calibration = None
    if ((scores >= 0) & (scores <= 1)).all():
        rel = reliability(y_true, scores, bins=bins)
        calibration = {
            "mean_score": _rounded(rel.mean_score),
            "observed": _rounded(rel.observed),
            "count": [int(c) for c in rel.count],
        }
    return {
        "roc": {"fpr": _rounded(fpr), "tpr": _rounded(tpr)},
        "pr": {"recall": _rounded(recall), "precision": _rounded(precision)},
        "reliability": calibration,
    }


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 4) for v in values]


def _fold_metrics(y_true: pd.Series, y_score: pd.Series, threshold: float) -> dict[str, Any]:
    """Point metrics of one CV fold (``None`` each when the fold holds one class only)."""
    if y_true.nunique() < 2:
        return dict.fromkeys(SCALAR_METRICS)
    point = binary_metrics(y_true, y_score, threshold=threshold)
    return {name: _finite(point[name]) for name in SCALAR_METRICS}


def evaluate_binary(
    predictions: pd.DataFrame,
    *,
    threshold: float | str = "youden",
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    test_splits: Sequence[str] = TEST_SPLITS,
) -> dict[str, Any]:
    """Metrics per model x target: per validation fold, pooled validation, and each test split.

    Args:
        predictions: Rows of the binary contract (:data:`COLUMNS`, optional ``model``).
        threshold: ``"youden"`` (fit on the pooled validation rows) or a number in [0, 1].
        n_boot: Bootstrap replicates per metric.
        seed: Bootstrap seed (the same seed gives the same intervals).
        alpha: 1 - confidence level.
        test_splits: The ``fold == "final"`` splits to score, each alone and pooled as ``test``
            (``("apply",)`` for a new cohort, :func:`~oncoflow.evaluate.applied.evaluate_applied`:
            the threshold still comes from the validation rows, the training patients').

    Returns:
        JSON-ready ``{"n_boot", "alpha", "models": {model: {target: {"threshold",
        "threshold_from", "validation": {"per_fold": {fold: {metric: value}}, "pooled": ...},
        "internal_test": ..., "external_test": ..., "test": ...}}}}`` (a split without rows is
        left out; ``test`` pools both test splits).

    Raises:
        ModelError: Missing columns, or ``"youden"`` with no validation rows for a target.
    """
    missing = [c for c in COLUMNS if c not in predictions.columns]
    if missing:
        msg = f"predictions lack column(s) {', '.join(missing)}"
        raise ModelError(msg)
    frame = predictions.copy()
    if "model" not in frame.columns:
        frame["model"] = "model"
    frame["fold"] = frame["fold"].astype(str)
    controlled = is_control(frame)
    result: dict[str, Any] = {"n_boot": n_boot, "alpha": alpha, "models": {}}
    for (model, target), rows in frame.groupby(["model", "target"], sort=True):
        validation = rows[rows["split"] == "validation"]
        final = rows[(rows["fold"] == "final") & rows["split"].isin(test_splits)]
        if isinstance(threshold, str):
            if threshold != "youden":
                msg = f"threshold must be 'youden' or a number, got {threshold!r}"
                raise ModelError(msg)
            if validation.empty:
                msg = f"model {model}, target {target}: no validation rows to fit a threshold on"
                raise ModelError(msg)
            cuts = {
                key: youden_threshold(part["y_true"], part["y_score"])
                for key, part in run_parts(validation, controlled)
            }
            source = "validation (Youden's J)"
        else:
            keys = [key for key, _ in run_parts(rows, controlled)]
            cuts, source = dict.fromkeys(keys, float(threshold)), "fixed"
        cut: float | dict[Any, float] = cuts if controlled else cuts[None]
        entry: dict[str, Any] = {
            "threshold": float(np.mean(list(cuts.values()))),
            "threshold_from": source,
        }
        if controlled:
            entry["threshold_from"] += f", one per run (mean of {len(cuts)})"
        options = {"threshold": cut, "n_boot": n_boot, "seed": seed, "alpha": alpha}
        if not validation.empty:
            per_fold = {
                str(fold): mean_of_runs(
                    [
                        _fold_metrics(run["y_true"], run["y_score"], cuts[key])
                        for key, run in run_parts(part, controlled)
                    ]
                )
                for fold, part in validation.groupby("fold", sort=True)
            }
            pooled = score_split(
                validation["y_true"].to_numpy(),
                validation["y_score"].to_numpy(float),
                groups=validation["patient_id"].astype(str).to_numpy(),
                runs=run_labels(validation, controlled),
                **options,
            )
            entry["validation"] = {"per_fold": per_fold, "pooled": pooled}
        splits = {name: final[final["split"] == name] for name in test_splits}
        splits["test"] = final
        for name, part in splits.items():
            if part.empty:
                continue
            entry[name] = score_split(
                part["y_true"].to_numpy(),
                part["y_score"].to_numpy(float),
                groups=part["patient_id"].astype(str).to_numpy(),
                runs=run_labels(part, controlled),
                **options,
            )
        result["models"][str(model)] = result["models"].get(str(model), {})
        result["models"][str(model)][str(target)] = entry
    return result


def is_control(frame: pd.DataFrame) -> bool:
    """True for a negative-control table: a ``permutation`` column holding several runs."""
    return RUN_COLUMN in frame.columns and frame[RUN_COLUMN].nunique() > 1


def run_labels(rows: pd.DataFrame, controlled: bool) -> np.ndarray | None:
    """The run label of each row of a negative control, else ``None``."""
    return rows[RUN_COLUMN].to_numpy() if controlled else None


def run_parts(rows: pd.DataFrame, controlled: bool) -> list[tuple[Any, pd.DataFrame]]:
    """``(run label, its rows)`` per run of a negative control; ``[(None, rows)]`` otherwise."""
    if not controlled:
        return [(None, rows)]
    return [(key, part) for key, part in rows.groupby(RUN_COLUMN, sort=True)]
