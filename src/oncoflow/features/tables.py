"""Merge per-patient tidy feature CSVs into one wide study table.

Input: CSVs written by ``scripts/extract_radiomics.py`` / ``scripts/pet_metrics.py`` (one per
patient × timepoint × ROI), each a tidy table with ``patient_id``, optional ``timepoint``,
``feature``, ``value`` and provenance columns (``settings_hash``, ``params_file``, ...).

Output: one row per patient (× timepoint), columns ``patient_id, [timepoint],
<prefix>__<feature>, ...``; provenance columns are dropped after checking that every input was
computed with the same settings (one ``settings_hash``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from oncoflow.errors import FeatureError

log = logging.getLogger(__name__)

KEY_COLUMNS: tuple[str, ...] = ("patient_id", "timepoint")
"""Row keys of the wide table (``timepoint`` only when the inputs have it)."""

SEPARATOR = "__"
"""Between the source prefix and the feature name: ``radiomics__original_firstorder_Mean``."""


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FeatureError(f"{path}: feature table does not exist")
    try:
        table = pd.read_csv(path, float_precision="round_trip", dtype={"patient_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FeatureError(f"{path}: not a readable feature CSV: {exc}") from exc
    missing = [c for c in ("patient_id", "feature", "value") if c not in table.columns]
    if missing:
        raise FeatureError(
            f"{path}: feature table lacks column(s) {', '.join(missing)} "
            "(write it with --patient so that it can be merged)"
        )
    if table.empty:
        raise FeatureError(f"{path}: feature table has no rows")
    if table["patient_id"].isna().any():
        raise FeatureError(f"{path}: empty patient_id")
    return table


def _check_settings_hash(paths: list[Path], tables: list[pd.DataFrame]) -> None:
    """Raise when the inputs carry more than one ``settings_hash`` (naming the first two)."""
    hashes: dict[str, Path] = {}
    for path, table in zip(paths, tables, strict=True):
        if "settings_hash" in table.columns:
            for h in table["settings_hash"].dropna().astype(str).unique():
                hashes.setdefault(h, path)
    if len(hashes) > 1:
        first, second = list(hashes.items())[:2]
        raise FeatureError(
            f"{second[1]}: settings hash {second[0]} differs from {first[0]} of {first[1]}: "
            "features computed with different settings cannot be merged"
        )


def _row_keys(paths: list[Path], tables: list[pd.DataFrame]) -> list[str]:
    """Return the row keys: ``patient_id``, plus ``timepoint`` when every input has one.

    Raises:
        FeatureError: Only some inputs have a ``timepoint`` column.
    """
    with_tp = ["timepoint" in t.columns for t in tables]
    if any(with_tp) and not all(with_tp):
        odd = paths[with_tp.index(False)]
        raise FeatureError(f"{odd}: no timepoint column while other feature tables have one")
    return [k for k in KEY_COLUMNS if k != "timepoint" or all(with_tp)]


def _long_table(paths: list[Path], tables: list[pd.DataFrame], keys: list[str]) -> pd.DataFrame:
    """Concatenate the inputs (keys, feature, value, source file), each feature once per row key.

    Raises:
        FeatureError: A feature is given twice for the same row key.
    """
    long = pd.concat(
        [
            t.assign(_source=str(p))[[*keys, "feature", "value", "_source"]]
            for p, t in zip(paths, tables, strict=True)
        ],
        ignore_index=True,
    )
    dup = long.duplicated([*keys, "feature"], keep=False)
    if dup.any():
        row = long[dup].iloc[0]
        files = sorted(set(long[dup & (long["feature"] == row["feature"])]["_source"]))
        where = ", ".join(f"{k} {row[k]}" for k in keys)
        raise FeatureError(
            f"{files[-1]}: feature {row['feature']} given twice for {where} "
            f"(also in {files[0]}); merge different ROIs under different prefixes"
        )
    return long


def merge_features(
    paths: Iterable[Path],
    *,
    out: Path | None = None,
    prefix: str = "radiomics",
) -> pd.DataFrame:
    """Merge per-patient tidy feature CSVs into one wide table.

    Args:
        paths: Tidy CSVs (``patient_id``, optional ``timepoint``, ``feature``, ``value`` and
            provenance columns), typically one per patient × timepoint.
        out: Where to write the wide table as CSV (round-trip float precision); ``None`` =
            do not write.
        prefix: Source name put before every feature column, e.g. ``radiomics`` or ``pet``.

    Returns:
        One row per ``patient_id`` (× ``timepoint``), sorted; then ``<prefix>__<feature>``
        columns in the order the features first appear. A feature missing for some patient is
        NaN (logged as a warning).

    Raises:
        FeatureError: No input, a missing file or column, inputs whose ``settings_hash`` differ
            (features computed with different settings must not be mixed), a timepoint column
            in only some inputs, or one feature given twice for the same patient × timepoint.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise FeatureError("no feature tables to merge")
    if not prefix or SEPARATOR in prefix:
        raise FeatureError(f"invalid feature prefix {prefix!r}: non-empty, without {SEPARATOR!r}")
    tables = [_read(p) for p in paths]
    _check_settings_hash(paths, tables)
    keys = _row_keys(paths, tables)
    long = _long_table(paths, tables, keys)
    order = list(dict.fromkeys(long["feature"]))
    wide = long.pivot(index=keys, columns="feature", values="value")
    wide = wide.reindex(columns=order).sort_index()
    n_missing = int(wide.isna().sum().sum() - long["value"].isna().sum())
    if n_missing:
        log.warning("%s: %d patient-feature values missing (NaN) after merge", prefix, n_missing)
    wide.columns = [f"{prefix}{SEPARATOR}{c}" for c in wide.columns]
    wide = wide.reset_index()
    wide.columns.name = None
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        wide.to_csv(out, index=False)
        log.info(
            "merged %d tables into %s (%d rows, %d features)",
            len(paths),
            out,
            len(wide),
            len(order),
        )
    return wide
