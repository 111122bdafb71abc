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


def elongation(
    inside: np.ndarray, spacing: Sequence[float], weights: np.ndarray | None = None
) -> float:
    """``sqrt(lambda_max / lambda_min)`` of the covariance of a region's voxel positions (mm).

    With ``weights`` (same shape, ``>= 0``) the covariance is the weighted one,
    ``C = sum_v w_v (p_v - mu)(p_v - mu)^T / sum_v w_v`` with ``mu`` the weighted centroid, over
    the voxels of ``inside`` with ``w_v > 0``. NaN below 4 voxels or for a flat region
    (``lambda_min = 0``).
    """
    inside = np.asarray(inside, dtype=bool)
    if weights is not None:
        inside = inside & (np.asarray(weights) > 0)
    if np.count_nonzero(inside) < 4:
        return float("nan")
    points = np.argwhere(inside) * np.asarray(spacing, dtype=float)
    w = np.ones(len(points)) if weights is None else np.asarray(weights, dtype=float)[inside]
    centred = points - (points * w[:, None]).sum(axis=0) / w.sum()
    eigen = np.linalg.eigvalsh((centred.T * w) @ centred / w.sum())
    return float(np.sqrt(eigen[-1] / eigen[0])) if eigen[0] > 0 else float("nan")


def largest_component(inside: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a boolean region (all ``False`` when empty)."""
    from scipy import ndimage

    labels, n = ndimage.label(np.asarray(inside, dtype=bool), structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return np.zeros(np.shape(inside), dtype=bool)
    return labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))


def contrast_elongation(
    image: np.ndarray, segmentation: np.ndarray, label: int, spacing: Sequence[float]
) -> float:
    """Elongation of a segmented lesion read off the image's contrast, not the mask's rim alone.

    A network's predicted lesion is rounder than the lesion: it misses the tips of an elongated
    one, so the elongation of the mask (:func:`elongation`) is compressed. Here each voxel of the
    lesion's largest component grown by one voxel (6-connectivity, inside the segmented organ
    grown by one voxel) counts by how lesion-like its intensity is,

        w_v = clip((x_v - m_o) / (m_l - m_o), 0, 1),

    with ``m_l`` the median of the component and ``m_o`` the median of the other labels of the
    segmentation (the organ around the lesion); the elongation is that of the ``w``-weighted
    covariance. It needs no threshold and works for a darker or a brighter lesion. Falls back to
    the component's own elongation when the segmentation has no other label or the two medians
    are within 1 unit.

    Args:
        image: Intensities (HU for CT), ``(slices, rows, columns)``.
        segmentation: Label map on the image's grid (0 = background).
        label: The lesion's label.
        spacing: Voxel spacing in mm along the array's axes.

    Returns:
        The elongation, NaN for a lesion of fewer than 4 voxels.
    """
    from scipy import ndimage

    segmentation = np.asarray(segmentation)
    lesion = largest_component(segmentation == label)
    organ = (segmentation > 0) & (segmentation != label)
    if np.count_nonzero(lesion) < 4:
        return float("nan")
    image = np.asarray(image, dtype=np.float64)
    m_lesion = float(np.median(image[lesion]))
    m_organ = float(np.median(image[organ])) if organ.any() else m_lesion
    if abs(m_lesion - m_organ) < 1.0:
        return elongation(lesion, spacing)
    grown = ndimage.binary_dilation(lesion) & ndimage.binary_dilation(segmentation > 0)
    weights = np.clip((image - m_organ) / (m_lesion - m_organ), 0.0, 1.0) * grown
    return elongation(grown, spacing, weights)


MAD_TO_SD = 1.4826
"""``sd = 1.4826 MAD`` for a normal distribution (MAD: median absolute deviation)."""


def robust_region_statistics(
    image: np.ndarray, inside: np.ndarray, spacing: Sequence[float]
) -> tuple[float, float, float]:
    """Median and robust SD of ``image`` in a segmented region's core, and its elongation.

    :func:`robust_channel_statistics` of one channel.

    Args:
        image: Intensities, ``(slices, rows, columns)``.
        inside: Boolean region, same shape.
        spacing: Voxel spacing in mm along the array's axes.

    Returns:
        ``(median, robust sd, elongation)``, NaN for an empty region.
    """
    medians, spreads, shape = robust_channel_statistics(np.asarray(image)[None], inside, spacing)
    return medians[0], spreads[0], shape


def robust_channel_statistics(
    channels: np.ndarray, inside: np.ndarray, spacing: Sequence[float]
) -> tuple[list[float], list[float], float]:
    """Per channel the median and robust SD in a segmented region's core; its elongation.

    For a *predicted* region, whose rim is uncertain: the voxels at its border mix the region
    with the tissue around it (partial volume), and a rim segmented one voxel too wide drags the
    mean and inflates the SD. So the region is reduced to its largest connected component
    (26-connectivity; stray islands dropped); the intensities are read in its core, the
    component eroded by one voxel within each slice (array axis 0 is the slice axis; the
    component itself when the core has fewer than 4 voxels), as the median and
    ``1.4826 * median(|v - median(v)|)`` (the SD of a normal distribution); the elongation is
    that of the component (:func:`elongation`). The component and its core are found once for
    every channel.

    Args:
        channels: Intensities, ``(channels, slices, rows, columns)``.
        inside: Boolean region, ``(slices, rows, columns)``.
        spacing: Voxel spacing in mm along the region's axes.

    Returns:
        ``(medians, robust sds, elongation)``: NaN for an empty region (every value) and where
        :func:`elongation` is NaN.
    """
    from scipy import ndimage

    n_channels = len(channels)
    component = largest_component(inside)
    if not component.any():
        return [float("nan")] * n_channels, [float("nan")] * n_channels, float("nan")
    in_slice = np.zeros((3, 3, 3), dtype=bool)
    in_slice[1] = ndimage.generate_binary_structure(2, 1)
    core = ndimage.binary_erosion(component, structure=in_slice)
    if np.count_nonzero(core) < 4:
        core = component
    medians, spreads = [], []
    for channel in channels:
        values = np.asarray(channel, dtype=np.float64)[core]
        median = float(np.median(values))
        medians.append(median)
        spreads.append(MAD_TO_SD * float(np.median(np.abs(values - median))))
    return medians, spreads, elongation(component, spacing)
