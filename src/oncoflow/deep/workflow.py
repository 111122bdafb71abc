"""One entry point for every deep model's fold job (``scripts/train_model.py``) and the ensemble.

:func:`run_fold` reads the fold's inputs (:func:`~oncoflow.deep.common.load_fold`), trains the
study's model (``cnn_lstm``, a ``liver_response`` ladder rung, ``mm_dls``) and writes
``model.pt``, ``history.csv`` and ``predictions.csv`` into the fold folder and returns the
summary the script writes as ``provenance.json``.
The resume files live in ``resume_dir``, outside the job's declared outputs, so a killed job
continues where it stopped. :func:`oncoflow.deep.ensemble.collect_folds` joins the folds into the
study's ``predictions.csv`` (validation rows per fold, test rows averaged over the fold models as
fold ``final``).

The negative control (``permute``) trains ``permutations`` runs per fold, each on its own
permutation of the training labels; their rows carry a ``permutation`` column, and the evaluators
score each run and report the mean (one run of a network trained on shuffled labels is a random
function of predictive inputs, so its test AUC scatters widely around 0.5). Stages that do not read
the outcome labels (the cnn_lstm lesion extractor) train once and serve every run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from oncoflow.deep.common import FoldInputs, load_fold
from oncoflow.deep.task import fold_trainer
from oncoflow.errors import ConfigError, ModelError
from oncoflow.formats import write_predictions
from oncoflow.studies import Recipe, load_recipe, model_names, recipe_for
from oncoflow.train.engine import resolve_device, seed_everything

log = logging.getLogger(__name__)

MODELS: tuple[str, ...] = tuple(model_names("deep"))
"""Model names a ``train_model`` job can train: the models of the ``deep`` recipes."""


def _settings(cls: type, values: Mapping[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        msg = (
            f"unknown training setting(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})"
        )
        raise ModelError(msg)
    return cls(**values)


def model_parts(
    recipe: Recipe, model: str, settings: Mapping[str, Any]
) -> tuple[Any, Any, list[str], str]:
    """(settings object, fold trainer, stems, stratification target) of a recipe's model.

    The fold trainer is the recipe's function, or the run of its
    :class:`~oncoflow.deep.task.FoldTask` subclass (:func:`~oncoflow.deep.task.fold_trainer`).

    Raises:
        ModelError: ``model`` is not one of the recipe's, or a setting its trainer does not take.
    """
    if recipe.family != "deep" or model not in recipe.models:
        msg = f"recipe {recipe.name} trains no deep model {model!r} (its models: {recipe.models})"
        raise ModelError(msg)
    values = {**settings, recipe.model_key: model} if recipe.model_key else dict(settings)
    parsed = _settings(recipe.load("settings"), values)
    trainer = fold_trainer(recipe.load("trainer"))
    return parsed, trainer, parsed.stems, recipe.strata or parsed.target


def run_fold(
    *,
    model: str,
    recipe: str | Recipe = "",
    settings: Mapping[str, Any],
    cohort: Path,
    folds: Path,
    splits: Path,
    lesions: Path,
    fold: str,
    out_dir: Path,
    resume_dir: Path,
    features: Mapping[str, Path] | None = None,
    inner_fraction: float = 0.2,
    permute: bool = False,
    permutations: int = 1,
    seed: int = 0,
    device: str = "auto",
    converted: Path | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Train ``model`` on one fold and write its outputs (module docstring).

    Args:
        model: A name of :data:`MODELS`, one of the recipe's models.
        recipe: The study's recipe, or its name or file (``studies.<s>.recipe``); empty: the one
            built-in recipe with ``model`` (:func:`oncoflow.studies.recipe_for`).
        settings: The model's settings (config ``studies.<study>.train`` without the
            workflow keys).
        cohort: Cohort folder.
        folds: ``folds.json``.
        splits: ``splits.csv``.
        lesions: The study's lesion folder (one sub-folder per patient).
        fold: Fold name (``0`` ...).
        out_dir: Fold folder receiving ``model.pt``, ``history.csv``, ``predictions.csv``,
            ``provenance.json``.
        resume_dir: Where the resume files live (kept when the job fails).
        features: Per-patient feature tables by name (``pet`` ...).
        inner_fraction: Share of the fold's training patients used for selection.
        permute: Negative control: permuted training labels.
        permutations: Negative-control runs (each its own permutation); ignored without
            ``permute``.
        seed: Base seed; the fold's seed is ``seed + 1000 * fold``.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        converted: ``results/converted`` for models that read whole images (the mm_dls
            lesion-core statistics).

    Returns:
        The fold's prediction rows and a JSON-ready summary (device, seed, settings, the fold's
        training / inner / validation patients, best epoch) that ``scripts/train_model.py``
        writes as ``provenance.json`` with the job's config hash and package versions.
    """
    if not isinstance(recipe, Recipe):
        try:
            recipe = load_recipe(recipe) if recipe else recipe_for("", {"model": model})
        except ConfigError as exc:
            raise ModelError(str(exc)) from exc
    parsed, train, stems, target = model_parts(recipe, model, settings)
    fold_seed = int(seed) + 1000 * int(fold)
    seed_everything(fold_seed)
    torch_device = resolve_device(device)
    outcomes = pd.read_csv(Path(cohort) / "outcomes.csv", dtype={"patient_id": str})
    if target not in outcomes.columns:
        msg = f"{cohort}/outcomes.csv: no column {target!r} for model {model}"
        raise ModelError(msg)
    strata = outcomes.groupby("patient_id")[target].max().to_dict()
    inputs = load_fold(
        cohort=cohort,
        folds=folds,
        splits=splits,
        lesions=lesions,
        fold=str(fold),
        stems=stems,
        strata=strata,
        features=features,
        inner_fraction=inner_fraction,
        permute=permute,
        seed=fold_seed,
        converted=converted,
    )
    runs = range(int(permutations)) if permute else range(1)
    if permute and int(permutations) < 1:
        msg = f"permutations must be >= 1, got {permutations}"
        raise ModelError(msg)
    payloads, tables, histories = _train_runs(
        train, inputs, parsed, model=model, runs=runs, device=torch_device, resume_dir=resume_dir
    )
    payload = payloads[0] if not permute else {"model": model, "permutations": payloads}
    out_dir.mkdir(parents=True, exist_ok=True)
    payload["settings"] = dataclasses.asdict(parsed)
    payload["permuted"] = permute
    torch.save(payload, out_dir / "model.pt")
    pd.concat(histories, ignore_index=True).to_csv(out_dir / "history.csv", index=False)
    rows = pd.concat(tables, ignore_index=True)
    write_predictions(out_dir / "predictions.csv", rows)
    best = [p.get("best_epoch") for p in payloads] if permute else payload.get("best_epoch")
    summary = _summary(model, fold_seed, torch_device, inputs, parsed, len(runs), best)
    return rows, summary


def _train_runs(
    train: Callable[..., tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]],
    inputs: FoldInputs,
    parsed: Any,
    *,
    model: str,
    runs: range,
    device: torch.device,
    resume_dir: Path,
) -> tuple[list[dict[str, Any]], list[pd.DataFrame], list[pd.DataFrame]]:
    """Train the fold once, or once per negative-control run (``permutation`` column added).

    Returns:
        The runs' payloads, prediction rows and history rows.
    """
    payloads, tables, histories = [], [], []
    for k in runs:
        inputs.permutation = k
        what = f" (permutation {k + 1}/{len(runs)})" if inputs.permute else ""
        log.info("training %s, fold %s on %s%s", model, inputs.fold, device, what)
        payload, rows, history = train(inputs, parsed, device=device, resume_dir=resume_dir)
        if inputs.permute:
            rows, history = rows.assign(permutation=k), history.assign(permutation=k)
        payloads.append(payload)
        tables.append(rows)
        histories.append(history)
    return payloads, tables, histories


def _summary(
    model: str,
    seed: int,
    device: torch.device,
    inputs: FoldInputs,
    parsed: Any,
    runs: int,
    best_epoch: Any,
) -> dict[str, Any]:
    """The JSON-ready summary of :func:`run_fold` (``provenance.json`` of the fold)."""
    return {
        "model": model,
        "fold": inputs.fold,
        "seed": seed,
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or platform.machine()
        ),
        "permuted": inputs.permute,
        "permutations": runs if inputs.permute else 0,
        "settings": json.loads(json.dumps(dataclasses.asdict(parsed), default=str)),
        "train_patients": inputs.train,
        "inner_patients": inputs.inner,
        "validation_patients": inputs.validation,
        "best_epoch": best_epoch,
    }
