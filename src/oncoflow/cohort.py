"""Load the four tables of a cohort folder with the types their schemas declare.

A cohort is a folder holding ``images.csv``, ``clinical.csv``, ``outcomes.csv`` and, optionally,
``splits.csv`` (see ``schemas/<table>.schema.yaml``). Paths inside the tables are relative to the
cohort folder unless absolute. This module only reads; :mod:`oncoflow.validate` checks the content.

Example:
    >>> cohort = load_cohort(Path("demo/net_survival"))  # doctest: +SKIP
    >>> cohort.images[["patient_id", "modality", "path"]].head()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.errors import CohortError
from oncoflow.schemas import TABLES, load_schema

log = logging.getLogger(__name__)

REQUIRED_TABLES: tuple[str, ...] = ("images", "clinical", "outcomes")
"""Tables every cohort must have; ``splits`` is optional."""

MISSING_TOKENS: frozenset[str] = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "None"})
"""Cell contents read as a missing value (``None`` / ``NaN``) in every column but ``patient_id``."""


@dataclass
class Cohort:
    """The tables of one cohort folder.

    Attributes:
        root: The cohort folder; relative paths in ``images`` resolve against it.
        images: ``images.csv``, one row per image.
        clinical: ``clinical.csv``, one row per patient.
        outcomes: ``outcomes.csv``, one row per patient (or patient x timepoint).
        splits: ``splits.csv``, or ``None`` when the cohort has none.
    """

    root: Path
    images: pd.DataFrame
    clinical: pd.DataFrame
    outcomes: pd.DataFrame
    splits: pd.DataFrame | None = None

    def table(self, name: str) -> pd.DataFrame | None:
        """Return the table called ``name`` (``"images"``, ``"clinical"``, ...)."""
        if name not in TABLES:
            msg = f"unknown cohort table {name!r}; expected one of {', '.join(TABLES)}"
            raise KeyError(msg)
        return getattr(self, name)


def table_path(cohort_dir: Path | str, name: str) -> Path:
    """Return the path of ``<cohort_dir>/<name>.csv``."""
    return Path(cohort_dir) / f"{name}.csv"


def resolve(cohort_dir: Path | str, path: str | Path) -> Path:
    """Resolve a path found in a cohort table.

    Args:
        cohort_dir: The cohort folder.
        path: A path as written in the table; ``~`` is expanded.

    Returns:
        ``path`` itself when absolute, else ``cohort_dir / path``.
    """
    p = Path(str(path).strip()).expanduser()
    return p if p.is_absolute() else Path(cohort_dir) / p


def is_missing(value: Any) -> bool:
    """Return True for ``None``, float NaN, ``pandas.NA``/``NaT`` and blank strings."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    if isinstance(value, str):
        return value.strip() == ""
    return False


def _schema_types(prop: Mapping[str, Any]) -> set[str]:
    kind = prop.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def _parse_int(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value != int(value):
        return None
    return int(value)


def _parse_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _typed_column(values: pd.Series, types: set[str]) -> pd.Series:
    """Convert a column of stripped strings / None to the dtype its schema types allow.

    Integer columns become pandas ``Int64`` (missing = ``<NA>``), number columns ``float64``
    (missing = NaN). When a value does not parse, the column keeps its strings so that schema
    validation reports the offending value verbatim. Columns without a schema entry are inferred
    (integer, then number, else string).
    """
    present = values.dropna()
    if "integer" in types or not types:
        parsed = [_parse_int(v) for v in present]
        if all(p is not None for p in parsed):
            out = pd.Series(pd.NA, index=values.index, dtype="Int64")
            out[present.index] = parsed
            return out
    if "number" in types or "integer" in types or not types:
        parsed_f = [_parse_float(v) for v in present]
        if all(p is not None for p in parsed_f):
            out_f = pd.Series(np.nan, index=values.index, dtype="float64")
            out_f[present.index] = parsed_f
            return out_f
    return values.astype(object).where(values.notna(), None)


def read_table(cohort_dir: Path | str, name: str) -> pd.DataFrame:
    """Read ``<cohort_dir>/<name>.csv`` with the column types of ``schemas/<name>.schema.yaml``.

    Every cell is read as text first (so IDs like ``007`` keep their zeros), then converted:
    ``patient_id`` stays a string, blank cells (and ``NA``, ``NaN``, ``null``) become missing,
    integer columns become ``Int64`` (ints kept ints even with gaps), number columns ``float64``,
    string columns ``object`` with ``None`` for missing. Columns the schema does not know are
    kept (validation reports them) with an inferred type.

    Args:
        cohort_dir: The cohort folder.
        name: Table name, one of ``images``, ``clinical``, ``outcomes``, ``splits``.

    Returns:
        The table; column names are stripped of surrounding blanks.

    Raises:
        CohortError: When the file does not exist or is not a readable CSV.
    """
    path = table_path(cohort_dir, name)
    if not path.is_file():
        msg = f"{path}: table {name}.csv does not exist"
        raise CohortError(msg)
    try:
        raw = pd.read_csv(
            path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig"
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = f"{path}: cannot read {name}.csv as CSV ({first})"
        raise CohortError(msg) from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    props = load_schema(name).get("properties", {}) if name in TABLES else {}
    table = pd.DataFrame(index=raw.index)
    for column in raw.columns:
        text = raw[column].astype(str).str.strip()
        if column == "patient_id":
            table[column] = text.where(text != "", None).astype(object)
            continue
        text = text.where(~text.isin(MISSING_TOKENS), None)
        table[column] = _typed_column(text, _schema_types(props.get(column, {})))
    return table


def load_cohort(cohort_dir: Path | str) -> Cohort:
    """Read all tables of a cohort folder.

    Args:
        cohort_dir: The cohort folder.

    Returns:
        The :class:`Cohort`; ``splits`` is ``None`` when ``splits.csv`` does not exist.

    Raises:
        CohortError: When a required table is missing or unreadable (all such tables are named,
            one per line).
    """
    root = Path(cohort_dir)
    tables: dict[str, pd.DataFrame | None] = {}
    errors: list[str] = []
    for name in TABLES:
        if name not in REQUIRED_TABLES and not table_path(root, name).exists():
            tables[name] = None
            continue
        try:
            tables[name] = read_table(root, name)
        except CohortError as exc:
            errors.append(str(exc))
    if errors:
        raise CohortError("\n".join(errors))
    return Cohort(root=root, **tables)  # type: ignore[arg-type]


def _to_native(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _coerce(value: Any, types: set[str]) -> Any:
    """Coerce one cell to the first schema type it fits; return it unchanged when none fits."""
    if is_missing(value):
        return None
    value = _to_native(value)
    if isinstance(value, bool):
        return value
    if "integer" in types:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and (parsed := _parse_int(value.strip())) is not None:
            return parsed
    if "number" in types:
        if isinstance(value, int | float):
            return value
        if isinstance(value, str) and (parsed_f := _parse_float(value.strip())) is not None:
            return parsed_f
    if "string" in types:
        if isinstance(value, str):
            return value
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)
    return value


def row_to_record(row: Mapping[str, Any] | pd.Series, schema: Mapping[str, Any]) -> dict[str, Any]:
    """Turn one table row into a JSON-like dict that jsonschema can validate.

    Missing cells become ``None`` (the schemas allow ``null`` where a value is optional); numpy
    scalars become Python scalars; a value is converted to the schema's type where that is
    lossless (``"3"`` or ``3.0`` to ``3`` for an integer column, ``7`` to ``"7"`` for a string
    column). Values that do not fit are passed through unchanged so that the validator reports
    them; columns the schema does not know are kept as they are.

    Args:
        row: One row (``Series`` or mapping column -> value).
        schema: The table's JSON Schema (``oncoflow.schemas.load_schema(name)``).

    Returns:
        Column -> coerced value.
    """
    props = schema.get("properties", {})
    items = row.items()
    record: dict[str, Any] = {}
    for column, value in items:
        key = str(column)
        types = _schema_types(props.get(key, {}))
        record[key] = _coerce(value, types) if types else (None if is_missing(value) else value)
        record[key] = _to_native(record[key])
    return record
