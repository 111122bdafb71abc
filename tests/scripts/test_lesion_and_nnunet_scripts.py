"""scripts/extract_lesions.py and scripts/nnunet_export.py through main([...]) on tiny files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from conftest import load_script


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.0, 3.0))
    sitk.WriteImage(image, str(path))


def _converted(root: Path, patients: list[str]) -> Path:
    z, y, x = np.indices((12, 32, 32))
    organ = ((z - 6) / 5) ** 2 + ((y - 16) / 10) ** 2 + ((x - 16) / 12) ** 2 <= 1
    lesion = ((z - 6) / 2) ** 2 + ((y - 15) / 3) ** 2 + ((x - 17) / 3) ** 2 <= 1
    for patient in patients:
        folder = root / patient / "0"
        _write(folder / "CT_venous.nii.gz", np.where(lesion, 70.0, 100.0).astype(np.float32))
        _write(folder / "CT_venous_mask.nii.gz", np.where(lesion, 2, organ * 1).astype(np.uint8))
    return root


def test_extract_lesions_writes_one_npz_per_timepoint(tmp_path):
    converted = _converted(tmp_path / "converted", ["P1"])
    settings = {"images": ["CT_venous"], "lesion_labels": [2], "organ_labels": [1], "size": 16}
    out = tmp_path / "lesions" / "P1"
    rc = load_script("extract_lesions").main(
        [
            "--converted",
            str(converted),
            "--patient",
            "P1",
            "--settings",
            json.dumps(settings),
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    data = np.load(out / "0.npz")
    assert data["CT_venous/lesion"].shape == (5, 16, 16)  # z 4..8
    assert float(data["CT_venous/side_mm"]) == 2 * 7 * 2.0  # 2 x 7 px x 2 mm


def test_extract_lesions_error_is_one_line_naming_the_patient(tmp_path, capsys):
    converted = _converted(tmp_path / "converted", ["P1"])
    settings = {"images": ["CT_venous"], "lesion_labels": [3]}
    rc = load_script("extract_lesions").main(
        [
            "--converted",
            str(converted),
            "--patient",
            "P1",
            "--settings",
            json.dumps(settings),
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: patient P1: CT_venous has no lesion voxel")


def test_nnunet_export_from_tables(tmp_path):
    patients = [f"P{i}" for i in range(8)]
    converted = _converted(tmp_path / "converted", patients)
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    pd.DataFrame({"patient_id": patients, "subtype": [i % 3 for i in range(8)]}).to_csv(
        cohort / "outcomes.csv", index=False
    )
    pd.DataFrame({"patient_id": patients}).to_csv(cohort / "clinical.csv", index=False)
    pd.DataFrame(
        {
            "patient_id": patients,
            "timepoint": 0,
            "modality": "CT",
            "series": "venous",
            "path": "x.nii.gz",
            "site": "a",
        }
    ).to_csv(cohort / "images.csv", index=False)
    splits = tmp_path / "splits.csv"
    pd.DataFrame(
        {"patient_id": patients, "split": ["train"] * 6 + ["internal_test", "external_test"]}
    ).to_csv(splits, index=False)
    folds = tmp_path / "folds.json"
    folds.write_text(
        json.dumps(
            {
                "folds": {
                    "0": {"fit": ["P0", "P1", "P2"], "apply": ["P3", "P4", "P5"]},
                    "1": {"fit": ["P3", "P4", "P5"], "apply": ["P0", "P1", "P2"]},
                    "final": {"fit": patients[:6], "apply": patients[6:]},
                }
            }
        )
    )
    settings = {
        "dataset_id": 7,
        "dataset_name": "Tiny",
        "channels": ["CT_venous"],
        "label": "CT_venous",
        "regions": {"whole": [1, 2], "lesion": [2]},
        "classify": "subtype",
    }
    raw = tmp_path / "nnUNet_raw"
    rc = load_script("nnunet_export").main(
        [
            "--settings",
            json.dumps(settings),
            "--converted",
            str(converted),
            "--cohort",
            str(cohort),
            "--splits",
            str(splits),
            "--folds",
            str(folds),
            "--raw",
            str(raw),
            "--splits-out",
            str(tmp_path / "splits_final.json"),
        ]
    )
    assert rc == 0
    dataset = json.loads((raw / "Dataset007_Tiny/dataset.json").read_text())
    assert dataset["numTraining"] == 6
    assert dataset["oncoflow"]["classes"] == ["0", "1", "2"]
    entries = json.loads((tmp_path / "splits_final.json").read_text())
    assert entries == [
        {"train": ["P0_tp0", "P1_tp0", "P2_tp0"], "val": ["P3_tp0", "P4_tp0", "P5_tp0"]},
        {"train": ["P3_tp0", "P4_tp0", "P5_tp0"], "val": ["P0_tp0", "P1_tp0", "P2_tp0"]},
    ]
    assert sorted(p.name for p in (raw / "Dataset007_Tiny/imagesTs").iterdir()) == [
        "P6_tp0_0000.nii.gz",
        "P7_tp0_0000.nii.gz",
    ]
