"""Evaluation stage: metrics from ``predictions.csv`` with patient-level bootstrap CIs.

Binary and multi-class classification metrics live in :mod:`oncoflow.evaluate.classification`;
survival metrics (Harrell / Uno C, time-dependent AUC, integrated Brier, KM risk groups) in
:mod:`oncoflow.survival`; bootstrap intervals in :func:`oncoflow.survival.bootstrap_ci`.
"""

from __future__ import annotations

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

__all__ = [
    "DeLong",
    "Reliability",
    "auc",
    "average_precision",
    "binary_metrics",
    "delong_test",
    "multiclass_metrics",
    "reliability",
    "youden_threshold",
]
