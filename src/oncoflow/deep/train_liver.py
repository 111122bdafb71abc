"""Train one fold of one ``liver_response`` ladder rung (:mod:`oncoflow.models.liver`).

Per patient: ``(Q, 2, k, 2, S, S)`` crops (sequences x pre/post x the ``k`` largest lesion slices
x (image, lesion mask), resized to ``input_size``) and the tabular vector (configured clinical
columns and ``[log(1 + V_pre), log(1 + V_post)]``, lesion volumes in mm³ averaged over sequences,
and with ``lesion_means`` the mean intensity of each read sequence's lesion core at both time
points), encoded with the training patients' statistics. Focal loss with class weights
``alpha_c = N / (2 n_c)`` from the training patients (about 1 responder in 4); the
inner-validation ``monitor`` (focal loss or AUC) selects the epoch. The fold task is
:class:`LiverTask` (:class:`~oncoflow.deep.task.FoldTask` hooks).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from oncoflow.deep.common import (
    FoldInputs,
    index_batches,
    permuted,
    prediction_rows,
    warm_start_linear,
)
from oncoflow.deep.data import (
    PatientLesions,
    downsample,
    intensity_features,
    load_lesions,
    select_slices,
)
from oncoflow.deep.task import FoldTask, Stage
from oncoflow.errors import ModelError
from oncoflow.features.tabular import TabularEncoder
from oncoflow.metrics.classification import safe_auc
from oncoflow.models.liver import RUNGS, SINGLE_SEQUENCE
from oncoflow.models.registry import create_model
from oncoflow.train.loop import FitResult
from oncoflow.train.losses import class_weights, focal_loss

log = logging.getLogger(__name__)

PARTS: tuple[str, str] = ("lesion", "mask")
"""The two channels of a slice: the crop and its lesion mask (read by ``lesion_pool``)."""

CORE_ERODE = 2
"""Default in-plane erosion (crop pixels) of the lesion masks for ``lesion_means`` (the rim's
partial volume with the liver stays out of the mean; ``lesion_erode``)."""

REFERENCE_RING = (2, 8)
"""The ring of surrounding tissue of ``lesion_reference``: from 2 to 8 crop pixels outside the
lesion in plane (:func:`~oncoflow.deep.data.ring_mask`); a crop's side is twice the lesion's
baseline extent, so the ring stays inside the crop and mostly in the liver around it."""

RATIO_FLOOR = 1e-3
"""Smallest lesion-to-ring ratio taken into ``log`` (a mask darker than a thousandth of its ring
is read as that; a missing ratio stays missing)."""


@dataclass
class LiverSettings:
    """Settings of a ladder rung (config ``studies.liver_response.train``).

    Attributes:
        rung: One of :data:`~oncoflow.models.liver.RUNGS`.
        target: Binary outcome column.
        stems: Image stems, one per MRI sequence (``MR_T1``, ``MR_T2``, ``MR_T1V``).
        primary: Stem of the single-sequence rungs.
        clinical: Clinical columns of the tabular vector.
        network: Model settings (backbone, hidden, dim, dropout, weights, timepoint).
        slices: Lesion slices per sequence and time point (``k``).
        input_size: Crop side fed to the network (pixels).
        epochs, batch_size, lr, weight_decay, patience, gamma: Training settings.
        monitor: Inner-validation value selecting the epoch: ``loss`` (the focal loss, lowest;
            smoother than an AUC on a handful of patients) or ``auc`` (highest).
        head_lr_factor: Learning rate of everything but the slice encoders, as a multiple of
            ``lr`` (the heads and the linear tabular term learn fast, the CNNs slowly).
        warm_start: Rungs with a tabular input start from the class-weighted logistic model of
            it (fit on the training patients) with the image part's last layer at zero.
        lesion_means: The tabular vector also holds the mean crop intensity of the lesion core
            (masks eroded by :data:`CORE_ERODE` crop pixels in plane) of each sequence the rung
            reads (:func:`read_stems`) before and after treatment, standardised like the
            volumes: the warm-started linear term then reads the lesion's signal from the start
            (necrosis is bright on T2, dark on T1 / T1V). Only rungs with a tabular input (from
            ``single_temporal`` on) see it.
        lesion_reference: With ``lesion_means``, each mean is read against the tissue around
            the lesion: ``log(core mean / median of the ring)`` (:data:`REFERENCE_RING`). The
            crops are scaled by whole-image percentiles, which leave the scanner's smooth
            multiplicative bias field (coil inhomogeneity, about 12 % on the demo) on the mean,
            as large as the necrosis change it should show; the ring lies under the same field.
        lesion_erode: In-plane erosion (crop pixels) of the masks the lesion means are read
            in; 0 reads the whole mask (more pixels, and with ``lesion_reference`` the rim's
            partial volume is the same before and after).
    """

    rung: str = "relation_net"
    target: str = "response"
    stems: list[str] = field(default_factory=lambda: ["MR_T1", "MR_T2", "MR_T1V"])
    primary: str = "MR_T2"
    clinical: list[str] = field(default_factory=list)
    network: dict[str, Any] = field(default_factory=dict)
    slices: int = 4
    input_size: int = 32
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 10
    gamma: float = 2.0
    monitor: str = "loss"
    head_lr_factor: float = 10.0
    warm_start: bool = True
    lesion_means: bool = False
    lesion_reference: bool = False
    lesion_erode: int = CORE_ERODE


def read_stems(settings: LiverSettings) -> list[str]:
    """The image stems a rung reads: ``[primary]`` for a single-sequence rung, else all."""
    return [settings.primary] if settings.rung in SINGLE_SEQUENCE else list(settings.stems)


def patient_tensor(
    lesions: PatientLesions, patient: str, settings: LiverSettings
) -> tuple[np.ndarray, np.ndarray]:
    """``(Q, 2, k, 2, S, S)`` crops + masks and the image-derived columns of a patient.

    Axes: sequence (``stems``), time point (pre, post), the ``k`` largest lesion slices, (image,
    lesion mask). The columns: ``[log(1 + V_pre), log(1 + V_post)]`` (mm³, mean over the
    sequences), then with ``lesion_means`` the lesion-core mean intensity (crop units; with
    ``lesion_reference`` its log ratio to the surrounding ring) of each stem of
    :func:`read_stems`, pre and post (``[s1_pre, s1_post, s2_pre, ...]``).

    Raises:
        ModelError: The patient lacks the pre (0) or post (1) time point.
    """
    if 0 not in lesions or 1 not in lesions:
        msg = f"patient {patient}: needs time points 0 and 1, has {sorted(lesions)}"
        raise ModelError(msg)
    k = settings.slices
    images = np.array(
        [
            [
                np.stack([select_slices(lesions[tp][s], k, what=p) for p in PARTS], 1)
                for tp in (0, 1)
            ]
            for s in settings.stems
        ]
    )
    columns = [
        np.log1p(np.mean([lesions[tp][s].volume_mm3 for s in settings.stems])) for tp in (0, 1)
    ]
    if settings.lesion_means:
        ring = REFERENCE_RING if settings.lesion_reference else None
        for stem in read_stems(settings):
            core = intensity_features(
                lesions, [stem], erode=settings.lesion_erode, reference_ring=ring
            )
            means = [float(core[tp][0]) for tp in (0, 1)]
            columns += [float(np.log(max(m, RATIO_FLOOR))) for m in means] if ring else means
    return images.astype(np.float32), np.array(columns, dtype=np.float32)


def _tensors(
    inputs: FoldInputs, patients: list[str], settings: LiverSettings
) -> tuple[torch.Tensor, np.ndarray]:
    pairs = [patient_tensor(inputs.lesions[p], p, settings) for p in patients]
    images = torch.from_numpy(np.stack([a for a, _ in pairs]))
    return downsample(images, settings.input_size), np.stack([v for _, v in pairs])


class LiverTask(FoldTask[LiverSettings]):
    """One ladder rung on one fold: crops + tabular vector, focal loss, optional warm start.

    Hooks (:class:`~oncoflow.deep.task.FoldTask`): :meth:`encode` builds the crops and the
    encoded tabular vectors of every group, :meth:`build` the rung (with the warm start),
    :meth:`stage` the single labelled stage (named after the rung; no ``stage`` column).
    """

    tag_stages = False

    def check(self) -> None:
        """Refuse an unknown rung or a primary stem that is not among the stems.

        Raises:
            ModelError: Either of the two.
        """
        settings = self.settings
        if settings.rung not in RUNGS:
            msg = f"unknown liver_response rung {settings.rung!r}; choose one of {', '.join(RUNGS)}"
            raise ModelError(msg)
        if settings.primary not in settings.stems:
            msg = f"primary sequence {settings.primary} is not among the stems {settings.stems}"
            raise ModelError(msg)

    def encode(self) -> None:
        """Crops, tabular vectors (clinical + standardised image columns) and labels per group.

        The clinical encoder and the mean and SD (+1e-6) of the image-derived columns of
        :func:`patient_tensor` (log volumes, lesion means) are fit on the ``train`` +
        ``inner`` patients, then every group is encoded with them (:meth:`encode_out` for the
        ``out`` group); the focal-loss class weights are ``alpha_c = N / (2 n_c)`` of the
        training labels.
        """
        inputs, settings, groups = self.inputs, self.settings, self.groups
        self.outcomes = inputs.outcomes.set_index("patient_id")[settings.target]
        fitted = {name: _tensors(inputs, groups[name], settings) for name in ("train", "inner")}
        self.encoder = TabularEncoder().fit(inputs.clinical.loc[inputs.fitted, settings.clinical])
        fitted_columns = np.concatenate([fitted["train"][1], fitted["inner"][1]])
        self.v_mean, self.v_sd = fitted_columns.mean(0), fitted_columns.std(0) + 1e-6
        self.images = {name: images for name, (images, _) in fitted.items()}
        self.tab = {name: self.tabular(name, columns) for name, (_, columns) in fitted.items()}
        self.encode_out()
        labels = {
            name: self.outcomes.loc[patients].astype(int).to_numpy()
            for name, patients in groups.items()
            if name != "out"
        }
        if inputs.permute:
            labels = {
                name: permuted(y, inputs.label_seed + i)
                for i, (name, y) in enumerate(labels.items())
            }
        self.labels = labels
        self.y_train = torch.from_numpy(labels["train"]).long()
        self.alpha = class_weights(labels["train"], 2).to(self.device)

    def tabular(self, name: str, columns: np.ndarray) -> torch.Tensor:
        """A group's tabular vectors with the fitted (or restored) encoder: never fit here.

        ``[encoder(clinical), (c - v_mean) / v_sd]`` per patient, ``c`` the image-derived columns
        of :func:`patient_tensor` (log volumes, then the lesion means with ``lesion_means``).

        Args:
            name: Group (``train``, ``inner`` or ``out``).
            columns: ``(n, c)`` image-derived columns of the group's patients, in group order.

        Raises:
            ModelError: ``columns`` is not as wide as the fitted statistics (a model trained
                with another ``lesion_means`` setting).
        """
        settings = self.settings
        clinical = self.encoder.transform(
            self.inputs.clinical.loc[self.groups[name], settings.clinical]
        )
        if columns.shape[1] != len(self.v_mean):
            msg = (
                f"{columns.shape[1]} image-derived columns (lesion_means="
                f"{settings.lesion_means}) but the model was fit on {len(self.v_mean)}"
            )
            raise ModelError(msg)
        standard = (columns - self.v_mean) / self.v_sd
        return torch.from_numpy(np.hstack([clinical, standard]).astype(np.float32))

    def encode_out(self) -> None:
        """Crops and tabular vectors of the ``out`` group (validation + test, or a new cohort).

        Reads the encoder and the image columns' statistics already on ``self`` (fit by
        :meth:`encode`, or taken from ``model.pt`` by :meth:`restore`) and fits nothing.
        """
        self.images["out"], columns = _tensors(self.inputs, self.groups["out"], self.settings)
        self.tab["out"] = self.tabular("out", columns)

    def restore(self, payload: Mapping[str, Any]) -> torch.nn.Module:
        """The trained rung and the ``out`` group's inputs, from a fold's ``model.pt`` payload.

        The ``out`` patients are encoded with the payload's clinical encoder and volume mean
        and SD (:meth:`encode_out`; nothing is fit). Their labels are read from the cohort's
        outcomes when it has the target column; patients without one get an empty ``y_true``.

        Args:
            payload: One run's payload (:meth:`payload`).

        Returns:
            The rung with the payload's weights, on :attr:`device`.

        Raises:
            ModelError: The payload was trained with another ``lesion_reference`` or
                ``lesion_erode`` setting.
        """
        target, outcomes = self.settings.target, self.inputs.outcomes
        settings = self.settings
        trained = {
            "lesion_reference": bool(payload.get("lesion_reference", False)),
            "lesion_erode": int(payload.get("lesion_erode", CORE_ERODE)),
        }
        now = {"lesion_reference": settings.lesion_reference, "lesion_erode": settings.lesion_erode}
        if settings.lesion_means and trained != now:
            msg = (
                f"the model was trained with {trained}, the study's config says {now}: the "
                "lesion means would be read another way"
            )
            raise ModelError(msg)
        if target in outcomes.columns:
            self.outcomes = outcomes.set_index("patient_id")[target]
        else:
            self.outcomes = pd.Series(dtype=float, name=target)
        self.encoder = TabularEncoder.from_state(payload["clinical_encoder"])
        self.v_mean = np.asarray(payload["volume_mean"], dtype=np.float32)
        self.v_sd = np.asarray(payload["volume_sd"], dtype=np.float32)
        self.images, self.tab = {}, {}
        self.encode_out()
        self.network = dict(payload["network"])
        model = create_model(payload["model"], **self.network)
        model.load_state_dict(payload["state_dict"])
        return model.to(self.device)

    def build(self) -> torch.nn.Module:
        """The rung, seeded with the run's label seed; warm-started when it has a tabular input.

        The warm start zeroes the image part's last layer and fits the wide (tabular) layer as
        the class-weighted ridge logistic model of the training patients
        (:func:`~oncoflow.deep.common.warm_start_linear`).
        """
        settings = self.settings
        self.network = {
            "tabular_dim": self.tab["train"].shape[1],
            "n_sequences": len(settings.stems),
            "sequence": settings.stems.index(settings.primary),
            **settings.network,
        }
        torch.manual_seed(self.inputs.label_seed)
        model = create_model(settings.rung, **self.network).to(self.device)
        if settings.warm_start and hasattr(model, "wide"):
            # start from the logistic model of the tabular inputs; the image part starts at 0
            torch.nn.init.zeros_(model.head[-1].weight)
            torch.nn.init.zeros_(model.head[-1].bias)
            warm_start_linear(model.wide, self.tab["train"], self.y_train, weight=self.alpha)
        return model

    def stage(self, model: torch.nn.Module) -> Stage:
        """AdamW (slice encoders at ``lr``, the rest at ``lr * head_lr_factor``), cosine lr.

        Batches: shuffled training patients (last partial batch dropped), flipped left-right
        with probability 1/2; loss: focal loss with ``gamma`` and ``alpha``.
        """
        settings, device, images, tab = self.settings, self.device, self.images, self.tab
        y_train, alpha = self.y_train, self.alpha
        encoder_ids = {
            id(p)
            for name, p in model.named_parameters()
            if name.startswith(("encoder", "encoders"))
        }
        param_groups = [
            {"params": [p for p in model.parameters() if id(p) in encoder_ids], "lr": settings.lr},
            {
                "params": [p for p in model.parameters() if id(p) not in encoder_ids],
                "lr": settings.lr * settings.head_lr_factor,
            },
        ]
        optimizer = torch.optim.AdamW(param_groups, weight_decay=settings.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)

        def batches(epoch: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
            for idx in index_batches(len(y_train), settings.batch_size, generator, drop_last=True):
                x = images["train"][idx]
                if bool(torch.randint(0, 2, (1,), generator=generator)):
                    x = torch.flip(x, dims=(-1,))
                yield x, tab["train"][idx], y_train[idx]

        def loss_fn(net: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            x, t, y = (b.to(device) for b in batch)
            return focal_loss(net(x, t), y, gamma=settings.gamma, alpha=alpha)

        return Stage(
            settings.rung,
            optimizer,
            batches,
            loss_fn,
            self.validate,
            settings=settings,
            epochs=settings.epochs,
            patience=settings.patience,
            monitor=settings.monitor,
            mode="min" if settings.monitor == "loss" else "max",
            scheduler=scheduler,
        )

    def scores(self, net: torch.nn.Module, name: str) -> np.ndarray:
        """``P(response)`` of a group's patients (softmax of the logits), 32 patients a batch."""
        images, tab, device = self.images[name], self.tab[name], self.device
        out = []
        for i in range(0, len(images), 32):
            logits = net(images[i : i + 32].to(device), tab[i : i + 32].to(device))
            out.append(torch.softmax(logits.float(), 1)[:, 1].cpu().numpy())
        return np.concatenate(out)

    def validate(self, net: torch.nn.Module) -> dict[str, float]:
        """Inner-validation AUC and focal loss (of ``log p``, clamped at 1e-7)."""
        prob = self.scores(net, "inner")
        y_inner = torch.from_numpy(self.labels["inner"]).long()
        logits = torch.log(torch.from_numpy(np.stack([1 - prob, prob], 1)).clamp(min=1e-7))
        loss = focal_loss(logits, y_inner, gamma=self.settings.gamma, alpha=self.alpha.cpu())
        return {"auc": safe_auc(self.labels["inner"], prob, undefined=0.5), "loss": float(loss)}

    def predict(self, model: torch.nn.Module) -> pd.DataFrame:
        """``y_true`` (the real label, never permuted) and ``y_score`` of the out patients.

        ``y_true`` is empty (``<NA>``, nullable integers) for a patient of a new cohort without
        a known label (:meth:`restore`).
        """
        with torch.no_grad():
            prob = self.scores(model, "out")
        patients = self.groups["out"]
        labels = self.outcomes.reindex(patients)
        known = bool(labels.notna().all())
        y_true = labels.astype(int).to_numpy() if known else labels
        rows = prediction_rows(
            self.inputs, patients, self.settings.target, {"y_true": y_true, "y_score": prob}
        )
        return rows if known else rows.assign(y_true=labels.astype("Int64").array)

    def payload(self, model: torch.nn.Module, result: FitResult) -> dict[str, Any]:
        """Weights, network settings, encoders and the selected epoch of the rung."""
        return {
            "model": self.settings.rung,
            "state_dict": model.state_dict(),
            "network": self.network,
            "clinical_encoder": self.encoder.state(),
            "lesion_reference": self.settings.lesion_reference,
            "lesion_erode": self.settings.lesion_erode,
            "volume_mean": self.v_mean,
            "volume_sd": self.v_sd,
            "best_epoch": result.best_epoch,
            "inner_auc": result.best_score,
            "train_patients": self.inputs.train,
            "inner_patients": self.inputs.inner,
        }


class PatientCropDataset(torch.utils.data.Dataset):
    """Streaming alternative to preloading: one patient's tensors read from its npz files.

    ``dataset[i]`` reads ``<lesions>/<patient>/*.npz`` and returns the ``(Q, 2, k, 2, S, S)`` crops
    (resized to ``input_size``) and the image-derived columns, as :func:`patient_tensor` builds
    them.
    For cohorts whose crops do not fit in memory; ``benchmarks/training_step.py`` compares its
    steps/s (``DataLoader`` with workers) with preloaded tensors.
    """

    def __init__(self, lesions: Path, patients: list[str], settings: LiverSettings) -> None:
        self.lesions, self.patients, self.settings = Path(lesions), list(patients), settings

    def __len__(self) -> int:
        return len(self.patients)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        patient = self.patients[index]
        crops = load_lesions(self.lesions / patient, self.settings.stems)
        images, columns = patient_tensor(crops, patient, self.settings)
        x = downsample(torch.from_numpy(images), self.settings.input_size)
        return x, torch.from_numpy(columns)
