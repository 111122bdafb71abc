"""Every metric of oncoflow, on the ground floor of the import layers.

* :mod:`oncoflow.metrics.classification`: AUC (and :func:`safe_auc` for one-class samples),
  average precision, Youden threshold, Brier score, reliability curve and ECE, binary and
  multi-class metric sets, macro AUC, macro F1, DeLong's test;
* :mod:`oncoflow.metrics.survival`: Harrell's and Uno's C, cumulative/dynamic time-dependent
  AUC, IPCW Brier and integrated Brier scores, KM risk groups with the log-rank test, and the
  kernels the bootstrap calls on validated arrays;
* :mod:`oncoflow.metrics.segmentation`: Dice of two masks and of every region of two label maps;
* :mod:`oncoflow.metrics.bootstrap`: patient-level (and two-stage patient x run) percentile
  bootstrap intervals and means over runs.

This package imports numpy, scipy, lifelines (lazily, for the log-rank test),
:mod:`oncoflow.errors` and :mod:`oncoflow._lazy` (its lazy exports), nothing else from oncoflow;
every other package computes its metrics by calling it. Where a metric is not a call into
scikit-learn, scikit-survival or lifelines, its docstring says why, and
``tests/unit/test_metrics.py`` checks it equal to them on shared cases.

Example:
    >>> import numpy as np
    >>> from oncoflow.metrics import auc, concordance_index
    >>> auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]))
    0.75
    >>> concordance_index(np.array([1.0, 2.0, 3.0]), np.array([1, 1, 0]), np.array([3.0, 2.0, 1.0]))
    1.0
"""

from __future__ import annotations

from oncoflow._lazy import lazy_exports

# The names below are loaded on first use (PEP 562): a training job that imports one submodule
# (e.g. ``oncoflow.metrics.classification`` for its epoch AUC) imports nothing else.
_EXPORTS = {
    "bootstrap_ci": "bootstrap",
    "bootstrap_replicates": "bootstrap",
    "mean_of_runs": "bootstrap",
    "named_intervals": "bootstrap",
    "run_mean": "bootstrap",
    "DeLong": "classification",
    "Reliability": "classification",
    "auc": "classification",
    "average_precision": "classification",
    "binary_metrics": "classification",
    "brier_score": "classification",
    "delong_test": "classification",
    "macro_auc": "classification",
    "macro_f1": "classification",
    "multiclass_metrics": "classification",
    "reliability": "classification",
    "safe_auc": "classification",
    "youden_threshold": "classification",
    "dice": "segmentation",
    "region_dice": "segmentation",
    "RiskGroups": "survival",
    "TimeDependentAUC": "survival",
    "brier_kernel": "survival",
    "brier_scores": "survival",
    "censoring_survival": "survival",
    "check_survival": "survival",
    "clip_times": "survival",
    "concordance_index": "survival",
    "concordance_pair_sums": "survival",
    "integrate_brier": "survival",
    "integrated_brier_score": "survival",
    "km_risk_groups": "survival",
    "safe_concordance_index": "survival",
    "td_auc_kernel": "survival",
    "time_dependent_auc": "survival",
    "uno_c": "survival",
    "uno_c_kernel": "survival",
}

__all__ = sorted(_EXPORTS, key=str.lower)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
