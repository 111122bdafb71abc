"""Samples and sequences of ``pancreas_progression`` (:mod:`oncoflow.deep.train_pancreas`).

A sample is ``(patient, time point, label or None)``: the LSTM reads the sequence of the
patient's time-point vectors and predicts the outcome of that time point (progression at the
next visit). The sequence of sample ``(p, tp)`` is built from the time points *available* to
``p``: those with lesion crops and ``<= tp``, in time order (:func:`sequence_points`). A patient
with crops at every time point ``0 .. T-1`` reads ``x_0 .. x_tp``; one with crops at 0, 2 and 3
reads ``[x_0, x_2]`` at time point 2. Such gapped patients reach the trainer only when the study
declares ``missing.timepoints: use_available`` (the workflow drops them otherwise).

An outcome row at a time point without crops is not scored (its label is about that time
point's image): it is skipped with one warning per patient naming the skipped time points.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import torch

from oncoflow.deep.common import FoldInputs

log = logging.getLogger(__name__)

Sample = tuple[str, int, int | None]


def sequence_points(points: Iterable[int], tp: int) -> list[int]:
    """The time points the sequence of time point ``tp`` reads: those of ``points`` ``<= tp``.

    Args:
        points: The patient's time points with lesion crops (any order).
        tp: The scored time point (itself one of ``points``).

    Returns:
        The points ``<= tp`` in time order (``0 .. tp`` for a patient without gaps).
    """
    return sorted(int(t) for t in points if t <= tp)


def sequences(
    vectors: Mapping[str, Mapping[int, np.ndarray]],
    samples: Iterable[Sample],
    mean: np.ndarray,
    sd: np.ndarray,
) -> list[torch.Tensor]:
    """Standardised sequence ``(x_t - mean) / sd`` (T, D) of every sample, in sample order.

    Args:
        vectors: Patient -> time point -> time-point vector (every time point with crops).
        samples: ``(patient, time point, label)`` rows (:func:`fold_samples`).
        mean: Per-feature mean of the standardisation.
        sd: Per-feature SD of the standardisation.

    Returns:
        One tensor per sample over its :func:`sequence_points`.
    """
    out = []
    for patient, tp, _ in samples:
        mine = vectors[patient]
        steps = np.stack([mine[t] for t in sequence_points(mine, tp)])
        out.append(torch.from_numpy((steps - mean) / sd))
    return out


def fold_samples(inputs: FoldInputs, patients: list[str], target: str) -> list[Sample]:
    """(patient, time point, label or None) of the time points of the patients to score.

    With outcomes (``target`` is a column of ``inputs.outcomes``): every labelled time point
    with lesion crops, in time order per patient; a labelled time point without crops is
    skipped (one warning per patient). Without (a new cohort with no ``outcomes.csv``,
    :mod:`oncoflow.deep.apply`): every time point with lesion crops, label ``None``
    (:func:`unlabelled_samples`).
    """
    rows = inputs.outcomes
    if target not in rows.columns:
        return unlabelled_samples(inputs, patients)
    out: list[Sample] = []
    for patient in patients:
        mine = rows[rows["patient_id"] == patient].sort_values("timepoint")
        skipped = []
        for tp, label in zip(mine["timepoint"], mine[target], strict=True):
            if pd.isna(label):
                continue
            if int(tp) not in inputs.lesions[patient]:
                skipped.append(int(tp))
                continue
            out.append((patient, int(tp), int(label)))
        if skipped:
            log.warning(
                "patient %s: outcome at time point(s) %s without lesion crops, not scored "
                "(time points with crops: %s)",
                patient,
                skipped,
                sorted(inputs.lesions[patient]),
            )
    return out


def unlabelled_samples(inputs: FoldInputs, patients: list[str]) -> list[Sample]:
    """(patient, time point, None) for every time point with lesion crops of the patients.

    A patient with gaps is scored at each of its time points over the available ones
    (:func:`sequence_points`); the gaps are logged.
    """
    out: list[Sample] = []
    for patient in patients:
        points = sorted(inputs.lesions[patient])
        if points and points != list(range(points[-1] + 1)):
            gaps = sorted(set(range(points[-1] + 1)) - set(points))
            log.info(
                "patient %s: no lesion crops at time point(s) %s; its sequences read %s",
                patient,
                gaps,
                points,
            )
        out += [(patient, tp, None) for tp in points]
    return out
