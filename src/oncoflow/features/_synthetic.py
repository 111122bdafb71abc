"""Synthetic whole-slide images for tests and benchmarks, written tile by tile (flat memory).

:func:`write_blob_slide` writes a generic pyramidal tiled TIFF (JPEG tiles, downsamples 1, 4,
16, ... until the level is at most 512 px a side) of any size: white glass with a few round
tissue pieces filled with an H&E-like texture. Tiles are generated one at a time and handed to
``tifffile`` as an iterator, so a 20,000 px slide is written in seconds in a few MB of memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

TILE = 256
"""TIFF tile side (px)."""

_H = np.array([0.65, 0.70, 0.29], dtype=np.float32)
_E = np.array([0.07, 0.99, 0.45], dtype=np.float32)


def he_texture(rng: np.random.Generator, size: int = TILE) -> np.ndarray:
    """An H&E-like (size, size, 3) uint8 texture: pink stroma with purple nuclei-like dots."""
    nuclei = np.zeros((size, size), dtype=np.float32)
    n = int(size * size * 0.0025)
    nuclei[rng.integers(0, size, n), rng.integers(0, size, n)] = 1.0
    nuclei = np.clip(ndimage.gaussian_filter(nuclei, 3.0, mode="wrap") * 40.0, 0.0, 1.0)
    h = 0.06 + 0.8 * nuclei
    e = 0.25 + 0.1 * ndimage.gaussian_filter(rng.standard_normal((size, size)), 2.0, mode="wrap")
    od = h[..., None] * _H + e[..., None] * _E
    return np.clip(245.0 * np.power(10.0, -od), 0, 255).astype(np.uint8)


def _tiles(
    shape: tuple[int, int],
    downsample: int,
    blobs: Sequence[tuple[float, float, float]],
    texture: np.ndarray,
) -> Iterator[np.ndarray]:
    """Yield the (TILE, TILE, 3) tiles of one level in row-major order."""
    height, width = shape
    white = np.full((TILE, TILE, 3), 255, dtype=np.uint8)
    tex = np.tile(texture, (max(1, TILE // texture.shape[0]), max(1, TILE // texture.shape[1]), 1))
    for ty in range(0, height, TILE):
        for tx in range(0, width, TILE):
            # level-0 bounding box of the tile
            x0, y0 = tx * downsample, ty * downsample
            x1, y1 = (tx + TILE) * downsample, (ty + TILE) * downsample
            touching = [
                (cx, cy, r)
                for cx, cy, r in blobs
                if x0 - r <= cx <= x1 + r and y0 - r <= cy <= y1 + r
            ]
            if not touching:
                yield white
                continue
            yy, xx = np.mgrid[ty : ty + TILE, tx : tx + TILE].astype(np.float32)
            xx = (xx + 0.5) * downsample
            yy = (yy + 0.5) * downsample
            inside = np.zeros((TILE, TILE), dtype=bool)
            for cx, cy, r in touching:
                inside |= (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
            inside &= (xx < width * downsample) & (yy < height * downsample)
            yield np.where(inside[..., None], tex, white)


def write_blob_slide(
    path: Path,
    *,
    size: tuple[int, int] = (20480, 20480),
    mpp: float | None = 0.5,
    blobs: Sequence[tuple[float, float, float]] | None = None,
    seed: int = 0,
    quality: int = 80,
) -> list[tuple[float, float, float]]:
    """Write a pyramidal tiled TIFF of white glass with round tissue pieces.

    Args:
        path: Output ``.tif``.
        size: (width, height) of level 0 (px).
        mpp: Level-0 µm/px written as ``XResolution`` / ``YResolution`` (px/cm); ``None`` writes
            no resolution (openslide then reports no ``openslide.mpp-x``).
        blobs: Tissue discs as level-0 ``(cx, cy, radius)`` px; default three discs covering
            about 5 % of the slide.
        seed: Seed of the texture.
        quality: JPEG quality.

    Returns:
        The discs written.
    """
    import tifffile

    width, height = size
    if blobs is None:
        s = min(width, height)
        blobs = [(0.3 * width, 0.3 * height, 0.09 * s), (0.65 * width, 0.55 * height, 0.12 * s)]
        blobs.append((0.35 * width, 0.75 * height, 0.07 * s))
    blobs = [(float(cx), float(cy), float(r)) for cx, cy, r in blobs]
    texture = he_texture(np.random.default_rng(seed))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    downsample = 1
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        while True:
            lw, lh = -(-width // downsample), -(-height // downsample)
            kwargs = {}
            if mpp is not None:
                res = 10000.0 / (mpp * downsample)
                kwargs = {"resolution": (res, res), "resolutionunit": "CENTIMETER"}
            tw.write(
                _tiles((lh, lw), downsample, blobs, texture),
                shape=(lh, lw, 3),
                dtype=np.uint8,
                tile=(TILE, TILE),
                compression="jpeg",
                compressionargs={"level": quality},
                photometric="rgb",
                subfiletype=0 if downsample == 1 else 1,
                metadata=None,
                software=False,
                **kwargs,
            )
            if max(lw, lh) <= 2 * TILE:
                break
            downsample *= 4
    return blobs
