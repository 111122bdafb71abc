"""Read the net_survival study inputs: feature CSVs, the cohort tables, per-fold harmonized tables.

Every table is keyed by ``patient_id`` (read as strings); errors name the file and patients.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from oncoflow.errors import ModelError
from oncoflow.survival.design import BLOCKS


def read_table(path: Path, what: str) -> pd.DataFrame:
    """Read a CSV keyed by ``patient_id`` (kept as strings) and index it by that column.

    Args:
        path: The CSV file.
        what: What the table holds, for error messages (``"clinical"``, ``"radiomics features"``).

    Returns:
        The table indexed by ``patient_id``.

    Raises:
        ModelError: Missing or unreadable file, no ``patient_id`` column, duplicated patients.
    """
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
        table = read_table(Path(path), f"{block} features")
        text = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
        if text:
            msg = f"{path}: non-numeric feature column(s) {', '.join(map(str, text[:5]))}"
            raise ModelError(msg)
        features[block] = table
    cohort = Path(cohort)
    features["clinical"] = read_table(cohort / "clinical.csv", "clinical")
    outcomes = read_table(cohort / "outcomes.csv", "outcomes")
    splits_path = Path(splits) if splits is not None else cohort / "splits.csv"
    split_table = read_table(splits_path, "splits")
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
            block: read_table(Path(folder) / block / f"{fold}.csv", f"harmonized {block}")
            for block in blocks
        }
        for fold in folds
    }
