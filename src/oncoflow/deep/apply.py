"""Apply a deep model's frozen fold models to a new cohort (the ``apply`` target): nothing is fit.

Every ``fold_<k>/model.pt`` a study's training wrote scores every patient of the new cohort
through its task's :meth:`~oncoflow.deep.task.FoldTask.apply` (the encoders, standardisation
and weights of the payload), and the fold models' scores are averaged, as the fold ensemble of
training averages them over the test patients (:func:`oncoflow.deep.ensemble.ensemble_predictions`).
A negative-control ``model.pt`` holds one payload per run: each run is applied and keeps its
``permutation`` column.

The rows have ``split = "apply"`` and ``fold = "final"``; labels come from the new cohort's
``outcomes.csv`` when it has one, and are empty when it does not.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from oncoflow.artefacts import sha256
from oncoflow.cohort import read_table
from oncoflow.deep.common import FoldInputs, patient_inputs
from oncoflow.deep.ensemble import ensemble_predictions
from oncoflow.deep.task import FoldTask
from oncoflow.errors import ModelError
from oncoflow.splits import APPLY_SPLIT
from oncoflow.studies import Recipe, load_recipe
from oncoflow.train.engine import resolve_device

log = logging.getLogger(__name__)


def apply_inputs(
    *,
    cohort: Path,
    lesions: Path,
    stems: Sequence[str],
    features: Mapping[str, Path] | None = None,
    converted: Path | None = None,
    patients: Sequence[str] | None = None,
) -> FoldInputs:
    """The new cohort as the inputs of a fold with no training patients: every patient is ``test``.

    Args:
        cohort: The new cohort's folder (``clinical.csv``; ``outcomes.csv`` and ``images.csv``
            when present).
        lesions: Its lesion folder (one sub-folder per patient, the lesions stage of ``apply``).
        stems: Image stems the model reads.
        features: Name -> per-patient feature CSV of the new cohort (``pet`` ...).
        converted: Its converted images (models that read whole images), or ``None``.
        patients: Patients to score (default: every patient of ``clinical.csv``).

    Raises:
        ModelError: A patient without a clinical row or lesion crops (named, with the folder).
    """
    cohort = Path(cohort)
    clinical = read_table(cohort, "clinical").set_index("patient_id")
    if (cohort / "outcomes.csv").is_file():
        outcomes = read_table(cohort, "outcomes")
    else:
        outcomes = pd.DataFrame({"patient_id": pd.Series(dtype=str)})
    chosen = sorted(map(str, patients if patients is not None else clinical.index))
    crops, sites, tables = patient_inputs(
        cohort, chosen, clinical, lesions=lesions, stems=stems, features=features
    )
    return FoldInputs(
        fold="final",
        train=[],
        inner=[],
        validation=[],
        test=chosen,
        splits=dict.fromkeys(chosen, APPLY_SPLIT),
        clinical=clinical,
        outcomes=outcomes,
        lesions=crops,
        features=tables,
        converted=Path(converted) if converted is not None else None,
        sites=sites,
    )


def task_class(recipe: Recipe) -> type[FoldTask[Any]]:
    """The recipe's :class:`~oncoflow.deep.task.FoldTask` subclass.

    Raises:
        ModelError: The recipe is not ``deep`` or trains with a plain function (nothing to
            restore a model with).
    """
    trainer = recipe.load("trainer") if recipe.family == "deep" else None
    if not (isinstance(trainer, type) and issubclass(trainer, FoldTask)):
        msg = f"recipe {recipe.name}: its models have no fold task to apply them with"
        raise ModelError(msg)
    return trainer


def _runs(payload: Mapping[str, Any]) -> list[tuple[int | None, Mapping[str, Any]]]:
    """``(permutation, payload)`` of each run a ``model.pt`` holds."""
    if payload.get("permuted"):
        return list(enumerate(payload["permutations"]))
    return [(None, payload)]


def apply_folds(
    models: Mapping[Path, Mapping[str, Any]],
    inputs: FoldInputs,
    *,
    recipe: Recipe,
    device: torch.device,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Score ``inputs.test`` with every fold model and average them (module docstring).

    Args:
        models: Each ``fold_<k>/model.pt`` file of one variant -> its loaded payload.
        inputs: The new cohort (:func:`apply_inputs`).
        recipe: The study's recipe (its task class and settings class).
        device: Inference device.

    Returns:
        ``(predictions, summary)``: rows with ``split = "apply"``, ``fold = "final"``; the summary
        names every model file with its SHA-256, the folds and the patients, and per fold what
        the task noted (``notes``: e.g. MM-DLS's ComBat sites estimated from the new cohort or
        left at the pooled training estimates).

    Raises:
        ModelError: No model file, or one whose settings the recipe's settings class refuses.
    """
    if not models:
        msg = "apply: no trained fold model (fold_<k>/model.pt) to apply"
        raise ModelError(msg)
    task, settings_class = task_class(recipe), recipe.load("settings")
    tables, files, notes = [], [], {}
    for path, payload in models.items():
        try:
            settings = settings_class(**payload["settings"])
        except TypeError as exc:
            msg = f"{path}: its settings do not fit {settings_class.__name__} ({exc})"
            raise ModelError(msg) from exc
        fold = Path(path).parent.name.removeprefix("fold_")
        inputs.fold = fold
        for permutation, run in _runs(payload):
            runner = task(inputs, settings, device=device, resume_dir=Path(path).parent)
            with torch.no_grad():
                rows = runner.apply(run)
            if runner.notes:
                notes[fold] = runner.notes
            if permutation is not None:
                rows = rows.assign(permutation=permutation)
            tables.append(rows.assign(fold=fold))
        files.append({"path": str(path), "sha256": sha256(path), "fold": fold})
        log.info("applied %s (fold %s) to %d patients", path, fold, len(inputs.test))
    inputs.fold = "final"
    predictions = ensemble_predictions(tables)
    summary = {
        "n_patients": len(inputs.test),
        "patients": list(inputs.test),
        "model_files": files,
        "settings": dataclasses.asdict(settings),
        "outcomes_known": bool(len(inputs.outcomes)),
        "notes": notes,
    }
    return predictions, summary


def apply_deep_model(
    model_files: Sequence[Path],
    *,
    recipe: str | Recipe,
    cohort: Path,
    lesions: Path,
    features: Mapping[str, Path] | None = None,
    converted: Path | None = None,
    device: str = "auto",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read the new cohort and apply every fold model of one variant (:func:`apply_folds`).

    Args:
        model_files: The variant's ``fold_<k>/model.pt`` files.
        recipe: The study's recipe, or its name or file (``studies.<s>.recipe``).
        cohort: The new cohort's folder.
        lesions: Its lesion crops (one folder per patient).
        features: Name -> its per-patient feature CSVs.
        converted: Its converted images (models that read whole images).
        device: ``auto``, ``cpu`` or ``cuda[:N]``.

    Returns:
        ``(predictions, summary)`` of :func:`apply_folds`.
    """
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    torch_device = resolve_device(device)
    models = {
        Path(path): torch.load(path, map_location=torch_device, weights_only=False)
        for path in model_files
    }  # each read once: the stems of the first, then every fold's weights and encoders
    first = next(iter(models.values()), {})
    stems = list(first.get("settings", {}).get("stems", []))
    inputs = apply_inputs(
        cohort=cohort, lesions=lesions, stems=stems, features=features, converted=converted
    )
    return apply_folds(models, inputs, recipe=recipe, device=torch_device)
