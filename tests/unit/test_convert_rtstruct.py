"""RTSTRUCT rasterisation: round trips through the writer (Dice, slices), holes, islands, errors."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from oncoflow.convert import rasterize, read_series, roi_names
from oncoflow.convert.rtstruct import rasterize_with_info
from oncoflow.demo.dicomwrite import FakePHI, write_ct_series, write_rtstruct
from oncoflow.errors import ConversionError

PHI = FakePHI()


def _grid(size=(48, 40, 16), spacing=(0.9, 0.9, 2.0), origin=(-21.0, -18.0, -15.0)):
    image = sitk.Image(size, sitk.sitkFloat32)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


def _labels(reference: sitk.Image) -> np.ndarray:
    """Lung = 1 (ellipsoid with a hole), lesion = 2 (sphere inside), a second small island."""
    nx, ny, nz = reference.GetSize()
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    lung = ((x - 22) / 15.0) ** 2 + ((y - 20) / 12.0) ** 2 + ((z - 8) / 6.0) ** 2 < 1.0
    hole = ((x - 14) / 3.0) ** 2 + ((y - 20) / 3.0) ** 2 < 1.0
    lesion = ((x - 28) / 4.5) ** 2 + ((y - 18) / 4.5) ** 2 + ((z - 9) / 2.2) ** 2 < 1.0
    island = (np.abs(x - 42) <= 2) & (np.abs(y - 5) <= 1) & (z == 4)
    labels = np.zeros(lung.shape, dtype=np.uint8)
    labels[(lung & ~hole) | island] = 1
    labels[lesion] = 2
    return labels


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.fixture
def series(tmp_path):
    ref = _grid()
    ct = sitk.Cast(ref, sitk.sitkFloat32) - 1000.0
    ct.CopyInformation(ref)
    write_ct_series(ct, tmp_path / "ct", phi=PHI, seed=4)
    labels = _labels(ref)
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(ref)
    rs = write_rtstruct(
        label_image,
        tmp_path / "ct",
        tmp_path / "rs.dcm",
        roi_names={1: "Lung", 2: "GTV"},
        phi=PHI,
        seed=4,
    )
    return tmp_path, rs, labels


def test_roundtrip_dice_and_slices(series):
    tmp_path, rs, labels = series
    image, _ = read_series(tmp_path / "ct")
    mask = rasterize(rs, image, ["Lung", "GTV"])
    got = sitk.GetArrayFromImage(mask)
    assert mask.GetPixelID() == sitk.sitkUInt8
    assert mask.GetSize() == image.GetSize()
    np.testing.assert_allclose(mask.GetOrigin(), image.GetOrigin())
    lesion_dice = _dice(got == 2, labels == 2)
    lung_dice = _dice(got >= 1, labels >= 1)
    assert lesion_dice >= 0.95
    assert lung_dice >= 0.95
    # the lesion lands on exactly the slices it was drawn on
    assert sorted(set(np.nonzero(got == 2)[0])) == sorted(set(np.nonzero(labels == 2)[0]))
    # the hole in the lung stays a hole, the separate island is there
    assert got[8, 20, 14] == 0
    assert got[4, 5, 42] == 1
    assert np.array_equal(got, labels)  # contours at level 0.5 recover the label map exactly


def test_single_roi_and_order(series):
    tmp_path, rs, labels = series
    image, _ = read_series(tmp_path / "ct")
    gtv = sitk.GetArrayFromImage(rasterize(rs, image, ["GTV"]))
    assert set(np.unique(gtv)) == {0, 1}
    assert np.array_equal(gtv == 1, labels == 2)
    # labels follow the requested order (names matched case-insensitively)
    swapped = sitk.GetArrayFromImage(rasterize(rs, image, ["gtv", "lung"]))
    assert np.array_equal(swapped == 1, labels == 2)
    assert np.array_equal(swapped == 2, labels == 1)
    assert roi_names(rs) == ["Lung", "GTV"]


def test_info_counts(series):
    tmp_path, rs, labels = series
    image, _ = read_series(tmp_path / "ct")
    _, info = rasterize_with_info(rs, image, ["Lung", "GTV"])
    assert [r["roi"] for r in info["rois"]] == ["Lung", "GTV"]
    assert info["rois"][1]["voxels"] == int((labels == 2).sum())
    assert info["rois"][0]["contours_skipped"] == 0


def test_unknown_roi_lists_available(series):
    tmp_path, rs, _ = series
    image, _ = read_series(tmp_path / "ct")
    with pytest.raises(ConversionError) as err:
        rasterize(rs, image, ["Liver"])
    assert "ROI 'Liver' not found; available ROIs: 'Lung', 'GTV'" in str(err.value)
    assert str(rs) in str(err.value)


def test_roi_without_contour_on_grid(series):
    _, rs, _ = series
    elsewhere = _grid(origin=(-21.0, -18.0, 200.0))
    with pytest.raises(ConversionError, match="ROI 'GTV' has no contour on the image grid"):
        rasterize(rs, elsewhere, ["GTV"])


def test_frame_of_reference_checked(series):
    tmp_path, rs, _ = series
    image, _ = read_series(tmp_path / "ct")
    frame = pydicom.dcmread(next((tmp_path / "ct").iterdir())).FrameOfReferenceUID
    assert rasterize(rs, image, ["GTV"], frame_of_reference_uid=frame).GetSize() == image.GetSize()
    with pytest.raises(ConversionError, match="another FrameOfReferenceUID"):
        rasterize(rs, image, ["GTV"], frame_of_reference_uid="1.2.3.4")


def test_not_an_rtstruct(series):
    tmp_path, _, _ = series
    image, _ = read_series(tmp_path / "ct")
    ct_file = next((tmp_path / "ct").iterdir())
    with pytest.raises(ConversionError, match="not an RTSTRUCT"):
        rasterize(ct_file, image, ["GTV"])
    (tmp_path / "junk.dcm").write_bytes(b"\x00" * 10)
    with pytest.raises(ConversionError, match="not a readable DICOM file"):
        rasterize(tmp_path / "junk.dcm", image, ["GTV"])


def test_rasterize_on_resampled_uneven_grid(tmp_path):
    """Contours of an unevenly spaced series land on the right slice of the resampled grid."""
    ref = _grid(size=(30, 30, 8), spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0))
    positions = [0.0, 2.0, 4.0, 6.0, 10.0, 12.0, 14.0, 16.0]  # one slice missing at 8 mm
    write_ct_series(ref, tmp_path / "ct", phi=PHI, slice_positions_mm=positions)
    image, _ = read_series(tmp_path / "ct")
    assert image.GetSize()[2] == 9  # 0 .. 16 mm by 2 mm
    square = np.zeros((1, 30, 30), dtype=np.uint8)
    square[0, 10:20, 10:20] = 1
    for z in positions:  # one contour per acquired slice, drawn in that slice's plane
        one = sitk.GetImageFromArray(square)
        one.SetOrigin((0.0, 0.0, z))
        rs = write_rtstruct(
            one, tmp_path / "ct", tmp_path / "rs.dcm", roi_names={1: "GTV"}, phi=PHI
        )
        got = sitk.GetArrayFromImage(rasterize(rs, image, ["GTV"]))
        assert got.sum() == 100
        assert got[round(z / 2.0)].sum() == 100
