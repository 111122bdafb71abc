"""The MM-DLS lung + lesion segmentor stage (:mod:`oncoflow.models.segmentor`) of a fold.

When the job has the converted CT images (``FoldInputs.converted``), the segmentor (shared
encoder, two decoders, lesion-to-lung cross-attention) trains on the axial slices of the fold's
training patients with soft Dice + BCE per branch, is selected on the inner patients by the mean
of lung and lesion Dice, ``(Dice_lung + Dice_lesion) / 2``, and scored once on the fold's
validation patients. It never reads the outcome: a label-free :class:`~oncoflow.deep.task.Stage`
that every negative-control run shares.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oncoflow.deep.common import FoldInputs, index_batches
from oncoflow.deep.mmdls_settings import MMDLSSettings
from oncoflow.deep.task import Stage
from oncoflow.errors import ModelError
from oncoflow.models.registry import create_model
from oncoflow.models.segmentor import LungLesionSegmentor, dice_score, segmentation_loss

log = logging.getLogger(__name__)


SEGMENTOR_DEFAULTS: dict[str, Any] = {
    "epochs": 6,
    "width": 8,
    "depth": 3,
    "heads": 4,
    "lr": 3e-3,
    "batch_size": 16,
    "slices": 8,
    "window": [-1000.0, 400.0],
    "lung_labels": [1, 2],
    "lesion_labels": [2],
}


def segmentation_slices(
    converted: Path, patients: list[str], stem: str, cfg: Mapping[str, Any]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Axial CT slices with lung and lesion masks of the patients' baseline (from ``convert``).

    Per patient the ``slices`` lesion slices with the largest lesion area and as many lung-only
    slices (evenly spaced); CT windowed to ``window`` and scaled to [0, 1].

    Returns:
        Images, lung masks and lesion masks, each (n, 1, H, W) float32.

    Raises:
        ModelError: A patient's converted image or mask is missing (named).
    """
    low, high = (float(v) for v in cfg["window"])
    images, lungs, lesions = [], [], []
    for patient in patients:
        image, mask = converted_baseline(converted, patient, stem)
        image = image.astype(np.float32)
        lung = np.isin(mask, cfg["lung_labels"])
        lesion = np.isin(mask, cfg["lesion_labels"])
        area = lesion.sum((1, 2))
        k = int(cfg["slices"])
        with_lesion = np.sort(np.argsort(-area, kind="stable")[: min(k, int((area > 0).sum()))])
        lung_only = np.flatnonzero((area == 0) & (lung.sum((1, 2)) > 0))
        if len(lung_only):
            lung_only = lung_only[
                np.linspace(0, len(lung_only) - 1, min(k, len(lung_only))).astype(int)
            ]
        chosen = np.concatenate([with_lesion, lung_only]).astype(int)
        images.append(np.clip((image[chosen] - low) / (high - low), 0, 1))
        lungs.append(lung[chosen])
        lesions.append(lesion[chosen])
    as_tensor = lambda parts: torch.from_numpy(np.concatenate(parts).astype(np.float32)[:, None])  # noqa: E731
    return as_tensor(images), as_tensor(lungs), as_tensor(lesions)


def converted_baseline(converted: Path, patient: str, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """Baseline ``<stem>.nii.gz`` and ``<stem>_mask.nii.gz`` of a patient (z, y, x), from convert.

    Raises:
        ModelError: The image or its mask is missing (patient and folder named).
    """
    import SimpleITK as sitk

    folder = Path(converted) / patient / "0"
    image_path, mask_path = folder / f"{stem}.nii.gz", folder / f"{stem}_mask.nii.gz"
    if not image_path.is_file() or not mask_path.is_file():
        msg = f"patient {patient}: no converted {stem} image + mask in {folder}"
        raise ModelError(msg)
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(image_path)))
    return image, sitk.GetArrayFromImage(sitk.ReadImage(str(mask_path)))


def segmentor_stage(
    inputs: FoldInputs, settings: MMDLSSettings, device: torch.device
) -> tuple[LungLesionSegmentor, Stage]:
    """The segmentor (seeded with ``seed + 5``) and its label-free stage.

    AdamW; batches of training slices flipped left-right with probability 1/2 (last partial
    batch dropped); every epoch runs (no early stopping); the inner patients' mean Dice
    (:func:`segmentor_dice`) selects the epoch.

    Raises:
        ModelError: A patient's converted image or mask is missing.
    """
    cfg = {**SEGMENTOR_DEFAULTS, **settings.segmentor}
    stem = settings.stems[0]
    x_tr, lung_tr, lesion_tr = segmentation_slices(inputs.converted, inputs.train, stem, cfg)
    x_in, lung_in, lesion_in = segmentation_slices(inputs.converted, inputs.inner, stem, cfg)
    torch.manual_seed(inputs.seed + 5)
    model = create_model(
        "lung_lesion_segmentor",
        in_channels=1,
        width=int(cfg["width"]),
        depth=int(cfg["depth"]),
        heads=int(cfg["heads"]),
    ).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(cfg["lr"]))

    def batches(epoch: int, generator: torch.Generator) -> Iterator[list[torch.Tensor]]:
        n = len(x_tr)
        for idx in index_batches(n, int(cfg["batch_size"]), generator, drop_last=True):
            flip = bool(torch.randint(0, 2, (1,), generator=generator))
            parts = [x_tr[idx], lung_tr[idx], lesion_tr[idx]]
            yield [torch.flip(p, dims=(-1,)) if flip else p for p in parts]

    def loss_fn(net: torch.nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        x, lung, lesion = (b.to(device) for b in batch)
        return segmentation_loss(net(x), lung, lesion)

    stage = Stage(
        "segmentor",
        optimizer,
        batches,
        loss_fn,
        lambda net: segmentor_dice(net, x_in, lung_in, lesion_in, device),
        settings=cfg,
        epochs=int(cfg["epochs"]),
        patience=0,
        monitor="dice",
        labelled=False,
        resume="segmentor.pt",
        history="segmentor_history.csv",
    )
    return model, stage


def segmentor_dice(
    net: torch.nn.Module,
    x: torch.Tensor,
    lung: torch.Tensor,
    lesion: torch.Tensor,
    device: torch.device,
) -> dict[str, float]:
    """Mean per-slice Dice of the lung (every slice) and the lesion (slices holding one).

    Returns:
        ``lung_dice``, ``lesion_dice`` (0 without a lesion slice) and their mean ``dice``.
    """
    scores: dict[str, list[float]] = {"lung_dice": [], "lesion_dice": []}
    for i in range(0, len(x), 64):
        out = net(x[i : i + 64].to(device))
        scores["lung_dice"] += dice_score(out["lung"], lung[i : i + 64].to(device)).tolist()
        has = lesion[i : i + 64].sum((1, 2, 3)) > 0
        if has.any():
            dice = dice_score(out["lesion"][has.to(device)], lesion[i : i + 64][has].to(device))
            scores["lesion_dice"] += dice.tolist()
    values = {k: float(np.mean(v)) if v else 0.0 for k, v in scores.items()}
    values["dice"] = (values["lung_dice"] + values["lesion_dice"]) / 2
    return values


def validation_dice(
    model: torch.nn.Module, inputs: FoldInputs, settings: MMDLSSettings, device: torch.device
) -> dict[str, float]:
    """:func:`segmentor_dice` of the trained segmentor on the fold's validation patients."""
    cfg = {**SEGMENTOR_DEFAULTS, **settings.segmentor}
    slices = segmentation_slices(inputs.converted, inputs.validation, settings.stems[0], cfg)
    with torch.no_grad():
        validation = segmentor_dice(model, *slices, device)
    log.info(
        "segmentor: validation Dice lung %.3f, lesion %.3f",
        validation["lung_dice"],
        validation["lesion_dice"],
    )
    return validation
