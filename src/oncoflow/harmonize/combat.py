r"""ComBat harmonisation (location/scale batch adjustment with empirical-Bayes shrinkage).

The model (Johnson, Li & Rabinovic 2007, as in ``sva::ComBat`` and ``neuroCombat``) writes feature
``g`` of sample ``j`` in batch ``i`` as

.. math::

    y_{ijg} = \alpha_g + x_j^\top \beta_g + \gamma_{ig} + \delta_{ig} \varepsilon_{ijg},
    \qquad \varepsilon_{ijg} \sim N(0, \sigma_g^2),

where ``x_j`` holds the biological covariates to preserve. Fitting (training samples only):

1. OLS of every feature on ``[batch one-hot | covariates]`` gives ``B_hat``; the grand mean
   ``alpha_g = sum_i (n_i / n) B_hat[i, g]`` (or the reference batch's coefficient), the covariate
   effects ``beta_g`` and the pooled variance ``sigma_g^2 = mean_j (y_jg - design_j B_hat_g)^2``
   (over the reference batch only when one is set).
2. Standardise: ``z_jg = (y_jg - alpha_g - x_j^T beta_g) / sigma_g``.
3. Batch estimates: ``gamma_hat_ig`` = OLS of ``z`` on the batch one-hot, ``delta_hat_ig`` =
   within-batch variance of ``z`` (ddof 1; fixed to 1 with ``mean_only``).
4. Empirical Bayes (``eb=True``): ``gamma ~ N(gamma_bar_i, tau_i^2)`` and
   ``delta ~ InvGamma(a_i, b_i)`` with method-of-moments hyper-parameters over features; the
   parametric posterior means are found by the fixed-point iteration of ``it.sol`` (relative change
   < 1e-4); the non-parametric version weights the other features' ``(gamma_hat, delta_hat)`` by
   the normal likelihood of this feature's standardised data (Monte-Carlo integration over the
   empirical prior).  ``eb=False`` uses ``gamma_hat`` / ``delta_hat`` as they are.

Applying (any samples, fitted parameters only):
``y*_jg = (z_jg - gamma*_ig) / sqrt(delta*_ig) * sigma_g + alpha_g + x_j^T beta_g``; the
reference batch (if any) is returned unchanged. All quantities are in the units of the input
features.

Example:
    >>> combat = ComBat(parametric=True, eb=True)  # doctest: +SKIP
    >>> train_h = combat.fit_transform(X_train, site_train, covariates=clin_train)  # doctest: +SKIP
    >>> test_h = combat.transform(X_test, site_test, covariates=clin_test)  # doctest: +SKIP
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

CONVERGENCE = 1e-4
"""Relative change at which the parametric EB iteration stops (as sva / neuroCombat)."""

MAX_ITER = 10_000
"""Safety cap on the parametric EB iteration (never reached on sane data; logged if it is)."""

_CHUNK_ELEMENTS = 4_000_000
"""Features x features block size of the non-parametric integration (~32 MB of float64)."""


# ---------------------------------------------------------------------------------------------
# input handling
# ---------------------------------------------------------------------------------------------


def _names_list(values: Sequence[Any], limit: int = 5) -> str:
    shown = ", ".join(repr(v) if not isinstance(v, str) else v for v in list(values)[:limit])
    more = len(values) - limit
    return f"{shown} (+{more} more)" if more > 0 else shown


def _as_matrix(X: Any, what: str = "X") -> tuple[np.ndarray, pd.Index | None, pd.Index]:
    """Return ``(values float64 n x F, column names or None, row labels)``."""
    if isinstance(X, pd.DataFrame):
        non_numeric = [
            c
            for c, dtype in zip(X.columns, X.dtypes, strict=True)
            if not pd.api.types.is_numeric_dtype(dtype)
        ]
        if non_numeric:
            msg = f"{what}: non-numeric feature column(s) {_names_list(non_numeric)}"
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
            f"{what}: NaN or infinite values in feature(s) {_names_list(names)}; "
            f"first one in row(s) {_names_list(first_rows)}; impute or drop them before ComBat"
        )
        raise HarmonizationError(msg)
    return values, columns, rows


def _align(obj: Any, rows: pd.Index, n: int, x_is_frame: bool, what: str) -> Any:
    """Align a Series / DataFrame to the rows of X (by index when possible, else by position)."""
    if isinstance(obj, pd.Series | pd.DataFrame):
        if x_is_frame and obj.index.is_unique and rows.isin(obj.index).all():
            return obj.loc[rows]
        if len(obj) != n:
            msg = f"{what} has {len(obj)} rows but X has {n} samples"
            raise HarmonizationError(msg)
        return obj
    return obj


def _as_batch(batch: Any, rows: pd.Index, n: int, x_is_frame: bool) -> np.ndarray:
    batch = _align(batch, rows, n, x_is_frame, "batch")
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
        msg = f"batch: missing batch label for row(s) {_names_list(missing)}"
        raise HarmonizationError(msg)
    return values


def _sorted_levels(values: Sequence[Any]) -> list[Any]:
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
                    f"covariate {column!r}: missing value(s) in row(s) {_names_list(list(missing))}"
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
                    levels = _sorted_levels(series.tolist())
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
            msg = f"covariates: column(s) {_names_list(absent)} were used at fit but are missing"
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
                    f"covariate {column!r}: level(s) {_names_list(unseen)} not seen at fit "
                    f"(fitted levels: {_names_list(levels, 20)})"
                )
                raise HarmonizationError(msg)
            onehot = np.array([[v == level for level in levels[1:]] for v in values], dtype=float)
            blocks.append(onehot.reshape(len(values), len(levels) - 1))
        if not blocks:
            return np.zeros((len(frame), 0))
        return np.hstack(blocks)


# ---------------------------------------------------------------------------------------------
# empirical Bayes pieces
# ---------------------------------------------------------------------------------------------


def _inverse_gamma_priors(delta_hat: np.ndarray) -> tuple[float, float]:
    """Method-of-moments inverse-gamma hyper-parameters ``(a, b)`` from one batch's variances.

    ``a = (2 s^2 + m^2) / s^2`` and ``b = (m s^2 + m^3) / s^2`` with ``m``, ``s^2`` the mean and
    variance (ddof 1) of ``delta_hat`` over features.
    """
    m = float(np.mean(delta_hat))
    s2 = float(np.var(delta_hat, ddof=1))
    if not np.isfinite(s2) or s2 <= 0:
        msg = "the batch variances are identical for all features: the inverse-gamma prior is "
        msg += "undefined; use eb=False or mean_only=True"
        raise HarmonizationError(msg)
    return (2 * s2 + m**2) / s2, (m * s2 + m**3) / s2


def _parametric_eb(
    z: np.ndarray,
    gamma_hat: np.ndarray,
    delta_hat: np.ndarray,
    gamma_bar: float,
    t2: float,
    a: float,
    b: float,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Parametric posterior ``(gamma*, delta*)`` of one batch by fixed-point iteration.

    ``gamma* = (n t2 gamma_hat + delta* gamma_bar) / (n t2 + delta*)`` and
    ``delta* = (sum_j (z_j - gamma*)^2 / 2 + b) / (n / 2 + a - 1)``, iterated until the largest
    relative change ``max((g_new - g_old) / g_old, (d_new - d_old) / d_old)`` (signed
    denominators, as ``sva``'s ``it.sol``) is at most :data:`CONVERGENCE`.

    Args:
        z: Standardised data of the batch, samples x features.
        gamma_hat: Raw location estimates (features).
        delta_hat: Raw scale estimates (features).
        gamma_bar: Prior mean of gamma.
        t2: Prior variance of gamma.
        a: Inverse-gamma shape.
        b: Inverse-gamma scale.

    Returns:
        ``(gamma_star, delta_star, iterations)``.
    """
    n = z.shape[0]
    mean = z.mean(axis=0)
    ss = ((z - mean) ** 2).sum(axis=0)
    g_old, d_old = gamma_hat.copy(), delta_hat.copy()
    for iteration in range(1, MAX_ITER + 1):
        g_new = (t2 * n * gamma_hat + d_old * gamma_bar) / (t2 * n + d_old)
        sum2 = ss + n * (mean - g_new) ** 2
        d_new = (0.5 * sum2 + b) / (n / 2.0 + a - 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.concatenate([np.abs(g_new - g_old) / g_old, np.abs(d_new - d_old) / d_old])
        finite = ratios[~np.isnan(ratios)]
        change = float(finite.max()) if finite.size else 0.0
        g_old, d_old = g_new, d_new
        if not change > CONVERGENCE:
            return g_new, d_new, iteration
    log.warning("parametric ComBat did not converge in %d iterations", MAX_ITER)
    return g_old, d_old, MAX_ITER


def _nonparametric_eb(
    z: np.ndarray, gamma_hat: np.ndarray, delta_hat: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Non-parametric posterior ``(gamma*, delta*)`` of one batch.

    For feature ``g`` the other features' estimates ``(gamma_hat_k, delta_hat_k)``, ``k != g``,
    are an empirical prior; each is weighted by the likelihood of the feature's standardised data
    ``L_k = (2 pi delta_k)^(-n/2) exp(-sum_j (z_jg - gamma_k)^2 / (2 delta_k))`` and
    ``gamma*_g = sum_k L_k gamma_k / sum_k L_k`` (same for ``delta``). Computed in log space, so
    large batches do not underflow to 0/0.
    """
    n, n_features = z.shape
    mean = z.mean(axis=0)
    ss = ((z - mean) ** 2).sum(axis=0)
    log_norm = -0.5 * n * np.log(2 * np.pi * delta_hat)
    gamma_star = np.empty(n_features)
    delta_star = np.empty(n_features)
    chunk = max(1, _CHUNK_ELEMENTS // max(n_features, 1))
    for start in range(0, n_features, chunk):
        stop = min(start + chunk, n_features)
        sum2 = ss[start:stop, None] + n * (mean[start:stop, None] - gamma_hat[None, :]) ** 2
        log_lh = log_norm[None, :] - sum2 / (2 * delta_hat[None, :])
        rows = np.arange(stop - start)
        log_lh[rows, rows + start] = -np.inf
        log_lh -= log_lh.max(axis=1, keepdims=True)
        weights = np.exp(log_lh)
        total = weights.sum(axis=1)
        gamma_star[start:stop] = weights @ gamma_hat / total
        delta_star[start:stop] = weights @ delta_hat / total
    return gamma_star, delta_star


# ---------------------------------------------------------------------------------------------
# the estimator
# ---------------------------------------------------------------------------------------------


class ComBat:
    """ComBat batch harmonisation with an sklearn-style ``fit`` / ``transform``.

    Matches ``neuroCombat`` 0.2.12 / ``sva::ComBat`` numerically on the training data (see the
    module docstring for the model). ``transform`` applies only fitted parameters, so new samples
    (test patients) never influence the harmonisation of anyone.

    Degenerate cases:

    * a feature that is constant on the training samples, or whose pooled residual variance is
      zero (fully explained by the design), is passed through unchanged and listed in
      :attr:`constant_features_`; it does not enter the empirical-Bayes priors (neuroCombat would
      give it a made-up variance and let it bias the priors);
    * a batch with one training sample raises :class:`HarmonizationError` (its scale cannot be
      estimated) unless ``mean_only=True``; the reference batch needs at least two samples;
    * NaN / infinite features or covariates, a batch or covariate level unseen at fit, fewer than
      two batches, and a design where covariates are confounded with batch raise
      :class:`HarmonizationError` naming the column, level or batch.

    Args:
        parametric: Parametric (normal / inverse-gamma) priors; ``False`` = non-parametric.
        eb: Empirical-Bayes shrinkage of the batch estimates; ``False`` uses the raw L/S estimates.
        mean_only: Adjust only the batch location (scale fixed to 1).
        ref_batch: Batch label left unchanged; the others are mapped onto it (mean and variance
            are those of the reference batch). ``None``: the pooled mean / variance.

    Attributes:
        batches_: Batch labels seen at fit (sorted).
        n_features_in_: Number of features.
        feature_names_in_: Feature names (DataFrame input) or ``None``.
        constant_features_: Names (or column indices for arrays) passed through unchanged.
        covariate_names_: Design-matrix column names of the covariates.
        grand_mean_: ``alpha_g`` per feature.
        beta_: Covariate coefficients, covariates x features.
        var_pooled_: ``sigma_g^2`` per feature.
        gamma_hat_, delta_hat_: Raw batch estimates, batches x features.
        gamma_star_, delta_star_: Adjustments applied, batches x features.
        gamma_bar_, t2_, a_prior_, b_prior_: Empirical-Bayes hyper-parameters per batch.
        n_iter_: Parametric iterations per batch (0 where not iterated).
    """

    def __init__(
        self,
        parametric: bool = True,
        eb: bool = True,
        mean_only: bool = False,
        ref_batch: Hashable | None = None,
    ) -> None:
        self.parametric = parametric
        self.eb = eb
        self.mean_only = mean_only
        self.ref_batch = ref_batch

    # -- helpers -------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "batches_"):
            msg = "ComBat is not fitted yet: call fit() on the training samples first"
            raise HarmonizationError(msg)

    def _covariate_frame(
        self, covariates: pd.DataFrame | None, rows: pd.Index, n: int, x_is_frame: bool
    ) -> pd.DataFrame | None:
        if covariates is None:
            return None
        if not isinstance(covariates, pd.DataFrame):
            msg = "covariates must be a pandas DataFrame (categorical = object/category columns)"
            raise HarmonizationError(msg)
        frame = _align(covariates, rows, n, x_is_frame, "covariates")
        return frame.set_axis(rows, axis=0) if len(frame) == n else frame

    def _batch_index(self, batch: np.ndarray, rows: pd.Index) -> np.ndarray:
        lookup = {level: i for i, level in enumerate(self.batches_)}
        unseen = [v for v in dict.fromkeys(batch.tolist()) if v not in lookup]
        if unseen:
            msg = (
                f"batch(es) {_names_list(unseen)} not seen when ComBat was fit "
                f"(fitted batches: {_names_list(list(self.batches_), 20)}); "
                "a batch must have training samples to be harmonised"
            )
            raise HarmonizationError(msg)
        return np.array([lookup[v] for v in batch.tolist()], dtype=int)

    # -- API -----------------------------------------------------------------------------------

    def fit(self, X: Any, batch: Any, covariates: pd.DataFrame | None = None) -> ComBat:
        """Estimate the ComBat parameters on training samples.

        Args:
            X: Samples x features (numpy array or DataFrame), finite values.
            batch: One batch label per sample (array-like or Series aligned on ``X``'s index).
            covariates: Biological covariates to preserve (DataFrame, one row per sample).

        Returns:
            ``self``.

        Raises:
            HarmonizationError: On any of the degenerate inputs listed in the class docstring.
        """
        values, columns, rows = _as_matrix(X)
        n, n_features = values.shape
        x_is_frame = isinstance(X, pd.DataFrame)
        labels = _as_batch(batch, rows, n, x_is_frame)
        levels = _sorted_levels(labels.tolist())
        if len(levels) < 2:
            msg = f"ComBat needs at least 2 batches in the training data, got {_names_list(levels)}"
            raise HarmonizationError(msg)
        lookup = {level: i for i, level in enumerate(levels)}
        codes = np.array([lookup[v] for v in labels.tolist()], dtype=int)
        counts = np.bincount(codes, minlength=len(levels))
        ref: int | None = None
        if self.ref_batch is not None:
            if self.ref_batch not in lookup:
                msg = (
                    f"reference batch {self.ref_batch!r} not in the training data "
                    f"(batches: {_names_list(levels, 20)})"
                )
                raise HarmonizationError(msg)
            ref = lookup[self.ref_batch]
            if counts[ref] < 2:
                msg = f"reference batch {self.ref_batch!r} has {counts[ref]} training sample(s); "
                msg += "it needs at least 2 to estimate the reference variance"
                raise HarmonizationError(msg)
        singletons = [levels[i] for i in np.flatnonzero(counts < 2)]
        if singletons and not self.mean_only:
            msg = (
                f"batch(es) {_names_list(singletons)} have a single training sample: their scale "
                "cannot be estimated; merge or drop them, or use mean_only=True"
            )
            raise HarmonizationError(msg)

        encoder = _CovariateEncoder()
        frame = self._covariate_frame(covariates, rows, n, x_is_frame)
        covariate_matrix = (
            encoder.fit(frame).transform(frame) if frame is not None else np.zeros((n, 0))
        )
        batch_design = np.zeros((n, len(levels)))
        batch_design[np.arange(n), codes] = 1.0
        if ref is not None:
            batch_design[:, ref] = 1.0
        design = np.hstack([batch_design, covariate_matrix])
        if np.linalg.matrix_rank(design) < design.shape[1]:
            msg = "the design [batch | covariates] is rank-deficient: a covariate is confounded "
            msg += f"with batch or with another covariate ({_names_list(encoder.names, 20)})"
            raise HarmonizationError(msg)
        if n <= design.shape[1]:
            msg = (
                f"{n} training samples cannot fit {design.shape[1]} design parameters "
                f"({len(levels)} batches + {covariate_matrix.shape[1]} covariate column(s)): no "
                "residual left to estimate the feature variances; use more training samples or "
                "fewer covariates"
            )
            raise HarmonizationError(msg)

        B_hat = np.linalg.lstsq(design, values, rcond=None)[0]
        n_batch = len(levels)
        grand_mean = B_hat[ref] if ref is not None else (counts / n) @ B_hat[:n_batch]
        beta = B_hat[n_batch:]
        residual = values - design @ B_hat
        var_rows = codes == ref if ref is not None else np.ones(n, dtype=bool)
        var_pooled = (residual[var_rows] ** 2).mean(axis=0)

        scale = np.maximum(values.var(axis=0), np.abs(values).max(axis=0) ** 2)
        passthrough = (np.ptp(values, axis=0) == 0) | (var_pooled <= 1e-24 * scale)
        keep = ~passthrough
        names = list(columns) if columns is not None else list(range(n_features))
        if passthrough.any():
            log.warning(
                "%d feature(s) constant or fully explained by the design on the training data; "
                "passed through unchanged: %s",
                int(passthrough.sum()),
                _names_list([names[i] for i in np.flatnonzero(passthrough)]),
            )
        n_keep = int(keep.sum())
        if self.eb and n_keep < 2:
            msg = f"empirical Bayes needs at least 2 non-constant features, got {n_keep}; "
            msg += "use eb=False"
            raise HarmonizationError(msg)

        mod = covariate_matrix @ beta
        z = (values[:, keep] - grand_mean[keep] - mod[:, keep]) / np.sqrt(var_pooled[keep])
        gamma_hat = np.linalg.lstsq(batch_design, z, rcond=None)[0]
        if self.mean_only:
            delta_hat = np.ones((n_batch, n_keep))
        else:
            delta_hat = np.vstack([z[codes == i].var(axis=0, ddof=1) for i in range(n_batch)])
            delta_hat[delta_hat == 0] = 1.0

        gamma_star = gamma_hat.copy()
        delta_star = delta_hat.copy()
        gamma_bar = np.full(n_batch, np.nan)
        t2 = np.full(n_batch, np.nan)
        a_prior = np.full(n_batch, np.nan)
        b_prior = np.full(n_batch, np.nan)
        n_iter = np.zeros(n_batch, dtype=int)
        if self.eb:
            gamma_bar = gamma_hat.mean(axis=1)
            t2 = gamma_hat.var(axis=1, ddof=1)
            for i, level in enumerate(levels):
                if i == ref:
                    continue
                rows_i = codes == i
                if not self.parametric:
                    gamma_star[i], delta_star[i] = _nonparametric_eb(
                        z[rows_i], gamma_hat[i], delta_hat[i]
                    )
                elif self.mean_only:
                    gamma_star[i] = (t2[i] * gamma_hat[i] + gamma_bar[i]) / (t2[i] + 1.0)
                else:
                    try:
                        a_prior[i], b_prior[i] = _inverse_gamma_priors(delta_hat[i])
                    except HarmonizationError as exc:
                        raise HarmonizationError(f"batch {level!r}: {exc}") from None
                    gamma_star[i], delta_star[i], n_iter[i] = _parametric_eb(
                        z[rows_i],
                        gamma_hat[i],
                        delta_hat[i],
                        gamma_bar[i],
                        t2[i],
                        a_prior[i],
                        b_prior[i],
                    )
        if self.mean_only:
            delta_star[:] = 1.0
        if ref is not None:
            gamma_star[ref] = 0.0
            delta_star[ref] = 1.0

        def full(block: np.ndarray, fill: float) -> np.ndarray:
            out = np.full((n_batch, n_features), fill)
            out[:, keep] = block
            return out

        self.batches_ = np.array(levels, dtype=object)
        self.batch_counts_ = counts
        self.ref_index_ = ref
        self.n_features_in_ = n_features
        self.feature_names_in_ = columns
        self.constant_features_ = [names[i] for i in np.flatnonzero(passthrough)]
        self.keep_ = keep
        self.encoder_ = encoder
        self.covariate_names_ = list(encoder.names)
        self.grand_mean_ = grand_mean
        self.beta_ = beta
        self.var_pooled_ = var_pooled
        self.gamma_hat_ = full(gamma_hat, 0.0)
        self.delta_hat_ = full(delta_hat, 1.0)
        self.gamma_star_ = full(gamma_star, 0.0)
        self.delta_star_ = full(delta_star, 1.0)
        self.gamma_bar_, self.t2_ = gamma_bar, t2
        self.a_prior_, self.b_prior_ = a_prior, b_prior
        self.n_iter_ = n_iter
        log.info(
            "ComBat fit: %d samples, %d batches, %d features (%d passed through), %s",
            n,
            n_batch,
            n_features,
            int(passthrough.sum()),
            self._describe(),
        )
        return self

    def _describe(self) -> str:
        kind = "parametric" if self.parametric else "non-parametric"
        parts = [kind if self.eb else "no EB", "mean only" if self.mean_only else "mean+scale"]
        if self.ref_batch is not None:
            parts.append(f"reference batch {self.ref_batch!r}")
        return ", ".join(parts)

    def transform(
        self,
        X: Any,
        batch: Any,
        covariates: pd.DataFrame | None = None,
        *,
        unseen: str = "error",
    ) -> Any:
        """Harmonise samples with the fitted parameters only.

        Args:
            X: Samples x features with the fitted features (DataFrame columns may be reordered).
            batch: One batch label per sample.
            covariates: The covariates used at fit (same columns), one row per sample.
            unseen: What to do with a batch not seen at fit (e.g. a held-out external site):
                ``"error"`` (default), or ``"estimate"``: keep every fitted parameter (grand mean,
                covariate effects, pooled variance) and estimate only that batch's location and
                scale, with the same empirical-Bayes priors, from its own samples' features
                (never from outcomes); the batch needs at least 2 samples (1 with mean_only).

        Returns:
            The harmonised features: a DataFrame with ``X``'s index and columns when ``X`` is a
            DataFrame, else a float64 array.

        Raises:
            HarmonizationError: Unseen batch or covariate level, missing columns, NaN values.
        """
        self._check_fitted()
        if isinstance(X, pd.DataFrame) and self.feature_names_in_ is not None:
            missing = [c for c in self.feature_names_in_ if c not in X.columns]
            fitted = set(self.feature_names_in_)
            extra = [c for c in X.columns if c not in fitted]
            if missing or extra:
                msg = "X: features differ from fit"
                msg += f"; missing {_names_list(missing)}" if missing else ""
                msg += f"; unexpected {_names_list(extra)}" if extra else ""
                raise HarmonizationError(msg)
            ordered = X[list(self.feature_names_in_)]
        else:
            ordered = X
        values, _, rows = _as_matrix(ordered)
        n, n_features = values.shape
        if n_features != self.n_features_in_:
            msg = f"X has {n_features} features, ComBat was fit with {self.n_features_in_}"
            raise HarmonizationError(msg)
        x_is_frame = isinstance(X, pd.DataFrame)
        if unseen not in ("error", "estimate"):
            msg = f"unseen must be 'error' or 'estimate', got {unseen!r}"
            raise HarmonizationError(msg)
        labels = _as_batch(batch, rows, n, x_is_frame)
        new_levels = [v for v in dict.fromkeys(labels.tolist()) if v not in set(self.batches_)]
        if unseen == "error" or not new_levels:
            codes = self._batch_index(labels, rows)
        frame = self._covariate_frame(covariates, rows, n, x_is_frame)
        if self.encoder_.kinds:
            if frame is None:
                msg = f"covariates {_names_list(list(self.encoder_.kinds))} were used at fit; "
                msg += "pass them to transform as well"
                raise HarmonizationError(msg)
            mod = self.encoder_.transform(frame) @ self.beta_
        else:
            mod = np.zeros((n, n_features))

        sd = np.sqrt(self.var_pooled_)
        keep = self.keep_
        out = values.copy()
        centre = self.grand_mean_[keep] + mod[:, keep]
        z = (values[:, keep] - centre) / sd[keep]
        gamma_star, delta_star = self.gamma_star_[:, keep], self.delta_star_[:, keep]
        if unseen == "estimate" and new_levels:
            extra_gamma, extra_delta = [], []
            for level in new_levels:
                g, d = self._estimate_batch(z[labels == level], level)
                extra_gamma.append(g)
                extra_delta.append(d)
            gamma_star = np.vstack([gamma_star, *extra_gamma])
            delta_star = np.vstack([delta_star, *extra_delta])
            lookup = {level: i for i, level in enumerate([*self.batches_, *new_levels])}
            codes = np.array([lookup[v] for v in labels.tolist()], dtype=int)
            log.info(
                "ComBat: batch(es) %s unseen at fit, location/scale estimated from their own %d "
                "sample(s)",
                _names_list(new_levels),
                int(np.isin(labels, new_levels).sum()),
            )
        gamma = gamma_star[codes]
        adjusted = (z - gamma) / np.sqrt(delta_star[codes])
        out[:, keep] = adjusted * sd[keep] + centre
        if self.ref_index_ is not None:
            out[codes == self.ref_index_] = values[codes == self.ref_index_]
        if isinstance(X, pd.DataFrame):
            result = pd.DataFrame(out, index=X.index, columns=ordered.columns)
            return result[X.columns]
        return out

    def _estimate_batch(self, z: np.ndarray, level: Any) -> tuple[np.ndarray, np.ndarray]:
        """Location/scale (after EB, as configured) of a batch unseen at fit from its samples.

        ``z`` are the batch's samples standardised with the fitted parameters (kept features).
        """
        n_rows = z.shape[0]
        if n_rows < (1 if self.mean_only else 2):
            msg = f"batch {level!r} was not seen at fit and has {n_rows} sample(s): its scale "
            msg += "cannot be estimated (use mean_only=True or harmonise it with more samples)"
            raise HarmonizationError(msg)
        gamma_hat = z.mean(axis=0)
        delta_hat = np.ones_like(gamma_hat) if self.mean_only else z.var(axis=0, ddof=1)
        delta_hat[delta_hat == 0] = 1.0
        if not self.eb:
            return gamma_hat, delta_hat
        if not self.parametric:
            gamma_star, delta_star = _nonparametric_eb(z, gamma_hat, delta_hat)
        elif self.mean_only:
            gamma_bar, t2 = gamma_hat.mean(), gamma_hat.var(ddof=1)
            gamma_star = (t2 * gamma_hat + gamma_bar) / (t2 + 1.0)
            delta_star = delta_hat
        else:
            a_prior, b_prior = _inverse_gamma_priors(delta_hat)
            gamma_star, delta_star, _ = _parametric_eb(
                z, gamma_hat, delta_hat, gamma_hat.mean(), gamma_hat.var(ddof=1), a_prior, b_prior
            )
        if self.mean_only:
            delta_star = np.ones_like(gamma_star)
        return gamma_star, delta_star

    def fit_transform(self, X: Any, batch: Any, covariates: pd.DataFrame | None = None) -> Any:
        """``fit`` on ``X`` then ``transform`` the same samples (identical to doing both)."""
        return self.fit(X, batch, covariates).transform(X, batch, covariates)
