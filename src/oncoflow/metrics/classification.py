"""Classification metrics (binary and multi-class): AUC, AP, F1, Brier, ECE, reliability, DeLong.

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

All metrics are unitless fractions (AUC, AP, F1, accuracy in [0, 1]; Brier and ECE in squared
resp. plain probability units). They are written with numpy / scipy rather than by calling
scikit-learn because a training job scores every epoch (:func:`safe_auc`) and must not import
scikit-learn (~2 s), and because invalid inputs must raise :class:`~oncoflow.errors.ModelError`
naming the problem. Each is tested equal to scikit-learn (``roc_auc_score``,
``average_precision_score``, ``roc_curve``, ``calibration_curve``, ``f1_score``,
``brier_score_loss``, ``confusion_matrix``) in ``tests/unit/test_metrics.py`` and
``tests/unit/test_metrics_classification.py``; ties count one half as there.

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

# scipy.stats (~1 s to import) is imported inside the functions that rank: the demo cohort plan,
# which Snakemake runs when it parses the workflow, imports this module.
from oncoflow.errors import ModelError
from oncoflow.metrics.decision import confusion_codes, confusion_macro_f1, weighted_argmax


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

    Computed from mid-ranks (Mann-Whitney U / (P N)), O(n log n):
    ``(sum of positive ranks - P (P + 1) / 2) / (P N)``. The rank sums are half-integers, so
    the value is exact up to the one final division. Equal to scikit-learn's ``roc_auc_score``.

    Args:
        y_true: 0/1 labels (booleans accepted).
        y_score: Scores, higher = more likely class 1 (finite).

    Returns:
        AUC in [0, 1]; 0.5 is chance.

    Raises:
        ModelError: Not two vectors of one length, non-finite scores, labels other than 0/1,
            or only one class present.
    """
    from scipy import (
        stats,
    )  # here, not at import: scipy.stats costs ~1 s and the demo plan imports this module

    y, p = _binary_inputs(y_true, y_score)
    ranks = stats.rankdata(p)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def safe_auc(y_true: ArrayLike, y_score: ArrayLike, *, undefined: float = float("nan")) -> float:
    """:func:`auc`, or ``undefined`` when fewer than two classes are present.

    For samples that may hold one class (an inner validation split of a training job, a small
    test split of a demo oracle); any other invalid input still raises.

    Args:
        y_true: 0/1 labels (booleans accepted).
        y_score: Scores, higher = more likely class 1.
        undefined: Value returned for a one-class (or empty) sample: NaN by default; a
            training job's epoch selection passes 0.5 (chance).

    Returns:
        AUC in [0, 1], or ``undefined``.

    Raises:
        ModelError: As :func:`auc`, except for the one-class case.
    """
    if len(np.unique(np.asarray(y_true))) < 2:
        return float(undefined)
    return auc(y_true, y_score)


def average_precision(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Average precision ``sum_k (R_k - R_{k-1}) P_k`` over the distinct score thresholds.

    ``P_k`` and ``R_k`` are the precision ``TP / (TP + FP)`` and recall ``TP / P`` when the
    ``k``-th highest distinct score is the threshold. Same step-wise definition as
    scikit-learn's ``average_precision_score`` (no interpolation); tied scores form one step.

    Args:
        y_true: 0/1 labels.
        y_score: Scores, higher = more likely class 1 (finite).

    Returns:
        AP in [0, 1]; the prevalence ``P / (P + N)`` is chance.

    Raises:
        ModelError: As :func:`auc`.
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
    predictions only and apply it unchanged to the test set. scikit-learn has no such function;
    the result is the threshold of ``roc_curve`` at ``argmax(tpr - fpr)`` (first = highest).

    Args:
        y_true: 0/1 labels.
        y_score: Scores (finite).

    Returns:
        The threshold, in the unit of the scores.

    Raises:
        ModelError: As :func:`auc`.
    """
    y, p = _binary_inputs(y_true, y_score)
    candidates = np.unique(p)[::-1]
    positive = p[None, :] >= candidates[:, None]
    sens = (positive & (y == 1)).sum(axis=1) / y.sum()
    spec = (~positive & (y == 0)).sum(axis=1) / (len(y) - y.sum())
    return float(candidates[int(np.argmax(sens + spec - 1.0))])


def brier_score(y_true: ArrayLike, prob: ArrayLike) -> float:
    """Brier score ``mean_i (p_i - y_i)^2`` of binary outcomes (squared probability units).

    Equal to scikit-learn's ``brier_score_loss``. Lower is better; predicting 0.5 for everyone
    scores 0.25.

    Args:
        y_true: 0/1 outcomes.
        prob: Predicted probabilities of class 1, in [0, 1].

    Returns:
        The Brier score in [0, 1].

    Raises:
        ModelError: Not two vectors of one length, or probabilities outside [0, 1].
    """
    y = np.asarray(y_true)
    p = np.asarray(prob, dtype=float)
    if y.ndim != 1 or p.shape != y.shape:
        msg = f"labels {y.shape} and probabilities {p.shape} must be two vectors of one length"
        raise ModelError(msg)
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        msg = "the Brier score needs probabilities in [0, 1]"
        raise ModelError(msg)
    return float(np.mean((p - y) ** 2))


class Reliability(NamedTuple):
    """Reliability curve: per non-empty bin, mean score, observed rate and count."""

    mean_score: np.ndarray
    observed: np.ndarray
    count: np.ndarray
    ece: float


def reliability(y_true: ArrayLike, prob: ArrayLike, *, bins: int = 10) -> Reliability:
    """Reliability curve and expected calibration error over ``bins`` equal-width bins.

    A probability ``p`` falls in bin ``min(floor(p * bins), bins - 1)``;
    ``ECE = sum_b (n_b / n) |mean(y)_b - mean(p)_b|`` over the non-empty bins. The points are
    those of scikit-learn's ``calibration_curve(strategy="uniform")``, which gives neither the
    counts nor the ECE (it puts a probability lying exactly on an inner bin edge in the lower
    bin, this function in the upper one).

    Args:
        y_true: 0/1 outcomes.
        prob: Predicted probabilities of class 1, in [0, 1].
        bins: Number of equal-width bins on [0, 1].

    Returns:
        :class:`Reliability`: mean probability, observed rate and count per non-empty bin, and
        the ECE (a probability, in [0, 1]).

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
        ``confusion`` (``[[TN, FP], [FN, TP]]``); definitions in the module docstring, equal to
        scikit-learn's ``accuracy_score``, ``recall_score``, ``f1_score``, ``brier_score_loss``
        and ``confusion_matrix``. ``brier`` and ``ece`` are NaN for scores outside [0, 1].

    Raises:
        ModelError: As :func:`auc`.
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
        "brier": brier_score(y, p) if in_unit else float("nan"),
        "ece": reliability(y, p, bins=bins).ece if in_unit else float("nan"),
        "threshold": float(threshold),
        "confusion": [[tn, fp], [fn, tp]],
    }


def _multiclass_inputs(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=float)
    if s.ndim != 2 or s.shape[0] != y.shape[0] or y.ndim != 1:
        msg = f"labels {y.shape} and scores {s.shape}: need K score columns per patient"
        raise ModelError(msg)
    k = s.shape[1]
    if y.min() < 0 or y.max() >= k:
        msg = f"class index outside 0..{k - 1}"
        raise ModelError(msg)
    return y, s


def macro_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Macro one-vs-rest AUC: mean over classes ``c`` of :func:`auc` of ``(y = c, s_c)``.

    ``AUC_macro = (1 / |C|) sum_{c in C} AUC(1[y = c], s_c)`` over the classes ``C`` present
    with both signs (at least one patient in and one out of the class). Equal to
    scikit-learn's ``roc_auc_score(y, s, multi_class="ovr", average="macro")`` when every class
    is present (scikit-learn then raises, this function leaves the class out).

    Args:
        y_true: Class index per patient, ``0 .. K-1``.
        scores: (patients, K) class scores.

    Returns:
        The macro AUC in [0, 1], NaN when no class has both signs.

    Raises:
        ModelError: Shapes that do not match, or a class index outside ``0 .. K-1``.
    """
    y, s = _multiclass_inputs(y_true, scores)
    k = s.shape[1]
    aucs = [auc((y == c).astype(int), s[:, c]) for c in range(k) if 0 < (y == c).sum() < len(y)]
    return float(np.mean(aucs)) if aucs else float("nan")


def macro_f1(y_true: ArrayLike, y_pred: ArrayLike, *, labels: ArrayLike | None = None) -> float:
    """Macro-averaged F1 of predicted class labels.

    ``F1_macro = (1 / |L|) sum_{k in L} 2 TP_k / (2 TP_k + FP_k + FN_k)`` (a class with
    ``2 TP + FP + FN = 0`` scores 0) over ``labels``, by default the classes present in
    ``y_true`` or ``y_pred``. Equal to scikit-learn's ``f1_score(average="macro")`` (with the
    same ``labels``); written here so that demo generation and training jobs need no
    scikit-learn import.

    Args:
        y_true: True class per patient (any hashable labels).
        y_pred: Predicted class per patient.
        labels: Classes to average over; ``None`` = the union of both vectors.

    Returns:
        Macro F1 in [0, 1]; NaN when there is no class at all.
    """
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    classes = np.union1d(yt, yp) if labels is None else np.asarray(labels)
    scores = []
    for k in classes:
        tp = np.sum((yt == k) & (yp == k))
        fp = np.sum((yt != k) & (yp == k))
        fn = np.sum((yt == k) & (yp != k))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores)) if scores else float("nan")


def multiclass_metrics(
    y_true: ArrayLike, scores: ArrayLike, *, weights: ArrayLike | None = None
) -> dict[str, Any]:
    """Macro one-vs-rest AUC, accuracy, macro F1, multi-class Brier and the confusion matrix.

    Equal to scikit-learn's ``roc_auc_score(multi_class="ovr", average="macro")``,
    ``accuracy_score``, ``f1_score(average="macro", labels=range(K))`` and ``confusion_matrix``
    (``tests/unit/test_metrics_classification.py``); one confusion matrix serves the counting
    metrics, which the bootstrap recomputes on every resample.

    Args:
        y_true: Class index per patient, ``0 .. K-1``.
        scores: (patients, K) class probabilities; the prediction is the arg-max.
        weights: Class weights of the decision rule ``argmax_k w_k s_k``
            (:func:`~oncoflow.metrics.decision.weighted_argmax`, e.g. fitted on validation rows
            by :func:`~oncoflow.metrics.decision.macro_f1_weights`); ``None`` = plain arg-max.
            Only the predicted class (accuracy, macro F1, confusion) depends on it.

    Returns:
        ``auc_macro`` (:func:`macro_auc`: mean of the K one-vs-rest AUCs over classes present
        with both signs), ``accuracy``, ``f1_macro`` (mean over the K classes, a class never
        predicted nor present scoring 0), ``brier`` (``mean_i sum_k (s_ik - [y_i = k])^2``) and
        ``confusion`` (rows true, columns predicted).

    Raises:
        ModelError: Shapes that do not match, or a class index outside ``0 .. K-1``.
    """
    y, s = _multiclass_inputs(y_true, scores)
    k = s.shape[1]
    predicted = s.argmax(axis=1) if weights is None else weighted_argmax(s, weights)
    confusion = confusion_codes(y, predicted, k)
    onehot = np.eye(k)[y]
    return {
        "auc_macro": macro_auc(y, s),
        "accuracy": float(np.trace(confusion) / len(y)),
        "f1_macro": confusion_macro_f1(confusion),
        "brier": float(np.mean(np.sum((s - onehot) ** 2, axis=1))),
        "confusion": confusion.tolist(),
    }


class DeLong(NamedTuple):
    """DeLong's comparison of two correlated AUCs.

    ``se`` is the standard error of ``auc_a - auc_b`` (0 for identical scores), so a
    ``1 - alpha`` interval of the difference is ``diff +- Phi^-1(1 - alpha / 2) * se``.
    """

    auc_a: float
    auc_b: float
    z: float
    p_value: float
    se: float = 0.0


def _placements(pos: np.ndarray, neg: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and the structural components V10 (per positive) and V01 (per negative)."""
    from scipy import (
        stats,
    )  # here, not at import: scipy.stats costs ~1 s and the demo plan imports this module

    m, n = len(pos), len(neg)
    ranks_all = stats.rankdata(np.r_[pos, neg])
    v10 = (ranks_all[:m] - stats.rankdata(pos)) / n
    v01 = 1.0 - (ranks_all[m:] - stats.rankdata(neg)) / m
    return float(v10.mean()), v10, v01


def delong_test(y_true: ArrayLike, score_a: ArrayLike, score_b: ArrayLike) -> DeLong:
    """Two-sided DeLong test of ``AUC_a = AUC_b`` for two models scored on the same patients.

    ``Var(AUC_a - AUC_b) = c' (S10 / P + S01 / N) c`` with ``c = (1, -1)``, ``S10``/``S01`` the
    covariance matrices of the positives' / negatives' placement values; ``z = diff / sd`` and
    ``p = 2 (1 - Phi(|z|))``. Identical scores give ``z = 0, p = 1``. Neither scikit-learn,
    scikit-survival nor lifelines has this test; the placement values come from mid-ranks in
    O(n log n) (Sun & Xu 2014) and equal the O(P N) pairwise definition
    ``V10_i = mean_j psi(a_i, a_j)``, ``psi(x, y) = 1[x > y] + 1/2 1[x = y]`` (tested).

    Args:
        y_true: 0/1 labels, shared by both models.
        score_a: Scores of model A.
        score_b: Scores of model B, same patients and order.

    Returns:
        :class:`DeLong`: both AUCs, ``z`` and the two-sided p-value.

    Raises:
        ModelError: As :func:`auc`, or fewer than 2 positives or 2 negatives.
    """
    from scipy import (
        stats,
    )  # here, not at import: scipy.stats costs ~1 s and the demo plan imports this module

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
    se = float(np.sqrt(variance))
    z = diff / se
    return DeLong(auc_a, auc_b, float(z), float(2.0 * stats.norm.sf(abs(z))), se)
