"""The net_survival protocol: radiomics + pathomics + clinical -> penalized Cox for OS and PFS.

Six model sets (:data:`MODEL_SETS`): radiomics, pathomics, clinical, clinical+radiomics,
clinical+pathomics and all. Protocol of :func:`run_net_survival`, per target:

1. ``repeats`` stratified (on the event) fit/holdout draws of the *training* patients
   (:func:`oncoflow.splits.make_folds`, ``holdout`` of each stratum held out). For each draw:
   clinical encoding, feature pipeline and Cox hyper-parameters (inner stratified CV, Harrell C)
   are fit on the fit part only, then the holdout patients are predicted
   (rows ``split = "validation"``, ``fold = "<r>"``).
2. A final model fit the same way on all training patients predicts ``internal_test`` and
   ``external_test`` (``fold = "final"``).

Given ``folds`` (a ``folds.json``, e.g. the ones the per-fold ComBat rule used) replace step 1's
draws, and ``fold_features`` supplies per-fold (harmonized) feature tables.

The image features go through the in-fold pipeline of
:class:`~oncoflow.survival.SurvivalFeaturePipeline`; the clinical columns of a combined model
(``clinical+radiomics``, ``all``, ...) are always kept (not filtered, not counted in ``k``), as
seed 002 did, so a combined model really contains the clinical model it is compared with.
``keep_clinical=False`` lets the selection drop them like any feature (then ``clinical+radiomics``
can end up as ``radiomics`` alone). ``permute=True`` shuffles the
(time, event) pairs among the training patients before anything is fit - a negative control whose
test C-index should be about 0.5; the output rows always carry the patients' true outcomes. One
permutation of 60 test patients scatters by about +-0.05 around 0.5, so the control runs
``permutations`` independent shuffles (column ``permutation``) and reports their mean.

Output rows (the survival rows of ``predictions.csv``, ``docs/formats.md``):
``patient_id, split, fold, target, time, event, risk, model`` (risk: higher = earlier event).

The design matrices, the model sets and the frozen final model are
:mod:`oncoflow.survival.design`, one target's folds x model sets fit and predicted
:mod:`oncoflow.survival.fitting`, the C-index summary of the predictions
:mod:`oncoflow.survival.summary`, applying the final models to a new cohort
:mod:`oncoflow.survival.apply`, and reading the study inputs :mod:`oncoflow.survival.inputs`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pandas as pd

from oncoflow.errors import ModelError
from oncoflow.formats import RUN_COLUMN
from oncoflow.survival.design import BLOCKS, MODEL_SETS, ClinicalEncoder, FittedCox, indexed
from oncoflow.survival.fitting import run_target

PREDICTION_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "split",
    "fold",
    "target",
    "time",
    "event",
    "risk",
    "model",
)

PERMUTATION_COLUMN = RUN_COLUMN
"""Extra column of negative-control predictions: index of the outcome permutation."""

DEFAULT_GRID: dict[str, tuple[Any, ...]] = {
    "k_grid": (2, 4, 8),
    "penalizer_grid": (0.01, 0.1, 1.0),
    "l1_grid": (0.0, 0.5),
}
"""Inner-CV grid of :class:`~oncoflow.survival.CoxPipelineCV`."""

__all__ = [
    "BLOCKS",
    "DEFAULT_GRID",
    "MODEL_SETS",
    "PERMUTATION_COLUMN",
    "PREDICTION_COLUMNS",
    "ClinicalEncoder",
    "FittedCox",
    "run_net_survival",
]


def run_net_survival(
    features: Mapping[str, pd.DataFrame],
    outcomes: pd.DataFrame,
    splits: pd.Series,
    *,
    targets: Sequence[str] = ("os", "pfs"),
    repeats: int = 5,
    holdout: float = 0.3,
    inner_folds: int = 3,
    seed: int = 0,
    permute: bool = False,
    permutations: int = 5,
    models: Sequence[str] | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    keep_clinical: bool = True,
    folds: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    fold_features: Mapping[str, Mapping[str, pd.DataFrame]] | None = None,
    n_jobs: int = 1,
    horizons: Sequence[float] = (),
    return_models: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, list[FittedCox]]:
    """Train and apply the net_survival Cox models (module docstring for the protocol).

    Args:
        features: Block name (``radiomics``, ``pathomics``, ``clinical``) -> table indexed by
            ``patient_id`` (or with a ``patient_id`` column). Radiomics / pathomics are numeric;
            clinical may hold numeric and categorical columns. A patient missing from a table has
            missing features (imputed with training medians, logged).
        outcomes: ``patient_id`` + ``<target>_time``, ``<target>_event`` per target (event 1 =
            death / progression happened).
        splits: Patient id -> ``train`` | ``internal_test`` | ``external_test``.
        targets: Targets to model (``os``, ``pfs``, ``dfs``...).
        repeats: Number of stratified fit/holdout draws of the training patients.
        holdout: Held-out fraction per draw.
        inner_folds: Inner CV folds for hyper-parameters.
        seed: Seed of the draws, inner folds and permutation.
        permute: Permute (time, event) pairs among training patients (negative control).
        permutations: Independent permutations when ``permute`` (rows tagged with
            :data:`PERMUTATION_COLUMN`).
        models: Model sets to run (default: every set whose blocks are all in ``features``).
        grid: Overrides of :data:`DEFAULT_GRID` (``k_grid``, ``penalizer_grid``, ``l1_grid``).
        keep_clinical: Keep every clinical column in the combined models (unfiltered, outside
            ``k``), so that ``clinical+radiomics`` contains the clinical model (default).
        folds: Given folds (``folds.json`` of :func:`oncoflow.formats.read_folds`:
            ``{"0": {"fit": [...], "apply": [...]}, ..., "final": {...}}``) used for every target
            instead of drawing ``repeats`` new ones; ``fit`` lists may only hold training
            patients. Keeps training aligned with per-fold steps such as ComBat.
        fold_features: Fold name -> blocks replacing ``features`` in that fold, e.g. ComBat
            harmonized tables fit on that fold's fit patients.
        n_jobs: Worker processes over the independent (permutation, target) runs; every run
            draws from its own derived seeds, so the result does not depend on ``n_jobs``.
        horizons: Times (days) at which to predict the event-free probability
            ``S(t | x) = exp(-H0(t) exp(eta(x)))`` (Breslow ``H0`` of the fit patients), one
            column ``survival_<t>`` each, for the Brier score of the evaluation stage.
        return_models: Also return the final models (fit on all training patients), one
            :class:`FittedCox` per permutation x target x model set, to apply to new cohorts.

    Returns:
        Predictions with columns :data:`PREDICTION_COLUMNS` (+ :data:`PERMUTATION_COLUMN` when
        ``permute``, + ``survival_<t>`` per horizon); with ``return_models`` the pair
        ``(predictions, final models)``.

    Raises:
        ModelError: Unknown block or model, missing outcome columns, invalid outcomes or splits.
    """
    tables = _checked_tables(features)
    models = _checked_models(tables, models)
    outcome_table = indexed(outcomes, "outcomes")
    split_of = _checked_splits(splits)
    if permute and permutations < 1:
        msg = f"permutations must be >= 1, got {permutations}"
        raise ModelError(msg)
    settings = {**DEFAULT_GRID, **(grid or {})}
    horizons = [float(h) for h in horizons]
    columns = list(PREDICTION_COLUMNS) + [f"survival_{h:g}" for h in horizons]
    columns += [PERMUTATION_COLUMN] if permute else []
    run = functools.partial(
        run_target,
        tables,
        outcome_table,
        split_of,
        models=models,
        repeats=repeats,
        holdout=holdout,
        inner_folds=inner_folds,
        seed=seed,
        settings=settings,
        keep_clinical=keep_clinical,
        folds=folds,
        fold_features=fold_features,
        horizons=horizons,
    )
    tasks = [(p, t) for p in (range(permutations) if permute else [None]) for t in targets]
    results = _run_tasks(run, tasks, n_jobs)
    rows = [
        part.assign(**{PERMUTATION_COLUMN: p})
        for (p, _), (parts, _) in zip(tasks, results, strict=True)
        for part in parts
    ]
    table = pd.concat(rows, ignore_index=True)[columns] if rows else pd.DataFrame(columns=columns)
    if return_models:
        return table, [model for _, fitted in results for model in fitted]
    return table


def _checked_tables(features: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Feature blocks indexed by ``patient_id`` (:func:`~oncoflow.survival.design.indexed`).

    Raises:
        ModelError: A block not in :data:`BLOCKS`, or a patient listed twice in a table.
    """
    unknown = sorted(set(features) - set(BLOCKS))
    if unknown:
        msg = f"unknown feature block(s) {', '.join(unknown)}; expected {', '.join(BLOCKS)}"
        raise ModelError(msg)
    return {name: indexed(frame, f"{name} features") for name, frame in features.items()}


def _checked_models(tables: Mapping[str, pd.DataFrame], models: Sequence[str] | None) -> list[str]:
    """The model sets to run: ``models``, or every set whose blocks are all in ``tables``.

    Args:
        tables: Block name -> feature table (:func:`_checked_tables`).
        models: Requested model set names (:data:`MODEL_SETS`), or ``None`` for all that fit.

    Returns:
        The model set names, in the requested (or :data:`MODEL_SETS`) order.

    Raises:
        ModelError: An unknown model set, or one whose feature blocks are not all given.
    """
    if models is None:
        models = [m for m, blocks in MODEL_SETS.items() if set(blocks) <= set(tables)]
    for model in models:
        if model not in MODEL_SETS:
            msg = f"unknown model {model!r}; expected one of {', '.join(MODEL_SETS)}"
            raise ModelError(msg)
        lacking = [b for b in MODEL_SETS[model] if b not in tables]
        if lacking:
            msg = f"model {model!r} needs feature block(s) {', '.join(lacking)}"
            raise ModelError(msg)
    return list(models)


def _checked_splits(splits: pd.Series) -> pd.Series:
    """Copy of ``splits`` indexed by patient id as strings.

    Raises:
        ModelError: A split other than ``train``, ``internal_test`` or ``external_test``.
    """
    split_of = pd.Series(splits).copy()
    split_of.index = split_of.index.astype(str)
    bad = sorted(set(split_of.astype(str)) - {"train", "internal_test", "external_test"})
    if bad:
        msg = f"splits: unknown split(s) {', '.join(bad)}"
        raise ModelError(msg)
    return split_of


def _run_tasks(
    run: Callable[..., tuple[list[pd.DataFrame], list[FittedCox]]],
    tasks: Sequence[tuple[int | None, str]],
    n_jobs: int,
) -> list[tuple[list[pd.DataFrame], list[FittedCox]]]:
    """``run(target, permutation=p)`` for every ``(p, target)`` task, results in task order.

    With ``n_jobs > 1`` and more than one task the runs go to a process pool of
    ``min(n_jobs, len(tasks))`` workers; each run draws from its own derived seeds, so the
    results do not depend on ``n_jobs``.
    """
    if n_jobs > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=min(n_jobs, len(tasks))) as pool:
            futures = [pool.submit(run, t, permutation=p) for p, t in tasks]
            return [future.result() for future in futures]  # in task order
    return [run(t, permutation=p) for p, t in tasks]
