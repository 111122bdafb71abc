"""Demo study ``lung_synthesis``: 64^3 chest CT with lung and nodule masks (for a diffusion model).

Images: one non-contrast chest CT (series ``-``) per patient, labels 1 = lung, 2 = nodule.
The phantom has lungs at about -860 HU with a vessel tree (intersections of two smooth random
iso-surfaces plus hilar trunks), heart, mediastinum, aorta, trachea, spine and ribs. The nodule is
solid (radius ``U(3, 12)`` mm, HU = 38 + texture with sd ``6 + 28 h``, ``h ~ U(0, 1)``) or, with
probability 0.3, part-solid (mean -350 HU, sd 80).

There is no prediction target: ``outcomes.csv`` has only ``patient_id`` and ``oracle.json`` is
``{}`` (the study is judged on synthesis quality, not on an outcome).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.demo._base import ImageSpec, Patient, StudyGenerator, StudyTables
from oncoflow.demo._common import apply_ct_scanner, write_nifti
from oncoflow.demo._phantoms import (
    LESION,
    LUNG,
    NECROSIS,
    VESSEL,
    chest_scene,
    ct_true_hu,
    lung_lesion,
)


class LungSynthesis(StudyGenerator):
    """Generator of the ``lung_synthesis`` demo cohort (see the module docstring)."""

    name = "lung_synthesis"
    prefix = "LS"

    def draw_latent(self, rng: np.random.Generator, site: str) -> dict[str, Any]:
        """Draw nodule and anatomy latents."""
        body_scale = float(rng.uniform(0.9, 1.05))
        latent: dict[str, Any] = {
            "texture": float(rng.uniform(0, 1)),
            "part_solid": bool(rng.random() < 0.3),
            "age": float(np.clip(rng.normal(62, 10), 30, 88)),
            "sex": "M" if rng.random() < 0.5 else "F",
            "smoking": str(rng.choice(["never", "former", "current"], p=[0.3, 0.4, 0.3])),
            "body_scale": body_scale,
            "elongation": float(rng.uniform(1.0, 1.25)),
        }
        latent.update(lung_lesion(rng, rng.uniform(3, 12), body_scale))
        return latent

    def image_specs(self, patient: Patient) -> list[ImageSpec]:
        """One chest CT with its lung/nodule label map."""
        folder = f"images/{patient.patient_id}/tp0"
        return [ImageSpec(0, "CT", "-", f"{folder}/CT.nii.gz", f"{folder}/mask.nii.gz")]

    def tables(self, patients: list[Patient]) -> StudyTables:
        """Age/sex/smoking, IDs-only outcomes, random 75/25 internal split, empty oracle."""
        clinical = pd.DataFrame(
            {
                "patient_id": [p.patient_id for p in patients],
                "age": [round(p.latent["age"]) for p in patients],
                "sex": [p.latent["sex"] for p in patients],
                "smoking": [p.latent["smoking"] for p in patients],
            }
        )
        strata = np.zeros(len(patients), dtype=int)
        _, splits = self.assign_splits(patients, strata, np.ones((len(patients), 1)))
        outcomes = pd.DataFrame({"patient_id": [p.patient_id for p in patients]})
        return StudyTables(clinical, outcomes, self.splits_frame(patients, splits), {})

    def render(self, patient: Patient, specs: list[ImageSpec], study_dir: Path) -> None:
        """Render the CT and the lung (1) / nodule (2) labels."""
        lat = patient.latent
        rng = self.rng(patient.index, "pixels")
        grid, scene = chest_scene(rng, lat, patient.site, lobulation=0.2)
        if lat["part_solid"]:
            hu = ct_true_hu(scene, "native", lesion_shift_hu=-388.0, texture_hu=80.0)
        else:
            hu = ct_true_hu(scene, "native", texture_hu=6.0 + 28.0 * lat["texture"])
        mask = np.zeros(grid.shape, dtype=np.uint8)
        mask[(scene.tissue == LUNG) | (scene.tissue == VESSEL)] = 1
        mask[(scene.tissue == LESION) | (scene.tissue == NECROSIS)] = 2
        write_nifti(study_dir / specs[0].path, apply_ct_scanner(hu, grid, patient.site, rng), grid)
        write_nifti(study_dir / str(specs[0].mask_path), mask, grid)
