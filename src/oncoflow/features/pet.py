"""PET metrics of one ROI: SUVmax, SUVmean, SUVpeak, MTV and TLG.

Definitions (``S`` = SUV image in g/mL, i.e. SUVbw; ``R`` = ROI voxels, the mask voxels with the
requested label or, with no label, every non-zero mask voxel; ``v`` = voxel volume in mm³ =
product of the spacing):

* ``SUVmax = max_{x in R} S(x)`` (unitless, SUV).
* Metabolic volume ``M``: ``R`` itself, or ``{x in R : S(x) >= t}`` with an absolute threshold
  ``t`` (SUV, e.g. 2.5) or a relative one ``t = f * SUVmax`` (e.g. ``f = 0.41``).
* ``SUVmean = mean_{x in M} S(x)`` (SUV).
* ``MTV = |M| * v / 1000`` (mL). A voxel belongs to the mask as a whole, so for a sphere of
  radius ``R`` drawn by voxel centres the MTV lies between ``4/3 pi (R - h)³`` and
  ``4/3 pi (R + h)³`` with ``h`` = half the voxel diagonal (in practice within ~2 % for
  ``R`` = 10 voxels).
* ``TLG = SUVmean * MTV`` (SUV·mL, i.e. g when SUV is in g/mL).
* ``SUVpeak``: the mean SUV in a sphere of 1 cm³ (radius ``r = (3 / (4 pi))^(1/3) cm =
  6.2035 mm``) centred on the centre of the hottest ROI voxel, computed in mm with the voxel
  spacing. The sphere is not restricted to the ROI (as in PERCIST). Partial voxels count with
  the fraction of their volume inside the sphere: voxels entirely inside weigh 1, entirely
  outside 0, and a voxel the sphere surface cuts weighs the fraction of
  :data:`PEAK_SUBSAMPLES`³ regularly placed sub-voxel points that lie inside (an error of
  order 1/PEAK_SUBSAMPLES per cut voxel; the weights of the sphere sum to 1 cm³ within 0.5 %
  for spacings from 0.9 to 5 mm, see the tests).
  ``SUVpeak = sum_i w_i S_i / sum_i w_i`` over voxels in the image (a sphere that leaves the
  image is renormalised over its inside part). When several ROI voxels share SUVmax, the
  sphere goes to the one giving the largest SUVpeak, so the result does not depend on the
  voxel order (a large uniform hot sphere therefore has SUVpeak = its SUV).

If a threshold leaves no voxel (``t > SUVmax``) the metabolic volume is empty: ``MTV = 0``,
``TLG = 0`` and ``SUVmean`` is NaN (a warning is logged).

Avid foci outside the ROI (optional, ``foci``; what TNM's N and M read on PET): the connected
components (faces shared) of ``{x : S(x) >= t_f, dist(x, R) > margin}`` with a volume between
``min_ml`` and ``max_ml`` mL (smaller: noise; larger: physiological uptake of a whole organ).
Each focus is assigned to the mask label at its hottest voxel. ``FociOutside`` counts the foci
outside every label (in a chest mask of lung + tumour: nodes and other extrapulmonary foci);
``FociLabel<k>`` those inside label ``k`` (e.g. ``FociLabel1``: nodules inside the lung
contour). Defaults: ``t_f`` = 2.5 SUV, margin 10 mm (the ROI's own spill-out through the PET
PSF), 0.3-30 mL. Myocardial uptake above ``t_f`` counts as a focus when it is smaller than
``max_ml``; a cohort without suppressed myocardium needs a heart label in the mask.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage

from oncoflow.errors import FeatureError
from oncoflow.features.radiomics import check_geometry, read_image

log = logging.getLogger(__name__)

PEAK_VOLUME_ML = 1.0
"""Volume of the SUVpeak sphere (mL = cm³)."""

PEAK_RADIUS_MM = 10.0 * (3.0 * PEAK_VOLUME_ML / (4.0 * math.pi)) ** (1.0 / 3.0)
"""Radius of a 1 cm³ sphere in mm (6.2035 mm)."""

PEAK_SUBSAMPLES = 10
"""Sub-voxel points per axis used for the volume fraction of voxels cut by the peak sphere."""

METRIC_UNITS: dict[str, str] = {
    "SUVmax": "g/mL",
    "SUVmean": "g/mL",
    "SUVpeak": "g/mL",
    "MTV": "mL",
    "TLG": "g",
}
"""The metrics returned by :func:`pet_metrics`, in order, with their units (SUVbw in g/mL)."""

FOCI_DEFAULTS: dict[str, float] = {
    "threshold": 2.5,
    "margin_mm": 10.0,
    "min_ml": 0.3,
    "max_ml": 30.0,
}
"""Settings of :func:`avid_foci` (SUV, mm, mL, mL)."""

METHOD_VERSION = "oncoflow-pet-v1"
"""Changes whenever a definition above changes; part of the settings hash."""


def sphere_weights(spacing_zyx: tuple[float, float, float], radius_mm: float) -> np.ndarray:
    """Fraction of each voxel of a neighbourhood that lies inside a sphere around its centre voxel.

    Args:
        spacing_zyx: Voxel spacing in mm in array order (z, y, x).
        radius_mm: Sphere radius in mm; the sphere is centred on the centre of the middle voxel.

    Returns:
        Array of shape ``(2 hz + 1, 2 hy + 1, 2 hx + 1)`` with values in [0, 1]; its sum times
        the voxel volume approximates ``4/3 pi radius³``.
    """
    sp = np.asarray(spacing_zyx, dtype=np.float64)
    half = np.ceil(radius_mm / sp + 0.5).astype(int)
    axes = [np.arange(-h, h + 1) * s for h, s in zip(half, sp, strict=True)]
    cz, cy, cx = np.meshgrid(*axes, indexing="ij")
    # nearest and farthest point of each voxel box from the sphere centre
    near = [np.maximum(np.abs(c) - s / 2, 0.0) for c, s in zip((cz, cy, cx), sp, strict=True)]
    far = [np.abs(c) + s / 2 for c, s in zip((cz, cy, cx), sp, strict=True)]
    r2 = radius_mm**2
    weights = np.zeros(cz.shape, dtype=np.float64)
    weights[sum(f**2 for f in far) <= r2] = 1.0
    cut = (sum(n**2 for n in near) < r2) & (weights == 0.0)
    n = PEAK_SUBSAMPLES
    sub = (np.arange(n) + 0.5) / n - 0.5
    sz, sy, sx = np.meshgrid(sub * sp[0], sub * sp[1], sub * sp[2], indexing="ij")
    for idx in zip(*np.nonzero(cut), strict=True):
        d2 = (cz[idx] + sz) ** 2 + (cy[idx] + sy) ** 2 + (cx[idx] + sx) ** 2
        weights[idx] = np.count_nonzero(d2 <= r2) / n**3
    return weights


def _roi(mask: np.ndarray, label: int | None) -> np.ndarray:
    return mask > 0 if label is None else mask == label


def _suv_peak(suv: np.ndarray, roi: np.ndarray, suv_max: float, spacing_zyx: tuple) -> float:
    """SUVpeak: largest 1 cm³ sphere mean among the ROI voxels that reach SUVmax."""
    kernel = sphere_weights(spacing_zyx, PEAK_RADIUS_MM)
    half = np.array(kernel.shape) // 2
    hot = np.argwhere(roi & (suv == suv_max))
    lo = np.maximum(hot.min(axis=0) - half, 0)
    hi = np.minimum(hot.max(axis=0) + half + 1, suv.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    num = ndimage.correlate(suv[box], kernel, mode="constant", cval=0.0)
    den = ndimage.correlate(np.ones(num.shape), kernel, mode="constant", cval=0.0)
    local = tuple((hot - lo).T)
    return float(np.max(num[local] / den[local]))


def avid_foci(
    suv: np.ndarray,
    mask: np.ndarray,
    roi: np.ndarray,
    spacing_zyx: tuple[float, ...],
    *,
    threshold: float = FOCI_DEFAULTS["threshold"],
    margin_mm: float = FOCI_DEFAULTS["margin_mm"],
    min_ml: float = FOCI_DEFAULTS["min_ml"],
    max_ml: float = FOCI_DEFAULTS["max_ml"],
) -> list[dict[str, float]]:
    """Avid foci outside the ROI (module docstring), hottest first.

    Args:
        suv: SUV array (z, y, x), g/mL.
        mask: Label map on the same grid.
        roi: Boolean ROI (the primary tumour).
        spacing_zyx: Voxel spacing along the array axes, mm.
        threshold: SUV a focus voxel reaches.
        margin_mm: Voxels within this distance of the ROI are left out.
        min_ml: Smallest focus kept, mL.
        max_ml: Largest focus kept, mL.

    Returns:
        Per focus: ``label`` (mask label at its hottest voxel, 0 = none), ``suv_max`` (g/mL)
        and ``volume_ml``.
    """
    away = ndimage.distance_transform_edt(~roi, sampling=spacing_zyx) > margin_mm
    components, count = ndimage.label((suv >= threshold) & away)
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    foci = []
    for index in range(1, count + 1):
        where = np.flatnonzero(components.ravel() == index)
        volume = len(where) * voxel_ml
        if not min_ml <= volume <= max_ml:
            continue
        hottest = where[np.argmax(suv.ravel()[where])]
        foci.append(
            {
                "label": float(mask.ravel()[hottest]),
                "suv_max": float(suv.ravel()[hottest]),
                "volume_ml": volume,
            }
        )
    return sorted(foci, key=lambda focus: -focus["suv_max"])


def foci_counts(foci: list[dict[str, float]], labels: list[int]) -> dict[str, float]:
    """``FociOutside`` (label 0) and ``FociLabel<k>`` for each of ``labels``: numbers of foci."""
    out = {"FociOutside": float(sum(f["label"] == 0 for f in foci))}
    for label in labels:
        out[f"FociLabel{label}"] = float(sum(f["label"] == label for f in foci))
    return out


def pet_metrics(
    suv: sitk.Image,
    mask: sitk.Image,
    *,
    label: int | None = None,
    threshold: float | None = None,
    relative_threshold: float | None = None,
    foci: dict[str, Any] | None = None,
) -> dict[str, float]:
    """SUVmax, SUVmean, SUVpeak, MTV and TLG of one ROI (definitions in the module docstring).

    Args:
        suv: PET image in SUV (g/mL); any pixel type, read as float64.
        mask: Label map on the same voxel grid as ``suv``.
        label: ROI label; ``None`` = every non-zero mask voxel.
        threshold: Absolute SUV threshold for the metabolic volume (voxels ``>= threshold``).
        relative_threshold: Threshold as a fraction of SUVmax in (0, 1], e.g. 0.41.
        foci: Also count the avid foci outside the ROI (:func:`avid_foci`): ``labels`` (the
            mask labels counted apart, e.g. ``[1]`` the lung) and any of
            :data:`FOCI_DEFAULTS`.

    Returns:
        ``{"SUVmax", "SUVmean", "SUVpeak", "MTV", "TLG"}`` as floats: SUV values in g/mL, MTV
        in mL, TLG in g (SUV·mL); with ``foci``, :func:`foci_counts` too.

    Raises:
        FeatureError: Both thresholds given, a relative threshold outside (0, 1], a grid
            mismatch or an empty ROI.
    """
    if threshold is not None and relative_threshold is not None:
        raise FeatureError("give either an absolute or a relative SUV threshold, not both")
    if relative_threshold is not None and not 0.0 < relative_threshold <= 1.0:
        raise FeatureError(f"relative SUV threshold must be in (0, 1], got {relative_threshold}")
    check_geometry(suv, mask, image_path="SUV image", mask_path="(in memory)")
    s = sitk.GetArrayFromImage(suv).astype(np.float64, copy=False)
    roi = _roi(sitk.GetArrayViewFromImage(mask), label)
    if not roi.any():
        what = "any non-zero label" if label is None else f"label {label}"
        raise FeatureError(f"mask has no voxel with {what}: no PET metrics")
    spacing_zyx = tuple(float(v) for v in reversed(suv.GetSpacing()))
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    suv_max = float(s[roi].max())
    if threshold is not None:
        metabolic = roi & (s >= threshold)
    elif relative_threshold is not None:
        metabolic = roi & (s >= relative_threshold * suv_max)
    else:
        metabolic = roi
    n = int(np.count_nonzero(metabolic))
    mtv = n * voxel_ml
    if n == 0:
        log.warning(
            "SUV threshold %s above SUVmax %.4g: empty metabolic volume", threshold, suv_max
        )
        suv_mean, tlg = math.nan, 0.0
    else:
        suv_mean = float(s[metabolic].mean())
        tlg = suv_mean * mtv
    metrics = {
        "SUVmax": suv_max,
        "SUVmean": suv_mean,
        "SUVpeak": _suv_peak(s, roi, suv_max, spacing_zyx),
        "MTV": mtv,
        "TLG": tlg,
    }
    if foci is not None:
        settings = {k: float(v) for k, v in foci.items() if k != "labels"}
        found = avid_foci(s, sitk.GetArrayViewFromImage(mask), roi, spacing_zyx, **settings)
        metrics |= foci_counts(found, [int(v) for v in foci.get("labels", [])])
    return metrics


def pet_settings_hash(
    *,
    label: int | None = None,
    threshold: float | None = None,
    relative_threshold: float | None = None,
    foci: dict[str, Any] | None = None,
) -> str:
    """Settings hash of a PET-metrics run: sha256 of the canonical JSON settings, 16 hex digits."""
    settings: dict[str, Any] = {
        "method": METHOD_VERSION,
        "label": label,
        "threshold": threshold,
        "relative_threshold": relative_threshold,
        "peak_radius_mm": PEAK_RADIUS_MM,
        "peak_subsamples": PEAK_SUBSAMPLES,
    }
    if foci is not None:  # runs without foci keep the hash they always had
        settings["foci"] = {**FOCI_DEFAULTS, **foci}
    blob = json.dumps(settings, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def pet_metrics_table(
    pet: Path,
    mask: Path,
    *,
    label: int | None = None,
    threshold: float | None = None,
    relative_threshold: float | None = None,
    foci: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """PET metrics of one ROI read from files, as a tidy table like the radiomics one.

    Args:
        pet: SUV image file (NIfTI, SUVbw in g/mL).
        mask: Label map file on the PET grid.
        label: ROI label; ``None`` = every non-zero mask voxel.
        threshold: Absolute SUV threshold for MTV / SUVmean / TLG.
        relative_threshold: Threshold as a fraction of SUVmax.
        foci: Count the avid foci outside the ROI too (:func:`pet_metrics`).

    Returns:
        One row per metric: ``feature`` (SUVmax, SUVmean, SUVpeak, MTV, TLG[, foci]), ``value``,
        ``unit``, ``label``, ``threshold``, ``relative_threshold``, ``settings_hash``.

    Raises:
        FeatureError: As :func:`pet_metrics`, naming the PET and mask files.
    """
    pet, mask = Path(pet), Path(mask)
    suv = read_image(pet, what="PET")
    msk = read_image(mask, what="mask")
    check_geometry(suv, msk, image_path=pet, mask_path=mask)
    try:
        metrics = pet_metrics(
            suv,
            msk,
            label=label,
            threshold=threshold,
            relative_threshold=relative_threshold,
            foci=foci,
        )
    except FeatureError as exc:
        raise FeatureError(f"{pet}: mask {mask}: {exc}") from exc
    return pd.DataFrame(
        {
            "feature": list(metrics),
            "value": np.array(list(metrics.values()), dtype=np.float64),
            "unit": [METRIC_UNITS.get(k, "count") for k in metrics],
            "label": pd.array([label] * len(metrics), dtype="Int64"),
            "threshold": threshold,
            "relative_threshold": relative_threshold,
            "settings_hash": pet_settings_hash(
                label=label, threshold=threshold, relative_threshold=relative_threshold, foci=foci
            ),
        }
    )
