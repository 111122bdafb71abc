"""benchmarks/shape_fidelity.py: the contrast-read elongation its rule compared (not wired in)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from oncoflow.lesions.statistics import elongation

shape_fidelity = importlib.import_module("shape_fidelity")
contrast = shape_fidelity.contrast_elongation


def _ellipsoid(shape, centre, radii) -> np.ndarray:
    grid = np.indices(shape, dtype=float)
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1.0


def test_contrast_elongation_reads_the_tips_a_round_mask_misses() -> None:
    shape, spacing = (40, 40, 40), (1.0, 1.0, 1.0)
    lesion = _ellipsoid(shape, (20, 20, 20), (10, 5, 5))  # axis ratio 2 along axis 0
    organ = _ellipsoid(shape, (20, 20, 20), (16, 12, 12))
    image = np.where(organ, 100.0, -100.0)
    image[lesion] = 40.0
    # a network's rounder mask: the lesion without its tips (2 voxels short at each end)
    segmentation = np.where(organ, 1, 0).astype(np.uint8)
    segmentation[lesion & (np.abs(np.indices(shape)[0] - 20) <= 8)] = 2
    true = elongation(lesion, spacing)
    rim = elongation(segmentation == 2, spacing)
    read = contrast(image, segmentation, 2, spacing)
    assert true == pytest.approx(2.0, rel=0.05)
    assert rim < true - 0.1
    assert abs(read - true) < 0.3 * abs(rim - true)  # one voxel past the rim recovered
    # a mask that is the lesion reads its ratio either way (weights 1 inside, 0 in the organ)
    exact = np.where(organ, 1, 0).astype(np.uint8)
    exact[lesion] = 2
    assert contrast(image, exact, 2, spacing) == pytest.approx(2.0, rel=0.05)
    # no organ label, or no contrast: the mask's own elongation
    assert contrast(image, (exact == 2).astype(np.uint8) * 2, 2, spacing) == (
        pytest.approx(elongation(lesion, spacing))
    )
    assert np.isnan(contrast(image, np.zeros(shape, np.uint8), 2, spacing))


def test_weighted_elongation_with_unit_weights_is_the_plain_one() -> None:
    inside = _ellipsoid((30, 30, 30), (15, 15, 15), (4, 8, 12))
    plain = elongation(inside, (1.0, 2.0, 1.5))
    weighted = shape_fidelity.weighted_elongation(np.where(inside, 3.0, 0.0), (1.0, 2.0, 1.5))
    assert weighted == pytest.approx(plain)
