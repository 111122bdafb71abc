"""dice.csv rows from NIfTI label maps: Dice per case and region, voxel counts, grid checks."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from oncoflow.errors import ModelError
from oncoflow.metrics.segmentation import dice
from oncoflow.segmentation.dice import dice_table

REGIONS = {"whole_pancreas": [1, 2], "lesion": [2]}
AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])


def _label_map(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    volume = np.zeros((10, 16, 16), dtype=np.int16)
    start = int(rng.integers(2, 5))
    volume[2:8, start : start + 9, 3:13] = 1
    volume[3:6, start + 2 : start + 6, 5:9] = 2
    return volume


def _save(path, volume: np.ndarray, affine: np.ndarray = AFFINE):
    nib.save(nib.Nifti1Image(volume, affine), path)
    return path


def test_one_row_per_case_and_region_with_the_metric_dice(tmp_path):
    cases, volumes = [], {}
    for i in range(3):
        predicted, reference = _label_map(i), _label_map(20 + i)
        if i == 2:  # no lesion in either mask: lesion Dice 1 by convention
            predicted[predicted == 2] = 1
            reference[reference == 2] = 1
        volumes[f"P{i}_0"] = (predicted, reference)
        cases.append(
            (
                f"P{i}_0",
                _save(tmp_path / f"P{i}_pred.nii.gz", predicted),
                str(_save(tmp_path / f"P{i}_ref.nii.gz", reference)),
            )
        )
    table = dice_table(cases, REGIONS)
    assert list(table.columns) == [
        "case",
        "patient_id",
        "region",
        "dice",
        "reference_voxels",
        "predicted_voxels",
    ]
    assert len(table) == 6
    for row in table.itertuples():
        predicted, reference = volumes[row.case]
        labels = REGIONS[row.region]
        inside_p, inside_r = np.isin(predicted, labels), np.isin(reference, labels)
        assert row.patient_id == row.case.split("_")[0]
        assert row.dice == dice(inside_p, inside_r)
        assert row.reference_voxels == int(inside_r.sum())
        assert row.predicted_voxels == int(inside_p.sum())
    lesion_free = table[(table["case"] == "P2_0") & (table["region"] == "lesion")].iloc[0]
    assert lesion_free["dice"] == 1.0
    assert lesion_free["reference_voxels"] == 0
    assert dice_table([], REGIONS).empty


def test_masks_off_one_grid_or_unreadable_are_refused_by_case(tmp_path):
    volume = _label_map(0)
    reference = _save(tmp_path / "ref.nii.gz", volume)
    shifted = AFFINE.copy()
    shifted[0, 3] = 0.5
    moved = _save(tmp_path / "moved.nii.gz", volume, shifted)
    cropped = _save(tmp_path / "cropped.nii.gz", volume[:-1])
    for predicted in (moved, cropped):
        with pytest.raises(ModelError, match=r"case X: .* not on one voxel grid"):
            dice_table([("X", predicted, reference)], REGIONS)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti")
    with pytest.raises(ModelError, match=r"broken\.nii\.gz: cannot read the mask"):
        dice_table([("X", broken, reference)], REGIONS)
    nearly = AFFINE.copy()
    nearly[0, 3] = 1e-4  # within SPACING_TOLERANCE_MM
    same = _save(tmp_path / "same.nii.gz", volume, nearly)
    assert dice_table([("X", same, reference)], REGIONS)["dice"].tolist() == [1.0, 1.0]
