"""The shared epoch loop: exact resume, reproducibility, validation-only selection, registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from oncoflow.errors import ModelError
from oncoflow.models.registry import create_model, list_models, register_model
from oncoflow.train import Checkpoint, History, seed_everything
from oncoflow.train.loop import FitSettings, fit

X = torch.randn(96, 5, generator=torch.Generator().manual_seed(0))
Y = (X[:, 0] - X[:, 1] > 0).float()
XV, YV = X[:32] + 0.1, Y[:32]


@register_model
def tiny_mlp(in_features: int = 5, hidden: int = 8, dropout: float = 0.2) -> nn.Module:
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
    )


def _batches(epoch: int, generator: torch.Generator):
    order = torch.randperm(len(X), generator=generator)
    for start in range(0, len(X), 16):
        idx = order[start : start + 16]
        yield X[idx], Y[idx]


def _loss(model, batch):
    x, y = batch
    return nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(1), y)


def _validate(model):
    logits = model(XV).squeeze(1)
    accuracy = ((logits > 0).float() == YV).float().mean()
    return {"accuracy": float(accuracy), "loss": float(_loss(model, (XV, YV)))}


def _run(tmp_path, name, settings, stop_at=None):
    seed_everything(settings.seed)
    model = create_model("tiny_mlp")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    history = History(tmp_path / f"{name}.csv")

    def stop(epoch):
        if stop_at is not None and epoch == stop_at:
            raise KeyboardInterrupt  # the job is killed after this epoch's checkpoint

    result = fit(
        model,
        optimizer,
        _batches,
        _loss,
        _validate,
        settings,
        monitor="loss",
        device=torch.device("cpu"),
        checkpoint=Checkpoint(tmp_path / f"{name}.pt", key=name),
        history=history,
        on_epoch_end=stop,
    )
    return model, result, history


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    settings = FitSettings(epochs=8, patience=0, mode="min", seed=3)
    whole, result, history = _run(tmp_path, "whole", settings)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, "killed", settings, stop_at=3)
    resumed, result2, history2 = _run(tmp_path, "killed", settings)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert result == result2
    assert [r["epoch"] for r in history2.rows] == list(range(1, 9))
    assert history2.rows == history.rows


def test_same_seed_same_model_other_seed_differs(tmp_path):
    a, _, _ = _run(tmp_path, "a", FitSettings(epochs=3, mode="min", seed=1))
    b, _, _ = _run(tmp_path, "b", FitSettings(epochs=3, mode="min", seed=1))
    c, _, _ = _run(tmp_path, "c", FitSettings(epochs=3, mode="min", seed=2))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters(), strict=True))


def test_best_validation_epoch_kept_and_early_stop():
    scores = iter([0.6, 0.7, 0.65, 0.69, 0.7, 0.5, 0.9])
    model = nn.Linear(5, 1)
    snapshots = {}

    def validate(m):
        return {"auc": next(scores)}

    def remember(epoch):
        snapshots[epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    result = fit(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        _batches,
        _loss,
        validate,
        FitSettings(epochs=7, patience=3, min_delta=0.01, mode="max"),
        monitor="auc",
        device=torch.device("cpu"),
        on_epoch_end=remember,
    )
    # 0.7 at epoch 2; 0.65, 0.69, 0.7 (not > 0.71) -> three epochs without improvement -> stop
    assert (result.best_epoch, result.best_score, result.epochs_run) == (2, 0.7, 5)
    assert result.stopped_early
    for name, value in model.state_dict().items():
        assert torch.equal(value, snapshots[2][name])


def test_monitor_must_be_validated(tmp_path):
    model = nn.Linear(5, 1)
    with pytest.raises(ModelError, match="not the monitored 'auc'"):
        fit(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            _batches,
            _loss,
            lambda m: {"loss": 1.0},
            FitSettings(epochs=1),
            monitor="auc",
            device=torch.device("cpu"),
        )


def test_registry():
    assert "tiny_mlp" in list_models()
    assert isinstance(create_model("tiny_mlp", hidden=4)[0], nn.Linear)
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        create_model("nope")
    with pytest.raises(ModelError, match="model 'tiny_mlp'"):
        create_model("tiny_mlp", depth=3)
