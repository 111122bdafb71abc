"""Pathomics: per-slide features of an H&E whole-slide image from tissue tiles of a physical size.

Pipeline (one slide): open it with openslide; find the tissue on a low-resolution level (Otsu
on HSV saturation, near-white / near-black excluded, small pieces removed); read the tiles of
``tile_um`` µm with at least 50 % tissue at ``target_mpp`` µm/px, one at a time (see
:mod:`oncoflow.features._tiles`); compute per-tile features on the tissue pixels of each tile;
aggregate them over tiles as mean, sd, and 10/50/90 % quantiles.

Per-tile features (``rgb2hed`` colour deconvolution of Ruifrok & Johnston gives the
hematoxylin ``H`` and eosin ``E`` optical densities):

* colour: ``h_mean``, ``h_sd``, ``e_mean``, ``e_sd`` over tissue pixels;
* texture: GLCM of ``H`` quantised to :data:`GLCM_LEVELS` grey levels on ``[0, H_MAX]``, pixel
  distance 1 (at ``target_mpp``), 4 directions averaged, background pairs excluded:
  ``glcm_contrast``, ``glcm_homogeneity``, ``glcm_energy``, ``glcm_correlation``;
* nuclei-like blobs: ``H`` smoothed with a Gaussian of :data:`NUCLEUS_SMOOTH_UM` µm, thresholded
  at ``max(otsu(H_tissue), NUCLEUS_MIN_H)``, blobs of :data:`NUCLEUS_MIN_UM2` µm² or more counted
  as connected components: ``nuclei_density`` (blobs per mm² of tissue) and ``nuclei_area``
  (mean blob area, µm²) and ``nuclei_fraction`` (blob area / tissue area);
* fibre orientation (a collagen-disorder proxy) from the structure tensor of ``E`` (computed
  at about :data:`FIBRE_SIGMA_UM` µm/px, block-averaging finer tiles):
  ``J = G_rho * (grad E grad E^T)`` with derivative scale :data:`FIBRE_SIGMA_UM` and integration
  scale :data:`FIBRE_RHO_UM`; per pixel the coherence
  ``c = sqrt((Jxx - Jyy)^2 + 4 Jxy^2) / (Jxx + Jyy)`` in [0, 1] and the fibre orientation
  ``theta = 0.5 atan2(2 Jxy, Jyy - Jxx)`` (perpendicular to the mean gradient).
  ``fibre_coherence`` is the mean of ``c`` weighted by ``trace(J)`` over tissue pixels;
  ``fibre_orientation_entropy`` is the Shannon entropy of the histogram of ``theta``
  (:data:`ORIENTATION_BINS` bins on [0, pi), weights ``c * trace(J)``) divided by
  ``log(ORIENTATION_BINS)`` (0 = all fibres parallel, 1 = uniform).

Slide features are named ``<tile feature>_<stat>`` with stat in ``mean, sd, q10, q50, q90``
(sd with ``ddof = 0``). Optionally (``weights=``) the mean deep embedding of the tiles from a
torchvision ResNet with local weights is added (:mod:`oncoflow.features._embed`).

Length: one file (about 500 lines) because the per-tile feature definitions, their constants and
:func:`settings_hash`, which must cover every one of those constants, are kept together so that a
new or changed constant cannot be left out of the hash; slide reading and tissue detection live in
:mod:`oncoflow.features._tiles`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.color import rgb2hed
from skimage.feature import graycomatrix
from skimage.filters import threshold_otsu

from oncoflow.features._embed import TileEmbedder
from oncoflow.features._tiles import (
    MIN_TISSUE,
    Tile,
    TilePlan,
    iter_tissue_tiles,
    open_slide,
    pixel_tissue,
    plan_tiles,
    read_tiles,
)
from oncoflow.progress import Progress

__all__ = [
    "STATS",
    "TILE_FEATURES",
    "Tile",
    "TilePlan",
    "extract_pathomics",
    "extract_tile_table",
    "iter_tissue_tiles",
    "plan_tiles",
    "settings_hash",
    "tile_features",
    "write_pathomics",
]

log = logging.getLogger(__name__)

H_MAX = 0.2
"""Upper end of the hematoxylin optical density range quantised for the GLCM."""

GLCM_LEVELS = 32
"""Grey levels of the GLCM."""

NUCLEUS_SMOOTH_UM = 1.0
"""Gaussian sd (µm) applied to ``H`` before the nuclei threshold."""

NUCLEUS_MIN_H = 0.05
"""Floor of the nuclei threshold on ``H`` (optical density)."""

NUCLEUS_MIN_UM2 = 6.0
"""Smallest blob counted as a nucleus (µm²)."""

FIBRE_SIGMA_UM = 1.0
"""Derivative (Gaussian) scale of the structure tensor (µm)."""

FIBRE_RHO_UM = 4.0
"""Integration (Gaussian) scale of the structure tensor (µm)."""

ORIENTATION_BINS = 18
"""Bins of the fibre orientation histogram on [0, pi)."""

TILE_FEATURES: tuple[str, ...] = (
    "tissue_fraction",
    "h_mean",
    "h_sd",
    "e_mean",
    "e_sd",
    "glcm_contrast",
    "glcm_homogeneity",
    "glcm_energy",
    "glcm_correlation",
    "nuclei_density",
    "nuclei_area",
    "nuclei_fraction",
    "fibre_coherence",
    "fibre_orientation_entropy",
)
"""Per-tile features, in output order."""

STATS: tuple[str, ...] = ("mean", "sd", "q10", "q50", "q90")
"""Per-slide aggregates of each tile feature."""

FEATURES_VERSION = 1
"""Bumped whenever a feature definition or constant changes (part of the settings hash)."""


def settings_hash(
    *,
    tile_um: float,
    target_mpp: float,
    max_tiles: int | None,
    seed: int,
    min_tissue: float,
    weights: Path | None = None,
    arch: str = "resnet18",
) -> str:
    """Hash of everything that defines the features of a slide (first 16 hex digits of sha256).

    Covers the call's settings, :data:`FEATURES_VERSION`, the feature constants of this module
    and of :mod:`oncoflow.features._tiles` and, with embeddings, the architecture and the sha256
    of the weights file; tables with different hashes must not be merged.
    """
    from oncoflow.features import _tiles

    settings = {
        "version": FEATURES_VERSION,
        "tile_um": float(tile_um),
        "target_mpp": float(target_mpp),
        "max_tiles": max_tiles,
        "seed": int(seed),
        "min_tissue": float(min_tissue),
        "h_max": H_MAX,
        "glcm_levels": GLCM_LEVELS,
        "nucleus": [NUCLEUS_SMOOTH_UM, NUCLEUS_MIN_H, NUCLEUS_MIN_UM2],
        "fibre": [FIBRE_SIGMA_UM, FIBRE_RHO_UM, ORIENTATION_BINS],
        "tissue": [
            _tiles.MASK_MPP,
            _tiles.MIN_OBJECT_UM2,
            _tiles.MIN_SATURATION,
            _tiles.WHITE,
            _tiles.BLACK,
        ],
    }
    if weights is not None:
        settings["embedding"] = [arch, hashlib.sha256(Path(weights).read_bytes()).hexdigest()]
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _glcm(h: np.ndarray, tissue: np.ndarray) -> dict[str, float]:
    """GLCM properties of ``H`` on tissue pixels (background is level 0 and dropped)."""
    q = np.clip(np.floor(h / H_MAX * GLCM_LEVELS), 0, GLCM_LEVELS - 1).astype(np.uint8)
    img = np.where(tissue, q + 1, 0).astype(np.uint8)
    angles = [0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
    counts = graycomatrix(img, [1], angles, levels=GLCM_LEVELS + 1, symmetric=True)
    p = counts[1:, 1:, 0, :].astype(np.float64)  # (L, L, angles)
    totals = p.sum(axis=(0, 1))
    if not np.all(totals > 0):
        return dict.fromkeys(
            ("glcm_contrast", "glcm_homogeneity", "glcm_energy", "glcm_correlation"), np.nan
        )
    p /= totals
    i, j = np.meshgrid(np.arange(GLCM_LEVELS), np.arange(GLCM_LEVELS), indexing="ij")
    i, j = i[..., None], j[..., None]
    contrast = (p * (i - j) ** 2).sum(axis=(0, 1))
    homogeneity = (p / (1.0 + (i - j) ** 2)).sum(axis=(0, 1))
    energy = np.sqrt((p**2).sum(axis=(0, 1)))
    mu_i = (p * i).sum(axis=(0, 1))
    mu_j = (p * j).sum(axis=(0, 1))
    sd_i = np.sqrt((p * (i - mu_i) ** 2).sum(axis=(0, 1)))
    sd_j = np.sqrt((p * (j - mu_j) ** 2).sum(axis=(0, 1)))
    cov = (p * (i - mu_i) * (j - mu_j)).sum(axis=(0, 1))
    denom = sd_i * sd_j
    corr = np.where(denom > 1e-12, cov / np.where(denom > 1e-12, denom, 1.0), 1.0)
    return {
        "glcm_contrast": float(contrast.mean()),
        "glcm_homogeneity": float(homogeneity.mean()),
        "glcm_energy": float(energy.mean()),
        "glcm_correlation": float(corr.mean()),
    }


def _nuclei(h: np.ndarray, tissue: np.ndarray, mpp: float) -> dict[str, float]:
    """Nuclei-like blobs: smoothed ``H`` above an Otsu threshold, connected components."""
    smooth = ndimage.gaussian_filter(h, NUCLEUS_SMOOTH_UM / mpp)
    values = smooth[tissue]
    thr = NUCLEUS_MIN_H
    if values.size > 1 and float(values.max()) > float(values.min()):
        thr = max(thr, float(threshold_otsu(values)))
    blobs = (smooth > thr) & tissue
    labels, n = ndimage.label(blobs)
    sizes = np.bincount(labels.ravel())[1:] if n else np.zeros(0, dtype=np.int64)
    sizes_um2 = sizes * mpp * mpp
    kept = sizes_um2[sizes_um2 >= NUCLEUS_MIN_UM2]
    tissue_mm2 = float(tissue.sum()) * mpp * mpp * 1e-6
    return {
        "nuclei_density": float(len(kept)) / tissue_mm2,
        "nuclei_area": float(kept.mean()) if len(kept) else 0.0,
        "nuclei_fraction": float(kept.sum()) * 1e-6 / tissue_mm2,
    }


def _block_mean(img: np.ndarray, factor: int) -> np.ndarray:
    """Mean over non-overlapping ``factor`` x ``factor`` blocks (edges cropped)."""
    if factor == 1:
        return img
    h, w = (img.shape[0] // factor) * factor, (img.shape[1] // factor) * factor
    blocks = img[:h, :w].reshape(h // factor, factor, w // factor, factor)
    return blocks.mean(axis=(1, 3), dtype=np.float32)


def _fibres(e: np.ndarray, tissue: np.ndarray, mpp: float) -> dict[str, float]:
    """Structure-tensor coherence and orientation entropy of the eosin channel.

    Tiles finer than :data:`FIBRE_SIGMA_UM` µm/px are first block-averaged towards it.
    """
    factor = max(1, int(np.floor(FIBRE_SIGMA_UM / mpp + 1e-6)))
    e = _block_mean(e, factor)
    tissue = _block_mean(tissue.astype(np.float32), factor) >= 0.5
    mpp = mpp * factor
    sigma = FIBRE_SIGMA_UM / mpp
    rho = FIBRE_RHO_UM / mpp
    gx = ndimage.gaussian_filter(e, sigma, order=(0, 1))
    gy = ndimage.gaussian_filter(e, sigma, order=(1, 0))
    jxx = ndimage.gaussian_filter(gx * gx, rho)
    jyy = ndimage.gaussian_filter(gy * gy, rho)
    jxy = ndimage.gaussian_filter(gx * gy, rho)
    trace = (jxx + jyy)[tissue]
    diff = np.sqrt((jxx - jyy) ** 2 + 4.0 * jxy**2)[tissue]
    coherence = np.where(trace > 0, diff / np.where(trace > 0, trace, 1.0), 0.0)
    theta = np.mod(0.5 * np.arctan2(2.0 * jxy, jyy - jxx)[tissue], np.pi)
    total = float(trace.sum())
    if total <= 0:
        return {"fibre_coherence": np.nan, "fibre_orientation_entropy": np.nan}
    weights = coherence * trace
    hist, _ = np.histogram(theta, bins=ORIENTATION_BINS, range=(0.0, np.pi), weights=weights)
    prob = hist / max(float(hist.sum()), 1e-300)
    nz = prob[prob > 0]
    entropy = float(-(nz * np.log(nz)).sum() / np.log(ORIENTATION_BINS))
    return {
        "fibre_coherence": float((coherence * trace).sum() / total),
        "fibre_orientation_entropy": entropy,
    }


def tile_features(
    rgb: np.ndarray,
    *,
    mpp: float,
    saturation_threshold: float,
    tissue_fraction: float = np.nan,
) -> dict[str, float]:
    """Per-tile features of one RGB tile (see the module docstring for definitions and units).

    Args:
        rgb: (h, w, 3) uint8 tile.
        mpp: Its resolution (µm/px).
        saturation_threshold: Slide saturation threshold for per-pixel tissue.
        tissue_fraction: Tissue fraction of the tile from the slide mask (copied through).

    Returns:
        One value per name of :data:`TILE_FEATURES` (NaN where a tile has no tissue pixel).
    """
    tissue = pixel_tissue(rgb, saturation_threshold)
    out: dict[str, float] = dict.fromkeys(TILE_FEATURES, np.nan)
    out["tissue_fraction"] = float(tissue_fraction)
    if tissue.sum() < 16:
        return out
    hed = rgb2hed(rgb)
    h = hed[..., 0].astype(np.float32)
    e = hed[..., 1].astype(np.float32)
    ht, et = h[tissue], e[tissue]
    out.update(
        h_mean=float(ht.mean()),
        h_sd=float(ht.std()),
        e_mean=float(et.mean()),
        e_sd=float(et.std()),
    )
    out.update(_glcm(h, tissue))
    out.update(_nuclei(h, tissue, mpp))
    out.update(_fibres(e, tissue, mpp))
    return out


def _aggregate(per_tile: pd.DataFrame) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in TILE_FEATURES:
        values = per_tile[name].to_numpy(dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            stats = dict.fromkeys(STATS, np.nan)
        else:
            q10, q50, q90 = np.quantile(values, [0.1, 0.5, 0.9])
            stats = {
                "mean": float(values.mean()),
                "sd": float(values.std()),
                "q10": float(q10),
                "q50": float(q50),
                "q90": float(q90),
            }
        for stat in STATS:
            out[f"{name}_{stat}"] = stats[stat]
    return out


def extract_tile_table(
    slide: Path,
    *,
    tile_um: float = 256.0,
    target_mpp: float = 0.5,
    mpp: float | None = None,
    max_tiles: int | None = None,
    seed: int = 0,
    min_tissue: float = MIN_TISSUE,
    workers: int = 1,
    embedder: TileEmbedder | None = None,
) -> tuple[pd.DataFrame, TilePlan]:
    """Per-tile features of a slide: one row per tile (``x``, ``y`` level-0 px + features).

    Args:
        slide: Slide file.
        tile_um: Tile side (µm).
        target_mpp: Tile resolution (µm/px).
        mpp: Level-0 resolution used only when the slide has no metadata.
        max_tiles: At most this many tiles, sampled with ``seed``.
        seed: Seed of the tile sampling.
        min_tissue: Minimum tissue fraction of a tile.
        workers: Tile decoding threads (decoding overlaps with the features; same result).
        embedder: Adds the deep embedding columns ``emb_<arch>_<i>`` of every tile.

    Returns:
        ``(table, plan)``.

    Raises:
        FeatureError: Unopenable or corrupt slide, no µm/px, no tissue.
    """
    path = Path(slide)
    rows = []
    grid = {"tile_um": tile_um, "target_mpp": target_mpp, "mpp": mpp, "max_tiles": max_tiles}
    with open_slide(path) as osr:
        plan = plan_tiles(osr, path, **grid, seed=seed, min_tissue=min_tissue)
        pending: list[np.ndarray] = []
        embeddings: list[np.ndarray] = []
        tiles = Progress(len(plan.coords), f"{Path(path).name}: tile", logger=log)
        for done, tile in enumerate(read_tiles(osr, plan, workers=workers), start=1):
            tiles.update(done)
            feats = tile_features(
                tile.rgb,
                mpp=plan.target_mpp,
                saturation_threshold=plan.saturation_threshold,
                tissue_fraction=tile.tissue_fraction,
            )
            rows.append({"x": tile.x, "y": tile.y, **feats})
            if embedder is not None:
                pending.append(tile.rgb)
                if len(pending) == embedder.batch_size:
                    embeddings.append(embedder.embed(pending))
                    pending.clear()
        if embedder is not None and pending:
            embeddings.append(embedder.embed(pending))
    table = pd.DataFrame(rows, columns=["x", "y", *TILE_FEATURES])
    if embedder is not None:
        emb = pd.DataFrame(np.concatenate(embeddings), columns=embedder.feature_names())
        table = pd.concat([table, emb], axis=1)
    return table, plan


def extract_pathomics(
    slide: Path,
    *,
    tile_um: float = 256.0,
    target_mpp: float = 0.5,
    mpp: float | None = None,
    max_tiles: int | None = None,
    seed: int = 0,
    workers: int = 1,
    weights: Path | None = None,
    arch: str = "resnet18",
) -> pd.DataFrame:
    """Per-slide pathomics features as a tidy long table.

    Args:
        slide: Slide file (any format openslide opens).
        tile_um: Tile side (µm).
        target_mpp: Resolution the tiles are analysed at (µm/px).
        mpp: Level-0 resolution (µm/px) used when the slide has no ``openslide.mpp-x/y``;
            when both exist and differ, the metadata is used and a warning logged.
        max_tiles: At most this many tissue tiles, sampled with ``seed``.
        seed: Seed of the tile sampling.
        workers: Tile decoding threads (1 = none; the result does not depend on it).
        weights: Local torchvision ResNet state dict; when given, the mean deep embedding of the
            tiles is added as features ``emb_<arch>_<i>_mean`` (nothing is downloaded).
        arch: ResNet architecture of ``weights`` (``resnet18``, ``resnet34``, ``resnet50``).

    Returns:
        One row per feature (``<tile feature>_<stat>``, see the module docstring) with columns
        ``feature, value, n_tiles, mpp_used, level_used, tile_px, tile_um, target_mpp,
        mpp_source, max_tiles, seed, min_tissue, settings_hash, slide``; ``n_tiles`` is the
        number of tiles aggregated, ``mpp_used`` the level-0 µm/px (x), ``level_used`` the
        pyramid level read, ``max_tiles`` is -1 for all tiles, ``settings_hash`` from
        :func:`settings_hash`.

    Raises:
        FeatureError: Unopenable or corrupt slide, no µm/px, no tissue.

    Example:
        >>> table = extract_pathomics(Path("slide.svs"), tile_um=256, target_mpp=0.5)
        ... # doctest: +SKIP
        >>> table.set_index("feature").loc["nuclei_density_mean", "value"]  # doctest: +SKIP
    """
    path = Path(slide)
    embedder = None if weights is None else TileEmbedder(Path(weights), arch=arch)
    per_tile, plan = extract_tile_table(
        path,
        tile_um=tile_um,
        target_mpp=target_mpp,
        mpp=mpp,
        max_tiles=max_tiles,
        seed=seed,
        workers=workers,
        embedder=embedder,
    )
    values = _aggregate(per_tile)
    if embedder is not None:
        means = per_tile[embedder.feature_names()].mean(axis=0)
        values.update({f"{name}_mean": float(v) for name, v in means.items()})
    table = pd.DataFrame({"feature": list(values), "value": list(values.values())})
    _add_settings(
        table,
        plan,
        n_tiles=len(per_tile),
        settings=settings_hash(
            tile_um=tile_um,
            target_mpp=target_mpp,
            max_tiles=max_tiles,
            seed=seed,
            min_tissue=MIN_TISSUE,
            weights=weights,
            arch=arch,
        ),
        max_tiles=max_tiles,
        seed=seed,
    )
    table["slide"] = path.name
    return table


def _add_settings(
    table: pd.DataFrame,
    plan: TilePlan,
    *,
    n_tiles: int,
    settings: str,
    max_tiles: int | None,
    seed: int,
) -> None:
    """Add the provenance columns of :func:`extract_pathomics` (``n_tiles`` to ``settings_hash``).

    Args:
        table: The ``feature, value`` table, extended in place.
        plan: The slide's tile plan.
        n_tiles: Number of tiles aggregated.
        settings: From :func:`settings_hash`.
        max_tiles: The tile cap (``None`` is written as -1).
        seed: Seed of the tile sampling.
    """
    table["n_tiles"] = n_tiles
    table["mpp_used"] = plan.mpp_x
    table["level_used"] = plan.level
    table["tile_px"] = plan.tile_px
    table["tile_um"] = plan.tile_um
    table["target_mpp"] = plan.target_mpp
    table["mpp_source"] = plan.mpp_source
    table["max_tiles"] = -1 if max_tiles is None else int(max_tiles)
    table["seed"] = int(seed)
    table["min_tissue"] = MIN_TISSUE
    table["settings_hash"] = settings


def write_pathomics(table: pd.DataFrame, out: Path, *, patient_id: str | None = None) -> None:
    """Write a table of :func:`extract_pathomics` as CSV, led by ``patient_id`` when given.

    Args:
        table: The tidy feature table.
        out: CSV path (parent folders are created).
        patient_id: Written as the first column.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if patient_id is not None:
        table = table.copy()
        table.insert(0, "patient_id", patient_id)
    table.to_csv(out, index=False, float_format="%.10g")
