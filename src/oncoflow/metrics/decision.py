"""Multi-class decision rules: the class-weighted argmax that maximises macro-F1.

The most probable class (``argmax_k p_k``) maximises accuracy, not macro-F1: with unequal class
sizes macro-F1 rewards predicting the small classes more often. Among the rules
``k* = argmax_k w_k p_k`` (one weight per class, ``w_0 = 1``), :func:`macro_f1_weights` finds
the weights that maximise macro-F1 on labelled rows by coordinate ascent over ``log w_k``.
Fitted on a large sample of a generating mechanism it gives the macro-F1-optimal rule of the
demo's oracle; fitted on validation rows it is a decision threshold like Youden's J.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from oncoflow.errors import ModelError


def weighted_argmax(scores: ArrayLike, weights: ArrayLike) -> np.ndarray:
    """Return ``argmax_k w_k s_k`` per row of (n, K) scores."""
    s = np.asarray(scores, dtype=float)
    w = np.asarray(weights, dtype=float)
    if s.ndim != 2 or w.shape != (s.shape[1],):
        msg = f"scores (n, K) and K weights expected, got {s.shape} and {w.shape}"
        raise ModelError(msg)
    return np.argmax(s * w[None, :], axis=1)


def confusion_codes(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """Confusion matrix ``(k, k)`` of class codes ``0 .. k-1`` (rows true, columns predicted)."""
    return np.bincount(y * k + pred, minlength=k * k).reshape(k, k)


def confusion_macro_f1(confusion: np.ndarray) -> float:
    """Macro-F1 of a confusion matrix: ``mean_k 2 TP_k / (2 TP_k + FP_k + FN_k)``.

    ``2 TP_k + FP_k + FN_k`` is the sum of row ``k`` and column ``k``; a class with none of
    them (never present, never predicted) scores 0.
    """
    k = confusion.shape[0]
    tp = np.diag(confusion).astype(float)
    denom = confusion.sum(axis=0) + confusion.sum(axis=1)
    return float(np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0).mean())


def macro_f1_weights(
    y_true: ArrayLike,
    scores: ArrayLike,
    *,
    log_range: float = 3.0,
    steps: int = 121,
    sweeps: int = 4,
) -> np.ndarray:
    """Class weights ``w`` for which ``argmax_k w_k s_k`` has the highest macro-F1 on the rows.

    Coordinate ascent: ``w_0 = 1``; each sweep sets every other ``log w_k`` in turn to the value
    on the grid ``linspace(-log_range, log_range, steps)`` that maximises macro-F1 given the
    others (ties keep the value closest to 0, i.e. the plain argmax).

    Args:
        y_true: Class index per row, ``0 .. K-1``.
        scores: (rows, K) class probabilities (or any scores on a common scale).
        log_range: Half-width of the grid of natural-log weights.
        steps: Grid points per class.
        sweeps: Passes over the classes.

    Returns:
        The K weights (``w_0 = 1``).

    Raises:
        ModelError: Shapes that do not match or a class index outside ``0 .. K-1``.
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(y_true).astype(int)
    if s.ndim != 2 or y.shape != (s.shape[0],):
        msg = f"scores (n, K) and n labels expected, got {s.shape} and {y.shape}"
        raise ModelError(msg)
    k = s.shape[1]
    if y.size and (y.min() < 0 or y.max() >= k):
        msg = f"class indices must lie in 0..{k - 1}"
        raise ModelError(msg)
    grid = np.linspace(-log_range, log_range, steps)
    order = np.argsort(np.abs(grid), kind="stable")
    log_w = np.zeros(k)
    log_s = np.log(np.clip(s, 1e-300, None))
    for _ in range(sweeps):
        for c in range(1, k):
            # row i predicts c iff log w_c > threshold_i, else its best other class
            others = log_s + log_w[None, :]
            others[:, c] = -np.inf
            rival = np.argmax(others, axis=1)
            threshold = others[np.arange(len(y)), rival] - log_s[:, c]
            best_value, best_score = 0.0, -1.0
            for value in grid[order]:
                pred = np.where(value > threshold, c, rival)
                score = confusion_macro_f1(confusion_codes(y, pred, k))
                if score > best_score + 1e-12:
                    best_value, best_score = float(value), score
            log_w[c] = best_value
    return np.exp(log_w)
