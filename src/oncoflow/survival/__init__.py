"""Survival analysis: metrics, penalized Cox, in-fold feature pipeline, bootstrap CIs.

Event coding is explicit everywhere: ``event = 1`` means the event (death, progression)
happened at ``time``; ``event = 0`` means censored. Risk scores: higher = earlier event.

Example:
    >>> import numpy as np
    >>> from oncoflow.survival import concordance_index
    >>> concordance_index(np.array([1.0, 2.0, 3.0]), np.array([1, 1, 0]), np.array([3.0, 2.0, 1.0]))
    1.0
"""

from __future__ import annotations

from oncoflow.survival.bootstrap import bootstrap_ci
from oncoflow.survival.cox import CoxModel
from oncoflow.survival.metrics import (
    RiskGroups,
    TimeDependentAUC,
    brier_scores,
    censoring_survival,
    check_survival,
    concordance_index,
    integrated_brier_score,
    km_risk_groups,
    time_dependent_auc,
    uno_c,
)
from oncoflow.survival.pipeline import (
    CoxPipelineCV,
    CVResult,
    SurvivalFeaturePipeline,
    stratified_folds,
    univariate_c,
)

__all__ = [
    "CVResult",
    "CoxModel",
    "CoxPipelineCV",
    "RiskGroups",
    "SurvivalFeaturePipeline",
    "TimeDependentAUC",
    "bootstrap_ci",
    "brier_scores",
    "censoring_survival",
    "check_survival",
    "concordance_index",
    "integrated_brier_score",
    "km_risk_groups",
    "stratified_folds",
    "time_dependent_auc",
    "univariate_c",
    "uno_c",
]
