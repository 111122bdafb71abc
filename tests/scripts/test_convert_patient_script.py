"""scripts/convert_patient.py through main([...]) on a tiny cohort (DICOM CT + RTSTRUCT, WSI)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import SimpleITK as sitk
from conftest import load_script

from oncoflow.demo.dicomwrite import FakePHI, write_ct_series, write_rtstruct

PHI = FakePHI()


def _cohort(root, *, tilt_deg=0.0):
    labels = np.zeros((5, 12, 14), dtype=np.uint8)
    labels[1:4, 3:9, 4:10] = 1
    image = sitk.GetImageFromArray(np.where(labels > 0, 50.0, -50.0))
    image.SetSpacing((1.0, 1.0, 2.0))
    mask = sitk.GetImageFromArray(labels)
    mask.CopyInformation(image)
    write_ct_series(image, root / "P1/ct", phi=PHI, gantry_tilt_deg=tilt_deg)
    write_rtstruct(mask, root / "P1/ct", root / "P1/rs.dcm", roi_names={1: "GTV"}, phi=PHI)
    (root / "P1/slide.tiff").write_bytes(b"II*\x00")
    pd.DataFrame(
        [
            ["P1", 0, "CT", "-", "P1/ct", "P1/rs.dcm", "GTV", "S1"],
            ["P1", 0, "WSI", "HE", "P1/slide.tiff", "", "", "S1"],
        ],
        columns=[
            "patient_id",
            "timepoint",
            "modality",
            "series",
            "path",
            "mask_path",
            "mask_roi",
            "site",
        ],
    ).to_csv(root / "images.csv", index=False)
    return labels


def test_convert_patient_main(tmp_path):
    labels = _cohort(tmp_path / "cohort")
    script = load_script("convert_patient")
    out = tmp_path / "results/converted/P1"
    code = script.main(["--cohort", str(tmp_path / "cohort"), "--patient", "P1", "--out", str(out)])
    assert code == 0
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "0/CT_mask.nii.gz")))
    assert np.array_equal(mask, labels)
    assert json.loads((out / "0/CT.json").read_text())["source"]["n_slices"] == 5
    manifest = json.loads((out / "manifest.json").read_text())
    assert [o["image"] for o in manifest["outputs"]] == ["0/CT.nii.gz"]
    assert manifest["skipped"][0]["source"] == "P1/slide.tiff"


def test_convert_patient_refuses_tilt(tmp_path, capsys):
    _cohort(tmp_path / "cohort", tilt_deg=8.0)
    script = load_script("convert_patient")
    code = script.main(
        ["--cohort", str(tmp_path / "cohort"), "--patient", "P1", "--out", str(tmp_path / "o"),
         "--tilt", "refuse"]
    )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: patient P1: ")
    assert "gantry tilt of 8.0°" in err
    assert "Traceback" not in err


def test_missing_table(tmp_path, capsys):
    script = load_script("convert_patient")
    assert script.main(["--cohort", str(tmp_path), "--patient", "P1", "--out", "o"]) == 1
    assert "images.csv" in capsys.readouterr().err
