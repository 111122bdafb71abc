"""The fold task every deep study trains with: one shared sequence, per-study hooks.

A deep recipe's ``trainer`` is a :class:`FoldTask` subclass (:func:`fold_trainer` turns it into
the function :func:`oncoflow.deep.workflow.run_fold` calls). :meth:`FoldTask.run` trains one fold
(one negative-control run of it when ``inputs.permute``) in a fixed order:

1. :meth:`~FoldTask.check` - refuse settings the study cannot train;
2. :meth:`~FoldTask.pretrain` - the label-free stages (the cnn_lstm lesion extractor): they never
   read the outcome, so every negative-control run shares them;
3. :meth:`~FoldTask.encode` - the fold's inputs as tensors: encoders fit on ``train`` +
   ``inner`` (never on validation or test patients) and labels, permuted in a negative control;
4. :meth:`~FoldTask.build` - the network, from a seeded ``torch.manual_seed`` through
   :func:`oncoflow.models.create_model` (the liver warm start goes here);
5. :meth:`~FoldTask.stage` - the labelled training stage (:class:`Stage`), trained by
   :meth:`~FoldTask.fit` (:func:`~oncoflow.deep.common.fit_stage`, the epoch loop of
   :func:`oncoflow.train.loop.fit`); the network is in eval mode after it;
6. :meth:`~FoldTask.refine` - changes to the trained network (the MM-DLS head refit);
7. :meth:`~FoldTask.predict` - the ``predictions.csv`` rows of the validation and test patients;
8. :meth:`~FoldTask.payload` - the ``model.pt`` payload;

and returns ``(payload, rows, history)``: the history rows of every stage :meth:`~FoldTask.fit`
trained, in the order they ran, with a ``stage`` column naming it (no such column when
:attr:`~FoldTask.tag_stages` is off: the liver rungs train one stage).

Each hook may keep what later hooks need on ``self``. A subclass implements ``encode``, ``build``,
``stage``, ``predict`` and ``payload``; ``check``, ``pretrain`` and ``refine`` do nothing unless
overridden. The order of the hooks is the order of the random draws (seeded ``create_model``
calls, dropout in each stage), so a subclass reproduces a fold bit for bit when its hooks draw
in the same order.

:meth:`FoldTask.apply` scores a new cohort with a trained fold, fitting nothing: ``check``, then
:meth:`~FoldTask.restore` (the ``out`` group's inputs encoded with the payload's frozen encoders,
the network rebuilt with the payload's weights), then ``predict``
(:mod:`oncoflow.deep.apply` runs it for every fold model and averages them).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import pandas as pd
import torch

from oncoflow.deep.common import FoldInputs, fit_stage
from oncoflow.errors import ModelError
from oncoflow.train.engine import History
from oncoflow.train.loop import FitResult

SettingsT = TypeVar("SettingsT")

FoldOutput = tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]
"""What a fold trainer returns: ``(model.pt payload, predictions.csv rows, history.csv rows)``."""

Trainer = Callable[..., FoldOutput]
"""A fold trainer: ``(FoldInputs, settings, *, device, resume_dir) -> FoldOutput``."""


@dataclass
class Stage:
    """One training stage of a fold: the arguments of :func:`~oncoflow.deep.common.fit_stage`.

    Attributes:
        name: Stage name: part of the resume key and the ``stage`` column of ``history.csv``.
        optimizer: The optimiser of the stage's network.
        batches: ``(epoch, generator) -> batches`` (shuffle with the generator).
        loss_fn: ``(network, batch) -> scalar loss``.
        validate: ``network -> {name: value}`` on the inner-validation patients.
        settings: What the resume key hashes besides the fold (the stage's settings).
        epochs: Largest number of epochs.
        patience: Epochs without improvement before stopping (0 = never stop early).
        monitor: Validation value selecting the epoch.
        mode: ``max`` (AUC, C-index, Dice) or ``min`` (a loss).
        scheduler: Learning-rate scheduler stepped once per epoch, or ``None``.
        labelled: The stage reads the outcome labels (its files are per negative-control run).
        resume: Resume file name in the fold's resume folder.
        history: History file name in the fold's resume folder.
    """

    name: str
    optimizer: torch.optim.Optimizer
    batches: Callable[[int, torch.Generator], Iterable[Any]]
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor]
    validate: Callable[[torch.nn.Module], Mapping[str, float]]
    settings: Any
    epochs: int
    patience: int
    monitor: str
    mode: str = "max"
    scheduler: Any = None
    labelled: bool = True
    resume: str = "resume.pt"
    history: str = "history.csv"


class FoldTask(abc.ABC, Generic[SettingsT]):
    """One fold of a deep study: the shared sequence of :meth:`run` (module docstring).

    Attributes:
        inputs: The fold's patients, tables and crops.
        settings: The study's settings dataclass.
        device: Training device.
        resume_dir: Folder of the resume and history files.
        histories: ``(stage name, History)`` of every stage :meth:`fit` trained, in order.
        notes: What :meth:`restore` wants said in the apply summary (e.g. the sites whose
            ComBat estimates were estimated or left pooled), by topic.
    """

    tag_stages: ClassVar[bool] = True
    """Give ``history.csv`` a ``stage`` column (off for a single-stage study)."""

    def __init__(
        self,
        inputs: FoldInputs,
        settings: SettingsT,
        *,
        device: torch.device,
        resume_dir: Path,
    ) -> None:
        self.inputs = inputs
        self.settings = settings
        self.device = device
        self.resume_dir = Path(resume_dir)
        self.histories: list[tuple[str, History]] = []
        self.notes: dict[str, Any] = {}

    @property
    def groups(self) -> dict[str, list[str]]:
        """Patients by role: ``train`` (fit), ``inner`` (select), ``out`` (validation + test)."""
        inputs = self.inputs
        return {
            "train": inputs.train,
            "inner": inputs.inner,
            "out": inputs.validation + inputs.test,
        }

    def run(self) -> FoldOutput:
        """Train the fold through the hooks (module docstring) and return its outputs.

        Returns:
            (``model.pt`` payload, ``predictions.csv`` rows of the fold's validation and test
            patients, ``history.csv`` rows of every stage).
        """
        self.check()
        self.pretrain()
        self.encode()
        model = self.build()
        result = self.fit(model, self.stage(model))
        model.eval()
        self.refine(model)
        rows = self.predict(model)
        return self.payload(model, result), rows, self.history()

    def apply(self, payload: Mapping[str, Any]) -> pd.DataFrame:
        """Predict the patients of ``inputs.test`` with a trained fold's frozen ``model.pt``.

        Nothing is fit: :meth:`restore` takes the encoders, standardisation and weights from
        ``payload`` (one run's payload: a negative control's runs are applied one by one), then
        :meth:`predict` writes the rows as in training. The apply inputs hold no training
        patients (:func:`oncoflow.deep.apply.apply_inputs`).

        Args:
            payload: What :meth:`payload` returned when the fold was trained.

        Returns:
            ``predictions.csv`` rows of the new patients (labels where the cohort has outcomes,
            empty where it does not).
        """
        self.check()
        model = self.restore(payload)
        model.eval()
        return self.predict(model)

    def restore(self, payload: Mapping[str, Any]) -> torch.nn.Module:
        """Rebuild the trained network and the ``out`` group's inputs from a saved payload.

        A subclass that supports :meth:`apply` encodes the ``out`` patients with the payload's
        frozen encoders (never fitting one) and returns the network with the payload's weights
        on :attr:`device`.

        Raises:
            ModelError: The study's task cannot be applied to a new cohort.
        """
        msg = f"{type(self).__name__} models cannot be applied to a new cohort"
        raise ModelError(msg)

    def fit(self, model: torch.nn.Module, stage: Stage) -> FitResult:
        """Train ``model`` through ``stage``, resumable from the stage's file; log its history.

        Args:
            model: The stage's network, on :attr:`device`.
            stage: What to train it with (:class:`Stage`).

        Returns:
            The loop's :class:`~oncoflow.train.loop.FitResult`; ``model`` holds the weights of
            the best epoch.
        """
        inputs, labelled = self.inputs, stage.labelled
        history = History(inputs.resume_file(self.resume_dir, stage.history, labelled=labelled))
        result = fit_stage(
            model,
            stage.optimizer,
            stage.batches,
            stage.loss_fn,
            stage.validate,
            inputs=inputs,
            stage=stage.name,
            settings=stage.settings,
            epochs=stage.epochs,
            patience=stage.patience,
            monitor=stage.monitor,
            mode=stage.mode,
            device=self.device,
            resume=inputs.resume_file(self.resume_dir, stage.resume, labelled=labelled),
            history=history,
            scheduler=stage.scheduler,
            labelled=labelled,
        )
        self.histories.append((stage.name, history))
        return result

    def history(self) -> pd.DataFrame:
        """``history.csv`` rows of the stages trained so far (``stage`` column: its name)."""
        if not self.tag_stages:
            return pd.DataFrame([row for _, history in self.histories for row in history.rows])
        return pd.DataFrame(
            [{**row, "stage": name} for name, history in self.histories for row in history.rows]
        )

    def check(self) -> None:
        """Refuse settings the study cannot train (raise :class:`~oncoflow.errors.ModelError`)."""

    def pretrain(self) -> None:
        """Train the label-free stages through :meth:`fit` (default: none)."""

    @abc.abstractmethod
    def encode(self) -> None:
        """Turn the fold's inputs into tensors and labels (kept on ``self``)."""

    @abc.abstractmethod
    def build(self) -> torch.nn.Module:
        """The network of the labelled stage: seed, ``create_model``, move to the device."""

    @abc.abstractmethod
    def stage(self, model: torch.nn.Module) -> Stage:
        """The labelled training stage of ``model`` (optimiser, batches, loss, validation)."""

    def refine(self, model: torch.nn.Module) -> None:
        """Change the trained network in eval mode before prediction (default: nothing)."""

    @abc.abstractmethod
    def predict(self, model: torch.nn.Module) -> pd.DataFrame:
        """``predictions.csv`` rows of the fold's validation and test patients."""

    @abc.abstractmethod
    def payload(self, model: torch.nn.Module, result: FitResult) -> dict[str, Any]:
        """The ``model.pt`` payload (weights, encoders, selection, the fold's patients)."""


def fold_trainer(trainer: type[FoldTask[Any]] | Trainer) -> Trainer:
    """The fold-trainer function of a recipe's ``trainer``: a :class:`FoldTask` subclass or one.

    Args:
        trainer: A :class:`FoldTask` subclass, or a function
            ``(FoldInputs, settings, *, device, resume_dir) -> FoldOutput`` (a recipe file may
            give either).

    Returns:
        ``(inputs, settings, *, device, resume_dir) -> (payload, rows, history)``.
    """
    if not (isinstance(trainer, type) and issubclass(trainer, FoldTask)):
        return trainer
    task = trainer

    def train(
        inputs: FoldInputs, settings: Any, *, device: torch.device, resume_dir: Path
    ) -> FoldOutput:
        return task(inputs, settings, device=device, resume_dir=resume_dir).run()

    train.__name__ = train.__qualname__ = f"{task.__name__}.run"
    return train
