"""Demo study ``net_survival``: chest CT + lesion mask + H&E slide, OS / PFS of lung NETs.

Images per patient: a contrast chest CT (series ``-``, 64^3) with a lesion label map
(1 = lesion) and one H&E-like whole-slide image (modality ``WSI``, series ``HE``): a pyramidal
tiled TIFF (3 levels, 4096 x 2560 px at 0.5 µm/px) — the patients with index 1, 21, 41, ... get
an Aperio-style ``.svs`` instead.

Planted mechanism. Latents: lesion radius ``r ~ U(6, 20)`` mm, lesion texture ``h ~ U(0, 1)``
(attenuation + 120 (h - 0.5) HU, heterogeneity HU sd 6 + 28 h; site CT offsets and gains act on
the attenuation, see :data:`~oncoflow.demo._common.SCANNERS`), fibre orientation disorder
``d ~ U(0, 1)`` and nuclei density ``rho ~ U(0, 1)`` of the slide (see
:mod:`oncoflow.demo._slides`), age. Linear predictor

``eta = 0.8 z_h + 0.9 z_rho + 0.6 z_d + 0.5 z_logr + 0.03 (age - 65)``

with ``z_u = (u - 0.5) / 0.289`` for the uniform latents and ``z_logr = (log r - 2.42) / 0.33``.
Death ``T`` and progression ``P`` times are proportional-hazards Weibull (shape 1.2; medians
1200 and 900 days at ``eta = 0``, both scaled by ``exp(eta)``); censoring ``C ~ U(300, 3000)``
days. ``os = (min(T, C), T <= C)``, ``pfs = (min(P, T, C), min(P, T) <= C)`` so ``pfs <= os``.
Histology is an ordinal cut of ``0.9 z_rho + 0.6 z_h + N(0, 0.7)`` into carcinoid (40 %),
atypical carcinoid (25 %), LCNEC (20 %) and SCLC (15 %). Oracle: Harrell's C of ``eta`` for OS
and PFS on internal_test + external_test; ``value_tabular`` the C of ``E[eta | r, age]`` (the
texture, density and disorder averaged out: they have mean 0 and are independent of size, age,
sex and smoking), what the clinical table and the mask size know.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.demo._base import ImageSpec, Patient, StudyGenerator, StudyTables
from oncoflow.demo._common import (
    SCANNERS,
    apply_ct_scanner,
    weibull_times,
    write_nifti,
)
from oncoflow.demo._oracle import oracle_entry
from oncoflow.demo._phantoms import LESION, NECROSIS, chest_scene, ct_true_hu, lung_lesion
from oncoflow.demo._slides import render_slide, write_slide
from oncoflow.metrics.survival import safe_concordance_index

HISTOLOGY = ("carcinoid", "atypical_carcinoid", "LCNEC", "SCLC")
_HISTOLOGY_CUTS = (-0.33, 0.50, 1.34)
TEXTURE_SHIFT_HU = 120.0
"""Lesion attenuation range of the texture latent (HU from h = 0 to h = 1).

With 5 mm voxels and lesions of 6-20 mm the heterogeneity alone is swamped by partial volume
at the lesion border; the attenuation shift keeps ``h`` measurable (Spearman rho of the
lesion's median HU with ``h`` about 0.9 within a site, 0.75 across sites before ComBat)."""


def _z_uniform(u: float) -> float:
    return (u - 0.5) / 0.289


def linear_predictor(latent: dict[str, Any]) -> float:
    """Return the true log hazard ratio ``eta`` of a patient (module docstring)."""
    return float(
        0.8 * _z_uniform(latent["texture"])
        + 0.9 * _z_uniform(latent["density"])
        + 0.6 * _z_uniform(latent["disorder"])
        + 0.5 * (np.log(latent["radius"]) - 2.42) / 0.33
        + 0.03 * (latent["age"] - 65.0)
    )


def tabular_predictor(latent: dict[str, Any]) -> float:
    """``E[eta | lesion radius, age]``: what the clinical table and the mask size know of eta."""
    return float(
        0.5 * (np.log(latent["radius"]) - 2.42) / 0.33 + 0.03 * (round(latent["age"]) - 65.0)
    )


class NetSurvival(StudyGenerator):
    """Generator of the ``net_survival`` demo cohort (see the module docstring)."""

    name = "net_survival"
    prefix = "NET"

    def draw_latent(self, rng: np.random.Generator, site: str) -> dict[str, Any]:
        """Draw lesion, slide and clinical latents."""
        body_scale = float(rng.uniform(0.9, 1.05))
        latent: dict[str, Any] = {
            "texture": float(rng.uniform(0, 1)),
            "disorder": float(rng.uniform(0, 1)),
            "density": float(rng.uniform(0, 1)),
            "age": float(np.clip(rng.normal(60, 11), 25, 88)),
            "sex": "F" if rng.random() < 0.6 else "M",
            "smoking": str(rng.choice(["never", "former", "current"], p=[0.5, 0.3, 0.2])),
            "grade_noise": float(rng.normal(0, 0.7)),
            "body_scale": body_scale,
            "elongation": float(rng.uniform(1.0, 1.3)),
        }
        latent.update(lung_lesion(rng, rng.uniform(6, 20), body_scale))
        return latent

    def image_specs(self, patient: Patient) -> list[ImageSpec]:
        """Chest CT + lesion mask and one slide."""
        folder = f"images/{patient.patient_id}/tp0"
        suffix = "svs" if patient.index % 20 == 1 else "tif"
        return [
            ImageSpec(0, "CT", "-", f"{folder}/CT.nii.gz", f"{folder}/mask.nii.gz"),
            ImageSpec(0, "WSI", "HE", f"{folder}/WSI_HE.{suffix}"),
        ]

    def tables(self, patients: list[Patient]) -> StudyTables:
        """Clinical, OS/PFS + histology, splits and the C-index oracles."""
        clinical = pd.DataFrame(
            {
                "patient_id": [p.patient_id for p in patients],
                "age": [round(p.latent["age"]) for p in patients],
                "sex": [p.latent["sex"] for p in patients],
                "smoking": [p.latent["smoking"] for p in patients],
            }
        )
        eta = np.array([linear_predictor(p.latent) for p in patients])
        draws = np.array([self.rng(p.index, "outcome").random(3) for p in patients])
        death = weibull_times(draws[:, 0], eta, median_days=1200.0, shape=1.2)
        prog = weibull_times(draws[:, 1], eta, median_days=900.0, shape=1.2)
        censor = 300.0 + 2700.0 * draws[:, 2]
        propensity = np.column_stack([-eta, eta])
        strata = (death <= censor).astype(int)
        final, splits = self.assign_splits(patients, strata, propensity)
        censor = _force_events(censor, death, final)
        pfs_event = (np.minimum(prog, death) <= censor).astype(int)
        pfs_final = self.rebalance_secondary(patients, pfs_event, propensity, splits)
        censor = _force_events(censor, np.minimum(prog, death), pfs_final)
        os_time = np.minimum(death, censor)
        os_event = (death <= censor).astype(int)
        pfs_time = np.minimum(np.minimum(prog, death), censor)
        pfs_event = (np.minimum(prog, death) <= censor).astype(int)
        grade = np.array(
            [
                0.9 * _z_uniform(p.latent["density"])
                + 0.6 * _z_uniform(p.latent["texture"])
                + p.latent["grade_noise"]
                for p in patients
            ]
        )
        histology = [HISTOLOGY[int(np.searchsorted(_HISTOLOGY_CUTS, g))] for g in grade]
        outcomes = pd.DataFrame(
            {
                "patient_id": [p.patient_id for p in patients],
                "histology": histology,
                "os_time": np.maximum(np.round(os_time), 1).astype(int),
                "os_event": os_event,
                "pfs_time": np.maximum(np.round(pfs_time), 1).astype(int),
                "pfs_event": pfs_event,
            }
        )
        outcomes["pfs_time"] = np.minimum(outcomes["pfs_time"], outcomes["os_time"])
        test = self.test_mask(splits)
        known = np.array([tabular_predictor(p.latent) for p in patients])
        oracle = {}
        for name, time, event in (("os", os_time, os_event), ("pfs", pfs_time, pfs_event)):
            entry = oracle_entry(
                "c_index", safe_concordance_index(time[test], event[test], eta[test])
            )
            entry["value_tabular"] = oracle_entry(
                "c_index", safe_concordance_index(time[test], event[test], known[test])
            )["value"]
            oracle[name] = entry
        return StudyTables(clinical, outcomes, self.splits_frame(patients, splits), oracle)

    def render(self, patient: Patient, specs: list[ImageSpec], study_dir: Path) -> None:
        """Render the chest CT, its lesion mask and the slide."""
        lat = patient.latent
        rng = self.rng(patient.index, "pixels")
        grid, scene = chest_scene(rng, lat, patient.site, lobulation=0.15)
        hu = ct_true_hu(
            scene,
            "venous",
            lesion_shift_hu=TEXTURE_SHIFT_HU * (lat["texture"] - 0.5),
            texture_hu=6.0 + 28.0 * lat["texture"],
        )
        mask = ((scene.tissue == LESION) | (scene.tissue == NECROSIS)).astype(np.uint8)
        write_nifti(study_dir / specs[0].path, apply_ct_scanner(hu, grid, patient.site, rng), grid)
        write_nifti(study_dir / str(specs[0].mask_path), mask, grid)
        slide = render_slide(
            rng,
            disorder=lat["disorder"],
            density=lat["density"],
            stain=SCANNERS[patient.site].stain,
        )
        write_slide(study_dir / specs[1].path, slide, aperio=specs[1].path.endswith(".svs"))


def _force_events(censor: np.ndarray, event_time: np.ndarray, want_event: np.ndarray) -> np.ndarray:
    """Move censoring times so that ``event_time <= censor`` exactly where ``want_event`` is 1.

    Only patients whose status must change are touched: an event becomes observed with
    ``C = event_time + 1`` day, a censoring with ``C = 0.6 * event_time``.
    """
    out = censor.copy()
    has = event_time <= censor
    out[(want_event == 1) & ~has] = event_time[(want_event == 1) & ~has] + 1.0
    out[(want_event == 0) & has] = 0.6 * event_time[(want_event == 0) & has]
    return out
