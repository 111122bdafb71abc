"""One target of the net_survival protocol: every fold x model set fit and predicted.

:func:`run_target` is one (target, permutation) run of
:func:`~oncoflow.survival.protocol.run_net_survival`: it validates the target's outcomes,
shuffles them among the training patients for a negative control, draws (or checks the given)
fit/holdout folds, then per fold and model set fits the clinical encoding, feature pipeline and
Cox hyper-parameters on the fit patients only and predicts the apply patients; the ``final``
fold's models are kept as :class:`~oncoflow.survival.design.FittedCox`.

Every run draws from seeds derived from the base seed and its labels (target, permutation, fold),
so runs are independent and may go to worker processes. Log lines keep the protocol's logger
(``oncoflow.survival.protocol``), where they were written before this module was split off.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.errors import ModelError
from oncoflow.metrics.survival import check_survival
from oncoflow.splits import make_folds
from oncoflow.survival.design import MODEL_SETS, ClinicalEncoder, FittedCox, design, indexed
from oncoflow.survival.pipeline import CoxPipelineCV

log = logging.getLogger("oncoflow.survival.protocol")  # the protocol's log lines, unchanged


def _derived_seed(seed: int, *labels: str) -> list[int]:
    return [int(seed)] + [zlib.crc32(label.encode()) for label in labels]


def run_target(
    tables: Mapping[str, pd.DataFrame],
    outcomes: pd.DataFrame,
    split_of: pd.Series,
    target: str,
    *,
    models: list[str],
    repeats: int,
    holdout: float,
    inner_folds: int,
    seed: int,
    permutation: int | None,
    settings: Mapping[str, Sequence[Any]],
    keep_clinical: bool,
    folds: Mapping[str, Mapping[str, Sequence[str]]] | None,
    fold_features: Mapping[str, Mapping[str, pd.DataFrame]] | None,
    horizons: Sequence[float] = (),
) -> tuple[list[pd.DataFrame], list[FittedCox]]:
    """One (target, permutation) run of ``run_net_survival``: every fold x model set.

    The arguments are those of :func:`~oncoflow.survival.protocol.run_net_survival`, checked:
    ``tables`` and ``outcomes`` indexed by ``patient_id``, ``split_of`` indexed by patient id
    as strings, ``settings`` the full grid, ``permutation`` the negative-control permutation
    index (``None`` for the real outcomes).

    Returns:
        ``(prediction rows per fold x model, final models)``.
    """
    truth = _target_truth(outcomes, split_of, target)
    patients = list(truth.index)
    split = split_of.loc[patients].astype(str)
    train = [p for p in patients if split[p] == "train"]
    fit_outcome = _fit_outcome(truth, train, seed, target, permutation)
    _log_missing_features(tables, patients)
    frame = pd.DataFrame({"patient_id": patients, "split": split.to_numpy()})
    strata = {p: int(fit_outcome.loc[p, "event"]) for p in train}
    if folds is None:
        folds = make_folds(frame, strata=strata, repeats=repeats, holdout=holdout, seed=seed)
    else:
        folds = _check_folds(folds, set(split_of.index[split_of.astype(str) == "train"]))
    out = []
    fitted: list[FittedCox] = []
    for name, fold in folds.items():
        fit_ids, apply_ids = _fold_patients(fold, name, train, truth, split)
        if not apply_ids or not fit_ids:
            continue
        labels = ["validation" if split[p] == "train" else split[p] for p in apply_ids]
        blocks = _fold_tables(tables, fold_features, name)
        for model in models:
            cv, x_apply, encoder = _fit_fold_model(
                blocks,
                model,
                fit_ids,
                apply_ids,
                fit_outcome.loc[fit_ids],
                name=name,
                seed=seed,
                inner_folds=inner_folds,
                settings=settings,
                keep_clinical=keep_clinical,
            )
            log.debug("%s %s fold %s: %s", target, model, name, cv.best_)
            out.append(
                _prediction_rows(
                    cv,
                    x_apply,
                    apply_ids,
                    labels,
                    truth,
                    fold=name,
                    target=target,
                    model=model,
                    horizons=horizons,
                )
            )
            if name == "final":
                fitted.append(
                    FittedCox(
                        target=target,
                        model=model,
                        blocks=MODEL_SETS[model],
                        encoder=encoder,
                        pipeline=cv,
                        horizons=list(horizons),
                        permutation=permutation,
                    )
                )
    return out, fitted


def _target_truth(outcomes: pd.DataFrame, split_of: pd.Series, target: str) -> pd.DataFrame:
    """Validated outcome of ``target`` for every patient of ``split_of`` that has one.

    Args:
        outcomes: Indexed by ``patient_id``, with ``<target>_time`` (days) and
            ``<target>_event`` (1 = event happened, 0 = censored).
        split_of: Patient id -> split.
        target: ``os``, ``pfs``...

    Returns:
        ``time`` (float) and ``event`` (0/1) indexed by the sorted patient ids; patients
        without an outcome are left out (logged).

    Raises:
        ModelError: Outcome columns missing, or invalid times / events.
    """
    tcol, ecol = f"{target}_time", f"{target}_event"
    missing = [c for c in (tcol, ecol) if c not in outcomes.columns]
    if missing:
        msg = f"outcomes lack column(s) {', '.join(missing)} for target {target!r}"
        raise ModelError(msg)
    known = outcomes[[tcol, ecol]].dropna()
    lost = sorted(set(split_of.index) - set(known.index))
    if lost:
        log.warning("%s: %d patient(s) without outcome skipped: %s", target, len(lost), lost[:5])
    patients = sorted(set(split_of.index) & set(known.index))
    time, event = check_survival(
        known.loc[patients, tcol], known.loc[patients, ecol], what=f"outcomes ({target})"
    )
    return pd.DataFrame({"time": time, "event": event}, index=patients)


def _fit_outcome(
    truth: pd.DataFrame, train: list[str], seed: int, target: str, permutation: int | None
) -> pd.DataFrame:
    """The outcomes the models are fit on: ``truth``, or a negative-control shuffle of it.

    With a ``permutation`` index the (time, event) pairs of the ``train`` patients are
    permuted among them (seeded by ``seed``, ``target`` and ``permutation``); other rows keep
    their true outcome.
    """
    fit_outcome = truth.copy()
    if permutation is not None:
        rng = np.random.default_rng(_derived_seed(seed, "permute", target, str(permutation)))
        order = rng.permutation(len(train))
        fit_outcome.loc[train] = truth.loc[train].to_numpy()[order]
        log.info("%s: training outcomes permuted (negative control %d)", target, permutation)
    return fit_outcome


def _log_missing_features(tables: Mapping[str, pd.DataFrame], patients: list[str]) -> None:
    """Warn, per block, about patients without a feature row (their features get imputed)."""
    for block, table in tables.items():
        absent = sorted(set(patients) - set(table.index))
        if absent:
            log.warning("%s features missing for %d patient(s): %s", block, len(absent), absent[:5])


def _check_folds(
    folds: Mapping[str, Mapping[str, Sequence[str]]], train: set[str]
) -> dict[str, dict[str, list[str]]]:
    """Validate given folds: a ``final`` fold, ``fit`` lists of training patients only."""
    if "final" not in folds:
        msg = "folds: no 'final' fold (fit on all training patients, applied to the tests)"
        raise ModelError(msg)
    out = {}
    for name, fold in folds.items():
        fit = [str(p) for p in fold.get("fit", [])]
        leaked = sorted(set(fit) - train)
        if leaked:
            msg = f"fold {name}: non-training patient(s) in the fit set: {', '.join(leaked[:5])}"
            raise ModelError(msg)
        out[str(name)] = {"fit": fit, "apply": [str(p) for p in fold.get("apply", [])]}
    return out


def _fold_patients(
    fold: Mapping[str, Sequence[str]],
    name: str,
    train: list[str],
    truth: pd.DataFrame,
    split: pd.Series,
) -> tuple[list[str], list[str]]:
    """``(fit, apply)`` patients of a fold that have an outcome for this target.

    Only training patients are fit on; the ``final`` fold applies to the test patients only
    (in-sample predictions of training patients are not kept).
    """
    fit_ids = [p for p in fold["fit"] if p in set(train)]
    apply_ids = [p for p in fold["apply"] if p in truth.index]
    if name == "final":
        apply_ids = [p for p in apply_ids if split[p] != "train"]
    return fit_ids, apply_ids


def _fold_tables(
    tables: Mapping[str, pd.DataFrame],
    fold_features: Mapping[str, Mapping[str, pd.DataFrame]] | None,
    name: str,
) -> dict[str, pd.DataFrame]:
    """Feature tables of fold ``name``: ``tables`` with that fold's own blocks swapped in."""
    blocks = dict(tables)
    for block, table in (fold_features or {}).get(name, {}).items():
        blocks[block] = indexed(table, f"{block} features of fold {name}")
    return blocks


def _fit_fold_model(
    blocks: Mapping[str, pd.DataFrame],
    model: str,
    fit_ids: list[str],
    apply_ids: list[str],
    y: pd.DataFrame,
    *,
    name: str,
    seed: int,
    inner_folds: int,
    settings: Mapping[str, Sequence[Any]],
    keep_clinical: bool,
) -> tuple[CoxPipelineCV, pd.DataFrame, ClinicalEncoder | None]:
    """Fit one model set on the fit patients of fold ``name``.

    Args:
        blocks: Feature tables of the fold (:func:`_fold_tables`).
        model: Model set name (:data:`~oncoflow.survival.design.MODEL_SETS`).
        fit_ids: Patients the encoding, pipeline and Cox model are fit on.
        apply_ids: Patients to predict afterwards.
        y: ``time`` / ``event`` of ``fit_ids`` (possibly permuted).
        name: Fold name (seeds the inner CV).
        seed: Base seed.
        inner_folds: Inner CV folds of the hyper-parameter search.
        settings: Grid of :class:`~oncoflow.survival.CoxPipelineCV`.
        keep_clinical: Always keep the clinical columns.

    Returns:
        ``(fitted CoxPipelineCV, feature matrix of apply_ids, clinical encoder or None)``.
    """
    x_fit, x_apply, keep, encoder = design(blocks, MODEL_SETS[model], fit_ids, apply_ids)
    cv = CoxPipelineCV(
        inner_folds=inner_folds,
        keep=keep if keep_clinical else (),
        seed=int(np.random.default_rng(_derived_seed(seed, "inner", name)).integers(2**31)),
        **settings,
    )
    cv.fit(x_fit, y["time"].to_numpy(), y["event"].to_numpy())
    return cv, x_apply, encoder


def _prediction_rows(
    cv: CoxPipelineCV,
    x_apply: pd.DataFrame,
    apply_ids: list[str],
    labels: list[str],
    truth: pd.DataFrame,
    *,
    fold: str,
    target: str,
    model: str,
    horizons: Sequence[float],
) -> pd.DataFrame:
    """Prediction rows of the apply patients (the protocol's columns, + ``survival_<t>``).

    ``risk`` is the Cox linear predictor (higher = earlier event); ``survival_<t>`` the
    predicted event-free probability at ``t`` days; ``time`` / ``event`` the true outcomes.
    """
    rows = pd.DataFrame(
        {
            "patient_id": apply_ids,
            "split": labels,
            "fold": fold,
            "target": target,
            "time": truth.loc[apply_ids, "time"].to_numpy(),
            "event": truth.loc[apply_ids, "event"].to_numpy(),
            "risk": cv.predict_risk(x_apply),
            "model": model,
        }
    )
    if horizons:
        survival = cv.predict_survival(x_apply, horizons)
        for k, h in enumerate(horizons):
            rows[f"survival_{h:g}"] = survival[:, k]
    return rows
