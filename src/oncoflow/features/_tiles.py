"""Whole-slide reading for pathomics: open a slide, find tissue, stream tiles of a physical size.

Everything here reads through :mod:`openslide`, so every format openslide opens works (generic
tiled TIFF, Aperio ``.svs``, Hamamatsu, MIRAX, ...). Memory stays flat in the slide size: the
tissue mask is built from a low-resolution pyramid level read in chunks, and tiles are read one
at a time with ``OpenSlide.read_region``; level 0 is never read whole.

Geometry. Let ``m0`` be the level-0 resolution (µm/px) and ``d_l`` the downsample of level
``l`` (its resolution is ``m_l = m0 * d_l``). A tile of ``tile_um`` µm at ``target_mpp`` µm/px
has ``tile_px = round(tile_um / target_mpp)`` pixels a side. It is read from the level with the
largest ``d_l`` such that ``m_l <= target_mpp`` (never upsampled from a coarser level), as a
region of ``round(tile_um / m_l)`` pixels, and resized to ``tile_px`` when the sizes differ.
Tiles lie on a level-0 grid of pitch ``tile_um / m0`` px starting at the slide origin; only
tiles entirely inside the slide are used.

Slide access (opening, reading regions) lives in :mod:`oncoflow.features._slide_io` and tissue
detection in :mod:`oncoflow.features._tissue`; their public names are re-exported here.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import openslide
from PIL import Image

from oncoflow.errors import FeatureError
from oncoflow.features._slide_io import _to_pil, open_slide, read_rgb
from oncoflow.features._tissue import (
    BLACK,
    MASK_MPP,
    MIN_OBJECT_UM2,
    MIN_SATURATION,
    WHITE,
    _low_res_image,
    _mask_level,
    pixel_tissue,
    tissue_mask,
)

__all__ = [
    "BLACK",
    "MASK_MPP",
    "MIN_OBJECT_UM2",
    "MIN_SATURATION",
    "MIN_TISSUE",
    "MPP_TOLERANCE",
    "WHITE",
    "Tile",
    "TilePlan",
    "iter_tissue_tiles",
    "open_slide",
    "pixel_tissue",
    "plan_tiles",
    "read_rgb",
    "read_tile",
    "read_tiles",
    "resolve_mpp",
    "tissue_mask",
]

log = logging.getLogger(__name__)

MIN_TISSUE = 0.5
"""Default minimum tissue fraction of a tile."""

MPP_TOLERANCE = 0.01
"""Relative difference above which a given ``--mpp`` counts as disagreeing with the metadata."""


@dataclass(frozen=True)
class TilePlan:
    """Where the tissue tiles of one slide are and how they are read.

    Attributes:
        path: The slide file.
        mpp_x: Level-0 resolution along x (µm/px).
        mpp_y: Level-0 resolution along y (µm/px).
        mpp_source: ``"metadata"`` (``openslide.mpp-x/y``) or ``"argument"`` (``mpp=`` given).
        tile_um: Tile side (µm).
        target_mpp: Requested resolution of the tiles (µm/px).
        tile_px: Tile side in pixels after resizing, ``round(tile_um / target_mpp)``.
        level: Pyramid level the tiles are read from.
        read_size: (width, height) of the region read at ``level`` (px).
        level_mpp: Resolution of ``level`` along x (µm/px).
        slide_size: (width, height) of level 0 (px).
        coords: (n, 2) int array of the level-0 (x, y) of each tile, in reading order.
        tissue_fraction: (n,) tissue fraction of each tile (from the mask).
        n_candidates: Number of tissue tiles before ``max_tiles`` sampling.
        saturation_threshold: Saturation (HSV, 0..1) above which a pixel is tissue.
        mask_mpp: Resolution of the tissue mask (µm/px, along x).
    """

    path: Path
    mpp_x: float
    mpp_y: float
    mpp_source: str
    tile_um: float
    target_mpp: float
    tile_px: int
    level: int
    read_size: tuple[int, int]
    level_mpp: float
    slide_size: tuple[int, int]
    coords: np.ndarray = field(repr=False)
    tissue_fraction: np.ndarray = field(repr=False)
    n_candidates: int
    saturation_threshold: float
    mask_mpp: float

    @property
    def n_tiles(self) -> int:
        """Number of tiles that will be read."""
        return len(self.coords)


@dataclass(frozen=True)
class Tile:
    """One tissue tile.

    Attributes:
        index: Position in the reading order (0-based).
        x: Level-0 x of the top-left corner (px).
        y: Level-0 y of the top-left corner (px).
        tissue_fraction: Tissue fraction of the tile from the low-resolution mask.
        rgb: (tile_px, tile_px, 3) uint8 image at ``target_mpp`` (may be a strided view).
    """

    index: int
    x: int
    y: int
    tissue_fraction: float
    rgb: np.ndarray = field(repr=False)


def resolve_mpp(
    slide: openslide.OpenSlide, path: Path, mpp: float | None
) -> tuple[float, float, str]:
    """Return the level-0 resolution ``(mpp_x, mpp_y, source)`` of a slide.

    The metadata (``openslide.mpp-x`` / ``openslide.mpp-y``) wins; ``mpp`` is used only when the
    metadata is missing. A given ``mpp`` that differs from the metadata by more than
    :data:`MPP_TOLERANCE` (relative) is logged as a warning.

    Args:
        slide: Open slide.
        path: Its file (for messages).
        mpp: User-given level-0 resolution (µm/px) or ``None``.

    Returns:
        ``(mpp_x, mpp_y, "metadata" | "argument")``.

    Raises:
        FeatureError: No metadata and no ``mpp``, or a non-positive value.
    """
    if mpp is not None and not (math.isfinite(mpp) and mpp > 0):
        msg = f"{path}: --mpp must be a positive number of µm per pixel, got {mpp}"
        raise FeatureError(msg)
    props = slide.properties
    raw_x = props.get(openslide.PROPERTY_NAME_MPP_X)
    raw_y = props.get(openslide.PROPERTY_NAME_MPP_Y, raw_x)
    meta: tuple[float, float] | None = None
    if raw_x is not None:
        try:
            meta = (float(raw_x), float(raw_y if raw_y is not None else raw_x))
        except ValueError:
            meta = None
        if meta is not None and not all(math.isfinite(v) and v > 0 for v in meta):
            meta = None
    if meta is None:
        if mpp is None:
            msg = (
                f"{path}: the slide has no µm/px metadata (openslide.mpp-x/y); "
                "pass --mpp with the level-0 resolution"
            )
            raise FeatureError(msg)
        log.info("%s: no µm/px metadata, using --mpp %g", path, mpp)
        return float(mpp), float(mpp), "argument"
    if mpp is not None:
        rel = abs(meta[0] - mpp) / meta[0]
        if rel > MPP_TOLERANCE:
            log.warning(
                "%s: --mpp %g differs from the slide metadata %g µm/px; using the metadata",
                path,
                mpp,
                meta[0],
            )
    return meta[0], meta[1], "metadata"


def _tile_level(slide: openslide.OpenSlide, mpp0: float, target_mpp: float) -> int:
    """Largest-downsample level whose resolution is at or below ``target_mpp``."""
    best = 0
    for lvl, ds in enumerate(slide.level_downsamples):
        if mpp0 * ds <= target_mpp * (1 + 1e-3) and ds >= slide.level_downsamples[best]:
            best = lvl
    return best


def plan_tiles(
    slide: openslide.OpenSlide,
    path: Path,
    *,
    tile_um: float = 256.0,
    target_mpp: float = 0.5,
    mpp: float | None = None,
    max_tiles: int | None = None,
    seed: int = 0,
    min_tissue: float = MIN_TISSUE,
) -> TilePlan:
    """Find the tissue tiles of a slide (no tile pixels are read).

    Args:
        slide: Open slide.
        path: Its file (for messages).
        tile_um: Tile side (µm).
        target_mpp: Resolution of the tiles (µm/px).
        mpp: Level-0 resolution to use when the slide has no metadata.
        max_tiles: Keep at most this many tiles, drawn without replacement with ``seed``
            (kept in reading order).
        seed: Seed of the ``max_tiles`` draw.
        min_tissue: Minimum tissue fraction of a tile (0..1).

    Returns:
        The plan.

    Raises:
        FeatureError: Bad settings, no µm/px, or no tissue tile at all.
    """
    _check_settings(path, tile_um=tile_um, target_mpp=target_mpp, max_tiles=max_tiles)
    mpp_x, mpp_y, source = resolve_mpp(slide, path, mpp)
    mpp0 = 0.5 * (mpp_x + mpp_y)
    tile_px = _tile_px(path, tile_um=tile_um, target_mpp=target_mpp, mpp0=mpp0)

    level = _tile_level(slide, mpp0, target_mpp)
    ds = float(slide.level_downsamples[level])
    read_size = (
        max(1, round(tile_um / (mpp_x * ds))),
        max(1, round(tile_um / (mpp_y * ds))),
    )

    mask_level, factor = _mask_level(slide, mpp0)
    mask_ds = float(slide.level_downsamples[mask_level]) * factor
    low = _low_res_image(slide, path, mask_level, factor)
    mask, thr = tissue_mask(low, pixel_um2=mpp_x * mpp_y * mask_ds**2)

    width0, height0 = slide.dimensions
    pitch = (tile_um / mpp_x, tile_um / mpp_y)
    coords, fractions = _tissue_tiles(
        mask, (width0, height0), pitch, mask_ds=mask_ds, min_tissue=min_tissue
    )
    if not coords:
        msg = (
            f"{path}: no tissue tile found ({tile_um:g} µm tiles with tissue fraction >= "
            f"{min_tissue:g}; saturation threshold {thr:.3f})"
        )
        raise FeatureError(msg)
    coord_arr = np.asarray(coords, dtype=np.int64)
    frac_arr = np.asarray(fractions, dtype=np.float64)
    n_candidates = len(coord_arr)
    if max_tiles is not None and n_candidates > max_tiles:
        pick = np.sort(np.random.default_rng(seed).choice(n_candidates, max_tiles, replace=False))
        coord_arr, frac_arr = coord_arr[pick], frac_arr[pick]
    log.info(
        "%s: %d tissue tiles (%d used), level %d, %d px read -> %d px",
        path,
        n_candidates,
        len(coord_arr),
        level,
        read_size[0],
        tile_px,
    )
    return TilePlan(
        path=Path(path),
        mpp_x=mpp_x,
        mpp_y=mpp_y,
        mpp_source=source,
        tile_um=float(tile_um),
        target_mpp=float(target_mpp),
        tile_px=tile_px,
        level=level,
        read_size=read_size,
        level_mpp=mpp_x * ds,
        slide_size=(int(width0), int(height0)),
        coords=coord_arr,
        tissue_fraction=frac_arr,
        n_candidates=n_candidates,
        saturation_threshold=thr,
        mask_mpp=mpp_x * mask_ds,
    )


def _check_settings(
    path: Path, *, tile_um: float, target_mpp: float, max_tiles: int | None
) -> None:
    """Raise :class:`FeatureError` for a non-positive tile size or resolution or ``max_tiles``."""
    for name, value in (("tile_um", tile_um), ("target_mpp", target_mpp)):
        if not (math.isfinite(value) and value > 0):
            msg = f"{path}: {name} must be positive, got {value}"
            raise FeatureError(msg)
    if max_tiles is not None and max_tiles < 1:
        msg = f"{path}: max_tiles must be >= 1, got {max_tiles}"
        raise FeatureError(msg)


def _tile_px(path: Path, *, tile_um: float, target_mpp: float, mpp0: float) -> int:
    """Return the tile side in pixels at ``target_mpp``, warning when it upsamples the scan.

    Raises:
        FeatureError: The tile would be smaller than 8 px.
    """
    tile_px = round(tile_um / target_mpp)
    if tile_px < 8:
        msg = f"{path}: a tile of {tile_um} µm at {target_mpp} µm/px is only {tile_px} px"
        raise FeatureError(msg)
    if target_mpp < mpp0 * (1 - 1e-3):
        log.warning(
            "%s: target %g µm/px is finer than the scan (%g µm/px); tiles are upsampled",
            path,
            target_mpp,
            mpp0,
        )
    return tile_px


def _tissue_tiles(
    mask: np.ndarray,
    size0: tuple[int, int],
    pitch: tuple[float, float],
    *,
    mask_ds: float,
    min_tissue: float,
) -> tuple[list[tuple[int, int]], list[float]]:
    """Return the level-0 grid tiles with enough tissue, in row-major order.

    Args:
        mask: The low-resolution tissue mask.
        size0: ``(width, height)`` of level 0 (px).
        pitch: ``(x, y)`` tile pitch at level 0 (px); only whole tiles inside the slide count.
        mask_ds: Downsample of the mask relative to level 0.
        min_tissue: Minimum tissue fraction of a tile.

    Returns:
        ``(coords, fractions)``: level-0 ``(x, y)`` of each tile and its tissue fraction (the
        mean of the mask over the mask pixels it covers, from an integral image).
    """
    pitch_x, pitch_y = pitch
    n_cols = math.floor(size0[0] / pitch_x + 1e-9)
    n_rows = math.floor(size0[1] / pitch_y + 1e-9)
    integral = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
    integral[1:, 1:] = mask.cumsum(0).cumsum(1)
    coords: list[tuple[int, int]] = []
    fractions: list[float] = []
    for row in range(n_rows):
        y0 = round(row * pitch_y)
        my0, my1 = _span(y0, pitch_y, mask_ds, mask.shape[0])
        for col in range(n_cols):
            x0 = round(col * pitch_x)
            mx0, mx1 = _span(x0, pitch_x, mask_ds, mask.shape[1])
            area = (my1 - my0) * (mx1 - mx0)
            if area <= 0:
                continue
            count = (
                integral[my1, mx1] - integral[my0, mx1] - integral[my1, mx0] + integral[my0, mx0]
            )
            frac = float(count) / area
            if frac >= min_tissue:
                coords.append((x0, y0))
                fractions.append(frac)
    return coords, fractions


def _span(start0: int, pitch0: float, mask_ds: float, limit: int) -> tuple[int, int]:
    """Mask-pixel range ``[a, b)`` covered by a tile starting at level-0 ``start0``."""
    a = round(start0 / mask_ds)
    b = round((start0 + pitch0) / mask_ds)
    return min(max(a, 0), limit), min(max(b, a + 1), limit)


def read_tile(slide: openslide.AbstractSlide, plan: TilePlan, i: int) -> Tile:
    """Read tile ``i`` of a plan (resized to ``plan.tile_px`` when the level does not match).

    Args:
        slide: The open slide the plan was made from.
        plan: From :func:`plan_tiles`.
        i: Tile index in the plan.

    Returns:
        The tile.
    """
    x, y = (int(v) for v in plan.coords[i])
    rgb = read_rgb(slide, plan.path, (x, y), plan.level, plan.read_size)
    size = (plan.tile_px, plan.tile_px)
    if plan.read_size != size:
        img = _to_pil(rgb)
        fx, fy = plan.read_size[0] / size[0], plan.read_size[1] / size[1]
        if fx == fy and fx.is_integer():
            img = img.reduce(int(fx))
        else:
            shrink = fx > 1
            img = img.resize(size, Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)
        rgb = np.asarray(img)
    return Tile(index=i, x=x, y=y, tissue_fraction=float(plan.tissue_fraction[i]), rgb=rgb)


def read_tiles(
    slide: openslide.AbstractSlide, plan: TilePlan, *, workers: int = 1
) -> Iterator[Tile]:
    """Yield the tiles of a plan in order, holding at most ``2 * workers`` tiles in memory.

    With ``workers > 1`` tiles are decoded ahead in a thread pool (openslide releases the GIL
    while decoding), so decoding overlaps with whatever the caller does with each tile; the
    order and the pixels are the same as with one worker.

    Args:
        slide: The open slide the plan was made from.
        plan: From :func:`plan_tiles`.
        workers: Decoding threads (1 = read in the calling thread).

    Yields:
        Tiles in the plan's order.
    """
    n = plan.n_tiles
    if workers <= 1:
        for i in range(n):
            yield read_tile(slide, plan, i)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[Tile]] = deque()
        next_i = 0
        try:
            while next_i < n or pending:
                while next_i < n and len(pending) < 2 * workers:
                    pending.append(pool.submit(read_tile, slide, plan, next_i))
                    next_i += 1
                yield pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()


def iter_tissue_tiles(
    slide: Path,
    *,
    tile_um: float = 256.0,
    target_mpp: float = 0.5,
    mpp: float | None = None,
    max_tiles: int | None = None,
    seed: int = 0,
    min_tissue: float = MIN_TISSUE,
    workers: int = 1,
) -> Iterator[Tile]:
    """Open a slide and stream its tissue tiles (see the module docstring for the geometry).

    Args:
        slide: Slide file (any format openslide opens).
        tile_um: Tile side (µm).
        target_mpp: Resolution of the tiles (µm/px).
        mpp: Level-0 resolution (µm/px) used only when the slide has no metadata.
        max_tiles: At most this many tiles, sampled with ``seed`` (kept in reading order).
        seed: Seed of the sampling.
        min_tissue: Minimum tissue fraction of a tile.
        workers: Decoding threads (see :func:`read_tiles`).

    Yields:
        :class:`Tile` objects in row-major order of the level-0 grid.

    Raises:
        FeatureError: Unopenable or corrupt slide, no µm/px, no tissue.
    """
    path = Path(slide)
    with open_slide(path) as osr:
        plan = plan_tiles(
            osr,
            path,
            tile_um=tile_um,
            target_mpp=target_mpp,
            mpp=mpp,
            max_tiles=max_tiles,
            seed=seed,
            min_tissue=min_tissue,
        )
        yield from read_tiles(osr, plan, workers=workers)
