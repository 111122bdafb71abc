"""Empirical-Bayes shrinkage of the ComBat batch estimates (Johnson, Li & Rabinovic 2007).

The batch location ``gamma`` and scale ``delta`` of each feature are shrunk towards priors fitted
over all features of the batch: parametric (normal / inverse-gamma, fixed-point iteration as
``sva``'s ``it.sol``) or non-parametric (Monte-Carlo integration over the other features'
estimates). See :mod:`oncoflow.harmonize.combat` for the model; all quantities are in units of
the standardised data ``z``.
"""

from __future__ import annotations

import logging

import numpy as np

from oncoflow.errors import HarmonizationError

log = logging.getLogger("oncoflow.harmonize.combat")  # ComBat's log lines, unchanged by the split

CONVERGENCE = 1e-4
"""Relative change at which the parametric EB iteration stops (as sva / neuroCombat)."""

MAX_ITER = 10_000
"""Safety cap on the parametric EB iteration (never reached on sane data; logged if it is)."""

_CHUNK_ELEMENTS = 4_000_000
"""Features x features block size of the non-parametric integration (~32 MB of float64)."""


def inverse_gamma_priors(delta_hat: np.ndarray) -> tuple[float, float]:
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


def parametric_eb(
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


def nonparametric_eb(
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


def batch_eb(
    z: np.ndarray, *, parametric: bool, eb: bool, mean_only: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Location / scale ``(gamma*, delta*)`` of one batch estimated from its own samples only.

    ``gamma_hat`` = mean and ``delta_hat`` = variance (ddof 1; 1 with ``mean_only`` or where it
    is 0) of the standardised data ``z`` (samples x features), then the same empirical-Bayes
    shrinkage as at fit with priors over this batch's features (``eb``; parametric or not).

    Returns:
        ``(gamma*, delta*)`` per feature (``delta* = 1`` with ``mean_only``).
    """
    gamma_hat = z.mean(axis=0)
    delta_hat = np.ones_like(gamma_hat) if mean_only else z.var(axis=0, ddof=1)
    delta_hat[delta_hat == 0] = 1.0
    if not eb:
        return gamma_hat, delta_hat
    if not parametric:
        gamma_star, delta_star = nonparametric_eb(z, gamma_hat, delta_hat)
    elif mean_only:
        gamma_bar, t2 = gamma_hat.mean(), gamma_hat.var(ddof=1)
        gamma_star = (t2 * gamma_hat + gamma_bar) / (t2 + 1.0)
        delta_star = delta_hat
    else:
        a_prior, b_prior = inverse_gamma_priors(delta_hat)
        gamma_star, delta_star, _ = parametric_eb(
            z, gamma_hat, delta_hat, gamma_hat.mean(), gamma_hat.var(ddof=1), a_prior, b_prior
        )
    if mean_only:
        delta_star = np.ones_like(gamma_star)
    return gamma_star, delta_star
