"""The image inside the network's own lesion: statistics a refit head can read beside its features.

The refit head (:mod:`oncoflow.segmentation.frozen_head`) reads the frozen network's lesion
descriptor: encoder features pooled over the predicted lesion. With ``nnunet.head_statistics``
it also reads what a reader measures on a mask, here on the network's *predicted* segmentation
of the case (never the given mask, outside training): per channel the median and robust SD of
the image in the predicted lesion's core (HU for CT, after the calibration when there is one) and
the lesion's elongation ``sqrt(lambda_max / lambda_min)`` of the covariance of its voxel
positions in mm (:func:`oncoflow.lesions.statistics.robust_channel_statistics`: largest connected
component, intensities in its core one voxel in from the rim, where partial volume with the organ
around it and an uncertain border inflate a plain SD). The lesion is the innermost label of the
study's regions (the highest label, which the other regions contain).

The statistics are in their own units (HU, a ratio), the encoder features near unit scale, and
the head's LayerNorm normalises a case's features together; so they enter the head as z-scores
with the mean and SD of the fold's *training* cases (:class:`StatisticsScaler`, stored in the head
file). A case whose predicted lesion is empty (or too small for an elongation) reads 0 there:
the training mean.

Read against a reference tissue (``nnunet.head_statistics_reference: r``, a label without texture
of its own, for pancreas_multitask the pancreas around the lesion): a scanner's calibration
offset moves every tissue's median alike and its noise adds to every tissue's variance, so with
``m_r, s_r`` the median and robust SD of the same channel in the core of label ``r`` of the same
segmentation (the organ's noise, in HU)::

    median' = median - m_r                       (lesion-to-organ contrast, HU)
    sd'     = sqrt(max(sd^2 - s_r^2, 0))         (the lesion's own heterogeneity, HU)

A gain (HU scale) and a PSF, which shrinks the lesion's texture, are not corrected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from oncoflow.errors import SegmentationError
from oncoflow.lesions.statistics import core_statistics, region_core, robust_channel_statistics

STATISTICS = ("median", "robust_sd", "elongation")
"""Per case: the median and robust SD of each channel in the predicted lesion's core, then its
elongation."""


def lesion_label(regions: Mapping[str, Sequence[int]]) -> int:
    """The innermost label of nnU-Net's regions (``{whole_pancreas: [1, 2], lesion: [2]}`` -> 2).

    Raises:
        SegmentationError: No region has a label.
    """
    labels = [int(label) for region in regions.values() for label in region]
    if not labels:
        msg = "nnunet.regions: no label, so no lesion to measure for head_statistics"
        raise SegmentationError(msg)
    return max(labels)


def statistics_width(n_channels: int) -> int:
    """Number of statistics per case: median and robust SD per channel, then the elongation."""
    return 2 * n_channels + 1


def lesion_statistics(
    data: np.ndarray,
    segmentation: np.ndarray,
    spacing: Sequence[float],
    label: int,
    reference: int | None = None,
) -> np.ndarray:
    """The statistics of one case (module docstring): ``(2 * channels + 1,)``, NaN where undefined.

    Args:
        data: The case's channels ``(channels, *spatial)`` as the network read them.
        segmentation: The predicted label map ``spatial``, on the grid of ``data``.
        spacing: Voxel spacing in mm along the spatial axes (nnU-Net's ``properties['spacing']``).
        label: The lesion's label.
        reference: Label of the reference tissue the median and SD are read against (module
            docstring), or ``None`` (absolute values). NaN where the case has none of it.

    Raises:
        SegmentationError: The segmentation is not on the grid of the data.
    """
    segmentation = np.asarray(segmentation)
    if segmentation.shape != data.shape[1:]:
        msg = f"predicted segmentation {segmentation.shape} is not on the image grid {data.shape}"
        raise SegmentationError(msg)
    medians, sds, elongation = robust_channel_statistics(data, segmentation == label, spacing)
    if reference is not None:
        organ_medians, organ_sds = core_statistics(data, region_core(segmentation == reference)[1])
        medians = list(np.subtract(medians, organ_medians))
        excess = np.square(sds) - np.square(organ_sds)
        sds = list(np.where(np.isnan(excess), np.nan, np.sqrt(np.clip(excess, 0.0, None))))
    return np.asarray([*medians, *sds, elongation], dtype=np.float64)


def present_mean_sd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD per column over the cases that have it (NaN: a statistic a case lacks).

    A column no case has reads mean NaN and SD 0.
    """
    x = np.asarray(x, dtype=np.float64)
    present = ~np.isnan(x)
    count = np.maximum(present.sum(axis=0), 1)
    mean = np.where(present, x, 0.0).sum(axis=0) / count
    var = np.where(present, (x - mean) ** 2, 0.0).sum(axis=0) / count
    return np.where(present.any(axis=0), mean, np.nan), np.sqrt(var)


@dataclass
class StatisticsScaler:
    """z-scores of the statistics with the training cases' mean and SD, missing values at 0.

    ``z_j = (x_j - m_j) / s_j`` with ``m_j, s_j`` the mean and SD over the training cases that
    have statistic ``j`` (``s_j = 1`` where it is 0 or undefined).

    Attributes:
        label: The lesion label the statistics were measured on.
        mean: ``m`` per statistic.
        sd: ``s`` per statistic.
        reference: The reference tissue's label they were read against, or ``None``.
    """

    label: int
    mean: np.ndarray
    sd: np.ndarray
    reference: int | None = None

    @classmethod
    def fit(cls, x: np.ndarray, label: int, reference: int | None = None) -> StatisticsScaler:
        """The scaler of training statistics ``x`` (cases x statistics)."""
        mean, sd = present_mean_sd(x)
        ref = None if reference is None else int(reference)
        return cls(int(label), np.nan_to_num(mean), np.where(sd > 0, sd, 1.0), ref)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """z-scores (float32), 0 where a statistic is missing.

        Raises:
            SegmentationError: ``x`` has another number of statistics.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.mean):
            msg = f"{x.shape} statistics for a scaler of {len(self.mean)}"
            raise SegmentationError(msg)
        return np.nan_to_num((x - self.mean) / self.sd, nan=0.0).astype(np.float32)

    def to_dict(self) -> dict:
        """Plain values, for the head file."""
        return {
            "label": self.label,
            "mean": self.mean.tolist(),
            "sd": self.sd.tolist(),
            "reference": self.reference,
        }

    @classmethod
    def from_dict(cls, data: dict) -> StatisticsScaler:
        """Inverse of :meth:`to_dict` (a file without ``reference`` reads absolute values)."""
        ref = data.get("reference")
        return cls(
            int(data["label"]),
            np.asarray(data["mean"]),
            np.asarray(data["sd"]),
            None if ref is None else int(ref),
        )
