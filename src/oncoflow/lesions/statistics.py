"""What a reader measures on a region of an image: its mean and SD inside, and its elongation.

One definition for every caller: the ``baseline_lesion`` statistics of the given masks
(:func:`oncoflow.baselines.sizes.label_statistics`) and those of a multitask network's predicted
lesion that its refit head reads (:mod:`oncoflow.segmentation.lesion_statistics`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def region_statistics(
    image: np.ndarray, inside: np.ndarray, spacing: Sequence[float]
) -> tuple[float, float, float]:
    """Mean and SD of ``image`` inside a region and the region's elongation (module docstring).

    Args:
        image: Intensities (HU for CT), any number of axes.
        inside: Boolean region, same shape.
        spacing: Voxel spacing in mm along the array's axes.

    Returns:
        ``(mean, sd, elongation)``: NaN for an empty region; the elongation is that of
        :func:`elongation`.
    """
    if not np.any(inside):
        return float("nan"), float("nan"), float("nan")
    values = np.asarray(image, dtype=np.float64)[inside]
    return float(values.mean()), float(values.std()), elongation(inside, spacing)


def elongation(inside: np.ndarray, spacing: Sequence[float]) -> float:
    """``sqrt(lambda_max / lambda_min)`` of the covariance of a region's voxel positions (mm).

    NaN below 4 voxels or for a flat region (``lambda_min = 0``).
    """
    if np.count_nonzero(inside) < 4:
        return float("nan")
    points = np.argwhere(inside) * np.asarray(spacing, dtype=float)
    eigen = np.linalg.eigvalsh(np.cov(points, rowvar=False))
    return float(np.sqrt(eigen[-1] / eigen[0])) if eigen[0] > 0 else float("nan")


def largest_component(inside: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a boolean region (all ``False`` when empty)."""
    from scipy import ndimage

    labels, n = ndimage.label(np.asarray(inside, dtype=bool), structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return np.zeros(np.shape(inside), dtype=bool)
    return labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))


MAD_TO_SD = 1.4826
"""``sd = 1.4826 MAD`` for a normal distribution (MAD: median absolute deviation)."""


def region_core(inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A predicted region's largest component and the core its intensities are read in.

    For a *predicted* region, whose rim is uncertain: the voxels at its border mix the region
    with the tissue around it (partial volume), and a rim segmented one voxel too wide drags the
    mean and inflates the SD. So the region is reduced to its largest connected component
    (26-connectivity; stray islands dropped), and its core is the component eroded by one voxel
    within each slice (array axis 0 is the slice axis; the component itself when the core has
    fewer than 4 voxels).

    Args:
        inside: Boolean region, ``(slices, rows, columns)``.

    Returns:
        ``(component, core)``, boolean, both empty for an empty region.
    """
    from scipy import ndimage

    component = largest_component(inside)
    if not component.any():
        return component, component
    in_slice = np.zeros((3, 3, 3), dtype=bool)
    in_slice[1] = ndimage.generate_binary_structure(2, 1)
    core = ndimage.binary_erosion(component, structure=in_slice)
    return component, (core if np.count_nonzero(core) >= 4 else component)


def core_statistics(channels: np.ndarray, core: np.ndarray) -> tuple[list[float], list[float]]:
    """Per channel the median and robust SD ``1.4826 * median(|v - median(v)|)`` in ``core``.

    The robust SD is the SD of a normal distribution with that median absolute deviation (same
    units as the channel, HU for CT). NaN for every value when ``core`` is empty.
    """
    if not np.any(core):
        return [float("nan")] * len(channels), [float("nan")] * len(channels)
    medians, spreads = [], []
    for channel in channels:
        values = np.asarray(channel, dtype=np.float64)[core]
        median = float(np.median(values))
        medians.append(median)
        spreads.append(MAD_TO_SD * float(np.median(np.abs(values - median))))
    return medians, spreads


def robust_channel_statistics(
    channels: np.ndarray, inside: np.ndarray, spacing: Sequence[float]
) -> tuple[list[float], list[float], float]:
    """Per channel the median and robust SD in a segmented region's core; its elongation.

    The core is that of :func:`region_core` (found once for every channel), the statistics
    those of :func:`core_statistics`, the elongation that of the component (:func:`elongation`).

    Args:
        channels: Intensities, ``(channels, slices, rows, columns)``.
        inside: Boolean region, ``(slices, rows, columns)``.
        spacing: Voxel spacing in mm along the region's axes.

    Returns:
        ``(medians, robust sds, elongation)``: NaN for an empty region (every value) and where
        :func:`elongation` is NaN.
    """
    component, core = region_core(inside)
    medians, spreads = core_statistics(channels, core)
    if not component.any():
        return medians, spreads, float("nan")
    return medians, spreads, elongation(component, spacing)
