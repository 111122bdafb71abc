"""scripts/convert_dicom.py through main([...]): CT + RTSTRUCT, PET -> SUV, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import load_script

from oncoflow.demo.dicomwrite import FakePHI, write_ct_series, write_pet_series, write_rtstruct

PHI = FakePHI()


@pytest.fixture(scope="module")
def script():
    return load_script("convert_dicom")


def _image(arr: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(arr)
    image.SetSpacing((2.0, 2.0, 3.0))
    image.SetOrigin((-20.0, -16.0, 5.0))
    return image


def _labels() -> np.ndarray:
    labels = np.zeros((6, 16, 20), dtype=np.uint8)
    labels[1:5, 3:13, 3:17] = 1
    labels[2:4, 6:9, 8:12] = 2
    return labels


def test_ct_with_rtstruct(tmp_path, script):
    hu = np.where(_labels() > 0, 20.0, -900.0)
    write_ct_series(_image(hu), tmp_path / "ct", phi=PHI, gantry_tilt_deg=0.0)
    write_rtstruct(
        _image(_labels()),
        tmp_path / "ct",
        tmp_path / "rs.dcm",
        roi_names={1: "Lung", 2: "GTV"},
        phi=PHI,
    )
    code = script.main(
        ["--series", str(tmp_path / "ct"), "--out", str(tmp_path / "ct.nii.gz"),
         "--sidecar", str(tmp_path / "ct.json"), "--rtstruct", str(tmp_path / "rs.dcm"),
         "--roi", "Lung+GTV", "--mask-out", str(tmp_path / "mask.nii.gz")]
    )  # fmt: skip
    assert code == 0
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "ct.nii.gz")))
    np.testing.assert_allclose(image, hu, atol=0.5)
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "mask.nii.gz")))
    assert np.array_equal(mask, _labels())
    sidecar = json.loads((tmp_path / "ct.json").read_text())
    assert sidecar["geometry"]["origin"] == [-20.0, -16.0, 5.0]
    assert sidecar["mask"]["file"] == "mask.nii.gz"
    assert [r["label"] for r in sidecar["mask"]["rois"]] == [1, 2]


def test_pet_suv_and_tilt_refused(tmp_path, script):
    suv = np.where(_labels() == 2, 9.0, 1.0).astype(np.float32)
    write_pet_series(
        _image(suv), tmp_path / "pet", phi=PHI, injection_time="231500", series_time="002500"
    )
    code = script.main(
        ["--series", str(tmp_path / "pet"), "--out", str(tmp_path / "pet.nii.gz"),
         "--sidecar", str(tmp_path / "pet.json"), "--suv"]
    )  # fmt: skip
    assert code == 0
    got = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "pet.nii.gz")))
    assert np.max(np.abs(got - suv)) / suv.max() < 1e-3
    assert json.loads((tmp_path / "pet.json").read_text())["suv"]["crossed_midnight"] is True


def test_missing_tag_one_line_exit_1(tmp_path, script, capsys):
    suv = np.ones((6, 16, 20), dtype=np.float32)
    write_pet_series(_image(suv), tmp_path / "pet", phi=PHI, omit_tags=["PatientWeight"])
    code = script.main(
        ["--series", str(tmp_path / "pet"), "--out", str(tmp_path / "pet.nii.gz"),
         "--sidecar", str(tmp_path / "pet.json"), "--suv"]
    )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        f"error: {tmp_path / 'pet'}: missing tag PatientWeight (0010,1030), needed for SUVbw"
    )
    assert "Traceback" not in err
    assert not (tmp_path / "pet.nii.gz").exists()


def test_tilt_refuse_exit_1(tmp_path, script, capsys):
    write_ct_series(_image(np.zeros((6, 16, 20))), tmp_path / "ct", phi=PHI, gantry_tilt_deg=20)
    code = script.main(
        ["--series", str(tmp_path / "ct"), "--out", str(tmp_path / "ct.nii.gz"),
         "--sidecar", str(tmp_path / "ct.json"), "--tilt", "refuse"]
    )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "gantry tilt of 20.0°" in err
    assert len(err.strip().splitlines()) == 1


def test_mask_arguments_together(tmp_path, script, capsys):
    code = script.main(
        ["--series", str(tmp_path), "--out", "x.nii.gz", "--sidecar", "x.json", "--roi", "GTV"]
    )
    assert code == 1
    assert "--mask and --mask-out go together, and --roi needs them" in capsys.readouterr().err
