"""Survival analysis: penalized Cox, in-fold feature pipeline, cross-validation.

Event coding is explicit everywhere: ``event = 1`` means the event (death, progression)
happened at ``time``; ``event = 0`` means censored. Risk scores: higher = earlier event.
The survival metrics (Harrell / Uno C, time-dependent AUC, Brier scores, KM risk groups) and
bootstrap intervals live in :mod:`oncoflow.metrics`.
"""

from __future__ import annotations

from oncoflow.survival.cox import CoxModel
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
    "SurvivalFeaturePipeline",
    "stratified_folds",
    "univariate_c",
]
