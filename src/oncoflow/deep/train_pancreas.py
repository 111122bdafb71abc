"""Train one fold of ``pancreas_progression`` (:mod:`oncoflow.models.cnn_lstm`): stage A, then B.

Stage A sees the crops of ``inputs.train`` only (lesion vs non-lesion, selected on
``inputs.inner`` by AUC); the frozen extractor then embeds every patient's lesion slices and
stage B (the LSTM) trains on the sequences of ``inputs.train``, selected on ``inputs.inner`` by
AUC. Both stages resume from their own file in ``resume_dir``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F  # noqa: N812

from oncoflow.deep.common import (
    FoldInputs,
    fit_stage,
    index_batches,
    permuted,
    prediction_rows,
)
from oncoflow.deep.data import (
    TabularEncoder,
    downsample,
    intensity_features,
    size_features,
    slice_examples,
)
from oncoflow.errors import ModelError
from oncoflow.metrics.classification import safe_auc
from oncoflow.models import create_model
from oncoflow.models.cnn_lstm import LesionSliceClassifier, collate_sequences
from oncoflow.train.engine import History

log = logging.getLogger(__name__)


@dataclass
class PancreasSettings:
    """Settings of both stages (config ``studies.pancreas_progression.train``).

    Attributes:
        target: Outcome column (per patient x time point).
        stems: Image stems (one per CT phase).
        clinical: Baseline clinical columns.
        extractor: Stage-A settings: backbone, embed_dim, input_size, epochs, batch_size, lr,
            weight_decay, patience, weights (local file or null).
        sequence: Stage-B settings: hidden, layers, dropout, epochs, batch_size, lr,
            weight_decay, patience, monitor (``loss``: lowest inner-validation loss, or ``auc``).
    """

    target: str = "progression_next"
    stems: list[str] = field(default_factory=lambda: ["CT_arterial", "CT_venous", "CT_delayed"])
    clinical: list[str] = field(default_factory=list)
    extractor: dict[str, Any] = field(default_factory=dict)
    sequence: dict[str, Any] = field(default_factory=dict)


EXTRACTOR_DEFAULTS: dict[str, Any] = {
    "backbone": "resnet18",
    "embed_dim": 8,
    "input_size": 32,
    "epochs": 4,
    "batch_size": 64,
    "lr": 1e-3,
    "weight_decay": 5e-4,
    "patience": 2,
    "weights": None,
}
SEQUENCE_DEFAULTS: dict[str, Any] = {
    "hidden": 16,
    "layers": 2,
    "dropout": 0.3,
    "epochs": 100,
    "batch_size": 16,
    "lr": 5e-3,
    "weight_decay": 1e-2,
    "patience": 30,
    "monitor": "loss",
}


def _augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random flips and 90-degree rotations (a crop stays centred on the lesion)."""
    k = int(torch.randint(0, 4, (1,), generator=generator))
    flip = bool(torch.randint(0, 2, (1,), generator=generator))
    out = torch.rot90(images, k, dims=(-2, -1))
    return torch.flip(out, dims=(-1,)) if flip else out


def _batched_scores(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, device: torch.device
) -> torch.Tensor:
    outs = [fn(x[i : i + 256].to(device)).float().cpu() for i in range(0, len(x), 256)]
    return torch.cat(outs) if outs else torch.zeros(0)


def train_extractor(
    inputs: FoldInputs,
    settings: PancreasSettings,
    *,
    device: torch.device,
    resume: Path,
    history: History,
) -> LesionSliceClassifier:
    """Stage A on the crops of ``inputs.train``, selected on ``inputs.inner`` (AUC)."""
    cfg = {**EXTRACTOR_DEFAULTS, **settings.extractor}
    stems = settings.stems
    x_tr, y_tr, _ = slice_examples({p: inputs.lesions[p] for p in inputs.train}, stems)
    x_va, y_va, _ = slice_examples({p: inputs.lesions[p] for p in inputs.inner}, stems)
    size = int(cfg["input_size"])
    x_tr_t = downsample(torch.from_numpy(x_tr), size).unsqueeze(1)
    x_va_t = downsample(torch.from_numpy(x_va), size).unsqueeze(1)
    y_tr_t = torch.from_numpy(y_tr)
    log.info("extractor: %d training crops (%d lesion), %d inner", len(y_tr), y_tr.sum(), len(y_va))
    torch.manual_seed(inputs.seed)
    model = create_model(
        "lesion_slice_classifier",
        backbone=cfg["backbone"],
        embed_dim=int(cfg["embed_dim"]),
        weights=cfg["weights"],
    ).to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"])
    )
    epochs = int(cfg["epochs"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)

    def batches(epoch: int, generator: torch.Generator):
        for idx in index_batches(len(y_tr_t), int(cfg["batch_size"]), generator, drop_last=True):
            yield _augment(x_tr_t[idx], generator), y_tr_t[idx]

    def loss_fn(net: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(net(batch[0].to(device)), batch[1].to(device))

    def validate(net: torch.nn.Module) -> dict[str, float]:
        logits = _batched_scores(net, x_va_t, device)
        return {"auc": safe_auc(y_va, torch.softmax(logits, 1)[:, 1].numpy(), undefined=0.5)}

    fit_stage(
        model,
        optimizer,
        batches,
        loss_fn,
        validate,
        inputs=inputs,
        stage="extractor",
        settings=cfg,
        epochs=epochs,
        patience=int(cfg["patience"]),
        monitor="auc",
        device=device,
        resume=resume,
        history=history,
        scheduler=scheduler,
        labelled=False,
    )
    return model.eval()


@torch.no_grad()
def timepoint_vectors(
    extractor: LesionSliceClassifier,
    inputs: FoldInputs,
    settings: PancreasSettings,
    device: torch.device,
) -> dict[str, dict[int, np.ndarray]]:
    """``[e_t, size_t, intensity_t]`` of every patient and time point (``pancreas`` docstring)."""
    size = int({**EXTRACTOR_DEFAULTS, **settings.extractor}["input_size"])
    extractor.eval()
    out: dict[str, dict[int, np.ndarray]] = {}
    for patient, lesions in inputs.lesions.items():
        sizes = size_features(lesions, settings.stems)
        intensity = intensity_features(lesions, settings.stems)
        out[patient] = {}
        for tp, stems in lesions.items():
            phases = []
            for stem in settings.stems:
                crops = stems[stem]
                x = downsample(torch.from_numpy(crops.lesion), size).unsqueeze(1)
                emb = _batched_scores(extractor.embed, x, device).numpy()
                weights = crops.area_mm2 / max(crops.area_mm2.sum(), 1e-9)
                phases.append((weights[:, None] * emb).sum(0))
            vector = [np.mean(phases, axis=0), sizes[tp], intensity[tp]]
            out[patient][tp] = np.concatenate(vector).astype(np.float32)
    return out


def _samples(
    inputs: FoldInputs, patients: list[str], target: str
) -> list[tuple[str, int, int | None]]:
    """(patient, time point, label or None) for every labelled time point of the patients."""
    rows = inputs.outcomes
    out = []
    for patient in patients:
        mine = rows[rows["patient_id"] == patient].sort_values("timepoint")
        for tp, label in zip(mine["timepoint"], mine[target], strict=True):
            if pd.isna(label):
                continue
            if int(tp) not in inputs.lesions[patient]:
                msg = f"patient {patient}: outcome at time point {tp} but no lesion crops there"
                raise ModelError(msg)
            out.append((patient, int(tp), int(label)))
    return out


def train_fold(
    inputs: FoldInputs,
    settings: PancreasSettings,
    *,
    device: torch.device,
    resume_dir: Path,
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """Train both stages of one fold.

    Returns:
        (``model.pt`` payload, ``predictions.csv`` rows of the fold's validation and test
        patients, ``history.csv`` of both stages).
    """
    hist_a = History(inputs.resume_file(resume_dir, "extractor_history.csv", labelled=False))
    extractor = train_extractor(
        inputs,
        settings,
        device=device,
        resume=inputs.resume_file(resume_dir, "extractor.pt", labelled=False),
        history=hist_a,
    )
    vectors = timepoint_vectors(extractor, inputs, settings, device)
    encoder = TabularEncoder().fit(inputs.clinical.loc[inputs.fitted, settings.clinical])

    def clinical(patients: list[str]) -> torch.Tensor:
        return torch.from_numpy(encoder.transform(inputs.clinical.loc[patients, settings.clinical]))

    # sequence features standardised with the training patients' time points
    train_rows = np.stack([v for p in inputs.train for v in vectors[p].values()])
    mean, sd = train_rows.mean(0), train_rows.std(0) + 1e-6

    def dataset(samples: list[tuple[str, int, int | None]]) -> dict[str, Any]:
        seqs = [
            torch.from_numpy((np.stack([vectors[p][t] for t in range(tp + 1)]) - mean) / sd)
            for p, tp, _ in samples
        ]
        padded, lengths = collate_sequences(seqs)
        return {
            "x": padded.float(),
            "lengths": lengths,
            "clinical": clinical([p for p, _, _ in samples]),
            "y": torch.tensor([lab for _, _, lab in samples], dtype=torch.int64),
        }

    target = settings.target
    train_samples = _samples(inputs, inputs.train, target)
    inner_samples = _samples(inputs, inputs.inner, target)
    if inputs.permute:
        labels = permuted(np.array([s[2] for s in train_samples]), inputs.label_seed + 1)
        train_samples = [(p, t, int(y)) for (p, t, _), y in zip(train_samples, labels, strict=True)]
        labels = permuted(np.array([s[2] for s in inner_samples]), inputs.label_seed + 2)
        inner_samples = [(p, t, int(y)) for (p, t, _), y in zip(inner_samples, labels, strict=True)]
    train_set, inner_set = dataset(train_samples), dataset(inner_samples)
    cfg = {**SEQUENCE_DEFAULTS, **settings.sequence}
    torch.manual_seed(inputs.label_seed + 7)
    model = create_model(
        "progression_lstm",
        input_dim=train_set["x"].shape[2],
        clinical_dim=train_set["clinical"].shape[1],
        hidden=int(cfg["hidden"]),
        layers=int(cfg["layers"]),
        dropout=float(cfg["dropout"]),
    ).to(device)
    counts = torch.bincount(train_set["y"], minlength=2).float().clamp(min=1)
    weight = (counts.sum() / (2 * counts)).to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"])
    )

    def run(net: torch.nn.Module, data: Mapping[str, torch.Tensor], idx: Any) -> torch.Tensor:
        return net(
            data["x"][idx].to(device), data["lengths"][idx], data["clinical"][idx].to(device)
        )

    def batches(epoch: int, generator: torch.Generator):
        yield from index_batches(len(train_set["y"]), int(cfg["batch_size"]), generator)

    def loss_fn(net: torch.nn.Module, idx: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(run(net, train_set, idx), train_set["y"][idx].to(device), weight)

    def validate(net: torch.nn.Module) -> dict[str, float]:
        logits = run(net, inner_set, slice(None))
        prob = torch.softmax(logits.float(), 1)[:, 1].cpu().numpy()
        loss = F.cross_entropy(logits, inner_set["y"].to(device), weight)
        return {"auc": safe_auc(inner_set["y"].numpy(), prob, undefined=0.5), "loss": float(loss)}

    hist_b = History(inputs.resume_file(resume_dir, "sequence_history.csv"))
    result = fit_stage(
        model,
        optimizer,
        batches,
        loss_fn,
        validate,
        inputs=inputs,
        stage="sequence",
        settings=cfg,
        epochs=int(cfg["epochs"]),
        patience=int(cfg["patience"]),
        monitor=str(cfg["monitor"]),
        mode="min" if cfg["monitor"] == "loss" else "max",
        device=device,
        resume=inputs.resume_file(resume_dir, "sequence.pt"),
        history=hist_b,
    )
    model.eval()
    predicted = [*inputs.validation, *inputs.test]
    samples = _samples(inputs, predicted, target)
    data = dataset(samples)
    with torch.no_grad():
        prob = torch.softmax(run(model, data, slice(None)).float(), 1).cpu().numpy()
    rows = prediction_rows(
        inputs,
        [p for p, _, _ in samples],
        target,
        {"y_true": data["y"].numpy(), "y_score": prob[:, 1]},
        timepoints=[t for _, t, _ in samples],
    )
    history = pd.concat(
        [
            pd.DataFrame(hist_a.rows).assign(stage="extractor"),
            pd.DataFrame(hist_b.rows).assign(stage="sequence"),
        ],
        ignore_index=True,
    )
    payload = {
        "model": "cnn_lstm",
        "extractor": extractor.state_dict(),
        "sequence": model.state_dict(),
        "clinical_encoder": encoder.state(),
        "sequence_mean": mean,
        "sequence_sd": sd,
        "best_epoch": result.best_epoch,
        "inner_auc": result.best_score,
        "train_patients": inputs.train,
        "inner_patients": inputs.inner,
    }
    return payload, rows, history
