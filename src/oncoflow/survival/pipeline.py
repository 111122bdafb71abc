"""In-fold feature pipeline and the cross-validated penalized Cox model.

:class:`SurvivalFeaturePipeline` is fit on training patients only and then applied to anyone:

1. median imputation of missing values (training medians; all-missing columns are dropped);
2. drop near-constant features (training sd <= ``near_constant * max(1, |mean|)``);
3. rank features by univariate strength ``|C - 0.5|``, with ``C`` Harrell's C-index of the
   feature as a risk score (it respects censoring, unlike a correlation with the time column);
4. correlation filter: walking down the ranking, a feature is kept only if its absolute Pearson
   correlation with every kept feature is ``<= corr_threshold`` - so of two features with
   ``|r| > corr_threshold`` the one with the higher univariate C strength stays;
5. keep the top ``k`` of the remaining ranking (plus the ``keep`` columns, always kept);
6. standard scaling with training mean and sd.

:class:`CoxPipelineCV` chooses ``k``, ``penalizer`` and ``l1_ratio`` by an inner stratified
(on the event) K-fold cross-validation on the training patients, scored by Harrell's C on the
inner validation folds, then refits pipeline + :class:`~oncoflow.survival.cox.CoxModel` on all
training patients with the best setting.
"""

from __future__ import annotations

import itertools
import logging
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from oncoflow.errors import ModelError
from oncoflow.metrics.survival import check_survival, concordance_pair_sums
from oncoflow.survival.cox import CoxModel, fit_coefficients

log = logging.getLogger(__name__)


def _to_frame(X: ArrayLike | pd.DataFrame) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        frame = X
    else:
        arr = np.asarray(X, dtype=float)
        frame = pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])
    try:
        return frame.astype(float)
    except (TypeError, ValueError) as exc:
        msg = f"features must be numeric ({exc})"
        raise ModelError(msg) from exc


def univariate_c(X: pd.DataFrame, time: np.ndarray, event: np.ndarray) -> pd.Series:
    """Harrell's C of each column of ``X`` used as a risk score (NaN when undefined)."""
    out = {}
    ones = np.ones(time.size)
    for col in X.columns:
        num, den = concordance_pair_sums(time, event, X[col].to_numpy(dtype=float), ones)
        out[col] = num / den if den > 0 else np.nan
    return pd.Series(out, dtype=float, name="c_index")


class SurvivalFeaturePipeline:
    """Impute, drop near-constant, rank by univariate C, decorrelate, top-k, scale.

    See the module docstring for the steps. Everything is learnt in :meth:`fit` from the
    training patients; :meth:`transform` only applies it.

    Attributes:
        univariate_c_: Harrell's C of each usable feature on the training patients.
        ranking_: Features that survived the filters, strongest first.
        selected_: The output columns (``keep`` columns first, then the top-k ranking).
        dropped_: Feature -> reason (``"all missing"``, ``"near-constant"``,
            ``"correlated with <feature>"``).
    """

    def __init__(
        self,
        k: int | None = None,
        corr_threshold: float = 0.9,
        near_constant: float = 1e-8,
        *,
        keep: Sequence[str] = (),
    ) -> None:
        """Configure the pipeline.

        Args:
            k: Number of ranked features to keep (``None`` = all that pass the filters).
            corr_threshold: Absolute Pearson correlation above which two features are redundant.
            near_constant: Relative sd below which a feature is constant.
            keep: Columns always kept (e.g. clinical variables): imputed and scaled, but neither
                filtered nor counted in ``k``.
        """
        if k is not None and k < 0:
            msg = f"k must be >= 0 or None, got {k}"
            raise ModelError(msg)
        self.k = k
        self.corr_threshold = float(corr_threshold)
        self.near_constant = float(near_constant)
        self.keep = tuple(keep)

    def fit(
        self, X: ArrayLike | pd.DataFrame, time: ArrayLike, event: ArrayLike
    ) -> SurvivalFeaturePipeline:
        """Learn imputation, filters, ranking and scaling from training patients.

        Returns:
            ``self``.

        Raises:
            ModelError: Invalid outcomes, a ``keep`` column missing from ``X``, or shape mismatch.
        """
        frame = _to_frame(X)
        t, e = check_survival(time, event, what="training outcomes")
        if len(frame) != t.size:
            msg = f"X has {len(frame)} rows but there are {t.size} outcomes"
            raise ModelError(msg)
        missing = [c for c in self.keep if c not in frame.columns]
        if missing:
            msg = f"kept column(s) not in the features: {', '.join(missing)}"
            raise ModelError(msg)
        self.columns_ = list(frame.columns)
        self.dropped_: dict[str, str] = {}
        values = frame.to_numpy(dtype=float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            median = np.nanmedian(values, axis=0)
        filled = np.where(np.isnan(values), median, values)
        mean = filled.mean(axis=0)
        sd = filled.std(axis=0)
        kept_cols = set(self.keep)
        candidates = []
        for i, col in enumerate(self.columns_):
            if np.isnan(median[i]):
                self.dropped_[col] = "all missing"
            elif col in kept_cols:
                continue
            elif not sd[i] > self.near_constant * max(1.0, abs(mean[i])):
                self.dropped_[col] = "near-constant"
            else:
                candidates.append(i)
        ones = np.ones(t.size)
        cvals = []
        for i in candidates:
            num, den = concordance_pair_sums(t, e, filled[:, i], ones)
            cvals.append(num / den if den > 0 else np.nan)
        self.univariate_c_ = pd.Series(
            cvals, index=[self.columns_[i] for i in candidates], dtype=float, name="c_index"
        )
        strength = np.nan_to_num(np.abs(np.asarray(cvals, dtype=float) - 0.5), nan=0.0)
        # strongest first; ties broken by column order (stable sort)
        ranked = [candidates[i] for i in np.argsort(-strength, kind="stable")]
        if len(ranked) > 1:
            corr = np.abs(np.corrcoef(filled[:, ranked], rowvar=False))
        else:
            corr = np.zeros((len(ranked), len(ranked)))
        kept_idx: list[int] = []
        for i, col in enumerate(ranked):
            partner = next((j for j in kept_idx if corr[i, j] > self.corr_threshold), None)
            if partner is None:
                kept_idx.append(i)
            else:
                other = self.columns_[ranked[partner]]
                self.dropped_[self.columns_[col]] = f"correlated with {other}"
        self.ranking_ = [self.columns_[ranked[i]] for i in kept_idx]
        self.median_ = pd.Series(median, index=self.columns_)
        self.mean_ = pd.Series(mean, index=self.columns_)
        self.sd_ = pd.Series(np.where(sd > 0, sd, 1.0), index=self.columns_)
        self._select()
        return self

    def _select(self) -> None:
        top = self.ranking_ if self.k is None else self.ranking_[: self.k]
        self.selected_ = [c for c in self.keep if c not in self.dropped_] + list(top)
        pos = {c: i for i, c in enumerate(self.columns_)}
        idx = [pos[c] for c in self.selected_]
        self._stats = (
            self.median_.to_numpy()[idx],
            self.mean_.to_numpy()[idx],
            self.sd_.to_numpy()[idx],
        )

    def with_k(self, k: int | None) -> SurvivalFeaturePipeline:
        """Return a copy of this fitted pipeline keeping the top ``k`` instead (no refit)."""
        if not hasattr(self, "ranking_"):
            msg = "SurvivalFeaturePipeline is not fitted: call fit() first"
            raise ModelError(msg)
        other = SurvivalFeaturePipeline(k, self.corr_threshold, self.near_constant, keep=self.keep)
        other.__dict__.update({a: v for a, v in self.__dict__.items() if a.endswith("_")})
        other.k = k
        other._select()
        return other

    def transform(self, X: ArrayLike | pd.DataFrame) -> pd.DataFrame:
        """Impute, select and scale ``X`` with the training statistics.

        Returns:
            DataFrame with columns :attr:`selected_` (same index as ``X`` when it is a DataFrame).

        Raises:
            ModelError: Not fitted or selected columns missing from ``X``.
        """
        if not hasattr(self, "selected_"):
            msg = "SurvivalFeaturePipeline is not fitted: call fit() first"
            raise ModelError(msg)
        frame = _to_frame(X)
        missing = [c for c in self.selected_ if c not in frame.columns]
        if missing:
            msg = f"features missing at transform time: {', '.join(map(str, missing[:5]))}"
            raise ModelError(msg)
        values = self.transform_array(frame[self.selected_].to_numpy(dtype=float))
        return pd.DataFrame(values, index=frame.index, columns=self.selected_)

    def transform_array(self, values: np.ndarray) -> np.ndarray:
        """:meth:`transform` of a plain array whose columns are already :attr:`selected_`."""
        median, mean, sd = self._stats
        return (np.where(np.isnan(values), median, values) - mean) / sd

    def fit_transform(
        self, X: ArrayLike | pd.DataFrame, time: ArrayLike, event: ArrayLike
    ) -> pd.DataFrame:
        """:meth:`fit` then :meth:`transform` on the same patients."""
        return self.fit(X, time, event).transform(X)


def stratified_folds(
    ids: Sequence[str], event: ArrayLike, n_folds: int, *, seed: int = 0
) -> np.ndarray:
    """Assign each patient to one of ``n_folds`` folds, stratified on the event indicator.

    Each patient gets a pseudo-random key from ``(seed, patient id)`` alone, so the assignment
    does not depend on row order. Within each event stratum, patients sorted by key are dealt
    round-robin to the folds (continuing across strata).

    Returns:
        Fold number (0 .. n_folds - 1) per patient, aligned with ``ids``.
    """
    e = np.asarray(event).astype(int)
    keys = np.array([_patient_key(seed, str(p)) for p in ids])
    fold = np.empty(len(ids), dtype=int)
    position = 0
    for stratum in (1, 0):
        members = np.flatnonzero(e == stratum)
        members = members[np.argsort(keys[members], kind="stable")]
        fold[members] = (position + np.arange(members.size)) % n_folds
        position += members.size
    return fold


def _patient_key(seed: int, patient: str) -> float:
    """Uniform [0, 1) key of a patient, from the seed and the patient id only."""
    return float(np.random.default_rng([int(seed), zlib.crc32(patient.encode())]).random())


@dataclass(frozen=True)
class CVResult:
    """One hyper-parameter setting and its inner cross-validation score."""

    k: int | None
    penalizer: float
    l1_ratio: float
    c_index: float
    """Mean Harrell C over the inner validation folds (NaN folds skipped)."""


class CoxPipelineCV:
    """:class:`SurvivalFeaturePipeline` + :class:`CoxModel` with hyper-parameters from inner CV.

    Attributes:
        best_: The chosen :class:`CVResult`.
        cv_results_: All settings with their inner CV score.
        pipeline_: The pipeline refit on all training patients with the best ``k``.
        model_: The Cox model refit on all training patients.
    """

    def __init__(
        self,
        *,
        k_grid: Sequence[int | None] = (2, 4, 8),
        penalizer_grid: Sequence[float] = (0.01, 0.1, 1.0),
        l1_grid: Sequence[float] = (0.0, 0.5),
        inner_folds: int = 3,
        corr_threshold: float = 0.9,
        near_constant: float = 1e-8,
        keep: Sequence[str] = (),
        seed: int = 0,
    ) -> None:
        """Configure the grid.

        Args:
            k_grid: Candidate numbers of ranked features (values above the number available are
                merged; ``None`` = all).
            penalizer_grid: Candidate penalties (lifelines' ``penalizer``).
            l1_grid: Candidate L1 shares.
            inner_folds: Number of inner stratified folds (reduced when there are fewer events).
            corr_threshold: Correlation filter threshold of the pipeline.
            near_constant: Near-constant threshold of the pipeline.
            keep: Columns always kept by the pipeline (e.g. clinical variables).
            seed: Seed of the inner fold assignment.
        """
        self.k_grid = tuple(k_grid)
        self.penalizer_grid = tuple(penalizer_grid)
        self.l1_grid = tuple(l1_grid)
        self.inner_folds = int(inner_folds)
        self.corr_threshold = corr_threshold
        self.near_constant = near_constant
        self.keep = tuple(keep)
        self.seed = int(seed)

    def _pipeline(self) -> SurvivalFeaturePipeline:
        return SurvivalFeaturePipeline(
            None, self.corr_threshold, self.near_constant, keep=self.keep
        )

    def _ks(self, n_ranked: int) -> list[int | None]:
        ks: list[int | None] = []
        for k in self.k_grid:
            eff = n_ranked if k is None else min(int(k), n_ranked)
            if eff not in ks:
                ks.append(eff)
        if not self.keep:
            ks = [k for k in ks if k != 0] or [n_ranked]
        return ks

    def fit(self, X: pd.DataFrame, time: ArrayLike, event: ArrayLike) -> CoxPipelineCV:
        """Choose hyper-parameters by inner CV, then refit on all of ``X``.

        Args:
            X: Training patients x features (index = patient ids, used for the fold keys).
            time: Follow-up times.
            event: 1 = event happened, 0 = censored.

        Returns:
            ``self``.

        Raises:
            ModelError: Invalid inputs, no events, or no usable feature.
        """
        frame = _to_frame(X)
        t, e = check_survival(time, event, what="training outcomes")
        if e.sum() == 0:
            msg = f"no events among {t.size} training patients"
            raise ModelError(msg)
        ids = [str(i) for i in frame.index]
        n_folds = max(2, min(self.inner_folds, int(e.sum()), int(t.size - e.sum()) or 2))
        folds = stratified_folds(ids, e, n_folds, seed=self.seed)
        settings = list(itertools.product(self.penalizer_grid, self.l1_grid))
        scores: dict[tuple[int | None, float, float], list[float]] = {}
        for f in range(n_folds):
            fit, val = folds != f, folds == f
            if e[fit].sum() == 0:
                continue
            pipe = self._pipeline().fit(frame[fit], t[fit], e[fit])
            # selected_ = keep + ranking[:k]: every k is a column prefix of the full transform
            full = pipe.with_k(None)
            z_fit = full.transform(frame[fit]).to_numpy()
            z_val = full.transform(frame[val]).to_numpy()
            n_keep = len(full.selected_) - len(full.ranking_)
            ones = np.ones(int(val.sum()))
            for k in self._ks(len(pipe.ranking_)):
                width = n_keep + (len(pipe.ranking_) if k is None else k)
                for pen, l1 in settings:
                    score = np.nan
                    if width > 0:
                        beta, _ = fit_coefficients(
                            z_fit[:, :width], t[fit], e[fit], penalizer=pen, l1_ratio=l1
                        )
                        risk = z_val[:, :width] @ beta
                        if np.isfinite(risk).all():
                            num, den = concordance_pair_sums(t[val], e[val], risk, ones)
                            score = num / den if den > 0 else np.nan
                    scores.setdefault((k, pen, l1), []).append(score)
        results = []
        for (k, pen, l1), vals in scores.items():
            arr = np.asarray(vals, dtype=float)
            mean = float(np.nanmean(arr)) if np.isfinite(arr).any() else np.nan
            results.append(CVResult(k, pen, l1, mean))
        self.cv_results_ = results
        ranked = [r for r in results if np.isfinite(r.c_index)]
        if ranked:
            # best C; ties -> fewer features, stronger penalty, less L1
            self.best_ = max(
                ranked,
                key=lambda r: (round(r.c_index, 12), -(r.k or 0), r.penalizer, -r.l1_ratio),
            )
        else:
            pen = max(self.penalizer_grid)
            self.best_ = CVResult(None, pen, min(self.l1_grid), np.nan)
            log.warning("inner CV gave no score; using all features with penalizer %g", pen)
        self.pipeline_ = self._pipeline().fit(frame, t, e)
        k_best = self.best_.k
        if k_best is not None:
            k_best = min(k_best, len(self.pipeline_.ranking_))
        self.pipeline_ = self.pipeline_.with_k(k_best)
        z = self.pipeline_.transform(frame)
        if z.shape[1] == 0:
            msg = "no usable feature left after the near-constant and correlation filters"
            raise ModelError(msg)
        self.model_ = CoxModel(self.best_.penalizer, self.best_.l1_ratio).fit(z, t, e)
        return self

    def predict_risk(self, X: pd.DataFrame) -> np.ndarray:
        """Risk score (Cox linear predictor; higher = earlier event) of any patients."""
        return self.model_.predict_risk(self.pipeline_.transform(X))

    def predict_survival(self, X: pd.DataFrame, times: ArrayLike) -> np.ndarray:
        """Survival probabilities (patients x times) of any patients."""
        return self.model_.predict_survival(self.pipeline_.transform(X), times)
