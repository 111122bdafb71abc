"""Harmonise a study's feature table for one cross-validation fold (the ``harmonize`` rule).

The feature table has one row per patient (or patient x timepoint / ROI) with a ``patient_id``
column, identifier columns kept as they are (:data:`ID_COLUMNS` and any non-numeric column) and
numeric feature columns. ComBat is fit on the rows of the fold's ``fit`` patients only and applied
to every row; the batch of a row is its patient's site from the cohort's ``images.csv`` and the
covariates come from ``clinical.csv``.

Example:
    >>> table, stats = harmonize_fold(  # doctest: +SKIP
    ...     "features.csv", "demo/net_survival", "folds.json", "0", covariates=["age", "sex"]
    ... )
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from oncoflow.artefacts import load_artefact, save_artefact, sha256
from oncoflow.cohort import read_table
from oncoflow.errors import CohortError, HarmonizationError
from oncoflow.formats import read_fold
from oncoflow.harmonize.combat import ComBat
from oncoflow.harmonize.stats import site_effect

log = logging.getLogger(__name__)

ID_COLUMNS: tuple[str, ...] = ("patient_id", "timepoint", "label", "roi", "split", "fold")
"""Columns never harmonised (with every non-numeric column)."""


def _some(values: Sequence[Any], limit: int = 5) -> str:
    values = list(values)
    more = f" (+{len(values) - limit} more)" if len(values) > limit else ""
    return ", ".join(str(v) for v in values[:limit]) + more


def patient_batches(images: pd.DataFrame, column: str = "site", *, source: str = "images.csv"):
    """One batch label per patient from the image table.

    Args:
        images: ``images.csv`` as loaded by :func:`oncoflow.cohort.read_table`.
        column: The batch column (``site``).
        source: File name used in messages.

    Returns:
        A Series indexed by ``patient_id``.

    Raises:
        HarmonizationError: Missing column, a patient without a value, or a patient with several.
    """
    if column not in images.columns:
        msg = f"{source}: no {column!r} column to take the batch from"
        raise HarmonizationError(msg)
    problems: list[str] = []
    labels: dict[str, Any] = {}
    for patient, values in images.groupby("patient_id", sort=True)[column]:
        present = sorted({str(v) for v in values if not _missing(v)})
        if not present:
            problems.append(f"patient {patient}: {source}: no {column!r} value")
        elif len(present) > 1:
            problems.append(
                f"patient {patient}: {source}: several {column!r} values ({', '.join(present)}); "
                "ComBat needs one batch per patient"
            )
        else:
            labels[str(patient)] = present[0]
    if problems:
        raise HarmonizationError("\n".join(problems))
    return pd.Series(labels, name=column, dtype=object)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and not value.strip()


def feature_columns(table: pd.DataFrame) -> list[Hashable]:
    """Numeric columns that are not identifiers: the columns ComBat harmonises."""
    return [
        c
        for c in table.columns
        if c not in ID_COLUMNS
        and pd.api.types.is_numeric_dtype(table[c])
        and not pd.api.types.is_bool_dtype(table[c])
    ]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value


def _stats(features: pd.DataFrame, batch: pd.Series) -> tuple[pd.DataFrame | None, Any]:
    if batch.nunique() < 2:
        return None, None
    table = site_effect(features, batch)
    return table, table.attrs["summary"]


@dataclass
class FrozenComBat:
    """ComBat fit on one fold's training patients, kept to harmonise patients of later cohorts.

    Attributes:
        combat: The fitted :class:`ComBat`.
        features: Feature columns, in the fitted order.
        covariates: ``clinical.csv`` covariate columns the fit used (empty: none).
        batch_column: ``images.csv`` column of the batch.
        unseen: Policy for batches without training patients (``"estimate"`` or ``"error"``).
        fold: The fold it was fit on (``"final"``: all training patients).
    """

    combat: ComBat
    features: list[str]
    covariates: list[str]
    batch_column: str = "site"
    unseen: str = "estimate"
    fold: str = ""

    def transform(
        self,
        table: pd.DataFrame,
        batches: pd.Series,
        covariates: pd.DataFrame | None = None,
        *,
        source: str = "features",
    ) -> tuple[pd.DataFrame, dict[str, Any]]:
        """Harmonise ``table`` with the frozen estimates (nothing is refit).

        Seen batches use their training location/scale; a batch without training patients is
        estimated from its own rows, or refused, as :attr:`unseen` says. A new batch with too
        few rows to estimate its scale (one patient of a new site; two are needed, one with
        ``mean_only``) keeps the pooled training estimates: its rows are left as they are, as
        rows of the reference batch would be, and ``statistics["pooled_batches"]`` names it.

        Returns:
            ``(harmonised table, statistics)``: before/after :func:`site_effect` summaries of the
            rows, the batches seen / estimated, and the fold the estimates come from.

        Raises:
            HarmonizationError: Missing feature columns, batches or covariates, or an unseen
                batch with ``unseen="error"``.
        """
        missing = [c for c in self.features if c not in table.columns]
        if missing:
            msg = (
                f"{source}: {len(missing)} feature column(s) of the trained ComBat are missing "
                f"({_some(missing)}); extract the features with the training settings"
            )
            raise HarmonizationError(msg)
        if self.covariates and covariates is None:
            msg = f"{source}: ComBat was fit with covariates {', '.join(self.covariates)}"
            raise HarmonizationError(msg)
        cov = covariates[self.covariates] if self.covariates and covariates is not None else None
        _, X, batch, cov = _prepare(table, list(self.features), batches, cov, source)
        seen = set(self.combat.batches_)
        fewest = 1 if self.combat.mean_only else 2
        counts = batch[~batch.isin(seen)].value_counts()
        small = [b for b, n in counts.items() if n < fewest] if self.unseen == "estimate" else []
        pooled = {str(b): int(counts[b]) for b in small}
        rows = ~batch.isin(small).to_numpy()
        harmonised = X.copy()
        if rows.any():
            part = self.combat.transform(
                X[rows], batch[rows], cov[rows] if cov is not None else None, unseen=self.unseen
            )
            harmonised.loc[rows, :] = part.to_numpy()
        for name, n in pooled.items():
            log.warning(
                "%s: batch %s has %d row(s), too few to estimate its location and scale: left "
                "at the pooled training estimates (not adjusted)",
                source,
                name,
                n,
            )
        result = table.copy()
        result[self.features] = harmonised[self.features].to_numpy()
        stats: dict[str, Any] = {
            "fold": self.fold,
            "batch_column": self.batch_column,
            "frozen": True,
            "n_rows": len(table),
            "n_features": len(self.features),
            "batches": {str(k): int(v) for k, v in batch.value_counts().items()},
            "estimated_batches": sorted(str(b) for b in set(batch) - seen - set(small)),
            "pooled_batches": pooled,
            "before": {"all": _stats(X, batch)[1]},
            "after": {"all": _stats(harmonised, batch)[1]},
        }
        return result, _jsonable(stats)


def _prepare(
    table: pd.DataFrame,
    features: list[Hashable],
    batches: pd.Series,
    covariates: pd.DataFrame | None,
    source: str,
) -> tuple[pd.Series, pd.DataFrame, pd.Series, pd.DataFrame | None]:
    """Feature matrix, batch and covariates of every row, with named errors."""
    patients = table["patient_id"].astype(str)
    no_batch = sorted(set(patients) - set(batches.index))
    if no_batch:
        msg = f"{source}: patient(s) {_some(no_batch)} have no batch (not in images.csv)"
        raise HarmonizationError(msg)
    labels = patients.copy()
    duplicated = patients.duplicated(keep=False)
    labels[duplicated] = [
        f"{p}#{i}" for p, i in zip(patients[duplicated], table.index[duplicated], strict=True)
    ]
    X = table[features].astype(float).set_axis(pd.Index(labels, name="row"), axis=0)
    batch = pd.Series(batches.loc[patients].to_numpy(), index=X.index, name="batch")
    cov = None
    if covariates is not None and covariates.shape[1]:
        no_cov = sorted(set(patients) - set(covariates.index))
        if no_cov:
            msg = f"{source}: patient(s) {_some(no_cov)} are not in clinical.csv"
            raise HarmonizationError(msg)
        cov = covariates.loc[patients].set_axis(X.index, axis=0)
        for column in cov.columns:
            empty = [p for p, v in zip(patients, cov[column], strict=True) if _missing(v)]
            if empty:
                msg = f"clinical.csv: patient(s) {_some(sorted(set(empty)))}: covariate "
                msg += f"{column!r} is missing"
                raise HarmonizationError(msg)
    return patients, X, batch, cov


def harmonize_table(
    table: pd.DataFrame,
    batches: pd.Series,
    fit_patients: Sequence[str],
    *,
    covariates: pd.DataFrame | None = None,
    parametric: bool = True,
    eb: bool = True,
    mean_only: bool = False,
    ref_batch: str | None = None,
    unseen: str = "estimate",
    source: str = "features",
) -> tuple[pd.DataFrame, dict[str, Any], FrozenComBat]:
    """Fit ComBat on the rows of ``fit_patients`` and harmonise every row of ``table``.

    Args:
        table: Feature table with a ``patient_id`` column.
        batches: Batch label per patient (index ``patient_id``).
        fit_patients: Training patients of the fold.
        covariates: Covariates per patient (index ``patient_id``), or ``None``.
        parametric: See :class:`ComBat`.
        eb: See :class:`ComBat`.
        mean_only: See :class:`ComBat`.
        ref_batch: See :class:`ComBat`.
        unseen: Batches without fit rows: ``"estimate"`` or ``"error"`` (:meth:`ComBat.transform`).
        source: File name used in messages.

    Returns:
        ``(harmonised table with the same columns and row order, statistics dict, the fitted
        model)``; the statistics hold before/after :func:`site_effect` summaries over all,
        ``fit`` and other rows, and per-feature p-values.

    Raises:
        HarmonizationError: Missing patients, batches or covariates, and every ComBat error.
    """
    if "patient_id" not in table.columns:
        msg = f"{source}: no 'patient_id' column"
        raise HarmonizationError(msg)
    features = feature_columns(table)
    if not features:
        msg = f"{source}: no numeric feature columns to harmonise"
        raise HarmonizationError(msg)
    patients, X, batch, cov = _prepare(table, features, batches, covariates, source)
    absent = sorted(set(fit_patients) - set(patients))
    if absent:
        msg = f"{source}: fit patient(s) {_some(absent)} have no row in the feature table"
        raise HarmonizationError(msg)
    fit_rows = patients.isin(set(fit_patients)).to_numpy()

    combat = ComBat(parametric=parametric, eb=eb, mean_only=mean_only, ref_batch=ref_batch)
    combat.fit(X[fit_rows], batch[fit_rows], cov[fit_rows] if cov is not None else None)
    harmonised = combat.transform(X, batch, cov, unseen=unseen)
    frozen = FrozenComBat(
        combat=combat,
        features=[str(c) for c in features],
        covariates=list(cov.columns) if cov is not None else [],
        unseen=unseen,
    )

    result = table.copy()
    result[features] = harmonised.to_numpy()
    stats: dict[str, Any] = {
        "options": {
            "parametric": parametric,
            "eb": eb,
            "mean_only": mean_only,
            "ref_batch": ref_batch,
            "unseen": unseen,
            "covariates": list(cov.columns) if cov is not None else [],
        },
        "n_rows": len(table),
        "n_fit_rows": int(fit_rows.sum()),
        "n_fit_patients": len(set(fit_patients)),
        "n_features": len(features),
        "fit_batches": {str(k): int(v) for k, v in batch[fit_rows].value_counts().items()},
        "constant_features": [str(c) for c in combat.constant_features_],
        "before": {},
        "after": {},
    }
    per_feature: dict[str, pd.Series] = {}
    for when, data in (("before", X), ("after", harmonised)):
        for part, rows in (("all", slice(None)), ("fit", fit_rows), ("apply", ~fit_rows)):
            frame, summary = _stats(data[rows], batch[rows])
            stats[when][part] = summary
            if part == "all" and frame is not None:
                per_feature[f"{when}_kruskal_p"] = frame["kruskal_p"]
                per_feature[f"{when}_anova_p"] = frame["anova_p"]
    stats["features"] = pd.DataFrame(per_feature).to_dict(orient="index") if per_feature else {}
    return result, _jsonable(stats), frozen


def harmonize_fold(
    features_csv: Path | str,
    cohort_dir: Path | str,
    folds_json: Path | str,
    fold: str | int,
    *,
    batch_column: str = "site",
    covariates: Sequence[str] = (),
    parametric: bool = True,
    eb: bool = True,
    mean_only: bool = False,
    ref_batch: str | None = None,
    unseen: str = "estimate",
    model_out: Path | str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read the inputs of one fold and run :func:`harmonize_table`.

    Args:
        features_csv: The study's feature table (CSV, ``patient_id`` + features).
        cohort_dir: Cohort folder (``images.csv`` for the batch, ``clinical.csv`` for covariates).
        folds_json: The study's ``folds.json`` (:func:`oncoflow.formats.read_fold`).
        fold: Fold key.
        batch_column: ``images.csv`` column holding the batch.
        covariates: ``clinical.csv`` columns to preserve.
        parametric: See :class:`ComBat`.
        eb: See :class:`ComBat`.
        mean_only: See :class:`ComBat`.
        ref_batch: See :class:`ComBat`.
        unseen: Batches without fit patients (a held-out external site): ``"estimate"`` their
            location/scale from their own features (see :meth:`ComBat.transform`) or ``"error"``.
        model_out: Where to save the fitted :class:`FrozenComBat` (an artefact of kind
            ``"combat"``, :mod:`oncoflow.artefacts`), for ``apply`` on later cohorts.

    Returns:
        ``(harmonised table, statistics)``; the statistics also name the fold and batch column.

    Raises:
        HarmonizationError: Bad inputs (named file and patient) or a ComBat error.
        CohortError: Unreadable cohort tables.
        FormatError: The folds file is unreadable, breaks its schema or lacks ``fold``.
    """
    table = _read_features(features_csv)
    fit, apply, _ = read_fold(folds_json, fold)
    batches, clinical = cohort_batches(cohort_dir, batch_column, covariates)
    try:
        result, stats, frozen = harmonize_table(
            table,
            batches,
            fit,
            covariates=clinical,
            parametric=parametric,
            eb=eb,
            mean_only=mean_only,
            ref_batch=ref_batch,
            unseen=unseen,
            source=str(features_csv),
        )
    except HarmonizationError as exc:
        raise HarmonizationError(f"fold {fold}: {exc}") from None
    if model_out is not None:
        frozen.batch_column = batch_column
        frozen.fold = str(fold)
        save_artefact(model_out, frozen, kind="combat")
    unknown = sorted(set(apply) - set(table["patient_id"].astype(str)))
    if unknown:
        log.warning("fold %s: apply patient(s) without features: %s", fold, _some(unknown))
    stats = {"fold": str(fold), "batch_column": batch_column, **stats}
    stats["n_apply_patients"] = len(apply)
    return result, stats


def _read_features(features_csv: Path | str) -> pd.DataFrame:
    features_csv = Path(features_csv)
    try:
        return pd.read_csv(features_csv, dtype={"patient_id": str})
    except (OSError, ValueError) as exc:
        msg = f"{features_csv}: cannot read the feature table ({exc})"
        raise HarmonizationError(msg) from exc


def cohort_batches(
    cohort_dir: Path | str, batch_column: str = "site", covariates: Sequence[str] = ()
) -> tuple[pd.Series, pd.DataFrame | None]:
    """Batch per patient (``images.csv``) and covariates (``clinical.csv``) of a cohort folder.

    Raises:
        HarmonizationError: No or several batch values for a patient.
        CohortError: Unreadable tables or covariate columns missing from ``clinical.csv``.
    """
    images = read_table(cohort_dir, "images")
    batches = patient_batches(images, batch_column, source=str(Path(cohort_dir) / "images.csv"))
    if not covariates:
        return batches, None
    clinical = read_table(cohort_dir, "clinical")
    missing = [c for c in covariates if c not in clinical.columns]
    if missing:
        msg = f"{Path(cohort_dir) / 'clinical.csv'}: no column(s) {', '.join(missing)}"
        raise CohortError(msg)
    clinical = clinical.assign(patient_id=clinical["patient_id"].astype(str))
    return batches, clinical.set_index("patient_id")[list(covariates)]


def apply_frozen_combat(
    features_csv: Path | str, cohort_dir: Path | str, model: Path | str
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Harmonise a new cohort's feature table with ComBat estimates saved at training time.

    Args:
        features_csv: The new cohort's feature table (same feature columns as in training).
        cohort_dir: The new cohort's folder (``images.csv`` batch, ``clinical.csv`` covariates).
        model: A :class:`FrozenComBat` artefact written by :func:`harmonize_fold` (``model_out``).

    Returns:
        ``(harmonised table, statistics)`` (see :meth:`FrozenComBat.transform`).

    Raises:
        HarmonizationError: Missing features, batches or covariates (file and patients named).
        OncoflowError: The model file is missing or not a ComBat artefact.
    """
    frozen: FrozenComBat = load_artefact(model, kind="combat")
    table = _read_features(features_csv)
    batches, clinical = cohort_batches(cohort_dir, frozen.batch_column, frozen.covariates)
    result, stats = frozen.transform(table, batches, clinical, source=str(features_csv))
    stats["model"] = {"path": str(model), "sha256": sha256(model)}
    return result, stats
