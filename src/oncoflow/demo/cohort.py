"""Plan and write the synthetic demo cohorts (one folder per study).

:func:`plan_cohort` is what the Snakefile calls at DAG-build time: it draws only the per-patient
latents (no pixels) and returns the ``images.csv`` rows and every path :func:`write_cohort` will
create, so the two always agree.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from oncoflow import STUDIES
from oncoflow.demo._base import ImageSpec, Patient, StudyGenerator
from oncoflow.demo._common import write_json, write_table
from oncoflow.errors import OncoflowError

log = logging.getLogger(__name__)

MIN_PATIENTS = 6
"""Smallest cohort that still gives every split and every class in train."""

TABLE_FILES: tuple[str, ...] = (
    "images.csv",
    "clinical.csv",
    "outcomes.csv",
    "splits.csv",
    "oracle.json",
)


@dataclass(frozen=True)
class DemoPlan:
    """What :func:`write_cohort` writes for one study.

    Attributes:
        study: Study name.
        images: The ``images.csv`` rows (columns of ``schemas/images.schema.yaml``).
        files: Every path written, relative to the study folder: the tables, ``oracle.json``,
            image and mask files, DICOM series folders (as folders) and RTSTRUCT files.
    """

    study: str
    images: pd.DataFrame
    files: tuple[str, ...]


def _generator(study: str, seed: int, patients: int) -> StudyGenerator:
    from oncoflow.demo.liver_response import LiverResponse
    from oncoflow.demo.lung_synthesis import LungSynthesis
    from oncoflow.demo.net_survival import NetSurvival
    from oncoflow.demo.nsclc_mmdls import NsclcMmdls
    from oncoflow.demo.pancreas_multitask import PancreasMultitask
    from oncoflow.demo.pancreas_progression import PancreasProgression

    classes: dict[str, type[StudyGenerator]] = {
        cls.name: cls
        for cls in (
            PancreasProgression,
            PancreasMultitask,
            NetSurvival,
            LungSynthesis,
            LiverResponse,
            NsclcMmdls,
        )
    }
    if study not in classes:
        msg = f"unknown study {study!r}; expected one of {', '.join(STUDIES)}"
        raise OncoflowError(msg)
    if seed < 0:
        msg = f"--seed must be >= 0, got {seed}"
        raise OncoflowError(msg)
    if patients < MIN_PATIENTS:
        msg = (
            f"--patients must be >= {MIN_PATIENTS} (every split needs both classes), got {patients}"
        )
        raise OncoflowError(msg)
    return classes[study](seed, patients)


def _images_frame(rows: list[tuple[Patient, ImageSpec]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "patient_id": [p.patient_id for p, _ in rows],
            "timepoint": [s.timepoint for _, s in rows],
            "modality": [s.modality for _, s in rows],
            "series": [s.series for _, s in rows],
            "path": [s.path for _, s in rows],
            "mask_path": [s.mask_path for _, s in rows],
            "mask_roi": [s.mask_roi for _, s in rows],
            "site": [p.site for p, _ in rows],
        }
    )
    return frame.astype({"timepoint": int})


def _plan(gen: StudyGenerator) -> tuple[DemoPlan, list[Patient], dict[str, list[ImageSpec]]]:
    patients = gen.patients()
    rows: list[tuple[Patient, ImageSpec]] = []
    specs: dict[str, list[ImageSpec]] = {}
    files: dict[str, None] = dict.fromkeys(TABLE_FILES)  # ordered set
    for patient in patients:
        specs[patient.patient_id] = gen.image_specs(patient)
        for spec in specs[patient.patient_id]:
            rows.append((patient, spec))
            files[spec.path] = None
            if spec.mask_path is not None:
                files[spec.mask_path] = None
    plan = DemoPlan(study=gen.name, images=_images_frame(rows), files=tuple(files))
    return plan, patients, specs


def plan_cohort(study: str, *, seed: int, patients: int) -> DemoPlan:
    """Return what :func:`write_cohort` would write, without generating any pixel.

    Args:
        study: One of :data:`oncoflow.STUDIES`.
        seed: Cohort seed (>= 0).
        patients: Number of patients (>= :data:`MIN_PATIENTS`).

    Returns:
        The plan: ``images.csv`` rows and the relative paths of every file and DICOM folder.

    Raises:
        OncoflowError: Unknown study, negative seed or too few patients.
    """
    return _plan(_generator(study, seed, patients))[0]


def write_cohort(out_dir: Path, study: str, *, seed: int, patients: int) -> DemoPlan:
    """Write one study's demo cohort to ``out_dir/<study>/`` (replacing what was there).

    Args:
        out_dir: Parent folder of the cohort folders.
        study: One of :data:`oncoflow.STUDIES`.
        seed: Cohort seed (>= 0); the same seed gives byte-identical tables and images.
        patients: Number of patients (>= :data:`MIN_PATIENTS`).

    Returns:
        The plan of what was written (equal to :func:`plan_cohort`'s).
    """
    gen = _generator(study, seed, patients)
    plan, pats, specs = _plan(gen)
    study_dir = Path(out_dir) / study
    if study_dir.exists():
        shutil.rmtree(study_dir)
    study_dir.mkdir(parents=True)
    tables = gen.tables(pats)
    write_table(study_dir / "images.csv", "images", plan.images)
    write_table(study_dir / "clinical.csv", "clinical", tables.clinical)
    write_table(study_dir / "outcomes.csv", "outcomes", tables.outcomes)
    write_table(study_dir / "splits.csv", "splits", tables.splits)
    rendered = {p.patient_id: gen.render(p, specs[p.patient_id], study_dir) for p in pats}
    oracle = {}
    for target, entry in {**tables.oracle, **gen.observed_oracle(tables, rendered)}.items():
        if math.isfinite(entry["value"]):
            oracle[target] = entry
        else:
            log.warning("%s: no oracle for %s (a test split lacks a class)", study, target)
    write_json(study_dir / "oracle.json", oracle)
    log.info(
        "%s: %d patients, %d images written to %s", study, len(pats), len(plan.images), study_dir
    )
    return plan


def write_demo(
    out_dir: Path, *, seed: int, patients: int, studies: Sequence[str] | None = None
) -> list[DemoPlan]:
    """Write the demo cohorts of several studies (default: all of :data:`oncoflow.STUDIES`).

    Args:
        out_dir: Output folder; each study goes to ``out_dir/<study>/``.
        seed: Cohort seed.
        patients: Patients per study.
        studies: Study names; ``None`` = all.

    Returns:
        One plan per study, in the given order.
    """
    names = list(STUDIES if studies is None else studies)
    for name in names:  # fail before writing anything
        _generator(name, seed, patients)
    return [write_cohort(Path(out_dir), name, seed=seed, patients=patients) for name in names]
