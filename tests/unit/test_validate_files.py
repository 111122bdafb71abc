"""File-level cohort checks (oncoflow.validate.files) on tiny images, DICOM and slides."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from broken_cohorts import write_dicom_ct, write_dicom_pet, write_slide

from oncoflow.validate import files
from oncoflow.validate.report import WARNING


def _nifti(path: Path, array: np.ndarray, *, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def _labels(shape=(8, 8, 8), value=1, dtype=np.uint8) -> np.ndarray:
    array = np.zeros(shape, dtype=dtype)
    array[2:5, 2:5, 2:5] = value
    return array


def test_check_path(tmp_path):
    ok = tmp_path / "a.nii.gz"
    ok.write_bytes(b"x")
    assert files.check_path(ok, label="a.nii.gz", patient_id="P") == []
    missing = files.check_path(tmp_path / "b.nii.gz", label="b.nii.gz", patient_id="P")
    assert missing[0].line().startswith("patient P: b.nii.gz: file does not exist (looked for ")
    folder = tmp_path / "series"
    folder.mkdir()
    assert (
        "is a folder, expected a file"
        in files.check_path(folder, label="s", patient_id="P")[0].message
    )
    empty_dir = files.check_path(folder, label="s", patient_id="P", what="image", folder_ok=True)
    assert empty_dir[0].message == "image folder is empty (no DICOM files)"
    (folder / "1.dcm").write_bytes(b"x")
    assert files.check_path(folder, label="s", patient_id="P", folder_ok=True) == []
    empty = tmp_path / "empty.nii.gz"
    empty.touch()
    assert "empty file (0 bytes)" in files.check_path(empty, label="e", patient_id=None)[0].message


def test_check_path_unreadable(tmp_path, monkeypatch):
    path = tmp_path / "a.nii.gz"
    path.write_bytes(b"x")
    path.chmod(0)
    if (
        os.geteuid() == 0
    ):  # root reads everything: answer the permission query as a user would get it
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: p != path and real_access(p, mode))
    assert "not readable" in files.check_path(path, label="a", patient_id="P")[0].message


def test_read_geometry_header_only(tmp_path):
    path = _nifti(tmp_path / "a.nii.gz", _labels((4, 5, 6)), spacing=(0.7, 0.8, 2.5))
    geometry = files.read_geometry(path)
    assert geometry.size == (6, 5, 4)
    assert geometry.spacing == pytest.approx((0.7, 0.8, 2.5))
    assert geometry.components == 1
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not an image" * 20)
    geom, found = files.check_volume_header(bad, label="bad.nii.gz", patient_id="P")
    assert geom is None
    assert found[0].check == "readable"
    assert found[0].message.startswith("cannot read image header: corrupt or not a NIfTI image")
    assert "\n" not in found[0].message


def test_compare_geometry_tolerances():
    base = files.Geometry(
        (8, 8, 8), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1), "", 1
    )
    same = files.Geometry((8, 8, 8), (1.0005, 1, 1), (0.0009, 0, 0), base.direction, "", 1)
    assert files.compare_geometry(base, same) == []
    other = files.Geometry(
        (8, 8, 9), (0.8, 0.8, 0.8), (0.0, 0.002, 0.0), (0, 1, 0, 1, 0, 0, 0, 0, 1), "", 1
    )
    assert files.compare_geometry(base, other) == [
        "size (8, 8, 9) vs (8, 8, 8)",
        "spacing (0.8, 0.8, 0.8) vs (1, 1, 1)",
        "origin (0, 0.002, 0) vs (0, 0, 0)",
        "direction (0, 1, 0, 1, 0, 0, 0, 0, 1) vs (1, 0, 0, 0, 1, 0, 0, 0, 1)",
    ]
    found = files.check_geometry(
        base, other, label="ct.nii.gz", mask_label="m.nii.gz", patient_id="P"
    )
    assert len(found) == 1
    assert (
        found[0].line().startswith("patient P: ct.nii.gz: mask geometry differs from image (size")
    )


def test_check_mask_values_ok_and_labels(tmp_path):
    mask = _labels()
    mask[3, 3, 3] = 2
    path = _nifti(tmp_path / "m.nii.gz", mask)
    assert files.check_mask_values(path, label="m", patient_id="P", labels=[1, 2]) == []
    assert files.check_mask_values(path, label="m", patient_id="P", labels=None) == []
    found = files.check_mask_values(path, label="m", patient_id="P", labels=[1])
    assert [p.message for p in found] == ["mask has undeclared label(s) 2 (declared labels: 1)"]


def test_check_mask_values_float_artefacts(tmp_path):
    mask = _labels(dtype=np.float32, value=1)
    mask[2, 2, 2] = 0.9997
    path = _nifti(tmp_path / "m.nii.gz", mask)
    found = files.check_mask_values(path, label="m", patient_id="P", labels=[1])
    assert len(found) == 1
    assert found[0].message.startswith("mask has non-integer values (e.g. 0.9997, 1 voxels)")
    # a float mask holding exact integers is fine
    clean = _nifti(tmp_path / "c.nii.gz", _labels(dtype=np.float32))
    assert files.check_mask_values(clean, label="c", patient_id="P", labels=[1]) == []


def test_check_mask_values_negative_and_empty(tmp_path):
    negative = _nifti(tmp_path / "n.nii.gz", _labels(dtype=np.int16, value=-1))
    assert [p.message for p in files.check_mask_values(negative, label="n", patient_id="P")] == [
        "mask has negative label(s) -1"
    ]
    empty = _nifti(tmp_path / "e.nii.gz", np.zeros((4, 4, 4), np.uint8))
    found = files.check_mask_values(empty, label="e", patient_id="P", labels=[1])
    assert [p.message for p in found] == ["mask is empty (no non-zero voxel)"]
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"garbage" * 10)
    assert files.check_mask_values(bad, label="b", patient_id="P")[0].check == "readable"


@pytest.fixture(scope="module")
def dicom_ct(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dicom")
    write_dicom_ct(root, "P002")
    return root / "images" / "P002"


@pytest.mark.parametrize(
    ("roi", "expected"),
    [
        ("GTV", []),
        ("Pancreas+GTV", []),
        ("Liver", ["RTSTRUCT has no ROI named 'Liver' (ROIs: GTV, Pancreas)"]),
        ("GTV+Liver+Lung", ["no ROI named 'Liver'", "no ROI named 'Lung'"]),
        (None, ["mask_roi is empty: an RTSTRUCT mask needs the ROI name(s) to rasterise"]),
    ],
)
def test_check_rtstruct(dicom_ct, roi, expected):
    found = files.check_dicom_mask(
        dicom_ct / "rtstruct.dcm", roi=roi, label="rtstruct.dcm", patient_id="P002"
    )
    assert len(found) == len(expected)
    for problem, phrase in zip(found, expected, strict=True):
        assert phrase in problem.message
        assert problem.check == "rtstruct"


def test_check_rtstruct_not_an_rtstruct(dicom_ct, tmp_path):
    ct_slice = next((dicom_ct / "ct_dicom").iterdir())
    found = files.check_dicom_mask(ct_slice, roi="GTV", label="x.dcm", patient_id="P")
    assert found[0].message == "mask is a DICOM file of modality CT, not RTSTRUCT or SEG"
    text = tmp_path / "mask.txt"
    text.write_text("not dicom")
    found = files.check_dicom_mask(text, roi="GTV", label="mask.txt", patient_id="P")
    assert found[0].message.startswith("mask is neither a NIfTI file")


def test_check_dicom_series(tmp_path, dicom_ct):
    series = dicom_ct / "ct_dicom"
    assert files.check_dicom_series(series, modality="CT", label="s", patient_id="P") == []
    write_dicom_ct(tmp_path, "P009", gantry_tilt_deg=12.0)
    tilted = tmp_path / "images" / "P009" / "ct_dicom"
    kw = {"modality": "CT", "label": "images/P009/ct_dicom", "patient_id": "P009"}
    assert files.check_dicom_series(tilted, tilt="resample", **kw) == []
    found = files.check_dicom_series(tilted, tilt="refuse", **kw)
    assert len(found) == 1
    assert "tilt" in found[0].message
    # the resolved folder path is replaced by the path as written in the table
    assert str(tmp_path) not in found[0].message


def test_check_dicom_series_pet_suv_tags(tmp_path):
    write_dicom_pet(tmp_path, "P003", omit_tags=("PatientWeight",))
    series = tmp_path / "images" / "P003" / "pet_dicom"
    found = files.check_dicom_series(series, modality="PET", label="pet", patient_id="P003")
    assert len(found) == 1
    assert "PatientWeight" in found[0].message
    # the same series as CT is not checked for SUV tags
    assert files.check_dicom_series(series, modality="CT", label="pet", patient_id="P003") == []


def test_check_slide(tmp_path):
    good = tmp_path / "good.tif"
    write_slide(good)
    assert files.check_slide(good, label="good.tif", patient_id="P") == []
    no_mpp = tmp_path / "nompp.tif"
    write_slide(no_mpp, mpp=None)
    found = files.check_slide(no_mpp, label="nompp.tif", patient_id="P")
    assert [p.severity for p in found] == [WARNING]
    assert "no µm/px metadata (openslide.mpp-x)" in found[0].message
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00" + b"\x00" * 40)
    found = files.check_slide(bad, label="bad.tif", patient_id="P")
    assert found[0].message.startswith("cannot open slide with openslide")
    assert found[0].severity == "error"


def test_is_volume_file():
    assert files.is_volume_file("a/B.NII.GZ")
    assert files.is_volume_file("a.nii")
    assert not files.is_volume_file("rtstruct.dcm")
    assert not files.is_volume_file("ct_dicom")
