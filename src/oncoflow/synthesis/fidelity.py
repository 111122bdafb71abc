"""Fidelity of synthetic CT against the real CT of held-out patients, inside the lung.

Per patient (the sample conditioned on that patient's own masks), over the lung + nodule voxels
of the real grid:

* MAE (HU) = mean |s - r|;
* PSNR (dB) = 20 log10(R / RMSE), R = the HU window width;
* SSIM of the window-scaled volumes over the lung's bounding box (scikit-image, 3D, Gaussian
  weights, sigma 1.5), as a map averaged over the lung voxels;
* HU histogram distance: 1-Wasserstein distance (HU) between the real and synthetic lung voxel
  values.

Over patients, the nodule's first-order and GLCM radiomics features (pyradiomics on the real and
on the synthetic CT, same mask) are compared as distributions: per feature the standardised mean
difference ``|mean_s - mean_r| / sd_r`` (``sd_r`` over the real nodules), averaged over features
(``radiomics_smd``; 0 = same means).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.synthesis.data import LUNG, NODULE

NODULE_FEATURES = {"firstorder": [], "glcm": []}
"""pyradiomics feature classes compared on the nodule (every feature of each class)."""


def patient_fidelity(
    synthetic: np.ndarray, real: np.ndarray, labels: np.ndarray, window: tuple[float, float]
) -> dict[str, float]:
    """MAE, PSNR, SSIM and histogram distance inside the lung of one patient (module docstring)."""
    from scipy.stats import wasserstein_distance
    from skimage.metrics import structural_similarity

    inside = np.isin(labels, (LUNG, NODULE))
    s, r = synthetic[inside].astype(float), real[inside].astype(float)
    lo, hi = window
    error = s - r
    rmse = float(np.sqrt(np.mean(error**2)))
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(inside))
    scaled = [(np.clip(v[box], lo, hi) - lo) / (hi - lo) for v in (synthetic, real)]
    small = min(scaled[0].shape)
    _, ssim_map = structural_similarity(
        scaled[0], scaled[1], data_range=1.0, full=True, gaussian_weights=True, sigma=1.5,
        win_size=min(7, small if small % 2 else small - 1),
    )  # fmt: skip
    return {
        "mae_hu": float(np.mean(np.abs(error))),
        "psnr_db": float(20 * np.log10((hi - lo) / rmse)) if rmse > 0 else float("inf"),
        "ssim": float(ssim_map[inside[box]].mean()),
        "hu_wasserstein": float(wasserstein_distance(s, r)),
    }


def nodule_features(volume: np.ndarray, labels: np.ndarray, affine: np.ndarray) -> dict[str, float]:
    """Pyradiomics first-order + GLCM features of the nodule (label 2) of one volume."""
    import SimpleITK as sitk
    from radiomics import featureextractor

    from oncoflow.features.radiomics import quiet_pyradiomics

    quiet_pyradiomics()
    spacing = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    image = sitk.GetImageFromArray(np.transpose(volume, (2, 1, 0)).astype(np.float32))
    mask = sitk.GetImageFromArray(np.transpose((labels == NODULE).astype(np.uint8), (2, 1, 0)))
    for item in (image, mask):
        item.SetSpacing(tuple(float(v) for v in spacing))
    extractor = featureextractor.RadiomicsFeatureExtractor(binWidth=25, label=1)
    extractor.disableAllFeatures()
    extractor.enableFeaturesByName(**NODULE_FEATURES)
    values = extractor.execute(image, mask)
    return {
        k: float(v)
        for k, v in values.items()
        if k.startswith("original_") and np.isfinite(float(v))
    }


def radiomics_distance(
    real: Sequence[Mapping[str, float]], synthetic: Sequence[Mapping[str, float]]
) -> float:
    """Mean standardised mean difference of the features over patients (module docstring)."""
    r, s = pd.DataFrame(list(real)), pd.DataFrame(list(synthetic))
    columns = [c for c in r.columns if c in s.columns]
    sd = r[columns].std(ddof=1)
    keep = [c for c in columns if sd[c] > 0]
    if not keep:
        return float("nan")
    return float(((s[keep].mean() - r[keep].mean()).abs() / sd[keep]).mean())


def summarize_fidelity(per_patient: pd.DataFrame, radiomics_smd: float) -> dict[str, Any]:
    """Mean and sd over patients of each per-patient metric, plus the radiomics distance."""
    metrics = [c for c in per_patient.columns if c != "patient_id"]
    return {
        "n_patients": len(per_patient),
        "metrics": {
            m: {"mean": float(per_patient[m].mean()), "sd": float(per_patient[m].std(ddof=1))}
            for m in metrics
        },
        "radiomics_smd": radiomics_smd,
        "per_patient": per_patient.round(6).to_dict(orient="records"),
    }
