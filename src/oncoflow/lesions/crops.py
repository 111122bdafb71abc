"""Lesion crops: 2D lesion slices, matched non-lesion crops and context patches, per time point.

For one patient and one image stem (a CT phase, an MRI sequence, PET), every axial slice of the
time point that contains lesion voxels is cropped as a square centred on the lesion's 3D centre
(centre of its bounding box, in voxels), with side

    side_mm = margin * E_0,   E_0 = largest in-plane bounding-box extent of the lesion at the
                                    patient's baseline (first time point with a lesion), in mm

(seed 000: margin 2; it measured the extent in voxels over z, y and x, which mixes slice
thickness with pixel size; we use millimetres in plane). The square is sampled onto ``size`` x
``size`` pixels by bilinear interpolation, so the crop is centred exactly even at the image border
(outside = the background value), and the same physical size is used at every time point, so a
growing lesion looks larger.

Matched non-lesion crops (extractor pre-training, seed 000):

- boxes of the same side on lesion slices, at a random angle and a distance of 1.45 - 2.0 lesion
  radii from the centre, rejected when they touch the lesion's in-plane bounding box or fall more
  than 20 % outside the image;
- organ slices just outside the lesion's z-range (``context_slices`` above and below, only slices
  with organ voxels), cropped with the lesion box.

Intensities: CT clipped to a HU window and scaled to [0, 1] (seed 000: W300/L50 = [-100, 200]);
MRI scaled by its 0.5 / 99.5 percentiles to [0, 1]; PET kept in SUV.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from oncoflow.errors import FeatureError

NEGATIVE_DISTANCE = (1.45, 2.0)
"""Range of the distance of a negative box centre from the lesion centre, in lesion radii."""
MAX_OUTSIDE = 0.2
"""Largest fraction of a negative box lying outside the image."""


@dataclass(frozen=True)
class LesionBox:
    """Where the crops of one stem x time point are cut.

    Attributes:
        centre: Lesion centre (z, y, x) in voxels (centre of the 3D bounding box).
        side_mm: Side of the square crop in mm.
        side_vox: Side in voxels along (y, x).
        bbox: In-plane lesion bounding box (y0, y1, x0, x1), inclusive, over all slices.
        z_range: First and last lesion slice (inclusive).
    """

    centre: tuple[float, float, float]
    side_mm: float
    side_vox: tuple[float, float]
    bbox: tuple[int, int, int, int]
    z_range: tuple[int, int]


def max_inplane_extent_mm(lesion: np.ndarray, spacing_zyx: Sequence[float]) -> float:
    """Largest in-plane bounding-box extent of a lesion mask ``(z, y, x)`` in mm (0 if empty)."""
    if not lesion.any():
        return 0.0
    _, ys, xs = np.nonzero(lesion)
    return float(max((np.ptp(ys) + 1) * spacing_zyx[1], (np.ptp(xs) + 1) * spacing_zyx[2]))


def lesion_box(lesion: np.ndarray, spacing_zyx: Sequence[float], side_mm: float) -> LesionBox:
    """Centre, in-plane bounding box and z-range of a non-empty lesion mask ``(z, y, x)``.

    Raises:
        FeatureError: Empty mask, or a non-positive side.
    """
    if not lesion.any():
        msg = "empty lesion mask: no lesion box"
        raise FeatureError(msg)
    if side_mm <= 0:
        msg = f"crop side {side_mm} mm must be positive"
        raise FeatureError(msg)
    zs, ys, xs = np.nonzero(lesion)
    centre = tuple((float(a.min()) + float(a.max())) / 2.0 for a in (zs, ys, xs))
    side_vox = (side_mm / spacing_zyx[1], side_mm / spacing_zyx[2])
    bbox = (int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max()))
    return LesionBox(centre, float(side_mm), side_vox, bbox, (int(zs.min()), int(zs.max())))  # type: ignore[arg-type]


def crop_square(
    image2d: np.ndarray,
    centre_yx: Sequence[float],
    side_vox: Sequence[float],
    size: int,
    *,
    order: int = 1,
    fill: float = 0.0,
) -> np.ndarray:
    """Sample the square of ``side_vox`` (y, x) centred at ``centre_yx`` onto ``size`` x ``size``.

    Pixel ``i`` of the output samples the input at ``c - s/2 + (i + 0.5) s / size`` (pixel
    centres), so the crop centre maps exactly to the output centre. Outside the image = ``fill``.
    """
    axes = [
        c - s / 2.0 + (np.arange(size) + 0.5) * s / size
        for c, s in zip(centre_yx, side_vox, strict=True)
    ]
    grid_y, grid_x = np.meshgrid(axes[0], axes[1], indexing="ij")
    return ndimage.map_coordinates(
        image2d.astype(np.float32), [grid_y, grid_x], order=order, mode="constant", cval=fill
    ).astype(np.float32)


def normalise(image: np.ndarray, modality: str, window: Sequence[float] | None) -> np.ndarray:
    """Scale intensities for the crops (float32).

    CT: clip to ``window`` (HU) and map to [0, 1]; MR: 0.5 / 99.5 percentiles to [0, 1]; PET and
    anything else: unchanged.
    """
    if modality == "CT" and window is not None:
        low, high = float(window[0]), float(window[1])
        return ((np.clip(image, low, high) - low) / (high - low)).astype(np.float32)
    if modality == "MR":
        low, high = np.percentile(image, [0.5, 99.5])
        scale = high - low if high > low else 1.0
        return np.clip((image - low) / scale, 0.0, 1.0).astype(np.float32)
    return image.astype(np.float32)


def _touches(box_yx: tuple[float, float, float, float], bbox: tuple[int, int, int, int]) -> bool:
    """Whether a box (y0, y1, x0, x1 in continuous voxel coordinates) touches the lesion bbox."""
    y0, y1, x0, x1 = box_yx
    by0, by1, bx0, bx1 = bbox
    # voxel k covers [k - 0.5, k + 0.5]
    return not (y1 <= by0 - 0.5 or y0 >= by1 + 0.5 or x1 <= bx0 - 0.5 or x0 >= bx1 + 0.5)


def _outside_fraction(
    box_yx: tuple[float, float, float, float], shape_yx: tuple[int, int]
) -> float:
    y0, y1, x0, x1 = box_yx
    inside_y = max(0.0, min(y1, shape_yx[0] - 0.5) - max(y0, -0.5))
    inside_x = max(0.0, min(x1, shape_yx[1] - 0.5) - max(x0, -0.5))
    return 1.0 - (inside_y * inside_x) / ((y1 - y0) * (x1 - x0))


def negative_boxes(
    box: LesionBox,
    slices: Sequence[int],
    shape_yx: tuple[int, int],
    per_slice: int,
    rng: np.random.Generator,
    *,
    max_tries: int = 200,
) -> list[tuple[int, float, float]]:
    """Centres ``(z, y, x)`` of non-lesion boxes of the lesion box's size on lesion slices.

    A candidate is drawn at a uniform angle and a distance of 1.45 - 2.0 lesion radii (radius =
    half the larger side) and kept if it does not touch the lesion's in-plane bounding box and
    lies at most 20 % outside the image. Slices where no candidate fits get fewer boxes.
    """
    half_y, half_x = box.side_vox[0] / 2.0, box.side_vox[1] / 2.0
    radius = max(half_y, half_x)
    out: list[tuple[int, float, float]] = []
    for z in slices:
        kept = 0
        for _ in range(max_tries):
            if kept >= per_slice:
                break
            angle = rng.uniform(0, 2 * np.pi)
            distance = rng.uniform(*NEGATIVE_DISTANCE) * radius
            cy = box.centre[1] + distance * np.sin(angle)
            cx = box.centre[2] + distance * np.cos(angle)
            extent = (cy - half_y, cy + half_y, cx - half_x, cx + half_x)
            if _touches(extent, box.bbox) or _outside_fraction(extent, shape_yx) > MAX_OUTSIDE:
                continue
            out.append((int(z), float(cy), float(cx)))
            kept += 1
    return out


def context_slices(organ: np.ndarray, z_range: tuple[int, int], count: int) -> list[int]:
    """Up to ``count`` organ slices just below and ``count`` just above the lesion z-range."""
    with_organ = set(np.nonzero(organ.reshape(organ.shape[0], -1).any(axis=1))[0].tolist())
    below = [z for z in range(z_range[0] - 1, -1, -1) if z in with_organ][:count]
    above = [z for z in range(z_range[1] + 1, organ.shape[0]) if z in with_organ][:count]
    return sorted(below + above)
