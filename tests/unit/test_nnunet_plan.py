"""The plan step with real nnU-Net: plans derived, cases preprocessed once under them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from oncoflow.segmentation.export import collect_cases, export_dataset, nnunet_splits
from oncoflow.segmentation.workflow import NnunetSettings, plan
from oncoflow.splits import make_folds

REGIONS = {"whole_pancreas": [1, 2], "lesion": [2]}
PATIENTS = [f"P{i:02d}" for i in range(6)]


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.0, 3.0))
    sitk.WriteImage(image, str(path))


@pytest.fixture
def raw(tmp_path) -> tuple[Path, Path]:
    """A six-case raw dataset (CT 12 x 16 x 16 with a two-label mask) and its splits."""
    root = tmp_path
    rng = np.random.default_rng(0)
    for patient in PATIENTS:
        folder = root / "converted" / patient / "0"
        _write(folder / "CT_venous.nii.gz", rng.normal(40, 30, (12, 16, 16)).astype(np.float32))
        mask = np.zeros((12, 16, 16), np.float32)
        mask[3:9, 4:12, 4:12] = 1.0
        mask[5:7, 6:9, 6:9] = 2.0
        _write(folder / "CT_venous_mask.nii.gz", mask)
    splits = dict.fromkeys(PATIENTS, "train")
    cases = collect_cases(root / "converted", splits, ["CT_venous"], label_stem="CT_venous")
    export_dataset(cases, root / "raw" / "Dataset777_Plan", ["CT_venous"], REGIONS)
    frame = pd.DataFrame({"patient_id": PATIENTS, "split": "train"})
    folds = make_folds(frame, k=2, seed=1)
    splits_file = root / "splits_final.json"
    splits_file.write_text(json.dumps(nnunet_splits(folds, cases)))
    return root, splits_file


def test_cases_are_preprocessed_once_under_the_derived_plans(raw) -> None:
    """With another normalisation (the planned-scheme path runs in the integration tests)."""
    root, splits_file = raw
    plans = {"name": "oncoflowPlans", "normalization": "ZScoreNormalization"}
    settings = NnunetSettings(
        777,
        "Plan",
        ("CT_venous",),
        "CT_venous",
        REGIONS,
        "subtype",
        planner="ExperimentPlanner",
        plans=plans,
        processes=1,
    )
    out = root / "preprocessed"
    target = plan(settings, raw_root=root / "raw", splits_file=splits_file, out_root=out)
    derived = json.loads(target.read_text())["configurations"]["3d_fullres"]
    folders = sorted(p.name for p in target.parent.iterdir() if p.is_dir())
    assert derived["normalization_schemes"] == ["ZScoreNormalization"]
    # one preprocessed copy of the cases: the derived plans' data identifier, nothing else
    assert folders == sorted(["gt_segmentations", derived["data_identifier"]])
    assert derived["data_identifier"] == "nnUNetPlans_3d_fullres_ZScoreNormalization"
    cases = list((target.parent / derived["data_identifier"]).glob("P*_tp0.*"))
    assert {c.name.split(".")[0] for c in cases} == {f"{p}_tp0" for p in PATIENTS}
