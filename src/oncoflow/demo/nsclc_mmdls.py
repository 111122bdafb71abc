"""Demo study ``nsclc_mmdls``: PET/CT of lung cancer; histology, stage, DFS and OS.

Images at time point 0: a contrast chest CT (64^3) and an FDG PET in SUVbw on the same grid
(NIfTI PET is stored already in SUV: int16 with ``scl_slope = 0.01``), one label map for both
(1 = lung, 2 = lesion). Every fourth patient (index 1, 5, 9, ...) is written as DICOM: a CT
series, a PET series storing Bq/mL with real SUV tags (weight, dose, F-18 half-life, injection
and series times; same grid and FrameOfReference as the CT) and an RTSTRUCT on the CT with
ROIs ``Lung`` and ``GTV`` (``mask_roi = "Lung+GTV"`` on both rows).

Planted mechanism. Latents: lesion radius ``r ~ U(6, 28)`` mm, texture ``h ~ U(0, 1)``
(HU sd 8 + 50 h), uptake ``SUVmax u``, ``log u ~ N(log 7, 0.55)`` clipped to 2-20 (PET lesion
``u (0.55 + 0.45 sqrt(core)) (1 + 0.1 field)`` before the PET PSF), smoking, age.

* ``histology``: LUSC with ``logit p = -0.2 + 2.2 z_h + 0.6 [current smoker]``, else LUAD;
  ``z_h = (h - 0.5) / 0.289``.
* ``stage``: the TNM group (:func:`stage_group`) of T, the primary's largest diameter ``d``
  (T1 <= 30 mm < T2 <= 50 mm < T3), N and M. With ``z_d = (log d - log 30) / 0.35`` and
  ``z_u = (log u - log 7) / 0.55``: ``P(N >= 1) = expit(-0.5 + z_d + 0.8 z_u)``,
  ``P(N2 | N >= 1) = expit(-0.3 + 0.5 z_d + 0.6 z_u)``, ``P(M1) = expit(-2.3 + 0.6 z_d + 0.9 z_u)``.
  N1 is one ipsilateral hilar node, N2 that node and one or two mediastinal ones (nodes of
  radius 8-11 mm, SUV 6-12, soft tissue on CT); M1 a nodule of radius 7-10 mm in the other lung
  (SUV ``max(4, 0.7 u)``, inside the lung label). About 35/22/28/15 % in I-IV.
* survival: ``eta = 0.6 z_u + 0.5 z_r + 0.45 (stage - 1.5) + 0.02 (age - 65)`` (stage 0..3);
  Weibull death (shape 1.1, median 1000 d) and recurrence (median 700 d) times, censoring
  ``U(200, 2500)`` d; ``os = min(T, C)``, ``dfs = min(R, T, C)``.

Oracle on internal_test + external_test: stage macro AUC of ``P(stage | reported diameter, N,
M)`` (N and M show on PET as avid foci outside the primary; the reported diameter carries a 2 mm
error; the macro-F1 of its argmax as ``value_macro_f1``) and, as ``value_tabular``, of
``P(stage | reported diameter)`` (:func:`stage_posteriors`), Harrell's C of ``eta`` (and of
``E[eta | reported diameter, age]`` as ``value_tabular``)
for DFS and OS, and for histology the AUC of what the CT shows of ``h``
(:func:`observable_lusc_probability`): ``E[p | lesion-core voxels, smoking]``. The texture
has a correlation length of about one 5 mm voxel and sits under 10-20 HU of scanner noise, so a
small lesion or a noisy scanner shows little of it. The AUC of the true ``p`` is kept as
``value_latent``.

Observable histology. In the lesion core the CT is ``v = m 1 + a_h t + n`` with ``a_h = gain
(8 + 50 h)``: the texture likelihood of :mod:`oncoflow.demo._oracle` (Gaussian texture and noise
fields of known correlation, the lesion mean integrated out) gives the posterior of ``h`` on a
grid of 101 points under its ``U(0, 1)`` prior, and ``E[p] = sum_h P(h | v) p(h, smoking)``.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    scanner_blur,
    to_sitk,
    weibull_times,
    write_nifti,
)
from oncoflow.demo._oracle import (
    H_GRID,
    lesion_core,
    oracle_entry,
    posterior_weights,
    texture_log_likelihood,
)
from oncoflow.demo._phantoms import (
    HEART,
    LESION,
    LUNG,
    NECROSIS,
    PET_SUV,
    VESSEL,
    Scene,
    chest_scene,
    ct_true_hu,
    lung_lesion,
)
from oncoflow.demo._tnm import (
    _categories_for,
    _z_r,
    _z_u,
    major_diameter,
    metastatic_foci,
    stage_group,
    stage_posteriors,
    tnm,
)
from oncoflow.demo.net_survival import _force_events
from oncoflow.metrics.classification import macro_auc, macro_f1, safe_auc
from oncoflow.metrics.survival import safe_concordance_index

STAGES = ("I", "II", "III", "IV")


def lusc_probability(latent: dict[str, Any], *, texture_known: bool = True) -> float:
    """Return P(histology = LUSC).

    Args:
        latent: The patient's latents.
        texture_known: The true probability; ``False`` is what the tables know (the smoking
            status), the texture ``h ~ U(0, 1)`` integrated out (``value_tabular``).
    """
    smoker = 0.6 * (latent["smoking"] == "current")
    if texture_known:
        z_h = (latent["texture"] - 0.5) / 0.289
        return float(logit_inv(-0.2 + 2.2 * z_h + smoker))
    z_h = ((np.arange(64) + 0.5) / 64 - 0.5) / 0.289  # the midpoints of 64 bins of U(0, 1)
    return float(np.mean(logit_inv(-0.2 + 2.2 * z_h + smoker)))


def observable_lusc_probability(
    ct: np.ndarray,
    core: np.ndarray,
    latent: dict[str, Any],
    site: str,
    spacing_zyx: tuple[float, float, float],
) -> float:
    """``E[P(LUSC) | CT values of the lesion core, smoking]`` (module docstring).

    The posterior of ``h`` on :data:`~oncoflow.demo._oracle.H_GRID` under its ``U(0, 1)`` prior
    comes from :func:`~oncoflow.demo._oracle.texture_log_likelihood` with the amplitude
    ``8 + 50 h`` HU.

    Args:
        ct: Observed CT (z, y, x) in HU, as written.
        core: Boolean (z, y, x) mask of the lesion core (lesion tissue, eroded by one voxel).
        latent: The patient's latents (smoking is read; ``texture`` is not).
        site: Scanner site (gain, noise, PSF).
        spacing_zyx: Voxel spacing (mm) along the array axes.

    Returns:
        The posterior mean of ``P(LUSC)``; the prior mean over ``h`` when the core has fewer
        than two voxels.
    """
    p_of_h = np.array([lusc_probability({**latent, "texture": h}) for h in H_GRID])
    log_lik = texture_log_likelihood(ct, core, site, spacing_zyx, 8.0 + 50.0 * H_GRID)
    return float(posterior_weights(log_lik) @ p_of_h)


def pet_suv(
    scene: Scene,
    latent: dict[str, Any],
    site: str,
    rng: np.random.Generator,
    foci: Sequence[tuple[np.ndarray, float]] = (),
) -> np.ndarray:
    """Return the PET SUV image (float32) of ``scene`` as ``site``'s scanner reconstructs it.

    ``foci``: (boolean voxel mask, SUV) of the involved nodes and metastases, painted before
    the scanner's PSF.
    """
    sc = SCANNERS[site]
    suv = scene.lookup(PET_SUV)
    suv[scene.tissue == HEART] *= latent["heart_uptake"]
    les = (scene.tissue == LESION) | (scene.tissue == NECROSIS)
    profile = 0.55 + 0.45 * np.sqrt(scene.lesion_core[les])
    suv[les] = latent["suv_max"] * profile * (1.0 + 0.1 * scene.texture[les])
    for where, value in foci:
        suv[where] = value
    suv = scanner_blur(sc.pet_gain * suv, scene.grid, sc.pet_fwhm_mm / 2.355)
    noise = rng.standard_normal(suv.shape).astype(np.float32)
    suv = suv * (1.0 + 0.12 * noise) + 0.03 * np.abs(noise)
    return np.clip(suv, 0.0, 32.0).astype(np.float32)


class NsclcMmdls(StudyGenerator):
    """Generator of the ``nsclc_mmdls`` demo cohort (see the module docstring)."""

    name = "nsclc_mmdls"
    prefix = "NS"
    has_dicom = True

    def draw_latent(self, rng: np.random.Generator, site: str) -> dict[str, Any]:
        """Draw lesion, uptake, smoking and anatomy latents."""
        body_scale = float(rng.uniform(0.9, 1.05))
        smoking = str(rng.choice(["never", "former", "current"], p=[0.2, 0.45, 0.35]))
        latent: dict[str, Any] = {
            "texture": float(rng.uniform(0, 1)),
            "suv_max": float(np.clip(np.exp(rng.normal(np.log(7.0), 0.55)), 2.0, 20.0)),
            "heart_uptake": float(rng.uniform(0.3, 0.55)),
            "node_draw": float(rng.random()),
            "n2_draw": float(rng.random()),
            "m_draw": float(rng.random()),
            "mediastinal_nodes": int(rng.integers(1, 3)),
            "age": float(np.clip(rng.normal(65, 9), 35, 88)),
            "sex": "M" if rng.random() < 0.6 else "F",
            "smoking": smoking,
            "smoking_years": 0.0 if smoking == "never" else float(rng.uniform(10, 45)),
            "weight_kg": float(np.clip(rng.normal(74, 13), 45, 120)),
            "dose_mbq": float(rng.uniform(250, 420)),
            "uptake_min": int(rng.integers(50, 75)),
            "diameter_noise": float(rng.normal(0, 2.0)),
            "report_noise": float(rng.normal(0, 0.05)),
            "body_scale": body_scale,
            "elongation": float(rng.uniform(1.0, 1.4)),
        }
        latent.update(lung_lesion(rng, rng.uniform(6, 28), body_scale))
        direction = rng.normal(size=3)
        latent["metastasis_direction"] = tuple(
            float(v) for v in direction / np.linalg.norm(direction) * 0.5 * rng.random() ** (1 / 3)
        )
        return latent

    def image_specs(self, patient: Patient) -> list[ImageSpec]:
        """CT and PET sharing one mask (NIfTI) or one RTSTRUCT (DICOM)."""
        folder = f"images/{patient.patient_id}/tp0"
        if patient.dicom:
            rt = f"{folder}/rtstruct.dcm"
            return [
                ImageSpec(0, "CT", "-", f"{folder}/CT_dicom", rt, "Lung+GTV", dicom=True),
                ImageSpec(0, "PET", "-", f"{folder}/PET_dicom", rt, "Lung+GTV", dicom=True),
            ]
        mask = f"{folder}/mask.nii.gz"
        return [
            ImageSpec(0, "CT", "-", f"{folder}/CT.nii.gz", mask),
            ImageSpec(0, "PET", "-", f"{folder}/PET.nii.gz", mask),
        ]

    def tables(self, patients: list[Patient]) -> StudyTables:
        """Clinical, histology / stage / DFS / OS, splits and four oracles."""
        lat = [p.latent for p in patients]
        p_lusc = np.array([lusc_probability(v) for v in lat])
        p_blind = np.array([lusc_probability(v, texture_known=False) for v in lat])
        u = np.array([self.rng(p.index, "outcome").random(4) for p in patients])
        strata = (u[:, 0] < p_lusc).astype(int)
        lusc, splits = self.assign_splits(patients, strata, np.column_stack([1 - p_lusc, p_lusc]))
        reported = np.array([round(self._diameter(v), 1) for v in lat])
        stage, post, tabular_post, mean_z_r = self._stages(patients, reported, splits)
        eta = (
            0.6 * np.array([_z_u(v["suv_max"]) for v in lat])
            + 0.5 * np.array([_z_r(v["radius"]) for v in lat])
            + 0.45 * (stage - 1.5)
            + 0.02 * (np.array([v["age"] for v in lat]) - 65.0)
        )
        # what the clinical table and the mask size know of eta (uptake unknown: E[z_u] is
        # the same for every patient and drops out of the ranking)
        eta_tabular = (
            0.5 * mean_z_r
            + 0.45 * (tabular_post @ np.arange(4.0) - 1.5)
            + 0.02 * (np.array([v["age"] for v in lat]) - 65.0)
        )
        death = weibull_times(u[:, 1], eta, median_days=1000.0, shape=1.1)
        recur = weibull_times(u[:, 2], eta, median_days=700.0, shape=1.1)
        censor = 200.0 + 2300.0 * u[:, 3]
        propensity = np.column_stack([-eta, eta])
        os_ev = self.rebalance_secondary(
            patients, (death <= censor).astype(int), propensity, splits
        )
        censor = _force_events(censor, death, os_ev)
        first = np.minimum(recur, death)
        dfs_ev = self.rebalance_secondary(
            patients, (first <= censor).astype(int), propensity, splits
        )
        censor = _force_events(censor, first, dfs_ev)
        os_time, os_event = np.minimum(death, censor), (death <= censor).astype(int)
        dfs_time, dfs_event = np.minimum(first, censor), (first <= censor).astype(int)
        clinical = pd.DataFrame(
            {
                "patient_id": [p.patient_id for p in patients],
                "age": [round(v["age"]) for v in lat],
                "sex": [v["sex"] for v in lat],
                "smoking": [v["smoking"] for v in lat],
                "smoking_years": [round(v["smoking_years"]) for v in lat],
                "tumour_diameter_mm": reported,
                "suv_max_report": [
                    round(v["suv_max"] * SCANNERS[p.site].pet_gain * (1 + v["report_noise"]), 1)
                    for p, v in zip(patients, lat, strict=True)
                ],
                "treatment": [_treatment(int(s)) for s in stage],
            }
        )
        outcomes = pd.DataFrame(
            {
                "patient_id": [p.patient_id for p in patients],
                "histology": ["LUSC" if y else "LUAD" for y in lusc],
                "stage": [STAGES[int(s)] for s in stage],
                "os_time": np.maximum(np.round(os_time), 1).astype(int),
                "os_event": os_event,
                "dfs_time": np.maximum(np.round(dfs_time), 1).astype(int),
                "dfs_event": dfs_event,
            }
        )
        outcomes["dfs_time"] = np.minimum(outcomes["dfs_time"], outcomes["os_time"])
        test = self.test_mask(splits)
        oracle = {
            "histology": oracle_entry("auc", safe_auc(lusc[test], p_lusc[test]))
            | {"value_tabular": oracle_entry("auc", safe_auc(lusc[test], p_blind[test]))["value"]},
            "stage": oracle_entry("macro_auc", macro_auc(stage[test], post[test]))
            | {
                "value_tabular": round(macro_auc(stage[test], tabular_post[test]), 4),
                "value_macro_f1": round(macro_f1(stage[test], post[test].argmax(axis=1)), 4),
            },
            "dfs": _survival_oracle(dfs_time[test], dfs_event[test], eta[test], eta_tabular[test]),
            "os": _survival_oracle(os_time[test], os_event[test], eta[test], eta_tabular[test]),
        }
        risks = {"value": eta, "value_tabular": eta_tabular}
        scores = {"dfs": {"time": dfs_time, "event": dfs_event, **risks}}
        scores["os"] = {"time": os_time, "event": os_event, **risks}
        return StudyTables(clinical, outcomes, self.splits_frame(patients, splits), oracle, scores)

    def _stages(
        self, patients: list[Patient], reported: np.ndarray, splits: list[str]
    ) -> tuple[np.ndarray, ...]:
        """TNM stage groups and the posteriors of the oracles.

        Returns stage, ``P(stage | diameter, N, M)``, ``P(stage | diameter)`` and
        ``E[z_r | diameter]`` (:func:`~oncoflow.demo._tnm.stage_posteriors`). A patient that
        a rebalance moves to another stage gets the N and M of that stage (``n_category`` /
        ``m_category`` in its latents, which the rendering reads).
        """
        lat = [p.latent for p in patients]
        diameter = np.array([major_diameter(v) for v in lat])
        n_cat, m_cat = (np.array(c) for c in zip(*(tnm(v) for v in lat), strict=True))
        tabular_post, mean_z_r = stage_posteriors(reported)
        stage = stage_group(diameter, n_cat, m_cat)
        final = self.rebalance_secondary(patients, stage, tabular_post, splits)
        for i in np.flatnonzero(final != stage):
            n_cat[i], m_cat[i] = _categories_for(int(final[i]), diameter[i], n_cat[i], m_cat[i])
            lat[i]["n_category"], lat[i]["m_category"] = int(n_cat[i]), int(m_cat[i])
        post, _ = stage_posteriors(reported, n_cat, m_cat)
        return stage_group(diameter, n_cat, m_cat), post, tabular_post, mean_z_r

    @staticmethod
    def _diameter(latent: dict[str, Any]) -> float:
        """Clinically reported largest diameter (mm): major axis + measurement error."""
        major = 2.0 * latent["radius"] * latent["elongation"] ** (2.0 / 3.0)
        return max(major + latent["diameter_noise"], 3.0)

    def arrays(
        self, patient: Patient, rng: np.random.Generator
    ) -> tuple[Grid, Scene, np.ndarray, np.ndarray, np.ndarray]:
        """The patient's grid, scene, CT (HU), PET (SUV) and label map (1 lung, 2 lesion).

        Draws from ``rng`` (the patient's ``pixels`` stream) in the order :meth:`render` does,
        so ``benchmarks/nsclc_foci_detection.py`` sees the images of the rendered cohort; the
        lung label holds the contralateral metastasis (M1) too.
        """
        lat = patient.latent
        grid, scene = chest_scene(rng, lat, patient.site, lobulation=0.15)
        foci, nodule = metastatic_foci(grid, scene, lat, rng)
        ct = apply_ct_scanner(
            ct_true_hu(scene, "venous", texture_hu=8.0 + 50.0 * lat["texture"]),
            grid,
            patient.site,
            rng,
        )
        suv = pet_suv(scene, lat, patient.site, rng, foci)
        mask = np.zeros(grid.shape, dtype=np.uint8)
        mask[(scene.tissue == LUNG) | (scene.tissue == VESSEL) | nodule] = 1
        mask[(scene.tissue == LESION) | (scene.tissue == NECROSIS)] = 2
        return grid, scene, ct, suv, mask

    def render(self, patient: Patient, specs: list[ImageSpec], study_dir: Path) -> dict[str, float]:
        """Render CT, PET and the lung/lesion labels (NIfTI, or DICOM + RTSTRUCT).

        Returns:
            ``p_observable``: :func:`observable_lusc_probability` of the rendered CT.
        """
        lat = patient.latent
        rng = self.rng(patient.index, "pixels")
        grid, scene, ct, suv, mask = self.arrays(patient, rng)
        spacing = (grid.spacing[2], grid.spacing[1], grid.spacing[0])
        seen = {
            "p_observable": observable_lusc_probability(
                ct, lesion_core(scene.tissue), lat, patient.site, spacing
            )
        }
        ct_spec, pet_spec = specs
        if not patient.dicom:
            write_nifti(study_dir / ct_spec.path, ct, grid)
            stored = np.rint(suv * 100.0).astype(np.int16)
            write_nifti(study_dir / pet_spec.path, stored, grid, scale=0.01)
            write_nifti(study_dir / str(ct_spec.mask_path), mask, grid)
            return seen
        from oncoflow.demo.dicomwrite import write_ct_series, write_pet_series, write_rtstruct

        phi, dseed = self.dicom_identity(patient)
        ct_dir = study_dir / ct_spec.path
        write_ct_series(
            to_sitk(ct, grid), ct_dir, phi=phi, seed=dseed, series_description="CT chest"
        )
        injection_min = 9 * 60 + int(rng.integers(0, 90))
        scan_min = injection_min + lat["uptake_min"]
        write_pet_series(
            to_sitk(suv, grid),
            study_dir / pet_spec.path,
            phi=phi,
            seed=dseed,
            weight_kg=round(lat["weight_kg"], 1),
            injected_dose_bq=round(lat["dose_mbq"], 1) * 1e6,
            injection_time=f"{injection_min // 60:02d}{injection_min % 60:02d}00.00",
            series_time=f"{scan_min // 60:02d}{scan_min % 60:02d}00.00",
        )
        write_rtstruct(
            to_sitk(mask, grid),
            ct_dir,
            study_dir / str(ct_spec.mask_path),
            roi_names={1: "Lung", 2: "GTV"},
            phi=phi,
            seed=dseed,
        )
        return seen

    def observed_oracle(
        self, tables: StudyTables, rendered: dict[str, dict[str, float] | None]
    ) -> dict[str, dict[str, Any]]:
        """Histology: AUC of ``p_observable`` on the test patients; the latent AUC kept."""
        splits = tables.splits.set_index("patient_id")["split"]
        outcomes = tables.outcomes.set_index("patient_id")
        test = [p for p in splits.index if splits[p] != "train"]
        y = (outcomes.loc[test, "histology"] == "LUSC").to_numpy(int)
        seen = np.array([(rendered[p] or {})["p_observable"] for p in test])
        entry = oracle_entry("auc", safe_auc(y, seen))
        entry["value_tabular"] = tables.oracle["histology"]["value_tabular"]
        entry["value_latent"] = tables.oracle["histology"]["value"]
        return {"histology": entry}


def _survival_oracle(
    time: np.ndarray, event: np.ndarray, eta: np.ndarray, eta_tabular: np.ndarray
) -> dict[str, Any]:
    """Harrell's C of ``eta`` (``value``) and of ``E[eta | tables, mask size]`` (tabular)."""
    entry = oracle_entry("c_index", safe_concordance_index(time, event, eta))
    entry["value_tabular"] = round(safe_concordance_index(time, event, eta_tabular), 4)
    return entry


def _treatment(stage: int) -> str:
    """Main treatment by stage (I-II surgery, III chemoradiotherapy, IV immunotherapy)."""
    return ("surgery", "surgery", "chemoradiotherapy", "immunotherapy")[stage]
