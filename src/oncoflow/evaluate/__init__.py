"""Evaluation stage: metrics from ``predictions.csv`` with patient-level bootstrap CIs.

:func:`evaluate_predictions` scores any ``predictions.csv`` (the kind read from its columns):
:func:`evaluate_survival` (Harrell / Uno C, time-dependent AUC, integrated Brier score, KM risk
groups) or :func:`evaluate_binary` (threshold fit on validation rows only); per fold, pooled
validation and each test split, every metric with a patient-level bootstrap CI.
:func:`compare_models` runs paired tests between the models of one study (paired bootstrap of
C-index differences, DeLong for AUCs).

Binary and multi-class classification metrics live in :mod:`oncoflow.evaluate.classification`;
survival metrics (Harrell / Uno C, time-dependent AUC, integrated Brier, KM risk groups) in
:mod:`oncoflow.survival`; bootstrap intervals in :func:`oncoflow.survival.bootstrap_ci` and paired
model comparisons (C-index differences) in :func:`paired_bootstrap`.
"""

from __future__ import annotations

from oncoflow.evaluate.binary import evaluate_binary
from oncoflow.evaluate.classification import (
    DeLong,
    Reliability,
    auc,
    average_precision,
    binary_metrics,
    delong_test,
    multiclass_metrics,
    reliability,
    youden_threshold,
)
from oncoflow.evaluate.compare import PairedDifference, paired_bootstrap
from oncoflow.evaluate.engine import compare_models, evaluate_predictions, prediction_kind
from oncoflow.evaluate.survival import evaluate_survival

__all__ = [
    "DeLong",
    "PairedDifference",
    "Reliability",
    "auc",
    "average_precision",
    "binary_metrics",
    "compare_models",
    "delong_test",
    "evaluate_binary",
    "evaluate_predictions",
    "evaluate_survival",
    "multiclass_metrics",
    "paired_bootstrap",
    "prediction_kind",
    "reliability",
    "youden_threshold",
]
