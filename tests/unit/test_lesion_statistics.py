"""The image inside a predicted lesion (oncoflow.segmentation.lesion_statistics), no nnU-Net."""

from __future__ import annotations

import numpy as np
import pytest

from oncoflow.errors import SegmentationError
from oncoflow.lesions.statistics import region_statistics
from oncoflow.segmentation.lesion_statistics import (
    StatisticsScaler,
    lesion_label,
    lesion_statistics,
    statistics_width,
)
from oncoflow.segmentation.refit import fit_head_inputs, head_inputs


def _ellipsoid(shape, centre, radii) -> np.ndarray:
    grid = np.indices(shape, dtype=float)
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1.0


def test_region_statistics_reads_mean_sd_and_the_axis_ratio_in_mm() -> None:
    inside = _ellipsoid((40, 40, 40), (20, 20, 20), (6, 6, 12))
    image = np.where(inside, 40.0, -100.0)
    image[inside] += np.where(np.indices(image.shape)[0][inside] % 2 == 0, 10.0, -10.0)
    mean, sd, elongation = region_statistics(image, inside, (1.0, 1.0, 1.0))
    assert mean == pytest.approx(40.0, abs=1.0)
    assert sd == pytest.approx(10.0, abs=0.2)
    assert elongation == pytest.approx(2.0, rel=0.03)
    # the same voxels at 2 mm along the two short axes: a sphere of radius 12 mm
    _, _, sphere = region_statistics(image, inside, (2.0, 2.0, 1.0))
    assert sphere == pytest.approx(1.0, rel=0.03)
    assert np.isnan(region_statistics(image, np.zeros_like(inside), (1, 1, 1))[0])


def test_lesion_statistics_of_the_innermost_label_per_channel() -> None:
    assert lesion_label({"whole_pancreas": [1, 2], "lesion": [2]}) == 2
    with pytest.raises(SegmentationError, match="regions"):
        lesion_label({})
    segmentation = np.zeros((20, 20, 20), dtype=np.uint8)
    segmentation[4:16, 4:16, 4:16] = 1
    segmentation[8:12, 8:12, 6:14] = 2  # a 4 x 4 x 8 voxel lesion
    data = np.stack([np.where(segmentation == 2, 30.0, 100.0), np.full((20, 20, 20), 5.0)])
    stats = lesion_statistics(data, segmentation, (1.0, 1.0, 1.0), 2)
    assert stats.shape == (statistics_width(2),) == (5,)
    assert stats[:4] == pytest.approx([30.0, 5.0, 0.0, 0.0])
    # a box of sides 4 and 8: the SD of positions grows with the side, ratio ~ (8^2-1)/(4^2-1)
    assert stats[4] == pytest.approx(np.sqrt(63 / 15), rel=1e-6)
    with pytest.raises(SegmentationError, match="grid"):
        lesion_statistics(data, segmentation[:-1], (1.0, 1.0, 1.0), 2)


def test_the_scaler_uses_training_cases_and_reads_missing_as_the_mean(tmp_path) -> None:
    train = np.array([[10.0, 1.0, np.nan], [30.0, 3.0, 2.0], [20.0, 2.0, 4.0]])
    scaler = StatisticsScaler.fit(train, label=2)
    assert scaler.mean == pytest.approx([20.0, 2.0, 3.0])
    z = scaler.transform(np.array([[20.0, 4.0, np.nan]]))
    assert z[0, 0] == 0.0
    assert z[0, 1] == pytest.approx(2.0 / np.std([1.0, 2.0, 3.0]))
    assert z[0, 2] == 0.0
    again = StatisticsScaler.from_dict(scaler.to_dict())
    assert np.array_equal(again.transform(train), scaler.transform(train))
    with pytest.raises(SegmentationError, match="statistics"):
        scaler.transform(train[:, :2])


def test_head_inputs_scale_only_the_statistics_behind_the_descriptor() -> None:
    rng = np.random.default_rng(0)
    descriptor = rng.normal(size=(12, 6))
    stats = rng.normal(loc=50.0, scale=20.0, size=(12, 3))
    x = np.concatenate([descriptor, stats], axis=1)
    mapping, scaler, inputs = fit_head_inputs(
        x, ["site_a"] * 12, harmonize=False, statistics=(2, 3)
    )
    assert mapping is None
    assert scaler is not None
    assert np.allclose(inputs[:, :6], descriptor, atol=1e-6)
    assert np.allclose(inputs[:, 6:].mean(axis=0), 0.0, atol=1e-5)
    assert np.allclose(inputs[:, 6:].std(axis=0), 1.0, atol=1e-5)
    assert np.allclose(head_inputs(x, None, None, scaler), inputs)
    # without statistics the descriptor passes unchanged
    _, none, plain = fit_head_inputs(descriptor, ["site_a"] * 12, harmonize=False)
    assert none is None
    assert np.allclose(plain, descriptor, atol=1e-6)


def test_robust_statistics_read_the_core_of_the_largest_component() -> None:
    from oncoflow.lesions.statistics import robust_channel_statistics

    rng = np.random.default_rng(1)
    image = np.full((12, 30, 30), 100.0)  # the organ around the lesion
    lesion = _ellipsoid(image.shape, (6, 15, 15), (4, 7, 7))
    image[lesion] = rng.normal(30.0, 8.0, size=int(lesion.sum()))
    # a prediction one voxel too wide in-plane (its rim reads the organ) and a stray island
    wide = lesion | np.roll(lesion, 1, axis=1) | np.roll(lesion, -1, axis=1)
    wide |= np.roll(lesion, 1, axis=2) | np.roll(lesion, -1, axis=2)
    wide[0:2, 0:2, 0:2] = True
    plain_mean, plain_sd, _ = region_statistics(image, wide, (2.5, 2.0, 2.0))
    (median,), (sd,), elongation = robust_channel_statistics(image[None], wide, (2.5, 2.0, 2.0))
    assert plain_sd > 20.0  # the rim's organ voxels inflate a plain SD
    assert median == pytest.approx(30.0, abs=2.0)
    assert sd == pytest.approx(8.0, abs=1.5)
    assert plain_mean > median + 10.0
    # the island does not enter the elongation: that of the wide component alone
    component = wide.copy()
    component[0:2, 0:2, 0:2] = False
    assert elongation == pytest.approx(region_statistics(image, component, (2.5, 2.0, 2.0))[2])
    empty = robust_channel_statistics(image[None], np.zeros_like(wide), (1, 1, 1))
    assert np.isnan(empty[0][0])
    assert np.isnan(empty[2])


def test_region_core_drops_islands_and_the_rim_within_each_slice() -> None:
    from oncoflow.lesions.statistics import core_statistics, region_core

    region = np.zeros((3, 9, 9), dtype=bool)
    region[:, 2:7, 2:7] = True  # a 5 x 5 square on three slices
    region[0, 0, 0] = True  # an island
    component, core = region_core(region)
    assert component.sum() == 75
    assert core.sum() == 27  # the 3 x 3 centre of each slice: eroded in-plane only
    assert not core[:, 2, :].any()
    values = np.arange(27, dtype=float).reshape(1, 3, 3, 3)
    image = np.zeros((1, 3, 9, 9))
    image[:, :, 3:6, 3:6] = values
    (median,), (sd,) = core_statistics(image, core)
    assert median == 13.0
    assert sd == pytest.approx(1.4826 * 7.0)  # |v - 13| over 0..26: median 7


def test_statistics_read_against_the_organ_cancel_a_scanners_offset_and_noise() -> None:
    segmentation = np.zeros((24, 48, 48), dtype=np.uint8)
    segmentation[2:22, 4:44, 4:44] = 1
    lesion = _ellipsoid(segmentation.shape, (12, 24, 24), (8, 14, 14))
    segmentation[lesion] = 2
    texture = np.random.default_rng(1).normal(0.0, 20.0, segmentation.shape)
    true_hu = np.where(segmentation == 2, 40.0 + texture, 110.0)
    statistics = {}
    for name, offset, noise in (("quiet", 0.0, 10.0), ("noisy", -22.0, 25.0)):
        rng = np.random.default_rng(2)
        image = true_hu + offset + rng.normal(0.0, noise, true_hu.shape)
        statistics[name] = {
            "absolute": lesion_statistics(image[None], segmentation, (1.0, 1.0, 1.0), 2),
            "organ": lesion_statistics(image[None], segmentation, (1.0, 1.0, 1.0), 2, 1),
        }
    quiet, noisy = statistics["quiet"], statistics["noisy"]
    # absolute: the median moves with the offset, the SD with the noise (sqrt(20^2 + 25^2) = 32)
    assert noisy["absolute"][0] - quiet["absolute"][0] == pytest.approx(-22.0, abs=2.0)
    assert noisy["absolute"][1] == pytest.approx(32.0, rel=0.05)
    # against the organ: the contrast (-70 HU) and the lesion's own texture SD (20 HU) on both
    for read in (quiet["organ"], noisy["organ"]):
        assert read[0] == pytest.approx(-70.0, abs=2.0)
        assert read[1] == pytest.approx(20.0, rel=0.08)
    assert quiet["organ"][2] == quiet["absolute"][2]  # the elongation is the lesion's own
    # a case without the organ label reads NaN there (the scaler's training mean)
    only_lesion = np.where(segmentation == 1, 0, segmentation)
    assert np.isnan(lesion_statistics(true_hu[None], only_lesion, (1, 1, 1), 2, 1)[:2]).all()
    # the scaler keeps the reference, and so does the head file's dict
    scaler = StatisticsScaler.fit(np.stack([quiet["organ"], noisy["organ"]]), 2, reference=1)
    assert StatisticsScaler.from_dict(scaler.to_dict()).reference == 1
    assert StatisticsScaler.from_dict({"label": 2, "mean": [0.0], "sd": [1.0]}).reference is None
