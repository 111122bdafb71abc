"""Evaluation stage: metrics from ``predictions.csv`` with patient-level bootstrap CIs.

:func:`evaluate_predictions` scores any ``predictions.csv`` (the kind read from its columns):
:func:`evaluate_survival` (Harrell / Uno C, time-dependent AUC, integrated Brier score, KM risk
groups) or :func:`evaluate_binary` (threshold fit on validation rows only); per fold, pooled
validation and each test split, every metric with a patient-level bootstrap CI.
:func:`compare_models` runs paired tests between the models of one study (paired bootstrap of
C-index differences, DeLong for AUCs).

The metrics themselves live in :mod:`oncoflow.metrics` (classification, survival, segmentation,
bootstrap intervals); this package calls them. Paired model comparisons (C-index differences) are
:func:`paired_bootstrap`.
"""

from __future__ import annotations

from oncoflow._lazy import lazy_exports

# The names below are loaded on first use (PEP 562): importing one submodule, e.g.
# ``oncoflow.evaluate.compare``, must not import scikit-learn (~2 s) through the binary evaluator.
_EXPORTS = {
    "evaluate_binary": "binary",
    "PairedDifference": "compare",
    "paired_bootstrap": "compare",
    "compare_models": "engine",
    "evaluate_applied": "applied",
    "evaluate_predictions": "engine",
    "prediction_kind": "engine",
    "evaluate_survival": "survival",
}

__all__ = sorted(_EXPORTS, key=str.lower)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
