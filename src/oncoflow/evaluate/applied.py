"""Metrics of frozen models on a new cohort (the ``apply`` target), every kind of table.

The new cohort's rows (``split = "apply"``, ``fold = "final"``) are scored as the test split by
the training run's own evaluators (:func:`~oncoflow.evaluate.engine.evaluate_predictions` with
``test_splits = ("apply",)``): survival, binary (per time point too), multi-class (nnU-Net
cases), multitask tables (MM-DLS) and negative controls, with the same metrics and bootstrap.
Whatever a test split borrows from training comes from the training run's validation rows, never
from the new cohort: the binary decision threshold (Youden's J, one per negative-control run),
the censoring distribution of the IPCW survival metrics and the median validation risk of the
Kaplan-Meier risk groups.

A new cohort may come without outcomes (no ``outcomes.csv``: ``y_true``, or ``time`` and
``event``, empty in every row): its predictions are then counted, not scored. Rows without an
outcome among labelled ones are left out and counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.errors import ModelError
from oncoflow.evaluate.engine import evaluate_predictions, multitask_result
from oncoflow.evaluate.multiclass import class_columns
from oncoflow.evaluate.survival import DEFAULT_HORIZONS

log = logging.getLogger(__name__)

APPLY_SPLIT = "apply"
"""The split of a new cohort's rows (predicted by frozen models, ``fold = "final"``)."""

OUTCOME_COLUMNS: dict[str, tuple[str, ...]] = {
    "survival": ("time", "event"),
    "binary": ("y_true",),
    "multiclass": ("y_true",),
}
"""The observed outcome of a row of each kind: empty in the rows of a new cohort without one."""

TRAINING_PREFIX = "training:"
"""Prefix of the training patients' ids among a new cohort's rows (:func:`evaluate_applied`)."""


def score_kind(rows: pd.DataFrame) -> str:
    """Kind of a target's rows from its score columns alone (the outcomes may be empty).

    The order is that of the reader's check (:func:`oncoflow.formats.check_predictions`):
    ``risk`` -> survival, ``y_score`` -> binary, two or more ``y_score_<class>`` -> multiclass.

    Raises:
        ModelError: None of the score columns holds a value.
    """
    filled = [str(c) for c in rows.columns if rows[c].notna().any()]
    if "risk" in filled:
        return "survival"
    if "y_score" in filled:
        return "binary"
    if len(class_columns(filled)) >= 2:
        return "multiclass"
    msg = (
        "apply evaluation: no score column with values: risk (survival), y_score (binary) or "
        f"y_score_<class> for two or more classes (multi-class); columns: {', '.join(filled)}"
    )
    raise ModelError(msg)


def _known(rows: pd.DataFrame, kinds: str | pd.Series) -> pd.Series:
    """Rows whose outcome (:data:`OUTCOME_COLUMNS` of their kind) is filled."""
    kinds = pd.Series(kinds, index=rows.index)
    known = np.zeros(len(rows), dtype=bool)
    for kind, columns in OUTCOME_COLUMNS.items():
        mine = (kinds == kind).to_numpy()
        if mine.any():
            known[mine] = rows.loc[mine, list(columns)].notna().all(axis=1).to_numpy(bool)
    return pd.Series(known, index=rows.index)


def _class_names(labels: pd.Series) -> pd.Series:
    """Class labels as text; integral class names read as floats (empty cells) lose the ``.0``."""
    if pd.api.types.is_float_dtype(labels):
        return labels.map(lambda v: v if pd.isna(v) else f"{v:g}")
    return labels.where(labels.isna(), labels.astype(str))


def _outcome_frame(rows: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The rows of one kind without the columns empty in all of them (the outcomes are kept)."""
    keep = [c for c in rows.columns if c in OUTCOME_COLUMNS[kind] or rows[c].notna().any()]
    rows = rows.loc[:, keep].infer_objects()
    if kind == "binary":  # y_true shares a text column with the class names of other tasks
        rows = rows.assign(y_true=pd.to_numeric(rows["y_true"], errors="raise"))
    elif kind == "multiclass":
        rows = rows.assign(y_true=_class_names(rows["y_true"]))
    return rows


def _reference(training: pd.DataFrame, labelled: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The training run's validation rows of the models and targets the new cohort has.

    Patient ids are prefixed (:data:`TRAINING_PREFIX`): the two cohorts' ids may coincide.
    """
    rows = training[training["split"].astype(str) == "validation"]
    rows = rows[rows["target"].astype(str).isin(set(labelled["target"].astype(str)))]
    if "model" in labelled.columns and "model" in rows.columns:
        rows = rows[rows["model"].astype(str).isin(set(labelled["model"].astype(str)))]
    if rows.empty:
        return rows
    rows = _outcome_frame(rows, kind)
    return rows.assign(patient_id=TRAINING_PREFIX + rows["patient_id"].astype(str))


def _evaluate_applied_task(
    rows: pd.DataFrame,
    training: pd.DataFrame,
    kind: str,
    *,
    threshold: float | str,
    **options: Any,
) -> dict[str, Any]:
    """:func:`evaluate_applied` of the rows of one kind (module docstring)."""
    rows = _outcome_frame(rows, kind)
    known = _known(rows, kind)
    n_patients = int(rows["patient_id"].nunique())
    if not known.any():
        return {"kind": kind, "outcomes_known": False, "n_patients": n_patients, "models": {}}
    labelled, unlabelled = rows[known], rows[~known]
    if len(unlabelled):
        log.warning(
            "apply evaluation (%s): %d row(s) of %d patient(s) without outcome are not scored, "
            "e.g. %s",
            kind,
            len(unlabelled),
            unlabelled["patient_id"].nunique(),
            ", ".join(map(str, unlabelled["patient_id"].unique()[:5])),
        )
    reference = _reference(training, labelled, kind)
    borrowed = kind == "survival" or (kind == "binary" and isinstance(threshold, str))
    if reference.empty and borrowed:
        targets = ", ".join(sorted(set(labelled["target"].astype(str))))
        msg = f"apply evaluation: the training predictions have no validation rows of {targets}"
        raise ModelError(msg)
    if "permutation" in labelled.columns and not reference.empty:
        trained = reference.get("permutation", pd.Series(dtype=float)).dropna()
        runs = set(labelled["permutation"].dropna()) - set(trained)
        if runs:
            msg = (
                "apply evaluation: negative-control run(s) "
                f"{', '.join(map(str, sorted(runs)))} have no validation rows in the training "
                "predictions"
            )
            raise ModelError(msg)
    if reference.empty:
        frame = labelled
    else:
        columns = [c for c in labelled.columns if c in reference.columns]
        frame = pd.concat([reference[columns], labelled[columns]], ignore_index=True)
    result = evaluate_predictions(frame, threshold=threshold, test_splits=(APPLY_SPLIT,), **options)
    result.update(outcomes_known=True, n_patients=n_patients)
    result["unlabelled"] = {
        "n_rows": len(unlabelled),
        "n_patients": int(unlabelled["patient_id"].nunique()),
    }
    model = unlabelled["model"].astype(str) if "model" in unlabelled.columns else "model"
    model = pd.Series(model, index=unlabelled.index)
    counts = Counter(zip(model, unlabelled["target"].astype(str), strict=True))
    for model_name, targets in result["models"].items():
        for target, entry in targets.items():
            for split in (APPLY_SPLIT, "test"):
                if split in entry:
                    entry[split]["n_unlabelled"] = counts[(model_name, target)]
    return result


def evaluate_applied(
    applied: pd.DataFrame,
    training: pd.DataFrame,
    *,
    horizons: Sequence[float] = DEFAULT_HORIZONS,
    threshold: float | str = "youden",
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Metrics of frozen models on a new cohort (the ``apply`` target), with bootstrap CIs.

    The new cohort's rows are scored as the test split (module docstring); the training run's
    validation rows of the same models and targets supply the threshold, the censoring
    distribution (Uno C, td-AUC, Brier) and the risk-group cut-off, and the result repeats
    their ``validation`` entry. Patient ids of the two cohorts may coincide; the training rows are
    renamed ``training:<id>`` so nobody is mistaken for somebody else.

    Rows without an outcome (``y_true``, or ``time`` / ``event``, empty) are not scored: the
    other rows are, and ``unlabelled`` counts them (``n_unlabelled`` per model x target). A
    kind none of whose rows has an outcome (a new cohort without ``outcomes.csv``) gets
    ``{"kind", "outcomes_known": False, "n_patients", "models": {}}`` (predictions only).

    Args:
        applied: Predictions of the new cohort (``split = "apply"``, any kind).
        training: The training run's predictions (its ``validation`` rows are used).
        horizons: Survival horizons (days).
        threshold: Classification threshold: ``"youden"`` (training validation rows) or a
            number.
        n_boot: Bootstrap replicates.
        seed: Bootstrap seed.
        alpha: 1 - confidence level.

    Returns:
        The :func:`evaluate_predictions` result with an ``apply`` (and a pooled ``test``) entry
        per model x target, ``"outcomes_known": True``, ``"n_patients"`` (every new patient)
        and ``"unlabelled": {"n_rows", "n_patients"}``; or the result without outcomes above. A
        multitask table gets ``{"kind": "multitask", "tasks": {kind: result}, "models"}``
        whose ``outcomes_known`` is true when any task has outcomes.

    Raises:
        ModelError: Rows of other splits, a target without scores, or no training validation
            rows where a test split borrows from them (survival; binary with ``"youden"``).
    """
    other = sorted(set(applied["split"].astype(str)) - {APPLY_SPLIT})
    if other:
        msg = f"apply evaluation: rows of split(s) {', '.join(other)} among the new cohort's"
        raise ModelError(msg)
    if applied.empty:
        msg = "apply evaluation: the new cohort's predictions have no rows"
        raise ModelError(msg)
    targets = applied["target"].astype(str)
    kinds = {target: score_kind(rows) for target, rows in applied.groupby(targets, sort=True)}
    options = {"horizons": horizons, "threshold": threshold, "n_boot": n_boot, "seed": seed}
    results = {
        kind: _evaluate_applied_task(
            applied[targets.map(kinds) == kind], training, kind, alpha=alpha, **options
        )
        for kind in sorted(set(kinds.values()))
    }
    if len(results) == 1:
        return next(iter(results.values()))
    out = multitask_result(results, n_boot=n_boot, alpha=alpha)
    out["outcomes_known"] = any(r["outcomes_known"] for r in results.values())
    out["n_patients"] = int(applied["patient_id"].nunique())
    unlabelled = applied[~_known(applied, targets.map(kinds))]
    out["unlabelled"] = {
        "n_rows": len(unlabelled),
        "n_patients": int(unlabelled["patient_id"].nunique()),
    }
    return out
