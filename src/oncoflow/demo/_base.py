"""The interface every study generator implements, and the data passed around."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from oncoflow.demo._common import (
    EXTERNAL_SITE,
    is_dicom_patient,
    patient_rng,
    rebalance,
    site_of,
    stratified_splits,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageSpec:
    """One ``images.csv`` row plus what the renderer needs to know.

    Attributes:
        timepoint: Imaging time point (0 = baseline).
        modality: ``CT``, ``PET``, ``MR`` or ``WSI``.
        series: Phase / sequence / stain, ``"-"`` if none.
        path: Image path relative to the study folder (NIfTI file, DICOM folder or slide).
        mask_path: Mask path (NIfTI label map or RTSTRUCT file) or ``None``.
        mask_roi: RTSTRUCT ROI names joined by ``+`` (DICOM only) or ``None``.
        dicom: True when ``path`` is a DICOM series folder.
    """

    timepoint: int
    modality: str
    series: str
    path: str
    mask_path: str | None = None
    mask_roi: str | None = None
    dicom: bool = False


@dataclass(frozen=True)
class Patient:
    """A demo patient: identity, site, storage format and the study's latent variables.

    Attributes:
        index: 0-based patient index (fixes the random streams).
        patient_id: Pseudonymous ID, ``<prefix><index + 1:03d>``.
        site: Acquisition site.
        dicom: Whether the patient's images are written as DICOM (studies that have DICOM).
        latent: Study-specific latent variables (sizes in mm, texture levels, rates, ...).
    """

    index: int
    patient_id: str
    site: str
    dicom: bool
    latent: dict[str, Any]


@dataclass
class StudyTables:
    """What a generator returns for the tables (pixels are rendered separately).

    Attributes:
        clinical: ``clinical.csv`` rows.
        outcomes: ``outcomes.csv`` rows.
        splits: ``splits.csv`` rows.
        oracle: ``oracle.json`` content.
        scores: Per target, the arrays over every patient (cohort order) that an oracle of
            ``oracle`` is computed from (e.g. ``time``, ``event``, ``value``, ``value_tabular``),
            for analyses of the mechanism such as ``benchmarks/demo_power.py``; not written.
    """

    clinical: pd.DataFrame
    outcomes: pd.DataFrame
    splits: pd.DataFrame
    oracle: dict[str, dict[str, Any]]
    scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


class StudyGenerator(ABC):
    """Base class of the six study generators.

    Subclasses set :attr:`name`, :attr:`prefix`, :attr:`has_dicom` and implement the latent
    draw, the image list, the tables and the renderer.
    """

    name: ClassVar[str]
    prefix: ClassVar[str]
    has_dicom: ClassVar[bool] = False

    def __init__(self, seed: int, n_patients: int) -> None:
        self.seed = int(seed)
        self.n_patients = int(n_patients)

    def rng(self, index: int, stream: str) -> np.random.Generator:
        """Return patient ``index``'s generator for ``stream`` (see :func:`patient_rng`)."""
        return patient_rng(self.seed, self.name, index, stream)

    def patients(self) -> list[Patient]:
        """Return all patients with their latents (cheap: no pixels)."""
        out = []
        for i in range(self.n_patients):
            site = site_of(i)
            latent = self.draw_latent(self.rng(i, "latent"), site)
            out.append(
                Patient(
                    index=i,
                    patient_id=f"{self.prefix}{i + 1:03d}",
                    site=site,
                    dicom=self.has_dicom and is_dicom_patient(i, self.n_patients),
                    latent=latent,
                )
            )
        return out

    @abstractmethod
    def draw_latent(self, rng: np.random.Generator, site: str) -> dict[str, Any]:
        """Draw one patient's latent variables from the ``latent`` stream."""

    @abstractmethod
    def image_specs(self, patient: Patient) -> list[ImageSpec]:
        """Return the patient's ``images.csv`` rows (in order)."""

    @abstractmethod
    def tables(self, patients: list[Patient]) -> StudyTables:
        """Return clinical, outcomes, splits and the oracle for the cohort."""

    @abstractmethod
    def render(
        self, patient: Patient, specs: list[ImageSpec], study_dir: Path
    ) -> dict[str, float] | None:
        """Write the patient's image and mask files under ``study_dir``.

        Returns:
            Values an oracle needs from the rendered images (:meth:`observed_oracle`), or
            ``None``.
        """

    def observed_oracle(
        self, tables: StudyTables, rendered: dict[str, dict[str, float] | None]
    ) -> dict[str, dict[str, Any]]:
        """Oracle entries that depend on the rendered images; they replace those of :meth:`tables`.

        ``rendered`` maps each patient id to what :meth:`render` returned. Default: none.
        """
        return {}

    def dicom_identity(self, patient: Patient) -> tuple[Any, int]:
        """Return the patient's fake PHI and the seed for :mod:`oncoflow.demo.dicomwrite` (UIDs)."""
        from oncoflow.demo._fakephi import fake_phi

        rng = self.rng(patient.index, "dicom")
        dseed = int(rng.integers(0, 2**31 - 1))
        return fake_phi(rng), dseed

    def split_keys(self, patients: list[Patient]) -> np.ndarray:
        """Return one random number per patient ordering them inside a stratum."""
        return np.array([self.rng(p.index, "split").random() for p in patients])

    def assign_splits(
        self, patients: list[Patient], strata: np.ndarray, propensity: np.ndarray
    ) -> tuple[np.ndarray, list[str]]:
        """Rebalance the stratification target of tiny cohorts, then split.

        Every class gets at least 1 internal (site_a/b) and 1 external patient when the pool
        is large enough (:func:`rebalance`); then :func:`stratified_splits`.

        Returns:
            (final class per patient, split per patient).
        """
        external = np.array([p.site == EXTERNAL_SITE for p in patients])
        final = rebalance(strata, propensity, [(~external, 1), (external, 1)])
        self._log_changes(patients, strata, final)
        splits = stratified_splits(final, [p.site for p in patients], self.split_keys(patients))
        return final, splits

    def rebalance_secondary(
        self,
        patients: list[Patient],
        classes: np.ndarray,
        propensity: np.ndarray,
        splits: list[str],
    ) -> np.ndarray:
        """Make every class of a secondary target present in train and in the test splits."""
        train = np.array([s == "train" for s in splits])
        final = rebalance(classes, propensity, [(train, 1), (~train, 1)])
        self._log_changes(patients, classes, final)
        return final

    def _log_changes(self, patients: list[Patient], before: np.ndarray, after: np.ndarray) -> None:
        for i in np.flatnonzero(np.asarray(before) != np.asarray(after)):
            log.info(
                "%s: patient %s relabelled %d -> %d so that every split has every class",
                self.name,
                patients[i].patient_id,
                int(before[i]),
                int(after[i]),
            )

    @staticmethod
    def splits_frame(patients: list[Patient], splits: list[str]) -> pd.DataFrame:
        """Return ``splits.csv`` rows."""
        return pd.DataFrame({"patient_id": [p.patient_id for p in patients], "split": splits})

    @staticmethod
    def test_mask(splits: list[str]) -> np.ndarray:
        """Return True for patients of ``internal_test`` or ``external_test``."""
        return np.array([s != "train" for s in splits])
