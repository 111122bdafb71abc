"""The nnU-Net stage of a study, step by step: export, plan, train one fold, predict, collect.

Each function is one rule's work; the settings are the study's ``nnunet`` block of config.yaml
(:class:`NnunetSettings`). Folders (per study, under ``results/<study>/nnunet/``)::

    nnUNet_raw/Dataset<NNN>_<Name>/          export (+ splits_final.json beside it)
    nnUNet_preprocessed/Dataset<NNN>_<Name>/ plan_and_preprocess + the derived plans
    nnUNet_results/Dataset<NNN>_<Name>/<trainer>__<plans>__<configuration>/fold_<k>/
    predict/<subset>/                        masks + cases.csv (fold_<k> validation cases, test)

Prediction is in :mod:`oncoflow.segmentation.predict`.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from oncoflow.errors import SegmentationError
from oncoflow.segmentation.calibrate import Calibration
from oncoflow.segmentation.dice import dice_table
from oncoflow.segmentation.export import (
    channel_name,
    collect_cases,
    export_dataset,
    nnunet_splits,
)
from oncoflow.segmentation.lesion_statistics import lesion_label, statistics_width
from oncoflow.segmentation.nnunet import (
    dataset_folder_name,
    nnunet_env,
    planned_plans_file,
    prepare_fold_folder,
    run_command,
    settings_digest,
)
from oncoflow.segmentation.plans import derive_plans

SETTINGS_VARIABLE = "ONCOFLOW_TRAINER_SETTINGS"
"""Environment variable carrying the trainer schedule (read by the nnU-Net trainer)."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NnunetSettings:
    """A study's ``nnunet`` block (see schemas/config.schema.yaml for every key)."""

    dataset_id: int
    dataset_name: str
    channels: tuple[str, ...]
    label: str
    regions: dict[str, list[int]]
    classify: str
    planner: str = "nnUNetPlannerResEncM"
    configuration: str = "3d_fullres"
    folds: tuple[int, ...] = (0, 1, 2, 3, 4)
    plans: dict[str, Any] = field(default_factory=dict)
    trainer: dict[str, Any] = field(default_factory=dict)
    head: dict[str, Any] = field(default_factory=dict)
    checkpoint: str = "checkpoint_best.pth"
    processes: int = 2
    refit_head: bool = False
    harmonize_head: bool = False
    head_statistics: bool = False
    head_statistics_reference: int | None = None
    head_descriptor: bool = True
    calibrate: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str) -> NnunetSettings:
        """From the JSON the rules pass.

        Raises:
            SegmentationError: An unknown key, a head that reads nothing (``head_descriptor:
                false`` without ``head_statistics``) or a statistics reference without statistics.
        """
        data = json.loads(text)
        try:
            settings = cls(**data)
        except TypeError as exc:
            msg = f"nnunet settings: {exc}"
            raise SegmentationError(msg) from exc
        if not settings.head_descriptor and not settings.head_statistics:
            msg = "nnunet.head_descriptor: false needs head_statistics: true (else no input)"
            raise SegmentationError(msg)
        if settings.head_statistics_reference is not None and not settings.head_statistics:
            msg = "nnunet.head_statistics_reference needs head_statistics: true"
            raise SegmentationError(msg)
        return cls(
            **{
                **data,
                "channels": tuple(settings.channels),
                "folds": tuple(int(f) for f in settings.folds),
            }
        )

    @property
    def dataset(self) -> str:
        """``Dataset<NNN>_<Name>``."""
        return dataset_folder_name(self.dataset_id, self.dataset_name)

    @property
    def calibration(self) -> Calibration | None:
        """The reference-tissue calibration of the CT channels (``calibrate``), or ``None``."""
        ct = [i for i, stem in enumerate(self.channels) if channel_name(stem) == "CT"]
        return Calibration.from_block(self.calibrate, ct)

    @property
    def statistics(self) -> tuple[int, int] | None:
        """``(lesion label, statistics per case)`` the refit head reads with ``head_statistics``.

        :mod:`~oncoflow.segmentation.lesion_statistics`; ``None`` when off.
        """
        if not self.head_statistics:
            return None
        return lesion_label(self.regions), statistics_width(len(self.channels))

    @property
    def plans_name(self) -> str:
        """Name of the derived plans (``nnUNetv2_train -p``)."""
        return str(self.plans.get("name", "oncoflowPlans"))

    @property
    def trainer_name(self) -> str:
        """Trainer class (``nnUNetv2_train -tr``)."""
        return str(self.trainer.get("name", "oncoflowMultitaskTrainer"))

    @property
    def model_folder(self) -> str:
        """``<trainer>__<plans>__<configuration>`` (nnU-Net's results layout)."""
        return f"{self.trainer_name}__{self.plans_name}__{self.configuration}"

    def oncoflow_block(self, classes: Sequence[str], *, sigmoid: bool) -> dict[str, Any]:
        """The ``oncoflow`` block of the derived plans: the classification head.

        ``sigmoid``: the dataset trains regions (sigmoid outputs), which ``roi`` pooling reads.
        """
        return {"head": {**self.head, "classes": list(classes), "sigmoid": sigmoid}}

    @property
    def schedule(self) -> dict[str, Any]:
        """Trainer settings passed to the trainer in ``ONCOFLOW_TRAINER_SETTINGS``."""
        return {k: v for k, v in self.trainer.items() if k != "name"}


def class_names(values: Sequence[Any]) -> list[str]:
    """Sorted class names (integers sort numerically: 0, 1, 2, 10)."""
    unique = {str(v) for v in values if pd.notna(v)}
    return sorted(unique, key=lambda v: (0, int(v), v) if v.lstrip("-").isdigit() else (1, 0, v))


def export(
    settings: NnunetSettings,
    *,
    converted: Path,
    splits: pd.DataFrame,
    folds: Mapping[str, Mapping[str, Sequence[str]]],
    outcomes: pd.DataFrame,
    raw_root: Path,
    splits_out: Path,
    sites: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Export the study's cases to ``raw_root/<dataset>`` and write ``splits_final.json``.

    ``sites``: patient -> acquisition site (``images.csv``), written to ``cases.csv``.
    """
    split_of = dict(zip(splits["patient_id"].astype(str), splits["split"], strict=True))
    if settings.classify not in outcomes.columns:
        msg = f"outcomes.csv has no column {settings.classify!r} (nnunet.classify)"
        raise SegmentationError(msg)
    per_patient = outcomes.groupby(outcomes["patient_id"].astype(str))[settings.classify].first()
    targets = {p: (None if pd.isna(v) else _label_text(v)) for p, v in per_patient.items()}
    classes = class_names([targets[p] for p in split_of if split_of[p] == "train" and p in targets])
    cases = collect_cases(
        Path(converted),
        split_of,
        settings.channels,
        label_stem=settings.label,
        targets=targets,
        sites=sites,
    )
    payload = export_dataset(
        cases,
        Path(raw_root) / settings.dataset,
        settings.channels,
        settings.regions,
        classes=classes,
        calibration=settings.calibration,
    )
    entries = nnunet_splits(folds, cases)
    Path(splits_out).parent.mkdir(parents=True, exist_ok=True)
    Path(splits_out).write_text(json.dumps(entries, indent=1) + "\n")
    log.info(
        "exported %d cases (%d training, %d test) to %s; %d folds",
        len(cases),
        payload["numTraining"],
        len(cases) - payload["numTraining"],
        Path(raw_root) / settings.dataset,
        len(entries),
    )
    return payload


def _label_text(value: Any) -> str:
    """A class label as text (a float holding an integer, e.g. 2.0 next to NaN, as ``2``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def plan(
    settings: NnunetSettings,
    *,
    raw_root: Path,
    splits_file: Path,
    out_root: Path,
) -> Path:
    """Plan with the configured planner, derive our plans, preprocess once under them.

    ``nnUNetv2_plan_and_preprocess --no_pp`` (fingerprint and plans only), then the derived
    plans, then ``nnUNetv2_preprocess -plans_name <derived>``: the cases are preprocessed once,
    under the derived plans' ``data_identifier`` (the planned one unless ``normalization``
    changes it).

    Returns:
        The derived plans file ``<out_root>/<dataset>/<plans name>.json``.
    """
    out_root = Path(out_root)
    if out_root.exists():
        shutil.rmtree(out_root)
    out_root.mkdir(parents=True)
    env = nnunet_env(raw_root, out_root, processes=settings.processes)
    command = [
        "nnUNetv2_plan_and_preprocess",
        "-d",
        str(settings.dataset_id),
        "-pl",
        settings.planner,
        "-c",
        settings.configuration,
        "-np",
        str(max(1, settings.processes)),
        "--verify_dataset_integrity",
        "--no_pbar",
        "--no_pp",
    ]
    run_command(command, env, "plan")
    folder = out_root / settings.dataset
    source = planned_plans_file(folder)
    shutil.copyfile(splits_file, folder / "splits_final.json")
    dataset = json.loads((folder / "dataset.json").read_text())
    classes = dataset.get("oncoflow", {}).get("classes", [])
    overrides = {k: v for k, v in settings.plans.items() if k != "name"}
    derived = derive_plans(
        json.loads(source.read_text()),
        name=settings.plans_name,
        configuration=settings.configuration,
        overrides=overrides,
        oncoflow=settings.oncoflow_block(classes, sigmoid="regions_class_order" in dataset),
    )
    target = folder / f"{settings.plans_name}.json"
    target.write_text(json.dumps(derived, indent=1) + "\n")
    log.info(
        "plans %s derived from %s (overrides: %s)", target.name, source.name, overrides or "none"
    )
    command = ["nnUNetv2_preprocess", "-d", str(settings.dataset_id)]
    command += ["-plans_name", settings.plans_name, "-c", settings.configuration]
    command += ["-np", str(max(1, settings.processes))]
    run_command(command, env, "preprocess with the derived plans")
    return target


def train_fold(
    settings: NnunetSettings,
    fold: int,
    *,
    preprocessed: Path,
    results: Path,
    device: str,
) -> Path:
    """``nnUNetv2_train`` of one fold with our trainer; resumes a killed run (``--c``).

    Returns:
        ``checkpoint_final.pth`` of the fold.
    """
    folder = Path(preprocessed) / settings.dataset
    plans_file = folder / f"{settings.plans_name}.json"
    digest = settings_digest(
        json.loads(plans_file.read_text()),
        json.loads((folder / "dataset.json").read_text()),
        json.loads((folder / "splits_final.json").read_text()),
        settings.trainer_name,
        settings.schedule,
    )
    fold_dir = Path(results) / settings.dataset / settings.model_folder / f"fold_{fold}"
    resume = prepare_fold_folder(fold_dir, digest)
    # On a CPU the augmentation workers compete with the training threads for the same cores:
    # augmenting in the training process took an epoch of the demo from 9.0 to 7.3 s on 2 cores.
    processes = settings.processes if device != "cpu" else 0
    env = nnunet_env(None, preprocessed, results, processes=processes)
    env[SETTINGS_VARIABLE] = json.dumps(settings.schedule)
    command = [
        "nnUNetv2_train",
        str(settings.dataset_id),
        settings.configuration,
        str(fold),
        "-tr",
        settings.trainer_name,
        "-p",
        settings.plans_name,
        "-device",
        device,
    ]
    if resume:
        command.append("--c")
    run_command(command, env, f"train fold {fold}")
    final = fold_dir / "checkpoint_final.pth"
    if not final.exists():
        msg = f"nnUNetv2_train finished without writing {final}"
        raise SegmentationError(msg)
    return final


def patient_sites(images: pd.DataFrame) -> dict[str, str]:
    """Patient -> acquisition site of ``images.csv`` rows (empty without a ``site`` column)."""
    if "site" not in images.columns:
        return {}
    rows = images.dropna(subset=["site"]).drop_duplicates("patient_id")
    return dict(zip(rows["patient_id"].astype(str), rows["site"].astype(str), strict=True))


def read_cases(raw_dataset: Path) -> pd.DataFrame:
    """``cases.csv`` of an export (case, patient, time point, split, class label, site).

    An export written before the ``site`` column gets an empty one.
    """
    dtypes = {"case_id": str, "patient_id": str, "target": str, "site": str}
    cases = pd.read_csv(Path(raw_dataset) / "cases.csv", dtype=dtypes)
    if "site" not in cases.columns:
        cases["site"] = ""
    return cases.fillna({"site": ""})


def read_predicted(folders: Sequence[Path]) -> pd.DataFrame:
    """The ``cases.csv`` of prediction folders (``predict/<subset>``) as one table.

    Adds the column ``mask``, the path of each case's predicted mask ``<folder>/<case>.nii.gz``.

    Raises:
        SegmentationError: No folder is given, or a case is in two folders (predicted twice),
            naming it and both files.
    """
    if not folders:
        msg = "no prediction folder given (predict/<subset> with its cases.csv)"
        raise SegmentationError(msg)
    frames = []
    seen: dict[str, Path] = {}
    for folder in folders:
        path = Path(folder) / "cases.csv"
        table = pd.read_csv(path, dtype={"case_id": str, "fold": str})
        for case in table["case_id"]:
            if case in seen:
                msg = f"case {case} is in two prediction folders ({seen[case]} and {path})"
                raise SegmentationError(msg)
            seen[case] = path
        table["mask"] = [str(Path(folder) / f"{c}.nii.gz") for c in table["case_id"]]
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def collect(
    settings: NnunetSettings,
    *,
    raw_root: Path,
    predicted: Sequence[Path],
    converted: Path,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``predictions.csv`` (multi-class, ``docs/formats.md``) and per-case Dice of every subset.

    Validation cases (training patients, predicted by their fold's model) get split
    ``validation``; test cases keep ``internal_test`` / ``external_test``. A case predicted twice
    (two subsets) is an error.

    Returns:
        ``(predictions, dice)``; dice has ``case, patient_id, split, region, dice,
        reference_voxels, predicted_voxels`` (Dice of two empty masks = 1, of one empty = 0).
    """
    cases = read_cases(Path(raw_root) / settings.dataset).set_index("case_id")
    table = read_predicted(predicted)
    info = cases.loc[table["case_id"]]
    split = info["split"].replace({"train": "validation"}).to_numpy()
    scores = [c for c in table.columns if c.startswith("y_score_")]
    predictions = pd.DataFrame(
        {
            "patient_id": info["patient_id"].to_numpy(),
            "timepoint": info["timepoint"].to_numpy(),
            "case_id": table["case_id"].to_numpy(),
            "split": split,
            "fold": table["fold"].to_numpy(),
            "target": settings.classify,
            "y_true": info["target"].to_numpy(),
        }
    )
    for column in scores:
        predictions[column] = table[column].to_numpy()
    masks = dict(zip(table["case_id"], table["mask"], strict=True))
    dice = reference_dice(settings, cases, masks, converted=converted)
    dice["split"] = dice["split"].replace({"train": "validation"})
    return predictions.sort_values(["split", "case_id"]), dice


DICE_COLUMNS = (
    "case",
    "patient_id",
    "region",
    "dice",
    "reference_voxels",
    "predicted_voxels",
    "split",
)
"""Columns of ``dice.csv`` (:func:`reference_dice`)."""


def reference_dice(
    settings: NnunetSettings,
    cases: pd.DataFrame,
    masks: Mapping[str, Path | str],
    *,
    converted: Path,
) -> pd.DataFrame:
    """Per-case Dice of predicted masks against the converted reference masks of the label stem.

    The reference of a case is ``<converted>/<patient>/<tp>/<label>_mask.nii.gz``; a case
    without it is skipped with a warning.

    Args:
        settings: The study's nnU-Net settings (label stem, regions).
        cases: Indexed by case id, with ``patient_id``, ``timepoint`` and ``split``.
        masks: Case id -> predicted mask.
        converted: The converted images root.

    Returns:
        :data:`DICE_COLUMNS`, one row per case and region (no rows when no case has a
        reference).
    """
    references = []
    for case, mask in masks.items():
        row = cases.loc[case]
        reference = Path(converted) / str(row["patient_id"]) / str(row["timepoint"])
        reference = reference / f"{settings.label}_mask.nii.gz"
        if reference.exists():
            references.append((case, mask, reference))
        else:
            log.warning("case %s: no reference mask %s; no Dice", case, reference)
    if not references:
        return pd.DataFrame(columns=list(DICE_COLUMNS))
    dice = dice_table(references, settings.regions)
    dice["patient_id"] = cases.loc[dice["case"], "patient_id"].to_numpy()
    dice["split"] = cases.loc[dice["case"], "split"].to_numpy()
    return dice[list(DICE_COLUMNS)]
