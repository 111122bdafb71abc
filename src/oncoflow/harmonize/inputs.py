"""Input handling of :class:`~oncoflow.harmonize.ComBat`: features, batches, covariates, design.

Every check names the offending column, row or level (:class:`~oncoflow.errors.HarmonizationError`).
ComBat artefacts pickled when :class:`_CovariateEncoder` lived in ``oncoflow.harmonize.combat``
still load (:data:`oncoflow.artefacts.MOVED`).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.errors import HarmonizationError

log = logging.getLogger(__name__)


def names_list(values: Sequence[Any], limit: int = 5) -> str:
    """The first ``limit`` values joined by commas, with ``(+k more)`` for the rest."""
    shown = ", ".join(repr(v) if not isinstance(v, str) else v for v in list(values)[:limit])
    more = len(values) - limit
    return f"{shown} (+{more} more)" if more > 0 else shown


def as_matrix(X: Any, what: str = "X") -> tuple[np.ndarray, pd.Index | None, pd.Index]:
    """Return ``(values float64 n x F, column names or None, row labels)``."""
    if isinstance(X, pd.DataFrame):
        non_numeric = [
            c
            for c, dtype in zip(X.columns, X.dtypes, strict=True)
            if not pd.api.types.is_numeric_dtype(dtype)
        ]
        if non_numeric:
            msg = f"{what}: non-numeric feature column(s) {names_list(non_numeric)}"
            raise HarmonizationError(msg)
        values = X.to_numpy(dtype=np.float64, na_value=np.nan)
        columns: pd.Index | None = X.columns
        rows = X.index
    else:
        try:
            values = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            msg = f"{what}: cannot convert to a numeric samples x features array ({exc})"
            raise HarmonizationError(msg) from exc
        columns = None
        rows = pd.RangeIndex(values.shape[0]) if values.ndim >= 1 else pd.RangeIndex(0)
    if values.ndim != 2:
        msg = f"{what}: expected a 2-D samples x features array, got shape {values.shape}"
        raise HarmonizationError(msg)
    bad = ~np.isfinite(values)
    if bad.any():
        cols = np.flatnonzero(bad.any(axis=0))
        names = [columns[c] if columns is not None else f"column {c}" for c in cols]
        first_rows = [rows[r] for r in np.flatnonzero(bad[:, cols[0]])]
        msg = (
            f"{what}: NaN or infinite values in feature(s) {names_list(names)}; "
            f"first one in row(s) {names_list(first_rows)}; impute or drop them before ComBat"
        )
        raise HarmonizationError(msg)
    return values, columns, rows


def align(obj: Any, rows: pd.Index, n: int, x_is_frame: bool, what: str) -> Any:
    """Align a Series / DataFrame to the rows of X (by index when possible, else by position)."""
    if isinstance(obj, pd.Series | pd.DataFrame):
        if x_is_frame and obj.index.is_unique and rows.isin(obj.index).all():
            return obj.loc[rows]
        if len(obj) != n:
            msg = f"{what} has {len(obj)} rows but X has {n} samples"
            raise HarmonizationError(msg)
        return obj
    return obj


def as_batch(batch: Any, rows: pd.Index, n: int, x_is_frame: bool) -> np.ndarray:
    """One batch label per row of X (object array); a single-column DataFrame is accepted."""
    batch = align(batch, rows, n, x_is_frame, "batch")
    if isinstance(batch, pd.DataFrame):
        if batch.shape[1] != 1:
            msg = f"batch must be one column, got {batch.shape[1]} columns"
            raise HarmonizationError(msg)
        batch = batch.iloc[:, 0]
    values = np.asarray(batch, dtype=object).ravel()
    if values.shape[0] != n:
        msg = f"batch has {values.shape[0]} values but X has {n} samples"
        raise HarmonizationError(msg)
    missing = [rows[i] for i, v in enumerate(values) if v is None or pd.isna(v)]
    if missing:
        msg = f"batch: missing batch label for row(s) {names_list(missing)}"
        raise HarmonizationError(msg)
    return values


def sorted_levels(values: Sequence[Any]) -> list[Any]:
    """Distinct values sorted (by their text when they do not compare)."""
    unique = list(dict.fromkeys(values))
    try:
        return sorted(unique)
    except TypeError:
        return sorted(unique, key=str)


@dataclass
class _CovariateEncoder:
    """Turn a covariate DataFrame into design-matrix columns, with the encoding fixed at fit.

    Object / category / bool / string columns are categorical: one 0/1 column per level except the
    first (sorted) level, the reference. Numeric columns are continuous and used as they are.
    """

    kinds: dict[Hashable, str] = field(default_factory=dict)
    levels: dict[Hashable, list[Any]] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)

    @staticmethod
    def _is_categorical(series: pd.Series) -> bool:
        return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)

    @staticmethod
    def _check_missing(frame: pd.DataFrame) -> None:
        for column in frame.columns:
            missing = frame.index[frame[column].isna().to_numpy()]
            if len(missing):
                msg = (
                    f"covariate {column!r}: missing value(s) in row(s) {names_list(list(missing))}"
                )
                raise HarmonizationError(msg)

    def fit(self, frame: pd.DataFrame) -> _CovariateEncoder:
        self._check_missing(frame)
        self.kinds, self.levels, self.names = {}, {}, []
        for column in frame.columns:
            series = frame[column]
            if self._is_categorical(series):
                if isinstance(series.dtype, pd.CategoricalDtype):
                    present = set(series.tolist())
                    levels = [v for v in series.cat.categories if v in present]
                else:
                    levels = sorted_levels(series.tolist())
                self.kinds[column] = "categorical"
                self.levels[column] = levels
                if len(levels) < 2:
                    log.warning("covariate %r has one level in the training data; ignored", column)
                self.names += [f"{column}[{level}]" for level in levels[1:]]
            else:
                values = series.to_numpy(dtype=np.float64)
                if not np.isfinite(values).all():
                    msg = f"covariate {column!r}: infinite values"
                    raise HarmonizationError(msg)
                if np.ptp(values) == 0:
                    msg = f"covariate {column!r} is constant in the training data; drop it"
                    raise HarmonizationError(msg)
                self.kinds[column] = "continuous"
                self.names.append(str(column))
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        absent = [c for c in self.kinds if c not in frame.columns]
        if absent:
            msg = f"covariates: column(s) {names_list(absent)} were used at fit but are missing"
            raise HarmonizationError(msg)
        frame = frame[list(self.kinds)]
        self._check_missing(frame)
        blocks: list[np.ndarray] = []
        for column, kind in self.kinds.items():
            series = frame[column]
            if kind == "continuous":
                if not pd.api.types.is_numeric_dtype(series):
                    msg = f"covariate {column!r} was numeric at fit but is not numeric now"
                    raise HarmonizationError(msg)
                blocks.append(series.to_numpy(dtype=np.float64)[:, None])
                continue
            levels = self.levels[column]
            values = series.tolist()
            unseen = [v for v in dict.fromkeys(values) if v not in levels]
            if unseen:
                msg = (
                    f"covariate {column!r}: level(s) {names_list(unseen)} not seen at fit "
                    f"(fitted levels: {names_list(levels, 20)})"
                )
                raise HarmonizationError(msg)
            onehot = np.array([[v == level for level in levels[1:]] for v in values], dtype=float)
            blocks.append(onehot.reshape(len(values), len(levels) - 1))
        if not blocks:
            return np.zeros((len(frame), 0))
        return np.hstack(blocks)


def design_matrices(
    codes: np.ndarray,
    n_batch: int,
    ref: int | None,
    covariate_matrix: np.ndarray,
    encoder: _CovariateEncoder,
) -> tuple[np.ndarray, np.ndarray]:
    """Batch one-hot and the full design ``[batch one-hot | covariates]`` of the OLS step.

    With a reference batch its column is all ones (the intercept), so ``B_hat[ref]`` is the
    reference mean and the other batch columns are differences to it.

    Args:
        codes: Batch index per sample.
        n_batch: Number of batches.
        ref: Reference batch index, or ``None``.
        covariate_matrix: Encoded covariates, samples x covariate columns.
        encoder: The covariate encoder (for the column names of error messages).

    Returns:
        ``(batch design n x n_batch, design n x (n_batch + covariate columns))``.

    Raises:
        HarmonizationError: Rank-deficient design, or no residual degree of freedom left.
    """
    n = codes.size
    batch_design = np.zeros((n, n_batch))
    batch_design[np.arange(n), codes] = 1.0
    if ref is not None:
        batch_design[:, ref] = 1.0
    design = np.hstack([batch_design, covariate_matrix])
    if np.linalg.matrix_rank(design) < design.shape[1]:
        msg = "the design [batch | covariates] is rank-deficient: a covariate is confounded "
        msg += f"with batch or with another covariate ({names_list(encoder.names, 20)})"
        raise HarmonizationError(msg)
    if n <= design.shape[1]:
        msg = (
            f"{n} training samples cannot fit {design.shape[1]} design parameters "
            f"({n_batch} batches + {covariate_matrix.shape[1]} covariate column(s)): no "
            "residual left to estimate the feature variances; use more training samples or "
            "fewer covariates"
        )
        raise HarmonizationError(msg)
    return batch_design, design
