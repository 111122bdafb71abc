"""Train the mask-conditioned 3D DDPM (study ``lung_synthesis``) and sample from it.

Training step (one optimiser step = ``grad_accum`` micro-batches of ``batch_size`` cases):

    t ~ U{0..T-1},  eps ~ N(0, I),  x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps,
    loss = | eps - model(cat[x_t, lung, nodule], t) |_1   (or squared, ``loss: l2``),

Adam, EMA of the weights, a resumable checkpoint every ``checkpoint_every`` steps and one
``history.csv`` row every ``log_every`` steps. Every random draw (cases, t, eps) comes from one
generator whose state is checkpointed, so a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from oncoflow.errors import ModelError
from oncoflow.models import create_model
from oncoflow.models.unet3d import UNet3D
from oncoflow.progress import Progress
from oncoflow.synthesis.diffusion import CosineSchedule
from oncoflow.train import EMA, Checkpoint, History, config_hash, resolve_device, seed_everything

log = logging.getLogger(__name__)


@dataclass
class DDPMSettings:
    """Model, diffusion and training settings (config ``studies.lung_synthesis.ddpm``).

    Production values of the Lung-DDPM paper: ``size`` 128^3, ``steps`` 250, ``base_channels``
    64, ``channel_mult`` (1, 1, 2, 3, 4), attention at level 3 (1/8 resolution), L1 loss, lr 1e-5,
    batch 1, ``grad_accum`` 2, 100k ``train_steps``, EMA 0.995 every 10 steps from step 2000.
    """

    size: tuple[int, int, int] = (32, 32, 32)
    steps: int = 100
    base_channels: int = 8
    channel_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 1
    attention_levels: tuple[int, ...] = (2,)
    heads: int = 1
    loss: str = "l1"
    lr: float = 2e-3
    batch_size: int = 2
    grad_accum: int = 1
    train_steps: int = 300
    ema_decay: float = 0.99
    ema_start: int = 50
    ema_every: int = 1
    checkpoint_every: int = 50
    log_every: int = 10
    window: tuple[float, float] = (-1000.0, 400.0)
    seed: int = 0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DDPMSettings:
        """Build from a config mapping (lists become tuples; unknown keys are an error)."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            msg = f"unknown ddpm setting(s): {', '.join(unknown)}"
            raise ModelError(msg)
        converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        settings = cls(**converted)
        if settings.loss not in ("l1", "l2"):
            msg = f"ddpm loss must be l1 or l2, got {settings.loss!r}"
            raise ModelError(msg)
        factor = 2 ** (len(settings.channel_mult) - 1)
        if any(s % factor for s in settings.size):
            msg = f"ddpm size {settings.size} must be divisible by {factor} (channel_mult levels)"
            raise ModelError(msg)
        return settings

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready settings (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def build_model(settings: DDPMSettings, condition_channels: int = 2) -> UNet3D:
    """The noise predictor of ``settings`` (image + condition channels in, noise out)."""
    return create_model(
        "unet3d",
        in_channels=1 + condition_channels,
        base_channels=settings.base_channels,
        channel_mult=settings.channel_mult,
        num_res_blocks=settings.num_res_blocks,
        attention_levels=settings.attention_levels,
        heads=settings.heads,
        max_period=10.0 * settings.steps,
    )


def diffusion_loss(
    model: torch.nn.Module,
    schedule: CosineSchedule,
    images: torch.Tensor,
    conditions: torch.Tensor,
    generator: torch.Generator,
    loss: str = "l1",
) -> torch.Tensor:
    """Noise-prediction loss of one batch (module docstring); draws t and eps from ``generator``."""
    device = images.device
    t = torch.randint(0, schedule.steps, (images.shape[0],), generator=generator).to(device)
    noise = torch.randn(images.shape, generator=generator).to(device)
    xt = schedule.q_sample(images, t, noise)
    predicted = model(torch.cat([xt, conditions], dim=1), t)
    error = predicted - noise
    return error.abs().mean() if loss == "l1" else (error**2).mean()


def train_ddpm(
    images: torch.Tensor,
    conditions: torch.Tensor,
    settings: DDPMSettings,
    *,
    resume: Path | str | None = None,
    device: str = "auto",
    history: Path | str | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> tuple[UNet3D, list[dict[str, Any]]]:
    """Train on the given cases (training patients only) and return the EMA model.

    This is a step loop of its own, not :func:`oncoflow.train.loop.fit` (the epoch loop the
    deep fold tasks share), because the two differ in what defines them: ``fit`` keeps the
    epoch with the best validation score, stops early and reloads that epoch's weights, while
    the DDPM has no validation score (fidelity is measured on samples, after training) and keeps
    the EMA of the last step's weights; ``fit`` draws each epoch's batches from a fresh
    generator seeded ``seed * 1_000_003 + epoch``, while every draw here (cases, ``t``,
    ``eps``) comes from one generator carried across steps and checkpointed, so running it
    through ``fit`` (one step per "epoch") would change every draw and no trained model would be
    reproduced; and ``fit`` writes its resume file and a deep copy of the best weights every
    epoch, where the DDPM checkpoints every ``checkpoint_every`` of its 100k production steps
    and accumulates ``grad_accum`` micro-batches per optimiser step.

    Args:
        images: ``(n, 1, *size)`` CT in [-1, 1].
        conditions: ``(n, 2, *size)`` lung / nodule channels.
        settings: :class:`DDPMSettings`.
        resume: Resume file (:class:`~oncoflow.train.Checkpoint`); an existing one with the same
            settings and cases is continued.
        device: ``auto``, ``cpu``, ``cuda``...
        history: ``history.csv`` to write (step, loss, lr, seconds).
        progress: Log a progress line every ``log_every`` steps.
        stop_after: Stop after this step (tests: simulate a killed run; the checkpoint stays).

    Returns:
        ``(EMA model on CPU, history rows)``.
    """
    if images.shape[0] == 0:
        msg = "no training case for the diffusion model"
        raise ModelError(msg)
    target = resolve_device(device)
    generator = seed_everything(settings.seed)
    schedule = CosineSchedule(settings.steps)
    model = build_model(settings, conditions.shape[1]).to(target)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    ema = EMA(model, settings.ema_decay, settings.ema_start, settings.ema_every)
    key = config_hash(
        {"settings": settings.as_dict(), "images": float(images.double().sum()), "n": len(images)}
    )
    checkpoint = Checkpoint(resume, key) if resume is not None else None
    rows: list[dict[str, Any]] = []
    start = 0
    state = checkpoint.load() if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        ema.model.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        rows = state["history"]
        start = state["step"]
        log.info("resuming the diffusion model from step %d (%s)", start, resume)
    images, conditions = images.to(target), conditions.to(target)
    began = time.perf_counter()
    steps = Progress(settings.train_steps, "ddpm step", logger=log, first=start)
    model.train()
    for step in range(start + 1, settings.train_steps + 1):
        total = _ddpm_step(model, optimizer, schedule, (images, conditions), generator, settings)
        if not math.isfinite(total):
            msg = f"diffusion loss is {total} at step {step}; lower lr"
            raise ModelError(msg)
        optimizer.step()
        ema.update(model, step)
        if step % settings.log_every == 0 or step == settings.train_steps:
            rows.append(
                {"step": step, "loss": total, "seconds": round(time.perf_counter() - began, 2)}
            )
            if progress:
                steps.update(step, f"loss {total:.4f}")
        if checkpoint is not None and (
            step % settings.checkpoint_every == 0 or step == settings.train_steps
        ):
            checkpoint.save(
                {
                    "step": step,
                    "model": model.state_dict(),
                    "ema": ema.model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "history": rows,
                }
            )
        if stop_after is not None and step >= stop_after:
            break
    if history is not None:
        History(history, rows).write()
    return ema.model.cpu().eval(), rows


def _ddpm_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: CosineSchedule,
    data: tuple[torch.Tensor, torch.Tensor],
    generator: torch.Generator,
    settings: DDPMSettings,
) -> float:
    """Gradients of one optimiser step: ``grad_accum`` micro-batches of ``batch_size`` cases.

    Each micro-batch draws its cases (with replacement), ``t`` and ``eps`` from ``generator``
    and back-propagates ``loss / grad_accum``; the caller steps the optimiser.

    Returns:
        The step's loss, ``sum_k loss_k / grad_accum``.
    """
    images, conditions = data
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for _ in range(settings.grad_accum):
        index = torch.randint(0, len(images), (settings.batch_size,), generator=generator)
        index = index.to(images.device)
        value = diffusion_loss(
            model, schedule, images[index], conditions[index], generator, settings.loss
        )
        (value / settings.grad_accum).backward()
        total += float(value.detach()) / settings.grad_accum
    return total


def save_model(path: Path | str, model: UNet3D, settings: DDPMSettings, **info: Any) -> None:
    """``model.pt``: EMA weights, settings and provenance (``info``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": model.state_dict(), "settings": settings.as_dict(), **info}, path)


def load_model(path: Path | str) -> tuple[UNet3D, DDPMSettings, dict[str, Any]]:
    """Read a ``model.pt`` written by :func:`save_model`.

    Raises:
        ModelError: Missing or unreadable file.
    """
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        msg = f"{path}: cannot read the diffusion model ({exc})"
        raise ModelError(msg) from exc
    settings = DDPMSettings.from_mapping(payload["settings"])
    model = build_model(settings)
    model.load_state_dict(payload["state"])
    info = {k: v for k, v in payload.items() if k not in ("state", "settings")}
    return model.eval(), settings, info


def stack_cases(cases: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, conditions)`` tensors of :class:`~oncoflow.synthesis.data.Case` objects."""
    return torch.stack([c.image for c in cases]), torch.stack([c.condition for c in cases])
