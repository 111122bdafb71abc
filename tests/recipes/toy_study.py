"""A seventh study in one file: the recipe, its settings, its model and its fold trainer.

``tests/integration/test_seventh_study.py`` points a config block at this file
(``studies.toy_study.recipe: toy_study.py``) and runs the workflow's shared stages on it, with no
edit to the rules or the workflow code. The model is deliberately small: a logistic model of the
log lesion volume at the first time point, fit by full-batch gradient descent on the fold's
training patients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from oncoflow.deep.common import FoldInputs, prediction_rows
from oncoflow.models.registry import create_model, list_models, register_model
from oncoflow.studies import Recipe


@dataclass
class ToySettings:
    """Settings of the toy trainer: target column, lesion stems, clinical columns, gradient steps.

    Its keys are keys of the config schema's ``train`` block (``epochs`` counts full-batch steps
    here), so the study's config validates without a schema edit.
    """

    target: str = "progression_next"
    stems: list[str] = field(default_factory=lambda: ["CT_venous"])
    clinical: list[str] = field(default_factory=list)
    epochs: int = 50
    lr: float = 0.1


def toy_logistic(n_features: int = 1) -> nn.Module:
    """One linear layer: logit = w . x + b."""
    return nn.Linear(n_features, 1)


if "toy_logistic" not in list_models():
    register_model(toy_logistic)


def _volumes(inputs: FoldInputs, patients: list[str], stems: list[str]) -> torch.Tensor:
    """log(1 + mean lesion volume in mm³) at the first time point, one row per patient."""
    values = []
    for patient in patients:
        first = inputs.lesions[patient][min(inputs.lesions[patient])]
        values.append(np.log1p(np.mean([first[s].volume_mm3 for s in stems])))
    return torch.tensor(values, dtype=torch.float32)[:, None]


def train_fold(
    inputs: FoldInputs, settings: ToySettings, *, device: torch.device, resume_dir: Path
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """Fit on the fold's training + inner patients; score its validation and test patients."""
    labels = inputs.outcomes.groupby("patient_id")[settings.target].max()
    fitted, scored = inputs.fitted, inputs.validation + inputs.test
    x, y = _volumes(inputs, fitted, settings.stems), torch.tensor(labels.loc[fitted].to_numpy())
    mean, sd = x.mean(0), x.std(0) + 1e-6
    model = create_model("toy_logistic", n_features=1).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr)
    history = []
    for step in range(settings.epochs):
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(
            model((x - mean) / sd)[:, 0], y.float()
        )
        loss.backward()
        optimizer.step()
        history.append({"epoch": step + 1, "train_loss": float(loss)})
    with torch.no_grad():
        score = torch.sigmoid(model((_volumes(inputs, scored, settings.stems) - mean) / sd))
    values = {"y_true": labels.loc[scored].astype(int), "y_score": score[:, 0].numpy()}
    rows = prediction_rows(inputs, scored, settings.target, values)
    payload = {"model": "toy_logistic", "state_dict": model.state_dict(), "best_epoch": None}
    return payload, rows, pd.DataFrame(history)


RECIPE = Recipe(
    name="toy_study",
    summary="logistic model of the lesion volume (a test of the recipe layer)",
    family="deep",
    models=("toy_logistic",),
    trainer=train_fold,
    settings=ToySettings,
    stages=("lesions",),
    evaluation=("binary",),
)
