"""Penalized (elastic-net) Cox proportional-hazards model with a Breslow baseline.

:class:`CoxModel` maximizes lifelines' ``CoxPHFitter(penalizer, l1_ratio)`` objective: with the
covariates standardized internally (``z = (x - mean) / sd``, sample sd), ``beta`` minimizes

``F(beta) = -loglik_Efron(beta) / n + penalizer * P(beta)``, with
``P(beta) = l1_ratio * |beta|_1 + (1 - l1_ratio) / 2 * |beta|^2``,

and the reported coefficients are ``beta / sd`` (per unit of the original covariates). The
default ``backend="numpy"`` solves this exactly (proximal Newton with a line search; the L1 part
is handled exactly, so coefficients can be exactly 0) in a fraction of a millisecond for the
small problems of a nested cross-validation; ``backend="lifelines"`` calls ``CoxPHFitter``
itself (about 50-250 ms per fit; its L1 term is a smooth approximation). Both agree to
about 1e-6 without L1 (tests on lifelines' ``rossi`` data).

Ties in event times use Efron's approximation (as lifelines). The baseline cumulative hazard
is Breslow's estimator ``H0(t) = sum_{u_k <= t} d_k / sum_{T_j >= u_k} exp(eta_j)``, and
``S(t | x) = exp(-H0(t) exp(eta(x)))``.
"""

from __future__ import annotations

import logging
import warnings
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from oncoflow.errors import ModelError
from oncoflow.metrics.survival import check_survival

log = logging.getLogger(__name__)

Backend = Literal["numpy", "lifelines"]


def as_frame(X: ArrayLike | pd.DataFrame, *, what: str = "X") -> pd.DataFrame:
    """Return ``X`` as a float DataFrame (columns ``x0, x1, ...`` for arrays); reject NaN/inf."""
    if isinstance(X, pd.DataFrame):
        frame = X
    else:
        arr = np.asarray(X, dtype=float)
        if arr.ndim == 1:
            arr = arr[:, None]
        frame = pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])
    try:
        frame = frame.astype(float)
    except (TypeError, ValueError) as exc:
        msg = f"{what}: all feature columns must be numeric ({exc})"
        raise ModelError(msg) from exc
    values = frame.to_numpy()
    if not np.isfinite(values).all():
        bad = frame.columns[~np.isfinite(values).all(axis=0)].tolist()
        msg = f"{what}: NaN or infinite values in feature(s) {', '.join(map(str, bad[:5]))}"
        raise ModelError(msg)
    return frame


class _EfronProblem:
    """Efron partial likelihood of standardized covariates, with gradient and Hessian.

    Everything that does not depend on ``beta`` (orderings, tie groups, risk-set indices) is
    computed once here. Cost per evaluation: O(n p^2).
    """

    def __init__(self, z: np.ndarray, time: np.ndarray, event: np.ndarray) -> None:
        order = np.argsort(time, kind="stable")
        self.z = z[order]
        self.time = time[order]
        self.event = event[order].astype(bool)
        self.n = time.size
        ev_time = self.time[self.event]
        self.uk, self.dk = np.unique(ev_time, return_counts=True)
        # risk set of u_k = rows from start_k on (times ascending)
        self.start = np.searchsorted(self.time, self.uk, side="left")
        # event rows grouped by tie: contiguous in ascending order
        self.group_start = np.concatenate(([0], np.cumsum(self.dk)[:-1]))
        self.k_of_m = np.repeat(np.arange(self.uk.size), self.dk)
        self.phi = np.concatenate([np.arange(d) / d for d in self.dk])
        # for each row j: last event-time index k with u_k <= T_j (-1 = none)
        self.last_k = np.searchsorted(self.uk, self.time, side="right") - 1
        self.z_ev = self.z[self.event]
        self.sum_z_ev = self.z_ev.sum(axis=0)

    def evaluate(self, beta: np.ndarray, *, hessian: bool = True) -> tuple:
        """Return ``(loglik, gradient, Hessian)`` of the Efron log partial likelihood."""
        eta = self.z @ beta
        shift = float(eta.max())
        w = np.exp(eta - shift)
        suffix0 = np.cumsum(w[::-1])[::-1]
        r0 = suffix0[self.start]
        w_ev = w[self.event]
        d0 = np.add.reduceat(w_ev, self.group_start)
        a0 = r0[self.k_of_m] - self.phi * d0[self.k_of_m]
        loglik = float(eta[self.event].sum() - np.log(a0).sum() - shift * a0.size)
        wz = w[:, None] * self.z
        suffix1 = np.cumsum(wz[::-1], axis=0)[::-1]
        r1 = suffix1[self.start]
        d1 = np.add.reduceat(w_ev[:, None] * self.z_ev, self.group_start, axis=0)
        a1 = r1[self.k_of_m] - self.phi[:, None] * d1[self.k_of_m]
        ratio = a1 / a0[:, None]
        grad = self.sum_z_ev - ratio.sum(axis=0)
        if not hessian:
            return loglik, grad, None
        kk = self.uk.size
        c = np.bincount(self.k_of_m, weights=1.0 / a0, minlength=kk)
        e = np.bincount(self.k_of_m, weights=self.phi / a0, minlength=kk)
        cum_c = np.concatenate((np.cumsum(c), [0.0]))  # index -1 -> 0
        weight = w * cum_c[self.last_k]
        weight[self.event] -= w_ev * e[self.last_k[self.event]]
        hess = -(self.z.T * weight) @ self.z + ratio.T @ ratio
        return loglik, grad, hess


def _solve(
    problem: _EfronProblem,
    *,
    penalizer: float,
    l1_ratio: float,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> tuple[np.ndarray, bool]:
    """Minimize ``F(beta)`` (module docstring) by proximal Newton steps with backtracking."""
    p = problem.z.shape[1]
    n = problem.n
    ridge = penalizer * (1.0 - l1_ratio)
    lam = penalizer * l1_ratio
    beta = np.zeros(p)

    def objective(b: np.ndarray) -> float:
        ll = problem.evaluate(b, hessian=False)[0]
        return -ll / n + 0.5 * ridge * float(b @ b) + lam * float(np.abs(b).sum())

    f_old = objective(beta)
    for _ in range(max_iter):
        _, g_ll, h_ll = problem.evaluate(beta)
        grad = -g_ll / n + ridge * beta
        hess = -h_ll / n + ridge * np.eye(p)
        if lam == 0.0:
            try:
                step = -np.linalg.solve(hess, grad)
            except np.linalg.LinAlgError:
                step = -np.linalg.lstsq(hess, grad, rcond=None)[0]
            target = beta + step
        else:
            target = _prox_newton_subproblem(beta, grad, hess, lam)
            step = target - beta
        decrease = float(grad @ step) + lam * float(np.abs(target).sum() - np.abs(beta).sum())
        if not np.isfinite(decrease):
            msg = "Cox fit diverged (NaN/inf); features may be collinear or perfectly separating"
            raise ModelError(msg)
        if decrease > -tol * (1.0 + abs(f_old)):
            return beta, True
        t = 1.0
        while True:
            candidate = beta + t * step
            f_new = objective(candidate)
            if np.isfinite(f_new) and f_new <= f_old + 0.25 * t * decrease:
                break
            t *= 0.5
            if t < 1e-10:
                return beta, False
        beta = candidate
        converged = abs(f_old - f_new) <= tol * (1.0 + abs(f_new)) and t * np.abs(step).max() < 1e-8
        f_old = f_new
        if converged:
            return beta, True
    return beta, False


def _prox_newton_subproblem(
    beta: np.ndarray, grad: np.ndarray, hess: np.ndarray, lam: float, *, cycles: int = 1000
) -> np.ndarray:
    """Minimize ``g'(b - beta) + (b - beta)' H (b - beta) / 2 + lam |b|_1`` over ``b``.

    Coordinate descent finds the active set (non-zero coefficients and their signs); every few
    cycles the exact minimizer on that active set is computed by one linear solve and accepted
    when it satisfies the optimality (KKT) conditions of the whole problem.
    """
    p = beta.size
    h = hess.tolist()
    g = grad.tolist()
    b0 = beta.tolist()
    b = list(b0)
    diag = [max(h[j][j], 1e-12) for j in range(p)]
    hd = [0.0] * p  # H @ (b - beta)
    for cycle in range(cycles):
        biggest = 0.0
        for j in range(p):
            r = g[j] + hd[j] - diag[j] * (b[j] - b0[j])
            u = diag[j] * b0[j] - r
            new = (u - lam if u > lam else (u + lam if u < -lam else 0.0)) / diag[j]
            change = new - b[j]
            if change != 0.0:
                row = h[j]
                for i in range(p):
                    hd[i] += row[i] * change
                b[j] = new
                biggest = max(biggest, abs(change))
        if biggest < 1e-12:
            break
        if cycle % 4 == 3:
            exact = _active_set_solution(beta, grad, hess, lam, np.array(b))
            if exact is not None:
                return exact
    return np.array(b)


def _active_set_solution(
    beta: np.ndarray, grad: np.ndarray, hess: np.ndarray, lam: float, guess: np.ndarray
) -> np.ndarray | None:
    """Exact subproblem minimizer with the active set and signs of ``guess``, or ``None``."""
    active = guess != 0.0
    sign = np.sign(guess)
    b = np.zeros_like(beta)
    if active.any():
        rhs = hess[active] @ beta - grad[active] - lam * sign[active]
        try:
            b[active] = np.linalg.solve(hess[np.ix_(active, active)], rhs)
        except np.linalg.LinAlgError:
            return None
        if np.any(np.sign(b[active]) != sign[active]):
            return None
    slope = grad + hess @ (b - beta)
    if np.any(np.abs(slope[~active]) > lam * (1 + 1e-9) + 1e-12):
        return None
    return b


def _standardization(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns that vary, column means and sample sds (ddof 1) of ``values``."""
    mean = values.mean(axis=0)
    sd = values.std(axis=0, ddof=1) if values.shape[0] > 1 else np.zeros(values.shape[1])
    varying = sd > 1e-12 * np.maximum(1.0, np.abs(mean))
    return varying, mean, sd


def fit_coefficients(
    values: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    *,
    penalizer: float = 0.0,
    l1_ratio: float = 0.0,
    max_iter: int = 100,
) -> tuple[np.ndarray, bool]:
    """Fit the penalized Cox objective (module docstring) on plain arrays, without checks.

    The fast path of :class:`CoxModel` (used inside cross-validation loops). Constant columns
    get coefficient 0.

    Args:
        values: Patients x features, finite.
        time: Follow-up times (validated).
        event: Event indicators in {0, 1} (at least one event).
        penalizer: Penalty strength.
        l1_ratio: L1 share of the penalty.
        max_iter: Maximum proximal Newton iterations.

    Returns:
        ``(coefficients per unit of the columns of values, converged)``.
    """
    varying, mean, sd = _standardization(values)
    beta = np.zeros(values.shape[1])
    if not varying.any():
        return beta, True
    z = (values[:, varying] - mean[varying]) / sd[varying]
    b, converged = _solve(
        _EfronProblem(z, time, event), penalizer=penalizer, l1_ratio=l1_ratio, max_iter=max_iter
    )
    beta[varying] = b / sd[varying]
    return beta, converged


class CoxModel:
    """Elastic-net penalized Cox model (lifelines' parametrisation; see the module docstring).

    Example:
        >>> model = CoxModel(penalizer=0.1).fit(X, time, event)  # doctest: +SKIP
        >>> risk = model.predict_risk(X_test)  # higher = earlier event  # doctest: +SKIP

    Attributes:
        coef_: Coefficients per unit of each input column (pandas Series, log hazard ratios).
        converged_: Whether the optimizer met its tolerance.
    """

    def __init__(
        self,
        penalizer: float = 0.0,
        l1_ratio: float = 0.0,
        *,
        backend: Backend = "numpy",
        max_iter: int = 100,
    ) -> None:
        """Configure the model.

        Args:
            penalizer: Penalty strength (>= 0), as lifelines' ``penalizer``.
            l1_ratio: Share of L1 in the penalty, in [0, 1] (0 = ridge, 1 = lasso).
            backend: ``"numpy"`` (exact, fast) or ``"lifelines"`` (``CoxPHFitter``).
            max_iter: Maximum Newton iterations (numpy backend).
        """
        if penalizer < 0 or not 0.0 <= l1_ratio <= 1.0:
            msg = f"need penalizer >= 0 and 0 <= l1_ratio <= 1, got {penalizer}, {l1_ratio}"
            raise ModelError(msg)
        if backend not in ("numpy", "lifelines"):
            msg = f"backend must be 'numpy' or 'lifelines', got {backend!r}"
            raise ModelError(msg)
        self.penalizer = float(penalizer)
        self.l1_ratio = float(l1_ratio)
        self.backend = backend
        self.max_iter = int(max_iter)

    def fit(self, X: ArrayLike | pd.DataFrame, time: ArrayLike, event: ArrayLike) -> CoxModel:
        """Fit on patients x features ``X`` with follow-up ``time`` and ``event`` (1 = event).

        Constant columns carry no information in a Cox model; they get coefficient 0 (logged).

        Returns:
            ``self``.

        Raises:
            ModelError: Invalid inputs, no events, or a diverging fit.
        """
        frame = as_frame(X)
        t, e = check_survival(time, event, what="Cox training outcomes")
        if len(frame) != t.size:
            msg = f"X has {len(frame)} rows but there are {t.size} outcomes"
            raise ModelError(msg)
        if e.sum() == 0:
            msg = f"Cox model: no events among {t.size} training patients"
            raise ModelError(msg)
        values = frame.to_numpy()
        if self.backend == "numpy":
            beta, self.converged_ = fit_coefficients(
                values,
                t,
                e,
                penalizer=self.penalizer,
                l1_ratio=self.l1_ratio,
                max_iter=self.max_iter,
            )
        else:
            beta, self.converged_ = self._fit_lifelines(values, t, e), True
        if not self.converged_:
            log.warning("Cox fit did not converge in %d iterations", self.max_iter)
        self.coef_ = pd.Series(beta, index=frame.columns, name="coef")
        self._baseline(values @ beta, t, e)
        return self

    def _fit_lifelines(self, values: np.ndarray, t: np.ndarray, e: np.ndarray) -> np.ndarray:
        from lifelines import CoxPHFitter
        from lifelines.exceptions import ConvergenceError

        varying, mean, sd = _standardization(values)
        beta = np.zeros(values.shape[1])
        if not varying.any():
            return beta
        z = (values[:, varying] - mean[varying]) / sd[varying]

        cols = [f"z{i}" for i in range(z.shape[1])]
        df = pd.DataFrame(z, columns=cols)
        df["_time"] = t
        df["_event"] = e
        fitter = CoxPHFitter(penalizer=self.penalizer, l1_ratio=self.l1_ratio)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fitter.fit(df, duration_col="_time", event_col="_event")
        except ConvergenceError as exc:
            msg = f"lifelines Cox fit did not converge: {str(exc).splitlines()[0]}"
            raise ModelError(msg) from exc
        # lifelines standardizes again; z already has sd 1, so params are per unit of z
        beta[varying] = fitter.params_.to_numpy() / sd[varying]
        return beta

    def _baseline(self, eta: np.ndarray, t: np.ndarray, e: np.ndarray) -> None:
        """Breslow cumulative baseline hazard at the distinct event times (centred eta)."""
        self._center = float(eta.mean())
        w = np.exp(eta - self._center)
        order = np.argsort(t, kind="stable")
        ts, ws, es = t[order], w[order], e[order]
        suffix = np.cumsum(ws[::-1])[::-1]
        uk, dk = np.unique(ts[es == 1], return_counts=True)
        at_risk = suffix[np.searchsorted(ts, uk, side="left")]
        self.baseline_times_ = uk
        self.baseline_cumhaz_ = np.cumsum(dk / at_risk)

    def _check_fitted(self, X: ArrayLike | pd.DataFrame) -> np.ndarray:
        if not hasattr(self, "coef_"):
            msg = "CoxModel is not fitted: call fit() first"
            raise ModelError(msg)
        frame = as_frame(X)
        if isinstance(X, pd.DataFrame):
            missing = [c for c in self.coef_.index if c not in frame.columns]
            if missing:
                msg = f"X lacks fitted feature(s) {', '.join(map(str, missing[:5]))}"
                raise ModelError(msg)
            frame = frame[self.coef_.index]
        if frame.shape[1] != self.coef_.size:
            msg = f"X has {frame.shape[1]} features, the model {self.coef_.size}"
            raise ModelError(msg)
        return frame.to_numpy()

    def predict_risk(self, X: ArrayLike | pd.DataFrame) -> np.ndarray:
        """Linear predictor ``eta = X @ coef_`` (log relative hazard; higher = earlier event)."""
        return self._check_fitted(X) @ self.coef_.to_numpy()

    def predict_survival(self, X: ArrayLike | pd.DataFrame, times: ArrayLike) -> np.ndarray:
        """Survival probabilities ``S(t | x) = exp(-H0(t) exp(eta(x)))`` (Breslow ``H0``).

        Args:
            X: Patients x features.
            times: Times (same unit as the training times).

        Returns:
            Array of shape (patients, len(times)).
        """
        eta = self.predict_risk(X) - self._center
        grid = np.atleast_1d(np.asarray(times, dtype=float))
        idx = np.searchsorted(self.baseline_times_, grid, side="right") - 1
        h0 = np.where(idx >= 0, self.baseline_cumhaz_[np.maximum(idx, 0)], 0.0)
        return np.exp(-np.outer(np.exp(eta), h0))
