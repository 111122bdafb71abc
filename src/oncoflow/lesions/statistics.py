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
        ``(mean, sd, elongation)``: NaN for an empty region; the elongation
        ``sqrt(lambda_max / lambda_min)`` of the covariance of the voxel positions (mm) is NaN
        below 4 voxels or for a flat region (``lambda_min = 0``).
    """
    n = int(np.count_nonzero(inside))
    if not n:
        return float("nan"), float("nan"), float("nan")
    values = np.asarray(image, dtype=np.float64)[inside]
    elongation = float("nan")
    if n >= 4:
        points = np.argwhere(inside) * np.asarray(spacing, dtype=float)
        eigen = np.linalg.eigvalsh(np.cov(points, rowvar=False))
        if eigen[0] > 0:
            elongation = float(np.sqrt(eigen[-1] / eigen[0]))
    return float(values.mean()), float(values.std()), elongation
