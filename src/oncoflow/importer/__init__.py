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

from oncoflow.errors import OncoflowError
from oncoflow.importer.index import Record, index_tree
from oncoflow.importer.plan import ImportPlan, Slot, dicom_date, plan_import
from oncoflow.importer.rules import DEFAULT_RULES, Rules, load_rules
from oncoflow.importer.write import cohort_images, load_key, pseudonym, write_cohort

__all__ = [
    "DEFAULT_RULES",
    "ImportPlan",
    "Record",
    "Rules",
    "Slot",
    "cohort_images",
    "import_dicom",
    "index_tree",
    "load_key",
    "load_rules",
    "plan_import",
    "plan_tree",
    "planned_images",
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
        raise OncoflowError(msg)
    rows = clinical[[id_column, column]].dropna()
    rows = rows[rows[column].astype(str).str.strip() != ""]
    pairs = zip(rows[id_column], rows[column], strict=True)
    return {str(p).strip(): dicom_date(d) for p, d in pairs}


def plan_tree(
    tree: Path,
    *,
    rules: Path | None = None,
    clinical: pd.DataFrame | None = None,
    id_column: str = "patient_id",
    anchor_column: str | None = None,
    cache: Path | None = None,
    workers: int = 1,
) -> tuple[ImportPlan, Rules]:
    """Index ``tree`` (through the cache) and plan its import; nothing is written but the cache."""
    loaded = load_rules(rules)
    records = index_tree(Path(tree), cache=cache, workers=workers)
    anchors = _anchors(clinical, id_column, anchor_column)
    return plan_import(records, loaded, anchors=anchors), loaded


def planned_images(settings: Mapping[str, Any], cohort: Path) -> pd.DataFrame:
    """The ``images.csv`` rows an import will write, from a study's ``import`` settings.

    What the workflow plans its jobs from before the import rule has run: the tree is indexed
    (through the cohort folder's index cache, created here on the first run) and planned, the
    pseudonyms come from the key file (created when missing). Nothing else is written.

    Raises:
        OncoflowError: The tree does not exist or holds no image series to import.
    """
    tree = Path(settings["dicom"])
    if not tree.is_dir():
        raise OncoflowError(f"{tree}: the DICOM tree of the import does not exist")
    clinical = settings.get("clinical")
    cohort = Path(cohort)
    cohort.mkdir(parents=True, exist_ok=True)
    plan, _ = plan_tree(
        tree,
        rules=settings.get("rules"),
        clinical=read_id_table(Path(clinical)) if clinical else None,
        id_column=settings.get("id_column", "patient_id"),
        anchor_column=settings.get("anchor_column"),
        cache=cohort / ".dicom_index.json",
    )
    if not plan.slots:
        raise OncoflowError(f"{tree}: no image series to import (run scripts/import_dicom.py)")
    return cohort_images(plan, load_key(Path(settings["key_file"])))


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
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan, loaded = plan_tree(
        tree,
        rules=rules,
        clinical=clinical,
        id_column=id_column,
        anchor_column=anchor_column,
        cache=cache or out / ".dicom_index.json",
        workers=workers,
    )
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
