"""H&E-like whole-slide images written as pyramidal tiled TIFF (generic or Aperio SVS).

A slide is generated at 2 µm/px (level 1) and upsampled 4x (bilinear) to level 0 at
``MPP = 0.5`` µm/px; level 2 is a 4x box downsample of level 1. Content (Beer-Lambert colour
model, hematoxylin vector of Ruifrok & Johnston, a pinker eosin): a tissue island on a white
background; pink eosin stroma with fibres (short line segments whose orientation is
``theta_0 + slow field + disorder_sd * N(0, 1)``, ``disorder_sd = 0.15 + 1.35 * disorder``
radians) and purple hematoxylin nuclei placed with a clustered Poisson process at
``800 + 4200 * density`` nuclei per mm² of tissue. The site changes the stain strength
(hematoxylin, eosin multipliers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MPP = 0.5
"""Level-0 resolution (µm per pixel)."""

LEVEL1_SIZE = (1024, 640)
"""(width, height) of level 1 (2 µm/px); level 0 is 4x larger."""

_H = np.array([0.65, 0.70, 0.29])
_E = np.array([0.07, 0.99, 0.45])


def _splat(shape: tuple[int, int], rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Count points per pixel (points outside the image are dropped)."""
    img = np.zeros(shape, dtype=np.float32)
    r = np.rint(rows).astype(np.int64)
    c = np.rint(cols).astype(np.int64)
    keep = (r >= 0) & (r < shape[0]) & (c >= 0) & (c < shape[1])
    np.add.at(img, (r[keep], c[keep]), 1.0)
    return img


def render_slide(
    rng: np.random.Generator,
    *,
    disorder: float,
    density: float,
    stain: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """Return the level-1 RGB image (height, width, 3) uint8 of one H&E-like slide.

    Args:
        rng: Pixel generator.
        disorder: Fibre orientation disorder latent in [0, 1].
        density: Nuclei density latent in [0, 1].
        stain: (hematoxylin, eosin) strength multipliers of the site.
    """
    from scipy import ndimage  # imported here: planning a cohort must not pay for scipy

    width, height = LEVEL1_SIZE
    shape = (height, width)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xx - width / 2) / (0.42 * width)) ** 2 + ((yy - height / 2) / (0.42 * height)) ** 2
    blob = ndimage.gaussian_filter(rng.standard_normal((height // 8, width // 8)), 4.0)
    blob = ndimage.zoom(blob / (blob.std() + 1e-9), 8, order=1)[:height, :width]
    tissue = ((1.0 - r2) + 0.25 * blob) > 0.15
    tissue = ndimage.gaussian_filter(tissue.astype(np.float32), 1.5)
    area_mm2 = float(tissue.sum()) * (4 * MPP / 1000.0) ** 2

    n_fibres = int(2200 * area_mm2)
    cy = rng.uniform(0, height, n_fibres)
    cx = rng.uniform(0, width, n_fibres)
    inside = tissue[cy.astype(int), cx.astype(int)] > 0.5
    cy, cx = cy[inside], cx[inside]
    slow = ndimage.gaussian_filter(rng.standard_normal((height // 16, width // 16)), 3.0)
    slow = slow / (slow.std() + 1e-9)
    theta0 = float(rng.uniform(0, np.pi))
    sd = 0.15 + 1.35 * disorder
    theta = (
        theta0
        + 0.3 * slow[(cy // 16).astype(int), (cx // 16).astype(int)]
        + sd * rng.standard_normal(len(cy))
    )
    length = rng.uniform(20, 45, len(cy))
    t = np.linspace(-0.5, 0.5, 48)[None, :] * length[:, None]
    rows = cy[:, None] + t * np.sin(theta)[:, None]
    cols = cx[:, None] + t * np.cos(theta)[:, None]
    fibres = ndimage.gaussian_filter(_splat(shape, rows.ravel(), cols.ravel()), 0.7)
    fibres = 1.0 - np.exp(-0.9 * fibres)

    per_mm2 = 800.0 + 4200.0 * density
    n_nuclei = int(per_mm2 * area_mm2)
    cluster = ndimage.gaussian_filter(rng.standard_normal((height // 8, width // 8)), 2.0)
    cluster = ndimage.zoom(cluster / (cluster.std() + 1e-9), 8, order=1)[:height, :width]
    weight = tissue * np.exp(0.6 * cluster)
    prob = weight.ravel() / weight.sum()
    pick = rng.choice(prob.size, size=n_nuclei, p=prob)
    ny = pick // width + rng.uniform(-0.5, 0.5, n_nuclei)
    nx = pick % width + rng.uniform(-0.5, 0.5, n_nuclei)
    nuclei = ndimage.gaussian_filter(_splat(shape, ny, nx), 1.1)
    nuclei = np.clip(nuclei * 9.0, 0.0, 1.0)

    h_conc = stain[0] * (0.06 * tissue + 0.85 * nuclei)
    e_conc = stain[1] * tissue * (0.22 + 0.30 * fibres) * (1.0 - 0.6 * nuclei)
    od = h_conc[..., None] * _H + e_conc[..., None] * _E
    od += 0.004 * rng.standard_normal((height, width, 1)).astype(np.float32)
    rgb = 245.0 * np.power(10.0, -od)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def write_slide(path: Path, level1: np.ndarray, *, aperio: bool = False, quality: int = 75) -> None:
    """Write a 3-level pyramidal tiled TIFF (256 px JPEG tiles) from the level-1 image.

    Generic TIFF: ``XResolution = YResolution = 10000 / MPP`` px/cm with ResolutionUnit
    centimetre (openslide reports ``openslide.mpp-x = 0.5``). Aperio SVS: the same pyramid with an
    ``ImageDescription`` starting ``Aperio Image Library`` and carrying ``|MPP = 0.5``. No date or
    software tag is written, so the bytes depend only on the pixels.

    Args:
        path: Output ``.tif`` / ``.svs``.
        level1: (height, width, 3) uint8 image at 2 µm/px.
        aperio: Write Aperio-style descriptions.
        quality: JPEG quality.
    """
    import tifffile
    from PIL import Image

    h1, w1 = level1.shape[:2]
    level0 = np.asarray(Image.fromarray(level1).resize((4 * w1, 4 * h1), Image.Resampling.BILINEAR))
    level2 = np.asarray(Image.fromarray(level1).resize((w1 // 4, h1 // 4), Image.Resampling.BOX))
    levels = [level0, level1, level2]
    w0, h0 = 4 * w1, 4 * h1
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path, bigtiff=False) as tw:
        for i, level in enumerate(levels):
            desc = None
            if aperio:
                lh, lw = level.shape[:2]
                if i == 0:
                    desc = (
                        f"Aperio Image Library v12.0.15\r\n{w0}x{h0} [0,0 {w0}x{h0}] (256x256) "
                        f"JPEG/RGB Q={quality}|AppMag = 20|MPP = {MPP}|Filename = {path.stem}"
                    )
                else:
                    desc = (
                        f"Aperio Image Library v12.0.15\r\n{w0}x{h0} -> {lw}x{lh} "
                        f"JPEG/RGB Q={quality}"
                    )
            res = 10000.0 / (MPP * 4**i)
            tw.write(
                level,
                tile=(256, 256),
                compression="jpeg",
                compressionargs={"level": quality},
                photometric="rgb",
                resolution=(res, res),
                resolutionunit="CENTIMETER",
                subfiletype=0 if i == 0 else 1,
                description=desc,
                metadata=None,
                software=False,
            )
