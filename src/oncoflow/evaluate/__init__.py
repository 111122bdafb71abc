"""Evaluation stage: metrics from ``predictions.csv`` with patient-level bootstrap CIs.

:func:`evaluate_binary` scores a binary ``predictions.csv`` (threshold fit on validation rows
only, per-fold and pooled validation, each test split, every metric with a bootstrap CI).

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

__all__ = [
    "DeLong",
    "PairedDifference",
    "Reliability",
    "auc",
    "average_precision",
    "binary_metrics",
    "delong_test",
    "evaluate_binary",
    "multiclass_metrics",
    "paired_bootstrap",
    "reliability",
    "youden_threshold",
]
