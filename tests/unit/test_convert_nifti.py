"""NIfTI standardisation: types, geometry kept, mask geometry checks, no metadata written."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from oncoflow.convert import check_same_geometry, standardise_image, standardise_mask
from oncoflow.convert.nifti import read_nifti, write_image
from oncoflow.errors import ConversionError


def _image(dtype=np.int16, origin=(-10.0, 5.0, 2.0), spacing=(0.7, 0.7, 3.0)) -> sitk.Image:
    arr = (np.arange(6 * 7 * 8).reshape(6, 7, 8) - 100).astype(dtype)
    image = sitk.GetImageFromArray(arr)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection((0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0))
    return image


def _mask(like: sitk.Image, dtype=np.float32) -> sitk.Image:
    arr = np.zeros(sitk.GetArrayFromImage(like).shape, dtype=dtype)
    arr[2:4, 2:5, 3:6] = 1
    arr[3, 3, 4] = 2
    mask = sitk.GetImageFromArray(arr)
    mask.CopyInformation(like)
    return mask


def test_image_becomes_float32_with_same_geometry(tmp_path):
    src = _image()
    sitk.WriteImage(src, str(tmp_path / "in.nii"))
    out, info = standardise_image(tmp_path / "in.nii", tmp_path / "out.nii.gz")
    back = sitk.ReadImage(str(tmp_path / "out.nii.gz"))
    assert back.GetPixelID() == sitk.sitkFloat32
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(src))
    np.testing.assert_allclose(back.GetOrigin(), src.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(back.GetSpacing(), src.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(back.GetDirection(), src.GetDirection(), atol=1e-6)
    assert info["source"] == {
        "format": "NIfTI",
        "file": "in.nii",
        "pixel_type": "16-bit signed integer",
    }
    assert info["geometry"]["size"] == [8, 7, 6]
    assert out.GetPixelID() == sitk.sitkFloat32


def test_mask_becomes_uint8_on_image_grid(tmp_path):
    src = _image()
    sitk.WriteImage(_mask(src), str(tmp_path / "m.nii.gz"))
    info = standardise_mask(tmp_path / "m.nii.gz", tmp_path / "mask.nii.gz", src)
    back = sitk.ReadImage(str(tmp_path / "mask.nii.gz"))
    assert back.GetPixelID() == sitk.sitkUInt8
    assert info["labels"] == {"0": 336 - 18, "1": 17, "2": 1}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"origin": (-10.0, 5.0, 2.01)}, "mask origin"),
        ({"spacing": (0.7, 0.7, 3.002)}, "mask spacing"),
    ],
)
def test_mask_geometry_mismatch_refused(tmp_path, change, message):
    ref = _image()
    other = _image(**change)
    sitk.WriteImage(_mask(other), str(tmp_path / "m.nii.gz"))
    with pytest.raises(ConversionError, match=message):
        standardise_mask(tmp_path / "m.nii.gz", tmp_path / "out.nii.gz", ref)


def test_mask_within_tolerance_snapped_to_image_grid(tmp_path):
    ref = _image()
    other = _image(origin=(-10.0, 5.0, 2.0004))
    sitk.WriteImage(_mask(other), str(tmp_path / "m.nii.gz"))
    standardise_mask(tmp_path / "m.nii.gz", tmp_path / "out.nii.gz", ref)
    back = sitk.ReadImage(str(tmp_path / "out.nii.gz"))
    np.testing.assert_allclose(back.GetOrigin(), ref.GetOrigin(), atol=1e-5)


def test_size_and_direction_mismatch(tmp_path):
    ref = _image()
    with pytest.raises(ConversionError, match="mask size"):
        check_same_geometry(ref, ref[:, :, :3], where="m.nii.gz")
    flipped = sitk.Image(ref)
    flipped.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    with pytest.raises(ConversionError, match="mask direction"):
        check_same_geometry(ref, flipped, where="m.nii.gz")


def test_non_integer_mask_refused(tmp_path):
    ref = _image()
    mask = _mask(ref)
    mask[1, 1, 1] = 0.5
    sitk.WriteImage(mask, str(tmp_path / "m.nii.gz"))
    with pytest.raises(ConversionError, match=r"integer labels 0\.\.255"):
        standardise_mask(tmp_path / "m.nii.gz", tmp_path / "out.nii.gz", ref)


def test_unreadable_and_4d(tmp_path):
    (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(ConversionError, match="cannot read the NIfTI file"):
        read_nifti(tmp_path / "bad.nii.gz")
    with pytest.raises(ConversionError, match="file does not exist"):
        read_nifti(tmp_path / "none.nii.gz")
    four = sitk.GetImageFromArray(np.zeros((2, 3, 4, 5), dtype=np.float32), isVector=False)
    sitk.WriteImage(four, str(tmp_path / "4d.nii.gz"))
    with pytest.raises(ConversionError, match="expected a 3D image, got 4D"):
        read_nifti(tmp_path / "4d.nii.gz")


def test_no_metadata_in_written_header(tmp_path):
    src = _image()
    src.SetMetaData("descrip", "DOE^JANE")
    src.SetMetaData("ITK_FileNotes", "DOE^JANE")
    sitk.WriteImage(src, str(tmp_path / "in.nii.gz"))
    assert b"DOE" in bytes(nib.load(str(tmp_path / "in.nii.gz")).header["descrip"])  # ITK does
    write_image(sitk.ReadImage(str(tmp_path / "in.nii.gz")), tmp_path / "out.nii.gz")
    header = nib.load(str(tmp_path / "out.nii.gz")).header
    for field in ("descrip", "aux_file", "intent_name", "db_name"):
        assert b"DOE" not in bytes(header[field])
    assert header.get_data_dtype() == np.float32
