"""Tissue detection for pathomics: a low-resolution tissue mask of a slide and per-pixel tissue.

The mask is built from a low-resolution pyramid level read in chunks (level 0 is never read
whole): Otsu on HSV saturation, near-white (glass) and near-black (pen, fill) pixels excluded,
small pieces removed and small holes filled.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import openslide
from scipy import ndimage
from skimage.filters import threshold_otsu

from oncoflow.features._slide_io import _to_pil, read_rgb

MASK_MPP = 16.0
"""Resolution of the tissue mask (µm/px): the mask level is the coarsest level at or below it,
box-downsampled by an integer factor towards it."""

MIN_OBJECT_UM2 = 10_000.0
"""Tissue pieces (and holes) smaller than this area (µm², 0.01 mm²) are removed (filled)."""

MIN_SATURATION = 0.05
"""Floor of the Otsu saturation threshold (an empty slide has no second mode)."""

WHITE = 220
"""A pixel whose three channels are all above this is background (glass)."""

BLACK = 30
"""A pixel whose three channels are all below this is not tissue (pen, slide edge, scanner fill)."""

_CHUNK = 2048
"""Side (px of the mask level) of the regions read while building the tissue mask."""


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
