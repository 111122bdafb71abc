"""PET metrics on synthetic spheres with analytically known values."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from oncoflow.errors import FeatureError
from oncoflow.features.pet import (
    PEAK_RADIUS_MM,
    pet_metrics,
    pet_metrics_table,
    pet_settings_hash,
    sphere_weights,
)

SPACING = (2.0, 2.2, 2.5)  # x, y, z in mm (anisotropic on purpose)
SHAPE = (40, 44, 48)  # z, y, x


def _grid_mm(shape=SHAPE, spacing=SPACING, centre_vox=None):
    """Squared distance (mm²) of every voxel centre from the centre voxel's centre."""
    centre = np.array(centre_vox if centre_vox is not None else [s // 2 for s in shape])
    sp = np.array(spacing[::-1])  # z, y, x
    idx = np.indices(shape).reshape(3, -1).T
    d2 = (((idx - centre) * sp) ** 2).sum(axis=1)
    return d2.reshape(shape)


def _images(suv: np.ndarray, labels: np.ndarray, spacing=SPACING):
    img = sitk.GetImageFromArray(suv.astype(np.float32))
    img.SetSpacing(spacing)
    img.SetOrigin((-40.0, 12.5, 300.0))
    msk = sitk.GetImageFromArray(labels.astype(np.uint8))
    msk.CopyInformation(img)
    return img, msk


def _sphere_case(radius: float, a: float, b: float, mask_radius: float | None = None):
    d2 = _grid_mm()
    inside = d2 <= radius**2
    suv = np.where(inside, a, b)
    mask = d2 <= (mask_radius or radius) ** 2
    return suv, inside, mask


def test_uniform_sphere_exact_values():
    a, b, radius = 8.0, 1.0, 20.0
    suv, inside, mask = _sphere_case(radius, a, b)
    img, msk = _images(suv, mask)
    m = pet_metrics(img, msk)
    voxel_ml = np.prod(SPACING) / 1000.0
    assert m["SUVmax"] == a
    assert m["SUVmean"] == a
    assert m["MTV"] == pytest.approx(inside.sum() * voxel_ml, rel=1e-12)
    assert m["TLG"] == pytest.approx(a * m["MTV"], rel=1e-12)
    # discretisation: the counted voxels cover ball(R - h) and lie in ball(R + h),
    # h = half the voxel diagonal, so 4/3 pi (R -+ h)^3 bound the measured volume
    h = 0.5 * math.dist((0, 0, 0), SPACING)
    vol = lambda r: 4.0 / 3.0 * math.pi * r**3 / 1000.0  # noqa: E731
    assert vol(radius - h) <= m["MTV"] <= vol(radius + h)
    assert m["MTV"] == pytest.approx(vol(radius), rel=0.02)  # what it actually achieves
    # the peak sphere (6.2 mm) fits inside the 20 mm sphere: SUVpeak = a
    assert m["SUVpeak"] == pytest.approx(a, rel=1e-12)


@pytest.mark.parametrize(
    "kwargs", [{"threshold": 4.5}, {"relative_threshold": 0.5}], ids=["absolute", "relative"]
)
def test_threshold_inside_a_larger_mask(kwargs):
    a, b, radius = 6.0, 1.5, 15.0
    suv, inside, mask = _sphere_case(radius, a, b, mask_radius=radius + 8.0)
    img, msk = _images(suv, mask)
    voxel_ml = np.prod(SPACING) / 1000.0
    whole = pet_metrics(img, msk)
    n_in, n_all = inside.sum(), mask.sum()
    assert whole["MTV"] == pytest.approx(n_all * voxel_ml, rel=1e-12)
    assert whole["SUVmean"] == pytest.approx((a * n_in + b * (n_all - n_in)) / n_all, rel=1e-12)
    thr = pet_metrics(img, msk, **kwargs)
    assert thr["SUVmean"] == a
    assert thr["MTV"] == pytest.approx(n_in * voxel_ml, rel=1e-12)
    assert thr["TLG"] == pytest.approx(a * n_in * voxel_ml, rel=1e-12)
    assert thr["SUVmax"] == whole["SUVmax"] == a
    assert thr["SUVpeak"] == whole["SUVpeak"] == pytest.approx(a, rel=1e-12)


def test_peak_of_a_point_source_uses_partial_voxels():
    """One hot voxel H in background b, 1 mm voxels: peak = (H + b (W - 1)) / W, W = 1 cm³."""
    shape, spacing = (31, 31, 31), (1.0, 1.0, 1.0)
    suv = np.full(shape, 2.0)
    suv[15, 15, 15] = 50.0
    mask = np.zeros(shape, bool)
    mask[13:18, 13:18, 13:18] = True
    img, msk = _images(suv, mask, spacing)
    w = sphere_weights((1.0, 1.0, 1.0), PEAK_RADIUS_MM).sum()  # in voxels = mm³
    assert w == pytest.approx(1000.0, rel=2e-3)  # a 1 cm³ sphere
    peak = pet_metrics(img, msk)["SUVpeak"]
    assert peak == pytest.approx((50.0 + 2.0 * (w - 1.0)) / w, rel=1e-12)
    assert peak == pytest.approx(2.0 + 48.0 / 1000.0, rel=2e-3)


@pytest.mark.parametrize(
    "spacing", [(1.0, 1.0, 1.0), (2.0, 2.0, 2.0), (4.4, 4.4, 5.0), (0.9, 0.9, 3.0)]
)
def test_sphere_weights_volume(spacing):
    w = sphere_weights(spacing, PEAK_RADIUS_MM)
    assert w.min() >= 0.0
    assert w.max() == 1.0
    assert w.sum() * np.prod(spacing) == pytest.approx(1000.0, rel=5e-3)
    assert np.array_equal(w, w[::-1, ::-1, ::-1])  # symmetric


def test_peak_near_the_image_border_is_renormalised():
    suv = np.full((10, 10, 10), 3.0)
    suv[0, 0, 0] = 3.0  # corner voxel among many ties
    mask = np.zeros(suv.shape, bool)
    mask[0:3, 0:3, 0:3] = True
    img, msk = _images(suv, mask, (2.0, 2.0, 2.0))
    assert pet_metrics(img, msk)["SUVpeak"] == pytest.approx(3.0, rel=1e-12)


def test_peak_ties_pick_the_hottest_neighbourhood():
    """Two voxels share SUVmax; the one inside a hot region wins whatever the voxel order."""
    suv = np.ones((40, 40, 40))
    suv[5, 5, 5] = 10.0  # first in C order, isolated
    suv[14:32, 14:32, 14:32] = 9.0
    suv[23, 23, 23] = 10.0
    mask = suv > 5
    img, msk = _images(suv, mask, (1.0, 1.0, 1.0))
    peak = pet_metrics(img, msk)["SUVpeak"]
    w = sphere_weights((1.0, 1.0, 1.0), PEAK_RADIUS_MM).sum()
    assert peak == pytest.approx((10.0 + 9.0 * (w - 1.0)) / w, rel=1e-12)


def test_labels_select_the_roi():
    d2a = _grid_mm(centre_vox=(10, 12, 12))
    d2b = _grid_mm(centre_vox=(30, 30, 34))
    labels = np.zeros(SHAPE, np.uint8)
    labels[d2a <= 100] = 1
    labels[d2b <= 100] = 2
    suv = np.where(labels == 1, 5.0, np.where(labels == 2, 12.0, 1.0))
    img, msk = _images(suv, labels)
    one = pet_metrics(img, msk, label=1)
    two = pet_metrics(img, msk, label=2)
    both = pet_metrics(img, msk)
    assert (one["SUVmax"], two["SUVmax"], both["SUVmax"]) == (5.0, 12.0, 12.0)
    assert both["MTV"] == pytest.approx(one["MTV"] + two["MTV"], rel=1e-12)


def test_errors():
    suv, _, mask = _sphere_case(10.0, 5.0, 1.0)
    img, msk = _images(suv, mask)
    with pytest.raises(FeatureError, match="not both"):
        pet_metrics(img, msk, threshold=2.0, relative_threshold=0.4)
    with pytest.raises(FeatureError, match=r"in \(0, 1\]"):
        pet_metrics(img, msk, relative_threshold=41.0)
    with pytest.raises(FeatureError, match="no voxel with label 3"):
        pet_metrics(img, msk, label=3)
    shifted = sitk.Image(msk)
    shifted.SetOrigin((0.0, 0.0, 0.0))
    with pytest.raises(FeatureError, match="origin"):
        pet_metrics(img, shifted)


def test_threshold_above_max_gives_empty_volume():
    suv, _, mask = _sphere_case(10.0, 5.0, 1.0)
    img, msk = _images(suv, mask)
    m = pet_metrics(img, msk, threshold=6.0)
    assert m["MTV"] == 0.0
    assert m["TLG"] == 0.0
    assert math.isnan(m["SUVmean"])
    assert m["SUVmax"] == 5.0


def test_table_from_files(tmp_path: Path):
    suv, _, mask = _sphere_case(12.0, 7.0, 1.0)
    img, msk = _images(suv, mask)
    sitk.WriteImage(img, str(tmp_path / "PET.nii.gz"))
    sitk.WriteImage(msk, str(tmp_path / "PET_mask.nii.gz"))
    table = pet_metrics_table(tmp_path / "PET.nii.gz", tmp_path / "PET_mask.nii.gz", label=1)
    assert list(table["feature"]) == ["SUVmax", "SUVmean", "SUVpeak", "MTV", "TLG"]
    assert list(table["unit"]) == ["g/mL", "g/mL", "g/mL", "mL", "g"]
    assert table.set_index("feature").loc["SUVmax", "value"] == 7.0
    assert set(table["settings_hash"]) == {pet_settings_hash(label=1)}
    assert pet_settings_hash(label=1) != pet_settings_hash(label=1, threshold=2.5)
    other = sitk.Image(msk)
    other.SetSpacing((2.0, 2.0, 2.0))
    sitk.WriteImage(other, str(tmp_path / "bad_mask.nii.gz"))
    with pytest.raises(FeatureError, match=r"PET\.nii\.gz: mask .*bad_mask\.nii\.gz.*spacing"):
        pet_metrics_table(tmp_path / "PET.nii.gz", tmp_path / "bad_mask.nii.gz")


def test_foci_outside_the_roi_are_counted_by_the_label_at_their_peak():
    """A primary, a node outside every label, a nodule inside label 1, noise and a large organ."""
    shape = SHAPE
    suv = np.full(shape, 0.8)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[:, :, 24:] = 1  # a "lung" half of the image
    primary = _grid_mm(centre_vox=(20, 22, 34)) <= 8.0**2
    labels[primary] = 2
    suv[primary] = 12.0
    spill = (_grid_mm(centre_vox=(20, 22, 34)) <= 12.0**2) & ~primary  # within the margin
    suv[spill] = 4.0
    node = _grid_mm(centre_vox=(20, 22, 8)) <= 6.0**2
    suv[node] = 5.0
    nodule = _grid_mm(centre_vox=(8, 10, 40)) <= 5.0**2
    suv[nodule] = 3.5
    suv[30, 35, 5] = 9.0  # one hot voxel: below 0.3 mL, noise
    suv[28:, 30:, :20] = 3.0  # 12 x 14 x 20 voxels of 11 uL, 37 mL: an organ, too large
    img, msk = _images(suv, labels)
    m = pet_metrics(img, msk, label=2, foci={"labels": [1]})
    assert (m["FociOutside"], m["FociLabel1"]) == (1.0, 1.0)
    assert m["SUVmax"] == 12.0  # the ROI metrics do not change
    m = pet_metrics(img, msk, label=2, foci={"labels": [1], "threshold": 4.0})
    assert (m["FociOutside"], m["FociLabel1"]) == (1.0, 0.0)  # the 3.5 SUV nodule drops out
    m = pet_metrics(img, msk, label=2, foci={"labels": [1], "margin_mm": 0.0})
    assert m["FociLabel1"] == 2.0  # the spill-out of the primary is a focus without the margin
    assert "FociOutside" not in pet_metrics(img, msk, label=2)
    with_foci = pet_settings_hash(label=2, foci={"labels": [1]})
    assert with_foci != pet_settings_hash(label=2)
