"""Building blocks shared by the demo study generators.

Randomness: every patient draws from generators seeded by ``(seed, study, patient index,
stream)`` (:func:`patient_rng`), so a patient's latents, tables and pixels never depend on which
other patients exist or on the order they are written. The ``"latent"`` stream is the only one
:func:`oncoflow.demo.plan_cohort` touches; pixels use ``"pixels"``, survival/label draws
``"outcome"``.

Sites: patients are enrolled round-robin over :data:`SITES` (patient index ``i`` -> site
``SITES[i % 3]``); ``site_c`` is the external-test site. Each site is a scanner with its own
intensity transfer ``I_obs = gain * I_true + offset``, Gaussian blur (PSF) and noise level
(:class:`SiteScanner`), and its own slice geometry.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.schemas import columns

SITES: tuple[str, ...] = ("site_a", "site_b", "site_c")
"""Acquisition sites; ``site_c`` is held out as the external test set."""

EXTERNAL_SITE = "site_c"

_STREAMS: dict[str, int] = {"latent": 1, "outcome": 2, "pixels": 3, "dicom": 4, "split": 5}


@dataclass(frozen=True)
class SiteScanner:
    """Scanner / protocol of one site (the planted batch effect).

    Attributes:
        ct_offset_hu: Additive HU offset (calibration drift), ``HU_obs = gain * HU + offset``.
        ct_gain: Multiplicative HU gain around 0 HU.
        ct_noise_hu: Standard deviation of the (slightly correlated) CT noise, HU.
        blur_mm: Standard deviation of the Gaussian PSF applied in-plane and through-plane, mm
            (reconstruction kernel: larger = smoother texture).
        inplane_scale: Multiplier of the study's nominal in-plane spacing (reconstruction FOV).
        slice_mm: Slice spacing (mm) of CT / PET acquisitions.
        mr_gain: Multiplicative MR intensity scale (arbitrary units).
        mr_noise: MR noise level (arbitrary units, before the magnitude operation).
        pet_gain: PET calibration factor on SUV.
        pet_fwhm_mm: PET resolution (FWHM, mm).
        stain: RGB multipliers of the H&E optical densities (hematoxylin, eosin strength).
    """

    ct_offset_hu: float
    ct_gain: float
    ct_noise_hu: float
    blur_mm: float
    inplane_scale: float
    slice_mm: float
    mr_gain: float
    mr_noise: float
    pet_gain: float
    pet_fwhm_mm: float
    stain: tuple[float, float] = field(default=(1.0, 1.0))


SCANNERS: dict[str, SiteScanner] = {
    "site_a": SiteScanner(0.0, 1.00, 10.0, 0.6, 1.00, 5.0, 1.00, 9.0, 1.00, 6.0, (1.00, 1.00)),
    "site_b": SiteScanner(28.0, 1.06, 15.0, 1.2, 0.92, 4.0, 1.30, 13.0, 1.12, 7.5, (1.25, 0.85)),
    "site_c": SiteScanner(-22.0, 0.95, 20.0, 1.8, 1.08, 5.0, 0.80, 18.0, 0.90, 9.0, (0.80, 1.20)),
}
"""The three sites' scanners; the differences are the batch effect described in docs/demo.md."""


def site_of(index: int) -> str:
    """Return the site of patient ``index`` (round-robin enrolment)."""
    return SITES[index % len(SITES)]


def study_key(study: str) -> int:
    """Return a stable 32-bit integer for a study name (part of every seed)."""
    return zlib.crc32(study.encode("utf-8"))


def patient_rng(seed: int, study: str, index: int, stream: str) -> np.random.Generator:
    """Return the generator of one patient and one purpose.

    Args:
        seed: The cohort seed (``--seed``).
        study: Study name.
        index: Patient index (0-based).
        stream: ``"latent"``, ``"outcome"``, ``"pixels"``, ``"dicom"`` or ``"split"``.

    Returns:
        ``numpy.random.default_rng([seed, crc32(study), index, stream_id])``.
    """
    return np.random.default_rng([int(seed), study_key(study), int(index), _STREAMS[stream]])


def is_dicom_patient(index: int, n_patients: int) -> bool:
    """Return True for the patients written as DICOM (every 4th, from index 1; at least two)."""
    if n_patients < 6:
        return index in (0, 1)
    return index % 4 == 1


def logit_inv(x: np.ndarray | float) -> np.ndarray:
    """Logistic function ``1 / (1 + exp(-x))``."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


# --------------------------------------------------------------------------------------------------
# geometry and rendering


@dataclass(frozen=True)
class Grid:
    """An image grid in LPS patient coordinates (mm), identity direction (axial).

    Attributes:
        size: Voxels along (x, y, z).
        spacing: Voxel spacing along (x, y, z) in mm.
        origin: Physical position of voxel (0, 0, 0) in the world (scanner) frame, mm.
        centre: Position of the phantom's (0, 0, 0) in the world frame, mm (table position).
    """

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    centre: tuple[float, float, float]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (z, y, x)."""
        return (self.size[2], self.size[1], self.size[0])

    def coords(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return phantom coordinates (x, y, z) in mm of every voxel centre, as (z, y, x) arrays."""
        axes = [
            (self.origin[a] - self.centre[a]) + self.spacing[a] * np.arange(self.size[a])
            for a in range(3)
        ]
        z, y, x = np.meshgrid(
            axes[2].astype(np.float32),
            axes[1].astype(np.float32),
            axes[0].astype(np.float32),
            indexing="ij",
        )
        return x, y, z

    def affine_ras(self) -> np.ndarray:
        """Return the NIfTI (RAS) affine: LPS -> RAS flips the first two axes."""
        aff = np.diag([*self.spacing, 1.0])
        aff[:3, 3] = self.origin
        flip = np.diag([-1.0, -1.0, 1.0, 1.0])
        return flip @ aff


def make_grid(
    rng: np.random.Generator,
    *,
    size: tuple[int, int, int],
    inplane_mm: float,
    slice_mm: float,
    jitter_mm: tuple[float, float, float] = (8.0, 8.0, 10.0),
    table_mm: tuple[float, float, float] = (0.0, -150.0, -600.0),
    fov_centre_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> Grid:
    """Return a grid centred near ``fov_centre_mm`` (phantom mm) with a random positioning offset.

    The world frame puts the phantom's origin at ``table_mm + N(0, 20)`` (table position), so
    origins are realistic non-zero numbers, and the field of view is shifted by up to
    ``jitter_mm`` (patient positioning).
    """
    spacing = (float(inplane_mm), float(inplane_mm), float(slice_mm))
    centre = tuple(float(t + rng.normal(0.0, 20.0)) for t in table_mm)
    origin = tuple(
        round(
            centre[a]
            + fov_centre_mm[a]
            - 0.5 * (size[a] - 1) * spacing[a]
            + float(rng.uniform(-jitter_mm[a], jitter_mm[a])),
            3,
        )
        for a in range(3)
    )
    return Grid(size=size, spacing=spacing, origin=origin, centre=centre)  # type: ignore[arg-type]


def ellipsoid(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    centre: Sequence[float],
    semi: Sequence[float],
    rotation: np.ndarray | None = None,
) -> np.ndarray:
    """Return the squared normalised radius ``sum((R^T (p - c))_i^2 / a_i^2)`` (<= 1 inside)."""
    dx, dy, dz = x - centre[0], y - centre[1], z - centre[2]
    if rotation is not None:
        r = rotation
        dx, dy, dz = (
            r[0, 0] * dx + r[1, 0] * dy + r[2, 0] * dz,
            r[0, 1] * dx + r[1, 1] * dy + r[2, 1] * dz,
            r[0, 2] * dx + r[1, 2] * dy + r[2, 2] * dz,
        )
    return (dx / semi[0]) ** 2 + (dy / semi[1]) ** 2 + (dz / semi[2]) ** 2


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Return a uniformly random 3D rotation matrix (from a normalised Gaussian quaternion)."""
    w, x, y, z = rng.normal(size=4)
    n = float(np.sqrt(w * w + x * x + y * y + z * z)) or 1.0
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def tube_distance(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, points: np.ndarray, radii: np.ndarray
) -> np.ndarray:
    """Return ``distance to the polyline / local radius`` (<= 1 inside a tube of varying radius).

    Args:
        x: Phantom x coordinates (mm), any shape; ``y`` and ``z`` alike.
        y: Phantom y coordinates (mm).
        z: Phantom z coordinates (mm).
        points: (n, 3) polyline vertices (mm).
        radii: (n,) radius at each vertex (mm), linearly interpolated along each segment.
    """
    best = np.full(x.shape, np.inf, dtype=np.float32)
    for a, b, ra, rb in zip(points[:-1], points[1:], radii[:-1], radii[1:], strict=True):
        ab = b - a
        length2 = float(ab @ ab)
        t = ((x - a[0]) * ab[0] + (y - a[1]) * ab[1] + (z - a[2]) * ab[2]) / length2
        t = np.clip(t, 0.0, 1.0)
        d2 = (x - a[0] - t * ab[0]) ** 2 + (y - a[1] - t * ab[1]) ** 2 + (z - a[2] - t * ab[2]) ** 2
        rad = ra + t * (rb - ra)
        np.minimum(best, np.sqrt(d2) / rad, out=best)
    return best


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Return Gaussian-filtered white noise rescaled to unit standard deviation (float32)."""
    from scipy import ndimage  # imported here: planning a cohort must not pay for scipy

    field_ = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    sd = float(field_.std())
    return field_ / (sd if sd > 0 else 1.0)


def scanner_blur(image: np.ndarray, grid: Grid, blur_mm: float) -> np.ndarray:
    """Apply an isotropic Gaussian PSF of standard deviation ``blur_mm`` (mm) on the grid."""
    from scipy import ndimage

    sigma = [blur_mm / grid.spacing[2], blur_mm / grid.spacing[1], blur_mm / grid.spacing[0]]
    return ndimage.gaussian_filter(image, sigma, mode="nearest")


def apply_ct_scanner(
    hu: np.ndarray, grid: Grid, site: str, rng: np.random.Generator, *, circle: bool = True
) -> np.ndarray:
    """Turn true HU into what ``site``'s scanner reconstructs; returns int16 HU.

    ``HU_obs = blur(gain * HU + offset) + noise`` with noise = white noise lightly smoothed
    (sigma 0.6 voxel, rescaled to ``ct_noise_hu``); air stays at -1000 +- noise, clipped at
    -1024 like most scanners, and with ``circle`` voxels outside the reconstruction circle (the
    disc inscribed in the square field of view) are padding, -1024. A targeted reconstruction
    (a small field of view inside the scanned circle) has no padding: ``circle=False``.
    """
    sc = SCANNERS[site]
    img = scanner_blur(sc.ct_gain * hu + sc.ct_offset_hu, grid, sc.blur_mm)
    img = img + sc.ct_noise_hu * smooth_noise(rng, hu.shape, 0.6)
    if not circle:
        return np.clip(np.rint(img), -1024, 3071).astype(np.int16)
    ny, nx = hu.shape[1:]
    jj, ii = np.mgrid[0:ny, 0:nx]
    outside = ((ii - (nx - 1) / 2) / (nx / 2)) ** 2 + ((jj - (ny - 1) / 2) / (ny / 2)) ** 2 > 1.0
    img[:, outside] = -1024
    return np.clip(np.rint(img), -1024, 3071).astype(np.int16)


# --------------------------------------------------------------------------------------------------
# files


def write_nifti(path: Path, array: np.ndarray, grid: Grid, *, scale: float | None = None) -> None:
    """Write a (z, y, x) array as a gzipped NIfTI-1 file, byte-identical for identical input.

    The gzip header carries no timestamp (``mtime=0``) and the header has no free text.

    Args:
        path: Output ``.nii.gz`` path (parent folders are created).
        array: Voxel values indexed (z, y, x); int16 / uint8 / float32.
        grid: Geometry (LPS) written as RAS qform and sform (code 1, scanner).
        scale: When given, ``array`` holds integers and ``value = stored * scale``
            (``scl_slope``), e.g. PET SUV stored as int16 with slope 0.001.
    """
    import nibabel as nib  # imported here: the Snakefile plans demo cohorts at parse time

    data = np.ascontiguousarray(np.transpose(array, (2, 1, 0)))
    img = nib.Nifti1Image(data, grid.affine_ras())
    affine = grid.affine_ras()
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units(xyz="mm", t="sec")
    if scale is not None:
        img.header.set_slope_inter(scale, 0.0)
    raw = img.to_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))


def to_sitk(array: np.ndarray, grid: Grid) -> Any:
    """Return a SimpleITK image of a (z, y, x) array with ``grid``'s geometry."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(array)
    img.SetSpacing(grid.spacing)
    img.SetOrigin(grid.origin)
    img.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    return img


def write_table(path: Path, table: str, frame: pd.DataFrame) -> None:
    """Write a cohort table with the schema's column order; missing values as empty cells.

    Args:
        path: Output CSV.
        table: Schema name (``images``, ``clinical``, ``outcomes``, ``splits``).
        frame: Rows; every column must be one the schema lists.

    Raises:
        ValueError: When ``frame`` has a column the schema does not know (a programming error).
    """
    allowed = columns(table)
    unknown = [c for c in frame.columns if c not in allowed]
    if unknown:
        msg = f"{table}.csv: columns not in the schema: {unknown}"
        raise ValueError(msg)
    ordered = frame[[c for c in allowed if c in frame.columns]]
    path.parent.mkdir(parents=True, exist_ok=True)
    ordered.to_csv(path, index=False, lineterminator="\n", na_rep="")


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write JSON with sorted keys and a trailing newline (stable bytes)."""
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------------------------------
# labels, splits


def rebalance(
    strata: np.ndarray,
    propensity: np.ndarray,
    pools: Iterable[tuple[np.ndarray, int]],
) -> np.ndarray:
    """Make every class present in every pool, changing the most plausible patients.

    Tiny cohorts (``--patients 8``) can, by chance, lack a class in the training pool. For each
    pool and each class with fewer than ``need`` members, the member of the pool with the highest
    ``propensity`` for that class whose own class has more than ``need`` members is moved to it.
    ``need`` is lowered to ``len(pool) // n_classes`` when the pool is too small. With 40
    patients this practically never fires; the generators log when it does and compute the oracle
    on the final labels.

    Args:
        strata: (n,) class index per patient.
        propensity: (n, K) how plausible each class is for each patient (e.g. the true
            probabilities).
        pools: ``(boolean mask of the pool, need)`` pairs, processed in order.

    Returns:
        The new class indices (a copy).
    """
    out = np.asarray(strata, dtype=int).copy()
    n_classes = propensity.shape[1]
    for mask, need in pools:
        idx = np.flatnonzero(mask)
        need = min(need, len(idx) // n_classes)
        if need <= 0:
            continue
        for k in range(n_classes):
            while int(np.sum(out[idx] == k)) < need:
                counts = np.bincount(out[idx], minlength=n_classes)
                donors = [int(i) for i in idx if out[i] != k and counts[out[i]] > need]
                if not donors:
                    break
                best = max(donors, key=lambda i: (propensity[i, k], -i))
                out[best] = k
    return out


def stratified_splits(
    strata: np.ndarray,
    sites: Sequence[str],
    keys: np.ndarray,
    *,
    test_fraction: float = 0.25,
) -> list[str]:
    """Assign ``train`` / ``internal_test`` / ``external_test``.

    Patients of :data:`EXTERNAL_SITE` are ``external_test``. The others are split per class
    (stratified): within class ``k`` with ``n_k`` patients, ordered by their random ``keys``, the
    first ``round(test_fraction * n_k)`` (at most ``n_k - 1``) go to ``internal_test``; if that
    leaves ``internal_test`` empty, one patient of the largest class moves there.

    Args:
        strata: (n,) class index per patient (the study target).
        sites: Site per patient.
        keys: (n,) random numbers fixing the order within a class.
        test_fraction: Share of internal patients for ``internal_test``.

    Returns:
        The split of each patient.
    """
    n = len(strata)
    split = ["external_test" if sites[i] == EXTERNAL_SITE else "train" for i in range(n)]
    internal = [i for i in range(n) if split[i] == "train"]
    by_class: dict[int, list[int]] = {}
    for i in internal:
        by_class.setdefault(int(strata[i]), []).append(i)
    for members in by_class.values():
        members.sort(key=lambda i: keys[i])
        n_test = min(int(np.floor(test_fraction * len(members) + 0.5)), len(members) - 1)
        for i in members[:n_test]:
            split[i] = "internal_test"
    if internal and all(split[i] != "internal_test" for i in internal):
        largest = max(by_class.values(), key=len)
        split[largest[0]] = "internal_test"
    return split


def weibull_times(
    u: np.ndarray, eta: np.ndarray, *, median_days: float, shape: float
) -> np.ndarray:
    """Invert a proportional-hazards Weibull survival function.

    ``S(t | eta) = exp(-(t / lam)^k * exp(eta))`` with ``k = shape`` and ``lam`` chosen so that
    the median at ``eta = 0`` is ``median_days``; ``T = lam * (-log(u) / exp(eta))^(1/k)`` for
    ``u ~ U(0, 1)``. The hazard ratio between two patients is ``exp(eta_1 - eta_2)``.
    """
    lam = median_days / np.log(2.0) ** (1.0 / shape)
    return lam * (-np.log(u) / np.exp(eta)) ** (1.0 / shape)


def standardise(values: np.ndarray, mean: float, sd: float) -> np.ndarray:
    """Return ``(values - mean) / sd`` with the population constants of the generator."""
    return (np.asarray(values, dtype=float) - mean) / sd
