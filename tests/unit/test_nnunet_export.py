"""nnU-Net raw export and splits_final.json from our patient folds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from oncoflow.errors import SegmentationError
from oncoflow.segmentation.export import (
    case_id,
    collect_cases,
    dataset_json,
    export_dataset,
    nnunet_splits,
)
from oncoflow.splits import make_folds

REGIONS = {"whole_pancreas": [1, 2], "lesion": [2]}


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.0, 3.0))
    sitk.WriteImage(image, str(path))


def _converted(root: Path, patients: dict[str, int], *, mask_value: float = 2.0) -> Path:
    """patients: id -> number of time points; CT_venous + mask at every time point."""
    rng = np.random.default_rng(0)
    for patient, n_tp in patients.items():
        for tp in range(n_tp):
            folder = root / patient / str(tp)
            _write(folder / "CT_venous.nii.gz", rng.normal(40, 10, (6, 8, 8)).astype(np.float32))
            mask = np.zeros((6, 8, 8), np.float32)
            mask[2:4, 2:6, 2:6] = 1.0
            mask[3, 3:5, 3:5] = mask_value
            _write(folder / "CT_venous_mask.nii.gz", mask)
    return root


@pytest.fixture
def cohort(tmp_path):
    train = {f"P{i:02d}": 2 for i in range(8)}  # two time points each
    test = {"T01": 1, "T02": 1}
    converted = _converted(tmp_path / "converted", {**train, **test})
    splits = {**dict.fromkeys(train, "train"), "T01": "internal_test", "T02": "external_test"}
    targets = {p: i % 3 for i, p in enumerate(sorted(splits))}
    return converted, splits, targets


def test_cases_one_per_patient_timepoint(cohort):
    converted, splits, targets = cohort
    cases = collect_cases(converted, splits, ["CT_venous"], label_stem="CT_venous", targets=targets)
    assert len(cases) == 8 * 2 + 2
    assert cases[0].case_id == case_id("P00", 0) == "P00_tp0"
    assert {c.split for c in cases if c.patient_id == "T01"} == {"internal_test"}


def test_export_layout_and_dataset_json(cohort, tmp_path):
    converted, splits, targets = cohort
    cases = collect_cases(converted, splits, ["CT_venous"], label_stem="CT_venous", targets=targets)
    out = tmp_path / "raw" / "Dataset501_Demo"
    payload = export_dataset(cases, out, ["CT_venous"], REGIONS, classes=["0", "1", "2"])
    assert sorted(p.name for p in (out / "imagesTs").iterdir()) == [
        "T01_tp0_0000.nii.gz",
        "T02_tp0_0000.nii.gz",
    ]
    assert len(list((out / "imagesTr").iterdir())) == len(list((out / "labelsTr").iterdir())) == 16
    written = json.loads((out / "dataset.json").read_text())
    assert written == payload
    assert written["channel_names"] == {"0": "CT"}
    assert written["labels"] == {"background": 0, "whole_pancreas": [1, 2], "lesion": 2}
    assert written["regions_class_order"] == [1, 2]  # whole organ painted 1, then lesion 2
    assert written["numTraining"] == 16
    assert written["oncoflow"]["case_classes"]["P01_tp1"] == "1"
    assert "T01_tp0" not in written["oncoflow"]["case_classes"]  # test cases carry no label
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labelsTr" / "P00_tp0.nii.gz")))
    assert label.dtype == np.uint8
    assert set(np.unique(label)) == {0, 1, 2}


def test_float_artefacts_rounded_and_unknown_labels_refused(tmp_path):
    converted = _converted(tmp_path / "c", {"P00": 1}, mask_value=2.0003)
    cases = collect_cases(converted, {"P00": "train"}, ["CT_venous"], label_stem="CT_venous")
    export_dataset(cases, tmp_path / "raw" / "D", ["CT_venous"], REGIONS)
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "raw/D/labelsTr/P00_tp0.nii.gz")))
    assert set(np.unique(label)) == {0, 1, 2}
    bad = _converted(tmp_path / "bad", {"P00": 1}, mask_value=3.0)
    cases = collect_cases(bad, {"P00": "train"}, ["CT_venous"], label_stem="CT_venous")
    with pytest.raises(SegmentationError, match=r"P00_tp0: .*label\(s\) \[3\]"):
        export_dataset(cases, tmp_path / "raw" / "E", ["CT_venous"], REGIONS)


def test_training_case_without_mask_is_named(tmp_path):
    converted = _converted(tmp_path / "c", {"P00": 1})
    (converted / "P00/0/CT_venous_mask.nii.gz").unlink()
    with pytest.raises(
        SegmentationError, match=r"patient P00, time point 0: training case without a mask"
    ):
        collect_cases(converted, {"P00": "train"}, ["CT_venous"], label_stem="CT_venous")


def test_splits_group_timepoints_and_exclude_test_patients(cohort):
    converted, splits, targets = cohort
    cases = collect_cases(converted, splits, ["CT_venous"], label_stem="CT_venous", targets=targets)
    import pandas as pd

    frame = pd.DataFrame({"patient_id": list(splits), "split": list(splits.values())})
    folds = make_folds(frame, k=4, seed=3)
    entries = nnunet_splits(folds, cases)
    assert len(entries) == 4  # the "final" fold has no nnU-Net counterpart
    test_cases = {c.case_id for c in cases if c.split != "train"}
    seen_val = []
    for entry in entries:
        train_patients = {c.split("_tp")[0] for c in entry["train"]}
        val_patients = {c.split("_tp")[0] for c in entry["val"]}
        assert not train_patients & val_patients  # no patient on both sides of a fold
        assert not (set(entry["train"]) | set(entry["val"])) & test_cases
        for patient in val_patients:  # every time point of a validation patient is in val
            assert {f"{patient}_tp0", f"{patient}_tp1"} <= set(entry["val"])
        seen_val += entry["val"]
    assert sorted(seen_val) == sorted(c.case_id for c in cases if c.split == "train")


def test_fold_naming_a_test_patient_is_refused(cohort):
    converted, splits, targets = cohort
    cases = collect_cases(converted, splits, ["CT_venous"], label_stem="CT_venous", targets=targets)
    folds = {"0": {"fit": [f"P{i:02d}" for i in range(6)], "apply": ["P06", "T01"]}}
    with pytest.raises(SegmentationError, match=r"fold 0: patient.*T01"):
        nnunet_splits(folds, cases)


def test_single_label_region_is_a_plain_class():
    payload = dataset_json(["CT"], {"lesion": [1]}, 3)
    assert payload["labels"] == {"background": 0, "lesion": 1}
    assert "regions_class_order" not in payload


def test_cases_csv_records_each_patients_site(cohort, tmp_path):
    from oncoflow.segmentation.workflow import patient_sites, read_cases

    converted, splits, targets = cohort
    site = ["site_c" if p.startswith("T") else "site_a" for p in splits]
    images = pd.DataFrame({"patient_id": list(splits), "site": site})
    sites = patient_sites(images)
    cases = collect_cases(
        converted, splits, ["CT_venous"], label_stem="CT_venous", targets=targets, sites=sites
    )
    out = tmp_path / "raw" / "Dataset501_Demo"
    export_dataset(cases, out, ["CT_venous"], REGIONS, classes=["0", "1", "2"])
    table = read_cases(out).set_index("case_id")
    assert table.loc["P03_tp1", "site"] == "site_a"
    assert table.loc["T02_tp0", "site"] == "site_c"
    assert table.loc["P03_tp1", "target"] == str(targets["P03"])
    # an export without the column reads as no site
    (out / "cases.csv").write_text("case_id,patient_id,timepoint,split,target\nX_tp0,X,0,train,1\n")
    assert read_cases(out)["site"].tolist() == [""]
    assert patient_sites(images.drop(columns="site")) == {}


def test_calibrated_export_shifts_training_cases_and_keeps_them_uncalibrated(cohort, tmp_path):
    from oncoflow.segmentation.calibrate import UNCALIBRATED, Calibration, tissue_median
    from oncoflow.segmentation.predict import subset_cases
    from oncoflow.segmentation.workflow import read_cases

    converted, splits, targets = cohort
    cases = collect_cases(converted, splits, ["CT_venous"], label_stem="CT_venous", targets=targets)
    out = tmp_path / "raw" / "Dataset501_Demo"
    calibration = Calibration(label=1, reference_hu=100.0, channels=(0,))
    export_dataset(cases, out, ["CT_venous"], REGIONS, classes=["0", "1", "2"],
                   calibration=calibration)  # fmt: skip

    def read(path: Path) -> np.ndarray:
        return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))

    table = read_cases(out).set_index("case_id")
    for case in ("P00_tp0", "P05_tp1"):
        labels = read(out / "labelsTr" / f"{case}.nii.gz")
        calibrated = read(out / "imagesTr" / f"{case}_0000.nii.gz")[None]
        raw = read(out / UNCALIBRATED / f"{case}_0000.nii.gz")[None]
        # the tissue reads r in imagesTr; the uncalibrated copy is the converted image
        assert tissue_median(calibrated, labels, 1, case=case) == pytest.approx(100.0, abs=1e-3)
        source = read(converted / case.split("_tp")[0] / case[-1] / "CT_venous.nii.gz")
        np.testing.assert_array_equal(raw[0], source)
        offset = table.loc[case, "calibration_hu"]
        np.testing.assert_allclose(calibrated - raw, offset, atol=1e-3)
        assert offset == pytest.approx(100.0 - tissue_median(raw, labels, 1, case=case), abs=1e-3)
    # test cases stay uncalibrated, with no offset; validation cases are predicted uncalibrated
    assert np.isnan(table.loc["T01_tp0", "calibration_hu"])
    assert len(list((out / UNCALIBRATED).iterdir())) == 16
    folds = [{"train": ["P00_tp0"], "val": ["P01_tp0"]}]
    assert subset_cases("fold_0", table.reset_index(), folds, calibrated=True)[1] == UNCALIBRATED
    assert subset_cases("fold_0", table.reset_index(), folds)[1] == "imagesTr"
