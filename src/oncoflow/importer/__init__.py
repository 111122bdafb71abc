"""Build a cohort folder from a DICOM tree of any layout (``scripts/import_dicom.py``).

Modules:
    index: headers of every file, in parallel, with an index cache.
    rules: ordered, configurable rules that classify series and name mask labels.
    plan: which series fill which slot, time points, mask links, and everything skipped.
    write: the cohort under pseudonyms (keyed hash), re-keyed tables, ``import_report.json``.

Example:
    >>> import_dicom(Path("export"), Path("cohort"), Path("keys/k.txt"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from oncoflow.importer.index import Record, index_tree
from oncoflow.importer.plan import ImportPlan, Slot, dicom_date, plan_import
from oncoflow.importer.rules import DEFAULT_RULES, Rules, load_rules
from oncoflow.importer.write import load_key, pseudonym, write_cohort

__all__ = [
    "DEFAULT_RULES",
    "ImportPlan",
    "Record",
    "Rules",
    "Slot",
    "import_dicom",
    "index_tree",
    "load_key",
    "load_rules",
    "plan_import",
    "pseudonym",
    "read_id_table",
    "write_cohort",
]


def read_id_table(path: Path) -> pd.DataFrame:
    """A clinical or outcome table (CSV, or TSV by its ``.tsv`` / ``.txt`` suffix) as text.

    Every cell stays the text it was (no number parsing), so the re-keyed copy in the cohort
    holds the same values.
    """
    sep = "\t" if Path(path).suffix.lower() in (".tsv", ".txt") else ","
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)


def _anchors(
    clinical: pd.DataFrame | None, id_column: str, column: str | None
) -> Mapping[str, str]:
    """Baseline anchor dates (``YYYYMMDD``) by original patient ID from a clinical column."""
    if column is None:
        return {}
    if clinical is None or column not in clinical.columns:
        msg = f"anchor column {column!r} needs a clinical table that has it"
        raise ValueError(msg)
    rows = clinical[[id_column, column]].dropna()
    return {
        str(p).strip(): dicom_date(d) for p, d in zip(rows[id_column], rows[column], strict=True)
    }


def import_dicom(
    tree: Path,
    out: Path,
    key_file: Path,
    *,
    rules: Path | None = None,
    clinical: pd.DataFrame | None = None,
    outcomes: pd.DataFrame | None = None,
    id_column: str = "patient_id",
    anchor_column: str | None = None,
    cache: Path | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Index ``tree``, plan the cohort and write it to ``out``; return the import report.

    Args:
        tree: The DICOM tree (any layout).
        out: The cohort folder to write.
        key_file: Pseudonymisation key (created when missing); the ID mapping is written beside
            it. Keep it outside ``out`` and outside ``results/``.
        rules: Rule file (default :data:`DEFAULT_RULES`).
        clinical: Clinical table keyed by the original ``id_column``, re-keyed into ``out``.
        outcomes: Outcome table, the same.
        id_column: Column of the original patient IDs in those tables.
        anchor_column: Clinical date column whose date anchors time point 0.
        cache: Index cache file (default ``out/.dicom_index.json``).
        workers: Processes reading headers.
    """
    loaded = load_rules(rules)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = index_tree(Path(tree), cache=cache or out / ".dicom_index.json", workers=workers)
    plan = plan_import(records, loaded, anchors=_anchors(clinical, id_column, anchor_column))
    return write_cohort(
        plan,
        Path(tree),
        out,
        Path(key_file),
        clinical=clinical,
        outcomes=outcomes,
        id_column=id_column,
        rules_source=loaded.source,
    )
