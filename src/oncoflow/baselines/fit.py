"""The baselines' models and their penalty, chosen on the training patients of a fold only.

- binary and multi-class targets: L2-penalised logistic regression (multinomial for more than
  two classes, scikit-learn's ``LogisticRegression``) with inverse strength ``C`` in
  :data:`C_GRID`, chosen by the mean held-out log-loss of an inner cross-validation;
- survival targets: ridge Cox (:class:`oncoflow.survival.cox.CoxModel`) with ``penalizer`` in
  :data:`COX_GRID`, chosen by the mean held-out Harrell C.

The inner folds (:data:`INNER_FOLDS`) split *patients* (every row of a patient in one fold),
stratified on the label (the event for survival) with keys drawn from the seed and the patient
id. When a class has fewer patients than inner folds the penalty cannot be chosen and the
middle of the grid is used; the summary says so (``"chosen_by": "default"``). Ties go to the
stronger penalty.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from oncoflow.errors import ModelError
from oncoflow.metrics import concordance_index
from oncoflow.survival.cox import CoxModel

C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
"""Inverse L2 strengths tried for the logistic baselines (features are z-scored)."""

COX_GRID: tuple[float, ...] = (10.0, 1.0, 0.1, 0.01)
"""Cox ridge penalties tried (lifelines' parametrisation), strongest first."""

INNER_FOLDS = 3
"""Inner cross-validation folds over the fold's training patients."""


@dataclass
class Fitted:
    """A fitted baseline model and how its penalty was chosen.

    Attributes:
        model: The fitted estimator (``LogisticRegression`` or ``CoxModel``).
        penalty: The chosen ``C`` (logistic) or ``penalizer`` (Cox).
        chosen_by: ``"inner_cv"`` or ``"default"`` (too few patients per class).
        inner_score: Mean held-out score of the chosen penalty (log-loss or C), or ``None``.
    """

    model: Any
    penalty: float
    chosen_by: str
    inner_score: float | None

    def summary(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "penalty": self.penalty,
            "chosen_by": self.chosen_by,
            "inner_score": self.inner_score,
        }


def inner_folds(patients: Sequence[str], strata: Sequence[Any], seed: int) -> np.ndarray | None:
    """Inner fold (0 .. INNER_FOLDS - 1) of each row, by patient, stratified on ``strata``.

    Returns:
        The fold per row, or ``None`` when a stratum has fewer patients than folds.
    """
    first: dict[str, str] = {}
    for patient, stratum in zip(patients, strata, strict=True):
        first.setdefault(str(patient), str(stratum))
    by_stratum: dict[str, list[str]] = {}
    for patient, stratum in first.items():
        by_stratum.setdefault(stratum, []).append(patient)
    if len(by_stratum) < 2 or min(map(len, by_stratum.values())) < INNER_FOLDS:
        return None
    assignment: dict[str, int] = {}
    position = 0
    for stratum in sorted(by_stratum):
        members = sorted(by_stratum[stratum], key=lambda p: _key(seed, p))
        for i, patient in enumerate(members):
            assignment[patient] = (position + i) % INNER_FOLDS
        position += len(members)
    return np.array([assignment[str(p)] for p in patients])


def _key(seed: int, patient: str) -> float:
    return float(np.random.default_rng([int(seed), zlib.crc32(patient.encode())]).random())


def _logistic(c: float) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=2000)


def _log_loss(model: LogisticRegression, X: np.ndarray, y: np.ndarray) -> float:
    proba = model.predict_proba(X)
    index = {label: i for i, label in enumerate(model.classes_)}
    rows = np.array([index.get(v, -1) for v in y])
    p = np.where(rows >= 0, proba[np.arange(len(y)), np.maximum(rows, 0)], 0.0)
    return float(-np.mean(np.log(np.clip(p, 1e-12, 1.0))))


class Prevalence:
    """The class frequencies of the training rows, for every row (a fold with one class).

    Attributes:
        classes_: The training classes (here one), as scikit-learn names them.
    """

    def __init__(self, y: np.ndarray) -> None:
        self.classes_, counts = np.unique(y, return_counts=True)
        self._p = counts / counts.sum()

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The training frequencies, one row per row of ``X``."""
        return np.tile(self._p, (len(X), 1))


def fit_classifier(X: np.ndarray, y: np.ndarray, patients: Sequence[str], seed: int) -> Fitted:
    """Logistic / multinomial model of labels ``y`` with ``C`` from the inner CV (log-loss).

    A fold whose training rows hold one class only (tiny cohorts) gets :class:`Prevalence`
    (``chosen_by = "single_class"``): no model can be fit, and it says so.
    """
    if len(set(y)) < 2:
        return Fitted(Prevalence(y), float("nan"), "single_class", None)
    folds = inner_folds(patients, y, seed)
    scores: dict[float, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if folds is not None:
            for c in C_GRID:
                losses = []
                for k in range(INNER_FOLDS):
                    fit, held = folds != k, folds == k
                    if len(set(y[fit])) < 2:
                        continue
                    losses.append(_log_loss(_logistic(c).fit(X[fit], y[fit]), X[held], y[held]))
                if losses:
                    scores[c] = float(np.mean(losses))
        if scores:
            best = min(scores.values())
            penalty = min(c for c, loss in scores.items() if loss <= best + 1e-12)
            chosen_by, inner = "inner_cv", scores[penalty]
        else:
            penalty, chosen_by, inner = C_GRID[len(C_GRID) // 2], "default", None
        model = _logistic(penalty).fit(X, y)
    return Fitted(model, penalty, chosen_by, inner)


def fit_cox(
    X: np.ndarray, time: np.ndarray, event: np.ndarray, patients: Sequence[str], seed: int
) -> Fitted:
    """Ridge Cox model with ``penalizer`` from the inner CV (Harrell C)."""
    folds = inner_folds(patients, event, seed)
    scores: dict[float, float] = {}
    if folds is not None:
        for penalty in COX_GRID:
            cs = []
            for k in range(INNER_FOLDS):
                fit, held = folds != k, folds == k
                model = CoxModel(penalizer=penalty).fit(X[fit], time[fit], event[fit])
                try:
                    risk = model.predict_risk(X[held])
                    cs.append(concordance_index(time[held], event[held], risk))
                except ModelError:  # no comparable pair among the held-out patients
                    continue
            if cs:
                scores[penalty] = float(np.mean(cs))
    if scores:
        best = max(scores.values())
        penalty = max(p for p, c in scores.items() if c >= best - 1e-12)
        chosen_by, inner = "inner_cv", scores[penalty]
    else:
        penalty, chosen_by, inner = COX_GRID[len(COX_GRID) // 2], "default", None
    return Fitted(CoxModel(penalizer=penalty).fit(X, time, event), penalty, chosen_by, inner)
