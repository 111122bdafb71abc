"""Read a ``predictions.csv`` and check the contract before anything is scored."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from oncoflow.errors import ModelError

SPLITS: frozenset[str] = frozenset({"validation", "internal_test", "external_test", "apply"})
"""Values of the ``split`` column (training patients appear as ``validation``; ``apply``: a new
cohort predicted by the ``apply`` target)."""


def read_predictions(path: Path) -> pd.DataFrame:
    """A predictions table with ``patient_id`` and ``fold`` as text, checked for leakage.

    Raises:
        ModelError: The file is missing or unreadable, lacks ``patient_id`` / ``split`` /
            ``fold`` / ``target``, has an unknown split, or puts one patient in two splits
            (a patient is in exactly one split; the message names the patients).
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={"patient_id": str, "fold": str})
    except FileNotFoundError as exc:
        msg = f"{path}: predictions file does not exist"
        raise ModelError(msg) from exc
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        msg = f"{path}: cannot read predictions CSV ({exc})"
        raise ModelError(msg) from exc
    missing = [c for c in ("patient_id", "split", "fold", "target") if c not in frame.columns]
    if missing:
        msg = f"{path}: predictions lack column(s) {', '.join(missing)}"
        raise ModelError(msg)
    unknown = sorted(set(frame["split"].astype(str)) - SPLITS)
    if unknown:
        msg = f"{path}: unknown split(s) {', '.join(unknown)}; expected {', '.join(sorted(SPLITS))}"
        raise ModelError(msg)
    per_patient = frame.groupby("patient_id")["split"].nunique()
    leaked = per_patient.index[per_patient > 1].tolist()
    if leaked:
        msg = f"{path}: patient(s) in more than one split: {', '.join(leaked[:5])}"
        raise ModelError(msg)
    return frame
