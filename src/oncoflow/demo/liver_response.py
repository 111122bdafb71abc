"""Demo study ``liver_response``: liver MRI (T1, T2, T1V) before and after treatment, response.

Images: at time point 0 (pre) and 1 (post) an abdominal MRI in three sequences on one grid
(T1, T2 and T1V = portal-venous contrast-enhanced T1; arbitrary units) with a lesion label map
(1 = lesion, viable tumour and necrotic core together). Necrosis is dark on T1 / T1V and bright
on T2 (``MR_AU`` in :mod:`oncoflow.demo._phantoms`). Each site's scanner has its own gain, noise,
blur and a smooth multiplicative bias field; values are magnitudes ``|s + n1 + i n2|``.

Planted mechanism. Latents: pre-treatment radius ``r0 ~ U(12, 26)`` mm; log volume change
``delta ~ N(-0.25, 0.45)`` (post radius ``r1 = r0 exp(delta / 3)``); necrotic fraction
``n0 ~ U(0, 0.25)`` and its change ``dn ~ N(0.12, 0.15)`` (``n1 = clip(n0 + dn, 0, 0.85)``);
``log(AFP_post / AFP_pre) ~ N(-0.4, 0.8)``, ``log(DCP_post / DCP_pre) ~ N(-0.4, 0.8)`` (pre values
log-normal). ``response ~ Bernoulli(p)``,

``logit p = -2.4 - 1.6 (delta + 0.25) / 0.45 + 2.0 (n1 - n0 - 0.12) / 0.15
- 0.5 (afp_drop + 0.4) / 0.8 - 0.3 (dcp_drop + 0.4) / 0.8``

(about 22 % responders). The necrosis term reads the change the images show, ``n1 - n0`` (a
drop below ``-n0`` leaves no necrosis to see). Oracle: AUC of ``p`` on internal_test +
external_test. The volume change shows in the masks and AFP / DCP in the clinical table; the
necrosis change only in the MRI signal (the mask holds the necrotic core too):
``value_tabular`` is the AUC of ``E[p | delta, AFP, DCP]`` (the necrosis change averaged over its
prior), the ceiling of the tabular baseline ``baseline_clinical_size``. The necrosis term carries
about a third of the signal (``value`` about 0.91 against ``value_tabular`` 0.76 over many
patients), so an image model has something to add.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.demo._base import ImageSpec, Patient, StudyGenerator, StudyTables
from oncoflow.demo._common import (
    SCANNERS,
    Grid,
    logit_inv,
    make_grid,
    random_rotation,
    scanner_blur,
    smooth_noise,
    write_nifti,
)
from oncoflow.demo._oracle import oracle_entry
from oncoflow.demo._phantoms import (
    LESION,
    MR_AU,
    NECROSIS,
    Lesion,
    Scene,
    abdomen,
    liver_point,
)
from oncoflow.metrics.classification import safe_auc

SEQUENCES: tuple[str, ...] = ("T1", "T2", "T1V")
GRID_SIZE = (64, 64, 24)
INPLANE_MM = 4.6
SLICE_MM = 6.0


NECROSIS_WEIGHT = 2.0
"""Weight of the standardised necrosis change in the response logit (module docstring)."""


def _necrosis_prior() -> np.ndarray:
    """Seeded prior draws of the visible necrosis change ``clip(n0 + dn, 0, 0.85) - n0``."""
    rng = np.random.default_rng(20261204)
    n0 = rng.uniform(0, 0.25, 8000)
    return np.clip(n0 + rng.normal(0.12, 0.15, 8000), 0.0, 0.85) - n0


def response_probability(latent: dict[str, Any], *, necrosis_known: bool = True) -> float:
    """Return the patient's P(response) (module docstring).

    Args:
        latent: The patient's latents.
        necrosis_known: Whether the change of necrotic fraction ``n1 - n0`` is seen (the true
            probability, read from the MRI signal); ``False`` is what a tabular model of AFP /
            DCP and the mask volumes (which give ``delta``) knows: the change is averaged over
            its prior (Monte Carlo, 8,000 seeded draws; ``value_tabular`` of ``oracle.json``).
    """
    tabular = (
        -2.4
        - 1.6 * (latent["delta"] + 0.25) / 0.45
        - 0.5 * (latent["afp_drop"] + 0.4) / 0.8
        - 0.3 * (latent["dcp_drop"] + 0.4) / 0.8
    )
    change = np.asarray(latent["n1"] - latent["n0"]) if necrosis_known else _necrosis_prior()
    return float(np.mean(logit_inv(tabular + NECROSIS_WEIGHT * (change - 0.12) / 0.15)))


def mr_image(
    scene: Scene, sequence: str, site: str, rng: np.random.Generator, texture: float
) -> np.ndarray:
    """Return the int16 MR magnitude image of ``scene`` in ``sequence`` as ``site`` acquires it."""
    sc = SCANNERS[site]
    signal = scene.lookup(MR_AU[sequence])
    les = scene.tissue == LESION
    signal[les] *= 1.0 + texture * scene.texture[les]
    bias = 1.0 + 0.12 * smooth_noise(rng, scene.grid.shape, 12.0)
    signal = scanner_blur(sc.mr_gain * signal * bias, scene.grid, 0.8 * sc.blur_mm)
    real = signal + sc.mr_noise * rng.standard_normal(signal.shape).astype(np.float32)
    imag = sc.mr_noise * rng.standard_normal(signal.shape).astype(np.float32)
    return np.clip(np.rint(np.hypot(real, imag)), 0, 32767).astype(np.int16)


def timepoint_scene(
    latent: dict[str, Any], site: str, timepoint: int, rng: np.random.Generator
) -> tuple[Grid, Scene, np.ndarray]:
    """Time point 0 (pre) or 1 (post): grid (``site``'s scanner), scene and lesion label map."""
    grid: Grid = make_grid(
        rng,
        size=GRID_SIZE,
        inplane_mm=INPLANE_MM * SCANNERS[site].inplane_scale,
        slice_mm=SLICE_MM,
        table_mm=(0.0, -120.0, -900.0),
        fov_centre_mm=(0.0, 0.0, float(latent["lesion_centre"][2])),
    )
    radius = latent["r0"] * (np.exp(latent["delta"] / 3.0) if timepoint == 1 else 1.0)
    lesion = Lesion(
        centre=latent["lesion_centre"],
        radius_mm=float(np.clip(radius, 4.0, 40.0)),
        elongation=latent["elongation"],
        rotation=latent["rotation"],
        lobulation=0.1,
        necrosis=latent["n1"] if timepoint == 1 else latent["n0"],
    )
    scene = abdomen(
        grid, rng, body_scale=latent["body_scale"], pancreas_shift=(0.0, 0.0, 0.0), lesion=lesion
    )
    mask = ((scene.tissue == LESION) | (scene.tissue == NECROSIS)).astype(np.uint8)
    return grid, scene, mask


class LiverResponse(StudyGenerator):
    """Generator of the ``liver_response`` demo cohort (see the module docstring)."""

    name = "liver_response"
    prefix = "LR"

    def draw_latent(self, rng: np.random.Generator, site: str) -> dict[str, Any]:
        """Draw tumour response, necrosis, markers and anatomy."""
        direction = rng.normal(size=3)
        u = direction / np.linalg.norm(direction) * 0.45 * rng.random() ** (1 / 3)
        body_scale = float(rng.uniform(0.9, 1.1))
        n0 = float(rng.uniform(0, 0.25))
        dn = float(rng.normal(0.12, 0.15))
        return {
            "r0": float(rng.uniform(12, 26)),
            "delta": float(rng.normal(-0.25, 0.45)),
            "n0": n0,
            "dn": dn,
            "n1": float(np.clip(n0 + dn, 0.0, 0.85)),
            "afp_pre": float(np.exp(rng.normal(4.0, 1.6))),
            "afp_drop": float(rng.normal(-0.4, 0.8)),
            "dcp_pre": float(np.exp(rng.normal(5.0, 1.5))),
            "dcp_drop": float(rng.normal(-0.4, 0.8)),
            "texture": float(rng.uniform(0.05, 0.25)),
            "age": float(np.clip(rng.normal(60, 10), 28, 88)),
            "sex": "M" if rng.random() < 0.75 else "F",
            "body_scale": body_scale,
            "lesion_centre": liver_point(u, body_scale),
            "rotation": tuple(tuple(float(v) for v in row) for row in random_rotation(rng)),
            "elongation": float(rng.uniform(1.0, 1.3)),
        }

    def image_specs(self, patient: Patient) -> list[ImageSpec]:
        """Three sequences at each of two time points, one mask per time point."""
        specs = []
        for tp in (0, 1):
            folder = f"images/{patient.patient_id}/tp{tp}"
            for seq in SEQUENCES:
                specs.append(
                    ImageSpec(tp, "MR", seq, f"{folder}/MR_{seq}.nii.gz", f"{folder}/mask.nii.gz")
                )
        return specs

    def tables(self, patients: list[Patient]) -> StudyTables:
        """AFP/DCP before and after, response, splits and the AUC oracle."""
        lat = [p.latent for p in patients]
        clinical = pd.DataFrame(
            {
                "patient_id": [p.patient_id for p in patients],
                "age": [round(v["age"]) for v in lat],
                "sex": [v["sex"] for v in lat],
                "afp_pre": [round(v["afp_pre"], 1) for v in lat],
                "afp_post": [round(v["afp_pre"] * np.exp(v["afp_drop"]), 1) for v in lat],
                "dcp_pre": [round(v["dcp_pre"], 1) for v in lat],
                "dcp_post": [round(v["dcp_pre"] * np.exp(v["dcp_drop"]), 1) for v in lat],
            }
        )
        prob = np.array([response_probability(v) for v in lat])
        u = np.array([self.rng(p.index, "outcome").random() for p in patients])
        strata = (u < prob).astype(int)
        final, splits = self.assign_splits(patients, strata, np.column_stack([1 - prob, prob]))
        outcomes = pd.DataFrame({"patient_id": [p.patient_id for p in patients], "response": final})
        test = self.test_mask(splits)
        blind = np.array([response_probability(v, necrosis_known=False) for v in lat])
        oracle = {"response": oracle_entry("auc", safe_auc(final[test], prob[test]))}
        oracle["response"]["value_tabular"] = oracle_entry(
            "auc", safe_auc(final[test], blind[test])
        )["value"]
        scores = {"response": {"y": final, "value": prob, "value_tabular": blind}}
        return StudyTables(clinical, outcomes, self.splits_frame(patients, splits), oracle, scores)

    def render(self, patient: Patient, specs: list[ImageSpec], study_dir: Path) -> None:
        """Render both time points in three sequences plus their lesion masks."""
        lat = patient.latent
        rng = self.rng(patient.index, "pixels")
        for tp in (0, 1):
            grid, scene, mask = timepoint_scene(lat, patient.site, tp, rng)
            for spec in specs:
                if spec.timepoint == tp:
                    image = mr_image(scene, spec.series, patient.site, rng, lat["texture"])
                    write_nifti(study_dir / spec.path, image, grid)
            write_nifti(study_dir / f"images/{patient.patient_id}/tp{tp}/mask.nii.gz", mask, grid)
