"""The epoch loop every deep model trains with.

Validation-only model selection, early stopping, a resume file written every epoch, per-epoch
history and progress output.

One epoch = one pass over the training loader, then one validation score. The loader's shuffle
order is drawn from a generator seeded with ``seed + epoch`` (and each worker from that too), so
a run killed after epoch ``e`` and resumed from its checkpoint draws exactly the batches an
uninterrupted run would: on CPU both end with identical weights.

Model selection and early stopping read only the validation score (``monitor``, higher is
better when ``mode = "max"``): the weights of the best epoch are kept, training stops when
``patience`` epochs pass without an improvement larger than ``min_delta``. Test data never enter.

AMP (``torch.autocast`` + gradient scaling) is used only on CUDA when ``amp`` is on; CPU runs in
float32, deterministically.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from oncoflow.errors import ModelError
from oncoflow.progress import Progress
from oncoflow.train.engine import Checkpoint, History

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitSettings:
    """Settings of :func:`fit` (all recorded in the resume key and the provenance).

    Attributes:
        epochs: Largest number of epochs.
        patience: Epochs without validation improvement before stopping (0 = never stop early).
        min_delta: Smallest improvement of the monitored score that counts.
        mode: ``max`` (AUC, C-index) or ``min`` (a loss).
        amp: Mixed precision on CUDA (ignored on CPU).
        grad_clip: Largest gradient norm (0 = no clipping).
        seed: Seed of the shuffle order and the model's random draws.
    """

    epochs: int = 50
    patience: int = 10
    min_delta: float = 0.0
    mode: str = "max"
    amp: bool = True
    grad_clip: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            msg = f"mode must be max or min, not {self.mode!r}"
            raise ModelError(msg)
        if self.epochs < 1:
            msg = f"epochs must be >= 1, not {self.epochs}"
            raise ModelError(msg)


@dataclass
class FitResult:
    """What :func:`fit` returns: the best epoch (1-based), its score and the epochs run."""

    best_epoch: int
    best_score: float
    epochs_run: int
    stopped_early: bool


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The shuffle generator of one epoch (``seed * 1_000_003 + epoch``)."""
    generator = torch.Generator()
    generator.manual_seed(int(seed) * 1_000_003 + int(epoch))
    return generator


def _improved(score: float, best: float | None, settings: FitSettings) -> bool:
    if not math.isfinite(score):
        return False
    if best is None:
        return True
    if settings.mode == "max":
        return score > best + settings.min_delta
    return score < best - settings.min_delta


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_batches: Callable[[int, torch.Generator], Iterable[Any]],
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor],
    validate: Callable[[torch.nn.Module], Mapping[str, float]],
    settings: FitSettings,
    *,
    monitor: str,
    device: torch.device,
    checkpoint: Checkpoint | None = None,
    history: History | None = None,
    scheduler: Any = None,
    on_epoch_end: Callable[[int], None] | None = None,
) -> FitResult:
    """Train ``model`` for up to ``settings.epochs`` epochs; load the best epoch's weights.

    Args:
        model: The network (moved to ``device`` by the caller).
        optimizer: Its optimiser.
        train_batches: ``(epoch, generator) -> batches`` of the training patients of the fold
            (shuffle with the generator for an exact resume).
        loss_fn: ``(model, batch) -> scalar loss`` (moves the batch to the device).
        validate: ``model -> {name: value}`` on the fold's validation patients; must hold
            ``monitor``. Called in eval mode without gradients.
        settings: :class:`FitSettings`.
        monitor: Validation value that selects the model.
        device: Training device.
        checkpoint: Resume file, saved after every epoch; a matching file is resumed from.
        history: ``history.csv`` (one row per epoch: train loss, validation values, lr).
        scheduler: Optional learning-rate scheduler stepped once per epoch.
        on_epoch_end: Called with the finished epoch number (tests use it to stop a run).

    Returns:
        :class:`FitResult`; the model holds the best epoch's weights.

    Raises:
        ModelError: ``validate`` does not return ``monitor``, or the loss is not finite.
    """
    use_amp = settings.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    run = _Run()
    state = checkpoint.load() if checkpoint is not None else None
    if state is not None:
        run = _resume(state, model, optimizer, scheduler, scaler, history)
    stopped = False
    epoch = run.start - 1
    # one line per epoch at most every 10 s (history.csv has every epoch), with time left
    progress = Progress(settings.epochs, "epoch", logger=log, every_s=10.0, first=run.start - 1)
    for epoch in range(run.start, settings.epochs + 1):
        if run.waited >= settings.patience > 0:
            stopped = True
            epoch -= 1
            break
        batches = train_batches(epoch, epoch_generator(settings.seed, epoch))
        losses = _train_epoch(model, optimizer, batches, loss_fn, settings, device, scaler, epoch)
        if scheduler is not None:
            scheduler.step()
        model.eval()
        with torch.no_grad():
            values = dict(validate(model))
        if monitor not in values:
            msg = f"validation returned {sorted(values)}, not the monitored {monitor!r}"
            raise ModelError(msg)
        score = float(values[monitor])
        if _improved(score, run.best, settings):
            run.best, run.best_epoch, run.waited = score, epoch, 0
            run.best_state = copy.deepcopy(model.state_dict())
        else:
            run.waited += 1
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else math.nan}
        row.update({f"val_{k}": float(v) for k, v in values.items()})
        row["lr"] = float(optimizer.param_groups[0]["lr"])
        row["best"] = epoch == run.best_epoch
        if history is not None:
            history.log(**row)
            history.write()
        progress.update(
            epoch,
            f"train loss {row['train_loss']:.4f}, validation {monitor} {score:.4f}"
            + (" (best)" if row["best"] else ""),
        )
        if checkpoint is not None:
            parts = (model, optimizer, scheduler, scaler, history)
            checkpoint.save(_resume_state(epoch, run, parts, settings))
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    if run.best_state is None:
        msg = f"no epoch gave a finite validation {monitor}"
        raise ModelError(msg)
    model.load_state_dict(run.best_state)
    return FitResult(run.best_epoch, float(run.best), epoch, stopped)


@dataclass
class _Run:
    """Selection state of a run: first epoch to train, best score / epoch / weights, waited."""

    start: int = 1
    best: float | None = None
    best_epoch: int = 0
    best_state: dict[str, Any] | None = None
    waited: int = 0


def _resume(
    state: Mapping[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler | None,
    history: History | None,
) -> _Run:
    """Load a resume file's weights, optimiser, scheduler, scaler, RNG and history in place."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])  # noqa: NPY002 - restore the global stream
    if history is not None:
        history.rows = list(state["history"])
    log.info(
        "resuming after epoch %d (best %s at epoch %d)",
        state["epoch"],
        state["best"],
        state["best_epoch"],
    )
    return _Run(
        state["epoch"] + 1, state["best"], state["best_epoch"], state["best_state"], state["waited"]
    )


def _train_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[Any],
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor],
    settings: FitSettings,
    device: torch.device,
    scaler: torch.amp.GradScaler | None,
    epoch: int,
) -> list[float]:
    """One pass over the training batches (AMP when ``scaler``); the batches' losses.

    Raises:
        ModelError: A batch's loss is not finite.
    """
    model.train()
    losses = []
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=scaler is not None):
            loss = loss_fn(model, batch)
        if not torch.isfinite(loss):
            msg = f"epoch {epoch}: the training loss is {loss.item()}"
            raise ModelError(msg)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if settings.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def _resume_state(
    epoch: int, run: _Run, parts: tuple[Any, ...], settings: FitSettings
) -> dict[str, Any]:
    """The resume file's content after ``epoch``: weights, optimiser, RNG, selection, history.

    Args:
        epoch: The finished epoch.
        run: The selection state.
        parts: ``(model, optimizer, scheduler or None, scaler or None, history or None)``.
        settings: The loop's settings.
    """
    model, optimizer, scheduler, scaler, history = parts
    return {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(),  # noqa: NPY002 - global stream
        "best": run.best,
        "best_epoch": run.best_epoch,
        "best_state": run.best_state,
        "waited": run.waited,
        "history": list(history.rows) if history is not None else [],
        "settings": asdict(settings),
    }
