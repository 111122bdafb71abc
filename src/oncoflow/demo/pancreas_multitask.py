"""Demo study ``pancreas_multitask``: venous CT, pancreas + lesion labels, lesion subtype 0/1/2.

Images: one venous-phase abdominal CT at time point 0 with labels 1 = pancreas, 2 = lesion, on a
pancreas-centred field of view (88 x 48 x 32 voxels, 2 mm in-plane, half the site's slices).
Every fourth patient (index 1, 5, 9, ...) is written as a DICOM CT series plus an RTSTRUCT with
ROIs ``Pancreas`` and ``Lesion`` (``mask_roi = "Pancreas+Lesion"``) and distinct fake PHI.

Planted mechanism (class first, then appearance): ``subtype ~ Categorical(0.25, 0.42, 0.33)``;
given the subtype ``k`` three lesion descriptors are independent Gaussians

===========================  ======  ======  ======  =====
descriptor                   k = 0   k = 1   k = 2   sd
===========================  ======  ======  ======  =====
HU shift vs. venous - 30     +10     -12     -32     14
texture heterogeneity h      0.2     0.5     0.8     0.22
elongation (axis ratio)      1.05    1.45    1.85    0.30
===========================  ======  ======  ======  =====

(texture: lesion HU sd = 6 + 28 h; elongation keeps the volume; lesion radius ``U(7, 18)`` mm
does not depend on the subtype). The Bayes rule ``argmax_k prior_k prod_j N(x_j; m_kj, sd_j)``
is the best possible classifier; oracle: the macro one-vs-rest AUC of its posterior on
internal_test + external_test (the report's multi-class metric); ``value_macro_f1`` is the
macro-F1 of the macro-F1-optimal rule ``argmax_k w_k P(k | x)`` (:func:`macro_f1_rule`). No
segmentation oracle is written (the given masks are exact, so Dice 1.0 says nothing).

``value_pixels`` (macro AUC) and ``value_pixels_macro_f1`` (the same rule) score, on the same
test rows, what the rendered CT shows of the descriptors (:func:`pixel_posterior`): an observer
who knows the mechanism and the site's scanner reads the lesion's shift and texture from the
voxels of its core (the lesion eroded by one voxel) through the scanner's gain, PSF and noise,
and its shape exactly. The scanner's noise and PSF hide part of the texture, more at a noisier,
blurrier site; the rim voxels are left out, so it is not an upper bound of what the whole image
allows, only of what its lesion core does.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.demo._base import ImageSpec, Patient, StudyGenerator, StudyTables
from oncoflow.demo._common import (
    SCANNERS,
    Grid,
    apply_ct_scanner,
    make_grid,
    random_rotation,
    scanner_blur,
    to_sitk,
    write_nifti,
)
from oncoflow.demo._oracle import lesion_core, lesion_log_likelihood, oracle_entry
from oncoflow.demo._phantoms import LESION, Scene, ct_true_hu, pancreas_scene
from oncoflow.metrics.classification import macro_auc, macro_f1
from oncoflow.metrics.decision import macro_f1_weights, weighted_argmax

GRID_SIZE = (88, 48, 32)
"""Voxels (x, y, z) of the pancreas-centred field of view: 176 x 96 x 80 mm at site_a."""
INPLANE_MM = 2.0
"""In-plane spacing before the site's scanner scale (mm); slices are half the site's thickness."""
FOV_CENTRE_MM = (17.5, -2.0, -3.0)
"""Centre of the pancreas (head to tail) in phantom mm, before the patient's size and shift."""
LESION_OFFSET_HU = -30.0
"""Attenuation of this study's lesions below the shared venous lesion value (72 HU), before the
subtype's shift: lesions 53 / 75 / 95 HU below the pancreas on average (subtypes 0 / 1 / 2),
conspicuous enough for a CPU-budget nnU-Net to segment them (at 72 HU the lesion Dice of the
demo schedule stayed at 0 for 600 iterations). The same for every patient, so no class signal."""
FOV_JITTER_MM = (4.0, 4.0, 3.0)
"""Positioning error of the targeted field of view (uniform, +-mm per axis)."""
PRIORS = np.array([0.25, 0.42, 0.33])
MEANS = np.array([[10.0, 0.2, 1.05], [-12.0, 0.5, 1.45], [-32.0, 0.8, 1.85]])
SDS = np.array([14.0, 0.22, 0.30])
TEXTURE_RANGE = (0.0, 1.2)
"""The texture latent ``h`` is clipped to this range; elongation to :data:`ELONGATION_RANGE`."""
ELONGATION_RANGE = (1.0, 2.6)
H_PIXELS = np.linspace(*TEXTURE_RANGE, 121)
"""Grid of ``h`` on which :func:`pixel_posterior` integrates the texture."""


@lru_cache(maxsize=1)
def macro_f1_rule(draws: int = 60_000) -> tuple[float, ...]:
    """Class weights of the macro-F1-optimal rule ``argmax_k w_k P(k | x)`` of the mechanism.

    Fitted (:func:`~oncoflow.metrics.decision.macro_f1_weights`) on ``draws`` patients drawn
    from the generating mechanism with a fixed seed, never on a cohort: a property of the
    mechanism, the same for every demo seed.
    """
    rng = np.random.default_rng(24)
    subtype = rng.choice(3, size=draws, p=PRIORS)
    desc = rng.normal(MEANS[subtype], SDS)
    return tuple(float(w) for w in macro_f1_weights(subtype, subtype_posterior(desc)))


def subtype_posterior(descriptors: np.ndarray) -> np.ndarray:
    """Return P(subtype = k | HU shift, texture, elongation) for (n, 3) descriptors -> (n, 3)."""
    x = np.atleast_2d(descriptors)
    log_lik = -0.5 * (((x[:, None, :] - MEANS[None, :, :]) / SDS[None, None, :]) ** 2).sum(-1)
    log_post = log_lik + np.log(PRIORS)[None, :]
    log_post -= log_post.max(axis=1, keepdims=True)
    post = np.exp(log_post)
    return post / post.sum(axis=1, keepdims=True)


def clipped_normal_log_weights(grid: np.ndarray, means: np.ndarray, sd: float) -> np.ndarray:
    """``log P(x in bin_i | k)`` of ``clip(N(m_k, sd^2))`` on an even grid -> ``(bins, classes)``.

    Bin ``i`` runs between the midpoints around ``grid[i]``; the first and last bins reach to
    minus and plus infinity, so they hold the clipped tails.
    """
    from scipy.stats import norm

    edges = np.concatenate([[-np.inf], (grid[1:] + grid[:-1]) / 2.0, [np.inf]])
    cdf = norm.cdf((edges[:, None] - np.asarray(means)[None, :]) / sd)
    return np.log(np.clip(np.diff(cdf, axis=0), 1e-300, None))


def clipped_normal_log_density(
    x: float, means: np.ndarray, sd: float, bounds: tuple[float, float]
) -> np.ndarray:
    """``log p(x | k)`` of ``clip(N(m_k, sd^2), *bounds)``: tail mass at a bound, else the pdf."""
    from scipy.stats import norm

    z = (float(x) - np.asarray(means)) / sd
    if x <= bounds[0]:
        return norm.logcdf(z)
    if x >= bounds[1]:
        return norm.logsf(z)
    return norm.logpdf(z) - np.log(sd)


def pixel_posterior(scene: Scene, grid: Grid, image: np.ndarray, site: str, elongation: float):
    """``P(subtype | lesion-core voxels, shape)`` of one rendered CT (module docstring) -> ``(3,)``.

    ``log P(k | .) = log prior_k + log sum_h P(h | k) p(core | a(h), k) + log p(e | k)`` with
    ``a(h) = 6 + 28 h`` HU, the lesion's HU shift integrated out in
    :func:`~oncoflow.demo._oracle.lesion_log_likelihood` and the elongation ``e`` read exactly.

    Args:
        scene: The patient's scene (tissues, lesion).
        grid: Its image grid.
        image: The rendered CT (z, y, x), HU.
        site: The scanner site.
        elongation: The lesion's elongation (its clipped latent).
    """
    from scipy.special import logsumexp

    sc = SCANNERS[site]
    spacing = (grid.spacing[2], grid.spacing[1], grid.spacing[0])
    base = ct_true_hu(scene, "venous", lesion_shift_hu=LESION_OFFSET_HU)
    expected = scanner_blur(sc.ct_gain * base + sc.ct_offset_hu, grid, sc.blur_mm)
    slope = sc.ct_gain * scanner_blur((scene.tissue == LESION).astype(float), grid, sc.blur_mm)
    log_lik = lesion_log_likelihood(
        image, lesion_core(scene.tissue), site, spacing, 6.0 + 28.0 * H_PIXELS,
        expected, slope, MEANS[:, 0], float(SDS[0]),
    )  # fmt: skip
    texture = logsumexp(log_lik + clipped_normal_log_weights(H_PIXELS, MEANS[:, 1], SDS[1]), 0)
    shape = clipped_normal_log_density(elongation, MEANS[:, 2], SDS[2], ELONGATION_RANGE)
    log_post = np.log(PRIORS) + texture + shape
    return np.exp(log_post - logsumexp(log_post))


def fov_centre(latent: dict[str, Any]) -> tuple[float, float, float]:
    """Centre of the pancreas-centred field of view of one patient (phantom mm).

    A targeted reconstruction around the pancreas, as the reference dataset's crops are: the
    pancreas axis spans about 150 mm head to tail, so 176 mm in x keeps it whole for most
    patients; the lesion is 3.5-9 voxels in radius at 2 mm in-plane.
    """
    s = latent["body_scale"]
    shift = latent["pancreas_shift"]
    return (
        FOV_CENTRE_MM[0] * s + shift[0],
        FOV_CENTRE_MM[1] * s + shift[1],
        FOV_CENTRE_MM[2] + shift[2],
    )


class PancreasMultitask(StudyGenerator):
    """Generator of the ``pancreas_multitask`` demo cohort (see the module docstring)."""

    name = "pancreas_multitask"
    prefix = "PM"
    has_dicom = True

    def draw_latent(self, rng: np.random.Generator, site: str) -> dict[str, Any]:
        """Draw the subtype, its appearance descriptors and the anatomy."""
        subtype = int(rng.choice(3, p=PRIORS))
        desc = rng.normal(MEANS[subtype], SDS)
        return {
            "subtype": subtype,
            "hu_shift": float(desc[0]),
            "texture": float(np.clip(desc[1], *TEXTURE_RANGE)),
            "elongation": float(np.clip(desc[2], *ELONGATION_RANGE)),
            "descriptors": tuple(float(v) for v in desc),
            "radius": float(rng.uniform(7, 18)),
            "age": float(np.clip(rng.normal(64, 10), 30, 90)),
            "sex": "M" if rng.random() < 0.5 else "F",
            "body_scale": float(rng.uniform(0.9, 1.1)),
            "pancreas_shift": tuple(float(v) for v in rng.normal(0, [4.0, 4.0, 3.0])),
            "lesion_frac": float(rng.uniform(0.1, 0.8)),
            "rotation": tuple(tuple(float(v) for v in row) for row in random_rotation(rng)),
        }

    def image_specs(self, patient: Patient) -> list[ImageSpec]:
        """One venous CT (NIfTI + label map, or DICOM + RTSTRUCT)."""
        folder = f"images/{patient.patient_id}/tp0"
        if patient.dicom:
            spec = ImageSpec(
                timepoint=0,
                modality="CT",
                series="venous",
                path=f"{folder}/CT_venous_dicom",
                mask_path=f"{folder}/rtstruct.dcm",
                mask_roi="Pancreas+Lesion",
                dicom=True,
            )
        else:
            spec = ImageSpec(
                timepoint=0,
                modality="CT",
                series="venous",
                path=f"{folder}/CT_venous.nii.gz",
                mask_path=f"{folder}/mask.nii.gz",
            )
        return [spec]

    def tables(self, patients: list[Patient]) -> StudyTables:
        """Age/sex, subtype, splits and the oracle (macro AUC of the Bayes posterior)."""
        clinical = pd.DataFrame(
            {
                "patient_id": [p.patient_id for p in patients],
                "age": [round(p.latent["age"]) for p in patients],
                "sex": [p.latent["sex"] for p in patients],
            }
        )
        post = subtype_posterior(np.array([p.latent["descriptors"] for p in patients]))
        strata = np.array([p.latent["subtype"] for p in patients])
        final, splits = self.assign_splits(patients, strata, post)
        outcomes = pd.DataFrame(
            {"patient_id": [p.patient_id for p in patients], "subtype": final.astype(int)}
        )
        test = self.test_mask(splits)
        oracle = {"subtype": oracle_entry("macro_auc", macro_auc(final[test], post[test]))}
        best_f1 = macro_f1(final[test], weighted_argmax(post[test], macro_f1_rule()))
        oracle["subtype"]["value_macro_f1"] = oracle_entry("macro_f1", best_f1)["value"]
        return StudyTables(clinical, outcomes, self.splits_frame(patients, splits), oracle)

    def render(self, patient: Patient, specs: list[ImageSpec], study_dir: Path) -> dict[str, float]:
        """Render the venous CT and its labels (NIfTI or DICOM + RTSTRUCT).

        Returns:
            ``p_pixels_<k>``: :func:`pixel_posterior` of the rendered CT.
        """
        lat = patient.latent
        rng = self.rng(patient.index, "pixels")
        scanner = SCANNERS[patient.site]
        grid = make_grid(
            rng,
            size=GRID_SIZE,
            inplane_mm=INPLANE_MM * scanner.inplane_scale,
            slice_mm=scanner.slice_mm / 2.0,
            fov_centre_mm=fov_centre(lat),
            jitter_mm=FOV_JITTER_MM,
        )
        scene, mask = pancreas_scene(grid, rng, lat, lat["radius"], lobulation=0.1)
        hu = ct_true_hu(
            scene,
            "venous",
            lesion_shift_hu=LESION_OFFSET_HU + lat["hu_shift"],
            texture_hu=6.0 + 28.0 * lat["texture"],
        )
        # a targeted reconstruction: the whole field of view lies inside the scanned circle
        image = apply_ct_scanner(hu, grid, patient.site, rng, circle=False)
        seen = pixel_posterior(scene, grid, image, patient.site, lat["elongation"])
        pixels = {f"p_pixels_{k}": float(v) for k, v in enumerate(seen)}
        spec = specs[0]
        if not spec.dicom:
            write_nifti(study_dir / spec.path, image, grid)
            write_nifti(study_dir / str(spec.mask_path), mask, grid)
            return pixels
        from oncoflow.demo.dicomwrite import write_ct_series, write_rtstruct

        phi, dseed = self.dicom_identity(patient)
        series_dir = study_dir / spec.path
        write_ct_series(
            to_sitk(image, grid), series_dir, phi=phi, seed=dseed, series_description="CT venous"
        )
        write_rtstruct(
            to_sitk(mask, grid),
            series_dir,
            study_dir / str(spec.mask_path),
            roi_names={1: "Pancreas", 2: "Lesion"},
            phi=phi,
            seed=dseed,
        )
        return pixels

    def observed_oracle(
        self, tables: StudyTables, rendered: dict[str, dict[str, float] | None]
    ) -> dict[str, dict[str, Any]]:
        """``value_pixels`` / ``value_pixels_macro_f1`` beside ``value`` (module docstring)."""
        splits = tables.splits.set_index("patient_id")["split"]
        rows = tables.outcomes[tables.outcomes["patient_id"].map(splits) != "train"]
        seen = np.array(
            [[(rendered[p] or {})[f"p_pixels_{k}"] for k in range(3)] for p in rows["patient_id"]]
        )
        y = rows["subtype"].astype(int).to_numpy()
        entry = dict(tables.oracle["subtype"])
        entry["value_pixels"] = oracle_entry("macro_auc", macro_auc(y, seen))["value"]
        f1 = macro_f1(y, weighted_argmax(seen, macro_f1_rule()))
        entry["value_pixels_macro_f1"] = oracle_entry("macro_f1", f1)["value"]
        return {"subtype": entry}
