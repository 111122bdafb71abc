"""Demo study ``pancreas_progression``: 3-phase CT at 3-4 time points, progression next visit.

Images: per time point ``t = 0 .. T-1`` (``T`` = 4 with probability 0.4, else 3) an abdominal
CT in the ``arterial``, ``venous`` and ``delayed`` phase on one grid, with one label map per
time point (1 = pancreas, 2 = lesion). Phases differ in enhancement (pancreas 128 / 105 / 78 HU, the
hypo-enhancing lesion 62 / 72 / 80 HU, aorta 320 / 170 / 120 HU, see ``CT_HU``).

Planted mechanism (patient latents):

* baseline lesion radius ``r0 ~ U(8, 15)`` mm;
* growth rate ``g ~ N(0.05, 0.30)`` = change of log lesion volume per follow-up interval;
  ``log V_t = log V_0 + sum_{s<=t} (g + e_s)``, ``e_s ~ N(0, 0.08)``, so the radius is
  ``r_t = r0 exp(sum (g + e_s) / 3)`` (clipped to 3.5-28 mm);
* texture heterogeneity ``h ~ U(0, 1)``: lesion HU = phase mean - 10 h + (6 + 28 h) * field,
  field = unit-variance Gaussian-smoothed noise (sigma 0.9 voxel);
* ``log CA19-9 ~ N(3.5 + 0.5 z_g, 0.9)`` with ``z_g = (g - 0.05) / 0.30``.

``progression_next`` at time point ``t < T - 1`` is Bernoulli(p) with

``logit p = -0.5 + 1.5 z_g + 2.0 (h - 0.5) / 0.289 + 0.7 (log CA19-9 - 3.5)``

(empty at the last time point). The growth rate is visible as the lesion-volume trend across
time points, the texture as the lesion HU standard deviation.

Oracle: the AUC, over the patient x time point rows of internal_test + external_test, of the best
score a model can compute *at* time point ``t`` (:func:`observable_probability`). The growth rate
is a future quantity at baseline: at ``t = 0`` only CA19-9 (which carries part of ``z_g``) and the
texture are known, at ``t >= 1`` also the observed log-volume change ``S_t = t g + sum e_s``. With
the Gaussian prior ``z_g ~ N(0, 1)`` the posterior of ``z_g`` given ``(log CA19-9 - 3.5) / 0.5 =
z_g + N(0, 1.8^2)`` and ``(S_t / t - 0.05) / 0.30 = z_g + N(0, 0.08^2 / (0.30^2 t))`` is normal
``N(m, v)``, and the score is ``E[p] = E[sigmoid(-0.5 + 1.5 z_g + 2 z_h + 0.7 z_c)]`` under it
(Gauss-Hermite). The AUC of the true ``p`` itself, which no model can reach at baseline, is kept in
``oracle.json`` as ``value_latent``; ``value_tabular`` is the same score without the texture
(integrated over its uniform prior): the ceiling of a tabular baseline of CA19-9 and the mask
volumes, which the image model must pass by reading the texture.

``value`` knows ``h``; the CT shows it through 4.4 mm voxels and the scanner. ``value_pixels``
(added 2026-12-06, beside ``value``, which is unchanged) scores each row with ``h`` replaced by
its posterior given the lesion-core voxels of time points ``0..t`` (:func:`pixel_log_likelihood`:
the mean of the three phases, which share the texture and not the noise, under the Gaussian-field
likelihood of :mod:`oncoflow.demo._oracle`). It is what an observer who knows each scanner's
noise and PSF, but not its calibration, reads from the lesion core: a lower bound of what the
whole image allows (the rim and the lesion mean are left out).
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
    apply_ct_scanner,
    logit_inv,
    make_grid,
    random_rotation,
    write_nifti,
)
from oncoflow.demo._oracle import (
    H_GRID,
    lesion_core,
    oracle_entry,
    posterior_weights,
    texture_log_likelihood,
)
from oncoflow.demo._phantoms import Scene, ct_true_hu, pancreas_scene
from oncoflow.metrics.classification import safe_auc

PHASES: tuple[str, ...] = ("arterial", "venous", "delayed")
GROWTH_WEIGHT = 1.5
"""Weight of the standardised growth rate ``z_g`` in the progression logit."""
TEXTURE_WEIGHT = 2.0
"""Weight of the standardised texture ``z_h`` (the term only the pixels carry)."""
GRID_SIZE = (64, 64, 32)
INPLANE_MM = 4.4


def progression_probability(latent: dict[str, Any]) -> float:
    """Return the patient's true P(progression at the next follow-up) (module docstring)."""
    z_g = (latent["growth"] - 0.05) / 0.30
    z_h = (latent["texture"] - 0.5) / 0.289
    z_c = np.log(latent["ca19_9"]) - 3.5
    return float(logit_inv(-0.5 + GROWTH_WEIGHT * z_g + TEXTURE_WEIGHT * z_h + 0.7 * z_c))


def observable_probability(
    latent: dict[str, Any],
    timepoint: int,
    *,
    texture_known: bool = True,
    texture_weights: np.ndarray | None = None,
) -> float:
    """Return E[P(progression at the next follow-up) | what time point ``t`` shows] (module doc).

    Args:
        latent: The patient's latents.
        timepoint: ``t``; the volume trend of time points ``0..t`` is known, not the future.
        texture_known: Whether the lesion texture is seen (an image model); ``False`` is what a
            tabular model of CA19-9 and the mask volumes knows: ``h ~ U(0, 1)`` is then
            integrated out (``value_tabular`` of ``oracle.json``).
        texture_weights: Posterior weights of ``h`` on :data:`~oncoflow.demo._oracle.H_GRID`
            (what the lesion-core voxels show, :func:`texture_log_likelihood`); they replace
            ``texture_known`` (``value_pixels``).
    """
    z_c = np.log(latent["ca19_9"]) - 3.5
    if texture_weights is not None:
        z_h, w_h = (H_GRID - 0.5) / 0.289, np.asarray(texture_weights, dtype=float)
    elif texture_known:
        z_h, w_h = np.array([(latent["texture"] - 0.5) / 0.289]), np.ones(1)
    else:  # the midpoints of 64 equal bins of U(0, 1)
        z_h, w_h = ((np.arange(64) + 0.5) / 64 - 0.5) / 0.289, np.full(64, 1 / 64)
    # Gaussian posterior of z_g: prior N(0, 1), CA19-9 and (t >= 1) the observed volume trend
    precision, weighted = 1.0, 0.0
    ca_var = (0.9 / 0.5) ** 2
    precision += 1.0 / ca_var
    weighted += (z_c / 0.5) / ca_var
    if timepoint > 0:
        change = timepoint * latent["growth"] + float(np.sum(latent["interval_noise"][:timepoint]))
        trend_var = 0.08**2 / (0.30**2 * timepoint)
        precision += 1.0 / trend_var
        weighted += ((change / timepoint - 0.05) / 0.30) / trend_var
    mean, sd = weighted / precision, np.sqrt(1.0 / precision)
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    logit = (
        -0.5
        + GROWTH_WEIGHT * (mean + sd * nodes)[:, None]
        + TEXTURE_WEIGHT * z_h[None, :]
        + 0.7 * z_c
    )
    joint = weights[:, None] * (w_h / w_h.sum())[None, :]
    return float(np.sum(joint * logit_inv(logit)) / np.sum(weights))


def lesion_radii(latent: dict[str, Any]) -> np.ndarray:
    """Return the lesion's volume-equivalent radius (mm) at each time point."""
    steps = latent["growth"] + np.asarray(latent["interval_noise"][: latent["n_tp"] - 1])
    log_ratio = np.concatenate([[0.0], np.cumsum(steps)])
    return np.clip(latent["r0"] * np.exp(log_ratio / 3.0), 3.5, 28.0)


def timepoint_scene(
    latent: dict[str, Any], site: str, radius: float, rng: np.random.Generator
) -> tuple[Grid, Scene, np.ndarray]:
    """One time point's grid (``site``'s scanner), scene and label map, lesion radius in mm."""
    scanner = SCANNERS[site]
    grid = make_grid(
        rng, size=GRID_SIZE, inplane_mm=INPLANE_MM * scanner.inplane_scale,
        slice_mm=scanner.slice_mm,
    )  # fmt: skip
    scene, mask = pancreas_scene(grid, rng, latent, radius, lobulation=0.12)
    return grid, scene, mask


class PancreasProgression(StudyGenerator):
    """Generator of the ``pancreas_progression`` demo cohort (see the module docstring)."""

    name = "pancreas_progression"
    prefix = "PP"

    def draw_latent(self, rng: np.random.Generator, site: str) -> dict[str, Any]:
        """Draw tumour kinetics, texture, labs and anatomy."""
        growth = float(rng.normal(0.05, 0.30))
        age = float(np.clip(rng.normal(63, 9), 35, 88))
        return {
            "n_tp": 3 + int(rng.random() < 0.4),
            "r0": float(rng.uniform(8, 15)),
            "growth": growth,
            "interval_noise": [float(v) for v in rng.normal(0, 0.08, size=3)],
            "texture": float(rng.uniform(0, 1)),
            "ca19_9": float(np.exp(rng.normal(3.5 + 0.5 * (growth - 0.05) / 0.30, 0.9))),
            "age": age,
            "sex": "M" if rng.random() < 0.55 else "F",
            "ldh": float(np.clip(rng.normal(195, 45), 90, 600)),
            "alb": float(np.clip(rng.normal(41, 4.5), 22, 55)),
            "crp": float(np.exp(rng.normal(1.6, 0.9))),
            "chemo_regimen": "AG" if rng.random() < (0.75 if age > 70 else 0.4) else "FOLFIRINOX",
            "body_scale": float(rng.uniform(0.9, 1.1)),
            "pancreas_shift": tuple(float(v) for v in rng.normal(0, [4.0, 4.0, 3.0])),
            "lesion_frac": float(rng.uniform(0.1, 0.7)),
            "elongation": float(rng.uniform(1.0, 1.35)),
            "rotation": tuple(tuple(float(v) for v in row) for row in random_rotation(rng)),
        }

    def image_specs(self, patient: Patient) -> list[ImageSpec]:
        """Three phases per time point sharing one mask."""
        specs = []
        for tp in range(patient.latent["n_tp"]):
            folder = f"images/{patient.patient_id}/tp{tp}"
            for phase in PHASES:
                specs.append(
                    ImageSpec(
                        timepoint=tp,
                        modality="CT",
                        series=phase,
                        path=f"{folder}/CT_{phase}.nii.gz",
                        mask_path=f"{folder}/mask.nii.gz",
                    )
                )
        return specs

    def tables(self, patients: list[Patient]) -> StudyTables:
        """Clinical labs, per-time-point progression labels, splits and the AUC oracle."""
        clinical = pd.DataFrame(
            {
                "patient_id": [p.patient_id for p in patients],
                "age": [round(p.latent["age"]) for p in patients],
                "sex": [p.latent["sex"] for p in patients],
                "ca19_9": [round(p.latent["ca19_9"], 1) for p in patients],
                "ldh": [round(p.latent["ldh"]) for p in patients],
                "alb": [round(p.latent["alb"], 1) for p in patients],
                "crp": [round(p.latent["crp"], 1) for p in patients],
                "chemo_regimen": [p.latent["chemo_regimen"] for p in patients],
            }
        )
        prob = np.array([progression_probability(p.latent) for p in patients])
        labels: list[np.ndarray] = []
        for p, pr in zip(patients, prob, strict=True):
            u = self.rng(p.index, "outcome").random(p.latent["n_tp"] - 1)
            labels.append((u < pr).astype(int))
        strata = np.array([int(lab.any()) for lab in labels])
        final, splits = self.assign_splits(patients, strata, np.column_stack([1 - prob, prob]))
        for i in np.flatnonzero(final != strata):
            labels[i] = np.zeros_like(labels[i])
            if final[i] == 1:
                labels[i][0] = 1
        rows = []
        for p, lab in zip(patients, labels, strict=True):
            for tp in range(p.latent["n_tp"]):
                value = int(lab[tp]) if tp < len(lab) else pd.NA
                rows.append(
                    {"patient_id": p.patient_id, "timepoint": tp, "progression_next": value}
                )
        outcomes = pd.DataFrame(rows).astype({"timepoint": int, "progression_next": "Int64"})
        test = np.flatnonzero(self.test_mask(splits))
        y_test = np.concatenate([labels[i] for i in test])
        p_test = np.concatenate([np.full(len(labels[i]), prob[i]) for i in test])
        seen = np.concatenate(
            [
                [observable_probability(patients[i].latent, t) for t in range(len(labels[i]))]
                for i in test
            ]
        )
        tabular = np.concatenate(
            [
                [
                    observable_probability(patients[i].latent, t, texture_known=False)
                    for t in range(len(labels[i]))
                ]
                for i in test
            ]
        )
        entry = oracle_entry("auc", safe_auc(y_test, seen))
        entry["value_tabular"] = oracle_entry("auc", safe_auc(y_test, tabular))["value"]
        entry["value_latent"] = oracle_entry("auc", safe_auc(y_test, p_test))["value"]
        oracle = {"progression_next": entry}
        return StudyTables(clinical, outcomes, self.splits_frame(patients, splits), oracle)

    def render(self, patient: Patient, specs: list[ImageSpec], study_dir: Path) -> dict[str, float]:
        """Render each time point's scene once, then its three phases.

        Returns:
            ``p_pixels_<t>`` for each labelled time point ``t``: :func:`observable_probability`
            with the posterior of ``h`` given the lesion-core voxels of time points ``0..t``
            (:func:`pixel_log_likelihood` of each).
        """
        lat = patient.latent
        rng = self.rng(patient.index, "pixels")
        radii = lesion_radii(lat)
        texture_hu = 6.0 + 28.0 * lat["texture"]
        log_lik = np.zeros(len(H_GRID))
        seen: dict[str, float] = {}
        for tp in range(lat["n_tp"]):
            grid, scene, mask = timepoint_scene(lat, patient.site, float(radii[tp]), rng)
            phases = []
            for spec in specs:
                if spec.timepoint != tp:
                    continue
                hu = ct_true_hu(
                    scene,
                    spec.series,
                    lesion_shift_hu=-10.0 * lat["texture"],
                    texture_hu=texture_hu,
                )
                ct = apply_ct_scanner(hu, grid, patient.site, rng)
                write_nifti(study_dir / spec.path, ct, grid)
                phases.append(ct)
            write_nifti(study_dir / f"images/{patient.patient_id}/tp{tp}/mask.nii.gz", mask, grid)
            spacing = (grid.spacing[2], grid.spacing[1], grid.spacing[0])
            log_lik = log_lik + pixel_log_likelihood(phases, scene.tissue, patient.site, spacing)
            if tp < lat["n_tp"] - 1:
                weights = posterior_weights(log_lik)
                seen[f"p_pixels_{tp}"] = observable_probability(lat, tp, texture_weights=weights)
        return seen

    def observed_oracle(
        self, tables: StudyTables, rendered: dict[str, dict[str, float] | None]
    ) -> dict[str, dict[str, Any]]:
        """``value_pixels``: the AUC of the ``p_pixels_<t>`` of the test rows, beside ``value``."""
        splits = tables.splits.set_index("patient_id")["split"]
        rows = tables.outcomes.dropna(subset=["progression_next"])
        rows = rows[rows["patient_id"].map(splits) != "train"]
        seen = [
            (rendered[p] or {})[f"p_pixels_{t}"]
            for p, t in zip(rows["patient_id"], rows["timepoint"], strict=True)
        ]
        y = rows["progression_next"].astype(int).to_numpy()
        entry = dict(tables.oracle["progression_next"])
        entry["value_pixels"] = oracle_entry("auc", safe_auc(y, np.asarray(seen)))["value"]
        return {"progression_next": entry}


def pixel_log_likelihood(
    phases: list[np.ndarray], tissue: np.ndarray, site: str, spacing_zyx: tuple[float, ...]
) -> np.ndarray:
    """Log-likelihood of ``h`` on :data:`~oncoflow.demo._oracle.H_GRID` from one time point.

    The phases share the lesion texture and not the scanner noise, so their mean carries all
    of it with the noise variance (and the rounding variance ``1/12``) divided by the number of
    phases: :func:`~oncoflow.demo._oracle.texture_log_likelihood` of the mean over the lesion
    core (:func:`~oncoflow.demo._oracle.lesion_core`) with the amplitude ``6 + 28 h`` HU.

    Args:
        phases: The phases' CT (z, y, x) in HU, as written.
        tissue: The scene's tissue labels.
        site: Scanner site.
        spacing_zyx: Voxel spacing (mm) along the array axes.
    """
    k = len(phases)
    mean = np.mean([np.asarray(ct, dtype=float) for ct in phases], axis=0)
    return texture_log_likelihood(
        mean,
        lesion_core(tissue),
        site,
        spacing_zyx,
        6.0 + 28.0 * H_GRID,
        noise_var_scale=1.0 / k,
        rounding_var=1.0 / (12.0 * k),
    )
