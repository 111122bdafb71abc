"""What every deep study shares: the fold's patients and tables, batching, scores, outputs.

:class:`FoldInputs` holds one fold's patient lists (``train`` fits weights, ``inner`` selects the
epoch, ``validation`` = the fold's held-out CV patients, ``test`` = internal + external test),
the cohort tables and the lesion crops. :func:`index_batches` shuffles sample indices with the
epoch's generator (exact resume, see :mod:`oncoflow.train.loop`). :func:`prediction_rows` writes
the ``predictions.csv`` contract rows; :func:`oncoflow.deep.ensemble.ensemble_predictions`
averages the fold models' test scores into the ``final`` rows (probabilities and risks averaged
over folds).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from oncoflow.cohort import read_table
from oncoflow.deep.data import PatientLesions, fold_patients, load_lesions
from oncoflow.errors import ModelError
from oncoflow.formats import read_fold
from oncoflow.train.engine import Checkpoint, History, config_hash
from oncoflow.train.loop import FitResult, FitSettings, fit

log = logging.getLogger(__name__)


@dataclass
class FoldInputs:
    """One fold's patients, tables and crops (module docstring).

    Attributes:
        fold: Fold name in ``folds.json`` (``"0"``, ...).
        train: Patients whose labels fit the weights.
        inner: Training patients held out for early stopping / selection / thresholds.
        validation: The fold's CV validation patients (rows with split ``validation``).
        test: Internal and external test patients.
        splits: Patient -> split of ``splits.csv``.
        clinical: Clinical table indexed by patient.
        outcomes: Outcomes table (``patient_id`` [+ ``timepoint``] + targets).
        lesions: Patient -> time point -> stem -> crops (every patient above).
        features: Extra per-patient feature tables (e.g. ``pet``), indexed by patient.
        permute: Negative control: training labels are permuted across patients.
        permutation: Index of the negative-control run (each run draws its own permutation).
        seed: Seed of the fold (inner split, permutation, initialisation).
        converted: ``results/converted`` (models that read whole images, e.g. the MM-DLS
            lesion-core statistics), or ``None``.
        sites: Patient -> acquisition site (``images.csv`` column ``site``; empty without it).
    """

    fold: str
    train: list[str]
    inner: list[str]
    validation: list[str]
    test: list[str]
    splits: dict[str, str]
    clinical: pd.DataFrame
    outcomes: pd.DataFrame
    lesions: dict[str, PatientLesions]
    features: dict[str, pd.DataFrame] = field(default_factory=dict)
    permute: bool = False
    permutation: int = 0
    seed: int = 0
    converted: Path | None = None
    sites: dict[str, str] = field(default_factory=dict)

    @property
    def label_seed(self) -> int:
        """Seed of the labelled stages of this run: ``seed + 7919 * permutation``.

        It seeds the label permutation, the initialisation and the batch order of every stage
        that reads the labels (``seed`` itself for the real model), so each negative-control run
        is an independent draw: runs sharing one initialisation share its random direction in
        feature space, and their mean would not go to chance.
        """
        return self.seed + 7919 * self.permutation

    def resume_file(self, resume_dir: Path, name: str, *, labelled: bool = True) -> Path:
        """Resume / history file ``name`` of a training stage.

        A stage that reads the outcome labels (``labelled``) of a negative-control run gets its
        own ``permutation_<k>/`` folder; label-free stages (the cnn_lstm lesion extractor)
        are shared by every permutation of the fold, so they train once.
        """
        folder = Path(resume_dir)
        if labelled and self.permute:
            folder = folder / f"permutation_{self.permutation}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    @property
    def fitted(self) -> list[str]:
        """Every patient whose data may be fitted on: ``train`` + ``inner``."""
        return sorted(self.train + self.inner)

    def split_of(self, patient: str) -> str:
        """``validation`` for the fold's CV patients, else the patient's test split."""
        return "validation" if patient in set(self.validation) else self.splits[patient]


def load_fold(
    *,
    cohort: Path,
    folds: Path,
    splits: Path,
    lesions: Path,
    fold: str,
    stems: Sequence[str],
    strata: Mapping[str, Any],
    features: Mapping[str, Path] | None = None,
    inner_fraction: float = 0.2,
    permute: bool = False,
    seed: int = 0,
    converted: Path | None = None,
) -> FoldInputs:
    """Read everything one fold's training job needs.

    Args:
        cohort: Cohort folder (``clinical.csv``, ``outcomes.csv``).
        folds: ``results/<study>/folds.json``.
        splits: ``results/<study>/splits.csv``.
        lesions: ``results/<study>/lesions`` (one folder per patient).
        fold: Fold name.
        stems: Image stems the model reads.
        strata: Patient -> stratum of the inner split.
        features: Name -> per-patient feature CSV (``patient_id`` + columns).
        inner_fraction: Share of the fold's training patients kept for selection.
        permute: Negative control (permuted training labels).
        seed: Fold seed.
        converted: Converted images root (``FoldInputs.converted``).

    Raises:
        ModelError: A patient of the fold has no lesion crops or clinical row (named).
        FormatError: The folds file is unreadable, breaks its schema or lacks ``fold``.
    """
    fit, validation, test = read_fold(folds, fold)
    validation = validation if fold != "final" else []  # "final" applies to the test patients
    train, inner = fold_patients(fit, strata, inner_fraction=inner_fraction, seed=seed)
    split_table = pd.read_csv(splits, dtype={"patient_id": str})
    clinical = read_table(cohort, "clinical").set_index("patient_id")
    outcomes = read_table(cohort, "outcomes")
    everyone = sorted(set(fit) | set(validation) | set(test))
    crops, sites, tables = patient_inputs(
        cohort, everyone, clinical, lesions=lesions, stems=stems, features=features
    )
    log.info(
        "fold %s: %d training + %d inner-validation patients, %d validation, %d test",
        fold,
        len(train),
        len(inner),
        len(validation),
        len(test),
    )
    return FoldInputs(
        fold=fold,
        train=train,
        inner=inner,
        validation=sorted(validation),
        test=sorted(test),
        splits=dict(zip(split_table["patient_id"], split_table["split"], strict=True)),
        clinical=clinical,
        outcomes=outcomes,
        lesions=crops,
        features=tables,
        permute=permute,
        seed=seed,
        converted=Path(converted) if converted is not None else None,
        sites=sites,
    )


def patient_inputs(
    cohort: Path,
    patients: Sequence[str],
    clinical: pd.DataFrame,
    *,
    lesions: Path,
    stems: Sequence[str],
    features: Mapping[str, Path] | None = None,
) -> tuple[dict[str, PatientLesions], dict[str, str], dict[str, pd.DataFrame]]:
    """The crops, sites and feature tables of ``patients`` (a fold's, or a new cohort's).

    Args:
        cohort: Cohort folder (``images.csv`` gives the sites when it has a ``site`` column).
        patients: Patients to read.
        clinical: ``clinical.csv`` indexed by patient (every patient needs a row).
        lesions: Lesion folder (one sub-folder per patient).
        stems: Image stems the model reads.
        features: Name -> per-patient feature CSV (``patient_id`` + columns).

    Returns:
        ``(patient -> crops, patient -> site, name -> table indexed by patient)``.

    Raises:
        ModelError: A patient without a clinical row or lesion crops (named, with the folder).
    """
    missing = [p for p in patients if p not in clinical.index]
    if missing:
        msg = f"{cohort}/clinical.csv: no row for patient(s) {', '.join(missing[:10])}"
        raise ModelError(msg)
    crops: dict[str, PatientLesions] = {}
    for patient in patients:
        folder = Path(lesions) / patient
        if not folder.is_dir():
            msg = f"patient {patient}: no lesion crops in {folder} (lesions stage)"
            raise ModelError(msg)
        crops[patient] = load_lesions(folder, stems)
    sites: dict[str, str] = {}
    if (Path(cohort) / "images.csv").is_file():
        images = read_table(cohort, "images")
        if "site" in images.columns:
            known = images.dropna(subset=["site"])
            pairs = zip(known["patient_id"].astype(str), known["site"].astype(str), strict=True)
            sites = {p: s for p, s in pairs if p in crops}
    tables = {
        name: pd.read_csv(path, dtype={"patient_id": str}).set_index("patient_id")
        for name, path in (features or {}).items()
    }
    return crops, sites, tables


def fit_stage(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Any,
    loss_fn: Any,
    validate: Any,
    *,
    inputs: FoldInputs,
    stage: str,
    settings: Any,
    epochs: int,
    patience: int,
    monitor: str,
    device: torch.device,
    resume: Path,
    history: History,
    mode: str = "max",
    scheduler: Any = None,
    labelled: bool = True,
) -> FitResult:
    """:func:`~oncoflow.train.loop.fit` of one training stage of a fold, resumable from ``resume``.

    The resume key hashes the stage, its settings, the fold's training patients, the seed and,
    for a stage that reads the outcome labels (``labelled``), the negative-control run: a file
    written under anything else is ignored, never resumed from.
    """
    run = (inputs.permute, inputs.permutation) if labelled else None
    key = config_hash(
        {
            "stage": stage,
            "settings": repr(settings),
            "train": inputs.train,
            "seed": inputs.seed,
            "perm": run,
        }
    )
    return fit(
        model,
        optimizer,
        batches,
        loss_fn,
        validate,
        FitSettings(
            epochs=epochs,
            patience=patience,
            mode=mode,
            seed=inputs.label_seed if labelled else inputs.seed,
        ),
        monitor=monitor,
        device=device,
        checkpoint=Checkpoint(resume, key),
        history=history,
        scheduler=scheduler,
    )


def warm_start_linear(
    layer: torch.nn.Linear,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    l2: float = 1e-2,
    steps: int = 100,
) -> None:
    """Fit ``layer`` (features -> class logits) as a ridge-penalised logistic model, in place.

    Minimises ``CE(layer(x), y; weight) + l2 * ||W||^2`` with L-BFGS on the given (training) rows,
    so a wide-and-deep network starts from the logistic model of its tabular inputs and its deep
    part (zero-initialised last layer) learns what the images add.
    """
    optimizer = torch.optim.LBFGS(layer.parameters(), lr=0.5, max_iter=steps)
    x, y = x.detach().to(layer.weight.device), y.to(layer.weight.device)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer(x), y, weight=weight)
        loss = loss + l2 * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)


def index_batches(
    n: int, batch_size: int, generator: torch.Generator, *, drop_last: bool = False
) -> Iterator[torch.Tensor]:
    """Shuffled index batches of ``range(n)`` drawn with ``generator``."""
    order = torch.randperm(n, generator=generator)
    stop = n - n % batch_size if drop_last and n > batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def permuted(labels: np.ndarray, seed: int) -> np.ndarray:
    """``labels`` permuted along the first axis with a seeded generator (negative control)."""
    return labels[np.random.default_rng(seed).permutation(len(labels))]


def prediction_rows(
    inputs: FoldInputs,
    patients: Sequence[str],
    target: str,
    values: Mapping[str, Sequence[Any]],
    *,
    timepoints: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Rows of the ``predictions.csv`` contract for the given patients of this fold."""
    frame = pd.DataFrame(
        {
            "patient_id": list(patients),
            "split": [inputs.split_of(p) for p in patients],
            "fold": inputs.fold,
            "target": target,
        }
    )
    if timepoints is not None:
        frame.insert(1, "timepoint", list(timepoints))
    for name, column in values.items():
        frame[name] = list(column)
    return frame
