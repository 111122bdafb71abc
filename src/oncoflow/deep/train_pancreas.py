"""Train one fold of ``pancreas_progression`` (:mod:`oncoflow.models.cnn_lstm`): stage A, then B.

Stage A sees the crops of ``inputs.train`` only (lesion vs non-lesion, selected on
``inputs.inner`` by AUC); the frozen extractor then embeds every patient's lesion slices and
stage B (the LSTM) trains on the sequences of ``inputs.train``, selected on ``inputs.inner`` by
its loss or AUC (``sequence.monitor``). Both stages resume from their own file in ``resume_dir``.
The fold task is :class:`PancreasTask` (:class:`~oncoflow.deep.task.FoldTask` hooks); its
:meth:`~PancreasTask.restore` rebuilds both frozen stages from ``model.pt`` to score a new cohort
(:mod:`oncoflow.deep.apply`): every labelled time point when the cohort has outcomes, every time
point with lesion crops (empty ``y_true``) when it has none. The sequence of a time point reads
the patient's time points with crops up to it (:mod:`oncoflow.deep.pancreas_data`): a patient
missing some time points is scored with those it has; a labelled time point without crops is
skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F  # noqa: N812

from oncoflow.deep.common import (
    FoldInputs,
    index_batches,
    permuted,
    prediction_rows,
)
from oncoflow.deep.data import (
    downsample,
    intensity_features,
    size_features,
    slice_examples,
)
from oncoflow.deep.pancreas_data import Sample, fold_samples, sequences
from oncoflow.deep.task import FoldTask, Stage
from oncoflow.errors import ModelError
from oncoflow.features.tabular import TabularEncoder
from oncoflow.metrics.classification import safe_auc
from oncoflow.models import create_model
from oncoflow.models.cnn_lstm import LesionSliceClassifier, collate_sequences
from oncoflow.train.loop import FitResult

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
            weight_decay, patience, monitor (``loss``: lowest inner-validation loss, or
            ``auc``), intensity_erode (crop pixels the lesion mask is eroded by before its
            intensity ``[mean, sd]``; 0 = the whole mask), intensity_cross_phase (add the
            texture the phases share, :func:`~oncoflow.deep.data.intensity_features`).
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
    "intensity_erode": 0,
    "intensity_cross_phase": False,
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


def extractor_network(cfg: Mapping[str, Any], weights: str | None) -> LesionSliceClassifier:
    """The stage-A network of the extractor settings ``cfg`` (``backbone``, ``embed_dim``).

    Args:
        cfg: ``settings.extractor`` merged with :data:`EXTRACTOR_DEFAULTS`.
        weights: Pretrained backbone file read into the trunk, or ``None`` (random init, or
            weights loaded afterwards from ``model.pt``).
    """
    return create_model(
        "lesion_slice_classifier",
        backbone=cfg["backbone"],
        embed_dim=int(cfg["embed_dim"]),
        weights=weights,
    )


def sequence_network(cfg: Mapping[str, Any], input_dim: int, clinical_dim: int) -> torch.nn.Module:
    """The stage-B progression LSTM of the sequence settings ``cfg`` (``hidden``, ``layers``, ...).

    Args:
        cfg: ``settings.sequence`` merged with :data:`SEQUENCE_DEFAULTS`.
        input_dim: Width of a time-point vector ``[e_t, size_t, intensity_t]``
            (``embed_dim + 3 + 2``).
        clinical_dim: Width of the encoded clinical vector (``TabularEncoder.width``).
    """
    return create_model(
        "progression_lstm",
        input_dim=input_dim,
        clinical_dim=clinical_dim,
        hidden=int(cfg["hidden"]),
        layers=int(cfg["layers"]),
        dropout=float(cfg["dropout"]),
    )


def _load_weights(
    net: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str
) -> torch.nn.Module:
    """``net`` with the saved ``state`` (strict: every key and shape must match the settings).

    Raises:
        ModelError: The saved weights do not fit the network the settings build.
    """
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        msg = f"model.pt: the saved {what} weights do not fit the network of its settings ({exc})"
        raise ModelError(msg) from exc
    return net


def extractor_stage(
    inputs: FoldInputs, settings: PancreasSettings, device: torch.device
) -> tuple[LesionSliceClassifier, Stage]:
    """Stage A: the lesion / non-lesion slice classifier and its label-free :class:`Stage`.

    Trains on the crops of ``inputs.train`` (random flips and 90-degree rotations, last
    partial batch dropped; Adam, cosine lr, cross-entropy), selected on those of
    ``inputs.inner`` by AUC. Seeded with the fold's seed: it never reads the outcome, so every
    negative-control run shares it.
    """
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
    model = extractor_network(cfg, cfg["weights"]).to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"])
    )
    epochs = int(cfg["epochs"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)

    def batches(
        epoch: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in index_batches(len(y_tr_t), int(cfg["batch_size"]), generator, drop_last=True):
            yield _augment(x_tr_t[idx], generator), y_tr_t[idx]

    def loss_fn(net: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(net(batch[0].to(device)), batch[1].to(device))

    def validate(net: torch.nn.Module) -> dict[str, float]:
        logits = _batched_scores(net, x_va_t, device)
        return {"auc": safe_auc(y_va, torch.softmax(logits, 1)[:, 1].numpy(), undefined=0.5)}

    stage = Stage(
        "extractor",
        optimizer,
        batches,
        loss_fn,
        validate,
        settings=cfg,
        epochs=epochs,
        patience=int(cfg["patience"]),
        monitor="auc",
        scheduler=scheduler,
        labelled=False,
        resume="extractor.pt",
        history="extractor_history.csv",
    )
    return model, stage


@torch.no_grad()
def timepoint_vectors(
    extractor: LesionSliceClassifier,
    inputs: FoldInputs,
    settings: PancreasSettings,
    device: torch.device,
) -> dict[str, dict[int, np.ndarray]]:
    """``[e_t, size_t, intensity_t]`` of every patient and time point (``pancreas`` docstring).

    A time point whose mask holds no lesion (a predicted mask at ``apply`` can be empty) has no
    crop: its image embedding is 0 and its lesion volume 0, with a warning naming it.
    """
    size = int({**EXTRACTOR_DEFAULTS, **settings.extractor}["input_size"])
    extractor.eval()
    with torch.no_grad():
        width = int(extractor.embed(torch.zeros(1, 1, size, size, device=device)).shape[1])
    cfg = {**SEQUENCE_DEFAULTS, **settings.sequence}
    erode, cross = int(cfg["intensity_erode"]), bool(cfg["intensity_cross_phase"])
    out: dict[str, dict[int, np.ndarray]] = {}
    for patient, lesions in inputs.lesions.items():
        sizes = size_features(lesions, settings.stems)
        intensity = intensity_features(lesions, settings.stems, erode=erode, cross_phase=cross)
        out[patient] = {}
        for tp, stems in lesions.items():
            phases = []
            for stem in settings.stems:
                crops = stems[stem]
                if len(crops.lesion) == 0:
                    log.warning(
                        "%s time point %s: no lesion slice in %s (empty mask); image embedding 0",
                        patient,
                        tp,
                        stem,
                    )
                    phases.append(np.zeros(width, dtype=np.float32))
                    continue
                x = downsample(torch.from_numpy(crops.lesion), size).unsqueeze(1)
                emb = _batched_scores(extractor.embed, x, device).numpy()
                weights = crops.area_mm2 / max(crops.area_mm2.sum(), 1e-9)
                phases.append((weights[:, None] * emb).sum(0))
            vector = [np.mean(phases, axis=0), sizes[tp], intensity[tp]]
            out[patient][tp] = np.concatenate(vector).astype(np.float32)
    return out


class PancreasTask(FoldTask[PancreasSettings]):
    """Both stages of one fold (module docstring) as :class:`~oncoflow.deep.task.FoldTask` hooks.

    :meth:`pretrain` trains the extractor (stage A), :meth:`encode` embeds every time point and
    builds the sequence datasets, :meth:`build` / :meth:`stage` are the LSTM (stage B).
    :meth:`restore` rebuilds both stages from a ``model.pt`` payload, fitting nothing.
    """

    def pretrain(self) -> None:
        """Train the label-free lesion extractor (stage A) and keep it frozen, in eval mode."""
        extractor, stage = extractor_stage(self.inputs, self.settings, self.device)
        self.fit(extractor, stage)
        self.extractor = extractor.eval()

    def encode(self) -> None:
        """Time-point vectors, clinical encoder and the training / inner sequence datasets.

        The vectors are standardised with the mean and SD (+1e-6) of the training patients'
        time points; a negative control permutes the training and inner labels (seeds
        ``label_seed + 1`` and ``+ 2``).
        """
        inputs, settings = self.inputs, self.settings
        self.embed(self.extractor)
        self.encoder = TabularEncoder().fit(inputs.clinical.loc[inputs.fitted, settings.clinical])
        # sequence features standardised with the training patients' time points
        train_rows = np.stack([v for p in inputs.train for v in self.vectors[p].values()])
        self.mean, self.sd = train_rows.mean(0), train_rows.std(0) + 1e-6
        target = settings.target
        train_samples = fold_samples(inputs, inputs.train, target)
        inner_samples = fold_samples(inputs, inputs.inner, target)
        if inputs.permute:
            labels = permuted(np.array([s[2] for s in train_samples]), inputs.label_seed + 1)
            train_samples = [
                (p, t, int(y)) for (p, t, _), y in zip(train_samples, labels, strict=True)
            ]
            labels = permuted(np.array([s[2] for s in inner_samples]), inputs.label_seed + 2)
            inner_samples = [
                (p, t, int(y)) for (p, t, _), y in zip(inner_samples, labels, strict=True)
            ]
        self.train_set, self.inner_set = self.dataset(train_samples), self.dataset(inner_samples)

    def embed(self, extractor: LesionSliceClassifier) -> None:
        """Keep the frozen ``extractor`` (eval mode) and every patient's time-point vectors.

        Shared by :meth:`encode` (the trained extractor) and :meth:`restore` (the saved one);
        also sets :attr:`cfg`, the sequence settings merged with :data:`SEQUENCE_DEFAULTS`.
        """
        self.extractor = extractor.eval()
        self.vectors = timepoint_vectors(extractor, self.inputs, self.settings, self.device)
        self.cfg = {**SEQUENCE_DEFAULTS, **self.settings.sequence}

    def restore(self, payload: Mapping[str, Any]) -> torch.nn.Module:
        """Both frozen stages of a trained fold and the ``out`` patients' vectors; nothing is fit.

        The extractor is rebuilt from the settings (no pretrained file read: the payload holds
        its weights) and embeds every patient's time points; the clinical encoder and the
        sequence standardisation ``(x - mean) / sd`` are the payload's (the training patients'
        statistics). The LSTM's ``input_dim`` is ``len(mean)`` and ``clinical_dim`` the
        encoder's width.

        Args:
            payload: The ``cnn_lstm`` payload of :meth:`payload` (one run's).

        Returns:
            The progression LSTM with the payload's weights, on :attr:`device`.

        Raises:
            ModelError: Not a ``cnn_lstm`` payload, the new cohort lacks a clinical column, or
                the saved weights do not fit the networks of the settings.
        """
        if payload.get("model") != "cnn_lstm":
            msg = f"model.pt holds a {payload.get('model')!r} model, not cnn_lstm"
            raise ModelError(msg)
        missing = [c for c in self.settings.clinical if c not in self.inputs.clinical.columns]
        if missing:
            msg = f"the new cohort's clinical.csv lacks column(s) {', '.join(missing)}"
            raise ModelError(msg)
        cfg = {**EXTRACTOR_DEFAULTS, **self.settings.extractor}
        extractor = _load_weights(extractor_network(cfg, None), payload["extractor"], "extractor")
        self.embed(extractor.to(self.device))
        self.encoder = TabularEncoder.from_state(payload["clinical_encoder"])
        self.mean = np.asarray(payload["sequence_mean"])
        self.sd = np.asarray(payload["sequence_sd"])
        model = sequence_network(self.cfg, len(self.mean), self.encoder.width)
        return _load_weights(model, payload["sequence"], "sequence").to(self.device)

    def dataset(self, samples: list[Sample]) -> dict[str, Any]:
        """Padded standardised sequences up to each sample's time point, lengths, clinical, y.

        ``x`` (B, T_max, D) holds ``(x_t - mean) / sd`` for the patient's time points with crops
        ``t <= tp`` in time order (``0 .. tp`` without gaps;
        :func:`~oncoflow.deep.pancreas_data.sequence_points`); ``y`` (B,) is there only when
        every sample has a label (none for an unlabelled new cohort).
        """
        seqs = sequences(self.vectors, samples, self.mean, self.sd)
        padded, lengths = collate_sequences(seqs)
        patients = [p for p, _, _ in samples]
        clinical = self.inputs.clinical.loc[patients, self.settings.clinical]
        data = {
            "x": padded.float(),
            "lengths": lengths,
            "clinical": torch.from_numpy(self.encoder.transform(clinical)),
        }
        labels = [lab for _, _, lab in samples]
        if None not in labels:
            data["y"] = torch.tensor(labels, dtype=torch.int64)
        return data

    def build(self) -> torch.nn.Module:
        """The progression LSTM (stage B), seeded with ``label_seed + 7``."""
        torch.manual_seed(self.inputs.label_seed + 7)
        train_set = self.train_set
        return sequence_network(
            self.cfg, train_set["x"].shape[2], train_set["clinical"].shape[1]
        ).to(self.device)

    def run_on(
        self, net: torch.nn.Module, data: Mapping[str, torch.Tensor], idx: Any
    ) -> torch.Tensor:
        """Logits of the rows ``idx`` of a dataset."""
        device = self.device
        return net(
            data["x"][idx].to(device), data["lengths"][idx], data["clinical"][idx].to(device)
        )

    def stage(self, model: torch.nn.Module) -> Stage:
        """Stage B: Adam, class-weighted cross-entropy (``w_c = N / (2 n_c)``), ``monitor``."""
        cfg, device, train_set, inner_set = self.cfg, self.device, self.train_set, self.inner_set
        counts = torch.bincount(train_set["y"], minlength=2).float().clamp(min=1)
        weight = (counts.sum() / (2 * counts)).to(device)
        optimizer = torch.optim.Adam(
            model.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"])
        )

        def batches(epoch: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
            yield from index_batches(len(train_set["y"]), int(cfg["batch_size"]), generator)

        def loss_fn(net: torch.nn.Module, idx: torch.Tensor) -> torch.Tensor:
            logits = self.run_on(net, train_set, idx)
            return F.cross_entropy(logits, train_set["y"][idx].to(device), weight)

        def validate(net: torch.nn.Module) -> dict[str, float]:
            logits = self.run_on(net, inner_set, slice(None))
            prob = torch.softmax(logits.float(), 1)[:, 1].cpu().numpy()
            loss = F.cross_entropy(logits, inner_set["y"].to(device), weight)
            auc = safe_auc(inner_set["y"].numpy(), prob, undefined=0.5)
            return {"auc": auc, "loss": float(loss)}

        return Stage(
            "sequence",
            optimizer,
            batches,
            loss_fn,
            validate,
            settings=cfg,
            epochs=int(cfg["epochs"]),
            patience=int(cfg["patience"]),
            monitor=str(cfg["monitor"]),
            mode="min" if cfg["monitor"] == "loss" else "max",
            resume="sequence.pt",
            history="sequence_history.csv",
        )

    def predict(self, model: torch.nn.Module) -> pd.DataFrame:
        """One row per scored time point of the validation and test patients.

        The scored time points are those of :func:`~oncoflow.deep.pancreas_data.fold_samples`.

        ``y_score = softmax(logits)[:, 1]``; ``y_true`` is the label, NaN for a new cohort
        without outcomes.
        """
        target = self.settings.target
        samples = fold_samples(self.inputs, self.groups["out"], target)
        data = self.dataset(samples)
        with torch.no_grad():
            prob = torch.softmax(self.run_on(model, data, slice(None)).float(), 1).cpu().numpy()
        y_true = data["y"].numpy() if "y" in data else np.full(len(samples), np.nan)
        return prediction_rows(
            self.inputs,
            [p for p, _, _ in samples],
            target,
            {"y_true": y_true, "y_score": prob[:, 1]},
            timepoints=[t for _, t, _ in samples],
        )

    def payload(self, model: torch.nn.Module, result: FitResult) -> dict[str, Any]:
        """Both stages' weights, the clinical encoder and the sequence standardisation."""
        return {
            "model": "cnn_lstm",
            "extractor": self.extractor.state_dict(),
            "sequence": model.state_dict(),
            "clinical_encoder": self.encoder.state(),
            "sequence_mean": self.mean,
            "sequence_sd": self.sd,
            "best_epoch": result.best_epoch,
            "inner_auc": result.best_score,
            "train_patients": self.inputs.train,
            "inner_patients": self.inputs.inner,
        }
