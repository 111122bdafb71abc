"""The targets of a study and the rows a baseline fits on.

A target is ``survival`` (the ``<name>_time`` / ``<name>_event`` pair of ``outcomes.csv``),
``binary`` (two classes; the second in sorted order is the positive one, as the deep models
score it) or ``multiclass`` (three or more; the class names are their text). The design has one
row per patient, or one per patient and time point when the outcomes are per time point (a
longitudinal label such as ``progression_next``):

- clinical inputs: the study's ``clinical`` columns of ``clinical.csv``, as they are (encoded by
  :class:`~oncoflow.features.tabular.TabularEncoder` inside each fold);
- size inputs (:mod:`~oncoflow.baselines.sizes`): per-patient rows get each label's volume at
  every time point (``size_label<l>_ml_tp<t>``) and its relative change since the first time
  point of the cohort, ``size_label<l>_ml_change_first_tp<t> = ln((V_t + c) / (V_first + c))``
  for every later ``t`` (a response read off two scans; the encoder logs a volume column only
  when it is skewed, so the volumes alone may not give the model their ratio); per-time-point
  rows get the volume at that time point and its relative change, as a radiologist reads it off
  the scans (RECIST compares with the previous scan and with baseline):
  ``size_label<l>_ml_change = ln((V_t + c) / (V_prev + c))`` since the patient's previous time
  point and ``size_label<l>_ml_change_first`` since the first, both 0 at the first time point,
  with ``c`` = :data:`CHANGE_OFFSET_ML` so that a vanished lesion stays finite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from oncoflow.errors import ConfigError, ModelError
from oncoflow.formats import BASELINE_PREFIX

INPUTS = ("clinical", "size", "lesion")
"""The input blocks a baseline may use, in name order (``lesion``: the sizes plus each label's
image mean / SD and elongation, :func:`~oncoflow.baselines.sizes.mask_statistics`)."""

BASELINE_NAMES = (
    "baseline_clinical",
    "baseline_clinical_size",
    "baseline_size",
    "baseline_clinical_lesion",
    "baseline_lesion",
)
"""Every baseline variant name (:func:`study_baselines` picks a study's)."""

Kind = Literal["binary", "multiclass", "survival"]

CHANGE_OFFSET_ML = 0.1
"""Offset (mL) of the relative volume changes ``ln((V_t + c) / (V_ref + c))``."""


def baseline_name(inputs: Sequence[str]) -> str:
    """The variant name of a baseline: ``baseline_`` + its input blocks joined by ``_``."""
    unknown = sorted(set(inputs) - set(INPUTS))
    if unknown or not inputs:
        msg = f"baseline inputs must be some of {', '.join(INPUTS)}, got {list(inputs)}"
        raise ConfigError(msg)
    return BASELINE_PREFIX + "_".join(i for i in INPUTS if i in inputs)


def baseline_inputs(name: str) -> tuple[str, ...]:
    """The input blocks of a baseline variant name (the inverse of :func:`baseline_name`)."""
    blocks = tuple(name.removeprefix(BASELINE_PREFIX).split("_"))
    if not name.startswith(BASELINE_PREFIX) or baseline_name(blocks) != name:
        msg = f"{name!r} is not a baseline name (baseline_clinical, baseline_clinical_size, ...)"
        raise ConfigError(msg)
    return blocks


def study_baselines(
    clinical: Sequence[str], has_masks: bool, declared: Sequence[str] = ()
) -> list[str]:
    """The baselines of a study: clinical, clinical + size; size alone without clinical columns.

    Args:
        clinical: The study's clinical columns.
        has_masks: Its cohort has masks (size and lesion inputs need them).
        declared: The recipe's ``baselines``, when it names them (those its cohort can feed).

    Raises:
        ConfigError: A declared name is not a baseline.
    """
    if declared:
        usable = []
        for name in declared:
            inputs = baseline_inputs(name)
            if ("clinical" in inputs and not clinical) or (
                {"size", "lesion"} & set(inputs) and not has_masks
            ):
                continue
            usable.append(name)
        return usable
    names = [baseline_name(["clinical"])] if clinical else []
    if has_masks:
        names.append(baseline_name(["clinical", "size"] if clinical else ["size"]))
    return names


@dataclass(frozen=True)
class Target:
    """One prediction target of a study.

    Attributes:
        name: The target (``os``, ``response``, ``histology``).
        kind: ``binary``, ``multiclass`` or ``survival``.
        classes: The class names (sorted, as text) of a classification target, else empty.
        positive: The class a binary target scores (``y_true = 1``): the second class in
            sorted order (``1`` of 0/1 labels, ``LUSC`` of LUAD/LUSC).
    """

    name: str
    kind: Kind
    classes: tuple[str, ...] = ()
    positive: str | None = None


def study_targets(outcomes: pd.DataFrame, targets: Sequence[str]) -> list[Target]:
    """The targets named by ``studies.<s>.targets``, each with its kind.

    Raises:
        ModelError: A target column is missing from the outcomes or has fewer than two classes.
    """
    out: list[Target] = []
    for column in targets:
        if column not in outcomes.columns:
            msg = f"outcomes.csv has no column {column!r} (studies.<study>.targets)"
            raise ModelError(msg)
        if column.endswith("_time"):
            continue
        if column.endswith("_event"):
            out.append(Target(column.removesuffix("_event"), "survival"))
            continue
        values = outcomes[column].dropna()
        labels = sorted({str(v) for v in values})
        if len(labels) < 2:
            msg = f"outcomes.csv: target {column} has fewer than two classes ({labels})"
            raise ModelError(msg)
        if len(labels) == 2:
            out.append(Target(column, "binary", tuple(labels), positive=labels[1]))
        else:
            out.append(Target(column, "multiclass", tuple(labels)))
    return out


def per_timepoint(outcomes: pd.DataFrame) -> bool:
    """Whether the outcomes are per patient and time point (a ``timepoint`` column with values)."""
    return "timepoint" in outcomes.columns and outcomes["timepoint"].notna().any()


def design_table(
    clinical: pd.DataFrame,
    columns: Sequence[str],
    sizes: pd.DataFrame | None,
    *,
    by_timepoint: bool,
    keys: pd.DataFrame,
) -> pd.DataFrame:
    """The baseline's input table, one row per key.

    Args:
        clinical: ``clinical.csv`` (a ``patient_id`` column).
        columns: The clinical columns to use (may be empty).
        sizes: :func:`~oncoflow.baselines.sizes.mask_sizes`, or ``None`` without size inputs.
        by_timepoint: One row per patient and time point (else one per patient).
        keys: The rows wanted: ``patient_id`` (and ``timepoint`` when ``by_timepoint``).

    Returns:
        The inputs indexed like ``keys`` (``patient_id`` or ``patient_id, timepoint``); a
        patient without a clinical row or a mask gets missing values (median-imputed in fold).

    Raises:
        ModelError: A clinical column is missing.
    """
    missing = [c for c in columns if c not in clinical.columns]
    if missing:
        msg = f"clinical.csv has no column(s) {', '.join(missing)} (studies.<study>.clinical)"
        raise ModelError(msg)
    index = ["patient_id", "timepoint"] if by_timepoint else ["patient_id"]
    table = keys[index].drop_duplicates().copy()
    table["patient_id"] = table["patient_id"].astype(str)
    base = clinical.assign(patient_id=clinical["patient_id"].astype(str))
    table = table.merge(base[["patient_id", *columns]], on="patient_id", how="left")
    if sizes is not None and len(sizes.columns) > 2:
        table = table.merge(_size_inputs(sizes, by_timepoint), on=index, how="left")
    return table.set_index(index).sort_index()


def _size_inputs(sizes: pd.DataFrame, by_timepoint: bool) -> pd.DataFrame:
    value_columns = [c for c in sizes.columns if c not in ("patient_id", "timepoint")]
    sizes = sizes.assign(patient_id=sizes["patient_id"].astype(str))
    if by_timepoint:
        ordered = sizes.sort_values(["patient_id", "timepoint"])
        # relative changes of the volumes (a lesion statistic is read at its time point)
        value_columns = [c for c in value_columns if c.startswith("size_")]
        logs = np.log(ordered[value_columns] + CHANGE_OFFSET_ML)
        groups = logs.groupby(ordered["patient_id"])
        change = (logs - groups.shift(1)).fillna(0.0)
        change.columns = [f"{c}_change" for c in value_columns]
        first = logs - groups.transform("first")
        first.columns = [f"{c}_change_first" for c in value_columns]
        return pd.concat([ordered, change, first], axis=1).astype({"timepoint": int})
    wide = sizes.pivot(index="patient_id", columns="timepoint", values=value_columns)
    first = min(wide.columns.get_level_values("timepoint"))
    changes = {
        f"{column}_change_first_tp{tp}": np.log(wide[(column, tp)] + CHANGE_OFFSET_ML)
        - np.log(wide[(column, first)] + CHANGE_OFFSET_ML)
        for column, tp in wide.columns
        if column.startswith("size_") and tp != first
    }
    wide.columns = [f"{column}_tp{tp}" for column, tp in wide.columns]
    return pd.concat([wide, pd.DataFrame(changes, index=wide.index)], axis=1).reset_index()
