"""The scanner calibration offset augmentation of the nnU-Net trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oncoflow.segmentation.augment import CalibrationShiftTransform, calibration_half_widths

PROPERTIES = {"0": {"std": 50.0, "mean": 80.0}, "1": {"std": 2.0}}


def test_half_widths_are_hu_over_the_foreground_sd_of_ct_channels_only():
    widths = calibration_half_widths(30.0, ["CTNormalization", "ZScoreNormalization"], PROPERTIES)
    assert widths == [pytest.approx(0.6), 0.0]
    assert calibration_half_widths(0.0, ["CTNormalization"], PROPERTIES) == [0.0]
    with pytest.raises(ValueError, match=">= 0 HU"):
        calibration_half_widths(-1.0, ["CTNormalization"], PROPERTIES)
    with pytest.raises(ValueError, match="CT channel 1: the plans give no foreground"):
        calibration_half_widths(10.0, ["CTNormalization", "CTNormalization"], {"0": {"std": 5}})


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
