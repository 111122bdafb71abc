"""The scanner augmentations of the nnU-Net trainer: calibration offset, blur and noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oncoflow.segmentation.augment import (
    CalibrationShiftTransform,
    ScannerDegradationTransform,
    hu_in_normalised_units,
)

PROPERTIES = {"0": {"std": 50.0, "mean": 80.0}, "1": {"std": 2.0}}


def test_hu_amounts_are_over_the_foreground_sd_of_ct_channels_only():
    schemes = ["CTNormalization", "ZScoreNormalization"]
    widths = hu_in_normalised_units(30.0, "intensity_shift_hu", schemes, PROPERTIES)
    assert widths == [pytest.approx(0.6), 0.0]
    assert hu_in_normalised_units(20.0, "scanner_noise_hu", schemes, PROPERTIES) == [
        pytest.approx(0.4),
        0.0,
    ]
    assert hu_in_normalised_units(0.0, "x", ["CTNormalization"], PROPERTIES) == [0.0]
    with pytest.raises(ValueError, match="scanner_noise_hu must be >= 0 HU"):
        hu_in_normalised_units(-1.0, "scanner_noise_hu", ["CTNormalization"], PROPERTIES)
    with pytest.raises(ValueError, match="CT channel 1: the plans give no foreground"):
        hu_in_normalised_units(10.0, "x", ["CTNormalization", "CTNormalization"], {"0": {"std": 5}})


def test_each_sample_gets_one_uniform_offset_per_ct_channel():
    torch.manual_seed(0)
    transform = CalibrationShiftTransform([0.6, 0.0])
    shifts = []
    for _ in range(2000):
        image = torch.zeros(2, 4, 5, 6)
        image[1] = 7.0
        out = transform(image=image.clone())["image"]
        assert torch.all(out[0] == out[0, 0, 0, 0])  # one offset for the whole channel
        assert torch.all(out[1] == 7.0)  # not a CT channel: untouched
        shifts.append(float(out[0, 0, 0, 0]))
    shifts = np.array(shifts)
    assert shifts.min() >= -0.6
    assert shifts.max() <= 0.6
    assert abs(shifts.mean()) < 0.03
    assert shifts.std() == pytest.approx(0.6 / np.sqrt(3), rel=0.06)  # U(-a, a): sd a / sqrt 3
    with pytest.raises(ValueError, match="3 channel"):
        transform(image=torch.zeros(3, 2, 2, 2))


def _degraded(transform: ScannerDegradationTransform, image: torch.Tensor) -> torch.Tensor:
    return transform(image=image.clone())["image"]


def test_degradation_blurs_in_mm_and_adds_noise_on_half_of_the_samples():
    torch.manual_seed(1)
    # a sharp edge along the last axis (1 mm voxels) and a flat non-CT channel
    image = torch.zeros(2, 4, 6, 40)
    image[0, ..., 20:] = 1.0
    image[1] = 3.0
    blur_only = ScannerDegradationTransform(4.0, (2.0, 2.0, 1.0), [0.0, 0.0], [True, False])
    blurred, kept = 0, 0
    for _ in range(400):
        out = _degraded(blur_only, image)
        assert torch.all(out[1] == 3.0)  # not CT: untouched
        edge = out[0, 0, 0]
        if torch.equal(edge, image[0, 0, 0]):
            kept += 1
            continue
        blurred += 1
        assert float(edge[19]) > 0.0  # the edge spreads
        assert float(edge[20]) < 1.0
        assert torch.allclose(out[0].mean(dim=(0, 1)), edge, atol=1e-5)  # no noise, no mixing
    assert 0.4 < blurred / 400 < 0.6

    flat = torch.zeros(1, 8, 8, 8)
    noise_only = ScannerDegradationTransform(0.0, (1.0, 1.0, 1.0), [0.5], [True], probability=1.0)
    sds = np.array([float(_degraded(noise_only, flat).std()) for _ in range(600)])
    assert sds.max() <= 0.5 * 1.15
    assert sds.mean() == pytest.approx(0.25, rel=0.08)  # SD ~ U(0, 0.5): mean 0.25
    with pytest.raises(ValueError, match="scanner_blur_mm must be >= 0"):
        ScannerDegradationTransform(-1.0, (1.0,), [0.0], [True])
