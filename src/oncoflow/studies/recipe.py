"""What a study is: a :class:`Recipe` declaring its inputs, stages, models and evaluation.

A study of ``config.yaml`` (``studies.<name>``) names a cohort and the settings of one published
method; the recipe is the method's fixed part. The workflow's DAG helpers (``rules/common.smk``)
and the training entry point (:func:`oncoflow.deep.workflow.run_fold`) read the recipe instead of
switching on study or model names, so a seventh study is one recipe file plus a config block
(``docs/design.md``, "Studies").

A built-in recipe names its training code by import path (``"package.module:attribute"``): recipes
are imported when Snakemake parses the workflow, and parsing must not import torch. A recipe file
may hold its code itself (``tests/recipes/toy_study.py``), at that cost.

Resolution of the recipe of a study (:func:`oncoflow.studies.recipe_for`):

1. ``studies.<name>.recipe`` when set: a built-in recipe name or a path to a ``.py`` file that
   defines ``RECIPE``;
2. else the study's own name, when a built-in recipe has that name;
3. else the one built-in recipe whose ``models`` hold the study's ``model``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from oncoflow.errors import ConfigError

Family = Literal["survival", "deep", "segmentation", "synthesis"]
"""The shared training stage that trains a recipe's models:

* ``survival`` - penalised Cox models on harmonised feature tables (rule ``train_net_survival``);
* ``deep`` - a fold trainer per model and fold (rules ``train_model``, ``collect_model``);
* ``segmentation`` - nnU-Net plan / train / predict (rules ``nnunet_*``);
* ``synthesis`` - the mask-conditioned DDPM (rules ``train_ddpm``, ``sample_ddpm``).
"""

FAMILIES: tuple[str, ...] = ("survival", "deep", "segmentation", "synthesis")

Evaluation = Literal["survival", "binary", "multiclass", "segmentation", "synthesis"]

INHERITED: tuple[str, ...] = ("stems", "clinical", "target", "horizons")
"""Training settings a deep recipe may take from the study's config (:attr:`Recipe.inherits`):
``stems`` from ``lesions.images``, ``clinical`` from ``clinical``, ``target`` from the first of
``targets`` and ``horizons`` from ``evaluate.horizons_days``."""


@dataclass(frozen=True)
class Recipe:
    """The fixed part of a study: what it reads, which stages and models it uses, how it is scored.

    Attributes:
        name: Recipe name (the module's name for a built-in recipe).
        summary: One line: the published method.
        family: The shared training stage of its models (:data:`Family`).
        models: Model names a study of this recipe may set as ``model``; the first is the
            default. For the ``deep`` family these are the variants its trainer builds (through
            :func:`oncoflow.models.registry.create_model`); every list of model names in the rules,
            the config validation and the training entry point is derived from them.
        ladder: ``deep``: the default ablation ladder, variants trained besides ``model``
            (``studies.<name>.train.ablation`` overrides it); the study's model always ends it.
        trainer: ``deep``: ``"module:Class"``, the study's fold task (a subclass of
            :class:`oncoflow.deep.task.FoldTask`: the shared load / encode / build / fit /
            predict sequence with the study's hooks), or ``"module:function"`` training one
            fold, ``(FoldInputs, settings, *, device, resume_dir) -> (payload, rows, history)``;
            a recipe file may give the class or function itself.
        settings: ``deep``: ``"module:Class"``, the dataclass of the trainer's settings
            (``studies.<name>.train`` minus the workflow keys), or the class itself.
        model_key: ``deep``: the settings field that receives the model name when one trainer
            serves several models (the liver ladder's ``rung``); empty when it does not.
        inherits: ``deep``: settings filled from the study's config when the train block does not
            set them (:data:`INHERITED`).
        strata: ``deep``: outcome column that stratifies the inner split; empty = the settings'
            ``target``.
        whole_images: ``deep``: the trainer reads the converted images too, not only the lesion
            crops (the MM-DLS lesion-core statistics).
        reads: Cohort tables the models read (``images``, ``clinical``, ``outcomes``).
        stages: Shared per-patient stages its models read (``lesions`` and the feature sources
            ``radiomics``, ``pet``, ``pathomics``, ``harmonize``), set up by the study's config
            blocks. A study whose recipe reads ``lesions`` and that has no ``lesions`` block is
            refused when the workflow starts (:meth:`check_study`); the feature sources are
            inputs the config turns on (a source that matches no image is refused there).
        evaluation: What ``evaluate`` scores (:data:`Evaluation`).
        baselines: Names of the baseline models reported beside the study's model.
        applicable: Its trained models can score a new cohort (the ``apply`` target).
        timepoints: Imaging time points every patient must have (the ``missing.timepoints``
            policy decides about a patient without them); ``None``: every time point from 0 to
            the patient's last, without a gap (a model of a sequence of visits).
        partial_timepoints: Its models read a patient with fewer time points than the others
            (``missing.timepoints: use_available`` is possible).
    """

    name: str
    summary: str
    family: Family
    models: tuple[str, ...]
    ladder: tuple[str, ...] = ()
    trainer: str | Callable[..., Any] = ""
    settings: str | type = ""
    model_key: str = ""
    inherits: tuple[str, ...] = ("stems", "clinical", "target")
    strata: str = ""
    whole_images: bool = False
    reads: tuple[str, ...] = ("images", "clinical", "outcomes")
    stages: tuple[str, ...] = ()
    evaluation: tuple[Evaluation, ...] = ()
    baselines: tuple[str, ...] = field(default_factory=tuple)
    applicable: bool = False
    timepoints: tuple[int, ...] | None = (0,)
    partial_timepoints: bool = False

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            msg = f"recipe {self.name}: family {self.family!r} is not one of {', '.join(FAMILIES)}"
            raise ConfigError(msg)
        if not self.models:
            msg = f"recipe {self.name}: declares no model"
            raise ConfigError(msg)
        if self.family == "deep" and not (self.trainer and self.settings):
            msg = f"recipe {self.name}: a deep recipe names its trainer and settings class"
            raise ConfigError(msg)
        unknown = sorted(set(self.inherits) - set(INHERITED))
        if unknown:
            msg = f"recipe {self.name}: cannot inherit {', '.join(unknown)} (known: {INHERITED})"
            raise ConfigError(msg)

    def check_study(self, name: str, study: Mapping[str, Any]) -> None:
        """Refuse a study whose config lacks a block this recipe cannot run without.

        Raises:
            ConfigError: The recipe reads lesion crops and ``studies.<name>.lesions`` is unset.
        """
        if "lesions" in self.stages and not study.get("lesions"):
            msg = (
                f"study {name}: recipe {self.name} trains on lesion crops; set "
                f"studies.{name}.lesions (images, lesion_labels, size, ...; see config.yaml)"
            )
            raise ConfigError(msg)

    def variants(self, study: Mapping[str, Any]) -> list[str]:
        """Variants a ``deep`` study trains: its ladder (or ``train.ablation``), then its model.

        Args:
            study: The study's config block.
        """
        model = study.get("model", self.models[0])
        if not self.ladder:
            return [model]
        ladder = study.get("train", {}).get("ablation", self.ladder)
        return list(dict.fromkeys([*ladder, model]))

    def training_settings(
        self, study: Mapping[str, Any], horizons: list[float], workflow_keys: tuple[str, ...]
    ) -> dict[str, Any]:
        """The trainer's settings: the study's ``train`` block completed from its config.

        Args:
            study: The study's config block.
            horizons: ``evaluate.horizons_days`` (days).
            workflow_keys: Keys of ``train`` that the workflow reads, left out.
        """
        train = study.get("train", {})
        settings = {k: v for k, v in train.items() if k not in workflow_keys}
        values = {
            "stems": study.get("lesions", {}).get("images"),
            "clinical": study.get("clinical", []),
            "target": (study.get("targets") or [None])[0],
            "horizons": list(horizons),
        }
        for key in self.inherits:
            if values[key] is not None:
                settings.setdefault(key, values[key])
        return settings

    def load(self, attribute: Literal["trainer", "settings"]) -> Any:
        """Import the trainer (task class or function) or settings class named ``module:name``."""
        spec = getattr(self, attribute)
        if not isinstance(spec, str):
            return spec
        module, _, name = spec.partition(":")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            msg = f"recipe {self.name}: cannot import its {attribute} {spec!r}: {exc}"
            raise ConfigError(msg) from exc
