"""Nested ComBat: sequential ComBat over several batch variables (scanner, kernel, slice thickness).

Method of Horng et al. (Sci Rep 2022) as used in seed 002, with two fixes: the harmonisation order
and every ComBat are fit on training samples only, and the "still differs by batch" test is a
Kruskal-Wallis test across *all* levels of the variable (the seed compared levels 0 and 1 only).

Fitting, on the training samples:

1. ``remaining`` = the batch variables. Each round, for every remaining variable ``v``, fit ComBat
   on the current data with batch ``v``, harmonise, and count the features whose Kruskal-Wallis
   p-value across the levels of ``v`` is below ``alpha``.
2. Apply the variable leaving the fewest such features (ties: the order given); with
   ``drop=True`` also remove the features still significant for it. Repeat with the rest.

Levels of a variable with a single training sample cannot be harmonised (no scale estimate): their
samples are passed through unchanged for that variable (and left out of its test); a variable with
fewer than two levels of at least two training samples is skipped. Both are logged and recorded.

Example:
    >>> nested = NestedComBat(["scanner", "kernel", "slice_thickness"])  # doctest: +SKIP
    >>> train_h = nested.fit_transform(X_train, batches_train, clin_train)  # doctest: +SKIP
    >>> nested.order_  # doctest: +SKIP
    ['kernel', 'scanner', 'slice_thickness']
    >>> test_h = nested.transform(X_test, batches_test, covariates=clin_test)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.errors import HarmonizationError
from oncoflow.harmonize.combat import ComBat
from oncoflow.harmonize.stats import group_tests

log = logging.getLogger(__name__)


@dataclass
class NestedStep:
    """One applied round of nested ComBat.

    Attributes:
        column: The batch variable harmonised in this round.
        combat: ComBat fitted on the training samples of ``fitted_levels``.
        fitted_levels: Levels harmonised (at least 2 training samples each).
        passthrough_levels: Levels with one training sample, left unchanged.
        features: Feature names entering this round.
        dropped: Features removed after this round (``drop=True``).
        n_significant: Features still significant for ``column`` after this round (training).
    """

    column: Hashable
    combat: ComBat
    fitted_levels: list[Any]
    passthrough_levels: list[Any]
    features: list[Hashable]
    dropped: list[Hashable]
    n_significant: int

    def apply(
        self, X: pd.DataFrame, labels: pd.Series, covariates: pd.DataFrame | None
    ) -> pd.DataFrame:
        """Harmonise ``X`` (columns ``features``) for this round's variable."""
        fitted = set(self.fitted_levels)
        passthrough = set(self.passthrough_levels)
        unseen = [v for v in dict.fromkeys(labels.tolist()) if v not in fitted | passthrough]
        if unseen:
            msg = (
                f"{self.column}: level(s) {unseen} not seen when nested ComBat was fit "
                f"(fitted levels: {sorted(map(str, fitted | passthrough))})"
            )
            raise HarmonizationError(msg)
        mask = labels.isin(fitted).to_numpy()
        out = X.copy()
        if mask.any():
            cov = covariates.loc[mask] if covariates is not None else None
            out.loc[mask] = self.combat.transform(X.loc[mask], labels.loc[mask], cov)
        return out


def _frame(X: Any) -> tuple[pd.DataFrame, bool]:
    if isinstance(X, pd.DataFrame):
        non_numeric = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        if non_numeric:
            msg = f"X: non-numeric feature column(s) {non_numeric[:5]}"
            raise HarmonizationError(msg)
        frame = X.astype(np.float64)
        return (frame if X.index.is_unique else frame.reset_index(drop=True)), True
    values = np.asarray(X, dtype=np.float64)
    if values.ndim != 2:
        msg = f"X: expected a 2-D samples x features array, got shape {values.shape}"
        raise HarmonizationError(msg)
    return pd.DataFrame(values), False


def _aligned(obj: pd.DataFrame | None, index: pd.Index, what: str) -> pd.DataFrame | None:
    if obj is None:
        return None
    if not isinstance(obj, pd.DataFrame):
        msg = f"{what} must be a pandas DataFrame"
        raise HarmonizationError(msg)
    if obj.index.is_unique and index.isin(obj.index).all():
        return obj.loc[index]
    if len(obj) != len(index):
        msg = f"{what} has {len(obj)} rows but X has {len(index)} samples"
        raise HarmonizationError(msg)
    return obj.set_axis(index, axis=0)


class NestedComBat:
    """Sequential ComBat over several batch variables, order chosen on the training data.

    Args:
        batch_columns: The batch variables (columns of the ``batches`` DataFrame), e.g.
            ``["scanner", "kernel", "slice_thickness"]``.
        parametric: Parametric empirical-Bayes priors (else non-parametric).
        eb: Empirical-Bayes shrinkage.
        drop: Remove features still significantly different by batch after each round.
        alpha: Significance level of the Kruskal-Wallis test.

    Attributes:
        order_: Batch variables in the order applied.
        skipped_: Variables not harmonised (fewer than 2 levels with 2+ training samples).
        steps_: The applied :class:`NestedStep` rounds.
        rounds_: Per round, ``{variable: n features still significant}`` over the candidates.
        dropped_features_: Features removed (``drop=True``).
        feature_names_in_: Input features (names, or 0..F-1 for arrays).
        feature_names_out_: Features in the output.
    """

    def __init__(
        self,
        batch_columns: Sequence[Hashable],
        *,
        parametric: bool = True,
        eb: bool = True,
        drop: bool = False,
        alpha: float = 0.05,
    ) -> None:
        if isinstance(batch_columns, str):
            batch_columns = [batch_columns]
        self.batch_columns = list(batch_columns)
        self.parametric = parametric
        self.eb = eb
        self.drop = drop
        self.alpha = alpha

    def _batches(self, batches: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
        frame = _aligned(batches, index, "batches")
        assert frame is not None
        missing = [c for c in self.batch_columns if c not in frame.columns]
        if missing:
            msg = f"batches: column(s) {missing} missing (batch_columns={self.batch_columns})"
            raise HarmonizationError(msg)
        for column in self.batch_columns:
            absent = frame.index[frame[column].isna().to_numpy()]
            if len(absent):
                msg = f"batch variable {column!r}: missing value in row(s) {list(absent)[:5]}"
                raise HarmonizationError(msg)
        return frame

    def _fit_step(
        self,
        X: pd.DataFrame,
        labels: pd.Series,
        covariates: pd.DataFrame | None,
        column: Hashable,
    ) -> tuple[NestedStep, pd.DataFrame, np.ndarray] | None:
        counts = labels.value_counts()
        fitted = [v for v in counts.index if counts[v] >= 2]
        single = [v for v in counts.index if counts[v] < 2]
        if len(fitted) < 2:
            return None
        mask = labels.isin(fitted).to_numpy()
        cov = covariates.loc[mask] if covariates is not None else None
        combat = ComBat(parametric=self.parametric, eb=self.eb)
        try:
            combat.fit(X.loc[mask], labels.loc[mask], cov)
        except HarmonizationError as exc:
            raise HarmonizationError(f"batch variable {column!r}: {exc}") from None
        step = NestedStep(column, combat, fitted, single, list(X.columns), [], 0)
        harmonised = step.apply(X, labels, covariates)
        codes = pd.factorize(labels.loc[mask])[0]
        p = group_tests(harmonised.loc[mask].to_numpy(dtype=np.float64), codes)["kruskal_p"]
        significant = np.nan_to_num(p, nan=1.0) < self.alpha
        step.n_significant = int(significant.sum())
        return step, harmonised, significant

    def fit(
        self, X: Any, batches: pd.DataFrame, covariates: pd.DataFrame | None = None
    ) -> NestedComBat:
        """Choose the order and fit one ComBat per batch variable on training samples.

        Args:
            X: Training samples x features (DataFrame or array), finite values.
            batches: DataFrame with the ``batch_columns``, one row per sample (aligned on ``X``'s
                index when it has the same labels, else by position).
            covariates: Biological covariates to preserve (see :class:`ComBat`).

        Returns:
            ``self``.

        Raises:
            HarmonizationError: Bad inputs, every feature dropped, or a ComBat failure (named).
        """
        frame, _ = _frame(X)
        batch_frame = self._batches(batches, frame.index)
        cov = _aligned(covariates, frame.index, "covariates")
        current = frame
        remaining = list(self.batch_columns)
        self.order_: list[Hashable] = []
        self.skipped_: list[Hashable] = []
        self.steps_: list[NestedStep] = []
        self.rounds_: list[dict[Hashable, int]] = []
        self.dropped_features_: list[Hashable] = []
        while remaining:
            candidates: dict[Hashable, tuple[NestedStep, pd.DataFrame, np.ndarray]] = {}
            for column in list(remaining):
                result = self._fit_step(current, batch_frame[column], cov, column)
                if result is None:
                    log.warning(
                        "nested ComBat: %r has fewer than 2 levels with 2+ training samples; "
                        "not harmonised",
                        column,
                    )
                    self.skipped_.append(column)
                    remaining.remove(column)
                    continue
                candidates[column] = result
            if not candidates:
                break
            self.rounds_.append({c: r[0].n_significant for c, r in candidates.items()})
            best = min(
                candidates, key=lambda c: (candidates[c][0].n_significant, remaining.index(c))
            )
            step, current, significant = candidates[best]
            if step.passthrough_levels:
                log.warning(
                    "nested ComBat: %r level(s) %s have one training sample; left unchanged",
                    best,
                    step.passthrough_levels,
                )
            if self.drop and significant.any():
                step.dropped = [c for c, s in zip(current.columns, significant, strict=True) if s]
                if len(step.dropped) == current.shape[1]:
                    msg = f"nested ComBat: every feature still differs by {best!r} (drop=True)"
                    raise HarmonizationError(msg)
                current = current.drop(columns=step.dropped)
                self.dropped_features_ += step.dropped
            log.info(
                "nested ComBat round %d: %s (still significant: %s)",
                len(self.steps_) + 1,
                best,
                self.rounds_[-1],
            )
            self.steps_.append(step)
            self.order_.append(best)
            remaining.remove(best)
        self.feature_names_in_ = list(frame.columns)
        self.feature_names_out_ = list(current.columns)
        return self

    def transform(
        self, X: Any, batches: pd.DataFrame, covariates: pd.DataFrame | None = None
    ) -> Any:
        """Apply the fitted rounds in order (fitted parameters only).

        Args:
            X: Samples x the fitted features.
            batches: The batch variables of these samples.
            covariates: The covariates used at fit.

        Returns:
            The harmonised features (dropped ones removed): a DataFrame with ``X``'s index when
            ``X`` is a DataFrame, else an array.

        Raises:
            HarmonizationError: Unseen batch or covariate levels, missing features.
        """
        if not hasattr(self, "steps_"):
            msg = "NestedComBat is not fitted yet: call fit() on the training samples first"
            raise HarmonizationError(msg)
        frame, is_frame = _frame(X)
        missing = [c for c in self.feature_names_in_ if c not in frame.columns]
        if missing:
            msg = f"X: feature(s) {missing[:5]} used at fit are missing"
            raise HarmonizationError(msg)
        batch_frame = self._batches(batches, frame.index)
        cov = _aligned(covariates, frame.index, "covariates")
        current = frame[self.feature_names_in_]
        for step in self.steps_:
            current = step.apply(current[step.features], batch_frame[step.column], cov)
            if step.dropped:
                current = current.drop(columns=step.dropped)
        if is_frame:
            return current.set_axis(X.index, axis=0)
        return current.to_numpy()

    def fit_transform(
        self, X: Any, batches: pd.DataFrame, covariates: pd.DataFrame | None = None
    ) -> Any:
        """``fit`` then ``transform`` the same samples."""
        return self.fit(X, batches, covariates).transform(X, batches, covariates)
