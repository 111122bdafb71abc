"""Tabular inputs (clinical variables, mask sizes, feature columns) as a standardised matrix.

:class:`TabularEncoder` is fit on the training patients of a fold only and applied to every
other row: a numeric column that is positive and right-skewed (sample skewness > 1 on the
training rows) is log-transformed first (a few zeros, such as a laboratory value reported at its
detection limit, are shifted by half the smallest positive value rather than turning the log
off), missing values take the training median, values are z-scored, and categories are one-hot
against the training categories. The deep models encode their tabular branch with it and the
tabular baselines (:mod:`oncoflow.baselines`) their whole design, so a model and its baseline
see the same variables the same way.

Example:
    >>> import pandas as pd
    >>> train = pd.DataFrame({"age": [50, 60, 70], "sex": ["F", "M", "M"]})
    >>> enc = TabularEncoder().fit(train)
    >>> enc.columns_
    ['age', 'sex=M']
    >>> enc.transform(pd.DataFrame({"age": [60], "sex": ["F"]})).tolist()
    [[0.0, 0.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


class TabularEncoder:
    """Numeric design matrix from a patient table; every statistic from the training rows.

    For a numeric column ``x``: when all training values are >= 0, at most ``zero_share`` of them
    are 0 and their sample skewness is above ``skew_limit``, ``x <- log(x + c)`` with ``c = 0``
    when no training value is 0 and otherwise half the smallest positive training value (a
    laboratory value reported as 0 at its detection limit keeps the column on the log scale;
    a count that is mostly 0 stays linear); then missing -> training median and
    ``z = (x - mean) / sd`` (sd of 0 -> 1). Text columns are one-hot encoded against the training
    categories (first alphabetical category = reference, unseen -> reference). The output holds
    the numeric columns in table order, then the one-hot columns; ``columns_`` names them in
    that order.
    """

    def __init__(self, skew_limit: float = 1.0, zero_share: float = 0.05) -> None:
        self.skew_limit = skew_limit
        self.zero_share = zero_share

    def fit(self, table: pd.DataFrame) -> TabularEncoder:
        """Learn transforms, medians, means, sds and categories from training rows."""
        self.columns_: list[str] = []
        # per numeric column: (logged, median, mean, sd, offset c of log(x + c))
        self.numeric_: dict[str, tuple[bool, float, float, float, float]] = {}
        self.categories_: dict[str, list[str]] = {}
        for col in table.columns:
            series = table[col]
            as_num = pd.to_numeric(series, errors="coerce")
            present = series.notna()
            if present.any() and as_num[present].notna().all():
                values = as_num.dropna().to_numpy(float)
                offset = self._log_offset(values)
                log_it = offset is not None
                if offset is not None:
                    values = np.log(values + offset)
                median = float(np.median(values)) if len(values) else 0.0
                filled = np.where(np.isnan(values), median, values)
                sd = float(filled.std()) or 1.0
                self.numeric_[col] = (log_it, median, float(filled.mean()), sd, offset or 0.0)
            else:
                self.categories_[col] = sorted({str(v) for v in series.dropna()})
        # the names in the order transform() writes the columns: numeric, then one-hot
        self.columns_ = list(self.numeric_)
        for col, cats in self.categories_.items():
            self.columns_ += [f"{col}={c}" for c in cats[1:]]
        return self

    def _log_offset(self, values: np.ndarray) -> float | None:
        """The ``c`` of ``log(x + c)`` for a column's training values; ``None``: keep it linear."""
        if len(values) <= 2 or values.min() < 0 or _skewness(values) <= self.skew_limit:
            return None
        zeros = values == 0
        if not zeros.any():
            return 0.0
        if zeros.mean() > self.zero_share:
            return None
        return float(values[~zeros].min()) / 2.0

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        """Encode rows (n, p) as float32 with the training statistics.

        A logged column's value below the smallest it can take (``x <= 0`` when ``c = 0``,
        ``x < 0`` otherwise) counts as missing.
        """
        parts: list[np.ndarray] = []
        for col, (log_it, median, mean, sd, offset) in self.numeric_.items():
            values = pd.to_numeric(table[col], errors="coerce").to_numpy(float)
            if log_it:
                valid = values >= 0 if offset > 0 else values > 0
                with np.errstate(divide="ignore", invalid="ignore"):
                    values = np.log(np.where(valid, values + offset, np.nan))
            values = np.where(np.isnan(values), median, values)
            parts.append(((values - mean) / sd)[:, None])
        for col, cats in self.categories_.items():
            text = table[col].astype(object).where(table[col].notna(), None).astype(str)
            parts += [(text == c).to_numpy(float)[:, None] for c in cats[1:]]
        if not parts:
            return np.zeros((len(table), 0), dtype=np.float32)
        return np.hstack(parts).astype(np.float32)

    @property
    def width(self) -> int:
        """Number of encoded columns."""
        return len(self.columns_)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TabularEncoder:
        """The encoder :meth:`state` saved (in ``model.pt``), ready to transform; nothing is fit.

        Raises:
            KeyError: ``state`` lacks a key :meth:`state` writes.
        """
        encoder = cls(
            skew_limit=float(state["skew_limit"]), zero_share=float(state.get("zero_share", 0.05))
        )
        # a state written before the offset existed has four entries per column (c = 0)
        encoder.numeric_ = {
            k: (
                bool(v[0]),
                float(v[1]),
                float(v[2]),
                float(v[3]),
                float(v[4]) if len(v) > 4 else 0.0,
            )
            for k, v in state["numeric"].items()
        }
        encoder.categories_ = {k: list(v) for k, v in state["categories"].items()}
        encoder.columns_ = list(state["columns"])
        return encoder

    def state(self) -> dict[str, Any]:
        """JSON-ready fitted state (stored in ``model.pt``)."""
        return {
            "skew_limit": self.skew_limit,
            "zero_share": self.zero_share,
            "numeric": {k: list(v) for k, v in self.numeric_.items()},
            "categories": self.categories_,
            "columns": self.columns_,
        }


def _skewness(values: np.ndarray) -> float:
    centred = values - values.mean()
    sd = centred.std()
    return float(np.mean(centred**3) / sd**3) if sd > 0 else 0.0
