"""Dice per region (label sets), empty-mask conventions, NIfTI cases and the bootstrap summary."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from sklearn.metrics import f1_score

from oncoflow.errors import ModelError
from oncoflow.evaluate.segmentation import summarize_dice
from oncoflow.metrics.segmentation import dice, region_dice
from oncoflow.report.html import study_section
from oncoflow.segmentation.dice import dice_table

REGIONS = {"whole_pancreas": [1, 2], "lesion": [2]}


def _labels(seed: int, shift: int = 0) -> np.ndarray:
    volume = np.zeros((12, 24, 24), dtype=np.int16)
    volume[3:9, 4 + shift : 18 + shift, 5:19] = 1
    volume[4:7, 8 + shift : 13 + shift, 8:12] = 2
    noise = np.random.default_rng(seed).random(volume.shape) < 0.02
    volume[noise & (volume == 1)] = 0
    return volume


def test_dice_equals_f1_of_the_voxels_and_handles_empty_masks():
    a, b = _labels(0), _labels(1, shift=1)
    got = region_dice(a, b, REGIONS)
    for name, labels in REGIONS.items():
        expected = f1_score(np.isin(b, labels).ravel(), np.isin(a, labels).ravel())
        assert got[name] == pytest.approx(expected)
    empty = np.zeros_like(a)
    assert dice(empty, empty) == 1.0
    assert dice(a > 0, empty) == 0.0
    assert dice(empty, a > 0) == 0.0
    with pytest.raises(ModelError, match="different shapes"):
        dice(a, a[:-1])


def test_dice_table_from_nifti_and_summary(tmp_path):
    cases = []
    for i in range(6):
        pred, ref = _labels(i, shift=i % 2), _labels(10 + i)
        if i == 5:  # a lesion-free case the model gets right
            pred[pred == 2] = 1
            ref[ref == 2] = 1
        paths = []
        for kind, volume in (("pred", pred), ("ref", ref)):
            path = tmp_path / f"P{i}_{kind}.nii.gz"
            nib.save(nib.Nifti1Image(volume, np.diag([0.8, 0.8, 2.5, 1.0])), path)
            paths.append(path)
        cases.append((f"P{i}_0", *paths))
    table = dice_table(cases, REGIONS)
    assert len(table) == 12
    assert set(table["patient_id"]) == {f"P{i}" for i in range(6)}
    lesion = table[table["region"] == "lesion"].set_index("case")
    assert lesion.loc["P5_0", "dice"] == 1.0
    assert lesion.loc["P5_0", "reference_voxels"] == 0
    summary = summarize_dice(table, n_boot=200, seed=1)
    whole = summary["regions"]["whole_pancreas"]["all"]
    assert whole["dice"]["value"] == pytest.approx(
        table.query("region == 'whole_pancreas'")["dice"].mean()
    )
    assert whole["dice"]["ci_low"] <= whole["dice"]["value"] <= whole["dice"]["ci_high"]
    assert summary["regions"]["lesion"]["all"]["empty_reference"] == 1
    assert summarize_dice(table, n_boot=200, seed=1) == summary
    # the report shows the table and the box plot
    html, pngs = study_section(
        "pancreas_multitask", {"model": "nnunet"}, cohort_report={}, segmentation=summary
    )
    assert set(pngs) == {"pancreas_multitask_dice"}
    assert "mean Dice [95 % CI]" in html
    # masks on different grids are refused, naming the case
    shifted = tmp_path / "shifted.nii.gz"
    nib.save(nib.Nifti1Image(_labels(0), np.diag([0.8, 0.8, 3.0, 1.0])), shifted)
    with pytest.raises(ModelError, match=r"case X: .* not on one voxel grid"):
        dice_table([("X", cases[0][1], shifted)], REGIONS)
