"""Segmentation overlap: the Dice coefficient of two masks, and of every region of two label maps.

A *region* is a set of label values (nnU-Net's region-based training: the whole pancreas is
``{1, 2}`` = pancreas + lesion, the lesion is ``{2}``). For binary masks ``A`` (prediction) and
``B`` (reference) of one region,

    Dice = 2 |A ∩ B| / (|A| + |B|)

(voxel counts; the result is unitless, in [0, 1]) with two explicit empty cases: both masks
empty -> 1 (the model correctly finds nothing), exactly one empty -> 0. nnU-Net's own summary
leaves the both-empty case out (NaN); we count it, so a model that never hallucinates a lesion in
lesion-free cases gets credit. On non-empty masks Dice equals the F1 score of the voxels
(scikit-learn's ``f1_score`` on the flattened masks, tested); it is counted here directly because
that definition has no both-empty case and a 3-D mask holds millions of voxels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from oncoflow.errors import ModelError


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Dice of two boolean masks of one shape (both empty: 1, one empty: 0).

    ``Dice = 2 |A ∩ B| / (|A| + |B|)`` with ``|.|`` the number of true voxels.

    Args:
        prediction: Predicted mask (anything non-zero is inside).
        reference: Reference mask, same shape.

    Returns:
        Dice in [0, 1].

    Raises:
        ModelError: Different shapes.
    """
    a = np.asarray(prediction, dtype=bool)
    b = np.asarray(reference, dtype=bool)
    if a.shape != b.shape:
        msg = f"masks of different shapes {a.shape} and {b.shape}"
        raise ModelError(msg)
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def region_dice(
    prediction: np.ndarray, reference: np.ndarray, regions: Mapping[str, Sequence[int]]
) -> dict[str, float]:
    """Dice of every region (label set) between two label maps.

    Args:
        prediction: Predicted label map.
        reference: Reference label map, same shape.
        regions: Region name -> label values that make up the region.

    Returns:
        Region name -> :func:`dice` of the two region masks.

    Raises:
        ModelError: Different shapes.
    """
    return {
        name: dice(np.isin(prediction, list(labels)), np.isin(reference, list(labels)))
        for name, labels in regions.items()
    }
