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

All features, clinical included, go through the in-fold pipeline of
:class:`~oncoflow.survival.SurvivalFeaturePipeline` (on the 40-patient demo this is more stable
than forcing the clinical columns in); ``keep_clinical=True`` always keeps the clinical columns
(not filtered, not counted in ``k``), as seed 002 did. ``permute=True`` shuffles the
(time, event) pairs among the training patients before anything is fit - a negative control whose
test C-index should be about 0.5; the output rows always carry the patients' true outcomes. One
permutation of 60 test patients scatters by about +-0.05 around 0.5, so the control runs
``permutations`` independent shuffles (column ``permutation``) and reports their mean.

Output rows (the survival rows of ``predictions.csv``, ``docs/formats.md``):
``patient_id, split, fold, target, time, event, risk, model`` (risk: higher = earlier event).
"""

from __future__ import annotations

import functools
import json
import logging
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.errors import ModelError
from oncoflow.metrics.bootstrap import bootstrap_ci
from oncoflow.metrics.survival import check_survival, concordance_pair_sums
from oncoflow.splits import make_folds
from oncoflow.survival.pipeline import CoxPipelineCV

log = logging.getLogger(__name__)

BLOCKS: tuple[str, ...] = ("radiomics", "pathomics", "clinical")
"""Feature blocks, the keys of ``features``."""

MODEL_SETS: dict[str, tuple[str, ...]] = {
    "radiomics": ("radiomics",),
    "pathomics": ("pathomics",),
    "clinical": ("clinical",),
    "clinical+radiomics": ("clinical", "radiomics"),
    "clinical+pathomics": ("clinical", "pathomics"),
    "all": ("clinical", "radiomics", "pathomics"),
}
"""Model name -> feature blocks it uses."""

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

PERMUTATION_COLUMN = "permutation"
"""Extra column of negative-control predictions: index of the outcome permutation."""

DEFAULT_GRID: dict[str, tuple[Any, ...]] = {
    "k_grid": (2, 4, 8),
    "penalizer_grid": (0.01, 0.1, 1.0),
    "l1_grid": (0.0, 0.5),
}
"""Inner-CV grid of :class:`~oncoflow.survival.CoxPipelineCV`."""


class ClinicalEncoder:
    """Clinical table -> numeric features, fit on training patients.

    Numeric columns stay numeric (missing values -> training median). Other columns are one-hot
    encoded against the categories seen in training, the first (alphabetical) category being the
    reference (no column); missing values and categories unseen in training map to the reference.
    Output columns are named ``clinical:<column>`` and ``clinical:<column>=<category>``.
    """

    def fit(self, clinical: pd.DataFrame) -> ClinicalEncoder:
        """Learn medians and categories from the training rows."""
        self.numeric_: dict[str, float] = {}
        self.categories_: dict[str, list[str]] = {}
        for col in clinical.columns:
            series = clinical[col]
            as_num = pd.to_numeric(series, errors="coerce")
            if series.notna().any() and as_num[series.notna()].notna().all():
                median = float(as_num.median()) if as_num.notna().any() else 0.0
                self.numeric_[col] = median
            else:
                cats = sorted({str(v) for v in series.dropna()})
                self.categories_[col] = cats
        return self

    def transform(self, clinical: pd.DataFrame) -> pd.DataFrame:
        """Encode any rows with the training encoding."""
        out: dict[str, Any] = {}
        for col, median in self.numeric_.items():
            values = pd.to_numeric(clinical[col], errors="coerce").astype(float)
            out[f"clinical:{col}"] = values.fillna(median).to_numpy()
        for col, cats in self.categories_.items():
            values = clinical[col].astype(object).where(clinical[col].notna(), None)
            unseen = {str(v) for v in values.dropna()} - set(cats)
            if unseen:
                log.warning("clinical %s: categories unseen in training -> reference", col)
            for cat in cats[1:]:
                out[f"clinical:{col}={cat}"] = (values.astype(str) == cat).astype(float).to_numpy()
        return pd.DataFrame(out, index=clinical.index)


def _indexed(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """Index a table by ``patient_id`` (column or index) as strings; reject duplicates."""
    if "patient_id" in frame.columns:
        frame = frame.set_index("patient_id")
    frame = frame.copy()
    frame.index = frame.index.astype(str)
    frame.index.name = "patient_id"
    dup = frame.index[frame.index.duplicated()].unique().tolist()
    if dup:
        msg = f"{what}: patient(s) listed more than once: {', '.join(dup[:5])}"
        raise ModelError(msg)
    return frame


def _encode(
    features: Mapping[str, pd.DataFrame],
    blocks: Sequence[str],
    ids: Sequence[str],
    encoder: ClinicalEncoder | None,
) -> pd.DataFrame:
    """Feature matrix of ``ids``: ``<block>:<column>`` per block, clinical through ``encoder``."""
    parts = []
    for block in blocks:
        table = features[block]
        if block == "clinical":
            assert encoder is not None
            parts.append(encoder.transform(table.reindex(ids)))
        else:
            parts.append(table.add_prefix(f"{block}:").reindex(ids).astype(float))
    return pd.concat(parts, axis=1)


def _design(
    features: Mapping[str, pd.DataFrame],
    blocks: Sequence[str],
    fit_ids: Sequence[str],
    apply_ids: Sequence[str],
) -> tuple[pd.DataFrame, pd.DataFrame, list[str], ClinicalEncoder | None]:
    """Feature matrices of the fit and apply patients; clinical encoding fit on ``fit_ids``."""
    encoder = None
    if "clinical" in blocks:
        encoder = ClinicalEncoder().fit(features["clinical"].reindex(fit_ids))
    x_fit = _encode(features, blocks, fit_ids, encoder)
    keep = [str(c) for c in x_fit.columns if str(c).startswith("clinical:")]
    return x_fit, _encode(features, blocks, apply_ids, encoder), keep, encoder


@dataclass
class FittedCox:
    """One final net_survival model (fit on all training patients), kept for ``apply``.

    Attributes:
        target: ``os``, ``pfs``...
        model: Model set name (:data:`MODEL_SETS`).
        blocks: Feature blocks of the model set.
        encoder: Clinical encoding fit on the training patients (``None`` without clinical).
        pipeline: The fitted :class:`~oncoflow.survival.CoxPipelineCV`.
        horizons: Days of the ``survival_<t>`` predictions.
        permutation: Negative-control permutation index, ``None`` for the real model.
    """

    target: str
    model: str
    blocks: tuple[str, ...]
    encoder: ClinicalEncoder | None
    pipeline: CoxPipelineCV
    horizons: list[float] = field(default_factory=list)
    permutation: int | None = None

    def required_columns(self) -> dict[str, list[str]]:
        """Block -> raw columns a new cohort must provide (the selected features, clinical)."""
        needed: dict[str, list[str]] = {}
        for column in self.pipeline.pipeline_.selected_:
            block, _, name = str(column).partition(":")
            if block != "clinical":
                needed.setdefault(block, []).append(name)
        if self.encoder is not None:
            needed["clinical"] = sorted([*self.encoder.numeric_, *self.encoder.categories_])
        return needed

    def predict(
        self, features: Mapping[str, pd.DataFrame], patients: Sequence[str]
    ) -> pd.DataFrame:
        """Risk and survival probabilities of ``patients`` with the frozen model.

        Args:
            features: Block -> table indexed by ``patient_id`` (harmonised with the frozen ComBat
                when the model was trained on harmonised features).
            patients: Patients to predict; one missing from a table gets that block imputed
                with the training medians (as in training).

        Returns:
            ``risk`` and ``survival_<t>`` per patient (index ``patient_id``).

        Raises:
            ModelError: A block or a column the model needs is missing (named).
        """
        for block, columns in self.required_columns().items():
            if block not in features:
                msg = f"model {self.model} ({self.target}) needs the {block} features"
                raise ModelError(msg)
            missing = [c for c in columns if c not in features[block].columns]
            if missing:
                msg = (
                    f"model {self.model} ({self.target}): {block} column(s) "
                    f"{', '.join(missing[:5])} missing from the new cohort"
                )
                raise ModelError(msg)
        x = _encode(features, self.blocks, list(patients), self.encoder)
        out = pd.DataFrame({"risk": self.pipeline.predict_risk(x)}, index=list(patients))
        if self.horizons:
            survival = self.pipeline.predict_survival(x, self.horizons)
            for k, h in enumerate(self.horizons):
                out[f"survival_{h:g}"] = survival[:, k]
        out.index.name = "patient_id"
        return out


def _derived_seed(seed: int, *labels: str) -> list[int]:
    return [int(seed)] + [zlib.crc32(label.encode()) for label in labels]


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
    keep_clinical: bool = False,
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
        keep_clinical: Always keep the clinical columns in combined models (seed-002 style).
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
    unknown = sorted(set(features) - set(BLOCKS))
    if unknown:
        msg = f"unknown feature block(s) {', '.join(unknown)}; expected {', '.join(BLOCKS)}"
        raise ModelError(msg)
    tables = {name: _indexed(frame, f"{name} features") for name, frame in features.items()}
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
    outcome_table = _indexed(outcomes, "outcomes")
    split_of = pd.Series(splits).copy()
    split_of.index = split_of.index.astype(str)
    bad = sorted(set(split_of.astype(str)) - {"train", "internal_test", "external_test"})
    if bad:
        msg = f"splits: unknown split(s) {', '.join(bad)}"
        raise ModelError(msg)
    if permute and permutations < 1:
        msg = f"permutations must be >= 1, got {permutations}"
        raise ModelError(msg)
    settings = {**DEFAULT_GRID, **(grid or {})}
    horizons = [float(h) for h in horizons]
    columns = list(PREDICTION_COLUMNS) + [f"survival_{h:g}" for h in horizons]
    columns += [PERMUTATION_COLUMN] if permute else []
    run = functools.partial(
        _run_target,
        tables,
        outcome_table,
        split_of,
        models=list(models),
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
    if n_jobs > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=min(n_jobs, len(tasks))) as pool:
            futures = [pool.submit(run, t, permutation=p) for p, t in tasks]
            results = [future.result() for future in futures]  # in task order
    else:
        results = [run(t, permutation=p) for p, t in tasks]
    rows = [
        part.assign(**{PERMUTATION_COLUMN: p})
        for (p, _), (parts, _) in zip(tasks, results, strict=True)
        for part in parts
    ]
    table = pd.concat(rows, ignore_index=True)[columns] if rows else pd.DataFrame(columns=columns)
    if return_models:
        return table, [model for _, fitted in results for model in fitted]
    return table


def _run_target(
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
    truth = pd.DataFrame({"time": time, "event": event}, index=patients)
    split = split_of.loc[patients].astype(str)
    train = [p for p in patients if split[p] == "train"]
    fit_outcome = truth.copy()
    if permutation is not None:
        rng = np.random.default_rng(_derived_seed(seed, "permute", target, str(permutation)))
        order = rng.permutation(len(train))
        fit_outcome.loc[train] = truth.loc[train].to_numpy()[order]
        log.info("%s: training outcomes permuted (negative control %d)", target, permutation)
    for block, table in tables.items():
        absent = sorted(set(patients) - set(table.index))
        if absent:
            log.warning("%s features missing for %d patient(s): %s", block, len(absent), absent[:5])
    frame = pd.DataFrame({"patient_id": patients, "split": split.to_numpy()})
    strata = {p: int(fit_outcome.loc[p, "event"]) for p in train}
    if folds is None:
        folds = make_folds(frame, strata=strata, repeats=repeats, holdout=holdout, seed=seed)
    else:
        folds = _check_folds(folds, set(split_of.index[split_of.astype(str) == "train"]))
    out = []
    fitted: list[FittedCox] = []
    for name, fold in folds.items():
        fit_ids = [p for p in fold["fit"] if p in set(train)]
        apply_ids = [p for p in fold["apply"] if p in truth.index]
        if name == "final":  # in-sample predictions of training patients are not kept
            apply_ids = [p for p in apply_ids if split[p] != "train"]
        if not apply_ids or not fit_ids:
            continue
        labels = ["validation" if split[p] == "train" else split[p] for p in apply_ids]
        blocks = dict(tables)
        for block, table in (fold_features or {}).get(name, {}).items():
            blocks[block] = _indexed(table, f"{block} features of fold {name}")
        for model in models:
            x_fit, x_apply, keep, encoder = _design(blocks, MODEL_SETS[model], fit_ids, apply_ids)
            cv = CoxPipelineCV(
                inner_folds=inner_folds,
                keep=keep if keep_clinical else (),
                seed=int(np.random.default_rng(_derived_seed(seed, "inner", name)).integers(2**31)),
                **settings,
            )
            y = fit_outcome.loc[fit_ids]
            cv.fit(x_fit, y["time"].to_numpy(), y["event"].to_numpy())
            log.debug("%s %s fold %s: %s", target, model, name, cv.best_)
            out.append(
                pd.DataFrame(
                    {
                        "patient_id": apply_ids,
                        "split": labels,
                        "fold": name,
                        "target": target,
                        "time": truth.loc[apply_ids, "time"].to_numpy(),
                        "event": truth.loc[apply_ids, "event"].to_numpy(),
                        "risk": cv.predict_risk(x_apply),
                        "model": model,
                    }
                )
            )
            if horizons:
                survival = cv.predict_survival(x_apply, horizons)
                for k, h in enumerate(horizons):
                    out[-1][f"survival_{h:g}"] = survival[:, k]
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


def _c_or_nan(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    num, den = concordance_pair_sums(
        np.asarray(time, float), np.asarray(event, int), np.asarray(risk, float), np.ones(len(time))
    )
    return num / den if den > 0 else float("nan")


def _mean_fold_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray, fold: np.ndarray) -> float:
    values = [_c_or_nan(time[fold == f], event[fold == f], risk[fold == f]) for f in set(fold)]
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _json_float(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


def summarize(
    predictions: pd.DataFrame,
    oracle: Mapping[str, Any] | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Harrell C-index with a patient-level bootstrap CI per model x target x split.

    Splits: ``validation`` (mean over the repeats of the per-repeat C; the bootstrap resamples
    patients with all their repeats), ``internal_test``, ``external_test`` and ``test`` (both
    test splits pooled, as the demo oracle is defined). Negative-control predictions (with a
    :data:`PERMUTATION_COLUMN`) score the mean over permutations of the per-permutation C (the
    bootstrap again resamples whole patients) and list the per-permutation values.

    Args:
        predictions: Output of :func:`run_net_survival` (or the same columns from a CSV).
        oracle: ``oracle.json`` content (``{"os": {"metric": "c_index", "value": ...}}``).
        n_boot: Bootstrap replicates.
        seed: Bootstrap seed.
        alpha: 1 - confidence level.

    Returns:
        JSON-ready ``{"metric", "n_boot", "alpha", "oracle", "models": {model: {target: {split:
        {"c_index", "ci_low", "ci_high", "n_patients", "n_events"[, "per_permutation"]}}}}}``
        (NaN -> ``None``; ``n_events`` counts patients, once each).
    """
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        msg = f"predictions lack column(s) {', '.join(missing)}"
        raise ModelError(msg)
    result: dict[str, Any] = {
        "metric": "c_index",
        "n_boot": int(n_boot),
        "alpha": float(alpha),
        "oracle": dict(oracle or {}),
        "models": {},
    }
    preds = predictions.copy()
    preds["fold"] = preds["fold"].astype(str)
    permuted = PERMUTATION_COLUMN in preds.columns and preds[PERMUTATION_COLUMN].notna().any()
    run = preds[PERMUTATION_COLUMN].astype(str) if permuted else pd.Series("", index=preds.index)
    for (model, target), group in preds.groupby(["model", "target"], sort=True):
        entry: dict[str, Any] = {}
        subsets = {
            "validation": group[group["split"] == "validation"],
            "internal_test": group[group["split"] == "internal_test"],
            "external_test": group[group["split"] == "external_test"],
            "test": group[group["split"].isin(["internal_test", "external_test"])],
        }
        for name, rows in subsets.items():
            if rows.empty:
                continue
            t = rows["time"].to_numpy(float)
            e = rows["event"].to_numpy(int)
            r = rows["risk"].to_numpy(float)
            # one C per model run: repeat (validation) x permutation (negative control)
            key = run.loc[rows.index]
            if name == "validation":
                key = rows["fold"] + "/" + key
            if name == "validation" or permuted:
                est, low, high = bootstrap_ci(
                    _mean_fold_c,
                    t,
                    e,
                    r,
                    key.to_numpy(),
                    n=n_boot,
                    seed=seed,
                    alpha=alpha,
                    groups=rows["patient_id"].to_numpy(),
                )
            else:
                est, low, high = bootstrap_ci(_c_or_nan, t, e, r, n=n_boot, seed=seed, alpha=alpha)
            once = rows.drop_duplicates("patient_id")
            entry[name] = {
                "c_index": _json_float(est),
                "ci_low": _json_float(low),
                "ci_high": _json_float(high),
                "n_patients": len(once),
                "n_events": int(once["event"].sum()),
            }
            if permuted:
                entry[name]["per_permutation"] = [
                    _json_float(
                        _mean_fold_c(
                            part["time"].to_numpy(float),
                            part["event"].to_numpy(int),
                            part["risk"].to_numpy(float),
                            key.loc[part.index].to_numpy(),
                        )
                    )
                    for _, part in rows.groupby(PERMUTATION_COLUMN, sort=True)
                ]
        result["models"].setdefault(str(model), {})[str(target)] = entry
    return result


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError as exc:
        msg = f"{path}: {what} file does not exist"
        raise ModelError(msg) from exc
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        msg = f"{path}: cannot read {what} CSV ({exc})"
        raise ModelError(msg) from exc
    if "patient_id" not in frame.columns:
        msg = f"{path}: {what} CSV has no patient_id column"
        raise ModelError(msg)
    frame["patient_id"] = frame["patient_id"].astype(str)
    dup = frame["patient_id"][frame["patient_id"].duplicated()].unique().tolist()
    if dup:
        msg = f"{path}: patient(s) listed more than once: {', '.join(dup[:5])}"
        raise ModelError(msg)
    return frame.set_index("patient_id")


def load_inputs(
    cohort: Path, feature_files: Mapping[str, Path], *, splits: Path | None = None
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.Series, dict[str, Any]]:
    """Read the study inputs: wide feature CSVs and the cohort's clinical, outcome and split tables.

    Args:
        cohort: Cohort folder with ``clinical.csv``, ``outcomes.csv``, ``splits.csv`` (and
            optionally the demo's ``oracle.json``).
        feature_files: Block (``radiomics``, ``pathomics``) -> wide CSV (``patient_id`` + one
            numeric column per feature).
        splits: ``splits.csv`` to use instead of the cohort's (the one the workflow wrote).

    Returns:
        ``(features incl. clinical, outcomes, splits, oracle or {})``.

    Raises:
        ModelError: A missing or unreadable file, an unknown block, non-numeric features or
            duplicated patients (the message names the file and patients).
    """
    features: dict[str, pd.DataFrame] = {}
    for block, path in feature_files.items():
        if block not in BLOCKS or block == "clinical":
            msg = f"{path}: unknown feature block {block!r}; expected radiomics or pathomics"
            raise ModelError(msg)
        table = _read_csv(Path(path), f"{block} features")
        text = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
        if text:
            msg = f"{path}: non-numeric feature column(s) {', '.join(map(str, text[:5]))}"
            raise ModelError(msg)
        features[block] = table
    cohort = Path(cohort)
    features["clinical"] = _read_csv(cohort / "clinical.csv", "clinical")
    outcomes = _read_csv(cohort / "outcomes.csv", "outcomes")
    splits_path = Path(splits) if splits is not None else cohort / "splits.csv"
    split_table = _read_csv(splits_path, "splits")
    if "split" not in split_table.columns:
        msg = f"{splits_path}: no split column"
        raise ModelError(msg)
    oracle: dict[str, Any] = {}
    oracle_path = cohort / "oracle.json"
    if oracle_path.is_file():
        oracle = json.loads(oracle_path.read_text())
    return features, outcomes, split_table["split"], oracle


def load_fold_features(
    folder: Path, blocks: Mapping[str, Path], folds: Mapping[str, Any]
) -> dict[str, dict[str, pd.DataFrame]]:
    """Read per-fold harmonized tables ``<folder>/<block>/<fold>.csv`` for every block and fold.

    Args:
        folder: Root of the harmonize outputs (``results/<study>/harmonize``).
        blocks: The feature blocks in use (their raw tables are replaced fold by fold).
        folds: The folds the tables were fit on (keys ``"0"``, ..., ``"final"``).

    Returns:
        Fold -> block -> table indexed by ``patient_id``.

    Raises:
        ModelError: A table is missing or unreadable (the message names it).
    """
    return {
        fold: {
            block: _read_csv(Path(folder) / block / f"{fold}.csv", f"harmonized {block}")
            for block in blocks
        }
        for fold in folds
    }


APPLY_SPLIT = "apply"
"""``split`` of the predictions of a new cohort (patients never seen in training)."""


def apply_net_survival(
    models: Sequence[FittedCox],
    features: Mapping[str, pd.DataFrame],
    outcomes: pd.DataFrame | None = None,
    *,
    patients: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Predict a new cohort with frozen final models; nothing is refit.

    Args:
        models: Final models saved by training (:func:`run_net_survival` ``return_models``).
        features: Block -> table of the new cohort (``patient_id`` column or index), clinical
            included; radiomics / pathomics harmonised with the frozen ComBat when the models
            were trained on harmonised features.
        outcomes: The new cohort's outcomes (``<target>_time``, ``<target>_event``), if known:
            copied into ``time`` / ``event`` so the evaluation stage can score the predictions;
            ``None`` or a missing target leaves them empty.
        patients: Patients to predict (default: every patient of the clinical table).

    Returns:
        ``(predictions, summary)``: rows of the survival contract with ``split = "apply"`` and
        ``fold = "final"`` (+ ``survival_<t>``, + ``permutation`` for negative-control models);
        the summary lists the patients and, per block, those whose features were missing
        (imputed with training medians, as in training).

    Raises:
        ModelError: No models, or a block / column the models need is missing.
    """
    if not models:
        msg = "no fitted models to apply"
        raise ModelError(msg)
    tables = {name: _indexed(frame, f"{name} features") for name, frame in features.items()}
    if patients is None:
        if "clinical" not in tables:
            msg = "apply: give the patients or a clinical table"
            raise ModelError(msg)
        patients = list(tables["clinical"].index)
    patients = [str(p) for p in patients]
    missing_rows = {
        block: sorted(set(patients) - set(table.index)) for block, table in tables.items()
    }
    for block, absent in missing_rows.items():
        if absent:
            log.warning("%s features missing for %d new patient(s): %s", block, len(absent), absent)
    known = _indexed(outcomes, "outcomes") if outcomes is not None else pd.DataFrame()
    horizons = sorted({h for m in models for h in m.horizons})
    permuted = any(m.permutation is not None for m in models)
    parts = []
    for fitted in models:
        predicted = fitted.predict(tables, patients)
        tcol, ecol = f"{fitted.target}_time", f"{fitted.target}_event"
        has = tcol in known.columns and ecol in known.columns
        part = pd.DataFrame(
            {
                "patient_id": patients,
                "split": APPLY_SPLIT,
                "fold": "final",
                "target": fitted.target,
                "time": known[tcol].reindex(patients).to_numpy(float) if has else np.nan,
                "event": known[ecol].reindex(patients).to_numpy(float) if has else np.nan,
                "risk": predicted["risk"].to_numpy(),
                "model": fitted.model,
            }
        )
        for h in horizons:
            column = f"survival_{h:g}"
            part[column] = predicted[column].to_numpy() if column in predicted else np.nan
        if permuted:
            part[PERMUTATION_COLUMN] = fitted.permutation
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    summary = {
        "n_patients": len(patients),
        "n_models": len(models),
        "targets": sorted({m.target for m in models}),
        "models": sorted({m.model for m in models}),
        "missing_features": {b: v for b, v in missing_rows.items() if v},
        "outcomes_known": bool(table["time"].notna().any()),
    }
    return table, summary


def load_apply_inputs(
    cohort: Path, feature_files: Mapping[str, Path]
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame | None]:
    """Read a new cohort for :func:`apply_net_survival`: features, ``clinical.csv``, outcomes.

    ``outcomes.csv`` is optional (a cohort to predict rarely has them); ``splits.csv`` is not
    read (every patient is new).

    Raises:
        ModelError: A missing or unreadable feature or clinical file, duplicated patients.
    """
    features: dict[str, pd.DataFrame] = {}
    for block, path in feature_files.items():
        features[block] = _read_csv(Path(path), f"{block} features")
    features["clinical"] = _read_csv(Path(cohort) / "clinical.csv", "clinical")
    outcomes_path = Path(cohort) / "outcomes.csv"
    outcomes = _read_csv(outcomes_path, "outcomes") if outcomes_path.is_file() else None
    return features, outcomes
