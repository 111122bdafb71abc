"""Gaussian diffusion (DDPM) with a cosine noise schedule, ancestral and DDIM sampling.

Notation (Ho et al. 2020; Nichol & Dhariwal 2021): ``beta_t`` for t = 1..T, ``alpha_t = 1 -
beta_t``, ``abar_t = prod_{s<=t} alpha_s``. The cosine schedule sets

    abar(t) = f(t) / f(0),   f(t) = cos(((t / T + s) / (1 + s)) * pi / 2)^2,   s = 0.008,

and ``beta_t = min(1 - abar(t) / abar(t-1), 0.999)``. The forward process is

    q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I),

the model predicts the noise ``eps`` of ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps``, and the
reverse step uses the posterior

    q(x_{t-1} | x_t, x_0) = N(mu_t, beta~_t I),
    mu_t = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x_0
           + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t,
    beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t,

with ``x_0`` estimated from ``eps`` and clamped to [-1, 1]. Index ``t`` below is 0-based
(``t = 0`` is the first noising step), so arrays have length ``T``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from oncoflow.errors import ModelError


class CosineSchedule:
    """The cosine beta schedule and every closed-form quantity of the diffusion.

    Args:
        steps: Number of diffusion steps ``T``.
        s: Offset of the cosine schedule (0.008 in Nichol & Dhariwal).
        max_beta: Upper clip of ``beta_t``.
    """

    def __init__(self, steps: int, s: float = 0.008, max_beta: float = 0.999) -> None:
        if steps < 2:
            msg = f"diffusion needs at least 2 steps, got {steps}"
            raise ModelError(msg)
        self.steps = int(steps)
        grid = torch.arange(steps + 1, dtype=torch.float64) / steps
        f = torch.cos((grid + s) / (1 + s) * math.pi / 2) ** 2
        abar = f / f[0]
        betas = torch.clamp(1 - abar[1:] / abar[:-1], max=max_beta)
        self.betas = betas
        self.alphas = 1.0 - betas
        self.abar = torch.cumprod(self.alphas, dim=0)
        self.abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.abar[:-1]])
        self.posterior_variance = betas * (1 - self.abar_prev) / (1 - self.abar)
        # log of the posterior variance, with the t = 0 value (0) replaced by the next one
        self.posterior_log_variance = torch.log(
            torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]])
        )
        self.coef_x0 = betas * torch.sqrt(self.abar_prev) / (1 - self.abar)
        self.coef_xt = (1 - self.abar_prev) * torch.sqrt(self.alphas) / (1 - self.abar)

    @staticmethod
    def _at(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``values[t]`` per batch item, shaped to broadcast over ``like``."""
        out = values.to(like.device)[t].to(like.dtype)
        return out.reshape(-1, *([1] * (like.ndim - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Draw ``x_t ~ q(x_t | x_0)`` with the given standard-normal ``noise``."""
        return (
            self._at(self.abar.sqrt(), t, x0) * x0 + self._at((1 - self.abar).sqrt(), t, x0) * noise
        )

    def predict_x0(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``."""
        return (xt - self._at((1 - self.abar).sqrt(), t, xt) * eps) / self._at(
            self.abar.sqrt(), t, xt
        )

    def posterior(
        self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of ``q(x_{t-1} | x_t, x_0)``."""
        mean = self._at(self.coef_x0, t, xt) * x0 + self._at(self.coef_xt, t, xt) * xt
        return mean, self._at(self.posterior_log_variance, t, xt)


Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``eps_hat = model(x_t_with_condition, t)``."""


@torch.no_grad()
def sample(
    model: Denoiser,
    schedule: CosineSchedule,
    condition: torch.Tensor,
    *,
    real: torch.Tensor | None = None,
    keep: torch.Tensor | None = None,
    ddim_steps: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Synthesise images for a condition (mask channels), optionally preserving anatomy.

    Args:
        model: Noise predictor taking ``cat([x_t, condition], dim=1)`` and the step index.
        schedule: The training schedule.
        condition: ``(batch, c, *spatial)`` condition channels (e.g. lung and nodule masks).
        real: ``(batch, 1, *spatial)`` real images; with ``keep``, the anatomy-preserving
            sampler: after every reverse step, voxels where ``keep`` is true are replaced by
            ``real`` forward-noised to the *same* level as the current sample (``t - 1``; the
            seed blended with level ``t``, one step too noisy), and by ``real`` itself at the
            end, so only the other voxels (the lung) are generated.
        keep: Boolean ``(batch, 1, *spatial)``: voxels to take from ``real``.
        ddim_steps: Deterministic DDIM (eta = 0) on this many evenly spaced steps instead of
            the ``T`` ancestral steps.
        generator: Random generator of the initial noise and the ancestral noise.

    Returns:
        ``(batch, 1, *spatial)`` samples in [-1, 1].
    """
    if (real is None) != (keep is None):
        msg = "anatomy-preserving sampling needs both real and keep"
        raise ModelError(msg)
    shape = (condition.shape[0], 1, *condition.shape[2:])
    device = condition.device
    x = torch.randn(shape, generator=generator, device=device, dtype=condition.dtype)
    steps = list(range(schedule.steps))[::-1]
    if ddim_steps is not None:
        if not 1 <= ddim_steps <= schedule.steps:
            msg = f"ddim_steps must be in 1..{schedule.steps}, got {ddim_steps}"
            raise ModelError(msg)
        steps = torch.linspace(schedule.steps - 1, 0, ddim_steps).round().long().unique()
        steps = sorted(steps.tolist(), reverse=True)
    for i, step in enumerate(steps):
        t = torch.full((shape[0],), step, device=device, dtype=torch.long)
        eps = model(torch.cat([x, condition], dim=1), t)
        x0 = schedule.predict_x0(x, t, eps).clamp(-1, 1)
        if ddim_steps is None:
            mean, log_var = schedule.posterior(x0, x, t)
            noise = torch.randn(shape, generator=generator, device=device, dtype=x.dtype)
            x = mean + (step > 0) * torch.exp(0.5 * log_var) * noise
            previous = step - 1
        else:
            previous = steps[i + 1] if i + 1 < len(steps) else -1
            eps = (x - schedule._at(schedule.abar.sqrt(), t, x) * x0) / schedule._at(
                (1 - schedule.abar).sqrt(), t, x
            )
            abar_prev = schedule.abar[previous] if previous >= 0 else torch.tensor(1.0)
            abar_prev = abar_prev.to(device=device, dtype=x.dtype)
            x = abar_prev.sqrt() * x0 + (1 - abar_prev).sqrt() * eps
        if real is not None and keep is not None:
            if previous >= 0:
                level = torch.full((shape[0],), previous, device=device, dtype=torch.long)
                noise = torch.randn(shape, generator=generator, device=device, dtype=x.dtype)
                background = schedule.q_sample(real, level, noise)
            else:
                background = real
            x = torch.where(keep, background, x)
    return x.clamp(-1, 1)
