"""Apply the frozen net_survival final models to a new cohort (nothing is refit).

:func:`apply_net_survival` predicts every patient of a new cohort with the :class:`FittedCox`
models training saved and writes rows of the survival contract (``docs/formats.md``) with
``split = "apply"``; :func:`load_apply_inputs` reads such a cohort.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.errors import ModelError
from oncoflow.splits import APPLY_SPLIT
from oncoflow.survival.design import FittedCox, indexed
from oncoflow.survival.inputs import read_table
from oncoflow.survival.protocol import PERMUTATION_COLUMN

log = logging.getLogger("oncoflow.survival.protocol")  # the protocol's log lines, unchanged


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
    tables = {name: indexed(frame, f"{name} features") for name, frame in features.items()}
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
    known = indexed(outcomes, "outcomes") if outcomes is not None else pd.DataFrame()
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
        features[block] = read_table(Path(path), f"{block} features")
    features["clinical"] = read_table(Path(cohort) / "clinical.csv", "clinical")
    outcomes_path = Path(cohort) / "outcomes.csv"
    outcomes = read_table(outcomes_path, "outcomes") if outcomes_path.is_file() else None
    return features, outcomes
