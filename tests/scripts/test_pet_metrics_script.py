"""scripts/pet_metrics.py through main([...]), and merging its output."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from conftest import load_script


def _case(folder: Path, suv_lesion: float, radius_mm: float = 15.0) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    zz, yy, xx = np.indices((30, 32, 32))
    d2 = ((zz - 15) * 3.0) ** 2 + ((yy - 16) * 2.5) ** 2 + ((xx - 16) * 2.5) ** 2
    lesion = d2 <= radius_mm**2
    suv = np.where(lesion, suv_lesion, 1.0)
    labels = np.where(lesion, 2, np.where(d2 <= (radius_mm + 10) ** 2, 1, 0))
    pet = sitk.GetImageFromArray(suv.astype(np.float32))
    pet.SetSpacing((2.5, 2.5, 3.0))
    mask = sitk.GetImageFromArray(labels.astype(np.uint8))
    mask.CopyInformation(pet)
    sitk.WriteImage(pet, str(folder / "PET.nii.gz"))
    sitk.WriteImage(mask, str(folder / "PET_mask.nii.gz"))
    return folder / "PET.nii.gz", folder / "PET_mask.nii.gz"


@pytest.fixture(scope="module")
def script():
    return load_script("pet_metrics")


def test_metrics_csv(tmp_path, script):
    pet, mask = _case(tmp_path / "P1", 9.0)
    out = tmp_path / "P1_pet.csv"
    rc = script.main(
        ["--pet", str(pet), "--mask", str(mask), "--out", str(out), "--label", "2"]
        + ["--patient", "P1", "--timepoint", "0"]
    )
    assert rc == 0
    table = pd.read_csv(out, float_precision="round_trip").set_index("feature")
    assert table.loc["SUVmax", "value"] == 9.0
    assert table.loc["SUVmean", "value"] == 9.0
    assert table.loc["SUVpeak", "value"] == pytest.approx(9.0, rel=1e-12)
    n = int((sitk.GetArrayFromImage(sitk.ReadImage(str(mask))) == 2).sum())
    assert table.loc["MTV", "value"] == pytest.approx(n * 2.5 * 2.5 * 3.0 / 1000.0, rel=1e-12)
    assert table.loc["TLG", "value"] == pytest.approx(9.0 * table.loc["MTV", "value"])
    assert table.loc["MTV", "unit"] == "mL"
    assert set(table["patient_id"]) == {"P1"}


def test_relative_threshold_over_the_whole_mask(tmp_path, script):
    pet, mask = _case(tmp_path / "P1", 9.0)
    whole, rel = tmp_path / "whole.csv", tmp_path / "rel.csv"
    base = ["--pet", str(pet), "--mask", str(mask)]
    assert script.main([*base, "--out", str(whole)]) == 0
    assert script.main([*base, "--out", str(rel), "--threshold-rel", "0.5"]) == 0
    w = pd.read_csv(whole).set_index("feature")["value"]
    r = pd.read_csv(rel).set_index("feature")["value"]
    assert w["SUVmean"] < 9.0
    assert r["SUVmean"] == 9.0
    assert r["MTV"] < w["MTV"]
    assert math.isclose(r["SUVpeak"], w["SUVpeak"])


def test_threshold_options_are_exclusive(tmp_path, script):
    pet, mask = _case(tmp_path / "P1", 9.0)
    with pytest.raises(SystemExit) as exc:
        script.main(
            ["--pet", str(pet), "--mask", str(mask), "--out", str(tmp_path / "x.csv")]
            + ["--threshold", "2.5", "--threshold-rel", "0.4"]
        )
    assert exc.value.code == 2


def test_errors_name_patient_and_files(tmp_path, script, capsys):
    pet, mask = _case(tmp_path / "P1", 9.0)
    rc = script.main(
        ["--pet", str(pet), "--mask", str(mask), "--out", str(tmp_path / "x.csv")]
        + ["--label", "7", "--patient", "P1"]
    )
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: patient P1: ")
    assert "PET.nii.gz" in err[0]
    assert "label 7" in err[0]


def test_merge_pet_tables(tmp_path, script):
    merge = load_script("merge_features")
    outs = []
    for pid, value in (("P1", 6.0), ("P2", 11.0)):
        pet, mask = _case(tmp_path / pid, value)
        out = tmp_path / f"{pid}.csv"
        args = ["--pet", str(pet), "--mask", str(mask), "--out", str(out), "--label", "2"]
        assert script.main([*args, "--patient", pid, "--timepoint", "0"]) == 0
        outs.append(out)
    wide_path = tmp_path / "pet.csv"
    assert (
        merge.main(["--inputs", *map(str, outs), "--out", str(wide_path), "--prefix", "pet"]) == 0
    )
    wide = pd.read_csv(wide_path)
    assert list(wide.columns) == [
        "patient_id",
        "timepoint",
        "pet__SUVmax",
        "pet__SUVmean",
        "pet__SUVpeak",
        "pet__MTV",
        "pet__TLG",
    ]
    assert wide["pet__SUVmax"].tolist() == [6.0, 11.0]
