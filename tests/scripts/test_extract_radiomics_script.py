"""scripts/extract_radiomics.py and scripts/merge_features.py through main([...])."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from conftest import REPO, load_script

CT_DEFAULT = REPO / "params" / "radiomics" / "ct_default_v1.yaml"


def _original_only(folder: Path, bin_width: int = 25) -> Path:
    """ct_default without filters (fast), for the tests that only exercise the plumbing."""
    text = CT_DEFAULT.read_text()
    text = (
        text[: text.index("imageType:")]
        + "imageType:\n  Original: {}\n"
        + (text[text.index("featureClass:") - 1 :])
    )
    path = folder / f"ct_original_bw{bin_width}.yaml"
    path.write_text(text.replace("binWidth: 25", f"binWidth: {bin_width}"))
    return path


def _case(folder: Path, seed: int, *, shift_mask: bool = False) -> tuple[Path, Path]:
    """A small CT-like image (4.5 x 4.5 x 5 mm voxels, like the demo) with a blob lesion."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = rng.normal(-700.0, 60.0, size=(16, 20, 20))
    zz, yy, xx = np.indices(arr.shape)
    blob = ((zz - 8) * 5.0) ** 2 + ((yy - 10) * 4.5) ** 2 + ((xx - 10) * 4.5) ** 2 <= 13.0**2
    arr[blob] = rng.normal(40.0, 25.0, size=int(blob.sum()))
    image = sitk.GetImageFromArray(arr.astype(np.int16))
    image.SetSpacing((4.5, 4.5, 5.0))
    image.SetOrigin((-45.0, -45.0, -40.0))
    mask = sitk.GetImageFromArray(blob.astype(np.uint8))
    mask.CopyInformation(image)
    if shift_mask:
        mask.SetOrigin((-45.0, -45.0, -35.0))
    sitk.WriteImage(image, str(folder / "CT.nii.gz"))
    sitk.WriteImage(mask, str(folder / "CT_mask.nii.gz"))
    return folder / "CT.nii.gz", folder / "CT_mask.nii.gz"


@pytest.fixture(scope="module")
def script():
    return load_script("extract_radiomics")


def test_csv_equals_direct_pyradiomics(tmp_path, script):
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    image, mask = _case(tmp_path / "P1", 1)
    out = tmp_path / "out" / "P1_radiomics.csv"
    args = ["--image", str(image), "--mask", str(mask), "--params", str(CT_DEFAULT)]
    rc = script.main([*args, "--out", str(out), "--patient", "P1", "--timepoint", "0"])
    assert rc == 0
    table = pd.read_csv(out, float_precision="round_trip", dtype={"patient_id": str})
    assert list(table.columns[:4]) == ["patient_id", "timepoint", "feature", "value"]
    assert set(table["patient_id"]) == {"P1"}
    direct = RadiomicsFeatureExtractor(str(CT_DEFAULT)).execute(str(image), str(mask), label=1)
    expected = {k: float(v) for k, v in direct.items() if not k.startswith("diagnostics_")}
    assert dict(zip(table["feature"], table["value"], strict=True)) == expected
    diagnostics = json.loads((tmp_path / "out" / "P1_radiomics.diagnostics.json").read_text())
    assert diagnostics["diagnostics_Versions_PyRadiomics"] == "v3.1.4"
    assert not any(k.startswith("diagnostics") for k in table["feature"])


def test_mismatch_exits_1_with_one_line(tmp_path, script, capsys):
    image, mask = _case(tmp_path / "P2", 2, shift_mask=True)
    args = ["--image", str(image), "--mask", str(mask), "--params", str(CT_DEFAULT)]
    rc = script.main([*args, "--out", str(tmp_path / "x.csv"), "--patient", "P2"])
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: patient P2: ")
    assert "CT.nii.gz" in err[0]
    assert "CT_mask.nii.gz" in err[0]
    assert not (tmp_path / "x.csv").exists()


def test_extract_then_merge(tmp_path, script):
    merge = load_script("merge_features")
    params = _original_only(tmp_path)
    outs = []
    for i, pid in enumerate(("P2", "P1")):
        image, mask = _case(tmp_path / pid, 10 + i)
        out = tmp_path / "feat" / f"{pid}.csv"
        args = ["--image", str(image), "--mask", str(mask), "--params", str(params)]
        assert script.main([*args, "--out", str(out), "--patient", pid]) == 0
        outs.append(out)
    wide_path = tmp_path / "radiomics.csv"
    rc = merge.main(["--inputs", *map(str, outs), "--out", str(wide_path), "--prefix", "radiomics"])
    assert rc == 0
    wide = pd.read_csv(wide_path, float_precision="round_trip", dtype={"patient_id": str})
    assert wide["patient_id"].tolist() == ["P1", "P2"]
    assert wide.columns[0] == "patient_id"
    assert all(c.startswith("radiomics__") for c in wide.columns[1:])
    assert "radiomics__original_firstorder_Mean" in wide.columns
    assert not any("settings_hash" in c or "diagnostics" in c for c in wide.columns)
    p1 = pd.read_csv(outs[1], float_precision="round_trip").set_index("feature")["value"]
    row = wide.set_index("patient_id").loc["P1"]
    assert row["radiomics__original_glcm_Idm"] == p1["original_glcm_Idm"]


def test_merge_refuses_mixed_settings(tmp_path, script, capsys):
    merge = load_script("merge_features")
    image, mask = _case(tmp_path / "P1", 3)
    outs = []
    for params in (_original_only(tmp_path, 25), _original_only(tmp_path, 20)):
        out = tmp_path / f"{params.stem}.csv"
        args = ["--image", str(image), "--mask", str(mask), "--params", str(params)]
        assert script.main([*args, "--out", str(out), "--patient", "P1"]) == 0
        outs.append(out)
    capsys.readouterr()
    rc = merge.main(["--inputs", *map(str, outs), "--out", str(tmp_path / "w.csv")])
    assert rc == 1
    assert "settings" in capsys.readouterr().err
