"""The entries of ``oracle.json`` and what the observable oracles share.

The metrics themselves come from :mod:`oncoflow.metrics`. The texture likelihood below serves
every study whose oracle reads a lesion texture through the scanner (``nsclc_mmdls`` histology,
``pancreas_progression``'s ``value_pixels``).

Texture likelihood. In the lesion core ``K`` (lesion voxels, mask eroded by one voxel, necrosis
left out) the CT is ``v = m 1 + a t + n``: ``a = gain * amplitude`` (HU), ``t`` the unit-variance
texture field after the scanner PSF and ``n`` the scanner noise. Both are Gaussian fields of known
correlation, so ``v ~ N(m 1, a^2 C_t + s * sigma_n^2 C_n + r I)`` with ``s`` the noise variance
scale (1 for one image, ``1/k`` for the mean of ``k`` images that share the texture and not the
noise) and ``r`` the variance of rounding to integer HU (``1/12`` per image). Per axis, smoothed
white noise of width ``w`` voxels has the correlation ``exp(-d^2 / (4 w^2))``; a PSF of ``b``
voxels makes it ``sqrt(w^2 / (w^2 + b^2)) exp(-d^2 / (4 (w^2 + b^2)))``, with ``w = 0.9`` for
the texture and ``0.6`` for the noise. The lesion mean ``m`` is integrated out under a flat prior
(restricted likelihood); one generalised eigendecomposition ``C_t V = M V diag(lambda)``,
``M = s sigma_n^2 C_n + r I``, serves every amplitude.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from oncoflow.demo._common import SCANNERS
from oncoflow.demo._phantoms import LESION, NECROSIS

TEXTURE_SIGMA_VOX = 0.9
"""``smooth_noise`` width of the scene texture (voxels)."""
NOISE_SIGMA_VOX = 0.6
"""``smooth_noise`` width of the CT noise (voxels; ``apply_ct_scanner``)."""
H_GRID = np.linspace(0.0, 1.0, 101)
"""Grid of the texture latent ``h ~ U(0, 1)`` on which the posteriors are computed."""
MAX_CORE = 800
"""Core voxels used (evenly thinned above): bounds the eigendecomposition."""


def oracle_entry(metric: str, value: float) -> dict[str, float | str]:
    """Return ``{"metric": ..., "value": ...}`` with the value rounded to 4 decimals."""
    return {"metric": metric, "value": round(float(value), 4)}


def lesion_core(tissue: np.ndarray) -> np.ndarray:
    """Lesion-tissue voxels of the lesion mask eroded by one voxel (necrosis left out)."""
    from scipy import ndimage

    whole = (tissue == LESION) | (tissue == NECROSIS)
    return ndimage.binary_erosion(whole) & (tissue == LESION)


def field_correlation(offsets: np.ndarray, width: float, blur: np.ndarray) -> np.ndarray:
    """Correlation of smoothed white noise (``width`` voxels) after a PSF (per-axis voxels).

    Args:
        offsets: ``(..., 3)`` voxel offsets between pairs of voxels.
        width: Smoothing width of the white noise (voxels).
        blur: PSF width per axis (voxels).
    """
    s2 = width**2 + blur**2
    scale = float(np.prod(np.sqrt(width**2 / s2)))
    return scale * np.exp(-np.sum(offsets**2 / (4.0 * s2), axis=-1))


def _core_basis(
    ct: np.ndarray,
    core: np.ndarray,
    site: str,
    spacing_zyx: Sequence[float],
    noise_var_scale: float,
    rounding_var: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """``(coords, values, lambda, V)`` of the lesion core (module docstring); ``None`` below 2."""
    from scipy import linalg

    coords = np.argwhere(core)
    if len(coords) > MAX_CORE:
        coords = coords[np.linspace(0, len(coords) - 1, MAX_CORE).round().astype(int)]
    if len(coords) < 2:
        return None
    sc = SCANNERS[site]
    values = ct[tuple(coords.T)].astype(float)
    offsets = (coords[:, None, :] - coords[None, :, :]).astype(float)
    blur = sc.blur_mm / np.asarray(spacing_zyx, dtype=float)
    c_t = field_correlation(offsets, TEXTURE_SIGMA_VOX, blur)
    c_n = field_correlation(offsets, NOISE_SIGMA_VOX, np.zeros(3))
    m = noise_var_scale * sc.ct_noise_hu**2 * c_n + rounding_var * np.eye(len(values))
    lam, vec = linalg.eigh(c_t, m)
    return coords, values, np.clip(lam, 0.0, None), vec


def texture_log_likelihood(
    ct: np.ndarray,
    core: np.ndarray,
    site: str,
    spacing_zyx: Sequence[float],
    amplitude_hu: np.ndarray,
    *,
    noise_var_scale: float = 1.0,
    rounding_var: float = 1.0 / 12.0,
) -> np.ndarray:
    """Restricted log-likelihood of each texture amplitude given the lesion-core CT values.

    Args:
        ct: Observed CT (z, y, x) in HU (one image, or the mean of images sharing the texture).
        core: Boolean (z, y, x) mask of the lesion core (:func:`lesion_core`).
        site: Scanner site (gain, noise, PSF of :data:`~oncoflow.demo._common.SCANNERS`).
        spacing_zyx: Voxel spacing (mm) along the array axes.
        amplitude_hu: Texture amplitudes (HU before the scanner gain) to score, e.g.
            ``8 + 50 * H_GRID``.
        noise_var_scale: Scale of the noise variance (``1/k`` for a mean of ``k`` images).
        rounding_var: Variance of the rounding to integer HU (``1/12`` per image).

    Returns:
        The log-likelihood per amplitude, up to a constant; zeros (a flat posterior) when the
        core has fewer than two voxels.
    """
    basis = _core_basis(ct, core, site, spacing_zyx, noise_var_scale, rounding_var)
    if basis is None:
        return np.zeros(len(amplitude_hu))
    _, values, lam, vec = basis
    u, w = vec.T @ values, vec.T @ np.ones(len(values))
    amplitude2 = (SCANNERS[site].ct_gain * np.asarray(amplitude_hu, dtype=float)) ** 2
    scale = amplitude2[:, None] * lam[None, :] + 1.0  # eigenvalues of M^-1/2 Sigma M^-1/2
    inv = 1.0 / scale
    vv, ww, vw = inv @ u**2, inv @ w**2, inv @ (u * w)
    return -0.5 * (np.log(scale).sum(axis=1) + np.log(ww) + vv - vw**2 / ww)


def lesion_log_likelihood(
    ct: np.ndarray,
    core: np.ndarray,
    site: str,
    spacing_zyx: Sequence[float],
    amplitude_hu: np.ndarray,
    expected: np.ndarray,
    slope: np.ndarray,
    shift_means: np.ndarray,
    shift_sd: float,
) -> np.ndarray:
    """Log-likelihood of the lesion-core CT per texture amplitude and class, shift integrated.

    The core voxels are ``v = e + g s + a t + n`` (module docstring): ``e`` the noise-free
    scanner image of the scene at lesion shift 0 (``expected``, HU), ``g`` its derivative with
    respect to the lesion's HU shift ``s`` (``slope``: the scanner gain times the blurred lesion
    indicator) and ``s ~ N(mu_k, shift_sd^2)`` given class ``k``. With ``r = v - e`` and
    ``Sigma = a^2 C_t + M``, ``s`` integrates out in closed form::

        log p(v | a, k) = -1/2 (log|Sigma| + r'S r) - 1/2 log(1 + tau^2 g'S g)
                          + (g'S r + mu_k / tau^2)^2 / (2 P) - mu_k^2 / (2 tau^2)

    with ``S = Sigma^-1``, ``tau = shift_sd`` and ``P = g'S g + 1 / tau^2`` (up to a constant).

    Args:
        ct: Observed CT (z, y, x) in HU.
        core: Boolean (z, y, x) mask of the lesion core (:func:`lesion_core`).
        site: Scanner site.
        spacing_zyx: Voxel spacing (mm) along the array axes.
        amplitude_hu: Texture amplitudes (HU before the scanner gain).
        expected: Noise-free scanner image at shift 0 (z, y, x), HU.
        slope: ``d expected / d shift`` per voxel (z, y, x).
        shift_means: ``mu_k`` per class (HU).
        shift_sd: ``tau`` (HU).

    Returns:
        ``(amplitudes, classes)`` log-likelihoods; zeros when the core has fewer than two voxels.
    """
    means = np.asarray(shift_means, dtype=float)
    basis = _core_basis(ct, core, site, spacing_zyx, 1.0, 1.0 / 12.0)
    if basis is None:
        return np.zeros((len(amplitude_hu), len(means)))
    coords, values, lam, vec = basis
    index = tuple(coords.T)
    ur = vec.T @ (values - np.asarray(expected, dtype=float)[index])
    ug = vec.T @ np.asarray(slope, dtype=float)[index]
    amplitude2 = (SCANNERS[site].ct_gain * np.asarray(amplitude_hu, dtype=float)) ** 2
    scale = amplitude2[:, None] * lam[None, :] + 1.0
    inv = 1.0 / scale
    rr, gr, gg = inv @ ur**2, inv @ (ug * ur), inv @ ug**2
    tau2 = float(shift_sd) ** 2
    precision = gg + 1.0 / tau2
    base = -0.5 * (np.log(scale).sum(axis=1) + rr) - 0.5 * np.log(tau2 * precision)
    numerator = gr[:, None] + means[None, :] / tau2
    return base[:, None] + numerator**2 / (2.0 * precision[:, None]) - means**2 / (2.0 * tau2)


def posterior_weights(log_likelihood: np.ndarray) -> np.ndarray:
    """Normalised posterior weights of a grid under a flat prior: ``exp(l - max l) / sum``."""
    post = np.exp(log_likelihood - np.max(log_likelihood))
    return post / post.sum()
