"""Checks on the cohort tables: schema, unique IDs, references, splits, outcomes, clinical.

Every function takes already-read tables (:func:`oncoflow.cohort.read_table`) and returns a list of
:class:`~oncoflow.validate.report.Problem`; none of them raises on bad data.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import jsonschema
import pandas as pd

from oncoflow.cohort import is_missing, row_to_record
from oncoflow.schemas import load_schema
from oncoflow.validate.report import ERROR, WARNING, Problem

LONGITUDINAL_TARGETS: frozenset[str] = frozenset({"progression_next"})
"""Per-timepoint targets that are undefined (may be empty) at a patient's last timepoint."""

_ROW_LEVEL_DROP = ("required", "additionalProperties", "dependentRequired")


def _csv(name: str) -> str:
    return f"{name}.csv"


def _pid(value: Any) -> str | None:
    return None if is_missing(value) else str(value)


def _line(index: Any) -> int:
    """Line number in the CSV of a row with 0-based position ``index`` (header = line 1)."""
    return int(index) + 2


def _fmt(value: Any) -> str:
    """Show a cell value in a message: strings quoted, numbers plain, missing as ``empty``."""
    if hasattr(value, "item"):
        value = value.item()
    if value is None:
        return "empty"
    return repr(value)


def _fmt_choices(choices: Iterable[Any]) -> str:
    return ", ".join("empty" if c is None else str(c) for c in choices)


def check_columns(name: str, table: pd.DataFrame) -> list[Problem]:
    """Check a table's header against its schema: unknown, missing and dependent columns.

    Reported once per table (not per row). Unknown columns are errors because the schemas set
    ``additionalProperties: false``; the message names the column and a sample value.

    Args:
        name: Table name (``"images"``, ...).
        table: The table as read by :func:`oncoflow.cohort.read_table`.

    Returns:
        Problems with ``check="schema"`` and ``file="<name>.csv"``.
    """
    schema = load_schema(name)
    props = schema.get("properties", {})
    file = _csv(name)
    found: list[Problem] = []
    present = set(table.columns)
    for column in table.columns:
        if column in props:
            continue
        values = table[column].dropna()
        sample = ""
        if len(values):
            idx = values.index[0]
            who = _pid(table.at[idx, "patient_id"]) if "patient_id" in table else None
            sample = f" (value {_fmt(values.iloc[0])} on line {_line(idx)}" + (
                f", patient {who})" if who else ")"
            )
        message = f"unknown column '{column}'{sample}; allowed columns: {', '.join(props)}"
        found.append(Problem(None, file, "schema", message, column=column))
    for column in schema.get("required", []):
        if column not in present:
            message = f"missing required column '{column}'"
            found.append(Problem(None, file, "schema", message, column=column))
    for column, needs in schema.get("dependentRequired", {}).items():
        if column not in present:
            continue
        for other in needs:
            if other not in present:
                message = f"column '{column}' needs column '{other}' as well"
                found.append(Problem(None, file, "schema", message, column=other))
    return found


def _describe_error(
    error: jsonschema.ValidationError, record: Mapping[str, Any]
) -> tuple[str, str]:
    """Return (column, message) for one jsonschema error on a row record."""
    column = str(error.path[0]) if error.path else "?"
    value = record.get(column, error.instance)
    kind = error.validator
    spec = error.validator_value
    if kind == "enum":
        text = f"value {_fmt(value)} is not one of {_fmt_choices(spec)}"
    elif kind == "type":
        wanted = spec if isinstance(spec, str) else " or ".join(s for s in spec if s != "null")
        if value is None:
            text = "is empty but a value is required"
        else:
            text = f"value {_fmt(value)} is not of type {wanted}"
    elif kind in ("minimum", "exclusiveMinimum"):
        negative = " (negative)" if spec == 0 and isinstance(value, int | float) else ""
        text = f"value {_fmt(value)} is below the minimum {spec}{negative}"
    elif kind in ("maximum", "exclusiveMaximum"):
        text = f"value {_fmt(value)} is above the maximum {spec}"
    elif kind == "pattern":
        text = f"value {_fmt(value)} does not match the pattern {spec}"
    elif kind == "minLength":
        text = "is empty but a value is required"
    else:
        text = error.message
    separator = " " if text.startswith("is ") else ": "
    return column, f"column '{column}'{separator}{text}"


def check_schema(name: str, table: pd.DataFrame) -> list[Problem]:
    """Validate every row of a table against ``schemas/<name>.schema.yaml``.

    Header-level findings come from :func:`check_columns`; each row is then validated (Draft
    2020-12) on its known columns, and each violation becomes one problem naming line, column and
    value, e.g. ``line 3: column 'modality': value 'XR' is not one of CT, PET, MR, WSI``.

    Args:
        name: Table name.
        table: The table as read by :func:`oncoflow.cohort.read_table`.

    Returns:
        Problems with ``check="schema"``.
    """
    schema = load_schema(name)
    found = check_columns(name, table)
    row_schema = {k: v for k, v in schema.items() if k not in _ROW_LEVEL_DROP}
    validator = jsonschema.Draft202012Validator(row_schema)
    known = [c for c in table.columns if c in schema.get("properties", {})]
    file = _csv(name)
    for index, row in table[known].iterrows():
        record = row_to_record(row, schema)
        errors = sorted(validator.iter_errors(record), key=lambda e: list(e.path))
        for error in errors:
            column, text = _describe_error(error, record)
            patient = _pid(record.get("patient_id"))
            message = f"line {_line(index)}: {text}"
            found.append(Problem(patient, file, "schema", message, column=column))
    return found


def _patients(table: pd.DataFrame | None) -> set[str]:
    if table is None or "patient_id" not in table:
        return set()
    return {str(p) for p in table["patient_id"].dropna()}


def _duplicates(
    table: pd.DataFrame, keys: Sequence[str]
) -> list[tuple[tuple[Any, ...], list[int]]]:
    """Return (key values, CSV line numbers) for every key combination found on several rows."""
    sub = table[list(keys)].astype(object).where(table[list(keys)].notna(), None)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, values in zip(sub.index, sub.itertuples(index=False, name=None), strict=True):
        groups.setdefault(tuple(values), []).append(_line(index))
    return [(key, lines) for key, lines in groups.items() if len(lines) > 1 and key[0] is not None]


def check_unique_ids(
    images: pd.DataFrame | None,
    clinical: pd.DataFrame | None,
    outcomes: pd.DataFrame | None,
) -> list[Problem]:
    """Check the uniqueness rules of the data model.

    ``patient_id`` is unique in ``clinical.csv``; ``(patient_id, timepoint, modality, series)`` is
    unique in ``images.csv``; ``outcomes.csv`` has one row per patient, or per patient x timepoint
    when its ``timepoint`` column is filled. (Uniqueness in ``splits.csv`` is :func:`check_splits`.)

    Returns:
        Problems with ``check="unique_ids"``.
    """
    found: list[Problem] = []
    if clinical is not None and "patient_id" in clinical:
        for (pid,), lines in _duplicates(clinical, ["patient_id"]):
            message = f"duplicate patient_id on lines {', '.join(map(str, lines))}"
            found.append(Problem(str(pid), "clinical.csv", "unique_ids", message))
    image_keys = ["patient_id", "timepoint", "modality", "series"]
    if images is not None and all(k in images for k in image_keys):
        for (pid, tp, modality, series), lines in _duplicates(images, image_keys):
            message = (
                f"duplicate image (timepoint {tp}, modality {modality}, series {series}) "
                f"on lines {', '.join(map(str, lines))}"
            )
            found.append(Problem(str(pid), "images.csv", "unique_ids", message))
    if outcomes is not None and "patient_id" in outcomes:
        longitudinal = "timepoint" in outcomes and outcomes["timepoint"].notna().any()
        keys = ["patient_id", "timepoint"] if longitudinal else ["patient_id"]
        for key, lines in _duplicates(outcomes, keys):
            where = f" at timepoint {key[1]}" if longitudinal else ""
            message = (
                f"duplicate outcome row{where} on lines {', '.join(map(str, lines))} "
                f"(one row per patient{' x timepoint' if longitudinal else ''})"
            )
            found.append(Problem(str(key[0]), "outcomes.csv", "unique_ids", message))
    return found


def check_references(
    images: pd.DataFrame | None,
    clinical: pd.DataFrame | None,
    outcomes: pd.DataFrame | None,
) -> list[Problem]:
    """Check referential integrity between the tables.

    Every patient with images has a ``clinical.csv`` row and an ``outcomes.csv`` row, and every
    patient of those tables has at least one image. A table that could not be read is skipped.

    Returns:
        Problems with ``check="references"``.
    """
    if images is None:
        return []
    found: list[Problem] = []
    with_images = _patients(images)
    for name, table in (("clinical", clinical), ("outcomes", outcomes)):
        if table is None or "patient_id" not in table:
            continue
        listed = _patients(table)
        for pid in sorted(with_images - listed):
            message = f"patient has images but no row in {name}.csv"
            found.append(Problem(pid, f"{name}.csv", "references", message))
        for pid in sorted(listed - with_images):
            message = f"patient is in {name}.csv but has no image in images.csv"
            found.append(Problem(pid, f"{name}.csv", "references", message))
    return found


def check_splits(splits: pd.DataFrame | None, images: pd.DataFrame | None) -> list[Problem]:
    """Check that each patient is in exactly one split.

    A patient listed under two different splits is an error (a leak between training and test),
    a repeated identical row too; every patient of ``images.csv`` must be in ``splits.csv``.
    Patients of ``splits.csv`` without images are reported as warnings. Nothing is checked when
    the cohort has no ``splits.csv`` (oncoflow then makes one).

    Returns:
        Problems with ``check="splits"``.
    """
    if splits is None or "patient_id" not in splits:
        return []
    found: list[Problem] = []
    file = "splits.csv"
    has_split = "split" in splits
    for (pid,), lines in _duplicates(splits, ["patient_id"]):
        rows = splits[splits["patient_id"] == pid]
        names = sorted({str(s) for s in rows["split"].dropna()}) if has_split else []
        on_lines = f"lines {', '.join(map(str, lines))}"
        if len(names) > 1:
            message = f"patient is in more than one split ({', '.join(names)}; {on_lines})"
        else:
            message = f"duplicate patient_id in splits.csv ({on_lines})"
        found.append(Problem(str(pid), file, "splits", message))
    listed = _patients(splits)
    with_images = _patients(images)
    for pid in sorted(with_images - listed):
        message = "patient has images but no row in splits.csv"
        found.append(Problem(pid, file, "splits", message))
    for pid in sorted(listed - with_images):
        message = "patient is in splits.csv but has no image in images.csv"
        found.append(Problem(pid, file, "splits", message, severity=WARNING))
    return found


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_outcomes(outcomes: pd.DataFrame | None, *, targets: Sequence[str] = ()) -> list[Problem]:
    """Check outcome values and the declared targets.

    * every ``*_time`` column: numeric and ≥ 0 (days from baseline);
    * every ``*_event`` column: 0 or 1 (1 = event observed, 0 = censored);
    * every declared target is a column, and non-missing for every patient; for survival targets
      the partner column (``os_time`` ↔ ``os_event``) must be filled too. For longitudinal targets
      (:data:`LONGITUDINAL_TARGETS`, with a ``timepoint`` column) only the patient's last
      timepoint may be empty; other targets need one non-missing value per patient.

    Args:
        outcomes: ``outcomes.csv`` as read by :func:`oncoflow.cohort.read_table`.
        targets: The study's target columns.

    Returns:
        Problems with ``check="outcomes"``.
    """
    if outcomes is None:
        return []
    file = "outcomes.csv"
    found: list[Problem] = []
    for column in outcomes.columns:
        is_time, is_event = column.endswith("_time"), column.endswith("_event")
        if not (is_time or is_event):
            continue
        for index, value in outcomes[column].items():
            if is_missing(value):
                continue
            pid = _pid(outcomes.at[index, "patient_id"]) if "patient_id" in outcomes else None
            where = f"line {_line(index)}: column '{column}'"
            value = value.item() if hasattr(value, "item") else value
            if is_time and not _is_number(value):
                message = f"{where}: time {value!r} is not a number of days"
            elif is_time and value < 0:
                message = f"{where}: time {value} is negative (must be ≥ 0 days)"
            elif is_event and value not in (0, 1):
                message = f"{where}: event value {value!r} is not 0 or 1"
            else:
                continue
            found.append(Problem(pid, file, "outcomes", message, column=column))
    wanted = list(dict.fromkeys(targets))
    for target in list(wanted):
        for suffix, partner in (("_time", "_event"), ("_event", "_time")):
            if target.endswith(suffix):
                other = target[: -len(suffix)] + partner
                if other not in wanted:
                    wanted.append(other)
    found.extend(_check_targets(outcomes, wanted))
    return found


def _check_targets(outcomes: pd.DataFrame, targets: Sequence[str]) -> list[Problem]:
    file = "outcomes.csv"
    found: list[Problem] = []
    if "patient_id" not in outcomes:
        return found
    longitudinal = "timepoint" in outcomes and outcomes["timepoint"].notna().any()
    for target in targets:
        if target not in outcomes:
            message = f"declared target '{target}' is not a column of outcomes.csv"
            found.append(Problem(None, file, "outcomes", message, column=target))
            continue
        for pid, rows in outcomes.groupby("patient_id", sort=True):
            values = rows[target]
            missing = values.map(is_missing)
            if longitudinal and target in LONGITUDINAL_TARGETS:
                timepoints = pd.to_numeric(rows["timepoint"], errors="coerce")
                last = timepoints.max()
                bad = missing & ~(timepoints == last)
                for index in rows.index[bad.to_numpy()]:
                    message = (
                        f"line {_line(index)}: declared target '{target}' is missing at "
                        f"timepoint {rows.at[index, 'timepoint']} (only the last may be empty)"
                    )
                    found.append(Problem(str(pid), file, "outcomes", message, column=target))
            elif bool(missing.all()):
                lines = ", ".join(str(_line(i)) for i in rows.index)
                message = f"line {lines}: declared target '{target}' is missing (empty or NaN)"
                found.append(Problem(str(pid), file, "outcomes", message, column=target))
    return found


def check_clinical(
    clinical: pd.DataFrame | None,
    *,
    required: Sequence[str] = (),
    impute: bool = False,
    dropped: Collection[str] = (),
) -> list[Problem]:
    """Check that the study's required clinical fields are columns and filled for every patient.

    An empty value is an error, unless the study's policy fills it or leaves its patient out
    (``studies.<name>.missing``, :mod:`oncoflow.validate.missing`); then it is a warning.

    Args:
        clinical: ``clinical.csv`` as read by :func:`oncoflow.cohort.read_table`.
        required: Clinical variables the study uses (``studies.<name>.clinical``).
        impute: The policy is ``clinical: impute``: the models' encoders fill an empty value
            with the median of each fold's training patients.
        dropped: Patients the workflow leaves out for missing inputs (``drop_patient``).

    Returns:
        Problems with ``check="clinical"``.
    """
    if clinical is None:
        return []
    file = "clinical.csv"
    found: list[Problem] = []
    left_out = {str(p) for p in dropped}
    for field in dict.fromkeys(required):
        if field not in clinical:
            message = f"required clinical field '{field}' is not a column of clinical.csv"
            found.append(Problem(None, file, "clinical", message, column=field))
            continue
        for index, value in clinical[field].items():
            if is_missing(value) or (isinstance(value, float) and math.isnan(value)):
                pid = _pid(clinical.at[index, "patient_id"]) if "patient_id" in clinical else None
                message = (
                    f"line {_line(index)}: required clinical field '{field}' is missing "
                    "(empty or NaN)"
                )
                severity = ERROR
                if pid is not None and pid in left_out:
                    message += "; the patient is left out for missing inputs (drop_patient)"
                    severity = WARNING
                elif impute:
                    message += (
                        "; it will be imputed with the median of each fold's training patients "
                        "(missing.clinical: impute)"
                    )
                    severity = WARNING
                found.append(
                    Problem(pid, file, "clinical", message, severity=severity, column=field)
                )
    return found
