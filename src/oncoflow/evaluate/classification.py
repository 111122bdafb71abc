"""Classification metrics of the evaluation stage (binary and multi-class).

Scores are probabilities (or any monotone score for the ranking metrics). The decision
threshold of a binary model is chosen on *validation* predictions only (:func:`youden_threshold`)
and applied unchanged to the test predictions (:func:`binary_metrics` takes it as an argument).
AUC comparisons between two models on the same patients use DeLong's test
(:func:`delong_test`, fast mid-rank form of Sun & Xu 2014).

Definitions (``P`` positives, ``N`` negatives, ``TP`` ... at the threshold, ``p`` the score):

* sensitivity ``TP / P``, specificity ``TN / N``, accuracy ``(TP + TN) / (P + N)``,
  F1 ``2 TP / (2 TP + FP + FN)``;
* Brier ``mean((p - y)^2)``;
* ECE ``sum_b (n_b / n) |mean(y)_b - mean(p)_b|`` over ``bins`` equal-width bins of ``p``
  on [0, 1] (the last bin closed).

Example:
    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1]); p = np.array([0.1, 0.6, 0.4, 0.9])
    >>> round(binary_metrics(y, p, threshold=0.5)["auc"], 3)
    0.75
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from oncoflow.errors import ModelError


def _binary_inputs(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(y_score, dtype=float)
    if y.ndim != 1 or p.shape != y.shape:
        msg = f"labels {y.shape} and scores {p.shape} must be two vectors of one length"
        raise ModelError(msg)
    if not np.isfinite(p).all():
        msg = f"{int((~np.isfinite(p)).sum())} score(s) are NaN or infinite"
        raise ModelError(msg)
    labels = set(np.unique(y).tolist())
    if not labels <= {0, 1}:
        msg = f"binary labels must be 0/1, got {sorted(labels)}"
        raise ModelError(msg)
    y = y.astype(int)
    if y.min() == y.max():
        msg = f"only one class present (all {int(y[0])}): ranking metrics are undefined"
        raise ModelError(msg)
    return y, p


def auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve = P(score of a positive > score of a negative), ties count 1/2.

    Computed from mid-ranks: ``(sum of positive ranks - P (P + 1) / 2) / (P N)``.
    """
    y, p = _binary_inputs(y_true, y_score)
    ranks = stats.rankdata(p)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_precision(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Average precision ``sum_k (R_k - R_{k-1}) P_k`` over the distinct score thresholds.

    Same step-wise definition as scikit-learn (no interpolation); tied scores form one step.
    """
    y, p = _binary_inputs(y_true, y_score)
    order = np.argsort(-p, kind="mergesort")
    y_sorted, p_sorted = y[order], p[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(p_sorted)), len(p_sorted) - 1]
    tp = np.cumsum(y_sorted)[last_of_tie]
    predicted = last_of_tie + 1
    precision = tp / predicted
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def youden_threshold(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Threshold maximising Youden's ``J = sensitivity + specificity - 1``.

    Candidates are the observed scores (a patient is positive when ``score >= threshold``); on
    ties of ``J`` the highest threshold wins (fewest positives). Fit it on validation
    predictions only and apply it unchanged to the test set.
    """
    y, p = _binary_inputs(y_true, y_score)
    candidates = np.unique(p)[::-1]
    positive = p[None, :] >= candidates[:, None]
    sens = (positive & (y == 1)).sum(axis=1) / y.sum()
    spec = (~positive & (y == 0)).sum(axis=1) / (len(y) - y.sum())
    return float(candidates[int(np.argmax(sens + spec - 1.0))])


class Reliability(NamedTuple):
    """Reliability curve: per non-empty bin, mean score, observed rate and count."""

    mean_score: np.ndarray
    observed: np.ndarray
    count: np.ndarray
    ece: float


def reliability(y_true: ArrayLike, prob: ArrayLike, *, bins: int = 10) -> Reliability:
    """Reliability curve and expected calibration error over ``bins`` equal-width bins.

    Raises:
        ModelError: Probabilities outside [0, 1], or ``bins < 1``.
    """
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(prob, dtype=float)
    if bins < 1:
        msg = f"bins must be >= 1, got {bins}"
        raise ModelError(msg)
    if p.shape != y.shape or p.size == 0:
        msg = f"labels {y.shape} and probabilities {p.shape} must be two vectors of one length"
        raise ModelError(msg)
    if (p < 0).any() or (p > 1).any() or not np.isfinite(p).all():
        msg = "calibration needs probabilities in [0, 1]"
        raise ModelError(msg)
    index = np.minimum((p * bins).astype(int), bins - 1)
    count = np.bincount(index, minlength=bins)
    keep = count > 0
    mean_score = np.bincount(index, weights=p, minlength=bins)[keep] / count[keep]
    observed = np.bincount(index, weights=y, minlength=bins)[keep] / count[keep]
    ece = float(np.sum(count[keep] / p.size * np.abs(observed - mean_score)))
    return Reliability(mean_score, observed, count[keep], ece)


def binary_metrics(
    y_true: ArrayLike, y_score: ArrayLike, *, threshold: float, bins: int = 10
) -> dict[str, Any]:
    """All binary metrics at a given (validation-fit) threshold.

    Args:
        y_true: 0/1 labels.
        y_score: Probability of class 1.
        threshold: ``score >= threshold`` is predicted positive.
        bins: Bins of the calibration error.

    Returns:
        ``auc, ap, accuracy, sensitivity, specificity, f1, brier, ece, threshold`` and
        ``confusion`` (``[[TN, FP], [FN, TP]]``).
    """
    y, p = _binary_inputs(y_true, y_score)
    predicted = (p >= threshold).astype(int)
    tp = int(((predicted == 1) & (y == 1)).sum())
    tn = int(((predicted == 0) & (y == 0)).sum())
    fp = int(((predicted == 1) & (y == 0)).sum())
    fn = int(((predicted == 0) & (y == 1)).sum())
    in_unit = bool(((p >= 0) & (p <= 1)).all())
    return {
        "auc": auc(y, p),
        "ap": average_precision(y, p),
        "accuracy": (tp + tn) / len(y),
        "sensitivity": tp / (tp + fn),
        "specificity": tn / (tn + fp),
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
        "brier": float(np.mean((p - y) ** 2)) if in_unit else float("nan"),
        "ece": reliability(y, p, bins=bins).ece if in_unit else float("nan"),
        "threshold": float(threshold),
        "confusion": [[tn, fp], [fn, tp]],
    }


def multiclass_metrics(y_true: ArrayLike, scores: ArrayLike) -> dict[str, Any]:
    """Macro one-vs-rest AUC, accuracy, macro F1, multi-class Brier and the confusion matrix.

    Args:
        y_true: Class index per patient, ``0 .. K-1``.
        scores: (patients, K) class probabilities; the prediction is the arg-max.

    Returns:
        ``auc_macro`` (mean of the K one-vs-rest AUCs over classes present with both signs),
        ``accuracy``, ``f1_macro`` (mean over the K classes, a class never predicted nor present
        scoring 0), ``brier`` (``mean_i sum_k (s_ik - [y_i = k])^2``) and ``confusion``
        (rows true, columns predicted).
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=float)
    if s.ndim != 2 or s.shape[0] != y.shape[0] or y.ndim != 1:
        msg = f"labels {y.shape} and scores {s.shape}: need K score columns per patient"
        raise ModelError(msg)
    k = s.shape[1]
    if y.min() < 0 or y.max() >= k:
        msg = f"class index outside 0..{k - 1}"
        raise ModelError(msg)
    predicted = s.argmax(axis=1)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (y, predicted), 1)
    tp = np.diag(confusion)
    denominators = confusion.sum(axis=0) + confusion.sum(axis=1)
    f1 = np.divide(2 * tp, denominators, out=np.zeros(k), where=denominators > 0)
    aucs = [auc((y == c).astype(int), s[:, c]) for c in range(k) if 0 < (y == c).sum() < len(y)]
    onehot = np.eye(k)[y]
    return {
        "auc_macro": float(np.mean(aucs)) if aucs else float("nan"),
        "accuracy": float(tp.sum() / len(y)),
        "f1_macro": float(f1.mean()),
        "brier": float(np.mean(np.sum((s - onehot) ** 2, axis=1))),
        "confusion": confusion.tolist(),
    }


class DeLong(NamedTuple):
    """DeLong's comparison of two correlated AUCs."""

    auc_a: float
    auc_b: float
    z: float
    p_value: float


def _placements(pos: np.ndarray, neg: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and the structural components V10 (per positive) and V01 (per negative)."""
    m, n = len(pos), len(neg)
    ranks_all = stats.rankdata(np.r_[pos, neg])
    v10 = (ranks_all[:m] - stats.rankdata(pos)) / n
    v01 = 1.0 - (ranks_all[m:] - stats.rankdata(neg)) / m
    return float(v10.mean()), v10, v01


def delong_test(y_true: ArrayLike, score_a: ArrayLike, score_b: ArrayLike) -> DeLong:
    """Two-sided DeLong test of ``AUC_a = AUC_b`` for two models scored on the same patients.

    ``Var(AUC_a - AUC_b) = c' (S10 / P + S01 / N) c`` with ``c = (1, -1)``, ``S10``/``S01`` the
    covariance matrices of the positives' / negatives' placement values; ``z = diff / sd`` and
    ``p = 2 (1 - Phi(|z|))``. Identical scores give ``z = 0, p = 1``.
    """
    y, a = _binary_inputs(y_true, score_a)
    _, b = _binary_inputs(y_true, score_b)
    positive = y == 1
    auc_a, v10_a, v01_a = _placements(a[positive], a[~positive])
    auc_b, v10_b, v01_b = _placements(b[positive], b[~positive])
    m, n = int(positive.sum()), int((~positive).sum())
    if m < 2 or n < 2:
        msg = f"DeLong needs at least 2 positives and 2 negatives, got {m} and {n}"
        raise ModelError(msg)
    s10 = np.cov(np.vstack([v10_a, v10_b]))
    s01 = np.cov(np.vstack([v01_a, v01_b]))
    cov = s10 / m + s01 / n
    variance = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    diff = auc_a - auc_b
    if variance <= 1e-15:
        return DeLong(auc_a, auc_b, 0.0, 1.0)
    z = diff / np.sqrt(variance)
    return DeLong(auc_a, auc_b, float(z), float(2.0 * stats.norm.sf(abs(z))))
