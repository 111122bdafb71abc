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
from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.errors import HarmonizationError
from oncoflow.harmonize.eb import (
    CONVERGENCE,
    MAX_ITER,
    batch_eb,
    inverse_gamma_priors,
    nonparametric_eb,
    parametric_eb,
)
from oncoflow.harmonize.inputs import (
    _CovariateEncoder,
    align,
    as_batch,
    as_matrix,
    design_matrices,
    names_list,
    sorted_levels,
)

log = logging.getLogger(__name__)

__all__ = ["CONVERGENCE", "MAX_ITER", "ComBat"]


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
        frame = align(covariates, rows, n, x_is_frame, "covariates")
        return frame.set_axis(rows, axis=0) if len(frame) == n else frame

    def _batch_index(self, batch: np.ndarray, rows: pd.Index) -> np.ndarray:
        lookup = {level: i for i, level in enumerate(self.batches_)}
        unseen = [v for v in dict.fromkeys(batch.tolist()) if v not in lookup]
        if unseen:
            msg = (
                f"batch(es) {names_list(unseen)} not seen when ComBat was fit "
                f"(fitted batches: {names_list(list(self.batches_), 20)}); "
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
        values, columns, rows = as_matrix(X)
        n, n_features = values.shape
        x_is_frame = isinstance(X, pd.DataFrame)
        levels, codes, counts, ref = self._fit_batches(as_batch(batch, rows, n, x_is_frame))
        encoder = _CovariateEncoder()
        frame = self._covariate_frame(covariates, rows, n, x_is_frame)
        covariate_matrix = (
            encoder.fit(frame).transform(frame) if frame is not None else np.zeros((n, 0))
        )
        batch_design, design = design_matrices(codes, len(levels), ref, covariate_matrix, encoder)
        B_hat = np.linalg.lstsq(design, values, rcond=None)[0]
        n_batch = len(levels)
        grand_mean = B_hat[ref] if ref is not None else (counts / n) @ B_hat[:n_batch]
        beta = B_hat[n_batch:]
        residual = values - design @ B_hat
        var_rows = codes == ref if ref is not None else np.ones(n, dtype=bool)
        var_pooled = (residual[var_rows] ** 2).mean(axis=0)
        names = list(columns) if columns is not None else list(range(n_features))
        passthrough = self._passthrough(values, var_pooled, names)
        keep = ~passthrough

        mod = covariate_matrix @ beta
        z = (values[:, keep] - grand_mean[keep] - mod[:, keep]) / np.sqrt(var_pooled[keep])
        gamma_hat = np.linalg.lstsq(batch_design, z, rcond=None)[0]
        if self.mean_only:
            delta_hat = np.ones((n_batch, int(keep.sum())))
        else:
            delta_hat = np.vstack([z[codes == i].var(axis=0, ddof=1) for i in range(n_batch)])
            delta_hat[delta_hat == 0] = 1.0
        gamma_star, delta_star, priors = self._shrink(z, gamma_hat, delta_hat, codes, levels, ref)

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
        self.gamma_bar_, self.t2_, self.a_prior_, self.b_prior_, self.n_iter_ = priors
        log.info(
            "ComBat fit: %d samples, %d batches, %d features (%d passed through), %s",
            n,
            n_batch,
            n_features,
            int(passthrough.sum()),
            self._describe(),
        )
        return self

    def _fit_batches(
        self, labels: np.ndarray
    ) -> tuple[list[Any], np.ndarray, np.ndarray, int | None]:
        """Batch levels of the training samples and their checks.

        Args:
            labels: One batch label per training sample.

        Returns:
            ``(sorted levels, level index per sample, samples per level, reference index or
            None)``.

        Raises:
            HarmonizationError: Fewer than 2 batches, an absent or single-sample reference batch,
                or a single-sample batch without ``mean_only``.
        """
        levels = sorted_levels(labels.tolist())
        if len(levels) < 2:
            msg = f"ComBat needs at least 2 batches in the training data, got {names_list(levels)}"
            raise HarmonizationError(msg)
        lookup = {level: i for i, level in enumerate(levels)}
        codes = np.array([lookup[v] for v in labels.tolist()], dtype=int)
        counts = np.bincount(codes, minlength=len(levels))
        ref: int | None = None
        if self.ref_batch is not None:
            if self.ref_batch not in lookup:
                msg = (
                    f"reference batch {self.ref_batch!r} not in the training data "
                    f"(batches: {names_list(levels, 20)})"
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
                f"batch(es) {names_list(singletons)} have a single training sample: their scale "
                "cannot be estimated; merge or drop them, or use mean_only=True"
            )
            raise HarmonizationError(msg)
        return levels, codes, counts, ref

    def _passthrough(
        self, values: np.ndarray, var_pooled: np.ndarray, names: list[Any]
    ) -> np.ndarray:
        """Features left unchanged: constant, or with a pooled residual variance of (about) 0.

        A feature is passed through when its range is 0 or ``sigma_g^2 <= 1e-24 * scale_g`` with
        ``scale_g = max(var(y_g), max|y_g|^2)`` (squared feature units), i.e. the design
        explains it fully; they are logged and kept out of the empirical-Bayes priors.

        Returns:
            Boolean mask over features.

        Raises:
            HarmonizationError: ``eb`` with fewer than 2 features left.
        """
        scale = np.maximum(values.var(axis=0), np.abs(values).max(axis=0) ** 2)
        passthrough = (np.ptp(values, axis=0) == 0) | (var_pooled <= 1e-24 * scale)
        if passthrough.any():
            log.warning(
                "%d feature(s) constant or fully explained by the design on the training data; "
                "passed through unchanged: %s",
                int(passthrough.sum()),
                names_list([names[i] for i in np.flatnonzero(passthrough)]),
            )
        n_keep = int((~passthrough).sum())
        if self.eb and n_keep < 2:
            msg = f"empirical Bayes needs at least 2 non-constant features, got {n_keep}; "
            msg += "use eb=False"
            raise HarmonizationError(msg)
        return passthrough

    def _shrink(
        self,
        z: np.ndarray,
        gamma_hat: np.ndarray,
        delta_hat: np.ndarray,
        codes: np.ndarray,
        levels: list[Any],
        ref: int | None,
    ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        """Batch adjustments ``(gamma*, delta*)`` (batches x kept features) from the raw estimates.

        With ``eb`` each non-reference batch is shrunk towards its priors
        (``gamma_bar_i = mean_g gamma_hat_ig``, ``t2_i = var_g gamma_hat_ig`` (ddof 1), and the
        inverse-gamma ``a_i``, ``b_i`` of :func:`~oncoflow.harmonize.eb.inverse_gamma_priors`);
        without it the raw estimates are used. ``delta* = 1`` with ``mean_only``; the reference
        batch gets ``gamma* = 0``, ``delta* = 1``.

        Returns:
            ``(gamma*, delta*, (gamma_bar, t2, a, b, iterations))``, the last per batch (NaN / 0
            where not estimated).

        Raises:
            HarmonizationError: A batch whose variances are identical over features (parametric).
        """
        n_batch = len(levels)
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
                    gamma_star[i], delta_star[i] = nonparametric_eb(
                        z[rows_i], gamma_hat[i], delta_hat[i]
                    )
                elif self.mean_only:
                    gamma_star[i] = (t2[i] * gamma_hat[i] + gamma_bar[i]) / (t2[i] + 1.0)
                else:
                    try:
                        a_prior[i], b_prior[i] = inverse_gamma_priors(delta_hat[i])
                    except HarmonizationError as exc:
                        raise HarmonizationError(f"batch {level!r}: {exc}") from None
                    gamma_star[i], delta_star[i], n_iter[i] = parametric_eb(
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
        return gamma_star, delta_star, (gamma_bar, t2, a_prior, b_prior, n_iter)

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
                msg += f"; missing {names_list(missing)}" if missing else ""
                msg += f"; unexpected {names_list(extra)}" if extra else ""
                raise HarmonizationError(msg)
            ordered = X[list(self.feature_names_in_)]
        else:
            ordered = X
        values, _, rows = as_matrix(ordered)
        n, n_features = values.shape
        if n_features != self.n_features_in_:
            msg = f"X has {n_features} features, ComBat was fit with {self.n_features_in_}"
            raise HarmonizationError(msg)
        x_is_frame = isinstance(X, pd.DataFrame)
        if unseen not in ("error", "estimate"):
            msg = f"unseen must be 'error' or 'estimate', got {unseen!r}"
            raise HarmonizationError(msg)
        labels = as_batch(batch, rows, n, x_is_frame)
        new_levels = [v for v in dict.fromkeys(labels.tolist()) if v not in set(self.batches_)]
        if unseen == "error" or not new_levels:
            codes = self._batch_index(labels, rows)
        frame = self._covariate_frame(covariates, rows, n, x_is_frame)
        if self.encoder_.kinds:
            if frame is None:
                msg = f"covariates {names_list(list(self.encoder_.kinds))} were used at fit; "
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
                names_list(new_levels),
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
        return batch_eb(z, parametric=self.parametric, eb=self.eb, mean_only=self.mean_only)

    def fit_transform(self, X: Any, batch: Any, covariates: pd.DataFrame | None = None) -> Any:
        """``fit`` on ``X`` then ``transform`` the same samples (identical to doing both)."""
        return self.fit(X, batch, covariates).transform(X, batch, covariates)
