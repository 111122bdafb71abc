"""convert_patient on a small mixed cohort: naming, sidecars, manifest, masks, errors, no PHI."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from oncoflow.cohort import read_table
from oncoflow.convert import MANIFEST, convert_patient, converted_stem
from oncoflow.demo.dicomwrite import FakePHI, write_ct_series, write_pet_series, write_rtstruct
from oncoflow.errors import ConversionError

PHI = FakePHI()
COLUMNS = ["patient_id", "timepoint", "modality", "series", "path", "mask_path", "mask_roi", "site"]


def _volume(size=(24, 20, 8), spacing=(1.5, 1.5, 3.0), origin=(-18.0, -15.0, -12.0)):
    nx, ny, nz = size
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    lesion = ((x - 12) / 3.5) ** 2 + ((y - 10) / 3.5) ** 2 + ((z - 4) / 1.8) ** 2 < 1.0
    lung = ((x - 12) / 10.0) ** 2 + ((y - 10) / 8.0) ** 2 + ((z - 4) / 3.5) ** 2 < 1.0
    labels = np.where(lesion, 2, np.where(lung, 1, 0)).astype(np.uint8)
    hu = np.where(lung, -800.0, 30.0)
    hu[lesion] = 45.0
    suv = np.where(lung, 0.6, 1.5)
    suv[lesion] = 8.0

    def image(arr):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing(spacing)
        img.SetOrigin(origin)
        return img

    return image(hu), image(suv.astype(np.float32)), image(labels)


def build_cohort(root: Path, *, tilt_deg: float = 0.0, pet_omit: tuple[str, ...] = ()) -> Path:
    """Patient P001: DICOM CT + RTSTRUCT (tp 0), DICOM PET (tp 0), NIfTI CT + mask (tp 1),
    NIfTI MR T2 (tp 1), a WSI row; patient P002: NIfTI CT only."""
    ct, suv, labels = _volume()
    write_ct_series(ct, root / "dicom/P001/ct", phi=PHI, seed=11, gantry_tilt_deg=tilt_deg)
    write_rtstruct(
        labels,
        root / "dicom/P001/ct",
        root / "dicom/P001/rtstruct.dcm",
        roi_names={1: "Lung", 2: "GTV"},
        phi=PHI,
        seed=11,
    )
    write_pet_series(suv, root / "dicom/P001/pet", phi=PHI, seed=11, omit_tags=pet_omit)
    (root / "nifti").mkdir(parents=True)
    sitk.WriteImage(sitk.Cast(ct, sitk.sitkInt16), str(root / "nifti/P001_ct_t1.nii.gz"))
    sitk.WriteImage(labels, str(root / "nifti/P001_ct_t1_mask.nii.gz"))
    sitk.WriteImage(suv, str(root / "nifti/P001_t2.nii.gz"))
    sitk.WriteImage(ct, str(root / "nifti/P002_ct.nii.gz"))
    (root / "slides").mkdir()
    (root / "slides/P001.tiff").write_bytes(b"II*\x00")
    rows = [
        ["P001", 0, "CT", "venous", "dicom/P001/ct", "dicom/P001/rtstruct.dcm", "Lung+GTV", "A"],
        ["P001", 0, "PET", "-", "dicom/P001/pet", "", "", "A"],
        [
            "P001",
            1,
            "CT",
            "venous",
            "nifti/P001_ct_t1.nii.gz",
            "nifti/P001_ct_t1_mask.nii.gz",
            "",
            "A",
        ],
        ["P001", 1, "MR", "T2", "nifti/P001_t2.nii.gz", "", "", "A"],
        ["P001", 0, "WSI", "HE", "slides/P001.tiff", "", "", "A"],
        ["P002", 0, "CT", "-", "nifti/P002_ct.nii.gz", "", "", "B"],
    ]
    pd.DataFrame(rows, columns=COLUMNS).to_csv(root / "images.csv", index=False)
    return root


def test_converted_stem():
    assert converted_stem("CT", "-") == "CT"
    assert converted_stem("PET", "-") == "PET"
    assert converted_stem("CT", "venous") == "CT_venous"
    assert converted_stem("MR", "T1C") == "MR_T1C"


def test_convert_patient_outputs_and_manifest(tmp_path):
    cohort = build_cohort(tmp_path / "cohort")
    rows = read_table(cohort, "images")
    out = tmp_path / "out/P001"
    written = convert_patient(cohort, rows, out, patient_id="P001")

    expected = {
        "0/CT_venous.nii.gz", "0/CT_venous.json", "0/CT_venous_mask.nii.gz",
        "0/PET.nii.gz", "0/PET.json",
        "1/CT_venous.nii.gz", "1/CT_venous.json", "1/CT_venous_mask.nii.gz",
        "1/MR_T2.nii.gz", "1/MR_T2.json",
        MANIFEST,
    }  # fmt: skip
    assert {p.relative_to(out).as_posix() for p in written} == expected
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == expected

    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["patient_id"] == "P001"
    assert [o["image"] for o in manifest["outputs"]] == [
        "0/CT_venous.nii.gz", "0/PET.nii.gz", "1/CT_venous.nii.gz", "1/MR_T2.nii.gz",
    ]  # fmt: skip
    assert manifest["skipped"][0]["modality"] == "WSI"
    assert "not converted" in manifest["skipped"][0]["reason"]

    ct, suv, labels = _volume()
    # DICOM CT: HU and geometry; RTSTRUCT: labels 1 (Lung), 2 (GTV)
    ct0 = sitk.ReadImage(str(out / "0/CT_venous.nii.gz"))
    assert np.max(np.abs(sitk.GetArrayFromImage(ct0) - sitk.GetArrayFromImage(ct))) <= 0.5
    np.testing.assert_allclose(ct0.GetOrigin(), ct.GetOrigin(), atol=1e-4)
    mask0 = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "0/CT_venous_mask.nii.gz")))
    assert np.array_equal(mask0, sitk.GetArrayFromImage(labels))
    side0 = json.loads((out / "0/CT_venous.json").read_text())
    assert side0["patient_id"] == "P001"
    assert side0["source"]["format"] == "DICOM"
    assert side0["mask"]["rois"][1]["roi"] == "GTV"
    # DICOM PET -> SUVbw
    pet = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "0/PET.nii.gz")))
    want = sitk.GetArrayFromImage(suv)
    assert np.max(np.abs(pet - want)) / want.max() < 1e-3
    side_pet = json.loads((out / "0/PET.json").read_text())
    assert side_pet["values"] == "SUVbw (g/mL)"
    assert side_pet["suv"]["weight_kg"] == 75.0
    # NIfTI CT + mask, NIfTI MR
    ct1 = sitk.ReadImage(str(out / "1/CT_venous.nii.gz"))
    assert ct1.GetPixelID() == sitk.sitkFloat32
    side1 = json.loads((out / "1/CT_venous.json").read_text())
    assert side1["source"]["format"] == "NIfTI"
    assert side1["mask"]["labels"]["2"] == int((sitk.GetArrayFromImage(labels) == 2).sum())


def test_nifti_pet_assumed_suv(tmp_path):
    cohort = tmp_path / "c"
    _, suv, _ = _volume()
    (cohort / "n").mkdir(parents=True)
    sitk.WriteImage(suv, str(cohort / "n/pet.nii.gz"))
    rows = pd.DataFrame([["P9", 0, "PET", "-", "n/pet.nii.gz", None, None, "A"]], columns=COLUMNS)
    convert_patient(cohort, rows, tmp_path / "out", patient_id="P9")
    sidecar = json.loads((tmp_path / "out/0/PET.json").read_text())
    assert "assumed" in sidecar["values"]
    assert "SUVbw" in sidecar["values"]


def test_no_phi_in_any_output(tmp_path, caplog):
    cohort = build_cohort(tmp_path / "cohort", tilt_deg=10.0)
    rows = read_table(cohort, "images")
    out = tmp_path / "out/P001"
    with caplog.at_level(logging.DEBUG, logger="oncoflow"):
        convert_patient(cohort, rows, out, patient_id="P001")
    assert "resampled" in caplog.text  # the tilt warning was logged
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) == 11
    for path in files:
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        for value in PHI.values():
            assert value.encode() not in data, f"{value} in {path}"
            assert value.replace("^", " ").encode() not in data, f"{value} in {path}"
    for value in PHI.values():
        assert value not in caplog.text


def test_tilted_refused_names_patient_and_folder(tmp_path):
    cohort = build_cohort(tmp_path / "cohort", tilt_deg=12.0)
    rows = read_table(cohort, "images")
    with pytest.raises(ConversionError) as err:
        convert_patient(cohort, rows, tmp_path / "out", patient_id="P001", tilt="refuse")
    message = str(err.value)
    assert message.startswith("patient P001: ")
    assert str(cohort / "dicom/P001/ct") in message
    assert "gantry tilt of 12.0°" in message


def test_missing_suv_tag_names_patient_file_and_tag(tmp_path):
    cohort = build_cohort(tmp_path / "cohort", pet_omit=("RadiopharmaceuticalStartTime",))
    rows = read_table(cohort, "images")
    with pytest.raises(ConversionError) as err:
        convert_patient(cohort, rows, tmp_path / "out", patient_id="P001")
    assert str(err.value) == (
        f"patient P001: {cohort / 'dicom/P001/pet'}: missing tag RadiopharmaceuticalStartTime "
        "(0018,1072), needed for the decay correction"
    )


def test_row_errors(tmp_path):
    cohort = build_cohort(tmp_path / "cohort")
    rows = read_table(cohort, "images")
    with pytest.raises(ConversionError, match=r"patient P404: no row in images\.csv"):
        convert_patient(cohort, rows, tmp_path / "o", patient_id="P404")

    bad = rows.copy()
    bad.loc[bad["modality"] == "PET", "path"] = "dicom/P001/none"
    with pytest.raises(ConversionError, match=r"patient P001: .*dicom/P001/none: file or folder"):
        convert_patient(cohort, bad, tmp_path / "o", patient_id="P001")

    bad = rows.copy()
    bad.loc[0, "mask_roi"] = "Lung+Heart"
    with pytest.raises(ConversionError, match="ROI 'Heart' not found; available ROIs: 'Lung'"):
        convert_patient(cohort, bad, tmp_path / "o", patient_id="P001")

    bad = rows.copy()
    bad.loc[0, "mask_roi"] = None
    with pytest.raises(ConversionError, match="mask_roi is empty"):
        convert_patient(cohort, bad, tmp_path / "o", patient_id="P001")

    bad = rows.copy()
    bad.loc[2, "mask_path"] = "nifti/P002_ct.nii.gz"  # a float image, different values
    with pytest.raises(ConversionError, match="integer labels"):
        convert_patient(cohort, bad, tmp_path / "o", patient_id="P001")

    bad = pd.concat([rows, rows.iloc[[1]]], ignore_index=True)
    with pytest.raises(ConversionError, match="several rows for timepoint/modality/series 0/PET/-"):
        convert_patient(cohort, bad, tmp_path / "o", patient_id="P001")
