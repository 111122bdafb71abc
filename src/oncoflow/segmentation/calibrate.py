"""Reference-tissue calibration of CT channels: a scanner's HU offset measured on each case.

A CT scanner's calibration drifts: the demo's external site reads every tissue 22 HU lower than
site_a and about 50 HU lower than site_b (docs/demo.md), as large as the subtype's own shift of
the lesion's attenuation (sd 14 HU). A network and its head that read absolute attenuation then
move their class boundaries with the scanner. A tissue whose attenuation does not depend on the
class (for pancreas_multitask the pancreas around the lesion, label 1) measures the drift on
each case, and the case's CT channels are shifted so that the tissue's median reads ``r``::

    x'_v = x_v + (r - median_{u in tissue} x_u)        (HU; every voxel v of the channel)

The median is that of the case's own voxels of the tissue label: a given mask where the case
has one, else the network's own prediction (:func:`two_pass_offset`). Nothing about the
case's class is read. A gain (HU scale) is not corrected, only the offset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from oncoflow.errors import SegmentationError


def tissue_median(data: np.ndarray, labels: np.ndarray, label: int, *, case: str) -> float:
    """Median intensity (HU) of the first channel over the voxels of ``label``.

    Args:
        data: Channels ``(C, Z, Y, X)`` as nnU-Net's reader returns them.
        labels: Label map ``(Z, Y, X)`` or ``(1, Z, Y, X)`` on the same grid.
        label: The reference tissue's label value.
        case: Case id, named in errors.

    Raises:
        SegmentationError: The grids differ, or the case has no voxel of ``label``.
    """
    labels = np.asarray(labels)
    if labels.ndim == data.ndim:
        labels = labels[0]
    if labels.shape != data.shape[1:]:
        msg = f"case {case}: label map {labels.shape} and image {data.shape[1:]} differ in shape"
        raise SegmentationError(msg)
    inside = labels == label
    if not inside.any():
        msg = f"case {case}: no voxel of reference label {label}; cannot calibrate its CT"
        raise SegmentationError(msg)
    return float(np.median(data[0][inside]))


def shift_channels(data: np.ndarray, offset: float, channels: Sequence[int]) -> np.ndarray:
    """A copy of ``data`` with ``offset`` (HU) added to the given channels."""
    out = np.array(data, dtype=np.float32, copy=True)
    for c in channels:
        out[c] += np.float32(offset)
    return out


def two_pass_offset(
    data: np.ndarray,
    segment: Callable[[np.ndarray], np.ndarray],
    label: int,
    reference_hu: float,
    *,
    case: str,
    channels: Sequence[int] = (0,),
    passes: int = 2,
) -> float:
    """The offset of a case without a mask, from the network's own segmentation of the tissue.

    Pass 1 segments the uncalibrated image; each further pass segments the image calibrated
    with the previous offset (a network trained on calibrated images segments those best).

    Args:
        data: Channels ``(C, Z, Y, X)`` in HU.
        segment: Image ``(C, Z, Y, X)`` -> label map on the same grid (a trained network).
        label: The reference tissue's label value.
        reference_hu: ``r``, the median the tissue is brought to.
        case: Case id, named in errors.
        channels: The CT channels shifted between passes.
        passes: Segmentations run (``>= 1``).

    Returns:
        ``r - median`` of the last pass's tissue, HU.
    """
    offset = 0.0
    for _ in range(max(1, passes)):
        labels = segment(shift_channels(data, offset, channels))
        offset = reference_hu - tissue_median(data, labels, label, case=case)
    return offset
