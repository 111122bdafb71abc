"""Multi-class classification metrics per model x target x split, with bootstrap CIs.

Rows: ``patient_id, split, fold, target, y_true`` and one probability column ``y_score_<class>``
per class (``docs/formats.md``: one score column per class); ``y_true`` holds the class name
(matched as text against the column suffixes). Validation rows are scored per fold and pooled,
``fold == "final"`` rows per test split and pooled (``test``). Metrics
(:func:`~oncoflow.metrics.classification.multiclass_metrics`): macro one-vs-rest AUC, accuracy,
macro F1 and the multi-class Brier score, each with a patient-level bootstrap CI (all on the same
resamples), plus the confusion matrix (rows true, columns predicted).

Decision rule: the most probable class maximises accuracy, not macro F1 (with unequal class sizes
macro F1 rewards predicting the small classes more often). The rule of the test splits is
therefore ``argmax_k w_k p_k`` with the class weights that maximise macro F1 on the pooled
validation rows (:func:`~oncoflow.metrics.decision.macro_f1_weights`), as the binary threshold is
Youden's J of the validation rows; validation rows themselves are scored with the plain arg-max
(a rule fitted on them would flatter them). Without validation rows, and with
``decision="argmax"``, the test splits use the plain arg-max too. AUC and Brier do not depend on
the rule. The entry's ``decision`` records the rule and its weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.errors import ModelError
from oncoflow.evaluate.binary import is_control, run_labels, run_parts
from oncoflow.metrics.bootstrap import mean_of_runs, named_intervals
from oncoflow.metrics.classification import multiclass_metrics
from oncoflow.metrics.decision import macro_f1_weights

SCORE_PREFIX = "y_score_"
"""Prefix of the per-class probability columns."""

METRICS: tuple[str, ...] = ("auc_macro", "accuracy", "f1_macro", "brier")
"""Metrics reported with a bootstrap CI."""

TEST_SPLITS: tuple[str, ...] = ("internal_test", "external_test")

DECISIONS: tuple[str, ...] = ("macro_f1", "argmax")
"""Decision rules of the test splits (module docstring)."""


def class_columns(columns: Sequence[str]) -> list[str]:
    """The ``y_score_<class>`` columns, in table order."""
    return [str(c) for c in columns if str(c).startswith(SCORE_PREFIX)]


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _rule_metrics(y: np.ndarray, scores: np.ndarray, rule: np.ndarray) -> dict[str, Any]:
    """:func:`multiclass_metrics` with the decision weights carried row by row.

    ``rule`` is (rows, K), constant within a run (each negative-control run has its own rule).
    """
    return multiclass_metrics(y, scores, weights=rule[0] if len(rule) else None)


def _score(
    y: np.ndarray,
    scores: np.ndarray,
    rule: np.ndarray,
    groups: np.ndarray,
    runs: np.ndarray | None = None,
    *,
    n_boot: int,
    seed: int,
    alpha: float,
) -> dict[str, Any]:
    """Metrics of one split with CIs; with ``runs`` the mean over runs (negative control)."""
    options = {"n": n_boot, "seed": seed, "alpha": alpha, "groups": groups, "runs": runs}
    point, out = named_intervals(_rule_metrics, METRICS, y, scores, rule, **options)
    out["confusion"] = point["confusion"]
    out["n_patients"] = len(np.unique(groups))
    if runs is not None:
        out["n_runs"] = len(np.unique(runs))
    return out


def _decision_rules(
    validation: pd.DataFrame, columns: list[str], controlled: bool, decision: str
) -> dict[Any, np.ndarray]:
    """Class weights of the test rows' decision rule per run (``None`` = not a control)."""
    if decision != "macro_f1":
        return {}
    return {
        run: macro_f1_weights(part["_y"].to_numpy(int), part[columns].to_numpy(float))
        for run, part in run_parts(validation, controlled)
        if not part.empty
    }


def _decision_entry(rules: dict[Any, np.ndarray], controlled: bool) -> dict[str, Any]:
    """The ``decision`` record of one model x target (module docstring)."""
    if not rules:
        return {"rule": "argmax", "weights": None, "fitted_on": None}
    if controlled:
        weights: Any = {str(run): w.tolist() for run, w in rules.items()}
    else:
        weights = next(iter(rules.values())).tolist()
    return {"rule": "macro_f1", "weights": weights, "fitted_on": "validation"}


def evaluate_multiclass(
    predictions: pd.DataFrame,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    test_splits: Sequence[str] = TEST_SPLITS,
    decision: str = "macro_f1",
) -> dict[str, Any]:
    """Metrics per model x target: per validation fold, pooled validation, each test split.

    Args:
        predictions: Rows of the multi-class contract (module docstring; optional ``model``).
        n_boot: Bootstrap replicates.
        seed: Bootstrap seed.
        alpha: 1 - confidence level.
        test_splits: The ``fold == "final"`` splits to score, each alone and pooled as ``test``
            (``("apply",)`` for a new cohort, :func:`~oncoflow.evaluate.applied.evaluate_applied`).
        decision: ``"macro_f1"`` (test splits: the validation-fitted macro-F1 rule) or
            ``"argmax"`` (module docstring).

    Returns:
        JSON-ready ``{"kind": "multiclass", "n_boot", "alpha", "models": {model: {target:
        {"classes", "decision": {"rule", "weights", "fitted_on"}, "validation": {"per_fold":
        {fold: {metric: value}}, "pooled": {...}}, "internal_test", "external_test",
        "test"}}}}``; each split holds ``{metric: {"value", "ci_low", "ci_high"},
        "confusion", "n_patients"}``.

    Raises:
        ModelError: Fewer than two class columns, a label that is not a class, scores outside
            [0, 1], an unknown ``decision``.
    """
    if decision not in DECISIONS:
        msg = f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}"
        raise ModelError(msg)
    columns = class_columns(list(predictions.columns))
    if len(columns) < 2 or "y_true" not in predictions.columns:
        msg = "multi-class predictions need y_true and two or more y_score_<class> columns"
        raise ModelError(msg)
    classes = [c[len(SCORE_PREFIX) :] for c in columns]
    frame = predictions.copy()
    frame["fold"] = frame["fold"].astype(str)
    if "model" not in frame.columns:
        frame["model"] = "model"
    labels = frame["y_true"].astype(str)
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        msg = f"y_true value(s) {', '.join(unknown[:5])} are not classes ({', '.join(classes)})"
        raise ModelError(msg)
    scores = frame[columns].to_numpy(float)
    if not np.isfinite(scores).all() or (scores < 0).any() or (scores > 1).any():
        msg = "y_score_<class> columns must hold probabilities in [0, 1]"
        raise ModelError(msg)
    frame["_y"] = labels.map({c: i for i, c in enumerate(classes)})
    options = {"n_boot": n_boot, "seed": seed, "alpha": alpha}
    result: dict[str, Any] = {"kind": "multiclass", "n_boot": n_boot, "alpha": alpha}
    result["models"] = {}

    controlled = is_control(frame)
    k = len(columns)

    def arrays(rows: pd.DataFrame, rules: dict[Any, np.ndarray]) -> tuple[Any, ...]:
        runs = run_labels(rows, controlled)
        keys = runs if runs is not None else [None] * len(rows)
        rule = np.array([rules.get(key, np.ones(k)) for key in keys]).reshape(len(rows), k)
        return (
            rows["_y"].to_numpy(int),
            rows[columns].to_numpy(float),
            rule,
            rows["patient_id"].astype(str).to_numpy(),
            runs,
        )

    def fold_metrics(part: pd.DataFrame) -> dict[str, float | None]:
        points = []
        for _, run in run_parts(part, controlled):
            point = multiclass_metrics(run["_y"].to_numpy(int), run[columns].to_numpy(float))
            points.append({name: _finite(point[name]) for name in METRICS})
        return mean_of_runs(points)

    for (model, target), rows in frame.groupby(["model", "target"], sort=True):
        entry: dict[str, Any] = {"classes": classes}
        validation = rows[rows["split"] == "validation"]
        rules = _decision_rules(validation, columns, controlled, decision)
        entry["decision"] = _decision_entry(rules, controlled)
        if not validation.empty:
            per_fold = {}
            for fold, part in validation.groupby("fold", sort=True):
                per_fold[str(fold)] = fold_metrics(part)
            entry["validation"] = {
                "per_fold": per_fold,
                "pooled": _score(*arrays(validation, {}), **options),
            }
        final = rows[(rows["fold"] == "final") & rows["split"].isin(test_splits)]
        splits = {name: final[final["split"] == name] for name in test_splits}
        splits["test"] = final
        for name, part in splits.items():
            if not part.empty:
                entry[name] = _score(*arrays(part, rules), **options)
        result["models"].setdefault(str(model), {})[str(target)] = entry
    return result
