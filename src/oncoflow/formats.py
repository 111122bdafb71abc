"""Files the stages exchange, ``folds.json`` and ``predictions.csv``: one reader, one writer each.

Both formats are described by a JSON Schema in ``schemas/`` (``folds.schema.yaml``,
``predictions.schema.yaml``) and in ``docs/formats.md``. Every reader and writer here checks its
data against the schema and the rules the schema cannot state (a patient in two splits, fit and
apply sharing a patient, numbered folds with a gap) and raises :class:`~oncoflow.errors.FormatError`
naming the file and the problem: a writer refuses before anything is written, so a bad table
never reaches the next stage.

The checks interpret the keywords the two schemas use (``type``, ``enum``, ``pattern``,
``minimum``, ``maximum``, ``minLength``, ``minItems``, ``uniqueItems``, ``required``,
``additionalProperties``, ``patternProperties``, ``dependentRequired``) directly, column by column
for the tables, so a job does not pay for importing a JSON Schema validator. The tests check that
``jsonschema`` agrees.

Example:
    >>> folds = read_folds("results/net_survival/folds.json")  # doctest: +SKIP
    >>> fit, apply, test = read_fold("results/net_survival/folds.json", "0")  # doctest: +SKIP
    >>> table = read_predictions("results/net_survival/train/raw/predictions.csv")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from oncoflow.errors import FormatError
from oncoflow.schemas import load_schema

FINAL = "final"
"""Name of the fold that fits on every training patient and applies to the test splits."""

RUN_COLUMN = "permutation"
"""Column of a negative control's ``predictions.csv``: the permuted-label run of each row."""

BASELINE_PREFIX = "baseline_"
"""Variant names of the tabular baselines (:mod:`oncoflow.baselines`) start with this."""


def is_baseline(name: str) -> bool:
    """Whether a variant (or ``<variant>/<model>`` label) is a tabular baseline."""
    return name.startswith(BASELINE_PREFIX)


PREDICTION_DTYPES: dict[str, type] = {"patient_id": str, "fold": str}
"""Columns of ``predictions.csv`` read as text whatever they look like (ids, ``0`` / ``final``)."""


class FoldPatients(NamedTuple):
    """The patient lists of one fold of a ``folds.json``.

    Attributes:
        fit: Patients the fold fits on.
        apply: Patients the fold's models are applied to (its validation patients; the test
            patients for the ``final`` fold).
        test: The test patients of the study (``apply`` of the ``final`` fold).
    """

    fit: list[str]
    apply: list[str]
    test: list[str]


def _some(values: Sequence[Any], limit: int = 5) -> str:
    """``a, b, c (+2 more)``: the first ``limit`` values of a list for a message."""
    values = list(values)
    more = f" (+{len(values) - limit} more)" if len(values) > limit else ""
    return ", ".join(str(v) for v in values[:limit]) + more


def _fail(path: Path | str, problem: str) -> FormatError:
    return FormatError(f"{path}: {problem}")


# --------------------------------------------------------------------------------------------
# folds.json


def _check_patient_list(path: Path | str, where: str, value: Any, spec: Mapping[str, Any]) -> None:
    """Check one ``fit`` / ``apply`` list against its schema (``items`` is the patient id)."""
    if not isinstance(value, list):
        raise _fail(path, f"{where} is not a list of patient ids")
    if len(value) < spec.get("minItems", 0):
        raise _fail(path, f"{where} is empty; a fold fits on at least one patient")
    pattern = re.compile(load_schema("folds")["$defs"]["patient_id"]["pattern"])
    bad = [p for p in value if not isinstance(p, str) or not pattern.search(p)]
    if bad:
        raise _fail(path, f"{where}: not a patient id: {_some([repr(p) for p in bad])}")
    if spec.get("uniqueItems"):
        twice = sorted({p for p in value if value.count(p) > 1})
        if twice:
            raise _fail(path, f"{where}: patient(s) listed twice: {_some(twice)}")


def check_folds(document: Any, path: Path | str = "folds.json") -> dict[str, dict[str, list[str]]]:
    """Check a ``folds.json`` document against ``schemas/folds.schema.yaml``.

    Args:
        document: The parsed JSON (``{"folds": {...}, "seed": ..., ...}``).
        path: The file, for the messages.

    Returns:
        The ``folds`` mapping (fold name -> ``{"fit": [...], "apply": [...]}``).

    Raises:
        FormatError: The first problem: an unknown or missing key, a fold name other than
            ``0`` .. ``k-1`` / ``final``, a bad patient list, a patient in both ``fit`` and
            ``apply`` of a fold, or a test patient in a numbered fold.
    """
    schema = load_schema("folds")
    if not isinstance(document, dict):
        raise _fail(path, "not a JSON object with a 'folds' mapping")
    unknown = sorted(set(document) - set(schema["properties"]))
    if unknown:
        allowed = ", ".join(schema["properties"])
        raise _fail(path, f"unknown key(s) {_some(unknown)}; allowed keys: {allowed}")
    for key in schema["required"]:
        if key not in document:
            raise _fail(path, f"no {key!r} mapping")
    folds = document["folds"]
    spec = schema["properties"]["folds"]
    if not isinstance(folds, dict):
        raise _fail(path, "'folds' is not a mapping of fold name -> {fit, apply}")
    name_pattern = re.compile(spec["propertyNames"]["pattern"])
    bad_names = [name for name in folds if not name_pattern.search(name)]
    if bad_names:
        msg = f"fold name(s) {_some([repr(n) for n in bad_names])}: expected 0, 1, ... or final"
        raise _fail(path, msg)
    for key in spec["required"]:
        if key not in folds:
            raise _fail(path, f"no {key!r} fold (folds there: {_some(sorted(folds), 20)})")
    numbered = sorted(int(name) for name in folds if name != FINAL)
    if numbered != list(range(len(numbered))):
        listed = ", ".join(map(str, numbered))
        raise _fail(path, f"numbered folds must be 0 .. k-1 without gaps; found {listed}")
    entry_spec = spec["additionalProperties"]
    for name, entry in folds.items():
        if not isinstance(entry, dict):
            raise _fail(path, f"fold {name!r} is not a mapping with 'fit' and 'apply'")
        extra = sorted(set(entry) - set(entry_spec["properties"]))
        if extra:
            raise _fail(path, f"fold {name!r}: unknown key(s) {_some(extra)}; expected fit, apply")
        for key in entry_spec["required"]:
            if key not in entry:
                raise _fail(path, f"fold {name!r} has no {key!r} list")
            spec_key = entry_spec["properties"][key]
            _check_patient_list(path, f"fold {name!r} {key!r}", entry[key], spec_key)
        both = sorted(set(entry["fit"]) & set(entry["apply"]))
        if both:
            msg = f"fold {name!r}: patient(s) {_some(both)} are in both 'fit' and 'apply'"
            raise _fail(path, msg)
    train = set(folds[FINAL]["fit"])
    for name in map(str, numbered):
        leaked = sorted((set(folds[name]["fit"]) | set(folds[name]["apply"])) - train)
        if leaked:
            msg = (
                f"fold {name!r}: patient(s) {_some(leaked)} are not training patients "
                f"(not in the 'fit' list of the {FINAL!r} fold)"
            )
            raise _fail(path, msg)
    return folds


def write_folds(path: Path | str, folds: Mapping[str, Any], **meta: Any) -> None:
    """Write ``folds.json``: the ``folds`` mapping next to ``meta`` (``stratify``, ``seed``, ...).

    The layout is the one :func:`read_folds` reads: JSON indented by one space, keys sorted,
    one trailing newline.

    Args:
        path: The file to write (parent folders are created).
        folds: Fold name -> ``{"fit": [...], "apply": [...]}`` (:func:`oncoflow.splits.make_folds`).
        **meta: The other keys of ``schemas/folds.schema.yaml`` (``stratify``, ``seed``,
            ``provenance``).

    Raises:
        FormatError: The document breaks the schema (nothing is written), or the file cannot
            be written.
    """
    path = Path(path)
    payload = {**meta, "folds": folds}
    check_folds(payload, path)
    text = json.dumps(payload, indent=1, sort_keys=True) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise _fail(path, f"cannot write ({exc.strerror or exc})") from exc


def read_folds(path: Path | str) -> dict[str, dict[str, list[str]]]:
    """Read and check the ``folds`` mapping of a ``folds.json``.

    Returns:
        Fold name (``"0"``, ..., ``"final"``) -> ``{"fit": [...], "apply": [...]}``.

    Raises:
        FormatError: The file is missing, not JSON, or breaks the schema (see
            :func:`check_folds`); the message names the file and the problem.
    """
    try:
        text = Path(path).read_text()
    except FileNotFoundError as exc:
        raise _fail(path, "folds file does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(path, f"cannot read the folds file ({exc})") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not valid JSON ({exc})") from exc
    return check_folds(document, path)


def read_fold(path: Path | str, fold: str | int) -> FoldPatients:
    """Read the patients of one fold of a ``folds.json`` (the file is checked whole).

    Args:
        path: The ``folds.json``.
        fold: Fold name (``"0"``, ``1``, ``"final"``).

    Returns:
        The fold's ``fit`` and ``apply`` lists and the study's test patients.

    Raises:
        FormatError: As :func:`read_folds`, or the fold is not in the file.
    """
    folds = read_folds(path)
    key = str(fold)
    if key not in folds:
        raise _fail(path, f"no fold {key!r} (folds there: {_some(sorted(folds), 20)})")
    return FoldPatients(
        fit=list(folds[key]["fit"]),
        apply=list(folds[key]["apply"]),
        test=list(folds[FINAL]["apply"]),
    )


# --------------------------------------------------------------------------------------------
# predictions.csv


def _column_spec(schema: Mapping[str, Any], column: str) -> Mapping[str, Any] | None:
    """The schema of a column: its property, else the first matching pattern property."""
    if column in schema["properties"]:
        return schema["properties"][column]
    for pattern, spec in schema.get("patternProperties", {}).items():
        if re.search(pattern, column):
            return spec
    return None


def _refuse(path: Path | str, column: str, values: pd.Series, bad: np.ndarray, text: str) -> None:
    """Raise for the first row of ``values`` where ``bad`` holds, naming its CSV line."""
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = values.iloc[row]
        problem = text.replace("{value}", repr(value.item() if hasattr(value, "item") else value))
        raise _fail(path, f"line {row + 2}: column {column!r}{problem}")


def _check_column(
    path: Path | str, column: str, values: pd.Series, spec: Mapping[str, Any]
) -> None:
    """Check one column's cells against its schema (an empty cell is null)."""
    types = spec.get("type", [])
    types = {types} if isinstance(types, str) else set(types)
    empty = values.isna().to_numpy()
    if values.dtype == object:
        empty |= (values.astype(str) == "").to_numpy()
    if "null" not in types:
        _refuse(path, column, values, empty, " is empty")
    if empty.all():
        return
    if types and "string" not in types:
        numbers = pd.to_numeric(values.where(~empty), errors="coerce").to_numpy(dtype=float)
        wanted = " or ".join(sorted(types - {"null"}))
        bad = ~empty & np.isnan(numbers)
        if "number" not in types:
            bad |= ~empty & ~np.isnan(numbers) & (np.mod(numbers, 1) != 0)
        _refuse(path, column, values, bad, f": value {{value}} is not of type {wanted}")
        with np.errstate(invalid="ignore"):
            if "minimum" in spec:
                low = numbers < spec["minimum"]
                _refuse(path, column, values, low, f": value {{value}} is below {spec['minimum']}")
            if "maximum" in spec:
                high = numbers > spec["maximum"]
                _refuse(path, column, values, high, f": value {{value}} is above {spec['maximum']}")
    if "minLength" in spec:
        short = ~empty & (values.astype(str).str.len() < spec["minLength"]).to_numpy()
        _refuse(path, column, values, short, " is empty")
    if "enum" in spec:
        allowed = [v for v in spec["enum"] if v is not None]
        if all(isinstance(v, int | float) for v in allowed):
            known = pd.to_numeric(values, errors="coerce").isin(allowed).to_numpy()
        else:
            known = values.astype(str).isin([str(v) for v in allowed]).to_numpy()
        choices = ", ".join(map(str, allowed))
        _refuse(path, column, values, ~empty & ~known, f": value {{value}} is not one of {choices}")
    if "pattern" in spec:
        cells = values.astype(str)
        rx = re.compile(spec["pattern"])
        found = {v: rx.search(v) is not None for v in cells.unique()}  # few distinct values
        match = cells.map(found).to_numpy(dtype=bool)
        text = f": value {{value}} does not match {spec['pattern']}"
        _refuse(path, column, values, ~empty & ~match, text)


def _check_tasks(path: Path | str, frame: pd.DataFrame) -> None:
    """Every target's rows fill the score columns of one task (schema description)."""
    classes = [c for c in frame.columns if c.startswith("y_score_")]
    for target, rows in frame.groupby("target", sort=True):
        where = f"target {target!r}"
        filled = {c for c in rows.columns if rows[c].notna().any()}
        if "risk" in filled:
            scores = ["risk"]
        elif "y_score" in filled:
            scores = ["y_score"]
        elif len(filled & set(classes)) >= 2:
            scores = sorted(filled & set(classes))
            if "y_true" not in rows.columns:
                raise _fail(path, f"{where}: multi-class rows need a 'y_true' column")
        else:
            msg = (
                f"{where}: no score column with values: risk (survival), y_score (binary) or "
                "y_score_<class> for two or more classes (multi-class)"
            )
            raise _fail(path, msg)
        missing = rows[scores].isna().any(axis=1).to_numpy()
        if missing.any():
            line = int(rows.index[np.flatnonzero(missing)[0]]) + 2
            listed = ", ".join(scores)
            raise _fail(path, f"line {line}: {where}: empty score ({listed})")


def check_predictions(frame: pd.DataFrame, path: Path | str = "predictions.csv") -> None:
    """Check a predictions table against ``schemas/predictions.schema.yaml``.

    Args:
        frame: The table (as :func:`read_predictions` returns it or as a model made it, with a
            default ``RangeIndex``: line numbers in the messages count from it).
        path: The file, for the messages.

    Raises:
        FormatError: The first problem: a missing or unknown column, a cell of the wrong type
            or value (line and column named), a target whose rows lack their task's scores,
            or patients in more than one split.
    """
    schema = load_schema("predictions")
    frame = frame.reset_index(drop=True)
    missing = [c for c in schema["required"] if c not in frame.columns]
    if missing:
        raise _fail(path, f"predictions lack column(s) {', '.join(missing)}")
    specs = {}
    for column in frame.columns:
        spec = _column_spec(schema, str(column))
        if spec is None:
            allowed = ", ".join([*schema["properties"], *schema.get("patternProperties", {})])
            raise _fail(path, f"unknown column {column!r}; allowed columns: {allowed}")
        specs[column] = spec
    for column, needs in schema.get("dependentRequired", {}).items():
        absent = [c for c in needs if column in frame.columns and c not in frame.columns]
        if absent:
            raise _fail(path, f"column {column!r} needs column(s) {', '.join(absent)} as well")
    for column, spec in specs.items():
        _check_column(path, str(column), frame[column], spec)
    _check_tasks(path, frame)
    per_patient = frame.groupby("patient_id")["split"].nunique()
    leaked = sorted(map(str, per_patient.index[per_patient > 1]))
    if leaked:
        raise _fail(path, f"patient(s) in more than one split: {_some(leaked)}")


def read_predictions(path: Path | str) -> pd.DataFrame:
    """Read and check a ``predictions.csv`` (``patient_id`` and ``fold`` read as text).

    Raises:
        FormatError: The file is missing or unreadable, or breaks the schema (see
            :func:`check_predictions`); the message names the file and the problem.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=PREDICTION_DTYPES)
    except FileNotFoundError as exc:
        raise _fail(path, "predictions file does not exist") from exc
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise _fail(path, f"cannot read predictions CSV ({exc})") from exc
    check_predictions(frame, path)
    return frame


def write_predictions(path: Path | str, frame: pd.DataFrame) -> None:
    """Check a predictions table and write it as ``predictions.csv`` (``to_csv``, no index).

    Raises:
        FormatError: The table breaks the schema (nothing is written), or the file cannot be
            written.
    """
    path = Path(path)
    check_predictions(frame, path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
    except OSError as exc:
        raise _fail(path, f"cannot write ({exc.strerror or exc})") from exc
