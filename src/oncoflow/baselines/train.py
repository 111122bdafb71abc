"""The fold protocol of a baseline: fit in each fold, predict its validation and test patients.

For every numbered fold of ``folds.json`` and every target, the inputs are encoded
(:class:`~oncoflow.features.tabular.TabularEncoder`) and the model fit
(:mod:`~oncoflow.baselines.fit`) on the fold's ``fit`` patients only; the fold's ``apply``
patients get ``split = validation`` rows. The test patients (``apply`` of the ``final`` fold) get
``fold = final`` rows made the way the study's own model makes them, so that the paired test on
the same patients compares like with like:

- ``protocol="ensemble"`` (deep and segmentation studies): the mean over the numbered folds'
  models (probabilities, or Cox linear predictors);
- ``protocol="final"`` (survival studies): one model fit on every training patient.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from oncoflow.baselines.design import Target, design_table, per_timepoint, study_targets
from oncoflow.baselines.fit import Fitted, fit_classifier, fit_cox
from oncoflow.baselines.sizes import mask_sizes, mask_statistics
from oncoflow.cohort import read_table
from oncoflow.deep.ensemble import ensemble_predictions
from oncoflow.errors import ModelError
from oncoflow.features.tabular import TabularEncoder
from oncoflow.formats import read_folds

log = logging.getLogger(__name__)

Protocol = Literal["ensemble", "final"]


@dataclass(frozen=True)
class BaselineSpec:
    """What one baseline reads.

    Attributes:
        inputs: Its input blocks (``clinical``, ``size``, ``lesion``).
        clinical: The study's clinical columns.
        targets: The study's ``targets`` (outcomes.csv columns).
        mask_labels: The mask labels whose volumes are size inputs.
        protocol: How test rows are made (see the module docstring).
        horizons: Days at which survival baselines also predict ``survival_<t>``.
        seed: Seed of the inner folds.
    """

    inputs: tuple[str, ...]
    clinical: tuple[str, ...]
    targets: tuple[str, ...]
    mask_labels: tuple[int, ...] = (1,)
    protocol: Protocol = "ensemble"
    horizons: tuple[float, ...] = ()
    seed: int = 0


@dataclass
class _Data:
    design: pd.DataFrame
    outcomes: pd.DataFrame
    split: pd.Series
    by_timepoint: bool
    targets: list[Target]
    fits: list[dict[str, Any]] = field(default_factory=list)


def load_data(spec: BaselineSpec, cohort: Path, splits: Path, converted: Path | None) -> _Data:
    """Read the tables a baseline needs and build its design.

    Args:
        spec: The baseline.
        cohort: The cohort folder (clinical.csv, outcomes.csv).
        splits: The study's splits.csv (written by make_folds).
        converted: The converted images' root (read when ``size`` is an input).
    """
    clinical = read_table(cohort, "clinical")
    outcomes = read_table(cohort, "outcomes")
    outcomes["patient_id"] = outcomes["patient_id"].astype(str)
    split_table = read_table(splits.parent, splits.stem)
    split = split_table.set_index(split_table["patient_id"].astype(str))["split"]
    by_tp = per_timepoint(outcomes)
    if by_tp:
        outcomes["timepoint"] = outcomes["timepoint"].astype(int)
    sizes = None
    if {"size", "lesion"} & set(spec.inputs):
        if converted is None:
            msg = "a size or lesion baseline needs the converted images (--converted)"
            raise ModelError(msg)
        measure = mask_statistics if "lesion" in spec.inputs else mask_sizes
        sizes = measure(converted, outcomes["patient_id"].unique(), spec.mask_labels)
    columns = list(spec.clinical) if "clinical" in spec.inputs else []
    design = design_table(clinical, columns, sizes, by_timepoint=by_tp, keys=outcomes)
    if design.shape[1] == 0:
        msg = f"baseline inputs {spec.inputs} give no column"
        raise ModelError(msg)
    targets = study_targets(outcomes, spec.targets)
    return _Data(design, outcomes.set_index(list(design.index.names)), split, by_tp, targets)


def _labels(data: _Data, target: Target) -> pd.DataFrame:
    """The rows that have the target, with its label column(s)."""
    if target.kind == "survival":
        cols = [f"{target.name}_time", f"{target.name}_event"]
        rows = data.outcomes[cols].dropna()
        return rows.rename(columns={cols[0]: "time", cols[1]: "event"})
    rows = data.outcomes[[target.name]].dropna()
    labels = rows[target.name].astype(str)
    if target.kind == "binary":
        return pd.DataFrame({"y_true": (labels == target.positive).astype(int)}, index=rows.index)
    return pd.DataFrame({"y_true": labels}, index=rows.index)


def _fit(target: Target, X: np.ndarray, labels: pd.DataFrame, seed: int) -> Fitted:
    patients = labels.index.get_level_values("patient_id").astype(str).tolist()
    if target.kind == "survival":
        time, event = labels["time"].to_numpy(float), labels["event"].to_numpy(int)
        return fit_cox(X, time, event, patients, seed)
    return fit_classifier(X, labels["y_true"].to_numpy(), patients, seed)


def _scores(
    target: Target, fitted: Fitted, X: np.ndarray, horizons: Sequence[float]
) -> pd.DataFrame:
    """The score columns of ``predictions.csv`` for rows ``X``."""
    model = fitted.model
    if target.kind == "survival":
        out = {"risk": model.predict_risk(X)}
        if horizons:
            surv = model.predict_survival(X, list(horizons))
            out |= {f"survival_{h:g}": surv[:, i] for i, h in enumerate(horizons)}
        return pd.DataFrame(out)
    proba = model.predict_proba(X)
    if target.kind == "binary":
        classes = list(model.classes_)
        score = proba[:, classes.index(1)] if 1 in classes else np.zeros(len(X))
        return pd.DataFrame({"y_score": score})
    index = {str(c): i for i, c in enumerate(model.classes_)}
    return pd.DataFrame(
        {f"y_score_{c}": proba[:, index[c]] if c in index else 0.0 for c in target.classes}
    )


def _fold_rows(
    data: _Data,
    spec: BaselineSpec,
    target: Target,
    fold: str,
    fit: list[str],
    applies: Sequence[list[str]],
) -> list[pd.DataFrame]:
    """Fit once on ``fit`` patients; predict each patient list of ``applies`` (with labels)."""
    labels = _labels(data, target)
    patient = labels.index.get_level_values("patient_id")
    fit_rows = labels[patient.isin(fit)]
    encoder = TabularEncoder().fit(data.design.loc[fit_rows.index])
    fitted = _fit(target, encoder.transform(data.design.loc[fit_rows.index]), fit_rows, spec.seed)
    data.fits.append({"fold": fold, "target": target.name, "n_fit": len(fit_rows),
                      "columns": encoder.columns_, **fitted.summary()})  # fmt: skip
    out = []
    for apply in applies:
        apply_rows = labels[patient.isin(apply)]
        scores = _scores(target, fitted, encoder.transform(data.design.loc[apply_rows.index]),
                         spec.horizons)  # fmt: skip
        rows = apply_rows.reset_index()
        out.append(pd.concat([rows, scores], axis=1).assign(target=target.name))
    return out


def train_baseline(
    spec: BaselineSpec,
    *,
    cohort: Path,
    splits: Path,
    folds: Path,
    converted: Path | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fit the baseline in every fold and predict validation and test patients.

    Returns:
        ``(predictions, summary)``: the rows of ``predictions.csv`` (``docs/formats.md``) and a
        JSON-ready summary (inputs, protocol, per fold and target the penalty and how it was
        chosen, the encoded columns).
    """
    data = load_data(spec, cohort, splits, converted)
    fold_map = read_folds(folds)
    numbered = sorted((k for k in fold_map if k != "final"), key=int)
    test = fold_map["final"]["apply"]
    parts = []
    for target in data.targets:
        for fold in numbered:
            members = fold_map[fold]
            ensemble = spec.protocol == "ensemble" and bool(test)
            applies = [members["apply"], test] if ensemble else [members["apply"]]
            rows = _fold_rows(data, spec, target, fold, members["fit"], applies)
            parts.append(rows[0].assign(split="validation", fold=fold))
            if ensemble:  # the same fold model scores the test patients (mean over folds below)
                parts.append(rows[1].assign(fold=fold))
        if test and spec.protocol == "final":
            final = fold_map["final"]["fit"]
            rows = _fold_rows(data, spec, target, "final", final, [test])
            parts.append(rows[0].assign(fold="final"))
    predictions = pd.concat(parts, ignore_index=True)
    predictions["patient_id"] = predictions["patient_id"].astype(str)
    test_split = predictions["patient_id"].map(data.split)
    predictions["split"] = predictions["split"].fillna(test_split)
    if spec.protocol == "ensemble":
        predictions = ensemble_predictions([predictions])
    return _ordered(predictions), {
        "inputs": list(spec.inputs),
        "protocol": spec.protocol,
        "targets": {t.name: t.kind for t in data.targets},
        "fits": data.fits,
    }


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    first = ["patient_id", "timepoint", "split", "fold", "target", "y_true", "time", "event"]
    head = [c for c in first if c in frame.columns]
    return frame[head + [c for c in frame.columns if c not in head]]


def summary_settings(spec: BaselineSpec) -> Mapping[str, Any]:
    """The spec as JSON-ready settings (provenance)."""
    return {
        "inputs": list(spec.inputs),
        "clinical": list(spec.clinical),
        "targets": list(spec.targets),
        "mask_labels": list(spec.mask_labels),
        "protocol": spec.protocol,
        "horizons": list(spec.horizons),
        "seed": spec.seed,
    }
