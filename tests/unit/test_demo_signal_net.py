"""net_survival: the lesion texture latent is measurable in the CT, with a site batch effect."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oncoflow.demo._common import apply_ct_scanner
from oncoflow.demo._phantoms import LESION, NECROSIS, chest_scene, ct_true_hu
from oncoflow.demo.net_survival import TEXTURE_SHIFT_HU, NetSurvival, linear_predictor


@pytest.fixture(scope="module")
def lesions() -> pd.DataFrame:
    """Per patient of a 60-patient plan: site, latents and the lesion's median HU (CT only)."""
    gen = NetSurvival(seed=3, n_patients=60)
    rows = []
    for patient in gen.patients():
        lat = patient.latent
        rng = gen.rng(patient.index, "pixels")
        grid, scene = chest_scene(rng, lat, patient.site, lobulation=0.15)
        hu = ct_true_hu(
            scene,
            "venous",
            lesion_shift_hu=TEXTURE_SHIFT_HU * (lat["texture"] - 0.5),
            texture_hu=6.0 + 28.0 * lat["texture"],
        )
        image = apply_ct_scanner(hu, grid, patient.site, rng)
        mask = (scene.tissue == LESION) | (scene.tissue == NECROSIS)
        rows.append(
            {
                "site": patient.site,
                "texture": lat["texture"],
                "radius": lat["radius"],
                "eta": linear_predictor(lat),
                "median_hu": float(np.median(image[mask])),
                "voxels": int(mask.sum()),
            }
        )
    return pd.DataFrame(rows)


def _spearman(a: pd.Series, b: pd.Series) -> float:
    return float(a.rank().corr(b.rank()))


def test_texture_readable_within_each_site(lesions: pd.DataFrame) -> None:
    for site, group in lesions.groupby("site"):
        rho = _spearman(group["median_hu"], group["texture"])
        assert rho > 0.8, (site, rho)


def test_site_calibration_blurs_texture_across_sites(lesions: pd.DataFrame) -> None:
    pooled = _spearman(lesions["median_hu"], lesions["texture"])
    within = np.mean([_spearman(g["median_hu"], g["texture"]) for _, g in lesions.groupby("site")])
    assert 0.4 < pooled < within - 0.05


def test_lesion_size_follows_radius(lesions: pd.DataFrame) -> None:
    assert _spearman(lesions["voxels"], lesions["radius"]) > 0.9
    assert lesions["voxels"].min() >= 1
