"""The lung_synthesis stage as the rules run it.

Train on the training split, sample the test patients with their own masks, score the samples
against their real CT, draw the report panel.

Converted images are read from ``<converted>/<patient>/<timepoint>/<stem>.nii.gz`` with the mask
``<stem>_mask.nii.gz`` (the conversion stage's layout), baseline timepoint ``0``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from oncoflow.errors import ModelError
from oncoflow.synthesis.data import Case, keep_mask, load_case, restore
from oncoflow.synthesis.diffusion import CosineSchedule, sample
from oncoflow.synthesis.fidelity import (
    nodule_features,
    patient_fidelity,
    radiomics_distance,
    summarize_fidelity,
)
from oncoflow.synthesis.model import DDPMSettings, stack_cases
from oncoflow.train import resolve_device


def split_patients(splits_csv: Path | str, which: Sequence[str]) -> list[str]:
    """Patients of the given splits (``train``, ``internal_test``, ``external_test``), sorted.

    Raises:
        ModelError: Unreadable file or no patient in those splits.
    """
    try:
        table = pd.read_csv(splits_csv, dtype={"patient_id": str})
    except (OSError, ValueError) as exc:
        msg = f"{splits_csv}: cannot read the splits ({exc})"
        raise ModelError(msg) from exc
    patients = sorted(table.loc[table["split"].isin(list(which)), "patient_id"])
    if not patients:
        msg = f"{splits_csv}: no patient in split(s) {', '.join(which)}"
        raise ModelError(msg)
    return patients


def read_case(
    converted: Path | str,
    patient: str,
    settings: DDPMSettings,
    stem: str = "CT",
    timepoint: str = "0",
) -> Case:
    """The converted baseline CT + mask of one patient at the model size."""
    folder = Path(converted) / patient / timepoint
    image, mask = folder / f"{stem}.nii.gz", folder / f"{stem}_mask.nii.gz"
    for path in (image, mask):
        if not path.is_file():
            msg = f"patient {patient}: {path} does not exist (converted {stem} with its mask)"
            raise ModelError(msg)
    return load_case(patient, image, mask, size=settings.size, window=settings.window)


def synthesize(
    model: torch.nn.Module,
    settings: DDPMSettings,
    case: Case,
    *,
    anatomy_preserving: bool = True,
    ddim_steps: int | None = None,
    seed: int = 0,
    device: str = "auto",
) -> np.ndarray:
    """One synthetic CT (HU, on the real grid) conditioned on ``case``'s masks.

    ``model`` and ``settings`` come from :func:`~oncoflow.synthesis.model.load_model` (read once
    for any number of cases).
    """
    target = resolve_device(device)
    model = model.to(target)
    generator = torch.Generator(device=target).manual_seed(seed)
    condition = case.condition[None].to(target)
    options: dict[str, Any] = {"ddim_steps": ddim_steps, "generator": generator}
    if anatomy_preserving:
        options |= {"real": case.image[None].to(target), "keep": keep_mask(case)[None].to(target)}
    out = sample(model, CosineSchedule(settings.steps), condition, **options)
    return restore(out[0].cpu(), case, settings.window)


def evaluate_samples(
    samples: Mapping[str, Path], converted: Path | str, settings: DDPMSettings, stem: str = "CT"
) -> tuple[dict[str, Any], list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]:
    """Fidelity of every sample against its patient's real CT (:mod:`~oncoflow.synthesis.fidelity`).

    Returns:
        ``(summary, panels)``; panels are ``(patient, real HU, synthetic HU, labels)``.
    """
    import nibabel as nib

    rows, real_features, synthetic_features, panels = [], [], [], []
    for patient, path in sorted(samples.items()):
        case = read_case(converted, patient, settings, stem)
        synthetic = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
        if synthetic.shape != case.hu.shape:
            msg = f"patient {patient}: sample {path} is not on the real image's grid"
            raise ModelError(msg)
        rows.append(
            {
                "patient_id": patient,
                **patient_fidelity(synthetic, case.hu, case.labels, settings.window),
            }
        )
        if (case.labels == 2).sum() >= 8:
            real_features.append(nodule_features(case.hu, case.labels, case.affine))
            synthetic_features.append(nodule_features(synthetic, case.labels, case.affine))
        panels.append((patient, case.hu, synthetic, case.labels))
    distance = (
        radiomics_distance(real_features, synthetic_features)
        if len(real_features) >= 2
        else float("nan")
    )
    summary = summarize_fidelity(pd.DataFrame(rows), distance)
    summary["n_nodules_compared"] = len(real_features)
    return summary, panels


def training_inputs(
    converted: Path | str, patients: Sequence[str], settings: DDPMSettings, stem: str = "CT"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stacked model-size tensors of the training patients."""
    return stack_cases([read_case(converted, p, settings, stem) for p in patients])
