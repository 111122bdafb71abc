"""The oracle metrics written to ``oracle.json`` (small, dependency-free implementations)."""

from __future__ import annotations

import numpy as np


def auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Return the ROC AUC: ``P(score_pos > score_neg) + 0.5 P(tie)`` (Mann-Whitney U / n1 n0).

    Returns NaN when one class is absent.
    """
    y = np.asarray(y_true, dtype=int)
    s = np.asarray(score, dtype=float)
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def c_index(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Return Harrell's concordance index (higher risk = earlier event).

    A pair ``(i, j)`` is comparable when ``time_i < time_j`` and ``event_i = 1``; it is
    concordant when ``risk_i > risk_j``; risk ties count 1/2. NaN when no pair is comparable.
    """
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=int)
    r = np.asarray(risk, dtype=float)
    comparable = (t[:, None] < t[None, :]) & (e[:, None] == 1)
    n = comparable.sum()
    if n == 0:
        return float("nan")
    conc = (comparable & (r[:, None] > r[None, :])).sum()
    ties = (comparable & (r[:, None] == r[None, :])).sum()
    return float((conc + 0.5 * ties) / n)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Return the macro-averaged F1 over the classes present in ``y_true`` or ``y_pred``."""
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    scores = []
    for k in np.union1d(yt, yp):
        tp = np.sum((yt == k) & (yp == k))
        fp = np.sum((yt != k) & (yp == k))
        fn = np.sum((yt == k) & (yp != k))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores)) if scores else float("nan")


def oracle_entry(metric: str, value: float) -> dict[str, float | str]:
    """Return ``{"metric": ..., "value": ...}`` with the value rounded to 4 decimals."""
    return {"metric": metric, "value": round(float(value), 4)}
