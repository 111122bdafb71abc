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
"""

from __future__ import annotations

import ctypes
import logging
import math
import sys
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import openslide
from PIL import Image
from scipy import ndimage
from skimage.filters import threshold_otsu

from oncoflow.errors import FeatureError

log = logging.getLogger(__name__)

MASK_MPP = 16.0
"""Resolution of the tissue mask (µm/px): the mask level is the coarsest level at or below it,
box-downsampled by an integer factor towards it."""

MIN_TISSUE = 0.5
"""Default minimum tissue fraction of a tile."""

MIN_OBJECT_UM2 = 10_000.0
"""Tissue pieces (and holes) smaller than this area (µm², 0.01 mm²) are removed (filled)."""

MIN_SATURATION = 0.05
"""Floor of the Otsu saturation threshold (an empty slide has no second mode)."""

WHITE = 220
"""A pixel whose three channels are all above this is background (glass)."""

BLACK = 30
"""A pixel whose three channels are all below this is not tissue (pen, slide edge, scanner fill)."""

MPP_TOLERANCE = 0.01
"""Relative difference above which a given ``--mpp`` counts as disagreeing with the metadata."""

_CHUNK = 2048
"""Side (px of the mask level) of the regions read while building the tissue mask."""


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


def open_slide(path: Path) -> openslide.OpenSlide:
    """Open a slide with openslide, turning every failure into a one-line :class:`FeatureError`.

    Args:
        path: Slide file.

    Returns:
        The open slide (close it, or use it as a context manager).

    Raises:
        FeatureError: The file is missing, not a slide openslide knows, or corrupt.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"{path}: slide file does not exist"
        raise FeatureError(msg)
    try:
        return openslide.OpenSlide(str(path))
    except openslide.OpenSlideUnsupportedFormatError as exc:
        msg = (
            f"{path}: cannot open slide: not a format openslide reads, or the file is corrupt "
            f"or truncated ({_one_line(exc)})"
        )
        raise FeatureError(msg) from exc
    except (openslide.OpenSlideError, OSError, ValueError) as exc:
        msg = f"{path}: cannot open slide, file is corrupt or unreadable ({_one_line(exc)})"
        raise FeatureError(msg) from exc


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


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


def _lowlevel_reader() -> Any:
    """Openslide's ctypes ``openslide_read_region`` (``None`` where it cannot be used).

    Reading straight into a numpy buffer skips the ARGB -> RGBA conversion and PIL image that
    ``OpenSlide.read_region`` builds; the public method is the fallback.
    """
    if sys.byteorder != "little":
        return None
    try:
        from openslide import lowlevel

        return getattr(lowlevel, "_read_region", None)
    except ImportError:  # pragma: no cover - openslide without the C binding
        return None


_READ_REGION = _lowlevel_reader()


def _argb_to_rgb(argb: np.ndarray) -> np.ndarray:
    """Premultiplied ARGB (uint32, little endian) -> RGB uint8 composited on white.

    The result is a zero-copy (h, w, 3) view of the buffer's R, G, B bytes (memory order B, G,
    R, A, so the view has a negative channel stride). Premultiplied colour over white is
    ``c + (255 - alpha)``; it is applied, in place, only when some pixel is not opaque
    (``min(argb) < 0xFF000000`` exactly when some alpha is below 255).
    """
    h, w = argb.shape
    bgra = argb.view(np.uint8).reshape(h, w, 4)
    if h and w and argb.min() < np.uint32(0xFF000000):
        clear = 255 - bgra[..., 3:4]  # colour <= alpha, so the sum stays <= 255
        bgra[..., :3] += clear
    return bgra[..., 2::-1]


def _to_pil(rgb: np.ndarray) -> Image.Image:
    """PIL image of an RGB array.

    Copies channel by channel: much faster than ``np.ascontiguousarray`` of a negative-stride view.
    """
    out = np.empty(rgb.shape, dtype=np.uint8)
    out[..., 0] = rgb[..., 0]
    out[..., 1] = rgb[..., 1]
    out[..., 2] = rgb[..., 2]
    return Image.fromarray(out)


def read_rgb(
    slide: openslide.AbstractSlide,
    path: Path,
    location: tuple[int, int],
    level: int,
    size: tuple[int, int],
) -> np.ndarray:
    """Read a region as RGB uint8; transparent (unscanned, outside-slide) pixels become white.

    Args:
        slide: Open slide.
        path: Its file (for messages).
        location: Level-0 (x, y) of the top-left corner.
        level: Pyramid level.
        size: (width, height) at ``level``.

    Returns:
        (height, width, 3) uint8 array (possibly a strided view; ``np.ascontiguousarray`` it
        where contiguous memory is needed).

    Raises:
        FeatureError: openslide fails to decode the region (corrupt tile data).
    """
    x, y = int(location[0]), int(location[1])
    w, h = int(size[0]), int(size[1])
    try:
        osr = getattr(slide, "_osr", None) if isinstance(slide, openslide.OpenSlide) else None
        if _READ_REGION is not None and osr is not None:
            argb = np.empty((h, w), dtype=np.uint32)
            ptr = argb.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32))
            _READ_REGION(osr, ptr, x, y, level, w, h)
            return _argb_to_rgb(argb)
        region = slide.read_region((x, y), level, (w, h))
    except openslide.OpenSlideError as exc:
        msg = (
            f"{path}: cannot read region at level {level}, x={x}, y={y} "
            f"(corrupt slide? {_one_line(exc)})"
        )
        raise FeatureError(msg) from exc
    white = Image.new("RGBA", region.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, region).convert("RGB"))


def _max_min(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel max and min over the three channels (faster than reducing the last axis)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)


def _saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation ``(max - min) / max`` of an RGB uint8 array, in [0, 1]."""
    mx8, mn8 = _max_min(rgb)
    mx, mn = mx8.astype(np.float32), mn8.astype(np.float32)
    return np.where(mx > 0, (mx - mn) / np.maximum(mx, 1.0), 0.0).astype(np.float32)


def _not_glass(rgb: np.ndarray) -> np.ndarray:
    """Pixels that are neither near-white (glass) nor near-black (pen, fill)."""
    mx, mn = _max_min(rgb)
    return (mn <= WHITE) & (mx >= BLACK)


def pixel_tissue(rgb: np.ndarray, saturation_threshold: float) -> np.ndarray:
    """Per-pixel tissue of an RGB image with the slide's saturation threshold.

    Same rule as :func:`tissue_mask` without the clean-up: saturation above the threshold and
    neither near-white nor near-black.

    Args:
        rgb: (h, w, 3) uint8.
        saturation_threshold: From :func:`plan_tiles` (``TilePlan.saturation_threshold``).

    Returns:
        (h, w) bool.
    """
    mx, mn = _max_min(rgb)
    chroma = (mx - mn).astype(np.float32)
    saturated = chroma > np.float32(saturation_threshold) * mx.astype(np.float32)
    return saturated & (mn <= WHITE) & (mx >= BLACK)


def _mask_level(slide: openslide.OpenSlide, mpp0: float) -> tuple[int, int]:
    """Return (level, integer box factor) giving a mask resolution close to :data:`MASK_MPP`."""
    level = 0
    for lvl, ds in enumerate(slide.level_downsamples):
        if mpp0 * ds <= MASK_MPP * (1 + 1e-6):
            level = lvl if ds >= slide.level_downsamples[level] else level
    level_mpp = mpp0 * slide.level_downsamples[level]
    factor = max(1, math.floor(MASK_MPP / level_mpp + 1e-6))
    return level, factor


def _low_res_image(slide: openslide.OpenSlide, path: Path, level: int, factor: int) -> np.ndarray:
    """Read ``level`` in chunks and box-downsample it by ``factor``: (h, w, 3) uint8."""
    width, height = slide.level_dimensions[level]
    ds = slide.level_downsamples[level]
    out_w, out_h = width // factor, height // factor
    out = np.full((out_h, out_w, 3), 255, dtype=np.uint8)
    chunk = max(factor, (_CHUNK // factor) * factor)
    for y in range(0, out_h * factor, chunk):
        for x in range(0, out_w * factor, chunk):
            w = min(chunk, out_w * factor - x)
            h = min(chunk, out_h * factor - y)
            loc = (round(x * ds), round(y * ds))
            arr = read_rgb(slide, path, loc, level, (w, h))
            if factor > 1:
                arr = np.asarray(_to_pil(arr).reduce(factor))
            oy, ox = y // factor, x // factor
            out[oy : oy + arr.shape[0], ox : ox + arr.shape[1]] = arr
    return out


def tissue_mask(rgb: np.ndarray, *, pixel_um2: float) -> tuple[np.ndarray, float]:
    """Tissue mask of a low-resolution RGB image: Otsu on HSV saturation, clean-up.

    A pixel is tissue when its saturation exceeds ``t = max(otsu(S), MIN_SATURATION)`` (Otsu over
    all pixels, glass included, so that it separates tissue from glass) and it is neither
    near-white nor near-black; pieces smaller than :data:`MIN_OBJECT_UM2` are removed
    and holes smaller than that are filled.

    Args:
        rgb: (h, w, 3) uint8 low-resolution image.
        pixel_um2: Area of one pixel (µm²).

    Returns:
        ``(mask, t)``: the bool mask and the saturation threshold.
    """
    sat = _saturation(rgb)
    valid = _not_glass(rgb)
    values = sat.ravel()
    if values.size > 1 and float(values.max()) > float(values.min()):
        thr = float(threshold_otsu(values))
    else:
        thr = MIN_SATURATION
    thr = max(thr, MIN_SATURATION)
    mask = (sat > thr) & valid
    min_px = max(1, round(MIN_OBJECT_UM2 / pixel_um2))
    mask = _drop_small(mask, min_px)
    holes = _drop_small(~mask, min_px)
    return ~holes, thr


def _drop_small(mask: np.ndarray, min_px: int) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_px
    keep[0] = False
    return keep[labels]


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
    for name, value in (("tile_um", tile_um), ("target_mpp", target_mpp)):
        if not (math.isfinite(value) and value > 0):
            msg = f"{path}: {name} must be positive, got {value}"
            raise FeatureError(msg)
    if max_tiles is not None and max_tiles < 1:
        msg = f"{path}: max_tiles must be >= 1, got {max_tiles}"
        raise FeatureError(msg)
    mpp_x, mpp_y, source = resolve_mpp(slide, path, mpp)
    mpp0 = 0.5 * (mpp_x + mpp_y)
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
    pitch_x, pitch_y = tile_um / mpp_x, tile_um / mpp_y
    n_cols = math.floor(width0 / pitch_x + 1e-9)
    n_rows = math.floor(height0 / pitch_y + 1e-9)
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
